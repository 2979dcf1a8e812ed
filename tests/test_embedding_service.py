"""The embedding service over real HTTP on 127.0.0.1: pooling against numpy,
batching against one-at-a-time, bad requests, shutdown, and MiniLM against
Hugging Face's PyTorch BertModel."""

import http.client
import json
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from bert_tf import embedding_service, modeling, tokenization
from bert_tf.embedding_client import EmbeddingClient, EmbeddingServiceError

REPO = Path(__file__).resolve().parents[1]
SENTENCES = [
    "a gorgeous , witty , seductive movie .",
    "the plot is nothing but boilerplate clichés from start to finish",
    "it 's a charming and often affecting journey .",
    "unflinchingly bleak and desperate",
    "Hello, World!",
    ("the acting , costumes , music , cinematography and sound are all astounding given "
     "the production 's austere locales ."),
]


@pytest.fixture(scope="module")
def tokenizer(vocab_file):
    return tokenization.FullTokenizer(vocab_file, do_lower_case=True)


@pytest.fixture(scope="module")
def tiny_encoder():
    keras.utils.set_random_seed(7)
    config = modeling.BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2,
                                 num_attention_heads=4, intermediate_size=64,
                                 max_position_embeddings=64)
    return modeling.BertEncoder(config)


SERVER_OPTIONS = ("read_timeout_s", "max_connections", "handler_threads")


class Running:
    """A service behind a real HTTP server on a free port, served from a thread."""

    def __init__(self, encoder, tokenizer, **settings):
        options = {name: settings.pop(name) for name in SERVER_OPTIONS if name in settings}
        self.service = embedding_service.EmbeddingService(
            encoder, tokenizer, embedding_service.ServiceSettings(**settings))
        self.server = embedding_service.EmbeddingServer(self.service, "127.0.0.1", 0, **options)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.client = EmbeddingClient(self.server.url, timeout=60)
        self.host, self.port = self.server.server_address[:2]
        self.closed = False

    def close(self):
        if not self.closed:
            self.closed = True
            self.server.shutdown()
            self.server.server_close()
            self.service.close()


@pytest.fixture(scope="module")
def start(tiny_encoder, tokenizer):
    running = []

    def make(**settings):
        settings.setdefault("max_seq_len", 32)
        running.append(Running(tiny_encoder, tokenizer, **settings))
        return running[-1]

    yield make
    for r in running:
        r.close()


@pytest.fixture(scope="module")
def mean_server(start):
    return start(pooling_strategy="mean", max_texts_per_request=8, max_chars=1000)


def reference_layer(encoder, tokenizer, text, layer=-1, text_b=None, max_len=32):
    """One text alone through the encoder, no padding: ([seq, hidden], tokens)."""
    tokens_a = tokenizer.tokenize(text)
    tokens = ["[CLS]", *tokens_a[:max_len - 2], "[SEP]"]
    types = [0] * len(tokens)
    if text_b is not None:
        tokens_b = tokenizer.tokenize(text_b)
        tokens += [*tokens_b, "[SEP]"]
        types += [1] * (len(tokens_b) + 1)
    ids = np.array([tokenizer.convert_tokens_to_ids(tokens)], np.int32)
    out = encoder({"input_word_ids": ids, "input_mask": np.ones_like(ids),
                   "input_type_ids": np.array([types], np.int32)})
    return out["encoder_outputs"][layer].numpy()[0], tokens


NUMPY_POOLING = {
    "mean": lambda x: x.mean(0),
    "max": lambda x: x.max(0),
    "mean_max": lambda x: np.concatenate([x.mean(0), x.max(0)]),
    "cls": lambda x: x[0],
    "first_token": lambda x: x[1],
    "last_token": lambda x: x[-2],
}


@pytest.mark.parametrize("strategy", sorted(NUMPY_POOLING))
def test_pooling_matches_numpy_on_the_unpadded_encoder_output(strategy, start, tiny_encoder,
                                                              tokenizer):
    layer = -2 if strategy == "max" else -1
    server = start(pooling_strategy=strategy, pooling_layer=layer)
    got = server.client.encode(SENTENCES)  # one request: padded to the longest
    for text, vector in zip(SENTENCES, got):
        x, _ = reference_layer(tiny_encoder, tokenizer, text, layer)
        np.testing.assert_allclose(vector, NUMPY_POOLING[strategy](x), atol=1e-5)
    assert got.shape == (len(SENTENCES), 64 if strategy == "mean_max" else 32)


def test_none_pooling_returns_every_real_position_and_its_wordpiece(start, tiny_encoder,
                                                                    tokenizer):
    server = start(pooling_strategy="none")
    got = server.client.encode(SENTENCES[:3])
    for text, rows in zip(SENTENCES[:3], got):
        x, _ = reference_layer(tiny_encoder, tokenizer, text)
        np.testing.assert_allclose(rows, x, atol=1e-5)
    answer = server.client._call("POST", "/encode", {"texts": ["Hello, World!"]})
    assert answer["tokens"] == [["[CLS]", "hello", ",", "world", "!", "[SEP]"]]


def test_pairs_use_segment_b_and_last_token_is_the_end_of_b(start, tiny_encoder, tokenizer):
    server = start(pooling_strategy="last_token")
    got = server.client.encode([["is it good ?", "yes , very good"]])
    x, tokens = reference_layer(tiny_encoder, tokenizer, "is it good ?", text_b="yes , very good")
    assert tokens[-2] == "good"
    np.testing.assert_allclose(got[0], x[-2], atol=1e-5)


def test_long_texts_are_truncated_to_max_seq_len(mean_server, tiny_encoder, tokenizer):
    text = " ".join(["w"] * 100)  # 199 characters
    x, tokens = reference_layer(tiny_encoder, tokenizer, text, max_len=32)
    assert len(tokens) == 32
    np.testing.assert_allclose(mean_server.client.encode([text])[0], x.mean(0), atol=1e-5)


def test_concurrent_requests_are_batched_and_match_single_requests(mean_server, sst2_data):
    rows = (sst2_data / "dev.tsv").read_text(encoding="utf-8").splitlines()
    pool = [line.split("\t")[0] for line in rows[1:121]]
    singles = {text: mean_server.client.encode([text])[0] for text in pool}
    before = mean_server.client.health()
    rng = random.Random(3)
    requests = [rng.sample(pool, rng.randint(1, 8)) for _ in range(48)]
    answers, errors = [None] * len(requests), []

    def worker(start_index):
        client = EmbeddingClient(mean_server.server.url, timeout=60)
        for i in range(start_index, len(requests), 8):
            try:
                answers[i] = client.encode(requests[i])
            except Exception as e:  # noqa: BLE001 (collected: asserted below)
                errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    for texts, got in zip(requests, answers):
        np.testing.assert_allclose(got, np.stack([singles[t] for t in texts]), atol=1e-5)
    after = mean_server.client.health()
    texts_run = after["texts"] - before["texts"]
    assert texts_run == sum(len(r) for r in requests)
    assert after["batches"] - before["batches"] <= len(requests)


def test_worker_groups_queued_requests_into_one_batch():
    """While the model is busy, waiting requests pile up and run together."""
    busy, release, batch_sizes = threading.Event(), threading.Event(), []

    class FakeOutput:
        def __init__(self, n):
            self.n = n

        def numpy(self):
            return np.zeros((self.n, 2), np.float32)

    def embed(input_word_ids, input_mask, input_type_ids):
        batch_sizes.append(len(input_word_ids))
        busy.set()
        release.wait(10)
        return FakeOutput(len(input_word_ids))

    worker = embedding_service.BatchingWorker(embed, max_batch_size=16, batch_wait_ms=0,
                                              keep_all_positions=False)
    worker.start()
    feature = embedding_service.feature_extraction.Features(0, ["[CLS]", "[SEP]"], [1, 2], [0, 0])
    results = []
    threads = [threading.Thread(target=lambda n=n: results.append(worker.run([feature] * n, 10)))
               for n in (1, 2, 3, 4)]
    threads[0].start()
    assert busy.wait(10)
    for t in threads[1:]:
        t.start()
    deadline = time.monotonic() + 10
    while worker._queue.qsize() < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    release.set()
    for t in threads:
        t.join(10)
    worker.stop()
    assert batch_sizes == [1, 9]
    assert sorted(len(r) for r in results) == [1, 2, 3, 4]


def test_length_buckets_bound_padding_and_keep_every_row():
    lengths = [40, 3, 9, 5, 64, 3, 12, 10, 4, 50, 3, 3]
    job = embedding_service._Job([embedding_service.feature_extraction.Features(
        i, [], [1] * n, [0] * n) for i, n in enumerate(lengths)])
    batches = embedding_service.length_buckets([(job, i) for i in range(len(lengths))],
                                               max_batch_size=3)
    assert sorted(i for batch in batches for _, i in batch) == list(range(len(lengths)))
    for batch in batches:
        sizes = [lengths[i] for _, i in batch]
        assert len(batch) <= 3
        assert max(sizes) <= 1.25 * min(sizes) + 4
        # One bucket length per batch: fewer than 8 padding positions per text.
        assert len({embedding_service.bucket_length(n) for n in sizes}) == 1
    # Short texts are not padded to the long ones: [3, 3, 3], [3, 4, 5], ...
    assert [lengths[i] for _, i in batches[0]] == [3, 3, 3]


def raw_request(url, method, path, body=None, headers=None):
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    status, payload = response.status, response.read()
    conn.close()
    return status, payload


BAD_REQUESTS = [
    ("POST", "/encode", b"this is not json", 400),
    ("POST", "/encode", b"\xff\xfe{\"texts\": [\"x\"]}", 400),
    ("POST", "/encode", b'["a list, not an object"]', 400),
    ("POST", "/encode", b'{"sentences": ["wrong key"]}', 400),
    ("POST", "/encode", b'{"texts": "a string, not a list"}', 400),
    ("POST", "/encode", b'{"texts": []}', 400),
    ("POST", "/encode", b'{"texts": [1, 2]}', 400),
    ("POST", "/encode", b'{"texts": [["only one"]]}', 400),
    ("POST", "/encode", b'{"texts": [["a", "b", "c"]]}', 400),
    ("POST", "/encode", b'{"texts": [""]}', 400),
    ("POST", "/encode", b'{"texts": [["fine", "   "]]}', 400),
    ("POST", "/encode", json.dumps({"texts": ["x"] * 9}).encode(), 413),
    ("POST", "/encode", json.dumps({"texts": ["y" * 1001]}).encode(), 413),
    ("POST", "/nowhere", b'{"texts": ["x"]}', 404),
    ("GET", "/encode", None, 404),
    ("PUT", "/encode", b'{"texts": ["x"]}', 405),
]


@pytest.mark.parametrize("method,path,body,status", BAD_REQUESTS)
def test_bad_requests_get_a_json_4xx_and_the_server_stays_up(mean_server, method, path, body,
                                                             status):
    got, payload = raw_request(mean_server.server.url, method, path, body)
    assert got == status
    assert isinstance(json.loads(payload)["error"], str)
    assert mean_server.client.encode(["still alive"]).shape == (1, 32)


def test_missing_content_length_and_oversized_body_are_refused(mean_server):
    host, port = mean_server.server.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.putrequest("POST", "/encode")
    conn.endheaders()
    assert conn.getresponse().status == 411
    conn.close()
    huge = str(mean_server.service.max_body_bytes() + 1)
    status, _ = raw_request(mean_server.server.url, "POST", "/encode", b"{}",
                            {"Content-Length": huge})
    assert status == 413
    assert mean_server.client.health()["status"] == "ok"


def test_client_raises_with_the_server_message(mean_server):
    with pytest.raises(EmbeddingServiceError, match="limit is 8") as info:
        mean_server.client.encode(["x"] * 9)
    assert info.value.status == 413


def test_a_failing_model_call_answers_500_and_the_server_keeps_serving(start):
    server = start(pooling_strategy="cls")
    working = server.service.worker._embed

    def broken(**inputs):
        raise tf.errors.InternalError(None, None, "simulated device failure")

    server.service.worker._embed = broken
    with pytest.raises(EmbeddingServiceError, match="simulated device failure") as info:
        server.client.encode(["boom"])
    assert info.value.status == 500
    server.service.worker._embed = working
    assert server.client.encode(["fine again"]).shape == (1, 32)


def test_script_serves_and_stops_cleanly_on_sigterm(tmp_path, tiny_encoder, vocab_file):
    from bert_tf import checkpoints

    tiny_encoder.config.to_json_file(str(tmp_path / "bert_config.json"))
    (tmp_path / "vocab.txt").write_bytes(Path(vocab_file).read_bytes())
    checkpoints.save_google_checkpoint(tiny_encoder, str(tmp_path / "bert_model.ckpt"))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    process = subprocess.Popen(
        [sys.executable, str(REPO / "serve_embeddings.py"), f"--init_checkpoint={tmp_path}",
         "--port=0", "--max_seq_len=16", "--pooling_strategy=cls"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        assert "Serving 32-d cls embeddings on http://127.0.0.1:" in line, process.stderr.read()
        client = EmbeddingClient(line.split(" on ")[1].strip(), timeout=60)
        got = client.encode(["a fine sentence"])
        ids = np.array([[101, 1037, 2986, 6251, 102]], np.int32)  # uncased vocab ids
        want = tiny_encoder({"input_word_ids": ids, "input_mask": np.ones_like(ids),
                             "input_type_ids": np.zeros_like(ids)})["sequence_output"][0, 0]
        np.testing.assert_allclose(got[0], want, atol=1e-5)
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0
        assert "Stopped." in process.stdout.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_minilm_mean_embeddings_match_hugging_face(minilm_dir, tokenizer):
    import torch
    import transformers

    from bert_tf import pretrained

    source = pretrained.resolve("minilm-l6-h384-uncased")
    service = embedding_service.EmbeddingService.from_pretrained(
        source, embedding_service.ServiceSettings(pooling_strategy="mean", max_seq_len=64))
    server = embedding_service.EmbeddingServer(service, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        got = EmbeddingClient(server.url).encode(SENTENCES + [" ".join(["long"] * 80)])
    finally:
        server.shutdown()
        server.server_close()
        service.close()

    hf_dir = str(minilm_dir / "huggingface")
    hf_tokenizer = transformers.AutoTokenizer.from_pretrained(hf_dir)
    model = transformers.BertModel.from_pretrained(hf_dir).eval()
    batch = hf_tokenizer(SENTENCES + [" ".join(["long"] * 80)], padding=True, truncation=True,
                         max_length=64, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    want = ((hidden * mask).sum(1) / mask.sum(1)).numpy()
    assert got.shape == want.shape == (len(SENTENCES) + 1, 384)
    np.testing.assert_allclose(got, want, atol=1e-4)


# Robustness against clients that stall, hang up or send pathological JSON.


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def wait_until(condition, timeout_s, step=0.05):
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(step)
    return True


def test_stalled_clients_hold_no_thread_are_timed_out_and_others_are_served(start):
    """500 clients send half a request head, or announce a 1,000-byte body
    and send 10 bytes of it, and wait."""
    server = start(pooling_strategy="mean", read_timeout_s=8, max_connections=1000)
    server.client.encode(["warm up the handler threads"])
    threads_before, rss_before = threading.active_count(), rss_mb()
    stalled, opened = [], time.monotonic()
    try:
        for i in range(500):
            s = socket.create_connection((server.host, server.port), timeout=30)
            s.sendall(b"POST /encode HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      + (b"Content-Length: 1000\r\n\r\n" + b'{"texts": ' if i % 2 else b""))
            stalled.append(s)
        assert wait_until(lambda: server.server.open_connections == 500, 10)
        threads_during, rss_during = threading.active_count(), rss_mb()
        latencies = []
        for i in range(5):
            begin = time.perf_counter()
            assert server.client.encode([f"a normal client, number {i}"]).shape == (1, 32)
            latencies.append(time.perf_counter() - begin)
        # Served while every stalled client was still connected: not merely
        # once they had timed out.
        assert time.monotonic() - opened < 8
        assert server.server.open_connections >= 500

        answers = []
        for s in stalled:
            s.settimeout(max(0.1, opened + 30 - time.monotonic()))
            try:
                answers.append(s.recv(1000))
            except OSError as e:
                answers.append(repr(e).encode())
    finally:
        for s in stalled:
            s.close()
    assert wait_until(lambda: server.server.open_connections == 0, 10)
    threads_after, rss_after = threading.active_count(), rss_mb()
    print(f"threads {threads_before} -> {threads_during} (500 stalled) -> {threads_after}; "
          f"RSS {rss_before:.1f} -> {rss_during:.1f} -> {rss_after:.1f} MB; normal requests "
          f"during the stall {max(latencies) * 1000:.0f} ms at most")
    assert threads_during == threads_before == threads_after
    assert max(latencies) < 4.0
    assert rss_during - rss_before < 32 and rss_after - rss_before < 16
    assert all(a.startswith(b"HTTP/1.1 408 ") for a in answers), {a[:40] for a in answers}
    assert all(b'"error": "the request did not arrive whole within 8 s"' in a for a in answers)
    assert server.client.health()["requests_timed_out"] >= 500


def test_connections_beyond_max_connections_get_503_and_are_let_in_later(start):
    server = start(pooling_strategy="mean", max_connections=20)
    idle = [socket.create_connection((server.host, server.port), timeout=30) for _ in range(20)]
    try:
        assert wait_until(lambda: server.server.open_connections == 20, 10)
        with pytest.raises(EmbeddingServiceError, match="20 open connections") as info:
            server.client.encode(["one too many"])
        assert info.value.status == 503
    finally:
        for s in idle:
            s.close()
    assert wait_until(lambda: server.server.open_connections == 0, 10)
    assert server.client.encode(["room again"]).shape == (1, 32)


def test_an_idle_keep_alive_connection_is_closed_after_the_read_timeout(start):
    server = start(pooling_strategy="mean", read_timeout_s=1)
    conn = http.client.HTTPConnection(server.host, server.port, timeout=30)
    conn.request("GET", "/health")
    response = conn.getresponse()
    assert response.status == 200 and response.getheader("Connection") == "keep-alive"
    response.read()
    conn.request("GET", "/health")  # the same connection serves a second request
    assert conn.getresponse().read()
    assert wait_until(lambda: server.server.open_connections == 0, 10)
    assert conn.sock.recv(10) == b""  # closed by the server, without an answer
    conn.close()


def test_deeply_nested_json_is_a_400_naming_the_nesting(start):
    server = start(pooling_strategy="mean")  # default limits: the body fits
    body = b'{"texts": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    assert len(body) < server.service.max_body_bytes()
    status, payload = raw_request(server.server.url, "POST", "/encode", body)
    assert status == 400
    assert "nests JSON arrays or objects too deeply" in json.loads(payload)["error"]
    assert server.client.encode(["still fine"]).shape == (1, 32)


def test_clients_that_hang_up_are_counted_in_a_line_not_a_traceback_each(
        tiny_encoder, tokenizer, capfd, caplog):
    running = Running(tiny_encoder, tokenizer, pooling_strategy="mean", max_seq_len=32)
    body = json.dumps({"texts": ["a sentence the client will not wait for"] * 8}).encode()
    reset = struct.pack("ii", 1, 0)  # SO_LINGER 0: close() sends RST at once
    # The summaries are absl INFO records: the "absl" logger's own level
    # (set by any earlier absl flag parsing in this process) must let them through.
    with caplog.at_level("INFO"), caplog.at_level("INFO", logger="absl"):
        try:
            for i in range(1000):
                s = socket.create_connection((running.host, running.port), timeout=30)
                if i % 2:  # hangs up in the middle of its body
                    s.sendall(b"POST /encode HTTP/1.1\r\nContent-Length: %d\r\n\r\n"
                              % len(body) + body[:20])
                else:  # sends a whole request and resets before the answer
                    s.sendall(b"POST /encode HTTP/1.1\r\nContent-Length: %d\r\n\r\n"
                              % len(body) + body)
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, reset)
                s.close()
            # Zero open connections alone is also true before the server has
            # accepted the backlog (a busy machine): wait until at least the
            # 500 that stopped mid-body have been seen hanging up.
            assert wait_until(lambda: running.server.tally.counts["clients hung up"] >= 500
                              and running.server.open_connections == 0, 120)
            hung_up = running.client.health()["clients_hung_up"]
            assert running.client.encode(["the server is fine"]).shape == (1, 32)
        finally:
            running.close()  # the last summary line is written on shutdown
    err = capfd.readouterr().err
    lines = [r.getMessage() for r in caplog.records if "clients hung up" in r.getMessage()]
    assert "Traceback" not in err and "BrokenPipeError" not in err, err[-2000:]
    assert "ConnectionResetError: [Errno" not in err, err[-2000:]
    assert 500 <= hung_up <= 1000
    assert 1 <= len(lines) <= 10, lines
    assert lines[-1].endswith(f"{hung_up} since the server started"), lines[-1]


def test_a_text_gets_the_same_bits_whatever_it_is_batched_with(mean_server, tiny_encoder,
                                                              tokenizer):
    """Companions of other lengths change a batch's padding; the vector of
    the text must not change by a single bit."""
    target = "a gorgeous , witty movie"  # 7 wordpieces with [CLS] and [SEP]
    companions = ["good", "a good movie", "not a good movie at all", "it is bad",
                  "the plot is nothing but boilerplate clichés from start to finish"]
    alone = mean_server.client.encode([target])[0]
    x, tokens = reference_layer(tiny_encoder, tokenizer, target)
    assert len(tokens) == 7
    np.testing.assert_allclose(alone, x.mean(0), atol=1e-5)
    got = []
    for k in range(1, len(companions) + 1):
        for texts in ([target, *companions[:k]], [*companions[:k], target]):
            got.append(mean_server.client.encode(texts)[texts.index(target)])
    answers = [None] * 8
    barrier = threading.Barrier(8)

    def concurrent(i):  # grouped by the worker with other clients' texts
        barrier.wait(10)
        texts = [companions[i % len(companions)]] * (i % 3) + [target]
        answers[i] = EmbeddingClient(mean_server.server.url, timeout=60).encode(texts)[-1]

    threads = [threading.Thread(target=concurrent, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for vector in got + answers:
        assert vector.tobytes() == alone.tobytes(), np.abs(vector - alone).max()


def test_bucket_lengths_are_multiples_of_8_capped_at_max_seq_len():
    assert [embedding_service.bucket_length(n) for n in (1, 7, 8, 9, 16, 17, 64)] == [
        8, 8, 8, 16, 16, 24, 64]
    assert [embedding_service.bucket_length(n, max_seq_len=30) for n in (9, 24, 25, 30)] == [
        16, 24, 30, 30]
    features = [embedding_service.feature_extraction.Features(i, [], [5] * n, [0] * n)
                for i, n in enumerate((3, 11))]
    inputs = embedding_service.pad_to_bucket(features, max_seq_len=30)
    assert inputs["input_word_ids"].shape == (2, 16)
    assert inputs["input_mask"].sum(1).tolist() == [3, 11]
    assert inputs["input_word_ids"][:, 11:].max() == 0
