"""The Chinese LM tokenizer against Hugging Face's BertTokenizer, which
GPT2-Chinese uses over the BERT Chinese vocabulary, and GPT2-Chinese's
document markers and decoding rules, worked by hand from its train.py and
generate.py."""

import shutil

import pytest

from bert_tf import lm_tokenization
from conftest import CHINESE_VOCAB, TEST_DATA


@pytest.fixture(scope="module")
def ours():
    return lm_tokenization.ChineseWordPiece(str(CHINESE_VOCAB))


@pytest.fixture(scope="module")
def hf(tmp_path_factory):
    import transformers
    folder = tmp_path_factory.mktemp("bert_chinese")
    shutil.copy(CHINESE_VOCAB, folder / "vocab.txt")
    return transformers.BertTokenizer.from_pretrained(str(folder), do_lower_case=True)


def _gpt2_chinese_ids(hf, document):
    """GPT2-Chinese's build_files: newlines become ' [SEP] ', and each
    document is framed by [MASK] ... [CLS]."""
    tokens = hf.tokenize(document.replace("\n", " [SEP] "))
    return ([hf.convert_tokens_to_ids("[MASK]")] + hf.convert_tokens_to_ids(tokens)
            + [hf.convert_tokens_to_ids("[CLS]")])


@pytest.mark.parametrize("name", ["zh/peoples_daily_1998.txt", "zh/peoples_daily_1998.seg.txt",
                                  "en/kjv.txt"])
def test_every_document_as_gpt2_chinese_tokenizes_it(ours, hf, name):
    documents = (TEST_DATA / "corpora" / name).read_text(encoding="utf-8").split("\n\n")
    differing = [i for i, doc in enumerate(documents)
                 if ours.document_ids(doc) != _gpt2_chinese_ids(hf, doc)]
    assert len(documents) > 50 and not differing, f"{len(differing)} of {len(documents)} differ"


def test_bert_tokenizer_rules_that_differ_from_googles(ours, hf):
    cases = [
        "第一段[SEP]第二段 [CLS] 完",       # special tokens in the text stay whole
        "私用\ue000区\u200b与未分配\U000e0100",  # every C* character is deleted
        "a" * 100 + " " + "b" * 101,         # more than 100 characters: [UNK]
        "Ａｂｃ１２３，。“”",
    ]
    for text in cases:
        assert ours.encode(text) == hf.convert_tokens_to_ids(hf.tokenize(text)), text
    assert ours.tokenize("中[SEP]文")[1] == "[SEP]"
    assert ours.tokenize("b" * 101) == ["[UNK]"]


def test_decoding_follows_gpt2_chinese_generate(ours):
    tokens = ["[MASK]", "中", "文", "gp", "##t", "[SEP]", "hello", "world", "and", "，",
              "ok", "[CLS]", "[MASK]", "the"]
    ids = [ours.vocab[t] for t in tokens]
    # generate.py: a space after a Latin word followed by one, [MASK] gone,
    # [SEP] a newline, [CLS] a blank line, "##" removed, then strip().
    assert ours.decode(ids) == "中文gpt\nhello world and，ok\n\nthe"
