"""Predictions from logits against Google's write_predictions (bert-tensorflow
1.0.4, loaded by tests/_google_squad.py): the same random logits for every
window of the shipped SQuAD slice, at a length that cuts paragraphs into many
windows, give the same predictions.json, nbest_predictions.json and
null_odds.json for SQuAD 1.1 and 2.0 (with and without a threshold). Where
Google's code has no answer (no valid span: "empty" for 1.1, a crash for 2.0)
ours answers ""."""

import json

import numpy as np
import pytest

from _google_squad import RawResult, google_run_squad
from bert_tf import squad_data, squad_postprocess, tokenization
from conftest import TEST_DATA, UNCASED_VOCAB

SLICE = TEST_DATA / "squad" / "dev-v1.1-slice.json"
WINDOWS = {"max_seq_length": 128, "doc_stride": 48, "max_query_length": 32}
RUNS = [
    {"version_2_with_negative": False, "null_score_diff_threshold": 0.0, "n_best_size": 20,
     "max_answer_length": 30},
    {"version_2_with_negative": True, "null_score_diff_threshold": 0.0, "n_best_size": 20,
     "max_answer_length": 30},
    {"version_2_with_negative": True, "null_score_diff_threshold": -1.5, "n_best_size": 20,
     "max_answer_length": 30},
    # No span is short enough: Google writes "empty" (1.1) or fails (2.0).
    {"version_2_with_negative": False, "null_score_diff_threshold": 0.0, "n_best_size": 20,
     "max_answer_length": 0},
    {"version_2_with_negative": True, "null_score_diff_threshold": 0.0, "n_best_size": 20,
     "max_answer_length": 0},
]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("google_predictions")
    # The slice's first article (108 questions) is enough here.
    squad = json.loads(SLICE.read_text(encoding="utf-8"))
    squad_file = tmp / "article.json"
    squad_file.write_text(json.dumps({"data": squad["data"][:1], "version": "1.1"}))
    tokenizer = tokenization.FullTokenizer(UNCASED_VOCAB, do_lower_case=True)
    examples = squad_data.read_squad_examples(squad_file, is_training=False)
    features = squad_data.convert_examples_to_features(examples, tokenizer, is_training=False,
                                                       **WINDOWS)
    rng = np.random.default_rng(7)
    shape = (len(features), WINDOWS["max_seq_length"])
    # float32, as the model's outputs; [CLS] a little higher so that some
    # SQuAD 2.0 answers are null and some not.
    start = rng.normal(size=shape).astype(np.float32)
    end = rng.normal(size=shape).astype(np.float32)
    start[:, 0] += 3.0
    end[:, 0] += 3.0
    google = google_run_squad()
    g_tokenizer = google.tokenization.FullTokenizer(str(UNCASED_VOCAB), do_lower_case=True)
    g_examples = google.read_squad_examples(str(squad_file), False)
    g_features = []
    google.convert_examples_to_features(g_examples, g_tokenizer, WINDOWS["max_seq_length"],
                                        WINDOWS["doc_stride"], WINDOWS["max_query_length"],
                                        False, g_features.append)
    assert len(g_features) == len(features)
    results = [RawResult(f.unique_id, [float(x) for x in start[i]], [float(x) for x in end[i]])
               for i, f in enumerate(g_features)]
    outcomes = []
    for i, run in enumerate(RUNS):
        folder = tmp / f"google_{i}"
        folder.mkdir()
        files = [str(folder / name) for name in squad_postprocess.PREDICTION_FILES]
        google.FLAGS.version_2_with_negative = run["version_2_with_negative"]
        google.FLAGS.null_score_diff_threshold = run["null_score_diff_threshold"]
        try:
            google.write_predictions(g_examples, g_features, results, run["n_best_size"],
                                     run["max_answer_length"], True, *files)
            outcomes.append({"files": files})
        except Exception as error:  # the failure documented below
            outcomes.append({"error": f"{type(error).__name__}: {error}"})
        finally:
            google.FLAGS.version_2_with_negative = False
            google.FLAGS.null_score_diff_threshold = 0.0
    return examples, features, start, end, outcomes, tmp


_OURS = {}


def _ours(setup, run, index):
    if index in _OURS:
        return _OURS[index]
    examples, features, start, end, _, tmp = setup
    outputs = squad_postprocess.compute_predictions(
        examples, features, start, end, run["n_best_size"], run["max_answer_length"],
        do_lower_case=True, version_2_with_negative=run["version_2_with_negative"],
        null_score_diff_threshold=run["null_score_diff_threshold"])
    folder = tmp / f"ours_{index}"
    squad_postprocess.write_predictions(str(folder), *outputs)
    _OURS[index] = outputs, folder
    return outputs, folder


@pytest.mark.parametrize("index", [0, 1, 2])
def test_files_equal_googles(setup, index):
    google = setup[4][index]
    _, folder = _ours(setup, RUNS[index], index)
    names = ["predictions.json", "nbest_predictions.json"]
    if RUNS[index]["version_2_with_negative"]:
        names.append("null_odds.json")
    else:
        assert not (folder / "null_odds.json").exists()
    for name, theirs in zip(names, google["files"]):
        # Byte for byte: same keys, order, floats and 4-space layout.
        assert (folder / name).read_text() == open(theirs).read(), name


def test_the_comparison_covers_null_answers_and_many_windows(setup):
    examples, features = setup[:2]
    (v1, _, _), _ = _ours(setup, RUNS[0], 0)
    (v2, nbest, odds), _ = _ours(setup, RUNS[1], 1)
    assert len(features) > 2 * len(examples)
    nulls = sum(1 for text in v2.values() if text == "")
    assert 10 < nulls < len(v2) - 10
    # Some answers are trimmed to the predicted wordpieces inside a word.
    words = {word for example in examples for word in example.doc_tokens}
    assert sum(1 for text in v1.values() if text.split()[-1] not in words) > 3
    assert all(abs(sum(e["probability"] for e in entries) - 1) < 1e-9 for entries in nbest.values())


def test_no_valid_span_answers_empty_where_google_does_not(setup):
    google_v1, google_v2 = setup[4][3], setup[4][4]
    assert "error" in google_v2 and "NoneType" in google_v2["error"]
    google_answers = json.load(open(google_v1["files"][0]))
    assert set(google_answers.values()) == {"empty"}
    (v1, nbest, _), _ = _ours(setup, RUNS[3], 3)
    assert set(v1.values()) == {""} and set(v1) == set(google_answers)
    assert all(entries == [{"text": "", "probability": 1.0, "start_logit": 0.0,
                            "end_logit": 0.0}] for entries in nbest.values())
    (v2, _, odds), _ = _ours(setup, RUNS[4], 4)
    assert set(v2.values()) == {""}
    assert set(odds.values()) == {squad_postprocess.NO_SPAN_ODDS}


def test_get_final_text_by_hand():
    final = squad_postprocess.get_final_text
    assert final("steve smith", "Steve Smith's", True) == "Steve Smith"
    # Accents stripped in the prediction, kept in the answer.
    assert final("jose", "(José)", True) == "José"
    # Cased model: the prediction must match the case to be found.
    assert final("John", "John's", False) == "John"
    # Not found: the whole span of words.
    assert final("xyz", "Steve Smith's", True) == "Steve Smith's"


def test_question_without_windows_answers_empty():
    example = squad_data.SquadExample(qas_id="q", question_text="Who?", doc_tokens=[])
    predictions, nbest, odds = squad_postprocess.compute_predictions(
        [example], [], np.zeros((0, 8)), np.zeros((0, 8)), version_2_with_negative=True)
    assert predictions == {"q": ""} and odds == {"q": squad_postprocess.NO_SPAN_ODDS}
