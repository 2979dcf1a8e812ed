"""Writes per-token activations of BERT layers for each input line (JSON lines).

Google's flags, defaults and output format. An input line `a ||| b` is a
sentence pair. --vocab_file and --bert_config_file may be left out when
--init_checkpoint is a folder (or known model name) that carries them.

    python extract_features.py --input_file=data/sample_text.txt \
        --output_file=/tmp/features.jsonl --init_checkpoint=minilm-l6-h384-uncased
"""

from absl import flags, logging

from bert_tf import cli

FLAGS = flags.FLAGS

flags.DEFINE_string("input_file", None, "Text, one sentence (or `a ||| b` pair) per line.")
flags.DEFINE_string("output_file", None, "Where to write the JSON lines.")
flags.DEFINE_string("layers", "-1,-2,-3,-4", "Encoder layers to output (negative counts from the top).")
flags.DEFINE_integer("batch_size", 32, "Batch size for predictions.")
flags.DEFINE_bool("use_one_hot_embeddings", False, "Accepted for compatibility; has no effect.")
flags.DEFINE_string("bert_hub_module_handle", None,
                    "A TF-Hub-format BERT encoder SavedModel folder to use instead of "
                    "--init_checkpoint.")
cli.define_model_flags(default_init_checkpoint=None)
cli.define_control_chars_flag()
cli.define_tpu_flags()


def main(_):
    required = ["input_file", "output_file"]
    if not FLAGS.bert_hub_module_handle:
        required.append("init_checkpoint")
    for name in required:
        if not FLAGS[name].value:
            raise ValueError(f"--{name} is required")
    layers = [int(x) for x in FLAGS.layers.split(",")]
    source = cli.pretrained_from_flags(FLAGS)

    from bert_tf import feature_extraction, modeling, tokenization

    tokenizer = tokenization.FullTokenizer(source.vocab_file, source.do_lower_case,
                                           FLAGS.control_chars)
    encoder_factory = cli.hub_encoder_factory(FLAGS)
    if encoder_factory:
        encoder = encoder_factory()
    else:
        encoder = modeling.BertEncoder(source.config)
        source.restore(encoder)
    count = feature_extraction.extract(
        encoder, tokenizer, FLAGS.input_file, FLAGS.output_file, layers,
        FLAGS.max_seq_length, FLAGS.batch_size)
    logging.info("Wrote features of %d lines to %s", count, FLAGS.output_file)
    print(f"Wrote features of {count} lines to {FLAGS.output_file}")


if __name__ == "__main__":
    cli.run(main)
