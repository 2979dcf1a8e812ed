"""Creates masked-LM / next-sentence pretraining TFRecords from plain text.

Input: one sentence per line, a blank line between documents. Flags keep the
names and defaults of Google's script; the rest are extensions.

    python create_pretraining_data.py \
      --input_file=corpus/*.txt --output_file=/tmp/pretrain.tfrecord \
      --vocab_file=vocab.txt --num_workers=2
"""

import sys

from absl import app, flags, logging

from bert_tf import cli, pretraining_data

FLAGS = flags.FLAGS

flags.DEFINE_string("input_file", None, "Input text file(s): comma-separated globs.")
flags.DEFINE_string("output_file", None, "Output TFRecord file(s), comma-separated.")
flags.DEFINE_string("vocab_file", None, "The WordPiece vocabulary of the BERT model.")
flags.DEFINE_bool("do_lower_case", True,
                  "Lower-case and strip accents (True for uncased models).")
flags.DEFINE_bool("do_whole_word_mask", False,
                  "Mask all the tokens of a word together instead of single WordPieces.")
flags.DEFINE_integer("max_seq_length", 128, "Maximum sequence length in tokens.")
cli.define_control_chars_flag()
flags.DEFINE_integer("max_predictions_per_seq", 20,
                     "Maximum number of masked LM predictions per sequence.")
flags.DEFINE_integer("random_seed", 12345, "Random seed for data generation.")
flags.DEFINE_integer("dupe_factor", 10,
                     "Number of times to duplicate the input data (with different masks).")
flags.DEFINE_float("masked_lm_prob", 0.15, "Masked LM probability.")
flags.DEFINE_float("short_seq_prob", 0.1,
                   "Probability of creating sequences shorter than the maximum length.")

flags.DEFINE_integer("num_workers", 1,
                     "Worker processes; output is deterministic for a seed and worker count.")
flags.DEFINE_enum("word_segmenter", "none", list(pretraining_data.WORD_SEGMENTERS),
                  "Where whole words come from: 'none' groups ## pieces (Google's rule, "
                  "useless for Chinese), 'presegmented' reads words separated by spaces "
                  "(the spaces are removed before tokenization), 'jieba' segments Chinese.")
flags.DEFINE_string("masking_lexicon", None,
                    "File of phrases, one per line, each masked as one unit where it occurs.")
flags.DEFINE_integer("max_ngram", 1,
                     "Mask spans of up to this many units (words with --do_whole_word_mask), "
                     "span length n drawn with probability proportional to 1/n.")
flags.DEFINE_bool("dynamic_masking", False,
                  "Write unmasked records for masking in the input pipeline at every "
                  "epoch; their word_starts feature marks whole words (and lexicon "
                  "phrases) whatever --do_whole_word_mask says.")
flags.DEFINE_bool("fair_next_sentence", True,
                  "Keep the next-sentence coin fair for a chunk of a single sentence: "
                  "a true pair then splits that sentence at a word boundary. Google's "
                  "script always pairs such a chunk with a random sentence, which puts "
                  "~54% of labels at 'random' on real text; --nofair_next_sentence "
                  "reproduces that rule.")
flags.DEFINE_integer("documents_per_chunk", 500,
                     "Documents shuffled together per worker; random next segments come "
                     "from the same chunk. Bounds memory.")


def main(_):
    config = pretraining_data.PretrainingDataConfig(
        max_seq_length=FLAGS.max_seq_length,
        max_predictions_per_seq=FLAGS.max_predictions_per_seq,
        masked_lm_prob=FLAGS.masked_lm_prob,
        short_seq_prob=FLAGS.short_seq_prob,
        dupe_factor=FLAGS.dupe_factor,
        random_seed=FLAGS.random_seed,
        do_lower_case=FLAGS.do_lower_case,
        do_whole_word_mask=FLAGS.do_whole_word_mask,
        word_segmenter=FLAGS.word_segmenter,
        masking_lexicon=FLAGS.masking_lexicon,
        max_ngram=FLAGS.max_ngram,
        dynamic_masking=FLAGS.dynamic_masking,
        documents_per_chunk=FLAGS.documents_per_chunk,
        fair_next_sentence=FLAGS.fair_next_sentence,
        control_chars=FLAGS.control_chars,
    )
    outputs = FLAGS.output_file.split(",")
    try:
        stats = pretraining_data.create_pretraining_data(
            FLAGS.input_file.split(","), outputs, FLAGS.vocab_file, config,
            num_workers=FLAGS.num_workers)
    except (pretraining_data.PretrainingDataError, FileNotFoundError) as error:
        sys.exit(f"create_pretraining_data.py: error: {error}")
    seconds = max(s.seconds for s in stats)
    instances = sum(s.instances for s in stats)
    logging.info("Wrote %d instances from %d documents in %.1f s (%.0f instances/s) to:",
                 instances, sum(s.documents for s in stats), seconds,
                 instances / max(seconds, 1e-9))
    for path in pretraining_data.output_paths(outputs, FLAGS.num_workers):
        logging.info("  %s", path)


if __name__ == "__main__":
    flags.mark_flags_as_required(["input_file", "output_file", "vocab_file"])
    app.run(main)
