"""train_node_vectors.py end to end on a graph of two cliques joined by one
edge: gensim reads the vectors, each node's nearest neighbours are in its
own clique, node classification scores it; a run SIGKILLed in training
resumes to the uninterrupted run's checkpoint, lost walk passes are
regenerated identically, and bad input leaves earlier outputs alone."""

import filecmp
import os
import runpy
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from absl import flags

from _kill_and_resume import assert_same_tensors, checkpoint_step, sigkill_after_first_checkpoint

REPO = Path(__file__).resolve().parents[1]
CLIQUE = 8
NUM_WALKS = 8


@pytest.fixture(scope="module")
def graph_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cliques")
    edges = []
    for side in (0, 1):
        names = [f"{'ab'[side]}{i}" for i in range(CLIQUE)]
        edges += [(u, v) for i, u in enumerate(names) for v in names[i + 1:]]
    edges.append(("a0", "b0"))  # the bridge
    (folder / "g.edgelist").write_text("".join(f"{u} {v}\n" for u, v in edges))
    (folder / "g.labels").write_text("".join(f"{s}{i} {s}\n" for s in "ab" for i in range(CLIQUE)))
    return folder


def flags_for(graph_files, work, **extra):
    values = {"input": graph_files / "g.edgelist", "labels": graph_files / "g.labels",
              "output": work / "vectors.txt", "work_dir": work / "run", "dimensions": 16,
              "walk_length": 20, "num_walks": NUM_WALKS, "window_size": 4, "p": 0.5, "q": 2,
              "sample": 0, "batch_size": 128, "save_checkpoints_steps": 20, "workers": 1,
              "train_ratios": "0.5", "eval_seeds": 3,
              # XLA's compile time is most of such a tiny run.
              "use_xla": "false"}
    values.update(extra)
    return [f"--{k}={v}" for k, v in values.items()]


def run_in_process(args):
    before = set(flags.FLAGS)
    try:
        namespace = runpy.run_path(str(REPO / "train_node_vectors.py"), run_name="under_test")
        flags.FLAGS(["train_node_vectors.py", *args])
        namespace["main"](["train_node_vectors.py"])
    finally:
        flags.FLAGS.unparse_flags()
        for name in set(flags.FLAGS) - before:
            delattr(flags.FLAGS, name)


def latest(work):
    import tensorflow as tf

    return tf.train.latest_checkpoint(str(work / "run" / "skipgram" / "training"))


@pytest.fixture(scope="module")
def straight(graph_files, tmp_path_factory):
    work = tmp_path_factory.mktemp("straight")
    run_in_process(flags_for(graph_files, work))
    return work


def test_vectors_are_word2vec_text_that_gensim_reads_and_cliques_separate(straight):
    from gensim.models import KeyedVectors

    lines = (straight / "vectors.txt").read_text().splitlines()
    assert lines[0] == f"{2 * CLIQUE} 16"
    # One line per node, in the edge list's order of first appearance.
    assert [line.split()[0] for line in lines[1:]] == [f"{s}{i}" for s in "ab"
                                                       for i in range(CLIQUE)]
    vectors = KeyedVectors.load_word2vec_format(str(straight / "vectors.txt"))
    assert sorted(vectors.index_to_key) == sorted([f"{s}{i}" for s in "ab" for i in range(CLIQUE)])
    for node in vectors.index_to_key:
        nearest = [name for name, _ in vectors.most_similar(node, topn=CLIQUE - 1)]
        assert all(name[0] == node[0] for name in nearest), (node, nearest)
    results = dict(line.split(" = ") for line in
                   (straight / "run" / "eval_results.txt").read_text().splitlines())
    assert float(results["micro_f1_at_0.5"]) == 1.0
    assert float(results["walk_steps_per_second"]) > 0
    walk_files = sorted(os.listdir(straight / "run" / "walks"))
    assert walk_files == [f"walks-{i:05d}.txt" for i in range(NUM_WALKS)]


def test_killed_in_training_resumes_to_the_uninterrupted_checkpoint(graph_files, straight,
                                                                    tmp_path):
    work = tmp_path / "killed"
    command = [sys.executable, str(REPO / "train_node_vectors.py"),
               *flags_for(graph_files, work)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(REPO))
    killed_at = sigkill_after_first_checkpoint(command, work / "run" / "skipgram" / "training",
                                               env=env)
    final = checkpoint_step(latest(straight))
    assert checkpoint_step(killed_at) < final and not (work / "vectors.txt").exists()
    walks_when_killed = {p.name: p.stat().st_mtime_ns for p in (work / "run" / "walks").iterdir()}
    # The same command again (in this process, which spares a TensorFlow start).
    run_in_process(command[2:])
    # The walks were all written before training: none was generated again.
    assert {p.name: p.stat().st_mtime_ns
            for p in (work / "run" / "walks").iterdir()} == walks_when_killed
    assert "walk_steps_per_second" not in (work / "run" / "eval_results.txt").read_text()
    assert checkpoint_step(latest(work)) == final
    assert_same_tensors(latest(straight), latest(work), atol=1e-6)


def test_lost_walk_passes_are_regenerated_identically(graph_files, straight, tmp_path):
    work = tmp_path / "partial"
    (work / "run" / "walks").mkdir(parents=True)
    shutil.copy(straight / "run" / "run_identity.json", work / "run")
    for i in range(3):  # a kill during pass 3 leaves passes 0-2 and a temporary file
        name = f"walks-{i:05d}.txt"
        shutil.copy(straight / "run" / "walks" / name, work / "run" / "walks" / name)
    (work / "run" / "walks" / ".walks-00003.txt.abc.tmp").write_text("a0 a1\n")
    run_in_process(flags_for(graph_files, work, workers=2))
    for i in range(NUM_WALKS):
        name = f"walks-{i:05d}.txt"
        assert filecmp.cmp(straight / "run" / "walks" / name, work / "run" / "walks" / name,
                           shallow=False), name
    assert_same_tensors(latest(straight), latest(work), atol=1e-6)


def test_changed_walk_settings_are_refused_in_the_same_work_dir(graph_files, straight,
                                                                tmp_path):
    work = tmp_path / "changed"
    shutil.copytree(straight, work)
    with pytest.raises(FileExistsError, match="different p"):
        run_in_process(flags_for(graph_files, work, p=1))


def test_malformed_edge_list_is_one_error_and_earlier_output_stays(graph_files, tmp_path):
    bad = tmp_path / "bad.edgelist"
    bad.write_text("a b\nb c\nc\n")
    output = tmp_path / "vectors.txt"
    output.write_text("earlier\n")
    result = subprocess.run(
        [sys.executable, str(REPO / "train_node_vectors.py"), f"--input={bad}",
         f"--output={output}"], capture_output=True, text=True, timeout=120,
        env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: {bad}:3: expected 2 fields (u v), got 1: 'c'")
    assert output.read_text() == "earlier\n"
    assert not (tmp_path / "vectors.txt.run").exists()
