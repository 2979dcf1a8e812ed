"""Google's own `run_squad.py`, in this process, as the reference for SQuAD
examples, features and predictions.

bert-tensorflow 1.0.4 ships Google's `run_squad.py` as `bert/run_squad.py`.
Three things stand between that file and a TF2 test process; each is
handled here without touching what its SQuAD functions compute:
  * it imports `bert.modeling` and `bert.optimization`, which import
    `tensorflow.contrib` (gone in TF2) and are needed only to build Google's
    TF1 model; while the file loads, empty stand-ins take their place;
  * it defines ~30 absl flags at import, on the process-wide flag registry,
    where names such as `vocab_file` would clash with other flag owners;
    here they go to a registry of their own (`module.FLAGS`), parsed with
    the defaults of Google's command line, so the module can live in a
    pytest process beside anything else;
  * it reads and writes through `tf.gfile`, provided by the shim of
    `_google_tokenization`.

`write_predictions` and `get_final_text` read `FLAGS.version_2_with_negative`,
`FLAGS.null_score_diff_threshold` and `FLAGS.verbose_logging`;
`google_predictions` sets the first two per call.
"""

import collections
import contextlib
import functools
import importlib.util
import json
import sys
import types

from absl import flags as absl_flags

from _google_tokenization import google_tokenization

RawResult = collections.namedtuple("RawResult", ["unique_id", "start_logits", "end_logits"])


class _OwnFlags(types.SimpleNamespace):
    """The part of `tf.flags` run_squad.py uses, bound to a private registry."""

    def __init__(self):
        super().__init__(FLAGS=absl_flags.FlagValues())

    def __getattr__(self, name):
        if name.startswith("DEFINE_"):
            return functools.partial(getattr(absl_flags, name), flag_values=self.FLAGS)
        raise AttributeError(name)


@contextlib.contextmanager
def _swapped(owner, name, value):
    missing = object()
    old = getattr(owner, name, missing)
    setattr(owner, name, value)
    try:
        yield
    finally:
        if old is missing:
            delattr(owner, name)
        else:
            setattr(owner, name, old)


@contextlib.contextmanager
def _stand_in_modules(package, names):
    """Empty modules `package.<name>` for the duration of an import."""
    saved = {name: sys.modules.get(f"{package.__name__}.{name}") for name in names}
    with contextlib.ExitStack() as stack:
        for name in names:
            stub = types.ModuleType(f"{package.__name__}.{name}")
            sys.modules[stub.__name__] = stub
            stack.enter_context(_swapped(package, name, stub))
        try:
            yield
        finally:
            for name, module in saved.items():
                if module is None:
                    sys.modules.pop(f"{package.__name__}.{name}", None)
                else:
                    sys.modules[f"{package.__name__}.{name}"] = module


@functools.cache
def google_run_squad():
    """The module `bert/run_squad.py` of bert-tensorflow 1.0.4, loaded once."""
    google_tokenization()  # the tf.gfile shim, and the failure message if missing
    import bert
    import tensorflow.compat.v1 as tf_v1

    path = bert.__path__[0] + "/run_squad.py"
    spec = importlib.util.spec_from_file_location("google_run_squad", path)
    module = importlib.util.module_from_spec(spec)
    own_flags = _OwnFlags()
    with _swapped(tf_v1, "flags", own_flags), \
            _stand_in_modules(bert, ["modeling", "optimization"]):
        spec.loader.exec_module(module)
    own_flags.FLAGS(["run_squad.py"])  # parsed: every flag at Google's default
    return module


def write_squad_json(path, cases):
    """A SQuAD-format file: one paragraph per (qas_id, question, context)."""
    data = [{"title": f"case {qas_id}", "paragraphs": [
        {"context": context, "qas": [{"id": qas_id, "question": question, "answers": []}]}]}
        for qas_id, question, context in cases]
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"version": "1.1", "data": data}, f, ensure_ascii=False)


def google_features(cases, vocab_file, do_lower_case, max_seq_length, doc_stride,
                    max_query_length, workdir):
    """Google's examples and prediction features for (qas_id, question,
    context) triples, read back from a SQuAD file as run_squad.py reads one."""
    squad = google_run_squad()
    path = f"{workdir}/cases.json"
    write_squad_json(path, cases)
    examples = squad.read_squad_examples(path, is_training=False)
    tokenizer = squad.tokenization.FullTokenizer(str(vocab_file), do_lower_case=do_lower_case)
    features = []
    squad.convert_examples_to_features(examples, tokenizer, max_seq_length, doc_stride,
                                       max_query_length, is_training=False,
                                       output_fn=features.append)
    return examples, features


def google_predictions(examples, features, results, n_best_size, max_answer_length,
                       do_lower_case, workdir, version_2_with_negative=False,
                       null_score_diff_threshold=0.0):
    """Google's write_predictions on `results` (RawResult per feature):
    (predictions, nbest, null_odds) as read back from the JSON files it
    writes (null_odds is None for SQuAD 1.1)."""
    squad = google_run_squad()
    flag_values = squad.FLAGS
    flag_values.version_2_with_negative = version_2_with_negative
    flag_values.null_score_diff_threshold = null_score_diff_threshold
    names = [f"{workdir}/{name}.json" for name in ("predictions", "nbest", "null_odds")]
    squad.write_predictions(examples, features, results, n_best_size, max_answer_length,
                            do_lower_case, *names)
    loaded = []
    for name in names:
        try:
            with open(name, encoding="utf-8") as f:
                loaded.append(json.load(f))
        except FileNotFoundError:
            loaded.append(None)
    return tuple(loaded)
