"""The masked-LM loss against TensorFlow's fused softmax cross-entropy op."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf

from bert_tf.pretraining import masked_lm_cross_entropy


def _loss_and_grad(fn, logits, labels, weights):
    variable = tf.Variable(logits)
    with tf.GradientTape() as tape:
        nll = fn(variable, labels)
        loss = tf.reduce_sum(nll * weights)
    return nll.numpy(), tape.gradient(loss, variable).numpy()


def test_values_gradients_and_accuracy_match_tensorflow():
    rng = np.random.default_rng(0)
    logits = (rng.normal(size=(3, 7, 500)) * 4).astype(np.float32)
    labels = rng.integers(0, 500, (3, 7)).astype(np.int32)
    # A confident right answer, and a label whose probability underflows
    # float32 (exp(-900)): the loss must stay finite and exact.
    logits[0, 0, labels[0, 0]] = 60.0
    logits[1, 2, :] = 0.0
    logits[1, 2, 11] = 900.0
    labels[1, 2] = 12
    weights = rng.random((3, 7)).astype(np.float32)

    ours, ours_grad = _loss_and_grad(lambda x, y: masked_lm_cross_entropy(x, y)[0],
                                     logits, labels, weights)
    want, want_grad = _loss_and_grad(
        lambda x, y: tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=x),
        logits, labels, weights)
    assert np.isfinite(ours).all()
    np.testing.assert_allclose(ours, want, rtol=1e-5, atol=1e-5)
    assert abs(ours[1, 2] - 900.0) < 1e-3
    np.testing.assert_allclose(ours_grad, want_grad, atol=1e-6)

    _, correct = masked_lm_cross_entropy(logits, labels)
    np.testing.assert_array_equal(correct.numpy(), logits.argmax(-1) == labels)


def test_low_precision_logits_are_scored_in_float32():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(4, 50)).astype(np.float32)
    labels = rng.integers(0, 50, (4,)).astype(np.int32)
    nll, _ = masked_lm_cross_entropy(tf.constant(logits, tf.bfloat16), labels)
    assert nll.dtype == tf.float32
    rounded = tf.cast(tf.constant(logits, tf.bfloat16), tf.float32)
    want = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=rounded)
    np.testing.assert_allclose(nll.numpy(), want.numpy(), rtol=1e-5, atol=1e-5)


def test_under_xla():
    rng = np.random.default_rng(2)
    logits = tf.constant(rng.normal(size=(6, 40)).astype(np.float32))
    labels = tf.constant(rng.integers(0, 40, (6,)).astype(np.int32))

    @tf.function(jit_compile=True)
    def compiled(x, y):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_mean(masked_lm_cross_entropy(x, y)[0])
        return loss, tape.gradient(loss, x)

    loss, grad = compiled(logits, labels)
    with tf.GradientTape() as tape:
        tape.watch(logits)
        want = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels,
                                                                              logits=logits))
    np.testing.assert_allclose(loss.numpy(), want.numpy(), rtol=1e-6)
    np.testing.assert_allclose(grad.numpy(), tape.gradient(want, logits).numpy(), atol=1e-7)
