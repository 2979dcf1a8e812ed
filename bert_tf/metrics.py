"""GLUE evaluation metrics in plain numpy.

Each function follows the definition GLUE's leaderboard uses (the same as
scikit-learn / scipy), including their answers on degenerate inputs, so that
numbers printed during fine-tuning can be compared with published ones
without pulling those libraries in at run time.
"""

from __future__ import annotations

import numpy as np

from bert_tf import classifier_data

__all__ = [
    "accuracy", "f1_score", "matthews_corrcoef", "pearson", "spearman",
    "rankdata", "glue_metrics", "TASK_METRICS",
]


def _paired(predictions, labels, dtype=None) -> tuple[np.ndarray, np.ndarray]:
    predictions = np.asarray(predictions, dtype=dtype).reshape(-1)
    labels = np.asarray(labels, dtype=dtype).reshape(-1)
    if predictions.shape != labels.shape:
        raise ValueError(f"predictions has {predictions.size} values but labels has "
                         f"{labels.size}")
    if predictions.size == 0:
        raise ValueError("predictions and labels are empty")
    return predictions, labels


def accuracy(predictions, labels) -> float:
    predictions, labels = _paired(predictions, labels)
    return float(np.mean(predictions == labels))


def f1_score(predictions, labels, positive_label=1) -> float:
    """F1 of one class (GLUE scores MRPC and QQP on class 1).

    0.0 when that class is neither predicted nor present, as scikit-learn.
    """
    predictions, labels = _paired(predictions, labels)
    predicted = predictions == positive_label
    actual = labels == positive_label
    true_positives = np.sum(predicted & actual)
    denominator = np.sum(predicted) + np.sum(actual)
    return float(2 * true_positives / denominator) if denominator else 0.0


def matthews_corrcoef(predictions, labels) -> float:
    """Matthews correlation, multi-class form (Gorodkin's R_K).

    Computed from the confusion matrix; 0.0 (not NaN) when either side holds a
    single class, as scikit-learn does.
    """
    predictions, labels = _paired(predictions, labels)
    classes, encoded = np.unique(np.concatenate([labels, predictions]),
                                 return_inverse=True)
    num = labels.size
    confusion = np.zeros((classes.size, classes.size), dtype=np.float64)
    np.add.at(confusion, (encoded[:num], encoded[num:]), 1.0)
    per_true = confusion.sum(axis=1)
    per_pred = confusion.sum(axis=0)
    correct = np.trace(confusion)
    samples = confusion.sum()
    covariance = correct * samples - per_true @ per_pred
    spread_pred = samples ** 2 - per_pred @ per_pred
    spread_true = samples ** 2 - per_true @ per_true
    if spread_pred == 0 or spread_true == 0:
        return 0.0
    return float(covariance / np.sqrt(spread_pred * spread_true))


def pearson(predictions, labels) -> float:
    """Pearson's r; NaN when one side is constant, as scipy."""
    x, y = _paired(predictions, labels, dtype=np.float64)
    x = x - x.mean()
    y = y - y.mean()
    norm = np.sqrt(np.dot(x, x) * np.dot(y, y))
    if norm == 0:
        return float("nan")
    # Clipping guards against |r| creeping past 1 through rounding.
    return float(np.clip(np.dot(x, y) / norm, -1.0, 1.0))


def rankdata(values) -> np.ndarray:
    """1-based ranks where tied values share the mean of their ranks."""
    values = np.asarray(values).reshape(-1)
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    # Start a new group wherever the sorted value changes.
    new_group = np.concatenate([[True], sorted_values[1:] != sorted_values[:-1]])
    group_of_sorted = np.cumsum(new_group) - 1
    starts = np.flatnonzero(new_group)
    ends = np.concatenate([starts[1:], [values.size]])
    group_rank = (starts + 1 + ends) / 2.0  # mean of ranks start+1 .. end
    ranks = np.empty(values.size, dtype=np.float64)
    ranks[order] = group_rank[group_of_sorted]
    return ranks


def spearman(predictions, labels) -> float:
    """Spearman's rho: Pearson's r of tie-averaged ranks."""
    x, y = _paired(predictions, labels, dtype=np.float64)
    return pearson(rankdata(x), rankdata(y))


def _accuracy_only(predictions, labels) -> dict:
    return {"accuracy": accuracy(predictions, labels)}


def _accuracy_and_f1(predictions, labels) -> dict:
    acc = accuracy(predictions, labels)
    f1 = f1_score(predictions, labels)
    return {"accuracy": acc, "f1": f1, "acc_and_f1": (acc + f1) / 2}


def _mcc(predictions, labels) -> dict:
    return {"mcc": matthews_corrcoef(predictions, labels)}


def _correlations(predictions, labels) -> dict:
    r = pearson(predictions, labels)
    rho = spearman(predictions, labels)
    return {"pearson": r, "spearmanr": rho, "corr": (r + rho) / 2}


# What GLUE reports for each task, keyed by the canonical task names
# (classifier_data.canonical_task_name resolves the aliases).
TASK_METRICS = {
    "cola": _mcc,
    "sst-2": _accuracy_only,
    "mrpc": _accuracy_and_f1,
    "qqp": _accuracy_and_f1,
    "sts-b": _correlations,
    "mnli": _accuracy_only, "mnli-mm": _accuracy_only,
    "qnli": _accuracy_only,
    "rte": _accuracy_only,
    "wnli": _accuracy_only,
    "xnli": _accuracy_only,
    "generic": _accuracy_only,
}


def glue_metrics(task_name: str, predictions, labels) -> dict[str, float]:
    """The metrics GLUE reports for `task_name`.

    `predictions` may be class ids or a [N, num_labels] array of logits or
    probabilities (reduced with argmax); for STS-B, scores of shape [N] or
    [N, 1].
    """
    key = classifier_data.canonical_task_name(task_name)
    if key not in TASK_METRICS:
        raise ValueError(f"task_name {task_name!r} has no GLUE metric; known: "
                         f"{', '.join(sorted(TASK_METRICS))}")
    predictions = np.asarray(predictions)
    if key == "sts-b":
        predictions = predictions.reshape(-1)
    elif predictions.ndim == 2:
        predictions = np.argmax(predictions, axis=-1)
    return TASK_METRICS[key](predictions, labels)
