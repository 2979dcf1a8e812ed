"""Word similarity and analogy evaluation against gensim's
`evaluate_word_pairs` and `evaluate_word_analogies` on the same vectors,
with the slices of WordSim-353, SimLex-999 and questions-words.txt shipped
in tests/data/embeddings/wordsim."""

import numpy as np
import pytest
from gensim.models import KeyedVectors

from bert_tf import text_files, word_vector_eval
from bert_tf.vectors import Vectors
from conftest import TEST_DATA

WORDSIM = TEST_DATA / "embeddings" / "wordsim"
SIMILARITY_FILES = [WORDSIM / "EN-WS-353-ALL.txt", WORDSIM / "EN-SIMLEX-999.txt"]
ANALOGIES = WORDSIM / "questions-words.txt"


def _words_of(paths):
    words = []
    for path in paths:
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.startswith(":"):
                words.extend(w.lower() for w in line.split()[:4] if not _is_number(w))
    return list(dict.fromkeys(words))


def _is_number(text):
    try:
        float(text)
        return True
    except ValueError:
        return False


@pytest.fixture(scope="module")
def vectors():
    rng = np.random.default_rng(11)
    words = _words_of(SIMILARITY_FILES + [ANALOGIES])
    # Leave some words out (pairs and questions that cannot be answered) and
    # add others, so that the restriction to frequent words matters.
    words = [w for i, w in enumerate(words) if i % 7 != 3] + [f"filler{i}" for i in range(40)]
    rng.shuffle(words)
    matrix = rng.normal(size=(len(words), 6)).astype(np.float32)
    # Make some analogies hold: d = b - a + c plus a little noise.
    index = {w: i for i, w in enumerate(words)}
    for line in ANALOGIES.read_text(encoding="utf-8").splitlines()[1::3]:
        if line.startswith(":"):
            continue
        a, b, c, d = (w.lower() for w in line.split())
        if all(w in index for w in (a, b, c, d)):
            unit = matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
            matrix[index[d]] = (unit[index[b]] - unit[index[a]] + unit[index[c]]
                                + rng.normal(scale=0.05, size=6))
    return Vectors(words, matrix)


def _keyed(vectors):
    keyed = KeyedVectors(vectors.dim)
    keyed.add_vectors(vectors.words, vectors.matrix)
    return keyed


@pytest.mark.parametrize("path", SIMILARITY_FILES, ids=lambda p: p.name)
def test_similarity_equals_gensims_evaluate_word_pairs(vectors, path):
    ours = word_vector_eval.similarity_spearman(vectors,
                                                word_vector_eval.read_similarity_file(path))
    pearson, (spearman, _), oov_percent = _keyed(vectors).evaluate_word_pairs(str(path))
    assert ours["spearman"] == pytest.approx(spearman, abs=1e-9)
    assert 100 * ours["oov_ratio"] == pytest.approx(oov_percent)
    assert ours["oov_pairs"] > 0 and ours["pairs"] + ours["oov_pairs"] == 60


@pytest.mark.parametrize("share", [1.0, 0.6])
def test_analogies_equal_gensims_evaluate_word_analogies(vectors, share):
    # share < 1: only the first (most frequent) rows answer and are answered.
    restrict = 30_000 if share == 1.0 else int(share * len(vectors))
    ours = word_vector_eval.analogy_accuracy(
        vectors, word_vector_eval.read_analogy_file(str(ANALOGIES)), restrict_vocab=restrict)
    score, sections = _keyed(vectors).evaluate_word_analogies(str(ANALOGIES),
                                                              restrict_vocab=restrict)
    assert ours["accuracy"] == pytest.approx(score)
    total = sections[-1]
    assert total["section"] == "Total accuracy"
    assert ours["correct"] == len(total["correct"])
    assert ours["answerable"] == len(total["correct"]) + len(total["incorrect"])
    assert ours["questions"] == 150 and 0 < ours["correct"] < ours["answerable"] < 150
    if share < 1:
        unrestricted = word_vector_eval.analogy_accuracy(
            vectors, word_vector_eval.read_analogy_file(str(ANALOGIES)))
        assert ours["answerable"] < unrestricted["answerable"]
    for section in sections[:-1]:
        entry = ours["sections"][section["section"]]
        assert entry["correct"] == len(section["correct"])
        assert entry["answerable"] == len(section["correct"]) + len(section["incorrect"])


def test_flat_results_name_every_file_and_section(vectors):
    results = word_vector_eval.evaluate(vectors, [str(p) for p in SIMILARITY_FILES],
                                        str(ANALOGIES))
    assert {"EN-WS-353-ALL_spearman", "EN-SIMLEX-999_oov_pairs", "analogy_accuracy",
            "analogy_answerable", "analogy_capital_world_accuracy"} <= set(results)


def test_spearman_averages_tied_ranks():
    # Hand-worked: ranks of [1, 2, 2, 3] are [1, 2.5, 2.5, 4].
    assert word_vector_eval.spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(
        np.corrcoef([1, 2.5, 2.5, 4], [1, 2, 3, 4])[0, 1])


def test_malformed_lines_are_named(tmp_path):
    path = tmp_path / "pairs.txt"
    path.write_text("tiger\tcat\t7.35\ntiger cat\n")
    with pytest.raises(text_files.LineError, match=r"pairs.txt:2: expected 'word1 word2 score'"):
        word_vector_eval.read_similarity_file(str(path))
    path.write_text("a\tb\tseven\n")
    with pytest.raises(text_files.LineError, match=r"pairs.txt:1: the score 'seven'"):
        word_vector_eval.read_similarity_file(str(path))
    path = tmp_path / "questions.txt"
    path.write_text(": capitals\nathens greece baghdad iraq\nathens greece\n")
    with pytest.raises(text_files.LineError, match=r"questions.txt:3: expected 4 words"):
        word_vector_eval.read_analogy_file(str(path))
