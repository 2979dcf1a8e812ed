"""FullTokenizer against Google's own tokenizer and Hugging Face's port.

Two references, one per control-character rule:
  * the default rule against Google's `tokenization.py` itself (the
    registry package bert-tensorflow 1.0.4, see _google_tokenization.py),
    which deletes only Cc/Cf characters and maps unassigned, private-use and
    surrogate code points to [UNK];
  * `control_chars="huggingface"` against Hugging Face's pure-Python port of
    Google's BasicTokenizer and WordpieceTokenizer
    (`tokenization_bert_legacy`), which deletes every C* character. It is
    built directly from its two classes so that none of HF's own additions
    apply. Where that port and Google's documented behaviour differ in
    anything but control characters, Google's behaviour is asserted:
  * HF's WordpieceTokenizer defaults to 100 characters per word; Google
    uses 200 (we pass 200 to the reference).
  * HF's BertTokenizer keeps special tokens such as "[CLS]" whole
    (`never_split`); Google splits them like any text.
  * HF applies NFC before splitting; Google never composes, which only
    matters without lower-casing (see `test_cased_keeps_decomposed_accents`).
  * HF's load_vocab strips only the newline; Google strips all surrounding
    whitespace (the Chinese vocab has a U+2028 line).
"""

import unicodedata
from pathlib import Path

import pytest
from transformers.models.bert import tokenization_bert_legacy as hf_legacy

from _google_tokenization import google_full_tokenizer
from bert_tf import tokenization
from conftest import CHINESE_VOCAB, SST2_DIR, UNCASED_VOCAB
from conftest import TEST_DATA as DATA

RULES = ["google", "huggingface"]


class GoogleReference:
    """Google's FullTokenizer, from Google's own tokenization.py."""

    def __init__(self, vocab_file, do_lower_case):
        self.tokenizer = google_full_tokenizer(vocab_file, do_lower_case)
        self.tokenize = self.tokenizer.tokenize

    def ids(self, text):
        return self.tokenizer.convert_tokens_to_ids(self.tokenize(text))


class HuggingFaceReference:
    """HF's port of Google's two-stage tokenizer, with Google's settings."""

    def __init__(self, vocab_file, do_lower_case):
        self.vocab = hf_legacy.load_vocab(str(vocab_file))
        self.basic = hf_legacy.BasicTokenizer(do_lower_case=do_lower_case)
        self.wordpiece = hf_legacy.WordpieceTokenizer(
            self.vocab, unk_token="[UNK]", max_input_chars_per_word=200)

    def tokenize(self, text):
        return [piece for word in self.basic.tokenize(text)
                for piece in self.wordpiece.tokenize(word)]

    def ids(self, text):
        return [self.vocab[piece] for piece in self.tokenize(text)]


def read_lines(path):
    return path.read_text(encoding="utf-8").splitlines()


def sst2_sentences():
    rows = read_lines(SST2_DIR / "train.tsv")[1:]
    return [row.split("\t")[0] for row in rows]


def first_mismatches(ours, reference, lines, limit=3):
    return [(line, ours(line), reference(line))
            for line in lines if ours(line) != reference(line)][:limit]


def tokenizer_and_reference(vocab_file, do_lower_case, rule):
    """Our FullTokenizer under `rule` and the reference that follows it."""
    reference = {"google": GoogleReference, "huggingface": HuggingFaceReference}[rule]
    return (tokenization.FullTokenizer(str(vocab_file), do_lower_case, control_chars=rule),
            reference(vocab_file, do_lower_case))


@pytest.fixture(scope="module")
def uncased():
    return tokenization.FullTokenizer(str(UNCASED_VOCAB), do_lower_case=True)


@pytest.fixture(scope="module", params=RULES)
def uncased_pair(request):
    return tokenizer_and_reference(UNCASED_VOCAB, True, request.param)


@pytest.fixture(scope="module")
def cased_vocab(tmp_path_factory):
    """The uncased vocab plus capitalised, upper-case and accented words."""
    tokens = read_lines(UNCASED_VOCAB)
    words = [t for t in tokens if t.isalpha() and t.isascii()][:6000]
    extra = [w.capitalize() for w in words] + [w.upper() for w in words[:500]]
    extra += ["Café", "café", "Ångström", "naïve", "Ζεύς", "ΟΔΟΣ", "##É"]
    seen = set(tokens)
    tokens += [t for t in dict.fromkeys(extra) if t not in seen]
    path = tmp_path_factory.mktemp("cased") / "vocab.txt"
    path.write_text("\n".join(tokens) + "\n", encoding="utf-8")
    return path


def test_sst2_train_ids_match_reference(uncased_pair):
    uncased, uncased_reference = uncased_pair
    sentences = sst2_sentences()
    assert len(sentences) == 67349
    ours = [uncased.convert_tokens_to_ids(uncased.tokenize(s)) for s in sentences]
    reference = [uncased_reference.ids(s) for s in sentences]
    mismatched = [i for i, (a, b) in enumerate(zip(ours, reference)) if a != b]
    assert not mismatched, [sentences[i] for i in mismatched[:3]]
    assert sum(map(len, ours)) > 700_000  # the whole set really went through


@pytest.mark.parametrize("rule", RULES)
def test_chinese_corpus_ids_match_reference(rule):
    lines = read_lines(DATA / "corpora" / "zh" / "peoples_daily_1998.txt")
    ours, reference = tokenizer_and_reference(CHINESE_VOCAB, True, rule)
    mismatched = [line for line in lines
                  if ours.convert_tokens_to_ids(ours.tokenize(line)) != reference.ids(line)]
    assert not mismatched, mismatched[:3]
    # Ideographs are single tokens, never "##" continuations.
    assert ours.tokenize("人民日报") == ["人", "民", "日", "报"]


@pytest.mark.parametrize("rule", RULES)
def test_cased_vocab_on_mixed_case_corpora(cased_vocab, rule):
    lines = (read_lines(DATA / "corpora" / "en" / "wiki.txt")
             + read_lines(DATA / "corpora" / "en" / "brown.txt")[:8000])
    # HF composes (NFC) before splitting and Google does not; on NFC text
    # the two must agree, and the corpora are NFC.
    assert all(unicodedata.is_normalized("NFC", line) for line in lines)
    ours, reference = tokenizer_and_reference(cased_vocab, False, rule)
    assert not first_mismatches(ours.tokenize, reference.tokenize, lines)
    assert ours.tokenize("Café Paris") == ["Café", "Paris"]


ADVERSARIAL = [
    "",
    " \t\n\r\u3000\u00a0 ",
    "\x00nul\ufffdreplacement\x07bell\x1bescape",
    "a\x1cb c\x1fd e\x85f g\x0bh i\x0cj",        # str.split() separators Google deletes
    "line\u2028separator\u2029paragraph",
    "zero\u200bwidth\u200cnon\u200djoiner\ufeffbom\u00adsoft",
    "lone surrogate \ud800 here",
    "I love it \U0001FAE8!",                    # an emoji newer than Unicode 14
    "unassigned\u0378\U000E0080 private\ue000\U000F0000use \ufdd0\uffff\U0010FFFF",
    "Café cafe\u0301 naïve Ångström ÉCOLE Ærø",
    "\u0301\u0308 marks alone",
    "I ❤️ tokenizers 😀👍🏽 🇫🇷 👨‍👩‍👧",
    "你好，世界！ＡＢＣ１２３（全角）「引用」。",
    "\U0002a6d6\U0002b740\U0002ceaf\uf900\u2f00 extension ideographs",
    "Hello мир κόσμος 世界 こんにちは 안녕하세요 مرحبا שלום हिन्दी ไทย",
    "ΟΔΟΣ ΣΟΦΟΣ Σ ΑΣ.Β ὈΔΥΣΣΕΎΣ",
    "İstanbul ıi STRASSE straße ﬁne Ǆemal",
    "[CLS] [SEP] [MASK] [UNK] <s> </s>",
    "don't $100,000.00 U.S.A. e-mail a+b=c ^caret^ `tick` ~tilde| {brace}",
    "… ´ ‘quotes’ “double” — – ‐ • § ¶ ¿¡",
    "x" * 199 + " " + "y" * 200 + " " + "z" * 201,
    "é" * 150 + " " + "e\u0301" * 101,
]


@pytest.mark.parametrize("text", ADVERSARIAL)
def test_adversarial_uncased_matches_reference(uncased_pair, text):
    uncased, uncased_reference = uncased_pair
    assert uncased.tokenize(text) == uncased_reference.tokenize(text)
    assert (uncased.convert_tokens_to_ids(uncased.tokenize(text))
            == uncased_reference.ids(text))


@pytest.mark.parametrize("rule", RULES)
def test_adversarial_cased_matches_reference(cased_vocab, rule):
    ours, reference = tokenizer_and_reference(cased_vocab, False, rule)
    # HF composes (NFC) before splitting and Google does not.
    texts = [t for t in ADVERSARIAL
             if rule == "google" or unicodedata.is_normalized("NFC", t)]
    assert not first_mismatches(ours.tokenize, reference.tokenize, texts, limit=len(texts))


def test_default_rule_is_googles_not_hugging_faces(uncased):
    # Google's "support emojis" rule: an emoji Python's Unicode tables do
    # not know yet (Cn) is a token; Hugging Face's rule deletes it.
    text = "I love it \U0001FAE8!"
    assert unicodedata.category("\U0001FAE8") == "Cn"
    google = GoogleReference(UNCASED_VOCAB, True).tokenize(text)
    huggingface = HuggingFaceReference(UNCASED_VOCAB, True).tokenize(text)
    assert google != huggingface
    assert uncased.tokenize(text) == google
    hf_rule = tokenization.FullTokenizer(str(UNCASED_VOCAB), True, control_chars="huggingface")
    assert hf_rule.tokenize(text) == huggingface
    assert tokenization.BasicTokenizer().tokenize(text) == GoogleReference(
        UNCASED_VOCAB, True).tokenizer.basic_tokenizer.tokenize(text)


def test_unknown_control_chars_rule_is_refused():
    with pytest.raises(ValueError, match="control_chars='hf'.*'google', 'huggingface'"):
        tokenization.FullTokenizer(str(UNCASED_VOCAB), control_chars="hf")
    with pytest.raises(ValueError, match="control_chars"):
        tokenization.BasicTokenizer(control_chars="HuggingFace")


def test_longest_vocabulary_entries_are_matched(uncased_pair):
    uncased, uncased_reference = uncased_pair
    # Exercises the greedy match at the full length of the longest entries,
    # both as whole words and as "##" continuations after a prefix.
    longest = sorted(uncased.vocab, key=len)[-300:]
    words = [t.removeprefix("##") for t in longest]
    words += ["q" + t[2:] for t in longest if t.startswith("##")]
    text = " ".join(words)
    assert uncased.tokenize(text) == uncased_reference.tokenize(text)
    assert max(map(len, uncased.tokenize(text))) == max(map(len, uncased.vocab))


def test_google_word_length_limit_is_200_characters(uncased):
    assert uncased.tokenize("a" * 200) != ["[UNK]"]
    assert uncased.tokenize("a" * 201) == ["[UNK]"]
    # The limit applies after accents are stripped: 150 "é" are 150 "e".
    assert uncased.tokenize("é" * 150) == uncased.tokenize("e" * 150)


def test_special_token_text_is_split_like_google(uncased):
    assert uncased.tokenize("[CLS] hi") == ["[", "cl", "##s", "]", "hi"]


def test_cased_keeps_decomposed_accents():
    # Google never composes: without lower-casing "e" + U+0301 stays two
    # code points (HF's port would compose it to "é").
    basic = tokenization.BasicTokenizer(do_lower_case=False)
    assert basic.tokenize("cafe\u0301") == ["cafe\u0301"]
    assert basic.tokenize("Ἀθῆναι") == ["Ἀθῆναι"]


def test_final_sigma_follows_python_lower(uncased):
    # Google lower-cases each whitespace token with str.lower(), which
    # applies the Final_Sigma rule; tensorflow-text's case folding does not.
    basic = tokenization.BasicTokenizer(do_lower_case=True)
    assert basic.tokenize("ΟΔΟΣ ΣΟΦΟΣ") == ["οδος", "σοφος"]


def write_lines(path, lines, newline="\n"):
    path.write_bytes(newline.join(lines).encode("utf-8") + newline.encode())
    return path


def test_load_vocab_keeps_line_index_for_duplicates(tmp_path):
    path = write_lines(tmp_path / "vocab.txt", ["[PAD]", "a", "b", "a", "c"])
    vocab = tokenization.load_vocab(path)
    assert dict(vocab) == dict(hf_legacy.load_vocab(str(path)))
    assert list(vocab) == ["[PAD]", "a", "b", "c"]
    assert vocab["a"] == 3 and vocab["c"] == 4


def test_load_vocab_strips_whitespace_like_google(tmp_path):
    path = write_lines(tmp_path / "vocab.txt", ["[PAD]", "a ", "\u2028"], newline="\r\n")
    assert dict(tokenization.load_vocab(path)) == {"[PAD]": 0, "a": 1, "": 2}


def test_load_vocab_errors_name_the_file(tmp_path):
    missing = tmp_path / "no_such_vocab.txt"
    with pytest.raises(FileNotFoundError, match="no_such_vocab.txt"):
        tokenization.load_vocab(missing)
    empty = tmp_path / "empty_vocab.txt"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="empty_vocab.txt.*empty|empty.*empty_vocab.txt"):
        tokenization.load_vocab(empty)
    broken = tmp_path / "broken_vocab.txt"
    broken.write_bytes(b"[PAD]\n\xff\xfe\n")
    with pytest.raises(ValueError, match="broken_vocab.txt:2"):
        tokenization.load_vocab(broken)


def test_convert_to_unicode():
    assert tokenization.convert_to_unicode("déjà") == "déjà"
    assert tokenization.convert_to_unicode("déjà".encode()) == "déjà"
    with pytest.raises(ValueError, match="not valid UTF-8"):
        tokenization.convert_to_unicode(b"caf\xe9")
    with pytest.raises(ValueError, match="unsupported"):
        tokenization.convert_to_unicode(3)
    assert tokenization.printable_text(b"caf\xe9") == "caf\ufffd"


def test_bytes_input_tokenizes_like_text(uncased):
    assert uncased.tokenize("Ünïcode".encode()) == uncased.tokenize("Ünïcode")


def test_ids_round_trip_and_unknown_token_error(uncased):
    ids = uncased.convert_tokens_to_ids(["[CLS]", "hello", "##s", "[SEP]"])
    assert ids[0] == 101 and ids[-1] == 102  # Google's published uncased ids
    assert uncased.convert_ids_to_tokens(ids) == ["[CLS]", "hello", "##s", "[SEP]"]
    assert len(uncased.vocab) == len(uncased.inv_vocab) == 30522
    with pytest.raises(KeyError, match="not in the vocabulary"):
        uncased.convert_tokens_to_ids(["no-such-token"])


@pytest.mark.parametrize("checkpoint, do_lower_case, ok", [
    ("/m/uncased_L-12_H-768_A-12/bert_model.ckpt", True, True),
    ("/m/uncased_L-12_H-768_A-12/bert_model.ckpt", False, False),
    ("/m/cased_L-24_H-1024_A-16/bert_model.ckpt", True, False),
    ("/m/multi_cased_L-12_H-768_A-12/bert_model.ckpt", False, True),
    ("/m/multilingual_L-12_H-768_A-12/bert_model.ckpt", False, False),
    ("/m/chinese_L-12_H-768_A-12/bert_model.ckpt", True, True),
    ("/m/wwm_cased_L-24_H-1024_A-16/bert_model.ckpt.index", True, False),
    ("/m/my_model/bert_model.ckpt", False, True),
    ("/m/uncased_L-12_H-768_A-12/model.ckpt-1000", False, True),
    (None, False, True),
])
def test_validate_case_matches_checkpoint(checkpoint, do_lower_case, ok):
    if ok:
        tokenization.validate_case_matches_checkpoint(do_lower_case, checkpoint)
    else:
        with pytest.raises(ValueError, match="do_lower_case"):
            tokenization.validate_case_matches_checkpoint(do_lower_case, checkpoint)
