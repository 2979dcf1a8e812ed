"""train_item_vectors.py end to end: planted item clusters learned and read
back by gensim, next-click figures in eval_results.txt, bookings and groups
reaching the skip-gram pairs, SIGKILL and resume, and bad logs named by
file:line."""

import collections
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from gensim.models import KeyedVectors

from bert_tf import item_sessions, skipgram

from _kill_and_resume import sigkill_after_first_checkpoint

REPO = Path(__file__).resolve().parents[1]
SCRIPT = str(REPO / "train_item_vectors.py")
CLUSTERS, PER_CLUSTER = 4, 8


def cluster_of(item: str) -> int:
    return int(item[1:]) // PER_CLUSTER


def planted_log(path, sessions, seed, start=0.0):
    """Sessions that browse one cluster each: 4-7 clicks a minute apart,
    an hour between sessions, a comma-separated file with a header. Every
    third session books its last click; items of even and odd number are
    two markets that cut across the clusters."""
    rng = np.random.default_rng(seed)
    lines, when = ["user,item,ts,market,booked"], start
    for n in range(sessions):
        cluster = rng.integers(CLUSTERS)
        clicks = rng.choice(PER_CLUSTER, size=rng.integers(4, 8), replace=False)
        for k, item in enumerate(clicks):
            number = cluster * PER_CLUSTER + item
            booked = int(n % 3 == 0 and k == len(clicks) - 1)
            lines.append(f"s{n},i{number},{when:.0f},m{number % 2},{booked}")
            when += 60
        when += 3600
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def env():
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")


def command(data, out, *extra):
    return [sys.executable, SCRIPT, f"--input={data / 'train.csv'}",
            f"--test_input={data / 'test.csv'}", f"--output_dir={out}",
            "--session_column=user", "--item_column=item", "--time_column=ts",
            "--booked_column=booked", "--group_column=market",
            "--size=16", "--window=2", "--negative=5", "--epochs=4", "--batch_size=64",
            "--sample=0", "--cutoff=5", "--save_checkpoints_steps=100", "--seed=1", *extra]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clicks")
    planted_log(folder / "train.csv", 300, seed=0)
    planted_log(folder / "test.csv", 60, seed=1, start=1e7)
    return folder


@pytest.fixture(scope="module")
def resumed(data, tmp_path_factory):
    """The script SIGKILLed once its first checkpoint is complete, then run
    again with the same command to the end."""
    out = tmp_path_factory.mktemp("resumed") / "out"
    sigkill_after_first_checkpoint(command(data, out), out / "skipgram" / "training",
                                   env=env(), cwd=REPO)
    left = {p.name for p in out.iterdir()}
    rerun = subprocess.run(command(data, out), cwd=REPO, env=env(), capture_output=True,
                           text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    return out, left, rerun


def test_planted_clusters_are_the_nearest_neighbours(resumed):
    out, _, _ = resumed
    vectors = KeyedVectors.load_word2vec_format(str(out / "item_vectors.txt"))
    assert sorted(vectors.index_to_key) == sorted(f"i{n}" for n in range(CLUSTERS * PER_CLUSTER))
    unit = vectors.vectors / np.linalg.norm(vectors.vectors, axis=1, keepdims=True)
    similar = unit @ unit.T
    np.fill_diagonal(similar, -np.inf)
    same = []
    for row, item in enumerate(vectors.index_to_key):
        nearest = np.argsort(-similar[row])[:PER_CLUSTER - 1]
        same.extend(cluster_of(vectors.index_to_key[j]) == cluster_of(item) for j in nearest)
    assert np.mean(same) > 0.9


def test_eval_results_beat_popularity_on_clustered_sessions(resumed):
    out, _, rerun = resumed
    results = dict(line.split(" = ") for line in (out / "eval_results.txt").read_text()
                   .splitlines())
    assert int(results["test_sessions"]) == 60
    # Within a cluster the next click is one of the other 7 items: the top 5
    # neighbours of the last click find it often; popularity cannot.
    assert float(results["item_vectors_hr@5"]) > 0.5
    assert float(results["item_vectors_hr@5"]) > float(results["popularity_hr@5"]) + 0.25
    assert "cooccurrence_mrr@5" in results
    assert "item_vectors" in rerun.stdout and "popularity" in rerun.stdout
    assert "100 sessions with a booked item" in rerun.stderr
    assert "32 items in 2 groups" in rerun.stderr


def test_sigkilled_run_resumes_to_the_vectors_of_an_uninterrupted_run(data, resumed, tmp_path):
    out, left, rerun = resumed
    # Killed: no vectors, no results yet; resumed from the checkpoint.
    assert "item_vectors.txt" not in left and "eval_results.txt" not in left
    assert "Restored" in rerun.stderr
    # The uninterrupted run: the same sessions and settings straight through.
    log = item_sessions.read_sessions(str(data / "train.csv"), item_sessions.Columns(
        session="user", item="item", time="ts", booked="booked", group="market"))
    training = log.split(30)
    options = skipgram.SkipGramOptions(dim=16, window=2, negatives=5, epochs=4, batch_size=64,
                                       sample=0, min_count=1)
    want = skipgram.train_skipgram(training.sequences(), options, str(tmp_path / "straight"),
                                   global_context=training.global_context(),
                                   group_of=training.group_of,
                                   training_options=skipgram.default_training_options(
                                       seed=1, save_checkpoints_steps=100))
    got = KeyedVectors.load_word2vec_format(str(out / "item_vectors.txt"))
    assert got.index_to_key == want.words
    np.testing.assert_allclose(got.vectors, want.matrix, atol=1e-5)
    # The same folder with other session settings is refused, not mixed.
    other = subprocess.run(command(data, out, "--session_gap=5"), cwd=REPO, env=env(),
                           capture_output=True, text=True, timeout=120)
    assert other.returncode == 2 and "session_gap" in other.stderr


@pytest.mark.parametrize("text,line,message", [
    ("user,item,ts,market,booked\ns1,i1,10,m1,0\ns1,i2\n", 3, "2 fields, no time or"),
    ("user,item,ts,market,booked\ns1,i1,10,m1,0\ns1,i2,noon,m0,1\n", 3, "'noon' is neither"),
    ("user,item,ts,market,booked\ns1,i1,10,m1,0\ns2,i1,11,m0,1\n", 3, "in group 'm0' here"),
])
def test_a_malformed_log_is_one_error_line_and_writes_nothing(tmp_path, text, line, message):
    (tmp_path / "train.csv").write_text(text)
    (tmp_path / "test.csv").write_text("user,item,ts\ns9,i1,1\ns9,i2,2\n")
    result = subprocess.run(command(tmp_path, tmp_path / "out"), cwd=REPO, env=env(),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: {tmp_path / 'train.csv'}:{line}: ") and message in last
    assert not (tmp_path / "out").exists()


BOOKINGS = ("ts\tmarket\tuser\tlisting\tbooked\n"
            "10\tparis\tu1\tp1\t0\n20\tparis\tu1\tp2\t\n30\tparis\tu1\tp3\t1\n"
            "9000\tlondon\tu1\tl1\t\n9010\tlondon\tu1\tl2\t\n"
            "5\tlondon\tu2\tl2\t\n6\tlondon\tu2\tl3\t\n7\tlondon\tu2\tl1\tyes\n")


def test_bookings_are_global_contexts_and_negatives_stay_in_their_market(tmp_path):
    path = tmp_path / "bookings.tsv"
    path.write_text(BOOKINGS)
    log = item_sessions.read_sessions(str(path), item_sessions.Columns(
        session="user", item="listing", time="ts", booked="booked", group="market"))
    training = log.split(30)
    # Sessions: u2 l2 l3 l1 (booked l1), u1 p1 p2 p3 (booked p3), u1#2 l1 l2.
    options = skipgram.SkipGramOptions(dim=4, window=1, dynamic_window=False, sample=0,
                                       min_count=1, negatives=6)
    vocab = skipgram.Vocabulary.build(training.sequences()(), min_count=1)
    groups = np.array([["paris", "london"].index(training.group_of[w]) for w in vocab.words])
    generator = skipgram.PairGenerator(training.sequences(), vocab, options,
                                       training.global_context(), groups)
    chunk = next(generator.chunks())
    inputs, outputs = generator.chunk_pairs(chunk, np.random.default_rng(0))
    got = collections.Counter((vocab.words[i], vocab.words[o]) for i, o in zip(inputs, outputs))
    window = [("l2", "l3"), ("l3", "l2"), ("l3", "l1"), ("l1", "l3"),
              ("p1", "p2"), ("p2", "p1"), ("p2", "p3"), ("p3", "p2"),
              ("l1", "l2"), ("l2", "l1")]
    # Each click predicts its session's booking (the booked click itself excepted).
    booked = [("l2", "l1"), ("l3", "l1"), ("p1", "p3"), ("p2", "p3")]
    assert got == collections.Counter(window + booked)
    market = {w: training.group_of[w] for w in vocab.words}
    batch = next(generator.batches(len(inputs)))
    for output, negatives in zip(batch["outputs"], batch["negatives"]):
        assert {market[vocab.words[n]] for n in negatives} == {market[vocab.words[output]]}
