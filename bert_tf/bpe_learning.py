"""Learn GPT-2 byte-level BPE merges (`encoder.json` + `vocab.bpe`) from a corpus.

The corpus is cut into GPT-2's pre-tokens (`bpe.pretokenize`) and only
their counts are kept, so memory grows with the number of distinct
pre-tokens, not with the corpus; `max_pretokens` bounds it outright.
Learning then starts from the 256 byte tokens and repeatedly merges the
most frequent adjacent pair of tokens inside pre-tokens, weighted by the
pre-tokens' counts, until the vocabulary is full or no pair occurs
`min_frequency` times.

Ties and bookkeeping follow Hugging Face `tokenizers`' BPE trainer, so
that `ByteLevelBPETrainer` on the same lines learns the same merges: among
pairs of equal count the one with the smaller (left id, right id) wins,
ids being the byte tokens in code point order and then the merged tokens
in order of creation; its default `min_frequency` is 2, as here. The one
difference is where `<|endoftext|>` goes: last, as in GPT-2's vocabulary,
where that trainer puts special tokens first.

    >>> lines = ["low lower lowest", "newer wider"] * 3
    >>> tokenizer = learn_bpe(lines, vocab_size=262)
    >>> tokenizer.merges[:3], tokenizer.eot_id
    ([('e', 'r'), ('l', 'o'), ('lo', 'w')], 261)
    >>> tokenizer.tokenize("lower")
    ['low', 'er']

`learn_vocab.py` calls it as

    tokenizer = bpe_learning.learn_bpe(lines, vocab_size)
    tokenizer.save(output_dir)  # encoder.json, vocab.bpe
"""

from __future__ import annotations

import collections
import heapq
import itertools
from collections.abc import Iterable, Sequence

from bert_tf import bpe


def count_pretokens(lines: Iterable[str], max_pretokens: int | None = None) -> collections.Counter:
    """Counts GPT-2's pre-tokens of `lines` (each as its byte characters).

    With `max_pretokens`, whenever more distinct pre-tokens than that are
    held, those seen only once so far are dropped (then twice, ...): counts
    of rare pre-tokens become approximate, frequent ones stay exact enough
    to learn from.
    """
    counts = collections.Counter()
    floor = 1
    for line in lines:
        counts.update(bpe.pretokenize(line))
        if max_pretokens is not None and len(counts) > max_pretokens:
            while len(counts) > max_pretokens // 2:
                for token in [t for t, c in counts.items() if c <= floor]:
                    del counts[token]
                floor += 1
    byte_counts = collections.Counter()
    for pretoken, count in counts.items():
        byte_counts[bpe.to_byte_chars(pretoken)] += count
    return byte_counts


def _merge_word(word: list[int], a: int, b: int, new: int):
    """Merges pair (a, b) left to right in `word`, in place; yields the
    changed neighbouring pairs as (pair, +1 or -1)."""
    i = 0
    while i < len(word) - 1:
        if word[i] == a and word[i + 1] == b:
            if i > 0:
                yield (word[i - 1], a), -1
                yield (word[i - 1], new), 1
            word[i:i + 2] = [new]
            if i < len(word) - 1:
                yield (b, word[i + 1]), -1
                yield (new, word[i + 1]), 1
        i += 1


def learn_merges(pretoken_counts: dict[str, int], vocab_size: int,
                 min_frequency: int = 2, num_special: int = 1) -> list[tuple[str, str]]:
    """The merges, best first, that fill `vocab_size` tokens (256 bytes and
    `num_special` special tokens included)."""
    tokens = bpe.base_tokens()
    ids = {t: i for i, t in enumerate(tokens)}
    words = [[ids[c] for c in word] for word in pretoken_counts]
    counts = list(pretoken_counts.values())
    pair_counts = collections.Counter()
    where = collections.defaultdict(set)
    for index, (word, count) in enumerate(zip(words, counts)):
        for pair in zip(word, word[1:]):
            pair_counts[pair] += count
            where[pair].add(index)
    # A max-heap of (count, pair) with the smaller pair first on ties. Each
    # entry carries the words it was queued for; counts go stale and are
    # refreshed when popped.
    heap = [(-pair_counts[p], p, next_id) for next_id, p in enumerate(where)]
    positions = dict(enumerate(where.values()))
    entry_ids = itertools.count(len(positions))
    heapq.heapify(heap)
    merges = []
    while len(ids) + num_special < vocab_size and heap:
        negative, pair, entry = heapq.heappop(heap)
        if -negative != pair_counts[pair]:
            heapq.heappush(heap, (-pair_counts[pair], pair, entry))
            continue
        if pair_counts[pair] < 1 or pair_counts[pair] < min_frequency:
            break
        a, b = pair
        merged = tokens[a] + tokens[b]
        new = ids.get(merged)
        if new is None:
            new = ids[merged] = len(tokens)
            tokens.append(merged)
        merges.append((tokens[a], tokens[b]))
        gained = collections.defaultdict(set)
        for index in positions.pop(entry):
            for changed, sign in _merge_word(words[index], a, b, new):
                pair_counts[changed] += sign * counts[index]
                if sign > 0:
                    gained[changed].add(index)
        for changed, where_now in gained.items():
            if pair_counts[changed] > 0:
                entry = next(entry_ids)
                positions[entry] = where_now
                heapq.heappush(heap, (-pair_counts[changed], changed, entry))
    return merges


def learn_bpe(lines: Iterable[str], vocab_size: int, min_frequency: int = 2,
              special_tokens: Sequence[str] = (bpe.END_OF_TEXT,),
              max_pretokens: int | None = None) -> bpe.ByteLevelBPE:
    """A GPT-2 tokenizer learned from `lines`: at most `vocab_size` tokens,
    the 256 bytes first and `special_tokens` last."""
    if vocab_size < 256 + len(special_tokens):
        raise ValueError(f"vocab_size={vocab_size} is too small: the 256 byte tokens and "
                         f"{len(special_tokens)} special token(s) need {256 + len(special_tokens)}")
    counts = count_pretokens(lines, max_pretokens)
    if not counts:
        raise ValueError("the corpus has no text to learn from")
    merges = learn_merges(counts, vocab_size, min_frequency, len(special_tokens))
    return bpe.ByteLevelBPE.from_merges(merges, special_tokens)
