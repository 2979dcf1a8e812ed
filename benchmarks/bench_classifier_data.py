"""How much of a classification batch is padding, and how fast the input side runs.

Reads the real SST-2 train set, converts it with Google's tokenizer, then
compares the tokens a model would process per epoch with fixed-length
padding (Google's), per-batch padding in file order (evaluation) and length
bucketing (training).

    PYTHONPATH=. python benchmarks/bench_classifier_data.py [--max_seq_length 128] [--batch_size 32] \
        [--data_dir data/sst2] [--vocab_file tests/data/vocab/bert_uncased_vocab.txt]
"""

import argparse
import os
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from bert_tf import classifier_data  # noqa: E402
from bert_tf.tokenization import FullTokenizer  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def _padded_tokens(dataset, num_batches):
    padded = real = 0
    for inputs, _ in dataset.take(num_batches):
        mask = inputs["input_mask"].numpy()
        padded += mask.size
        real += int(mask.sum())
    return padded, real


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--max_seq_length", type=int, default=128)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--data_dir", type=Path, default=REPO / "data" / "sst2",
                        help="folder with GLUE SST-2 train.tsv (default: the shipped copy)")
    parser.add_argument("--vocab_file", type=Path,
                        default=REPO / "tests" / "data" / "vocab" / "bert_uncased_vocab.txt")
    args = parser.parse_args()

    start = time.perf_counter()
    examples = classifier_data.Sst2Processor().get_train_examples(args.data_dir)
    read_s = time.perf_counter() - start
    print(f"read {len(examples)} SST-2 train examples in {read_s:.2f} s")

    tokenizer = FullTokenizer(args.vocab_file, do_lower_case=True)
    start = time.perf_counter()
    features = classifier_data.convert_examples_to_features(
        examples, ["0", "1"], args.max_seq_length, tokenizer)
    convert_s = time.perf_counter() - start
    lengths = np.array([len(f.input_ids) for f in features])
    print(f"converted in {convert_s:.2f} s ({len(features) / convert_s:,.0f} examples/s); "
          f"length mean {lengths.mean():.1f}, max {lengths.max()}")

    fixed = len(features) * args.max_seq_length
    print(f"fixed padding to {args.max_seq_length}: {lengths.sum() / fixed:.1%} of tokens are real")

    num_batches = len(features) // args.batch_size
    for name, is_training in [("per-batch padding, file order", False),
                              ("length bucketing, shuffled", True)]:
        start = time.perf_counter()
        dataset = classifier_data.classifier_dataset(features, args.batch_size, is_training,
                                                     seed=0)
        padded, real = _padded_tokens(dataset, num_batches)
        seconds = time.perf_counter() - start
        print(f"{name}: {real / padded:.1%} of tokens are real, "
              f"{fixed / padded:.2f}x fewer tokens than fixed padding; "
              f"{num_batches} batches built in {seconds:.2f} s (incl. dataset setup)")


if __name__ == "__main__":
    main()
