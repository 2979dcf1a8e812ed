"""Sentence embeddings over HTTP, with requests batched together on the model.

POST /encode {"texts": ["a sentence", ["text a", "text b"], ...]} answers
{"embeddings": [[...], ...], "dim": H}; GET /health answers the settings and
counters. Handler threads tokenize and validate; one worker thread owns the
model: it takes requests from a queue, groups up to `max_batch_size` texts
(waiting at most `batch_wait_ms` for more to arrive), splits them into
batches of similar length, runs each padded to its longest and hands each
request its rows back.

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
"""

from __future__ import annotations

import dataclasses
import http.server
import json
import queue
import signal
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


def length_buckets(rows: list, max_batch_size: int, slack: float = 1.25, extra: int = 4) -> list:
    """Splits `(job, index)` rows into batches of similar length.

    Rows are sorted by length and a new batch starts when a row is longer
    than `slack` times the batch's shortest plus `extra` wordpieces: padding
    costs as much as real tokens, and one long text in a batch of short
    ones would multiply the batch's cost.
    """
    def length(row):
        job, i = row
        return len(job.features[i].input_ids)

    batches, batch = [], []
    for row in sorted(rows, key=length):
        if batch and (len(batch) == max_batch_size
                      or length(row) > slack * length(batch[0]) + extra):
            batches.append(batch)
            batch = []
        batch.append(row)
    return batches + [batch] if batch else batches


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

    def __init__(self, embed, max_batch_size: int, batch_wait_ms: float, keep_all_positions: bool):
        self._embed = embed
        self._max_batch_size = max_batch_size
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
            for batch in length_buckets(rows, self._max_batch_size):
                self._run_batch(batch)
        self._fail_queued(ServiceUnavailable("the service is shutting down"))

    def _run_batch(self, rows: list[tuple[_Job, int]]) -> None:
        features = [job.features[i] for job, i in rows]
        try:
            inputs = feature_extraction.pad_batch(features)
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
                                     keep_all_positions=settings.pooling_strategy == "none")
        self.worker.start()

    @classmethod
    def from_pretrained(cls, source, settings: ServiceSettings, model_name: str = ""):
        """Builds the encoder from a `pretrained.Pretrained` and loads its weights."""
        encoder = modeling.BertEncoder(source.config)
        source.restore(encoder)
        tokenizer = tokenization.FullTokenizer(source.vocab_file, source.do_lower_case)
        return cls(encoder, tokenizer, settings, model_name)

    def max_body_bytes(self) -> int:
        # Every character may take 4 bytes of UTF-8, or 12 as a JSON \u escape pair.
        return self.settings.max_texts_per_request * (12 * self.settings.max_chars + 16) + 1024

    def parse_request(self, body: bytes) -> list[tuple[str, str | None]]:
        """The body of POST /encode to (text_a, text_b or None) pairs, or RequestError."""
        try:
            request = json.loads(body.decode("utf-8"))
        except UnicodeDecodeError as e:
            raise RequestError(f"the request body is not valid UTF-8 ({e.reason} at byte "
                               f"{e.start})") from None
        except json.JSONDecodeError as e:
            raise RequestError(f"the request body is not valid JSON ({e.msg} at line "
                               f"{e.lineno}, column {e.colno})") from None
        if not isinstance(request, dict) or "texts" not in request:
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

    def health(self) -> dict:
        s = self.settings
        return {"status": "ok", "model": self.model_name, "dim": self.dim,
                "pooling_strategy": s.pooling_strategy, "pooling_layer": s.pooling_layer,
                "max_seq_len": s.max_seq_len, "max_batch_size": s.max_batch_size,
                "max_texts_per_request": s.max_texts_per_request, "max_chars": s.max_chars,
                "batches": self.worker.batches, "texts": self.worker.texts}

    def close(self) -> None:
        self.worker.stop()


class _Handler(http.server.BaseHTTPRequestHandler):
    server_version = "bert-tf-embeddings/1"

    @property
    def service(self) -> EmbeddingService:
        return self.server.service

    def log_message(self, format, *args):
        logging.debug("%s %s", self.address_string(), format % args)

    def _send(self, status: int, payload: dict) -> None:
        body = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _path(self) -> str:
        return urllib.parse.urlsplit(self.path).path

    def do_GET(self):
        if self._path() == "/health":
            self._send(200, self.service.health())
        else:
            self._send(404, {"error": f"unknown path {self._path()!r}: use GET /health "
                                      "or POST /encode"})

    def do_POST(self):
        if self._path() != "/encode":
            self._send(404, {"error": f"unknown path {self._path()!r}: use POST /encode"})
            return
        try:
            texts = self.service.parse_request(self._read_body())
            answer = self.service.encode(texts)
        except RequestError as e:
            self._send(e.status, {"error": str(e)})
        except ServiceUnavailable as e:
            self._send(503, {"error": str(e)})
        except Exception as e:  # noqa: BLE001 (answer 500 and keep serving)
            logging.exception("internal error on POST /encode")
            self._send(500, {"error": f"internal error: {type(e).__name__}: {e}"})
        else:
            self._send(200, answer)

    def _read_body(self) -> bytes:
        length = self.headers.get("Content-Length")
        if length is None:
            raise RequestError("missing Content-Length header", status=411)
        try:
            size = int(length)
        except ValueError:
            raise RequestError(f"bad Content-Length {length!r}") from None
        if size < 0:
            raise RequestError(f"bad Content-Length {length!r}")
        if size > self.service.max_body_bytes():
            self.close_connection = True
            raise RequestError(f"the body has {size} bytes; the limit is "
                               f"{self.service.max_body_bytes()}", status=413)
        return self.rfile.read(size)

    def _method_not_allowed(self):
        self._send(405, {"error": f"method {self.command} not allowed: use GET /health "
                                  "or POST /encode"})

    do_PUT = do_DELETE = do_PATCH = _method_not_allowed


class EmbeddingServer(http.server.ThreadingHTTPServer):
    """A threading HTTP server bound to one EmbeddingService."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(self, service: EmbeddingService, host: str = "127.0.0.1", port: int = 8125):
        self.service = service
        super().__init__((host, port), _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


def serve_until_signalled(server: EmbeddingServer) -> None:
    """Serves until SIGTERM or SIGINT, then stops accepting, drains and stops the worker."""

    def stop(signum, _frame):
        logging.info("signal %d: shutting down", signum)
        # shutdown() waits for serve_forever() to return: call it off this thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        server.server_close()
        server.service.close()
