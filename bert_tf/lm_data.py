"""Causal-LM training data: plain text -> TFRecords of fixed-length token windows.

Input is the project's corpus format (one sentence per line, a blank line
between documents; each file also ends a document). A document's lines are
joined with newlines and framed by the tokenizer's `document_ids`:

  * GPT-2's byte-level BPE (`--vocab_dir` with encoder.json + vocab.bpe):
    the document's ids, then `<|endoftext|>`;
  * GPT2-Chinese's WordPiece (`--vocab_file`, a BERT vocab.txt): `[MASK]`,
    the ids (a newline is `[SEP]`), then `[CLS]`.

The framed documents form one token stream, cut into windows of
`n_ctx + 1` tokens that start every `stride` tokens. Each record holds one
window as the int64 feature `input_ids` [n_ctx + 1]: the model reads the
first n_ctx tokens and predicts the last n_ctx, so a record needs no
padding and no mask. With the default stride of n_ctx consecutive windows
share one token, and every token after the first is a target exactly once;
a smaller stride overlaps windows (more context per target, more records).
The stream's tail that fills no whole window is dropped and counted.

Memory is bounded by the largest document plus one window: documents are
read, tokenized and written one at a time. With several workers, worker w
takes every num_workers-th document (its own stream) and writes its own
shard; outputs appear together, and only when every worker succeeded.

    >>> import os, tempfile
    >>> maker = WindowMaker(n_ctx=4, stride=4)
    >>> [w for w in maker.add(list(range(10)))]
    [[0, 1, 2, 3, 4], [4, 5, 6, 7, 8]]
    >>> maker.pending
    2
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import os
import time
from typing import Iterator, Sequence

from bert_tf import pretraining_data, text_files, tfrecords

logger = logging.getLogger(__name__)

FEATURE = "input_ids"
_WRITE_BATCH = 256


class LMDataError(ValueError):
    """Bad input or settings; the message names the file, line or flag."""


@dataclasses.dataclass(frozen=True)
class LMDataConfig:
    """Window length (`n_ctx`, tokens the model reads) and the step between windows."""

    n_ctx: int = 1024
    stride: int | None = None  # None: n_ctx, windows do not overlap
    vocab_dir: str | None = None
    vocab_file: str | None = None
    do_lower_case: bool = True

    @property
    def step(self) -> int:
        return self.stride or self.n_ctx

    def validate(self) -> None:
        if self.n_ctx < 1:
            raise LMDataError(f"--n_ctx={self.n_ctx} must be >= 1")
        if not 1 <= self.step <= self.n_ctx:
            raise LMDataError(f"--stride={self.stride} must lie in [1, n_ctx={self.n_ctx}] "
                              "(a larger stride would skip tokens)")
        if bool(self.vocab_dir) == bool(self.vocab_file):
            raise LMDataError("pass exactly one of --vocab_dir (GPT-2 BPE: encoder.json + "
                              "vocab.bpe) and --vocab_file (BERT vocab.txt, Chinese WordPiece)")
        if self.vocab_dir and not os.path.isdir(self.vocab_dir):
            raise FileNotFoundError(f"--vocab_dir not found: {self.vocab_dir}")
        if self.vocab_file and not os.path.isfile(self.vocab_file):
            raise FileNotFoundError(f"--vocab_file not found: {self.vocab_file}")


def load_tokenizer(vocab_dir: str | None = None, vocab_file: str | None = None,
                   do_lower_case: bool = True):
    """GPT-2's BPE from a folder, or GPT2-Chinese's WordPiece from a vocab.txt."""
    if vocab_file:
        from bert_tf import lm_tokenization

        return lm_tokenization.ChineseWordPiece(vocab_file, do_lower_case=do_lower_case)
    from bert_tf import bpe

    tokenizer = bpe.ByteLevelBPE.from_folder(vocab_dir)
    if tokenizer.eot_id is None:
        raise LMDataError(f"--vocab_dir={vocab_dir}: the vocabulary has no "
                          f"{bpe.END_OF_TEXT} token to end documents with")
    return tokenizer


class WindowMaker:
    """Cuts a token stream, fed piece by piece, into windows of n_ctx + 1 tokens."""

    def __init__(self, n_ctx: int, stride: int):
        self.size, self.stride = n_ctx + 1, stride
        self._buffer: list[int] = []

    def add(self, ids: Sequence[int]) -> Iterator[list[int]]:
        self._buffer.extend(ids)
        while len(self._buffer) >= self.size:
            yield self._buffer[:self.size]
            del self._buffer[:self.stride]

    @property
    def pending(self) -> int:
        """Tokens kept for the next window (dropped if the stream ends here)."""
        return len(self._buffer)


@dataclasses.dataclass
class LMDataStats:
    worker_index: int = 0
    documents: int = 0
    tokens: int = 0  # in the stream, document markers included
    windows: int = 0
    tail_tokens: int = 0  # left over at the end, in no window
    seconds: float = 0.0


@dataclasses.dataclass(frozen=True)
class _WorkerTask:
    input_files: tuple[str, ...]
    output_file: str
    config: LMDataConfig
    worker_index: int
    num_workers: int


def encode_window(window: Sequence[int]) -> bytes:
    """A tf.train.Example with `input_ids` = window (int64)."""
    return tfrecords.encode_features(
        {FEATURE: tfrecords.int64_feature(tfrecords.encode_varints(window))})


def _run_worker(task: _WorkerTask) -> LMDataStats:
    start = time.perf_counter()
    config = task.config
    tokenizer = load_tokenizer(config.vocab_dir, config.vocab_file, config.do_lower_case)
    maker = WindowMaker(config.n_ctx, config.step)
    stats = LMDataStats(task.worker_index)
    with tfrecords.TFRecordWriter(task.output_file) as writer:
        records = []
        for number, lines in enumerate(pretraining_data.read_documents(task.input_files)):
            if number % task.num_workers != task.worker_index:
                continue
            ids = tokenizer.document_ids("\n".join(lines))
            stats.documents += 1
            stats.tokens += len(ids)
            for window in maker.add(ids):
                records.append(encode_window(window))
            if len(records) >= _WRITE_BATCH:
                writer.write_batch(records)
                stats.windows += len(records)
                records = []
        writer.write_batch(records)
        stats.windows += len(records)
    stats.tail_tokens = maker.pending
    stats.seconds = time.perf_counter() - start
    logger.info("worker %d: %d documents, %d tokens, %d windows", task.worker_index,
                stats.documents, stats.tokens, stats.windows)
    return stats


def _spawned_worker(task: _WorkerTask) -> LMDataStats:
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    return _run_worker(task)


def output_paths(output_file: str, num_workers: int) -> list[str]:
    """The files written: `output_file`, or one shard per worker."""
    if num_workers == 1:
        return [output_file]
    return [f"{output_file}-{w:05d}-of-{num_workers:05d}" for w in range(num_workers)]


def create_lm_data(input_patterns: str | Sequence[str], output_file: str,
                   config: LMDataConfig, num_workers: int = 1) -> list[LMDataStats]:
    """Writes the windows of the input text; returns per-worker statistics.

    Every output appears only if all workers succeed; a bad line (invalid
    UTF-8) is an error naming `file:line`, and nothing is left behind.
    """
    config.validate()
    if num_workers < 1:
        raise LMDataError(f"--num_workers={num_workers} must be >= 1")
    input_files = tuple(text_files.expand_globs(input_patterns, flag="--input_file"))
    load_tokenizer(config.vocab_dir, config.vocab_file, config.do_lower_case)  # fail early
    finals = output_paths(output_file, num_workers)
    staging = [os.path.join(os.path.dirname(os.path.abspath(p)),
                            f".{os.path.basename(p)}.partial-{os.getpid()}") for p in finals]
    tasks = [_WorkerTask(input_files, staging[w], config, w, num_workers)
             for w in range(num_workers)]
    try:
        if num_workers == 1:
            stats = [_run_worker(tasks[0])]
        else:
            with multiprocessing.get_context("spawn").Pool(num_workers) as pool:
                stats = pool.map(_spawned_worker, tasks)
        if sum(s.documents for s in stats) == 0:
            raise LMDataError(f"no documents in --input_file ({', '.join(input_files)}): "
                              "every line is blank")
        if sum(s.windows for s in stats) == 0:
            tokens = max(s.tokens for s in stats)
            raise LMDataError(f"--input_file holds {tokens} tokens per stream, fewer than one "
                              f"window of n_ctx + 1 = {config.n_ctx + 1}: lower --n_ctx")
    except BaseException:
        for path in staging:
            if os.path.exists(path):
                os.remove(path)
        raise
    for temp, final in zip(staging, finals):
        os.replace(temp, final)
    return stats
