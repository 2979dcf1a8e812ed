"""train_word_vectors.py end to end: a run SIGKILLed after its first
checkpoint resumes with the same command to the vectors of an uninterrupted
run; gensim reads its output; a malformed corpus is refused by file:line
before anything is written."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
from gensim.models import KeyedVectors

from bert_tf import skipgram, word_vectors
from conftest import REPO, TEST_DATA

CORPUS = TEST_DATA / "corpora" / "en" / "kjv.txt"
WORDSIM = TEST_DATA / "embeddings" / "wordsim"
SIZE, WINDOW, EPOCHS, BATCH, SEED = 24, 3, 1, 1024, 7


def _args(output, *extra):
    return [sys.executable, str(REPO / "train_word_vectors.py"), f"--input_file={CORPUS}",
            f"--output={output}", f"--size={SIZE}", f"--window={WINDOW}", "--negative=3",
            "--min_count=3", f"--epochs={EPOCHS}", f"--batch_size={BATCH}", f"--seed={SEED}",
            "--save_checkpoints_steps=20", "--iterations_per_loop=10", "--binary", *extra]


def _env():
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(REPO))


def test_killed_run_resumes_to_the_vectors_of_an_uninterrupted_one(tmp_path):
    output = tmp_path / "vectors.bin"
    run_dir = tmp_path / "vectors.bin.run" / skipgram.TRAINING_DIR
    process = subprocess.Popen(_args(output), env=_env(), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not tf.train.latest_checkpoint(str(run_dir)) and time.time() < deadline:
        if process.poll() is not None:
            pytest.fail("the run ended before its first checkpoint")
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    killed_at = tf.train.latest_checkpoint(str(run_dir))
    assert not output.exists()
    result = subprocess.run(_args(output, f"--eval_similarity={WORDSIM / 'EN-WS-353-ALL.txt'}"),
                            capture_output=True, text=True, env=_env(), timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "EN-WS-353-ALL_spearman" in result.stdout
    assert tf.train.latest_checkpoint(str(run_dir)) != killed_at
    resumed = KeyedVectors.load_word2vec_format(str(output), binary=True)

    # The same settings, uninterrupted, in this process.
    reference = word_vectors.run_word_vectors(word_vectors.WordVectorSettings(
        input_file=str(CORPUS), output=str(tmp_path / "reference.txt"),
        options=skipgram.SkipGramOptions(dim=SIZE, window=WINDOW, negatives=3, min_count=3,
                                         epochs=EPOCHS, batch_size=BATCH, seed=SEED),
        training=skipgram.default_training_options(steps_per_loop=10,
                                                   save_checkpoints_steps=20, seed=SEED)))
    assert reference == {}
    expected = KeyedVectors.load_word2vec_format(str(tmp_path / "reference.txt"))
    assert resumed.index_to_key == expected.index_to_key
    np.testing.assert_allclose(resumed.vectors, expected.vectors, atol=1e-6)
    # Trained, not left at the initial values: "lord" is near "god".
    assert resumed.similarity("lord", "god") > 0.5


def test_malformed_corpus_is_named_by_file_and_line_and_nothing_is_written(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_bytes(b"In the beginning God created the heaven.\n\nAnd the earth \xff was.\n")
    settings = word_vectors.WordVectorSettings(input_file=str(corpus),
                                               output=str(tmp_path / "v.txt"))
    with pytest.raises(word_vectors.CorpusError, match=r"corpus.txt:3: invalid UTF-8"):
        word_vectors.run_word_vectors(settings)
    assert sorted(os.listdir(tmp_path)) == ["corpus.txt"]
    corpus.write_text("words\n\x00\x00\n")
    with pytest.raises(word_vectors.CorpusError, match=r"corpus.txt:2: a NUL character"):
        word_vectors.run_word_vectors(settings)
    with pytest.raises(FileNotFoundError, match="--input_file"):
        word_vectors.run_word_vectors(word_vectors.WordVectorSettings(
            input_file=str(tmp_path / "missing*.txt"), output=str(tmp_path / "v.txt")))
