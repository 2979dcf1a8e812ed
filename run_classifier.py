"""Fine-tunes BERT on a sentence(-pair) classification task (GLUE or your own).

Google's flags with Google's defaults, plus strategy, precision,
accumulation, long-document and export options: Google's commands run
unchanged and mean what they meant (only what --do_train, --do_eval and
--do_predict ask for runs; all of the training data is used unless
--max_train_examples says otherwise).

With no flags at all it runs the built-in demonstration instead, and logs
it as the explicit command line it equals (DEMO_FLAGS): the real MiniLM
encoder fine-tuned on 40,000 examples of SST-2 (shipped in data/sst2) for
one epoch, then evaluated on the full SST-2 dev set.

    python run_classifier.py                       # the demonstration
    python run_classifier.py --task_name=MRPC --do_train=true --do_eval=true \
        --data_dir=$GLUE_DIR/MRPC --vocab_file=$BERT_BASE_DIR/vocab.txt \
        --bert_config_file=$BERT_BASE_DIR/bert_config.json \
        --init_checkpoint=$BERT_BASE_DIR/bert_model.ckpt --max_seq_length=128 \
        --train_batch_size=32 --learning_rate=2e-5 --num_train_epochs=3.0 \
        --output_dir=/tmp/mrpc_output/
"""

import os
import shlex
import sys

from absl import flags, logging

from bert_tf import cli

FLAGS = flags.FLAGS

# The demonstration: a quick, strong fine-tune of a small model. It trains on
# a subset for one epoch at a higher learning rate than Google's defaults
# (which suit BERT-base on the whole of a GLUE task), and evaluates with
# larger batches than Google's 8 because that is faster on a CPU.
DEMO_FLAGS = (
    "--task_name=sst-2", "--do_train", "--do_eval",
    "--data_dir=" + os.path.relpath(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                 "data", "sst2")),
    "--init_checkpoint=minilm-l6-h384-uncased", "--output_dir=output/sst2_minilm",
    "--max_train_examples=40000", "--num_train_epochs=1", "--learning_rate=1e-4",
    "--eval_batch_size=64",
)

flags.DEFINE_string("data_dir", None, "Folder with the task's train/dev/test files.")
flags.DEFINE_string("task_name", None, "Task: cola, mnli, mnli-mm, mrpc, xnli, sst-2, qnli, "
                    "qqp, rte, wnli, sts-b, or generic (your own CSV/TSV/JSONL).")
flags.DEFINE_string("output_dir", None,
                    "Checkpoints, eval_results.txt and test_results.tsv go here; an "
                    "interrupted run resumes from its latest checkpoint.")
flags.DEFINE_bool("do_train", False, "Fine-tune on the train split.")
flags.DEFINE_bool("do_eval", False, "Evaluate on the dev split (eval_results.txt).")
flags.DEFINE_bool("do_predict", False, "Predict the test split (test_results.tsv).")
flags.DEFINE_integer("train_batch_size", 32, "Total batch size for training.")
flags.DEFINE_integer("eval_batch_size", 8, "Total batch size for evaluation.")
flags.DEFINE_integer("predict_batch_size", 8, "Total batch size for prediction.")
flags.DEFINE_float("learning_rate", 5e-5, "Peak learning rate (AdamWeightDecay).")
flags.DEFINE_float("num_train_epochs", 3.0, "Passes over the training examples.")
flags.DEFINE_float("warmup_proportion", 0.1, "Share of steps with linear warm-up.")
flags.DEFINE_integer("save_checkpoints_steps", 1000, "Steps between checkpoints.")
flags.DEFINE_integer("iterations_per_loop", 1000,
                     "Most steps per compiled training loop call (a loop also ends at "
                     "every --log_steps and checkpoint).")
flags.DEFINE_integer("max_train_examples", None,
                     "Train on a random subset of this many examples (default, or 0: all).")
flags.DEFINE_integer("doc_stride", None, "Split texts longer than max_seq_length into "
                     "windows this many tokens apart (logits averaged) instead of truncating.")
flags.DEFINE_bool("bucket_by_length", True, "Pad each batch to its own longest sequence.")
cli.define_bucket_window_flag()
flags.DEFINE_bool("skip_bad_rows", False, "Skip (and count) malformed data rows instead of failing.")
flags.DEFINE_string("export_dir", None, "Write a serving SavedModel (raw strings in) here.")
flags.DEFINE_string("bert_hub_module_handle", None,
                    "A TF-Hub-format BERT encoder SavedModel folder to fine-tune instead "
                    "of --init_checkpoint.")
flags.DEFINE_string("text_a_column", "sentence", "generic task: column of the first text.")
flags.DEFINE_string("text_b_column", None, "generic task: column of the second text, if any.")
flags.DEFINE_string("label_column", "label", "generic task: column of the label.")
flags.DEFINE_string("file_format", "tsv", "generic task: tsv, csv or jsonl.")
flags.DEFINE_list("labels", None, "generic task: the label set (default: found in train).")
flags.DEFINE_bool("regression", False, "generic task: the label is a real number.")
flags.DEFINE_string("language", "zh", "xnli: the language to train and evaluate on.")
cli.define_model_flags(default_init_checkpoint=None)
cli.define_control_chars_flag()
cli.define_tpu_flags()
cli.define_training_flags()


def _processor_kwargs():
    task = FLAGS.task_name.lower()
    if task == "generic":
        return dict(text_a_column=FLAGS.text_a_column, text_b_column=FLAGS.text_b_column,
                    label_column=FLAGS.label_column, labels=FLAGS.labels,
                    file_format=FLAGS.file_format, is_regression=FLAGS.regression,
                    data_dir=FLAGS.data_dir)
    if task == "xnli":
        return dict(language=FLAGS.language)
    return {}


def main(_):
    from bert_tf import classification

    if DEMO:
        logging.info("No flags given: running the demonstration, which is\n  python %s %s",
                     os.path.basename(sys.argv[0]), " ".join(shlex.quote(f) for f in DEMO_FLAGS))
    for name in ("task_name", "output_dir"):
        if not FLAGS[name].value:
            raise ValueError(f"--{name} is required (with no flags at all, the "
                             "demonstration runs)")
    if (FLAGS.do_train or FLAGS.do_eval or FLAGS.do_predict) and not FLAGS.data_dir:
        raise ValueError("--data_dir is required with --do_train, --do_eval or --do_predict")
    if FLAGS.max_train_examples is not None and FLAGS.max_train_examples < 0:
        raise ValueError(f"--max_train_examples must be >= 0, got {FLAGS.max_train_examples}")
    source = cli.pretrained_from_flags(FLAGS)
    strategy = cli.strategy_from_flags(FLAGS)
    settings = classification.ClassifierSettings(
        task_name=FLAGS.task_name, data_dir=FLAGS.data_dir, output_dir=FLAGS.output_dir,
        source=source, do_train=FLAGS.do_train, do_eval=FLAGS.do_eval,
        do_predict=FLAGS.do_predict, max_seq_length=FLAGS.max_seq_length,
        doc_stride=FLAGS.doc_stride, train_batch_size=FLAGS.train_batch_size,
        eval_batch_size=FLAGS.eval_batch_size, predict_batch_size=FLAGS.predict_batch_size,
        learning_rate=FLAGS.learning_rate, num_train_epochs=FLAGS.num_train_epochs,
        warmup_proportion=FLAGS.warmup_proportion,
        max_train_examples=FLAGS.max_train_examples or None,
        bucket_by_length=FLAGS.bucket_by_length,
        bucket_window_batches=FLAGS.bucket_window_batches, skip_bad_rows=FLAGS.skip_bad_rows,
        processor_kwargs=_processor_kwargs(), export_dir=FLAGS.export_dir,
        training=cli.training_options_from_flags(FLAGS),
        encoder_factory=cli.hub_encoder_factory(FLAGS), control_chars=FLAGS.control_chars)
    classification.run_classifier(settings, strategy)


DEMO = False

if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # No flags at all: the demonstration, exactly as if its flags were typed.
    DEMO = len(sys.argv) == 1
    if DEMO:
        sys.argv.extend(DEMO_FLAGS)
    cli.run(main)
