"""Sentence(-pair) classification data: task processors, features, tf.data.

Processors read the GLUE files in the layout `download_glue_data.py` writes
(plus XNLI and the user's own CSV/TSV/JSONL) into `InputExample`s. Features
follow Google's `[CLS] a [SEP] b [SEP]` format but stay unpadded: batches are
padded to their own longest sequence, which saves most of the compute that
fixed-length padding wastes on short GLUE sentences. Documents longer than
`max_seq_length` can be split into overlapping windows instead of truncated.

TensorFlow is imported only by `classifier_dataset`, so reading and
converting data stays cheap to import.
"""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
from absl import logging

from bert_tf import atomic_io, text_files

__all__ = [
    "DataError", "InputExample", "InputFeatures", "DataProcessor",
    "ColaProcessor", "MnliProcessor", "MnliMismatchedProcessor", "MrpcProcessor",
    "XnliProcessor", "Sst2Processor", "QnliProcessor", "QqpProcessor",
    "RteProcessor", "WnliProcessor", "StsbProcessor", "GenericProcessor",
    "PROCESSORS", "TASK_ALIASES", "canonical_task_name", "get_processor",
    "convert_examples_to_features",
    "aggregate_window_logits", "classifier_dataset", "write_test_results",
    "write_glue_submission", "GLUE_SUBMISSION_FILES",
]


class DataError(text_files.LineError):
    """Malformed task data; the message starts with `file:line:`."""


@dataclasses.dataclass
class InputExample:
    """One example; `label` is None for unlabelled (test) data."""
    guid: str
    text_a: str
    text_b: str | None = None
    label: str | float | None = None


@dataclasses.dataclass
class InputFeatures:
    """Unpadded model inputs for one example, or one window of a long one."""
    input_ids: list[int]
    input_mask: list[int]
    segment_ids: list[int]
    label_id: int | float
    example_index: int


# ---------------------------------------------------------------------------
# Reading files
# ---------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class _Columns:
    """Where a split keeps its fields: indices (negative allowed) or names."""
    text_a: int | str
    text_b: int | str | None = None
    label: int | str | None = None
    guid: int | str | None = None
    has_header: bool = True
    num_columns: int | None = None  # required width of headerless files
    label_optional: bool = False  # a missing label column means unlabelled


class _BadRow(Exception):
    """A row that cannot become an example; skippable with skip_bad_rows."""


class DataProcessor:
    """Reads one task's train/dev/test splits from a data directory."""

    is_regression = False
    file_format = "tsv"  # "tsv" (no quoting), "csv" or "jsonl"
    split_files = {"train": "train.tsv", "dev": "dev.tsv", "test": "test.tsv"}

    def __init__(self, skip_bad_rows: bool = False):
        self.skip_bad_rows = skip_bad_rows
        self.num_skipped_rows = 0

    def get_train_examples(self, data_dir) -> list[InputExample]:
        return self._read_split(data_dir, "train")

    def get_dev_examples(self, data_dir) -> list[InputExample]:
        return self._read_split(data_dir, "dev")

    def get_test_examples(self, data_dir) -> list[InputExample]:
        return self._read_split(data_dir, "test")

    def get_labels(self) -> list[str]:
        """Label strings in id order; empty for regression tasks."""
        raise NotImplementedError

    @property
    def num_labels(self) -> int:
        """Width of the classifier head (1 for regression)."""
        return 1 if self.is_regression else len(self.get_labels())

    @classmethod
    def _read_tsv(cls, input_file, quotechar=None) -> list[list[str]]:
        """Google's helper, kept so processors written for its run_classifier
        port unchanged."""
        quoting = csv.QUOTE_NONE if quotechar is None else csv.QUOTE_MINIMAL
        with open(input_file, encoding="utf-8-sig", newline="") as file:
            return list(csv.reader(file, delimiter="\t", quotechar=quotechar, quoting=quoting))

    # Hooks for subclasses -------------------------------------------------

    def _columns(self, set_type: str) -> _Columns:
        raise NotImplementedError

    def _keep_row(self, set_type: str, row) -> bool:
        """False drops a well-formed row that belongs to another subset."""
        return True

    def _normalize_label(self, label: str) -> str:
        return label

    # Machinery -------------------------------------------------------------

    def _split_path(self, data_dir, set_type: str) -> Path:
        path = Path(data_dir) / self.split_files[set_type]
        if not path.is_file():
            raise FileNotFoundError(
                f"{path}: no {set_type} file for {type(self).__name__} "
                f"(expected {self.split_files[set_type]!r} in {data_dir})")
        return path

    def _read_split(self, data_dir, set_type: str, check_labels: bool = True):
        path = self._split_path(data_dir, set_type)
        columns = self._columns(set_type)
        labels = set(self.get_labels()) if check_labels and not self.is_regression else None
        examples, skipped = [], 0
        for line, row, fields in self._rows(path, columns):
            try:
                if isinstance(fields, str):  # the row could not be parsed
                    raise _BadRow(fields)
                if not self._keep_row(set_type, row):
                    continue
                examples.append(self._example(fields, set_type, len(examples), labels))
            except _BadRow as bad:
                if not self.skip_bad_rows:
                    raise DataError(path, line, f"{bad} (use skip_bad_rows to skip such rows)")
                skipped += 1
        if skipped:
            self.num_skipped_rows += skipped
            logging.warning("Skipped %d bad rows of %s", skipped, path)
        if not examples:
            raise DataError(path, None, f"no {set_type} examples in this file")
        return examples

    def _example(self, fields: dict, set_type: str, index: int, labels) -> InputExample:
        guid = fields.get("guid")
        label = fields.get("label")
        if label is not None:
            label = self._parse_label(label, labels)
        text_b = fields.get("text_b")
        return InputExample(
            guid=f"{set_type}-{index if guid is None else guid}",
            text_a=str(fields["text_a"]), text_b=None if text_b is None else str(text_b),
            label=label)

    def _parse_label(self, label, labels):
        if self.is_regression:
            try:
                return float(label)
            except ValueError:
                raise _BadRow(f"label {label!r} is not a number") from None
        label = self._normalize_label(str(label))
        if labels is not None and label not in labels:
            raise _BadRow(f"unknown label {label!r}; expected one of {sorted(labels)}")
        return label

    def _rows(self, path: Path, columns: _Columns):
        """Yields (line, row, fields): fields maps role -> value, or is a str
        saying why the row is malformed."""
        if self.file_format == "jsonl":
            yield from self._json_rows(path, columns)
            return
        if self.file_format == "tsv":
            reader = csv.reader(self._lines(path), delimiter="\t", quoting=csv.QUOTE_NONE)
        elif self.file_format == "csv":
            reader = csv.reader(self._lines(path))
        else:
            raise ValueError(f"file_format must be tsv, csv or jsonl, not {self.file_format!r}")
        width = columns.num_columns
        index = None if columns.has_header else self._resolve(path, 1, None, columns)
        for row in reader:
            if not row:  # blank line
                continue
            if index is None:  # this row is the header
                width = len(row)
                index = self._resolve(path, reader.line_num, row, columns)
                continue
            if width is None:
                width = len(row)  # headerless and no fixed width: the first row sets it
            if len(row) != width:
                yield reader.line_num, None, f"expected {width} columns, found {len(row)}"
                continue
            fields = {role: row[i] for role, i in index.items() if -width <= i < width}
            absent = [i for role, i in index.items() if role not in fields
                      and not (role == "label" and columns.label_optional)]
            if absent:
                yield reader.line_num, None, f"no column {absent[0]} in a row of {width}"
                continue
            yield reader.line_num, row, fields

    @staticmethod
    def _resolve(path, line, header, columns: _Columns) -> dict[str, int]:
        """Maps each role to a column index, looking names up in the header."""
        index = {}
        for role in ("text_a", "text_b", "label", "guid"):
            column = getattr(columns, role)
            if column is None:
                continue
            if isinstance(column, str):
                if header is None:
                    raise DataError(path, line, f"column {column!r} is given by name "
                                    "but the file has no header")
                if column not in header:
                    if role == "label" and columns.label_optional:
                        continue
                    raise DataError(path, line, f"no column {column!r}; the header has "
                                    f"{header}")
                column = header.index(column)
            index[role] = column
        return index

    def _json_rows(self, path: Path, columns: _Columns):
        for line, text in enumerate(self._lines(path), start=1):
            if not text.strip():
                continue
            try:
                row = json.loads(text)
            except json.JSONDecodeError as error:
                yield line, None, f"invalid JSON ({error.msg})"
                continue
            if not isinstance(row, dict):
                yield line, None, "expected a JSON object"
                continue
            fields, missing = {}, []
            for role in ("text_a", "text_b", "label", "guid"):
                key = getattr(columns, role)
                if key is None:
                    continue
                if key in row:
                    fields[role] = row[key]
                elif not (role == "label" and columns.label_optional):
                    missing.append(key)
            if missing:
                yield line, None, f"missing keys {missing}"
                continue
            yield line, row, fields

    def _lines(self, path: Path) -> Iterator[str]:
        """Decodes UTF-8 line by line so that a bad byte is reported by line."""
        # Long documents are the point of sliding windows: lift csv's 128 KiB cap.
        csv.field_size_limit(max(csv.field_size_limit(), 2**31 - 1))
        def skip(line_number):
            self.num_skipped_rows += 1
            logging.warning("%s:%d: skipped a line with invalid UTF-8", path, line_number)

        # A skipped line reads as a blank one, which keeps csv's line numbers.
        for _, line in text_files.read_lines(path, error=DataError,
                                             on_invalid=skip if self.skip_bad_rows else None):
            yield line


# ---------------------------------------------------------------------------
# Tasks
# ---------------------------------------------------------------------------

class ColaProcessor(DataProcessor):
    """CoLA: train/dev have no header and four columns; test has a header."""

    def get_labels(self):
        return ["0", "1"]

    def _columns(self, set_type):
        if set_type == "test":
            return _Columns(text_a=1, guid=0)
        return _Columns(text_a=3, label=1, has_header=False, num_columns=4)


class MnliProcessor(DataProcessor):
    """MultiNLI, evaluated on the matched dev/test sets."""

    split_files = {"train": "train.tsv", "dev": "dev_matched.tsv",
                   "test": "test_matched.tsv"}

    def get_labels(self):
        return ["contradiction", "entailment", "neutral"]

    def _columns(self, set_type):
        # The gold label is the last column; dev adds five annotator labels.
        label = None if set_type == "test" else -1
        return _Columns(text_a=8, text_b=9, label=label, guid=0)


class MnliMismatchedProcessor(MnliProcessor):
    """MultiNLI, evaluated on the mismatched dev/test sets."""

    split_files = {"train": "train.tsv", "dev": "dev_mismatched.tsv",
                   "test": "test_mismatched.tsv"}


class MrpcProcessor(DataProcessor):
    """MRPC: Quality, #1 ID, #2 ID, #1 String, #2 String."""

    def get_labels(self):
        return ["0", "1"]

    def _columns(self, set_type):
        if set_type == "test":
            return _Columns(text_a=3, text_b=4, guid=0)
        return _Columns(text_a=3, text_b=4, label=0)


class XnliProcessor(DataProcessor):
    """XNLI: machine-translated MultiNLI train for one language, XNLI dev/test.

    Expects `multinli/multinli.train.<language>.tsv`, `xnli.dev.tsv` and
    `xnli.test.tsv` in data_dir, as Google's XNLI recipe does.
    """

    def __init__(self, language: str = "zh", skip_bad_rows: bool = False):
        super().__init__(skip_bad_rows)
        self.language = language
        self.split_files = {"train": f"multinli/multinli.train.{language}.tsv",
                            "dev": "xnli.dev.tsv", "test": "xnli.test.tsv"}

    def get_labels(self):
        return ["contradiction", "entailment", "neutral"]

    def _columns(self, set_type):
        if set_type == "train":
            return _Columns(text_a=0, text_b=1, label=2)
        return _Columns(text_a=6, text_b=7, label=1)

    def _keep_row(self, set_type, row):
        # The translated train file holds one language; dev/test hold all 15.
        return set_type == "train" or row[0] == self.language

    def _normalize_label(self, label):
        # The translated train files spell one label differently.
        return "contradiction" if label == "contradictory" else label


class Sst2Processor(DataProcessor):
    """SST-2: `sentence<TAB>label`; test is `index<TAB>sentence`."""

    def get_labels(self):
        return ["0", "1"]

    def _columns(self, set_type):
        if set_type == "test":
            return _Columns(text_a=1, guid=0)
        return _Columns(text_a=0, label=1)


class _IndexedPairProcessor(DataProcessor):
    """Tasks laid out as index, text_a, text_b[, label] (QNLI, RTE, WNLI)."""

    def _columns(self, set_type):
        label = None if set_type == "test" else 3
        return _Columns(text_a=1, text_b=2, label=label, guid=0)


class QnliProcessor(_IndexedPairProcessor):
    def get_labels(self):
        return ["entailment", "not_entailment"]


class RteProcessor(_IndexedPairProcessor):
    def get_labels(self):
        return ["entailment", "not_entailment"]


class WnliProcessor(_IndexedPairProcessor):
    def get_labels(self):
        return ["0", "1"]


class QqpProcessor(DataProcessor):
    """QQP: id, qid1, qid2, question1, question2, is_duplicate."""

    def get_labels(self):
        return ["0", "1"]

    def _columns(self, set_type):
        if set_type == "test":
            return _Columns(text_a=1, text_b=2, guid=0)
        return _Columns(text_a=3, text_b=4, label=5, guid=0)


class StsbProcessor(DataProcessor):
    """STS-B: a similarity score in [0, 5] per sentence pair (regression)."""

    is_regression = True

    def get_labels(self):
        return []

    def _columns(self, set_type):
        label = None if set_type == "test" else -1
        return _Columns(text_a=7, text_b=8, label=label, guid=0)


class GenericProcessor(DataProcessor):
    """The user's own data: train/dev/test.<ext> with configurable columns.

    Columns are header names (or JSON keys), or 0-based indices for files
    without a header. Without an explicit `labels` list the labels are those
    found in the train file, sorted (numerically when all are integers);
    `get_labels()` then needs `data_dir` here or a prior
    `get_train_examples` call. A test file may omit the label column.
    """

    def __init__(self, text_a_column: int | str = "sentence",
                 label_column: int | str = "label",
                 text_b_column: int | str | None = None,
                 labels: Sequence[str] | None = None,
                 file_format: str = "tsv", has_header: bool = True,
                 is_regression: bool = False, data_dir=None,
                 skip_bad_rows: bool = False):
        super().__init__(skip_bad_rows)
        if file_format not in ("tsv", "csv", "jsonl"):
            raise ValueError(f"file_format must be tsv, csv or jsonl, not {file_format!r}")
        self.file_format = file_format
        self.split_files = {split: f"{split}.{file_format}" for split in ("train", "dev", "test")}
        self.has_header = has_header or file_format == "jsonl"
        self.text_a_column, self.text_b_column = text_a_column, text_b_column
        self.label_column = label_column
        self.is_regression = is_regression
        self.data_dir = data_dir
        self._labels = None if labels is None else [str(label) for label in labels]

    def get_labels(self):
        if self.is_regression:
            return []
        if self._labels is None:
            if self.data_dir is None:
                raise ValueError("GenericProcessor needs labels=[...] or data_dir= to "
                                 "discover the labels from the train file")
            self._labels = self._discover_labels(self.data_dir)
        return list(self._labels)

    def get_train_examples(self, data_dir):
        if self._labels is not None or self.is_regression:
            return super().get_train_examples(data_dir)
        examples = self._read_split(data_dir, "train", check_labels=False)
        self._labels = self._labels_of(examples)
        return examples

    def _discover_labels(self, data_dir) -> list[str]:
        skipped = self.num_skipped_rows  # the train file is counted when it is read
        examples = self._read_split(data_dir, "train", check_labels=False)
        self.num_skipped_rows = skipped
        return self._labels_of(examples)

    @staticmethod
    def _labels_of(examples) -> list[str]:
        found = {example.label for example in examples}
        if all(label.lstrip("-").isdecimal() for label in found):
            return sorted(found, key=int)
        return sorted(found)

    def _columns(self, set_type):
        return _Columns(text_a=self.text_a_column, text_b=self.text_b_column,
                        label=self.label_column, has_header=self.has_header,
                        label_optional=set_type == "test")


# Other spellings of task names. PROCESSORS, metrics.TASK_METRICS and
# GLUE_SUBMISSION_FILES are keyed by the canonical names only.
TASK_ALIASES = {"sst2": "sst-2", "stsb": "sts-b"}


def canonical_task_name(task_name: str) -> str:
    """The key of every table of tasks: lower-cased, alias resolved.

    >>> canonical_task_name("SST2"), canonical_task_name("MRPC")
    ('sst-2', 'mrpc')
    """
    key = task_name.lower()
    return TASK_ALIASES.get(key, key)


PROCESSORS = {
    "cola": ColaProcessor,
    "mnli": MnliProcessor, "mnli-mm": MnliMismatchedProcessor,
    "mrpc": MrpcProcessor,
    "xnli": XnliProcessor,
    "sst-2": Sst2Processor,
    "qnli": QnliProcessor,
    "qqp": QqpProcessor,
    "rte": RteProcessor,
    "wnli": WnliProcessor,
    "sts-b": StsbProcessor,
    "generic": GenericProcessor,
}


def get_processor(task_name: str, **kwargs) -> DataProcessor:
    """The processor for `task_name` (case-insensitive), built with kwargs."""
    key = canonical_task_name(task_name)
    if key not in PROCESSORS:
        raise ValueError(f"unknown task_name {task_name!r}; known tasks: "
                         f"{', '.join(PROCESSORS)}")
    return PROCESSORS[key](**kwargs)


# ---------------------------------------------------------------------------
# Features
# ---------------------------------------------------------------------------

def _truncate_seq_pair(tokens_a: list, tokens_b: list, max_length: int) -> None:
    """Trims the longer list (b on ties) one token at a time, in place.

    So a short text (a question, a hypothesis) survives whole while the long
    one gives way.
    """
    while len(tokens_a) + len(tokens_b) > max_length:
        (tokens_a if len(tokens_a) > len(tokens_b) else tokens_b).pop()


def _window_starts(num_tokens: int, window: int, stride: int) -> Iterator[int]:
    """Starts of windows of `window` tokens, `stride` apart, ending at the end."""
    start = 0
    while True:
        yield start
        if start + window >= num_tokens:
            return
        start += stride


def _pack(tokenizer, tokens_a, tokens_b, label_id, example_index) -> InputFeatures:
    tokens = ["[CLS]", *tokens_a, "[SEP]"]
    segment_ids = [0] * len(tokens)
    if tokens_b is not None:
        tokens += [*tokens_b, "[SEP]"]
        segment_ids += [1] * (len(tokens_b) + 1)
    input_ids = tokenizer.convert_tokens_to_ids(tokens)
    return InputFeatures(input_ids=input_ids, input_mask=[1] * len(input_ids),
                         segment_ids=segment_ids, label_id=label_id,
                         example_index=example_index)


def convert_examples_to_features(examples: Sequence[InputExample], label_list: Sequence[str],
                                 max_seq_length: int, tokenizer, doc_stride: int | None = None,
                                 is_regression: bool = False) -> list[InputFeatures]:
    """Tokenizes and packs examples into unpadded `InputFeatures`.

    Without `doc_stride` an over-long example is truncated as Google did.
    With it, text_a is cut into windows starting `doc_stride` tokens apart,
    each a feature carrying the example's index. text_b, if any, is repeated
    whole in every window, unless it would leave text_a less than half the
    space: then its end is cut, keeping at least half. A stride wider than
    the window is narrowed to it so that no token is skipped. Unlabelled
    examples get label id 0.
    """
    if max_seq_length < 3:
        raise ValueError(f"max_seq_length must be at least 3, got {max_seq_length}")
    if doc_stride is not None and doc_stride < 1:
        raise ValueError(f"doc_stride must be positive, got {doc_stride}")
    label_map = {label: i for i, label in enumerate(label_list)}
    features = []
    for example_index, example in enumerate(examples):
        label_id = _label_id(example, label_map, is_regression)
        tokens_a = tokenizer.tokenize(example.text_a)
        tokens_b = None if example.text_b is None else tokenizer.tokenize(example.text_b)
        for window_a, window_b in _fit(tokens_a, tokens_b, max_seq_length, doc_stride):
            features.append(_pack(tokenizer, window_a, window_b, label_id, example_index))
    return features


def _fit(tokens_a: list, tokens_b: list | None, max_seq_length: int, doc_stride: int | None):
    """The (text_a, text_b) tokens of each feature one example becomes."""
    budget = max_seq_length - (2 if tokens_b is None else 3)
    len_b = 0 if tokens_b is None else len(tokens_b)
    if len(tokens_a) + len_b <= budget:
        return [(tokens_a, tokens_b)]
    if doc_stride is None:
        if tokens_b is None:
            return [(tokens_a[:budget], None)]
        _truncate_seq_pair(tokens_a, tokens_b, budget)
        return [(tokens_a, tokens_b)]
    if tokens_b is not None:
        tokens_b = tokens_b[:max(budget // 2, budget - len(tokens_a))]
        len_b = len(tokens_b)
    window = budget - len_b
    starts = _window_starts(len(tokens_a), window, min(doc_stride, window))
    return [(tokens_a[start:start + window], tokens_b) for start in starts]


def _label_id(example: InputExample, label_map: dict, is_regression: bool):
    if example.label is None:
        return 0.0 if is_regression else 0
    if is_regression:
        return float(example.label)
    if example.label not in label_map:
        raise ValueError(f"example {example.guid}: label {example.label!r} is not in "
                         f"label_list {list(label_map)}")
    return label_map[example.label]


def aggregate_window_logits(logits, example_index, num_examples: int) -> np.ndarray:
    """Mean of the logits of each example's windows, [num_examples, ...]."""
    logits = np.asarray(logits, dtype=np.float64)
    example_index = np.asarray(example_index, dtype=np.int64).reshape(-1)
    if logits.shape[0] != example_index.size:
        raise ValueError(f"logits has {logits.shape[0]} rows but example_index has "
                         f"{example_index.size}")
    if example_index.size and (example_index.min() < 0 or example_index.max() >= num_examples):
        raise ValueError(f"example_index must lie in [0, {num_examples})")
    counts = np.bincount(example_index, minlength=num_examples)
    if not counts.all():
        raise ValueError(f"examples {np.flatnonzero(counts == 0)[:10].tolist()} have no "
                         "window among the logits")
    totals = np.zeros((num_examples,) + logits.shape[1:])
    np.add.at(totals, example_index, logits)
    return totals / counts.reshape((-1,) + (1,) * (logits.ndim - 1))


# ---------------------------------------------------------------------------
# tf.data
# ---------------------------------------------------------------------------

#: Batches per length-sorting window in training (`bucket_window_batches`);
#: None chooses `input_pipeline.window_batches_for`'s default.
DEFAULT_BUCKET_WINDOW_BATCHES = None

#: Regression labels are stratified by these many quantile bins per window.
_REGRESSION_STRATA = 5


def _label_strata(element):
    """Each window example's stratum: its class, or its regression score's quantile bin.

    Sorting a window by length within each stratum deals every batch its
    share of each label (see `input_pipeline.sort_windows_by_length`):
    wherever length tracks the label (short SST-2 phrases are more often
    neutral-to-negative, STS-B genres differ in length and score), sorting by
    length alone skews each batch's label mix; on SST-2 it made the variance
    of a batch's mean label 1.4x that of random batches and fine-tuning lost
    ~4 accuracy points.
    """
    import tensorflow as tf

    labels = element["labels"]
    if labels.dtype.is_floating:
        window = tf.size(labels)
        rank = tf.argsort(tf.argsort(labels, stable=True), stable=True)
        return rank * _REGRESSION_STRATA // window
    return tf.cast(labels, tf.int32)


def classifier_dataset(features: Sequence[InputFeatures], batch_size: int, is_training: bool,
                       seed: int | None = None, bucket_by_length: bool = True,
                       max_seq_length: int | None = None, input_context=None,
                       drop_remainder: bool | None = None, with_example_index: bool = True,
                       bucket_window_batches: int | None = DEFAULT_BUCKET_WINDOW_BATCHES):
    """A tf.data.Dataset of `(inputs, labels)` batches.

    `inputs` holds int32 `input_word_ids`, `input_mask`, `input_type_ids`
    [batch, length] and, with `with_example_index`, `example_index` [batch]
    (pop it before calling the model). Labels are int32, or float32 when the
    features carry float (regression) labels.

    With `bucket_by_length` each batch is padded to its own longest sequence;
    training also sorts each window of `bucket_window_batches` shuffled
    batches by length before cutting it into batches (1: plain random
    batches; None: `input_pipeline.window_batches_for`'s default for the
    data's size), dealing each batch its share of every label. Otherwise batches are padded to `max_seq_length`. Training
    shuffles with `seed`, repeats forever and by default drops the last
    partial batch; evaluation keeps the order and
    yields every feature exactly once. Under `tf.distribute`, pass the
    `input_context`: the data is sharded per input pipeline and `batch_size`
    is the global batch size.
    """
    import tensorflow as tf

    from bert_tf import input_pipeline

    if not features:
        raise ValueError("features is empty")
    if drop_remainder is None:
        drop_remainder = is_training
    if drop_remainder and not is_training:
        raise ValueError("drop_remainder=True would lose evaluation examples")
    if bucket_window_batches is not None and bucket_window_batches < 1:
        raise ValueError(f"bucket_window_batches must be >= 1, got {bucket_window_batches}")
    lengths = np.fromiter((len(f.input_ids) for f in features), np.int64, len(features))
    longest = int(lengths.max())
    if not bucket_by_length:
        if max_seq_length is None:
            raise ValueError("max_seq_length is required when bucket_by_length=False")
        if longest > max_seq_length:
            raise ValueError(f"a feature has {longest} tokens, more than "
                             f"max_seq_length={max_seq_length}")

    def ragged(field):
        return input_pipeline.ragged_rows((getattr(f, field) for f in features), lengths)

    regression = isinstance(features[0].label_id, float)
    columns = {
        "input_word_ids": ragged("input_ids"),
        "input_type_ids": ragged("segment_ids"),
        "labels": np.array([f.label_id for f in features],
                           np.float32 if regression else np.int32),
        "example_index": np.array([f.example_index for f in features], np.int32),
    }
    dataset, batch_size, num_features = input_pipeline.sharded_examples(
        columns, batch_size, input_context)
    if is_training:
        dataset = dataset.shuffle(len(features), seed=seed, reshuffle_each_iteration=True)
        dataset = dataset.repeat()
        if bucket_by_length:
            dataset = input_pipeline.sort_windows_by_length(
                dataset, batch_size, num_features, bucket_window_batches, seed,
                strata=_label_strata)

    def to_model_inputs(element):
        word_ids = element["input_word_ids"]
        inputs = {"input_word_ids": word_ids,
                  "input_mask": tf.ones_like(word_ids),
                  "input_type_ids": element["input_type_ids"]}
        if with_example_index:
            inputs["example_index"] = element["example_index"]
        return inputs, element["labels"]

    dataset = dataset.map(to_model_inputs, num_parallel_calls=tf.data.AUTOTUNE)
    length = None if bucket_by_length else max_seq_length
    padded_shapes = ({key: [] if key == "example_index" else [length]
                      for key in dataset.element_spec[0]}, [])
    dataset = dataset.padded_batch(batch_size, padded_shapes=padded_shapes,
                                   drop_remainder=drop_remainder)
    return dataset.prefetch(tf.data.AUTOTUNE)


# ---------------------------------------------------------------------------
# Prediction files
# ---------------------------------------------------------------------------

# File names the GLUE leaderboard expects in a submission archive.
GLUE_SUBMISSION_FILES = {
    "cola": "CoLA.tsv", "sst-2": "SST-2.tsv",
    "mrpc": "MRPC.tsv", "sts-b": "STS-B.tsv",
    "qqp": "QQP.tsv", "mnli": "MNLI-m.tsv", "mnli-mm": "MNLI-mm.tsv",
    "qnli": "QNLI.tsv", "rte": "RTE.tsv", "wnli": "WNLI.tsv", "ax": "AX.tsv",
}


def write_test_results(path, probabilities) -> None:
    """test_results.tsv as Google's run_classifier wrote it: one line per
    example, the class probabilities separated by tabs."""
    probabilities = np.asarray(probabilities, dtype=np.float32)
    if probabilities.ndim != 2:
        raise ValueError(f"probabilities must be [examples, classes], got shape "
                         f"{probabilities.shape}")
    atomic_io.write_text(path, "".join("\t".join(str(p) for p in row) + "\n"
                                    for row in probabilities))


def write_glue_submission(output_dir, task_name: str, predictions,
                          label_list: Sequence[str]) -> Path:
    """Writes `<output_dir>/<TASK>.tsv` in the GLUE leaderboard format.

    `predictions` are class ids (or [N, classes] scores, reduced by argmax)
    written as their label strings, or for STS-B the predicted scores.
    Returns the path written.
    """
    key = canonical_task_name(task_name)
    if key not in GLUE_SUBMISSION_FILES:
        raise ValueError(f"task_name {task_name!r} is not a GLUE task; known: "
                         f"{', '.join(GLUE_SUBMISSION_FILES)}")
    predictions = np.asarray(predictions)
    if key == "sts-b":
        values = [f"{score:.3f}" for score in predictions.reshape(-1).astype(np.float64)]
    else:
        if predictions.ndim == 2:
            predictions = predictions.argmax(axis=-1)
        if predictions.size and not 0 <= predictions.min() <= predictions.max() < len(label_list):
            raise ValueError(f"predictions must be class ids in [0, {len(label_list)})")
        values = [str(label_list[i]) for i in predictions.reshape(-1)]
    path = Path(output_dir) / GLUE_SUBMISSION_FILES[key]
    atomic_io.write_text(path, "index\tprediction\n"
                      + "".join(f"{i}\t{value}\n" for i, value in enumerate(values)))
    return path
