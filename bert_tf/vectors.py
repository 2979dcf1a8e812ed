"""A set of item vectors and the word2vec file formats.

`Vectors` holds the items (words, graph nodes, catalogue items) and one row
each, answers nearest-neighbour queries by cosine, and reads and writes the
two formats of Mikolov's word2vec that gensim's `KeyedVectors`, fastText and
most tools read:

* text: a header line `count dim`, then per item `item v1 ... vd`;
* binary: the same header line, then per item its name, one space, `dim`
  little-endian float32 values and (as word2vec.c writes it) a newline.

Item names may not contain whitespace in either format: the name ends at the
first space.

>>> import numpy as np, os, tempfile
>>> vectors = Vectors(["king", "queen", "apple"],
...                   np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]], np.float32))
>>> [item for item, _ in vectors.most_similar("king", topn=2)]
['queen', 'apple']
>>> path = os.path.join(tempfile.mkdtemp(), "vectors.bin")
>>> vectors.save(path, binary=True)
>>> Vectors.load(path).words
['king', 'queen', 'apple']
"""

from __future__ import annotations

import os
from typing import Iterable, Sequence

import numpy as np

from bert_tf import atomic_io


class VectorsFileError(ValueError):
    """A malformed vectors file; the message names the file (and line)."""


class Vectors:
    """Items and their vectors (`matrix[i]` is the vector of `words[i]`)."""

    def __init__(self, words: Sequence[str], matrix: np.ndarray):
        matrix = np.asarray(matrix, dtype=np.float32)
        if matrix.ndim != 2 or matrix.shape[0] != len(words):
            raise ValueError(f"Vectors: {len(words)} items but a matrix of shape {matrix.shape}")
        self.words = list(words)
        self.matrix = matrix
        self.index = {word: i for i, word in enumerate(self.words)}
        if len(self.index) != len(self.words):
            raise ValueError("Vectors: the item names are not unique")
        for word in self.words:
            if not word or any(c.isspace() for c in word):
                raise ValueError(f"Vectors: item {word!r} is empty or holds whitespace, which "
                                 "the word2vec formats cannot store")
        self._unit = None

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word) -> bool:
        return word in self.index

    def __getitem__(self, word: str) -> np.ndarray:
        return self.matrix[self.index[word]]

    @property
    def dim(self) -> int:
        return int(self.matrix.shape[1])

    def unit_vectors(self) -> np.ndarray:
        """Rows scaled to length 1 (a zero row stays zero), computed once."""
        if self._unit is None:
            norms = np.linalg.norm(self.matrix, axis=1, keepdims=True)
            self._unit = self.matrix / np.where(norms > 0, norms, 1.0)
        return self._unit

    def similarity(self, a: str, b: str) -> float:
        unit = self.unit_vectors()
        return float(unit[self.index[a]] @ unit[self.index[b]])

    def most_similar(self, key: str | np.ndarray, topn: int = 10,
                     exclude: Iterable[str] = ()) -> list[tuple[str, float]]:
        """The `topn` items of highest cosine with `key` (an item or a vector),
        best first; an item key and `exclude` are never answered."""
        unit = self.unit_vectors()
        if isinstance(key, str):
            if key not in self.index:
                raise KeyError(f"{key!r} is not in the vectors")
            query = unit[self.index[key]]
            exclude = {key, *exclude}
        else:
            query = np.asarray(key, np.float32)
            query = query / max(float(np.linalg.norm(query)), 1e-12)
            exclude = set(exclude)
        scores = unit @ query
        skip = [self.index[w] for w in exclude if w in self.index]
        scores[skip] = -np.inf
        topn = min(topn, len(self.words) - len(skip))
        if topn <= 0:
            return []
        best = np.argpartition(-scores, topn - 1)[:topn]
        best = best[np.argsort(-scores[best], kind="stable")]
        return [(self.words[i], float(scores[i])) for i in best]

    def as_keras_embedding(self, trainable: bool = False, **kwargs):
        """A `keras.layers.Embedding` whose row i is `matrix[i]` (id i is `words[i]`)."""
        import keras

        layer = keras.layers.Embedding(len(self.words), self.dim, trainable=trainable,
                                       embeddings_initializer=keras.initializers.Constant(self.matrix),
                                       **kwargs)
        layer.build((None,))
        return layer

    # ----- files -----

    def save(self, path: str | os.PathLike, binary: bool = False) -> None:
        """Writes the word2vec text (or binary) format, atomically."""
        path = os.fspath(path)
        header = f"{len(self.words)} {self.dim}\n"
        if not binary:
            with atomic_io.open_for_write(path) as f:
                f.write(header)
                for word, row in zip(self.words, self.matrix):
                    # repr-exact float32 values: the file reads back bit for bit.
                    f.write(word + " " + " ".join(map(_float_text, row)) + "\n")
            return
        folder = os.path.dirname(os.path.abspath(path))
        os.makedirs(folder, exist_ok=True)
        tmp = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as f:
                f.write(header.encode("utf-8"))
                rows = self.matrix.astype("<f4")
                for word, row in zip(self.words, rows):
                    f.write(word.encode("utf-8") + b" " + row.tobytes() + b"\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    @classmethod
    def load(cls, path: str | os.PathLike, binary: bool | None = None) -> "Vectors":
        """Reads either word2vec format; `binary=None` tells them apart by content."""
        path = os.fspath(path)
        with open(path, "rb") as f:
            data = f.read()
        end = data.find(b"\n")
        try:
            count, dim = (int(x) for x in data[:end].split())
        except ValueError:
            raise VectorsFileError(f"{path}:1: not a word2vec header 'count dimensions' "
                                   f"({data[:40]!r})") from None
        if binary is None:
            binary = _looks_binary(data[end + 1:], count, dim)
        if binary:
            return cls._parse_binary(path, data, end + 1, count, dim)
        return cls._parse_text(path, data[end + 1:], count, dim)

    @classmethod
    def _parse_text(cls, path, body: bytes, count: int, dim: int) -> "Vectors":
        words, matrix = [], np.empty((count, dim), np.float32)
        lines = body.split(b"\n")
        if lines and lines[-1] == b"":
            lines.pop()
        if len(lines) != count:
            raise VectorsFileError(f"{path}: the header announces {count} vectors, the file "
                                   f"holds {len(lines)}")
        for i, raw in enumerate(lines):
            parts = raw.decode("utf-8").split()
            if len(parts) != dim + 1:
                raise VectorsFileError(f"{path}:{i + 2}: {len(parts) - 1} values, the header "
                                       f"says {dim}")
            words.append(parts[0])
            try:
                matrix[i] = np.array(parts[1:], dtype=np.float32)
            except ValueError:
                raise VectorsFileError(f"{path}:{i + 2}: a value is not a number") from None
        return cls(words, matrix)

    @classmethod
    def _parse_binary(cls, path, data: bytes, pos: int, count: int, dim: int) -> "Vectors":
        words, matrix = [], np.empty((count, dim), np.float32)
        width = 4 * dim
        for i in range(count):
            space = data.find(b" ", pos)
            if space < 0 or space + 1 + width > len(data):
                raise VectorsFileError(f"{path}: truncated at vector {i + 1} of {count}")
            # word2vec.c ends rows with "\n"; some writers do not.
            words.append(data[pos:space].lstrip(b"\n").decode("utf-8"))
            matrix[i] = np.frombuffer(data, "<f4", dim, space + 1)
            pos = space + 1 + width
        return cls(words, matrix)


def _float_text(value) -> str:
    return repr(float(value))


def _looks_binary(body: bytes, count: int, dim: int) -> bool:
    """True unless the first row reads as a line of printable text: raw
    float32 bytes are almost never valid, printable UTF-8."""
    if count == 0:
        return False
    end = body.find(b"\n")
    first = body[:end if end >= 0 else len(body)]
    try:
        text = first.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return not text.replace("\t", " ").replace("\r", "").isprintable()
