"""Sentence embeddings over HTTP, with requests batched together on the model.

POST /encode {"texts": ["a sentence", ["text a", "text b"], ...]} answers
{"embeddings": [[...], ...], "dim": H}; GET /health answers the settings and
counters. An asyncio event loop reads each request whole, within a time limit,
so slow or stalled clients hold no thread; a fixed set of handler threads
parse, validate and tokenize; one worker thread owns the model: it takes
requests from a queue, groups up to `max_batch_size` texts (waiting at most
`batch_wait_ms` for more to arrive), splits them by bucket length (their
length rounded up to a multiple of 8), runs each batch padded to its bucket
and hands each request its rows back. A text thus always runs at the same
padded length, and its vector is bitwise the same whatever it is batched with.

Pooling (over `encoder_outputs[pooling_layer]`):
  mean / max   over every non-padding position, [CLS] and [SEP] included
               (bert-as-service's REDUCE_MEAN / REDUCE_MAX behaviour);
  mean_max     the two concatenated, dimension 2H;
  cls          the [CLS] position;
  first_token  the first wordpiece after [CLS];
  last_token   the last wordpiece before the final [SEP];
  none         every position of the text (specials included), with the
               wordpieces in "tokens".
Texts longer than `max_seq_len` wordpieces are truncated as in Google's code.

The same server answers nearest-neighbour queries over static vectors
(word2vec format: words, graph nodes, items) with a `VectorService`:
POST /most_similar {"key": "x", "topn": 10}; see `serve_vectors.py`.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import dataclasses
import email.utils
import http
import json
import queue
import signal
import socket
import sys
import threading
import time
import urllib.parse

import numpy as np
import tensorflow as tf
from absl import logging

from bert_tf import feature_extraction, modeling, tokenization

POOLING_STRATEGIES = ("mean", "max", "mean_max", "cls", "first_token", "last_token", "none")


class RequestError(ValueError):
    """A request the client must fix; `status` is the HTTP 4xx code to answer."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


class ServiceUnavailable(RuntimeError):
    """The model did not answer in time, or the service is stopping."""


@dataclasses.dataclass(frozen=True)
class ServiceSettings:
    pooling_strategy: str = "mean"
    pooling_layer: int = -1
    max_seq_len: int = 64
    max_batch_size: int = 64
    max_texts_per_request: int = 256
    max_chars: int = 10_000
    batch_wait_ms: float = 2.0
    request_timeout_s: float = 120.0

    def __post_init__(self):
        if self.pooling_strategy not in POOLING_STRATEGIES:
            raise ValueError(f"pooling_strategy {self.pooling_strategy!r} is not one of "
                             f"{', '.join(POOLING_STRATEGIES)}")
        for name in ("max_batch_size", "max_texts_per_request", "max_chars"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.max_seq_len < 3:
            raise ValueError(f"max_seq_len must be at least 3, got {self.max_seq_len}")
        if self.batch_wait_ms < 0 or self.request_timeout_s <= 0:
            raise ValueError("batch_wait_ms must be >= 0 and request_timeout_s > 0")


def pool(layer_output: tf.Tensor, input_mask: tf.Tensor, strategy: str) -> tf.Tensor:
    """`[batch, seq, hidden]` activations to one vector per row (or all, for "none")."""
    mask = tf.cast(input_mask, layer_output.dtype)[:, :, tf.newaxis]
    if strategy == "mean":
        return tf.reduce_sum(layer_output * mask, 1) / tf.reduce_sum(mask, 1)
    if strategy == "max":
        return tf.reduce_max(tf.where(mask > 0, layer_output, layer_output.dtype.min), 1)
    if strategy == "mean_max":
        return tf.concat([pool(layer_output, input_mask, "mean"),
                          pool(layer_output, input_mask, "max")], axis=-1)
    if strategy == "cls":
        return layer_output[:, 0]
    if strategy == "first_token":
        return layer_output[:, 1]
    if strategy == "last_token":
        last = tf.reduce_sum(tf.cast(input_mask, tf.int32), 1) - 2
        return tf.gather(layer_output, last, axis=1, batch_dims=1)
    if strategy == "none":
        return layer_output
    raise ValueError(f"unknown pooling strategy {strategy!r}")


def embedding_function(encoder: modeling.BertEncoder, strategy: str, layer: int):
    """A tf.function from padded int32 inputs to pooled vectors, traced once
    for every batch size and length."""
    num_layers = encoder.config.num_hidden_layers
    if not -num_layers <= layer < num_layers:
        raise ValueError(f"pooling_layer {layer} is out of range for a {num_layers}-layer encoder")
    spec = tf.TensorSpec([None, None], tf.int32)

    @tf.function(input_signature=[spec, spec, spec])
    def embed(input_word_ids, input_mask, input_type_ids):
        outputs = encoder({"input_word_ids": input_word_ids, "input_mask": input_mask,
                           "input_type_ids": input_type_ids}, training=False)
        return pool(outputs["encoder_outputs"][layer], input_mask, strategy)

    return embed


# Texts run padded to a multiple of this many positions. The float sums over
# positions (attention, pooling) run in chunks of 8 lanes on TF's CPU kernels:
# a text's vector changes in the last bits when the padded length changes
# within its last chunk and not otherwise, while the batch size and the other
# rows never change it. Padding every text to its own bucket length therefore
# makes its vector bitwise the same in whatever batch it runs.
PAD_MULTIPLE = 8


def bucket_length(length: int, max_seq_len: int | None = None,
                  multiple: int = PAD_MULTIPLE) -> int:
    """The padded length a text of `length` wordpieces always runs at."""
    padded = -(-length // multiple) * multiple
    return padded if max_seq_len is None else min(padded, max(max_seq_len, length))


def length_buckets(rows: list, max_batch_size: int, max_seq_len: int | None = None,
                   multiple: int = PAD_MULTIPLE) -> list:
    """Splits `(job, index)` rows into batches of one bucket length each.

    A batch holds only texts of the same `bucket_length`, so a text is padded
    by fewer than `multiple` positions (padding costs as much as real
    tokens) and always to the same length, whatever it is batched with.
    """
    def length(row):
        job, i = row
        return len(job.features[i].input_ids)

    batches, batch, batch_length = [], [], None
    for row in sorted(rows, key=length):
        row_length = bucket_length(length(row), max_seq_len, multiple)
        if batch and (len(batch) == max_batch_size or row_length != batch_length):
            batches.append(batch)
            batch = []
        batch.append(row)
        batch_length = row_length
    return batches + [batch] if batch else batches


def pad_to_bucket(features: list[feature_extraction.Features], max_seq_len: int | None = None,
                  multiple: int = PAD_MULTIPLE) -> dict[str, np.ndarray]:
    """`feature_extraction.pad_batch`, widened with padding to the bucket length."""
    inputs = feature_extraction.pad_batch(features)
    longest = inputs["input_word_ids"].shape[1]
    extra = bucket_length(longest, max_seq_len, multiple) - longest
    return {name: np.pad(value, ((0, 0), (0, extra))) for name, value in inputs.items()}


class _Job:
    """One request's features, filled in row by row by the worker."""

    def __init__(self, features: list[feature_extraction.Features]):
        self.features = features
        self.results: list[np.ndarray | None] = [None] * len(features)
        self.remaining = len(features)
        self.error: Exception | None = None
        self.done = threading.Event()


_STOP = object()


class BatchingWorker:
    """Owns the model; groups the texts of concurrent requests into batches."""

    def __init__(self, embed, max_batch_size: int, batch_wait_ms: float, keep_all_positions: bool,
                 max_seq_len: int | None = None):
        self._embed = embed
        self._max_batch_size = max_batch_size
        self._max_seq_len = max_seq_len
        self._wait_s = batch_wait_ms / 1000.0
        self._keep_all_positions = keep_all_positions
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="model-worker", daemon=True)
        self.batches = 0
        self.texts = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._queue.put(_STOP)
        self._thread.join(timeout)

    def run(self, features: list[feature_extraction.Features], timeout: float) -> list[np.ndarray]:
        """Blocks until every row of `features` has been embedded."""
        if not self._thread.is_alive():
            raise ServiceUnavailable("the model worker is not running")
        job = _Job(features)
        self._queue.put(job)
        if not job.done.wait(timeout):
            raise ServiceUnavailable(f"no answer from the model within {timeout:g} s")
        if job.error is not None:
            raise job.error
        return job.results

    def _loop(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is _STOP:
                break
            rows = [(first, i) for i in range(len(first.features))]
            deadline = time.monotonic() + self._wait_s
            while len(rows) < self._max_batch_size:
                try:
                    job = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if job is _STOP:
                    stopping = True
                    break
                rows.extend((job, i) for i in range(len(job.features)))
            for batch in length_buckets(rows, self._max_batch_size, self._max_seq_len):
                self._run_batch(batch)
        self._fail_queued(ServiceUnavailable("the service is shutting down"))

    def _run_batch(self, rows: list[tuple[_Job, int]]) -> None:
        features = [job.features[i] for job, i in rows]
        try:
            inputs = pad_to_bucket(features, self._max_seq_len)
            values = self._embed(**inputs).numpy()
        except Exception as e:  # noqa: BLE001 (the server must survive a failing batch)
            logging.exception("model call failed on a batch of %d texts", len(rows))
            for job in {id(job): job for job, _ in rows}.values():
                job.error = RuntimeError(f"model call failed: {type(e).__name__}: {e}")
                job.done.set()
            return
        self.batches += 1
        self.texts += len(rows)
        for (job, i), vector, feature in zip(rows, values, features):
            if self._keep_all_positions:
                vector = vector[:len(feature.input_ids)]
            job.results[i] = vector
            job.remaining -= 1
            if job.remaining == 0 and job.error is None:
                job.done.set()

    def _fail_queued(self, error: Exception) -> None:
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                return
            if job is not _STOP:
                job.error = error
                job.done.set()


def json_body(body: bytes, expected: str) -> dict:
    """A request body as a JSON object, or RequestError saying what is wrong
    and what was `expected` (shown to the client)."""
    try:
        request = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise RequestError(f"the request body is not valid UTF-8 ({e.reason} at byte "
                           f"{e.start})") from None
    except json.JSONDecodeError as e:
        raise RequestError(f"the request body is not valid JSON ({e.msg} at line "
                           f"{e.lineno}, column {e.colno})") from None
    except RecursionError:
        # json's decoder recurses once per nested array or object.
        raise RequestError("the request body nests JSON arrays or objects too deeply "
                           f"(more than about {sys.getrecursionlimit()} levels); "
                           f"expected {expected}") from None
    if not isinstance(request, dict):
        raise RequestError(f"expected a JSON object {expected}")
    return request


class EmbeddingService:
    """Validation, tokenization and the batching worker behind the HTTP layer."""

    def __init__(self, encoder: modeling.BertEncoder, tokenizer: tokenization.FullTokenizer,
                 settings: ServiceSettings, model_name: str = ""):
        if settings.max_seq_len > encoder.config.max_position_embeddings:
            raise ValueError(f"max_seq_len {settings.max_seq_len} exceeds the model's "
                             f"max_position_embeddings {encoder.config.max_position_embeddings}")
        self.settings = settings
        self.tokenizer = tokenizer
        self.model_name = model_name
        hidden = encoder.config.hidden_size
        self.dim = 2 * hidden if settings.pooling_strategy == "mean_max" else hidden
        embed = embedding_function(encoder, settings.pooling_strategy, settings.pooling_layer)
        embed(**feature_extraction.pad_batch([self._features([("warm up", None)])[0]]))
        self.worker = BatchingWorker(embed, settings.max_batch_size, settings.batch_wait_ms,
                                     keep_all_positions=settings.pooling_strategy == "none",
                                     max_seq_len=settings.max_seq_len)
        self.worker.start()

    @classmethod
    def from_pretrained(cls, source, settings: ServiceSettings, model_name: str = "",
                        control_chars: str = tokenization.DEFAULT_CONTROL_CHARS):
        """Builds the encoder from a `pretrained.Pretrained` and loads its weights;
        texts are tokenized with control-character rule `control_chars`."""
        tokenizer = tokenization.FullTokenizer(source.vocab_file, source.do_lower_case,
                                               control_chars)
        encoder = modeling.BertEncoder(source.config)
        source.restore(encoder)
        return cls(encoder, tokenizer, settings, model_name)

    def max_body_bytes(self) -> int:
        # Every character may take 4 bytes of UTF-8, or 12 as a JSON \u escape pair.
        return self.settings.max_texts_per_request * (12 * self.settings.max_chars + 16) + 1024

    def parse_request(self, body: bytes) -> list[tuple[str, str | None]]:
        """The body of POST /encode to (text_a, text_b or None) pairs, or RequestError."""
        request = json_body(body, '{"texts": [...]}')
        if "texts" not in request:
            raise RequestError('expected a JSON object {"texts": [...]}')
        texts = request["texts"]
        if not isinstance(texts, list) or not texts:
            raise RequestError('"texts" must be a non-empty list of strings or [a, b] pairs')
        limit = self.settings.max_texts_per_request
        if len(texts) > limit:
            raise RequestError(f'"texts" has {len(texts)} items; the limit is '
                               f'{limit} per request', status=413)
        return [self._parse_item(i, item) for i, item in enumerate(texts)]

    def _parse_item(self, index: int, item) -> tuple[str, str | None]:
        if isinstance(item, str):
            parts = [item]
        elif (isinstance(item, list) and len(item) == 2
              and all(isinstance(part, str) for part in item)):
            parts = item
        else:
            raise RequestError(f"texts[{index}] must be a string or a list of two strings, "
                               f"got {json.dumps(item)[:80]}")
        for part in parts:
            if len(part) > self.settings.max_chars:
                raise RequestError(f"texts[{index}] has {len(part)} characters; the limit "
                                   f"is {self.settings.max_chars}", status=413)
        return parts[0], parts[1] if len(parts) == 2 else None

    def _features(self, texts: list[tuple[str, str | None]]) -> list[feature_extraction.Features]:
        examples = ((i, a, b) for i, (a, b) in enumerate(texts))
        features = list(feature_extraction.to_features(examples, self.tokenizer,
                                                       self.settings.max_seq_len))
        for f, (_, text_b) in zip(features, texts):
            # [CLS] a [SEP] has type 0 twice over; b [SEP] has type 1.
            empty_a = f.input_type_ids.count(0) == 2
            empty_b = text_b is not None and f.input_type_ids.count(1) == 1
            if empty_a:
                raise RequestError(f"texts[{f.unique_id}] has no wordpieces")
            if empty_b:
                raise RequestError(f"texts[{f.unique_id}]: the second text has no wordpieces")
        return features

    def encode(self, texts: list[tuple[str, str | None]]) -> dict:
        """The JSON answer for validated texts."""
        features = self._features(texts)
        vectors = self.worker.run(features, self.settings.request_timeout_s)
        answer = {"embeddings": [v.tolist() for v in vectors], "dim": self.dim}
        if self.settings.pooling_strategy == "none":
            answer["tokens"] = [f.tokens for f in features]
        return answer

    # The POST paths the server routes to `answer`.
    post_paths = ("/encode",)

    def answer(self, path: str, body: bytes) -> dict:
        """The JSON answer to a POST of `body` to one of `post_paths`."""
        del path
        return self.encode(self.parse_request(body))

    def health(self) -> dict:
        s = self.settings
        return {"status": "ok", "model": self.model_name, "dim": self.dim,
                "control_chars": self.tokenizer.control_chars,
                "pooling_strategy": s.pooling_strategy, "pooling_layer": s.pooling_layer,
                "max_seq_len": s.max_seq_len, "max_batch_size": s.max_batch_size,
                "max_texts_per_request": s.max_texts_per_request, "max_chars": s.max_chars,
                "batches": self.worker.batches, "texts": self.worker.texts}

    def close(self) -> None:
        self.worker.stop()


@dataclasses.dataclass(frozen=True)
class NeighbourSettings:
    default_topn: int = 10
    max_topn: int = 1000
    max_keys_per_request: int = 256

    def __post_init__(self):
        for name in ("default_topn", "max_topn", "max_keys_per_request"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.default_topn > self.max_topn:
            raise ValueError(f"default_topn {self.default_topn} exceeds max_topn {self.max_topn}")


class VectorService:
    """Nearest neighbours by cosine in one set of static vectors (words,
    graph nodes or items), behind the same HTTP server.

    POST /most_similar {"key": "x", "topn": 10} answers
    {"key": "x", "neighbours": [{"key": "y", "score": 0.93}, ...]}, most
    similar first, the key itself left out (`Vectors.most_similar`, as
    gensim's); {"keys": [...]} answers {"results": [one such object per
    key]}. A key without a vector is a 404 naming it. Keys are strings; an
    integer key is read as its decimal string (item and node ids often are
    numbers).

    >>> from bert_tf.vectors import Vectors
    >>> service = VectorService(Vectors(["a", "b", "c"], np.array([[1., 0.], [1., 1.], [0., 1.]])))
    >>> service.answer("/most_similar", b'{"key": "a", "topn": 2}')["neighbours"][0]
    {'key': 'b', 'score': 0.7071067690849304}
    """

    post_paths = ("/most_similar",)

    def __init__(self, vectors, settings: NeighbourSettings = NeighbourSettings(),
                 name: str = ""):
        self.vectors = vectors
        vectors.unit_vectors()  # normalised once, before the first request
        self.settings = settings
        self.name = name
        self.requests = 0

    @classmethod
    def from_file(cls, path: str, settings: NeighbourSettings = NeighbourSettings()):
        """Vectors in word2vec text or binary format (bert_tf.vectors reads them)."""
        from bert_tf import vectors

        return cls(vectors.Vectors.load(path), settings, name=path)

    @property
    def words(self) -> list[str]:
        return self.vectors.words

    @property
    def dim(self) -> int:
        return self.vectors.dim

    def answer(self, path: str, body: bytes) -> dict:
        del path
        expected = '{"key": "...", "topn": N} or {"keys": [...], "topn": N}'
        request = json_body(body, expected)
        if ("key" in request) == ("keys" in request):
            raise RequestError(f"expected exactly one of \"key\" and \"keys\": {expected}")
        single = "key" in request
        keys = [request["key"]] if single else request["keys"]
        if not isinstance(keys, list) or not keys:
            raise RequestError('"keys" must be a non-empty list of strings')
        if len(keys) > self.settings.max_keys_per_request:
            raise RequestError(f'"keys" has {len(keys)} items; the limit is '
                               f"{self.settings.max_keys_per_request} per request", status=413)
        topn = request.get("topn", self.settings.default_topn)
        if isinstance(topn, bool) or not isinstance(topn, int) or topn < 1:
            raise RequestError(f'"topn" must be a positive integer, got {json.dumps(topn)[:40]}')
        if topn > self.settings.max_topn:
            raise RequestError(f'"topn" is {topn}; the limit is {self.settings.max_topn}',
                               status=413)
        names = []
        for i, key in enumerate(keys):
            where = '"key"' if single else f'"keys"[{i}]'
            if isinstance(key, int) and not isinstance(key, bool):
                key = str(key)
            if not isinstance(key, str):
                raise RequestError(f"{where} must be a string, got {json.dumps(key)[:40]}")
            if key not in self.vectors.index:
                raise RequestError(f"{where}: unknown key {key!r}: it is not one of the "
                                   f"{len(self.words)} vectors", status=404)
            names.append(key)
        self.requests += 1
        results = [{"key": key, "neighbours": [{"key": k, "score": s} for k, s in
                                               self.vectors.most_similar(key, topn)]}
                   for key in names]
        return results[0] if single else {"results": results}

    def max_body_bytes(self) -> int:
        longest = max((len(w.encode("utf-8")) for w in self.words), default=1)
        return self.settings.max_keys_per_request * (6 * longest + 8) + 1024

    def health(self) -> dict:
        s = self.settings
        return {"status": "ok", "vectors": self.name, "count": len(self.words), "dim": self.dim,
                "default_topn": s.default_topn, "max_topn": s.max_topn,
                "max_keys_per_request": s.max_keys_per_request, "requests": self.requests}

    def close(self) -> None:
        pass


class _Tally:
    """Counts routine connection events and logs them in one line per
    `interval_s`, not one traceback each: a client that hangs up is normal
    traffic, and a thousand of them must not bury the log."""

    def __init__(self, interval_s: float = 10.0):
        self.counts: dict[str, int] = collections.Counter()
        self._pending: dict[str, int] = collections.Counter()
        self._latest: dict[str, str] = {}
        self.interval_s = interval_s
        self._last_flush = -float("inf")  # the first event is logged at once

    def note(self, kind: str, detail: str) -> None:
        self.counts[kind] += 1
        self._pending[kind] += 1
        self._latest[kind] = detail
        if time.monotonic() - self._last_flush >= self.interval_s:
            self.flush()

    def flush(self) -> None:
        self._last_flush = time.monotonic()
        for kind, count in sorted(self._pending.items()):
            logging.info("%s: %d since the last report (latest %s), %d since the server "
                         "started", kind, count, self._latest[kind], self.counts[kind])
        self._pending.clear()


class _HandlerThreads:
    """A fixed set of threads for the CPU work of requests (JSON, tokenizing,
    waiting for the model): however many clients connect, the server runs
    `size` + 2 threads."""

    def __init__(self, size: int):
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._threads = [threading.Thread(target=self._loop, name=f"request-{i}", daemon=True)
                         for i in range(size)]
        for t in self._threads:
            t.start()

    def submit(self, fn, *args) -> concurrent.futures.Future:
        future: concurrent.futures.Future = concurrent.futures.Future()
        self._queue.put((future, fn, args))
        return future

    def _loop(self) -> None:
        while (item := self._queue.get()) is not None:
            future, fn, args = item
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn(*args))
                except BaseException as e:  # noqa: BLE001 (handed to the awaiting request)
                    future.set_exception(e)

    def stop(self, timeout: float = 5.0) -> None:
        for _ in self._threads:
            self._queue.put(None)
        for t in self._threads:
            t.join(timeout)


class _Request:
    def __init__(self, method: str, target: str, version: str, headers: dict[str, str]):
        self.method, self.target, self.version, self.headers = method, target, version, headers
        self.path = urllib.parse.urlsplit(target).path
        self.body = b""

    @property
    def keep_alive(self) -> bool:
        connection = self.headers.get("connection", "").lower()
        return self.version == "HTTP/1.1" and "close" not in connection


class _Answer(Exception):
    """Ends a request early with this HTTP status and error message."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


HEAD_LIMIT = 64 * 1024


class EmbeddingServer:
    """HTTP/1.1 in front of one EmbeddingService (or VectorService), on an
    asyncio event loop.

    The event loop reads every request whole (head and body) before any
    thread works on it, so a client that sends its body slowly, or never,
    costs a socket and its buffer but no thread. Each request must arrive
    within `read_timeout_s` of the server starting to wait for it (else 408,
    or a silent close of an idle keep-alive connection), and at most
    `max_connections` are open at once (the next ones get 503). The interface
    is socketserver's: `serve_forever()`, `shutdown()` from another thread,
    `server_close()`.
    """

    def __init__(self, service: EmbeddingService | VectorService, host: str = "127.0.0.1",
                 port: int = 8125,
                 read_timeout_s: float = 30.0, max_connections: int = 1000,
                 handler_threads: int = 32, shutdown_grace_s: float = 30.0):
        if read_timeout_s <= 0:
            raise ValueError(f"read_timeout_s must be > 0, got {read_timeout_s}")
        for name, value in (("max_connections", max_connections),
                            ("handler_threads", handler_threads)):
            if value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        self.service = service
        self.read_timeout_s = read_timeout_s
        self.max_connections = max_connections
        self.handler_threads = handler_threads
        self.shutdown_grace_s = shutdown_grace_s
        self.tally = _Tally()
        self.open_connections = 0
        self._refusing = 0  # connections being answered 503
        # Bound now, so that `url` (port 0: a free port) is known before serving.
        self.socket = socket.create_server((host, port), backlog=1024)
        self.server_address = self.socket.getsockname()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._stopped = threading.Event()
        self._stopped.set()
        self._shutdown_requested = False

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def serve_forever(self, poll_interval: float | None = None) -> None:
        """Serves until `shutdown()`; `poll_interval` is accepted for
        socketserver's signature and unused (shutdown wakes the loop)."""
        del poll_interval
        self._stopped.clear()
        try:
            asyncio.run(self._serve())
        finally:
            self._shutdown_requested = False
            self._stopped.set()

    def shutdown(self) -> None:
        """Stops serve_forever() and waits for it; call from another thread."""
        # Flag first, loop second: _serve() sets the loop first and reads the
        # flag second, so one of the two sees the other.
        self._shutdown_requested = True
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not self._stopped.is_set():
            try:
                loop.call_soon_threadsafe(stop.set)
            except RuntimeError:  # the loop has just closed
                pass
        self._stopped.wait()

    def server_close(self) -> None:
        self.socket.close()

    def health(self) -> dict:
        return {**self.service.health(), "open_connections": self.open_connections,
                "max_connections": self.max_connections, "read_timeout_s": self.read_timeout_s,
                **{kind.replace(" ", "_"): n for kind, n in sorted(self.tally.counts.items())}}

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        if self._shutdown_requested:
            self._stop.set()
        self._threads = _HandlerThreads(self.handler_threads)
        self._busy: set[asyncio.Task] = set()
        self._tasks: set[asyncio.Task] = set()
        server = await asyncio.start_server(self._on_connection, sock=self.socket,
                                            limit=HEAD_LIMIT, backlog=1024)
        flusher = asyncio.create_task(self._flush_tally())
        try:
            await self._stop.wait()
        finally:
            server.close()  # stops accepting (and closes the listening socket)
            idle = self._tasks - self._busy
            for task in idle:
                task.cancel()
            if self._busy:
                await asyncio.wait(self._busy, timeout=self.shutdown_grace_s)
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            flusher.cancel()
            self.tally.flush()
            self._threads.stop()

    async def _flush_tally(self) -> None:
        while True:
            await asyncio.sleep(self.tally.interval_s)
            self.tally.flush()

    async def _on_connection(self, reader: asyncio.StreamReader,
                             writer: asyncio.StreamWriter) -> None:
        peer = "%s:%s" % writer.get_extra_info("peername", ("?", "?"))[:2]
        if self.open_connections >= self.max_connections:
            self.tally.note("connections refused", f"{peer}: {self.max_connections} open")
            answer = self._response(503, {"error": f"the server has {self.max_connections} "
                                                   "open connections; retry later"}, False)
            if self._refusing < self.max_connections:
                self._refusing += 1
                try:
                    await self._answer_and_close(reader, writer, answer)
                except (ConnectionError, asyncio.CancelledError):
                    pass
                finally:
                    self._refusing -= 1
            writer.close()
            return
        task = asyncio.current_task()
        self.open_connections += 1
        self._tasks.add(task)
        try:
            await self._serve_connection(reader, writer, peer, task)
        except (ConnectionError, asyncio.IncompleteReadError) as e:
            self.tally.note("clients hung up", f"{peer}: {type(e).__name__}")
        except asyncio.TimeoutError:
            self.tally.note("clients too slow to read their answer", peer)
        except asyncio.CancelledError:
            pass
        finally:
            self.open_connections -= 1
            self._tasks.discard(task)
            self._busy.discard(task)
            writer.close()

    async def _serve_connection(self, reader, writer, peer: str, task) -> None:
        while True:
            received = []
            try:
                request = await asyncio.wait_for(self._read_request(reader, writer, received),
                                                 self.read_timeout_s)
            except asyncio.TimeoutError:
                if received:
                    self.tally.note("requests timed out", f"{peer}: {received[-1]}")
                    await self._answer_and_close(reader, writer, self._response(408, {
                        "error": f"the request did not arrive whole within "
                                 f"{self.read_timeout_s:g} s"}, False))
                return
            except _Answer as e:
                await self._answer_and_close(
                    reader, writer, self._response(e.status, {"error": str(e)}, False))
                return
            if request is None:
                return
            self._busy.add(task)
            try:
                status, payload = await self._dispatch(request)
            except Exception as e:  # noqa: BLE001 (answer 500 and keep serving)
                logging.exception("internal error on %s %s", request.method, request.path)
                status, payload = 500, {"error": f"internal error: {type(e).__name__}: {e}"}
            finally:
                self._busy.discard(task)
            keep_alive = request.keep_alive and not self._stop.is_set()
            await self._write(writer, self._response(status, payload, keep_alive))
            if not keep_alive:
                return

    async def _write(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        writer.write(data)
        # A client that does not read its answer is dropped like one that
        # does not send its request.
        await asyncio.wait_for(writer.drain(), self.read_timeout_s)

    async def _answer_and_close(self, reader: asyncio.StreamReader,
                                writer: asyncio.StreamWriter, data: bytes,
                                linger_s: float = 1.0) -> None:
        """Answers a request that was not read whole, then reads what the
        client still sends for up to `linger_s`: closing a socket with unread
        data resets the connection, and the client would see a broken pipe
        instead of the answer."""
        await self._write(writer, data)
        if writer.can_write_eof():
            writer.write_eof()

        async def discard():
            while await reader.read(HEAD_LIMIT):
                pass

        try:
            await asyncio.wait_for(discard(), linger_s)
        except (asyncio.TimeoutError, ConnectionError):
            pass

    async def _read_request(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                            received: list) -> _Request | None:
        """One whole request, None at a clean end of the connection, or _Answer."""
        first = await reader.read(1)
        if not first:
            return None
        received.append("an unfinished request head")
        try:
            head = first + await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError:
            raise _Answer(431, f"the request head exceeds {HEAD_LIMIT} bytes") from None
        received.append("an unfinished body")
        request = self._parse_head(head)
        size = self._body_size(request)
        if size:
            if request.headers.get("expect", "").lower() == "100-continue":
                writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            request.body = await reader.readexactly(size)
        return request

    @staticmethod
    def _parse_head(head: bytes) -> _Request:
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            raise _Answer(400, f"bad request line {lines[0][:100]!r}")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if not line:
                continue
            name, colon, value = line.partition(":")
            if not colon or not name.strip() or name != name.strip():
                raise _Answer(400, f"bad header line {line[:100]!r}")
            name, value = name.lower(), value.strip()
            if name == "content-length" and headers.get(name, value) != value:
                raise _Answer(400, "conflicting Content-Length headers")
            headers[name] = value
        return _Request(parts[0], parts[1], parts[2], headers)

    def _body_size(self, request: _Request) -> int:
        if "transfer-encoding" in request.headers:
            raise _Answer(411, "chunked bodies are not supported: send Content-Length")
        length = request.headers.get("content-length")
        if length is None:
            if request.method == "POST":
                raise _Answer(411, "missing Content-Length header")
            return 0
        if not length.isdigit():
            raise _Answer(400, f"bad Content-Length {length!r}")
        size, limit = int(length), self.service.max_body_bytes()
        if size > limit:
            raise _Answer(413, f"the body has {size} bytes; the limit is {limit}")
        return size

    async def _dispatch(self, request: _Request) -> tuple[int, dict | bytes]:
        paths = self.service.post_paths
        if request.method == "GET" and request.path == "/health":
            return 200, self.health()
        if request.method == "POST" and request.path in paths:
            return await asyncio.wrap_future(
                self._threads.submit(self._post, request.path, request.body))
        posts = " or ".join(f"POST {path}" for path in paths)
        if request.method in ("GET", "POST"):
            use = f"GET /health or {posts}" if request.method == "GET" else posts
            return 404, {"error": f"unknown path {request.path!r}: use {use}"}
        return 405, {"error": f"method {request.method} not allowed: use GET /health "
                              f"or {posts}"}

    def _post(self, path: str, body: bytes) -> tuple[int, bytes]:
        """A POST on a handler thread: the status and the JSON answer."""
        try:
            answer = self.service.answer(path, body)
        except RequestError as e:
            return e.status, {"error": str(e)}
        except ServiceUnavailable as e:
            return 503, {"error": str(e)}
        except Exception as e:  # noqa: BLE001 (answer 500 and keep serving)
            logging.exception("internal error on POST %s", path)
            return 500, {"error": f"internal error: {type(e).__name__}: {e}"}
        # Serialised here, not on the event loop: an answer can be megabytes.
        return 200, json.dumps(answer).encode("utf-8")

    @staticmethod
    def _response(status: int, payload: dict | bytes, keep_alive: bool) -> bytes:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode("utf-8")
        head = (f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}\r\n"
                f"Server: bert-tf-embeddings/2\r\n"
                f"Date: {email.utils.formatdate(usegmt=True)}\r\n"
                "Content-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n"
                f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n")
        return head.encode("latin-1") + body


def serve_until_signalled(server: EmbeddingServer) -> None:
    """Serves until SIGTERM or SIGINT, then stops accepting, answers the
    requests in flight and stops the worker."""

    def stop(signum, _frame):
        logging.info("signal %d: shutting down", signum)
        # shutdown() waits for serve_forever() to return: call it off this thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.serve_forever()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        server.server_close()
        server.service.close()
