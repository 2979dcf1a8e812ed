"""Throughput and memory of create_pretraining_data.py, end to end.

Runs the command-line script as a subprocess (start-up, vocabulary loading
and writing included) on the Brown corpus with Google's usual settings
(uncased vocabulary, seq 128, 20 predictions, dupe_factor 5) and prints the
median of several runs for each worker count:

    instances/s   records written / wall seconds
    input MB/s    corpus bytes / wall seconds
    cpu s         user + system seconds of the whole process tree, and
    inst/cpu-s    instances per CPU second: less sensitive than wall time to
                  other load on the machine (times the worker count, it
                  bounds the throughput of an otherwise idle machine)
    peak RSS      sampled every 20 ms over the whole process tree (the
                  parent and all workers together), and the largest single
                  process as reported by getrusage(RUSAGE_CHILDREN)

Anchor: Google's original single-process script measured ~1,100
instances/s at ~0.83 GB peak RSS on this 2-core machine class.

Measured 2026-11-26 on the 2-core machine, brown.txt (6.1 MB, 71-73k
instances), in a quiet moment (other jobs were sharing the CPUs before and
after; under load the wall-clock figures fell by up to 10x, CPU seconds did not):

    workers  seconds  cpu s  instances/s  MB/s  tree peak RSS
          1     3.04   3.13       23,925  2.02        141 MiB
          2     2.03   3.68       35,086  3.02        246 MiB

i.e. ~22x (1 worker) and ~32x (2 workers) the anchor at under a third of its
memory. On a 38 MB corpus (all English corpora three times, dupe_factor 5,
2 workers, 464k instances) the tree peak was 386 MiB: memory is bounded by
--documents_per_chunk and the tokenizer caches, not by the corpus size.

    python benchmarks/bench_create_pretraining_data.py --runs=3 --workers=1,2 \
        --corpus=/path/to/corpora/en/brown.txt

(the whole Brown corpus, 500 documents, as the figures above). Without
--corpus it runs on the 202-document Brown slice in tests/data (2.5 MB), and
--vocab defaults to the uncased vocabulary there.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TEST_DATA = REPO / "tests" / "data"


def _tree_rss_bytes(root_pid: int) -> int:
    """Resident memory of a process and all its descendants, from /proc."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    page = os.sysconf("SC_PAGE_SIZE")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            parents[int(entry)] = int(fields[1])
            rss[int(entry)] = int(fields[21]) * page
        except (OSError, IndexError, ValueError):
            continue
    total, frontier = 0, [root_pid]
    while frontier:
        pid = frontier.pop()
        total += rss.get(pid, 0)
        frontier += [child for child, parent in parents.items() if parent == pid]
    return total


def _count_records(path: Path) -> int:
    count, offset, size = 0, 0, path.stat().st_size
    with open(path, "rb") as records:
        while offset < size:
            records.seek(offset)
            length = int.from_bytes(records.read(8), "little")
            offset += 16 + length
            count += 1
    return count


def run_once(corpus: Path, vocab: Path, workers: int, dupe_factor: int) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        output = Path(folder) / "bench.tfrecord"
        command = [sys.executable, str(REPO / "create_pretraining_data.py"),
                   f"--input_file={corpus}", f"--output_file={output}",
                   f"--vocab_file={vocab}", "--max_seq_length=128",
                   "--max_predictions_per_seq=20", f"--dupe_factor={dupe_factor}",
                   f"--num_workers={workers}"]
        cpu_before = _children_cpu_seconds()
        start = time.perf_counter()
        process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE)
        peak = 0
        done = threading.Event()

        def sample():
            nonlocal peak
            while not done.is_set():
                peak = max(peak, _tree_rss_bytes(process.pid))
                time.sleep(0.02)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, errors = process.communicate()
        seconds = time.perf_counter() - start
        cpu = _children_cpu_seconds() - cpu_before
        done.set()
        sampler.join()
        if process.returncode:
            raise RuntimeError(errors.decode(errors="replace")[-2000:])
        instances = sum(_count_records(p) for p in Path(folder).glob("bench.tfrecord*"))
    return {"seconds": seconds, "cpu": cpu, "instances": instances, "tree_peak": peak}


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", type=Path,
                        default=TEST_DATA / "corpora" / "en" / "brown.txt",
                        help="pretraining input text (default: the Brown slice in tests/data)")
    parser.add_argument("--vocab", type=Path,
                        default=TEST_DATA / "vocab" / "bert_uncased_vocab.txt")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dupe_factor", type=int, default=5)
    args = parser.parse_args()

    megabytes = args.corpus.stat().st_size / 1e6
    print(f"corpus {args.corpus.name}: {megabytes:.1f} MB, dupe_factor {args.dupe_factor}, "
          f"{os.cpu_count()} CPUs, median of {args.runs} runs")
    print(f"{'workers':>7} {'instances':>9} {'seconds':>8} {'cpu s':>6} {'inst/s':>8} "
          f"{'inst/cpu-s':>10} {'MB/s':>6} "
          f"{'tree peak RSS':>14} {'max single RSS':>15}")
    for workers in map(int, args.workers.split(",")):
        runs = [run_once(args.corpus, args.vocab, workers, args.dupe_factor)
                for _ in range(args.runs)]
        seconds = statistics.median(r["seconds"] for r in runs)
        cpu = statistics.median(r["cpu"] for r in runs)
        instances = runs[0]["instances"]
        tree_peak = statistics.median(r["tree_peak"] for r in runs)
        # Largest process reaped so far (kilobytes on Linux).
        single = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
        print(f"{workers:>7} {instances:>9} {seconds:>8.2f} {cpu:>6.2f} "
              f"{instances / seconds:>8.0f} {instances / cpu:>10.0f} "
              f"{megabytes / seconds:>6.2f} {tree_peak / 2**20:>11.0f} MiB "
              f"{single / 2**20:>11.0f} MiB")


if __name__ == "__main__":
    main()
