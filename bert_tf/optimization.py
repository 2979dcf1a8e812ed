"""BERT's optimizers and learning-rate schedule, as Keras 3 objects.

`AdamWeightDecay` is the optimizer Google pretrained and fine-tuned BERT
with: Adam without bias correction plus decoupled weight decay, skipped for
LayerNorm parameters and biases. With `bias_correction=True` (optimizer
name "adamw_bias_corrected") it is the AdamW of PyTorch and Hugging Face
instead: without the correction, step t moves the weights
(1 - b1**t) / sqrt(1 - b2**t) times as far, 6x at step 6 and still 4x at
step 62, which matters on short fine-tuning runs. `Lamb` follows the LAMB paper (You et al.,
2019, Algorithm 2), where the weight-decay term is part of the update that the
layer-wise trust ratio rescales. `keras.optimizers.Lamb` is not used because
it decays weights outside that ratio. `SparseSGD` is word2vec's optimizer:
plain gradient descent that touches only the rows an embedding lookup used,
on `LinearDecay`, word2vec's learning rate falling linearly to a floor.

Gradient clipping is not done here: clipping needs the global norm of the
gradient summed over all replicas, which only the trainer has. The trainer
therefore sums gradients across replicas itself and builds these optimizers
with `aggregate_gradients=False`, so they do not sum them a second time.
"""

from __future__ import annotations

import re
from typing import Sequence

import keras
from keras import ops

#: Name fragments of the parameters Google's BERT never decays.
DEFAULT_EXCLUDE_FROM_WEIGHT_DECAY = ("LayerNorm", "layer_norm", "bias")


def _variable_path(variable) -> str:
    """The full name used for exclusion matching ('encoder/LayerNorm/gamma')."""
    return getattr(variable, "path", None) or variable.name


class _DecoupledDecayOptimizer(keras.optimizers.Optimizer):
    """Adam moments plus a weight-decay term added to the update direction.

    Subclasses turn the direction into a step in `_step`. The decay is
    decoupled from the gradient (Loshchilov & Hutter), as in Google's code:
    `update = adam_direction + rate * param`.
    """

    def __init__(
        self,
        learning_rate=0.001,
        weight_decay_rate: float = 0.0,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-6,
        exclude_from_weight_decay: Sequence[str] | None = DEFAULT_EXCLUDE_FROM_WEIGHT_DECAY,
        aggregate_gradients: bool = True,
        name: str | None = None,
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.aggregate_gradients = aggregate_gradients
        if weight_decay_rate < 0:
            raise ValueError(f"weight_decay_rate must be >= 0, got {weight_decay_rate}")
        self.weight_decay_rate = weight_decay_rate
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.exclude_from_weight_decay = list(exclude_from_weight_decay or ())

    def _all_reduce_sum_gradients(self, grads_and_vars):
        # Keras' TensorFlow optimizer sums the replicas' gradients here, inside
        # apply(). Callers that pass gradients already summed over replicas
        # switch that off instead of paying for a second all-reduce.
        if self.aggregate_gradients:
            return super()._all_reduce_sum_gradients(grads_and_vars)
        return list(grads_and_vars)

    def _decays(self, variable) -> bool:
        if not self.weight_decay_rate:
            return False
        path = _variable_path(variable)
        return not any(re.search(p, path) for p in self.exclude_from_weight_decay)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._m, self._v = self.add_optimizer_variables(var_list, ["m", "v"])
        # Decided once from the Keras variables, whose `path` carries the layer
        # names; update_step may see the backend variable under another name.
        self._decay_flags = [self._decays(v) for v in var_list]

    def update_step(self, gradient, variable, learning_rate):
        index = self._get_variable_index(variable)
        dtype = variable.dtype
        gradient = ops.cast(ops.convert_to_tensor(gradient), dtype)
        m, v = self._m[index], self._v[index]
        self.assign(m, self.beta_1 * m + (1.0 - self.beta_1) * gradient)
        self.assign(v, self.beta_2 * v + (1.0 - self.beta_2) * ops.square(gradient))
        direction = self._adam_direction(m, v)
        if self._decay_flags[index]:
            direction = direction + ops.cast(self.weight_decay_rate, dtype) * variable
        step = self._step(direction, variable, index)
        self.assign_sub(variable, ops.cast(learning_rate, dtype) * step)

    def _adam_direction(self, m, v):
        raise NotImplementedError

    def _step(self, direction, variable, index):
        raise NotImplementedError

    def get_config(self):
        config = super().get_config()
        config.update(
            weight_decay_rate=self.weight_decay_rate,
            beta_1=self.beta_1,
            beta_2=self.beta_2,
            epsilon=self.epsilon,
            exclude_from_weight_decay=list(self.exclude_from_weight_decay),
            aggregate_gradients=self.aggregate_gradients,
        )
        return config


@keras.saving.register_keras_serializable(package="bert_tf")
class AdamWeightDecay(_DecoupledDecayOptimizer):
    """Google BERT's optimizer: Adam without bias correction, decoupled decay.

    Per step: m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g^2;
    param -= lr * (m / (sqrt(v) + eps) + rate * param), with the decay term
    dropped for parameters whose path matches `exclude_from_weight_decay`.

    With `bias_correction`, m and v are divided by (1 - b1**t) and
    (1 - b2**t) as in Adam and PyTorch's AdamW (t counts updates from 1;
    epsilon is added to sqrt(v) after the correction, as in TensorFlow's
    Adam kernel).

    >>> opt = AdamWeightDecay(learning_rate=1e-4, weight_decay_rate=0.01)
    """

    def __init__(self, learning_rate=0.001, weight_decay_rate=0.0, bias_correction: bool = False,
                 name="AdamWeightDecay", **kwargs):
        super().__init__(learning_rate, weight_decay_rate, name=name, **kwargs)
        self.bias_correction = bias_correction

    def _beta_powers(self, dtype):
        """b1**t and b2**t for this update, or zeros (no correction)."""
        if not self.bias_correction:
            zero = ops.zeros([], dtype)
            return zero, zero
        t = ops.cast(self.iterations + 1, dtype)
        return (ops.power(ops.cast(self.beta_1, dtype), t),
                ops.power(ops.cast(self.beta_2, dtype), t))

    def update_step(self, gradient, variable, learning_rate):
        if keras.backend.backend() != "tensorflow":
            return super().update_step(gradient, variable, learning_rate)
        # One fused kernel instead of a dozen element-wise ops, each with a
        # temporary the size of the variable. Adam's bias correction is
        # switched off by passing zero for beta**t, and decaying the weights
        # first gives exactly param - lr * (adam_direction + rate * param).
        # The kernel's correction scales lr by sqrt(1 - b2**t) / (1 - b1**t).
        import tensorflow as tf

        index = self._get_variable_index(variable)
        dtype = variable.dtype
        gradient = tf.cast(tf.convert_to_tensor(gradient), dtype)
        learning_rate = tf.cast(learning_rate, dtype)
        if self._decay_flags[index]:
            variable.assign_sub(variable * (learning_rate * self.weight_decay_rate))
        beta1_power, beta2_power = self._beta_powers(dtype)
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle, m=self._m[index].value.handle, v=self._v[index].value.handle,
            beta1_power=beta1_power, beta2_power=beta2_power, lr=learning_rate,
            beta1=tf.cast(self.beta_1, dtype), beta2=tf.cast(self.beta_2, dtype),
            epsilon=tf.cast(self.epsilon, dtype), grad=gradient)

    def _adam_direction(self, m, v):
        beta1_power, beta2_power = self._beta_powers(m.dtype)
        scale = ops.sqrt(1.0 - beta2_power) / (1.0 - beta1_power)
        return scale * m / (ops.sqrt(v) + self.epsilon)

    def _step(self, direction, variable, index):
        return direction

    def get_config(self):
        config = super().get_config()
        config["bias_correction"] = self.bias_correction
        return config


@keras.saving.register_keras_serializable(package="bert_tf")
class Lamb(_DecoupledDecayOptimizer):
    """LAMB (You et al., 2019): bias-corrected Adam direction plus decay,
    rescaled per parameter by the trust ratio ||param|| / ||direction||.

    The ratio is 1 when either norm is zero and for parameters matching
    `exclude_from_layer_adaptation` (by default the weight-decay exclusions).
    """

    def __init__(
        self,
        learning_rate=0.001,
        weight_decay_rate=0.0,
        exclude_from_layer_adaptation: Sequence[str] | None = None,
        name="Lamb",
        **kwargs,
    ):
        super().__init__(learning_rate, weight_decay_rate, name=name, **kwargs)
        if exclude_from_layer_adaptation is None:
            exclude_from_layer_adaptation = self.exclude_from_weight_decay
        self.exclude_from_layer_adaptation = list(exclude_from_layer_adaptation)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._adapt_flags = [
            not any(re.search(p, _variable_path(v)) for p in self.exclude_from_layer_adaptation)
            for v in var_list
        ]

    def _adam_direction(self, m, v):
        t = ops.cast(self.iterations + 1, m.dtype)
        m_hat = m / (1.0 - ops.power(ops.cast(self.beta_1, m.dtype), t))
        v_hat = v / (1.0 - ops.power(ops.cast(self.beta_2, m.dtype), t))
        return m_hat / (ops.sqrt(v_hat) + self.epsilon)

    def _step(self, direction, variable, index):
        if not self._adapt_flags[index]:
            return direction
        w_norm = ops.sqrt(ops.sum(ops.square(variable)))
        d_norm = ops.sqrt(ops.sum(ops.square(direction)))
        both_positive = ops.logical_and(w_norm > 0, d_norm > 0)
        ratio = ops.where(both_positive, w_norm / ops.where(both_positive, d_norm, 1.0), 1.0)
        return ratio * direction

    def get_config(self):
        config = super().get_config()
        config["exclude_from_layer_adaptation"] = list(self.exclude_from_layer_adaptation)
        return config


@keras.saving.register_keras_serializable(package="bert_tf")
class LinearWarmupPolynomialDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Google BERT's schedule: linear warm-up, then linear decay to zero.

    lr(step) = init_lr * step / num_warmup_steps           if step < num_warmup_steps
             = init_lr * (1 - min(step, num_train_steps) / num_train_steps)  otherwise.

    The decay is measured from step 0, not from the end of warm-up, exactly as
    in Google's `create_optimizer`, so the curve has a kink at the hand-over.
    `step` is the number of updates already applied (the first update uses 0).
    """

    def __init__(self, initial_learning_rate: float, num_train_steps: int, num_warmup_steps: int = 0, power: float = 1.0):
        if num_train_steps <= 0:
            raise ValueError(f"num_train_steps must be positive, got {num_train_steps}")
        if num_warmup_steps < 0:
            raise ValueError(f"num_warmup_steps must be >= 0, got {num_warmup_steps}")
        self.initial_learning_rate = initial_learning_rate
        self.num_train_steps = num_train_steps
        self.num_warmup_steps = num_warmup_steps
        self.power = power

    def __call__(self, step):
        step = ops.cast(step, "float32")
        init_lr = ops.cast(self.initial_learning_rate, "float32")
        progress = ops.minimum(step, float(self.num_train_steps)) / float(self.num_train_steps)
        decayed = init_lr * ops.power(1.0 - progress, self.power)
        if not self.num_warmup_steps:
            return decayed
        warmup = init_lr * step / float(self.num_warmup_steps)
        return ops.where(step < float(self.num_warmup_steps), warmup, decayed)

    def get_config(self):
        return dict(
            initial_learning_rate=self.initial_learning_rate,
            num_train_steps=self.num_train_steps,
            num_warmup_steps=self.num_warmup_steps,
            power=self.power,
        )


@keras.saving.register_keras_serializable(package="bert_tf")
class SparseSGD(keras.optimizers.Optimizer):
    """Plain gradient descent, param -= lr * gradient, with no state.

    A gradient that arrives as `tf.IndexedSlices` (an embedding lookup's)
    updates only its rows, which is what makes skip-gram training cheap: a
    step touches the few thousand rows of its batch, not the whole table.
    Rows named twice in the slices get both updates added, as a dense
    gradient would. Weight decay is not applied (`weight_decay_rate` is
    accepted so the trainer can build every optimizer alike, and must be 0).

    >>> import numpy as np, tensorflow as tf
    >>> table = keras.Variable(np.ones((3, 2), np.float32))
    >>> rows = tf.IndexedSlices(tf.constant([[1.0, 2.0], [1.0, 1.0]]), tf.constant([2, 2]),
    ...                         tf.constant([3, 2]))
    >>> SparseSGD(learning_rate=0.5).apply([rows], [table])
    >>> table.numpy().tolist()
    [[1.0, 1.0], [1.0, 1.0], [0.0, -0.5]]
    """

    def __init__(self, learning_rate=0.025, weight_decay_rate: float = 0.0,
                 aggregate_gradients: bool = True, name: str = "SparseSGD", **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        if weight_decay_rate:
            raise ValueError(f"SparseSGD applies no weight decay; got weight_decay_rate="
                             f"{weight_decay_rate}")
        self.weight_decay_rate = 0.0
        self.aggregate_gradients = aggregate_gradients

    def _all_reduce_sum_gradients(self, grads_and_vars):
        # As in _DecoupledDecayOptimizer: the trainer sums over replicas itself.
        if self.aggregate_gradients:
            return super()._all_reduce_sum_gradients(grads_and_vars)
        return list(grads_and_vars)

    def update_step(self, gradient, variable, learning_rate):
        import tensorflow as tf

        learning_rate = tf.cast(learning_rate, variable.dtype)
        if isinstance(gradient, tf.IndexedSlices):
            # Keras' assign_sub scatters IndexedSlices into their rows only.
            self.assign_sub(variable, tf.IndexedSlices(
                tf.cast(gradient.values, variable.dtype) * learning_rate, gradient.indices,
                gradient.dense_shape))
            return
        self.assign_sub(variable, tf.cast(gradient, variable.dtype) * learning_rate)

    def get_config(self):
        config = super().get_config()
        config["aggregate_gradients"] = self.aggregate_gradients
        return config


@keras.saving.register_keras_serializable(package="bert_tf")
class LinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """word2vec's schedule: from `initial_learning_rate` straight down to
    `final_learning_rate` over `num_train_steps`, then flat.

    lr(step) = initial - (initial - final) * min(step, num_train_steps) / num_train_steps

    which is gensim's alpha -> min_alpha decay; word2vec.c decays towards 0
    and clips at initial * 1e-4, its default floor.

    >>> schedule = LinearDecay(0.025, 0.0001, num_train_steps=100)
    >>> [round(float(schedule(s)), 6) for s in (0, 50, 100, 150)]
    [0.025, 0.01255, 0.0001, 0.0001]
    """

    def __init__(self, initial_learning_rate: float, final_learning_rate: float,
                 num_train_steps: int):
        if num_train_steps <= 0:
            raise ValueError(f"num_train_steps must be positive, got {num_train_steps}")
        self.initial_learning_rate = initial_learning_rate
        self.final_learning_rate = final_learning_rate
        self.num_train_steps = num_train_steps

    def __call__(self, step):
        progress = ops.minimum(ops.cast(step, "float32"), float(self.num_train_steps))
        progress = progress / float(self.num_train_steps)
        drop = float(self.initial_learning_rate - self.final_learning_rate)
        return float(self.initial_learning_rate) - drop * progress

    def get_config(self):
        return dict(initial_learning_rate=self.initial_learning_rate,
                    final_learning_rate=self.final_learning_rate,
                    num_train_steps=self.num_train_steps)


def _bias_corrected_adamw(**kwargs) -> AdamWeightDecay:
    return AdamWeightDecay(bias_correction=True, **kwargs)


OPTIMIZERS = {"adamw": AdamWeightDecay, "adamw_bias_corrected": _bias_corrected_adamw,
              "lamb": Lamb, "sgd": SparseSGD}


def create_optimizer(
    name: str,
    learning_rate: float,
    num_train_steps: int,
    num_warmup_steps: int = 0,
    weight_decay_rate: float = 0.01,
    **kwargs,
) -> keras.optimizers.Optimizer:
    """Builds `name` ('adamw', 'adamw_bias_corrected', 'lamb' or 'sgd') on
    BERT's warm-up/decay schedule.

    >>> opt = create_optimizer("adamw", 2e-5, num_train_steps=1000, num_warmup_steps=100)
    """
    key = name.lower()
    if key not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)}, got {name!r}")
    schedule = LinearWarmupPolynomialDecay(learning_rate, num_train_steps, num_warmup_steps)
    return OPTIMIZERS[key](learning_rate=schedule, weight_decay_rate=weight_decay_rate, **kwargs)
