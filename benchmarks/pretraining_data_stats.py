"""Statistics of create_pretraining_data's TFRecords on the English corpora.

Writes TFRecords from every `*.txt` in the corpus folder (uncased
vocabulary, sequence 128, 20 predictions, dupe_factor 5, 2 workers), reads
them back with TensorFlow's parser and the records' feature spec, and prints
what the algorithm promises:

    NSP label 1       share of "B is random" (50% with a fair coin)
    masked            masked positions / real tokens other than [CLS], [SEP]
    [MASK]/kept/rand  how the masked positions were shown (80/10/10)
    special masked    masked [CLS], [SEP] or padding positions (must be 0)
    split words       masked '##' pieces next to an unmasked piece of the
                      same word (0 with --do_whole_word_mask)

for three settings: the defaults, --do_whole_word_mask, and
--nofair_next_sentence (Google's rule for chunks of one sentence).

    PYTHONPATH=. python benchmarks/pretraining_data_stats.py [--corpora=DIR] [--vocab_file=FILE]

--corpora defaults to the English slices in tests/data/corpora/en; the
figures in benchmarks/README.md are for the whole brown, kjv and wiki files.
"""

from __future__ import annotations

import argparse
import glob
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from bert_tf import input_pipeline, pretraining_data  # noqa: E402

TEST_DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                         "tests", "data")

SETTINGS = {
    "defaults": {},
    "whole words": {"do_whole_word_mask": True},
    "Google's NSP rule": {"fair_next_sentence": False},
}


def read(paths: list[str], seq_length: int, predictions: int) -> dict[str, np.ndarray]:
    spec = input_pipeline.record_spec(seq_length, predictions)
    dataset = tf.data.TFRecordDataset(paths).batch(4096).map(
        lambda records: tf.io.parse_example(records, spec))
    parts = list(dataset.as_numpy_iterator())
    return {key: np.concatenate([p[key] for p in parts]) for key in spec}


def statistics(records: dict[str, np.ndarray], vocab: list[str]) -> dict[str, float]:
    cls, sep, mask = vocab.index("[CLS]"), vocab.index("[SEP]"), vocab.index("[MASK]")
    ids, real = records["input_ids"], records["input_mask"].astype(bool)
    weights = records["masked_lm_weights"] > 0
    rows = np.nonzero(weights)[0]
    positions = records["masked_lm_positions"][weights]
    originals = records["masked_lm_ids"][weights]
    shown = ids[rows, positions]
    content = real & (ids != cls) & (ids != sep)
    special = (~real[rows, positions]) | np.isin(originals, [cls, sep])

    # Rebuild the unmasked sequences to find words cut by the mask.
    unmasked = ids.copy()
    unmasked[rows, positions] = originals
    masked = np.zeros_like(ids, dtype=bool)
    masked[rows, positions] = True
    continuation = np.array([t.startswith("##") for t in vocab])[unmasked]
    # A '##' piece and the piece before it belong to one word, unless that
    # is [CLS] or [SEP] (a segment cut at the front may start mid-word).
    pair = continuation[:, 1:] & ~np.isin(unmasked[:, :-1], [cls, sep])
    split_words = int(np.sum(pair & (masked[:, 1:] != masked[:, :-1])))
    return {
        "instances": len(ids),
        "nsp_label_1": float(records["next_sentence_labels"].mean()),
        "masked_fraction": float(weights.sum() / content.sum()),
        "shown_as_mask": float(np.mean(shown == mask)),
        "kept": float(np.mean(shown == originals)),
        "random": float(np.mean((shown != mask) & (shown != originals))),
        "special_masked": int(special.sum()),
        "split_words": split_words,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpora", default=os.path.join(TEST_DATA, "corpora", "en"),
                        help="folder whose *.txt files are the input (default: the English "
                             "slices in tests/data)")
    parser.add_argument("--vocab_file",
                        default=os.path.join(TEST_DATA, "vocab", "bert_uncased_vocab.txt"))
    parser.add_argument("--dupe_factor", type=int, default=5)
    parser.add_argument("--num_workers", type=int, default=2)
    args = parser.parse_args()

    inputs = sorted(glob.glob(os.path.join(args.corpora, "*.txt")))
    if not inputs:
        parser.error(f"no *.txt files in {args.corpora}")
    with open(args.vocab_file, encoding="utf-8") as f:
        vocab = f.read().splitlines()
    print("corpora:", ", ".join(os.path.basename(p) for p in inputs))
    print(f"{'setting':<18} {'instances':>9} {'NSP label 1':>11} {'masked':>7} "
          f"{'[MASK]':>7} {'kept':>6} {'random':>7} {'special':>7} {'split words':>11}")
    for name, overrides in SETTINGS.items():
        config = pretraining_data.PretrainingDataConfig(
            max_seq_length=128, max_predictions_per_seq=20, dupe_factor=args.dupe_factor,
            **overrides)
        with tempfile.TemporaryDirectory() as folder:
            output = os.path.join(folder, "records.tfrecord")
            pretraining_data.create_pretraining_data(inputs, [output], args.vocab_file, config,
                                                     args.num_workers)
            paths = pretraining_data.output_paths([output], args.num_workers)
            s = statistics(read(paths, 128, 20), vocab)
        print(f"{name:<18} {s['instances']:>9,} {s['nsp_label_1']:>11.2%} "
              f"{s['masked_fraction']:>7.2%} {s['shown_as_mask']:>7.2%} {s['kept']:>6.2%} "
              f"{s['random']:>7.2%} {s['special_masked']:>7} {s['split_words']:>11}",
              flush=True)


if __name__ == "__main__":
    main()
