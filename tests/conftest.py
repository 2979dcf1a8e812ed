"""Shared fixtures: the read-only data beside the checkout and the real MiniLM."""

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


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
def vocab_file(shared_data) -> str:
    return str(shared_data / "vocab" / "bert_uncased_vocab.txt")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"the shared data folder is missing: expected {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    """The real MiniLM in Google's layout, with the original Hugging Face files
    in `huggingface/` (fetched once into the cache)."""
    from bert_tf import pretrained

    return Path(pretrained.fetch_known_model("minilm-l6-h384-uncased"))
