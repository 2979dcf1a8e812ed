"""SQuAD examples and features against Google's run_squad.py (bert-tensorflow
1.0.4, loaded by tests/_google_squad.py) on the shipped slice of the SQuAD
v1.1 dev set: every window of every question, in training and prediction,
at Google's default lengths and at lengths that cut paragraphs into many
windows; SQuAD 2.0 training on unanswerable questions built from the 1.1
data; and the bad inputs, each named by file and question id."""

import json

import numpy as np
import pytest

from _google_squad import google_run_squad
from bert_tf import squad_data, tokenization
from conftest import TEST_DATA, UNCASED_VOCAB

SLICE = TEST_DATA / "squad" / "dev-v1.1-slice.json"
CONFIGS = [
    {"max_seq_length": 384, "doc_stride": 128, "max_query_length": 64, "is_training": False},
    {"max_seq_length": 128, "doc_stride": 32, "max_query_length": 64, "is_training": True},
    # Short query limit: questions are truncated, as Google truncates them.
    {"max_seq_length": 64, "doc_stride": 16, "max_query_length": 8, "is_training": True},
]


def unanswerable_slice(path):
    """SQuAD 2.0-style data built from the 1.1 slice (no real 2.0 data ships):
    every third question of each article is asked about a paragraph of the
    next article instead, marked "is_impossible" with no answers; the others
    keep their paragraph and their first answer."""
    articles = json.loads(SLICE.read_text(encoding="utf-8"))["data"]
    data = []
    for a, article in enumerate(articles):
        other = articles[(a + 1) % len(articles)]["paragraphs"]
        paragraphs = []
        for p, paragraph in enumerate(article["paragraphs"]):
            kept = []
            moved = []
            for q, qa in enumerate(paragraph["qas"]):
                if q % 3 == 2:
                    moved.append({"id": qa["id"], "question": qa["question"], "answers": [],
                                  "is_impossible": True})
                else:
                    kept.append({"id": qa["id"], "question": qa["question"],
                                 "answers": qa["answers"][:1], "is_impossible": False})
            paragraphs.append({"context": paragraph["context"], "qas": kept})
            if moved:
                paragraphs.append({"context": other[p % len(other)]["context"], "qas": moved})
        data.append({"title": article["title"], "paragraphs": paragraphs})
    path.write_text(json.dumps({"version": "v2.0", "data": data}), encoding="utf-8")
    return path


def single_answer_slice(path):
    """The slice in the training format Google's code asks for: each
    question keeps only its first reference answer."""
    squad = json.loads(SLICE.read_text(encoding="utf-8"))
    for article in squad["data"]:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                qa["answers"] = qa["answers"][:1]
    path.write_text(json.dumps(squad), encoding="utf-8")
    return path


def _google(squad_file, config):
    """Google's examples and features for one configuration."""
    google = google_run_squad()
    tokenizer = google.tokenization.FullTokenizer(str(UNCASED_VOCAB), do_lower_case=True)
    google.FLAGS.version_2_with_negative = config.get("version_2_with_negative", False)
    try:
        examples = google.read_squad_examples(str(squad_file), config["is_training"])
        features = []
        google.convert_examples_to_features(
            examples, tokenizer, config["max_seq_length"], config["doc_stride"],
            config["max_query_length"], config["is_training"], features.append)
    finally:
        google.FLAGS.version_2_with_negative = False
    return {
        "examples": [{"qas_id": e.qas_id, "doc_tokens": e.doc_tokens,
                      "start_position": e.start_position, "end_position": e.end_position,
                      "is_impossible": e.is_impossible} for e in examples],
        "features": [{
            "unique_id": f.unique_id, "example_index": f.example_index,
            "doc_span_index": f.doc_span_index, "tokens": f.tokens,
            "token_to_orig_map": f.token_to_orig_map,
            "token_is_max_context": f.token_is_max_context, "input_ids": f.input_ids,
            "input_mask": f.input_mask, "segment_ids": f.segment_ids,
            "start_position": f.start_position, "end_position": f.end_position}
            for f in features]}


@pytest.fixture(scope="module")
def google_features(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("google_squad")
    train = single_answer_slice(tmp / "train.json")
    configs = [(train if c["is_training"] else SLICE, c) for c in CONFIGS]
    configs.append((unanswerable_slice(tmp / "v2.json"),
                    dict(CONFIGS[1], version_2_with_negative=True)))
    return [(squad_file, config, _google(squad_file, config)) for squad_file, config in configs]


def _ours(squad_file, config):
    tokenizer = tokenization.FullTokenizer(UNCASED_VOCAB, do_lower_case=True)
    examples = squad_data.read_squad_examples(
        squad_file, config["is_training"], config.get("version_2_with_negative", False))
    features = squad_data.convert_examples_to_features(
        examples, tokenizer, config["max_seq_length"], config["doc_stride"],
        config["max_query_length"], config["is_training"])
    return examples, features


def test_every_window_equals_googles(google_features):
    for squad_file, config, google in google_features:
        examples, features = _ours(squad_file, config)
        assert [e.qas_id for e in examples] == [e["qas_id"] for e in google["examples"]]
        for ours, theirs in zip(examples, google["examples"]):
            assert ours.doc_tokens == theirs["doc_tokens"]
            assert (ours.start_position, ours.end_position, ours.is_impossible) == (
                theirs["start_position"], theirs["end_position"], theirs["is_impossible"])
        assert len(features) == len(google["features"]), config
        for ours, theirs in zip(features, google["features"]):
            padded = ours.padded(config["max_seq_length"])
            got = {"unique_id": ours.unique_id, "example_index": ours.example_index,
                   "doc_span_index": ours.doc_span_index, "tokens": ours.tokens,
                   "token_to_orig_map": ours.token_to_orig_map,
                   "token_is_max_context": ours.token_is_max_context,
                   "input_ids": padded["input_ids"], "input_mask": padded["input_mask"],
                   "segment_ids": padded["segment_ids"],
                   "start_position": ours.start_position, "end_position": ours.end_position}
            assert got == theirs, (config, ours.unique_id)


def test_the_comparison_covers_many_windows_truncation_and_answers_outside(google_features):
    by_config = {json.dumps(c, sort_keys=True): r for f, c, r in google_features}
    short = by_config[json.dumps(CONFIGS[1], sort_keys=True)]
    windows = np.bincount([f["example_index"] for f in short["features"]])
    assert windows.max() >= 5 and len(short["features"]) > 2 * len(short["examples"])
    # Training windows that do not hold the answer point at [CLS]...
    assert sum(f["start_position"] == 0 for f in short["features"]) > 100
    # ...and the others at the answer.
    assert sum(f["start_position"] > 0 for f in short["features"]) >= len(short["examples"])
    truncating = by_config[json.dumps(CONFIGS[2], sort_keys=True)]
    assert max(f["segment_ids"].count(0) - f["input_mask"].count(0)
               for f in truncating["features"]) == 8 + 2  # [CLS] question [SEP]
    v2 = [r for f, c, r in google_features if c.get("version_2_with_negative")][0]
    impossible = [e for e in v2["examples"] if e["is_impossible"]]
    assert len(impossible) > 90


def test_doc_stride_windows_and_max_context_by_hand():
    # Google's comment: "the man went to the store and bought a gallon of milk",
    # spans A (0-4), B (3-7), C (6-10) and the rest (9-11): "bought" (7) has
    # min(4, 0) = 0 context in B and min(1, 3) = 1 in C, so C scores it.
    spans = squad_data.window_starts(12, 5, 3)
    assert spans == [(0, 5), (3, 5), (6, 5), (9, 3)]
    best = squad_data.max_context_windows(spans, 12)
    assert best[7] == 2
    # "to" (3): min(3, 1) = 1 in A against min(0, 4) = 0 in B.
    assert best[3] == 0
    # "of" (10): min(4, 0) in C against min(1, 1) in D: D.
    assert best[10] == 3


def test_improve_answer_span_finds_the_answers_wordpieces():
    tokenizer = tokenization.FullTokenizer(UNCASED_VOCAB, do_lower_case=True)
    pieces = tokenizer.tokenize("The leader was John Smith (1895-1943).")
    start = pieces.index("(")
    assert squad_data.improve_answer_span(pieces, start, len(pieces) - 1, tokenizer, "1895") == (
        pieces.index("1895"),) * 2
    # "Japan" inside "Japanese": the whole word stays the answer.
    pieces = tokenizer.tokenize("The Japanese electronics industry")
    assert squad_data.improve_answer_span(pieces, 1, 1, tokenizer, "Japan") == (1, 1)


def _squad(tmp_path, qas, context="The cat sat on the mat.", name="train.json"):
    path = tmp_path / name
    path.write_text(json.dumps({"version": "1.1", "data": [{"title": "t", "paragraphs": [
        {"context": context, "qas": qas}]}]}), encoding="utf-8")
    return path


def test_answers_that_cannot_be_found_are_counted_and_skipped(tmp_path):
    qas = [{"id": "good", "question": "Who sat?", "answers": [{"text": "cat", "answer_start": 4}]},
           {"id": "elsewhere", "question": "Who?", "answers": [{"text": "cat", "answer_start": 15}]},
           {"id": "outside", "question": "Who?", "answers": [{"text": "cat", "answer_start": 90}]},
           {"id": "blank", "question": "Who?", "answers": [{"text": " ", "answer_start": 3}]}]
    skipped = []
    examples = squad_data.read_squad_examples(_squad(tmp_path, qas), True, skipped=skipped)
    assert [e.qas_id for e in examples] == ["good"]
    assert skipped == [("elsewhere", "could not find answer"),
                       ("outside", "answer outside the context"), ("blank", "empty answer")]
    # Prediction needs no answers: every question is kept.
    assert len(squad_data.read_squad_examples(_squad(tmp_path, qas), False)) == 4


def test_empty_context_is_skipped_in_training_and_kept_for_prediction(tmp_path):
    qas = [{"id": "q", "question": "Who?", "answers": [{"text": "x", "answer_start": 0}]}]
    path = _squad(tmp_path, qas, context="  ")
    skipped = []
    assert squad_data.read_squad_examples(path, True, skipped=skipped) == []
    assert skipped == [("q", "empty context")]
    (example,) = squad_data.read_squad_examples(path, False)
    tokenizer = tokenization.FullTokenizer(UNCASED_VOCAB, do_lower_case=True)
    assert squad_data.convert_examples_to_features([example], tokenizer, 64, 16, 8, False) == []


@pytest.mark.parametrize("content, message", [
    (b'{"data": [', "train.json:1: not valid JSON"),
    (b'{"version": "1.1"}', 'train.json: not a SQuAD file (no "data" list'),
    (json.dumps({"data": [{"paragraphs": [{"context": "a b", "qas": [
        {"id": "q7", "question": "Which?"}]}]}]}).encode(), "train.json: question id 'q7': no \"answers\""),
    (json.dumps({"data": [{"paragraphs": [{"context": "a b", "qas": [
        {"id": "q8", "question": "Which?", "answers": []}]}]}]}).encode(),
     "train.json: question id 'q8': \"answers\" is empty"),
    (b'{"data": [{"paragraphs": [{"context": "caf\xe9", "qas": [{"id": "q9", "question": "?"}]}]}]}',
     "before question id 'q9'"),
])
def test_bad_training_files_are_named_by_file_and_question(tmp_path, content, message):
    path = tmp_path / "train.json"
    path.write_bytes(content)
    with pytest.raises(squad_data.SquadDataError) as error:
        squad_data.read_squad_examples(path, is_training=True)
    assert message in str(error.value) and str(tmp_path) in str(error.value)
    assert "\n" not in str(error.value)


def test_invalid_utf8_names_the_line(tmp_path):
    path = tmp_path / "dev.json"
    path.write_bytes(b'{"data": [{"paragraphs": [\n{"context": "caf\xe9",\n'
                     b'"qas": [{"id": "q9", "question": "?"}]}]}]}')
    with pytest.raises(squad_data.SquadDataError, match=r"dev.json:2: invalid UTF-8"):
        squad_data.read_squad_file(path)
