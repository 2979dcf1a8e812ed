"""extract_features.py: Google's JSON-lines format, values from the real
MiniLM checked against Hugging Face, clear errors on bad input."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def _run(*args, cwd=REPO):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, str(REPO / "extract_features.py"), *args],
                          capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


def test_output_format_and_values_match_hugging_face(minilm_dir, tmp_path):
    import torch
    import transformers
    lines = ["The movie was a delight from start to finish.",
             "Who was Jim Henson? ||| Jim Henson was a puppeteer.",
             "short"]
    (tmp_path / "in.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    result = _run(f"--input_file={tmp_path / 'in.txt'}", f"--output_file={out}",
                  "--init_checkpoint=minilm-l6-h384-uncased", "--layers=-1,-3,0",
                  "--max_seq_length=16", "--batch_size=2")
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["linex_index"] for r in records] == [0, 1, 2]

    hf_dir = str(minilm_dir / "huggingface")
    tokenizer = transformers.AutoTokenizer.from_pretrained(hf_dir)
    reference = transformers.BertModel.from_pretrained(hf_dir).eval()
    for record, line in zip(records, lines):
        pair = line.split(" ||| ")
        encoded = tokenizer(*pair, truncation=True, max_length=16, return_tensors="pt")
        tokens = tokenizer.convert_ids_to_tokens(encoded["input_ids"][0])
        assert [f["token"] for f in record["features"]] == tokens
        with torch.no_grad():
            hidden = reference(**encoded, output_hidden_states=True).hidden_states
        for feature_index, feature in enumerate(record["features"]):
            assert [layer["index"] for layer in feature["layers"]] == [-1, -3, 0]
            for layer in feature["layers"]:
                # hidden_states[0] is the embedding output; layer i is i + 1.
                index = layer["index"] % 6 + 1
                expected = hidden[index][0, feature_index].numpy()
                np.testing.assert_allclose(layer["values"], expected, atol=1e-4)


def test_invalid_utf8_line_is_named_and_nothing_is_written(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine line\nsecond \xff\xfe line\n")
    out = tmp_path / "out.jsonl"
    result = _run(f"--input_file={bad}", f"--output_file={out}",
                  "--init_checkpoint=minilm-l6-h384-uncased")
    assert result.returncode != 0
    assert f"{bad}:2: invalid UTF-8" in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp")]


@pytest.mark.parametrize("flag, culprit", [
    ("--init_checkpoint={tmp}/no_model", "no_model"),
    ("--vocab_file={tmp}/missing_vocab.txt", "missing_vocab.txt"),
    ("--bert_config_file={tmp}/broken.json", "broken.json"),
    ("--vocab_file={tmp}/empty_vocab.txt", "empty_vocab.txt"),
])
def test_bad_model_flags_give_one_clear_error(tmp_path, flag, culprit):
    (tmp_path / "broken.json").write_text('{"vocab_size": 30522, "hidden_size": 100}')
    (tmp_path / "empty_vocab.txt").write_text("")
    # The flag under test comes last and so replaces the model given before it.
    result = _run("--init_checkpoint=minilm-l6-h384-uncased", flag.format(tmp=tmp_path),
                  f"--input_file={REPO / 'data/sample_text.txt'}",
                  f"--output_file={tmp_path / 'o.jsonl'}")
    assert result.returncode == 2
    assert culprit in result.stderr and "Traceback" not in result.stderr
