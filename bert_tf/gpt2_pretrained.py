"""A GPT-2 model folder -> the model and the tokenizer it was trained with.

Three layouts are recognised, by the files they hold:

  * Hugging Face: `config.json` + `model.safetensors`, with the tokenizer
    as `vocab.json` + `merges.txt` or `tokenizer.json` (byte-level BPE), or
    `vocab.txt` (a BERT WordPiece vocabulary, as GPT2-Chinese models are
    published).
  * OpenAI's release layout: `hparams.json`, `encoder.json` + `vocab.bpe`
    and a TF checkpoint `model.ckpt.*` under OpenAI's variable names.
  * Ours, what a language-model training run writes: the OpenAI layout,
    except that the tokenizer may be a `vocab.txt` (Chinese WordPiece,
    `lm_tokenization.ChineseWordPiece`) and the checkpoint is whichever
    the folder's `checkpoint` state file names as the latest. So OpenAI's
    own code reads our English models, and we read theirs.

`init_checkpoint` may also be a checkpoint prefix inside such a folder
(`DIR/model.ckpt`): the folder's other files are used with that checkpoint.

    >>> import tempfile
    >>> describe_folder(tempfile.mkdtemp())  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    FileNotFoundError: ...: not a GPT-2 model folder: looked for config.json + model.safetensors (Hugging Face) or hparams.json + a model.ckpt checkpoint (OpenAI's layout, ours); it holds no files
"""

from __future__ import annotations

import dataclasses
import os

from bert_tf import bpe, gpt2_checkpoints

VOCAB_TXT = "vocab.txt"
# Tokenizer files in the order they are looked for.
_BPE_PAIRS = ((bpe.ENCODER_FILE, bpe.MERGES_FILE), ("vocab.json", "merges.txt"))


@dataclasses.dataclass
class ModelFolder:
    """Where a model's parts are: its format, config, weights and tokenizer files."""

    folder: str
    format: str  # "huggingface" or "openai"
    checkpoint: str  # model.safetensors, or a TF checkpoint prefix
    tokenizer_files: tuple[str, ...]
    tokenizer_type: str  # "bpe" or "wordpiece"


def _tokenizer_files(folder: str) -> tuple[tuple[str, ...], str]:
    def there(name):
        return os.path.exists(os.path.join(folder, name))

    for encoder, merges in _BPE_PAIRS:
        if there(encoder) and there(merges):
            return (os.path.join(folder, encoder), os.path.join(folder, merges)), "bpe"
    if there("tokenizer.json"):
        return (os.path.join(folder, "tokenizer.json"),), "bpe"
    if there(VOCAB_TXT):
        return (os.path.join(folder, VOCAB_TXT),), "wordpiece"
    raise FileNotFoundError(
        f"{folder}: no tokenizer: looked for {bpe.ENCODER_FILE} + {bpe.MERGES_FILE}, "
        f"vocab.json + merges.txt, tokenizer.json (byte-level BPE) and {VOCAB_TXT} "
        "(BERT WordPiece)")


def describe_folder(path: str) -> ModelFolder:
    """Finds the format and the files of a model folder (or checkpoint prefix)."""
    prefix = None
    if not os.path.isdir(path):
        if os.path.exists(path + ".index"):
            prefix, path = path, os.path.dirname(path) or "."
        elif os.path.exists(path):
            raise NotADirectoryError(f"{path}: expected a model folder or a checkpoint prefix, "
                                     "got a file")
        else:
            raise FileNotFoundError(f"{path}: no such model folder")
    try:
        kind = gpt2_checkpoints.folder_format(path)
    except FileNotFoundError:
        present = sorted(os.listdir(path))
        shown = ", ".join(present[:12]) + (", ..." if len(present) > 12 else "")
        raise FileNotFoundError(
            f"{path}: not a GPT-2 model folder: looked for config.json + model.safetensors "
            f"(Hugging Face) or {gpt2_checkpoints.HPARAMS_FILE} + a model.ckpt checkpoint "
            f"(OpenAI's layout, ours); it holds "
            f"{shown if present else 'no files'}") from None
    if kind == "huggingface":
        checkpoint = os.path.join(path, "model.safetensors")
    else:
        checkpoint = prefix or gpt2_checkpoints._checkpoint_prefix(path)
    files, tokenizer_type = _tokenizer_files(path)
    return ModelFolder(path, kind, checkpoint, files, tokenizer_type)


def load_tokenizer(found: ModelFolder):
    """The folder's tokenizer: `bpe.ByteLevelBPE` or `lm_tokenization.ChineseWordPiece`."""
    if found.tokenizer_type == "wordpiece":
        from bert_tf import lm_tokenization
        return lm_tokenization.ChineseWordPiece(found.tokenizer_files[0])
    if len(found.tokenizer_files) == 1:
        return bpe.ByteLevelBPE.from_tokenizer_json(found.tokenizer_files[0])
    return bpe.ByteLevelBPE.from_files(*found.tokenizer_files)


def config_source(found: ModelFolder) -> str:
    name = "config.json" if found.format == "huggingface" else gpt2_checkpoints.HPARAMS_FILE
    return os.path.join(found.folder, name)


def load(path: str):
    """(model, tokenizer, ModelFolder) of a model folder; a tokenizer whose
    size differs from the model's `n_vocab` is refused, naming both files."""
    from bert_tf import generation, gpt2

    found = describe_folder(path)
    if found.format == "huggingface":
        config = gpt2_checkpoints.read_hf_config(found.folder)
    else:
        config = gpt2_checkpoints.read_openai_hparams(found.folder)
    tokenizer = load_tokenizer(found)
    generation.check_vocabulary(config.n_vocab, tokenizer.vocab_size,
                                model_source=config_source(found),
                                vocab_source=" + ".join(found.tokenizer_files))
    model = gpt2.GPT2LM(config)
    if found.format == "huggingface":
        gpt2_checkpoints.load_hf_weights(model, found.folder)
    else:
        gpt2_checkpoints.load_openai_checkpoint(model, found.checkpoint)
    return model, tokenizer, found
