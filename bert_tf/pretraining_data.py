"""Masked-LM + next-sentence pretraining instances, written as TFRecords.

The instance recipe is Google's: per document a target length (usually the
maximum, sometimes a random shorter one), sentences accumulated into a
chunk, a random split into segments A and B, B replaced half of the time by
text from another document (label 1 = random next), the pair truncated at a
random end of the longer segment, then `[CLS] A [SEP] B [SEP]` masked with
the 80/10/10 rule. The records carry Google's feature names and shapes.

Deliberate differences, all for bounded memory and speed:
  * documents are streamed: each worker takes every `num_workers`-th
    document, groups `documents_per_chunk` of them, shuffles the chunk and
    draws "random next" documents uniformly from the rest of that chunk only
    (Google shuffles and samples from the whole corpus, which must then fit
    in memory, and retries up to ten draws to avoid the same document);
  * instances of one duplication pass over a chunk are shuffled together
    (Google shuffles all passes of the whole corpus);
  * each input file starts a new document;
  * random numbers come from one `random.Random` per worker, so output is
    reproducible for a given seed and worker count but is not Google's.

Beyond the original: whole-word masking from a real word segmentation
(presegmented text or jieba) so that it works for Chinese, phrase masking
from a lexicon, n-gram span masking, and unmasked records for masking on
the fly (`dynamic_masking`, see `bert_tf.input_pipeline`).

    config = PretrainingDataConfig(max_seq_length=128, dupe_factor=5)
    create_pretraining_data(["corpus/*.txt"], ["out.tfrecord"], "vocab.txt",
                            config, num_workers=2)
    # writes out.tfrecord-00000-of-00002 and out.tfrecord-00001-of-00002
"""

from __future__ import annotations

import dataclasses
import glob
import logging
import multiprocessing
import os
import random
import time
from typing import Iterator, Sequence

from bert_tf import text_files, tfrecords, tokenization

logger = logging.getLogger(__name__)

CLS, SEP, MASK = "[CLS]", "[SEP]", "[MASK]"
WORD_SEGMENTERS = ("none", "jieba", "presegmented")


class PretrainingDataError(ValueError):
    """Bad input or settings; the message names the file, line or flag."""


def _line_error(path, line: int, message: str) -> PretrainingDataError:
    return PretrainingDataError(f"{path}:{line}: {message}")


@dataclasses.dataclass(frozen=True)
class PretrainingDataConfig:
    """Settings of instance creation; field names follow Google's flags."""

    max_seq_length: int = 128
    max_predictions_per_seq: int = 20
    masked_lm_prob: float = 0.15
    short_seq_prob: float = 0.1
    dupe_factor: int = 10
    random_seed: int = 12345
    do_lower_case: bool = True
    do_whole_word_mask: bool = False
    word_segmenter: str = "none"
    masking_lexicon: str | None = None
    max_ngram: int = 1
    dynamic_masking: bool = False
    documents_per_chunk: int = 500
    fair_next_sentence: bool = True
    # The tokenizer's control-character rule (tokenization.CONTROL_CHAR_RULES).
    control_chars: str = tokenization.DEFAULT_CONTROL_CHARS

    def validate(self) -> None:
        if self.max_seq_length < 5:
            raise PretrainingDataError(
                f"--max_seq_length={self.max_seq_length} leaves no room for two "
                "segments and [CLS] [SEP] [SEP]; use at least 5")
        if not 0.0 < self.masked_lm_prob < 1.0:
            raise PretrainingDataError(
                f"--masked_lm_prob={self.masked_lm_prob} must lie in (0, 1)")
        needed = round(self.max_seq_length * self.masked_lm_prob)
        if self.max_predictions_per_seq < needed:
            raise PretrainingDataError(
                f"--max_predictions_per_seq={self.max_predictions_per_seq} is too small for "
                f"--masked_lm_prob={self.masked_lm_prob} x --max_seq_length="
                f"{self.max_seq_length} (= {needed} masked tokens in a full sequence)")
        if not 0.0 <= self.short_seq_prob <= 1.0:
            raise PretrainingDataError(
                f"--short_seq_prob={self.short_seq_prob} must lie in [0, 1]")
        if self.dupe_factor < 1:
            raise PretrainingDataError(f"--dupe_factor={self.dupe_factor} must be >= 1")
        if self.word_segmenter not in WORD_SEGMENTERS:
            raise PretrainingDataError(
                f"--word_segmenter={self.word_segmenter!r} is not one of {WORD_SEGMENTERS}")
        if self.max_ngram < 1:
            raise PretrainingDataError(f"--max_ngram={self.max_ngram} must be >= 1")
        if self.dynamic_masking and self.max_ngram > 1:
            raise PretrainingDataError(
                "--max_ngram > 1 needs masks drawn here; it cannot be combined "
                "with --dynamic_masking")
        if self.documents_per_chunk < 2:
            raise PretrainingDataError(
                f"--documents_per_chunk={self.documents_per_chunk} must be >= 2 so that "
                "a random next segment can come from another document")
        if self.control_chars not in tokenization.CONTROL_CHAR_RULES:
            raise PretrainingDataError(
                f"--control_chars={self.control_chars!r} is not one of "
                f"{sorted(tokenization.CONTROL_CHAR_RULES)}")
        if self.masking_lexicon and not os.path.isfile(self.masking_lexicon):
            raise PretrainingDataError(
                f"--masking_lexicon file not found: {self.masking_lexicon}")

    @property
    def masks_words(self) -> bool:
        """Whether a masking unit is a word (or phrase) rather than a token."""
        return self.do_whole_word_mask or self.masking_lexicon is not None


# ----------------------------------------------------------------------------
# Reading and tokenizing documents
# ----------------------------------------------------------------------------

def read_documents(paths: Sequence[str]) -> Iterator[list[str]]:
    """Yields documents as lists of stripped non-empty lines.

    Blank lines separate documents, and so does the end of each file.
    """
    for path in paths:
        document = []
        for _, line in text_files.read_lines(path, error=_line_error):
            line = line.strip()
            if line:
                document.append(line)
            elif document:
                yield document
                document = []
        if document:
            yield document


def _has_text(paths: Sequence[str]) -> bool:
    return next(read_documents(paths), None) is not None


def _is_boundary_char(char: str) -> bool:
    """Characters at which Google's basic tokenizer always cuts a word."""
    return (tokenization.is_whitespace(char) or tokenization.is_punctuation(char)
            or tokenization.is_cjk_char(ord(char)))


def _merge_unsplittable(words: Sequence[str]) -> list[str]:
    """Joins neighbouring words that the tokenizer would read as one token.

    Tokenizing words one by one then gives exactly the tokens of the joined
    text (e.g. "Ａ" "股" stay apart; "abc" "def" become "abcdef").
    """
    merged: list[str] = []
    for word in words:
        if not word:
            continue
        if merged and not (_is_boundary_char(merged[-1][-1]) or _is_boundary_char(word[0])):
            merged[-1] += word
        else:
            merged.append(word)
    return merged


class LineTokenizer:
    """Turns one line into token ids and, when asked, masking-unit starts.

    `unit_starts[i]` is True where token i begins a masking unit: a token
    (plain masking), a word (whole-word masking) or a lexicon phrase.
    Words come from `##` continuation pieces (segmenter "none", Google's
    rule, which never groups Chinese characters), from the spaces of
    presegmented text, or from jieba.
    """

    # Chunks remembered before the cache starts afresh (bounds memory).
    _CACHE_LIMIT = 1 << 18

    def __init__(self, tokenizer: tokenization.FullTokenizer, config: PretrainingDataConfig):
        self._tokenizer = tokenizer
        self._vocab = tokenizer.vocab
        self._segmenter = config.word_segmenter
        # Unmasked records always carry word starts: the input pipeline
        # chooses whether its masks respect them.
        self._whole_words = config.do_whole_word_mask or config.dynamic_masking
        self._want_units = config.masks_words or config.max_ngram > 1 or config.dynamic_masking
        self._is_continuation = [token.startswith("##") for token in tokenizer.vocab]
        self._ids_cache: dict[str, list[int]] = {}
        self._cut = self.check_jieba().lcut if self._segmenter == "jieba" else None
        self._phrases: dict[int, list[tuple[int, ...]]] = {}
        if config.masking_lexicon:
            self._load_lexicon(config.masking_lexicon)

    @staticmethod
    def check_jieba():
        """The jieba module, or a clear error when it is not installed."""
        try:
            import jieba
        except ImportError:
            raise PretrainingDataError(
                "--word_segmenter=jieba needs the jieba package: pip install jieba") from None
        jieba.setLogLevel(logging.WARNING)
        return jieba

    def ids(self, text: str) -> list[int]:
        """Token ids of `text`, remembered per space-separated chunk."""
        cache = self._ids_cache
        out: list[int] = []
        for chunk in text.split(" "):
            ids = cache.get(chunk)
            if ids is None:
                if len(cache) >= self._CACHE_LIMIT:
                    cache.clear()
                tokens = self._tokenizer.tokenize(chunk)
                ids = cache[chunk] = [self._vocab[token] for token in tokens]
            out += ids
        return out

    def __call__(self, line: str) -> tuple[list[int], list[bool] | None]:
        if self._segmenter == "none":
            ids = self.ids(line)
            if not self._want_units:
                return ids, None
            continuation = self._is_continuation
            word_starts = [not continuation[i] for i in ids]
        else:
            words = line.split() if self._segmenter == "presegmented" else self._cut(line)
            ids, word_starts = [], []
            for word in _merge_unsplittable(words):
                word_ids = self.ids(word)
                ids += word_ids
                word_starts += [True] + [False] * (len(word_ids) - 1) if word_ids else []
        if self._whole_words:
            unit_starts = list(word_starts)
        else:
            unit_starts = [True] * len(ids)
        if self._phrases:
            self._merge_phrases(ids, word_starts, unit_starts)
        return ids, unit_starts

    def _load_lexicon(self, path: str) -> None:
        for _, phrase in text_files.read_lines(path, error=_line_error):
            if not phrase.strip():
                continue
            ids = self._phrase_ids(phrase.strip())
            if len(ids) > 1:
                self._phrases.setdefault(ids[0], []).append(tuple(ids))
        for candidates in self._phrases.values():
            candidates.sort(key=len, reverse=True)

    def _phrase_ids(self, phrase: str) -> list[int]:
        """Token ids of a lexicon entry, segmented like the corpus text."""
        saved, self._phrases = self._phrases, {}
        try:
            return self(phrase)[0]
        finally:
            self._phrases = saved

    def _merge_phrases(self, ids: list[int], word_starts: list[bool],
                       unit_starts: list[bool]) -> None:
        """Makes each lexicon phrase that spans whole words a single unit."""
        position, n = 0, len(ids)
        while position < n:
            length = 1
            if word_starts[position]:
                for phrase in self._phrases.get(ids[position], ()):
                    end = position + len(phrase)
                    if (end <= n and tuple(ids[position:end]) == phrase
                            and (end == n or word_starts[end])):
                        unit_starts[position + 1:end] = [False] * (len(phrase) - 1)
                        length = len(phrase)
                        break
            position += length


# ----------------------------------------------------------------------------
# Instances
# ----------------------------------------------------------------------------

@dataclasses.dataclass
class Instance:
    """One sequence pair before padding; positions index `[CLS] A [SEP] B [SEP]`."""

    token_ids: list[int]           # after masking (or unmasked, for dynamic masking)
    num_a: int                     # length of segment A
    is_random_next: bool
    unit_starts: list[bool] | None  # per token; specials are False
    masked_positions: list[int]
    masked_ids: list[int]          # the original ids at masked_positions


def _truncate_pair(a: list, b: list, max_num_tokens: int, rng: random.Random,
                   a_units=None, b_units=None):
    """Google's rule: cut one token at a time from the longer segment, front or back."""
    len_a, len_b = len(a), len(b)
    cut = [0, 0, 0, 0]  # front of a, back of a, front of b, back of b
    while len_a + len_b > max_num_tokens:
        if len_a > len_b:
            len_a -= 1
            cut[0 if rng.random() < 0.5 else 1] += 1
        else:
            len_b -= 1
            cut[2 if rng.random() < 0.5 else 3] += 1
    a_slice = slice(cut[0], len(a) - cut[1])
    b_slice = slice(cut[2], len(b) - cut[3])
    a, b = a[a_slice], b[b_slice]
    if a_units is not None:
        a_units, b_units = a_units[a_slice], b_units[b_slice]
        # A word cut at the front still starts a unit of its own.
        if a_units:
            a_units[0] = True
        if b_units:
            b_units[0] = True
    return a, b, a_units, b_units


def _joined(parts: Sequence[list], indexes: Sequence[int]) -> list:
    return [item for index in indexes for item in parts[index]]


def _partial_shuffle(rng: random.Random, items: list, count: int) -> list:
    """`count` distinct items drawn uniformly: a Fisher-Yates shuffle stopped early.

    Much cheaper than `random.sample` for the ~20 of ~125 positions masked
    per instance (one C-level `random()` per draw).
    """
    draw, size = rng.random, len(items)
    count = min(count, size)
    for i in range(count):
        j = i + int(draw() * (size - i))
        items[i], items[j] = items[j], items[i]
    return items[:count]


class InstanceMaker:
    """Builds masked instances from tokenized documents (Google's algorithm)."""

    def __init__(self, config: PretrainingDataConfig, vocab: dict[str, int],
                 rng: random.Random):
        for token in (CLS, SEP, MASK):
            if token not in vocab:
                raise PretrainingDataError(f"the vocabulary has no {token} token")
        self.config = config
        self.rng = rng
        self.cls_id, self.sep_id, self.mask_id = vocab[CLS], vocab[SEP], vocab[MASK]
        self._continuation_ids = frozenset(i for t, i in vocab.items() if t.startswith("##"))
        self.vocab_size = len(vocab)
        # Span lengths 1..max_ngram are drawn with probability proportional to 1/n.
        weights = [1.0 / n for n in range(1, config.max_ngram + 1)]
        total = sum(weights)
        self._ngram_cum_weights = [sum(weights[:n]) / total for n in range(1, len(weights) + 1)]

    def from_document(self, index: int, documents: Sequence[tuple[list, list]]) -> list[Instance]:
        """Instances of `documents[index]`; each document is (segments, unit_starts)."""
        config, rng = self.config, self.rng
        segments, segment_units = documents[index]
        with_units = segment_units is not None
        max_num_tokens = config.max_seq_length - 3
        target_length = max_num_tokens
        if rng.random() < config.short_seq_prob:
            target_length = rng.randint(2, max_num_tokens)

        instances = []
        chunk: list[int] = []  # indexes of the accumulated segments
        chunk_length = 0
        i = 0
        while i < len(segments):
            chunk.append(i)
            chunk_length += len(segments[i])
            if i == len(segments) - 1 or chunk_length >= target_length:
                a_end = rng.randint(1, len(chunk) - 1) if len(chunk) >= 2 else 1
                a = _joined(segments, chunk[:a_end])
                a_units = _joined(segment_units, chunk[:a_end]) if with_units else None
                # Google's script always takes a random B for a chunk of one
                # segment, which puts label 1 on ~54% of real-text instances;
                # with fair_next_sentence, the coin decides there too and a
                # true B is the rest of that segment after a word boundary.
                splits = []
                if len(chunk) == 1 and config.fair_next_sentence:
                    splits = self._word_boundaries(
                        segments[i], segment_units[i] if with_units else None)
                if splits:
                    is_random_next = rng.random() < 0.5
                else:
                    is_random_next = len(chunk) == 1 or rng.random() < 0.5
                if is_random_next:
                    b, b_units = self._random_next(index, documents, target_length - len(a))
                    # The segments not used for A go back to the stream.
                    i -= len(chunk) - a_end
                elif splits:
                    cut = splits[rng.randrange(len(splits))]
                    a, b = segments[i][:cut], segments[i][cut:]
                    if with_units:
                        a_units, b_units = segment_units[i][:cut], segment_units[i][cut:]
                    else:
                        b_units = None
                else:
                    b = _joined(segments, chunk[a_end:])
                    b_units = _joined(segment_units, chunk[a_end:]) if with_units else None
                a, b, a_units, b_units = _truncate_pair(
                    a, b, max_num_tokens, rng, a_units, b_units)
                instances.append(self._mask(a, b, is_random_next, a_units, b_units))
                chunk, chunk_length = [], 0
            i += 1
        return instances

    def _word_boundaries(self, segment: list[int], units: list[bool] | None) -> list[int]:
        """Positions in `segment` where a word (or masking unit) starts, after the first."""
        if units is not None:
            return [k for k in range(1, len(segment)) if units[k]]
        continuation = self._continuation_ids
        return [k for k in range(1, len(segment)) if segment[k] not in continuation]

    def _random_next(self, index: int, documents, target_length: int):
        rng = self.rng
        # Uniform over the other documents (Google retries up to 10 draws,
        # which can still return the same document in a small pool).
        other = index
        if len(documents) > 1:
            other = rng.randrange(len(documents) - 1)
            other += other >= index
        segments, segment_units = documents[other]
        start = rng.randint(0, len(segments) - 1)
        b: list[int] = []
        b_units: list[bool] | None = [] if segment_units is not None else None
        for s in range(start, len(segments)):
            b += segments[s]
            if b_units is not None:
                b_units += segment_units[s]
            if len(b) >= target_length:
                break
        return b, b_units

    def _mask(self, a, b, is_random_next, a_units, b_units) -> Instance:
        config, rng = self.config, self.rng
        tokens = [self.cls_id, *a, self.sep_id, *b, self.sep_id]
        unit_starts = None
        if a_units is not None:
            unit_starts = [False, *a_units, False, *b_units, False]
        instance = Instance(tokens, len(a), is_random_next, unit_starts, [], [])
        if config.dynamic_masking:
            return instance
        num_to_predict = min(config.max_predictions_per_seq,
                             max(1, round(len(tokens) * config.masked_lm_prob)))
        if unit_starts is None and config.max_ngram == 1:
            candidates = [*range(1, len(a) + 1), *range(len(a) + 2, len(tokens) - 1)]
            positions = _partial_shuffle(rng, candidates, num_to_predict)
        else:
            positions = self._choose_units(tokens, unit_starts, len(a), num_to_predict)
        positions.sort()
        masked_ids = [tokens[p] for p in positions]
        for p in positions:
            draw = rng.random()
            if draw < 0.8:
                tokens[p] = self.mask_id
            elif draw >= 0.9:
                tokens[p] = rng.randrange(self.vocab_size)
            # else: keep the original token (10%).
        instance.masked_positions, instance.masked_ids = positions, masked_ids
        return instance

    def _choose_units(self, tokens, unit_starts, num_a, num_to_predict) -> list[int]:
        """Greedy choice of whole units (or n-grams of units) in random order.

        With unit n-grams of length 1 this is Google's loop: a unit that
        would overshoot `num_to_predict` is skipped, a smaller one may fit.
        """
        rng = self.rng
        units: list[list[int]] = []
        unit_segment: list[int] = []
        for position in range(1, len(tokens) - 1):
            if position == num_a + 1:  # the [SEP] between A and B
                continue
            segment = int(position > num_a)
            if (unit_starts is None or unit_starts[position] or not units
                    or unit_segment[-1] != segment):
                units.append([position])
                unit_segment.append(segment)
            else:
                units[-1].append(position)
        order = list(range(len(units)))
        rng.shuffle(order)
        chosen: list[int] = []
        covered = [False] * len(units)
        max_ngram = self.config.max_ngram
        for start in order:
            if len(chosen) >= num_to_predict:
                break
            longest = 1
            if max_ngram > 1:
                longest = rng.choices(range(1, max_ngram + 1),
                                      cum_weights=self._ngram_cum_weights)[0]
            for n in range(longest, 0, -1):  # an n-gram that does not fit may shrink
                span = range(start, start + n)
                if span.stop > len(units) or unit_segment[span.stop - 1] != unit_segment[start]:
                    continue
                if any(covered[u] for u in span):
                    continue
                size = sum(len(units[u]) for u in span)
                if len(chosen) + size > num_to_predict:
                    continue
                for u in span:
                    covered[u] = True
                    chosen += units[u]
                break
        return chosen


# ----------------------------------------------------------------------------
# Serialization (Google's feature names, int64 except the float weights)
# ----------------------------------------------------------------------------

class InstanceEncoder:
    """Pads an instance and serializes it as a `tf.train.Example`.

    Masked records: input_ids, input_mask, segment_ids [max_seq_length];
    masked_lm_positions, masked_lm_ids, masked_lm_weights
    [max_predictions_per_seq]; next_sentence_labels [1]. Unmasked records
    (dynamic masking) replace the three masked_lm_* features by
    word_starts [max_seq_length]: 1 where a masking unit begins.
    """

    def __init__(self, max_seq_length: int, max_predictions_per_seq: int, dynamic: bool):
        self.max_seq_length = max_seq_length
        self.max_predictions = max_predictions_per_seq
        self.dynamic = dynamic
        self._weights = [
            tfrecords.float_feature([1.0] * k + [0.0] * (max_predictions_per_seq - k))
            for k in range(max_predictions_per_seq + 1)]
        self._labels = [tfrecords.int64_feature([0]), tfrecords.int64_feature([1])]

    def __call__(self, instance: Instance) -> bytes:
        int64 = tfrecords.int64_feature
        tokens = instance.token_ids
        num_tokens, num_a = len(tokens), instance.num_a
        padding = b"\0" * (self.max_seq_length - num_tokens)
        # 0/1 values are their own one-byte varints.
        features = {
            "input_ids": int64(tfrecords.encode_varints(tokens) + padding),
            "input_mask": int64(b"\1" * num_tokens + padding),
            "segment_ids": int64(b"\0" * (num_a + 2) + b"\1" * (num_tokens - num_a - 2) + padding),
        }
        if self.dynamic:
            starts = instance.unit_starts
            if starts is None:
                num_b = num_tokens - num_a - 3
                starts = [0] + [1] * num_a + [0] + [1] * num_b + [0]
            features["word_starts"] = int64(bytes(starts) + padding)
        else:
            count = len(instance.masked_positions)
            empty = b"\0" * (self.max_predictions - count)
            features["masked_lm_positions"] = int64(
                tfrecords.encode_varints(instance.masked_positions) + empty)
            features["masked_lm_ids"] = int64(tfrecords.encode_varints(instance.masked_ids) + empty)
            features["masked_lm_weights"] = self._weights[count]
        features["next_sentence_labels"] = self._labels[instance.is_random_next]
        return tfrecords.encode_features(features)


# ----------------------------------------------------------------------------
# Workers
# ----------------------------------------------------------------------------

@dataclasses.dataclass
class WorkerStats:
    """What one worker produced."""

    worker_index: int
    documents: int = 0
    instances: int = 0
    seconds: float = 0.0


@dataclasses.dataclass(frozen=True)
class _WorkerTask:
    input_files: tuple[str, ...]
    output_files: tuple[str, ...]
    vocab_file: str
    config: PretrainingDataConfig
    worker_index: int
    num_workers: int


def _worker_rng(seed: int, worker_index: int, num_workers: int) -> random.Random:
    if num_workers == 1:
        return random.Random(seed)
    # String seeds are hashed with SHA-512: independent, reproducible streams.
    return random.Random(f"{seed}/{worker_index}")


def _tokenized_documents(task: _WorkerTask, line_tokenizer: LineTokenizer):
    """This worker's share of documents: every num_workers-th, tokenized."""
    for number, lines in enumerate(read_documents(task.input_files)):
        if number % task.num_workers != task.worker_index:
            continue
        segments, units = [], []
        for line in lines:
            ids, starts = line_tokenizer(line)
            if ids:
                segments.append(ids)
                units.append(starts)
        if segments:
            yield segments, (units if units[0] is not None else None)


def _chunks(items, size: int):
    chunk = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _run_worker(task: _WorkerTask) -> WorkerStats:
    """Creates and writes the instances of one partition of the documents."""
    start_time = time.perf_counter()
    config = task.config
    tokenizer = tokenization.FullTokenizer(task.vocab_file, do_lower_case=config.do_lower_case,
                                           control_chars=config.control_chars)
    line_tokenizer = LineTokenizer(tokenizer, config)
    rng = _worker_rng(config.random_seed, task.worker_index, task.num_workers)
    maker = InstanceMaker(config, tokenizer.vocab, rng)
    encode = InstanceEncoder(config.max_seq_length, config.max_predictions_per_seq,
                             config.dynamic_masking)
    stats = WorkerStats(task.worker_index)
    writers = [tfrecords.TFRecordWriter(path) for path in task.output_files]
    try:
        next_writer = 0
        documents = _tokenized_documents(task, line_tokenizer)
        for chunk in _chunks(documents, config.documents_per_chunk):
            rng.shuffle(chunk)
            for _ in range(config.dupe_factor):
                records = [encode(instance)
                           for index in range(len(chunk))
                           for instance in maker.from_document(index, chunk)]
                rng.shuffle(records)
                # Round robin over the output files, as Google does.
                for offset, writer in enumerate(writers):
                    first = (offset - next_writer) % len(writers)
                    writer.write_batch(records[first::len(writers)])
                next_writer = (next_writer + len(records)) % len(writers)
                stats.instances += len(records)
            stats.documents += len(chunk)
            logger.info("worker %d: %d documents, %d instances, %.0f instances/s",
                        task.worker_index, stats.documents, stats.instances,
                        stats.instances / (time.perf_counter() - start_time))
    except BaseException:
        for writer in writers:
            writer.abort()
        raise
    for writer in writers:
        writer.close()
    stats.seconds = time.perf_counter() - start_time
    return stats


def _spawned_worker(task: _WorkerTask) -> WorkerStats:
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    return _run_worker(task)


def _outputs_per_worker(output_files: Sequence[str], num_workers: int) -> list[list[str]]:
    """Worker w writes outputs w, w + num_workers, ...; one output is split in shards."""
    if len(output_files) >= num_workers:
        return [list(output_files[w::num_workers]) for w in range(num_workers)]
    if len(output_files) == 1:
        return [[f"{output_files[0]}-{w:05d}-of-{num_workers:05d}"] for w in range(num_workers)]
    raise PretrainingDataError(
        f"--output_file lists {len(output_files)} files for --num_workers={num_workers}: "
        "give one file (it is sharded per worker) or at least one per worker")


def output_paths(output_files: Sequence[str], num_workers: int) -> list[str]:
    """The files `create_pretraining_data` writes for these settings."""
    return [path for paths in _outputs_per_worker(output_files, num_workers) for path in paths]


def _staging_path(path: str) -> str:
    folder, name = os.path.split(os.path.abspath(path))
    return os.path.join(folder, f".{name}.partial-{os.getpid()}")


def create_pretraining_data(input_patterns: Sequence[str], output_files: Sequence[str],
                            vocab_file: str, config: PretrainingDataConfig | None = None,
                            num_workers: int = 1) -> list[WorkerStats]:
    """Writes pretraining TFRecords; returns per-worker statistics.

    All outputs appear together, and only if every worker succeeded.
    """
    config = config or PretrainingDataConfig()
    config.validate()
    if num_workers < 1:
        raise PretrainingDataError(f"--num_workers={num_workers} must be >= 1")
    if not os.path.isfile(vocab_file):
        raise FileNotFoundError(f"--vocab_file not found: {vocab_file}")
    input_files = text_files.expand_globs(input_patterns, flag="--input_file")
    if not _has_text(input_files):
        raise PretrainingDataError(
            f"no documents in --input_file ({', '.join(input_files)}): every line is blank")
    if config.word_segmenter == "jieba":
        LineTokenizer.check_jieba()
    assignment = _outputs_per_worker(list(output_files), num_workers)
    staging = {path: _staging_path(path) for paths in assignment for path in paths}
    tasks = [_WorkerTask(tuple(input_files), tuple(staging[p] for p in paths), vocab_file,
                         config, w, num_workers)
             for w, paths in enumerate(assignment)]
    try:
        if num_workers == 1:
            stats = [_run_worker(tasks[0])]
        else:
            with multiprocessing.get_context("spawn").Pool(num_workers) as pool:
                stats = pool.map(_spawned_worker, tasks)
        if sum(s.documents for s in stats) == 0:
            raise PretrainingDataError(
                f"no documents in --input_file ({', '.join(input_files)}): "
                "no line has a token")
    except BaseException:
        for temp in staging.values():
            for leftover in glob.glob(glob.escape(temp)) + glob.glob(
                    os.path.join(glob.escape(os.path.dirname(temp)),
                                 f".{glob.escape(os.path.basename(temp))}.tmp-*")):
                os.remove(leftover)
        raise
    for final, temp in staging.items():
        os.replace(temp, final)
    return stats
