"""Moves GPT-2 weights between `gpt2.GPT2LM` and the formats people have.

Two formats, each read and written:
  * OpenAI's release layout: a folder with a TF1 checkpoint (`model.ckpt.*`
    and the `checkpoint` state file) whose variables are named
    `model/wte`, `model/wpe`, `model/h{i}/ln_1/g`, `model/h{i}/attn/c_attn/w`
    ..., `model/ln_f/{g,b}`, beside `hparams.json`, `encoder.json` and
    `vocab.bpe`. Its conv1d weights are `[1, in, out]`.
  * Hugging Face GPT-2 folders: `config.json` + `model.safetensors`, the
    tensors named `transformer.h.{i}.attn.c_attn.weight` and so on. Hugging
    Face's GPT-2 `Conv1D` stores weights `[in, out]` like TF, so nothing is
    transposed (unlike BERT's `Linear` layers); the output layer
    `lm_head.weight` is the token embedding and is not stored twice.

`GPT2LM.checkpoint_map()` (OpenAI name -> variable) is the one name table;
Hugging Face names are derived from OpenAI's by `hf_name`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re

import numpy as np
import tensorflow as tf

from bert_tf import atomic_io, checkpoints, gpt2, text_files
from bert_tf.checkpoints import CheckpointError, LoadReport
from bert_tf.modeling import ConfigError

HPARAMS_FILE = "hparams.json"
# The keys of OpenAI's hparams.json; its code refuses any other key.
OPENAI_HPARAMS = ("n_vocab", "n_ctx", "n_embd", "n_head", "n_layer")
TOKENIZER_FILES = ("encoder.json", "vocab.bpe")


def _openai_shape(name: str, shape) -> tuple[int, ...]:
    """The shape OpenAI stores a variable in: conv1d weights get a leading 1."""
    return (1, *shape) if name.endswith("/w") else tuple(shape)


def hf_name(openai_name: str) -> str:
    """OpenAI variable name -> Hugging Face tensor name (of a GPT2LMHeadModel).

    >>> hf_name("model/h3/attn/c_attn/w"), hf_name("model/ln_f/g"), hf_name("model/wte")
    ('transformer.h.3.attn.c_attn.weight', 'transformer.ln_f.weight', 'transformer.wte.weight')
    """
    name = re.sub(r"^model/", "transformer/", openai_name)
    name = re.sub(r"/h(\d+)/", r"/h/\1/", name)
    leaf = {"w": "weight", "g": "weight", "b": "bias"}
    parts = name.split("/")
    if parts[-1] in leaf:
        parts[-1] = leaf[parts[-1]]
    else:  # embedding tables
        parts.append("weight")
    return ".".join(parts)


# --- OpenAI's layout --------------------------------------------------------

def _checkpoint_prefix(path: str) -> str:
    """A checkpoint prefix from a prefix or a folder holding one."""
    if tf.io.gfile.isdir(path):
        latest = tf.train.latest_checkpoint(path)
        if latest is None and tf.io.gfile.exists(os.path.join(path, "model.ckpt.index")):
            latest = os.path.join(path, "model.ckpt")
        if latest is None:
            raise FileNotFoundError(f"No checkpoint in folder {path!r}")
        return latest
    return path


def load_openai_checkpoint(model: gpt2.GPT2LM, path: str) -> LoadReport:
    """Restores an OpenAI-layout TF checkpoint (a prefix or its folder).

    Every `model/...` variable must be present with OpenAI's shape; Adam
    slots and `global_step` are ignored.
    """
    prefix = _checkpoint_prefix(path)
    stored = checkpoints.list_checkpoint(prefix)
    table = model.checkpoint_map()
    expected = {n: _openai_shape(n, v.shape) for n, v in table.items()}
    report = checkpoints.match_shapes(expected, stored, prefix, required=("model/",))
    reader = tf.train.load_checkpoint(prefix)
    for name in report.restored:
        table[name].assign(np.reshape(reader.get_tensor(name), table[name].shape))
    return report


class _OpenAITensors:
    """The model's weights in OpenAI's shapes, for the TF1 checkpoint writer."""

    def __init__(self, model: gpt2.GPT2LM):
        self._model = model

    def checkpoint_map(self):
        return {n: tf.reshape(v, _openai_shape(n, v.shape))
                for n, v in self._model.checkpoint_map().items()}


def write_hparams(config: gpt2.GPT2Config, path: str) -> None:
    """Writes OpenAI's `hparams.json`: its five keys, plus any other field
    that differs from GPT-2's fixed values (which OpenAI's code would refuse,
    so a non-standard model says so instead of loading wrongly)."""
    values = config.to_dict()
    defaults = {f.name: f.default for f in dataclasses.fields(gpt2.GPT2Config)}
    defaults["n_inner"] = 4 * config.n_embd
    out = {k: values[k] for k in OPENAI_HPARAMS}
    out.update({k: v for k, v in values.items()
                if k not in OPENAI_HPARAMS and v != defaults[k]})
    atomic_io.write_text(path, json.dumps(out, indent=2) + "\n")


def save_openai_folder(model: gpt2.GPT2LM, folder: str, tokenizer_files: dict[str, str] | None = None,
                       global_step: int | None = None) -> str:
    """Writes `folder` in OpenAI's release layout; returns the checkpoint prefix.

    `tokenizer_files` maps `encoder.json` / `vocab.bpe` to files to copy in.
    The folder appears whole or not at all.
    """
    with atomic_io.staged_folder(folder) as staging:
        checkpoints.save_google_checkpoint(_OpenAITensors(model),
                                           os.path.join(staging, "model.ckpt"), global_step)
        write_hparams(model.config, os.path.join(staging, HPARAMS_FILE))
        _copy_tokenizer_files(tokenizer_files, staging)
    return os.path.join(folder, "model.ckpt")


def _copy_tokenizer_files(files: dict[str, str] | None, folder: str) -> None:
    for name, source in (files or {}).items():
        with open(source, "rb") as f:
            data = f.read()
        with open(os.path.join(folder, name), "wb") as f:
            f.write(data)


def read_openai_hparams(folder: str) -> gpt2.GPT2Config:
    return gpt2.GPT2Config.from_json_file(os.path.join(folder, HPARAMS_FILE))


# --- Hugging Face ------------------------------------------------------------

# config.json name -> GPT2Config field, where they differ.
_HF_TO_OURS = {"vocab_size": "n_vocab", "n_positions": "n_ctx"}
# Hugging Face options that change the arithmetic and that GPT-2 itself never
# sets; a config that sets them is refused rather than loaded wrongly.
_HF_UNSUPPORTED = {"scale_attn_weights": True, "scale_attn_by_inverse_layer_idx": False,
                   "add_cross_attention": False, "tie_word_embeddings": True}


def hf_config_to_gpt2_config(values: dict, source: str = "config.json") -> gpt2.GPT2Config:
    """Translates a Hugging Face GPT2Config dict into ours.

    Hugging Face's "gelu" is the exact erf form, ours the tanh approximation
    (as in Google's code); "gelu_new" is GPT-2's tanh form in both.
    """
    if not isinstance(values, dict):
        raise ConfigError(f"{source}: expected a JSON object")
    for key, wanted in _HF_UNSUPPORTED.items():
        if values.get(key, wanted) != wanted:
            raise ConfigError(f"{source}: {key}={values[key]!r} is not supported "
                              f"(GPT-2 uses {wanted!r})")
    ours = {_HF_TO_OURS.get(k, k): v for k, v in values.items()}
    act = ours.get("activation_function", "gelu_new")
    ours["activation_function"] = {"gelu": "gelu_exact"}.get(act, act)
    return gpt2.GPT2Config.from_dict(ours, source=source)


def gpt2_config_to_hf_config(config: gpt2.GPT2Config, eos_token_id: int | None = None) -> dict:
    """Our config as a Hugging Face `config.json` dict for GPT2LMHeadModel."""
    act = {"gelu_exact": "gelu", "gelu": "gelu_new"}.get(config.activation_function,
                                                          config.activation_function)
    eos = config.n_vocab - 1 if eos_token_id is None else eos_token_id
    return {
        "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2",
        "vocab_size": config.n_vocab, "n_positions": config.n_ctx, "n_embd": config.n_embd,
        "n_head": config.n_head, "n_layer": config.n_layer, "n_inner": config.n_inner,
        "activation_function": act, "layer_norm_epsilon": config.layer_norm_epsilon,
        "embd_pdrop": config.embd_pdrop, "attn_pdrop": config.attn_pdrop,
        "resid_pdrop": config.resid_pdrop, "initializer_range": config.initializer_range,
        "bos_token_id": eos, "eos_token_id": eos, "tie_word_embeddings": True,
    }


def read_hf_config(folder: str) -> gpt2.GPT2Config:
    path = os.path.join(folder, "config.json")
    values = text_files.read_json(path, "Hugging Face config", error=ConfigError)
    return hf_config_to_gpt2_config(values, source=path)


def load_hf_weights(model: gpt2.GPT2LM, folder: str) -> LoadReport:
    """Restores a Hugging Face GPT-2 folder (GPT2LMHeadModel or GPT2Model)."""
    from safetensors.numpy import load_file

    path = os.path.join(folder, "model.safetensors")
    if not os.path.exists(path):
        other = [f for f in ("pytorch_model.bin", "tf_model.h5")
                 if os.path.exists(os.path.join(folder, f))]
        hint = f" (found {', '.join(other)}: convert it to safetensors first)" if other else ""
        raise FileNotFoundError(f"No model.safetensors in {folder}{hint}")
    try:
        tensors = load_file(path)
    except Exception as e:  # safetensors raises its own error types
        raise CheckpointError(f"Cannot read {path}: {e}") from None
    # A bare GPT2Model's file has no "transformer." prefix.
    tensors = {(k if k.startswith(("transformer.", "lm_head.")) else "transformer." + k): v
               for k, v in tensors.items()}
    table = model.checkpoint_map()
    expected = {n: tuple(v.shape) for n, v in table.items()}
    by_hf = {hf_name(n): n for n in table}
    stored, sources = {}, {}
    for name, value in tensors.items():
        if name in by_hf:
            stored[by_hf[name]] = value.shape
            sources[by_hf[name]] = value
        elif name == "lm_head.weight":
            wte = tensors.get("transformer.wte.weight")
            if wte is None or not np.array_equal(wte, value):
                raise CheckpointError(f"{path}: lm_head.weight differs from the token "
                                      "embedding; GPT-2's output layer is tied to it")
        elif not re.search(r"\.attn\.(masked_)?bias$", name):  # causal-mask buffers
            stored[name] = value.shape
    report = checkpoints.match_shapes(expected, stored, path, required=("model/",))
    for name in report.restored:
        table[name].assign(sources[name])
    return report


def save_hf_folder(model: gpt2.GPT2LM, folder: str, tokenizer_files: dict[str, str] | None = None,
                   eos_token_id: int | None = None) -> None:
    """Writes a Hugging Face GPT2LMHeadModel folder (`config.json`, `model.safetensors`).

    `tokenizer_files` maps file names (`vocab.json`, `merges.txt`, ...) to
    files to copy in. The folder appears whole or not at all.
    """
    from safetensors.numpy import save_file

    tensors = {hf_name(n): np.ascontiguousarray(v.numpy())
               for n, v in model.checkpoint_map().items()}
    with atomic_io.staged_folder(folder) as staging:
        save_file(tensors, os.path.join(staging, "model.safetensors"), metadata={"format": "pt"})
        config = gpt2_config_to_hf_config(model.config, eos_token_id)
        atomic_io.write_text(os.path.join(staging, "config.json"),
                             json.dumps(config, indent=2, sort_keys=True) + "\n")
        _copy_tokenizer_files(tokenizer_files, staging)


# --- either ---------------------------------------------------------------

def folder_format(folder: str) -> str:
    """'huggingface' or 'openai', from the files a model folder holds."""
    if os.path.exists(os.path.join(folder, "config.json")) and \
            os.path.exists(os.path.join(folder, "model.safetensors")):
        return "huggingface"
    if os.path.exists(os.path.join(folder, HPARAMS_FILE)):
        return "openai"
    raise FileNotFoundError(
        f"{folder} is neither a Hugging Face GPT-2 folder (config.json + model.safetensors) "
        f"nor an OpenAI one ({HPARAMS_FILE} + model.ckpt)")


def load_pretrained(folder: str) -> gpt2.GPT2LM:
    """A GPT2LM with the weights of a Hugging Face or OpenAI-layout folder."""
    if folder_format(folder) == "huggingface":
        model = gpt2.GPT2LM(read_hf_config(folder))
        load_hf_weights(model, folder)
    else:
        model = gpt2.GPT2LM(read_openai_hparams(folder))
        load_openai_checkpoint(model, folder)
    return model
