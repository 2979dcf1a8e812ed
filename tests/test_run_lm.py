"""GPT-2 language-model training on a tiny model: the task's loss is Hugging
Face's GPT2LMHeadModel(labels=...) loss on the same weights, a run killed
between checkpoints resumes to the same weights, the held-out perplexity in
eval_results.txt is what Hugging Face computes with the weights the output
folder holds, and run_lm.py's output folder is one generate.py samples from."""

import dataclasses
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from _gpt2_fixtures import CORPORA, hf_gpt2, learn_tokenizer, save_hf_folder
from bert_tf import gpt2, gpt2_checkpoints, gpt2_pretrained, lm, lm_data, trainer

REPO = Path(__file__).resolve().parents[1]
N_CTX = 32


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lm")
    tokenizer = learn_tokenizer(600)
    (folder / "vocab").mkdir()
    tokenizer.save(str(folder / "vocab"))
    documents = (CORPORA / "en/kjv.txt").read_text(encoding="utf-8").split("\n\n")
    (folder / "train.txt").write_text("\n\n".join(documents[:16]), encoding="utf-8")
    (folder / "heldout.txt").write_text("\n\n".join(documents[16:18]), encoding="utf-8")
    config = lm_data.LMDataConfig(n_ctx=N_CTX, vocab_dir=str(folder / "vocab"))
    for name in ("train", "heldout"):
        lm_data.create_lm_data(str(folder / f"{name}.txt"), str(folder / f"{name}.tfrecord"),
                               config)
    (folder / "hparams.json").write_text(json.dumps(
        {"n_vocab": tokenizer.vocab_size, "n_ctx": N_CTX, "n_embd": 32, "n_head": 4,
         "n_layer": 2}))
    return folder


def _config(data):
    return gpt2.GPT2Config.from_json_file(str(data / "hparams.json"))


def _settings(data, output_dir, **overrides):
    values = dict(
        config=_config(data), input_file=str(data / "train.tfrecord"),
        output_dir=str(output_dir), eval_file=str(data / "heldout.tfrecord"),
        tokenizer_files={n: str(data / "vocab" / n) for n in ("encoder.json", "vocab.bpe")},
        do_train=True, do_eval=True, train_batch_size=8, eval_batch_size=8,
        num_train_steps=20, learning_rate=1e-3, num_warmup_steps=2,
        training=trainer.TrainingOptions(steps_per_loop=5, save_checkpoints_steps=10,
                                         log_steps=5))
    values.update(overrides)
    return lm.LMSettings(**values)


def _hf_loss(hf_model, windows):
    """Hugging Face's mean next-token loss (GPT2LMHeadModel(labels=...), which
    shifts the labels itself) over [n, n_ctx + 1] windows."""
    import torch
    ids = torch.tensor(np.asarray(windows, dtype=np.int64))
    with torch.no_grad():
        return hf_model(input_ids=ids, labels=ids).loss.item()


def _hf_logits_loss(hf_model, windows):
    """Mean cross-entropy of Hugging Face's logits for the first n_ctx tokens
    of each window against the last n_ctx (for models with n_ctx positions)."""
    import torch
    ids = torch.tensor(np.asarray(windows, dtype=np.int64))
    with torch.no_grad():
        logits = hf_model(input_ids=ids[:, :-1]).logits
        return torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]).double(), ids[:, 1:].reshape(-1)).item()


def _windows(path):
    spec = {"input_ids": tf.io.FixedLenFeature([N_CTX + 1], tf.int64)}
    return [tf.io.parse_single_example(r, spec)["input_ids"].numpy()
            for r in tf.data.TFRecordDataset(str(path))]


def _logged_steps(folder, tag):
    steps = []
    for path in sorted(folder.glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            steps += [event.step for value in event.summary.value if value.tag == tag]
    return steps


def test_task_loss_equals_hugging_face_lm_loss(data, tmp_path):
    tokenizer = learn_tokenizer(600)
    # One position more than the windows' n_ctx: Hugging Face takes the whole
    # window and shifts the labels; the last position's logits go unused.
    hf = hf_gpt2(tokenizer.vocab_size, tokenizer.eot_id, n_ctx=N_CTX + 1)
    folder = save_hf_folder(hf, tokenizer, tmp_path / "hf")
    task = lm.LMTask(gpt2_checkpoints.read_hf_config(folder), init_checkpoint=folder)
    model = task.build_model()
    task.initialize(model)
    batch = next(iter(lm.lm_dataset(str(data / "train.tfrecord"), 6, N_CTX, is_training=False)))
    outputs = task.forward(model, batch, training=False)
    count = float(task.loss_counts(batch)["lm"])
    assert count == 6 * N_CTX
    ours = float(outputs.losses["lm"]) / count
    windows = np.concatenate([batch["token_ids"], batch["labels"][:, -1:]], axis=1)
    np.testing.assert_array_equal(windows[:, 1:], batch["labels"])
    assert abs(ours - _hf_loss(hf, windows)) < 1e-5
    assert ours > 1.0  # random weights: a real loss, not a degenerate zero


def test_killed_run_resumes_and_leaves_a_folder_generate_reads(data, tmp_path):
    import transformers

    straight = tmp_path / "straight"
    results = lm.run_lm(_settings(data, straight))

    # What a kill between the checkpoints of steps 10 and 20 leaves behind:
    # the trainer's state at step 10 and no exported model yet.
    killed = tmp_path / "killed"
    shutil.copytree(straight / lm.TRAINING_DIR, killed / lm.TRAINING_DIR,
                    ignore=shutil.ignore_patterns("ckpt-20*", "train", "eval"))
    (killed / lm.TRAINING_DIR / "checkpoint").write_text(
        'model_checkpoint_path: "ckpt-10"\nall_model_checkpoint_paths: "ckpt-10"\n')
    lm.run_lm(_settings(data, killed, do_eval=False))
    # It resumed (a fresh start would log steps 5 and 10 too).
    assert _logged_steps(killed / lm.TRAINING_DIR / "train", "loss") == [15, 20]
    assert _logged_steps(straight / lm.TRAINING_DIR / "train", "perplexity") == [5, 10, 15, 20]
    assert _logged_steps(straight / lm.TRAINING_DIR / "train", "tokens_per_second") == [
        5, 10, 15, 20]
    expected = tf.train.load_checkpoint(str(straight / "model.ckpt"))
    actual = tf.train.load_checkpoint(str(killed / "model.ckpt"))
    names = expected.get_variable_to_shape_map()
    assert "model/h1/attn/c_attn/w" in names and actual.get_tensor("global_step") == 20
    start = tf.train.load_checkpoint(str(straight / lm.TRAINING_DIR / "ckpt-10"))
    assert not np.allclose(start.get_tensor("model/wte/.ATTRIBUTES/VARIABLE_VALUE"),
                           expected.get_tensor("model/wte"))  # steps 11-20 did change it
    for name in names:
        np.testing.assert_allclose(actual.get_tensor(name), expected.get_tensor(name),
                                   atol=1e-6, err_msg=name)

    # The output folder is a model folder: the trained weights and the tokenizer.
    model, tokenizer, found = gpt2_pretrained.load(str(straight))
    assert (found.format, found.tokenizer_type) == ("openai", "bpe")
    assert tokenizer.encode("In the beginning") == learn_tokenizer(600).encode("In the beginning")
    gpt2_checkpoints.save_hf_folder(model, str(tmp_path / "as_hf"))
    hf = transformers.GPT2LMHeadModel.from_pretrained(str(tmp_path / "as_hf")).eval()
    # Every window has n_ctx targets, so the mean of window means is the token mean.
    reference = _hf_logits_loss(hf, _windows(data / "heldout.tfrecord"))
    assert results["loss"] == pytest.approx(reference, rel=1e-5)
    assert results["perplexity"] == pytest.approx(math.exp(reference), rel=1e-5)
    assert results["perplexity"] < 600 and results["global_step"] == 20
    text = (straight / "eval_results.txt").read_text()
    assert f"perplexity = {results['perplexity']}\n" in text


def test_script_trains_from_scratch_and_generate_samples_from_its_folder(data, tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    out = tmp_path / "out"
    run = subprocess.run(
        [sys.executable, str(REPO / "run_lm.py"), f"--input_file={data / 'train.tfrecord'}",
         f"--eval_file={data / 'heldout.tfrecord'}", f"--config_file={data / 'hparams.json'}",
         f"--vocab_dir={data / 'vocab'}", f"--output_dir={out}", "--do_train", "--do_eval",
         "--num_train_steps=6", "--num_warmup_steps=1", "--learning_rate=1e-3",
         "--train_batch_size=4", "--save_checkpoints_steps=3", "--iterations_per_loop=3",
         "--log_steps=3", "--gradient_accumulation_steps=2"],
        capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "perplexity = " in run.stdout and "tokens_per_second " in run.stderr
    samples = out / "samples.jsonl"
    gen = subprocess.run(
        [sys.executable, str(REPO / "generate.py"), f"--init_checkpoint={out}",
         "--prefix=In the beginning", "--length=5", "--top_k=1", "--seed=1",
         f"--output_file={samples}"], capture_output=True, text=True, env=env, timeout=300)
    assert gen.returncode == 0, gen.stderr[-3000:]
    line = json.loads(samples.read_text().splitlines()[0])
    assert line["prefix"] == "In the beginning" and line["new_tokens"] == 5


def test_records_that_do_not_fit_the_model_are_named(data, tmp_path):
    train = str(data / "train.tfrecord")
    assert lm.window_length(train, n_vocab=600) == N_CTX
    with pytest.raises(ValueError, match=r"train\.tfrecord: token id \d+ is beyond the "
                                         r"model's n_vocab 100"):
        lm.window_length(train, n_vocab=100)
    short = dataclasses.replace(_config(data), n_ctx=16)
    with pytest.raises(ValueError, match="windows of 32 tokens, more than the model's n_ctx 16"):
        lm.run_lm(_settings(data, tmp_path / "out", config=short))
    with pytest.raises(ValueError, match="At least one of --do_train or --do_eval"):
        lm.run_lm(_settings(data, tmp_path / "out", do_train=False, do_eval=False))
