"""Learns a vocabulary from plain-text corpora: BERT WordPiece or GPT-2 BPE.

--vocab_type=wordpiece (the default) writes a vocab.txt: text is split into
words exactly as FullTokenizer splits it, so the result works with
`--vocab_file` and the same `--do_lower_case` everywhere.

--vocab_type=bpe writes GPT-2's byte-level BPE files, encoder.json and
vocab.bpe, into the folder --output_file (created if needed; other files
in it are left alone). The merges are those Hugging Face tokenizers'
ByteLevelBPETrainer learns from the same lines (bert_tf/bpe_learning.py),
with <|endoftext|> as the last token, as in GPT-2's vocabulary.

    python learn_vocab.py --input_file='corpora/en/*.txt' \\
        --output_file=vocab.txt --vocab_size=30522 --num_unused=994
    python learn_vocab.py --vocab_type=bpe --input_file='corpora/en/*.txt' \\
        --output_file=my_gpt2 --vocab_size=50257 --min_frequency=2
"""

import os

from absl import flags, logging

from bert_tf import cli

FLAGS = flags.FLAGS

# --vocab_size when not given, per --vocab_type: BERT's and GPT-2's sizes.
DEFAULT_VOCAB_SIZE = {"wordpiece": 30522, "bpe": 50257}
WORDPIECE_ONLY = ("do_lower_case", "reserved_tokens", "num_unused", "control_chars")

flags.DEFINE_enum("vocab_type", "wordpiece", ["wordpiece", "bpe"],
                  "wordpiece: a BERT vocab.txt; bpe: GPT-2's encoder.json + vocab.bpe.")
flags.DEFINE_string("input_file", None,
                    "Input text files: comma-separated paths or globs, one sentence per line.")
flags.DEFINE_string("output_file", None,
                    "wordpiece: the vocabulary file to write, one token per line. "
                    "bpe: the folder to write encoder.json and vocab.bpe into.")
flags.DEFINE_integer("vocab_size", None,
                     "Maximum number of tokens, reserved ones included "
                     "(default 30522 for wordpiece, 50257 for bpe: 256 bytes, merges, "
                     "<|endoftext|>).")
flags.DEFINE_integer("min_frequency", 2,
                     "bpe: stop merging when the most frequent pair occurs fewer times.")
flags.DEFINE_bool("do_lower_case", True,
                  "Lower-case and strip accents before learning (uncased models).")
flags.DEFINE_list("reserved_tokens", ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
                  "Tokens placed first, in this order ([PAD] gets id 0).")
flags.DEFINE_integer("num_unused", 0,
                     "Placeholder tokens [unused0]... after the reserved ones, "
                     "for words added later without resizing the model.")
cli.define_control_chars_flag()
flags.mark_flags_as_required(["input_file", "output_file"])


def learn_wordpiece(lines, vocab_size):
    from bert_tf import vocab_learning

    tokens = vocab_learning.learn_vocab(
        lines, vocab_size, do_lower_case=FLAGS.do_lower_case,
        reserved_tokens=FLAGS.reserved_tokens, num_unused=FLAGS.num_unused,
        control_chars=FLAGS.control_chars)
    vocab_learning.write_vocab(tokens, FLAGS.output_file)
    return f"Wrote {len(tokens)} tokens to {FLAGS.output_file}"


def learn_bpe(lines, vocab_size):
    from bert_tf import bpe, bpe_learning

    # Byte-level BPE has no case folding, reserved or unused tokens; a flag
    # for them would be silently ignored, so it is refused instead.
    given = [name for name in WORDPIECE_ONLY if FLAGS[name].present]
    if given:
        raise ValueError(f"--{given[0]} applies to --vocab_type=wordpiece only")
    if FLAGS.min_frequency < 1:
        raise ValueError(f"--min_frequency must be >= 1, got {FLAGS.min_frequency}")
    folder = FLAGS.output_file
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise NotADirectoryError(f"--output_file={folder} is a file; with --vocab_type=bpe it "
                                 f"is the folder for {bpe.ENCODER_FILE} and {bpe.MERGES_FILE}")
    tokenizer = bpe_learning.learn_bpe(lines, vocab_size, min_frequency=FLAGS.min_frequency)
    os.makedirs(folder, exist_ok=True)
    tokenizer.save(folder)
    return (f"Wrote {tokenizer.vocab_size} tokens ({len(tokenizer.merges)} merges) to "
            f"{os.path.join(folder, bpe.ENCODER_FILE)} and {os.path.join(folder, bpe.MERGES_FILE)}")


def main(_):
    from bert_tf import vocab_learning

    if FLAGS.vocab_type == "wordpiece" and FLAGS["min_frequency"].present:
        raise ValueError("--min_frequency applies to --vocab_type=bpe only")
    vocab_size = (DEFAULT_VOCAB_SIZE[FLAGS.vocab_type] if FLAGS.vocab_size is None
                  else FLAGS.vocab_size)
    lines = vocab_learning.read_corpus_lines(FLAGS.input_file)
    learn = learn_bpe if FLAGS.vocab_type == "bpe" else learn_wordpiece
    message = learn(lines, vocab_size)
    logging.info(message)
    print(message)


if __name__ == "__main__":
    cli.run(main)
