"""run_pretraining.py end to end on a tiny model: Google's eval_results.txt,
continued pretraining from a Google checkpoint without Adam slots, and a
SIGKILLed run that resumes to the same weights as an uninterrupted one."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from bert_tf import checkpoints, modeling

REPO = Path(__file__).resolve().parents[1]
CONFIG = modeling.BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2,
                             num_attention_heads=4, intermediate_size=64,
                             max_position_embeddings=64, type_vocab_size=2)


def _command(script, *args):
    return [sys.executable, str(REPO / script), *args]


def _env():
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")


@pytest.fixture(scope="module")
def data(tmp_path_factory, repo_data):
    folder = tmp_path_factory.mktemp("pretraining")
    documents = (repo_data / "corpora/en/wiki.txt").read_text(encoding="utf-8").split("\n\n")
    (folder / "corpus.txt").write_text("\n\n".join(documents[:12]) + "\n", encoding="utf-8")
    CONFIG.to_json_file(str(folder / "bert_config.json"))
    result = subprocess.run(_command(
        "create_pretraining_data.py", f"--input_file={folder / 'corpus.txt'}",
        f"--output_file={folder / 'train.tfrecord'}",
        f"--vocab_file={repo_data / 'vocab/bert_uncased_vocab.txt'}",
        "--max_seq_length=64", "--max_predictions_per_seq=10", "--dupe_factor=2"),
        capture_output=True, text=True, env=_env(), timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return folder


def _train_args(data, output_dir, steps=30, *extra):
    return _command("run_pretraining.py", f"--input_file={data / 'train.tfrecord'}",
                    f"--bert_config_file={data / 'bert_config.json'}",
                    f"--output_dir={output_dir}", "--do_train", "--max_seq_length=64",
                    "--max_predictions_per_seq=10", "--train_batch_size=8",
                    f"--num_train_steps={steps}", "--num_warmup_steps=5",
                    "--learning_rate=1e-3", "--save_checkpoints_steps=10",
                    "--iterations_per_loop=5", "--log_steps=5", *extra)


def _weights(output_dir):
    model = modeling.BertPretrainer(CONFIG)
    checkpoints.load_checkpoint(model, tf.train.latest_checkpoint(str(output_dir)))
    return {name: v.numpy() for name, v in model.checkpoint_map().items()}


def test_sigkilled_run_resumes_to_the_same_weights(data, tmp_path):
    straight = subprocess.run(_train_args(data, tmp_path / "straight"), capture_output=True,
                              text=True, env=_env(), timeout=600)
    assert straight.returncode == 0, straight.stderr[-3000:]

    interrupted = tmp_path / "interrupted"
    process = subprocess.Popen(_train_args(data, interrupted), env=_env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    # Wait until the checkpoint is complete: its state file names it.
    while not tf.train.latest_checkpoint(str(interrupted)) and time.time() < deadline:
        if process.poll() is not None:
            pytest.fail("the run ended before its first checkpoint")
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    assert not (interrupted / "ckpt-30.index").exists()  # it really was cut short

    resumed = subprocess.run(_train_args(data, interrupted), capture_output=True, text=True,
                             env=_env(), timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Restored" in resumed.stderr
    expected, actual = _weights(tmp_path / "straight"), _weights(interrupted)
    for name in expected:
        np.testing.assert_allclose(actual[name], expected[name], atol=1e-6, err_msg=name)


def test_continued_pretraining_from_google_checkpoint_without_slots(data, tmp_path):
    google = tmp_path / "google"
    CONFIG.to_json_file(str(google / "bert_config.json"))
    encoder = modeling.BertEncoder(CONFIG)
    checkpoints.save_google_checkpoint(encoder, str(google / "bert_model.ckpt"))
    result = subprocess.run(
        _train_args(data, tmp_path / "continued", 10, f"--init_checkpoint={google}", "--do_eval",
                    "--max_eval_steps=3"),
        capture_output=True, text=True, env=_env(), timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    results = dict(line.split(" = ") for line in
                   (tmp_path / "continued/eval_results.txt").read_text().splitlines())
    assert set(results) == {"masked_lm_accuracy", "masked_lm_loss", "next_sentence_accuracy",
                            "next_sentence_loss", "global_step", "loss"}
    assert int(results["global_step"]) == 10
    total = float(results["masked_lm_loss"]) + float(results["next_sentence_loss"])
    assert float(results["loss"]) == pytest.approx(total)


def test_corrupt_input_is_named(data, tmp_path):
    broken = tmp_path / "broken.tfrecord"
    broken.write_bytes((data / "train.tfrecord").read_bytes()[:1000])
    args = _train_args(data, tmp_path / "out", 10)
    args[2] = f"--input_file={broken}"
    result = subprocess.run(args, capture_output=True, text=True, env=_env(), timeout=300)
    assert result.returncode != 0
    assert "broken.tfrecord" in result.stderr and "Traceback" not in result.stderr
