"""Node classification from embeddings: the DeepWalk / Node2Vec protocol.

A share of the labelled nodes (the train ratio) trains one binary
L2-regularised logistic regression per label (one-vs-rest) on the node
vectors; the rest are predicted and scored with micro- and macro-F1. For
multi-label graphs (BlogCatalog) each test node is given its k best-scoring
labels, k being its true number of labels, as in the DeepWalk and Node2Vec
papers; a single-label graph (Cora) is the case k = 1. Each ratio is
repeated over seeds (random splits) and averaged.

The classifier is numpy only: Newton's method on scikit-learn's
LogisticRegression objective (C times the summed log-loss plus half the
squared weights, the intercept not penalised), which is small and convex for
embeddings of a few hundred dimensions.

>>> import numpy as np
>>> truth = np.array([[1, 0], [0, 1], [1, 1], [0, 1]], bool)
>>> predicted = np.array([[1, 0], [1, 0], [1, 1], [0, 1]], bool)
>>> f1_scores(truth, predicted)  # each label: 2 right, 1 wrong -> 2*2 / (2*2 + 1)
{'micro_f1': 0.8, 'macro_f1': 0.8}
>>> scores = np.array([[0.9, 0.2], [0.1, 0.8], [0.7, 0.6]])
>>> top_k_predictions(scores, np.array([1, 1, 2])).astype(int).tolist()
[[1, 0], [0, 1], [1, 1]]
"""

from __future__ import annotations

import contextlib
from typing import Sequence

import numpy as np

from bert_tf import text_files


def read_labels(path: str, node_index: dict[str, int]) -> tuple[np.ndarray, list[str]]:
    """Reads `node label [label ...]` lines (a node may also repeat on several lines).

    Returns (a bool matrix [num_nodes, num_labels], the label names sorted).
    A line naming a node that is not in the graph, or with no label, is an
    error naming `file:line`. Nodes without any label line are unlabelled
    (all-False rows) and take no part in evaluation.
    """
    pairs = []
    for number, line in text_files.read_lines(path):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        if len(fields) < 2:
            raise text_files.LineError(path, number, f"expected 'node label', got "
                                       f"{line.strip()!r}")
        if fields[0] not in node_index:
            raise text_files.LineError(path, number, f"node {fields[0]!r} is not in the graph")
        pairs.extend((node_index[fields[0]], label) for label in fields[1:])
    if not pairs:
        raise text_files.LineError(path, None, "no labels")
    names = sorted({label for _, label in pairs}, key=_natural_key)
    column = {name: j for j, name in enumerate(names)}
    matrix = np.zeros((len(node_index), len(names)), dtype=bool)
    for node, label in pairs:
        matrix[node, column[label]] = True
    return matrix, names


def _natural_key(name: str):
    return (0, int(name), "") if name.lstrip("-").isdigit() else (1, 0, name)


def fit_logistic_regression(x: np.ndarray, y: np.ndarray, c: float = 1.0,
                            max_iterations: int = 100, tolerance: float = 1e-8
                            ) -> tuple[np.ndarray, float]:
    """Weights and intercept minimising c * sum(log-loss) + |w|^2 / 2 (Newton).

    Each Newton step solves the regularised (d+1)x(d+1) system; a halving
    line search keeps every step a descent, so it converges even when a
    label is separable (the penalty keeps the optimum finite).
    """
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    n, d = x.shape
    design = np.hstack([x, np.ones((n, 1))])
    penalty = np.ones(d + 1)
    penalty[-1] = 0.0  # the intercept is not penalised
    theta = np.zeros(d + 1)

    def objective(theta):
        z = design @ theta
        # log(1 + e^z) - y z, computed without overflow.
        return c * np.sum(np.logaddexp(0.0, z) - y * z) + 0.5 * np.sum(penalty * theta ** 2)

    value = objective(theta)
    for _ in range(max_iterations):
        z = design @ theta
        prob = 0.5 * (1.0 + np.tanh(0.5 * z))  # the logistic function, stable
        gradient = c * design.T @ (prob - y) + penalty * theta
        hessian = c * (design.T * (prob * (1.0 - prob))) @ design + np.diag(penalty)
        hessian[-1, -1] += 1e-12  # an all-equal label leaves the intercept flat
        step = np.linalg.solve(hessian, gradient)
        scale = 1.0
        while True:
            candidate = theta - scale * step
            new_value = objective(candidate)
            if new_value <= value or scale < 1e-10:
                break
            scale *= 0.5
        theta, change = candidate, value - new_value
        value = new_value
        if abs(change) <= tolerance * max(1.0, abs(value)):
            break
    return theta[:-1], float(theta[-1])


def one_vs_rest_scores(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray,
                       c: float = 1.0) -> np.ndarray:
    """Decision values [num_test, num_labels], one logistic regression per label."""
    scores = np.zeros((len(test_x), train_y.shape[1]))
    for j in range(train_y.shape[1]):
        column = train_y[:, j]
        if column.all() or not column.any():
            # No example of one side: a constant is the best this label can do.
            scores[:, j] = np.inf if column.all() else -np.inf
            continue
        w, b = fit_logistic_regression(train_x, column, c=c)
        scores[:, j] = test_x @ w + b
    return scores


def top_k_predictions(scores: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """For row i, the counts[i] highest-scoring labels (ties: the lower label)."""
    order = np.argsort(-scores, axis=1, kind="stable")
    predicted = np.zeros(scores.shape, dtype=bool)
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(scores.shape[1])[None, :].repeat(len(scores), 0),
                      axis=1)
    predicted[rank < np.asarray(counts)[:, None]] = True
    return predicted


def f1_scores(truth: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """Micro- and macro-F1 of indicator matrices [examples, labels].

    A label with neither true nor predicted examples scores 0 in the
    macro average, as scikit-learn's `f1_score` does by default.
    """
    truth, predicted = np.asarray(truth, bool), np.asarray(predicted, bool)
    tp = np.sum(truth & predicted, axis=0).astype(np.float64)
    fp = np.sum(~truth & predicted, axis=0)
    fn = np.sum(truth & ~predicted, axis=0)
    denominators = 2 * tp + fp + fn
    per_label = np.divide(2 * tp, denominators, out=np.zeros_like(tp), where=denominators > 0)
    micro_denominator = 2 * tp.sum() + fp.sum() + fn.sum()
    micro = 2 * tp.sum() / micro_denominator if micro_denominator else 0.0
    return {"micro_f1": float(micro), "macro_f1": float(per_label.mean())}


def evaluate(vectors: np.ndarray, labels: np.ndarray,
             train_ratios: Sequence[float] = (0.1, 0.5, 0.9), seeds: Sequence[int] = range(10),
             c: float = 1.0, normalize: bool = False) -> dict[float, dict[str, float]]:
    """Micro/macro-F1 (mean and std over seeds) per train ratio.

    vectors: [num_nodes, dim]; labels: bool [num_nodes, num_labels]; only
    nodes with at least one label take part. c: the inverse regularisation
    strength (scikit-learn's C); normalize: scale each vector to length 1
    first. Neither is fixed by the papers, and macro-F1 on BlogCatalog moves
    by ~0.02 with them (rare labels need a weaker penalty).
    """
    labelled = np.flatnonzero(labels.any(axis=1))
    x, y = np.asarray(vectors, np.float64)[labelled], labels[labelled]
    if normalize:
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        x = x / np.where(norms > 0, norms, 1.0)
    with _one_blas_thread():
        return _evaluate(x, y, train_ratios, seeds, c)


@contextlib.contextmanager
def _one_blas_thread():
    """The fits are small (a few hundred columns): one BLAS thread does them
    fastest, and several threads on a busy machine were measured 30x slower
    (they spin waiting for each other). threadpoolctl, when installed, sets it."""
    try:
        import threadpoolctl
    except ImportError:
        yield
        return
    with threadpoolctl.threadpool_limits(1, user_api="blas"):
        yield


def _evaluate(x, y, train_ratios, seeds, c):
    results = {}
    for ratio in train_ratios:
        if not 0 < ratio < 1:
            raise ValueError(f"train ratios must be between 0 and 1, got {ratio}")
        runs = []
        for seed in seeds:
            order = np.random.default_rng(seed).permutation(len(x))
            cut = int(round(ratio * len(x)))
            if cut == 0 or cut == len(x):
                raise ValueError(f"train ratio {ratio} leaves an empty split of "
                                 f"{len(x)} labelled nodes")
            train, test = order[:cut], order[cut:]
            scores = one_vs_rest_scores(x[train], y[train], x[test], c=c)
            predicted = top_k_predictions(scores, y[test].sum(axis=1))
            runs.append(f1_scores(y[test], predicted))
        results[ratio] = {}
        for key in ("micro_f1", "macro_f1"):
            values = np.array([r[key] for r in runs])
            results[ratio][key] = float(values.mean())
            results[ratio][key + "_std"] = float(values.std())
    return results
