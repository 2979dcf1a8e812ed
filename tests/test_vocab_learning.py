"""Vocabulary learning on slices of the real English and Chinese corpora
(tests/data/corpora)."""

import os
import subprocess
import sys

import pytest

from bert_tf import tokenization, vocab_learning
from conftest import REPO, TEST_DATA

CORPORA = TEST_DATA / "corpora"
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
VOCAB_SIZE = 3000


def non_empty_lines(path):
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line]


@pytest.fixture(scope="module")
def corpus():
    english = non_empty_lines(CORPORA / "en" / "wiki.txt")
    chinese = non_empty_lines(CORPORA / "zh" / "peoples_daily_1998.txt")
    return {"train": english[:1500] + chinese[:1500],
            "held_out_en": english[-800:], "held_out_zh": chinese[-800:]}


@pytest.fixture(scope="module")
def learned(corpus, tmp_path_factory):
    tokens = vocab_learning.learn_vocab(corpus["train"], VOCAB_SIZE, num_unused=2)
    path = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    vocab_learning.write_vocab(tokens, path)
    return tokens, tokenization.FullTokenizer(str(path), do_lower_case=True)


def unk_rate(tokenizer, lines):
    pieces = [piece for line in lines for piece in tokenizer.tokenize(line)]
    return pieces.count("[UNK]") / len(pieces)


def test_layout_specials_first_then_unused(learned):
    tokens, tokenizer = learned
    assert tokens[:7] == SPECIALS + ["[unused0]", "[unused1]"]
    assert len(set(tokens)) == len(tokens)
    assert 0.9 * VOCAB_SIZE <= len(tokens) <= VOCAB_SIZE
    # The written file reads back with Google's loader semantics, ids = lines.
    assert list(tokenizer.vocab) == tokens
    assert tokenizer.vocab["[PAD]"] == 0 and tokenizer.vocab["[MASK]"] == 4


def test_every_training_character_is_representable(corpus, learned):
    _, tokenizer = learned
    assert unk_rate(tokenizer, corpus["train"]) == 0


def test_held_out_unknown_rate_is_low(corpus, learned):
    _, tokenizer = learned
    assert unk_rate(tokenizer, corpus["held_out_en"]) < 0.01
    # Unseen ideographs are the only source of [UNK] in Chinese.
    assert unk_rate(tokenizer, corpus["held_out_zh"]) < 0.05


def test_cjk_characters_are_whole_tokens_without_suffix_forms(corpus, learned):
    tokens, tokenizer = learned
    ideographs = {c for line in corpus["train"] for c in line
                  if tokenization.is_cjk_char(ord(c))}
    assert len(ideographs) > 1000
    assert ideographs <= set(tokens)
    # An ideograph is always a word of its own, so "##中" could never be used.
    assert not any(t.startswith("##") and tokenization.is_cjk_char(ord(t[2]))
                   for t in tokens if len(t) == 3)
    assert tokenizer.tokenize("人民日报") == ["人", "民", "日", "报"]


def test_english_words_become_whole_tokens(learned):
    tokens, tokenizer = learned
    assert {"the", "of", "and", "##s"} <= set(tokens)
    assert tokenizer.tokenize("The AND of") == ["the", "and", "of"]


def test_too_small_vocab_is_refused(corpus):
    with pytest.raises(ValueError, match="vocab_size=50 is too small"):
        vocab_learning.learn_vocab(corpus["train"][:50], 50)


def test_missing_input_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing_here"):
        list(vocab_learning.read_corpus_lines(str(tmp_path / "nothing_here*.txt")))
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine\n\xff\xfe\n")
    with pytest.raises(ValueError, match="bad.txt:2"):
        list(vocab_learning.read_corpus_lines(str(bad)))


def test_write_vocab_is_atomic_and_validates(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("old\n", encoding="utf-8")
    with pytest.raises(ValueError, match="twice"):
        vocab_learning.write_vocab(["[PAD]", "a", "a"], path)
    assert path.read_text(encoding="utf-8") == "old\n"
    assert os.listdir(tmp_path) == ["vocab.txt"]


def test_command_line_cased(tmp_path):
    english = non_empty_lines(CORPORA / "en" / "wiki.txt")[:600]
    first, second = tmp_path / "a.txt", tmp_path / "b.txt"
    first.write_text("\n".join(english[:300]) + "\n", encoding="utf-8")
    second.write_text("\n".join(english[300:]) + "\n", encoding="utf-8")
    output = tmp_path / "out" / "vocab.txt"
    output.parent.mkdir()
    result = subprocess.run(
        [sys.executable, str(REPO / "learn_vocab.py"),
         f"--input_file={tmp_path / 'a*.txt'},{second}", f"--output_file={output}",
         "--vocab_size=1500", "--nodo_lower_case", "--num_unused=3"],
        check=False, cwd=REPO, capture_output=True, text=True, timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr[-2000:]
    tokens = output.read_text(encoding="utf-8").splitlines()
    assert tokens[:8] == SPECIALS + ["[unused0]", "[unused1]", "[unused2]"]
    assert "The" in tokens and len(tokens) <= 1500
    cased = tokenization.FullTokenizer(str(output), do_lower_case=False)
    assert unk_rate(cased, english) == 0


@pytest.mark.parametrize("rule", ["google", "huggingface"])
def test_control_character_rule_decides_which_characters_get_tokens(tmp_path, rule):
    from transformers.models.bert import tokenization_bert_legacy as hf_legacy

    from _google_tokenization import google_full_tokenizer

    odd = ["\ue000", "\U000F0000", "\u0378", "\U0001FAE8"]  # private use, unassigned
    lines = non_empty_lines(CORPORA / "en" / "wiki.txt")[:300]
    lines += [f"word{c}word {c} zero\u200bwidth\u00adsoft" for c in odd]
    tokens = vocab_learning.learn_vocab(lines, 1200, control_chars=rule)
    path = tmp_path / "vocab.txt"
    vocab_learning.write_vocab(tokens, path)
    if rule == "google":
        # Google's tokenizer keeps these characters, so they need tokens.
        google = google_full_tokenizer(path, do_lower_case=True)
        pieces = [p for line in lines for p in google.tokenize(line)]
        assert set(odd) <= set(tokens) and "##" + odd[0] in tokens
    else:
        # Hugging Face's deletes every C* character: no token is spent on them.
        vocab = hf_legacy.load_vocab(str(path))
        basic = hf_legacy.BasicTokenizer(do_lower_case=True)
        wordpiece = hf_legacy.WordpieceTokenizer(vocab, unk_token="[UNK]",
                                                 max_input_chars_per_word=200)
        pieces = [p for line in lines for word in basic.tokenize(line)
                  for p in wordpiece.tokenize(word)]
        assert not any(c in token for c in odd for token in tokens)
    assert pieces.count("[UNK]") == 0
    # Format characters (Cf) are deleted under both rules.
    assert not any(c in token for c in "\u200b\u00ad" for token in tokens)


def _learn_vocab_command(*args):
    return subprocess.run(
        [sys.executable, str(REPO / "learn_vocab.py"), *args],
        check=False, cwd=REPO, capture_output=True, text=True, timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})


def test_command_line_bpe_loads_in_transformers_with_the_same_ids(tmp_path):
    import tokenizers
    import transformers

    from bert_tf import bpe

    output = tmp_path / "gpt2_vocab"
    result = _learn_vocab_command(
        "--vocab_type=bpe", f"--input_file={CORPORA / 'en' / 'kjv.txt'}",
        f"--output_file={output}", "--vocab_size=3000", "--min_frequency=40")
    assert result.returncode == 0, result.stderr[-2000:]
    assert sorted(os.listdir(output)) == ["encoder.json", "vocab.bpe"]
    # The merges Hugging Face's trainer learns from the same lines and threshold.
    reference = tokenizers.ByteLevelBPETokenizer()
    reference.train_from_iterator(non_empty_lines(CORPORA / "en" / "kjv.txt"), vocab_size=3000,
                                  min_frequency=40, special_tokens=["<|endoftext|>"],
                                  show_progress=False)
    reference.save_model(str(tmp_path))
    merges = bpe.read_merges(str(output / "vocab.bpe"))
    assert merges == bpe.read_merges(str(tmp_path / "merges.txt"))
    assert 100 < len(merges) < 3000 - 257  # the frequency threshold stopped it early
    hf = transformers.GPT2Tokenizer.from_pretrained(
        str(output), vocab_file=str(output / "encoder.json"),
        merges_file=str(output / "vocab.bpe"))
    ours = bpe.ByteLevelBPE.from_folder(str(output))
    lines = non_empty_lines(CORPORA / "en" / "wiki.txt")[:300]
    assert [hf.encode(line) for line in lines] == [ours.encode(line) for line in lines]
    assert hf.convert_tokens_to_ids("<|endoftext|>") == ours.eot_id == ours.vocab_size - 1


def test_wordpiece_flags_are_refused_with_bpe(tmp_path):
    result = _learn_vocab_command(
        "--vocab_type=bpe", f"--input_file={CORPORA / 'en' / 'kjv.txt'}",
        f"--output_file={tmp_path / 'out'}", "--num_unused=3")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "error: --num_unused applies to --vocab_type=wordpiece only")
    assert not (tmp_path / "out").exists()
