"""GPT-2's byte-level BPE as TensorFlow ops: strings in, ids out, and back.

`GraphByteLevelBPE(tokenizer)` gives the ids of `bpe.ByteLevelBPE.encode`
(and so of OpenAI's encoder and Hugging Face's GPT-2 tokenizers) inside a
graph: in a `tf.function`, in `tf.data`, in an exported SavedModel. Four
steps, each a handful of ops over the whole batch:

  1. Pre-tokens. GPT-2's pattern ends in `\\s+(?!\\S)|\\s+`: a run of
     whitespace before a word leaves its last character to that word (or
     alone, when it is not a space). RE2 has no look-ahead, so the run is
     cut first: every whitespace run of two or more characters that a
     non-space follows is split before its last character, and the pattern
     without the look-ahead then runs on each piece on its own. That gives
     the same pre-tokens: the pattern looks neither back nor (now) ahead, so
     matching from the cut on its own is matching from there in the whole
     string, and inside a piece no run longer than one character precedes a
     non-space, where `\\s+(?!\\S)` and `\\s+` agree. Whitespace is `\\s` as
     Python's `regex` and Hugging Face's tokenizers read it, the Unicode
     White_Space characters (RE2's own `\\s` is ASCII only).
  2. Bytes. Each pre-token's UTF-8 bytes become the ids of their one-byte
     tokens (the stand-in characters of `bpe.byte_to_unicode`).
  3. Merges. A `tf.while_loop`: each round every word finds its adjacent
     pair of lowest merge rank (a `StaticHashTable` from id pairs to ranks)
     and merges all its occurrences, left to right without overlaps (in
     `aaa` only the first `aa`), until no word has a pair with a rank.
     That is OpenAI's `bpe()` rule, for all words of the batch at once;
     each distinct pre-token of a batch is merged once.
  4. The merged tokens are already ids: a merge's result is looked up when
     the table is built.

`decode` joins the tokens' bytes and reads them as UTF-8 with the
tokenizer's `errors` rule ("replace": every ill-formed sequence, such as a
character cut at the end of a sample, becomes U+FFFD, as Python's decoder
does).

`<|endoftext|>` written in the text is plain text, as in
`ByteLevelBPE.encode` (and OpenAI's encoder); Hugging Face's tokenizers
read it as the special token.

    >>> from bert_tf import bpe
    >>> tokenizer = bpe.ByteLevelBPE.from_merges([("h", "e"), ("l", "l"), ("he", "ll"), ("Ġ", "w")])
    >>> graph = GraphByteLevelBPE(tokenizer)
    >>> ids = graph.encode(tf.constant(["hello world", "a  b\\n"]))
    >>> ids.to_list() == [tokenizer.encode("hello world"), tokenizer.encode("a  b\\n")]
    True
    >>> graph.decode(ids).numpy().tolist()
    [b'hello world', b'a  b\\n']
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_text as tf_text

from bert_tf import bpe

# Unicode White_Space: Python regex's and Oniguruma's `\s` (0x1C-0x1F, which
# str.isspace() accepts, are not among them).
WHITESPACE = (r"\t\n\x{0B}\x{0C}\r \x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}"
              r"\x{202F}\x{205F}\x{3000}")
# GPT-2's pattern (bpe.PRETOKEN_PATTERN) without its look-ahead alternative.
PRETOKEN_PATTERN = (r"'s|'t|'re|'ve|'m|'ll|'d| ?\pL+| ?\pN+| ?[^" + WHITESPACE + r"\pL\pN]+|["
                    + WHITESPACE + "]+")
_WHITESPACE_RUN = "[" + WHITESPACE + "]+"
_NO_RANK = 2 ** 31 - 1


def _split(strings, pattern):
    """`regex_split` keeping the matches, [batch, (pieces)], NUL-safe.

    tensorflow-text's regex split stops at a NUL byte; it splits a copy with
    NUL read as U+0001 (a control character too, in every class of the
    patterns here), and the pieces are cut from the original at its offsets.
    """
    masked = tf.strings.regex_replace(strings, "\x00", "\x01")
    pieces, begins, ends = tf_text.regex_split_with_offsets(masked, pattern, pattern)
    flat = tf.strings.substr(tf.gather(strings, pieces.value_rowids()), begins.flat_values,
                             ends.flat_values - begins.flat_values)
    return pieces.with_flat_values(flat), ends


def pretokenize(strings) -> tf.RaggedTensor:
    """GPT-2's pre-tokens of each string, [batch, (pre-tokens)] tf.string."""
    strings = tf.convert_to_tensor(strings, tf.string)
    runs, ends = _split(strings, _WHITESPACE_RUN)
    # A whitespace run of 2+ characters with a piece after it is cut before
    # its last character.
    flat = runs.flat_values
    is_last = tf.equal(tf.range(tf.size(flat, out_type=tf.int64)) + 1,
                       tf.gather(runs.row_splits[1:], runs.value_rowids()))
    cut = (tf.strings.regex_full_match(flat, _WHITESPACE_RUN) & ~is_last
           & (tf.strings.length(flat, unit="UTF8_CHAR") >= 2))
    last_char_bytes = tf.strings.length(tf.strings.substr(flat, -1, 1, unit="UTF8_CHAR"))
    cut_at = runs.with_flat_values(ends.flat_values - tf.cast(last_char_bytes, tf.int64))
    cut_at = tf.ragged.boolean_mask(cut_at, runs.with_flat_values(cut))
    batch = tf.shape(strings, out_type=tf.int64)[0]
    starts = tf.concat([tf.zeros([batch, 1], tf.int64), cut_at], axis=1)
    lengths = tf.cast(tf.strings.length(strings), tf.int64)[:, tf.newaxis]
    limits = tf.concat([cut_at, lengths], axis=1)
    pieces = tf.strings.substr(tf.gather(strings, starts.value_rowids()), starts.flat_values,
                               limits.flat_values - starts.flat_values)
    tokens, _ = _split(pieces, PRETOKEN_PATTERN)
    return tf.RaggedTensor.from_row_splits(
        tokens.flat_values, tf.gather(tokens.row_splits, starts.row_splits), validate=False)


class GraphByteLevelBPE(tf.Module):
    """A `bpe.ByteLevelBPE`'s `encode` and `decode` as graph ops."""

    def __init__(self, tokenizer: bpe.ByteLevelBPE, name: str | None = None):
        super().__init__(name=name)
        encoder = tokenizer.encoder
        self.vocab_size = tokenizer.vocab_size
        self.errors = tokenizer.errors
        stand_in = bpe.byte_to_unicode()
        self._byte_ids = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant([bytes([b]) for b in range(256)]),
                tf.constant([encoder[stand_in[b]] for b in range(256)], tf.int32)), -1)
        keys, merged = [], []
        for first, second in tokenizer.merges:  # rank order; a repeated pair keeps its first
            keys.append(encoder[first] * self.vocab_size + encoder[second])
            merged.append(encoder[first + second])
        ranks, seen = [], set()
        for rank, key in enumerate(keys):
            if key not in seen:
                seen.add(key)
                ranks.append((key, rank))
        self._ranks = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant([k for k, _ in ranks] or [-1], tf.int64),
                tf.constant([r for _, r in ranks] or [_NO_RANK], tf.int32)), _NO_RANK)
        self._merged = tf.constant(merged or [0], tf.int32)
        token_bytes = [b""] * self.vocab_size
        byte_of = {c: b for b, c in stand_in.items()}
        for token, index in encoder.items():
            token_bytes[index] = b"".join(bytes([byte_of[c]]) if c in byte_of
                                          else c.encode("utf-8") for c in token)
        self._token_bytes = tf.constant(token_bytes, tf.string)

    def _merge(self, words: tf.RaggedTensor) -> tf.RaggedTensor:
        """Applies the merges to words of one-byte token ids, [words, (ids)]."""
        vocab = tf.constant(self.vocab_size, tf.int64)

        def round_of_merges(symbols, splits):
            rows = tf.ragged.row_splits_to_segment_ids(splits)
            n = tf.shape(symbols)[0]
            left, right = symbols[:-1], symbols[1:]
            in_word = tf.equal(rows[:-1], rows[1:])
            keys = tf.cast(left, tf.int64) * vocab + tf.cast(right, tf.int64)
            rank = tf.where(in_word, self._ranks.lookup(keys), _NO_RANK)
            best = tf.math.unsorted_segment_min(rank, rows[:-1], tf.shape(splits)[0] - 1)
            match = (rank < _NO_RANK) & tf.equal(rank, tf.gather(best, rows[:-1]))
            # Overlapping matches (x x x for the pair x x) come in runs of
            # consecutive positions: keep the 1st, 3rd, ... of each run.
            run_start = match & ~tf.concat([[False], match[:-1]], axis=0)
            position = tf.range(n - 1)
            run_starts = tf.concat([[0], tf.boolean_mask(position, run_start)], axis=0)
            first_of_run = tf.gather(run_starts, tf.cumsum(tf.cast(run_start, tf.int32)))
            merge = match & tf.equal((position - first_of_run) % 2, 0)
            merge_here = tf.concat([merge, [False]], axis=0)
            merged = tf.gather(self._merged, tf.where(merge, rank, 0))
            symbols = tf.where(merge_here, tf.concat([merged, [0]], axis=0), symbols)
            keep = ~tf.concat([[False], merge], axis=0)
            removed = tf.math.unsorted_segment_sum(tf.cast(merge, tf.int64), rows[:-1],
                                                   tf.shape(splits)[0] - 1)
            splits = splits - tf.concat([[0], tf.cumsum(removed)], axis=0)
            return tf.boolean_mask(symbols, keep), splits, tf.reduce_any(match)

        def more(symbols, splits, changed):
            return changed

        def body(symbols, splits, changed):
            return round_of_merges(symbols, splits)

        symbols, splits, _ = tf.while_loop(
            more, body, (words.flat_values, words.row_splits, tf.size(words.flat_values) > 1),
            shape_invariants=(tf.TensorShape([None]), tf.TensorShape([None]),
                              tf.TensorShape([])))
        return tf.RaggedTensor.from_row_splits(symbols, splits, validate=False)

    def encode(self, strings) -> tf.RaggedTensor:
        """Token ids, int32 [batch, (ids)], of a [batch] string tensor."""
        pretokens = pretokenize(strings)
        distinct, index = tf.unique(pretokens.flat_values)
        words = tf.strings.bytes_split(distinct)
        words = words.with_flat_values(self._byte_ids.lookup(words.flat_values))
        ids = tf.gather(self._merge(words), index)  # [pre-tokens, (ids)]
        return tf.RaggedTensor.from_row_splits(
            ids.flat_values, tf.gather(ids.row_splits, pretokens.row_splits), validate=False)

    def decode(self, ids) -> tf.Tensor:
        """Text of each row of ids ([batch, (ids)] ragged, or dense with -1
        for no token), as `ByteLevelBPE.decode` gives it."""
        if not isinstance(ids, tf.RaggedTensor):
            ids = tf.RaggedTensor.from_tensor(ids, padding=-1)
        data = tf.strings.reduce_join(tf.gather(self._token_bytes, ids), axis=-1)
        if self.errors == "strict":
            return tf.strings.unicode_transcode(data, "UTF-8", "UTF-8", errors="strict")
        return tf.strings.unicode_transcode(data, "UTF-8", "UTF-8", errors=self.errors,
                                            replacement_char=0xFFFD,
                                            replace_control_characters=False)
