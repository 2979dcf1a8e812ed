"""The SQuAD answering SavedModel against Google's own run_squad.py.

A tiny span model (random weights, fixed seed) is exported once. Google's
read_squad_examples + convert_examples_to_features (bert-tensorflow 1.0.4)
make the features of the same questions and contexts, the same model gives
their logits, and Google's write_predictions turns them into the reference
answer text. Character offsets are derived from that text: the span
Google's best prediction covers (found by its start and end logits) gives
the words, the text's place among them gives the characters.

Contexts: every question of the SQuAD v1.1 dev slice in tests/data/squad,
and hand-written paragraphs with the characters that make get_final_text
fall back (decomposed accents, a zero-width space, a no-break space inside a
word, Hangul, a dotted capital I), tabs, line breaks, U+202F, CJK and
punctuation.
"""

import copy
import json
import os
import re
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from _google_squad import RawResult, google_features, google_predictions, google_run_squad
from bert_tf import modeling, squad_serving, text_graph
from conftest import TEST_DATA, UNCASED_VOCAB

# Short windows: most dev paragraphs span several of them.
SETTINGS = dict(max_seq_length=64, doc_stride=24, max_query_length=16, max_answer_length=12,
                n_best_size=8)

TRICKY = (
    "Steve Smith's dog (1895-1943) went\u202fhome.  The Caf\u00e9 d\u00e9j\u00e0 vu was na\u00efve;"
    " the Cafe\u0301 spelled apart was not.\tNew\n\nYork\t\tCity lies 10\u00a0km away, "
    "zero\u200bwidth joins. \u6771\u4eac\u306f\u65e5\u672c\u306e\u9996\u90fd\u3067\u3059\u3002"
    " \u0130stanbul and \uc11c\uc6b8\uc740 \ud55c\uad6d\uc758 \uc218\ub3c4\uc774\ub2e4. "
    "Ab-ab ab-AB, \u00c5ngstr\u00f6m \u212b \u2014 \"quoted\" [UNK] words\u2026"
    " I \u2764 NY \U0001F600!"
    " Japanese electronics industry is the largest in the world; "
    "Mr.\u00a0O'Neil's 3.5% rate, e.g. x=y+z.")
TRICKY_QUESTIONS = [
    "Who was Steve Smith?", "Where is the Caf\u00e9?", "How far away is New York?",
    "What is the capital of Japan?", "Which city is in Turkey?", "What is the capital of Korea?",
    "What is quoted?", "Which industry is the largest?", "What rate did O'Neil have?",
    "", "a question with many, many words " * 6]


class SpanModel(keras.Model):
    """Encoder + Dense(2): start and end logits, the answering contract."""

    def __init__(self, encoder):
        super().__init__()
        self.encoder = encoder
        self.head = keras.layers.Dense(
            2, kernel_initializer=keras.initializers.RandomNormal(stddev=1.0, seed=7))

    def call(self, inputs, training=False):
        logits = self.head(self.encoder(inputs, training=training)["sequence_output"])
        return {"start_logits": logits[..., 0], "end_logits": logits[..., 1]}


def _cases():
    squad = json.loads((TEST_DATA / "squad" / "dev-v1.1-slice.json").read_text("utf-8"))
    cases = [(qa["id"], qa["question"], paragraph["context"])
             for article in squad["data"] for paragraph in article["paragraphs"]
             for qa in paragraph["qas"]]
    cases += [(f"tricky{i}", q, TRICKY) for i, q in enumerate(TRICKY_QUESTIONS)]
    # Contexts far shorter than a window: mostly no valid span among the
    # best start and end positions, which fall on padding.
    cases += [(f"short{i}{j}", q, context) for i, q in enumerate(TRICKY_QUESTIONS)
              for j, context in enumerate(["Yes", "Paris"])]
    return cases


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(1)
    config = modeling.BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2,
                                 num_attention_heads=4, intermediate_size=64,
                                 max_position_embeddings=64)
    span_model = SpanModel(modeling.BertEncoder(config))
    span_model(modeling.dummy_inputs(1, 8))
    return span_model


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("squad_serving")


@pytest.fixture(scope="module")
def google(model, workdir):
    """Google's examples, features and the model's logits on them."""
    cases = _cases()
    examples, features = google_features(
        cases, UNCASED_VOCAB, True, SETTINGS["max_seq_length"], SETTINGS["doc_stride"],
        SETTINGS["max_query_length"], workdir)
    inputs = {name: tf.constant([getattr(f, field) for f in features], tf.int32)
              for name, field in (("input_word_ids", "input_ids"), ("input_mask", "input_mask"),
                                  ("input_type_ids", "segment_ids"))}
    logits = model(inputs, training=False)
    results = [RawResult(f.unique_id, [float(x) for x in start], [float(x) for x in end])
               for f, start, end in zip(features, logits["start_logits"].numpy(),
                                        logits["end_logits"].numpy())]
    return cases, examples, features, results


@pytest.fixture(scope="module")
def exported(model, workdir):
    return squad_serving.export_squad_answerer(
        model, str(workdir / "answerer"), vocab_file=str(UNCASED_VOCAB), do_lower_case=True,
        **SETTINGS)


@pytest.fixture(scope="module")
def answerer(exported):
    return squad_serving.load(exported)


@pytest.fixture(scope="module")
def served(answerer, google):
    cases = google[0]
    out = answerer.signatures["answer"](question=tf.constant([c[1] for c in cases]),
                                        context=tf.constant([c[2] for c in cases]))
    return {key: value.numpy() for key, value in out.items()}


def _word_starts(context):
    """Code point where each of Google's whitespace-separated words starts."""
    starts, previous_white = [], True
    for i, char in enumerate(context):
        white = char in " \t\r\n\u202f"
        if not white and previous_white:
            starts.append(i)
        previous_white = white
    return starts


def _expected_offsets(example, features, nbest_top, context, text):
    """Google's answer `text` as [start, end) code points of `context`: the
    words of the best prediction (the span whose start and end logits are
    those of the n-best list's first entry), then the text's place in them."""
    spans = {(f.token_to_orig_map[s], f.token_to_orig_map[e])
             for f, result in features
             for s in f.token_to_orig_map for e in f.token_to_orig_map
             if result.start_logits[s] == nbest_top["start_logit"]
             and result.end_logits[e] == nbest_top["end_logit"] and s <= e}
    assert len(spans) == 1, spans
    (first, last), = spans
    starts = _word_starts(context)
    # Each code point of the words joined by spaces -> its place in context.
    joined, where = "", []
    for word in range(first, last + 1):
        if word > first:
            joined += " "
            where.append(None)
        joined += example.doc_tokens[word]
        where.extend(range(starts[word], starts[word] + len(example.doc_tokens[word])))
    at = joined.find(text)
    assert at >= 0 and joined.count(text) == 1, (joined, text)
    return where[at], where[at + len(text) - 1] + 1


def test_answers_equal_googles_write_predictions(google, served, workdir):
    cases, examples, features, results = google
    predictions, nbest, _ = google_predictions(
        examples, features, results, SETTINGS["n_best_size"], SETTINGS["max_answer_length"],
        True, workdir)
    by_example = {}
    for feature, result in zip(features, results):
        by_example.setdefault(feature.example_index, []).append((feature, result))
    placeholders = partial_words = differing = 0
    for i, (example, (qas_id, _, context)) in enumerate(zip(examples, cases)):
        answer = served["answer"][i].decode("utf-8")
        start, end = served["start_char"][i], served["end_char"][i]
        top = nbest[qas_id][0]
        if len(nbest[qas_id]) == 1 and top == {"text": "empty", "probability": 1.0,
                                                "start_logit": 0.0, "end_logit": 0.0}:
            # Google's placeholder for "no valid span": here an empty answer.
            placeholders += 1
            assert (answer, start, end, served["score"][i]) == ("", -1, -1, -np.inf)
            continue
        if answer != predictions[qas_id]:
            differing += 1
            continue
        expected = _expected_offsets(example, by_example[i], top, context, answer)
        assert (start, end) == expected, (qas_id, answer, context[start:end])
        assert re.sub("[ \t\r\n\u202f]+", " ", context[start:end]) == answer
        assert served["score"][i] == pytest.approx(top["start_logit"] + top["end_logit"],
                                                   abs=1e-4)
        partial_words += not (start == 0 or context[start - 1] in " \t\r\n\u202f")
    assert differing == 0
    assert len(cases) == 428 and placeholders >= 5
    assert partial_words > 20  # get_final_text trimmed inside words that often
    # Several windows per question: the max-context rule was exercised.
    assert len(features) > 3 * len(cases)


@pytest.mark.parametrize("do_lower_case", [True, False])
def test_final_text_is_get_final_texts_on_every_short_span(google, do_lower_case):
    """Every span of up to 6 pieces of the hand-written paragraph."""
    squad = google_run_squad()
    example = next(e for e in google[1] if e.qas_id == "tricky0")
    tokenizer = squad.tokenization.FullTokenizer(str(UNCASED_VOCAB), do_lower_case=do_lower_case)
    pieces = [(word, piece) for word, text in enumerate(example.doc_tokens)
              for piece in tokenizer.tokenize(text)]
    preds, origs = [], []
    for start in range(len(pieces)):
        for end in range(start, min(start + 6, len(pieces))):
            # write_predictions' detokenization of the pieces, as Google writes it.
            text = " ".join(p for _, p in pieces[start:end + 1])
            preds.append(" ".join(text.replace(" ##", "").replace("##", "").strip().split()))
            origs.append(" ".join(example.doc_tokens[pieces[start][0]:pieces[end][0] + 1]))
    expected = [squad.get_final_text(p, o, do_lower_case) for p, o in zip(preds, origs)]
    graph_tokenizer = text_graph.GraphTokenizer(str(UNCASED_VOCAB), do_lower_case)
    first, last = squad_serving.final_text_span(graph_tokenizer, tf.constant(preds),
                                                tf.constant(origs))
    got = [o[a:b + 1] for o, a, b in zip(origs, first.numpy(), last.numpy())]
    assert got == expected
    # Both of get_final_text's outcomes occur, and trimming inside a word.
    fallback = sum(e == o for e, o in zip(expected, origs))
    assert 100 < fallback < len(expected) - 100


def _without_placeholders(google, workdir):
    """Google's inputs less the questions without any valid span, on which
    its write_predictions fails for SQuAD 2.0 (best_non_null_entry is None)."""
    cases, examples, features, results = google
    _, nbest, _ = google_predictions(examples, features, results, SETTINGS["n_best_size"],
                                     SETTINGS["max_answer_length"], True, workdir)
    kept = [i for i, c in enumerate(cases) if nbest[c[0]][0]["text"] != "empty"]
    new_index = {old: new for new, old in enumerate(kept)}
    kept_features, kept_results = [], []
    for feature, result in zip(features, results):
        if feature.example_index in new_index:
            feature = copy.copy(feature)
            feature.example_index = new_index[feature.example_index]
            kept_features.append(feature)
            kept_results.append(result)
    return kept, [examples[i] for i in kept], kept_features, kept_results


def test_null_answers_with_a_threshold(answerer, google, served, workdir):
    cases = google[0]
    kept, examples, features, results = _without_placeholders(google, workdir)
    # Google's null-score differences decide the threshold: half the
    # questions fall on each side of it.
    _, _, null_odds = google_predictions(
        examples, features, results, SETTINGS["n_best_size"], SETTINGS["max_answer_length"],
        True, workdir, version_2_with_negative=True)
    threshold = float(np.median(list(null_odds.values())))
    predictions, _, _ = google_predictions(
        examples, features, results, SETTINGS["n_best_size"], SETTINGS["max_answer_length"],
        True, workdir, version_2_with_negative=True, null_score_diff_threshold=threshold)
    # The exported SQuAD 1.1 answerer, switched to SQuAD 2.0 decisions.
    answerer.version_2_with_negative.assign(True)
    answerer.null_score_diff_threshold.assign(threshold)
    try:
        out = answerer.signatures["answer"](question=tf.constant([c[1] for c in cases]),
                                            context=tf.constant([c[2] for c in cases]))
    finally:
        answerer.version_2_with_negative.assign(False)
        answerer.null_score_diff_threshold.assign(0.0)
    out = {key: value.numpy() for key, value in out.items()}
    answers = [a.decode("utf-8") for a in out["answer"]]
    assert [answers[i] for i in kept] == [predictions[cases[i][0]] for i in kept]
    np.testing.assert_allclose(out["null_score_diff"][kept],
                               [null_odds[cases[i][0]] for i in kept], atol=1e-4)
    assert 150 < [answers[i] for i in kept].count("") < 250
    for i, answer in enumerate(answers):
        if answer:
            assert out["start_char"][i] == served["start_char"][i]
        else:  # a null answer, or no valid span at all (where Google fails)
            assert (out["start_char"][i], out["end_char"][i]) == (-1, -1)


def test_batches_of_any_mix_give_the_same_answers(answerer, served, google):
    cases = google[0]
    answer = answerer.signatures["answer"]
    picked = [0, 400, 401, 7, 405, 200]  # long and short contexts, long and empty questions
    for batch in ([picked[::-1]], [[i] for i in picked], [picked[:2], picked[2:]]):
        for indexes in batch:
            out = answer(question=tf.constant([cases[i][1] for i in indexes]),
                         context=tf.constant([cases[i][2] for i in indexes]))
            for key in ("answer", "start_char", "end_char"):
                assert list(out[key].numpy()) == [served[key][i] for i in indexes]


def test_empty_context_and_question(answerer):
    answer = answerer.signatures["answer"]
    out = answer(question=tf.constant(["What?", "", "Who?", ""]),
                 context=tf.constant(["", " \t\n\u202f ", "\u200b", ""]))
    # No words, or words without a single piece: no window, no answer.
    assert [a.decode() for a in out["answer"].numpy()] == ["", "", "", ""]
    assert out["start_char"].numpy().tolist() == [-1] * 4
    assert out["score"].numpy().tolist() == [-np.inf] * 4
    empty = answer(question=tf.constant([], tf.string), context=tf.constant([], tf.string))
    assert empty["answer"].shape == (0,)


def test_refuses_settings_google_refuses(model, workdir):
    with pytest.raises(ValueError, match="max_seq_length=20 must exceed max_query_length"):
        squad_serving.export_squad_answerer(
            model, str(workdir / "bad"), vocab_file=str(UNCASED_VOCAB), do_lower_case=True,
            max_seq_length=20, max_query_length=17)
    assert not (workdir / "bad").exists()


def test_fresh_process_with_tensorflow_and_tensorflow_text_only(exported, served, google):
    cases = google[0][395:406]
    script = f"""
import json, sys
import tensorflow as tf
import tensorflow_text  # registers the in-graph tokenizer's ops
answer = tf.saved_model.load({exported!r}).signatures["answer"]
cases = json.loads(sys.stdin.read())
out = answer(question=tf.constant([q for q, _ in cases]),
             context=tf.constant([c for _, c in cases]))
assert not any(name.startswith("bert_tf") for name in sys.modules)
print(json.dumps({{"answer": [a.decode("utf-8") for a in out["answer"].numpy()],
                  "start_char": out["start_char"].numpy().tolist()}}))
"""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run([sys.executable, "-c", script],
                            input=json.dumps([(q, c) for _, q, c in cases]),
                            capture_output=True, text=True, env=env, timeout=300,
                            cwd=os.path.dirname(exported))
    assert result.returncode == 0, result.stderr[-3000:]
    fresh = json.loads(result.stdout.strip().splitlines()[-1])
    assert fresh["answer"] == [a.decode("utf-8") for a in served["answer"][395:406]]
    assert fresh["start_char"] == served["start_char"][395:406].tolist()
