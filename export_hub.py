"""Exports a BERT checkpoint as TF-Hub SavedModels: a preprocessor and an encoder.

Any checkpoint the other scripts load works: a Google release folder or
checkpoint prefix, one of our output folders, a Hugging Face folder, or a
known model name. The encoder gets an `.mlm` head when the checkpoint has
Google's masked-LM weights (cls/predictions).

    python export_hub.py --init_checkpoint=minilm-l6-h384-uncased \
        --export_dir=/tmp/minilm_hub
    # then: hub.load("/tmp/minilm_hub/preprocessor"), hub.load("/tmp/minilm_hub/encoder")
"""

from absl import flags

from bert_tf import cli

FLAGS = flags.FLAGS

flags.DEFINE_string("export_dir", None, "Folder to write preprocessor/ and encoder/ into.")
cli.define_model_flags()
cli.define_control_chars_flag()


def main(_):
    if not FLAGS.export_dir:
        raise ValueError("--export_dir is required")
    source = cli.pretrained_from_flags(FLAGS)

    from bert_tf import hub

    result = hub.export(source, FLAGS.export_dir, seq_length=FLAGS.max_seq_length,
                        control_chars=FLAGS.control_chars)
    print(f"Exported {FLAGS.export_dir}/preprocessor and {FLAGS.export_dir}/encoder"
          + (" (with .mlm)" if result["mlm"] else ""))


if __name__ == "__main__":
    cli.run(main)
