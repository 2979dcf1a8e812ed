"""WordPiece tokenization that gives the ids of Google's original BERT.

The public names and semantics follow Google's `tokenization.py`:
`FullTokenizer` = `BasicTokenizer` (clean-up, CJK splitting, optional
lower-casing with accent stripping, punctuation splitting) followed by a
greedy longest-match-first `WordpieceTokenizer`.

Control characters follow Google's current rule: only Cc and Cf are deleted,
so unassigned (Cn), private-use (Co) and surrogate (Cs) code points survive
cleaning and become `[UNK]` (Google's "support emojis" change of 2019-03-28:
an emoji newer than the Unicode tables is then a token, not nothing).
Hugging Face's ports kept the older rule that deletes every C* character;
`control_chars="huggingface"` selects it, for checkpoints trained with it.

Two deliberate differences, neither of which changes an id:
  * `FullTokenizer.tokenize` caches the pieces of each whitespace-separated
    chunk and of each token inside it, and the class of each character, so
    that a repeated word costs one dict lookup (real text is repetitive);
  * `convert_to_unicode` rejects invalid UTF-8 instead of silently dropping
    bytes, so that corrupt input is noticed.

Pure Python on purpose: data preparation must not pay for importing
TensorFlow. The in-graph equivalent lives in `bert_tf.text_graph`.

    >>> import os, tempfile
    >>> vocab_file = os.path.join(tempfile.mkdtemp(), "vocab.txt")
    >>> with open(vocab_file, "w", encoding="utf-8") as f:
    ...     _ = f.write("[PAD]\\n[UNK]\\n[CLS]\\n[SEP]\\nuna\\n##ffa\\n##ble\\nideas\\n!\\n")
    >>> tokenizer = FullTokenizer(vocab_file, do_lower_case=True)
    >>> tokenizer.tokenize("Unaffable ideas!")
    ['una', '##ffa', '##ble', 'ideas', '!']
"""

from __future__ import annotations

import collections
import os
import re
import unicodedata
from collections.abc import Iterable

UNK_TOKEN = "[UNK]"
MAX_INPUT_CHARS_PER_WORD = 200

# Which Unicode categories cleaning deletes as control characters.
# "google": Cc and Cf, as Google's tokenization.py since 2019-03-28.
# "huggingface": every C* category (Cc, Cf, Cn, Co, Cs), as Google's first
# release and Hugging Face's BertTokenizer.
CONTROL_CHAR_RULES = {
    "google": frozenset({"Cc", "Cf"}),
    "huggingface": frozenset({"Cc", "Cf", "Cn", "Co", "Cs"}),
}
DEFAULT_CONTROL_CHARS = "google"

# Google's CJK Unified Ideograph blocks, as (first, last) code points.
# Hangul, Hiragana and Katakana are deliberately absent: those scripts
# separate words with spaces.
CJK_RANGES = (
    (0x4E00, 0x9FFF),
    (0x3400, 0x4DBF),
    (0x20000, 0x2A6DF),
    (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F),
    (0x2B820, 0x2CEAF),
    (0xF900, 0xFAFF),
    (0x2F800, 0x2FA1F),
)

# Characters that `str.split()` treats as separators but Google's cleaning
# deletes (they are Cc, a control category under either rule), so they must
# not split a word.
_DELETED_SEPARATORS = re.compile("[\x0b\x0c\x1c-\x1f\x85]")

# Checkpoint directory names of Google's releases, e.g. "uncased_L-12_H-768_A-12".
_RELEASED_MODEL = re.compile(
    r"^(?:wwm_)?(uncased|cased|multi_cased|multilingual|chinese)_L-\d+_H-\d+_A-\d+$")
_LOWER_CASED_RELEASES = {"uncased", "multilingual", "chinese"}


# ----------------------------------------------------------------------------
# Text and vocabulary I/O
# ----------------------------------------------------------------------------

def convert_to_unicode(text: str | bytes) -> str:
    """Returns `text` as `str`, decoding bytes as strict UTF-8."""
    if isinstance(text, str):
        return text
    if isinstance(text, (bytes, bytearray)):
        try:
            return bytes(text).decode("utf-8")
        except UnicodeDecodeError as error:
            raise ValueError(
                f"input is not valid UTF-8 (byte {error.start}: "
                f"{bytes(text)[error.start:error.end]!r})") from error
    raise ValueError(f"unsupported string type: {type(text).__name__}")


def printable_text(text: str | bytes) -> str:
    """Returns text fit for printing or logging; never raises on bad bytes."""
    if isinstance(text, (bytes, bytearray)):
        return bytes(text).decode("utf-8", "replace")
    if isinstance(text, str):
        return text
    raise ValueError(f"unsupported string type: {type(text).__name__}")


def load_vocab(vocab_file: str | os.PathLike) -> collections.OrderedDict[str, int]:
    """Reads a vocabulary file (one token per line) into token -> id.

    Like Google's loader, a token's id is its line index and each line is
    stripped of surrounding whitespace; a token that occurs twice keeps its
    first position in the dict but the id of its last line.
    """
    try:
        with open(vocab_file, "rb") as reader:
            data = reader.read()
    except FileNotFoundError:
        raise FileNotFoundError(f"vocabulary file not found: {vocab_file}") from None
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    if not lines:
        raise ValueError(f"vocabulary file is empty: {vocab_file}")
    vocab: collections.OrderedDict[str, int] = collections.OrderedDict()
    for index, line in enumerate(lines):
        try:
            token = line.decode("utf-8")
        except UnicodeDecodeError as error:
            raise ValueError(
                f"{vocab_file}:{index + 1}: line is not valid UTF-8") from error
        vocab[token.strip()] = index
    return vocab


def convert_by_vocab(vocab, items: Iterable) -> list:
    """Maps each item through `vocab`, naming the first item it lacks."""
    try:
        return [vocab[item] for item in items]
    except KeyError as error:
        raise KeyError(f"{error.args[0]!r} is not in the vocabulary") from None


def whitespace_tokenize(text: str) -> list[str]:
    """Splits on runs of whitespace, dropping empty ends."""
    return text.split()


def split_chunks(text: str | bytes) -> list[str]:
    """Splits raw text on whitespace where Google's basic tokenization splits.

    Every step of basic tokenization acts within these chunks, so callers
    may tokenize each distinct chunk once and reuse the result.
    """
    text = convert_to_unicode(text)
    if _DELETED_SEPARATORS.search(text):
        text = _DELETED_SEPARATORS.sub("", text)
    return text.split()


def validate_case_matches_checkpoint(do_lower_case: bool, init_checkpoint: str | None) -> None:
    """Raises ValueError when `do_lower_case` contradicts a released checkpoint.

    Only Google's released model directories are recognised (for instance
    `uncased_L-12_H-768_A-12/bert_model.ckpt`); other paths are accepted
    as they are, since nothing can be known about their casing.
    """
    if not init_checkpoint:
        return
    directory, prefix = os.path.split(os.path.normpath(str(init_checkpoint)))
    if not prefix.startswith("bert_model.ckpt"):
        return
    model_name = os.path.basename(directory)
    match = _RELEASED_MODEL.match(model_name)
    if match is None:
        return
    model_is_lower_cased = match.group(1) in _LOWER_CASED_RELEASES
    if model_is_lower_cased != bool(do_lower_case):
        wanted = "True" if model_is_lower_cased else "False"
        raise ValueError(
            f"do_lower_case={bool(do_lower_case)} does not match checkpoint "
            f"{init_checkpoint}: {model_name} was trained with "
            f"do_lower_case={wanted}. Change --do_lower_case or --init_checkpoint.")


# ----------------------------------------------------------------------------
# Character classes (Google's definitions), memoised per code point
# ----------------------------------------------------------------------------

def is_whitespace(char: str) -> bool:
    """Space, tab, newline, carriage return or a Unicode space separator (Zs)."""
    return char in " \t\n\r" or unicodedata.category(char) == "Zs"


def check_control_chars(control_chars: str) -> str:
    """Returns `control_chars` if it names a rule of CONTROL_CHAR_RULES."""
    if control_chars not in CONTROL_CHAR_RULES:
        raise ValueError(f"control_chars={control_chars!r}: expected one of "
                         f"{', '.join(map(repr, CONTROL_CHAR_RULES))}")
    return control_chars


def is_control(char: str, control_chars: str = DEFAULT_CONTROL_CHARS) -> bool:
    """A control character that cleaning deletes under rule `control_chars`.

    Tab, newline and carriage return are Cc but count as whitespace.
    """
    return (char not in "\t\n\r"
            and unicodedata.category(char) in CONTROL_CHAR_RULES[control_chars])


def is_punctuation(char: str) -> bool:
    """Unicode punctuation (P*) plus every ASCII symbol that is not alphanumeric."""
    cp = ord(char)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(char).startswith("P")


def is_cjk_char(cp: int) -> bool:
    """True for code points in Google's CJK ideograph blocks."""
    return any(first <= cp <= last for first, last in CJK_RANGES)


class _CharTable(dict):
    """A `str.translate` table that classifies each code point on first use."""

    def __init__(self, rule):
        super().__init__()
        self._rule = rule

    def __missing__(self, cp: int):
        value = self[cp] = self._rule(cp)
        return value


def _clean_rule(control_chars: str):
    def rule(cp: int):
        """Drops NUL, U+FFFD and controls, maps whitespace to a space, pads CJK."""
        char = chr(cp)
        if cp == 0 or cp == 0xFFFD or is_control(char, control_chars):
            return None
        if is_whitespace(char):
            return " "
        if is_cjk_char(cp):
            return f" {char} "
        return cp
    return rule


def _punctuation_rule(cp: int):
    char = chr(cp)
    return f" {char} " if is_punctuation(char) else cp


def _nonspacing_mark_rule(cp: int):
    return None if unicodedata.category(chr(cp)) == "Mn" else cp


_CLEAN_AND_SPLIT_CJK = {rule: _CharTable(_clean_rule(rule)) for rule in CONTROL_CHAR_RULES}
_PAD_PUNCTUATION = _CharTable(_punctuation_rule)
_DROP_NONSPACING_MARKS = _CharTable(_nonspacing_mark_rule)


# ----------------------------------------------------------------------------
# Tokenizers
# ----------------------------------------------------------------------------

class BasicTokenizer:
    """Cleans text and splits it on whitespace, punctuation and CJK characters.

    `control_chars` names the rule for deleting control characters (see
    CONTROL_CHAR_RULES): Google's current one by default.
    """

    def __init__(self, do_lower_case: bool = True,
                 control_chars: str = DEFAULT_CONTROL_CHARS):
        self.do_lower_case = do_lower_case
        self.control_chars = check_control_chars(control_chars)
        self._clean_table = _CLEAN_AND_SPLIT_CJK[control_chars]

    def tokenize(self, text: str | bytes) -> list[str]:
        words = []
        for token in self.split_tokens(text):
            words.extend(self.split_token(token))
        return words

    def split_tokens(self, text: str | bytes) -> list[str]:
        """Cleans text and splits it on whitespace and around ideographs."""
        return convert_to_unicode(text).translate(self._clean_table).split()

    def split_token(self, token: str) -> list[str]:
        """Case-folds one token and splits it into words at punctuation."""
        if self.do_lower_case:
            token = strip_accents(token.lower())
        # Padding punctuation with spaces then splitting gives exactly
        # Google's "each punctuation mark is its own word" rule.
        return token.translate(_PAD_PUNCTUATION).split()


def strip_accents(text: str) -> str:
    """Decomposes (NFD) and drops non-spacing marks: 'café' -> 'cafe'."""
    if text.isascii():
        return text
    return unicodedata.normalize("NFD", text).translate(_DROP_NONSPACING_MARKS)


class WordpieceTokenizer:
    """Greedy longest-match-first split of words into vocabulary pieces."""

    def __init__(self, vocab, unk_token: str = UNK_TOKEN,
                 max_input_chars_per_word: int = MAX_INPUT_CHARS_PER_WORD):
        self.vocab = vocab
        self.unk_token = unk_token
        self.max_input_chars_per_word = max_input_chars_per_word
        # No piece is longer than the longest entry, so longer candidate
        # substrings need not be tried: same result, far fewer lookups.
        self._longest_entry = max((len(token) for token in vocab), default=0)

    def tokenize(self, text: str | bytes) -> list[str]:
        output = []
        for word in convert_to_unicode(text).split():
            output.extend(self.tokenize_word(word))
        return output

    def tokenize_word(self, word: str) -> list[str]:
        """The pieces of one word, or [UNK] if it is too long or unsplittable."""
        if len(word) > self.max_input_chars_per_word:
            return [self.unk_token]
        vocab, longest = self.vocab, self._longest_entry
        pieces = []
        start = 0
        while start < len(word):
            prefix = "##" if start else ""
            end = min(len(word), start + longest)
            while end > start:
                piece = prefix + word[start:end]
                if piece in vocab:
                    break
                end -= 1
            else:
                return [self.unk_token]
            pieces.append(piece)
            start = end
        return pieces


class FullTokenizer:
    """Basic tokenization followed by WordPiece: Google's end-to-end tokenizer.

    `control_chars="huggingface"` deletes every C* character, as Hugging
    Face's BertTokenizer does; the default is Google's current rule.
    """

    # Caches are emptied when full, which bounds their memory to tens of MB.
    # Long chunks (a Chinese line has no spaces) seldom repeat: not cached.
    _CACHE_LIMIT = 1 << 18
    _LONGEST_CACHED_CHUNK = 64

    def __init__(self, vocab_file: str | os.PathLike, do_lower_case: bool = True,
                 control_chars: str = DEFAULT_CONTROL_CHARS):
        self.vocab = load_vocab(vocab_file)
        self.inv_vocab = {index: token for token, index in self.vocab.items()}
        self.do_lower_case = do_lower_case
        self.control_chars = check_control_chars(control_chars)
        self.basic_tokenizer = BasicTokenizer(do_lower_case=do_lower_case,
                                              control_chars=control_chars)
        self.wordpiece_tokenizer = WordpieceTokenizer(vocab=self.vocab)
        self._chunk_pieces: dict[str, tuple[str, ...]] = {}
        self._token_pieces: dict[str, list[str]] = {}

    def tokenize(self, text: str | bytes) -> list[str]:
        cache = self._chunk_pieces
        output = []
        for chunk in split_chunks(text):
            pieces = cache.get(chunk)
            if pieces is None:
                pieces = self._tokenize_chunk(chunk)
                if len(chunk) <= self._LONGEST_CACHED_CHUNK:
                    if len(cache) >= self._CACHE_LIMIT:
                        cache.clear()
                    cache[chunk] = pieces
            output.extend(pieces)
        return output

    def _tokenize_chunk(self, chunk: str) -> tuple[str, ...]:
        # Chinese has no spaces, so chunks rarely repeat, but the tokens
        # inside them (single ideographs) do: remember those as well.
        cache = self._token_pieces
        if len(cache) >= self._CACHE_LIMIT:
            cache.clear()
        pieces = []
        for token in self.basic_tokenizer.split_tokens(chunk):
            token_pieces = cache.get(token)
            if token_pieces is None:
                token_pieces = cache[token] = [
                    piece for word in self.basic_tokenizer.split_token(token)
                    for piece in self.wordpiece_tokenizer.tokenize_word(word)]
            pieces.extend(token_pieces)
        return tuple(pieces)

    def convert_tokens_to_ids(self, tokens: Iterable[str]) -> list[int]:
        return convert_by_vocab(self.vocab, tokens)

    def convert_ids_to_tokens(self, ids: Iterable[int]) -> list[str]:
        return convert_by_vocab(self.inv_vocab, ids)
