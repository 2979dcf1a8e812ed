"""Fine-tunes BERT on SQuAD 1.1 or 2.0 and predicts answer spans.

Google's flags with Google's defaults, plus strategy, precision,
accumulation, evaluation and export options: Google's commands run
unchanged and mean what they meant (only what --do_train and --do_predict
ask for runs). --do_eval scores the predictions of --predict_file with the
official SQuAD metric (v1.1, or v2.0 with the best no-answer threshold) into
eval_results.txt; --export_dir writes a SavedModel that answers a question
about a raw paragraph.

    python run_squad.py --vocab_file=$BERT_BASE_DIR/vocab.txt \
        --bert_config_file=$BERT_BASE_DIR/bert_config.json \
        --init_checkpoint=$BERT_BASE_DIR/bert_model.ckpt --do_train=True \
        --train_file=$SQUAD_DIR/train-v1.1.json --do_predict=True \
        --predict_file=$SQUAD_DIR/dev-v1.1.json --train_batch_size=12 \
        --learning_rate=3e-5 --num_train_epochs=2.0 --max_seq_length=384 \
        --doc_stride=128 --output_dir=/tmp/squad_base/
"""

import os

from absl import flags

from bert_tf import cli

FLAGS = flags.FLAGS

flags.DEFINE_string("output_dir", None,
                    "Checkpoints, predictions.json, nbest_predictions.json, null_odds.json "
                    "and eval_results.txt go here; an interrupted run resumes from its "
                    "latest checkpoint.")
flags.DEFINE_string("train_file", None, "SQuAD json for training, e.g. train-v1.1.json.")
flags.DEFINE_string("predict_file", None,
                    "SQuAD json for predictions, e.g. dev-v1.1.json or test-v1.1.json.")
flags.DEFINE_integer("doc_stride", 128, "Tokens between the starts of a paragraph's windows.")
flags.DEFINE_integer("max_query_length", 64,
                     "Question wordpieces kept; longer questions are truncated to this.")
flags.DEFINE_bool("do_train", False, "Fine-tune on --train_file.")
flags.DEFINE_bool("do_predict", False, "Predict the answers of --predict_file.")
flags.DEFINE_bool("do_eval", False, "Predict --predict_file and score it with the official "
                  "SQuAD metric (eval_results.txt).")
flags.DEFINE_integer("train_batch_size", 32, "Total batch size for training.")
flags.DEFINE_integer("predict_batch_size", 8, "Total batch size for predictions.")
flags.DEFINE_float("learning_rate", 5e-5, "Peak learning rate (AdamWeightDecay).")
flags.DEFINE_float("num_train_epochs", 3.0, "Passes over the training questions.")
flags.DEFINE_float("warmup_proportion", 0.1, "Share of steps with linear warm-up.")
cli.define_bucket_window_flag()
flags.DEFINE_integer("save_checkpoints_steps", 1000, "Steps between checkpoints.")
flags.DEFINE_integer("iterations_per_loop", 1000,
                     "Most steps per compiled training loop call (a loop also ends at "
                     "every --log_steps and checkpoint).")
flags.DEFINE_integer("n_best_size", 20, "Candidates per question in nbest_predictions.json.")
flags.DEFINE_integer("max_answer_length", 30,
                     "Longest answer in wordpieces (start and end are predicted apart).")
flags.DEFINE_bool("verbose_logging", False,
                  "Log every answer whose text cannot be aligned with the paragraph.")
flags.DEFINE_bool("version_2_with_negative", False,
                  "SQuAD 2.0: some questions have no answer in their paragraph.")
flags.DEFINE_float("null_score_diff_threshold", 0.0,
                   "SQuAD 2.0: answer \"\" when the null score exceeds the best span's "
                   "by more than this (--do_eval reports the best value).")
flags.DEFINE_string("export_dir", None,
                    "Write a SavedModel answering (question, context) raw strings here.")
flags.DEFINE_string("bert_hub_module_handle", None,
                    "A TF-Hub-format BERT encoder SavedModel folder to fine-tune instead "
                    "of --init_checkpoint.")
# Google's run_squad.py windows 384 tokens by default (run_classifier.py 128).
cli.define_model_flags(default_init_checkpoint=None, default_max_seq_length=384)
cli.define_control_chars_flag()
cli.define_tpu_flags()
cli.define_training_flags()


def main(_):
    from bert_tf import squad_data

    if not FLAGS.output_dir:
        raise ValueError("--output_dir is required")
    # A broken data file is named before TensorFlow and the model load.
    if FLAGS.do_train and FLAGS.train_file:
        squad_data.read_squad_file(FLAGS.train_file)
    if (FLAGS.do_predict or FLAGS.do_eval) and FLAGS.predict_file:
        squad_data.read_squad_file(FLAGS.predict_file)
    from bert_tf import squad

    source = cli.pretrained_from_flags(FLAGS)
    strategy = cli.strategy_from_flags(FLAGS)
    settings = squad.SquadSettings(
        output_dir=FLAGS.output_dir, source=source, train_file=FLAGS.train_file,
        predict_file=FLAGS.predict_file, do_train=FLAGS.do_train, do_predict=FLAGS.do_predict,
        do_eval=FLAGS.do_eval, max_seq_length=FLAGS.max_seq_length,
        doc_stride=FLAGS.doc_stride, max_query_length=FLAGS.max_query_length,
        train_batch_size=FLAGS.train_batch_size, predict_batch_size=FLAGS.predict_batch_size,
        learning_rate=FLAGS.learning_rate, num_train_epochs=FLAGS.num_train_epochs,
        warmup_proportion=FLAGS.warmup_proportion, n_best_size=FLAGS.n_best_size,
        max_answer_length=FLAGS.max_answer_length,
        version_2_with_negative=FLAGS.version_2_with_negative,
        null_score_diff_threshold=FLAGS.null_score_diff_threshold,
        verbose_logging=FLAGS.verbose_logging, training=cli.training_options_from_flags(FLAGS),
        export_dir=FLAGS.export_dir, encoder_factory=cli.hub_encoder_factory(FLAGS),
        control_chars=FLAGS.control_chars, bucket_window_batches=FLAGS.bucket_window_batches)
    squad.run_squad(settings, strategy)


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    cli.run(main)
