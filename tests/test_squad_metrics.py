"""The SQuAD metrics against hand-worked cases and against an independent
implementation written here from the official scripts' documented rules
(evaluate-v1.1.py, evaluate-v2.0.py): normalise (lower case, drop
punctuation, drop a/an/the, collapse whitespace), exact match and token F1
with the best reference, averaged in percent; for 2.0, unanswerable
questions have the single reference "", odds above the threshold answer "",
and the best threshold is searched over the odds."""

import json
import random
import string

import pytest

from bert_tf import squad_metrics
from conftest import TEST_DATA


def _data(*questions):
    return [{"paragraphs": [{"context": "", "qas": [
        {"id": qid, "question": "?", "answers": [{"text": t, "answer_start": 0} for t in refs]}
        for qid, refs in questions]}]}]


def test_normalisation_by_hand():
    norm = squad_metrics.normalize_answer
    assert norm("The Eiffel Tower.") == "eiffel tower"
    assert norm("An apple, a pear and THE plum!") == "apple pear and plum"
    assert norm("theatre") == "theatre"  # "the" only as a word
    assert norm("  U.S.A.  ") == "usa"
    assert norm("a") == "" and norm("") == ""


def test_v1_by_hand():
    dataset = _data(("q1", ["Denver Broncos", "the Denver Broncos"]),
                    ("q2", ["in 1889", "1889"]),
                    ("q3", ["Carolina Panthers"]),
                    ("q4", ["Levi's Stadium"]))
    predictions = {"q1": "Broncos", "q2": "1889 exactly", "q3": "the carolina panthers!"}
    # q1: EM 0; F1 vs "denver broncos": P 1/1, R 1/2 -> 2/3.
    # q2: EM 0; vs "1889": P 1/2, R 1 -> 2/3 (vs "in 1889": 1/2).
    # q3: EM 1, F1 1.  q4: unanswered, 0.
    result = squad_metrics.evaluate_v1(dataset, predictions)
    assert result["exact_match"] == pytest.approx(100 * 1 / 4)
    assert result["f1"] == pytest.approx(100 * (2 / 3 + 2 / 3 + 1) / 4)


def test_v2_by_hand():
    dataset = _data(("a1", ["Paris"]), ("a2", ["the red car"]), ("n1", []), ("n2", []))
    predictions = {"a1": "Paris", "a2": "car", "n1": "", "n2": "something"}
    odds = {"a1": -3.0, "a2": -2.0, "n1": 0.5, "n2": 1.5}
    # Thresholded at 1.0: n2 (odds 1.5) counts as answered "", right for an
    # unanswerable question. EM: a1 1, a2 0, n1 1, n2 1 -> 75%.
    # F1: a1 1, a2 F1("car", "red car") = 2/3, n1 1, n2 1.
    result = squad_metrics.evaluate_v2(dataset, predictions, odds)
    assert result["exact"] == pytest.approx(75.0)
    assert result["f1"] == pytest.approx(100 * (3 + 2 / 3) / 4)
    assert result["total"] == 4 and result["HasAns_total"] == 2 and result["NoAns_total"] == 2
    assert result["HasAns_exact"] == pytest.approx(50.0)
    assert result["HasAns_f1"] == pytest.approx(100 * (1 + 2 / 3) / 2)
    assert result["NoAns_exact"] == pytest.approx(100.0)
    # Best threshold: start from "" everywhere (n1, n2 right: 2), admit in
    # increasing odds. F1: a1 (-3) +1 -> 3; a2 (-2) +2/3 -> 3.667 (best);
    # n1 (0.5) predicts "" -> 3.667; n2 (1.5) predicts "something" -> 2.667.
    assert result["best_f1"] == pytest.approx(100 * (3 + 2 / 3) / 4)
    assert result["best_f1_thresh"] == -2.0
    # Exact: a1 -> 3 (best, at -3.0); a2 adds 0; n2 loses 1.
    assert result["best_exact"] == pytest.approx(75.0) and result["best_exact_thresh"] == -3.0
    # Without odds nothing is thresholded and no best threshold is reported.
    plain = squad_metrics.evaluate_v2(dataset, predictions)
    assert "best_f1" not in plain
    assert plain["exact"] == pytest.approx(50.0)
    assert plain["f1"] == pytest.approx(100 * (1 + 2 / 3 + 1 + 0) / 4)


# ---- an independent implementation of the documented rules ----------------

def _reference_normalize(text):
    text = text.lower()
    text = "".join(c for c in text if c not in string.punctuation)
    words = [w for w in text.split() if w not in ("a", "an", "the")]
    return words


def _reference_f1(pred, gold, empty_rule):
    p, g = _reference_normalize(pred), _reference_normalize(gold)
    if empty_rule and (not p or not g):
        return float(p == g)
    common = 0
    remaining = list(g)
    for word in p:
        if word in remaining:
            remaining.remove(word)
            common += 1
    if not common:
        return 0.0
    precision, recall = common / len(p), common / len(g)
    return 2 * precision * recall / (precision + recall)


def _reference_v1(dataset, predictions):
    rows = [qa for article in dataset for para in article["paragraphs"] for qa in para["qas"]]
    em = f1 = 0.0
    for qa in rows:
        if qa["id"] in predictions:
            golds = [a["text"] for a in qa["answers"]]
            pred = predictions[qa["id"]]
            em += max(float(_reference_normalize(pred) == _reference_normalize(g)) for g in golds)
            f1 += max(_reference_f1(pred, g, False) for g in golds)
    return {"exact_match": 100 * em / len(rows), "f1": 100 * f1 / len(rows)}


def _reference_v2(dataset, predictions, odds, threshold=1.0):
    rows = [qa for article in dataset for para in article["paragraphs"] for qa in para["qas"]]
    raw_em, raw_f1, has = {}, {}, {}
    for qa in rows:
        has[qa["id"]] = bool(qa["answers"])
        golds = [a["text"] for a in qa["answers"] if _reference_normalize(a["text"])] or [""]
        pred = predictions[qa["id"]]
        raw_em[qa["id"]] = max(float(_reference_normalize(pred) == _reference_normalize(g))
                               for g in golds)
        raw_f1[qa["id"]] = max(_reference_f1(pred, g, True) for g in golds)
    out = {}
    for name, raw in (("exact", raw_em), ("f1", raw_f1)):
        final = {q: (0.0 if has[q] else 1.0) if odds[q] > threshold else s for q, s in raw.items()}
        out[name] = 100 * sum(final.values()) / len(final)
        # Best threshold by trying every distinct odds value (and "null
        # everywhere"), keeping the first best in increasing odds order.
        best, best_t = 100 * sum(not h for h in has.values()) / len(has), 0.0
        for t in sorted(set(odds.values())):
            score = sum((raw[q] if has[q] else float(not predictions[q])) if odds[q] <= t
                        else float(not has[q]) for q in has)
            if 100 * score / len(has) > best + 1e-12:
                best, best_t = 100 * score / len(has), t
        out[f"best_{name}"], out[f"best_{name}_thresh"] = best, best_t
    return out


def _random_predictions(dataset, rng, unanswerable=()):
    words = [w for a in dataset for p in a["paragraphs"] for w in p["context"].split()]
    predictions = {}
    for article in dataset:
        for para in article["paragraphs"]:
            for qa in para["qas"]:
                choice = rng.random()
                if choice < 0.3 and qa["answers"]:
                    text = rng.choice(qa["answers"])["text"]  # exactly right
                    if rng.random() < 0.5:
                        text = "The " + text + "."
                elif choice < 0.6 and qa["answers"]:
                    gold = rng.choice(qa["answers"])["text"].split()
                    text = " ".join(gold[: max(1, len(gold) // 2)] + rng.sample(words, 2))
                elif choice < 0.7:
                    text = ""
                else:
                    text = " ".join(rng.sample(words, rng.randint(1, 4)))
                predictions[qa["id"]] = text
    return predictions


def test_v1_equals_the_independent_implementation_on_the_slice():
    dataset = json.loads((TEST_DATA / "squad/dev-v1.1-slice.json").read_text())["data"]
    rng = random.Random(3)
    predictions = _random_predictions(dataset, rng)
    del predictions[next(iter(predictions))]  # one unanswered question
    ours = squad_metrics.evaluate_v1(dataset, predictions)
    reference = _reference_v1(dataset, predictions)
    assert ours == pytest.approx(reference, abs=1e-9)
    assert 20 < ours["exact_match"] < ours["f1"] < 80


def test_v2_equals_the_independent_implementation_on_the_slice():
    """Unanswerable questions built from the 1.1 slice: every fourth question
    loses its answers (as if asked about another article's paragraph)."""
    dataset = json.loads((TEST_DATA / "squad/dev-v1.1-slice.json").read_text())["data"]
    n = 0
    for article in dataset:
        for para in article["paragraphs"]:
            for qa in para["qas"]:
                if n % 4 == 0:
                    qa["answers"] = []
                n += 1
    rng = random.Random(5)
    predictions = _random_predictions(dataset, rng)
    # Distinct odds: the official search admits tied questions one by one,
    # the reference below whole thresholds at a time; they agree without ties.
    odds = {qid: rng.gauss(0, 2) for qid in predictions}
    ours = squad_metrics.evaluate_v2(dataset, predictions, odds)
    reference = _reference_v2(dataset, predictions, odds)
    for key, value in reference.items():
        assert ours[key] == pytest.approx(value, abs=1e-9), key
