"""squad_dataset: the batches the span model trains and predicts on."""

import numpy as np

from bert_tf import squad_data


def _features(lengths, unanswerable_every=4):
    rng = np.random.default_rng(2)
    features = []
    for i, n in enumerate(lengths):
        answerable = i % unanswerable_every != 0
        start = int(rng.integers(5, n - 1)) if answerable else 0
        features.append(squad_data.SquadFeatures(
            unique_id=1000 + i, example_index=i // 2, doc_span_index=i % 2,
            tokens=["[CLS]"] + ["x"] * (n - 1), token_to_orig_map={},
            token_is_max_context={}, input_ids=[101] + list(rng.integers(1000, 2000, n - 1)),
            segment_ids=[0] * 5 + [1] * (n - 5), start_position=start,
            end_position=min(n - 1, start + 2) if answerable else 0,
            is_impossible=not answerable))
    return features


def _batches(features, batch_size, steps, **kwargs):
    dataset = squad_data.squad_dataset(features, batch_size, is_training=True, **kwargs)
    return [(inputs, labels) for inputs, labels in dataset.take(steps)]


def test_training_windows_pad_little_keep_every_window_once_and_the_null_share():
    # 320 windows, batches of 8: 40 batches an epoch, so the default sorting
    # window is 4 batches. Each batch is padded to its own longest window, its
    # rows are the features' own ids and labels, every feature comes once an
    # epoch, and the batches of one window share its unanswerable windows
    # evenly (counts differ by at most one), however their lengths run.
    rng = np.random.default_rng(3)
    lengths = rng.integers(20, 384, 320)
    features = _features(lengths)
    batches = _batches(features, 8, 80, seed=5)
    real = padded = 0
    nulls = []
    for epoch in range(2):
        seen = []
        for inputs, labels in batches[40 * epoch:40 * epoch + 40]:
            inputs = {k: v.numpy() for k, v in inputs.items()}
            labels = {k: v.numpy() for k, v in labels.items()}
            index = inputs["feature_index"]
            seen.extend(index)
            width = int(lengths[index].max())
            assert inputs["input_word_ids"].shape == (8, width)
            for row, i in enumerate(index):
                n = lengths[i]
                assert inputs["input_word_ids"][row, :n].tolist() == features[i].input_ids
                assert inputs["input_mask"][row].sum() == n
                assert inputs["input_type_ids"][row, :n].tolist() == features[i].segment_ids
                assert labels["start_positions"][row] == features[i].start_position
                assert labels["end_positions"][row] == features[i].end_position
            nulls.append(int((labels["start_positions"] == 0).sum()))
            real, padded = real + lengths[index].sum(), padded + 8 * width
        assert sorted(seen) == list(range(320)), f"epoch {epoch}"
    for start in range(0, 80, 4):
        window = nulls[start:start + 4]
        assert max(window) - min(window) <= 1, (start, window)
    assert sum(nulls) == 2 * 80
    # Random batches of 8 from uniform lengths pad to about the 8/9 quantile
    # (fill ~0.6); sorting windows of 32 leaves much less padding.
    random_fill = np.mean([lengths[i["feature_index"].numpy()].sum()
                           / (8 * lengths[i["feature_index"].numpy()].max())
                           for i, _ in _batches(features, 8, 40, seed=5, bucket_window_batches=1)])
    print(f"real/padded tokens: windows {real / padded:.2f}, random {random_fill:.2f}")
    assert real / padded > 0.75 > 0.65 > random_fill


def test_random_batches_and_the_seed():
    lengths = np.random.default_rng(4).integers(20, 200, 64)
    features = _features(lengths)
    first = [i["feature_index"].numpy().tolist() for i, _ in _batches(features, 8, 16, seed=1)]
    again = [i["feature_index"].numpy().tolist() for i, _ in _batches(features, 8, 16, seed=1)]
    other = [i["feature_index"].numpy().tolist() for i, _ in _batches(features, 8, 16, seed=2)]
    assert first == again and first != other


def test_prediction_keeps_the_order_and_pads_to_max_seq_length():
    lengths = [30, 50, 20, 64, 41]
    features = _features(lengths)
    dataset = squad_data.squad_dataset(features, 2, is_training=False, max_seq_length=64)
    index, widths = [], []
    for inputs, _ in dataset:
        index.extend(inputs["feature_index"].numpy().tolist())
        widths.append(inputs["input_word_ids"].shape[1])
    assert index == [0, 1, 2, 3, 4] and widths == [64, 64, 64]
