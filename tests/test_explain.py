"""Integrated gradients and attention rollout: the completeness axiom on real
SST-2 sentences, zero attribution at the baseline, rollout against Hugging
Face's attention maps, the quadrature against exact integrals, safe HTML."""

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from bert_tf import explain, modeling, tokenization

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tokenizer(vocab_file):
    return tokenization.FullTokenizer(vocab_file, do_lower_case=True)


@pytest.fixture(scope="module")
def sst2_sentences(sst2_data):
    lines = (sst2_data / "dev.tsv").read_text(encoding="utf-8").splitlines()
    return [line.split("\t")[0] for line in lines[1:]]


@pytest.fixture(scope="module")
def tiny_classifier():
    # A wide initializer makes the random model clearly non-linear along the path.
    keras.utils.set_random_seed(11)
    config = modeling.BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2,
                                 num_attention_heads=4, intermediate_size=64,
                                 max_position_embeddings=64, initializer_range=0.5)
    return modeling.BertClassifier(modeling.BertEncoder(config), num_labels=2)


@pytest.fixture(scope="module")
def tiny_explainer(tiny_classifier, tokenizer):
    return explain.Explainer(tiny_classifier, tokenizer, max_seq_length=64)


@pytest.mark.parametrize("steps,power", [(3, 5), (10, 19), (50, 99)])
def test_gauss_legendre_nodes_integrate_polynomials_exactly(steps, power):
    alphas, weights = explain.path_nodes(steps)
    assert np.all((alphas > 0) & (alphas < 1))
    assert np.dot(weights, alphas ** power) == pytest.approx(1 / (power + 1), rel=1e-10)


def test_trapezoid_nodes_match_numpy():
    alphas, weights = explain.path_nodes(8, "trapezoid")
    f = np.exp(alphas)
    assert np.dot(weights, f) == pytest.approx(np.trapezoid(f, alphas), rel=1e-12)


def test_completeness_on_sst2_sentences_with_a_random_model(tiny_explainer, sst2_sentences):
    for text in sst2_sentences[:6]:
        e = tiny_explainer.explain(text)
        delta = e.logit_input - e.logit_baseline
        assert abs(delta) > 0.1  # a check with something to check
        assert e.attribution_sum == pytest.approx(delta, rel=0.05)
        assert len(e.attributions) == len(e.tokens) == len(e.rollout)
        # [CLS]/[SEP] are the same in input and baseline: nothing to attribute.
        assert e.attributions[0] == 0 and e.attributions[-1] == 0


def test_the_other_class_and_the_trapezoid_rule_are_complete_too(tiny_classifier, tokenizer,
                                                                 sst2_sentences):
    explainer = explain.Explainer(tiny_classifier, tokenizer, 64, method="trapezoid")
    for text in sst2_sentences[6:9]:
        first = explainer.explain(text)
        e = explainer.explain(text, target=1 - first.predicted)
        assert e.target != e.predicted
        assert e.attribution_sum == pytest.approx(e.logit_input - e.logit_baseline, rel=0.05)


def test_the_baseline_itself_gets_zero_attribution(tiny_explainer):
    feature = tiny_explainer.features("a gorgeous , witty , seductive movie .")
    baseline = explain.feature_extraction.Features(
        0, feature.tokens, tiny_explainer.baseline_ids(feature), feature.input_type_ids)
    assert baseline.input_ids[1:-1] == [0] * (len(feature.tokens) - 2)  # [PAD] is id 0
    attributions, logit, logit_baseline = tiny_explainer.integrated_gradients(baseline, 1)
    np.testing.assert_array_equal(attributions, 0.0)
    assert logit == pytest.approx(logit_baseline, abs=1e-5)  # same row, batch rounding aside


def test_predictions_match_the_classifier_called_directly(tiny_explainer, tiny_classifier):
    e = tiny_explainer.explain("unflinchingly bleak and desperate")
    ids = np.array([tiny_explainer.tokenizer.convert_tokens_to_ids(e.tokens)], np.int32)
    logits = tiny_classifier({"input_word_ids": ids, "input_mask": np.ones_like(ids),
                              "input_type_ids": np.zeros_like(ids)}).numpy()[0]
    want = np.exp(logits) / np.exp(logits).sum()
    np.testing.assert_allclose(e.probabilities, want, atol=1e-5)
    assert e.logit_input == pytest.approx(logits[e.target], abs=1e-4)


def test_rollout_rows_sum_to_one(tiny_explainer):
    feature = tiny_explainer.features("the plot is nothing but boilerplate", "yet it works")
    probs = tiny_explainer._attention(*(np.array([v], np.int32) for v in (
        feature.input_ids, [1] * len(feature.input_ids), feature.input_type_ids)))
    matrix = explain.attention_rollout([p.numpy()[0] for p in probs])
    np.testing.assert_allclose(matrix.sum(-1), 1.0, atol=1e-6)
    assert (matrix >= 0).all()
    np.testing.assert_allclose(tiny_explainer.rollout(feature), matrix[0], atol=1e-12)


def test_minilm_rollout_matches_hugging_face_attention(minilm_dir, tokenizer, sst2_sentences):
    import torch
    import transformers

    from bert_tf import pretrained

    source = pretrained.resolve("minilm-l6-h384-uncased")
    classifier, _ = explain.load_classifier(source, num_labels=2)
    explainer = explain.Explainer(classifier, tokenizer, max_seq_length=64)
    text = sst2_sentences[0]
    feature = explainer.features(text)

    model = transformers.BertModel.from_pretrained(
        str(minilm_dir / "huggingface"), attn_implementation="eager").eval()
    with torch.no_grad():
        ids = torch.tensor([feature.input_ids])
        attentions = model(input_ids=ids, output_attentions=True).attentions
    # Rollout written out independently: heads averaged, (A + I) / 2, bottom-up product.
    want = np.eye(len(feature.input_ids))
    for layer in attentions:
        a = layer[0].numpy().astype(np.float64).mean(0)
        want = ((a + np.eye(len(a))) / 2) @ want
    np.testing.assert_allclose(explainer.rollout(feature), want[0], atol=1e-5)


def test_html_escapes_text_and_colours_by_sign():
    e = explain.Explanation(
        tokens=["[CLS]", "<script>alert(1)</script>", "&", "##amp", "[SEP]"],
        attributions=[0.0, 0.8, -0.4, 0.1, 0.0], rollout=[0.5, 0.2, 0.1, 0.1, 0.1],
        probabilities=[0.3, 0.7], labels=["<neg>", "pos\"quote"], predicted=1, target=1,
        logit_input=1.0, logit_baseline=0.5)
    page = explain.to_html([e])
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<neg>" not in page and "&lt;neg&gt;" in page
    assert "rgba(0,160,60,1.000)" in page      # the largest positive score
    assert "rgba(220,30,30,0.500)" in page     # a negative one, half as large
    assert ">&amp;</span><span" in page       # "##amp" joins its word without a space


def test_script_explains_a_trained_run_folder(tmp_path, tiny_classifier, tokenizer, vocab_file):
    from bert_tf import checkpoints

    model_dir, run_dir = tmp_path / "model", tmp_path / "run"
    model_dir.mkdir()
    run_dir.mkdir()
    encoder = tiny_classifier.encoder
    encoder.config.to_json_file(str(model_dir / "bert_config.json"))
    (model_dir / "vocab.txt").write_bytes(Path(vocab_file).read_bytes())
    checkpoints.save_google_checkpoint(encoder, str(model_dir / "bert_model.ckpt"))
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=tiny_classifier),
                                         str(run_dir), max_to_keep=1)
    manager.save()
    (run_dir / "run_identity.json").write_text(json.dumps(
        {"task_name": "sst-2", "num_labels": 2, "max_seq_length": 32,
         "model": encoder.config.to_dict()}))
    out_json, out_html = tmp_path / "e.json", tmp_path / "e.html"
    result = subprocess.run(
        [sys.executable, str(REPO / "explain.py"), f"--init_checkpoint={model_dir}",
         f"--output_dir={run_dir}", "--text=<b>bold</b> and brave", "--ig_steps=20",
         f"--output_json={out_json}", f"--output_html={out_html}"],
        cwd=REPO, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES=""),
        capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    [got] = json.loads(out_json.read_text())
    want = tiny_classifier_probabilities(tiny_classifier, tokenizer, got["tokens"])
    np.testing.assert_allclose(got["probabilities"], want, atol=1e-5)
    assert got["labels"] == ["0", "1"]
    assert got["completeness"]["relative_error"] < 0.05
    assert "&lt;" in out_html.read_text() and "<b>bold" not in out_html.read_text()


def tiny_classifier_probabilities(classifier, tokenizer, tokens):
    ids = np.array([tokenizer.convert_tokens_to_ids(tokens)], np.int32)
    logits = classifier({"input_word_ids": ids, "input_mask": np.ones_like(ids),
                         "input_type_ids": np.zeros_like(ids)}).numpy()[0]
    return np.exp(logits) / np.exp(logits).sum()
