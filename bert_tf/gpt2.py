"""The GPT-2 decoder in Keras 3: OpenAI's model, laid out like its checkpoints.

A GPT-2 is a stack of pre-LayerNorm Transformer blocks over learned token
(`wte`) and position (`wpe`) embeddings, with causal self-attention, a tanh
GELU feed-forward net, a final LayerNorm `ln_f`, and the token embedding
reused as the output layer. Every weight has the shape OpenAI's TF
checkpoints store it (`c_attn/w` is `[1, in, 3 * out]` there and `[in, 3 *
out]` here: the leading 1 is the only difference), so `checkpoint_map()`
is one table from OpenAI's names to our variables; Hugging Face names
derive from it (`bert_tf.gpt2_checkpoints`).

The attention arithmetic, dropout and activations are BERT's
(`bert_tf.modeling`); only the block order (norm before, not after, each
sub-layer) and the causal mask differ.

    >>> model = GPT2LM(GPT2Config(n_vocab=50, n_ctx=16, n_embd=32, n_head=4, n_layer=2))
    >>> model(tf.constant([[5, 6, 7]])).shape
    TensorShape([1, 3, 50])
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import keras
import tensorflow as tf

from bert_tf import modeling
from bert_tf.modeling import ConfigError

# A large negative score for keys a query may not see, as BERT uses for
# padding: exp(-10000) is 0 in float32, and unlike -inf it cannot turn a
# row with no visible key into NaNs (such rows are left padding).
_MASKED = -10000.0


@dataclasses.dataclass
class GPT2Config(modeling.JsonConfig):
    """Hyper-parameters of a GPT-2, under the names of OpenAI's `hparams.json`.

    `hparams.json` has only `n_vocab`, `n_ctx`, `n_embd`, `n_head` and
    `n_layer`; the other fields carry the values OpenAI's code hard-wires
    (and Hugging Face's `config.json` names them the same way). `n_inner`
    None means 4 * n_embd.

    >>> GPT2Config.preset("medium").n_layer
    24
    """

    FILE_KIND = "GPT-2 hparams file"

    n_vocab: int = 50257
    n_ctx: int = 1024
    n_embd: int = 768
    n_head: int = 12
    n_layer: int = 12
    n_inner: int | None = None
    activation_function: str = "gelu_new"
    layer_norm_epsilon: float = 1e-5
    embd_pdrop: float = 0.1
    attn_pdrop: float = 0.1
    resid_pdrop: float = 0.1
    initializer_range: float = 0.02

    def __post_init__(self):
        source = "GPT2Config"
        if self.n_inner is None:
            self.n_inner = 4 * self.n_embd
        for field in ("n_vocab", "n_ctx", "n_embd", "n_head", "n_layer", "n_inner"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(f"{source}: '{field}' must be a positive integer, got {value!r}")
        for field in ("embd_pdrop", "attn_pdrop", "resid_pdrop"):
            value = getattr(self, field)
            if not isinstance(value, (int, float)) or not 0 <= value < 1:
                raise ConfigError(f"{source}: '{field}' must be a number in [0, 1), got {value!r}")
        for field in ("layer_norm_epsilon", "initializer_range"):
            value = getattr(self, field)
            if not isinstance(value, (int, float)) or value <= 0:
                raise ConfigError(f"{source}: '{field}' must be a positive number, got {value!r}")
        if self.n_embd % self.n_head:
            raise ConfigError(f"{source}: n_embd {self.n_embd} is not a multiple of "
                              f"n_head {self.n_head}")
        if self.activation_function not in modeling.ACTIVATIONS:
            raise ConfigError(f"{source}: unknown activation_function "
                              f"{self.activation_function!r}; known: "
                              f"{', '.join(sorted(modeling.ACTIVATIONS))}")

    @classmethod
    def preset(cls, name: str, **overrides) -> "GPT2Config":
        """OpenAI's released sizes: small (124M), medium (355M), large, xl."""
        if name not in PRESETS:
            raise ConfigError(f"unknown GPT-2 preset {name!r}; known: {', '.join(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "config") -> "GPT2Config":
        """Builds a config from `hparams.json` names, ignoring unknown keys."""
        if not isinstance(values, dict):
            raise ConfigError(f"{source}: expected a JSON object, got {type(values).__name__}")
        fields = {f.name for f in dataclasses.fields(cls)}
        try:
            return cls(**{k: v for k, v in values.items() if k in fields})
        except ConfigError as e:
            raise ConfigError(str(e).replace("GPT2Config:", f"{source}:", 1)) from None



PRESETS = {
    "small": dict(n_embd=768, n_head=12, n_layer=12),
    "medium": dict(n_embd=1024, n_head=16, n_layer=24),
    "large": dict(n_embd=1280, n_head=20, n_layer=36),
    "xl": dict(n_embd=1600, n_head=25, n_layer=48),
}


def _normal(stddev: float):
    return keras.initializers.RandomNormal(stddev=stddev)


def _conv1d(config: GPT2Config, units: int, fan_in: int, name: str, stddev=None, activation=None):
    """OpenAI's `conv1d` (a dense layer over the last axis), built."""
    layer = keras.layers.Dense(units, activation=activation, name=name,
                               kernel_initializer=_normal(stddev or config.initializer_range))
    layer.build((None, None, fan_in))
    return layer


def _layer_norm(config: GPT2Config, name: str):
    layer = keras.layers.LayerNormalization(epsilon=config.layer_norm_epsilon, name=name)
    layer.build((None, None, config.n_embd))
    return layer


def causal_attention_bias(query_length, key_length, key_mask=None, query_offset=0):
    """Additive bias `[batch or 1, 1, queries, keys]` for causal attention.

    Query i (at position `query_offset + i` of the keys) sees keys 0 to
    `query_offset + i`; `key_mask` `[batch, keys]` (1 for real tokens) hides
    padding as well.

    >>> causal_attention_bias(2, 3, query_offset=1)[0, 0].numpy().tolist()
    [[0.0, 0.0, -10000.0], [0.0, 0.0, 0.0]]
    """
    queries = tf.range(query_length)[:, tf.newaxis] + query_offset
    visible = tf.range(key_length)[tf.newaxis, :] <= queries
    bias = tf.where(visible, 0.0, _MASKED)[tf.newaxis, tf.newaxis]
    if key_mask is not None:
        real = tf.cast(key_mask, tf.bool)[:, tf.newaxis, tf.newaxis, :]
        bias = tf.where(real, bias, _MASKED)
    return bias


def _per_head(bias, n_head: int):
    """`bias` `[batch or 1, 1, queries, keys]` broadcast to `[batch or 1,
    n_head, queries, keys]`.

    oneDNN fuses attention's batched matmul, scale and bias add into one
    kernel, and with an addend of shape `[1, 1, queries, keys]` (no padding
    mask, or a batch of one) that kernel takes a path some 250x slower on a
    CPU: 1 s instead of 4 ms for 8 x 6 heads x 128 x 128 scores. With the
    heads axis filled in it stays on the fast path; the values, and so the
    results, are the same, and the cost is one tensor of the scores' size.
    """
    shape = tf.shape(bias)
    return tf.broadcast_to(bias, tf.stack([shape[0], n_head, shape[2], shape[3]]))


def _write_slots(cache, new, index):
    """`cache` `[batch, heads, slots, size]` with slots `index...` replaced by
    `new` `[batch, heads, n, size]`. Plain TensorFlow ops (a pad and a
    select), so it runs with or without XLA and in a SavedModel."""
    slots, count = tf.shape(cache)[2], tf.shape(new)[2]
    padded = tf.pad(new, [[0, 0], [0, 0], [index, slots - index - count], [0, 0]])
    written = tf.range(slots)
    written = (written >= index) & (written < index + count)
    return tf.where(written[tf.newaxis, tf.newaxis, :, tf.newaxis], padded, cache)


class _GPT2Layer(modeling._BuiltFromConfig, keras.layers.Layer):
    """A layer built from a GPT2Config alone."""

    config_class = GPT2Config

    def __init__(self, config: GPT2Config, **kwargs):
        super().__init__(**kwargs)
        self.config = config


@keras.saving.register_keras_serializable(package="bert_tf")
class GPT2Attention(_GPT2Layer):
    """Causal multi-head self-attention: fused `c_attn`, output `c_proj`.

    With `cache` `[batch, 2, heads, max_length, head_size]` (keys, values)
    and `cache_index`, the new tokens' keys and values are written into the
    cache at `cache_index` onwards and the queries attend over the whole
    cache (the bias hides the slots not yet written); the updated cache is
    returned with the output.
    """

    def __init__(self, config: GPT2Config, **kwargs):
        super().__init__(config, **kwargs)
        e = config.n_embd
        self.c_attn = _conv1d(config, 3 * e, e, "c_attn")
        # GPT-2 scales the initial weights of the layers that write into the
        # residual stream by 1/sqrt(2 * n_layer): the stream sums 2 per block.
        self.c_proj = _conv1d(config, e, e, "c_proj",
                              stddev=config.initializer_range / math.sqrt(2 * config.n_layer))
        self.attn_dropout = modeling.Dropout(config.attn_pdrop)
        self.resid_dropout = modeling.Dropout(config.resid_pdrop)

    def call(self, x, attention_bias, cache=None, cache_index=None, training=False):
        heads = self.config.n_head
        q, k, v = tf.split(self.c_attn(x), 3, axis=-1)
        q, k, v = (modeling.split_heads(t, heads) for t in (q, k, v))
        if cache is not None:
            k = _write_slots(cache[:, 0], tf.cast(k, cache.dtype), cache_index)
            v = _write_slots(cache[:, 1], tf.cast(v, cache.dtype), cache_index)
            cache = tf.stack([k, v], axis=1)
        context, _ = modeling.attend(q, k, v, attention_bias, self.attn_dropout, training)
        out = self.resid_dropout(self.c_proj(modeling.merge_heads(context)), training=training)
        return out if cache is None else (out, cache)


@keras.saving.register_keras_serializable(package="bert_tf")
class GPT2MLP(_GPT2Layer):
    """The feed-forward net: `c_fc` (n_inner, GELU) then `c_proj`."""

    def __init__(self, config: GPT2Config, **kwargs):
        super().__init__(config, **kwargs)
        self.c_fc = _conv1d(config, config.n_inner, config.n_embd, "c_fc",
                            activation=modeling.ACTIVATIONS[config.activation_function])
        self.c_proj = _conv1d(config, config.n_embd, config.n_inner, "c_proj",
                              stddev=config.initializer_range / math.sqrt(2 * config.n_layer))
        self.dropout = modeling.Dropout(config.resid_pdrop)

    def call(self, x, training=False):
        return self.dropout(self.c_proj(self.c_fc(x)), training=training)


@keras.saving.register_keras_serializable(package="bert_tf")
class GPT2Block(_GPT2Layer):
    """`x + attn(ln_1(x))`, then `x + mlp(ln_2(x))`: pre-LayerNorm."""

    def __init__(self, config: GPT2Config, **kwargs):
        super().__init__(config, **kwargs)
        self.ln_1 = _layer_norm(config, "ln_1")
        self.attn = GPT2Attention(config, name="attn")
        self.ln_2 = _layer_norm(config, "ln_2")
        self.mlp = GPT2MLP(config, name="mlp")

    def call(self, x, attention_bias, cache=None, cache_index=None, training=False):
        attended = self.attn(self.ln_1(x), attention_bias, cache=cache,
                             cache_index=cache_index, training=training)
        if cache is not None:
            attended, cache = attended
        x = x + attended
        x = x + self.mlp(self.ln_2(x), training=training)
        return x if cache is None else (x, cache)


@keras.saving.register_keras_serializable(package="bert_tf")
class GPT2LM(modeling._BuiltFromConfig, keras.Model):
    """GPT-2 with its tied output layer: token ids in, next-token logits out.

    Called with int `[batch, seq]` token ids, or a dict of `token_ids`,
    optional `padding_mask` (1 for real tokens; padded keys are hidden) and
    optional `positions` (default 0, 1, ...; left-padded rows pass their
    own). Returns float32 logits `[batch, seq, n_vocab]`. `hidden_states`
    gives the output of `ln_f` instead, and `call_with_cache` runs new
    tokens against a key/value cache.
    """

    config_class = GPT2Config

    def __init__(self, config: GPT2Config, name: str = "gpt2", **kwargs):
        super().__init__(name=name, **kwargs)
        self.config = config
        self.wte = self.add_weight(name="wte", shape=(config.n_vocab, config.n_embd),
                                   initializer=_normal(config.initializer_range))
        # OpenAI initialises positions with half the spread of tokens.
        self.wpe = self.add_weight(name="wpe", shape=(config.n_ctx, config.n_embd),
                                   initializer=_normal(config.initializer_range / 2))
        self.embd_dropout = modeling.Dropout(config.embd_pdrop)
        # One attribute per block, named as in OpenAI's checkpoints: TF2
        # object checkpoints do not see layers kept in a Python list.
        for i in range(config.n_layer):
            setattr(self, f"h{i}", GPT2Block(config, name=f"h{i}"))
        self.ln_f = _layer_norm(config, "ln_f")
        self.built = True

    @property
    def blocks(self) -> list[GPT2Block]:
        return [getattr(self, f"h{i}") for i in range(self.config.n_layer)]

    def _embed(self, token_ids, positions, training):
        x = tf.gather(self.wte, token_ids) + tf.gather(self.wpe, positions)
        return self.embd_dropout(x, training=training)

    def _unpack(self, inputs):
        if isinstance(inputs, dict):
            ids, mask, positions = (inputs["token_ids"], inputs.get("padding_mask"),
                                    inputs.get("positions"))
        else:
            ids, mask, positions = inputs, None, None
        ids = tf.cast(ids, tf.int32)
        length = tf.shape(ids)[1]
        tf.debugging.assert_less_equal(length, self.config.n_ctx,
                                       message="sequence longer than n_ctx")
        if positions is None:
            positions = tf.range(length)[tf.newaxis, :]
        return ids, mask, tf.cast(positions, tf.int32)

    def hidden_states(self, inputs, training=False):
        """The final LayerNorm's output `[batch, seq, n_embd]`."""
        ids, mask, positions = self._unpack(inputs)
        length = tf.shape(ids)[1]
        bias = _per_head(causal_attention_bias(length, length, key_mask=mask),
                         self.config.n_head)
        x = self._embed(ids, positions, training)
        for block in self.blocks:
            x = block(x, bias, training=training)
        return self.ln_f(x)

    def logits(self, hidden):
        """Next-token logits from hidden states: the tied `wte`, in float32."""
        hidden = tf.cast(hidden, tf.float32)
        flat = tf.reshape(hidden, [-1, self.config.n_embd])
        logits = tf.matmul(flat, tf.cast(self.wte, tf.float32), transpose_b=True)
        return tf.reshape(logits, tf.concat([tf.shape(hidden)[:-1], [-1]], axis=0))

    def call(self, inputs, training=False):
        return self.logits(self.hidden_states(inputs, training=training))

    def empty_cache(self, batch_size: int, max_length: int, dtype=tf.float32):
        """Zeroed key/value cache `[n_layer, batch, 2, n_head, max_length, head_size]`."""
        c = self.config
        return tf.zeros([c.n_layer, batch_size, 2, c.n_head, max_length, c.n_embd // c.n_head],
                        dtype)

    def call_with_cache(self, token_ids, positions, cache, cache_index, key_mask):
        """Runs `token_ids` `[batch, new]` as cache slots `cache_index...`.

        `key_mask` `[batch, max_length]` marks the cache slots holding real
        tokens (padding excluded), including the new ones; slots after the
        new tokens are hidden by the causal rule. Returns the new tokens'
        logits `[batch, new, n_vocab]` and the updated cache.
        """
        token_ids = tf.cast(token_ids, tf.int32)
        bias = _per_head(causal_attention_bias(tf.shape(token_ids)[1], tf.shape(cache)[4],
                                               key_mask=key_mask, query_offset=cache_index),
                         self.config.n_head)
        x = self._embed(token_ids, tf.cast(positions, tf.int32), training=False)
        layer_caches = []
        for i, block in enumerate(self.blocks):
            x, layer_cache = block(x, bias, cache=cache[i], cache_index=cache_index)
            layer_caches.append(layer_cache)
        return self.logits(self.ln_f(x)), tf.stack(layer_caches)

    def checkpoint_map(self) -> dict[str, keras.Variable]:
        """OpenAI TF checkpoint name -> variable, for every weight.

        OpenAI stores the `w` of each conv1d as `[1, in, out]`; our kernels
        are `[in, out]` (`gpt2_checkpoints` adds and drops the 1).
        """
        table = {"model/wte": self.wte, "model/wpe": self.wpe,
                 "model/ln_f/g": self.ln_f.gamma, "model/ln_f/b": self.ln_f.beta}
        for i, block in enumerate(self.blocks):
            prefix = f"model/h{i}/"
            for name, norm in (("ln_1", block.ln_1), ("ln_2", block.ln_2)):
                table[prefix + name + "/g"] = norm.gamma
                table[prefix + name + "/b"] = norm.beta
            for name, dense in (("attn/c_attn", block.attn.c_attn),
                                ("attn/c_proj", block.attn.c_proj),
                                ("mlp/c_fc", block.mlp.c_fc),
                                ("mlp/c_proj", block.mlp.c_proj)):
                table[prefix + name + "/w"] = dense.kernel
                table[prefix + name + "/b"] = dense.bias
        return table
