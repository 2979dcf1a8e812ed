"""Node2Vec / DeepWalk node vectors from an edge list, on the skip-gram engine.

node2vec's reference flags (with underscores): an edge list in, word2vec
text vectors out, one line per node of the graph. p = q = 1 is DeepWalk.

    python train_node_vectors.py --input=graph.edgelist --output=graph.emb \
        --dimensions=128 --walk_length=80 --num_walks=10 --window_size=10 --p=1 --q=1
    python train_node_vectors.py --input=blogcatalog.edgelist --output=bc.emb \
        --labels=blogcatalog.labels --p=0.25 --q=0.25 --workers=2

Walks, checkpoints and eval_results.txt go to --work_dir (default: the
output path plus ".run"). Each walk pass is written there whole or not at
all, and training checkpoints as it goes, so the same command run again
after a kill resumes where the run stopped. With --labels (`node label`
lines; a node may have several), the vectors are scored by one-vs-rest
logistic regression at each --train_ratios (micro/macro-F1, averaged over
--eval_seeds random splits).
"""

import hashlib
import os
import resource
import sys
import time

from absl import flags, logging

from bert_tf import cli, skipgram

FLAGS = flags.FLAGS

flags.DEFINE_string("input", None, "Edge list: `u v` lines (`u v w` with --weighted).")
flags.DEFINE_string("output", None, "Node vectors, word2vec text format (binary with --binary).")
flags.DEFINE_string("labels", None, "Optional `node label` lines: evaluate node classification.")
flags.DEFINE_string("work_dir", None, "Walks, checkpoints and eval_results.txt (default: "
                    "--output plus '.run').")
flags.DEFINE_integer("walk_length", 80, "Nodes per walk.")
flags.DEFINE_integer("num_walks", 10, "Walks per node (passes over the nodes).")
flags.DEFINE_integer("workers", min(8, os.cpu_count() or 1),
                     "Walk-generating processes (the walks do not depend on it).")
flags.DEFINE_float("p", 1.0, "Return parameter: 1/p weighs stepping back to the previous node.")
flags.DEFINE_float("q", 1.0, "In-out parameter: 1/q weighs moving away from the previous node.")
flags.DEFINE_bool("weighted", False, "Edges have weights (third column).")
flags.DEFINE_bool("directed", False, "Edges are directed (default: undirected).")
flags.DEFINE_enum("self_loops", "drop", ["drop", "keep", "error"],
                  "Edges `v v`: drop them (counted in the log), keep them, or refuse the file.")
flags.DEFINE_bool("binary", False, "Write word2vec binary instead of text.")
flags.DEFINE_list("train_ratios", ["0.1", "0.5", "0.9"], "Labelled shares to train on.")
flags.DEFINE_integer("eval_seeds", 10, "Random splits per train ratio.")
# The skip-gram settings under node2vec's names for the three it has; the
# rest keep word2vec's (--negative, --sample, --alpha, --batch_size...).
skipgram.define_flags(names={"dim": "dimensions", "window": "window_size", "epochs": "iter"},
                      defaults={"dim": 128, "window": 10, "epochs": 1, "min_count": 1})
cli.define_tpu_flags()
cli.define_training_flags()

# What a work_dir's walks depend on: a resumed run must agree on all of them.
WALK_KEYS = ("input_sha256", "directed", "weighted", "self_loops", "walk_length", "num_walks",
             "p", "q", "seed")


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _peak_memory_mb() -> tuple[float, float]:
    """Peak resident memory of this process and of its largest finished child."""
    scale = 1024 if sys.platform != "darwin" else 1024 * 1024  # ru_maxrss is KiB on Linux
    return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale,
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / scale)


def main(_):
    from bert_tf import graph_walks, node_classification, run_folders, text_files
    from bert_tf.vectors import Vectors

    for name in ("input", "output"):
        if not FLAGS[name].value:
            raise ValueError(f"--{name} is required")
    if FLAGS.num_walks < 1:
        raise ValueError(f"--num_walks must be >= 1, got {FLAGS.num_walks}")
    options = skipgram.options_from_flags(FLAGS)
    if options.min_count > FLAGS.num_walks:
        # Every node starts --num_walks walks: a higher min_count could leave
        # nodes without a vector, and the output must have one per node.
        raise ValueError(f"--min_count={options.min_count} is above --num_walks="
                         f"{FLAGS.num_walks}: nodes could be left without a vector")
    ratios = []
    for text in FLAGS.train_ratios:
        try:
            ratios.append(float(text))
        except ValueError:
            raise ValueError(f"--train_ratios: {text!r} is not a number") from None
        if not 0 < ratios[-1] < 1:
            raise ValueError(f"--train_ratios: {text} is not between 0 and 1")
    work_dir = FLAGS.work_dir or FLAGS.output + ".run"

    graph = graph_walks.read_edgelist(FLAGS.input, directed=FLAGS.directed,
                                      weighted=FLAGS.weighted, self_loops=FLAGS.self_loops)
    logging.info("%s: %d nodes, %d %s edges", FLAGS.input, graph.num_nodes, graph.num_edges,
                 "directed" if graph.directed else "undirected")
    labels = None
    if FLAGS.labels:
        labels, label_names = node_classification.read_labels(FLAGS.labels, graph.index)
        logging.info("%s: %d labelled nodes, %d labels", FLAGS.labels,
                     int(labels.any(axis=1).sum()), len(label_names))

    identity = {"input_sha256": _sha256(FLAGS.input), "input": os.path.abspath(FLAGS.input)}
    for key in WALK_KEYS[1:]:
        identity[key] = FLAGS[key].value
    first_run = run_folders.check_output_dir(work_dir, identity, WALK_KEYS)
    if first_run:
        run_folders.write_identity(work_dir, identity)

    walks_dir = os.path.join(work_dir, "walks")
    with graph_walks.Walker(graph, FLAGS.walk_length, FLAGS.p, FLAGS.q, seed=FLAGS.seed,
                            workers=FLAGS.workers) as walker:
        walked = graph_walks.write_walk_passes(walker, walks_dir, FLAGS.num_walks)
    results = {}
    if walked["passes"]:
        rate = walked["steps"] / max(walked["seconds"], 1e-9)
        logging.info("Walked %d passes: %d steps in %.1f s, %.0f steps/s (%d workers)",
                     walked["passes"], walked["steps"], walked["seconds"], rate, FLAGS.workers)
        results["walk_steps_per_second"] = round(rate)
    else:
        logging.info("All %d walk passes were already in %s", FLAGS.num_walks, walks_dir)

    start = time.perf_counter()
    trained = skipgram.train_skipgram(
        graph_walks.walk_file_sequences(walks_dir, FLAGS.num_walks), options,
        os.path.join(work_dir, "skipgram"),
        training_options=skipgram.training_options_from_flags(FLAGS),
        strategy=cli.strategy_from_flags(FLAGS))
    logging.info("Skip-gram training took %.1f s", time.perf_counter() - start)

    # Every node starts num_walks walks and min_count is 1, so every node
    # has a vector; they are written in the graph's order of first appearance.
    row = {word: i for i, word in enumerate(trained.words)}
    missing = [name for name in graph.nodes if name not in row]
    if missing:
        raise ValueError(f"no vector for {len(missing)} nodes (e.g. {missing[0]!r})")
    matrix = trained.matrix[[row[name] for name in graph.nodes]]
    vectors = Vectors(graph.nodes, matrix)
    vectors.save(FLAGS.output, binary=FLAGS.binary)
    logging.info("Wrote %d vectors of %d dimensions to %s", len(graph.nodes), FLAGS.dimensions,
                 FLAGS.output)

    if labels is not None:
        scores = node_classification.evaluate(matrix, labels, train_ratios=ratios,
                                              seeds=range(FLAGS.eval_seeds))
        for ratio, values in scores.items():
            for key, value in values.items():
                results[f"{key}_at_{ratio:g}"] = round(value, 4)
            logging.info("train ratio %g: micro-F1 %.4f, macro-F1 %.4f (over %d splits)", ratio,
                         values["micro_f1"], values["macro_f1"], FLAGS.eval_seeds)
    own, child = _peak_memory_mb()
    logging.info("Peak memory: %.0f MiB (this process), %.0f MiB (largest walk worker)",
                 own, child)
    results["peak_memory_mib"] = round(own)
    if results:
        path = os.path.join(work_dir, "eval_results.txt")
        run_folders.note_replacing(path)
        text_files.write_eval_results(path, results)


if __name__ == "__main__":
    cli.run(main)
