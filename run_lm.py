"""Trains and evaluates a GPT-2 language model on create_lm_data.py records.

From scratch (--config_file, an OpenAI hparams.json, and the tokenizer the
data was made with) or from a GPT-2 model folder (--init_checkpoint, which
carries config and tokenizer). Resumes from --output_dir when restarted;
--output_dir ends up a model folder that generate.py reads.

    python run_lm.py --input_file=out/train.tfrecord --eval_file=out/heldout.tfrecord \
        --config_file=hparams.json --vocab_dir=gpt2_vocab --output_dir=out/lm \
        --do_train --do_eval --train_batch_size=16 --num_train_steps=2000 \
        --num_warmup_steps=200 --learning_rate=5e-4
    python generate.py --init_checkpoint=out/lm --prefix="In the beginning" --length=40
"""

import os

from absl import flags, logging

from bert_tf import cli

FLAGS = flags.FLAGS

flags.DEFINE_string("input_file", None, "Training TFRecords (comma-separated globs).")
flags.DEFINE_string("eval_file", None, "Held-out TFRecords for --do_eval (default: --input_file).")
flags.DEFINE_string("output_dir", None, "The model folder: hparams.json, tokenizer, model.ckpt, "
                    "eval_results.txt; training/ holds resumable checkpoints and summaries.")
flags.DEFINE_string("config_file", None, "hparams.json (OpenAI's names) of a model trained "
                    "from scratch. Optional with --init_checkpoint.")
flags.DEFINE_string("init_checkpoint", None, "Initial weights: a GPT-2 model folder (Hugging "
                    "Face, OpenAI's layout, ours) or a checkpoint prefix in one.")
flags.DEFINE_string("vocab_dir", None, "GPT-2 BPE folder (encoder.json + vocab.bpe) the data "
                    "was made with. Optional with --init_checkpoint.")
flags.DEFINE_string("vocab_file", None, "BERT vocab.txt (Chinese WordPiece) the data was made with.")
flags.DEFINE_bool("do_lower_case", True, "With --vocab_file: lower-case and strip accents.")
flags.DEFINE_bool("do_train", False, "Run training.")
flags.DEFINE_bool("do_eval", False, "Held-out perplexity into eval_results.txt.")
flags.DEFINE_integer("train_batch_size", 8, "Total batch size (windows) for training.")
flags.DEFINE_integer("eval_batch_size", 8, "Total batch size for evaluation.")
flags.DEFINE_integer("max_eval_steps", None, "Evaluation batches at most (default: all).")
flags.DEFINE_float("learning_rate", 2.5e-4, "Peak learning rate.")
flags.DEFINE_integer("num_train_steps", 10000, "Optimizer updates.")
flags.DEFINE_integer("num_warmup_steps", 1000, "Linear warm-up steps.")
flags.DEFINE_integer("save_checkpoints_steps", 1000, "Steps between checkpoints.")
flags.DEFINE_integer("iterations_per_loop", 100, "Steps per compiled training loop call.")
flags.DEFINE_string("export_dir", None, "At the end, write a generating SavedModel of the model "
                    "folder (raw prompts in, text out; see generate.py --export_dir).")
cli.define_tpu_flags()
cli.define_training_flags()


def _tokenizer_and_files(found):
    """The tokenizer of the run and the files the output folder gets for it."""
    from bert_tf import gpt2_pretrained, lm_data

    if FLAGS.vocab_dir or FLAGS.vocab_file:
        if FLAGS.vocab_dir and FLAGS.vocab_file:
            raise ValueError("give --vocab_dir (BPE) or --vocab_file (WordPiece), not both")
        tokenizer = lm_data.load_tokenizer(FLAGS.vocab_dir, FLAGS.vocab_file, FLAGS.do_lower_case)
        source = (f"--vocab_dir={FLAGS.vocab_dir}" if FLAGS.vocab_dir
                  else f"--vocab_file={FLAGS.vocab_file}")
    elif found is not None:
        tokenizer = gpt2_pretrained.load_tokenizer(found)
        source = " + ".join(found.tokenizer_files)
    else:
        raise ValueError("no tokenizer: pass --vocab_dir or --vocab_file (the one the data "
                         "was made with), or an --init_checkpoint folder that holds one")
    os.makedirs(FLAGS.output_dir, exist_ok=True)
    if hasattr(tokenizer, "save"):  # byte-level BPE: written under OpenAI's names
        tokenizer.save(FLAGS.output_dir)
        files = {name: os.path.join(FLAGS.output_dir, name) for name in ("encoder.json", "vocab.bpe")}
    else:
        vocab = FLAGS.vocab_file or found.tokenizer_files[0]
        files = {gpt2_pretrained.VOCAB_TXT: vocab}
    return tokenizer, source, files


def main(_):
    from bert_tf import generation, gpt2, gpt2_checkpoints, gpt2_pretrained, lm

    if not FLAGS.output_dir:
        raise ValueError("--output_dir is required")
    found = None
    if FLAGS.init_checkpoint:
        found = gpt2_pretrained.describe_folder(FLAGS.init_checkpoint)
    if FLAGS.config_file:
        config = gpt2.GPT2Config.from_json_file(FLAGS.config_file)
        config_source = FLAGS.config_file
    elif found is not None:
        config_source = gpt2_pretrained.config_source(found)
        config = (gpt2_checkpoints.read_openai_hparams(found.folder) if found.format == "openai"
                  else gpt2_checkpoints.read_hf_config(found.folder))
    else:
        raise ValueError("pass --config_file (hparams.json, from scratch) or --init_checkpoint")
    tokenizer, vocab_source, files = _tokenizer_and_files(found)
    generation.check_vocabulary(config.n_vocab, tokenizer.vocab_size, model_source=config_source,
                                vocab_source=vocab_source)
    settings = lm.LMSettings(
        config=config, input_file=FLAGS.input_file, output_dir=FLAGS.output_dir,
        tokenizer_files=files, init_checkpoint=FLAGS.init_checkpoint, eval_file=FLAGS.eval_file,
        do_train=FLAGS.do_train, do_eval=FLAGS.do_eval, train_batch_size=FLAGS.train_batch_size,
        eval_batch_size=FLAGS.eval_batch_size, max_eval_steps=FLAGS.max_eval_steps,
        num_train_steps=FLAGS.num_train_steps, learning_rate=FLAGS.learning_rate,
        num_warmup_steps=FLAGS.num_warmup_steps, training=cli.training_options_from_flags(FLAGS),
        export_dir=FLAGS.export_dir)
    logging.info("Run: %s; %s; %d steps of batch %d, learning_rate %g; output_dir %s",
                 "train" + (" and eval" if FLAGS.do_eval else "") if FLAGS.do_train else "eval only",
                 f"from {FLAGS.init_checkpoint}" if FLAGS.init_checkpoint else "from scratch",
                 FLAGS.num_train_steps, FLAGS.train_batch_size, FLAGS.learning_rate,
                 FLAGS.output_dir)
    lm.run_lm(settings, cli.strategy_from_flags(FLAGS))


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    cli.run(main)
