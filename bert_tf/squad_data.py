"""SQuAD 1.1 / 2.0 data: examples, windowed features and tf.data, as Google's run_squad.py.

A paragraph is split on whitespace into words, remembering for each
character the word it falls in, so that the character offset of an answer
becomes a word span. Each word is WordPiece-tokenized; the answer's word
span becomes a wordpiece span, tightened to the wordpieces of the answer
text where they occur inside it (Google's `_improve_answer_span`). A
paragraph too long for one input is cut into windows `doc_stride` tokens
apart; each wordpiece is scored by the window in which it has the most
context on its shorter side, and only that window may predict it.

>>> import tempfile, json, os
>>> from bert_tf import tokenization
>>> folder = tempfile.mkdtemp()
>>> vocab = os.path.join(folder, "vocab.txt")
>>> _ = open(vocab, "w").write("\\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "who",
...     "wrote", "it", "?", "john", "smith", "(", "1895", "-", "1943", ")", "."]) + "\\n")
>>> squad = {"version": "1.1", "data": [{"title": "t", "paragraphs": [{
...     "context": "John Smith (1895-1943).",
...     "qas": [{"id": "q1", "question": "Who wrote it?",
...              "answers": [{"text": "1895", "answer_start": 12}]}]}]}]}
>>> path = os.path.join(folder, "train.json")
>>> _ = open(path, "w").write(json.dumps(squad))
>>> examples = read_squad_examples(path, is_training=True)
>>> examples[0].doc_tokens, examples[0].start_position, examples[0].end_position
(['John', 'Smith', '(1895-1943).'], 2, 2)
>>> tokenizer = tokenization.FullTokenizer(vocab, do_lower_case=True)
>>> feature, = convert_examples_to_features(examples, tokenizer, max_seq_length=16,
...     doc_stride=4, max_query_length=8, is_training=True)
>>> " ".join(feature.tokens)
'[CLS] who wrote it ? [SEP] john smith ( 1895 - 1943 ) . [SEP]'
>>> feature.tokens[feature.start_position], feature.tokens[feature.end_position]
('1895', '1895')
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Sequence

import numpy as np
from absl import logging

# The first unique_id, as in Google's run_squad.py.
FIRST_UNIQUE_ID = 1000000000


class SquadDataError(ValueError):
    """A SQuAD file that cannot be used; the message names the file (and question id)."""


@dataclasses.dataclass
class SquadExample:
    """One question about one paragraph.

    `doc_tokens` are the paragraph's whitespace-separated words (shared by
    the paragraph's questions); `char_to_word_offset[i]` is the word that
    character i of `context_text` belongs to (the preceding word for
    whitespace). Training examples carry the answer as a word span;
    unanswerable ones (SQuAD 2.0) have positions -1 and text "".
    """

    qas_id: str
    question_text: str
    doc_tokens: list[str]
    orig_answer_text: str | None = None
    start_position: int | None = None
    end_position: int | None = None
    is_impossible: bool = False
    context_text: str = ""
    char_to_word_offset: list[int] = dataclasses.field(default_factory=list, repr=False)


@dataclasses.dataclass
class SquadFeatures:
    """One window of one example, as Google's InputFeatures, but unpadded.

    `input_ids` and `segment_ids` hold the real tokens only (`input_mask` is
    all ones over them); `padded(max_seq_length)` gives Google's padded
    lists. `token_to_orig_map` and `token_is_max_context` are keyed by
    position in `tokens`; start/end positions are positions in `tokens`
    (0, the [CLS] token, for "no answer in this window").
    """

    unique_id: int
    example_index: int
    doc_span_index: int
    tokens: list[str]
    token_to_orig_map: dict[int, int]
    token_is_max_context: dict[int, bool]
    input_ids: list[int]
    segment_ids: list[int]
    start_position: int | None = None
    end_position: int | None = None
    is_impossible: bool = False

    @property
    def input_mask(self) -> list[int]:
        return [1] * len(self.input_ids)

    def padded(self, max_seq_length: int) -> dict[str, list[int]]:
        """input_ids, input_mask and segment_ids zero-padded to max_seq_length."""
        pad = [0] * (max_seq_length - len(self.input_ids))
        return {"input_ids": self.input_ids + pad, "input_mask": self.input_mask + pad,
                "segment_ids": self.segment_ids + pad}


# ---------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------

def is_squad_whitespace(char: str) -> bool:
    """Google's word separators for SQuAD contexts: space, tab, CR, LF and
    the narrow no-break space U+202F (which SQuAD's texts contain)."""
    return char in " \t\r\n\u202f"


def split_context(text: str) -> tuple[list[str], list[int]]:
    """Whitespace words of a paragraph and, per character, its word index.

    A whitespace character maps to the word before it (-1 before the first).

    >>> split_context(" ab  c")
    (['ab', 'c'], [-1, 0, 0, 0, 0, 1])
    """
    words: list[str] = []
    char_to_word = []
    after_space = True
    for char in text:
        if is_squad_whitespace(char):
            after_space = True
        else:
            if after_space:
                words.append(char)
            else:
                words[-1] += char
            after_space = False
        char_to_word.append(len(words) - 1)
    return words, char_to_word


def _read_text(path: str) -> str:
    if "://" in path:
        import tensorflow as tf

        with tf.io.gfile.GFile(path, "rb") as f:
            raw = f.read()
    else:
        try:
            with open(path, "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            raise FileNotFoundError(f"SQuAD file not found: {path}") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        # The question id that follows the bad byte names the question (or,
        # for a bad byte in a paragraph, its first question).
        after = raw[e.end:].decode("utf-8", "replace")
        match = re.search(r'"id"\s*:\s*"([^"]*)"', after)
        where = f", before question id {match.group(1)!r}" if match else ""
        raise SquadDataError(f"{path}:{line}: invalid UTF-8 at byte {e.start} of the file "
                             f"({raw[max(0, e.start - 10):e.end + 10]!r}){where}") from None


def read_squad_file(path: str) -> list[dict]:
    """The "data" list (articles) of a SQuAD JSON file, checked for shape.

    Invalid UTF-8, invalid JSON and missing fields are one clear error
    naming the file (and the question id where there is one).
    """
    path = str(path)
    text = _read_text(path)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise SquadDataError(f"{path}:{e.lineno}: not valid JSON (column {e.colno}: "
                             f"{e.msg})") from None
    if not isinstance(value, dict) or not isinstance(value.get("data"), list):
        raise SquadDataError(f'{path}: not a SQuAD file (no "data" list of articles at '
                             "the top level)")
    for a, article in enumerate(value["data"]):
        paragraphs = article.get("paragraphs") if isinstance(article, dict) else None
        if not isinstance(paragraphs, list):
            raise SquadDataError(f'{path}: article {a} has no "paragraphs" list')
        for p, paragraph in enumerate(paragraphs):
            where = f"{path}: article {a} paragraph {p}"
            if not isinstance(paragraph, dict) or not isinstance(paragraph.get("context"), str):
                raise SquadDataError(f'{where}: no "context" string')
            if not isinstance(paragraph.get("qas"), list):
                raise SquadDataError(f'{where}: no "qas" list')
            for qa in paragraph["qas"]:
                if not isinstance(qa, dict) or not isinstance(qa.get("id"), str):
                    raise SquadDataError(f'{where}: a question without an "id" string')
                if not isinstance(qa.get("question"), str):
                    raise SquadDataError(f'{path}: question id {qa["id"]!r}: no "question" string')
    return value["data"]


def read_squad_examples(input_file: str, is_training: bool,
                        version_2_with_negative: bool = False,
                        articles: list[dict] | None = None,
                        skipped: list | None = None) -> list[SquadExample]:
    """SquadExamples of a SQuAD file (or of its already read `articles`).

    In training, as in Google's code, a question whose answer text cannot be
    recovered from the words at `answer_start` is logged ("Could not find
    answer") and skipped; so are answers whose `answer_start` lies outside
    the context (where Google's code crashes) and questions about an empty
    context. `skipped`, when given, receives (question id, reason) for each.
    Training uses a question's first answer: Google's script refuses
    questions with several, but dev-format files (3 references each) are
    what one trains on when splitting the dev set by article.
    A training question with no "answers" field (and not marked
    "is_impossible") is an error naming it.
    """
    input_file = str(input_file)
    if articles is None:
        articles = read_squad_file(input_file)
    examples = []
    reasons = []
    several_answers = 0
    for article in articles:
        for paragraph in article["paragraphs"]:
            context = paragraph["context"]
            doc_tokens, char_to_word = split_context(context)
            for qa in paragraph["qas"]:
                qas_id = qa["id"]
                start = end = None
                answer_text = None
                impossible = False
                if not doc_tokens:
                    logging.warning("%s: question id %r: the context is empty%s", input_file,
                                    qas_id, "; skipped" if is_training else
                                    "; the prediction is the empty answer")
                    if is_training:
                        reasons.append((qas_id, "empty context"))
                        continue
                elif is_training:
                    if version_2_with_negative:
                        impossible = bool(qa.get("is_impossible", not qa.get("answers")))
                    if impossible:
                        start, end, answer_text = -1, -1, ""
                    else:
                        answer = _training_answer(input_file, qa)
                        if len(qa["answers"]) > 1:
                            several_answers += 1
                        answer_text = answer["text"]
                        offset = answer["answer_start"]
                        if not answer_text.strip():
                            logging.warning("%s: question id %r: the answer text is empty; "
                                            "skipped", input_file, qas_id)
                            reasons.append((qas_id, "empty answer"))
                            continue
                        if offset < 0 or offset + len(answer_text) > len(context):
                            logging.warning("%s: question id %r: answer_start %d with answer "
                                            "%r lies outside the context (%d characters); "
                                            "skipped", input_file, qas_id, offset, answer_text,
                                            len(context))
                            reasons.append((qas_id, "answer outside the context"))
                            continue
                        start = char_to_word[offset]
                        end = char_to_word[offset + len(answer_text) - 1]
                        # Google's test: the answer, whitespace-normalised,
                        # must occur in the words the offsets point at.
                        actual = " ".join(doc_tokens[start:end + 1])
                        cleaned = " ".join(answer_text.split())
                        if cleaned not in actual:
                            logging.warning("%s: question id %r: could not find answer: %r vs. "
                                            "%r; skipped", input_file, qas_id, actual, cleaned)
                            reasons.append((qas_id, "could not find answer"))
                            continue
                examples.append(SquadExample(
                    qas_id=qas_id, question_text=qa["question"], doc_tokens=doc_tokens,
                    orig_answer_text=answer_text, start_position=start, end_position=end,
                    is_impossible=impossible, context_text=context,
                    char_to_word_offset=char_to_word))
    if reasons:
        counts = {}
        for _, reason in reasons:
            counts[reason] = counts.get(reason, 0) + 1
        logging.warning("%s: skipped %d of %d training questions (%s)", input_file, len(reasons),
                        len(reasons) + len(examples),
                        ", ".join(f"{n} {reason}" for reason, n in sorted(counts.items())))
    if several_answers:
        logging.info("%s: %d training questions have several answers; the first is used",
                     input_file, several_answers)
    if skipped is not None:
        skipped.extend(reasons)
    return examples


def _training_answer(path: str, qa: dict) -> dict:
    where = f"{path}: question id {qa['id']!r}"
    if "answers" not in qa:
        raise SquadDataError(f'{where}: no "answers" field; training needs an answer for each '
                             'question (or "is_impossible": true with --version_2_with_negative)')
    answers = qa["answers"]
    if not isinstance(answers, list) or not answers:
        raise SquadDataError(f'{where}: "answers" is empty; training needs an answer for each '
                             'question (or "is_impossible": true with --version_2_with_negative)')
    answer = answers[0]
    if (not isinstance(answer, dict) or not isinstance(answer.get("text"), str)
            or not isinstance(answer.get("answer_start"), int)
            or isinstance(answer.get("answer_start"), bool)):
        raise SquadDataError(f'{where}: an answer needs a "text" string and an integer '
                             f'"answer_start", got {answer!r}')
    return answer


# ---------------------------------------------------------------------------
# Features
# ---------------------------------------------------------------------------

def improve_answer_span(doc_tokens: Sequence[str], start: int, end: int, tokenizer,
                        answer_text: str) -> tuple[int, int]:
    """The first sub-span of [start, end] whose wordpieces are the answer's.

    The annotation is a character span, projected onto whole words; the
    answer "1895" in "(1895-1943)." covers the word's wordpieces
    "( 1895 - 1943 ) ." of which only "1895" is the answer. When the answer's
    wordpieces do not occur inside (the answer "Japan" inside the word
    "Japanese"), the word span stays. Wordpieces hold no spaces, so
    comparing token lists is comparing Google's space-joined strings.
    """
    answer = tokenizer.tokenize(answer_text)
    width = len(answer)
    if width:
        for new_start in range(start, end - width + 2):
            if list(doc_tokens[new_start:new_start + width]) == answer:
                return new_start, new_start + width - 1
    return start, end


def window_starts(num_tokens: int, max_tokens: int, doc_stride: int) -> list[tuple[int, int]]:
    """(start, length) of the windows over num_tokens document tokens.

    Each window takes up to max_tokens; the next one starts doc_stride
    later (or right after a shorter window); the last one reaches the end.

    >>> window_starts(10, 4, 3)
    [(0, 4), (3, 4), (6, 4)]
    """
    spans = []
    start = 0
    while start < num_tokens:
        length = min(num_tokens - start, max_tokens)
        spans.append((start, length))
        if start + length == num_tokens:
            break
        start += min(length, doc_stride)
    return spans


def max_context_windows(spans: Sequence[tuple[int, int]], num_tokens: int) -> list[int]:
    """For each document token, the window in which it has the most context.

    A token's context in a window is the smaller of its left and right
    context there, plus a hundredth of the window's length to prefer longer
    windows; the first window with the highest score wins.

    Google's example: "the man went to the store and bought a gallon of
    milk" in windows of 5 tokens, 3 apart; "bought" (token 7) has 4 words
    on its left but none on its right in the second window, 1 and 3 in the
    third, which wins.

    >>> max_context_windows(window_starts(12, 5, 3), 12)
    [0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3]
    """
    best = [-1] * num_tokens
    best_score = [float("-inf")] * num_tokens
    for index, (start, length) in enumerate(spans):
        last = start + length - 1
        for position in range(start, last + 1):
            score = min(position - start, last - position) + 0.01 * length
            if score > best_score[position]:
                best_score[position], best[position] = score, index
    return best


def convert_examples_to_features(examples: Sequence[SquadExample], tokenizer,
                                 max_seq_length: int, doc_stride: int, max_query_length: int,
                                 is_training: bool) -> list[SquadFeatures]:
    """Google's convert_examples_to_features: every window of every example.

    `[CLS] question [SEP] window [SEP]`; questions longer than
    `max_query_length` wordpieces are truncated to it, as Google's code
    does (counted and logged). In training, a window that does not contain
    the whole answer, and every window of an unanswerable question, points
    at [CLS] (start = end = 0).
    """
    if max_seq_length <= max_query_length + 3:
        raise ValueError(f"max_seq_length ({max_seq_length}) must be greater than "
                         f"max_query_length ({max_query_length}) + 3")
    if doc_stride < 1:
        raise ValueError(f"doc_stride must be >= 1, got {doc_stride}")
    features = []
    unique_id = FIRST_UNIQUE_ID
    truncated = []
    cls_id, sep_id = tokenizer.convert_tokens_to_ids(["[CLS]", "[SEP]"])
    # Questions about one paragraph share its word list: tokenize it once.
    cached_words, cached_pieces = None, None
    for example_index, example in enumerate(examples):
        query = tokenizer.tokenize(example.question_text)
        if len(query) > max_query_length:
            truncated.append(example.qas_id)
            query = query[:max_query_length]
        if example.doc_tokens is not cached_words:
            cached_words = example.doc_tokens
            cached_pieces = _tokenize_words(tokenizer, example.doc_tokens)
        piece_to_word, word_to_piece, pieces, piece_ids = cached_pieces

        answer_start = answer_end = None
        if is_training and example.is_impossible:
            answer_start = answer_end = -1
        elif is_training:
            answer_start = word_to_piece[example.start_position]
            if example.end_position < len(example.doc_tokens) - 1:
                answer_end = word_to_piece[example.end_position + 1] - 1
            else:
                answer_end = len(pieces) - 1
            answer_start, answer_end = improve_answer_span(
                pieces, answer_start, answer_end, tokenizer, example.orig_answer_text)

        # [CLS], [SEP] and [SEP] take three of the positions.
        spans = window_starts(len(pieces), max_seq_length - len(query) - 3, doc_stride)
        best_window = max_context_windows(spans, len(pieces))
        query_ids = tokenizer.convert_tokens_to_ids(query)
        offset = len(query) + 2  # where the window's first token sits
        for span_index, (start, length) in enumerate(spans):
            stop = start + length
            tokens = ["[CLS]", *query, "[SEP]", *pieces[start:stop], "[SEP]"]
            input_ids = [cls_id, *query_ids, sep_id, *piece_ids[start:stop], sep_id]
            segment_ids = [0] * offset + [1] * (length + 1)
            token_to_orig = {offset + i: piece_to_word[start + i] for i in range(length)}
            is_max_context = {offset + i: best_window[start + i] == span_index
                              for i in range(length)}
            start_position = end_position = None
            if is_training:
                if example.is_impossible or not (start <= answer_start and answer_end < stop):
                    start_position = end_position = 0
                else:
                    start_position = answer_start - start + offset
                    end_position = answer_end - start + offset
            features.append(SquadFeatures(
                unique_id=unique_id, example_index=example_index, doc_span_index=span_index,
                tokens=tokens, token_to_orig_map=token_to_orig,
                token_is_max_context=is_max_context, input_ids=input_ids,
                segment_ids=segment_ids, start_position=start_position,
                end_position=end_position, is_impossible=example.is_impossible))
            unique_id += 1
    if truncated:
        logging.info("%d of %d questions are longer than max_query_length=%d wordpieces and "
                     "were truncated to it, as Google's run_squad.py does (e.g. id %s)",
                     len(truncated), len(examples), max_query_length, truncated[0])
    return features


def _tokenize_words(tokenizer, words):
    piece_to_word, word_to_piece, pieces = [], [], []
    for i, word in enumerate(words):
        word_to_piece.append(len(pieces))
        for piece in tokenizer.tokenize(word):
            piece_to_word.append(i)
            pieces.append(piece)
    return piece_to_word, word_to_piece, pieces, tokenizer.convert_tokens_to_ids(pieces)


# ---------------------------------------------------------------------------
# tf.data
# ---------------------------------------------------------------------------

def squad_dataset(features: Sequence[SquadFeatures], batch_size: int, is_training: bool,
                  seed: int | None = None, max_seq_length: int | None = None,
                  input_context=None, bucket_window_batches: int | None = None):
    """A tf.data.Dataset of `(inputs, labels)` batches for the span model.

    `inputs`: int32 `input_word_ids`, `input_mask`, `input_type_ids`
    `[batch, length]` and `feature_index` `[batch]` (the feature's position
    in `features`; pop it before calling the model). `labels`:
    `start_positions`, `end_positions` `[batch]` (zeros when predicting).
    Training shuffles with `seed`, repeats and drops the last partial batch,
    padding each batch to its own longest window; it also sorts each window
    of `bucket_window_batches` shuffled batches by length before cutting it
    into batches (1: plain random batches; None: the default for the data's
    size, see `input_pipeline.sort_windows_by_length`), keeping each batch's
    share of unanswerable windows (answer at [CLS]). Prediction keeps the order,
    yields every feature once, and pads to `max_seq_length` when given
    (Google's fixed shapes, so the logits are Google's at every position).
    """
    import tensorflow as tf

    from bert_tf import input_pipeline

    if not features:
        raise ValueError("features is empty")
    lengths = np.fromiter((len(f.input_ids) for f in features), np.int64, len(features))
    if max_seq_length is not None and lengths.max() > max_seq_length:
        raise ValueError(f"a window has {lengths.max()} tokens, more than "
                         f"max_seq_length={max_seq_length}")

    def ragged(field):
        return input_pipeline.ragged_rows((getattr(f, field) for f in features), lengths)

    def positions(field):
        return np.array([getattr(f, field) or 0 for f in features], np.int32)

    columns = {"input_word_ids": ragged("input_ids"), "input_type_ids": ragged("segment_ids"),
               "feature_index": np.arange(len(features), dtype=np.int32),
               "start_positions": positions("start_position"),
               "end_positions": positions("end_position")}
    dataset, batch_size, num_features = input_pipeline.sharded_examples(
        columns, batch_size, input_context)
    if is_training:
        dataset = dataset.shuffle(len(features), seed=seed, reshuffle_each_iteration=True)
        dataset = dataset.repeat()
        # Answerable or not (span at [CLS]) is the one label a window's
        # length can track: short windows are more often the ends of
        # paragraphs, which hold the answer less often.
        dataset = input_pipeline.sort_windows_by_length(
            dataset, batch_size, num_features, bucket_window_batches, seed,
            strata=lambda window: tf.cast(window["start_positions"] > 0, tf.int32))

    def to_model_inputs(element):
        word_ids = element["input_word_ids"]
        inputs = {"input_word_ids": word_ids, "input_mask": tf.ones_like(word_ids),
                  "input_type_ids": element["input_type_ids"],
                  "feature_index": element["feature_index"]}
        labels = {"start_positions": element["start_positions"],
                  "end_positions": element["end_positions"]}
        return inputs, labels

    dataset = dataset.map(to_model_inputs, num_parallel_calls=tf.data.AUTOTUNE)
    length = None if is_training else max_seq_length
    padded_shapes = ({"input_word_ids": [length], "input_mask": [length],
                      "input_type_ids": [length], "feature_index": []},
                     {"start_positions": [], "end_positions": []})
    dataset = dataset.padded_batch(batch_size, padded_shapes=padded_shapes,
                                   drop_remainder=is_training)
    return dataset.prefetch(tf.data.AUTOTUNE)
