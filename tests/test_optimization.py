"""Optimizers and schedule against numpy re-derivations of the published rules.

References: Google BERT's AdamWeightDecayOptimizer (Adam without bias
correction, update += rate * param, no decay for LayerNorm/bias), the LAMB
paper's Algorithm 2 (You et al., 2019), and Google's warm-up + polynomial
decay schedule.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest

from bert_tf import optimization


def _tiny_model():
    inputs = keras.Input((3,))
    x = keras.layers.Dense(4, name="dense")(inputs)
    x = keras.layers.LayerNormalization(name="LayerNorm")(x)
    outputs = keras.layers.Dense(2, name="output_layer_norm_free")(x)
    model = keras.Model(inputs, outputs)
    rng = np.random.default_rng(0)
    for v in model.trainable_variables:
        v.assign(rng.normal(size=v.shape).astype("float32"))
    return model


def _random_grads(model, steps, seed=1):
    rng = np.random.default_rng(seed)
    return [[rng.normal(size=v.shape).astype("float32") for v in model.trainable_variables]
            for _ in range(steps)]


def _numpy_bert_adam(params, grads_per_step, lrs, rate, decays, b1=0.9, b2=0.999, eps=1e-6):
    # In float64, but with the betas a float32 optimizer actually holds:
    # float32(0.999) leaves 1 - b2 short of 1e-3 by 1.3e-5 relative, which
    # shows in the fourth decimal of v after a few steps.
    b1, b2 = float(np.float32(b1)), float(np.float32(b2))
    params = [p.astype(np.float64) for p in params]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    for grads, lr in zip(grads_per_step, lrs):
        for i, g in enumerate(grads):
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g * g
            update = m[i] / (np.sqrt(v[i]) + eps)
            if decays[i]:
                update = update + rate * params[i]
            params[i] = params[i] - lr * update
    return params


def _numpy_lamb(params, grads_per_step, lr, rate, decays, b1=0.9, b2=0.999, eps=1e-6):
    params = [p.astype(np.float64) for p in params]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    for t, grads in enumerate(grads_per_step, start=1):
        for i, g in enumerate(grads):
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g * g
            r = (m[i] / (1 - b1**t)) / (np.sqrt(v[i] / (1 - b2**t)) + eps)
            if decays[i]:
                r = r + rate * params[i]
                trust = np.linalg.norm(params[i]) / np.linalg.norm(r)
            else:
                trust = 1.0
            params[i] = params[i] - lr * trust * r
    return params


def _expected_decay_flags(model):
    # Written out by hand from the variable paths: only dense kernels decay.
    names = [v.path for v in model.trainable_variables]
    assert names == ["dense/kernel", "dense/bias", "LayerNorm/gamma", "LayerNorm/beta",
                     "output_layer_norm_free/kernel", "output_layer_norm_free/bias"]
    return [True, False, False, False, False, False]


def test_adam_weight_decay_matches_numpy_over_steps():
    model = _tiny_model()
    start = [v.numpy() for v in model.trainable_variables]
    grads = _random_grads(model, steps=6)
    opt = optimization.AdamWeightDecay(learning_rate=0.05, weight_decay_rate=0.1)
    for g in grads:
        opt.apply(g, model.trainable_variables)
    decays = _expected_decay_flags(model)
    # The "output_layer_norm_free" kernel contains "layer_norm" in its path,
    # so Google's substring rule excludes it too.
    expected = _numpy_bert_adam(start, grads, [0.05] * 6, 0.1, decays)
    for var, want in zip(model.trainable_variables, expected):
        np.testing.assert_allclose(var.numpy(), want, rtol=2e-5, atol=2e-6, err_msg=var.path)


def test_adam_weight_decay_differs_from_bias_corrected_adam():
    # Guard against silently using keras AdamW: the first step of Adam with
    # bias correction moves each weight by ~lr; Google's moves by
    # lr * (1-b1)/sqrt(1-b2) ~ 3.16 * lr.
    var = keras.Variable(np.zeros(3, "float32"), name="w")
    opt = optimization.AdamWeightDecay(learning_rate=0.01)
    opt.apply([np.array([1.0, -2.0, 0.5], "float32")], [var])
    np.testing.assert_allclose(np.abs(var.numpy()), 0.01 * 0.1 / np.sqrt(0.001), rtol=1e-4)


def test_custom_exclusions_and_zero_rate():
    model = _tiny_model()
    start = [v.numpy() for v in model.trainable_variables]
    grads = _random_grads(model, steps=3, seed=7)
    opt = optimization.AdamWeightDecay(learning_rate=0.01, weight_decay_rate=0.3,
                                       exclude_from_weight_decay=["gamma"])
    for g in grads:
        opt.apply(g, model.trainable_variables)
    decays = [True, True, False, True, True, True]
    expected = _numpy_bert_adam(start, grads, [0.01] * 3, 0.3, decays)
    for var, want in zip(model.trainable_variables, expected):
        np.testing.assert_allclose(var.numpy(), want, rtol=2e-5, atol=2e-6, err_msg=var.path)


def test_lamb_matches_paper_algorithm():
    model = _tiny_model()
    start = [v.numpy() for v in model.trainable_variables]
    grads = _random_grads(model, steps=5, seed=3)
    opt = optimization.Lamb(learning_rate=0.02, weight_decay_rate=0.05)
    for g in grads:
        opt.apply(g, model.trainable_variables)
    expected = _numpy_lamb(start, grads, 0.02, 0.05, _expected_decay_flags(model))
    for var, want in zip(model.trainable_variables, expected):
        np.testing.assert_allclose(var.numpy(), want, rtol=2e-5, atol=2e-6, err_msg=var.path)


def _google_schedule(step, init_lr, num_train, num_warmup):
    # Google's create_optimizer, written independently: polynomial_decay from
    # step 0 with power 1 and end lr 0, overridden by warm-up while step < warm-up.
    lr = init_lr * (1.0 - min(step, num_train) / num_train)
    if num_warmup and step < num_warmup:
        lr = init_lr * step / num_warmup
    return lr


@pytest.mark.parametrize("step, expected", [(0, 0.0), (5, 5e-5), (9, 9e-5), (10, 9e-5),
                                            (50, 5e-5), (99, 1e-6), (100, 0.0), (250, 0.0)])
def test_schedule_closed_form(step, expected):
    schedule = optimization.LinearWarmupPolynomialDecay(1e-4, num_train_steps=100, num_warmup_steps=10)
    # float32 arithmetic: relative 1e-5, and an exact 0 where the rate is 0.
    assert float(schedule(step)) == pytest.approx(expected, rel=1e-5, abs=1e-13)
    assert float(schedule(step)) == pytest.approx(_google_schedule(step, 1e-4, 100, 10), rel=1e-5, abs=1e-13)


def test_schedule_without_warmup_starts_at_peak():
    schedule = optimization.LinearWarmupPolynomialDecay(2e-5, num_train_steps=40)
    assert float(schedule(0)) == pytest.approx(2e-5)
    assert float(schedule(30)) == pytest.approx(5e-6)


def test_create_optimizer_drives_schedule_by_applied_updates():
    var = keras.Variable(np.ones(2, "float32"), name="kernel")
    opt = optimization.create_optimizer("adamw", 1e-2, num_train_steps=10, num_warmup_steps=2,
                                        weight_decay_rate=0.0)
    g = np.ones(2, "float32")
    opt.apply([g], [var])  # step 0 of warm-up: learning rate 0, nothing moves
    np.testing.assert_array_equal(var.numpy(), np.ones(2))
    opt.apply([g], [var])  # step 1: lr = 1e-2 * 1/2
    lrs = [_google_schedule(s, 1e-2, 10, 2) for s in range(2)]
    expected = _numpy_bert_adam([np.ones(2)], [[g], [g]], lrs, 0.0, [False])[0]
    np.testing.assert_allclose(var.numpy(), expected, rtol=1e-6)
    assert int(opt.iterations) == 2


def test_create_optimizer_rejects_unknown_name():
    with pytest.raises(ValueError, match="adagrad"):
        optimization.create_optimizer("adagrad", 1e-3, 10)


def test_optimizer_config_round_trip():
    opt = optimization.create_optimizer("lamb", 1e-3, 100, 10, weight_decay_rate=0.02, aggregate_gradients=False)
    clone = optimization.Lamb.from_config(opt.get_config())
    assert clone.weight_decay_rate == 0.02
    assert clone.aggregate_gradients is False
    assert clone.exclude_from_weight_decay == list(optimization.DEFAULT_EXCLUDE_FROM_WEIGHT_DECAY)
    assert float(clone.learning_rate) == pytest.approx(0.0)


def test_bert_parameters_decay_exactly_as_google_names_them():
    # Google decides by its checkpoint names; we decide by Keras paths. The
    # model's checkpoint map pairs the two for every parameter.
    import re

    from bert_tf import modeling
    config = modeling.BertConfig(vocab_size=40, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                                 intermediate_size=16, max_position_embeddings=8, type_vocab_size=2)
    table = modeling.BertPretrainer(config).checkpoint_map()
    opt = optimization.AdamWeightDecay(weight_decay_rate=0.01)
    google = {name: not re.search("LayerNorm|layer_norm|bias", name) for name in table}
    assert 0 < sum(google.values()) < len(google)
    assert {name: opt._decays(var) for name, var in table.items()} == google


@pytest.mark.parametrize("fused", [True, False])
def test_bias_corrected_adam_weight_decay_matches_torch_adamw(fused, monkeypatch):
    # PyTorch's AdamW (what Hugging Face fine-tunes with) is the reference:
    # decoupled decay, bias-corrected moments. With a tiny epsilon the two
    # epsilon placements (after vs before the sqrt(1 - b2**t) factor) agree.
    torch = pytest.importorskip("torch")
    if not fused:  # the backend-neutral path instead of the fused TF kernel
        monkeypatch.setattr(keras.backend, "backend", lambda: "numpy")
    rng = np.random.default_rng(5)
    start = rng.normal(size=(4, 3)).astype("float32")
    grads = rng.normal(size=(6, 4, 3)).astype("float32")
    var = keras.Variable(start, name="kernel")
    opt = optimization.create_optimizer("adamw_bias_corrected", 0.01, num_train_steps=10 ** 6,
                                        weight_decay_rate=0.1, epsilon=1e-12)
    param = torch.nn.Parameter(torch.from_numpy(start.copy()))
    reference = torch.optim.AdamW([param], lr=0.01, betas=(0.9, 0.999), eps=1e-12,
                                  weight_decay=0.1)
    for step, g in enumerate(grads):
        opt.apply([g], [var])
        param.grad = torch.from_numpy(g.copy())
        reference.step()
        # The schedule decays from step 0: lr(t) = 0.01 * (1 - t / 1e6).
        for group in reference.param_groups:
            group["lr"] = 0.01 * (1 - (step + 1) / 10 ** 6)
        np.testing.assert_allclose(var.numpy(), param.detach().numpy(), rtol=1e-5, atol=1e-6)
    assert optimization.AdamWeightDecay.from_config(opt.get_config()).bias_correction is True


def test_sparse_sgd_equals_torch_sgd_on_dense_and_embedding_gradients():
    # torch.optim.SGD (no momentum) is plain p -= lr * g; an embedding
    # lookup's gradient reaches ours as IndexedSlices, with a repeated row.
    import tensorflow as tf

    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    start = rng.normal(size=(5, 3)).astype("float32")
    table = keras.Variable(start, name="embeddings")
    param = torch.nn.Parameter(torch.from_numpy(start.copy()))
    opt = optimization.create_optimizer("sgd", 0.1, num_train_steps=4, weight_decay_rate=0.0)
    reference = torch.optim.SGD([param], lr=0.1)
    ids = [[1, 3, 1], [0, 4, 4]]
    weights = rng.normal(size=(2, 3, 3)).astype("float32")
    for step in range(2):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.gather(table.value, ids[step]) * weights[step])
        grad = tape.gradient(loss, table.value)
        assert isinstance(grad, tf.IndexedSlices)
        opt.apply([grad], [table])
        reference.zero_grad()
        (torch.nn.functional.embedding(torch.tensor(ids[step]), param)
         * torch.from_numpy(weights[step])).sum().backward()
        reference.step()
        # BERT's schedule of create_optimizer: lr(t) = 0.1 * (1 - t / 4).
        reference.param_groups[0]["lr"] = 0.1 * (1 - (step + 1) / 4)
        np.testing.assert_allclose(table.numpy(), param.detach().numpy(), rtol=1e-6, atol=1e-7)
    dense = rng.normal(size=(5, 3)).astype("float32")
    before = table.numpy()
    opt.apply([dense], [table])
    np.testing.assert_allclose(table.numpy(), before - 0.05 * dense, rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="no weight decay"):
        optimization.SparseSGD(weight_decay_rate=0.01)


def test_linear_decay_is_gensims_alpha_schedule():
    # gensim: alpha = start - (start - end) * progress, progress in [0, 1].
    schedule = optimization.LinearDecay(0.025, 1e-4, num_train_steps=1000)
    for step in (0, 1, 250, 999, 1000, 5000):
        progress = min(step, 1000) / 1000
        assert float(schedule(step)) == pytest.approx(0.025 - (0.025 - 1e-4) * progress,
                                                      rel=1e-6, abs=1e-9)  # float32
    clone = optimization.LinearDecay.from_config(schedule.get_config())
    assert clone.get_config() == schedule.get_config()
