"""The official SQuAD metrics: v1.1 and v2.0, rule for rule.

Both normalise an answer the same way (lower case, punctuation removed, the
articles a/an/the removed, whitespace collapsed), score exact match and
token-level F1 against each reference and keep the best, and average over
the questions, in percent.

v1.1 (`evaluate-v1.1.py`): a question without a prediction scores 0.
v2.0 (`evaluate-v2.0.py`): a question with no reference answer (or only
references that normalise to nothing) has the single reference "", so only
the empty prediction is right; F1 with an empty side is 1 when both are
empty, else 0. With no-answer odds (null_odds.json), a question whose odds
exceed `na_prob_thresh` counts as answered "", and the best threshold for
exact match and for F1 is searched over the odds.

>>> squad = [{"paragraphs": [{"qas": [
...     {"id": "a", "answers": [{"text": "the Eiffel Tower"}, {"text": "Eiffel"}]},
...     {"id": "b", "answers": [{"text": "in 1889"}]}]}]}]
>>> evaluate_v1(squad, {"a": "Eiffel tower", "b": "1889 exactly"})
{'exact_match': 50.0, 'f1': 75.0}
"""

from __future__ import annotations

import collections
import re
import string

_PUNCTUATION = set(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    """Lower case, drop punctuation, drop the articles a/an/the, collapse spaces.

    >>> normalize_answer("  The  Eiffel-Tower! ")
    'eiffeltower'
    """
    text = "".join(char for char in text.lower() if char not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, reference: str) -> int:
    return int(normalize_answer(prediction) == normalize_answer(reference))


def _overlap_f1(predicted: list[str], reference: list[str]) -> float:
    same = sum((collections.Counter(predicted) & collections.Counter(reference)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(predicted), same / len(reference)
    return 2 * precision * recall / (precision + recall)


def f1_v1(prediction: str, reference: str) -> float:
    """v1.1's token F1 (no special case for empty answers)."""
    return _overlap_f1(normalize_answer(prediction).split(), normalize_answer(reference).split())


def f1_v2(prediction: str, reference: str) -> float:
    """v2.0's token F1: with an empty side, 1 if both are empty, else 0."""
    predicted, gold = normalize_answer(prediction).split(), normalize_answer(reference).split()
    if not predicted or not gold:
        return float(predicted == gold)
    return _overlap_f1(predicted, gold)


def _questions(dataset):
    for article in dataset:
        for paragraph in article["paragraphs"]:
            yield from paragraph["qas"]


def evaluate_v1(dataset: list[dict], predictions: dict[str, str]) -> dict[str, float]:
    """`evaluate-v1.1.py`: exact_match and f1 (percent) over every question."""
    total = exact = f1 = 0.0
    for qa in _questions(dataset):
        total += 1
        if qa["id"] not in predictions:
            continue  # unanswered: scores 0
        references = [answer["text"] for answer in qa["answers"]]
        prediction = predictions[qa["id"]]
        exact += max(exact_match(prediction, r) for r in references)
        f1 += max(f1_v1(prediction, r) for r in references)
    return {"exact_match": 100.0 * exact / total, "f1": 100.0 * f1 / total}


def _best_threshold(predictions, scores, na_probs, has_answer):
    """The no-answer threshold that maximises the score, and that score.

    Start from predicting "" everywhere (every unanswerable question right),
    then admit questions in increasing order of their odds: an answerable one
    adds its score, an unanswerable one loses its point if its prediction is
    not empty.
    """
    score = best = sum(1 for qid in has_answer if not has_answer[qid])
    threshold = 0.0
    for qid in sorted(na_probs, key=lambda k: na_probs[k]):
        if qid not in scores:
            continue
        if has_answer[qid]:
            score += scores[qid]
        elif predictions[qid]:
            score -= 1
        if score > best:
            best, threshold = score, na_probs[qid]
    return 100.0 * best / len(scores), threshold


def evaluate_v2(dataset: list[dict], predictions: dict[str, str],
                na_probs: dict[str, float] | None = None,
                na_prob_thresh: float = 1.0) -> dict[str, float]:
    """`evaluate-v2.0.py`: exact, f1, total, HasAns_*/NoAns_* and, with
    na_probs, best_exact(_thresh) and best_f1(_thresh)."""
    has_answer = {qa["id"]: bool(qa.get("answers")) for qa in _questions(dataset)}
    exact_raw, f1_raw = {}, {}
    for qa in _questions(dataset):
        qid = qa["id"]
        references = [a["text"] for a in qa.get("answers", [])
                      if normalize_answer(a["text"])] or [""]
        if qid not in predictions:
            continue
        exact_raw[qid] = max(exact_match(predictions[qid], r) for r in references)
        f1_raw[qid] = max(f1_v2(predictions[qid], r) for r in references)
    odds = na_probs if na_probs is not None else {qid: 0.0 for qid in predictions}

    def thresholded(raw):
        return {qid: float(not has_answer[qid]) if odds[qid] > na_prob_thresh else s
                for qid, s in raw.items()}

    exact, f1 = thresholded(exact_raw), thresholded(f1_raw)

    def summary(qids):
        return {"exact": 100.0 * sum(exact[q] for q in qids) / len(qids),
                "f1": 100.0 * sum(f1[q] for q in qids) / len(qids), "total": len(qids)}

    results = summary(list(exact))
    for prefix, wanted in (("HasAns", True), ("NoAns", False)):
        # (The official script fails when a question of the kind has no
        # prediction; such questions are left out here, as from "total".)
        qids = [qid for qid, has in has_answer.items() if has == wanted and qid in exact]
        if qids:
            results.update({f"{prefix}_{k}": v for k, v in summary(qids).items()})
    if na_probs is not None:
        results["best_exact"], results["best_exact_thresh"] = _best_threshold(
            predictions, exact_raw, na_probs, has_answer)
        results["best_f1"], results["best_f1_thresh"] = _best_threshold(
            predictions, f1_raw, na_probs, has_answer)
    return results
