"""Fine-tunes BERT on a sentence(-pair) classification task (GLUE or your own).

Google's flags, plus strategy, precision, accumulation, long-document and
export options. With no flags at all it runs the built-in demonstration:
the real MiniLM encoder fine-tuned on SST-2 (shipped in data/sst2), then
evaluated on the full SST-2 dev set.

    python run_classifier.py                       # the demonstration
    python run_classifier.py --task_name=mrpc --data_dir=glue/MRPC \
        --init_checkpoint=uncased_L-12_H-768_A-12 --output_dir=out/mrpc
"""

import os

from absl import flags

from bert_tf import cli

FLAGS = flags.FLAGS

flags.DEFINE_string("data_dir", "data/sst2", "Folder with the task's train/dev/test files.")
flags.DEFINE_string("task_name", "sst-2", "Task: cola, mnli, mnli-mm, mrpc, xnli, sst-2, qnli, "
                    "qqp, rte, wnli, sts-b, or generic (your own CSV/TSV/JSONL).")
flags.DEFINE_string("output_dir", "output/sst2_minilm",
                    "Checkpoints, eval_results.txt and test_results.tsv go here; an "
                    "interrupted run resumes from its latest checkpoint.")
flags.DEFINE_bool("do_train", True, "Fine-tune on the train split.")
flags.DEFINE_bool("do_eval", True, "Evaluate on the dev split.")
flags.DEFINE_bool("do_predict", False, "Predict the test split (test_results.tsv).")
flags.DEFINE_integer("train_batch_size", 32, "Total batch size for training.")
flags.DEFINE_integer("eval_batch_size", 64, "Total batch size for evaluation.")
flags.DEFINE_integer("predict_batch_size", 64, "Total batch size for prediction.")
flags.DEFINE_float("learning_rate", 1e-4, "Peak learning rate (AdamWeightDecay).")
flags.DEFINE_float("num_train_epochs", 1.0, "Passes over the (sub-sampled) train set.")
flags.DEFINE_float("warmup_proportion", 0.1, "Share of steps with linear warm-up.")
flags.DEFINE_integer("save_checkpoints_steps", 1000, "Steps between checkpoints.")
flags.DEFINE_integer("iterations_per_loop", 50, "Steps per compiled training loop call.")
flags.DEFINE_integer("max_train_examples", 40000,
                     "Train on a random subset of this many examples (0: all).")
flags.DEFINE_integer("doc_stride", None, "Split texts longer than max_seq_length into "
                     "windows this many tokens apart (logits averaged) instead of truncating.")
flags.DEFINE_bool("bucket_by_length", True, "Pad each batch to its own longest sequence.")
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
cli.define_model_flags()
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
        bucket_by_length=FLAGS.bucket_by_length, skip_bad_rows=FLAGS.skip_bad_rows,
        processor_kwargs=_processor_kwargs(), export_dir=FLAGS.export_dir,
        training=cli.training_options_from_flags(FLAGS),
        encoder_factory=cli.hub_encoder_factory(FLAGS))
    classification.run_classifier(settings, strategy)


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    cli.run(main)
