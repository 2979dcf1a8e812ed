"""GraphTokenizer against FullTokenizer (itself checked against Google's own
tokenizer and HF's port in test_tokenization.py) on every line of the corpus
slices in tests/data, and `pack` against Google's packing written out in plain Python.
test_tokenizer_fuzz.py compares both with Google's tokenizer on random text."""

from pathlib import Path

import pytest
import tensorflow as tf

from bert_tf import text_graph, tokenization
from conftest import CHINESE_VOCAB, SST2_DIR, UNCASED_VOCAB
from conftest import TEST_DATA as DATA

HARD_TEXT = [
    "", "   ", "\x00nul\ufffd\x07 a\x1cb line\u2028sep zero\u200bwidth soft\u00adhyphen",
    "Café cafe\u0301 naïve Ångström ÉCOLE", "… ´ ‘quotes’ “double” — §",
    "ΟΔΟΣ ΣΟΦΟΣ ΑΣ.Β İstanbul STRASSE ﬁne Ǆemal", "你好，世界！ＡＢＣ１２３（全角）",
    "\U0002a6d6\uf900\u2f00 I ❤️ 😀👍🏽 🇫🇷 \ud7ff\U000e0001 unassigned+tag",
    "Hello мир κόσμος こんにちは 안녕하세요 مرحبا हिन्दी",
    "x" * 200 + " " + "y" * 201 + " " + "é" * 150 + " " + "ж" * 201,
    "ΑΣ中Β 中Σ Α中Σ ΑΣ中 中\u0301 \uf900\u0300x ΣΑΣ\u3000ΑΣ",
    "[CLS] don't $100,000.00 U.S.A. e-mail a+b=c ^caret^ `tick` ~tilde|",
    "I love it \U0001FAE8! private\ue000\U000F0000use \ufdd0\uffff\u0378\U0010FFFF",
]


def read_lines(path):
    return path.read_text(encoding="utf-8").splitlines()


def sst2_sentences(name="train.tsv"):
    return [row.split("\t")[0]
            for row in read_lines(SST2_DIR / name)[1:]]


def reference_ids(tokenizer, lines):
    return [tokenizer.convert_tokens_to_ids(tokenizer.tokenize(line)) for line in lines]


def graph_ids(graph_tokenizer, lines, batch_size=4096):
    tokenize = tf.function(graph_tokenizer.tokenize,
                           input_signature=[tf.TensorSpec([None], tf.string)])
    ids = []
    for start in range(0, len(lines), batch_size):
        ids.extend(tokenize(tf.constant(lines[start:start + batch_size])).to_list())
    return ids


def mismatches(lines, ours, expected):
    return [line for line, a, b in zip(lines, ours, expected) if a != b]


@pytest.fixture(scope="module")
def uncased_pair():
    return (text_graph.GraphTokenizer(UNCASED_VOCAB, do_lower_case=True),
            tokenization.FullTokenizer(UNCASED_VOCAB, do_lower_case=True))


@pytest.mark.parametrize("corpus", ["en/brown.txt", "en/kjv.txt", "en/wiki.txt", "SST-2"])
def test_english_ids_match_full_tokenizer_on_every_line(uncased_pair, corpus):
    graph, full = uncased_pair
    lines = sst2_sentences() if corpus == "SST-2" else read_lines(DATA / "corpora" / corpus)
    assert not mismatches(lines, graph_ids(graph, lines), reference_ids(full, lines))[:3]


def test_chinese_ids_match_full_tokenizer_on_every_line():
    lines = read_lines(DATA / "corpora" / "zh" / "peoples_daily_1998.txt")
    graph = text_graph.GraphTokenizer(CHINESE_VOCAB, do_lower_case=True)
    full = tokenization.FullTokenizer(CHINESE_VOCAB, do_lower_case=True)
    assert not mismatches(lines, graph_ids(graph, lines), reference_ids(full, lines))[:3]


def test_unicode_corner_cases_match(uncased_pair):
    graph, full = uncased_pair
    assert not mismatches(HARD_TEXT, graph_ids(graph, HARD_TEXT),
                          reference_ids(full, HARD_TEXT))


@pytest.mark.parametrize("do_lower_case", [True, False])
def test_hugging_face_rule_matches_full_tokenizer(do_lower_case):
    graph = text_graph.GraphTokenizer(UNCASED_VOCAB, do_lower_case, control_chars="huggingface")
    full = tokenization.FullTokenizer(UNCASED_VOCAB, do_lower_case, control_chars="huggingface")
    default = tokenization.FullTokenizer(UNCASED_VOCAB, do_lower_case)
    expected = reference_ids(full, HARD_TEXT)
    assert expected != reference_ids(default, HARD_TEXT)  # the rules really differ here
    assert not mismatches(HARD_TEXT, graph_ids(graph, HARD_TEXT), expected)
    with pytest.raises(ValueError, match="control_chars"):
        text_graph.GraphTokenizer(UNCASED_VOCAB, control_chars="hf")


# Letters Python 3.11 (Unicode 14) lower-cases and TensorFlow's ICU does not
# (Vithkuqi, Latin Extended-D, Glagolitic), and code points Python does not
# know that tensorflow-text's newer ICU decomposes (Unicode 16's Tulu-Tigalari,
# Gurung Khema, Kirat Rai, Todhri), as a vocabulary learned from text in
# those scripts would hold them.
NEW_LETTERS = ("\u2c2f\ua7c0\ua7d0\U00010570\U00010595\U000105c9\U000105e4\U00011383"
               "\U000113c5\U00016121\U00016126\U00016d68\U00016d6a")


def test_letters_newer_than_one_unicode_table_match_google(tmp_path):
    from _google_tokenization import google_full_tokenizer

    letters = [c.lower() for c in NEW_LETTERS]
    tokens = read_lines(UNCASED_VOCAB) + letters + ["##" + c for c in letters]
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(tokens) + "\n", encoding="utf-8")
    text = [NEW_LETTERS, " ".join(NEW_LETTERS), "x" + NEW_LETTERS + "\u0301",
            "ab" + NEW_LETTERS + " İ" + NEW_LETTERS.upper(), "plain text only"]
    for do_lower_case in (True, False):
        google = google_full_tokenizer(vocab, do_lower_case)
        expected = [google.convert_tokens_to_ids(google.tokenize(t)) for t in text]
        if do_lower_case:  # the lower-cased letters are vocabulary tokens
            assert 100 not in expected[1], expected
        graph = text_graph.GraphTokenizer(vocab, do_lower_case)
        assert not mismatches(text, graph_ids(graph, text), expected)
        # One batch holds them, the next one not: each takes its own branch.
        for line, ids in zip(text, expected):
            assert graph.tokenize([line]).to_list() == [ids], line


def test_cased_vocabulary_on_mixed_case_text(tmp_path):
    tokens = read_lines(UNCASED_VOCAB)
    words = [t for t in tokens if t.isalpha() and t.isascii()][:5000]
    tokens += [w.capitalize() for w in words] + ["É", "##É", "Ζεύς", "ΟΔΟΣ", "##́"]
    vocab = tmp_path / "cased_vocab.txt"
    vocab.write_text("\n".join(dict.fromkeys(tokens)) + "\n", encoding="utf-8")
    graph = text_graph.GraphTokenizer(vocab, do_lower_case=False)
    full = tokenization.FullTokenizer(vocab, do_lower_case=False)
    lines = read_lines(DATA / "corpora" / "en" / "wiki.txt") + HARD_TEXT
    assert not mismatches(lines, graph_ids(graph, lines), reference_ids(full, lines))[:3]


def google_packing(full, text_a, text_b, seq_length):
    """Google's convert_single_example, written out with plain lists."""
    tokens_a = full.tokenize(text_a)
    tokens_b = full.tokenize(text_b) if text_b is not None else None
    if tokens_b is None:
        tokens_a = tokens_a[:seq_length - 2]
    else:
        while len(tokens_a) + len(tokens_b) > seq_length - 3:
            (tokens_a if len(tokens_a) > len(tokens_b) else tokens_b).pop()
    tokens = ["[CLS]"] + tokens_a + ["[SEP]"]
    types = [0] * len(tokens)
    if tokens_b is not None:
        tokens += tokens_b + ["[SEP]"]
        types += [1] * (len(tokens_b) + 1)
    ids = full.convert_tokens_to_ids(tokens)
    padding = [0] * (seq_length - len(ids))
    return ids + padding, [1] * len(ids) + padding, types + padding


@pytest.mark.parametrize("seq_length", [5, 8, 16, 33, 128])
def test_pair_packing_equals_google(uncased_pair, seq_length):
    graph, full = uncased_pair
    rows = [row.split("\t") for row in read_lines(DATA / "glue" / "MRPC" / "dev.tsv")[1:]]
    pairs = [(row[3], row[4]) for row in rows][:150]
    pairs += [("", "a b c"), ("a b c", ""), ("one two", "three four"), ("a " * 9, "b " * 9)]
    firsts, seconds = zip(*pairs)
    packed = graph.pack([graph.tokenize(list(firsts)), graph.tokenize(list(seconds))], seq_length)
    expected = [google_packing(full, a, b, seq_length) for a, b in pairs]
    for key, column in zip(["input_word_ids", "input_mask", "input_type_ids"], zip(*expected)):
        assert packed[key].shape == (len(pairs), seq_length)
        assert packed[key].dtype == tf.int32
        assert packed[key].numpy().tolist() == list(column), key


def test_single_segment_packing_equals_google(uncased_pair):
    graph, full = uncased_pair
    sentences = sst2_sentences("dev.tsv")[:200]
    packed = graph(tf.constant(sentences), seq_length=24)
    by_word = graph.tokenize(tf.constant(sentences)).with_row_splits_dtype(tf.int64)
    words = tf.RaggedTensor.from_uniform_row_length(by_word, 1)  # [batch, 1, pieces]
    assert (graph.pack([words], 24)["input_word_ids"].numpy()
            == packed["input_word_ids"].numpy()).all()
    expected = [google_packing(full, s, None, 24) for s in sentences]
    assert packed["input_word_ids"].numpy().tolist() == [e[0] for e in expected]
    assert packed["input_mask"].numpy().tolist() == [e[1] for e in expected]
    assert not packed["input_type_ids"].numpy().any()


def test_pack_rejects_bad_arguments(uncased_pair):
    graph, _ = uncased_pair
    ids = graph.tokenize(["a"])
    with pytest.raises(ValueError, match="segments"):
        graph.pack([ids, ids, ids], 16)
    with pytest.raises(ValueError, match="seq_length"):
        graph.pack([ids, ids], 3)
    with pytest.raises(ValueError, match="batch"):
        graph.tokenize("a single string, not a batch")


def test_special_tokens_are_google_uncased_ids(uncased_pair):
    graph, _ = uncased_pair
    assert graph.special_tokens == {"vocab_size": 30522, "start_of_sequence_id": 101,
                                    "end_of_segment_id": 102, "padding_id": 0,
                                    "mask_id": 103}
    assert int(graph.get_special_tokens_dict()["mask_id"]) == 103


def test_works_in_tf_data_map(uncased_pair):
    graph, full = uncased_pair
    sentences = sst2_sentences("dev.tsv")[:64]
    dataset = (tf.data.Dataset.from_tensor_slices(sentences).batch(16)
               .map(lambda s: graph(s, seq_length=64)))
    word_ids = tf.concat([batch["input_word_ids"] for batch in dataset], axis=0)
    expected = [google_packing(full, s, None, 64)[0] for s in sentences]
    assert word_ids.numpy().tolist() == expected


class _Preprocessor(tf.Module):
    def __init__(self, tokenizer):
        super().__init__()
        self.tokenizer = tokenizer

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def __call__(self, strings):
        return self.tokenizer(strings, seq_length=32)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def tokenize(self, strings):
        return self.tokenizer.tokenize(strings)


def test_saved_model_round_trip(uncased_pair, tmp_path):
    graph, full = uncased_pair
    export_dir = str(tmp_path / "preprocessor")
    module = _Preprocessor(graph)
    tf.saved_model.save(module, export_dir,
                        signatures={"serving_default": module.__call__})
    del module
    loaded = tf.saved_model.load(export_dir)
    sentences = sst2_sentences("dev.tsv")[:50] + HARD_TEXT
    expected = reference_ids(full, sentences)
    assert loaded.tokenize(tf.constant(sentences)).to_list() == expected
    served = loaded.signatures["serving_default"](tf.constant(sentences))
    assert served["input_word_ids"].numpy().tolist() == [
        google_packing(full, s, None, 32)[0] for s in sentences]
    assert (Path(export_dir) / "assets" / UNCASED_VOCAB.name).exists()
