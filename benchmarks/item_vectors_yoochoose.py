"""Item vectors on the YOOCHOOSE 100k-click sample: next-click HR@20 / MRR@20
of our skip-gram item vectors vs the popularity and transition baselines.

    PYTHONPATH=. python benchmarks/item_vectors_yoochoose.py \
        --data_dir=../shared/data/embeddings/sessions

Settings are chosen honestly: the last --validation_fraction of the
training sessions (by end time) is held out, every configuration of the
grid is trained on the rest and scored there, and only the best one
(largest min(HR/HR_baseline, MRR/MRR_baseline) over both baselines) is
trained again on all of the training sessions and scored once on the test
sessions. Protocol of session-rec's rsc15 evaluation: each test session's
clicks after the first are predicted from the click before, over all
training items, repeats included.
"""

import itertools
import json
import os
import time

from absl import app, flags

from bert_tf import item_sessions

FLAGS = flags.FLAGS
flags.DEFINE_string("data_dir", "../shared/data/embeddings/sessions",
                    "Folder with yoochoose-clicks-100k_{train_full,test}.txt.")
flags.DEFINE_string("output_dir", "output/benchmarks/item_vectors_yoochoose",
                    "Runs and results.json.")
flags.DEFINE_float("validation_fraction", 0.1, "Share of training sessions held out to tune.")
flags.DEFINE_list("size", ["64"], "Vector sizes to try.")
flags.DEFINE_list("window", ["2", "3"], "Windows to try.")
flags.DEFINE_list("epochs", ["30", "50"], "Epochs to try.")
flags.DEFINE_list("sample", ["1e-4"], "Subsampling thresholds to try.")
flags.DEFINE_list("collapse_repeats", ["false", "true"], "Repeat policies to try.")
flags.DEFINE_integer("negative", 10, "Negative samples per pair.")
flags.DEFINE_integer("batch_size", 1024, "Pairs per update.")
flags.DEFINE_float("learning_rate", 0.025, "Initial SGD rate.")
flags.DEFINE_float("session_gap", 30.0, "Minutes of inactivity that end a training session.")
flags.DEFINE_integer("seed", 1, "Seed.")


def train_vectors(log, config, folder):
    from bert_tf import skipgram

    sessions = log.split(FLAGS.session_gap)
    if config["collapse_repeats"]:
        sessions = sessions.without_repeats()
    options = skipgram.SkipGramOptions(
        dim=config["size"], window=config["window"], epochs=config["epochs"],
        sample=config["sample"], negatives=FLAGS.negative, min_count=1,
        batch_size=FLAGS.batch_size, learning_rate=FLAGS.learning_rate, seed=FLAGS.seed)
    start = time.perf_counter()
    vectors = skipgram.train_skipgram(sessions.sequences(), options, folder)
    return vectors, time.perf_counter() - start


def score(train_log, test_log, vectors):
    candidates = item_sessions.Candidates(train_log)
    models = [item_sessions.PopularityModel(candidates),
              item_sessions.TransitionModel(candidates, train_log)]
    if vectors is not None:
        models.append(item_sessions.NearestNeighbourModel(candidates, vectors.words,
                                                          vectors.matrix))
    return item_sessions.evaluate_next_item(test_log, models, cutoff=20)


def margin(results):
    ours = results["item_vectors"]
    return min(ours[m] / results[b][m] for b in ("popularity", "cooccurrence")
               for m in ("hr@20", "mrr@20"))


def main(_):
    os.makedirs(FLAGS.output_dir, exist_ok=True)
    full = item_sessions.read_sessions(
        os.path.join(FLAGS.data_dir, "yoochoose-clicks-100k_train_full.txt"))
    test = item_sessions.read_sessions(os.path.join(FLAGS.data_dir, "yoochoose-clicks-100k_test.txt"))
    tuning, validation = full.split_by_time(FLAGS.validation_fraction)
    print(f"train_full: {full.clicks()} clicks, {len(full)} sessions; tuning on {len(tuning)} "
          f"sessions, validating on {len(validation)} ({len(item_sessions.next_click_events(validation)[0])} "
          f"events); test: {test.clicks()} clicks, {len(test)} sessions", flush=True)
    grid = [dict(size=int(s), window=int(w), epochs=int(e), sample=float(p),
                 collapse_repeats=c.lower() == "true")
            for s, w, e, p, c in itertools.product(FLAGS.size, FLAGS.window, FLAGS.epochs,
                                                   FLAGS.sample, FLAGS.collapse_repeats)]
    tried = []
    for n, config in enumerate(grid):
        folder = os.path.join(FLAGS.output_dir, "validation", json.dumps(config, sort_keys=True)
                              .replace(" ", "").replace('"', "").strip("{}").replace(":", "="))
        vectors, seconds = train_vectors(tuning, config, folder)
        results = score(tuning, validation, vectors)
        tried.append({"config": config, "validation": results, "seconds": seconds,
                      "margin": margin(results)})
        ours = results["item_vectors"]
        print(f"[{n + 1}/{len(grid)}] {config}: HR@20 {ours['hr@20']:.4f} MRR@20 "
              f"{ours['mrr@20']:.4f} margin {tried[-1]['margin']:.3f} ({seconds:.0f} s)", flush=True)
    best = max(tried, key=lambda t: t["margin"])
    print("validation baselines:\n" + item_sessions.results_table(
        {k: v for k, v in best["validation"].items() if k != "item_vectors"}))
    print(f"chosen on validation: {best['config']}", flush=True)
    vectors, seconds = train_vectors(full, best["config"], os.path.join(FLAGS.output_dir, "final"))
    results = score(full, test, vectors)
    table = item_sessions.results_table(results)
    print(f"test ({seconds:.0f} s of training on train_full):\n{table}", flush=True)
    with open(os.path.join(FLAGS.output_dir, "results.json"), "w") as f:
        json.dump({"tried": tried, "chosen": best["config"], "test": results,
                   "final_training_seconds": seconds}, f, indent=2)


if __name__ == "__main__":
    app.run(main)
