"""Intrinsic evaluation of word vectors: similarity and analogies.

Word similarity (WordSim-353, SimLex-999...): files of `word1 word2 score`
lines (tab- or space-separated; `#` comments allowed); the measure is the
Spearman correlation between the scores and the cosines of the pairs whose
words both have vectors. Pairs with an unknown word are left out and
counted, as gensim's `evaluate_word_pairs` does.

Analogies (Mikolov et al.'s questions-words.txt): `: section` headers, then
`a b c d` lines meaning a : b = c : d. A question is answered with 3CosAdd:
the word of highest cosine with unit(b) - unit(a) + unit(c), a, b and c
excluded, searched among the `restrict_vocab` most frequent words only
(30,000, the usual restriction, gensim's `restrict_vocab`). Questions with
a word outside those are not answerable: they are counted, not scored.
Accuracy is correct / answerable, per section and in total (gensim's
`evaluate_word_analogies` score).

Both lower-case the words of the files by default (`case_insensitive`), to
match vectors trained on lower-cased text.

>>> import numpy as np
>>> from bert_tf.vectors import Vectors
>>> vectors = Vectors(["man", "woman", "king", "queen"],
...                   np.array([[1, 0, 0], [1, 1, 0], [1, 0, 1], [1, 1, 1]], np.float32))
>>> result = analogy_accuracy(vectors, [("royalty", [("man", "woman", "king", "queen")])])
>>> result["accuracy"], result["answerable"]
(1.0, 1)
"""

from __future__ import annotations

import os
from typing import Iterable, Sequence

import numpy as np

from bert_tf import text_files
from bert_tf.vectors import Vectors

DEFAULT_RESTRICT_VOCAB = 30_000


# ----------------------------------------------------------------------------
# Reading the data sets
# ----------------------------------------------------------------------------

def read_similarity_file(path: str) -> list[tuple[str, str, float]]:
    """(word1, word2, score) of each line; a malformed line is a file:line error."""
    pairs = []
    for number, line in text_files.read_lines(path):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        parts = text.split("\t") if "\t" in text else text.split()
        if len(parts) != 3:
            raise text_files.LineError(path, number, f"expected 'word1 word2 score', got "
                                       f"{len(parts)} fields ({text[:60]!r})")
        try:
            score = float(parts[2])
        except ValueError:
            raise text_files.LineError(path, number,
                                       f"the score {parts[2]!r} is not a number") from None
        pairs.append((parts[0].strip(), parts[1].strip(), score))
    if not pairs:
        raise ValueError(f"{path}: holds no word pairs")
    return pairs


def read_analogy_file(path: str) -> list[tuple[str, list[tuple[str, str, str, str]]]]:
    """[(section, [(a, b, c, d), ...]), ...] in file order."""
    sections: list[tuple[str, list]] = []
    for number, line in text_files.read_lines(path):
        text = line.strip()
        if not text:
            continue
        if text.startswith(":"):
            sections.append((text[1:].strip(), []))
            continue
        words = text.split()
        if len(words) != 4:
            raise text_files.LineError(path, number, f"expected 4 words 'a b c d', got "
                                       f"{len(words)} ({text[:60]!r})")
        if not sections:
            raise text_files.LineError(path, number, "a question before any ': section' line")
        sections[-1][1].append(tuple(words))
    if not any(questions for _, questions in sections):
        raise ValueError(f"{path}: holds no analogy questions")
    return sections


# ----------------------------------------------------------------------------
# Measures
# ----------------------------------------------------------------------------

def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation (ties get their average rank).

    >>> round(spearman([1, 2, 3, 4], [10, 20, 30, 25]), 6)
    0.8
    """
    return float(np.corrcoef(_ranks(x), _ranks(y))[0, 1])


def _ranks(values) -> np.ndarray:
    values = np.asarray(values, np.float64)
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(1, len(values) + 1)
    # Average the ranks of equal values.
    unique, inverse = np.unique(values, return_inverse=True)
    sums = np.bincount(inverse, weights=ranks)
    counts = np.bincount(inverse)
    return (sums / counts)[inverse]


def _lookup(vectors: Vectors, case_insensitive: bool, limit: int | None = None) -> dict[str, int]:
    """word -> row among the first `limit` rows; lower-cased keys keep the
    most frequent row of words that differ only in case."""
    words = vectors.words if limit is None else vectors.words[:limit]
    if not case_insensitive:
        return {w: i for i, w in enumerate(words)}
    lookup: dict[str, int] = {}
    for i, word in enumerate(words):
        lookup.setdefault(word.lower(), i)
    return lookup


def similarity_spearman(vectors: Vectors, pairs: Iterable[tuple[str, str, float]],
                        case_insensitive: bool = True) -> dict[str, float]:
    """{"spearman", "pairs" (scored), "oov_pairs", "oov_ratio"} for `pairs`."""
    lookup = _lookup(vectors, case_insensitive)
    unit = vectors.unit_vectors()
    gold, cosines, oov, total = [], [], 0, 0
    for a, b, score in pairs:
        total += 1
        if case_insensitive:
            a, b = a.lower(), b.lower()
        if a not in lookup or b not in lookup:
            oov += 1
            continue
        gold.append(score)
        cosines.append(float(unit[lookup[a]] @ unit[lookup[b]]))
    value = spearman(gold, cosines) if len(gold) > 1 else float("nan")
    return {"spearman": value, "pairs": len(gold), "oov_pairs": oov,
            "oov_ratio": oov / total if total else 0.0}


def analogy_accuracy(vectors: Vectors, sections, restrict_vocab: int = DEFAULT_RESTRICT_VOCAB,
                     case_insensitive: bool = True, batch_size: int = 1024) -> dict:
    """3CosAdd over the `restrict_vocab` most frequent words (rows are taken
    to be in frequency order, as word2vec files are).

    Returns {"accuracy", "correct", "answerable", "questions",
    "sections": {name: {"accuracy", "correct", "answerable", "questions"}}}.
    """
    lookup = _lookup(vectors, case_insensitive, restrict_vocab)
    unit = vectors.unit_vectors()[:restrict_vocab]
    per_section, rows, owners = {}, [], []
    for name, questions in sections:
        entry = per_section.setdefault(name, {"correct": 0, "answerable": 0, "questions": 0})
        for question in questions:
            entry["questions"] += 1
            words = [w.lower() for w in question] if case_insensitive else list(question)
            if all(w in lookup for w in words):
                rows.append([lookup[w] for w in words])
                owners.append(name)
    rows = np.asarray(rows, np.int64).reshape(-1, 4)
    correct = np.zeros(len(rows), bool)
    for start in range(0, len(rows), batch_size):
        block = rows[start:start + batch_size]
        a, b, c, d = block.T
        query = unit[b] - unit[a] + unit[c]
        scores = query @ unit.T
        # The question's own words are never the answer.
        for column in (a, b, c):
            scores[np.arange(len(block)), column] = -np.inf
        correct[start:start + len(block)] = np.argmax(scores, axis=1) == d
    for name, hit in zip(owners, correct):
        per_section[name]["answerable"] += 1
        per_section[name]["correct"] += int(hit)
    for entry in per_section.values():
        entry["accuracy"] = entry["correct"] / entry["answerable"] if entry["answerable"] else 0.0
    answerable = len(rows)
    return {"accuracy": float(correct.sum()) / answerable if answerable else 0.0,
            "correct": int(correct.sum()), "answerable": answerable,
            "questions": sum(e["questions"] for e in per_section.values()),
            "sections": per_section}


# ----------------------------------------------------------------------------
# The evaluation a script runs
# ----------------------------------------------------------------------------

def evaluate(vectors: Vectors, similarity_files: Sequence[str] = (),
             analogy_file: str | None = None, restrict_vocab: int = DEFAULT_RESTRICT_VOCAB,
             case_insensitive: bool = True) -> dict[str, float]:
    """Flat `name = value` results for eval_results.txt: per similarity file
    (named by its base name without extension) its Spearman, pairs and OOV
    pairs; for the analogies, total and per-section accuracy and counts."""
    results: dict[str, float] = {}
    for path in similarity_files:
        name = os.path.splitext(os.path.basename(path))[0]
        measured = similarity_spearman(vectors, read_similarity_file(path), case_insensitive)
        results[f"{name}_spearman"] = measured["spearman"]
        results[f"{name}_pairs"] = measured["pairs"]
        results[f"{name}_oov_pairs"] = measured["oov_pairs"]
    if analogy_file:
        measured = analogy_accuracy(vectors, read_analogy_file(analogy_file), restrict_vocab,
                                    case_insensitive)
        results["analogy_accuracy"] = measured["accuracy"]
        results["analogy_correct"] = measured["correct"]
        results["analogy_answerable"] = measured["answerable"]
        results["analogy_questions"] = measured["questions"]
        for section, entry in measured["sections"].items():
            key = "analogy_" + "".join(ch if ch.isalnum() else "_" for ch in section)
            results[f"{key}_accuracy"] = entry["accuracy"]
            results[f"{key}_answerable"] = entry["answerable"]
    return results
