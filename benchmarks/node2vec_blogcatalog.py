"""Node classification with DeepWalk and Node2Vec vectors, against the paper.

Node2Vec's protocol (Grover & Leskovec, 2016): d=128, r=10 walks per node of
length l=80, window k=10, one epoch of skip-gram; one-vs-rest logistic
regression on 50% of the labelled nodes, macro-F1 on the rest. The paper
reports on BlogCatalog macro-F1 0.2581 for Node2Vec and 0.2110 for DeepWalk.
Each run is train_node_vectors.py in a child process (its eval_results.txt
gives F1 and peak memory); the walk generation rate is timed separately, in
this process, with 1 and 2 workers. `--gensim` also trains gensim's
Word2Vec (skip-gram, negative sampling, same settings) on the very same
walks: same walks, other engine, to tell walk effects from training ones.

    PYTHONPATH=. python benchmarks/node2vec_blogcatalog.py \
        --graphs_dir=/path/to/embeddings/graphs --datasets=cora,blogcatalog --gensim

Node2Vec's p and q: the paper tunes them by grid search over
{0.25, 0.5, 1, 2, 4} on 10% labelled data; --node2vec_pq gives the pair per
dataset (default: p = q = 0.25 on BlogCatalog, p = 1, q = 0.5 on Cora).
"""

import json
import os
import resource
import subprocess
import sys
import time

from absl import app, flags

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

flags.DEFINE_string("graphs_dir", None, "Folder with <name>.edgelist and <name>.labels.")
flags.DEFINE_list("datasets", ["cora", "blogcatalog"], "Graphs to run, in order.")
flags.DEFINE_list("methods", ["deepwalk", "node2vec"], "deepwalk (p = q = 1) and/or node2vec.")
flags.DEFINE_list("node2vec_pq", ["blogcatalog:0.25:0.25", "cora:1:0.5"],
                  "dataset:p:q for the node2vec runs.")
flags.DEFINE_string("output_dir", "output/benchmarks/node2vec", "Runs and results go here.")
flags.DEFINE_integer("workers", 2, "Walk workers of the runs.")
flags.DEFINE_integer("eval_seeds", 10, "Random 50% splits per run.")
flags.DEFINE_bool("gensim", False, "Also train gensim Word2Vec on the same walks.")
flags.DEFINE_bool("ours", True, "Train with train_node_vectors.py; --noours --gensim only "
                  "generates the walks (same generator, seed and files) and trains gensim.")
flags.DEFINE_integer("gensim_workers", 2, "gensim's threads.")
flags.DEFINE_integer("walk_timing_passes", 1, "Passes timed for the walk rate.")
flags.DEFINE_bool("rescore_only", False, "Only score the vectors earlier runs left in "
                  "--output_dir, with the default classifier (C=1, raw vectors) and with "
                  "unit-length vectors and C=10.")
FLAGS = flags.FLAGS

PAPER_MACRO_F1 = {("blogcatalog", "node2vec"): 0.2581, ("blogcatalog", "deepwalk"): 0.2110}


def read_results(path):
    results = {}
    for line in open(path, encoding="utf-8"):
        key, value = line.split(" = ")
        results[key] = float(value)
    return results


def walk_rate(graph, p, q, workers, passes):
    """Steps per second over `passes` passes, after an untimed first pass
    that starts the worker processes (spawning them costs seconds)."""
    from bert_tf import graph_walks

    with graph_walks.Walker(graph, 80, p, q, seed=1, workers=workers) as walker:
        for _ in walker.walks(0):
            pass
        steps_before = walker.steps
        start = time.perf_counter()
        for pass_index in range(1, passes + 1):
            for _ in walker.walks(pass_index):
                pass
        seconds = time.perf_counter() - start
        return (walker.steps - steps_before) / seconds


def gensim_scores(walks_dir, graph, labels, seeds):
    import gensim
    import numpy as np

    from bert_tf import graph_walks, node_classification

    sequences = list(graph_walks.walk_file_sequences(walks_dir, 10)())
    start = time.perf_counter()
    model = gensim.models.Word2Vec(sequences, vector_size=128, window=10, min_count=1, sg=1,
                                   hs=0, negative=5, sample=1e-3, epochs=1, seed=1,
                                   workers=FLAGS.gensim_workers)
    seconds = time.perf_counter() - start
    matrix = np.stack([model.wv[name] for name in graph.nodes])
    scores = node_classification.evaluate(matrix, labels, train_ratios=(0.5,), seeds=seeds)
    return scores[0.5], seconds


def rescore():
    """Macro/micro-F1 at 50% of the saved vectors under two classifier settings."""
    import numpy as np

    from bert_tf import graph_walks, node_classification
    from bert_tf.vectors import Vectors

    for dataset in FLAGS.datasets:
        graph = graph_walks.read_edgelist(os.path.join(FLAGS.graphs_dir, f"{dataset}.edgelist"))
        labels, _ = node_classification.read_labels(
            os.path.join(FLAGS.graphs_dir, f"{dataset}.labels"), graph.index)
        for method in FLAGS.methods:
            path = os.path.join(FLAGS.output_dir, f"{dataset}_{method}", "vectors.txt")
            if not os.path.exists(path):
                print(f"{dataset} {method}: no vectors at {path}")
                continue
            vectors = Vectors.load(path)
            matrix = np.stack([vectors[name] for name in graph.nodes])
            for normalize, c in ((False, 1.0), (True, 10.0)):
                scores = node_classification.evaluate(matrix, labels, train_ratios=(0.5,),
                                                      seeds=range(FLAGS.eval_seeds), c=c,
                                                      normalize=normalize)[0.5]
                print(json.dumps({"dataset": dataset, "method": method, "normalize": normalize,
                                  "c": c, **{k: round(v, 4) for k, v in scores.items()}}),
                      flush=True)


def main(_):
    from bert_tf import graph_walks, node_classification

    if not FLAGS.graphs_dir:
        raise app.UsageError("--graphs_dir is required")
    pq = {}
    for item in FLAGS.node2vec_pq:
        name, p, q = item.split(":")
        pq[name] = (float(p), float(q))
    os.makedirs(FLAGS.output_dir, exist_ok=True)
    if FLAGS.rescore_only:
        return rescore()
    rows = []
    for dataset in FLAGS.datasets:
        edges = os.path.join(FLAGS.graphs_dir, f"{dataset}.edgelist")
        labels_path = os.path.join(FLAGS.graphs_dir, f"{dataset}.labels")
        graph = graph_walks.read_edgelist(edges)
        labels, _ = node_classification.read_labels(labels_path, graph.index)
        degree_squares = int(sum(graph.degree(v) ** 2 for v in range(graph.num_nodes)))
        for method in FLAGS.methods:
            p, q = (1.0, 1.0) if method == "deepwalk" else pq.get(dataset, (1.0, 1.0))
            work = os.path.join(FLAGS.output_dir, f"{dataset}_{method}")
            command = [sys.executable, os.path.join(REPO, "train_node_vectors.py"),
                       f"--input={edges}", f"--labels={labels_path}",
                       f"--output={work}/vectors.txt", f"--work_dir={work}",
                       "--dimensions=128", "--walk_length=80", "--num_walks=10",
                       "--window_size=10", "--iter=1", f"--p={p}", f"--q={q}",
                       f"--workers={FLAGS.workers}", "--train_ratios=0.5",
                       f"--eval_seeds={FLAGS.eval_seeds}", "--seed=1"]
            row = {"dataset": dataset, "method": method, "p": p, "q": q,
                   "nodes": graph.num_nodes, "edges": graph.num_edges,
                   "paper_macro_f1": PAPER_MACRO_F1.get((dataset, method))}
            if FLAGS.ours:
                print("$", " ".join(command), flush=True)
                start = time.perf_counter()
                subprocess.run(command, check=True, env=dict(os.environ, PYTHONPATH=REPO))
                wall = time.perf_counter() - start
                results = read_results(os.path.join(work, "eval_results.txt"))
                row.update(micro_f1=results["micro_f1_at_0.5"],
                           macro_f1=results["macro_f1_at_0.5"],
                           macro_f1_std=results["macro_f1_std_at_0.5"], run_seconds=round(wall, 1),
                           peak_memory_mib=results["peak_memory_mib"])
            else:
                with graph_walks.Walker(graph, 80, p, q, seed=1, workers=FLAGS.workers) as walker:
                    graph_walks.write_walk_passes(walker, os.path.join(work, "walks"), 10)
            rates = {w: walk_rate(graph, p, q, w, FLAGS.walk_timing_passes) for w in (1, 2)}
            row.update({
                   "walk_steps_per_second_1_worker": round(rates[1]),
                   "walk_steps_per_second_2_workers": round(rates[2]),
                   "per_edge_alias_entries": degree_squares,
                   "load_average_1min": os.getloadavg()[0]})
            if FLAGS.gensim:
                scores, seconds = gensim_scores(os.path.join(work, "walks"), graph, labels,
                                                range(FLAGS.eval_seeds))
                row.update(gensim_micro_f1=round(scores["micro_f1"], 4),
                           gensim_macro_f1=round(scores["macro_f1"], 4),
                           gensim_train_seconds=round(seconds, 1))
            rows.append(row)
            print(json.dumps(row), flush=True)
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\nthis process (walk timing, evaluation) peak RSS: {own:.0f} MiB")
    print(f"{'dataset':12} {'method':9} {'p':>5} {'q':>5} {'micro-F1':>9} {'macro-F1':>9} "
          f"{'paper':>7} {'gensim mi/ma':>14} {'steps/s 1w':>11} {'2w':>10} {'MiB':>6}")
    for r in rows:
        paper = f"{r['paper_macro_f1']:.4f}" if r["paper_macro_f1"] else "-"
        ref = (f"{r['gensim_micro_f1']:.3f}/{r['gensim_macro_f1']:.3f}"
               if "gensim_micro_f1" in r else "-")
        ours = (f"{r['micro_f1']:9.4f} {r['macro_f1']:9.4f}" if "micro_f1" in r
                else f"{'-':>9} {'-':>9}")
        print(f"{r['dataset']:12} {r['method']:9} {r['p']:5g} {r['q']:5g} {ours} {paper:>7} "
              f"{ref:>14} {r['walk_steps_per_second_1_worker']:11,} "
              f"{r['walk_steps_per_second_2_workers']:10,} {r.get('peak_memory_mib', 0):6.0f}")
    name = (f"results_{'-'.join(FLAGS.datasets)}_{'-'.join(FLAGS.methods)}"
            f"{'' if FLAGS.ours else '_gensim_only'}.json")
    with open(os.path.join(FLAGS.output_dir, name), "w") as f:
        json.dump(rows, f, indent=2)


if __name__ == "__main__":
    app.run(main)
