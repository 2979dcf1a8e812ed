"""Skip-gram with negative sampling: one engine for words, graph walks and sessions.

Mikolov et al.'s word2vec (skip-gram, negative sampling), as word2vec.c and
gensim implement it, on the shared trainer:

* a vocabulary of the items seen at least `min_count` times, most frequent
  first; rarer items are dropped from the sequences before windows are taken;
* frequent items subsampled: an occurrence of an item of count c is kept
  with probability (sqrt(c / t) + 1) * t / c, t = sample * (total count), the
  formula of word2vec.c and gensim;
* dynamic windows: each position draws its reach b uniformly from
  1..window, so a neighbour at distance d is used with probability
  (window - d + 1) / window;
* for each (context, centre) pair, `negatives` items drawn from the unigram
  distribution raised to `ns_exponent` (3/4) replace the centre; a draw
  equal to the centre is dropped, as in word2vec.c;
* optionally a global context per sequence (Airbnb's booked listing),
  paired with every item of the sequence, and groups (Airbnb's markets):
  an item's negatives are then drawn from its own group only;
* plain SGD per pair at a rate falling linearly from `learning_rate` to
  `min_learning_rate` over all passes (word2vec's schedule).

The pairs of a pass are generated in numpy, a chunk of sequences at a time
(never the whole corpus), shuffled within the chunk and fed in batches of
`batch_size` pairs through tf.data to `trainer.Trainer`, which brings
strategies, checkpoints, resume after a kill and TensorBoard. One update
adds up the per-pair SGD steps of its batch, as word2vec's threads do
without locks.

>>> import tempfile
>>> walks = lambda: [["a", "b", "c", "d"], ["c", "d", "a", "b"]] * 50
>>> options = SkipGramOptions(dim=8, window=2, min_count=1, epochs=2, batch_size=64,
...                           sample=0)
>>> vectors = train_skipgram(walks, options, tempfile.mkdtemp())
>>> sorted(vectors.words), vectors.matrix.shape
(['a', 'b', 'c', 'd'], (4, 8))
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np

from bert_tf import atomic_io
from bert_tf.trainer_config import TrainingOptions
from bert_tf.vectors import Vectors

#: Files a run leaves in its output_dir.
VOCAB_FILE = "vocab.tsv"
VECTORS_FILE = "vectors.txt"
TRAINING_DIR = "training"
RUN_FILE = "skipgram_run.json"

Sequences = Callable[[], Iterable[Sequence[str]]]


@dataclasses.dataclass
class SkipGramOptions:
    """What to learn; defaults are word2vec.c's and gensim's for skip-gram.

    batch_size: (context, centre) pairs per update, over all replicas and
      accumulated micro-batches.
    chunk_tokens: items read before a chunk's pairs are generated and
      shuffled; larger chunks mix pairs from further apart in a batch.
    max_vocab_size: keep only this many most frequent items (None: all).
    max_row_updates: a row of either table used n times in one batch moves
      by min(1, max_row_updates / n) times the sum of its n per-pair steps.
      word2vec takes those steps one after another, each seeing the last;
      summed at once they overshoot, and a frequent item's (or a small
      vocabulary's) rows can diverge as batches grow: on 2.2M words of
      English, 4,096 pairs per batch matched gensim, 16,384 diverged, and
      16,384 with a cap of 32 trained but scored lower. None (the default):
      plain sums, word2vec's steps. Training that diverges is an error.
    """

    dim: int = 100
    window: int = 5
    negatives: int = 5
    min_count: int = 5
    sample: float = 1e-3
    epochs: int = 5
    learning_rate: float = 0.025
    min_learning_rate: float = 1e-4
    ns_exponent: float = 0.75
    dynamic_window: bool = True
    seed: int = 1
    batch_size: int = 4096
    chunk_tokens: int = 100_000
    max_vocab_size: int | None = None
    max_row_updates: float | None = None

    def __post_init__(self):
        for name in ("dim", "window", "epochs", "batch_size", "chunk_tokens", "min_count"):
            if getattr(self, name) < 1:
                raise ValueError(f"SkipGramOptions.{name} must be >= 1, got {getattr(self, name)}")
        if self.negatives < 1:
            raise ValueError(f"SkipGramOptions.negatives must be >= 1, got {self.negatives}")
        if self.sample < 0:
            raise ValueError(f"SkipGramOptions.sample must be >= 0, got {self.sample}")


def default_training_options(**overrides) -> TrainingOptions:
    """The trainer settings skip-gram wants: SGD, no weight decay, no clipping
    (word2vec clips nothing), long step loops, and XLA, which fuses the
    gathers, dot products and scatters of a step (2-3x faster on CPU)."""
    values = dict(optimizer="sgd", weight_decay_rate=0.0, clip_norm=None, steps_per_loop=200,
                  save_checkpoints_steps=2000, log_steps=200, use_xla=True)
    values.update(overrides)
    return TrainingOptions(**values)


# ----------------------------------------------------------------------------
# Vocabulary
# ----------------------------------------------------------------------------

class Vocabulary:
    """Items with counts, most frequent first (ties: first seen first).

    >>> vocab = Vocabulary.build([["a", "b", "a"], ["c", "a", "b"]], min_count=2)
    >>> vocab.words, vocab.counts.tolist()
    (['a', 'b'], [3, 2])
    """

    def __init__(self, words: Sequence[str], counts: Sequence[int]):
        self.words = list(words)
        self.counts = np.asarray(counts, dtype=np.int64)
        self.index = {w: i for i, w in enumerate(self.words)}

    def __len__(self):
        return len(self.words)

    @classmethod
    def build(cls, sequences: Iterable[Sequence[str]], min_count: int = 5,
              max_size: int | None = None) -> "Vocabulary":
        counts: dict[str, int] = {}
        for sequence in sequences:
            for item in sequence:
                counts[item] = counts.get(item, 0) + 1
        # dicts keep insertion order, and sorted() is stable: ties stay in
        # order of first appearance.
        kept = sorted(((w, c) for w, c in counts.items() if c >= min_count),
                      key=lambda wc: -wc[1])
        if max_size is not None:
            kept = kept[:max_size]
        return cls([w for w, _ in kept], [c for _, c in kept])

    def keep_probabilities(self, sample: float) -> np.ndarray:
        """Probability of keeping one occurrence of each item when subsampling.

        word2vec.c and gensim: t = sample * (total count of the vocabulary's
        items), p = (sqrt(c / t) + 1) * t / c, capped at 1; sample=0 keeps all.
        (gensim reads sample >= 1 as t itself.)
        """
        counts = self.counts.astype(np.float64)
        if not sample:
            return np.ones_like(counts)
        threshold = sample * counts.sum() if sample < 1 else float(sample)
        return np.minimum(1.0, (np.sqrt(counts / threshold) + 1.0) * threshold / counts)

    def negative_distribution(self, exponent: float = 0.75) -> np.ndarray:
        """The noise distribution: count ** exponent, normalised."""
        weights = self.counts.astype(np.float64) ** exponent
        return weights / weights.sum()

    def save(self, path: str) -> None:
        atomic_io.write_text(path, "".join(f"{w}\t{c}\n" for w, c in zip(self.words, self.counts)))

    @classmethod
    def load(cls, path: str) -> "Vocabulary":
        words, counts = [], []
        with open(path, encoding="utf-8") as f:
            for line in f:
                word, count = line.rstrip("\n").split("\t")
                words.append(word)
                counts.append(int(count))
        return cls(words, counts)


# ----------------------------------------------------------------------------
# Negative sampling, optionally within groups
# ----------------------------------------------------------------------------

def alias_table(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Walker's alias method (Vose's construction): constant-time draws from
    a discrete distribution.

    Returns (accept, alias): draw j uniformly, keep it with probability
    accept[j], otherwise take alias[j]. Column j's mass is
    accept[j] / n plus, for every i with alias[i] == j, (1 - accept[i]) / n.

    >>> accept, alias = alias_table(np.array([1.0, 3.0]))
    >>> accept.tolist(), alias.tolist()
    ([0.5, 1.0], [1, 1])
    """
    weights = np.asarray(weights, np.float64)
    n = len(weights)
    scaled = weights * (n / weights.sum())
    accept = np.ones(n)
    alias = np.arange(n)
    small = [i for i in range(n) if scaled[i] < 1.0]
    large = [i for i in range(n) if scaled[i] >= 1.0]
    while small and large:
        s, l = small.pop(), large.pop()
        accept[s], alias[s] = scaled[s], l
        scaled[l] -= 1.0 - scaled[s]
        (small if scaled[l] < 1.0 else large).append(l)
    # What is left is 1 up to rounding.
    return accept, alias


class NegativeSampler:
    """Draws negatives from count ** exponent, within each item's group.

    Items are laid out group after group, each group with its own alias
    table (`alias_table`) over its own stretch, so a draw for an item of
    group g is one uniform position inside g's stretch and one coin: O(1)
    per negative, where word2vec's 1e8-entry table and gensim's binary
    search over cumulative weights give the same distribution. Without
    groups there is one stretch: the unigram ** 0.75 distribution.

    >>> sampler = NegativeSampler(np.array([4, 1, 1, 4]), groups=np.array([0, 1, 0, 1]))
    >>> draws = sampler.sample(np.array([0, 1] * 500), 3, np.random.default_rng(0))
    >>> sorted(set(draws[0::2].ravel().tolist())), sorted(set(draws[1::2].ravel().tolist()))
    ([0, 2], [1, 3])
    """

    def __init__(self, counts: np.ndarray, exponent: float = 0.75,
                 groups: np.ndarray | None = None):
        weights = np.asarray(counts, np.float64) ** exponent
        n = len(weights)
        groups = np.zeros(n, np.int64) if groups is None else np.asarray(groups, np.int64)
        # Stable: inside a group, items keep vocabulary (frequency) order.
        self.order = np.argsort(groups, kind="stable")
        sorted_groups = groups[self.order]
        starts = np.searchsorted(sorted_groups, sorted_groups, side="left")
        ends = np.searchsorted(sorted_groups, sorted_groups, side="right")
        self.accept = np.empty(n)
        self.alias = np.empty(n, np.int64)  # positions in `order`
        for start in np.unique(starts):
            end = ends[start]
            accept, alias = alias_table(weights[self.order[start:end]])
            self.accept[start:end], self.alias[start:end] = accept, alias + start
        # Each item's group stretch (first position, size), in vocabulary order.
        self._first = np.empty(n, np.int64)
        self._size = np.empty(n, np.int64)
        self._first[self.order], self._size[self.order] = starts, ends - starts

    def probabilities(self, item: int) -> np.ndarray:
        """P(negative = j) for each j, for a centre `item`, from the tables."""
        first, size = self._first[item], self._size[item]
        mass = np.zeros(len(self.order))
        positions = np.arange(first, first + size)
        np.add.at(mass, positions, self.accept[positions] / size)
        np.add.at(mass, self.alias[positions], (1.0 - self.accept[positions]) / size)
        probs = np.zeros(len(self.order))
        probs[self.order] = mass
        return probs

    def sample(self, centres: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
        """[len(centres), k] negatives, each from its centre's group."""
        shape = (len(centres), k)
        if self._size[0] == len(self.order):  # one group: no per-centre stretch
            first, size = 0, len(self.order)
        else:
            first, size = self._first[centres][:, None], self._size[centres][:, None]
        positions = first + (rng.random(shape) * size).astype(np.int64)
        positions = np.minimum(positions, first + size - 1)  # rounding at the edge
        positions = np.where(rng.random(shape) < self.accept[positions], positions,
                             self.alias[positions])
        return self.order[positions].astype(np.int32)


# ----------------------------------------------------------------------------
# Pairs
# ----------------------------------------------------------------------------

def window_pairs(ids: np.ndarray, sequence_ids: np.ndarray, window: int,
                 reach: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(context, centre) positions of every pair within `reach` of its centre.

    ids/sequence_ids: the (already subsampled) items of a chunk and the
    sequence each belongs to; pairs never cross sequences. reach[i] is the
    window of centre i (dynamic windows draw it from 1..window).

    >>> ctx, cen = window_pairs(np.arange(4), np.zeros(4, int), 1)
    >>> sorted(zip(ctx.tolist(), cen.tolist()))
    [(0, 1), (1, 0), (1, 2), (2, 1), (2, 3), (3, 2)]
    """
    n = len(ids)
    if reach is None:
        reach = np.full(n, window)
    contexts, centres = [], []
    for distance in range(1, window + 1):
        left = np.arange(n - distance)
        right = left + distance
        same = sequence_ids[left] == sequence_ids[right]
        # Centre on the left, context on the right, and the other way round.
        use = same & (reach[left] >= distance)
        contexts.append(right[use])
        centres.append(left[use])
        use = same & (reach[right] >= distance)
        contexts.append(left[use])
        centres.append(right[use])
    return np.concatenate(contexts), np.concatenate(centres)


@dataclasses.dataclass
class _Chunk:
    ids: np.ndarray  # int32 item ids, out-of-vocabulary items removed
    sequence_ids: np.ndarray  # the sequence (within the chunk) of each id
    extra: np.ndarray  # per sequence of the chunk: global context id or -1


class PairGenerator:
    """Turns passes over the sequences into shuffled batches of training pairs.

    Pass e uses random numbers seeded by (seed, e), chunk by chunk, so the
    stream of batches is the same on every run: the trainer resumes by
    skipping the batches it already used.
    """

    def __init__(self, sequences: Sequences, vocab: Vocabulary, options: SkipGramOptions,
                 global_context: Sequences | None = None, groups: np.ndarray | None = None):
        self.sequences = sequences
        self.global_context = global_context
        self.vocab = vocab
        self.options = options
        self.keep = vocab.keep_probabilities(options.sample)
        self.sampler = NegativeSampler(vocab.counts, options.ns_exponent, groups)

    def chunks(self) -> Iterator[_Chunk]:
        """One pass over the sequences, encoded, in chunks of ~chunk_tokens items."""
        index = self.vocab.index
        extras = self.global_context() if self.global_context is not None else None
        extras = iter(extras) if extras is not None else None
        ids, lengths, extra, size = [], [], [], 0
        for sequence in self.sequences():
            encoded = [i for i in (index.get(item, -1) for item in sequence) if i >= 0]
            if extras is not None:
                try:
                    booked = next(extras)
                except StopIteration:
                    raise ValueError("global_context yielded fewer entries than there are "
                                     "sequences") from None
                extra.append(index.get(booked, -1) if booked is not None else -1)
            else:
                extra.append(-1)
            ids.extend(encoded)
            lengths.append(len(encoded))
            size += len(encoded)
            if size >= self.options.chunk_tokens:
                yield _make_chunk(ids, lengths, extra)
                ids, lengths, extra, size = [], [], [], 0
        if lengths:
            yield _make_chunk(ids, lengths, extra)

    def chunk_pairs(self, chunk: _Chunk, rng: np.random.Generator):
        """(inputs, outputs) ids of one chunk's pairs, shuffled."""
        options = self.options
        keep = rng.random(len(chunk.ids)) < self.keep[chunk.ids]
        ids, sequence_ids = chunk.ids[keep], chunk.sequence_ids[keep]
        reach = (rng.integers(1, options.window + 1, len(ids)) if options.dynamic_window
                 else None)
        # word2vec.c's orientation: the context's input vector predicts the
        # centre (and its negatives) through the output vectors.
        contexts, centres = window_pairs(ids, sequence_ids, options.window, reach)
        inputs, outputs = [ids[contexts]], [ids[centres]]
        extra = chunk.extra[sequence_ids]
        use = (extra >= 0) & (extra != ids)
        if use.any():
            # The global context is predicted from every (kept) item of its
            # sequence, beside the window.
            inputs.append(ids[use])
            outputs.append(extra[use])
        inputs, outputs = np.concatenate(inputs), np.concatenate(outputs)
        order = rng.permutation(len(inputs))
        return inputs[order], outputs[order]

    def count_pairs(self, epoch: int = 0) -> tuple[int, int]:
        """(pairs, in-vocabulary items) of pass `epoch`, as training will see them."""
        pairs = items = 0
        for chunk_index, chunk in enumerate(self.chunks()):
            rng = _rng(self.options.seed, epoch, chunk_index)
            inputs, _ = self.chunk_pairs(chunk, rng)
            pairs += len(inputs)
            items += len(chunk.ids)
        return pairs, items

    def batches(self, batch_size: int, shard: int = 0, num_shards: int = 1):
        """Endless batches over passes 0, 1, 2, ...: dicts of inputs [b],
        outputs [b], negatives [b, k] (int32). Every num_shards-th batch from
        `shard` on."""
        k = self.options.negatives
        epoch, number = 0, 0
        pending_in, pending_out, pending = [], [], 0
        while True:
            produced = False
            for chunk_index, chunk in enumerate(self.chunks()):
                rng = _rng(self.options.seed, epoch, chunk_index)
                inputs, outputs = self.chunk_pairs(chunk, rng)
                produced = produced or len(inputs) > 0
                pending_in.append(inputs)
                pending_out.append(outputs)
                pending += len(inputs)
                if pending < batch_size:
                    continue
                inputs, outputs = np.concatenate(pending_in), np.concatenate(pending_out)
                whole = len(inputs) // batch_size * batch_size
                negatives = self.sampler.sample(outputs[:whole], k, rng)
                for start in range(0, whole, batch_size):
                    if number % num_shards == shard:
                        end = start + batch_size
                        yield {"inputs": inputs[start:end].astype(np.int32),
                               "outputs": outputs[start:end].astype(np.int32),
                               "negatives": negatives[start:end]}
                    number += 1
                pending_in, pending_out = [inputs[whole:]], [outputs[whole:]]
                pending = len(inputs) - whole
            if not produced:
                raise ValueError("the sequences give no training pairs (every sequence is "
                                 "shorter than two in-vocabulary items?)")
            epoch += 1


def _make_chunk(ids, lengths, extra) -> _Chunk:
    lengths = np.asarray(lengths, np.int64)
    return _Chunk(np.asarray(ids, np.int32),
                  np.repeat(np.arange(len(lengths)), lengths),
                  np.asarray(extra, np.int32))


def _rng(seed: int, epoch: int, chunk: int) -> np.random.Generator:
    return np.random.default_rng([seed, epoch, chunk])


# ----------------------------------------------------------------------------
# The model and the task
# ----------------------------------------------------------------------------

def _cap_row_updates(rows, ids, vocab_size: int, cap: float | None):
    """`rows` (gathered at `ids`) unchanged forward; backward, the gradient
    of each occurrence scaled by min(1, cap / occurrences of its id here).

    Counted with a dense segment sum rather than tf.unique, so that XLA
    compiles it (unique has a data-dependent shape).
    """
    import tensorflow as tf

    if cap is None:
        return rows

    @tf.custom_gradient
    def capped(x):
        def grad(upstream):
            flat = tf.reshape(ids, [-1])
            counts = tf.math.unsorted_segment_sum(tf.ones_like(flat, upstream.dtype), flat,
                                                  vocab_size)
            scale = tf.minimum(1.0, cap / tf.gather(counts, ids))
            return upstream * scale[..., None]

        return tf.identity(x), grad

    return capped(rows)


def _build_model(vocab_size: int, dim: int, seed: int, max_row_updates: float | None = None):
    import keras

    class SkipGramModel(keras.Model):
        """Input vectors (the embeddings kept) and output vectors (the
        classifier of negative sampling, word2vec's syn1neg)."""

        def __init__(self, vocab_size, dim, seed, max_row_updates=None, **kwargs):
            super().__init__(**kwargs)
            self.vocab_size, self.dim, self.seed = vocab_size, dim, seed
            self.max_row_updates = max_row_updates
            # word2vec.c: inputs uniform in [-0.5/dim, 0.5/dim), outputs zero.
            self.input_vectors = keras.layers.Embedding(
                vocab_size, dim, name="input_vectors",
                embeddings_initializer=keras.initializers.RandomUniform(-0.5 / dim, 0.5 / dim,
                                                                        seed=seed))
            self.output_vectors = keras.layers.Embedding(vocab_size, dim, name="output_vectors",
                                                         embeddings_initializer="zeros")

        def build(self, input_shape=None):
            self.input_vectors.build((None,))
            self.output_vectors.build((None,))
            self.built = True

        def call(self, batch):
            """Logits [b, 1 + k]: the true centre first, then the negatives."""
            from keras import ops

            cap, n = self.max_row_updates, self.vocab_size
            inputs = _cap_row_updates(self.input_vectors(batch["inputs"]), batch["inputs"], n, cap)
            targets = ops.concatenate([batch["outputs"][:, None], batch["negatives"]], axis=1)
            outputs = _cap_row_updates(self.output_vectors(targets), targets, n, cap)
            return ops.einsum("bd,bkd->bk", inputs, outputs)

        def get_config(self):
            return {**super().get_config(), "vocab_size": self.vocab_size, "dim": self.dim,
                    "seed": self.seed, "max_row_updates": self.max_row_updates}

    model = SkipGramModel(vocab_size, dim, seed, max_row_updates, name="skipgram")
    model.build()
    return model


class SkipGramTask:
    """Negative-sampling loss on batches of `PairGenerator.batches`.

    The loss of a pair is -log sigmoid(u_centre . v_context) minus the sum,
    over its negatives other than the centre, of log sigmoid(-u_neg . v_context).
    Each batch's share of the count is its pairs over the update's
    `batch_size`, so an update takes the sum over its pairs: every pair
    moves the vectors by the learning rate, as in word2vec.
    """

    def __init__(self, vocab_size: int, options: SkipGramOptions, items_per_pair: float = 1.0):
        self.vocab_size = vocab_size
        self.options = options
        self.items_per_pair = items_per_pair

    def build_model(self):
        return _build_model(self.vocab_size, self.options.dim, self.options.seed,
                            self.options.max_row_updates)

    def initialize(self, model) -> None:
        pass

    def loss_counts(self, batch):
        import tensorflow as tf

        pairs = tf.cast(tf.shape(batch["inputs"])[0], tf.float32)
        return {"skipgram": pairs / float(self.options.batch_size)}

    def forward(self, model, batch, training: bool):
        import tensorflow as tf

        from bert_tf import trainer

        logits = model(batch, training=training)
        positive, negative = logits[:, 0], logits[:, 1:]
        # A negative drawn equal to the centre is skipped (word2vec.c).
        mask = tf.cast(tf.not_equal(batch["negatives"], batch["outputs"][:, None]), logits.dtype)
        losses = tf.nn.softplus(-positive) + tf.reduce_sum(tf.nn.softplus(negative) * mask, 1)
        total = tf.reduce_sum(tf.cast(losses, tf.float32))
        pairs = tf.cast(tf.shape(positive)[0], tf.float32)
        return trainer.TaskOutputs(losses={"skipgram": total},
                                   metrics={"loss_per_pair": (total, pairs)})

    def summaries(self, totals) -> dict[str, float]:
        """Items (words) of the corpus consumed per second, word2vec's measure:
        pairs per second over the pairs each in-vocabulary item gives."""
        if not totals.training:
            return {}
        return {"items_per_second": totals.examples * self.items_per_pair
                / max(totals.seconds, 1e-9)}



# ----------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------

def train_skipgram(sequences: Sequences, options: SkipGramOptions, output_dir: str, *,
                   global_context: Sequences | None = None,
                   group_of: Mapping[str, object] | None = None,
                   training_options: TrainingOptions | None = None,
                   strategy=None) -> Vectors:
    """Learns item vectors from `sequences`; resumes from `output_dir`.

    sequences: a zero-argument callable returning a fresh iterable of
      sequences (lists of str), called once per pass, so input can stream.
    global_context: a callable like `sequences` whose iterable gives, aligned
      with the sequences, one item or None per sequence: an extra context of
      every item of that sequence.
    group_of: item -> group; an item's negatives come from its own group
      (items missing from it form one group of their own).
    output_dir: gets vocab.tsv, training/ (checkpoints, TensorBoard events)
      and vectors.txt (word2vec text); run the same call again after a kill
      to resume.
    Returns the input vectors of the vocabulary, most frequent first.
    """
    import tensorflow as tf

    from bert_tf import optimization, trainer

    # The whole input is read once before anything is written: bad input
    # leaves no half-made folder.
    vocab = Vocabulary.build(sequences(), options.min_count, options.max_vocab_size)
    if len(vocab) == 0:
        raise ValueError(f"no item occurs min_count={options.min_count} times or more")
    os.makedirs(output_dir, exist_ok=True)
    _check_same_run(output_dir, vocab, options)
    groups = None
    if group_of is not None:
        codes: dict[object, int] = {}
        groups = np.array([codes.setdefault(group_of.get(w, _NO_GROUP), len(codes))
                           for w in vocab.words], np.int64)
    generator = PairGenerator(sequences, vocab, options, global_context, groups)
    pairs, items = generator.count_pairs()
    if pairs == 0:
        raise ValueError("the sequences give no training pairs (every sequence is shorter "
                         "than two in-vocabulary items?)")
    num_steps = max(1, math.ceil(pairs * options.epochs / options.batch_size))

    training = training_options or default_training_options(seed=options.seed)
    config = trainer.TrainerConfig.from_options(
        training, model_dir=os.path.join(output_dir, TRAINING_DIR), num_train_steps=num_steps,
        learning_rate=options.learning_rate, num_warmup_steps=0)
    runner = trainer.Trainer(SkipGramTask(len(vocab), options, items_per_pair=items / pairs),
                             config, strategy)
    # word2vec's schedule, linear down to min_learning_rate, in place of the
    # trainer's BERT schedule (which ends at zero).
    runner.optimizer.learning_rate = optimization.LinearDecay(
        options.learning_rate, options.min_learning_rate, num_steps)
    replicas = runner.strategy.num_replicas_in_sync
    micro = config.gradient_accumulation_steps
    if options.batch_size % (replicas * micro):
        raise ValueError(f"batch_size {options.batch_size} must divide by replicas x "
                         f"accumulation steps ({replicas} x {micro})")
    k = options.negatives
    signature = {"inputs": tf.TensorSpec([None], tf.int32),
                 "outputs": tf.TensorSpec([None], tf.int32),
                 "negatives": tf.TensorSpec([None, k], tf.int32)}

    def dataset_fn(context: tf.distribute.InputContext):
        # Elements are per-replica micro-batches; each input pipeline (worker)
        # generates the same stream and keeps every n-th of them.
        per_replica = options.batch_size // (replicas * micro)
        shard, shards = context.input_pipeline_id, max(1, context.num_input_pipelines)
        dataset = tf.data.Dataset.from_generator(
            lambda: generator.batches(per_replica, shard, shards), output_signature=signature)
        return dataset.prefetch(tf.data.AUTOTUNE)

    runner.train(dataset_fn)
    matrix = runner.model.input_vectors.embeddings.numpy()
    if not np.isfinite(matrix).all():
        raise ValueError(f"training diverged (vectors hold NaN or infinity; the checkpoints in "
                         f"{config.model_dir} hold them too): use a new output folder with a "
                         f"smaller batch_size than {options.batch_size}, a lower learning rate, "
                         "or max_row_updates")
    vectors = Vectors(vocab.words, matrix)
    vectors.save(os.path.join(output_dir, VECTORS_FILE))
    return vectors


_NO_GROUP = object()


def _check_same_run(output_dir: str, vocab: Vocabulary, options: SkipGramOptions) -> None:
    """Writes vocab.tsv and the options on a first run; on a resumed run,
    refuses another corpus or other options (checkpoints would not fit)."""
    vocab_path = os.path.join(output_dir, VOCAB_FILE)
    run_path = os.path.join(output_dir, RUN_FILE)
    described = dataclasses.asdict(options)
    if os.path.exists(run_path) and os.path.exists(vocab_path):
        with open(run_path, encoding="utf-8") as f:
            before = json.load(f)
        if before != described:
            changed = sorted(k for k in described if before.get(k) != described[k])
            raise ValueError(f"{output_dir}: holds a run with other options ({', '.join(changed)}"
                             "); use a new output folder")
        stored = Vocabulary.load(vocab_path)
        if stored.words != vocab.words or not np.array_equal(stored.counts, vocab.counts):
            raise ValueError(f"{vocab_path}: that run's vocabulary differs from this input's; "
                             "use a new output folder")
        return
    vocab.save(vocab_path)
    atomic_io.write_text(run_path, json.dumps(described, indent=2, sort_keys=True) + "\n")


# ----------------------------------------------------------------------------
# Flags (defined here once for every skip-gram script)
# ----------------------------------------------------------------------------

#: SkipGramOptions field -> (flag name, help); scripts may rename flags.
FLAG_FIELDS = {
    "dim": ("size", "Dimension of the vectors."),
    "window": ("window", "Largest distance between an item and a context item."),
    "negatives": ("negative", "Negative samples per (context, item) pair."),
    "min_count": ("min_count", "Drop items seen fewer times than this."),
    "sample": ("sample", "Subsampling threshold of frequent items (0: none); word2vec's -sample."),
    "epochs": ("epochs", "Passes over the sequences."),
    "learning_rate": ("alpha", "Initial SGD learning rate, per pair."),
    "min_learning_rate": ("min_alpha", "The learning rate falls linearly to this at the end."),
    "ns_exponent": ("ns_exponent", "Negatives are drawn from count ** ns_exponent."),
    "dynamic_window": ("dynamic_window", "Draw each position's window from 1..window "
                       "(word2vec); off: always the full window."),
    "batch_size": ("batch_size", "Training pairs per update."),
    "max_vocab_size": ("max_vocab_size", "Keep only this many most frequent items."),
    "max_row_updates": ("max_row_updates", "A row used n times in one batch moves by at most "
                        "this many per-pair steps' worth (keeps large batches stable)."),
}
_flag_names: dict[str, str] = {}


def define_flags(names: Mapping[str, str] | None = None,
                 defaults: Mapping[str, object] | None = None) -> None:
    """Defines the SkipGramOptions flags (word2vec's names by default) and the
    step-loop/checkpoint flags of the trainer.

    names: field -> flag name to use instead (node2vec says --dimensions and
      --window_size); defaults: field -> default instead of SkipGramOptions'.
    The script also calls `cli.define_training_flags()` (strategy, XLA,
    --seed...). Read them back with `options_from_flags` and
    `training_options_from_flags`.
    """
    from absl import flags

    names, defaults = dict(names or {}), dict(defaults or {})
    unknown = sorted((set(names) | set(defaults)) - set(FLAG_FIELDS))
    if unknown:
        raise ValueError(f"skipgram.define_flags: no SkipGramOptions field {unknown}")
    base = SkipGramOptions()
    for field, (name, help_text) in FLAG_FIELDS.items():
        name = names.get(field, name)
        _flag_names[field] = name
        default = defaults.get(field, getattr(base, field))
        if field == "dynamic_window":
            flags.DEFINE_bool(name, default, help_text)
        elif field in ("sample", "learning_rate", "min_learning_rate", "ns_exponent",
                       "max_row_updates"):
            flags.DEFINE_float(name, default, help_text)
        else:
            flags.DEFINE_integer(name, default, help_text)
    training = default_training_options()
    flags.DEFINE_integer("iterations_per_loop", training.steps_per_loop,
                         "Most steps per compiled training loop call.")
    flags.DEFINE_integer("save_checkpoints_steps", training.save_checkpoints_steps,
                         "Steps between checkpoints (a killed run resumes from the last).")


def options_from_flags(FLAGS) -> SkipGramOptions:
    """SkipGramOptions from the flags `define_flags` made (and --seed)."""
    values = {field: FLAGS[name].value for field, name in _flag_names.items()}
    if "seed" in FLAGS:
        values["seed"] = FLAGS.seed
    return SkipGramOptions(**values)


def training_options_from_flags(FLAGS) -> TrainingOptions:
    """The trainer options of a skip-gram script: `default_training_options`
    with the shared training flags. --optimizer, --use_xla and --log_steps
    count only when given (their defaults are BERT's: AdamW, no XLA; skip-gram
    uses plain SGD and XLA)."""
    values = dict(steps_per_loop=FLAGS.iterations_per_loop,
                  save_checkpoints_steps=FLAGS.save_checkpoints_steps)
    for name in ("gradient_accumulation_steps", "keep_checkpoint_max", "mixed_precision", "seed"):
        if name in FLAGS:
            values[name] = FLAGS[name].value
    for name in ("optimizer", "use_xla", "log_steps"):
        if name in FLAGS and FLAGS[name].present:
            values[name] = FLAGS[name].value
    return default_training_options(**values)
