"""The pretraining tf.data pipeline: contents, order, sharding, errors, dynamic masks.

References: the records parsed directly with a FixedLenFeature spec written
here from Google's format, and Google's masking rule restated in numpy.
"""

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from bert_tf import input_pipeline
from conftest import google_record_spec
from bert_tf import pretraining_data as ptd

SEQ, PRED, VOCAB_SIZE = 64, 10, 30522
PAD, CLS, SEP, MASK = 0, 101, 102, 103


def _parse_all(paths, dynamic=False):
    spec = google_record_spec(SEQ, PRED, dynamic)
    records = tf.data.TFRecordDataset([str(p) for p in paths])
    return [{k: v.numpy() for k, v in tf.io.parse_single_example(r, spec).items()}
            for r in records]


def _make_records(folder: Path, corpus: Path, vocab: Path, outputs: int, **settings):
    config = ptd.PretrainingDataConfig(max_seq_length=SEQ, max_predictions_per_seq=PRED,
                                       dupe_factor=1, **settings)
    paths = [str(folder / f"part{i}.tfrecord") for i in range(outputs)]
    ptd.create_pretraining_data([str(corpus)], paths, str(vocab), config)
    return paths


@pytest.fixture(scope="module")
def corpus(repo_data, tmp_path_factory):
    text = (repo_data / "corpora" / "en" / "brown.txt").read_text(encoding="utf-8")
    path = tmp_path_factory.mktemp("corpus") / "brown60.txt"
    path.write_text("\n\n".join(text.split("\n\n")[:60]) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def vocab(repo_data):
    return repo_data / "vocab" / "bert_uncased_vocab.txt"


@pytest.fixture(scope="module")
def static_files(corpus, vocab, tmp_path_factory):
    return _make_records(tmp_path_factory.mktemp("static"), corpus, vocab, outputs=2)


@pytest.fixture(scope="module")
def dynamic_files(corpus, vocab, tmp_path_factory):
    return _make_records(tmp_path_factory.mktemp("dynamic"), corpus, vocab, outputs=1,
                         dynamic_masking=True, do_whole_word_mask=True)


def _collect(dataset, limit=None):
    batches = [{k: v.numpy() for k, v in b.items()} for b in dataset.take(limit or -1)]
    return {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}


def test_evaluation_stream_equals_the_records(static_files):
    dataset = input_pipeline.pretraining_dataset(static_files, 16, SEQ, PRED, is_training=False)
    assert dataset.element_spec["input_word_ids"].dtype == tf.int32
    assert dataset.element_spec["masked_lm_weights"].dtype == tf.float32
    got = _collect(dataset)
    expected = _parse_all(static_files)
    assert len(got["input_word_ids"]) == len(expected) > 500
    renamed = {"input_word_ids": "input_ids", "input_type_ids": "segment_ids"}
    for key, values in got.items():
        reference = np.stack([e[renamed.get(key, key)] for e in expected])
        if key == "next_sentence_labels":
            reference = reference[:, 0]
        np.testing.assert_array_equal(values, reference, err_msg=key)
        assert values.dtype == (np.float32 if key == "masked_lm_weights" else np.int32)


def test_training_stream_is_reproducible_and_resumable(static_files):
    def stream(seed):
        return input_pipeline.pretraining_dataset(static_files, 8, SEQ, PRED, True, seed=seed)

    first = [b["input_word_ids"].numpy() for b in stream(5).take(6)]
    again = [b["input_word_ids"].numpy() for b in stream(5).take(6)]
    resumed = [b["input_word_ids"].numpy() for b in stream(5).skip(4).take(2)]
    other = [b["input_word_ids"].numpy() for b in stream(6).take(6)]
    np.testing.assert_array_equal(np.stack(first), np.stack(again))
    np.testing.assert_array_equal(np.stack(first[4:]), np.stack(resumed))
    assert not np.array_equal(np.stack(first), np.stack(other))
    # Shuffled: not the file order.
    in_order = _collect(input_pipeline.pretraining_dataset(static_files, 8, SEQ, PRED, False), 6)
    assert not np.array_equal(np.concatenate(first), in_order["input_word_ids"])


@pytest.mark.parametrize("use_one_file", [False, True])
def test_input_contexts_split_the_data(static_files, use_one_file):
    files = static_files[:1] if use_one_file else static_files
    everything = _collect(input_pipeline.pretraining_dataset(files, 4, SEQ, PRED, False))
    shards = []
    for pipeline_id in range(2):
        context = tf.distribute.InputContext(num_input_pipelines=2,
                                             input_pipeline_id=pipeline_id,
                                             num_replicas_in_sync=2)
        dataset = input_pipeline.pretraining_dataset(files, 8, SEQ, PRED, False,
                                                     input_context=context)
        assert dataset.element_spec["input_word_ids"].shape[0] in (None, 4)
        shards.append(_collect(dataset)["input_word_ids"])
    def rows(array):
        return sorted(map(bytes, array))

    assert rows(np.concatenate(shards)) == rows(everything["input_word_ids"])
    assert not set(map(bytes, shards[0])) & set(map(bytes, shards[1]))


def test_corrupt_file_is_named(static_files, tmp_path):
    data = bytearray(Path(static_files[0]).read_bytes())
    data[30] ^= 0xFF
    corrupt = tmp_path / "corrupt.tfrecord"
    corrupt.write_bytes(bytes(data))
    with pytest.raises(input_pipeline.InputFileError, match="corrupt.tfrecord"):
        input_pipeline.pretraining_dataset([static_files[1], str(corrupt)], 4, SEQ, PRED, True)


def test_truncated_file_is_named_when_all_records_are_verified(static_files, tmp_path):
    data = Path(static_files[0]).read_bytes()
    truncated = tmp_path / "truncated.tfrecord"
    truncated.write_bytes(data[:len(data) // 2])
    input_pipeline.pretraining_dataset([str(truncated)], 4, SEQ, PRED, True)  # first record fine
    with pytest.raises(input_pipeline.InputFileError, match="truncated.tfrecord"):
        input_pipeline.pretraining_dataset([str(truncated)], 4, SEQ, PRED, True,
                                           verify_all_records=True)
    files = [static_files[1], str(truncated)]
    dataset = input_pipeline.pretraining_dataset(files, 4, SEQ, PRED, False)
    with pytest.raises(tf.errors.DataLossError):
        for _ in dataset:
            pass
    with pytest.raises(input_pipeline.InputFileError, match="truncated.tfrecord"):
        with input_pipeline.naming_bad_files(files):
            for _ in dataset:
                pass


def test_wrong_shapes_and_wrong_kind_of_records_are_named(static_files, dynamic_files):
    with pytest.raises(input_pipeline.InputFileError, match=r"part0.tfrecord.*input_ids \[128\]"):
        input_pipeline.pretraining_dataset(static_files, 4, 128, 20, True)
    with pytest.raises(input_pipeline.InputFileError, match="word_starts"):
        input_pipeline.pretraining_dataset(
            static_files, 4, SEQ, PRED, True,
            dynamic_masking=input_pipeline.DynamicMasking(VOCAB_SIZE))
    with pytest.raises(FileNotFoundError, match="nothing-here"):
        input_pipeline.pretraining_dataset("/tmp/nothing-here/*.tfrecord", 4, SEQ, PRED, True)


# ----------------------------------------------------------------------------
# Dynamic masking
# ----------------------------------------------------------------------------

def _dynamic(files, seed, whole_word, is_training=False):
    masking = input_pipeline.DynamicMasking(VOCAB_SIZE, whole_word_masking=whole_word)
    return input_pipeline.pretraining_dataset(files, 32, SEQ, PRED, is_training, seed=seed,
                                              dynamic_masking=masking)


@pytest.fixture(scope="module")
def dynamic_records(dynamic_files):
    records = _parse_all(dynamic_files, dynamic=True)
    return {k: np.stack([r[k] for r in records]) for k in records[0]}


@pytest.mark.parametrize("whole_word", [False, True])
def test_dynamic_masks_follow_googles_rule(dynamic_files, dynamic_records, vocab, whole_word):
    got = _collect(_dynamic(dynamic_files, seed=1, whole_word=whole_word))
    original = dynamic_records["input_ids"]
    lengths = dynamic_records["input_mask"].sum(axis=1)
    assert len(got["input_word_ids"]) == len(original) > 300
    weights = got["masked_lm_weights"]
    counts = weights.sum(axis=1)
    target = np.minimum(PRED, np.maximum(1, np.round(lengths * 0.15)))
    if whole_word:
        assert (counts <= target).all() and counts.sum() > 0.9 * target.sum()
    else:
        np.testing.assert_array_equal(counts, target)
    real = weights > 0
    positions = got["masked_lm_positions"]
    assert ((weights == 1) == (np.arange(PRED) < counts[:, None])).all()
    assert (positions[~real] == 0).all() and (got["masked_lm_ids"][~real] == 0).all()
    assert all((np.diff(p[r]) > 0).all() for p, r in zip(positions, real))
    truth = np.take_along_axis(original, positions, axis=1)
    np.testing.assert_array_equal(got["masked_lm_ids"][real], truth[real])
    assert not np.isin(truth[real], [PAD, CLS, SEP]).any()

    shown = np.take_along_axis(got["input_word_ids"], positions, axis=1)[real]
    as_mask, kept = np.mean(shown == MASK), np.mean(shown == truth[real])
    assert abs(as_mask - 0.8) < 0.03 and abs(kept - 0.1) < 0.03
    # Nothing but the masked positions changed.
    untouched = np.ones_like(original, bool)
    rows = np.broadcast_to(np.arange(len(original))[:, None], real.shape)
    untouched[rows[real], positions[real]] = False
    np.testing.assert_array_equal(got["input_word_ids"][untouched], original[untouched])
    for key in ("input_mask", "next_sentence_labels"):
        assert key in got

    # Whole words: a masked '##' piece never has an unmasked piece of its word beside it.
    tokens = vocab.read_text(encoding="utf-8").split("\n")
    continuation = np.array([t.startswith("##") for t in tokens[:-1]])[original]
    masked = ~untouched
    inside = continuation[:, 1:] & ~np.isin(original[:, :-1], [CLS, SEP])
    split = (masked[:, 1:] != masked[:, :-1]) & inside
    assert (split.sum() == 0) == whole_word


def test_dynamic_masks_change_each_epoch_but_repeat_with_the_seed(dynamic_files,
                                                                 dynamic_records):
    epoch = len(dynamic_records["input_ids"]) // 32

    def training():
        return _dynamic(dynamic_files, 3, True, is_training=True)

    run = [{k: v.numpy() for k, v in b.items()} for b in training().take(2 * epoch + 2)]
    again = [b["masked_lm_positions"].numpy() for b in training().take(2 * epoch + 2)]
    np.testing.assert_array_equal(np.stack([b["masked_lm_positions"] for b in run]),
                                  np.stack(again))
    resumed = [b["masked_lm_positions"].numpy() for b in training().skip(epoch).take(2)]
    np.testing.assert_array_equal(
        np.stack([b["masked_lm_positions"] for b in run[epoch:epoch + 2]]), np.stack(resumed))

    # The same record seen in two epochs gets different masks.
    masks_by_record = {}
    for batch in run:
        ids = batch["input_word_ids"].copy()
        real = batch["masked_lm_weights"] > 0
        rows = np.broadcast_to(np.arange(len(ids))[:, None], real.shape)
        ids[rows[real], batch["masked_lm_positions"][real]] = batch["masked_lm_ids"][real]
        for row in range(len(ids)):
            positions = tuple(batch["masked_lm_positions"][row][real[row]])
            masks_by_record.setdefault(ids[row].tobytes(), []).append(positions)
    repeats = [m for m in masks_by_record.values() if len(m) > 1]
    assert len(repeats) > 100
    assert np.mean([len(set(m)) > 1 for m in repeats]) > 0.9


def test_training_record_shards_are_disjoint_without_a_seed(static_files):
    seen = []
    for pipeline_id in range(2):
        context = tf.distribute.InputContext(num_input_pipelines=2,
                                             input_pipeline_id=pipeline_id,
                                             num_replicas_in_sync=2)
        dataset = input_pipeline.pretraining_dataset(static_files[:1], 16, SEQ, PRED, True,
                                                     input_context=context)
        seen.append({row.tobytes() for b in dataset.take(10)
                     for row in b["input_word_ids"].numpy()})
    assert len(seen[0]) > 50 and not seen[0] & seen[1]


def test_dynamic_masking_reads_special_ids_from_the_vocabulary(vocab, tmp_path):
    masking = input_pipeline.DynamicMasking.from_vocab_file(str(vocab), masked_lm_prob=0.2)
    assert (masking.vocab_size, masking.mask_token_id, masking.cls_token_id,
            masking.sep_token_id, masking.masked_lm_prob) == (VOCAB_SIZE, MASK, CLS, SEP, 0.2)
    shuffled = tmp_path / "vocab.txt"
    shuffled.write_text("[SEP]\n[MASK]\nhello\n[CLS]\n", encoding="utf-8")
    masking = input_pipeline.DynamicMasking.from_vocab_file(str(shuffled))
    assert (masking.vocab_size, masking.mask_token_id, masking.cls_token_id,
            masking.sep_token_id) == (4, 1, 3, 0)
    shuffled.write_text("[SEP]\nhello\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"vocab.txt: no \[MASK\], \[CLS\]"):
        input_pipeline.DynamicMasking.from_vocab_file(str(shuffled))
