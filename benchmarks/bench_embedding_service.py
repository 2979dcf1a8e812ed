"""Load test of serve_embeddings.py on 127.0.0.1.

Concurrent clients send requests of 1-16 random SST-2 sentences (seeded)
while another thread mixes in malformed requests. Every answer is checked
against the one-text-at-a-time embedding of each of its texts (1e-5), and
the malformed ones must all get a 4xx. Reports throughput, latency
percentiles and the gain of cross-request batching over the same load served
with --max_batch_size=1.

    python benchmarks/bench_embedding_service.py                 # 8 x 500 requests
    python benchmarks/bench_embedding_service.py --requests_per_client=50

Measured on the shared 2-core machine (other jobs running, load average 5-12),
MiniLM, max_seq_len 64, 8 clients x 500 requests (33,703 sentences): 145.6
sentences/s, latency p50 252 ms, p99 814 ms, no error, no mismatch, 200 of
200 malformed requests answered 4xx, server alive after, exit code 0 on
SIGTERM. Same 8 x 60-request load: 207 sentences/s batched vs 111 with
--max_batch_size=1 (1.87x). Before length bucketing (one padded batch for
all grouped texts) batching was slower than one-at-a-time: 82 vs 107.

Bitwise equality with the one-text answer (8 x 60 requests, 4,169 sentences):
with batches padded to their longest text, 3,576 of 4,169 vectors differed in
some bit (up to 1.5e-6); with every text padded to its bucket length (a
multiple of 8), 0 differ in 3 of 3 runs, at 147.3 sentences/s against 147.1
before (medians of 4 runs each, same machine, interleaved).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bert_tf.embedding_client import EmbeddingClient, EmbeddingServiceError

MALFORMED = [
    ("POST", "/encode", b"not json at all"),
    ("POST", "/encode", b"\xc3\x28 invalid utf-8"),
    ("POST", "/encode", b'{"texts": []}'),
    ("POST", "/encode", b'{"texts": [42]}'),
    ("POST", "/encode", b'{"texts": "not a list"}'),
    ("POST", "/encode", b'{"texts": [""]}'),
    ("POST", "/encode", json.dumps({"texts": ["x"] * 1000}).encode()),
    ("POST", "/nowhere", b'{"texts": ["x"]}'),
    ("DELETE", "/encode", None),
]


def start_server(args, max_batch_size: int) -> tuple[subprocess.Popen, str]:
    command = [sys.executable, str(REPO / "serve_embeddings.py"), "--port=0",
               f"--init_checkpoint={args.init_checkpoint}", f"--max_seq_len={args.max_seq_len}",
               f"--max_batch_size={max_batch_size}", "--pooling_strategy=mean"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)
    line = process.stdout.readline()
    if " on http://" not in line:
        process.kill()
        raise RuntimeError(f"the server did not start: {line!r}")
    return process, line.split(" on ")[1].strip()


def stop_server(process: subprocess.Popen) -> int:
    process.send_signal(signal.SIGTERM)
    return process.wait(60)


def make_load(pool: list[str], clients: int, requests: int, seed: int) -> list[list[list[str]]]:
    rng = random.Random(seed)
    return [[rng.sample(pool, rng.randint(1, 16)) for _ in range(requests)]
            for _ in range(clients)]


def run_load(url: str, load, reference: dict | None, malformed: int, deadline: float) -> dict:
    """Runs every client's requests concurrently; returns counts and latencies."""
    latencies, errors, mismatches, lost = [], [], [0], [0]
    not_bitwise, max_diff = [0], [0.0]
    bad_statuses = []
    lock = threading.Lock()

    def client_thread(requests):
        client = EmbeddingClient(url, timeout=300)
        for texts in requests:
            if time.monotonic() > deadline:
                with lock:
                    lost[0] += 1
                continue
            start = time.perf_counter()
            try:
                got = client.encode(texts)
            except (EmbeddingServiceError, OSError) as e:
                with lock:
                    errors.append(repr(e))
                continue
            elapsed = time.perf_counter() - start
            bad = unequal = 0
            diff = 0.0
            if reference is not None:
                want = np.stack([reference[t] for t in texts])
                bad = int(got.shape != want.shape or not np.allclose(got, want, atol=1e-5, rtol=0))
                if not bad:  # texts whose vector differs in any bit from the one-text answer
                    unequal = int(np.any(got != want, axis=1).sum())
                    diff = float(np.abs(got - want).max())
            with lock:
                latencies.append(elapsed)
                mismatches[0] += bad
                not_bitwise[0] += unequal
                max_diff[0] = max(max_diff[0], diff)

    def malformed_thread(total_time_guess: float):
        host, port = url.removeprefix("http://").split(":")
        for i in range(malformed):
            method, path, body = MALFORMED[i % len(MALFORMED)]
            conn = http.client.HTTPConnection(host, int(port), timeout=60)
            try:
                conn.request(method, path, body=body)
                response = conn.getresponse()
                json.loads(response.read())["error"]
                bad_statuses.append(response.status)
            except Exception as e:  # noqa: BLE001 (counted as a failure below)
                bad_statuses.append(repr(e))
            finally:
                conn.close()
            time.sleep(total_time_guess / max(malformed, 1))

    threads = [threading.Thread(target=client_thread, args=(r,)) for r in load]
    expected_seconds = sum(len(t) for r in load for t in r) / 150.0
    if malformed:
        threads.append(threading.Thread(target=malformed_thread, args=(expected_seconds,)))
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    sentences = sum(len(texts) for requests in load for texts in requests)
    lat = np.array(latencies) * 1000
    return {
        "requests": sum(len(r) for r in load), "sentences": sentences, "wall_s": round(wall, 2),
        "sentences_per_s": round(sentences / wall, 1) if not lost[0] else None,
        "latency_ms_p50": round(float(np.percentile(lat, 50)), 1) if len(lat) else None,
        "latency_ms_p99": round(float(np.percentile(lat, 99)), 1) if len(lat) else None,
        "errors": len(errors), "error_examples": errors[:3], "mismatched": mismatches[0],
        "texts_not_bitwise_equal": not_bitwise[0], "max_abs_diff": max_diff[0],
        "not_sent_before_deadline": lost[0],
        "malformed_sent": len(bad_statuses),
        "malformed_4xx": sum(isinstance(s, int) and 400 <= s < 500 for s in bad_statuses),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--init_checkpoint", default="minilm-l6-h384-uncased")
    parser.add_argument("--data", default=str(REPO / "data" / "sst2" / "train.tsv"),
                        help="GLUE SST-2 train.tsv to draw sentences from (default: the "
                             "shipped copy)")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests_per_client", type=int, default=500)
    parser.add_argument("--compare_requests_per_client", type=int, default=60,
                        help="load per client for the batched vs --max_batch_size=1 comparison")
    parser.add_argument("--pool_size", type=int, default=1500, help="distinct sentences used")
    parser.add_argument("--malformed", type=int, default=200)
    parser.add_argument("--max_seq_len", type=int, default=64)
    parser.add_argument("--time_limit_s", type=float, default=1500)
    parser.add_argument("--seed", type=int, default=12345)
    parser.add_argument("--output", default=None, help="also write the report here (JSON)")
    args = parser.parse_args()

    rows = Path(args.data).read_text(encoding="utf-8").splitlines()[1:]
    sentences = sorted({row.split("\t")[0].strip() for row in rows} - {""})
    pool = random.Random(args.seed).sample(sentences, args.pool_size)
    report = {"init_checkpoint": args.init_checkpoint, "clients": args.clients,
              "max_seq_len": args.max_seq_len, "cpus": os.cpu_count()}
    deadline = time.monotonic() + args.time_limit_s

    process, url = start_server(args, max_batch_size=64)
    try:
        client = EmbeddingClient(url)
        start = time.perf_counter()
        reference = {text: client.encode([text])[0] for text in pool}
        report["single_texts_precomputed"] = len(reference)
        report["single_text_sentences_per_s"] = round(len(pool) / (time.perf_counter() - start), 1)
        load = make_load(pool, args.clients, args.requests_per_client, args.seed)
        report["batched_full_load"] = run_load(url, load, reference, args.malformed, deadline)
        report["alive_after"] = client.health()["status"] == "ok" and bool(
            np.allclose(client.encode([pool[0]])[0], reference[pool[0]], atol=1e-5, rtol=0))
        health = client.health()
        report["mean_texts_per_model_batch"] = round(health["texts"] / health["batches"], 2)
        compare = make_load(pool, args.clients, args.compare_requests_per_client, args.seed + 1)
        report["batched_compare_load"] = run_load(url, compare, reference, 0, deadline)
    finally:
        report["batched_server_exit_code"] = stop_server(process)

    process, url = start_server(args, max_batch_size=1)
    try:
        report["unbatched_compare_load"] = run_load(url, compare, reference, 0, deadline)
    finally:
        report["unbatched_server_exit_code"] = stop_server(process)
    batched = report["batched_compare_load"]["sentences_per_s"]
    unbatched = report["unbatched_compare_load"]["sentences_per_s"]
    if batched and unbatched:
        report["batching_gain"] = round(batched / unbatched, 2)
    text = json.dumps(report, indent=2)
    print(text)
    if args.output:
        Path(args.output).write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
