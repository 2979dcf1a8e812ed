"""A dependency-free client of the embedding service (`serve_embeddings.py`).

With `serve_embeddings.py` running on port 8125::

    client = EmbeddingClient("http://127.0.0.1:8125")
    client.encode(["hello world", ["a question", "its answer"]]).shape  # (2, 384)

With `serve_vectors.py` serving a word2vec file::

    EmbeddingClient("http://127.0.0.1:8126").most_similar("king", topn=3)
    # [('queen', 0.71), ...]; an unknown key raises EmbeddingServiceError (status 404)
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import numpy as np


class EmbeddingServiceError(RuntimeError):
    """The service answered with an error; `status` is the HTTP code."""

    def __init__(self, status: int, message: str):
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message


class EmbeddingClient:
    def __init__(self, url: str = "http://127.0.0.1:8125", timeout: float = 120.0):
        self.url = url.rstrip("/")
        self.timeout = timeout

    def encode(self, texts: list) -> np.ndarray | list[np.ndarray]:
        """Strings or [a, b] pairs to a float32 `[len(texts), dim]` array.

        With the service's "none" pooling, a list of `[tokens, hidden]` arrays.
        """
        answer = self._call("POST", "/encode", {"texts": list(texts)})
        if "tokens" in answer:
            return [np.asarray(rows, np.float32) for rows in answer["embeddings"]]
        return np.asarray(answer["embeddings"], np.float32).reshape(-1, answer["dim"])

    def most_similar(self, key, topn: int = 10) -> list:
        """The `topn` nearest (key, cosine) pairs of `key`, best first; for a
        list of keys, one such list per key."""
        if isinstance(key, (list, tuple)):
            answer = self._call("POST", "/most_similar", {"keys": list(key), "topn": topn})
            return [[(n["key"], n["score"]) for n in r["neighbours"]] for r in answer["results"]]
        answer = self._call("POST", "/most_similar", {"key": key, "topn": topn})
        return [(n["key"], n["score"]) for n in answer["neighbours"]]

    def health(self) -> dict:
        return self._call("GET", "/health")

    def _call(self, method: str, path: str, payload: dict | None = None) -> dict:
        data = None if payload is None else json.dumps(payload).encode("utf-8")
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as e:
            body = e.read()
            try:
                message = json.loads(body)["error"]
            except (ValueError, KeyError, TypeError):
                message = body.decode("utf-8", "replace")[:200]
            raise EmbeddingServiceError(e.code, message) from None
