"""A SQuAD SavedModel that answers questions about raw text, in-graph.

`export_squad_answerer` wraps a fine-tuned span model in one exported
signature:

  answer(question: string [batch], context: string [batch]) ->
    answer          string [batch]: the answer text, "" for none
    start_char      int32 [batch]: where it starts in `context`
    end_char        int32 [batch]: where it ends in `context` (exclusive)
    score           float32 [batch]: start + end logit of the best span
    null_score_diff float32 [batch]: null score - `score`

Everything Google's `run_squad.py` does around the model happens inside the
graph, rule for rule, so a client needs TensorFlow and tensorflow-text only
(`import tensorflow_text`, then `tf.saved_model.load`; `load` does both):

  * the context is split into words at Google's SQuAD whitespace (space,
    tab, CR, LF and U+202F: nothing else, so a no-break space stays inside
    a word), remembering where each word starts;
  * every word is WordPiece-tokenized on its own (`GraphTokenizer`, which
    gives FullTokenizer's ids), so each piece knows its word; the question
    keeps its first `max_query_length` pieces;
  * the pieces are cut into windows `[CLS] question [SEP] piece... [SEP]`
    of `max_seq_length - len(question) - 3` pieces that start
    `min(window, doc_stride)` apart, padded with zeros;
  * a piece may be a span start only in the window where it has the most
    context (`_check_is_max_context`: the larger min(left, right) +
    0.01 * window length, the first window on ties);
  * per window the `n_best_size` best start and end positions are paired;
    pairs outside the context pieces, ending before they start, longer
    than `max_answer_length` pieces or starting where the window lacks
    maximal context are dropped, and the best start + end logit wins (the
    first in Google's order on ties). SQuAD 2.0 models answer "" when the
    smallest [CLS] score over the windows exceeds the best span's score by
    more than `null_score_diff_threshold`;
  * the text is `get_final_text`'s: the span's words joined by single
    spaces, trimmed to the predicted pieces when the basic-tokenized words,
    spaces removed, line up character for character with the original.

So `answer` is Google's prediction text exactly, and
`context[start_char:end_char]` is the same span of the context, with the
context's own whitespace between words (`answer` has single spaces, as
Google's). Offsets count Unicode code points, as SQuAD's `answer_start`
does, not UTF-8 bytes. Where there is no answer (an empty or all-whitespace
context, no valid span, or a preferred null answer) `answer` is "",
`start_char` and `end_char` are -1; without any valid span `score` is -inf.
Google's `write_predictions` writes the placeholder "empty" for a question
without a valid span and fails for SQuAD 2.0 models; here both give "".
An empty question is allowed, as in Google's code: the windows then hold
the context alone.

Scores are summed in float64, as Python sums Google's logits. The SQuAD
2.0 switch and threshold are variables of the SavedModel
(`version_2_with_negative`, `null_score_diff_threshold`): the threshold
that `--do_eval` finds best can be assigned on a loaded model and saved.

>>> window_starts(tf.constant([300, 100, 0]), tf.constant([10, 10, 10]),
...               max_seq_length=128, doc_stride=64).to_list()
[[0, 64, 128, 192], [0], []]
"""

from __future__ import annotations

import json
import os

import tensorflow as tf
import tensorflow_text as tf_text  # also registers the ops the SavedModel needs

from bert_tf import atomic_io, text_graph, tokenization

# Google's run_squad.py `is_whitespace`: these five characters only.
SQUAD_WHITESPACE = "[ \\t\\r\\n\\x{202F}]+"

_NO_SCORE = float("-inf")


def window_starts(doc_lengths, query_lengths, max_seq_length: int,
                  doc_stride: int) -> tf.RaggedTensor:
    """Where Google's windows start, [batch, (windows)] int64.

    Each window holds `max_seq_length - query - 3` pieces (fewer at the
    end); the next one starts `min(that, doc_stride)` later, and the last
    is the first to reach the end. An empty document has no window.
    """
    doc_lengths = tf.cast(doc_lengths, tf.int64)
    per_window = max_seq_length - tf.cast(query_lengths, tf.int64) - 3
    step = tf.minimum(per_window, doc_stride)
    beyond = tf.maximum(doc_lengths - per_window, 0)
    count = tf.where(doc_lengths > 0, (beyond + step - 1) // step + 1, 0)
    return tf.ragged.range(count) * step[:, None]


def _first_max(values: tf.Tensor, axis: int = -1) -> tf.Tensor:
    """Index of the first largest value along `axis` (argmax leaves ties open)."""
    is_max = tf.equal(values, tf.reduce_max(values, axis=axis, keepdims=True))
    size = tf.shape(values, out_type=tf.int64)[axis]
    positions = tf.range(size, dtype=tf.int64)
    shape = [1] * values.shape.rank
    shape[axis] = -1
    return tf.reduce_min(tf.where(is_max, tf.reshape(positions, shape), size), axis=axis)


def _flat_row_start(ragged: tf.RaggedTensor) -> tf.Tensor:
    """For each flat value, the flat index where its row starts."""
    return tf.gather(ragged.row_splits, ragged.value_rowids())


def _count_per_row(condition: tf.RaggedTensor) -> tf.Tensor:
    return tf.reduce_sum(tf.cast(condition, tf.int64), axis=1)


def _gather_ranges(values: tf.Tensor, starts: tf.Tensor, lengths: tf.Tensor) -> tf.RaggedTensor:
    """Row i: values[starts[i] : starts[i] + lengths[i]]."""
    return tf.gather(values, tf.ragged.range(starts, starts + lengths))


def final_text_span(tokenizer, pred_text, orig_text):
    """Google's `get_final_text`, batched: where its answer lies in `orig_text`.

    `pred_text` [batch] is the predicted pieces detokenized ("##" joins
    removed), `orig_text` [batch] the words they came from, joined by single
    spaces; `tokenizer` is a `GraphTokenizer` (its basic tokenization is
    the one Google applies to `orig_text`). Returns int64 [batch] (first,
    last) code point of the answer in `orig_text`, inclusive: the part
    aligned with the first occurrence of `pred_text` in the basic-tokenized
    `orig_text` when both have equally many non-space characters, else
    all of `orig_text`.

    >>> import os, tempfile
    >>> vocab_file = os.path.join(tempfile.mkdtemp(), "vocab.txt")
    >>> with open(vocab_file, "w", encoding="utf-8") as f:
    ...     _ = f.write("[PAD]\\n[UNK]\\n[CLS]\\n[SEP]\\n[MASK]\\n")
    >>> tokenizer = text_graph.GraphTokenizer(vocab_file, do_lower_case=True)
    >>> first, last = final_text_span(tokenizer, tf.constant(["steve smith", "cafe"]),
    ...                               tf.constant(["Steve Smith's", "Cafe\u0301!"]))
    >>> first.numpy().tolist(), last.numpy().tolist()
    ([0, 0], [10, 5])
    """
    tok_text = tf.strings.reduce_join(
        tf.strings.split(tokenizer.normalize(orig_text)), axis=-1, separator=" ")
    # str.find, in bytes: a UTF-8 string matches only at character starts.
    tok_bytes = tf.strings.length(tok_text)
    pred_bytes = tf.strings.length(pred_text)
    candidates = tf.ragged.range(tf.maximum(tok_bytes - pred_bytes + 1, 0))
    rows = candidates.value_rowids()
    matches = tf.equal(
        tf.strings.substr(tf.gather(tok_text, rows), candidates.flat_values,
                          tf.gather(pred_bytes, rows)),
        tf.gather(pred_text, rows))
    no_match = tf.reduce_max(tok_bytes) + 1
    first_byte = tf.math.unsorted_segment_min(
        tf.where(matches, candidates.flat_values, tf.cast(no_match, tf.int32)),
        rows, tf.shape(tok_text)[0])
    found = (first_byte < tf.cast(no_match, tf.int32)) & (pred_bytes > 0)
    first_byte = tf.where(found, first_byte, 0)
    start = tf.cast(tf.strings.length(tf.strings.substr(
        tok_text, tf.zeros_like(first_byte), first_byte), unit="UTF8_CHAR"), tf.int64)

    tok_chars = tf.strings.unicode_decode(tok_text, "UTF-8")
    orig_chars = tf.strings.unicode_decode(orig_text, "UTF-8")
    pred_chars = tf.strings.unicode_decode(pred_text, "UTF-8")
    tok_spaces = tf.equal(tok_chars, 32)
    orig_kept = tf.not_equal(orig_chars, 32)
    aligned = found & tf.equal(_count_per_row(orig_kept), _count_per_row(~tok_spaces))
    # The non-space index of the match's first and last characters.
    before = tf.ragged.range(tok_chars.row_lengths()) < start[:, None]
    ns_first = start - _count_per_row(before & tok_spaces)
    ns_last = ns_first + _count_per_row(tf.not_equal(pred_chars, 32)) - 1
    # ... and where those non-space characters lie in orig_text.
    kept = tf.cast(orig_kept.flat_values, tf.int64)
    ns_index = tf.cumsum(kept) - 1 - tf.gather(
        tf.concat([[0], tf.cumsum(kept)], 0), _flat_row_start(orig_kept))
    position = tf.ragged.range(orig_chars.row_lengths()).flat_values
    rows = orig_kept.value_rowids()
    nrows = tf.shape(orig_text)[0]

    def locate(ns):
        hit = orig_kept.flat_values & tf.equal(ns_index, tf.gather(ns, rows))
        return tf.math.unsorted_segment_min(
            tf.where(hit, position, tf.int64.max), rows, nrows)

    whole_last = orig_chars.row_lengths() - 1
    first = tf.where(aligned, locate(ns_first), 0)
    last = tf.where(aligned, locate(ns_last), whole_last)
    return first, last


class SquadAnswerer(tf.Module):
    """A span model, its tokenizer and Google's SQuAD decoding, exportable."""

    def __init__(self, model, vocab_file: str, do_lower_case: bool, *,
                 max_seq_length: int = 384, doc_stride: int = 128,
                 max_query_length: int = 64, max_answer_length: int = 30,
                 n_best_size: int = 20, version_2_with_negative: bool = False,
                 null_score_diff_threshold: float = 0.0,
                 control_chars: str = tokenization.DEFAULT_CONTROL_CHARS):
        super().__init__(name="squad_answerer")
        if max_seq_length <= max_query_length + 3:
            raise ValueError(
                f"max_seq_length={max_seq_length} must exceed max_query_length + 3 = "
                f"{max_query_length + 3}: [CLS], two [SEP] and the question leave no "
                "room for the context")
        for name, value in (("doc_stride", doc_stride), ("n_best_size", n_best_size),
                            ("max_answer_length", max_answer_length)):
            if value < 1:
                raise ValueError(f"{name}={value} must be at least 1")
        self.model = model
        self.tokenizer = text_graph.GraphTokenizer(vocab_file, do_lower_case, control_chars)
        vocab = tokenization.load_vocab(vocab_file)
        pieces = [""] * (max(vocab.values()) + 1)
        for piece, index in vocab.items():
            pieces[index] = piece
        self._pieces = tf.constant(pieces, tf.string)
        self.max_seq_length = max_seq_length
        self.doc_stride = doc_stride
        self.max_query_length = max_query_length
        self.max_answer_length = max_answer_length
        self.n_best_size = min(n_best_size, max_seq_length)
        # Variables, read at each call: the threshold that --do_eval finds
        # best can be set on a loaded model (`.assign`) and saved again.
        self.version_2_with_negative = tf.Variable(
            bool(version_2_with_negative), trainable=False, name="version_2_with_negative")
        self.null_score_diff_threshold = tf.Variable(
            float(null_score_diff_threshold), dtype=tf.float64, trainable=False,
            name="null_score_diff_threshold")

    # -- words and pieces --------------------------------------------------

    def _context_words(self, context):
        """Google's whitespace words, [batch, (words)], and each word's first
        code point and length in code points."""
        words, byte_begin, _ = tf_text.regex_split_with_offsets(context, SQUAD_WHITESPACE)
        flat_context = tf.gather(context, words.value_rowids())
        before = tf.strings.substr(flat_context, tf.zeros_like(byte_begin.flat_values),
                                   byte_begin.flat_values)
        char_begin = tf.strings.length(before, unit="UTF8_CHAR")
        char_length = tf.strings.length(words.flat_values, unit="UTF8_CHAR")
        return words, tf.cast(char_begin, tf.int64), tf.cast(char_length, tf.int64)

    def _document(self, words: tf.RaggedTensor):
        """Pieces of all words of each context, [batch, (pieces)], and for
        each piece its word's index in the context."""
        per_word = self.tokenizer.tokenize(words.flat_values)  # [words, (pieces)]
        doc = tf.RaggedTensor.from_row_splits(
            per_word.values, tf.gather(per_word.row_splits, words.row_splits), validate=False)
        flat_word = per_word.value_rowids()
        word_in_context = (tf.range(tf.shape(words.flat_values, out_type=tf.int64)[0])
                           - _flat_row_start(words))
        return doc, tf.gather(word_in_context, flat_word)

    # -- windows -----------------------------------------------------------

    def _windows(self, query: tf.RaggedTensor, doc: tf.RaggedTensor):
        """Model inputs for every window of every question, and what the
        decoding needs to know about each window."""
        seq = self.max_seq_length
        query_length = query.row_lengths()
        doc_length = doc.row_lengths()
        starts = window_starts(doc_length, query_length, seq, self.doc_stride)
        owner = starts.value_rowids()  # window -> question
        start = starts.flat_values
        per_window = seq - query_length - 3
        length = tf.minimum(tf.gather(per_window, owner), tf.gather(doc_length, owner) - start)
        query_len = tf.gather(query_length, owner)

        position = tf.range(seq, dtype=tf.int64)[None, :] + tf.zeros_like(start)[:, None]
        doc_offset = position - query_len[:, None] - 2  # index among the window's pieces
        in_doc = (doc_offset >= 0) & (doc_offset < length[:, None])
        sep_at = query_len[:, None] + 2 + length[:, None]

        def rows(ragged):
            # One spare column keeps clipped gathers valid for empty rows.
            dense = ragged.to_tensor(0)
            dense = tf.pad(dense, [[0, 0], [0, 1]])
            return tf.gather(dense, owner), tf.cast(tf.shape(dense)[1] - 1, tf.int64)

        query_rows, query_last = rows(query)
        doc_rows, doc_last = rows(doc)
        query_piece = tf.gather(query_rows, tf.clip_by_value(position - 1, 0, query_last),
                                batch_dims=1)
        doc_index = start[:, None] + doc_offset
        doc_piece = tf.gather(doc_rows, tf.clip_by_value(doc_index, 0, doc_last), batch_dims=1)
        special = self.tokenizer.special_tokens
        ids = tf.where(in_doc, doc_piece, 0)
        ids = tf.where((position >= 1) & (position <= query_len[:, None]), query_piece, ids)
        ids = tf.where(position == 0, special["start_of_sequence_id"], ids)
        ids = tf.where((position == query_len[:, None] + 1) | (position == sep_at),
                       special["end_of_segment_id"], ids)
        inputs = {
            "input_word_ids": tf.cast(ids, tf.int32),
            "input_mask": tf.cast(position <= sep_at, tf.int32),
            "input_type_ids": tf.cast((position >= query_len[:, None] + 2) & (position <= sep_at),
                                      tf.int32),
        }
        max_context = self._max_context(starts, length, owner, doc_index, in_doc)
        window = {"owner": owner, "start": start, "doc_offset_at_0": query_len + 2,
                  "in_doc": in_doc, "max_context": max_context}
        return inputs, window

    def _max_context(self, starts, length, owner, doc_index, in_doc):
        """[windows, seq] bool: the piece at this position has its maximal
        context in this window (Google's `_check_is_max_context`)."""
        lengths = tf.RaggedTensor.from_row_splits(length, starts.row_splits, validate=False)
        other_start = tf.gather(starts.to_tensor(0), owner)[:, None, :]  # [W, 1, K]
        other_length = tf.gather(lengths.to_tensor(0), owner)[:, None, :]
        piece = doc_index[:, :, None]  # [W, seq, 1]
        other_end = other_start + other_length - 1
        inside = (piece >= other_start) & (piece <= other_end)
        context = tf.cast(tf.minimum(piece - other_start, other_end - piece), tf.float64)
        score = context + 0.01 * tf.cast(other_length, tf.float64)
        score = tf.where(inside, score, _NO_SCORE)
        best = _first_max(score)  # [W, seq]
        local = tf.range(tf.shape(owner, out_type=tf.int64)[0]) - tf.gather(starts.row_splits,
                                                                          owner)
        return in_doc & tf.equal(best, local[:, None])

    # -- decoding ----------------------------------------------------------

    def _best_spans(self, start_logits, end_logits, window, batch):
        """Per question: whether a valid span exists, its window, start and
        end positions in the window, its score, and the null score (the
        smallest [CLS] score of its windows) less that score."""
        n, seq = self.n_best_size, self.max_seq_length
        start_logits = tf.cast(start_logits, tf.float64)
        end_logits = tf.cast(end_logits, tf.float64)
        start_at = tf.math.top_k(start_logits, k=n).indices
        end_at = tf.math.top_k(end_logits, k=n).indices
        start_ok = (tf.gather(window["in_doc"], start_at, batch_dims=1)
                    & tf.gather(window["max_context"], start_at, batch_dims=1))
        end_ok = tf.gather(window["in_doc"], end_at, batch_dims=1)
        s, e = start_at[:, :, None], end_at[:, None, :]
        valid = (start_ok[:, :, None] & end_ok[:, None, :] & (e >= s)
                 & (e - s + 1 <= self.max_answer_length))
        score = (tf.gather(start_logits, start_at, batch_dims=1)[:, :, None]
                 + tf.gather(end_logits, end_at, batch_dims=1)[:, None, :])
        score = tf.reshape(tf.where(valid, score, _NO_SCORE), [-1, n * n])
        # Google's candidates in order: window, start rank, end rank; the
        # stable sort keeps the first of equal scores. One -inf sentinel
        # column keeps questions without windows well-defined.
        per_question = tf.RaggedTensor.from_value_rowids(score, window["owner"], nrows=batch,
                                                         validate=False)
        flat = per_question.merge_dims(1, 2).to_tensor(_NO_SCORE)
        flat = tf.concat([flat, tf.fill([batch, 1], tf.constant(_NO_SCORE, tf.float64))], axis=1)
        choice = _first_max(flat)
        best_score = tf.gather(flat, choice, batch_dims=1)
        found = best_score > _NO_SCORE
        num_windows = tf.shape(window["owner"], out_type=tf.int64)[0]
        first_window = per_question.row_splits[:-1]
        chosen = tf.where(found, first_window + choice // (n * n), 0)
        rank = choice % (n * n)
        # A spare window row for questions without any window.
        start_at = tf.concat([start_at, tf.zeros([1, n], start_at.dtype)], axis=0)
        end_at = tf.concat([end_at, tf.zeros([1, n], end_at.dtype)], axis=0)
        chosen = tf.where(found, chosen, num_windows)
        span_start = tf.cast(tf.gather(tf.gather(start_at, chosen), rank // n, batch_dims=1),
                             tf.int64)
        span_end = tf.cast(tf.gather(tf.gather(end_at, chosen), rank % n, batch_dims=1),
                           tf.int64)
        null = tf.RaggedTensor.from_value_rowids(start_logits[:, 0] + end_logits[:, 0],
                                                 window["owner"], nrows=batch, validate=False)
        null_score = tf.reduce_min(null, axis=1)
        # Google subtracts the start and then the end logit: same rounding.
        padded_start = tf.concat([start_logits, tf.zeros([1, seq], tf.float64)], axis=0)
        padded_end = tf.concat([end_logits, tf.zeros([1, seq], tf.float64)], axis=0)
        best_start = tf.gather(tf.gather(padded_start, chosen), span_start, batch_dims=1)
        best_end = tf.gather(tf.gather(padded_end, chosen), span_end, batch_dims=1)
        null_diff = null_score - best_start - best_end
        null_diff = tf.where(found, null_diff, -_NO_SCORE)
        return found, chosen, span_start, span_end, best_score, null_diff

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="question"),
                                  tf.TensorSpec([None], tf.string, name="context")],
                 autograph=False)
    def answer(self, question, context):
        batch = tf.shape(question, out_type=tf.int64)[0]
        tf.debugging.assert_equal(batch, tf.shape(context, out_type=tf.int64)[0],
                                  message="question and context need the same batch size")
        words, word_begin, word_length = self._context_words(context)
        doc, piece_word = self._document(words)
        query = self.tokenizer.tokenize(question)[:, :self.max_query_length]
        inputs, window = self._windows(query, doc)
        logits = self.model(inputs, training=False)
        found, chosen, span_start, span_end, score, null_diff = self._best_spans(
            logits["start_logits"], logits["end_logits"], window, batch)

        # Window positions -> the question's pieces -> its words.
        offset = tf.concat([window["start"] - window["doc_offset_at_0"], [0]], 0)
        first_piece = tf.gather(offset, chosen) + span_start
        piece_count = tf.where(found, span_end - span_start + 1, 0)
        piece_base = doc.row_splits[:-1]
        pieces = _gather_ranges(doc.values, piece_base + first_piece, piece_count)
        pred_text = tf.strings.reduce_join(tf.gather(self._pieces, pieces), axis=-1,
                                           separator=" ")
        pred_text = tf.strings.regex_replace(pred_text, " ##", "")
        pred_text = tf.strings.regex_replace(pred_text, "##", "")

        # Pieces of the chosen span -> their words (a spare entry for no span).
        piece_word = tf.concat([piece_word, [0]], 0)
        no_piece = tf.shape(piece_word, out_type=tf.int64)[0] - 1
        flat_first = piece_base + first_piece
        word_first = tf.gather(piece_word, tf.where(found, flat_first, no_piece))
        word_last = tf.gather(piece_word, tf.where(found, flat_first + piece_count - 1, no_piece))
        word_count = tf.where(found, word_last - word_first + 1, 0)
        word_base = words.row_splits[:-1]
        span_words = _gather_ranges(words.flat_values, word_base + word_first, word_count)
        orig_text = tf.strings.reduce_join(span_words, axis=-1, separator=" ")
        first, last = final_text_span(self.tokenizer, pred_text, orig_text)
        text = tf.strings.substr(orig_text, first, last - first + 1, unit="UTF8_CHAR")

        # orig_text positions -> context positions, through the word holding them.
        lengths = _gather_ranges(word_length, word_base + word_first, word_count)
        begins = _gather_ranges(word_begin, word_base + word_first, word_count)
        starts_in_orig = tf.cumsum(lengths + 1, axis=1, exclusive=True)

        def to_context(position):
            holder = _count_per_row(starts_in_orig <= position[:, None]) - 1
            holder = tf.maximum(holder, 0)
            pad = lambda r: tf.pad(r.to_tensor(0), [[0, 0], [0, 1]])  # noqa: E731
            return (tf.gather(pad(begins), holder, batch_dims=1) + position
                    - tf.gather(pad(starts_in_orig), holder, batch_dims=1))

        start_char = to_context(first)
        end_char = to_context(last) + 1
        prefers_null = (self.version_2_with_negative
                        & (null_diff > self.null_score_diff_threshold))
        answered = found & ~prefers_null
        return {
            "answer": tf.where(answered, text, ""),
            "start_char": tf.cast(tf.where(answered, start_char, -1), tf.int32),
            "end_char": tf.cast(tf.where(answered, end_char, -1), tf.int32),
            "score": tf.cast(score, tf.float32),
            "null_score_diff": tf.cast(null_diff, tf.float32),
        }


def export_squad_answerer(model, export_dir: str, *, vocab_file: str, do_lower_case: bool,
                          max_seq_length: int = 384, doc_stride: int = 128,
                          max_query_length: int = 64, max_answer_length: int = 30,
                          n_best_size: int = 20, version_2_with_negative: bool = False,
                          null_score_diff_threshold: float = 0.0,
                          control_chars: str = tokenization.DEFAULT_CONTROL_CHARS) -> str:
    """Writes the answering SavedModel; the folder appears only when complete.

    `model` maps `{"input_word_ids", "input_mask", "input_type_ids"}`
    (int32 [batch, seq]) to `{"start_logits", "end_logits"}` (float32
    [batch, seq]). The settings are Google's run_squad.py flags of the same
    names; they are recorded in `squad_answerer.json` beside the model.
    """
    settings = {"do_lower_case": bool(do_lower_case), "max_seq_length": max_seq_length,
                "doc_stride": doc_stride, "max_query_length": max_query_length,
                "max_answer_length": max_answer_length, "n_best_size": n_best_size,
                "version_2_with_negative": bool(version_2_with_negative),
                "null_score_diff_threshold": float(null_score_diff_threshold),
                "control_chars": control_chars}
    server = SquadAnswerer(model, vocab_file, **settings)
    with atomic_io.staged_folder(export_dir) as staging:
        tf.saved_model.save(server, staging, signatures={"answer": server.answer})
        with open(os.path.join(staging, "squad_answerer.json"), "w", encoding="utf-8") as f:
            json.dump(settings, f, indent=2)
    return export_dir


def load(export_dir: str):
    """`tf.saved_model.load` with tensorflow-text's ops registered first."""
    import tensorflow_text  # noqa: F401  (registers the ops the graph uses)

    return tf.saved_model.load(export_dir)
