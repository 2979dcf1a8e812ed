"""Tiny GPT-2 model folders for tests: a BPE vocabulary learned from the
shipped English corpora and random weights that transformers itself creates
and saves, so that the folders are real Hugging Face GPT-2 folders."""

from pathlib import Path

from bert_tf import bpe_learning

CORPORA = Path(__file__).resolve().parent / "data" / "corpora"


def corpus_lines(name, limit=None):
    """Non-empty lines of tests/data/corpora/<name>."""
    text = (CORPORA / name).read_text(encoding="utf-8")
    lines = [line for line in text.split("\n") if line.strip()]
    return lines[:limit] if limit else lines


def learn_tokenizer(vocab_size=600, name="en/kjv.txt"):
    return bpe_learning.learn_bpe(corpus_lines(name), vocab_size=vocab_size)


def hf_gpt2(vocab_size, eot_id, n_ctx=48, n_embd=32, n_head=4, n_layer=2, seed=0):
    """A random transformers GPT2LMHeadModel in eval mode."""
    import torch
    import transformers
    torch.manual_seed(seed)
    config = transformers.GPT2Config(
        vocab_size=vocab_size, n_positions=n_ctx, n_embd=n_embd, n_head=n_head,
        n_layer=n_layer, bos_token_id=eot_id, eos_token_id=eot_id)
    return transformers.GPT2LMHeadModel(config).eval()


def save_hf_folder(hf_model, tokenizer, folder):
    """`hf_model` saved by transformers, with the tokenizer as vocab.json +
    merges.txt (Hugging Face's names for encoder.json + vocab.bpe)."""
    hf_model.save_pretrained(str(folder))
    tokenizer.save(str(folder), "vocab.json", "merges.txt")
    return str(folder)
