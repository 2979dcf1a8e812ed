"""Pretrains BERT (masked LM + next sentence prediction) on TFRecords.

Google's flags, plus tf.distribute strategies, XLA, mixed precision,
gradient accumulation, LAMB and dynamic masking. Writes TF2 checkpoints to
--output_dir and resumes from the latest one when restarted.

    python run_pretraining.py --input_file=out/train-*.tfrecord \
        --bert_config_file=bert_config.json --output_dir=out/pretrain \
        --do_train --do_eval --num_train_steps=10000 --num_warmup_steps=1000
"""

import os

from absl import flags, logging

from bert_tf import cli

FLAGS = flags.FLAGS

flags.DEFINE_string("input_file", None, "Input TFRecord files (comma-separated globs).")
flags.DEFINE_string("eval_input_file", None, "Held-out TFRecords for --do_eval "
                    "(default: --input_file, as Google's script).")
flags.DEFINE_string("output_dir", None, "Checkpoints, summaries and eval_results.txt.")
flags.DEFINE_integer("max_predictions_per_seq", 20, "Masked positions per sequence.")
flags.DEFINE_bool("do_train", False, "Run training.")
flags.DEFINE_bool("do_eval", False, "Evaluate (on --eval_input_file if given).")
flags.DEFINE_integer("train_batch_size", 32, "Total batch size for training.")
flags.DEFINE_integer("eval_batch_size", 8, "Total batch size for evaluation.")
flags.DEFINE_float("learning_rate", 5e-5, "Peak learning rate.")
flags.DEFINE_integer("num_train_steps", 100000, "Optimizer updates.")
flags.DEFINE_integer("num_warmup_steps", 10000, "Linear warm-up steps.")
flags.DEFINE_integer("save_checkpoints_steps", 1000, "Steps between checkpoints.")
flags.DEFINE_integer("iterations_per_loop", 1000, "Steps per compiled training loop call.")
flags.DEFINE_integer("max_eval_steps", 100, "Maximum evaluation batches.")
flags.DEFINE_bool("eval_all_checkpoints", False,
                  "With --do_eval: evaluate every checkpoint kept in --output_dir, "
                  "oldest first (a held-out curve in TensorBoard), then the latest.")
flags.DEFINE_bool("dynamic_masking", False,
                  "Input holds unmasked records (create_pretraining_data.py "
                  "--dynamic_masking); draw masks afresh for every batch.")
flags.DEFINE_float("masked_lm_prob", 0.15, "With --dynamic_masking: share of tokens masked.")
cli.define_model_flags(default_init_checkpoint=None)
cli.define_tpu_flags()
cli.define_training_flags()


def main(_):
    from bert_tf import input_pipeline, modeling, pretrained, pretraining

    for name in ("input_file", "output_dir"):
        if not FLAGS[name].value:
            raise ValueError(f"--{name} is required")
    source = None
    if FLAGS.init_checkpoint:
        source = pretrained.resolve(FLAGS.init_checkpoint, FLAGS.bert_config_file)
        config = source.config
    elif FLAGS.bert_config_file:
        config = modeling.BertConfig.from_json_file(FLAGS.bert_config_file)
    else:
        raise ValueError("Pass --bert_config_file (from scratch) or --init_checkpoint")
    masking = None
    if FLAGS.dynamic_masking:
        vocab_file = FLAGS.vocab_file or (source.vocab_file if source else None)
        if not vocab_file:
            raise ValueError("--dynamic_masking needs --vocab_file (for the [MASK], [CLS] "
                             "and [SEP] ids and the random replacement tokens)")
        masking = input_pipeline.DynamicMasking.from_vocab_file(
            vocab_file, masked_lm_prob=FLAGS.masked_lm_prob)
    settings = pretraining.PretrainingSettings(
        config=config, input_file=FLAGS.input_file, output_dir=FLAGS.output_dir,
        source=source, eval_input_file=FLAGS.eval_input_file, do_train=FLAGS.do_train,
        do_eval=FLAGS.do_eval, max_seq_length=FLAGS.max_seq_length,
        max_predictions_per_seq=FLAGS.max_predictions_per_seq,
        train_batch_size=FLAGS.train_batch_size, eval_batch_size=FLAGS.eval_batch_size,
        max_eval_steps=FLAGS.max_eval_steps, eval_all_checkpoints=FLAGS.eval_all_checkpoints,
        dynamic_masking=masking, num_train_steps=FLAGS.num_train_steps,
        learning_rate=FLAGS.learning_rate, num_warmup_steps=FLAGS.num_warmup_steps,
        training=cli.training_options_from_flags(FLAGS))
    logging.info(
        "Run: %s; %s; %d steps of batch %d, learning_rate %g, %d warm-up steps; "
        "max_seq_length %d, max_predictions_per_seq %d; output_dir %s",
        "train" + (" and eval" if FLAGS.do_eval else "") if FLAGS.do_train else "eval only",
        f"from {source.checkpoint}" if source and source.checkpoint else "from scratch",
        FLAGS.num_train_steps, FLAGS.train_batch_size, FLAGS.learning_rate,
        FLAGS.num_warmup_steps, FLAGS.max_seq_length, FLAGS.max_predictions_per_seq,
        FLAGS.output_dir)
    results = os.path.join(FLAGS.output_dir, "eval_results.txt")
    if FLAGS.do_eval and os.path.exists(results):
        logging.warning("%s, written by an earlier run in this --output_dir, will be "
                        "replaced by this run's", results)
    pretraining.run_pretraining(settings, cli.strategy_from_flags(FLAGS))


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    cli.run(main)
