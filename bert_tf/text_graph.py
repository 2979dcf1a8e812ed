"""BERT tokenization and input packing as TensorFlow ops.

`GraphTokenizer` gives the ids of `bert_tf.tokenization.FullTokenizer`
(Google's tokenizer) inside a graph: in `tf.data.Dataset.map`, in a
`tf.function`, and in an exported SavedModel. It runs Google's basic
tokenization as regex rewrites and hands the resulting words to
tensorflow-text's `FastWordpieceTokenizer`.

Why not `tf_text.BertTokenizer`/`FastBertTokenizer` with lower-casing on?
Their case folding is ICU's NFKC_Casefold, which is not Google's
`str.lower()` + NFD: it rewrites `…` to `...`, drops `´`, folds the final
`ς` to `σ` and maps full-width forms (`，`, `１`, `Ａ`) to ASCII. Here the
character classes (control, whitespace, punctuation, non-spacing marks) are
generated from Python's `unicodedata`, the very tables FullTokenizer uses,
and lower-casing is `tf.strings.lower(encoding="utf-8")`, which applies the
full Unicode lower-case mapping including the Final_Sigma rule, like Python.

Control characters follow the same rule as FullTokenizer: Google's
(`control_chars="google"`, only Cc and Cf deleted) by default, Hugging
Face's (`"huggingface"`, every C* deleted) on request.

Python's Unicode tables and the ICU inside TensorFlow are of different
Unicode versions (here Python 3.11's 14.0; `tf.strings.lower` knows an older
one, tensorflow-text's NFD a newer one). The code points where the two
disagree are found once per process by running both on every code point,
and rewritten to Python's result before the ICU op sees them:
  * a letter Python lower-cases and TensorFlow does not (Unicode 14's
    Vithkuqi and Latin additions) is lower-cased by an explicit rewrite;
  * a code point Python does not decompose and tensorflow-text does (there:
    Unicode 16 letters, unassigned for Python, kept under Google's rule) is
    kept apart from NFD, which Python's NFD allows because it treats such a
    code point as a starter that nothing reorders across.
These rewrites run only in batches that hold such a code point. What remains
is theoretical: the Final_Sigma rule next to a letter only one side knows as
cased, or canonical reordering of a mark only ICU knows next to a spacing
mark with a combining class. Invalid UTF-8 is the one practical difference:
FullTokenizer raises ValueError; the graph does not validate, and a word
holding bad bytes comes out as [UNK]. Everything else (controls, zero-width,
private-use and unassigned code points, emoji, combining marks, CJK
extension blocks, full-width forms, words over 200 characters) gives the
same ids: tests/test_tokenizer_fuzz.py checks 20,000 random strings against
Google's own tokenization.py.

    >>> import os, tempfile
    >>> vocab_file = os.path.join(tempfile.mkdtemp(), "vocab.txt")
    >>> with open(vocab_file, "w", encoding="utf-8") as f:
    ...     _ = f.write("[PAD]\\n[UNK]\\n[CLS]\\n[SEP]\\n[MASK]\\n!\\nhello\\nworld\\n")
    >>> tokenizer = GraphTokenizer(vocab_file, do_lower_case=True)
    >>> ids = tokenizer.tokenize(tf.constant(["Hello world!"]))
    >>> ids.to_list()
    [[6, 7, 5]]
    >>> tokenizer.pack([ids], seq_length=8)["input_word_ids"].numpy().tolist()
    [[2, 6, 7, 5, 3, 0, 0, 0]]
"""

from __future__ import annotations

import functools
import os
import sys
import unicodedata

import tensorflow as tf
import tensorflow_text as tf_text  # also registers the ops SavedModels need

from bert_tf import tokenization

# FastWordpieceTokenizer limits words in bytes, Google in characters: allow
# every 200-character word through and replace longer ones by a word that
# exceeds the byte limit, which the tokenizer maps to [UNK].
_MAX_WORD_BYTES = 4 * tokenization.MAX_INPUT_CHARS_PER_WORD
_TOO_LONG_WORD = "x" * (_MAX_WORD_BYTES + 1)


def _regex_class(predicate) -> str:
    """An RE2 character class of all code points satisfying `predicate`."""
    ranges, start = [], None
    for cp in range(sys.maxunicode + 2):
        inside = (cp <= sys.maxunicode and not 0xD800 <= cp <= 0xDFFF
                  and predicate(cp))
        if inside and start is None:
            start = cp
        elif not inside and start is not None:
            ranges.append((start, cp - 1))
            start = None
    return _ranges_to_class(ranges)


def _ranges_to_class(ranges) -> str:
    parts = (f"\\x{{{a:X}}}" if a == b else f"\\x{{{a:X}}}-\\x{{{b:X}}}"
             for a, b in ranges)
    return "[" + "".join(parts) + "]"


def _literal(char: str) -> str:
    """An RE2 pattern matching exactly `char`."""
    return f"\\x{{{ord(char):X}}}"


@functools.cache
def _unicode_categories() -> list[str]:
    return [unicodedata.category(chr(cp)) for cp in range(sys.maxunicode + 1)]


@functools.cache
def _character_classes(control_chars: str) -> dict[str, str]:
    """Google's character classes from Python's Unicode tables, built once
    per control-character rule."""
    categories = _unicode_categories()
    deleted = tokenization.CONTROL_CHAR_RULES[control_chars]

    def dropped(cp):
        return (cp == 0 or cp == 0xFFFD
                or (categories[cp] in deleted and chr(cp) not in "\t\n\r"))

    def separator(cp):
        # Zl/Zp survive Google's cleaning but str.split() splits on them.
        # The plain space is left out: rewriting it to itself is costly.
        return cp != 0x20 and (chr(cp) in "\t\n\r"
                               or categories[cp] in ("Zs", "Zl", "Zp"))

    def punctuation(cp):
        return (33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96
                or 123 <= cp <= 126 or categories[cp][0] == "P")

    def isolated(cp):
        return punctuation(cp) or tokenization.is_cjk_char(cp)

    return {
        "dropped": _regex_class(dropped),
        "separator": _regex_class(separator),
        "isolated": _regex_class(isolated),
        "nonspacing_mark": _regex_class(lambda cp: categories[cp] == "Mn"),
    }


@functools.cache
def _icu_disagreements() -> tuple[dict[str, str], dict[str, str]]:
    """Code points whose lower-case form (TensorFlow's ICU) or NFD
    (tensorflow-text's ICU) is not Python's, each with Python's result.

    All code points go through each op once, as one string with U+0001
    (caseless, a starter, never decomposed) between them; ~1 s.
    """
    chars = [chr(cp) for cp in range(2, sys.maxunicode + 1) if not 0xD800 <= cp <= 0xDFFF]
    joined = tf.constant("\x01".join(chars).encode("utf-8"))
    lowered = tf.strings.lower(joined, encoding="utf-8").numpy().decode("utf-8").split("\x01")
    decomposed = tf_text.normalize_utf8(joined, "NFD").numpy().decode("utf-8").split("\x01")
    lower = {c: c.lower() for c, icu in zip(chars, lowered) if icu != c.lower()}
    nfd = {}
    for char, icu in zip(chars, decomposed):
        python = unicodedata.normalize("NFD", char)
        if icu != python:
            nfd[char] = python
    # Rewriting a letter to Python's lower-case form first only helps where
    # TensorFlow then leaves that form alone.
    if lower:
        targets = tf.strings.lower(tf.constant(list(lower.values())), encoding="utf-8")
        lower = {c: low for (c, low), icu in zip(lower.items(), targets.numpy())
                 if icu.decode("utf-8") == low}
    return lower, nfd


def _rewrite_rule(mapping: dict[str, str], keep) -> tuple[str | None, list]:
    """An RE2 class of the code points in `mapping` that survive cleaning
    (those matching `keep`, as a predicate), and (pattern, replacement)
    pairs for those whose replacement is not themselves."""
    chars = sorted(c for c in mapping if keep(c))
    if not chars:
        return None, []
    pattern = _ranges_to_class([(ord(c), ord(c)) for c in chars])
    rewrites = [(_literal(c), mapping[c].replace("\\", "\\\\"))
                for c in chars if mapping[c] != c]
    return pattern, rewrites


def _when_present(text: tf.Tensor, pattern: str | None, rewrite,
                  otherwise=tf.identity) -> tf.Tensor:
    """`rewrite(text)` if any string of the batch holds a `pattern` code
    point, else `otherwise(text)`: ordinary text pays one scan."""
    if pattern is None:
        return otherwise(text)
    present = tf.reduce_any(tf.strings.regex_full_match(text, f"(?s).*{pattern}.*"))
    return tf.cond(present, lambda: rewrite(text), lambda: otherwise(text))


def _nfd(text: tf.Tensor) -> tf.Tensor:
    return tf_text.normalize_utf8(text, "NFD")


class GraphTokenizer(tf.Module):
    """Google's FullTokenizer as graph ops, plus BERT input packing."""

    def __init__(self, vocab_file: str | os.PathLike, do_lower_case: bool = True,
                 control_chars: str = tokenization.DEFAULT_CONTROL_CHARS,
                 name: str | None = None):
        super().__init__(name=name)
        vocab = tokenization.load_vocab(vocab_file)
        # Ids are line indices; a duplicate line keeps its last index.
        tokens = [""] * (max(vocab.values()) + 1)
        for token, index in vocab.items():
            tokens[index] = token
        self.vocab_file = tf.saved_model.Asset(os.fspath(vocab_file))
        self.do_lower_case = bool(do_lower_case)
        self.control_chars = tokenization.check_control_chars(control_chars)
        _required_id(vocab, tokenization.UNK_TOKEN, vocab_file)
        self._classes = _character_classes(control_chars)
        if self.do_lower_case:
            def kept(char):
                return not tokenization.is_control(char, control_chars)

            lower, nfd = _icu_disagreements()
            self._lower_pattern, self._lower_rewrites = _rewrite_rule(lower, kept)
            self._nfd_pattern, self._nfd_rewrites = _rewrite_rule(nfd, kept)
        self._wordpiece = tf_text.FastWordpieceTokenizer(
            vocab=_unique_placeholders(tokens), token_out_type=tf.int32,
            unknown_token=tokenization.UNK_TOKEN, no_pretokenization=True,
            max_bytes_per_word=_MAX_WORD_BYTES)
        self.special_tokens = {
            "vocab_size": len(tokens),
            "start_of_sequence_id": _required_id(vocab, "[CLS]", vocab_file),
            "end_of_segment_id": _required_id(vocab, "[SEP]", vocab_file),
            "padding_id": _required_id(vocab, "[PAD]", vocab_file),
            "mask_id": _required_id(vocab, "[MASK]", vocab_file),
        }

    def get_special_tokens_dict(self) -> dict[str, tf.Tensor]:
        """The special ids as int32 scalars, named as in TF-Hub preprocessors."""
        return {key: tf.constant(value, tf.int32)
                for key, value in self.special_tokens.items()}

    def normalize(self, strings: tf.Tensor) -> tf.Tensor:
        """Google's basic tokenization: words separated by single spaces."""
        classes = self._classes
        text = tf.strings.regex_replace(strings, classes["dropped"], "")
        text = tf.strings.regex_replace(text, classes["separator"], " ")
        if self.do_lower_case:
            text = _when_present(text, self._lower_pattern, self._python_lower)
            text = tf.strings.lower(text, encoding="utf-8")
            text = _when_present(text, self._nfd_pattern, self._nfd_apart, _nfd)
            text = tf.strings.regex_replace(text, classes["nonspacing_mark"], "")
        # Google isolates ideographs before lower-casing and punctuation
        # after; doing both here is equivalent (ideographs are caseless, not
        # case-ignorable, and NFD maps none into or out of the CJK blocks)
        # and saves a pass.
        return tf.strings.regex_replace(text, classes["isolated"], r" \0 ")

    def _python_lower(self, text: tf.Tensor) -> tf.Tensor:
        """Lower-cases the letters TensorFlow's ICU does not know as Python does."""
        for pattern, replacement in self._lower_rewrites:
            text = tf.strings.regex_replace(text, pattern, replacement)
        return text

    def _nfd_apart(self, text: tf.Tensor) -> tf.Tensor:
        """NFD, leaving the code points where ICU and Python disagree to
        Python's decomposition (itself, for code points Python lacks)."""
        pieces = tf_text.regex_split(text, self._nfd_pattern, self._nfd_pattern)
        flat = pieces.flat_values
        apart = tf.strings.regex_full_match(flat, self._nfd_pattern)
        kept = flat
        for pattern, replacement in self._nfd_rewrites:
            kept = tf.strings.regex_replace(kept, pattern, replacement)
        flat = tf.where(apart, kept, _nfd(flat))
        return tf.strings.reduce_join(pieces.with_flat_values(flat), axis=-1)

    def tokenize(self, strings) -> tf.RaggedTensor:
        """Token ids, int32 [batch, (pieces)], for a [batch] string tensor."""
        strings = tf.convert_to_tensor(strings, tf.string)
        if strings.shape.rank not in (None, 1):
            raise ValueError(f"tokenize expects a [batch] string tensor, got shape {strings.shape}")
        words = tf.strings.split(self.normalize(strings))
        too_long = (tf.strings.length(words.flat_values, unit="UTF8_CHAR")
                    > tokenization.MAX_INPUT_CHARS_PER_WORD)
        words = words.with_flat_values(
            tf.where(too_long, _TOO_LONG_WORD, words.flat_values))
        return self._wordpiece.tokenize(words).merge_dims(-2, -1)

    def pack(self, segments, seq_length: int) -> dict[str, tf.Tensor]:
        """[CLS] a [SEP] (b [SEP]), truncated like Google and padded.

        `segments` holds one or two ragged id tensors [batch, (pieces)]
        (or [batch, (words), (pieces)], as TF-Hub preprocessors return).

        Over-long pairs lose tokens from the end of the longer segment
        first (the second on ties), exactly as Google's `_truncate_seq_pair`.
        Returns int32 [batch, seq_length] input_word_ids, input_mask and
        input_type_ids.
        """
        if not 1 <= len(segments) <= 2:
            raise ValueError(f"pack takes 1 or 2 segments, got {len(segments)}")
        if seq_length < len(segments) + 2:
            raise ValueError(f"seq_length={seq_length} leaves no room for tokens "
                             f"between {len(segments) + 1} special tokens")
        # TF-Hub tokenizers return [batch, words, pieces]; words don't matter here.
        segments = [tf.cast(s.merge_dims(1, -1) if s.shape.rank == 3 else s, tf.int32)
                    for s in segments]
        segments = truncate_segments(segments, seq_length - len(segments) - 1)
        cls = self.special_tokens["start_of_sequence_id"]
        sep = self.special_tokens["end_of_segment_id"]
        batch = segments[0].nrows()
        ids, types = [], []
        for index, segment in enumerate(segments):
            parts = [segment, tf.fill([batch, 1], sep)]
            if index == 0:
                parts.insert(0, tf.fill([batch, 1], cls))
            segment = tf.concat(parts, axis=1)
            ids.append(segment)
            types.append(tf.ones_like(segment) * index)
        word_ids = tf.concat(ids, axis=1)
        type_ids = tf.concat(types, axis=1)
        shape = [None, seq_length]
        padding = self.special_tokens["padding_id"]
        return {
            "input_word_ids": word_ids.to_tensor(padding, shape=shape),
            "input_mask": tf.ones_like(word_ids).to_tensor(0, shape=shape),
            "input_type_ids": type_ids.to_tensor(0, shape=shape),
        }

    def __call__(self, strings, seq_length: int = 128) -> dict[str, tf.Tensor]:
        """Tokenizes and packs single sentences, like a TF-Hub preprocessor."""
        return self.pack([self.tokenize(strings)], seq_length)


def truncate_segments(segments: list[tf.RaggedTensor], budget) -> list[tf.RaggedTensor]:
    """Cuts one or two [batch, (pieces)] segments to `budget` tokens in all,
    as Google's `_truncate_seq_pair` does; `budget` may be a tensor."""
    budget = tf.cast(budget, tf.int64)
    lengths = [s.row_lengths() for s in segments]
    if len(segments) == 1:
        kept = [tf.minimum(lengths[0], budget)]
    else:
        kept = _truncated_pair_lengths(lengths[0], lengths[1], budget)
    return [_first_n(s, k) for s, k in zip(segments, kept)]


def _first_n(segment: tf.RaggedTensor, n: tf.Tensor) -> tf.RaggedTensor:
    """Row i of `segment` cut to its first n[i] values."""
    positions = tf.ragged.range(segment.row_lengths())
    return tf.ragged.boolean_mask(segment, positions < n[:, None])


def _truncated_pair_lengths(len_a, len_b, budget):
    """Closed form of Google's loop "drop one token from the longer one".

    The loop leaves a short segment whole and cuts the other to the rest of
    the budget; if both are long it ends with ceil/floor of half the budget
    (ties shorten the second segment).
    """
    half_up = (budget + 1) // 2
    half_down = budget // 2
    keep_a = tf.minimum(len_a, tf.maximum(tf.cast(half_up, len_a.dtype), budget - len_b))
    keep_b = tf.minimum(len_b, tf.maximum(tf.cast(half_down, len_b.dtype), budget - len_a))
    return [keep_a, keep_b]


def _unique_placeholders(tokens: list[str]) -> list[str]:
    """FastWordpieceTokenizer rejects empty or repeated entries; Google keeps
    them as dead lines. Give each an unmatchable name so ids keep their lines."""
    seen, out = set(), []
    for index, token in enumerate(tokens):
        if not token or token in seen or token == "##":
            token = f"[unreachable line {index + 1}]"
        seen.add(token)
        out.append(token)
    return out


def _required_id(vocab, token: str, vocab_file) -> int:
    if token not in vocab:
        raise ValueError(f"vocabulary {vocab_file} has no {token} token")
    return vocab[token]
