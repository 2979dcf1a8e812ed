"""Learn a WordPiece vocabulary that FullTokenizer can use directly.

Words are produced by `tokenization.BasicTokenizer` (Google's cleaning,
CJK splitting, lower-casing and accent stripping, punctuation splitting),
so the vocabulary is learned on exactly the words FullTokenizer will later
split. The piece selection itself is tensorflow-text's WordPiece learner
(the algorithm behind `bert_vocab_from_dataset`), given our word counts
instead of tensorflow-text's own, differently normalising, BasicTokenizer.
Control characters follow the same rule as FullTokenizer (`control_chars`,
Google's by default): under Google's rule, private-use and unassigned
characters of the corpus are kept and so get tokens of their own.

On top of the learner, every character of the corpus stays representable:
each character that starts a word is a token, and each character that
occurs inside a word is a `##` token. Single-character tokens that no word
can reach (such as `##中`: ideographs are always words of their own) are
dropped, so small vocabularies are not wasted on them.

    >>> import os, tempfile
    >>> corpus = ["low lower lowest", "new newer newest", "wide wider widest"] * 5
    >>> tokens = learn_vocab(corpus, vocab_size=60)
    >>> tokens[:5], "l" in tokens, "##t" in tokens
    (['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'], True, True)
    >>> write_vocab(tokens, os.path.join(tempfile.mkdtemp(), "vocab.txt"))
"""

from __future__ import annotations

import collections
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence

from bert_tf import text_files, tokenization

DEFAULT_RESERVED_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
JOINER = "##"


def read_corpus_lines(input_patterns: str | Sequence[str]) -> Iterator[str]:
    """Yields the stripped non-empty lines of files matching comma-separated globs."""
    for path in text_files.expand_globs(input_patterns):
        for _, line in text_files.read_lines(path):
            if line.strip():
                yield line.strip()


def count_words(lines: Iterable[str], do_lower_case: bool = True,
                control_chars: str = tokenization.DEFAULT_CONTROL_CHARS) -> collections.Counter:
    """Counts the words that Google's BasicTokenizer makes of `lines`."""
    basic = tokenization.BasicTokenizer(do_lower_case=do_lower_case,
                                        control_chars=control_chars)
    chunk_counts = collections.Counter()
    for line in lines:
        chunk_counts.update(tokenization.split_chunks(line))
    word_counts = collections.Counter()
    for chunk, count in chunk_counts.items():
        for word in basic.tokenize(chunk):
            word_counts[word] += count
    return word_counts


def character_tokens(word_counts: Iterable[str]) -> set[str]:
    """The single-character tokens that make every word representable."""
    tokens = set()
    for word in word_counts:
        tokens.add(word[0])
        tokens.update(JOINER + char for char in word[1:])
    return tokens


def learn_vocab(lines: Iterable[str], vocab_size: int, do_lower_case: bool = True,
                reserved_tokens: Sequence[str] = DEFAULT_RESERVED_TOKENS,
                num_unused: int = 0,
                control_chars: str = tokenization.DEFAULT_CONTROL_CHARS,
                **learn_params) -> list[str]:
    """Learns at most `vocab_size` tokens, reserved and unused tokens first.

    Words are those of FullTokenizer(vocab, do_lower_case, control_chars).

    The learner bisects a count threshold, so the size lands a little below
    `vocab_size` (within 5% when the corpus is large enough to allow it).

    `learn_params` go to tensorflow-text's `wordpiece_tokenizer_learner_lib.learn`
    (e.g. `max_token_length`, `num_iterations`).
    """
    # Imported here: it pulls in TensorFlow, which counting does not need.
    from tensorflow_text.tools.wordpiece_vocab import (
        wordpiece_tokenizer_learner_lib as learner,
    )

    reserved = list(reserved_tokens) + [f"[unused{i}]" for i in range(num_unused)]
    if len(set(reserved)) != len(reserved):
        raise ValueError(f"reserved tokens repeat: {reserved}")
    word_counts = count_words(lines, do_lower_case, control_chars)
    if not word_counts:
        raise ValueError("the corpus has no words to learn from")
    required = character_tokens(word_counts)
    floor = len(reserved) + len(required)
    if vocab_size < floor:
        raise ValueError(
            f"vocab_size={vocab_size} is too small: {len(reserved)} reserved tokens "
            f"and {len(required)} single-character tokens need {floor}")
    alphabet_size = len({char for word in word_counts for char in word})
    learn_params.setdefault("max_unique_chars", alphabet_size)
    # The learner adds "c" and "##c" for every character; ask for the
    # unreachable ones on top so that dropping them leaves the right size.
    target = vocab_size + 2 * alphabet_size - len(required)
    learn_params.setdefault("upper_thresh", _threshold_upper_bound(word_counts, vocab_size))
    learn_params.setdefault("lower_thresh", 1)
    learned = learner.learn(word_counts, target, reserved, joiner=JOINER,
                            include_joiner_token=True, **learn_params)
    tokens = _reachable(learned[len(reserved):], required)
    tokens += sorted(required.difference(tokens))
    excess = len(reserved) + len(tokens) - vocab_size
    if excess > 0:
        tokens = _drop_rarest_pieces(tokens, excess, required)
    return reserved + tokens


def _threshold_upper_bound(word_counts: collections.Counter, vocab_size: int) -> int:
    """A starting upper bound for the learner's count-threshold bisection.

    The learner learns a whole vocabulary per bisection step; starting from
    the count of the most frequent word wastes most steps on thresholds that
    keep only a few hundred tokens. A tenth of the target in whole words
    alone is well below the target, so the threshold lies below this bound
    (if not, the learner's result is larger and gets trimmed).
    """
    top = word_counts.most_common(max(1, vocab_size // 10))
    return top[-1][1] + 1


def _reachable(tokens: list[str], required: set[str]) -> list[str]:
    """Drops the single-character tokens that no word of the corpus uses."""
    return [t for t in tokens if len(t.removeprefix(JOINER)) > 1 or t in required]


def _drop_rarest_pieces(tokens: list[str], count: int, keep: set[str]) -> list[str]:
    """Removes the last `count` multi-character tokens (the learner lists
    them by decreasing frequency), never a required one."""
    dropped = set()
    for token in reversed(tokens):
        if len(dropped) == count:
            break
        if token not in keep:
            dropped.add(token)
    return [t for t in tokens if t not in dropped]


def write_vocab(tokens: Sequence[str], output_file: str | os.PathLike) -> None:
    """Writes one token per line, atomically, after checking the tokens
    survive load_vocab's whitespace stripping unchanged and unique."""
    seen = set()
    for index, token in enumerate(tokens):
        if not token or token != token.strip() or "\n" in token:
            raise ValueError(f"token {index} ({token!r}) cannot be stored in a vocab file")
        if token in seen:
            raise ValueError(f"token {token!r} appears twice")
        seen.add(token)
    output_file = os.fspath(output_file)
    directory = os.path.dirname(os.path.abspath(output_file))
    handle, temp_path = tempfile.mkstemp(dir=directory, prefix=".vocab-", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as writer:
            writer.writelines(token + "\n" for token in tokens)
        os.replace(temp_path, output_file)
    except BaseException:
        if os.path.exists(temp_path):
            os.remove(temp_path)
        raise
