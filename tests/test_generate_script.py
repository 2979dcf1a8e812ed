"""generate.py on tiny random GPT-2 folders: greedy text equals Hugging Face
`generate(do_sample=False)` decoded by transformers' GPT2Tokenizer, from a
Hugging Face folder and from the same weights in OpenAI's layout; seeded
sampling reproduces; bad input is one line naming the value."""

import json
import os
import re
import runpy
import shutil
import subprocess
import sys

import pytest
from absl import flags

from _gpt2_fixtures import corpus_lines, hf_gpt2, learn_tokenizer, save_hf_folder
from bert_tf import gpt2_checkpoints
from conftest import REPO

N_CTX = 48


@pytest.fixture(scope="module")
def tokenizer():
    return learn_tokenizer(600)


@pytest.fixture(scope="module")
def hf_model(tokenizer):
    return hf_gpt2(tokenizer.vocab_size, tokenizer.eot_id, n_ctx=N_CTX, seed=0)


@pytest.fixture(scope="module")
def hf_folder(hf_model, tokenizer, tmp_path_factory):
    return save_hf_folder(hf_model, tokenizer, tmp_path_factory.mktemp("hf_gpt2"))


@pytest.fixture(scope="module")
def hf_tokenizer(hf_folder):
    import transformers
    return transformers.GPT2Tokenizer.from_pretrained(hf_folder)


@pytest.fixture(scope="module")
def openai_folder(hf_folder, tokenizer, tmp_path_factory):
    model = gpt2_checkpoints.load_pretrained(hf_folder)
    folder = tmp_path_factory.mktemp("openai") / "124M"
    files = tmp_path_factory.mktemp("bpe_files")
    tokenizer.save(str(files))
    gpt2_checkpoints.save_openai_folder(
        model, str(folder), {n: str(files / n) for n in ("encoder.json", "vocab.bpe")})
    return str(folder)


def run_generate(*args):
    """generate.py's main() in this process; returns its JSON lines."""
    before = set(flags.FLAGS)
    try:
        namespace = runpy.run_path(str(REPO / "generate.py"), run_name="generate_under_test")
        flags.FLAGS(["generate.py", *args])
        namespace["main"](["generate.py"])
    finally:
        flags.FLAGS.unparse_flags()
        for name in set(flags.FLAGS) - before:
            delattr(flags.FLAGS, name)


def samples(path):
    return [json.loads(line) for line in open(path, encoding="utf-8")]


def hf_greedy_text(hf_model, hf_tokenizer, ids, length, eot, **settings):
    """The continuation Hugging Face's greedy generate gives, up to <|endoftext|>."""
    import torch
    with torch.no_grad():
        out = hf_model.generate(input_ids=torch.tensor([ids]), do_sample=False,
                                max_new_tokens=length, eos_token_id=eot, pad_token_id=eot,
                                **settings)
    new = out[0, len(ids):].tolist()
    new = new[:new.index(eot)] if eot in new else new
    return hf_tokenizer.decode(new), len(new)


def prompts():
    lines = corpus_lines("en/wiki.txt", 50)
    return [lines[3][:40], lines[7][:15]]


@pytest.mark.parametrize("layout", ["huggingface", "openai"])
def test_greedy_text_equals_hugging_face_generate(layout, hf_folder, openai_folder, hf_model,
                                                  hf_tokenizer, tokenizer, tmp_path):
    folder = hf_folder if layout == "huggingface" else openai_folder
    prefix_file = tmp_path / "prompts.txt"
    prefix_file.write_text("\n".join(prompts()) + "\n", encoding="utf-8")
    out = tmp_path / "greedy.jsonl"
    run_generate(f"--init_checkpoint={folder}", f"--prefix_file={prefix_file}", "--length=20",
                 "--top_k=1", "--batch_size=2", "--seed=3", f"--output_file={out}")
    got = samples(out)
    assert [(s["prompt_index"], s["sample"], s["prefix"]) for s in got] == [
        (0, 0, prompts()[0]), (1, 0, prompts()[1])]
    for sample in got:
        ids = hf_tokenizer.encode(sample["prefix"])
        text, count = hf_greedy_text(hf_model, hf_tokenizer, ids, 20, tokenizer.eot_id)
        assert (sample["text"], sample["new_tokens"], sample["prompt_tokens"]) == (
            text, count, len(ids))
        assert sample["stopped"] == (count < 20)


def test_unconditional_samples_start_from_end_of_text(hf_folder, hf_model, hf_tokenizer,
                                                      tokenizer, tmp_path):
    out = tmp_path / "unconditional.jsonl"
    run_generate(f"--init_checkpoint={hf_folder}", "--length=12", "--top_k=1",
                 f"--output_file={out}", "--stop_token=")
    (sample,) = samples(out)
    eot = tokenizer.eot_id
    import torch
    with torch.no_grad():
        ids = hf_model.generate(input_ids=torch.tensor([[eot]]), do_sample=False,
                                max_new_tokens=12, eos_token_id=None, pad_token_id=eot)
    assert sample["prefix"] == "" and sample["prompt_tokens"] == 1
    assert sample["text"] == hf_tokenizer.decode(ids[0, 1:].tolist()) and sample["new_tokens"] == 12


def test_same_seed_same_samples_other_seed_others(hf_folder, tmp_path):
    settings = ["--prefix=In the beginning God created", "--length=15", "--temperature=1.5",
                "--top_k=50", "--top_p=0.95", "--stop_token="]
    runs = {}
    for name, extra in [("a", ["--seed=7", "--nsamples=3"]), ("b", ["--seed=7", "--nsamples=3"]),
                        ("c", ["--seed=8", "--nsamples=2"])]:
        out = tmp_path / f"{name}.jsonl"
        run_generate(f"--init_checkpoint={hf_folder}", *settings, *extra, f"--output_file={out}")
        runs[name] = out.read_bytes()
    assert runs["a"] == runs["b"]
    first, other = samples(tmp_path / "a.jsonl"), samples(tmp_path / "c.jsonl")
    assert len({s["text"] for s in first}) == 3 and all(s["seed"] == 7 for s in first)
    assert all(a["text"] != c["text"] for a, c in zip(first, other))
    assert [s["new_tokens"] for s in first + other] == [15] * 5


def test_long_prompt_keeps_its_last_tokens_and_penalty_applies(hf_folder, hf_model, hf_tokenizer, tokenizer,
                                           tmp_path, caplog):
    prefix = " ".join(corpus_lines("en/wiki.txt", 40)[5:9])
    ids = hf_tokenizer.encode(prefix)
    assert len(ids) > N_CTX
    out = tmp_path / "long.jsonl"
    with caplog.at_level("WARNING"):
        run_generate(f"--init_checkpoint={hf_folder}", f"--prefix={prefix}", "--length=10",
                     "--top_k=1", "--repetition_penalty=1.3", f"--output_file={out}")
    assert f"Prompt 0 has {len(ids)} tokens; keeping its last {N_CTX - 10}" in caplog.text
    (sample,) = samples(out)
    text, _ = hf_greedy_text(hf_model, hf_tokenizer, ids[-(N_CTX - 10):], 10, tokenizer.eot_id,
                             repetition_penalty=1.3)
    assert sample["prompt_tokens"] == N_CTX - 10 and sample["text"] == text


@pytest.fixture(scope="module")
def bad_folders(hf_folder, openai_folder, tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    misfit = root / "misfit"
    shutil.copytree(openai_folder, misfit)
    learn_tokenizer(590).save(str(misfit))
    unknown = root / "unknown"
    unknown.mkdir()
    (unknown / "pytorch_model.bin").write_bytes(b"")
    (unknown / "notes.txt").write_text("")
    untokenized = root / "untokenized"
    shutil.copytree(openai_folder, untokenized)
    for name in ("encoder.json", "vocab.bpe"):
        (untokenized / name).unlink()
    return {"misfit": str(misfit), "unknown": str(unknown), "missing": str(root / "nothing"),
            "untokenized": str(untokenized)}


@pytest.mark.parametrize("args, message", [
    (["--temperature=0"], "temperature must be > 0, got 0.0"),
    (["--top_p=0"], "top_p must be in (0, 1], got 0.0"),
    (["--top_p=1.5"], "top_p must be in (0, 1], got 1.5"),
    (["--top_k=-1"], "top_k must be an integer >= 0 (0: no limit, 1: greedy), got -1"),
    (["--repetition_penalty=0"], "repetition_penalty must be > 0, got 0.0"),
    (["--length=48"], "length=48 must be in [1, n_ctx - 1] = [1, 47] for this model (n_ctx=48)"),
    (["--length=0"], "--length must be a positive integer, got 0"),
    (["--prefix="], "--prefix is empty: give some text, or leave --prefix out for "
                    "unconditional samples"),
    (["--nsamples=0"], "nsamples must be a positive integer, got 0"),
    (["--stop_token=<|nope|>"], "stop token '<|nope|>' is not a token of the vocabulary"),
])
def test_bad_settings_are_one_line_naming_the_value(hf_folder, args, message):
    with pytest.raises(ValueError) as raised:
        run_generate(f"--init_checkpoint={hf_folder}", "--prefix=Hello", *args)
    assert str(raised.value) == message


def test_bad_folders_and_prompt_files_are_named(bad_folders, hf_folder, tmp_path):
    misfit = bad_folders["misfit"]
    with pytest.raises(ValueError) as raised:
        run_generate(f"--init_checkpoint={misfit}", "--prefix=Hi")
    assert str(raised.value) == (
        f"the vocabulary does not fit the checkpoint: {misfit}/encoder.json + {misfit}/vocab.bpe "
        f"has 590 tokens, {misfit}/hparams.json says n_vocab=600")
    with pytest.raises(FileNotFoundError) as raised:
        run_generate(f"--init_checkpoint={bad_folders['unknown']}", "--prefix=Hi")
    assert str(raised.value) == (
        f"{bad_folders['unknown']}: not a GPT-2 model folder: looked for config.json + "
        "model.safetensors (Hugging Face) or hparams.json + a model.ckpt checkpoint (OpenAI's "
        "layout, ours); it holds notes.txt, pytorch_model.bin")
    with pytest.raises(FileNotFoundError, match=re.escape(f"{bad_folders['missing']}: no such")):
        run_generate(f"--init_checkpoint={bad_folders['missing']}", "--prefix=Hi")
    with pytest.raises(FileNotFoundError) as raised:
        run_generate(f"--init_checkpoint={bad_folders['untokenized']}", "--prefix=Hi")
    assert str(raised.value) == (
        f"{bad_folders['untokenized']}: no tokenizer: looked for encoder.json + vocab.bpe, "
        "vocab.json + merges.txt, tokenizer.json (byte-level BPE) and vocab.txt (BERT WordPiece)")
    prompts_file = tmp_path / "prompts.txt"
    prompts_file.write_text("first\n\nthird\n")
    with pytest.raises(ValueError, match="give --prefix or --prefix_file, not both"):
        run_generate(f"--init_checkpoint={hf_folder}", f"--prefix_file={prompts_file}",
                     "--prefix=Hi")
    with pytest.raises(ValueError, match=re.escape(f"{prompts_file}:2: empty prompt")):
        run_generate(f"--init_checkpoint={hf_folder}", f"--prefix_file={prompts_file}")


def _error_lines(stderr):
    """stderr without log records (`W1204 12:00:00...`) and TF's start-up notice."""
    return [line for line in stderr.splitlines()
            if line.strip() and not re.match(r"[IWEF]\d{4} ", line)
            and not line.startswith("WARNING: All log messages")]


def test_command_line_errors_are_one_line(bad_folders, tmp_path):
    out = tmp_path / "kept.jsonl"
    out.write_text("earlier samples\n")
    result = subprocess.run(
        [sys.executable, str(REPO / "generate.py"), f"--init_checkpoint={bad_folders['misfit']}",
         "--prefix=Hi", "--top_p=1.5", f"--output_file={out}"],
        capture_output=True, text=True, cwd=REPO, timeout=300,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert result.returncode == 2
    assert _error_lines(result.stderr) == ["error: top_p must be in (0, 1], got 1.5"]
    assert out.read_text() == "earlier samples\n"


def test_chinese_wordpiece_folder_of_ours(tmp_path):
    """Our own layout with GPT2-Chinese's tokenizer: hparams.json, vocab.txt and a
    TF checkpoint, named here by its prefix."""
    import torch
    import transformers

    from bert_tf import lm_tokenization
    from conftest import CHINESE_VOCAB

    hf_tokenizer = transformers.BertTokenizer(str(CHINESE_VOCAB))
    cls_id = hf_tokenizer.cls_token_id
    hf_model = hf_gpt2(hf_tokenizer.vocab_size, cls_id, n_ctx=32, n_embd=16, n_head=2,
                       n_layer=1, seed=1)
    hf_model.save_pretrained(str(tmp_path / "hf"))
    model = gpt2_checkpoints.load_pretrained(str(tmp_path / "hf"))
    prefix = gpt2_checkpoints.save_openai_folder(model, str(tmp_path / "ours"),
                                                 {"vocab.txt": str(CHINESE_VOCAB)})
    prompt = corpus_lines("zh/peoples_daily_1998.txt", 3)[1][:12]
    out = tmp_path / "zh.jsonl"
    run_generate(f"--init_checkpoint={prefix}", f"--prefix={prompt}", "--length=10", "--top_k=1",
                 f"--output_file={out}")
    (sample,) = samples(out)
    ids = hf_tokenizer.encode(prompt, add_special_tokens=False)
    with torch.no_grad():
        new = hf_model.generate(input_ids=torch.tensor([ids]), do_sample=False, max_new_tokens=10,
                                eos_token_id=cls_id, pad_token_id=0)[0, len(ids):].tolist()
    new = new[:new.index(cls_id)] if cls_id in new else new
    assert sample["prompt_tokens"] == len(ids) and sample["new_tokens"] == len(new)
    assert sample["text"] == lm_tokenization.ChineseWordPiece(str(CHINESE_VOCAB)).decode(new)


def test_export_dir_writes_a_generator_with_hugging_faces_greedy_text(
        hf_folder, hf_model, hf_tokenizer, tokenizer, tmp_path):
    """--export_dir: the SavedModel continues raw strings as Hugging Face's
    greedy generate does, stopping at <|endoftext|>."""
    import tensorflow as tf

    from bert_tf import generation_serving

    export_dir = tmp_path / "served"
    run_generate(f"--init_checkpoint={hf_folder}", f"--export_dir={export_dir}")
    served = generation_serving.load(str(export_dir)).signatures["generate"]
    out = served(prompt=tf.constant(prompts()), max_new_tokens=tf.constant(20),
                 temperature=tf.constant(1.0), top_k=tf.constant(1), top_p=tf.constant(1.0),
                 seed=tf.constant(0))
    for prompt, text, count in zip(prompts(), out["text"].numpy(), out["lengths"].numpy()):
        ids = hf_tokenizer.encode(prompt)
        assert (text.decode("utf-8"), count) == hf_greedy_text(
            hf_model, hf_tokenizer, ids, 20, tokenizer.eot_id)
    with pytest.raises(ValueError, match="--export_dir exports the model instead of sampling; "
                                         "--prefix has no use"):
        run_generate(f"--init_checkpoint={hf_folder}", f"--export_dir={tmp_path / 'x'}",
                     "--prefix=Hi")
