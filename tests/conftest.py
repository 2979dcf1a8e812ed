"""Shared fixtures: the read-only data beside the checkout and the real MiniLM."""

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


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
