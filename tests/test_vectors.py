"""Vectors in word2vec's text and binary formats, checked against gensim's
KeyedVectors, which reads and writes both."""

import numpy as np
import pytest
from gensim.models import KeyedVectors

from bert_tf.vectors import Vectors, VectorsFileError


@pytest.fixture
def vectors():
    rng = np.random.default_rng(3)
    words = ["the", "king", "queen", "café", "naïve", "x1", "don't", "end"]
    return Vectors(words, rng.normal(size=(len(words), 7)).astype(np.float32))


@pytest.mark.parametrize("binary", [False, True])
def test_gensim_reads_what_we_write(vectors, tmp_path, binary):
    path = tmp_path / "v.w2v"
    vectors.save(path, binary=binary)
    loaded = KeyedVectors.load_word2vec_format(str(path), binary=binary)
    assert loaded.index_to_key == vectors.words
    np.testing.assert_array_equal(loaded.vectors, vectors.matrix)


@pytest.mark.parametrize("binary", [False, True])
def test_we_read_what_gensim_writes(vectors, tmp_path, binary):
    keyed = KeyedVectors(vectors.dim)
    keyed.add_vectors(vectors.words, vectors.matrix)
    path = tmp_path / "g.w2v"
    keyed.save_word2vec_format(str(path), binary=binary)
    loaded = Vectors.load(path)  # the format is told apart by content
    assert loaded.words == vectors.words
    # gensim's text format prints 6 significant digits; binary is exact.
    np.testing.assert_allclose(loaded.matrix, vectors.matrix, rtol=0 if binary else 1e-5,
                               atol=0 if binary else 1e-6)


def test_most_similar_equals_gensims(vectors):
    keyed = KeyedVectors(vectors.dim)
    keyed.add_vectors(vectors.words, vectors.matrix)
    for word in vectors.words:
        ours = vectors.most_similar(word, topn=4)
        theirs = keyed.most_similar(word, topn=4)
        assert [w for w, _ in ours] == [w for w, _ in theirs]
        np.testing.assert_allclose([s for _, s in ours], [s for _, s in theirs], atol=1e-5)


def test_keras_embedding_holds_the_rows(vectors):
    layer = vectors.as_keras_embedding()
    ids = np.array([[2, 0, 5]])
    np.testing.assert_array_equal(np.asarray(layer(ids))[0], vectors.matrix[[2, 0, 5]])
    assert not layer.trainable


def test_malformed_files_are_named_by_line(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text("2 3\na 1 2 3\nb 1 2\n")
    with pytest.raises(VectorsFileError, match=r"bad.txt:3: 2 values, the header says 3"):
        Vectors.load(path)
    path.write_text("two three\n")
    with pytest.raises(VectorsFileError, match=r"bad.txt:1: not a word2vec header"):
        Vectors.load(path)


def test_names_with_spaces_are_refused():
    with pytest.raises(ValueError, match="whitespace"):
        Vectors(["new york"], np.zeros((1, 2)))


def test_word2vec_c_text_rows_with_a_trailing_space_read_as_gensim_reads_them(tmp_path):
    # word2vec.c's text output ends every row with "value \n".
    path = tmp_path / "w2v.txt"
    path.write_text("2 3\nthe 0.5 -1 2.25 \nend 1e-3 0 -0.125 \n")
    ours = Vectors.load(path)
    theirs = KeyedVectors.load_word2vec_format(str(path))
    assert ours.words == theirs.index_to_key
    np.testing.assert_array_equal(ours.matrix, theirs.vectors)
