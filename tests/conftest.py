"""Shared fixtures: the test data shipped in tests/data and data/sst2, and the real MiniLM.

Every file a test reads lies inside the repository (see tests/data/README.md
for where each slice comes from), so a fresh clone runs the suite alone.
"""

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
# Slices of real corpora and GLUE files, and Google's two BERT vocabularies.
TEST_DATA = REPO / "tests" / "data"
# The whole GLUE SST-2 train and dev files, shipped for users in data/sst2.
SST2_DIR = REPO / "data" / "sst2"
UNCASED_VOCAB = TEST_DATA / "vocab" / "bert_uncased_vocab.txt"
CHINESE_VOCAB = TEST_DATA / "vocab" / "bert_chinese_vocab.txt"


def google_record_spec(max_seq_length: int, max_predictions_per_seq: int,
                       dynamic: bool = False) -> dict:
    """The pretraining TFRecord features as Google's run_pretraining.py reads
    them, written here independently of bert_tf (plus word_starts for the
    unmasked records of dynamic masking)."""
    import tensorflow as tf

    sequence = tf.io.FixedLenFeature([max_seq_length], tf.int64)
    spec = {"input_ids": sequence, "input_mask": sequence, "segment_ids": sequence,
            "next_sentence_labels": tf.io.FixedLenFeature([1], tf.int64)}
    if dynamic:
        spec["word_starts"] = sequence
    else:
        predictions = tf.io.FixedLenFeature([max_predictions_per_seq], tf.int64)
        spec["masked_lm_positions"] = predictions
        spec["masked_lm_ids"] = predictions
        spec["masked_lm_weights"] = tf.io.FixedLenFeature([max_predictions_per_seq], tf.float32)
    return spec


@pytest.fixture(scope="session")
def vocab_file() -> str:
    return str(UNCASED_VOCAB)


@pytest.fixture(scope="session")
def repo_data() -> Path:
    """tests/data: corpora/, glue/ and vocab/ in the layout of their sources."""
    return TEST_DATA


@pytest.fixture(scope="session")
def sst2_data() -> Path:
    """data/sst2: GLUE's SST-2 train.tsv and dev.tsv, whole."""
    return SST2_DIR


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    """The real MiniLM in Google's layout, with the original Hugging Face files
    in `huggingface/` (fetched once into the cache)."""
    from bert_tf import pretrained

    return Path(pretrained.fetch_known_model("minilm-l6-h384-uncased"))
