"""create_lm_data.py: the windows are the Hugging Face tokenizers' ids of the
documents (GPT-2's BPE with <|endoftext|> after each document; GPT2-Chinese's
[MASK] ... [CLS] framing with BertTokenizer), cut at the stride; workers
split the documents; bad input is named by file:line and leaves nothing."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tensorflow as tf

from _gpt2_fixtures import CORPORA, learn_tokenizer

REPO = Path(__file__).resolve().parents[1]
N_CTX = 32


def _documents(name, count):
    """The first `count` documents of a shipped corpus, as lists of lines."""
    text = (CORPORA / name).read_text(encoding="utf-8")
    blocks = [b for b in text.split("\n\n") if b.strip()][:count]
    return [[line.strip() for line in b.split("\n") if line.strip()] for b in blocks]


def _write_corpus(path, documents):
    path.write_text("\n\n".join("\n".join(d) for d in documents) + "\n", encoding="utf-8")


def _windows(stream, stride, n_ctx=N_CTX):
    return [stream[i:i + n_ctx + 1] for i in range(0, len(stream) - n_ctx, stride)]


def _read(path, n_ctx=N_CTX):
    spec = {"input_ids": tf.io.FixedLenFeature([n_ctx + 1], tf.int64)}
    return [tf.io.parse_single_example(r, spec)["input_ids"].numpy().tolist()
            for r in tf.data.TFRecordDataset(str(path))]


def _run(*args):
    return subprocess.run([sys.executable, str(REPO / "create_lm_data.py"), *args],
                          capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))


@pytest.fixture(scope="module")
def bpe_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bpe_vocab")
    learn_tokenizer(600).save(str(folder))
    return folder


@pytest.fixture(scope="module")
def hf_bpe(bpe_folder, tmp_path_factory):
    import tokenizers
    return tokenizers.ByteLevelBPETokenizer(str(bpe_folder / "encoder.json"),
                                            str(bpe_folder / "vocab.bpe"))


def _bpe_stream(hf_bpe, documents):
    eot = hf_bpe.token_to_id("<|endoftext|>")
    stream = []
    for document in documents:
        stream += hf_bpe.encode("\n".join(document)).ids + [eot]
    return stream


@pytest.mark.parametrize("stride", [None, 13])
def test_bpe_windows_are_hugging_face_ids_cut_at_the_stride(tmp_path, bpe_folder, hf_bpe, stride):
    documents = _documents("en/kjv.txt", 6) + _documents("en/wiki.txt", 4)
    _write_corpus(tmp_path / "corpus.txt", documents)
    out = tmp_path / "train.tfrecord"
    result = _run(f"--input_file={tmp_path / 'corpus.txt'}", f"--output_file={out}",
                  f"--vocab_dir={bpe_folder}", f"--n_ctx={N_CTX}",
                  *([f"--stride={stride}"] if stride else []))
    assert result.returncode == 0, result.stderr[-2000:]
    stream = _bpe_stream(hf_bpe, documents)
    expected = _windows(stream, stride or N_CTX)
    assert _read(out) == expected
    assert f"Wrote {len(expected)} windows" in result.stdout
    assert f"{len(documents)} documents, {len(stream)} tokens" in result.stdout
    if stride is None:  # every token after the first is a target exactly once
        targets = [t for w in expected for t in w[1:]]
        assert targets == stream[1:1 + len(targets)]


def test_chinese_windows_follow_gpt2_chinese_framing(tmp_path, repo_data):
    import transformers
    vocab = repo_data / "vocab" / "bert_chinese_vocab.txt"
    folder = tmp_path / "hf"
    folder.mkdir()
    shutil.copy(vocab, folder / "vocab.txt")
    hf = transformers.BertTokenizer.from_pretrained(str(folder), do_lower_case=True)
    documents = _documents("zh/peoples_daily_1998.txt", 5)
    _write_corpus(tmp_path / "zh.txt", documents)
    out = tmp_path / "zh.tfrecord"
    result = _run(f"--input_file={tmp_path / 'zh.txt'}", f"--output_file={out}",
                  f"--vocab_file={vocab}", f"--n_ctx={N_CTX}", "--stride=20")
    assert result.returncode == 0, result.stderr[-2000:]
    stream = []
    for document in documents:  # GPT2-Chinese: newline -> [SEP], [MASK] ... [CLS]
        tokens = hf.tokenize(" [SEP] ".join(document))
        stream += hf.convert_tokens_to_ids(["[MASK]", *tokens, "[CLS]"])
    assert _read(out) == _windows(stream, 20)


def test_workers_take_every_other_document_into_their_own_shard(tmp_path, bpe_folder, hf_bpe):
    documents = _documents("en/kjv.txt", 7)
    _write_corpus(tmp_path / "a.txt", documents[:3])
    _write_corpus(tmp_path / "b.txt", documents[3:])
    out = tmp_path / "train.tfrecord"
    result = _run(f"--input_file={tmp_path / 'a.txt'},{tmp_path / 'b.txt'}",
                  f"--output_file={out}", f"--vocab_dir={bpe_folder}", f"--n_ctx={N_CTX}",
                  "--num_workers=2")
    assert result.returncode == 0, result.stderr[-2000:]
    for w in range(2):
        shard = tmp_path / f"train.tfrecord-{w:05d}-of-00002"
        assert _read(shard) == _windows(_bpe_stream(hf_bpe, documents[w::2]), N_CTX)
    assert not (tmp_path / "train.tfrecord").exists()


def test_invalid_utf8_names_file_and_line_and_writes_nothing(tmp_path, bpe_folder):
    good = tmp_path / "good.txt"
    _write_corpus(good, _documents("en/kjv.txt", 3))
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"In the beginning\n\nsecond line\nbad \xff byte here\n")
    out = tmp_path / "out" / "train.tfrecord"
    result = _run(f"--input_file={good},{bad}", f"--output_file={out}",
                  f"--vocab_dir={bpe_folder}", f"--n_ctx={N_CTX}", "--num_workers=2")
    assert result.returncode != 0
    assert f"{bad}:4: invalid UTF-8" in result.stderr
    assert not out.parent.exists() or os.listdir(out.parent) == []


def test_bad_settings_are_named(tmp_path, bpe_folder):
    corpus = tmp_path / "c.txt"
    _write_corpus(corpus, _documents("en/kjv.txt", 1))
    result = _run(f"--input_file={corpus}", f"--output_file={tmp_path / 'o'}",
                  f"--vocab_dir={bpe_folder}", "--n_ctx=8", "--stride=9")
    assert "--stride=9 must lie in [1, n_ctx=8]" in result.stderr
    result = _run(f"--input_file={corpus}", f"--output_file={tmp_path / 'o'}", "--n_ctx=8")
    assert "exactly one of --vocab_dir" in result.stderr
    result = _run(f"--input_file={corpus}", f"--output_file={tmp_path / 'o'}",
                  f"--vocab_dir={bpe_folder}", "--n_ctx=100000")
    assert "fewer than one window of n_ctx + 1 = 100001" in result.stderr
    assert not (tmp_path / "o").exists()
