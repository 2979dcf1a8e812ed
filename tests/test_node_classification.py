"""Node classification metrics and classifier against scikit-learn."""

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score

from bert_tf import node_classification as nc
from bert_tf import text_files


def test_f1_matches_scikit_learn_on_hand_made_multi_label_predictions():
    truth = np.array([[1, 0, 0, 1], [0, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 1], [1, 0, 0, 0]],
                     bool)
    # Label 2 is never true and never predicted: scikit-learn scores it 0.
    predicted = np.array([[1, 0, 0, 0], [1, 0, 0, 0], [1, 1, 0, 0], [0, 0, 0, 1],
                          [0, 1, 0, 0]], bool)
    ours = nc.f1_scores(truth, predicted)
    with pytest.warns(Warning):
        macro = f1_score(truth, predicted, average="macro")
    assert ours["micro_f1"] == pytest.approx(f1_score(truth, predicted, average="micro"))
    assert ours["macro_f1"] == pytest.approx(macro)


def test_f1_matches_scikit_learn_on_random_predictions():
    rng = np.random.default_rng(0)
    for _ in range(5):
        truth, predicted = rng.random((40, 6)) < 0.3, rng.random((40, 6)) < 0.3
        truth[:, 0] = predicted[:, 0] = True
        ours = nc.f1_scores(truth, predicted)
        for average in ("micro", "macro"):
            reference = f1_score(truth, predicted, average=average, zero_division=0)
            assert ours[f"{average}_f1"] == pytest.approx(reference)


def test_single_label_micro_f1_is_accuracy():
    labels = np.array([0, 1, 2, 1, 0, 2, 2])
    guesses = np.array([0, 2, 2, 1, 1, 2, 0])
    truth, predicted = np.eye(3, dtype=bool)[labels], np.eye(3, dtype=bool)[guesses]
    assert nc.f1_scores(truth, predicted)["micro_f1"] == pytest.approx(np.mean(labels == guesses))
    assert nc.f1_scores(truth, predicted)["macro_f1"] == pytest.approx(
        f1_score(labels, guesses, average="macro"))


def test_logistic_regression_matches_scikit_learn():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(400, 12))
    y = x[:, 0] - 0.7 * x[:, 3] + 0.8 * rng.normal(size=400) > 0.5
    for c in (0.1, 1.0, 10.0):
        w, b = nc.fit_logistic_regression(x, y, c=c)
        reference = LogisticRegression(C=c, tol=1e-10, max_iter=10_000).fit(x, y)
        np.testing.assert_allclose(w, reference.coef_[0], atol=1e-5)
        assert b == pytest.approx(reference.intercept_[0], abs=1e-5)


def test_logistic_regression_on_separable_data_stays_finite():
    x = np.array([[-2.0], [-1.0], [1.0], [2.0]])
    y = np.array([0, 0, 1, 1])
    w, b = nc.fit_logistic_regression(x, y)
    reference = LogisticRegression(C=1.0, tol=1e-10, max_iter=10_000).fit(x, y)
    assert np.isfinite(w).all()
    assert w[0] == pytest.approx(reference.coef_[0, 0], abs=1e-5)


def test_top_k_gives_each_node_as_many_labels_as_it_has():
    scores = np.array([[0.1, 0.5, 0.3, 0.9], [0.4, 0.2, 0.8, 0.1], [0.0, 0.0, 0.0, 1.0]])
    predicted = nc.top_k_predictions(scores, np.array([2, 1, 3]))
    assert predicted.astype(int).tolist() == [[0, 1, 0, 1], [0, 0, 1, 0], [1, 1, 0, 1]]


def test_evaluate_separates_informative_from_random_vectors():
    rng = np.random.default_rng(2)
    classes = rng.integers(0, 3, size=300)
    labels = np.eye(3, dtype=bool)[classes]
    informative = np.eye(3)[classes] * 2 + rng.normal(scale=0.5, size=(300, 3))
    noise = rng.normal(size=(300, 3))
    good = nc.evaluate(informative, labels, train_ratios=(0.5,), seeds=range(3))
    bad = nc.evaluate(noise, labels, train_ratios=(0.5,), seeds=range(3))
    assert good[0.5]["micro_f1"] > 0.9
    assert bad[0.5]["micro_f1"] < 0.5
    # Same splits and classifier as scikit-learn's one-vs-rest: same micro-F1.
    order = np.random.default_rng(0).permutation(300)
    train, test = order[:150], order[150:]
    reference = np.stack([LogisticRegression(C=1.0, tol=1e-10, max_iter=10_000)
                          .fit(informative[train], labels[train, j])
                          .decision_function(informative[test]) for j in range(3)], axis=1)
    first = nc.evaluate(informative, labels, train_ratios=(0.5,), seeds=[0])
    expected = f1_score(classes[test], reference.argmax(axis=1), average="micro")
    assert first[0.5]["micro_f1"] == pytest.approx(expected)


def test_unlabelled_nodes_take_no_part():
    labels = np.zeros((6, 2), bool)
    labels[[0, 1], 0] = labels[[2, 3], 1] = True
    vectors = np.array([[1.0], [1.1], [-1.0], [-1.1], [5.0], [-5.0]])
    result = nc.evaluate(vectors, labels, train_ratios=(0.5,), seeds=range(4))
    assert 0 <= result[0.5]["micro_f1"] <= 1
    with pytest.raises(ValueError, match="train ratios must be between 0 and 1"):
        nc.evaluate(vectors, labels, train_ratios=(1.0,))


def test_read_labels_multi_label_and_errors(tmp_path):
    index = {"a": 0, "b": 1, "c": 2}
    path = tmp_path / "g.labels"
    path.write_text("a 1\nb 2\na 3\nc 10 2\n")
    matrix, names = nc.read_labels(str(path), index)
    assert names == ["1", "2", "3", "10"]
    assert matrix.astype(int).tolist() == [[1, 0, 1, 0], [0, 1, 0, 0], [0, 1, 0, 1]]
    path.write_text("a 1\nz 2\n")
    with pytest.raises(text_files.LineError, match=r"g\.labels:2: node 'z' is not in the graph"):
        nc.read_labels(str(path), index)
    path.write_text("a 1\nb\n")
    with pytest.raises(text_files.LineError, match=r"g\.labels:2: expected 'node label'"):
        nc.read_labels(str(path), index)


def test_normalize_scales_vectors_to_unit_length_before_fitting():
    rng = np.random.default_rng(3)
    classes = rng.integers(0, 2, size=200)
    labels = np.eye(2, dtype=bool)[classes]
    vectors = (np.eye(2)[classes] + rng.normal(scale=0.4, size=(200, 2))) \
        * rng.uniform(0.1, 10, size=(200, 1))
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    ours = nc.evaluate(vectors, labels, train_ratios=(0.5,), seeds=[0], c=10.0, normalize=True)
    order = np.random.default_rng(0).permutation(200)
    train, test = order[:100], order[100:]
    reference = np.stack([LogisticRegression(C=10.0, tol=1e-10, max_iter=10_000)
                          .fit(unit[train], labels[train, j])
                          .decision_function(unit[test]) for j in range(2)], axis=1)
    expected = f1_score(classes[test], reference.argmax(axis=1), average="macro")
    assert ours[0.5]["macro_f1"] == pytest.approx(expected)
