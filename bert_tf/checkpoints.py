"""Moves BERT weights between our Keras models and the formats people have.

Three formats are spoken:
  * Google's TF1 checkpoints (`bert_model.ckpt`): flat variable names such as
    `bert/encoder/layer_0/attention/self/query/kernel`, possibly with Adam
    slots, `global_step`, the `cls/*` pretraining heads or a fine-tuned
    classifier's `output_weights`/`output_bias`. We read and write them.
  * Hugging Face BERT folders (`config.json` + `model.safetensors`). Read.
  * TF2 object-based checkpoints written by our trainer. Read.

Every model exposes `checkpoint_map()` (Google name -> variable); the other
formats are translated through it, so there is one naming table, not three.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import tempfile

import numpy as np
import tensorflow as tf
from absl import logging

from bert_tf import atomic_io, modeling, text_files

# Checkpoint entries that are training state, not weights.
_TRAINING_STATE = re.compile(r"(/adam_[mv]$|/Adam(_\d+)?$|^global_step$|_power$|"
                             r"^_CHECKPOINTABLE_OBJECT_GRAPH$)")


class CheckpointError(ValueError):
    """A checkpoint cannot be read or does not fit the model.

    When it does not fit, `mismatched` holds every (name, checkpoint shape,
    model shape), `missing` every (name, model shape) the model needs and
    the checkpoint lacks, and `unexpected` every (name, checkpoint shape)
    the model has no place for; the message shows the first few of each.
    """

    def __init__(self, message: str, *, mismatched=(), missing=(), unexpected=()):
        super().__init__(message)
        self.mismatched = list(mismatched)
        self.missing = list(missing)
        self.unexpected = list(unexpected)


# Variables shown one per line with their shapes before the rest are summed up.
_SHOWN = 5


def _shape(shape) -> str:
    return str(list(shape))


def _listing(entries: list[tuple], describe, group_key) -> list[str]:
    """The first `_SHOWN` entries one per line; the rest on one line per
    shape (or shape pair): every name and shape stays in the message, in a
    few lines, each name spelled out so that it can be searched for."""
    lines = [f"  {describe(entry)}" for entry in entries[:_SHOWN]]
    rest = entries[_SHOWN:]
    if rest:
        lines.append(f"  ... and {len(rest)} more:")
        groups: dict[str, list[str]] = {}
        for entry in rest:
            groups.setdefault(group_key(entry), []).append(entry[0])
        lines.extend(f"    {key}: {', '.join(names)}"
                     for key, names in groups.items())
    return lines


@dataclasses.dataclass
class LoadReport:
    """What a load did: names restored, left at their initial values, unused."""

    restored: list[str]
    missing: list[str]
    unexpected: list[str]


def _require_checkpoint(path: str) -> None:
    if not tf.io.gfile.exists(path + ".index"):
        hint = ""
        if tf.io.gfile.isdir(path):
            latest = tf.train.latest_checkpoint(path)
            hint = (f"; it is a folder, did you mean {latest}?" if latest
                    else "; it is a folder with no checkpoint in it")
        raise FileNotFoundError(f"No checkpoint at {path!r} (expected {path}.index){hint}")


def list_checkpoint(path: str) -> dict[str, tuple[int, ...]]:
    """Variable name -> shape for every tensor stored in a checkpoint."""
    _require_checkpoint(path)
    try:
        return {name: tuple(shape) for name, shape in tf.train.list_variables(path)}
    except (tf.errors.OpError, ValueError) as e:
        raise CheckpointError(f"Cannot read checkpoint {path!r}: {e}") from None


def is_object_based(path: str) -> bool:
    """True for TF2 `tf.train.Checkpoint` files, False for TF1 name-based ones."""
    return "_CHECKPOINTABLE_OBJECT_GRAPH" in list_checkpoint(path)


def match_shapes(table: dict[str, tuple[int, ...]], stored: dict[str, tuple[int, ...]],
           source: str, required: tuple[str, ...]) -> LoadReport:
    """Compares the model's names/shapes with the stored ones; raises on conflicts."""
    missing = [n for n in table if n not in stored]
    mismatched = [(n, tuple(stored[n]), tuple(table[n]))
                  for n in table if n in stored and tuple(stored[n]) != tuple(table[n])]
    unexpected = [n for n in stored if n not in table and not _TRAINING_STATE.search(n)]
    fatal_missing = [(n, tuple(table[n])) for n in missing if n.startswith(required)]
    if mismatched or fatal_missing:
        extra = [(n, tuple(stored[n])) for n in unexpected]
        lines = [f"Checkpoint {source!r} does not fit the model:"]
        if mismatched:
            lines.append(f"{len(mismatched)} variable(s) with mismatched shapes "
                         "(checkpoint vs model):")
            lines += _listing(
                mismatched,
                lambda e: f"{e[0]}: checkpoint has {_shape(e[1])}, model expects {_shape(e[2])}",
                lambda e: f"{_shape(e[1])} vs {_shape(e[2])}")
        if fatal_missing:
            lines.append(f"{len(fatal_missing)} variable(s) missing from the checkpoint:")
            lines += _listing(fatal_missing, lambda e: f"{e[0]}: model expects {_shape(e[1])}",
                              lambda e: f"model expects {_shape(e[1])}")
        if extra:
            lines.append(f"{len(extra)} unexpected variable(s) in the checkpoint:")
            lines += _listing(extra, lambda e: f"{e[0]}: {_shape(e[1])}",
                              lambda e: _shape(e[1]))
        for name, have, want in mismatched:
            logging.debug("%s: %s has %s, the model expects %s", source, name, list(have),
                          list(want))
        raise CheckpointError("\n".join(lines), mismatched=mismatched, missing=fatal_missing,
                              unexpected=extra)
    restored = [n for n in table if n in stored]
    if missing:
        logging.warning("Not in %s, left at initial values: %s", source, ", ".join(missing))
    if unexpected:
        logging.info("Unused variables in %s: %s", source, ", ".join(unexpected))
    return LoadReport(restored, missing, unexpected)


def load_google_checkpoint(model, path: str, required: tuple[str, ...] = ("bert/",)) -> LoadReport:
    """Restores a Google TF1 checkpoint into `model` (encoder, pretrainer or classifier).

    Variables whose names start with one of `required` must be present; the
    others (a head the checkpoint lacks) keep their initial values and are
    reported. Optimizer slots and `global_step` are ignored, so checkpoints
    with or without them both load.
    """
    stored = list_checkpoint(path)
    table = model.checkpoint_map()
    report = match_shapes({n: tuple(v.shape) for n, v in table.items()}, stored, path, required)
    reader = tf.train.load_checkpoint(path)
    for name in report.restored:
        table[name].assign(reader.get_tensor(name))
    return report


def save_google_checkpoint(model, prefix: str, global_step: int | None = None) -> str:
    """Writes `model`'s weights under Google's TF1 names; returns the prefix.

    The files appear atomically: they are written under a temporary prefix
    and renamed, and the folder's `checkpoint` state file is updated last.
    """
    table = model.checkpoint_map()
    names = sorted(table)
    tensors = [tf.convert_to_tensor(table[n]) for n in names]
    if global_step is not None:
        names.append("global_step")
        tensors.append(tf.constant(global_step, tf.int64))
    folder = os.path.dirname(os.path.abspath(prefix))
    os.makedirs(folder, exist_ok=True)
    tmp_dir = tempfile.mkdtemp(dir=folder, prefix=".tmp-ckpt-")
    try:
        tmp_prefix = os.path.join(tmp_dir, "ckpt")
        tf.raw_ops.SaveV2(prefix=tmp_prefix, tensor_names=names,
                          shape_and_slices=[""] * len(names), tensors=tensors)
        for suffix in (".index", ".data-00000-of-00001"):
            os.replace(tmp_prefix + suffix, prefix + suffix)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    # The state file TF uses to find the latest checkpoint; a relative path
    # keeps the folder relocatable.
    name = os.path.basename(prefix)
    atomic_io.write_text(
        os.path.join(folder, "checkpoint"),
        f'model_checkpoint_path: "{name}"\nall_model_checkpoint_paths: "{name}"\n')
    return prefix


# --- Hugging Face ---------------------------------------------------------

def hf_name(google_name: str) -> tuple[str, bool]:
    """Google variable name -> (Hugging Face tensor name, whether to transpose).

    Hugging Face stores dense kernels as `[out, in]` (PyTorch Linear), calls
    LayerNorm's gamma/beta weight/bias and embedding tables `*.weight`.
    """
    special = {
        "cls/predictions/output_bias": ("cls.predictions.bias", False),
        "cls/seq_relationship/output_weights": ("cls.seq_relationship.weight", False),
        "cls/seq_relationship/output_bias": ("cls.seq_relationship.bias", False),
        "output_weights": ("classifier.weight", False),
        "output_bias": ("classifier.bias", False),
    }
    if google_name in special:
        return special[google_name]
    name = re.sub(r"layer_(\d+)", r"layer.\1", google_name).replace("/", ".")
    leaf = name.rsplit(".", 1)[-1]
    if leaf == "kernel":
        return name[: -len("kernel")] + "weight", True
    if leaf == "gamma":
        return name[: -len("gamma")] + "weight", False
    if leaf == "beta":
        return name[: -len("beta")] + "bias", False
    if leaf.endswith("_embeddings"):
        return name + ".weight", False
    return name, False


def hf_config_to_bert_config(values: dict, source: str = "config.json") -> modeling.BertConfig:
    """Translates a Hugging Face BertConfig dict into ours.

    Hugging Face's "gelu" is the exact erf form; Google's "gelu" is the tanh
    approximation. The difference (~1e-3) matters for exact outputs.
    """
    values = dict(values)
    act = values.get("hidden_act", "gelu")
    values["hidden_act"] = {"gelu": "gelu_exact", "gelu_new": "gelu"}.get(act, act)
    if values.get("position_embedding_type", "absolute") != "absolute":
        raise modeling.ConfigError(
            f"{source}: position_embedding_type {values['position_embedding_type']!r} "
            "is not supported (only 'absolute', as in Google's BERT)")
    return modeling.BertConfig.from_dict(values, source=source)


def read_hf_config(folder: str) -> modeling.BertConfig:
    path = os.path.join(folder, "config.json")
    values = text_files.read_json(path, "Hugging Face config", error=modeling.ConfigError)
    return hf_config_to_bert_config(values, source=path)


def read_hf_weights(folder: str) -> dict[str, np.ndarray]:
    """Loads `model.safetensors`, dropping the `bert.` prefix of task models."""
    from safetensors.numpy import load_file

    path = os.path.join(folder, "model.safetensors")
    if not os.path.exists(path):
        other = [f for f in ("pytorch_model.bin", "tf_model.h5") if os.path.exists(os.path.join(folder, f))]
        hint = f" (found {', '.join(other)}: convert it to safetensors first)" if other else ""
        raise FileNotFoundError(f"No model.safetensors in {folder}{hint}")
    try:
        tensors = load_file(path)
    except Exception as e:  # safetensors raises its own error types
        raise CheckpointError(f"Cannot read {path}: {e}") from None
    return {(k[len("bert."):] if k.startswith("bert.") else k): v for k, v in tensors.items()}


def load_hf_weights(model, folder: str, required: tuple[str, ...] = ("bert/",)) -> LoadReport:
    """Restores a Hugging Face BERT folder into `model`."""
    tensors = read_hf_weights(folder)
    table = model.checkpoint_map()
    expected, stored, sources = {}, {}, {}
    for google_name, variable in table.items():
        name, transpose = hf_name(google_name)
        name = name[len("bert."):] if name.startswith("bert.") else name
        if name == "cls.predictions.bias" and name not in tensors:
            name = "cls.predictions.decoder.bias"
        expected[google_name] = tuple(variable.shape)
        if name in tensors:
            value = tensors[name].T if transpose else tensors[name]
            stored[google_name] = value.shape
            sources[google_name] = value
    # Names of the file that nothing maps to, spelled as the file spells them.
    mapped = {hf_name(n)[0].removeprefix("bert.") for n in table} | {"cls.predictions.decoder.bias"}
    for name, value in tensors.items():
        if name not in mapped and not name.endswith("position_ids") and name != "cls.predictions.decoder.weight":
            stored[name] = value.shape
    report = match_shapes(expected, stored, os.path.join(folder, "model.safetensors"), required)
    for google_name in report.restored:
        table[google_name].assign(sources[google_name])
    return report


# --- our own TF2 checkpoints ------------------------------------------------

def stored_object_variables(path: str, *node_path: str) -> dict[str, tuple[tuple[int, ...], tf.DType]] | None:
    """The variables directly under one object of a TF2 checkpoint.

    `node_path` names the object by attribute from the root, e.g.
    ("model", "head"); returns {attribute: (shape, dtype)}, or None when the
    checkpoint has no such object. Lets a caller compare shapes and dtypes
    before restoring: a failed TF2 restore raises deep in TensorFlow and
    leaves a page of "unrestored values" warnings behind.
    """
    from tensorflow.core.protobuf import trackable_object_graph_pb2

    reader = tf.train.load_checkpoint(path)
    graph = trackable_object_graph_pb2.TrackableObjectGraph()
    graph.ParseFromString(reader.get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH"))
    node = 0
    for name in node_path:
        children = {c.local_name: c.node_id for c in graph.nodes[node].children}
        if name not in children:
            return None
        node = children[name]
    shapes, dtypes = reader.get_variable_to_shape_map(), reader.get_variable_to_dtype_map()
    found = {}
    for child in graph.nodes[node].children:
        keys = [a.checkpoint_key for a in graph.nodes[child.node_id].attributes
                if a.name == "VARIABLE_VALUE"]
        if keys and keys[0] in shapes:
            found[child.local_name] = (tuple(shapes[keys[0]]), dtypes[keys[0]])
    return found


def _check_head_fits(model, path: str) -> None:
    """A classifier checkpoint of another label count is refused in one line."""
    head = getattr(model, "head", None)
    if head is None or not hasattr(head, "output_weights"):
        return
    stored = stored_object_variables(path, "model", "head") or {}
    if "output_weights" in stored and stored["output_weights"][0] != tuple(head.output_weights.shape):
        have, want = stored["output_weights"][0][0], head.output_weights.shape[0]
        raise CheckpointError(
            f"Checkpoint {path!r} is a classifier with {have} output label(s) "
            f"(output_weights {list(stored['output_weights'][0])}); this task has {want} "
            f"(model expects {list(head.output_weights.shape)}): start from the "
            "pretrained encoder's checkpoint instead")


def load_object_checkpoint(model, path: str) -> LoadReport:
    """Restores a checkpoint written by our trainer (`tf.train.Checkpoint(model=...)`).

    The encoder must restore completely; heads restore when the checkpoint
    has them (a pretraining checkpoint has no classifier head, and the other
    way round).
    """
    list_checkpoint(path)  # clear error for a missing path
    _check_head_fits(model, path)
    encoder = model.encoder if hasattr(model, "encoder") else model
    root = tf.train.Checkpoint(model=tf.train.Checkpoint(encoder=encoder))
    try:
        root.read(path).assert_existing_objects_matched().expect_partial()
    except (AssertionError, ValueError, tf.errors.OpError) as e:
        raise CheckpointError(f"Checkpoint {path!r} does not fit the encoder: {e}") from None
    if encoder is not model:
        tf.train.Checkpoint(model=model).read(path).expect_partial()
    names = list(model.checkpoint_map())
    return LoadReport(restored=names, missing=[], unexpected=[])


def load_checkpoint(model, path: str, required: tuple[str, ...] = ("bert/",)) -> LoadReport:
    """Restores any checkpoint prefix we can read: TF1 names or TF2 objects."""
    if is_object_based(path):
        return load_object_checkpoint(model, path)
    return load_google_checkpoint(model, path, required)
