"""GPT-2 byte-level BPE against Hugging Face: the learner against
`tokenizers`' BPE trainer, ids against transformers' GPT2Tokenizer loaded
from our files on every line of the shipped corpora and on random Unicode,
and the vocabulary layout against facts of OpenAI's released vocabulary."""

import json
import random

import pytest

from bert_tf import bpe, bpe_learning
from conftest import TEST_DATA

CORPORA = sorted((TEST_DATA / "corpora").glob("*/*.txt"))


def _lines(*names):
    out = []
    for name in names:
        text = (TEST_DATA / "corpora" / name).read_text(encoding="utf-8")
        out.extend(line for line in text.split("\n") if line.strip())
    return out


@pytest.fixture(scope="module")
def training_lines():
    return _lines("en/kjv.txt", "en/wiki.txt")


@pytest.fixture(scope="module")
def learned(training_lines):
    return bpe_learning.learn_bpe(training_lines, vocab_size=2000)


@pytest.fixture(scope="module")
def hf_tokenizer(learned, tmp_path_factory):
    import transformers
    folder = tmp_path_factory.mktemp("bpe")
    learned.save(str(folder), "vocab.json", "merges.txt")
    return transformers.GPT2Tokenizer.from_pretrained(str(folder))


def _hf_trained(lines, vocab_size, min_frequency):
    import tokenizers
    trained = tokenizers.ByteLevelBPETokenizer()
    trained.train_from_iterator(lines, vocab_size=vocab_size, min_frequency=min_frequency,
                                special_tokens=["<|endoftext|>"], show_progress=False)
    return trained


@pytest.mark.parametrize("vocab_size, min_frequency", [(2000, 2), (5000, 40)])
def test_learner_matches_the_tokenizers_bpe_trainer(training_lines, tmp_path,
                                                    vocab_size, min_frequency):
    if min_frequency > 2:
        training_lines = _lines("en/kjv.txt")
    ours = bpe_learning.learn_bpe(training_lines, vocab_size, min_frequency=min_frequency)
    reference = _hf_trained(training_lines, vocab_size, min_frequency)
    reference.save_model(str(tmp_path))
    expected_merges = bpe.read_merges(str(tmp_path / "merges.txt"))
    assert ours.merges == expected_merges
    if min_frequency == 40:  # stopped by the frequency floor, not the size
        assert len(expected_merges) < vocab_size - 257
    # The same tokens; the trainer puts <|endoftext|> first, GPT-2 last.
    hf_vocab = json.loads((tmp_path / "vocab.json").read_text(encoding="utf-8"))
    assert hf_vocab["<|endoftext|>"] == 0 and ours.eot_id == len(hf_vocab) - 1
    assert {t: i + 1 for t, i in ours.encoder.items() if t != "<|endoftext|>"} == {
        t: i for t, i in hf_vocab.items() if t != "<|endoftext|>"}


def test_ids_equal_hugging_face_on_every_line_of_the_shipped_corpora(learned, hf_tokenizer):
    compared = differing = 0
    for path in CORPORA:
        text = path.read_text(encoding="utf-8")
        lines = [line for line in text.split("\n") if line]
        if path.name in ("kjv.txt", "peoples_daily_1998.txt"):
            lines += text.split("\n\n")  # whole documents, with their newlines
        # The Rust tokenizer behind transformers' GPT2Tokenizer, called
        # directly: the Python wrapper triples the time.
        expected = [e.ids for e in hf_tokenizer.backend_tokenizer.encode_batch(
            lines, add_special_tokens=False)]
        assert expected[:50] == hf_tokenizer(lines[:50])["input_ids"]
        for line, ids in zip(lines, expected):
            ours = learned.encode(line)
            differing += ours != ids
            assert learned.decode(ours) == line
        compared += len(lines)
    assert compared > 40000 and differing == 0, f"{differing} of {compared} differ"


def _random_text(rng, length):
    ranges = [(0x20, 0x7E), (0x00, 0x1F), (0x7F, 0xFF), (0x300, 0x36F), (0x370, 0x3FF),
              (0x400, 0x4FF), (0x600, 0x6FF), (0x900, 0x97F), (0x3040, 0x30FF),
              (0x4E00, 0x9FFF), (0xAC00, 0xD7A3), (0x1F300, 0x1FAFF), (0xE000, 0xE0FF),
              (0xFF00, 0xFFEF), (0x10000, 0x1007F), (0xE0000, 0xE007F)]
    spaces = [" ", "  ", "\t", "\n", "\r\n", "\u00a0", "\u2003", "\u3000", "\u2028", " 's", "'ll"]
    out = []
    for _ in range(length):
        if rng.random() < 0.25:
            out.append(rng.choice(spaces))
        else:
            low, high = rng.choice(ranges)
            out.append(chr(rng.randint(low, high)))
    return "".join(out)


def test_random_unicode_round_trips_and_matches_hugging_face(learned, hf_tokenizer):
    rng = random.Random(14)
    texts = [_random_text(rng, rng.randint(1, 60)) for _ in range(2000)]
    texts += ["", " ", "   \n\n  ", "don't", "I'M", "x\u0301\u0302", "١٢٣ 四五六 ⅷ", "🙂🙂 🙂"]
    expected = hf_tokenizer(texts)["input_ids"]
    for text, ids in zip(texts, expected):
        ours = learned.encode(text)
        assert ours == ids, repr(text)
        assert learned.decode(ours) == text


def test_end_of_text_in_the_text(learned, hf_tokenizer):
    text = "The end.<|endoftext|>A new one <|endoftext|><|endoftext|> begins"
    assert learned.encode(text, special_tokens=True) == hf_tokenizer(text)["input_ids"]
    assert learned.encode(text, special_tokens=True).count(learned.eot_id) == 3
    # OpenAI's encoder reads it as plain characters.
    assert learned.eot_id not in learned.encode(text)
    assert learned.decode(learned.encode(text, special_tokens=True)) == text


def test_vocabulary_layout_is_gpt2s():
    import tokenizers
    base = bpe.base_tokens()
    assert set(base) == set(tokenizers.pre_tokenizers.ByteLevel.alphabet())
    tokenizer = bpe.ByteLevelBPE.from_merges([])
    # Ids of OpenAI's released encoder.json: "!" 0, "Ċ" (newline) 198,
    # "Ġ" (space) 220, "Ā" (byte 0) 188; the soft hyphen is the last byte
    # without a printable form, U+0143.
    assert [tokenizer.encoder[t] for t in "!ĊĠĀ"] == [0, 198, 220, 188]
    assert bpe.byte_to_unicode()[0xAD] == "\u0143" and tokenizer.eot_id == 256
    assert tokenizer.encode(" \n") == [220, 198]


def test_files_written_by_hugging_face_load(training_lines, tmp_path):
    reference = _hf_trained(training_lines[:3000], 700, 2)
    reference.save_model(str(tmp_path))
    (tmp_path / "json").mkdir()
    reference.save(str(tmp_path / "json" / "tokenizer.json"))
    ours = bpe.ByteLevelBPE.from_folder(str(tmp_path))
    from_json = bpe.ByteLevelBPE.from_folder(str(tmp_path / "json"))
    for line in training_lines[3000:3300]:
        assert ours.encode(line) == from_json.encode(line) == reference.encode(line).ids
    assert ours.eot_id == from_json.eot_id == 0


def test_bad_files_are_named(tmp_path, learned):
    learned.save(str(tmp_path))
    merges = tmp_path / "vocab.bpe"
    lines = merges.read_text(encoding="utf-8").split("\n")
    lines[2] = "one two three"
    merges.write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(bpe.BPEFileError, match=f"{merges}:3: expected two tokens"):
        bpe.ByteLevelBPE.from_folder(str(tmp_path))
    learned.save(str(tmp_path))
    (tmp_path / "encoder.json").write_text(json.dumps({"a": 0, "b": 1}))
    with pytest.raises(bpe.BPEFileError, match="single-byte token"):
        bpe.ByteLevelBPE.from_folder(str(tmp_path))
    with pytest.raises(bpe.BPEFileError, match="which the encoder lacks"):
        bpe.ByteLevelBPE(bpe.ByteLevelBPE.from_merges([]).encoder, [("a", "b")])


def test_counting_in_bounded_memory_keeps_the_frequent_pretokens(training_lines):
    exact = bpe_learning.count_pretokens(training_lines)
    bounded = bpe_learning.count_pretokens(training_lines, max_pretokens=2000)
    assert len(bounded) <= 2000 < len(exact)
    top = [t for t, _ in exact.most_common(30)]
    assert [t for t, _ in bounded.most_common(30)] == top
    assert all(bounded[t] <= exact[t] for t in bounded)
