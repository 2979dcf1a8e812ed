"""Word vectors from a text corpus: skip-gram on the project's corpus format.

The corpus is the pretraining format: UTF-8, one sentence per line, a blank
line between documents. Each non-blank line is one sequence (windows never
cross a line, as with gensim's LineSentence). `tokenize` lower-cases the
line and keeps its words: maximal runs of letters and digits, joined by
inner apostrophes or hyphens ("don't", "well-known", "1960s"); punctuation
and symbols are dropped. The corpus is read again on every pass, never held
in memory.

`run_word_vectors(settings)` is `train_word_vectors.py` as a library call:
train (resuming after a kill), write the vectors in word2vec text or binary
format, and evaluate them (`word_vector_eval`) into eval_results.txt.

>>> tokenize("The Fulton County's jury, in 1962, said `` well-known '' things.")
['the', 'fulton', "county's", 'jury', 'in', '1962', 'said', 'well-known', 'things']
"""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Iterator, Sequence

from bert_tf import skipgram, text_files, word_vector_eval
from bert_tf.trainer_config import TrainingOptions
from bert_tf.vectors import Vectors

_WORD = re.compile(r"[^\W_]+(?:['\u2019\-][^\W_]+)*")
EVAL_RESULTS = "eval_results.txt"


def tokenize(line: str) -> list[str]:
    """The words of a line, lower-cased (see the module docstring)."""
    return _WORD.findall(line.lower())


class CorpusError(text_files.LineError):
    """A malformed corpus line; the message starts with `file:line:`."""


def read_corpus(paths: Sequence[str]) -> Iterator[list[str]]:
    """The tokenized sentences of the files, in order, empty ones skipped.

    Refuses, by file:line, bytes that are not UTF-8 and NUL characters (a
    binary file given as a corpus).
    """
    for path in paths:
        for number, line in text_files.read_lines(path, error=CorpusError):
            if "\x00" in line:
                raise CorpusError(path, number, "a NUL character: not a text corpus")
            words = tokenize(line)
            if words:
                yield words


@dataclasses.dataclass
class WordVectorSettings:
    """Everything `train_word_vectors.py`'s flags say, as one value.

    output_dir holds the run (vocabulary, checkpoints, TensorBoard events,
    eval_results.txt); by default `output` + ".run".
    """

    input_file: str | Sequence[str]
    output: str
    options: skipgram.SkipGramOptions = dataclasses.field(default_factory=skipgram.SkipGramOptions)
    binary: bool = False
    output_dir: str | None = None
    eval_similarity: Sequence[str] = ()
    eval_analogies: str | None = None
    restrict_vocab: int = word_vector_eval.DEFAULT_RESTRICT_VOCAB
    training: TrainingOptions | None = None

    def run_dir(self) -> str:
        return self.output_dir or self.output + ".run"


def run_word_vectors(settings: WordVectorSettings, strategy=None) -> dict:
    """Trains (or resumes), writes `settings.output`, evaluates; returns the
    evaluation results (empty without evaluation files)."""
    files = text_files.expand_globs(settings.input_file, flag="--input_file")
    # Evaluation files are read first: a typo fails before hours of training.
    for path in list(settings.eval_similarity) + [settings.eval_analogies or ""]:
        if path and not os.path.isfile(path):
            raise FileNotFoundError(f"evaluation file not found: {path}")
    if not any(True for _ in read_corpus(files)):
        raise ValueError(f"--input_file: no words in {', '.join(files)}")
    vectors = skipgram.train_skipgram(lambda: read_corpus(files), settings.options,
                                      settings.run_dir(), training_options=settings.training,
                                      strategy=strategy)
    vectors.save(settings.output, binary=settings.binary)
    return evaluate_vectors(vectors, settings.eval_similarity, settings.eval_analogies,
                            settings.restrict_vocab, settings.run_dir())


def evaluate_vectors(vectors: Vectors, similarity_files: Sequence[str] = (),
                     analogy_file: str | None = None,
                     restrict_vocab: int = word_vector_eval.DEFAULT_RESTRICT_VOCAB,
                     output_dir: str | None = None) -> dict:
    """`word_vector_eval.evaluate`, written to output_dir/eval_results.txt and printed."""
    if not similarity_files and not analogy_file:
        return {}
    results = word_vector_eval.evaluate(vectors, similarity_files, analogy_file, restrict_vocab)
    if output_dir:
        text = text_files.write_eval_results(os.path.join(output_dir, EVAL_RESULTS), results)
    else:
        text = "".join(f"{k} = {v}\n" for k, v in sorted(results.items()))
    print("***** Eval results *****\n" + text, end="", flush=True)
    return results
