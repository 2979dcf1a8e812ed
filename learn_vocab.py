"""Learns a WordPiece vocabulary (vocab.txt) from plain-text corpora.

Text is split into words exactly as FullTokenizer splits it, so the result
works with `--vocab_file` and the same `--do_lower_case` everywhere.

    python learn_vocab.py --input_file='corpora/en/*.txt' \
        --output_file=vocab.txt --vocab_size=30522 --num_unused=994
"""

from absl import flags, logging

from bert_tf import cli

FLAGS = flags.FLAGS

flags.DEFINE_string("input_file", None,
                    "Input text files: comma-separated paths or globs, one sentence per line.")
flags.DEFINE_string("output_file", None, "Where to write the vocabulary, one token per line.")
flags.DEFINE_integer("vocab_size", 30522, "Maximum number of tokens, reserved ones included.")
flags.DEFINE_bool("do_lower_case", True,
                  "Lower-case and strip accents before learning (uncased models).")
flags.DEFINE_list("reserved_tokens", ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
                  "Tokens placed first, in this order ([PAD] gets id 0).")
flags.DEFINE_integer("num_unused", 0,
                     "Placeholder tokens [unused0]... after the reserved ones, "
                     "for words added later without resizing the model.")
cli.define_control_chars_flag()
flags.mark_flags_as_required(["input_file", "output_file"])


def main(_):
    from bert_tf import vocab_learning

    lines = vocab_learning.read_corpus_lines(FLAGS.input_file)
    tokens = vocab_learning.learn_vocab(
        lines, FLAGS.vocab_size, do_lower_case=FLAGS.do_lower_case,
        reserved_tokens=FLAGS.reserved_tokens, num_unused=FLAGS.num_unused,
        control_chars=FLAGS.control_chars)
    vocab_learning.write_vocab(tokens, FLAGS.output_file)
    logging.info("Wrote %d tokens to %s", len(tokens), FLAGS.output_file)
    print(f"Wrote {len(tokens)} tokens to {FLAGS.output_file}")


if __name__ == "__main__":
    cli.run(main)
