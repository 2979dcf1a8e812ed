"""GPT-2 language-model training on a tiny model: the task's loss is Hugging
Face's GPT2LMHeadModel(labels=...) loss on the same weights, run_lm.py
SIGKILLed after a checkpoint resumes with the same command to the weights of
an uninterrupted run, perplexity and tokens/s reach TensorBoard, the held-out
perplexity in eval_results.txt is what Hugging Face computes with the weights
the output folder holds, and that folder is one generate.py samples from."""

import dataclasses
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from _gpt2_fixtures import CORPORA, hf_gpt2, learn_tokenizer, save_hf_folder
from _kill_and_resume import assert_same_tensors, checkpoint_step, sigkill_after_first_checkpoint
from bert_tf import gpt2, gpt2_checkpoints, gpt2_pretrained, lm, lm_data, trainer

REPO = Path(__file__).resolve().parents[1]
N_CTX = 32
# Checkpoints every 10 steps: a kill after the first leaves 30 steps to redo.
STEPS = 40


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
        num_train_steps=STEPS, learning_rate=1e-3, num_warmup_steps=2,
        training=trainer.TrainingOptions(steps_per_loop=5, save_checkpoints_steps=10,
                                         log_steps=5, gradient_accumulation_steps=2))
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


def _logged_steps(event_files, tag):
    steps = []
    for path in sorted(event_files):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            steps += [event.step for value in event.summary.value if value.tag == tag]
    return sorted(steps)


def _scalars(folder):
    scalars = {}
    for path in sorted(folder.glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                scalars.setdefault(value.tag, {})[event.step] = float(
                    tf.make_ndarray(value.tensor))
    return scalars


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


def _script_command(data, output_dir):
    """run_lm.py with the flags that say what `_settings` says."""
    return [sys.executable, str(REPO / "run_lm.py"), f"--input_file={data / 'train.tfrecord'}",
            f"--eval_file={data / 'heldout.tfrecord'}", f"--config_file={data / 'hparams.json'}",
            f"--vocab_dir={data / 'vocab'}", f"--output_dir={output_dir}", "--do_train",
            "--do_eval", f"--num_train_steps={STEPS}", "--num_warmup_steps=2",
            "--learning_rate=1e-3", "--train_batch_size=8", "--eval_batch_size=8",
            "--save_checkpoints_steps=10", "--iterations_per_loop=5", "--log_steps=5",
            "--gradient_accumulation_steps=2", f"--export_dir={output_dir}_served"]


def _env():
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")


@pytest.fixture(scope="module")
def straight(data, tmp_path_factory):
    """The uninterrupted run, in this process through the library call."""
    out = tmp_path_factory.mktemp("straight")
    return out, lm.run_lm(_settings(data, out))


@pytest.fixture(scope="module")
def resumed(data, tmp_path_factory):
    """run_lm.py SIGKILLed once its first checkpoint is complete, then the
    same command again."""
    out = tmp_path_factory.mktemp("killed") / "out"
    command = _script_command(data, out)
    killed_at = sigkill_after_first_checkpoint(command, out / lm.TRAINING_DIR, env=_env())
    exported_when_killed = (out / "model.ckpt.index").exists()
    events_when_killed = set((out / lm.TRAINING_DIR / "train").glob("events.out.tfevents.*"))
    rerun = subprocess.run(command, capture_output=True, text=True, env=_env(), timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    return out, killed_at, exported_when_killed, events_when_killed, rerun


def test_sigkilled_script_resumes_to_the_weights_of_an_uninterrupted_run(straight, resumed):
    out, killed_at, exported_when_killed, events_when_killed, rerun = resumed
    step = checkpoint_step(killed_at)
    # Cut short: killed before its last step and before it wrote the model folder.
    assert 10 <= step < STEPS and not exported_when_killed
    # It went on from that checkpoint, not from step 0: the second run logged
    # only the steps after it.
    assert f"Restored {killed_at} (step {step})" in rerun.stderr
    train = out / lm.TRAINING_DIR / "train"
    new_events = set(train.glob("events.out.tfevents.*")) - events_when_killed
    assert _logged_steps(new_events, "loss") == list(range(step + 5, STEPS + 1, 5))
    # Weights, Adam's moments, step counters and dropout generator states.
    straight_dir = straight[0]
    compared = assert_same_tensors(straight_dir / lm.TRAINING_DIR / f"ckpt-{STEPS}",
                                   out / lm.TRAINING_DIR / f"ckpt-{STEPS}")
    assert compared > 3 * len(gpt2.GPT2LM(_config_of(out)).trainable_variables)
    assert_same_tensors(straight_dir / "model.ckpt", out / "model.ckpt")
    start = tf.train.load_checkpoint(str(killed_at))
    final = tf.train.load_checkpoint(str(out / "model.ckpt"))
    assert not np.allclose(start.get_tensor("model/wte/.ATTRIBUTES/VARIABLE_VALUE"),
                           final.get_tensor("model/wte"))  # the steps after the kill did change it
    assert "perplexity = " in rerun.stdout and "tokens_per_second " in rerun.stderr
    assert (out / "eval_results.txt").read_text() == (straight_dir / "eval_results.txt").read_text()


def _config_of(folder):
    return gpt2_checkpoints.read_openai_hparams(str(folder))


def test_perplexity_and_tokens_per_second_reach_tensorboard(straight):
    out, _ = straight
    logged = list(range(5, STEPS + 1, 5))
    for tag in ("loss", "perplexity", "learning_rate", "tokens_per_second"):
        assert _logged_steps((out / lm.TRAINING_DIR / "train").glob("events*"), tag) == logged
    for tag in ("loss", "perplexity"):
        assert _logged_steps((out / lm.TRAINING_DIR / "eval").glob("events*"), tag) == [STEPS]
    train = _scalars(out / lm.TRAINING_DIR / "train")
    for step in logged:
        assert train["perplexity"][step] == pytest.approx(math.exp(train["loss"][step]), rel=1e-5)
        # Every window read holds N_CTX targets.
        assert train["tokens_per_second"][step] == pytest.approx(
            train["examples_per_second"][step] * N_CTX, rel=1e-4)


def test_output_folder_holds_the_trained_model_and_its_held_out_perplexity(straight, data,
                                                                            tmp_path):
    import transformers

    out, results = straight
    # The output folder is a model folder: the trained weights and the tokenizer.
    model, tokenizer, found = gpt2_pretrained.load(str(out))
    assert (found.format, found.tokenizer_type) == ("openai", "bpe")
    assert tokenizer.encode("In the beginning") == learn_tokenizer(600).encode("In the beginning")
    assert tf.train.load_checkpoint(str(out / "model.ckpt")).get_tensor("global_step") == STEPS
    gpt2_checkpoints.save_hf_folder(model, str(tmp_path / "as_hf"))
    hf = transformers.GPT2LMHeadModel.from_pretrained(str(tmp_path / "as_hf")).eval()
    # Every window has n_ctx targets, so the mean of window means is the token mean.
    reference = _hf_logits_loss(hf, _windows(data / "heldout.tfrecord"))
    assert results["loss"] == pytest.approx(reference, rel=1e-5)
    assert results["perplexity"] == pytest.approx(math.exp(reference), rel=1e-5)
    assert results["perplexity"] < 600 and results["global_step"] == STEPS
    text = (out / "eval_results.txt").read_text()
    assert f"perplexity = {results['perplexity']}\n" in text


def test_generate_samples_from_the_scripts_output_folder(resumed):
    out = resumed[0]
    samples = out / "samples.jsonl"
    gen = subprocess.run(
        [sys.executable, str(REPO / "generate.py"), f"--init_checkpoint={out}",
         "--prefix=In the beginning", "--length=5", "--top_k=1", "--seed=1",
         f"--output_file={samples}"], capture_output=True, text=True, env=_env(), timeout=300)
    assert gen.returncode == 0, gen.stderr[-3000:]
    line = json.loads(samples.read_text().splitlines()[0])
    assert line["prefix"] == "In the beginning" and line["new_tokens"] == 5


def test_export_dir_serves_what_the_output_folder_generates(resumed):
    # The SavedModel written at the end of run_lm.py --export_dir, called on
    # raw prompts, continues them as the library does from the model folder.
    from bert_tf import generation, generation_serving

    out = resumed[0]
    served = generation_serving.load(f"{out}_served").signatures["generate"]
    model, tokenizer, _ = gpt2_pretrained.load(str(out))
    prompts = ["In the beginning", "The history of the"]
    want = [s.text for s in generation.generate_text(model, tokenizer, prompts, 6, top_k=1,
                                                      batch_size=2)]
    got = served(prompt=tf.constant(prompts), max_new_tokens=tf.constant(6),
                 temperature=tf.constant(1.0), top_k=tf.constant(1), top_p=tf.constant(1.0),
                 seed=tf.constant(0))["text"].numpy()
    assert [t.decode("utf-8") for t in got] == want


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
