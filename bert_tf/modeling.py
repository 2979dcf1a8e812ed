"""The BERT encoder, its pretraining heads and a classifier, in Keras 3.

The layers are laid out so that every weight has exactly the shape Google's
TF1 checkpoints store (dense kernels `[in, out]`, the NSP and classifier
weights `[labels, hidden]`), which keeps checkpoint interop a renaming
exercise. `checkpoint_map()` on each model is the one table from Google's
variable names to our variables; Hugging Face names derive from it.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import json
import math
from typing import Any

import keras
import tensorflow as tf

from bert_tf import atomic_io, text_files

ENCODER_INPUTS = ("input_word_ids", "input_mask", "input_type_ids")


class ConfigError(ValueError):
    """A `bert_config.json` (or the dict behind it) is malformed."""


def _gelu_tanh(x):
    # Google's BERT uses the tanh approximation and calls it "gelu".
    return keras.activations.gelu(x, approximate=True)


def _gelu_erf(x):
    return keras.activations.gelu(x, approximate=False)


# Names as they appear in bert_config.json. "gelu" keeps Google's meaning
# (tanh approximation); Hugging Face's erf-based "gelu" is "gelu_exact" here
# (the Hugging Face config reader translates it).
ACTIVATIONS = {
    "gelu": _gelu_tanh,
    "gelu_new": _gelu_tanh,
    "gelu_pytorch_tanh": _gelu_tanh,
    "gelu_exact": _gelu_erf,
    "relu": keras.activations.relu,
    "tanh": keras.activations.tanh,
    "swish": keras.activations.silu,
    "silu": keras.activations.silu,
}


class JsonConfig:
    """JSON in and out for the dataclass configs (`BertConfig`, `gpt2.GPT2Config`).

    A subclass is a dataclass with a `from_dict(values, source)` that checks
    the values and names `source` in its errors; `FILE_KIND` says what its
    file is in a read error.
    """

    FILE_KIND = "config file"

    @classmethod
    def from_json_file(cls, path: str):
        values = text_files.read_json(path, cls.FILE_KIND, error=ConfigError)
        return cls.from_dict(values, source=path)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json_string(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    def to_json_file(self, path: str) -> None:
        atomic_io.write_text(path, self.to_json_string())


@dataclasses.dataclass
class BertConfig(JsonConfig):
    """Hyper-parameters of a BERT encoder, as in Google's `bert_config.json`."""

    FILE_KIND = "BERT config file"

    vocab_size: int
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 16
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12

    def __post_init__(self):
        source = "BertConfig"
        for field in ("vocab_size", "hidden_size", "num_hidden_layers",
                      "num_attention_heads", "intermediate_size",
                      "max_position_embeddings", "type_vocab_size"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(
                    f"{source}: '{field}' must be a positive integer, got {value!r}")
        for field in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
            value = getattr(self, field)
            if not isinstance(value, (int, float)) or not 0 <= value < 1:
                raise ConfigError(
                    f"{source}: '{field}' must be a number in [0, 1), got {value!r}")
        for field in ("initializer_range", "layer_norm_eps"):
            value = getattr(self, field)
            if not isinstance(value, (int, float)) or value <= 0:
                raise ConfigError(
                    f"{source}: '{field}' must be a positive number, got {value!r}")
        if self.hidden_size % self.num_attention_heads:
            raise ConfigError(
                f"{source}: hidden_size {self.hidden_size} is not a multiple of "
                f"num_attention_heads {self.num_attention_heads}")
        if self.hidden_act not in ACTIVATIONS:
            raise ConfigError(
                f"{source}: unknown hidden_act {self.hidden_act!r}; "
                f"known: {', '.join(sorted(ACTIVATIONS))}")

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "config") -> "BertConfig":
        """Builds a config, ignoring extra keys (released configs carry some)."""
        if not isinstance(values, dict):
            raise ConfigError(f"{source}: expected a JSON object, got {type(values).__name__}")
        fields = {f.name for f in dataclasses.fields(cls)}
        if "vocab_size" not in values:
            raise ConfigError(f"{source}: missing required key 'vocab_size'")
        known = {k: v for k, v in values.items() if k in fields}
        try:
            return cls(**known)
        except ConfigError as e:
            raise ConfigError(str(e).replace("BertConfig:", f"{source}:", 1)) from None



_DROPOUT_ALGORITHM = contextvars.ContextVar("dropout_algorithm", default="philox")


@contextlib.contextmanager
def dropout_random_algorithm(algorithm: str):
    """Picks the random-bit generator of `Dropout` layers traced inside.

    TensorFlow's own CPU and GPU kernels implement only Philox. XLA also has
    ThreeFry, and on a CPU it compiles Philox poorly inside a whole training
    step (one fusion producing its four output lanes took most of the step's
    time): a BERT-Tiny step ran at 150 sequences/s with Philox dropout and
    320 with ThreeFry. Code compiled with XLA should therefore trace its
    model under `dropout_random_algorithm("threefry")`, as the trainer does.
    """
    if algorithm not in ("philox", "threefry"):
        raise ValueError(f"unknown random algorithm {algorithm!r}; use 'philox' or 'threefry'")
    token = _DROPOUT_ALGORITHM.set(algorithm)
    try:
        yield
    finally:
        _DROPOUT_ALGORITHM.reset(token)


@keras.saving.register_keras_serializable(package="bert_tf")
class Dropout(keras.layers.Layer):
    """Inverted dropout that draws 16 random bits per element.

    Keras' dropout draws a float32 uniform number (32 Philox bits) per
    element; 16 bits decide keep or drop just as well, with the rate rounded
    to a multiple of 1/65536 (0.1 becomes 0.100006), and halve the random
    number generation, which is a visible share of a small model's step on a
    CPU. Kept elements are scaled by 1 / (1 - rate), dropped ones are zero,
    and the gradient is the same mask, applied with one multiply.
    """

    def __init__(self, rate: float, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.rate = float(rate)
        self.seed = seed
        self.threshold = min(round(self.rate * 65536), 65535)
        self.seed_generator = keras.random.SeedGenerator(seed, name="seed_generator")

    def call(self, inputs, training=False):
        if not training or self.threshold == 0:
            return inputs
        seed = tf.cast(tf.math.floormod(self.seed_generator.next(), 2**31 - 1), tf.int32)
        size = tf.size(inputs)
        bits = tf.random.stateless_uniform(
            [(size + 1) // 2], seed=seed, minval=None, maxval=None, dtype=tf.uint32,
            alg=_DROPOUT_ALGORITHM.get())
        bits = tf.reshape(tf.bitcast(bits, tf.uint16), [-1])[:size]
        keep = tf.reshape(bits, tf.shape(inputs)) >= tf.constant(self.threshold, tf.uint16)
        scale = 65536.0 / (65536 - self.threshold)
        mask = tf.where(keep, tf.constant(scale, inputs.dtype), tf.constant(0, inputs.dtype))
        return inputs * mask

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


def _initializer(config: BertConfig):
    return keras.initializers.TruncatedNormal(stddev=config.initializer_range)


def _dense(config: BertConfig, units: int, name: str, activation=None):
    return keras.layers.Dense(units, activation=activation, name=name,
                              kernel_initializer=_initializer(config))


def _layer_norm(config: BertConfig, name: str = "LayerNorm"):
    return keras.layers.LayerNormalization(epsilon=config.layer_norm_eps, name=name)


def split_heads(x, num_heads: int):
    """[batch, length, heads * head_size] -> [batch, heads, length, head_size]."""
    batch, length = tf.shape(x)[0], tf.shape(x)[1]
    x = tf.reshape(x, [batch, length, num_heads, x.shape[-1] // num_heads])
    return tf.transpose(x, [0, 2, 1, 3])


def merge_heads(x):
    """[batch, heads, length, head_size] -> [batch, length, heads * head_size]."""
    batch, length = tf.shape(x)[0], tf.shape(x)[2]
    x = tf.transpose(x, [0, 2, 1, 3])
    return tf.reshape(x, [batch, length, x.shape[2] * x.shape[3]])


def attend(q, k, v, attention_bias, probs_dropout, training=False):
    """Scaled dot-product attention over heads-major `[batch, heads, len, size]`.

    `attention_bias` is added to the scores (0 where a query may look, a
    large negative number where it may not) and broadcasts to
    `[batch, heads, queries, keys]`: padding for BERT, padding and the
    causal triangle for GPT-2. Returns the context `[batch, heads, queries,
    size]` and the softmax weights before dropout.
    """
    # Heads-major layout and plain batch matmuls: on a CPU, a third faster
    # than einsums over [batch, length, heads, head_size], which
    # transpose inside every product and its gradients.
    scores = tf.matmul(q, k, transpose_b=True) * (1.0 / math.sqrt(q.shape[-1]))
    # Softmax in float32 even under mixed precision. Keras casts a layer's
    # floating inputs to its compute dtype, the bias included: cast it back.
    scores = tf.cast(scores, tf.float32) + tf.cast(attention_bias, tf.float32)
    probs = tf.cast(tf.nn.softmax(scores, axis=-1), v.dtype)
    return tf.matmul(probs_dropout(probs, training=training), v), probs


def _attention_bias(input_mask):
    """[batch, 1, 1, seq]: padding keys get a large negative score, as in Google's code."""
    mask = tf.cast(input_mask, tf.float32)
    return (1.0 - mask[:, tf.newaxis, tf.newaxis, :]) * -10000.0


class _BuiltFromConfig:
    """For a Keras layer or model whose one argument is a config dataclass
    (kept as `self.config`, of class `config_class`): its Keras config is
    that dataclass's dict."""

    config_class = BertConfig

    def get_config(self):
        return {**keras.layers.Layer.get_config(self), "config": self.config.to_dict()}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        return cls(cls.config_class.from_dict(config.pop("config")), **config)


class _ConfigLayer(_BuiltFromConfig, keras.layers.Layer):
    """A layer built from a BertConfig alone."""

    def __init__(self, config: BertConfig, **kwargs):
        super().__init__(**kwargs)
        self.config = config


@keras.saving.register_keras_serializable(package="bert_tf")
class Embeddings(_ConfigLayer):
    """Word + position + segment embeddings, then LayerNorm and dropout."""

    def __init__(self, config: BertConfig, **kwargs):
        super().__init__(config, **kwargs)
        init = _initializer(config)
        h = config.hidden_size
        self.word_embeddings = self.add_weight(
            name="word_embeddings", shape=(config.vocab_size, h), initializer=init)
        self.token_type_embeddings = self.add_weight(
            name="token_type_embeddings", shape=(config.type_vocab_size, h), initializer=init)
        self.position_embeddings = self.add_weight(
            name="position_embeddings", shape=(config.max_position_embeddings, h),
            initializer=init)
        self.layer_norm = _layer_norm(config)
        self.layer_norm.build((None, None, h))
        self.dropout = Dropout(config.hidden_dropout_prob)

    def call(self, word_ids, type_ids, training=False):
        seq_length = tf.shape(word_ids)[1]
        tf.debugging.assert_less_equal(
            seq_length, self.config.max_position_embeddings,
            message="sequence longer than max_position_embeddings")
        x = tf.gather(self.word_embeddings, word_ids)
        x += tf.gather(self.token_type_embeddings, type_ids)
        x += self.position_embeddings[tf.newaxis, :seq_length]
        return self.dropout(self.layer_norm(x), training=training)


@keras.saving.register_keras_serializable(package="bert_tf")
class SelfAttention(_ConfigLayer):
    """Multi-head self-attention with its output projection and residual norm."""

    def __init__(self, config: BertConfig, **kwargs):
        super().__init__(config, **kwargs)
        h = config.hidden_size
        self.num_heads = config.num_attention_heads
        self.head_size = h // self.num_heads
        self.query = _dense(config, h, "query")
        self.key = _dense(config, h, "key")
        self.value = _dense(config, h, "value")
        self.output_dense = _dense(config, h, "output_dense")
        self.output_norm = _layer_norm(config, "output_LayerNorm")
        for layer in (self.query, self.key, self.value, self.output_dense):
            layer.build((None, None, h))
        self.output_norm.build((None, None, h))
        self.probs_dropout = Dropout(config.attention_probs_dropout_prob)
        self.output_dropout = Dropout(config.hidden_dropout_prob)

    def call(self, x, attention_bias, training=False, return_probs=False,
             query_positions=None):
        # With `query_positions` [batch, Q], only those tokens ask queries
        # (keys and values still come from every token), so the output is
        # [batch, Q, hidden]: exactly those rows of the full output.
        queries_from = x if query_positions is None else tf.gather(
            x, query_positions, batch_dims=1)
        q = split_heads(self.query(queries_from), self.num_heads)
        k = split_heads(self.key(x), self.num_heads)
        v = split_heads(self.value(x), self.num_heads)
        context, probs = attend(q, k, v, attention_bias, self.probs_dropout, training)
        context = merge_heads(context)
        out = self.output_dropout(self.output_dense(context), training=training)
        out = self.output_norm(out + queries_from)
        return (out, probs) if return_probs else out


@keras.saving.register_keras_serializable(package="bert_tf")
class TransformerLayer(_ConfigLayer):
    """One post-norm Transformer block: attention, then the feed-forward net."""

    def __init__(self, config: BertConfig, **kwargs):
        super().__init__(config, **kwargs)
        h = config.hidden_size
        self.attention = SelfAttention(config, name="attention")
        self.intermediate = _dense(config, config.intermediate_size, "intermediate",
                                   activation=ACTIVATIONS[config.hidden_act])
        self.output_dense = _dense(config, h, "output_dense")
        self.output_norm = _layer_norm(config, "output_LayerNorm")
        self.intermediate.build((None, None, h))
        self.output_dense.build((None, None, config.intermediate_size))
        self.output_norm.build((None, None, h))
        self.dropout = Dropout(config.hidden_dropout_prob)

    def call(self, x, attention_bias, training=False, return_probs=False,
             query_positions=None):
        attended = self.attention(x, attention_bias, training=training,
                                  return_probs=return_probs,
                                  query_positions=query_positions)
        if return_probs:
            attended, probs = attended
        out = self.output_dense(self.intermediate(attended))
        out = self.dropout(out, training=training)
        out = self.output_norm(out + attended)
        return (out, probs) if return_probs else out


@keras.saving.register_keras_serializable(package="bert_tf")
class BertEncoder(_BuiltFromConfig, keras.Model):
    """The BERT Transformer encoder.

    Called with a dict of int32 `[batch, seq]` tensors `input_word_ids`,
    `input_mask` (1 for real tokens) and `input_type_ids`; always returns the
    same dict: `sequence_output` `[batch, seq, hidden]`, `pooled_output`
    `[batch, hidden]` (tanh dense layer over the first token),
    `encoder_outputs` (every layer's output, first to last) and
    `embedding_output`; `output_attentions=True` adds `attention_probs`.
    `call_at_positions` is the cheaper call for a few positions' outputs.

    >>> encoder = BertEncoder(BertConfig(vocab_size=100, hidden_size=32,
    ...     num_hidden_layers=2, num_attention_heads=4, intermediate_size=64))
    >>> ids = tf.constant([[2, 7, 3, 0]])
    >>> out = encoder({"input_word_ids": ids, "input_mask": tf.sign(ids),
    ...                "input_type_ids": tf.zeros_like(ids)})
    >>> sorted(out), out["pooled_output"].shape
    (['embedding_output', 'encoder_outputs', 'pooled_output', 'sequence_output'], TensorShape([1, 32]))
    """

    def __init__(self, config: BertConfig, name: str = "bert", **kwargs):
        super().__init__(name=name, **kwargs)
        self.config = config
        self.embeddings = Embeddings(config, name="embeddings")
        # One attribute per layer: TF2 object checkpoints do not see layers
        # kept in a Python list of a Keras 3 model.
        for i in range(config.num_hidden_layers):
            setattr(self, f"layer_{i}", TransformerLayer(config, name=f"layer_{i}"))
        self.pooler = _dense(config, config.hidden_size, "pooler", activation="tanh")
        self.pooler.build((None, config.hidden_size))
        self.built = True  # every weight exists now; no shape inference needed

    @property
    def transformer_layers(self) -> list[TransformerLayer]:
        return [getattr(self, f"layer_{i}") for i in range(self.config.num_hidden_layers)]

    def _embed(self, inputs, training):
        """Embedding output and int32 input mask; a missing mask or type ids default."""
        word_ids = tf.cast(inputs["input_word_ids"], tf.int32)
        mask = inputs.get("input_mask")
        mask = tf.ones_like(word_ids) if mask is None else tf.cast(mask, tf.int32)
        type_ids = inputs.get("input_type_ids")
        type_ids = tf.zeros_like(word_ids) if type_ids is None else tf.cast(type_ids, tf.int32)
        return self.embeddings(word_ids, type_ids, training=training), mask

    def call(self, inputs, training=False, output_attentions=False):
        embedding_output, mask = self._embed(inputs, training)
        return self.encode_embeddings(embedding_output, mask, training=training,
                                      output_attentions=output_attentions)

    def encode_embeddings(self, embedding_output, input_mask, training=False,
                          output_attentions=False):
        """Runs the Transformer layers and the pooler on a given embedding output.

        Split from `call` so that attribution methods can feed interpolated
        embeddings. With `output_attentions`, the outputs also hold
        `attention_probs`: per layer, `[batch, heads, query, key]` softmax
        weights (before attention dropout).
        """
        attention_bias = _attention_bias(input_mask)
        x = embedding_output
        encoder_outputs, attention_probs = [], []
        for layer in self.transformer_layers:
            if output_attentions:
                x, probs = layer(x, attention_bias, training=training, return_probs=True)
                attention_probs.append(probs)
            else:
                x = layer(x, attention_bias, training=training)
            encoder_outputs.append(x)
        outputs = {
            "sequence_output": x,
            "pooled_output": self.pooler(x[:, 0, :]),
            "encoder_outputs": encoder_outputs,
            "embedding_output": embedding_output,
        }
        if output_attentions:
            outputs["attention_probs"] = attention_probs
        return outputs

    def call_at_positions(self, inputs, positions, training=False):
        """The encoder for a caller that needs the output at a few positions only.

        Pretraining reads the last layer at its masked tokens alone, so the
        last layer computes queries, feed-forward and norms for those
        `positions` `[batch, P]` and the first token (for the pooler) only:
        most of one layer's work saved. Returns `gathered_output`
        `[batch, P, hidden]` and `pooled_output`, with the values of the plain
        call's `sequence_output` at `positions` and its `pooled_output`.

        >>> encoder = BertEncoder(BertConfig(vocab_size=100, hidden_size=32,
        ...     num_hidden_layers=2, num_attention_heads=4, intermediate_size=64))
        >>> inputs = {"input_word_ids": tf.constant([[2, 7, 8, 3]])}
        >>> out = encoder.call_at_positions(inputs, tf.constant([[2]]))
        >>> full = encoder(inputs)["sequence_output"][:, 2:3]
        >>> bool(tf.reduce_max(tf.abs(out["gathered_output"] - full)) < 1e-5)
        True
        """
        x, mask = self._embed(inputs, training)
        attention_bias = _attention_bias(mask)
        *lower_layers, last_layer = self.transformer_layers
        for layer in lower_layers:
            x = layer(x, attention_bias, training=training)
        positions = tf.cast(positions, tf.int32)
        first = tf.zeros_like(positions[:, :1])
        x = last_layer(x, attention_bias, training=training,
                       query_positions=tf.concat([first, positions], axis=1))
        return {"gathered_output": x[:, 1:, :], "pooled_output": self.pooler(x[:, 0, :])}

    def checkpoint_map(self) -> dict[str, keras.Variable]:
        """Google TF1 checkpoint name -> variable, for every encoder weight."""
        e = self.embeddings
        table = {
            "bert/embeddings/word_embeddings": e.word_embeddings,
            "bert/embeddings/token_type_embeddings": e.token_type_embeddings,
            "bert/embeddings/position_embeddings": e.position_embeddings,
            "bert/embeddings/LayerNorm/gamma": e.layer_norm.gamma,
            "bert/embeddings/LayerNorm/beta": e.layer_norm.beta,
        }
        for i, layer in enumerate(self.transformer_layers):
            a = layer.attention
            prefix = f"bert/encoder/layer_{i}/"
            parts = {
                "attention/self/query": a.query,
                "attention/self/key": a.key,
                "attention/self/value": a.value,
                "attention/output/dense": a.output_dense,
                "intermediate/dense": layer.intermediate,
                "output/dense": layer.output_dense,
            }
            for google_name, dense in parts.items():
                table[prefix + google_name + "/kernel"] = dense.kernel
                table[prefix + google_name + "/bias"] = dense.bias
            for google_name, norm in (("attention/output/LayerNorm", a.output_norm),
                                      ("output/LayerNorm", layer.output_norm)):
                table[prefix + google_name + "/gamma"] = norm.gamma
                table[prefix + google_name + "/beta"] = norm.beta
        table["bert/pooler/dense/kernel"] = self.pooler.kernel
        table["bert/pooler/dense/bias"] = self.pooler.bias
        return table


@keras.saving.register_keras_serializable(package="bert_tf")
class MaskedLMHead(_ConfigLayer):
    """Predicts the tokens at masked positions.

    A dense transform and LayerNorm, then a decoder that reuses the word
    embedding matrix (tied weights) plus a per-token output bias. It takes the
    encoder's output at the masked positions only (`[batch, P, hidden]`),
    which is most of the head's cost saved. The tied matrix is another
    layer's weight, so this layer is saved and restored as part of
    `BertPretrainer`, which ties it again.
    """

    def __init__(self, config: BertConfig, word_embeddings, **kwargs):
        super().__init__(config, **kwargs)
        self.word_embeddings = word_embeddings
        self.transform = _dense(config, config.hidden_size, "transform",
                                activation=ACTIVATIONS[config.hidden_act])
        self.transform.build((None, config.hidden_size))
        self.transform_norm = _layer_norm(config, "transform_LayerNorm")
        self.transform_norm.build((None, config.hidden_size))
        self.output_bias = self.add_weight(
            name="output_bias", shape=(config.vocab_size,), initializer="zeros")

    def call(self, masked_output):
        # Flatten to [batch * P, hidden]: a 3-D x would make the decoder a
        # broadcast batch matmul whose gradient materialises one [vocab,
        # hidden] matrix per example before summing them.
        batch_and_positions = tf.shape(masked_output)[:2]
        x = tf.reshape(masked_output, [-1, masked_output.shape[-1]])
        x = self.transform_norm(self.transform(x))
        embeddings = tf.cast(self.word_embeddings, x.dtype)
        logits = tf.matmul(x, embeddings, transpose_b=True) + tf.cast(self.output_bias, x.dtype)
        return tf.reshape(logits, tf.concat([batch_and_positions, [-1]], axis=0))

    def gather_and_call(self, sequence_output, positions):
        """The head on a full `[batch, seq, hidden]` output."""
        return self(tf.gather(sequence_output, tf.cast(positions, tf.int32), batch_dims=1))


@keras.saving.register_keras_serializable(package="bert_tf")
class WeightsTimesInput(keras.layers.Layer):
    """`x @ W^T + b` with W stored `[units, hidden]`, as Google's heads store it."""

    def __init__(self, units: int, hidden_size: int, initializer_range: float, **kwargs):
        super().__init__(**kwargs)
        self.units, self.hidden_size, self.initializer_range = units, hidden_size, initializer_range
        self.output_weights = self.add_weight(
            name="output_weights", shape=(units, hidden_size),
            initializer=keras.initializers.TruncatedNormal(stddev=initializer_range))
        self.output_bias = self.add_weight(
            name="output_bias", shape=(units,), initializer="zeros")

    def call(self, x):
        return (tf.matmul(x, tf.cast(self.output_weights, x.dtype), transpose_b=True)
                + tf.cast(self.output_bias, x.dtype))

    def get_config(self):
        return {**super().get_config(), "units": self.units, "hidden_size": self.hidden_size,
                "initializer_range": self.initializer_range}


@keras.saving.register_keras_serializable(package="bert_tf")
class BertPretrainer(_BuiltFromConfig, keras.Model):
    """The encoder with the masked-LM and next-sentence-prediction heads.

    Called with the encoder inputs plus `masked_lm_positions` `[batch, P]`;
    returns `masked_lm_logits` `[batch, P, vocab]` and `next_sentence_logits`
    `[batch, 2]` (label 0: B follows A; 1: B is random), in float32, and the
    encoder's `pooled_output`. The last layer runs at the masked positions
    and the first token only (`BertEncoder.call_at_positions`); for the
    full sequence output, call `self.encoder`.

    >>> model = BertPretrainer(BertConfig(vocab_size=100, hidden_size=32,
    ...     num_hidden_layers=2, num_attention_heads=4, intermediate_size=64))
    >>> inputs = dict(dummy_inputs(batch_size=2), masked_lm_positions=tf.constant([[1, 2], [3, 4]]))
    >>> {name: tuple(value.shape) for name, value in model(inputs).items()}
    {'pooled_output': (2, 32), 'masked_lm_logits': (2, 2, 100), 'next_sentence_logits': (2, 2)}
    """

    def __init__(self, config: BertConfig, name: str = "pretrainer", **kwargs):
        super().__init__(name=name, **kwargs)
        self.config = config
        self.encoder = BertEncoder(config)
        self.masked_lm = MaskedLMHead(
            config, self.encoder.embeddings.word_embeddings, name="masked_lm")
        self.next_sentence = WeightsTimesInput(
            2, config.hidden_size, config.initializer_range, name="next_sentence")
        self.built = True

    def call(self, inputs, training=False):
        encoder_inputs = {k: inputs[k] for k in ENCODER_INPUTS if k in inputs}
        outputs = self.encoder.call_at_positions(encoder_inputs, inputs["masked_lm_positions"],
                                                 training=training)
        mlm = self.masked_lm(outputs["gathered_output"])
        nsp = self.next_sentence(outputs["pooled_output"])
        return {"pooled_output": outputs["pooled_output"],
                "masked_lm_logits": tf.cast(mlm, tf.float32),
                "next_sentence_logits": tf.cast(nsp, tf.float32)}

    def checkpoint_map(self) -> dict[str, keras.Variable]:
        table = self.encoder.checkpoint_map()
        head = self.masked_lm
        table.update({
            "cls/predictions/transform/dense/kernel": head.transform.kernel,
            "cls/predictions/transform/dense/bias": head.transform.bias,
            "cls/predictions/transform/LayerNorm/gamma": head.transform_norm.gamma,
            "cls/predictions/transform/LayerNorm/beta": head.transform_norm.beta,
            "cls/predictions/output_bias": head.output_bias,
            "cls/seq_relationship/output_weights": self.next_sentence.output_weights,
            "cls/seq_relationship/output_bias": self.next_sentence.output_bias,
        })
        return table


@keras.saving.register_keras_serializable(package="bert_tf")
class BertClassifier(keras.Model):
    """Encoder + dropout + a linear layer on the pooled output.

    The output layer is named and shaped like Google's `run_classifier.py`
    (`output_weights [num_labels, hidden]`, `output_bias`), so fine-tuned
    Google checkpoints restore. `num_labels=1` gives a regression head.
    Returns float32 logits `[batch, num_labels]`.

    >>> encoder = BertEncoder(BertConfig(vocab_size=100, hidden_size=32,
    ...     num_hidden_layers=2, num_attention_heads=4, intermediate_size=64))
    >>> BertClassifier(encoder, num_labels=3)(dummy_inputs(batch_size=2)).shape
    TensorShape([2, 3])
    """

    def __init__(self, encoder: keras.Model, num_labels: int, dropout_rate: float = 0.1,
                 name: str = "classifier", **kwargs):
        super().__init__(name=name, **kwargs)
        self.encoder = encoder
        self.num_labels = num_labels
        self.dropout_rate = dropout_rate
        hidden = encoder.config.hidden_size
        init_range = encoder.config.initializer_range
        self.dropout = Dropout(dropout_rate)
        self.head = WeightsTimesInput(num_labels, hidden, init_range, name="output")
        self.built = True

    def call(self, inputs, training=False):
        pooled = self.encoder(inputs, training=training)["pooled_output"]
        logits = self.head(self.dropout(pooled, training=training))
        return tf.cast(logits, tf.float32)

    def get_config(self):
        return {**keras.layers.Layer.get_config(self),
                "encoder": keras.saving.serialize_keras_object(self.encoder),
                "num_labels": self.num_labels, "dropout_rate": self.dropout_rate}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        encoder = keras.saving.deserialize_keras_object(config.pop("encoder"))
        return cls(encoder, **config)

    def checkpoint_map(self) -> dict[str, keras.Variable]:
        table = self.encoder.checkpoint_map()
        table["output_weights"] = self.head.output_weights
        table["output_bias"] = self.head.output_bias
        return table


def dummy_inputs(batch_size: int = 1, seq_length: int = 8) -> dict[str, tf.Tensor]:
    """All-[PAD] inputs, enough to trace a model once."""
    zeros = tf.zeros([batch_size, seq_length], tf.int32)
    return {"input_word_ids": zeros, "input_mask": tf.ones_like(zeros),
            "input_type_ids": zeros}
