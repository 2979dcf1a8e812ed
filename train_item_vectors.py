"""Item vectors from click sessions, the Airbnb way, with next-click evaluation.

    python train_item_vectors.py \
        --input=sessions/yoochoose-clicks-100k_train_full.txt \
        --test_input=sessions/yoochoose-clicks-100k_test.txt \
        --output_dir=output/yoochoose_items

Reads a session log (`session item time` lines, tab or comma; see
bert_tf/item_sessions.py for the columns, the header rule and the errors),
cuts sessions after --session_gap minutes of inactivity, optionally
collapses consecutive repeats (--collapse_repeats), and trains skip-gram
with negative sampling on the sessions (bert_tf/skipgram.py). With --booked_column the
booked item of a session is a global context of all its clicks; with
--group_column an item's negatives come only from its own group (market).
The vectors go to --output (word2vec text, or binary with --binary); with
--test_input, HR@k and MRR@k of predicting each next click from the last
item's nearest neighbours go to eval_results.txt beside the popularity and
transition (co-occurrence) baselines. A killed run resumes from its
checkpoints when started again with the same flags.
"""

import hashlib
import os
import time

from absl import flags, logging

from bert_tf import cli, skipgram

FLAGS = flags.FLAGS
DEFAULTS = {"dim": 64, "window": 2, "negatives": 10, "min_count": 1, "sample": 1e-4,
            "epochs": 30, "batch_size": 1024}

flags.DEFINE_string("input", None, "Training session log(s): comma-separated globs.")
flags.DEFINE_string("test_input", None, "Session log(s) to evaluate next-click prediction on.")
flags.DEFINE_string("output_dir", None, "Checkpoints, TensorBoard events, eval_results.txt; "
                    "an interrupted run resumes from here.")
flags.DEFINE_string("output", None, "Item vectors (default: OUTPUT_DIR/item_vectors.txt).")
flags.DEFINE_bool("binary", False, "Write word2vec binary instead of text.")
flags.DEFINE_string("session_column", "0", "Session id column: header name or 0-based position.")
flags.DEFINE_string("item_column", "1", "Item id column: header name or 0-based position.")
flags.DEFINE_string("time_column", "2", "Time column (seconds since the epoch or ISO 8601).")
flags.DEFINE_string("booked_column", None, "Optional column marking converted (booked) clicks "
                    "with 1/true/yes; the session's last one is its global context.")
flags.DEFINE_string("group_column", None, "Optional column giving each item's group (market); "
                    "negatives are then drawn within the group.")
flags.DEFINE_float("session_gap", 30.0, "Minutes of inactivity that end a session (0: keep "
                   "the log's sessions whole).")
flags.DEFINE_bool("collapse_repeats", False, "Collapse consecutive clicks on the same item "
                  "into one before training (off by default: keeping them scored better on "
                  "held-out sessions).")
flags.DEFINE_integer("cutoff", 20, "k of HR@k and MRR@k.")
# The skip-gram flags (word2vec's names), with defaults for click sessions
# chosen on a held-out tenth of the YOOCHOOSE training sessions (see
# benchmarks/item_vectors_yoochoose.py); and the shared training flags.
skipgram.define_flags(defaults=DEFAULTS)
cli.define_training_flags()
cli.define_tpu_flags()

# What the training sequences depend on: a resumed run must agree on all of them.
IDENTITY_KEYS = ("inputs", "session_column", "item_column", "time_column", "booked_column",
                 "group_column", "session_gap", "collapse_repeats")


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def main(_):
    from bert_tf import item_sessions, run_folders, text_files

    for name in ("input", "output_dir"):
        if not FLAGS[name].value:
            raise ValueError(f"--{name} is required")
    if FLAGS.session_gap < 0 or FLAGS.cutoff < 1:
        raise ValueError("--session_gap must be >= 0 and --cutoff >= 1")
    columns = item_sessions.Columns(
        session=FLAGS.session_column, item=FLAGS.item_column, time=FLAGS.time_column,
        booked=FLAGS.booked_column or None, group=FLAGS.group_column or None)
    for field, spec in columns.named().items():
        if not spec.strip():
            raise ValueError(f"--{field}_column is empty")
    output = FLAGS.output or os.path.join(FLAGS.output_dir, "item_vectors.txt")

    inputs = text_files.expand_globs(FLAGS.input, flag="--input")
    log = item_sessions.read_sessions(inputs, columns)
    test = None
    if FLAGS.test_input:
        # Read before training: a bad test file must not cost a training run.
        test = item_sessions.read_sessions(
            text_files.expand_globs(FLAGS.test_input, flag="--test_input"),
            item_sessions.Columns(session=columns.session, item=columns.item, time=columns.time))
    training = log.split(FLAGS.session_gap)
    if FLAGS.collapse_repeats:
        training = training.without_repeats()
    logging.info("%s: %d clicks in %d sessions; %d sessions of %d clicks for training",
                 FLAGS.input, log.clicks(), len(log), len(training), training.clicks())

    if columns.booked:
        logging.info("%d sessions with a booked item; it is a global context of their clicks",
                     sum(s.booked is not None for s in training.sessions))
    if columns.group:
        logging.info("%d items in %d groups; negatives are drawn within the group",
                     len(training.group_of), len(set(training.group_of.values())))
    identity = {key: FLAGS[key].value for key in IDENTITY_KEYS[1:]}
    identity["inputs"] = {os.path.abspath(p): _sha256(p) for p in inputs}
    if run_folders.check_output_dir(FLAGS.output_dir, identity, IDENTITY_KEYS):
        run_folders.write_identity(FLAGS.output_dir, identity)

    options = skipgram.options_from_flags(FLAGS)
    start = time.perf_counter()
    vectors = skipgram.train_skipgram(
        training.sequences(), options, os.path.join(FLAGS.output_dir, "skipgram"),
        global_context=training.global_context(), group_of=training.group_of,
        training_options=skipgram.training_options_from_flags(FLAGS),
        strategy=cli.strategy_from_flags(FLAGS))
    logging.info("Skip-gram training took %.1f s", time.perf_counter() - start)
    vectors.save(output, binary=FLAGS.binary)
    logging.info("Wrote %d item vectors of %d dimensions to %s", len(vectors.words),
                 options.dim, output)

    if test is not None:
        candidates = item_sessions.Candidates(log)
        models = [item_sessions.NearestNeighbourModel(candidates, vectors.words, vectors.matrix),
                  item_sessions.PopularityModel(candidates),
                  item_sessions.TransitionModel(candidates, log)]
        scores = item_sessions.evaluate_next_item(test, models, cutoff=FLAGS.cutoff)
        print(item_sessions.results_table(scores, FLAGS.cutoff), flush=True)
        results = {"test_sessions": len(test), "next_click_events": len(
            item_sessions.next_click_events(test)[0]), "items_with_vectors": len(vectors.words)}
        for name, values in scores.items():
            for key in (f"hr@{FLAGS.cutoff}", f"mrr@{FLAGS.cutoff}"):
                results[f"{name}_{key}"] = round(float(values[key]), 4)
        path = os.path.join(FLAGS.output_dir, "eval_results.txt")
        run_folders.note_replacing(path)
        text_files.write_eval_results(path, results)


if __name__ == "__main__":
    cli.run(main)
