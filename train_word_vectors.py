"""Trains word2vec skip-gram vectors on a corpus and evaluates them.

The corpus is the project's text format (one sentence per line, a blank line
between documents), lower-cased and split into words as
`bert_tf.word_vectors.tokenize` documents. The flags of the model are
word2vec's and gensim's (--size, --window, --negative, --min_count,
--sample, --epochs, --alpha, --min_alpha). The vectors go to --output in
word2vec's text format (--binary: its binary format); gensim's
`KeyedVectors.load_word2vec_format` reads both. A killed run resumes from
its folder (--output_dir, default OUTPUT.run) when the same command is run
again.

    python train_word_vectors.py --input_file='corpus/*.txt' --output=vectors.txt \
        --size=100 --window=5 --negative=5 --min_count=5 --epochs=5 \
        --eval_similarity=wordsim/EN-WS-353-ALL.txt,wordsim/EN-SIMLEX-999.txt \
        --eval_analogies=wordsim/questions-words.txt

With --eval_similarity / --eval_analogies (also usable alone with
--vectors=FILE, to evaluate vectors from anywhere), eval_results.txt in the
run folder holds each file's Spearman and out-of-vocabulary pairs, and the
analogy accuracy (3CosAdd among the --restrict_vocab most frequent words),
per section and in total, with the answerable questions counted.
"""

import os

from absl import flags

from bert_tf import cli, skipgram

FLAGS = flags.FLAGS

flags.DEFINE_string("input_file", None, "Corpus files (comma-separated globs).")
flags.DEFINE_string("output", None, "Where the vectors go (word2vec text format, or binary with "
                    "--binary).")
flags.DEFINE_bool("binary", False, "Write word2vec's binary format instead of text.")
flags.DEFINE_string("output_dir", None, "The run folder: vocabulary, checkpoints, TensorBoard "
                    "events, eval_results.txt (default: OUTPUT.run).")
flags.DEFINE_list("eval_similarity", [], "Word-similarity files ('word1 word2 score' lines).")
flags.DEFINE_string("eval_analogies", None, "Analogy questions (questions-words.txt format).")
flags.DEFINE_integer("restrict_vocab", 30000, "Analogies search the answer among this many most "
                     "frequent words; questions with other words are not answerable.")
flags.DEFINE_string("vectors", None, "Only evaluate these vectors (word2vec text or binary), "
                    "without training.")
skipgram.define_flags()
cli.define_tpu_flags()
cli.define_training_flags()


def main(_):
    from bert_tf import word_vectors

    if FLAGS.vectors:
        from bert_tf.vectors import Vectors

        if not (FLAGS.eval_similarity or FLAGS.eval_analogies):
            raise ValueError("--vectors needs --eval_similarity or --eval_analogies")
        word_vectors.evaluate_vectors(Vectors.load(FLAGS.vectors), FLAGS.eval_similarity,
                                      FLAGS.eval_analogies, FLAGS.restrict_vocab,
                                      FLAGS.output_dir)
        return
    for name in ("input_file", "output"):
        if not FLAGS[name].value:
            raise ValueError(f"--{name} is required")
    settings = word_vectors.WordVectorSettings(
        input_file=FLAGS.input_file, output=FLAGS.output, binary=FLAGS.binary,
        output_dir=FLAGS.output_dir, options=skipgram.options_from_flags(FLAGS),
        eval_similarity=FLAGS.eval_similarity, eval_analogies=FLAGS.eval_analogies,
        restrict_vocab=FLAGS.restrict_vocab,
        training=skipgram.training_options_from_flags(FLAGS))
    word_vectors.run_word_vectors(settings, cli.strategy_from_flags(FLAGS))


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    cli.run(main)
