"""explain.py on SQuAD models: the chosen span against a brute-force search
over every window, completeness of integrated gradients for the start and
the end logit, the attributions against finite differences along the path,
and the script on a run_squad.py output folder (whose predictions.json is
the reference for the answer), JSON and HTML included."""

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from bert_tf import checkpoints, explain, modeling, pretrained, squad, squad_data, tokenization
from bert_tf import trainer
from conftest import TEST_DATA, UNCASED_VOCAB

REPO = Path(__file__).resolve().parents[1]
SLICE = TEST_DATA / "squad" / "dev-v1.1-slice.json"
CONFIG = modeling.BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2,
                             num_attention_heads=4, intermediate_size=64,
                             max_position_embeddings=128, initializer_range=0.2)
# Short windows so that the paragraph spans several of them.
LENGTHS = dict(max_seq_length=64, doc_stride=24, max_query_length=16)


@pytest.fixture(scope="module")
def paragraph():
    article = json.loads(SLICE.read_text(encoding="utf-8"))["data"][0]
    return article["paragraphs"][0]


@pytest.fixture(scope="module")
def tokenizer():
    return tokenization.FullTokenizer(str(UNCASED_VOCAB), do_lower_case=True)


@pytest.fixture(scope="module")
def model():
    # A wider initializer than BERT's 0.02: clearly non-linear along the path.
    keras.utils.set_random_seed(5)
    return squad.BertSpanLabeler(modeling.BertEncoder(CONFIG))


@pytest.fixture(scope="module")
def explained(model, tokenizer, paragraph):
    # n_best_size above the window length: every start/end pair is a candidate.
    explainer = explain.SpanExplainer(model, tokenizer, n_best_size=100, max_answer_length=12,
                                      ig_steps=32, **LENGTHS)
    question = paragraph["qas"][0]["question"]
    return explainer, explainer.explain(question, paragraph["context"])


def _window_logits(model, feature, max_seq_length):
    """The model called as run_squad.py predicts: one window, padded."""
    padded = feature.padded(max_seq_length)
    outputs = model({"input_word_ids": np.array([padded["input_ids"]], np.int32),
                     "input_mask": np.array([padded["input_mask"]], np.int32),
                     "input_type_ids": np.array([padded["segment_ids"]], np.int32)})
    n = len(feature.input_ids)
    return outputs["start_logits"].numpy()[0, :n], outputs["end_logits"].numpy()[0, :n]


def test_the_explained_span_is_the_best_valid_span_of_all_windows(explained, model, tokenizer,
                                                                   paragraph):
    explainer, e = explained
    _, features = explainer.windows(e.question, paragraph["context"])
    assert len(features) > 2 and e.windows == len(features)
    best = None
    # Google's rule written out: both ends in the context, the start in its
    # max-context window, end >= start, at most max_answer_length pieces.
    for index, feature in enumerate(features):
        starts, ends = _window_logits(model, feature, LENGTHS["max_seq_length"])
        for s in feature.token_to_orig_map:
            if not feature.token_is_max_context[s]:
                continue
            for t in feature.token_to_orig_map:
                if s <= t < s + 12:
                    score = starts[s] + ends[t]
                    if best is None or score > best[0]:
                        best = (score, index, s, t, starts[s], ends[t])
    _, window, start, end, start_logit, end_logit = best
    assert (e.window, e.answer_start, e.answer_end) == (window, start, end)
    assert e.start_logit == pytest.approx(start_logit, abs=1e-4)
    assert e.end_logit == pytest.approx(end_logit, abs=1e-4)
    assert e.tokens == features[window].tokens
    # The answer is the paragraph's own text for those wordpieces.
    assert e.answer and e.answer in paragraph["context"]
    pieces = "".join(t.replace("##", "") for t in e.tokens[start:end + 1])
    assert "".join(tokenizer.tokenize(e.answer)).replace("##", "") == pieces


def test_start_and_end_attributions_are_complete(explained):
    _, e = explained
    for which in ("start", "end"):
        scores = getattr(e, f"{which}_attributions")
        delta = getattr(e, f"{which}_logit") - getattr(e, f"{which}_logit_baseline")
        assert abs(delta) > 0.1  # a check with something to check
        assert sum(scores) == pytest.approx(delta, rel=0.05)
        assert len(scores) == len(e.tokens)
        # [CLS] and the [SEP]s are the same in input and baseline.
        for i, token in enumerate(e.tokens):
            if token in ("[CLS]", "[SEP]"):
                assert scores[i] == 0
    assert e.start_attributions != e.end_attributions


def test_attributions_equal_finite_differences_along_the_path(explained, model, tokenizer):
    """Per token i, IG is the path integral of d/dh f(p + h * d_i), d_i the
    token's own input-minus-baseline embedding: computed here by central
    differences through the model's layers (head written out as Google's
    `logits = sequence @ output_weights^T + output_bias`), on the same nodes,
    steps h and h/2 combined by Richardson extrapolation (error O(h^4))."""
    explainer, e = explained
    ids = tokenizer.convert_tokens_to_ids(e.tokens)
    baseline = [i if t in ("[CLS]", "[SEP]") else tokenizer.vocab["[PAD]"]
                for t, i in zip(e.tokens, ids)]
    types = np.array([e.segment_ids], np.int32)
    x = model.encoder.embeddings(np.array([ids], np.int32), types).numpy()[0]
    x0 = model.encoder.embeddings(np.array([baseline], np.int32), types).numpy()[0]
    weights = model.span_head.output_weights.numpy()
    bias = model.span_head.output_bias.numpy()
    alphas, quadrature = explain.path_nodes(32)
    n, h = len(ids), 1e-2

    def logits(points):
        mask = np.ones(points.shape[:2], np.int32)
        sequence = model.encoder.encode_embeddings(tf.constant(points, tf.float32),
                                                   mask)["sequence_output"].numpy()
        return sequence @ weights.T + bias  # [batch, seq, 2]

    def central_differences(step):
        found = {"start": np.zeros(n), "end": np.zeros(n)}
        for alpha, weight in zip(alphas, quadrature):
            point = x0 + alpha * (x - x0)
            shifted = np.repeat(point[np.newaxis], 2 * n, 0)
            for i in range(n):
                shifted[2 * i, i] += step * (x[i] - x0[i])
                shifted[2 * i + 1, i] -= step * (x[i] - x0[i])
            out = logits(shifted)
            for which, column, position in (("start", 0, e.answer_start),
                                            ("end", 1, e.answer_end)):
                values = out[:, position, column].astype(np.float64)
                found[which] += weight * (values[0::2] - values[1::2]) / (2 * step)
        return found

    coarse, fine = central_differences(h), central_differences(h / 2)
    reference = {k: (4 * fine[k] - coarse[k]) / 3 for k in coarse}
    for which in ("start", "end"):
        got = np.array(getattr(e, f"{which}_attributions"))
        scale = np.abs(reference[which]).max()
        assert scale > 0.05
        np.testing.assert_allclose(got, reference[which], atol=2e-3 * scale + 1e-4)


def test_html_marks_the_answer_in_both_rows_and_escapes_text():
    e = explain.SpanExplanation(
        question="<who>?", answer="a & b", tokens=["[CLS]", "<who>", "?", "[SEP]", "a", "&",
                                                 "##b", "c", "[SEP]"],
        segment_ids=[0, 0, 0, 0, 1, 1, 1, 1, 1], window=0, windows=1, answer_start=4,
        answer_end=6, start_attributions=[0, 0.2, 0, 0, 1.0, -0.5, 0, 0, 0],
        end_attributions=[0, 0, 0, 0, 0, 0.3, 0.6, 0, 0], start_logit=2.0,
        start_logit_baseline=1.3, end_logit=1.0, end_logit_baseline=0.1)
    page = explain.to_html([e])
    assert "<who>" not in page and "&lt;who&gt;" in page
    assert page.count('class="tok answer"') == 2 * 3  # a, &, ##b in the start and end rows
    assert page.count('class="tok"') == 2 * 6
    assert "rgba(220,30,30,0.500)" in page  # the start row's -0.5, half its largest score
    assert "a &amp; b" in page


def test_script_explains_a_run_squad_output_folder(tmp_path, paragraph, tokenizer):
    model_dir, out = tmp_path / "tiny", tmp_path / "run"
    model_dir.mkdir()
    keras.utils.set_random_seed(3)
    CONFIG.to_json_file(str(model_dir / "bert_config.json"))
    (model_dir / "vocab.txt").write_bytes(UNCASED_VOCAB.read_bytes())
    checkpoints.save_google_checkpoint(modeling.BertEncoder(CONFIG),
                                       str(model_dir / "bert_model.ckpt"))
    qa = paragraph["qas"][1]
    train = {"version": "1.1", "data": [{"title": "t", "paragraphs": [
        {"context": paragraph["context"], "qas": paragraph["qas"][:4]}]}]}
    predict = {"version": "1.1", "data": [{"title": "t", "paragraphs": [
        {"context": paragraph["context"], "qas": [qa]}]}]}
    (tmp_path / "train.json").write_text(json.dumps(train))
    (tmp_path / "predict.json").write_text(json.dumps(predict))
    squad.run_squad(squad.SquadSettings(
        output_dir=str(out), source=pretrained.resolve(str(model_dir)),
        train_file=str(tmp_path / "train.json"), predict_file=str(tmp_path / "predict.json"),
        do_train=True, do_predict=True, train_batch_size=4, num_train_epochs=1.0,
        training=trainer.TrainingOptions(seed=1), **LENGTHS))
    want = json.loads((out / "predictions.json").read_text())[qa["id"]]

    out_json, out_html = tmp_path / "e.json", tmp_path / "e.html"
    result = subprocess.run(
        [sys.executable, str(REPO / "explain.py"), f"--output_dir={out}",
         f"--question={qa['question']}", f"--context={paragraph['context']}",
         "--ig_steps=20",  # windows as the run trained: from its run_identity.json
         f"--output_json={out_json}", f"--output_html={out_html}"],
        cwd=REPO, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES=""),
        capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    [got] = json.loads(out_json.read_text())
    assert got["answer"] == want  # Google's answer choice, as run_squad.py --do_predict
    question = tokenizer.tokenize(qa["question"])
    tokens, segments = got["tokens"], got["segment_ids"]
    assert tokens[:len(question) + 2] == ["[CLS]", *question, "[SEP]"]
    assert segments == [0] * (len(question) + 2) + [1] * (len(tokens) - len(question) - 2)
    context = tokenizer.tokenize(paragraph["context"])
    window = tokens[len(question) + 2:-1]
    assert any(context[i:i + len(window)] == window for i in range(len(context)))
    assert got["answer_tokens"] == tokens[got["answer_start"]:got["answer_end"] + 1]
    assert got["segment_ids"][got["answer_start"]] == 1
    for which in ("start", "end"):
        assert got["completeness"][which]["relative_error"] < 0.05
    page = out_html.read_text()
    assert page.count('class="tok answer"') == 2 * len(got["answer_tokens"])
    assert "integrated gradients of the start and of the end logit" in page

    # The trained weights, read here, give the logits the JSON reports.
    trained = squad.BertSpanLabeler(modeling.BertEncoder(CONFIG))
    tf.train.Checkpoint(model=trained).read(tf.train.latest_checkpoint(str(out))).expect_partial()
    feature = squad_data.SquadFeatures(0, 0, 0, tokens, {}, {},
                                       tokenizer.convert_tokens_to_ids(tokens), segments)
    starts, ends = _window_logits(trained, feature, LENGTHS["max_seq_length"])
    assert got["start_logit"] == pytest.approx(float(starts[got["answer_start"]]), abs=1e-4)
    assert got["end_logit"] == pytest.approx(float(ends[got["answer_end"]]), abs=1e-4)


def test_a_classifier_folder_refuses_a_question(tmp_path):
    (tmp_path / "run_identity.json").write_text(json.dumps(
        {"task_name": "sst-2", "num_labels": 2, "max_seq_length": 32}))
    with pytest.raises(ValueError, match="'sst-2' classifier run, not a run_squad.py one"):
        explain.load_span_labeler(None, str(tmp_path))


def test_a_google_squad_checkpoint_and_config_load_with_their_span_layer(tmp_path, model,
                                                                         tokenizer):
    """Without --output_dir: --init_checkpoint + --bert_config_file of a
    fine-tuned Google SQuAD checkpoint (cls/squad/output_weights, _bias)."""
    prefix = checkpoints.save_google_checkpoint(model, str(tmp_path / "model.ckpt"))
    CONFIG.to_json_file(str(tmp_path / "config.json"))
    names = dict(tf.train.list_variables(prefix))
    assert names["cls/squad/output_weights"] == [2, CONFIG.hidden_size]
    source = pretrained.resolve(prefix, str(tmp_path / "config.json"), str(UNCASED_VOCAB), True)
    loaded, identity = explain.load_span_labeler(source)
    assert identity == {}
    reader = tf.train.load_checkpoint(prefix)
    np.testing.assert_array_equal(loaded.span_head.output_weights.numpy(),
                                  reader.get_tensor("cls/squad/output_weights"))
    np.testing.assert_array_equal(loaded.span_head.output_bias.numpy(),
                                  reader.get_tensor("cls/squad/output_bias"))
    question, context = "who built it?", "It was built by the Romans in the second century."
    got = explain.SpanExplainer(loaded, tokenizer, ig_steps=4, **LENGTHS).explain(question,
                                                                                  context)
    want = explain.SpanExplainer(model, tokenizer, ig_steps=4, **LENGTHS).explain(question,
                                                                                  context)
    assert (got.answer, got.answer_start, got.answer_end) == (want.answer, want.answer_start,
                                                              want.answer_end)
    assert got.start_logit == pytest.approx(want.start_logit, abs=1e-5)
