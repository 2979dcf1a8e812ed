"""The shared training loop against independent references.

References: a PyTorch re-implementation of the toy model for gradients, a
numpy re-implementation of Google's optimizer step and of the forward pass,
and single-device training on the same global batch for the distributed and
accumulated runs. Subprocesses are bounded by timeouts and killed on failure.
"""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest
import tensorflow as tf

from bert_tf import distribution, trainer

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _mwms_worker as toy  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
WORKER = str(REPO / "tests" / "_mwms_worker.py")
LN_EPSILON = 1e-3  # keras.layers.LayerNormalization's default
DECAYED = [True, False, False, False, True, False]  # hidden/kernel, logits/kernel


# ----- independent references -----

def numpy_logits(weights, x):
    w1, b1, gamma, beta, w2, b2 = [np.asarray(w, np.float64) for w in weights]
    h = np.tanh(x @ w1 + b1)
    h = (h - h.mean(-1, keepdims=True)) / np.sqrt(h.var(-1, keepdims=True) + LN_EPSILON) * gamma + beta
    return h @ w2 + b2


def numpy_eval(weights, data):
    logits = numpy_logits(weights, data["x"])
    logp = logits - logits.max(-1, keepdims=True)
    logp = logp - np.log(np.exp(logp).sum(-1, keepdims=True))
    nll = -logp[np.arange(len(data["y"])), data["y"]]
    xent = float((data["w"] * nll).sum() / data["w"].sum())
    return {"xent": xent, "accuracy": float((logits.argmax(-1) == data["y"]).mean())}


def torch_loss_and_grads(weights, batch):
    import torch
    params = [torch.tensor(np.asarray(w, np.float64), requires_grad=True) for w in weights]
    w1, b1, gamma, beta, w2, b2 = params
    h = torch.tanh(torch.from_numpy(batch["x"].astype(np.float64)) @ w1 + b1)
    h = torch.nn.functional.layer_norm(h, (h.shape[-1],), gamma, beta, eps=LN_EPSILON)
    nll = torch.nn.functional.cross_entropy(h @ w2 + b2, torch.from_numpy(batch["y"].astype(np.int64)),
                                            reduction="none")
    w = torch.from_numpy(batch["w"].astype(np.float64))
    loss = (w * nll).sum() / w.sum()
    loss.backward()
    return float(loss.detach()), [p.grad.numpy() for p in params]


def google_adam_step(params, grads, m, v, lr, rate, b1=0.9, b2=0.999, eps=1e-6):
    for i, g in enumerate(grads):
        m[i] = b1 * m[i] + (1 - b1) * g
        v[i] = b2 * v[i] + (1 - b2) * g * g
        update = m[i] / (np.sqrt(v[i]) + eps)
        if DECAYED[i]:
            update = update + rate * params[i]
        params[i] = params[i] - lr * update


def batch_of(data, start, size):
    return {k: v[start:start + size] for k, v in data.items()}


def max_diff(a, b):
    return max(float(np.abs(x - y).max()) for x, y in zip(a, b))


def read_scalars(log_dir):
    scalars = {}
    for path in sorted(Path(log_dir).glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                scalars.setdefault(value.tag, {})[event.step] = float(tf.make_ndarray(value.tensor))
    return scalars


@pytest.fixture(autouse=True)
def float32_policy():
    yield
    keras.mixed_precision.set_global_policy("float32")


# ----- one device against the references -----

@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    """Two unshuffled steps of 16 examples, logging every step."""
    model_dir = str(tmp_path_factory.mktemp("reference"))
    config = trainer.TrainerConfig(model_dir=model_dir, num_train_steps=2, learning_rate=0.05,
                                   weight_decay_rate=0.01, clip_norm=1.0, steps_per_loop=2,
                                   log_steps=1, save_checkpoints_steps=100, seed=11)
    run = trainer.Trainer(toy.ToyTask(), config, distribution.get_strategy("one_device"))
    initial = [v.numpy() for v in run.model.trainable_variables]
    run.train(toy.dataset_fn_for(16))
    return run, initial, model_dir


def test_steps_match_torch_gradients_clipping_and_google_adam(reference_run):
    run, initial, _ = reference_run
    data = toy.toy_data()
    params = [w.astype(np.float64) for w in initial]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    for step in range(2):
        _, grads = torch_loss_and_grads(params, batch_of(data, 16 * step, 16))
        norm = np.sqrt(sum((g * g).sum() for g in grads))
        assert norm > 1.0, "the toy gradients should be large enough to exercise clipping"
        grads = [g / max(norm, 1.0) for g in grads]
        google_adam_step(params, grads, m, v, lr=0.05 * (1 - step / 2), rate=0.01)
    trained = [v.numpy() for v in run.model.trainable_variables]
    assert max_diff(trained, initial) > 1e-2
    for got, want in zip(trained, params):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=2e-6)


def test_train_summaries_hold_the_expected_values(reference_run):
    run, initial, model_dir = reference_run
    scalars = read_scalars(Path(model_dir) / "train")
    assert {"loss", "loss/xent", "metrics/accuracy", "learning_rate", "grad_norm",
            "examples_per_second"} <= set(scalars)
    loss, grads = torch_loss_and_grads(initial, batch_of(toy.toy_data(), 0, 16))
    assert scalars["loss"][1] == pytest.approx(loss, rel=1e-5)
    assert scalars["loss/xent"][1] == pytest.approx(loss, rel=1e-5)
    assert scalars["grad_norm"][1] == pytest.approx(np.sqrt(sum((g * g).sum() for g in grads)), rel=1e-5)
    assert scalars["learning_rate"] == pytest.approx({1: 0.05, 2: 0.025})
    assert scalars["examples_per_second"][2] > 0


def test_a_task_without_summaries_logs_only_the_trainers_scalars(reference_run):
    _, _, model_dir = reference_run
    assert set(read_scalars(Path(model_dir) / "train")) == {
        "loss", "loss/xent", "metrics/accuracy", "learning_rate", "grad_norm",
        "examples_per_second"}


class SummarisingTask(toy.ToyTask):
    """The toy task with scalars of its own; it keeps every Totals it is given."""

    def __init__(self, names=("weight_per_second", "exp_xent")):
        super().__init__()
        self.names = names
        self.seen = []

    def summaries(self, totals):
        self.seen.append(totals)
        first, second = self.names
        return {first: totals.counts["xent"] / totals.seconds, second: np.exp(totals.losses["xent"])}


def test_task_summaries_see_the_window_and_reach_tensorboard_and_the_log(tmp_path, caplog):
    """Two steps of 2 accumulated micro-batches of 8, each step logged: the
    counts, examples and losses a task's summaries get are those of the
    step's 16 examples (the loss checked against PyTorch)."""
    task = SummarisingTask()
    config = trainer.TrainerConfig(model_dir=str(tmp_path), num_train_steps=2, learning_rate=0.05,
                                   steps_per_loop=1, log_steps=1, save_checkpoints_steps=100,
                                   gradient_accumulation_steps=2, seed=11)
    run = trainer.Trainer(task, config, distribution.get_strategy("one_device"))
    initial = [v.numpy() for v in run.model.trainable_variables]
    data = toy.toy_data()
    with caplog.at_level("INFO", logger="absl"):
        logged = run.train(toy.dataset_fn_for(8))
    first, second = task.seen
    assert first.training and (first.steps, first.examples) == (1, 16.0)
    assert first.counts["xent"] == pytest.approx(float(data["w"][:16].sum()), rel=1e-6)
    assert second.counts["xent"] == pytest.approx(float(data["w"][16:32].sum()), rel=1e-6)
    loss, _ = torch_loss_and_grads(initial, batch_of(data, 0, 16))
    assert first.losses["xent"] == pytest.approx(loss, rel=1e-5)
    assert first.seconds > 0
    scalars = read_scalars(tmp_path / "train")
    assert scalars["exp_xent"][1] == pytest.approx(np.exp(loss), rel=1e-5)
    assert scalars["weight_per_second"][2] == pytest.approx(
        second.counts["xent"] / second.seconds, rel=1e-5)
    assert logged["exp_xent"] == pytest.approx(np.exp(second.losses["xent"]))
    assert re.search(r"step 2/2 .*  weight_per_second [0-9.e+]+  exp_xent [0-9.]+ ", caplog.text)

    results = run.evaluate(toy.dataset_fn_for(10))  # 10 batches, the last of 6
    evaluation = task.seen[-1]
    assert not evaluation.training and (evaluation.steps, evaluation.examples) == (10, 96.0)
    assert evaluation.counts["xent"] == pytest.approx(float(data["w"].sum()), rel=1e-6)
    expected = numpy_eval([v.numpy() for v in run.model.trainable_variables], data)["xent"]
    assert evaluation.losses["xent"] == pytest.approx(expected, rel=1e-5)
    assert results["exp_xent"] == pytest.approx(np.exp(expected), rel=1e-5)
    assert read_scalars(tmp_path / "eval")["exp_xent"][2] == pytest.approx(np.exp(expected), rel=1e-5)


def test_task_summaries_may_not_reuse_the_trainers_names(tmp_path):
    config = trainer.TrainerConfig(model_dir=str(tmp_path), num_train_steps=1, steps_per_loop=1,
                                   log_steps=1)
    run = trainer.Trainer(SummarisingTask(names=("grad_norm", "extra")), config,
                          distribution.get_strategy("one_device"))
    with pytest.raises(ValueError, match=r"SummarisingTask.summaries returned \['grad_norm'\]"):
        run.train(toy.dataset_fn_for(8))


def test_evaluate_aggregates_exactly_with_an_uneven_last_batch(reference_run):
    run, _, model_dir = reference_run
    data = toy.toy_data()
    weights = [v.numpy() for v in run.model.trainable_variables]
    results = run.evaluate(toy.dataset_fn_for(10))  # 96 examples: the last batch holds 6
    expected = numpy_eval(weights, data)
    assert results["xent"] == pytest.approx(expected["xent"], rel=1e-5)
    assert results["loss"] == pytest.approx(expected["xent"], rel=1e-5)
    assert results["accuracy"] == pytest.approx(expected["accuracy"])
    first_30 = run.evaluate(toy.dataset_fn_for(10), max_steps=3)
    assert first_30["xent"] == pytest.approx(numpy_eval(weights, batch_of(data, 0, 30))["xent"], rel=1e-5)
    eval_scalars = read_scalars(Path(model_dir) / "eval")
    assert {"xent", "loss", "accuracy"} <= set(eval_scalars)
    assert 2 in eval_scalars["accuracy"]


def test_predict_returns_outputs_in_input_order(reference_run):
    run, _, _ = reference_run
    outputs = run.predict(toy.dataset_fn_for(10))
    np.testing.assert_array_equal(outputs["index"], np.arange(toy.NUM_EXAMPLES))
    weights = [v.numpy() for v in run.model.trainable_variables]
    np.testing.assert_allclose(outputs["logits"], numpy_logits(weights, toy.toy_data()["x"]),
                               rtol=1e-4, atol=1e-5)


def test_training_past_the_last_step_changes_nothing(reference_run):
    run, _, _ = reference_run
    before = [v.numpy() for v in run.model.trainable_variables]
    assert run.train(toy.dataset_fn_for(16)) == {}
    assert max_diff(before, [v.numpy() for v in run.model.trainable_variables]) == 0.0


def test_gradient_accumulation_equals_one_big_batch(tmp_path):
    strategy = distribution.get_strategy("one_device")
    big = toy.weights(toy.train(str(tmp_path / "big"), strategy, 16, 6))
    accumulated = toy.weights(toy.train(str(tmp_path / "accumulated"), strategy, 4, 6, accumulation=4))
    # The per-example weights differ between micro-batches, so averaging
    # micro-batch means (instead of dividing by the global count) would fail.
    assert max_diff(big, accumulated) < 2e-6


def test_xla_step_with_accumulation_equals_plain_step(tmp_path):
    def run(name, global_batch, accumulation, use_xla):
        config = trainer.TrainerConfig(model_dir=str(tmp_path / name), num_train_steps=4, learning_rate=0.05,
                                       steps_per_loop=2, gradient_accumulation_steps=accumulation,
                                       use_xla=use_xla, seed=3)
        result = trainer.Trainer(toy.ToyTask(), config, distribution.get_strategy("one_device"))
        result.train(toy.dataset_fn_for(global_batch))
        return toy.weights(result)

    assert max_diff(run("plain", 16, 1, False), run("xla", 8, 2, True)) < 2e-6


def _pretraining_batches(config, num_examples, seq_length=12, predictions=4, seed=0):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(4, seq_length + 1, size=num_examples)
    mask = (np.arange(seq_length)[None, :] < lengths[:, None]).astype("int32")
    real_predictions = rng.integers(1, predictions + 1, size=num_examples)
    return {
        "input_word_ids": (rng.integers(1, config.vocab_size, size=(num_examples, seq_length)) * mask).astype("int32"),
        "input_mask": mask,
        "input_type_ids": (np.arange(seq_length)[None, :] >= lengths[:, None] // 2).astype("int32") * mask,
        "masked_lm_positions": rng.integers(0, 4, size=(num_examples, predictions)).astype("int32"),
        "masked_lm_ids": rng.integers(1, config.vocab_size, size=(num_examples, predictions)).astype("int32"),
        "masked_lm_weights": (np.arange(predictions)[None, :] < real_predictions[:, None]).astype("float32"),
        "next_sentence_labels": rng.integers(0, 2, size=(num_examples, 1)).astype("int32"),
    }


def test_bert_pretraining_with_accumulation_matches_a_big_batch_reference(tmp_path):
    """Tiny BERT, 4 micro-batches of 4 against eager gradients on 16 + numpy Adam."""
    from bert_tf import modeling, pretraining
    config = modeling.BertConfig(vocab_size=60, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                 intermediate_size=32, max_position_embeddings=16, type_vocab_size=2,
                                 hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    data = _pretraining_batches(config, 32)
    settings = trainer.TrainerConfig(model_dir=str(tmp_path), num_train_steps=2, learning_rate=1e-2,
                                     steps_per_loop=2, gradient_accumulation_steps=4, seed=4)
    run = trainer.Trainer(pretraining.PretrainingTask(config), settings, distribution.get_strategy("one_device"))
    initial = toy.weights(run)
    run.train(lambda context: tf.data.Dataset.from_tensor_slices(data).batch(4))

    reference = modeling.BertPretrainer(config)
    names = {id(var): name for name, var in reference.checkpoint_map().items()}
    decayed = [not re.search("LayerNorm|layer_norm|bias", names[id(v)]) for v in reference.trainable_variables]
    for var, value in zip(reference.trainable_variables, initial):
        var.assign(value)
    params = [w.astype(np.float64) for w in initial]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    for step in range(2):
        batch = {k: tf.constant(x[16 * step:16 * step + 16]) for k, x in data.items()}
        with tf.GradientTape() as tape:
            out = reference(batch, training=True)
            weights = batch["masked_lm_weights"]
            mlm = tf.nn.sparse_softmax_cross_entropy_with_logits(batch["masked_lm_ids"], out["masked_lm_logits"])
            nsp = tf.nn.sparse_softmax_cross_entropy_with_logits(batch["next_sentence_labels"][:, 0],
                                                                 out["next_sentence_logits"])
            loss = tf.reduce_sum(mlm * weights) / tf.reduce_sum(weights) + tf.reduce_mean(nsp)
        grads = [tf.convert_to_tensor(g).numpy().astype(np.float64)
                 for g in tape.gradient(loss, reference.trainable_variables)]
        norm = np.sqrt(sum((g * g).sum() for g in grads))
        grads = [g / max(norm, 1.0) for g in grads]
        # Google's rule with the betas as float32 holds them (see test_optimization).
        b1, b2 = float(np.float32(0.9)), float(np.float32(0.999))
        for i, g in enumerate(grads):
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g * g
            update = m[i] / (np.sqrt(v[i]) + 1e-6) + (0.01 * params[i] if decayed[i] else 0.0)
            params[i] = params[i] - 1e-2 * (1 - step / 2) * update
        for var, value in zip(reference.trainable_variables, params):
            var.assign(value.astype(np.float32))
    # Micro-batches hold different numbers of real masked positions, so only
    # global normalisation over all of them reproduces the big-batch step.
    assert max_diff(toy.weights(run), params) < 5e-6


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_mixed_precision_trains_close_to_float32(tmp_path, precision):
    def run(mixed_precision, name):
        config = trainer.TrainerConfig(model_dir=str(tmp_path / name), num_train_steps=4, learning_rate=0.01,
                                       steps_per_loop=2, log_steps=2, save_checkpoints_steps=100, seed=5,
                                       mixed_precision=mixed_precision)
        result = trainer.Trainer(toy.ToyTask(), config, distribution.get_strategy("one_device"))
        initial = toy.weights(result)
        result.train(toy.dataset_fn_for(16))
        return result, initial

    full, initial = run(None, "f32")
    mixed, mixed_initial = run(precision, precision)
    assert max_diff(initial, mixed_initial) == 0.0  # same seed, float32 master weights
    assert mixed.model.layers[1].compute_dtype == {"fp16": "float16", "bf16": "bfloat16"}[precision]
    assert isinstance(mixed.optimizer, keras.optimizers.LossScaleOptimizer) == (precision == "fp16")
    # Low-precision compute perturbs the update a little (bf16 keeps 8
    # mantissa bits) but must move the weights the same way.
    moved = max_diff(toy.weights(full), initial)
    assert max_diff(toy.weights(full), toy.weights(mixed)) < 0.25 * moved


class _UnusedHeadTask(toy.ToyTask):
    """The model has a second head that no loss reads."""

    def build_model(self):
        model = super().build_model()
        unused = keras.layers.Dense(2, name="unused_head")(model.layers[-2].output)
        return keras.Model(model.inputs, [model.outputs[0], unused])

    def forward(self, model, batch, training):
        return super().forward(lambda x, training: model(x, training=training)[0], batch, training)


def test_variables_without_gradients_are_not_decayed_or_moved(tmp_path):
    # Google's optimizer skips variables whose gradient is None, weight decay included.
    config = trainer.TrainerConfig(model_dir=str(tmp_path), num_train_steps=2, learning_rate=0.05,
                                   weight_decay_rate=0.1, steps_per_loop=2)
    run = trainer.Trainer(_UnusedHeadTask(), config, distribution.get_strategy("one_device"))
    head = run.model.get_layer("unused_head").kernel
    before, trained_before = head.numpy(), run.model.get_layer("logits").kernel.numpy()
    run.train(toy.dataset_fn_for(16))
    np.testing.assert_array_equal(head.numpy(), before)
    assert np.abs(run.model.get_layer("logits").kernel.numpy() - trained_before).max() > 1e-3


class _HugeLossTask(toy.ToyTask):
    """Its float16 gradients overflow at Keras' initial loss scale of 2**15."""

    def forward(self, model, batch, training):
        outputs = super().forward(model, batch, training)
        return trainer.TaskOutputs(losses={k: 1e4 * v for k, v in outputs.losses.items()})


@pytest.mark.parametrize("use_xla", [False, True])
def test_fp16_overflow_skips_the_update_and_halves_the_scale(tmp_path, use_xla):
    config = trainer.TrainerConfig(model_dir=str(tmp_path), num_train_steps=1, num_warmup_steps=0,
                                   learning_rate=0.01, steps_per_loop=1, mixed_precision="fp16",
                                   use_xla=use_xla)
    run = trainer.Trainer(_HugeLossTask(), config, distribution.get_strategy("one_device"))
    before = toy.weights(run)
    scale = float(run.optimizer.dynamic_scale.numpy())
    run.train(toy.dataset_fn_for(16))
    assert max_diff(before, toy.weights(run)) == 0.0
    assert float(run.optimizer.dynamic_scale.numpy()) == scale / 2
    assert int(run.global_step.numpy()) == 1 and int(run.optimizer.iterations.numpy()) == 0


def test_empty_dataset_is_a_clear_error(tmp_path):
    config = trainer.TrainerConfig(model_dir=str(tmp_path), num_train_steps=2)
    run = trainer.Trainer(toy.ToyTask(), config, distribution.get_strategy("one_device"))
    with pytest.raises(ValueError, match="dataset_fn produced no batches"):
        run.train(lambda context: tf.data.Dataset.from_tensor_slices(toy.toy_data()).take(0).batch(4))


def test_config_rejects_bad_values(tmp_path):
    with pytest.raises(ValueError, match="gradient_accumulation_steps"):
        trainer.TrainerConfig(model_dir=str(tmp_path), num_train_steps=10, gradient_accumulation_steps=0)
    with pytest.raises(ValueError, match="mixed_precision"):
        trainer.TrainerConfig(model_dir=str(tmp_path), num_train_steps=10, mixed_precision="fp8")


# ----- several replicas and processes -----

def run_checked(args, timeout, env=None):
    proc = subprocess.run([sys.executable, WORKER, *args], cwd=REPO, env=env, timeout=timeout,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.fixture(scope="module")
def mirrored_results(tmp_path_factory):
    work = tmp_path_factory.mktemp("mirrored")
    run_checked(["mirrored", str(work / "out.npz"), str(work)], timeout=240)
    return dict(np.load(work / "out.npz"))


def _run_weights(results, name):
    return [results[f"{name}/w{i}"] for i in range(6)]


def test_two_mirrored_replicas_equal_one_device(mirrored_results):
    single = _run_weights(mirrored_results, "single")
    assert max_diff(single, _run_weights(mirrored_results, "mirrored")) < 2e-6


def test_mirrored_with_accumulation_equals_one_device(mirrored_results):
    single = _run_weights(mirrored_results, "single")
    assert max_diff(single, _run_weights(mirrored_results, "mirrored_accum")) < 2e-6


def test_mirrored_fp16_tracks_float32_as_closely_as_one_device(mirrored_results):
    # float16 rounds each replica's gradient before the sum, so two replicas
    # cannot match one device bit for bit; a loss-scaling or clipping slip
    # would show as a gap far beyond that rounding (lr 0.05 per step).
    rounding = max_diff(_run_weights(mirrored_results, "single_fp16"), _run_weights(mirrored_results, "single"))
    assert 0 < rounding < 2e-3
    mirrored_gap = max_diff(_run_weights(mirrored_results, "mirrored_fp16"), _run_weights(mirrored_results, "mirrored"))
    assert mirrored_gap < 3 * rounding


def test_mirrored_evaluate_and_predict_with_an_idle_replica(mirrored_results):
    weights = _run_weights(mirrored_results, "mirrored_accum")
    expected = numpy_eval(weights, toy.toy_data())
    assert float(mirrored_results["eval/xent"]) == pytest.approx(expected["xent"], rel=1e-5)
    assert float(mirrored_results["eval/accuracy"]) == pytest.approx(expected["accuracy"])
    np.testing.assert_array_equal(mirrored_results["predict/index"], np.arange(toy.NUM_EXAMPLES))
    np.testing.assert_allclose(mirrored_results["predict/logits"],
                               numpy_logits(weights, toy.toy_data()["x"]), rtol=1e-4, atol=1e-5)


def test_mirrored_dropout_runs(mirrored_results):
    assert bool(mirrored_results["dropout_finite"])


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_multi_worker_mirrored_equals_one_device(tmp_path):
    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    procs = []
    try:
        for index in range(2):
            env = dict(os.environ, TF_CONFIG=json.dumps(
                {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}))
            procs.append(subprocess.Popen(
                [sys.executable, WORKER, "train", str(tmp_path / f"w{index}.npz"), str(tmp_path / "mwms"),
                 "multi_worker_mirrored", "16", "6"],
                cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
        deadline = time.time() + 180
        for proc in procs:
            _, stderr = proc.communicate(timeout=max(1, deadline - time.time()))
            assert proc.returncode == 0, stderr[-3000:]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    single = toy.weights(toy.train(str(tmp_path / "single"), distribution.get_strategy("one_device"), 16, 6))
    for index in range(2):
        with np.load(tmp_path / f"w{index}.npz") as saved:
            assert int(saved["replicas"]) == 2
            assert max_diff(single, [saved[f"w{i}"] for i in range(6)]) < 2e-6
    assert not (tmp_path / "mwms" / ".worker_1").exists()


def test_sigkill_then_resume_matches_an_uninterrupted_run(tmp_path):
    # Dropout is on, so the resumed run must also restore the dropout seed state.
    model_dir, out = tmp_path / "killed", tmp_path / "resumed.npz"
    args = ["train", str(out), str(model_dir), "one_device", "16", "12"]
    proc = subprocess.Popen([sys.executable, WORKER, *args, "0.3", "0.2"], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while not (model_dir / "checkpoint").exists():
            assert proc.poll() is None, "training ended before it could be killed"
            assert time.time() < deadline, "no checkpoint appeared"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    killed_at = int(tf.train.latest_checkpoint(str(model_dir)).rsplit("-", 1)[1])
    assert 2 <= killed_at < 12 and not out.exists()
    run_checked([*args, "0", "0.2"], timeout=120)
    strategy = distribution.get_strategy("one_device")
    uninterrupted = toy.weights(toy.train(str(tmp_path / "straight"), strategy, 16, 12, dropout=0.2))
    without_dropout = toy.weights(toy.train(str(tmp_path / "no_dropout"), strategy, 16, 12))
    with np.load(out) as saved:
        resumed = [saved[f"w{i}"] for i in range(6)]
    assert max_diff(uninterrupted, resumed) < 1e-6
    assert max_diff(without_dropout, resumed) > 1e-3  # dropout really acted


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_stop_signal_saves_and_the_same_command_resumes_to_the_same_weights(tmp_path, signum):
    # No periodic checkpoint (every 100 steps of 12): the one found after the
    # stop can only be the stop's own.
    model_dir, out = tmp_path / "stopped", tmp_path / "resumed.npz"
    args = ["train", str(out), str(model_dir), "one_device", "16", "12"]
    # A child of a non-interactive shell starts with SIGINT ignored; a
    # terminal's Ctrl-C reaches a process with the default disposition.
    proc = subprocess.Popen([sys.executable, WORKER, *args, "0.3", "0.2", "100"], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.time() + 120
        # The first logged window (step 2) creates the train summaries.
        while not list((model_dir / "train").glob("events*")):
            assert proc.poll() is None, "training ended before it could be stopped"
            assert time.time() < deadline, "training did not start"
            time.sleep(0.05)
        proc.send_signal(signum)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signum, stderr[-2000:]
    stopped_at = int(tf.train.latest_checkpoint(str(model_dir)).rsplit("-", 1)[1])
    assert 2 <= stopped_at < 12 and not out.exists()
    name = signal.Signals(signum).name
    assert (f"Stopped by {name} at step {stopped_at}/12 with a checkpoint in {model_dir}: "
            "run the same command again to resume") in stderr
    assert "Traceback" not in stderr
    run_checked([*args, "0", "0.2", "100"], timeout=120)
    uninterrupted = toy.weights(toy.train(str(tmp_path / "straight"), distribution.get_strategy("one_device"),
                                          16, 12, dropout=0.2))
    with np.load(out) as saved:
        assert max_diff(uninterrupted, [saved[f"w{i}"] for i in range(6)]) < 1e-6
