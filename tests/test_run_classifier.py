"""run_classifier.py end to end on a tiny model: outputs in Google's formats,
the serving SavedModel (in-graph tokenization, fresh process) against
do_predict, Google-format classifier checkpoints, and bad input."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bert_tf import checkpoints, modeling

REPO = Path(__file__).resolve().parents[1]
LONG = " ".join(["an utterly unremarkable yet strangely moving story"] * 12)


def _run(*args, timeout=300):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, str(REPO / "run_classifier.py"), *args],
                          capture_output=True, text=True, env=env, timeout=timeout, cwd=REPO)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory, repo_data):
    """A randomly initialised tiny BERT in Google's release layout."""
    folder = tmp_path_factory.mktemp("tiny_bert")
    config = modeling.BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2,
                                 num_attention_heads=4, intermediate_size=64,
                                 max_position_embeddings=64, type_vocab_size=2)
    config.to_json_file(str(folder / "bert_config.json"))
    shutil.copy(repo_data / "vocab/bert_uncased_vocab.txt", folder / "vocab.txt")
    checkpoints.save_google_checkpoint(modeling.BertEncoder(config), str(folder / "bert_model.ckpt"))
    return folder


@pytest.fixture(scope="module")
def sst2_dir(tmp_path_factory, sst2_data):
    """A small SST-2 in the GLUE layout, with empty and over-long test texts."""
    folder = tmp_path_factory.mktemp("sst2")
    train = (sst2_data / "train.tsv").read_text(encoding="utf-8").splitlines()
    (folder / "train.tsv").write_text("\n".join(train[:161]) + "\n", encoding="utf-8")
    dev = (sst2_data / "dev.tsv").read_text(encoding="utf-8").splitlines()
    (folder / "dev.tsv").write_text("\n".join(dev[:41]) + "\n", encoding="utf-8")
    test = ["index\tsentence", "0\ta charming film", "1\t", f"2\t{LONG}",
            "3\tThe Café's crème brûlée… was ＧＲＥＡＴ！", "4\tdull , dull , dull ."]
    (folder / "test.tsv").write_text("\n".join(test) + "\n", encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def trained(tiny_model, sst2_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    result = _run(f"--init_checkpoint={tiny_model}", f"--data_dir={sst2_dir}",
                  "--task_name=sst-2", f"--output_dir={out / 'model'}", "--do_train",
                  "--do_eval", "--do_predict", "--max_seq_length=16", "--train_batch_size=16",
                  "--num_train_epochs=1", "--max_train_examples=0", "--learning_rate=1e-3",
                  "--iterations_per_loop=5", f"--export_dir={out / 'export'}")
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def test_outputs_follow_googles_formats(trained):
    results = dict(line.split(" = ") for line in
                   (trained / "model/eval_results.txt").read_text().splitlines())
    assert set(results) == {"eval_accuracy", "eval_loss", "global_step"}
    assert int(results["global_step"]) == 10  # 160 examples / batch 16, one epoch
    probabilities = np.loadtxt(trained / "model/test_results.tsv", delimiter="\t")
    assert probabilities.shape == (5, 2)
    np.testing.assert_allclose(probabilities.sum(1), 1, atol=1e-5)
    submission = (trained / "model/SST-2.tsv").read_text().splitlines()
    assert submission[0] == "index\tprediction" and len(submission) == 6
    assert [int(line.split("\t")[1]) for line in submission[1:]] == list(probabilities.argmax(1))


def test_serving_model_in_a_fresh_process_matches_do_predict(trained, sst2_dir):
    texts = [line.split("\t", 1)[1] for line in
             (sst2_dir / "test.tsv").read_text(encoding="utf-8").splitlines()[1:]]
    script = f"""
import json, sys, tensorflow as tf
import tensorflow_text  # registers the in-graph tokenizer's ops
model = tf.saved_model.load({str(trained / 'export')!r})
texts = json.loads(sys.stdin.read())
single = model.signatures["serving_default"](text=tf.constant(texts))["probabilities"]
pair = model.signatures["serve_pair"](text_a=tf.constant(texts), text_b=tf.constant(texts[::-1]))["probabilities"]
print(json.dumps({{"single": single.numpy().tolist(), "pair": pair.numpy().tolist()}}))
"""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    # A fresh interpreter with TensorFlow and tensorflow-text only, no bert_tf.
    result = subprocess.run([sys.executable, "-c", script], input=json.dumps(texts),
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    served = json.loads(result.stdout.strip().splitlines()[-1])
    expected = np.loadtxt(trained / "model/test_results.tsv", delimiter="\t")
    np.testing.assert_allclose(served["single"], expected, atol=1e-5)
    assert np.abs(np.array(served["pair"]) - expected).max() > 1e-6  # the pair really differs


def test_google_format_classifier_checkpoint_predicts_identically(trained, sst2_dir, tiny_model,
                                                                  tmp_path):
    config = modeling.BertConfig.from_json_file(str(tiny_model / "bert_config.json"))
    model = modeling.BertClassifier(modeling.BertEncoder(config), num_labels=2)
    checkpoints.load_checkpoint(model, str(_latest(trained / "model")))
    google = tmp_path / "google"
    checkpoints.save_google_checkpoint(model, str(google / "model.ckpt-10"), global_step=10)
    shutil.copy(tiny_model / "vocab.txt", google)
    shutil.copy(tiny_model / "bert_config.json", google)
    result = _run(f"--init_checkpoint={google}", f"--data_dir={sst2_dir}", "--task_name=sst-2",
                  f"--output_dir={tmp_path / 'again'}", "--nodo_train", "--nodo_eval",
                  "--do_predict", "--max_seq_length=16")
    assert result.returncode == 0, result.stderr[-3000:]
    np.testing.assert_allclose(np.loadtxt(tmp_path / "again/test_results.tsv", delimiter="\t"),
                               np.loadtxt(trained / "model/test_results.tsv", delimiter="\t"),
                               atol=1e-6)


def _latest(folder):
    import tensorflow as tf

    return tf.train.latest_checkpoint(str(folder / "checkpoints")) or tf.train.latest_checkpoint(str(folder))


def test_output_dir_of_another_run_is_not_reused(trained, sst2_dir, tiny_model):
    before = sorted(p.name for p in (trained / "model").iterdir())
    result = _run(f"--init_checkpoint={tiny_model}", f"--data_dir={sst2_dir}",
                  "--task_name=sst-2", f"--output_dir={trained / 'model'}", "--do_train",
                  "--do_eval", "--max_seq_length=32")
    assert result.returncode == 2 and "max_seq_length" in result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in (trained / "model").iterdir()) == before


@pytest.mark.parametrize("content, culprit", [
    ("sentence\tlabel\na fine film\t1\nno label column\n", "train.tsv:3"),
    ("sentence\tlabel\na fine film\t1\nbad label\t7\n", "train.tsv:3"),
    ("sentence\tlabel\n", "train.tsv"),
])
def test_bad_training_data_is_named_by_file_and_line(tmp_path, tiny_model, content, culprit):
    (tmp_path / "train.tsv").write_text(content)
    result = _run(f"--init_checkpoint={tiny_model}", f"--data_dir={tmp_path}",
                  "--task_name=sst-2", f"--output_dir={tmp_path / 'out'}", "--do_train",
                  "--max_seq_length=16")
    assert result.returncode == 2, result.stderr[-2000:]
    assert culprit in result.stderr and "Traceback" not in result.stderr


def test_generic_regression_task_scores_like_sts_b(tmp_path, tiny_model):
    rows = ["sentence\tscore"] + [f"sentence number {i}\t{i / 10:.1f}" for i in range(48)]
    for split in ("train", "dev"):
        (tmp_path / f"{split}.tsv").write_text("\n".join(rows) + "\n")
    (tmp_path / "test.tsv").write_text("sentence\nhello\nworld\n")
    result = _run(f"--init_checkpoint={tiny_model}", f"--data_dir={tmp_path}",
                  "--task_name=generic", "--regression", "--label_column=score",
                  f"--output_dir={tmp_path / 'out'}", "--do_train", "--do_eval", "--do_predict",
                  "--max_seq_length=16",
                  "--max_train_examples=0", "--train_batch_size=16")
    assert result.returncode == 0, result.stderr[-3000:]
    results = dict(line.split(" = ") for line in
                   (tmp_path / "out/eval_results.txt").read_text().splitlines())
    assert set(results) == {"eval_pearson", "eval_spearmanr", "eval_corr", "eval_loss",
                            "global_step"}
    scores = np.loadtxt(tmp_path / "out/test_results.tsv", delimiter="\t")
    assert scores.shape == (2,)  # one column of scores, one row per test text
