"""GPT-2's byte-level BPE: `encoder.json` + `vocab.bpe`, reversible on any text.

Text becomes UTF-8 bytes, each byte a printable stand-in character (so that
a vocabulary file never holds spaces or control characters), and words of
those characters are merged pair by pair in the order `vocab.bpe` lists the
merges. Before merging, text is cut into pre-tokens by GPT-2's pattern: the
English contractions, runs of letters, of digits, or of other symbols, each
with at most one leading space, and runs of whitespace. No merge crosses a
pre-token, and every byte has a token, so there is no unknown token and
`decode(encode(text)) == text` for every string.

The ids are those of OpenAI's `encoder.py` and of Hugging Face's
`GPT2Tokenizer` loaded from the same two files. `vocab.bpe` starts with a
`#version` line, which both of those skip unread.

    >>> import os, tempfile
    >>> folder = tempfile.mkdtemp()
    >>> merges = [("h", "e"), ("l", "l"), ("he", "ll"), ("Ġ", "w")]
    >>> tokenizer = ByteLevelBPE.from_merges(merges)
    >>> tokenizer.tokenize("hello world")
    ['hell', 'o', 'Ġw', 'o', 'r', 'l', 'd']
    >>> tokenizer.save(folder)
    >>> again = ByteLevelBPE.from_files(os.path.join(folder, "encoder.json"),
    ...                                 os.path.join(folder, "vocab.bpe"))
    >>> again.decode(again.encode("hello wörld 🙂")), again.eot_id
    ('hello wörld 🙂', 260)
"""

from __future__ import annotations

import functools
import heapq
import json
import os
from collections.abc import Iterable, Sequence

import regex

from bert_tf import atomic_io, text_files

END_OF_TEXT = "<|endoftext|>"
ENCODER_FILE = "encoder.json"
MERGES_FILE = "vocab.bpe"
MERGES_HEADER = "#version: 0.2"

# GPT-2's pre-tokenization pattern. \p{L} and \p{N} are Unicode letters and
# numbers; `(?!\S)` leaves the last space of a run to the word after it.
PRETOKEN_PATTERN = regex.compile(
    r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")


class BPEFileError(ValueError):
    """An encoder.json or vocab.bpe that cannot be used."""


@functools.lru_cache(maxsize=None)
def byte_to_unicode() -> dict[int, str]:
    """Byte -> the character that stands for it in vocabulary files.

    Printable Latin-1 bytes (`!`..`~`, `¡`..`¬`, `®`..`ÿ`) stand for
    themselves; the other 68 (controls, space, DEL, NBSP, soft hyphen) get
    code points 256, 257, ... in byte order: space becomes `Ġ`, newline `Ċ`.
    The 256 base tokens of a GPT-2 vocabulary are these characters in code
    point order.

    >>> byte_to_unicode()[ord(" ")], byte_to_unicode()[ord("\\n")], byte_to_unicode()[ord("A")]
    ('Ġ', 'Ċ', 'A')
    """
    printable = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    table = {b: chr(b) for b in printable}
    for offset, b in enumerate(b for b in range(256) if b not in table):
        table[b] = chr(256 + offset)
    return table


_STAND_IN = {b: c for b, c in byte_to_unicode().items()}
_BYTE_OF = {ord(c): b for b, c in byte_to_unicode().items()}


def base_tokens() -> list[str]:
    """The 256 single-byte tokens in GPT-2's order (ids 0-255)."""
    return sorted(byte_to_unicode().values())


def pretokenize(text: str) -> list[str]:
    """GPT-2's pre-tokens of `text`, still as text."""
    return PRETOKEN_PATTERN.findall(text)


def to_byte_chars(pretoken: str) -> str:
    """A pre-token's UTF-8 bytes, each as its stand-in character."""
    # Latin-1 turns each byte into the code point of the same number, which
    # one translate call then maps to its stand-in.
    return pretoken.encode("utf-8").decode("latin-1").translate(_STAND_IN)


def read_encoder(path: str) -> dict[str, int]:
    values = text_files.read_json(path, "BPE encoder file", error=BPEFileError)
    if not isinstance(values, dict) or not all(
            isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool)
            for k, v in values.items()):
        raise BPEFileError(f"{path}: expected a JSON object of token -> integer id")
    if len(set(values.values())) != len(values):
        raise BPEFileError(f"{path}: two tokens share an id")
    return values


def read_merges(path: str) -> list[tuple[str, str]]:
    """The merges of a `vocab.bpe` / `merges.txt` file, in rank order."""
    merges = []
    for number, line in text_files.read_lines(path):
        line = line.rstrip("\r\n")
        if number == 1 and line.startswith("#version"):
            continue
        if not line:
            continue
        parts = line.split(" ")
        if len(parts) != 2 or not all(parts):
            raise BPEFileError(f"{path}:{number}: expected two tokens separated by one space, "
                               f"got {line!r}")
        merges.append((parts[0], parts[1]))
    return merges


class ByteLevelBPE:
    """GPT-2's tokenizer: `encode` text to ids, `decode` ids to text.

    `errors` is how `decode` treats byte sequences that are not UTF-8 (a
    sample cut inside a character): "replace", as OpenAI's code, by default.
    """

    _CACHE_LIMIT = 1 << 18

    def __init__(self, encoder: dict[str, int], merges: Sequence[tuple[str, str]],
                 errors: str = "replace", source: str = "vocabulary"):
        self.encoder = dict(encoder)
        self.decoder = {i: t for t, i in self.encoder.items()}
        self.merges = [tuple(m) for m in merges]
        self.ranks = {pair: rank for rank, pair in reversed(list(enumerate(self.merges)))}
        self.errors = errors
        missing = [t for t in base_tokens() if t not in self.encoder]
        if missing:
            raise BPEFileError(f"{source}: {len(missing)} single-byte token(s) missing, "
                               f"e.g. {missing[0]!r}: not a byte-level vocabulary")
        for a, b in self.merges:
            if a + b not in self.encoder:
                raise BPEFileError(f"{source}: merge {a!r} {b!r} gives {a + b!r}, "
                                   "which the encoder lacks")
        self._cache: dict[str, tuple[str, ...]] = {}
        self._ids_cache: dict[str, tuple[int, ...]] = {}

    @classmethod
    def from_files(cls, encoder_file: str, merges_file: str, **kwargs) -> "ByteLevelBPE":
        return cls(read_encoder(encoder_file), read_merges(merges_file),
                   source=f"{encoder_file} + {merges_file}", **kwargs)

    @classmethod
    def from_folder(cls, folder: str, **kwargs) -> "ByteLevelBPE":
        """OpenAI's file names (`encoder.json`, `vocab.bpe`) or Hugging
        Face's (`vocab.json`, `merges.txt`)."""
        for encoder, merges in ((ENCODER_FILE, MERGES_FILE), ("vocab.json", "merges.txt")):
            if os.path.exists(os.path.join(folder, encoder)):
                return cls.from_files(os.path.join(folder, encoder),
                                      os.path.join(folder, merges), **kwargs)
        if os.path.exists(os.path.join(folder, "tokenizer.json")):
            return cls.from_tokenizer_json(os.path.join(folder, "tokenizer.json"), **kwargs)
        raise FileNotFoundError(f"No {ENCODER_FILE}, vocab.json or tokenizer.json in {folder}")

    @classmethod
    def from_tokenizer_json(cls, path: str, **kwargs) -> "ByteLevelBPE":
        """The BPE model of a Hugging Face `tokenizer.json` (merges as "a b"
        strings or as pairs, depending on the writer's version); its added
        tokens join the encoder."""
        values = text_files.read_json(path, "tokenizer file", error=BPEFileError)
        model = values.get("model") if isinstance(values, dict) else None
        if not isinstance(model, dict) or model.get("type") != "BPE":
            raise BPEFileError(f"{path}: not a BPE tokenizer (model.type is not 'BPE')")
        encoder = dict(model.get("vocab") or {})
        for added in values.get("added_tokens") or []:
            encoder.setdefault(added["content"], added["id"])
        merges = []
        for number, merge in enumerate(model.get("merges") or []):
            pair = merge.split(" ") if isinstance(merge, str) else list(merge)
            if len(pair) != 2:
                raise BPEFileError(f"{path}: merge {number} is not a pair: {merge!r}")
            merges.append((pair[0], pair[1]))
        return cls(encoder, merges, source=path, **kwargs)

    @classmethod
    def from_merges(cls, merges: Sequence[tuple[str, str]],
                    special_tokens: Sequence[str] = (END_OF_TEXT,)) -> "ByteLevelBPE":
        """A vocabulary in GPT-2's order: 256 bytes, merges, special tokens."""
        tokens = base_tokens()
        seen = set(tokens)
        for a, b in merges:
            if a + b not in seen:
                seen.add(a + b)
                tokens.append(a + b)
        tokens += [t for t in special_tokens if t not in seen]
        return cls({t: i for i, t in enumerate(tokens)}, merges)

    @property
    def vocab_size(self) -> int:
        return max(self.decoder) + 1

    @property
    def eot_id(self) -> int | None:
        """The id of `<|endoftext|>`, GPT-2's document separator, if present."""
        return self.encoder.get(END_OF_TEXT)

    def save(self, folder: str, encoder_file: str = ENCODER_FILE,
             merges_file: str = MERGES_FILE) -> None:
        """Writes the encoder (JSON) and the merges (with the version line)."""
        ordered = dict(sorted(self.encoder.items(), key=lambda item: item[1]))
        atomic_io.write_text(os.path.join(folder, encoder_file),
                             json.dumps(ordered, ensure_ascii=False) + "\n")
        atomic_io.write_text(os.path.join(folder, merges_file),
                             MERGES_HEADER + "\n" + "".join(f"{a} {b}\n" for a, b in self.merges))

    def bpe(self, word: str) -> tuple[str, ...]:
        """Merges one pre-token (in stand-in characters) into its tokens.

        OpenAI's rule: each round takes the adjacent pair whose merge ranks
        first and merges all its occurrences, left to right without
        overlaps, until no adjacent pair has a rank. Done with a heap of
        (rank, position) so that a long pre-token (a Chinese sentence is
        one) costs n log n, not n squared: each round pops every entry of
        the best rank, then merges them in position order.
        """
        cached = self._cache.get(word)
        if cached is not None:
            return cached
        ranks = self.ranks
        parts = list(word)
        following = list(range(1, len(parts) + 1))  # len(parts) = none
        preceding = list(range(-1, len(parts) - 1))
        heap = [(ranks[pair], i) for i, pair in enumerate(zip(parts, parts[1:])) if pair in ranks]
        heapq.heapify(heap)
        while heap:
            rank = heap[0][0]
            starts = []
            while heap and heap[0][0] == rank:
                starts.append(heapq.heappop(heap)[1])
            first, second = self.merges[rank]
            for i in sorted(starts):
                j = following[i]
                # An entry is stale when a merge since has changed its pair.
                if parts[i] != first or j >= len(parts) or parts[j] != second:
                    continue
                parts[i], parts[j] = first + second, None
                following[i] = following[j]
                if following[i] < len(parts):
                    preceding[following[i]] = i
                for left in (preceding[i], i):
                    right = following[left] if left >= 0 else len(parts)
                    if left >= 0 and right < len(parts):
                        pair_rank = ranks.get((parts[left], parts[right]))
                        if pair_rank is not None:
                            heapq.heappush(heap, (pair_rank, left))
        result = tuple(p for p in parts if p is not None)
        if len(self._cache) >= self._CACHE_LIMIT:
            self._cache.clear()
        self._cache[word] = result
        return result

    def tokenize(self, text: str) -> list[str]:
        """The tokens of `text`, in stand-in characters."""
        return [token for pretoken in pretokenize(text)
                for token in self.bpe(to_byte_chars(pretoken))]

    def encode(self, text: str, special_tokens: bool = False) -> list[int]:
        """Token ids of `text`.

        By default `<|endoftext|>` in the text is plain text (OpenAI's
        encoder; append `eot_id` between documents instead). With
        `special_tokens=True` each occurrence is that one token, as Hugging
        Face's GPT2Tokenizer reads it.
        """
        if special_tokens and self.eot_id is not None and END_OF_TEXT in text:
            ids = []
            for i, part in enumerate(text.split(END_OF_TEXT)):
                if i:
                    ids.append(self.eot_id)
                ids.extend(self._encode_plain(part))
            return ids
        return self._encode_plain(text)

    def _encode_plain(self, text: str) -> list[int]:
        # Real text repeats its words: each distinct pre-token is looked up
        # once and its ids remembered.
        cache, ids = self._ids_cache, []
        for pretoken in pretokenize(text):
            known = cache.get(pretoken)
            if known is None:
                known = tuple(self.encoder[t] for t in self.bpe(to_byte_chars(pretoken)))
                if len(cache) >= self._CACHE_LIMIT:
                    cache.clear()
                cache[pretoken] = known
            ids.extend(known)
        return ids

    def document_ids(self, text: str) -> list[int]:
        """One document of GPT-2's training stream: its ids, then `<|endoftext|>`."""
        if self.eot_id is None:
            raise ValueError(f"the vocabulary has no {END_OF_TEXT} token to end documents with")
        return self.encode(text) + [self.eot_id]

    def decode(self, ids: Iterable[int]) -> str:
        tokens = []
        for i in ids:
            token = self.decoder.get(int(i))
            if token is None:
                raise KeyError(f"token id {int(i)} is not in the vocabulary "
                               f"(size {self.vocab_size})")
            tokens.append(token)
        return self.decode_tokens(tokens)

    def decode_tokens(self, tokens: Iterable[str]) -> str:
        text = "".join(tokens)
        try:
            data = text.translate(_BYTE_OF).encode("latin-1")
        except UnicodeEncodeError:
            # A character outside the byte alphabet can only come from a
            # special token added by hand; it stands for its UTF-8 bytes.
            data = b"".join(char.translate(_BYTE_OF).encode("latin-1")
                            if ord(char.translate(_BYTE_OF)) < 256 else char.encode("utf-8")
                            for char in text)
        return data.decode("utf-8", errors=self.errors)
