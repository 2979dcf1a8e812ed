"""Flag groups and start-up glue shared by the root scripts.

Each script defines only the flags that are its own; the groups below keep
Google's names and meanings (`init_checkpoint`, `bert_config_file`, the TPU
flags...) identical across scripts.
"""

from __future__ import annotations

import os
import sys

from absl import flags

from bert_tf.trainer_config import TrainingOptions

DEFAULT_MODEL = "minilm-l6-h384-uncased"


def define_model_flags(default_init_checkpoint: str | None = DEFAULT_MODEL,
                       default_max_seq_length: int = 128) -> None:
    """Google's model flags; Google's own scripts pass default_init_checkpoint=None,
    Google's default, so that their commands mean what they meant (and
    run_squad.py Google's 384 for max_seq_length)."""
    flags.DEFINE_string(
        "bert_config_file", None,
        "bert_config.json of the pre-trained model. Optional when "
        "--init_checkpoint is a folder or known name that carries one.")
    flags.DEFINE_string(
        "init_checkpoint", default_init_checkpoint,
        "Initial weights: a Google or TF2 checkpoint prefix, a Google release "
        "folder, a Hugging Face folder, or a known model name ("
        f"{DEFAULT_MODEL}). In run_classifier.py, without it the weights start "
        "random (as in Google's script).")
    flags.DEFINE_string(
        "vocab_file", None,
        "WordPiece vocabulary. Optional when --init_checkpoint carries vocab.txt.")
    flags.DEFINE_bool(
        "do_lower_case", True,
        "Lower-case and strip accents. Uncased models want True, cased False; "
        "when not given, the model's own setting wins if it has one.")
    flags.DEFINE_integer(
        "max_seq_length", default_max_seq_length,
        "Maximum total input length in WordPiece tokens, [CLS]/[SEP] included.")


def define_control_chars_flag() -> None:
    """`--control_chars`: which control characters tokenization deletes.

    Read it as `FLAGS.control_chars` and hand it to every tokenizer, export
    and vocabulary learner of the script, so that one run tokenizes alike
    everywhere.
    """
    from bert_tf import tokenization

    flags.DEFINE_enum(
        "control_chars", tokenization.DEFAULT_CONTROL_CHARS,
        list(tokenization.CONTROL_CHAR_RULES),
        "Which control characters tokenization deletes. 'google': only Cc and "
        "Cf, Google's tokenization.py since its 2019-03-28 change, so unassigned "
        "(Cn) and private-use (Co) characters, e.g. an emoji newer than Python's "
        "Unicode tables, become [UNK]. 'huggingface': every C* character, as "
        "Google's older code and Hugging Face's port do; use it for checkpoints "
        "fine-tuned with Hugging Face's tokenizer.")


def define_bucket_window_flag() -> None:
    """`--bucket_window_batches`: batches per length-sorting window in fine-tuning.

    Read it as `FLAGS.bucket_window_batches` (None: the default for the
    data's size, see `input_pipeline.window_batches_for`).
    """
    flags.DEFINE_integer(
        "bucket_window_batches", None,
        "Training sorts each window of this many shuffled batches by length and "
        "pads each batch to its own longest sequence (1: random batches; default: "
        "50, or a tenth of an epoch's batches when that is fewer).")


def define_tpu_flags() -> None:
    """Google's TPU flags; `--use_tpu` selects the TPU distribution strategy."""
    flags.DEFINE_bool("use_tpu", False, "Run on a TPU (same as --distribution_strategy=tpu).")
    flags.DEFINE_string("tpu_name", None, "Cloud TPU name or grpc:// address.")
    flags.DEFINE_string("tpu_zone", None, "GCE zone of the Cloud TPU.")
    flags.DEFINE_string("gcp_project", None, "GCP project of the Cloud TPU.")
    flags.DEFINE_string("master", None, "TensorFlow master URL (TPU address).")
    flags.DEFINE_integer("num_tpu_cores", 8, "TPU cores to use with --use_tpu.")


def define_training_flags() -> None:
    """Flags beyond Google's that both training scripts share."""
    flags.DEFINE_enum(
        "distribution_strategy", None,
        ["one_device", "mirrored", "multi_worker_mirrored", "tpu"],
        "tf.distribute strategy. Default: multi_worker_mirrored when TF_CONFIG is "
        "set, mirrored with several GPUs, else one_device.")
    flags.DEFINE_integer("num_gpus", None, "GPUs for the mirrored strategy (default: all).")
    flags.DEFINE_bool("use_xla", False, "Compile the training step with XLA.")
    flags.DEFINE_enum("mixed_precision", None, ["bf16", "fp16"],
                      "Mixed precision; fp16 uses dynamic loss scaling.")
    flags.DEFINE_integer("gradient_accumulation_steps", 1,
                         "Micro-batches accumulated per optimizer update.")
    flags.DEFINE_enum("optimizer", "adamw", ["adamw", "lamb"],
                      "adamw: Google's AdamWeightDecay; lamb: layer-wise adaptive.")
    flags.DEFINE_integer("keep_checkpoint_max", 5, "Checkpoints to keep in output_dir.")
    flags.DEFINE_integer("log_steps", 100, "Steps between logged/summarised metrics.")
    flags.DEFINE_integer("seed", TrainingOptions.seed,
                         "Random seed: data order, dropout, initialisation.")


def pretrained_from_flags(FLAGS):
    """Resolves the model flags into a `pretrained.Pretrained`.

    `--do_lower_case` given explicitly always wins; otherwise the model's own
    setting (if it carries one) wins over the flag's default.
    """
    from bert_tf import pretrained

    lower = FLAGS.do_lower_case if FLAGS["do_lower_case"].present else None
    if "bert_hub_module_handle" in FLAGS and FLAGS.bert_hub_module_handle:
        # The SavedModel carries its weights, vocabulary and case.
        from bert_tf import hub

        source = hub.resolve(FLAGS.bert_hub_module_handle, FLAGS.vocab_file, lower)
    else:
        source = pretrained.resolve(FLAGS.init_checkpoint, FLAGS.bert_config_file,
                                    FLAGS.vocab_file, lower)
    if source.do_lower_case is None:
        source.do_lower_case = FLAGS.do_lower_case
    if not source.vocab_file:
        raise ValueError("No vocabulary: pass --vocab_file, or an --init_checkpoint "
                         "folder that holds vocab.txt")
    check_vocabulary(source.vocab_file, source.config.vocab_size)
    if FLAGS.max_seq_length > source.config.max_position_embeddings:
        raise ValueError(
            f"--max_seq_length {FLAGS.max_seq_length} exceeds the model's "
            f"max_position_embeddings {source.config.max_position_embeddings}")
    return source


def check_vocabulary(vocab_file: str, vocab_size: int) -> None:
    """Refuses a vocabulary that cannot go with the model, naming the file:
    without [CLS] and [SEP] no input can be built, and ids at or beyond the
    config's vocab_size have no embedding row."""
    from bert_tf import tokenization

    vocab = tokenization.load_vocab(vocab_file)
    missing = [token for token in ("[CLS]", "[SEP]") if token not in vocab]
    if missing:
        raise ValueError(f"{vocab_file}: the vocabulary has no {' and no '.join(missing)} "
                         f"token ({len(vocab)} tokens); BERT inputs need both. Is it the "
                         "model's vocab.txt?")
    largest = max(vocab.values())
    if largest >= vocab_size:
        raise ValueError(f"{vocab_file}: the vocabulary has ids up to {largest}, but the "
                         f"model's vocab_size is {vocab_size} (bert_config.json); is it the "
                         "model's vocab.txt?")


def strategy_from_flags(FLAGS):
    from bert_tf import distribution

    return distribution.strategy_from_flags(
        use_tpu=FLAGS.use_tpu, tpu_name=FLAGS.tpu_name, tpu_zone=FLAGS.tpu_zone,
        gcp_project=FLAGS.gcp_project, master=FLAGS.master,
        num_tpu_cores=FLAGS.num_tpu_cores,
        distribution_strategy=FLAGS.distribution_strategy, num_gpus=FLAGS.num_gpus)


def training_options_from_flags(FLAGS):
    """The `trainer.TrainingOptions` that the shared training flags give."""
    return TrainingOptions(
        optimizer=FLAGS.optimizer,
        gradient_accumulation_steps=FLAGS.gradient_accumulation_steps,
        steps_per_loop=FLAGS.iterations_per_loop,
        save_checkpoints_steps=FLAGS.save_checkpoints_steps,
        keep_checkpoint_max=FLAGS.keep_checkpoint_max,
        log_steps=FLAGS.log_steps,
        use_xla=FLAGS.use_xla,
        mixed_precision=FLAGS.mixed_precision,
        seed=FLAGS.seed,
    )


def hub_encoder_factory(FLAGS):
    """A factory of TF-Hub-format encoders for --bert_hub_module_handle, or None."""
    if not FLAGS.bert_hub_module_handle:
        return None
    from bert_tf import hub

    handle = FLAGS.bert_hub_module_handle
    return lambda: hub.HubEncoder(handle)


def run(main) -> None:
    """`absl.app.run(main)`, but expected failures print one clear line.

    Errors that describe bad input (a missing file, a malformed config, a
    checkpoint that does not fit) end the program with their message rather
    than a traceback; set BERT_TF_TRACEBACK=1 to see the traceback anyway.
    """
    from absl import app

    def guarded(argv):
        try:
            return main(argv)
        except (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError) as e:
            if os.environ.get("BERT_TF_TRACEBACK"):
                raise
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)
        except KeyboardInterrupt as e:
            # trainer.TrainingInterrupted: stopped by a signal after saving.
            if getattr(e, "signum", None) is None:
                raise
            print(e, file=sys.stderr, flush=True)
            sys.exit(128 + e.signum)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    app.run(guarded)
