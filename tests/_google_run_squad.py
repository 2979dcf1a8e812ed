"""Google's own run_squad.py (bert-tensorflow 1.0.4) as the reference for
SQuAD features and predictions, run in a child process.

`bert/run_squad.py` defines absl flags when imported (its flag names are
ours too) and imports `bert/modeling.py`, which needs `tensorflow.contrib`
(TensorFlow 1 only). Neither the model nor the optimizer is used here:
`bert.modeling` and `bert.optimization` are replaced by empty modules before
the import, `tensorflow.compat.v1` by the flags, file and logging functions
it stands for (see `_tf1_stand_in`), and the code runs in a child process so
that its flags stay out of the test process. Nothing of what it computes is
changed.

    python tests/_google_run_squad.py job.json result.json

A job is {"kind": "features" | "predictions", ...}; see `_features` and
`_predictions`.
"""

import json
import os
import subprocess
import sys
import types
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run_google(job: dict, tmp_path, timeout: float = 300) -> dict:
    """Runs one job in a child process; returns its result."""
    job_file, result_file = Path(tmp_path) / "google_job.json", Path(tmp_path) / "google_result.json"
    job_file.write_text(json.dumps(job))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, str(HERE / "_google_run_squad.py"), str(job_file),
                           str(result_file)], capture_output=True, text=True, env=env,
                          timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(result_file.read_text())


def _tf1_stand_in():
    """The few parts of `tensorflow.compat.v1` that the data and prediction
    code of run_squad.py and tokenization.py touch: flags (absl's, which
    tf.flags is), file reading and writing (tf.gfile), and logging (absl's,
    which tf.logging is). Loading TensorFlow itself would only cost seconds."""
    from absl import flags, logging

    def gfile_open(path, mode="r"):
        return open(path, mode, encoding=None if "b" in mode else "utf-8")

    tf = types.ModuleType("tensorflow.compat.v1")
    tf.flags = flags
    tf.logging = logging
    tf.gfile = types.SimpleNamespace(Open=gfile_open, GFile=gfile_open)
    return tf


def _import_google():
    tf = _tf1_stand_in()
    package = types.ModuleType("tensorflow")
    package.compat = types.SimpleNamespace(v1=tf)
    compat = types.ModuleType("tensorflow.compat")
    compat.v1 = tf
    sys.modules.update({"tensorflow": package, "tensorflow.compat": compat,
                        "tensorflow.compat.v1": tf})
    for name in ("bert.modeling", "bert.optimization"):
        sys.modules[name] = types.ModuleType(name)
    from bert import run_squad, tokenization

    tokenization.preserve_token = lambda token, vocab: False
    from absl import flags

    flags.FLAGS(["run_squad"])
    return run_squad, tokenization


def _features(run_squad, tokenization, job):
    """Examples and features for each config in job["configs"] (each names its squad_file)."""
    tokenizer = tokenization.FullTokenizer(job["vocab_file"], do_lower_case=job["do_lower_case"])
    results = []
    for config in job["configs"]:
        run_squad.FLAGS.version_2_with_negative = config.get("version_2_with_negative", False)
        examples = run_squad.read_squad_examples(config["squad_file"], config["is_training"])
        features = []
        run_squad.convert_examples_to_features(
            examples, tokenizer, config["max_seq_length"], config["doc_stride"],
            config["max_query_length"], config["is_training"], features.append)
        results.append({
            "examples": [{"qas_id": e.qas_id, "doc_tokens": e.doc_tokens,
                          "start_position": e.start_position, "end_position": e.end_position,
                          "is_impossible": e.is_impossible} for e in examples],
            "features": [{
                "unique_id": f.unique_id, "example_index": f.example_index,
                "doc_span_index": f.doc_span_index, "tokens": f.tokens,
                "token_to_orig_map": {str(k): v for k, v in f.token_to_orig_map.items()},
                "token_is_max_context": {str(k): v for k, v in f.token_is_max_context.items()},
                "input_ids": f.input_ids, "input_mask": f.input_mask,
                "segment_ids": f.segment_ids, "start_position": f.start_position,
                "end_position": f.end_position} for f in features]})
    return {"configs": results}


def _predictions(run_squad, tokenization, job):
    """write_predictions of Google's code for the given logits (one row per
    feature), once per entry of job["runs"] (flags and output folder)."""
    import numpy as np

    tokenizer = tokenization.FullTokenizer(job["vocab_file"], do_lower_case=job["do_lower_case"])
    flags = run_squad.FLAGS
    examples = run_squad.read_squad_examples(job["squad_file"], False)
    features = []
    run_squad.convert_examples_to_features(
        examples, tokenizer, job["max_seq_length"], job["doc_stride"], job["max_query_length"],
        False, features.append)
    logits = np.load(job["logits_file"])
    results = [run_squad.RawResult(unique_id=f.unique_id,
                                   start_logits=[float(x) for x in logits["start"][i]],
                                   end_logits=[float(x) for x in logits["end"][i]])
               for i, f in enumerate(features)]
    outcomes = []
    for run in job["runs"]:
        flags.version_2_with_negative = run["version_2_with_negative"]
        flags.null_score_diff_threshold = run["null_score_diff_threshold"]
        out = run["output_dir"]
        os.makedirs(out, exist_ok=True)
        files = [os.path.join(out, name) for name in
                 ("predictions.json", "nbest_predictions.json", "null_odds.json")]
        try:
            run_squad.write_predictions(examples, features, results, run["n_best_size"],
                                        run["max_answer_length"], job["do_lower_case"], *files)
            outcomes.append({"files": files})
        except Exception as error:  # the failure the tests document
            outcomes.append({"error": f"{type(error).__name__}: {error}"})
    return {"runs": outcomes, "num_features": len(features)}


if __name__ == "__main__":
    job = json.loads(Path(sys.argv[1]).read_text())
    run_squad, tokenization = _import_google()
    result = {"features": _features, "predictions": _predictions}[job["kind"]](
        run_squad, tokenization, job)
    Path(sys.argv[2]).write_text(json.dumps(result))
