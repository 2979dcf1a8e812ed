"""The commands of Google's BERT README, typed as Google's README types them,
against a tiny model folder in Google's release layout: they run unchanged
and mean what they meant (Google's flag defaults, nothing trained unless
asked, nothing subsetted unless asked), and their failures are one line.

The reference values are Google's: the flag defaults of google-research/bert's
run_classifier.py, run_pretraining.py, extract_features.py and
create_pretraining_data.py, its step formula
`int(len(train_examples) / train_batch_size * num_train_epochs)`, its output
files, and the sha256 of its sample_text.txt.
"""

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from bert_tf import checkpoints, modeling

REPO = Path(__file__).resolve().parents[1]

# Every flag of Google's four scripts with its default there
# (google-research/bert @ eedf5716ce1268e56f0a50264a88cafad334ac61).
_TPU = {"use_tpu": False, "master": None, "num_tpu_cores": 8}
_TPU_NAMES = {"tpu_name": None, "tpu_zone": None, "gcp_project": None}
GOOGLE_DEFAULTS = {
    "run_classifier.py": {
        "data_dir": None, "bert_config_file": None, "task_name": None, "vocab_file": None,
        "output_dir": None, "init_checkpoint": None, "do_lower_case": True,
        "max_seq_length": 128, "do_train": False, "do_eval": False, "do_predict": False,
        "train_batch_size": 32, "eval_batch_size": 8, "predict_batch_size": 8,
        "learning_rate": 5e-5, "num_train_epochs": 3.0, "warmup_proportion": 0.1,
        "save_checkpoints_steps": 1000, "iterations_per_loop": 1000, **_TPU, **_TPU_NAMES},
    "run_pretraining.py": {
        "bert_config_file": None, "input_file": None, "output_dir": None,
        "init_checkpoint": None, "max_seq_length": 128, "max_predictions_per_seq": 20,
        "do_train": False, "do_eval": False, "train_batch_size": 32, "eval_batch_size": 8,
        "learning_rate": 5e-5, "num_train_steps": 100000, "num_warmup_steps": 10000,
        "save_checkpoints_steps": 1000, "iterations_per_loop": 1000, "max_eval_steps": 100,
        **_TPU, **_TPU_NAMES},
    "extract_features.py": {
        "input_file": None, "output_file": None, "layers": "-1,-2,-3,-4",
        "bert_config_file": None, "max_seq_length": 128, "init_checkpoint": None,
        "vocab_file": None, "do_lower_case": True, "batch_size": 32,
        "use_one_hot_embeddings": False, **_TPU},
    "create_pretraining_data.py": {
        "input_file": None, "output_file": None, "vocab_file": None, "do_lower_case": True,
        "do_whole_word_mask": False, "max_seq_length": 128, "max_predictions_per_seq": 20,
        "random_seed": 12345, "dupe_factor": 10, "masked_lm_prob": 0.15,
        "short_seq_prob": 0.1},
}
# google-research/bert's sample_text.txt, as stored there.
GOOGLE_SAMPLE_TEXT_SHA256 = "5205aafa90afb0841b24b05cb461345e3692a85d8ea8027d8935af103fd5c613"
TRAIN_EXAMPLES, DEV_EXAMPLES, TEST_EXAMPLES = 96, 24, 16


def _env():
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")


def _run(script, *args, timeout=300):
    return subprocess.run([sys.executable, str(REPO / script), *args], capture_output=True,
                          text=True, env=_env(), timeout=timeout, cwd=REPO)


def _error_lines(stderr):
    """What the program printed to stderr besides log records (absl's and
    TensorFlow's, `I1203 12:00:00...`) and TensorFlow's start-up notice."""
    return [line for line in stderr.splitlines()
            if line.strip() and not re.match(r"[IWEF]\d{4} ", line)
            and not line.startswith("WARNING: All log messages")]


@pytest.fixture(scope="module")
def bert_base_dir(tmp_path_factory, vocab_file):
    """$BERT_BASE_DIR: a tiny random BERT in Google's release layout."""
    folder = tmp_path_factory.mktemp("uncased_L-4_H-16_A-2")
    config = modeling.BertConfig(vocab_size=30522, hidden_size=16, num_hidden_layers=4,
                                 num_attention_heads=2, intermediate_size=32,
                                 max_position_embeddings=128, type_vocab_size=2)
    config.to_json_file(str(folder / "bert_config.json"))
    shutil.copy(vocab_file, folder / "vocab.txt")
    checkpoints.save_google_checkpoint(modeling.BertEncoder(config),
                                       str(folder / "bert_model.ckpt"))
    return folder


@pytest.fixture(scope="module")
def glue_dir(tmp_path_factory, repo_data):
    """$GLUE_DIR with MRPC: the first rows of the real files, Google's layout."""
    folder = tmp_path_factory.mktemp("glue")
    (folder / "MRPC").mkdir()
    for split, rows in (("train", TRAIN_EXAMPLES), ("dev", DEV_EXAMPLES),
                        ("test", TEST_EXAMPLES)):
        lines = (repo_data / f"glue/MRPC/{split}.tsv").read_bytes().split(b"\n")
        (folder / f"MRPC/{split}.tsv").write_bytes(b"\n".join(lines[:rows + 1]) + b"\n")
    return folder


def _finetune_args(bert_base_dir, data_dir, output_dir, *extra):
    """Google's README fine-tuning command for MRPC, flag for flag."""
    return ("--task_name=MRPC", "--do_train=true", "--do_eval=true", f"--data_dir={data_dir}",
            f"--vocab_file={bert_base_dir}/vocab.txt",
            f"--bert_config_file={bert_base_dir}/bert_config.json",
            f"--init_checkpoint={bert_base_dir}/bert_model.ckpt", "--max_seq_length=128",
            "--train_batch_size=32", "--learning_rate=2e-5", "--num_train_epochs=3.0",
            f"--output_dir={output_dir}/", *extra)


def _predict_args(bert_base_dir, data_dir, trained_classifier, output_dir):
    """Google's README prediction command."""
    return ("--task_name=MRPC", "--do_predict=true", f"--data_dir={data_dir}",
            f"--vocab_file={bert_base_dir}/vocab.txt",
            f"--bert_config_file={bert_base_dir}/bert_config.json",
            f"--init_checkpoint={trained_classifier}", "--max_seq_length=128",
            f"--output_dir={output_dir}/")


def _results(path):
    return dict(line.split(" = ") for line in path.read_text().splitlines())


def _snapshot(folder):
    """Name -> (size, mtime) of every file under `folder`."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def mrpc_output(bert_base_dir, glue_dir, tmp_path_factory):
    output = tmp_path_factory.mktemp("mrpc_output")
    result = _run("run_classifier.py", *_finetune_args(bert_base_dir, glue_dir / "MRPC", output))
    assert result.returncode == 0, result.stderr[-3000:]
    return output, result


# Imports each script in turn (its flags only, no TensorFlow) and prints the
# defaults; a script's flags are removed before the next defines its own.
_PROBE = """
import importlib, json, sys
from absl import flags
defaults = {}
for script in sys.argv[1:]:
    before = set(flags.FLAGS)
    importlib.import_module(script[:-3])
    defaults[script] = {name: flags.FLAGS[name].default for name in flags.FLAGS}
    for name in set(flags.FLAGS) - before:
        delattr(flags.FLAGS, name)
print(json.dumps(defaults))
"""


def test_every_google_flag_keeps_googles_default():
    result = subprocess.run([sys.executable, "-c", _PROBE, *GOOGLE_DEFAULTS], capture_output=True,
                            text=True, env=_env(), cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    ours = json.loads(result.stdout.strip().splitlines()[-1])
    differing = {f"{script} --{name}": (ours[script].get(name, "(no such flag)"), default)
                 for script, google in GOOGLE_DEFAULTS.items()
                 for name, default in google.items()
                 if ours[script].get(name, "(no such flag)") != default}
    assert not differing, f"ours vs Google's defaults: {differing}"


def test_googles_fine_tuning_command_trains_on_every_example(mrpc_output):
    output, result = mrpc_output
    # Google's formula: all 96 examples, 3 epochs of batch 32.
    assert int(_results(output / "eval_results.txt")["global_step"]) == int(96 / 32 * 3)
    assert {"eval_accuracy", "eval_loss", "global_step"} <= set(_results(output / "eval_results.txt"))
    run_line = next(line for line in result.stderr.splitlines() if "Run: " in line)
    for part in ("task MRPC", "train examples 96 of 96,", "3 epoch(s) = 9 steps of batch 32",
                 "learning_rate 2e-05", "warm-up 0 steps", "max_seq_length 128",
                 "bert_model.ckpt (4 layers, hidden 16"):
        assert part in run_line, (part, run_line)


def test_max_train_examples_subsets_only_when_given(bert_base_dir, glue_dir, tmp_path):
    result = _run("run_classifier.py", *_finetune_args(
        bert_base_dir, glue_dir / "MRPC", tmp_path / "out", "--max_train_examples=50",
        "--num_train_epochs=2", "--nodo_eval"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "train examples 50 of 96 (a random subset: --max_train_examples=50)" in result.stderr
    assert (tmp_path / f"out/ckpt-{int(50 / 32 * 2)}.index").exists()


def test_googles_prediction_command_only_predicts(mrpc_output, bert_base_dir, glue_dir, tmp_path):
    output, _ = mrpc_output
    trained_classifier = output / f"ckpt-{int(96 / 32 * 3)}"
    before = _snapshot(output)
    result = _run("run_classifier.py", *_predict_args(bert_base_dir, glue_dir / "MRPC",
                                                      trained_classifier, output))
    assert result.returncode == 0, result.stderr[-3000:]
    after = _snapshot(output)
    # Nothing trained, no checkpoint written, eval_results.txt untouched.
    assert {name: after[name] for name in before} == before
    assert set(after) - set(before) == {"test_results.tsv", "MRPC.tsv"}
    probabilities = np.loadtxt(output / "test_results.tsv", delimiter="\t")
    assert probabilities.shape == (TEST_EXAMPLES, 2)

    # Into a fresh folder: the fine-tuned weights predict, unchanged.
    fresh = tmp_path / "predictions"
    result = _run("run_classifier.py", *_predict_args(bert_base_dir, glue_dir / "MRPC",
                                                      trained_classifier, fresh))
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(p.name for p in fresh.iterdir()) == ["MRPC.tsv", "run_identity.json",
                                                       "test_results.tsv"]
    np.testing.assert_allclose(np.loadtxt(fresh / "test_results.tsv", delimiter="\t"),
                               probabilities, atol=1e-6)


def test_replaced_results_are_named(mrpc_output, bert_base_dir, glue_dir):
    output, _ = mrpc_output
    result = _run("run_classifier.py", "--task_name=MRPC", "--do_eval=true",
                  f"--data_dir={glue_dir / 'MRPC'}", f"--init_checkpoint={bert_base_dir}",
                  f"--output_dir={output}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"Replacing {output / 'eval_results.txt'}" in result.stderr
    assert int(_results(output / "eval_results.txt")["global_step"]) == 9  # evaluated, not trained


def test_a_failed_start_does_not_lock_the_output_dir(bert_base_dir, glue_dir, tmp_path):
    wrong = json.loads((bert_base_dir / "bert_config.json").read_text())
    wrong.update(hidden_size=32, intermediate_size=64)
    (tmp_path / "wrong_config.json").write_text(json.dumps(wrong))
    args = list(_finetune_args(bert_base_dir, glue_dir / "MRPC", tmp_path / "out",
                               "--num_train_epochs=1", "--nodo_eval"))
    config_flag = args.index(f"--bert_config_file={bert_base_dir}/bert_config.json")
    args[config_flag] = f"--bert_config_file={tmp_path / 'wrong_config.json'}"
    result = _run("run_classifier.py", *args)
    assert result.returncode == 2 and "does not fit the model" in result.stderr
    assert not (tmp_path / "out/run_identity.json").exists()
    args[config_flag] = f"--bert_config_file={bert_base_dir}/bert_config.json"
    result = _run("run_classifier.py", *args)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "out/run_identity.json").exists()


def test_vocabulary_without_cls_and_sep_is_named(bert_base_dir, glue_dir, tmp_path):
    lines = (bert_base_dir / "vocab.txt").read_text(encoding="utf-8").splitlines()
    bad = tmp_path / "vocab_without_specials.txt"
    bad.write_text("\n".join(t for t in lines if t not in ("[CLS]", "[SEP]")) + "\n",
                   encoding="utf-8")
    args = [a if not a.startswith("--vocab_file=") else f"--vocab_file={bad}"
            for a in _finetune_args(bert_base_dir, glue_dir / "MRPC", tmp_path / "out")]
    result = _run("run_classifier.py", *args)
    assert result.returncode == 2
    assert _error_lines(result.stderr) == [
        f"error: {bad}: the vocabulary has no [CLS] and no [SEP] token (30520 tokens); BERT "
        "inputs need both. Is it the model's vocab.txt?"]


def test_classifier_checkpoint_with_another_label_count_is_one_line(mrpc_output, bert_base_dir,
                                                                     tmp_path):
    output, _ = mrpc_output
    rows = ["sentence\tlabel"] + [f"sentence number {i}\t{'abc'[i % 3]}" for i in range(12)]
    for split in ("train", "dev"):
        (tmp_path / f"{split}.tsv").write_text("\n".join(rows) + "\n")
    checkpoint = output / "ckpt-9"
    result = _run("run_classifier.py", "--task_name=generic", "--do_train", f"--data_dir={tmp_path}",
                  f"--init_checkpoint={checkpoint}", f"--bert_config_file={bert_base_dir}/bert_config.json",
                  f"--vocab_file={bert_base_dir}/vocab.txt", f"--output_dir={tmp_path / 'out'}")
    assert result.returncode == 2
    assert "Value in checkpoint could not be found" not in result.stderr
    assert _error_lines(result.stderr) == [
        f"error: Checkpoint {str(checkpoint)!r} is a classifier with 2 output label(s) "
        "(output_weights [2, 16]); this task has 3 (model expects [3, 16]): start from the "
        "pretrained encoder's checkpoint instead"]


def test_malformed_dev_file_is_found_before_training(bert_base_dir, glue_dir, tmp_path):
    data = tmp_path / "MRPC"
    shutil.copytree(glue_dir / "MRPC", data)
    with open(data / "dev.tsv", "a", encoding="utf-8") as f:
        f.write("1\t11\t12\tonly one sentence here\n")
    result = _run("run_classifier.py", *_finetune_args(bert_base_dir, data, tmp_path / "out"))
    assert result.returncode == 2
    assert f"{data / 'dev.tsv'}:{DEV_EXAMPLES + 2}:" in result.stderr
    assert "Traceback" not in result.stderr
    assert not list(tmp_path.glob("out/ckpt-*"))  # no training step was taken


def test_googles_pretraining_commands(bert_base_dir, mrpc_output, tmp_path):
    records = tmp_path / "tf_examples.tfrecord"
    result = _run("create_pretraining_data.py", f"--input_file={REPO / 'data/sample_text.txt'}",
                  f"--output_file={records}", f"--vocab_file={bert_base_dir}/vocab.txt",
                  "--do_lower_case=True", "--max_seq_length=128", "--max_predictions_per_seq=20",
                  "--masked_lm_prob=0.15", "--random_seed=12345", "--dupe_factor=5")
    assert result.returncode == 0, result.stderr[-3000:]

    def pretraining(output_dir):
        return _run("run_pretraining.py", f"--input_file={records}",
                    f"--output_dir={output_dir}", "--do_train=True", "--do_eval=True",
                    f"--bert_config_file={bert_base_dir}/bert_config.json",
                    f"--init_checkpoint={bert_base_dir}/bert_model.ckpt",
                    "--train_batch_size=32", "--max_seq_length=128",
                    "--max_predictions_per_seq=20", "--num_train_steps=20",
                    "--num_warmup_steps=10", "--learning_rate=2e-5")

    result = pretraining(tmp_path / "pretraining_output")
    assert result.returncode == 0, result.stderr[-3000:]
    results = _results(tmp_path / "pretraining_output/eval_results.txt")
    assert set(results) >= {"global_step", "loss", "masked_lm_accuracy", "masked_lm_loss",
                            "next_sentence_accuracy", "next_sentence_loss"}
    assert int(results["global_step"]) == 20

    # Into a classifier's output_dir by mistake: one line naming its checkpoint.
    output, _ = mrpc_output
    result = pretraining(output)
    assert result.returncode == 2
    assert "Value in checkpoint could not be found" not in result.stderr
    errors = _error_lines(result.stderr)
    assert len(errors) == 1 and errors[0].startswith(f"error: {output / 'ckpt-9'}: the latest "
                                                     "checkpoint in"), errors
    assert "written for another model or task" in errors[0]


def test_googles_feature_extraction_command(bert_base_dir, tmp_path):
    (tmp_path / "input.txt").write_text("Who was Jim Henson ? ||| Jim Henson was a puppeteer\n")
    common = (f"--input_file={tmp_path / 'input.txt'}", f"--output_file={tmp_path / 'output.jsonl'}",
              f"--vocab_file={bert_base_dir}/vocab.txt",
              f"--bert_config_file={bert_base_dir}/bert_config.json")
    result = _run("extract_features.py", *common, "--layers=-1,-2,-3,-4", "--max_seq_length=128",
                  "--batch_size=8")
    # Google's script requires the checkpoint; it never picks a model of its own.
    assert result.returncode == 2 and "--init_checkpoint is required" in result.stderr
    result = _run("extract_features.py", *common,
                  f"--init_checkpoint={bert_base_dir}/bert_model.ckpt", "--layers=-1,-2,-3,-4",
                  "--max_seq_length=128", "--batch_size=8")
    assert result.returncode == 0, result.stderr[-3000:]
    (record,) = [json.loads(line) for line in (tmp_path / "output.jsonl").read_text().splitlines()]
    assert record["linex_index"] == 0
    tokens = [feature["token"] for feature in record["features"]]
    assert tokens[0] == "[CLS]" and tokens.count("[SEP]") == 2 and tokens[-1] == "[SEP]"
    assert [layer["index"] for layer in record["features"][0]["layers"]] == [-1, -2, -3, -4]


def test_sample_text_is_googles():
    data = (REPO / "data/sample_text.txt").read_bytes()
    assert hashlib.sha256(data).hexdigest() == GOOGLE_SAMPLE_TEXT_SHA256
    assert len(data.decode("utf-8").splitlines()) == 33


def test_no_flags_runs_the_demonstration_and_says_so(minilm_dir, tmp_path):
    """The README's main job: 40,000 of SST-2's 67,349 training examples, one
    epoch at 1e-4, then the dev set. Stopped once its recipe is logged."""
    process = subprocess.Popen([sys.executable, str(REPO / "run_classifier.py")], cwd=tmp_path,
                               env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True)
    lines, deadline = [], time.time() + 240
    try:
        for line in process.stderr:
            lines.append(line)
            if "Run: " in line or time.time() > deadline:
                break
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
    log = "".join(lines)
    command = log.split("running the demonstration, which is\n")[1].splitlines()[0].split()
    assert command[:2] == ["python", "run_classifier.py"]
    for flag in ("--task_name=sst-2", "--do_train", "--do_eval", "--max_train_examples=40000",
                 "--num_train_epochs=1", "--learning_rate=1e-4",
                 "--init_checkpoint=minilm-l6-h384-uncased", "--output_dir=output/sst2_minilm"):
        assert flag in command, (flag, command)
    run_line = next(line for line in lines if "Run: " in line)
    assert "train examples 40000 of 67349 (a random subset" in run_line
    assert "1 epoch(s) = 1250 steps of batch 32" in run_line
    assert "learning_rate 0.0001" in run_line
