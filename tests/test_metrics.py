"""GLUE metrics against scikit-learn and scipy as independent references."""

import numpy as np
import pytest
import scipy.stats
import sklearn.metrics

from bert_tf import metrics


def _random_labels(seed, size, num_classes):
    rng = np.random.default_rng(seed)
    return rng.integers(0, num_classes, size), rng.integers(0, num_classes, size)


@pytest.mark.parametrize("seed", range(5))
def test_accuracy_and_f1_match_sklearn(seed):
    predictions, labels = _random_labels(seed, 257, 2)
    assert metrics.accuracy(predictions, labels) == pytest.approx(
        sklearn.metrics.accuracy_score(labels, predictions), abs=1e-12)
    assert metrics.f1_score(predictions, labels) == pytest.approx(
        sklearn.metrics.f1_score(labels, predictions), abs=1e-12)


@pytest.mark.parametrize("seed,num_classes", [(0, 2), (1, 2), (2, 3), (3, 5), (4, 2)])
def test_mcc_matches_sklearn(seed, num_classes):
    predictions, labels = _random_labels(seed, 300, num_classes)
    # Bias the predictions towards the labels so the correlation is not ~0.
    agree = np.random.default_rng(seed + 100).random(labels.size) < 0.6
    predictions = np.where(agree, labels, predictions)
    expected = sklearn.metrics.matthews_corrcoef(labels, predictions)
    assert abs(expected) > 0.2
    assert metrics.matthews_corrcoef(predictions, labels) == pytest.approx(expected, abs=1e-12)


def test_mcc_is_zero_not_nan_when_one_side_has_one_class():
    labels = np.array([0, 1, 1, 0, 1])
    all_ones = np.ones(5, dtype=int)
    assert sklearn.metrics.matthews_corrcoef(labels, all_ones) == 0.0
    assert metrics.matthews_corrcoef(all_ones, labels) == 0.0
    assert metrics.matthews_corrcoef(all_ones, all_ones) == 0.0
    assert metrics.glue_metrics("cola", all_ones, labels) == {"mcc": 0.0}


def test_f1_degenerate_cases_match_sklearn():
    zeros = np.zeros(6, dtype=int)
    expected = sklearn.metrics.f1_score(zeros, zeros, zero_division=0.0)
    assert metrics.f1_score(zeros, zeros) == expected == 0.0
    perfect = np.array([1, 0, 1, 1])
    assert metrics.f1_score(perfect, perfect) == 1.0


@pytest.mark.parametrize("seed", range(4))
def test_pearson_and_spearman_match_scipy_on_continuous_values(seed):
    rng = np.random.default_rng(seed)
    labels = rng.uniform(0, 5, 200)
    predictions = labels + rng.normal(0, 1.5, 200)
    assert metrics.pearson(predictions, labels) == pytest.approx(
        scipy.stats.pearsonr(predictions, labels)[0], abs=1e-12)
    assert metrics.spearman(predictions, labels) == pytest.approx(
        scipy.stats.spearmanr(predictions, labels)[0], abs=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_spearman_averages_tied_ranks_like_scipy(seed):
    rng = np.random.default_rng(seed)
    # STS-B gold scores come in steps of 0.2: many ties on both sides.
    labels = rng.integers(0, 26, 300) / 5.0
    predictions = np.round(labels + rng.normal(0, 1.0, 300))
    np.testing.assert_allclose(metrics.rankdata(predictions),
                               scipy.stats.rankdata(predictions, method="average"))
    assert metrics.spearman(predictions, labels) == pytest.approx(
        scipy.stats.spearmanr(predictions, labels)[0], abs=1e-12)


def test_pearson_of_constant_input_is_nan_like_scipy():
    constant = np.full(10, 2.5)
    varying = np.arange(10.0)
    with pytest.warns(scipy.stats.ConstantInputWarning):
        assert np.isnan(scipy.stats.pearsonr(constant, varying)[0])
    assert np.isnan(metrics.pearson(constant, varying))


def test_glue_metrics_names_and_values_per_task():
    predictions, labels = _random_labels(7, 120, 2)
    mrpc = metrics.glue_metrics("MRPC", predictions, labels)
    acc = sklearn.metrics.accuracy_score(labels, predictions)
    f1 = sklearn.metrics.f1_score(labels, predictions)
    assert set(mrpc) == {"accuracy", "f1", "acc_and_f1"}
    assert mrpc["acc_and_f1"] == pytest.approx((acc + f1) / 2)
    assert metrics.glue_metrics("sst-2", predictions, labels) == {"accuracy": pytest.approx(acc)}

    logits = np.random.default_rng(8).normal(size=(120, 3))
    three_way = np.random.default_rng(9).integers(0, 3, 120)
    assert metrics.glue_metrics("mnli", logits, three_way)["accuracy"] == pytest.approx(
        sklearn.metrics.accuracy_score(three_way, logits.argmax(-1)))

    scores = np.random.default_rng(10).uniform(0, 5, (120, 1))
    gold = scores[:, 0] + np.random.default_rng(11).normal(0, 1, 120)
    stsb = metrics.glue_metrics("sts-b", scores, gold)
    assert stsb["pearson"] == pytest.approx(scipy.stats.pearsonr(scores[:, 0], gold)[0])
    assert stsb["spearmanr"] == pytest.approx(scipy.stats.spearmanr(scores[:, 0], gold)[0])
    assert stsb["corr"] == pytest.approx((stsb["pearson"] + stsb["spearmanr"]) / 2)


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="unknown-task"):
        metrics.glue_metrics("unknown-task", [1], [1])
    with pytest.raises(ValueError, match="3 values but labels has 2"):
        metrics.accuracy([1, 0, 1], [1, 0])
    with pytest.raises(ValueError, match="empty"):
        metrics.accuracy([], [])
