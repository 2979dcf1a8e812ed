"""tf.data input pipelines.

Pretraining: `pretraining_dataset` reads the TFRecords of
`create_pretraining_data.py` and yields batches of

    input_word_ids, input_mask, input_type_ids      int32 [batch, max_seq_length]
    masked_lm_positions, masked_lm_ids              int32 [batch, max_predictions_per_seq]
    masked_lm_weights                               float32 [batch, max_predictions_per_seq]
    next_sentence_labels                            int32 [batch]

Records written with `--dynamic_masking` hold no masks; pass a
`DynamicMasking` and fresh masks are drawn for every batch instead (so each
epoch sees new ones), with Google's rule: ~masked_lm_prob of the tokens,
whole units in random order, 80% [MASK], 10% random token, 10% unchanged.

With a seed, the stream is reproducible, masks included: a resumed run can
`skip()` the batches it has already seen. Files are checked when the
pipeline is built, so a wrong or corrupt file is reported by name rather
than as an anonymous error in the middle of training; damage further into
a file is named by `verify_all_records=True` or, during iteration, by the
`naming_bad_files` context.

Fine-tuning: `sort_windows_by_length` orders a shuffled stream of examples
so that batches of similar lengths pad little without being biased
slices of the data; the classification and SQuAD pipelines (in
`bert_tf.classifier_data` and `bert_tf.squad_data`) train on it.
"""

from __future__ import annotations

import contextlib
import dataclasses

import numpy as np
import tensorflow as tf

from bert_tf import text_files

AUTOTUNE = tf.data.AUTOTUNE


class InputFileError(ValueError):
    """A TFRecord file that cannot be read as pretraining data; names the file."""


# ----------------------------------------------------------------------------
# Pretraining
# ----------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class DynamicMasking:
    """How to mask unmasked records on the fly (ids default to Google's vocabularies)."""

    vocab_size: int
    masked_lm_prob: float = 0.15
    whole_word_masking: bool = True  # use the records' word_starts
    mask_token_id: int = 103
    cls_token_id: int = 101
    sep_token_id: int = 102

    @classmethod
    def from_vocab_file(cls, vocab_file: str, **settings) -> "DynamicMasking":
        """Takes the size and the [MASK]/[CLS]/[SEP] ids from a vocabulary file."""
        from bert_tf import tokenization

        vocab = tokenization.load_vocab(vocab_file)
        missing = [t for t in ("[MASK]", "[CLS]", "[SEP]") if t not in vocab]
        if missing:
            raise ValueError(f"{vocab_file}: no {', '.join(missing)} token")
        return cls(vocab_size=len(vocab), mask_token_id=vocab["[MASK]"],
                   cls_token_id=vocab["[CLS]"], sep_token_id=vocab["[SEP]"], **settings)


def record_spec(max_seq_length: int, max_predictions_per_seq: int, dynamic: bool = False):
    """Feature spec of the pretraining TFRecords: Google's names, dtypes and shapes
    (dynamic-masking records carry `word_starts` instead of the masked positions)."""
    sequence = tf.io.FixedLenFeature([max_seq_length], tf.int64)
    spec = {
        "input_ids": sequence,
        "input_mask": sequence,
        "segment_ids": sequence,
        "next_sentence_labels": tf.io.FixedLenFeature([1], tf.int64),
    }
    if dynamic:
        spec["word_starts"] = sequence
    else:
        predictions = tf.io.FixedLenFeature([max_predictions_per_seq], tf.int64)
        spec["masked_lm_positions"] = predictions
        spec["masked_lm_ids"] = predictions
        spec["masked_lm_weights"] = tf.io.FixedLenFeature([max_predictions_per_seq], tf.float32)
    return spec


def validate_record_file(path: str, spec, verify_all_records: bool = False) -> None:
    """Parses the first record of `path` with `spec`; optionally CRC-checks all.

    Raises InputFileError naming the file for corrupt or truncated data and
    for records whose features do not match the expected names and shapes.
    """
    records = tf.data.TFRecordDataset(path)
    try:
        first = next(iter(records.take(1)), None)
    except tf.errors.DataLossError as error:
        raise InputFileError(f"{path}: not a readable TFRecord file ({error.message})") from None
    if first is None:
        return
    try:
        tf.io.parse_single_example(first, spec)
    except tf.errors.InvalidArgumentError as error:
        expected = ", ".join(f"{name} {list(feature.shape)}" for name, feature in spec.items())
        raise InputFileError(
            f"{path}: records do not match the expected features ({expected}): "
            f"{error.message}") from None
    if verify_all_records:
        _count_records(path)


def _count_records(path: str) -> int:
    """Reads every record of `path` (checking CRCs); InputFileError names the file."""
    try:
        return int(tf.data.TFRecordDataset(path).reduce(
            tf.constant(0, tf.int64), lambda count, _: count + 1))
    except tf.errors.DataLossError as error:
        raise InputFileError(f"{path}: corrupt or truncated ({error.message})") from None


@contextlib.contextmanager
def naming_bad_files(file_patterns):
    """Turns a read error while iterating into an InputFileError naming the file.

    TensorFlow reports a corrupt record without its file. Wrap the loop that
    consumes a pipeline; on such an error the files are scanned to find it:

        with naming_bad_files(patterns):
            for batch in pretraining_dataset(patterns, ...): ...
    """
    try:
        yield
    except tf.errors.DataLossError:
        for path in text_files.expand_globs(file_patterns):
            _count_records(path)
        raise


def record_batches(files: list[str], batch_size: int, is_training: bool,
                   input_context: tf.distribute.InputContext | None = None,
                   seed: int | None = None, shuffle_buffer_size: int = 1000) -> tf.data.Dataset:
    """Batches of serialized records from TFRecord `files`, for any stage.

    `batch_size` is global: with an `input_context` each input pipeline
    reads its share of the files (or of the records, when there are fewer
    files than pipelines) and batches the per-replica size. Training
    repeats and shuffles (files, then records); evaluation reads each
    record once, in order, the last batch possibly smaller.
    """
    if input_context is not None:
        batch_size = input_context.get_per_replica_batch_size(batch_size)
    num_pipelines = input_context.num_input_pipelines if input_context else 1
    pipeline_id = input_context.input_pipeline_id if input_context else 0
    shard_files = len(files) >= num_pipelines

    def read(path):
        records = tf.data.TFRecordDataset(path)
        # Fewer files than pipelines: each pipeline takes its share of every
        # file (sharding inside the file keeps the shares fixed across epochs).
        if not shard_files:
            records = records.shard(num_pipelines, pipeline_id)
        return records

    dataset = tf.data.Dataset.from_tensor_slices(files)
    if shard_files and num_pipelines > 1:
        dataset = dataset.shard(num_pipelines, pipeline_id)
    if is_training:
        dataset = dataset.shuffle(len(files), seed=seed).repeat()
        dataset = dataset.interleave(read, cycle_length=min(len(files), 8),
                                     num_parallel_calls=AUTOTUNE, deterministic=True)
        dataset = dataset.shuffle(shuffle_buffer_size, seed=seed)
    else:
        dataset = dataset.flat_map(read)
    dataset = dataset.batch(batch_size, drop_remainder=is_training)
    return dataset


def pretraining_dataset(file_patterns, batch_size: int, max_seq_length: int,
                        max_predictions_per_seq: int, is_training: bool,
                        input_context: tf.distribute.InputContext | None = None,
                        seed: int | None = None,
                        dynamic_masking: DynamicMasking | None = None,
                        shuffle_buffer_size: int = 1000,
                        verify_all_records: bool = False) -> tf.data.Dataset:
    """Batches of pretraining inputs; see the module docstring for the keys.

    `batch_size` is global: with an `input_context` each input pipeline
    reads its share of the files (or of the records, when there are fewer
    files than pipelines) and batches the per-replica size. Training
    repeats and shuffles (files, then records); evaluation reads each
    record once, in order.
    """
    files = text_files.expand_globs(file_patterns)
    spec = record_spec(max_seq_length, max_predictions_per_seq, dynamic_masking is not None)
    for path in files:
        validate_record_file(path, spec, verify_all_records)
    if dynamic_masking is not None and max_predictions_per_seq > max_seq_length:
        raise ValueError(f"max_predictions_per_seq={max_predictions_per_seq} exceeds "
                         f"max_seq_length={max_seq_length}")

    dataset = record_batches(files, batch_size, is_training, input_context, seed,
                             shuffle_buffer_size)
    dataset = dataset.map(lambda records: _to_model_inputs(tf.io.parse_example(records, spec)),
                          num_parallel_calls=AUTOTUNE, deterministic=True)
    if dynamic_masking is not None:
        # One stateless seed pair per batch: masks are a function of the seed
        # and the batch's position in the stream.
        seeds = tf.data.Dataset.random(seed=seed).batch(2)
        masker = _DynamicMasker(dynamic_masking, max_predictions_per_seq)
        dataset = tf.data.Dataset.zip((dataset, seeds)).map(
            masker, num_parallel_calls=AUTOTUNE, deterministic=True)
    return dataset.prefetch(AUTOTUNE)


def _to_model_inputs(example):
    inputs = {
        "input_word_ids": example["input_ids"],
        "input_mask": example["input_mask"],
        "input_type_ids": example["segment_ids"],
        "next_sentence_labels": example["next_sentence_labels"][:, 0],
    }
    for name in ("masked_lm_positions", "masked_lm_ids", "word_starts"):
        if name in example:
            inputs[name] = example[name]
    inputs = {name: tf.cast(value, tf.int32) for name, value in inputs.items()}
    if "masked_lm_weights" in example:
        inputs["masked_lm_weights"] = example["masked_lm_weights"]
    return inputs


class _DynamicMasker:
    """Draws masked-LM predictions for a batch of unmasked sequences."""

    def __init__(self, config: DynamicMasking, max_predictions_per_seq: int):
        self.config = config
        self.max_predictions = max_predictions_per_seq

    def __call__(self, inputs, seed):
        config = self.config
        seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=4)
        ids = inputs["input_word_ids"]
        batch, length = tf.shape(ids)[0], tf.shape(ids)[1]
        maskable = ((inputs["input_mask"] > 0) & (ids != config.cls_token_id)
                    & (ids != config.sep_token_id))
        word_starts = inputs.pop("word_starts") > 0
        starts = (word_starts if config.whole_word_masking else True) & maskable
        # Unit k >= 1 holds the tokens from its start up to the next start.
        unit = tf.cumsum(tf.cast(starts, tf.int32), axis=1) * tf.cast(maskable, tf.int32)
        unit_length = tf.math.bincount(unit, minlength=length + 1, maxlength=length + 1,
                                       axis=-1)
        unit_length = tf.concat([tf.zeros_like(unit_length[:, :1]), unit_length[:, 1:]], axis=1)

        num_tokens = tf.reduce_sum(inputs["input_mask"], axis=1)
        target = tf.cast(tf.round(tf.cast(num_tokens, tf.float32) * config.masked_lm_prob),
                         tf.int32)
        target = tf.minimum(self.max_predictions, tf.maximum(1, target))

        # Units in random order; empty slots last.
        keys = tf.random.stateless_uniform(tf.shape(unit_length), seed=seeds[0])
        keys = tf.where(unit_length > 0, keys, 2.0)
        order = tf.argsort(keys, axis=1)
        ordered_length = tf.gather(unit_length, order, batch_dims=1)
        if config.whole_word_masking:
            accepted_in_order = _greedy_fill(ordered_length, target)
        else:  # every unit is one token: the first `target` ones fit
            rank = tf.range(length + 1)[None, :]
            accepted_in_order = (ordered_length > 0) & (rank < target[:, None])
        inverse = tf.argsort(order, axis=1)
        accepted_unit = tf.gather(accepted_in_order, inverse, batch_dims=1)
        masked = tf.gather(accepted_unit, unit, batch_dims=1) & maskable

        # Positions in increasing order, padded with zeros.
        position = tf.range(length)[None, :]
        key = tf.where(masked, position, length + position)
        chosen = tf.sort(key, axis=1)[:, :self.max_predictions]
        weights = chosen < length
        positions = tf.where(weights, chosen, 0)
        masked_ids = tf.gather(ids, positions, batch_dims=1) * tf.cast(weights, tf.int32)

        draw = tf.random.stateless_uniform([batch, length], seed=seeds[1])
        random_ids = tf.random.stateless_uniform(
            [batch, length], seed=seeds[2], maxval=config.vocab_size, dtype=tf.int32)
        new_ids = tf.where(masked & (draw < 0.8), config.mask_token_id, ids)
        new_ids = tf.where(masked & (draw >= 0.9), random_ids, new_ids)

        inputs["input_word_ids"] = new_ids
        inputs["masked_lm_positions"] = positions
        inputs["masked_lm_ids"] = masked_ids
        inputs["masked_lm_weights"] = tf.cast(weights, tf.float32)
        return inputs


def _greedy_fill(ordered_length, target):
    """Google's unit loop: take each unit in order if it still fits under `target`."""
    def step(total, length):
        take = (length > 0) & (total + length <= target)
        return total + tf.where(take, length, 0), take

    _, taken = tf.scan(lambda state, length: step(state[0], length),
                       tf.transpose(ordered_length),
                       initializer=(tf.zeros_like(target), tf.zeros_like(target, tf.bool)))
    return tf.transpose(taken)


# ----------------------------------------------------------------------------
# Classification: see bert_tf.classifier_data (nothing here on purpose).
# ----------------------------------------------------------------------------


# ---------------------------------------------------------------------------
# In-memory fine-tuning examples
# ---------------------------------------------------------------------------

def ragged_rows(rows, lengths):
    """int32 RaggedTensor of `rows` (lists of ints) whose lengths are `lengths` (int64 [n])."""
    import itertools

    flat = np.fromiter(itertools.chain.from_iterable(rows), np.int32, int(lengths.sum()))
    return tf.RaggedTensor.from_row_lengths(flat, lengths)


def sharded_examples(columns: dict, batch_size: int, input_context=None):
    """`(dataset, batch size, examples)` of one input pipeline over in-memory columns.

    Under `tf.distribute` every input pipeline takes every n-th example and
    batches by the per-replica share of the global `batch_size`; the number
    of examples it holds sets the epoch for `sort_windows_by_length`.
    """
    dataset = tf.data.Dataset.from_tensor_slices(columns)
    num_examples = int(dataset.cardinality())
    if input_context is None:
        return dataset, batch_size, num_examples
    pipelines, pipeline = input_context.num_input_pipelines, input_context.input_pipeline_id
    if pipelines > 1:
        dataset = dataset.shard(pipelines, pipeline)
    return (dataset, input_context.get_per_replica_batch_size(batch_size),
            len(range(pipeline, num_examples, pipelines)))


# ---------------------------------------------------------------------------
# Length-sorted windows for fine-tuning
# ---------------------------------------------------------------------------

#: The most batches the default window holds.
MAX_DEFAULT_WINDOW_BATCHES = 50


def window_batches_for(batches_per_epoch: int, requested: int | None = None) -> int:
    """Batches per length-sorting window: `requested`, or by default 50 or a tenth of an epoch.

    A window's batches are all cut from one slice of the length
    distribution, so the fewer windows an epoch has, the more each step
    leans on one length range: with 1,000 SST-2 examples (31 batches) a
    50-batch window sorted the whole epoch at once and cost 0.9 accuracy
    points against random batches (mean of 3 seeds). Ten windows or more an
    epoch keep each step close to a random batch, and on large sets 50-batch
    windows already save nearly all the padding that sorting can save.

    >>> window_batches_for(2104), window_batches_for(31), window_batches_for(5)
    (50, 3, 1)
    >>> window_batches_for(31, requested=50)
    50
    """
    if requested is not None:
        if requested < 1:
            raise ValueError(f"bucket_window_batches must be >= 1, got {requested}")
        return requested
    return max(1, min(MAX_DEFAULT_WINDOW_BATCHES, batches_per_epoch // 10))


def _stratified_length_order(lengths, strata):
    """Window positions ordered by each example's length quantile within its stratum.

    Ranking every example by its length quantile *within its own stratum*
    and then merging the strata's lists deals each batch its share of every
    stratum, short with short and long with long: the batch's mix of strata
    is the window's.
    """
    count = tf.size(lengths)
    # By stratum, then by length; stable, so equal keys keep the shuffled order.
    order = tf.argsort(lengths, stable=True)
    order = tf.gather(order, tf.argsort(tf.gather(strata, order), stable=True))
    sorted_strata = tf.gather(strata, order)
    sizes = tf.math.bincount(sorted_strata)
    starts = tf.cumsum(sizes, exclusive=True)
    rank = tf.range(count) - tf.gather(starts, sorted_strata)
    quantile = (tf.cast(rank, tf.float32) + 0.5) / tf.cast(tf.gather(sizes, sorted_strata),
                                                            tf.float32)
    return tf.gather(order, tf.argsort(quantile, stable=True))


def sort_windows_by_length(dataset, batch_size: int, num_examples: int,
                           window_batches: int | None = None, seed: int | None = None,
                           strata=None, length_key: str = "input_word_ids"):
    """Reorders an endless shuffled stream so that batching it groups lengths.

    `dataset` yields dicts of examples whose `length_key` is a ragged row;
    `num_examples` is how many one epoch holds, which sets the default
    window (`window_batches_for`). The caller batches the result by
    `batch_size`. The stream is cut into windows of `window_batches *
    batch_size` consecutive (already shuffled) examples; each window is
    ordered by length within each stratum (`strata(window) -> int32 [n]`,
    e.g. the label; None: one stratum), cut into batches, and its batches
    are put in a random order, much as Hugging Face's `group_by_length`
    sampler does with its mega-batches. A batch never mixes examples of two
    windows: every example of the stream is used exactly once, as in the
    random-batch pipeline. Grouping over the whole data instead
    (`bucket_by_sequence_length` with narrow buckets) also let rare lengths
    wait many epochs for a full bucket, and on STS-B cost 15 Pearson points.

    The batch order inside a window comes from a stateless draw keyed by
    (`seed`, window number), so the stream is a pure function of the seed
    and a resumed run that skips the batches already consumed sees exactly
    the batches it would have seen. A window of one batch returns the
    stream unchanged (random batches).
    """
    window_batches = window_batches_for(num_examples // batch_size, window_batches)
    if window_batches == 1:
        return dataset
    if seed is None:  # still one fixed stream per dataset, as shuffle's own draw
        seed = int(np.random.default_rng().integers(2 ** 31))
    window = batch_size * window_batches
    # Training streams repeat forever, so every window is full.
    dataset = dataset.ragged_batch(window, drop_remainder=True).enumerate()

    def sort_window(number, element):
        lengths = tf.cast(element[length_key].row_lengths(), tf.int32)
        groups = tf.zeros_like(lengths) if strata is None else strata(element)
        by_length = tf.reshape(_stratified_length_order(lengths, groups),
                               [window_batches, batch_size])
        draw = tf.random.stateless_uniform([window_batches], seed=tf.stack(
            [tf.constant(seed, tf.int64), number]))
        order = tf.reshape(tf.gather(by_length, tf.argsort(draw)), [-1])
        return tf.nest.map_structure(lambda column: tf.gather(column, order), element)

    # Windows hold whole batches, so batching the unbatched stream by
    # `batch_size` cuts exactly the batches chosen above.
    return dataset.map(sort_window, num_parallel_calls=AUTOTUNE).unbatch()
