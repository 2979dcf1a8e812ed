"""POST /most_similar over real HTTP: answers against numpy cosine and
gensim's most_similar on vector files gensim writes (text and binary),
unknown keys as 404s, bad requests, and serve_vectors.py end to end."""

import json
import os
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from gensim import models as gensim_models

from bert_tf import embedding_service
from bert_tf.embedding_client import EmbeddingClient, EmbeddingServiceError

REPO = Path(__file__).resolve().parents[1]
KEYS = ["king", "queen", "man", "woman", "214536502", "node_7", "été", "x"]


@pytest.fixture(scope="module")
def keyed_vectors():
    rng = np.random.default_rng(3)
    matrix = rng.normal(size=(len(KEYS), 5)).astype(np.float32)
    # x is king scaled and nudged: king's nearest neighbour by far.
    matrix[KEYS.index("x")] = matrix[KEYS.index("king")] * 2 + 0.01 * matrix[KEYS.index("man")]
    kv = gensim_models.KeyedVectors(vector_size=5)
    kv.add_vectors(KEYS, matrix)
    return kv


@pytest.fixture(scope="module", params=["text", "binary"])
def vector_file(request, keyed_vectors, tmp_path_factory):
    path = tmp_path_factory.mktemp("vectors") / f"vectors.{request.param}"
    keyed_vectors.save_word2vec_format(str(path), binary=request.param == "binary")
    return str(path)


class Serving:
    def __init__(self, service):
        self.service = service
        self.server = embedding_service.EmbeddingServer(service, "127.0.0.1", 0)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.client = EmbeddingClient(self.server.url, timeout=30)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def serving(vector_file):
    running = Serving(embedding_service.VectorService.from_file(
        vector_file, embedding_service.NeighbourSettings(max_topn=50, max_keys_per_request=4)))
    yield running
    running.close()


def numpy_neighbours(matrix, keys, key, topn):
    unit = matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
    scores = unit @ unit[keys.index(key)]
    order = [i for i in np.lexsort((np.arange(len(keys)), -scores)) if keys[i] != key]
    return [(keys[i], float(scores[i])) for i in order[:topn]]


@pytest.mark.parametrize("topn", [1, 3, 7])
def test_answers_are_numpy_cosine_ranks_and_gensims_most_similar(serving, keyed_vectors, topn):
    matrix = keyed_vectors.vectors.astype(np.float64)
    for key in KEYS:
        got = serving.client.most_similar(key, topn=topn)
        want = numpy_neighbours(matrix, KEYS, key, topn)
        assert [k for k, _ in got] == [k for k, _ in want]
        np.testing.assert_allclose([s for _, s in got], [s for _, s in want], atol=1e-5)
        reference = keyed_vectors.most_similar(key, topn=topn)
        np.testing.assert_allclose([s for _, s in got], [s for _, s in reference], atol=1e-5)
    assert serving.client.most_similar("king", topn=1)[0][0] == "x"


def test_several_keys_and_integer_ids_in_one_request(serving, keyed_vectors):
    answers = serving.client.most_similar(["queen", "été", "214536502"], topn=2)
    matrix = keyed_vectors.vectors.astype(np.float64)
    for key, got in zip(["queen", "été", "214536502"], answers):
        assert [k for k, _ in got] == [k for k, _ in numpy_neighbours(matrix, KEYS, key, 2)]
    assert serving.client.most_similar(214536502, topn=2) == answers[2]
    # More neighbours than there are other keys: all of them.
    assert len(serving.client.most_similar("man", topn=50)) == len(KEYS) - 1


def test_unknown_key_is_a_404_naming_it(serving):
    with pytest.raises(EmbeddingServiceError, match="unknown key 'prince'") as info:
        serving.client.most_similar("prince")
    assert info.value.status == 404
    with pytest.raises(EmbeddingServiceError, match=r'"keys"\[1\]: unknown key') as info:
        serving.client.most_similar(["king", "nobody"])
    assert info.value.status == 404


@pytest.mark.parametrize("body,status,message", [
    (b'{"topn": 3}', 400, "exactly one of"),
    (b'{"key": "king", "keys": ["man"]}', 400, "exactly one of"),
    (b'{"keys": []}', 400, "non-empty list"),
    (b'{"key": ["king"]}', 400, "must be a string"),
    (b'{"key": "king", "topn": 0}', 400, "positive integer"),
    (b'{"key": "king", "topn": true}', 400, "positive integer"),
    (b'{"key": "king", "topn": 51}', 413, "limit is 50"),
    (b'{"keys": ["a", "b", "c", "d", "e"]}', 413, "limit is 4"),
    (b'not json', 400, "not valid JSON"),
])
def test_bad_requests_are_4xx_and_the_server_keeps_answering(serving, body, status, message):
    with pytest.raises(EmbeddingServiceError, match=message) as info:
        _post_raw(serving, body)
    assert info.value.status == status
    assert serving.client.most_similar("woman", topn=1)


def _post_raw(serving, body):
    request = urllib.request.Request(serving.server.url + "/most_similar", data=body,
                                     method="POST")
    try:
        urllib.request.urlopen(request, timeout=30)
    except urllib.error.HTTPError as e:
        raise EmbeddingServiceError(e.code, json.loads(e.read())["error"]) from None


def test_health_and_other_paths(serving):
    health = serving.client.health()
    assert (health["status"], health["count"], health["dim"]) == ("ok", len(KEYS), 5)
    with pytest.raises(EmbeddingServiceError, match="POST /most_similar") as info:
        serving.client._call("POST", "/encode", {"texts": ["x"]})
    assert info.value.status == 404


def test_script_serves_a_vector_file_and_stops_on_sigterm(tmp_path, keyed_vectors):
    path = tmp_path / "items.txt"
    keyed_vectors.save_word2vec_format(str(path))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    process = subprocess.Popen(
        [sys.executable, str(REPO / "serve_vectors.py"), f"--vectors={path}", "--port=0"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        assert f"Serving nearest neighbours of {len(KEYS)} 5-d vectors on" in line, \
            process.stderr.read()
        client = EmbeddingClient(line.split(" on ")[1].strip(), timeout=30)
        want = numpy_neighbours(keyed_vectors.vectors.astype(np.float64), KEYS, "woman", 3)
        assert [k for k, _ in client.most_similar("woman", topn=3)] == [k for k, _ in want]
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0
        assert "Stopped." in process.stdout.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_a_missing_or_broken_vector_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="none.txt"):
        embedding_service.VectorService.from_file(str(tmp_path / "none.txt"))
    broken = tmp_path / "broken.txt"
    broken.write_text("not a header\n")
    with pytest.raises(ValueError, match=f"{broken}:1: "):
        embedding_service.VectorService.from_file(str(broken))
