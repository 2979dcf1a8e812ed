"""Our skip-gram against gensim's Word2Vec(sg=1), side by side in one run.

Both train on the same tokenized sentences (bert_tf.word_vectors.tokenize of
every line of the corpora, held in memory for both) with the same
dimension, window, negatives, epochs, min_count and sample, and both are
evaluated by the same code (bert_tf.word_vector_eval): Spearman on WS-353
all/sim/rel and SimLex-999, 3CosAdd analogy accuracy over the 30,000 most
frequent words. Throughput is corpus words times epochs over the training
wall time (ours includes its pair-counting pass and the XLA compilation),
and per CPU-second of the process (all its threads), which moves less when
other work shares the machine; the JSON records the load average.

    python benchmarks/bench_word2vec_vs_gensim.py \
        --corpora='/work/shared/data/corpora/en/*.txt' \
        --wordsim_dir=/work/shared/data/embeddings/wordsim --threads=2
"""

import json
import os
import shutil
import sys
import tempfile
import time

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

FLAGS = flags.FLAGS
flags.DEFINE_string("corpora", "/work/shared/data/corpora/en/*.txt", "Corpus globs.")
flags.DEFINE_string("wordsim_dir", "/work/shared/data/embeddings/wordsim",
                    "EN-WS-353-{ALL,SIM,REL}.txt, EN-SIMLEX-999.txt, questions-words.txt.")
flags.DEFINE_integer("size", 100, "Dimension.")
flags.DEFINE_integer("window", 5, "Window.")
flags.DEFINE_integer("negative", 5, "Negatives per pair.")
flags.DEFINE_integer("epochs", 5, "Passes.")
flags.DEFINE_integer("min_count", 5, "Minimum count.")
flags.DEFINE_float("sample", 1e-3, "Subsampling threshold.")
flags.DEFINE_integer("threads", 2, "gensim workers and TensorFlow intra-op threads.")
flags.DEFINE_integer("batch_size", 4096, "Our pairs per update.")
flags.DEFINE_integer("seed", 1, "Seed of both.")
flags.DEFINE_bool("use_xla", True, "Compile our training step with XLA.")
flags.DEFINE_string("only", None, "Run only 'ours' or 'gensim'.")
flags.DEFINE_string("json_output", "output/benchmarks/word2vec_vs_gensim.json",
                    "Also write the results here.")

SIMILARITY = ["EN-WS-353-ALL.txt", "EN-WS-353-SIM.txt", "EN-WS-353-REL.txt", "EN-SIMLEX-999.txt"]


def _evaluate(vectors):
    from bert_tf import word_vector_eval

    results = {}
    for name in SIMILARITY:
        path = os.path.join(FLAGS.wordsim_dir, name)
        measured = word_vector_eval.similarity_spearman(
            vectors, word_vector_eval.read_similarity_file(path))
        results[name] = measured
    analogies = word_vector_eval.analogy_accuracy(vectors, word_vector_eval.read_analogy_file(
        os.path.join(FLAGS.wordsim_dir, "questions-words.txt")))
    results["analogy"] = {k: v for k, v in analogies.items() if k != "sections"}
    return results


def _ours(sentences):
    import tensorflow as tf

    from bert_tf import skipgram

    tf.config.threading.set_intra_op_parallelism_threads(FLAGS.threads)
    tf.config.threading.set_inter_op_parallelism_threads(FLAGS.threads)
    options = skipgram.SkipGramOptions(dim=FLAGS.size, window=FLAGS.window,
                                       negatives=FLAGS.negative, min_count=FLAGS.min_count,
                                       sample=FLAGS.sample, epochs=FLAGS.epochs,
                                       batch_size=FLAGS.batch_size, seed=FLAGS.seed)
    folder = tempfile.mkdtemp(prefix="bench_skipgram_")
    try:
        start, cpu = time.time(), time.process_time()
        vectors = skipgram.train_skipgram(
            lambda: sentences, options, folder,
            training_options=skipgram.default_training_options(seed=FLAGS.seed,
                                                               use_xla=FLAGS.use_xla))
        return vectors, time.time() - start, time.process_time() - cpu
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _gensim(sentences):
    from gensim.models import Word2Vec

    from bert_tf.vectors import Vectors

    start, cpu = time.time(), time.process_time()
    model = Word2Vec(sentences, sg=1, vector_size=FLAGS.size, window=FLAGS.window,
                     negative=FLAGS.negative, min_count=FLAGS.min_count, sample=FLAGS.sample,
                     epochs=FLAGS.epochs, workers=FLAGS.threads, seed=FLAGS.seed)
    seconds, cpu = time.time() - start, time.process_time() - cpu
    return Vectors(list(model.wv.index_to_key), model.wv.vectors), seconds, cpu


def main(_):
    import logging

    from bert_tf import text_files, word_vectors

    # gensim logs every second of training at INFO.
    logging.getLogger("gensim").setLevel(logging.WARNING)

    files = text_files.expand_globs(FLAGS.corpora, flag="--corpora")
    sentences = list(word_vectors.read_corpus(files))
    words = sum(map(len, sentences))
    print(f"corpus: {', '.join(os.path.basename(f) for f in files)}: {len(sentences):,} "
          f"sentences, {words:,} words; dim {FLAGS.size}, window {FLAGS.window}, negative "
          f"{FLAGS.negative}, epochs {FLAGS.epochs}, min_count {FLAGS.min_count}, sample "
          f"{FLAGS.sample}; {FLAGS.threads} threads each; our batch {FLAGS.batch_size} pairs, "
          f"XLA {FLAGS.use_xla}", flush=True)
    runs = {}
    for name, train in (("gensim", _gensim), ("ours", _ours)):
        if FLAGS.only and FLAGS.only != name:
            continue
        load = os.getloadavg()[0]
        vectors, seconds, cpu = train(sentences)
        runs[name] = {"seconds": seconds, "cpu_seconds": cpu,
                      "words_per_second": words * FLAGS.epochs / seconds,
                      "words_per_cpu_second": words * FLAGS.epochs / max(cpu, 1e-9),
                      "load_average_1min": [load, os.getloadavg()[0]],
                      "threads": FLAGS.threads, "vocabulary": len(vectors), **_evaluate(vectors)}
        print(f"{name}: {seconds:.1f} s, {runs[name]['words_per_second']:,.0f} words/s, "
              f"{runs[name]['words_per_cpu_second']:,.0f} words/CPU-s, vocabulary "
              f"{len(vectors):,}, load {load:.1f}", flush=True)

    names = list(runs)
    print("\n| measure | " + " | ".join(names) + (" | ours - gensim |" if len(names) == 2 else " |"))
    print("|---" * (len(names) + 1 + (len(names) == 2)) + "|")

    def row(label, values, fmt):
        cells = [fmt.format(v) for v in values]
        if len(values) == 2:
            cells.append(fmt.format(values[1] - values[0]) if "%" not in fmt else "")
        print(f"| {label} | " + " | ".join(cells) + " |")

    for name in SIMILARITY:
        first = runs[names[0]][name]
        label = f"{name[:-4]} Spearman ({first['pairs']} pairs, {first['oov_pairs']} OOV)"
        row(label, [runs[n][name]["spearman"] for n in names], "{:.3f}")
    first = runs[names[0]]["analogy"]
    row(f"analogy accuracy ({first['answerable']:,}/{first['questions']:,} answerable)",
        [100 * runs[n]["analogy"]["accuracy"] for n in names], "{:.2f}")
    row("words/s (training wall time)", [runs[n]["words_per_second"] for n in names], "{:,.0f}")
    row("words per CPU-second", [runs[n]["words_per_cpu_second"] for n in names], "{:,.0f}")
    row("seconds", [runs[n]["seconds"] for n in names], "{:.1f}")
    if FLAGS.json_output:
        os.makedirs(os.path.dirname(os.path.abspath(FLAGS.json_output)), exist_ok=True)
        with open(FLAGS.json_output, "w") as f:
            json.dump(runs, f, indent=2, default=float)


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    app.run(main)
