"""Creates causal-LM TFRecords (token windows) from plain text.

Input: one sentence per line, a blank line between documents. Each record
holds `input_ids`, n_ctx + 1 tokens: inputs are the first n_ctx, targets
the last n_ctx (see bert_tf/lm_data.py).

    python create_lm_data.py --input_file=corpus/*.txt --output_file=out/train.tfrecord \
      --vocab_dir=gpt2_vocab --n_ctx=1024 --num_workers=2
    python create_lm_data.py --input_file=zh/*.txt --output_file=out/zh.tfrecord \
      --vocab_file=bert_chinese_vocab.txt --n_ctx=512
"""

import sys

from absl import app, flags

from bert_tf import lm_data

FLAGS = flags.FLAGS

flags.DEFINE_string("input_file", None, "Input text file(s): comma-separated globs.")
flags.DEFINE_string("output_file", None, "Output TFRecord file (sharded per worker when "
                    "--num_workers > 1).")
flags.DEFINE_string("vocab_dir", None, "GPT-2 byte-level BPE: a folder with encoder.json + "
                    "vocab.bpe (or vocab.json + merges.txt).")
flags.DEFINE_string("vocab_file", None, "A BERT vocab.txt: GPT2-Chinese's WordPiece "
                    "tokenization and document markers.")
flags.DEFINE_bool("do_lower_case", True, "With --vocab_file: lower-case and strip accents.")
flags.DEFINE_integer("n_ctx", 1024, "Tokens the model reads per window (records hold n_ctx + 1).")
flags.DEFINE_integer("stride", None, "Tokens between window starts; default n_ctx (no overlap).")
flags.DEFINE_integer("num_workers", 1, "Worker processes (each takes every num_workers-th "
                     "document and writes its own shard).")


def main(_):
    config = lm_data.LMDataConfig(n_ctx=FLAGS.n_ctx, stride=FLAGS.stride,
                                  vocab_dir=FLAGS.vocab_dir, vocab_file=FLAGS.vocab_file,
                                  do_lower_case=FLAGS.do_lower_case)
    try:
        stats = lm_data.create_lm_data(FLAGS.input_file, FLAGS.output_file, config,
                                       num_workers=FLAGS.num_workers)
    except (ValueError, FileNotFoundError) as error:
        sys.exit(f"create_lm_data.py: error: {error}")
    seconds = max(s.seconds for s in stats)
    tokens = sum(s.tokens for s in stats)
    print(f"Wrote {sum(s.windows for s in stats)} windows of {config.n_ctx} + 1 tokens "
          f"(stride {config.step}) from {sum(s.documents for s in stats)} documents, "
          f"{tokens} tokens ({sum(s.tail_tokens for s in stats)} in no window) in "
          f"{seconds:.1f} s ({tokens / max(seconds, 1e-9):.0f} tokens/s) to:", flush=True)
    for path in lm_data.output_paths(FLAGS.output_file, FLAGS.num_workers):
        print(f"  {path}")


if __name__ == "__main__":
    flags.mark_flags_as_required(["input_file", "output_file"])
    app.run(main)
