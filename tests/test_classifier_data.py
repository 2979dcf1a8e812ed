"""Task processors, feature conversion, the tf.data pipeline and output files.

References: row and label counts published for the GLUE files (whole files)
or counted with awk on the shipped slices (tests/data/README.md), GLUE's file
layouts, and Hugging Face's legacy pure-Python BERT tokenizer for ids,
segment ids and Google's pair truncation ("longest_first").
"""

import collections
import csv
import hashlib
from pathlib import Path

import numpy as np
import pytest

from bert_tf import classifier_data as cd
from conftest import SST2_DIR, TEST_DATA
from conftest import UNCASED_VOCAB as VOCAB

GLUE = TEST_DATA / "glue"


@pytest.fixture(scope="module")
def tokenizer():
    from bert_tf.tokenization import FullTokenizer
    return FullTokenizer(VOCAB, do_lower_case=True)


@pytest.fixture(scope="module")
def reference_tokenizer():
    from transformers.models.bert.tokenization_bert_legacy import BertTokenizerLegacy
    return BertTokenizerLegacy(str(VOCAB), do_lower_case=True)


def _write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, str):
        text = text.encode("utf-8")
    path.write_bytes(text)
    return path


# --- real GLUE files: counts from tests/data/README.md -----------------------

# Whole files carry GLUE's published counts; the slices (MRPC train and test,
# CoLA train) carry the counts awk gives for them, as listed in the README.
README_COUNTS = [
    ("sst-2", SST2_DIR, "train", 67349, {"0": 29780, "1": 37569}),
    ("sst-2", SST2_DIR, "dev", 872, {"0": 428, "1": 444}),
    ("sst-2", GLUE / "SST-2", "test", 1821, None),
    ("mrpc", GLUE / "MRPC", "train", 800, {"0": 260, "1": 540}),
    ("mrpc", GLUE / "MRPC", "dev", 408, {"0": 129, "1": 279}),
    ("mrpc", GLUE / "MRPC", "test", 400, None),
    ("cola", GLUE / "CoLA", "train", 2000, {"0": 718, "1": 1282}),
    ("cola", GLUE / "CoLA", "dev", 1043, {"0": 322, "1": 721}),
    ("cola", GLUE / "CoLA", "test", 1063, None),
]


@pytest.mark.parametrize("task,folder,split,rows,labels", README_COUNTS,
                         ids=[f"{row[0]}-{row[2]}" for row in README_COUNTS])
def test_processors_read_the_published_row_and_label_counts(task, folder, split, rows, labels):
    processor = cd.get_processor(task)
    examples = getattr(processor, f"get_{split}_examples")(folder)
    assert len(examples) == rows
    counts = collections.Counter(example.label for example in examples)
    assert counts == (labels or {None: rows})
    assert all(example.text_a for example in examples)
    assert all((example.text_b is not None) == (task == "mrpc") for example in examples)
    assert len({example.guid for example in examples}) == rows
    assert processor.num_skipped_rows == 0


def test_shipped_sst2_copy_is_the_published_glue_file():
    # sha256 of glue_data/SST-2 as written by GLUE's download_glue_data.py.
    published = {
        "train.tsv": "48eac26399f8456935f81dd9e3a745c1430adb6c62e233ccfe22db4a0d15d1d1",
        "dev.tsv": "54a9c12c77e402fc14d6a66a506f24d999f596b0176eb777c972cccc2f9cc4b0"}
    assert {name: hashlib.sha256((SST2_DIR / name).read_bytes()).hexdigest()
            for name in published} == published
    assert len(cd.Sst2Processor().get_train_examples(SST2_DIR)) == 67349


def test_mrpc_fields_and_bom_handling():
    # The header begins with a byte-order mark; naming "Quality" only works
    # when it is stripped.
    dev = cd.MrpcProcessor().get_dev_examples(GLUE / "MRPC")
    generic = cd.GenericProcessor(text_a_column="#1 String", text_b_column="#2 String",
                                  label_column="Quality", labels=["0", "1"])
    assert [(e.text_a, e.text_b, e.label) for e in generic._read_split(GLUE / "MRPC", "dev")] \
        == [(e.text_a, e.text_b, e.label) for e in dev]
    first = (GLUE / "MRPC" / "dev.tsv").read_text(encoding="utf-8-sig").splitlines()[1]
    quality, _, _, string1, string2 = first.split("\t")
    assert (dev[0].label, dev[0].text_a, dev[0].text_b) == (quality, string1, string2)


# --- the other GLUE layouts, on files written in the official format ---------

def test_glue_layouts(tmp_path):
    _write(tmp_path / "MNLI" / "train.tsv",
           "index\tpromptID\tpairID\tgenre\ts1bp\ts2bp\ts1p\ts2p\tsentence1\tsentence2\t"
           "label1\tgold_label\n"
           "0\t1\t1e\tgov\t(\t(\t(\t(\tPremise one .\tHypothesis one .\tneutral\tneutral\n")
    _write(tmp_path / "MNLI" / "dev_matched.tsv",
           "index\tpromptID\tpairID\tgenre\ts1bp\ts2bp\ts1p\ts2p\tsentence1\tsentence2\t"
           "label1\tlabel2\tlabel3\tlabel4\tlabel5\tgold_label\n"
           "7\t1\t1e\tgov\t(\t(\t(\t(\tP .\tH .\tneutral\tneutral\tcontradiction\t"
           "neutral\tneutral\tcontradiction\n")
    _write(tmp_path / "MNLI" / "test_matched.tsv",
           "index\tpromptID\tpairID\tgenre\ts1bp\ts2bp\ts1p\ts2p\tsentence1\tsentence2\n"
           "0\t1\t1e\tgov\t(\t(\t(\t(\tP .\tH .\n")
    mnli = cd.get_processor("MNLI")
    assert mnli.get_train_examples(tmp_path / "MNLI")[0] == cd.InputExample(
        "train-0", "Premise one .", "Hypothesis one .", "neutral")
    # The gold label is the last column even when five annotator labels precede it.
    assert mnli.get_dev_examples(tmp_path / "MNLI")[0].label == "contradiction"
    assert mnli.get_test_examples(tmp_path / "MNLI")[0].label is None

    _write(tmp_path / "QQP" / "train.tsv",
           "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n5\t1\t2\tWhy?\tHow?\t1\n")
    _write(tmp_path / "QQP" / "test.tsv", "id\tquestion1\tquestion2\n0\tWhy?\tHow?\n")
    qqp = cd.get_processor("qqp")
    assert qqp.get_train_examples(tmp_path / "QQP")[0] == cd.InputExample(
        "train-5", "Why?", "How?", "1")
    assert qqp.get_test_examples(tmp_path / "QQP")[0] == cd.InputExample("test-0", "Why?", "How?")

    for task, labels in [("qnli", ("entailment", "not_entailment")),
                         ("rte", ("entailment", "not_entailment")), ("wnli", ("0", "1"))]:
        folder = tmp_path / task
        _write(folder / "train.tsv", "index\tsentence1\tsentence2\tlabel\n"
               f"0\tA a .\tB b .\t{labels[1]}\n1\tC .\tD .\t{labels[0]}\n")
        processor = cd.get_processor(task)
        assert processor.get_labels() == list(labels)
        examples = processor.get_train_examples(folder)
        assert [(e.text_a, e.text_b, e.label) for e in examples] == [
            ("A a .", "B b .", labels[1]), ("C .", "D .", labels[0])]

    _write(tmp_path / "STS-B" / "dev.tsv",
           "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\t"
           "score\n0\tmain-captions\tMSRvid\t2012test\t0000\tnone\tnone\tA man .\tA person .\t"
           "4.750\n")
    stsb = cd.get_processor("sts-b")
    assert stsb.is_regression and stsb.num_labels == 1
    assert stsb.get_dev_examples(tmp_path / "STS-B")[0] == cd.InputExample(
        "dev-0", "A man .", "A person .", 4.75)


def test_xnli_reads_translated_train_and_filters_dev_by_language(tmp_path):
    _write(tmp_path / "multinli" / "multinli.train.de.tsv",
           "premise\thypo\tlabel\nEr geht .\tEr bleibt .\tcontradictory\n"
           "Sie liest .\tSie liest ein Buch .\tneutral\n")
    dev_header = ("language\tgold_label\ts1bp\ts2bp\ts1p\ts2p\tsentence1\tsentence2\t"
                  "promptID\tpairID\tgenre\tlabel1\tlabel2\tlabel3\tlabel4\tlabel5\t"
                  "sentence1_tokenized\tsentence2_tokenized\tmatch\n")
    row = "\t{}\t(\t(\t(\t(\t{}\t{}\t1\t1\tfiction\tx\tx\tx\tx\tx\tt\tt\tTrue\n"
    _write(tmp_path / "xnli.dev.tsv", dev_header
           + "de" + row.format("entailment", "Ja .", "Doch .")
           + "fr" + row.format("neutral", "Oui .", "Si .")
           + "de" + row.format("neutral", "Nein .", "Gar nicht ."))
    xnli = cd.get_processor("xnli", language="de")
    train = xnli.get_train_examples(tmp_path)
    assert [e.label for e in train] == ["contradiction", "neutral"]
    dev = xnli.get_dev_examples(tmp_path)
    assert [(e.text_a, e.text_b, e.label) for e in dev] == [
        ("Ja .", "Doch .", "entailment"), ("Nein .", "Gar nicht .", "neutral")]
    with pytest.raises(cd.DataError, match=r"xnli\.dev\.tsv: no dev examples"):
        cd.get_processor("xnli", language="sw").get_dev_examples(tmp_path)


# --- the user's own files ----------------------------------------------------

def test_generic_csv_with_quotes_chinese_and_many_classes(tmp_path):
    _write(tmp_path / "train.csv", 'text,topic\n"你好，世界",10\n"a, quoted ""b""",2\n'
           'plain,2\n"two\nlines",1\n')
    _write(tmp_path / "test.csv", "text\n测试\n")
    processor = cd.get_processor("generic", text_a_column="text", label_column="topic",
                                 file_format="csv", data_dir=tmp_path)
    # Integer labels sort numerically, not as strings ("10" after "2").
    assert processor.get_labels() == ["1", "2", "10"]
    train = processor.get_train_examples(tmp_path)
    assert [(e.text_a, e.label) for e in train] == [
        ("你好，世界", "10"), ('a, quoted "b"', "2"), ("plain", "2"), ("two\nlines", "1")]
    assert processor.get_test_examples(tmp_path)[0] == cd.InputExample("test-0", "测试")


def test_generic_jsonl_pairs_and_tsv_without_header(tmp_path):
    _write(tmp_path / "train.jsonl", '{"q": "Q1", "p": "P1", "y": "yes"}\n\n'
           '{"q": "Q2", "p": "P2", "y": "no"}\n')
    processor = cd.GenericProcessor(text_a_column="q", text_b_column="p", label_column="y",
                                    file_format="jsonl")
    examples = processor.get_train_examples(tmp_path)
    assert processor.get_labels() == ["no", "yes"]
    assert [(e.text_a, e.text_b, e.label) for e in examples] == [
        ("Q1", "P1", "yes"), ("Q2", "P2", "no")]

    _write(tmp_path / "dev.tsv", "pos\tgood film\nneg\tbad film\n")
    headerless = cd.GenericProcessor(text_a_column=1, label_column=0, has_header=False,
                                     labels=["neg", "pos"])
    assert [(e.text_a, e.label) for e in headerless.get_dev_examples(tmp_path)] == [
        ("good film", "pos"), ("bad film", "neg")]


def test_generic_needs_labels_or_data_dir():
    with pytest.raises(ValueError, match="labels="):
        cd.GenericProcessor().get_labels()


def test_get_processor_lists_known_tasks():
    with pytest.raises(ValueError, match="unknown task_name 'mrcp'.*mrpc.*sts-b.*generic"):
        cd.get_processor("mrcp")
    assert isinstance(cd.get_processor("SST2"), cd.Sst2Processor)
    assert isinstance(cd.get_processor("stsb"), cd.StsbProcessor)


# --- bad input: one clear error naming file and line -------------------------

SST2_HEADER = "sentence\tlabel\n"


@pytest.mark.parametrize("body,line,message", [
    ("good \t1\ntoo\tmany\t1\n", 3, "expected 2 columns, found 3"),
    ("good \t1\nno label here\n", 3, "expected 2 columns, found 1"),
    ("good \t1\nfine \t0\nodd \tpositive\n", 4, "unknown label 'positive'"),
    (b"good \t1\nbad \xff\xfe bytes \t0\n", 3, "invalid UTF-8"),
])
def test_bad_rows_name_file_and_line(tmp_path, body, line, message):
    header = SST2_HEADER.encode() if isinstance(body, bytes) else SST2_HEADER
    path = _write(tmp_path / "train.tsv", header + body)
    with pytest.raises(cd.DataError, match=message) as caught:
        cd.Sst2Processor().get_train_examples(tmp_path)
    assert str(caught.value).startswith(f"{path}:{line}: ")
    assert (caught.value.path, caught.value.line) == (str(path), line)

    # The same file with skip_bad_rows keeps the good rows and counts the bad.
    processor = cd.Sst2Processor(skip_bad_rows=True)
    examples = processor.get_train_examples(tmp_path)
    assert processor.num_skipped_rows == 1
    assert len(examples) == line - 2


def test_bad_regression_label_and_bad_json_name_the_line(tmp_path):
    _write(tmp_path / "train.jsonl", '{"sentence": "ok", "label": 1.5}\n{"sentence": "x", '
           '"label": \n')
    processor = cd.GenericProcessor(file_format="jsonl", is_regression=True)
    with pytest.raises(cd.DataError, match=r"train\.jsonl:2: invalid JSON"):
        processor.get_train_examples(tmp_path)
    _write(tmp_path / "dev.jsonl", '{"sentence": "ok", "label": "high"}\n')
    with pytest.raises(cd.DataError, match=r"dev\.jsonl:1: label 'high' is not a number"):
        processor.get_dev_examples(tmp_path)
    _write(tmp_path / "test.jsonl", '{"text": "wrong key"}\n')
    with pytest.raises(cd.DataError, match=r"test\.jsonl:1: missing keys \['sentence'\]"):
        processor.get_test_examples(tmp_path)


def test_missing_split_and_empty_dataset_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"dev\.tsv: no dev file for MrpcProcessor"):
        cd.MrpcProcessor().get_dev_examples(tmp_path)
    path = _write(tmp_path / "train.tsv", SST2_HEADER)
    with pytest.raises(cd.DataError, match=f"^{path}: no train examples"):
        cd.Sst2Processor().get_train_examples(tmp_path)
    _write(tmp_path / "train.tsv", SST2_HEADER + "a\t2\nb\t3\n")
    with pytest.raises(cd.DataError, match="no train examples"):
        cd.Sst2Processor(skip_bad_rows=True).get_train_examples(tmp_path)


def test_missing_named_column_names_the_header_line(tmp_path):
    _write(tmp_path / "train.tsv", "text\tlabel\nhi\t1\n")
    with pytest.raises(cd.DataError, match=r"train\.tsv:1: no column 'sentence'"):
        cd.GenericProcessor(labels=["1"]).get_train_examples(tmp_path)


# --- features ----------------------------------------------------------------

def test_single_sentences_match_reference_ids_and_truncation(tokenizer, reference_tokenizer):
    examples = cd.Sst2Processor().get_dev_examples(SST2_DIR)
    labels = ["0", "1"]
    features = cd.convert_examples_to_features(examples, labels, 24, tokenizer)
    assert len(features) == len(examples)
    truncated = 0
    for index, (example, feature) in enumerate(zip(examples, features)):
        expected = reference_tokenizer(example.text_a, truncation=True, max_length=24,
                                       return_token_type_ids=True)
        assert feature.input_ids == expected["input_ids"]
        assert feature.segment_ids == expected["token_type_ids"]
        assert feature.input_mask == [1] * len(feature.input_ids)
        assert feature.label_id == labels.index(example.label)
        assert feature.example_index == index
        truncated += len(feature.input_ids) == 24
    assert truncated > 100  # the limit really was exercised


def test_pairs_match_reference_longest_first_truncation(tokenizer, reference_tokenizer):
    examples = cd.MrpcProcessor().get_dev_examples(GLUE / "MRPC")
    features = cd.convert_examples_to_features(examples, ["0", "1"], 40, tokenizer)
    for example, feature in zip(examples, features):
        expected = reference_tokenizer(example.text_a, example.text_b,
                                       truncation="longest_first", max_length=40,
                                       return_token_type_ids=True)
        assert feature.input_ids == expected["input_ids"]
        assert feature.segment_ids == expected["token_type_ids"]


def test_unlabelled_and_regression_labels(tokenizer):
    examples = [cd.InputExample("t-0", "a"), cd.InputExample("t-1", "b", "c", 3.2)]
    classification = cd.convert_examples_to_features(examples[:1], ["x", "y"], 8, tokenizer)
    assert classification[0].label_id == 0
    regression = cd.convert_examples_to_features(examples, [], 8, tokenizer, is_regression=True)
    assert [f.label_id for f in regression] == [0.0, 3.2]
    with pytest.raises(ValueError, match="example t-9: label 'z' is not in label_list"):
        cd.convert_examples_to_features([cd.InputExample("t-9", "a", label="z")],
                                        ["x"], 8, tokenizer)


def _long_documents(count=6):
    """Real Wikipedia articles, joined into documents of ~150-900 wordpieces."""
    lines = (TEST_DATA / "corpora" / "en" / "wiki.txt").read_text(encoding="utf-8")
    documents = [doc.replace("\n", " ") for doc in lines.split("\n\n")]
    return [doc[: 800 + 600 * i] for i, doc in enumerate(documents[:count])]


@pytest.mark.parametrize("max_seq_length,doc_stride", [(64, 32), (64, 64), (48, 200)])
def test_sliding_windows_cover_every_token(tokenizer, reference_tokenizer,
                                           max_seq_length, doc_stride):
    documents = _long_documents()
    examples = [cd.InputExample(f"d-{i}", doc, label="1") for i, doc in enumerate(documents)]
    features = cd.convert_examples_to_features(examples, ["0", "1"], max_seq_length, tokenizer,
                                               doc_stride=doc_stride)
    cls_id, sep_id = reference_tokenizer.convert_tokens_to_ids(["[CLS]", "[SEP]"])
    for index, document in enumerate(documents):
        ids = reference_tokenizer(document, add_special_tokens=False)["input_ids"]
        assert len(ids) > max_seq_length
        windows = [f for f in features if f.example_index == index]
        assert len(windows) > 1
        covered = np.zeros(len(ids), dtype=bool)
        window = max_seq_length - 2
        for number, feature in enumerate(windows):
            assert feature.input_ids[0] == cls_id and feature.input_ids[-1] == sep_id
            assert len(feature.input_ids) <= max_seq_length
            assert feature.segment_ids == [0] * len(feature.input_ids)
            start = number * min(doc_stride, window)
            body = feature.input_ids[1:-1]
            assert body == ids[start:start + window]
            covered[start:start + len(body)] = True
        assert covered.all()
        assert len(windows[-1].input_ids) - 2 + (len(windows) - 1) * min(doc_stride, window) \
            == len(ids)


def test_sliding_windows_repeat_text_b_in_every_window(tokenizer, reference_tokenizer):
    document = _long_documents(1)[0]
    question = "what is anarchism ?"
    features = cd.convert_examples_to_features(
        [cd.InputExample("q-0", document, question, "1")], ["0", "1"], 64, tokenizer,
        doc_stride=20)
    question_ids = reference_tokenizer(question, add_special_tokens=False)["input_ids"]
    document_ids = reference_tokenizer(document, add_special_tokens=False)["input_ids"]
    window = 64 - 3 - len(question_ids)
    assert len(features) == 1 + -(-(len(document_ids) - window) // 20)
    for number, feature in enumerate(features):
        tail = feature.input_ids[-len(question_ids) - 1:-1]
        assert tail == question_ids
        assert feature.segment_ids.count(1) == len(question_ids) + 1
        assert feature.input_ids[1:-len(question_ids) - 2] == \
            document_ids[number * 20:number * 20 + window]


def test_aggregate_window_logits_is_the_mean_per_example():
    rng = np.random.default_rng(0)
    example_index = np.array([0, 0, 1, 2, 2, 2, 3])
    logits = rng.normal(size=(7, 3))
    expected = np.stack([logits[example_index == i].mean(axis=0) for i in range(4)])
    np.testing.assert_allclose(cd.aggregate_window_logits(logits, example_index, 4), expected)
    with pytest.raises(ValueError, match=r"examples \[4\] have no window"):
        cd.aggregate_window_logits(logits, example_index, 5)


# --- tf.data -----------------------------------------------------------------

def _features(lengths, regression=False):
    rng = np.random.default_rng(1)
    return [cd.InputFeatures(input_ids=list(rng.integers(1000, 2000, n)),
                             input_mask=[1] * n,
                             segment_ids=[0] * (n // 2) + [1] * (n - n // 2),
                             label_id=float(i) / 10 if regression else i % 3,
                             example_index=i)
            for i, n in enumerate(lengths)]


def _check_batch(inputs, labels, features, width):
    for row, index in enumerate(inputs["example_index"].numpy()):
        feature = features[index]
        n = len(feature.input_ids)
        padding = [0] * (width - n)
        assert list(inputs["input_word_ids"][row].numpy()) == feature.input_ids + padding
        assert list(inputs["input_type_ids"][row].numpy()) == feature.segment_ids + padding
        assert list(inputs["input_mask"][row].numpy()) == [1] * n + padding
        assert labels[row].numpy() == pytest.approx(feature.label_id)


def test_eval_dataset_yields_every_example_once_in_order_padded_per_batch():
    lengths = np.random.default_rng(2).integers(3, 60, 103)
    features = _features(lengths)
    batches = list(cd.classifier_dataset(features, batch_size=10, is_training=False))
    assert [len(labels) for _, labels in batches] == [10] * 10 + [3]
    seen = np.concatenate([inputs["example_index"].numpy() for inputs, _ in batches])
    assert seen.tolist() == list(range(103))
    for number, (inputs, labels) in enumerate(batches):
        width = max(lengths[number * 10:number * 10 + 10])
        assert inputs["input_word_ids"].shape[1] == width
        assert inputs["input_word_ids"].dtype.name == "int32"
        assert labels.dtype.name == "int32"
        _check_batch(inputs, labels, features, width)


def test_fixed_length_padding_and_regression_labels():
    features = _features([5, 9, 7], regression=True)
    (inputs, labels), = cd.classifier_dataset(features, 4, is_training=False,
                                              bucket_by_length=False, max_seq_length=16,
                                              with_example_index=False)
    assert sorted(inputs) == ["input_mask", "input_type_ids", "input_word_ids"]
    assert inputs["input_word_ids"].shape == (3, 16)
    assert labels.dtype.name == "float32"
    np.testing.assert_allclose(labels.numpy(), [0.0, 0.1, 0.2], rtol=1e-6)
    with pytest.raises(ValueError, match="more than max_seq_length=8"):
        cd.classifier_dataset(features, 4, is_training=False, bucket_by_length=False,
                              max_seq_length=8)


def _training_batches(features, batch_size, steps, **kwargs):
    dataset = cd.classifier_dataset(features, batch_size, is_training=True, **kwargs)
    return [(inputs["example_index"].numpy(), inputs, labels)
            for inputs, labels in dataset.take(steps)]


def test_training_windows_use_every_example_once_per_epoch():
    # 96 examples = 3 windows of 4 batches of 8: each epoch's 12 batches hold
    # every example exactly once. Grouping over the whole stream
    # (bucket_by_sequence_length) fails this: rare lengths wait epochs for a
    # full bucket while common ones come round again.
    lengths = np.random.default_rng(3).integers(3, 200, 96)
    features = _features(lengths)
    batches = _training_batches(features, 8, 36, seed=5, bucket_window_batches=4)
    for epoch in range(3):
        seen = np.concatenate([index for index, _, _ in batches[12 * epoch:12 * epoch + 12]])
        assert sorted(seen) == list(range(96)), f"epoch {epoch}"
    # With windows that straddle epochs (90 examples), 16 epochs are 45 whole
    # windows: every example is used exactly 16 times.
    batches = _training_batches(_features(lengths[:90]), 8, 180, seed=5,
                                bucket_window_batches=4)
    counts = np.bincount(np.concatenate([index for index, _, _ in batches]), minlength=90)
    assert counts.tolist() == [16] * 90


def test_training_batches_are_padded_to_their_own_longest_and_save_padding():
    lengths = np.random.default_rng(4).integers(3, 200, 400)
    features = _features(lengths)
    fill = {}
    for window in (8, 1):
        real = padded = 0
        for index, inputs, labels in _training_batches(features, 16, 100, seed=7,
                                                       bucket_window_batches=window):
            width = max(lengths[index])
            assert inputs["input_word_ids"].shape == (16, width)
            _check_batch(inputs, labels, features, width)
            real, padded = real + lengths[index].sum(), padded + 16 * width
        fill[window] = real / padded
    saved_vs_max = 1 - lengths.mean() / fill[8] / lengths.max()
    print(f"real/padded tokens: windows of 8 batches {fill[8]:.2f}, random batches "
          f"{fill[1]:.2f}; windows pad {100 * saved_vs_max:.0f}% less than padding to the longest")
    # Uniform lengths: a random batch of 16 pads to about the 94th percentile
    # (fill ~0.54); sorting 128 examples leaves ~8% padding.
    assert fill[8] > 0.8 and fill[1] < 0.65


def _batch_label_dispersion(batches, num_labels):
    """Pearson's chi-square of per-batch label counts against the pooled mix."""
    counts = np.array([np.bincount(labels.numpy(), minlength=num_labels)
                       for _, _, labels in batches])
    expected = counts.sum(0, keepdims=True) / counts.sum() * counts.sum(1, keepdims=True)
    return float(((counts - expected) ** 2 / expected).sum()), counts.size - counts.shape[0]


def test_window_batches_mix_labels_at_least_as_evenly_as_random_batches():
    # Labels that track length, as on SST-2 or STS-B: short examples are
    # mostly class 0. Pearson's statistic of per-batch label counts is
    # ~chi-square with (batches x (labels - 1)) degrees of freedom under
    # random batching. Batches cut from length-sorted data are far more
    # uneven (the check can fail); ours, ranked by length within each label,
    # carry the window's label mix, so they are never more uneven than
    # random batches.
    from scipy import stats

    rng = np.random.default_rng(8)
    lengths = rng.integers(3, 200, 1200)
    features = _features(lengths)
    for feature, length in zip(features, lengths):
        short = 0.7 if length < 60 else 0.2
        feature.label_id = int(rng.choice(3, p=[short, (1 - short) / 2, (1 - short) / 2]))
    labels = np.array([f.label_id for f in features])

    def p_value(batches):
        statistic, dof = _batch_label_dispersion(batches, 3)
        return stats.chi2.sf(statistic, dof)

    random_batches = _training_batches(features, 16, 300, seed=9, bucket_window_batches=1)
    assert 1e-3 < p_value(random_batches) < 1 - 1e-3
    windows = _training_batches(features, 16, 300, seed=9, bucket_window_batches=50)
    assert p_value(windows) > 0.05
    fill = {name: np.mean([(inputs["input_mask"].numpy()).mean() for _, inputs, _ in batches])
            for name, batches in (("random", random_batches), ("windows", windows))}
    print(f"real/padded tokens: windows {fill['windows']:.2f}, random {fill['random']:.2f}")
    assert fill["windows"] > 0.75 > 0.6 > fill["random"]
    # Sorting by length alone: what the statistic rejects.
    by_length = np.argsort(lengths, kind="stable")[:1200].reshape(75, 16)
    sorted_batches = [(None, None, _Labels(labels[rows])) for rows in by_length]
    assert p_value(sorted_batches) < 1e-6


def test_default_window_holds_at_most_a_tenth_of_an_epoch():
    # 240 examples in batches of 8: 30 batches an epoch, so the default
    # window is 3 batches (24 examples). Each run of 3 consecutive batches then
    # holds one window's examples, sorted by length across its batches, and
    # every example comes once per epoch. One label, so that the order within
    # a window is by length alone.
    lengths = np.random.default_rng(14).integers(3, 200, 240)
    features = _features(lengths)
    for feature in features:
        feature.label_id = 0
    batches = _training_batches(features, 8, 60, seed=15)
    for epoch in range(2):
        seen = np.concatenate([index for index, _, _ in batches[30 * epoch:30 * epoch + 30]])
        assert sorted(seen) == list(range(240)), f"epoch {epoch}"
    spans = []
    for start in range(0, 60, 3):
        window = [lengths[index] for index, _, _ in batches[start:start + 3]]
        ranges = sorted((w.min(), w.max()) for w in window)
        # Sorted within the window: the batches' length ranges do not overlap.
        assert all(a[1] <= b[0] for a, b in zip(ranges, ranges[1:])), ranges
        spans.append(max(r[1] for r in ranges) - min(r[0] for r in ranges))
    # ...but a window is not the whole epoch: its lengths span about what 24
    # random examples span, not the epoch's whole range sorted into 30 batches.
    assert np.median(spans) > 0.6 * (lengths.max() - lengths.min())
    explicit = _training_batches(features, 8, 30, seed=15, bucket_window_batches=30)
    ranges = sorted((lengths[index].min(), lengths[index].max()) for index, _, _ in explicit)
    assert all(a[1] <= b[0] for a, b in zip(ranges, ranges[1:]))


class _Labels:
    """Stands in for a batch's label tensor."""

    def __init__(self, values):
        self.values = values

    def numpy(self):
        return self.values


def test_window_of_one_batch_is_the_fixed_length_pipeline_order():
    lengths = np.random.default_rng(10).integers(3, 60, 70)
    features = _features(lengths)
    random_batches = _training_batches(features, 8, 20, seed=11, bucket_window_batches=1)
    fixed = _training_batches(features, 8, 20, seed=11, bucket_by_length=False,
                              max_seq_length=64)
    for (a, inputs, _), (b, fixed_inputs, _) in zip(random_batches, fixed):
        assert a.tolist() == b.tolist()
        assert inputs["input_word_ids"].shape[1] == max(lengths[a])
        assert fixed_inputs["input_word_ids"].shape[1] == 64


def test_training_stream_is_a_function_of_the_seed():
    # Resuming skips the batches already consumed in a fresh stream, so the
    # stream must not depend on anything but the seed.
    lengths = np.random.default_rng(3).integers(3, 200, 90)
    features = _features(lengths)
    first = [index.tolist() for index, _, _ in _training_batches(features, 8, 30, seed=5)]
    again = [index.tolist() for index, _, _ in _training_batches(features, 8, 30, seed=5)]
    other = [index.tolist() for index, _, _ in _training_batches(features, 8, 30, seed=6)]
    assert first == again and first != other
    with pytest.raises(ValueError, match="bucket_window_batches must be >= 1"):
        cd.classifier_dataset(features, 8, is_training=True, bucket_window_batches=0)


def test_training_windows_per_input_pipeline_cover_the_data():
    import tensorflow as tf

    lengths = np.random.default_rng(12).integers(3, 100, 128)
    features = _features(lengths)
    seen = []
    for pipeline in range(2):
        context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=pipeline,
                                             num_replicas_in_sync=2)
        # 64 examples per pipeline: one window of 4 per-replica batches of 8.
        batches = _training_batches(features, 16, 16, seed=13, bucket_window_batches=4,
                                    input_context=context)
        for index, inputs, _ in batches:
            assert len(index) == 8 and set(index % 2) == {pipeline}
            assert inputs["input_word_ids"].shape[1] == max(lengths[index])
        seen.append(np.concatenate([index for index, _, _ in batches]))
    for epoch in range(2):
        both = np.concatenate([s[64 * epoch:64 * epoch + 64] for s in seen])
        assert sorted(both) == list(range(128))


def test_input_context_shards_and_splits_the_global_batch():
    import tensorflow as tf

    features = _features([4] * 20)
    context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=1,
                                         num_replicas_in_sync=2)
    batches = list(cd.classifier_dataset(features, batch_size=8, is_training=False,
                                         input_context=context))
    seen = np.concatenate([inputs["example_index"].numpy() for inputs, _ in batches])
    assert seen.tolist() == list(range(1, 20, 2))
    assert [len(labels) for _, labels in batches] == [4, 4, 2]


def test_eval_dataset_refuses_to_drop_examples():
    with pytest.raises(ValueError, match="lose evaluation examples"):
        cd.classifier_dataset(_features([3]), 2, is_training=False, drop_remainder=True)


# --- output files -------------------------------------------------------------

def test_write_test_results_one_line_of_probabilities_per_example(tmp_path):
    probabilities = np.array([[0.25, 0.75], [0.9, 0.1], [0.5, 0.5]])
    path = tmp_path / "out" / "test_results.tsv"
    cd.write_test_results(path, probabilities)
    rows = list(csv.reader(path.open(encoding="utf-8"), delimiter="\t"))
    np.testing.assert_allclose(np.array(rows, dtype=float), probabilities, rtol=1e-6)
    assert sorted(p.name for p in path.parent.iterdir()) == ["test_results.tsv"]


def test_glue_submission_format(tmp_path):
    path = cd.write_glue_submission(tmp_path, "MNLI", np.array([[0.1, 2.0, 0.3], [3.0, 0, 0]]),
                                    ["contradiction", "entailment", "neutral"])
    assert path.name == "MNLI-m.tsv"
    assert path.read_text() == "index\tprediction\n0\tentailment\n1\tcontradiction\n"
    path = cd.write_glue_submission(tmp_path, "sts-b", [[4.25], [0.5]], [])
    assert path.name == "STS-B.tsv"
    assert path.read_text() == "index\tprediction\n0\t4.250\n1\t0.500\n"
    assert cd.write_glue_submission(tmp_path, "cola", [1, 0], ["0", "1"]).name == "CoLA.tsv"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["CoLA.tsv", "MNLI-m.tsv", "STS-B.tsv"]
    with pytest.raises(ValueError, match="class ids in"):
        cd.write_glue_submission(tmp_path, "sst-2", [2], ["0", "1"])


def test_headerless_column_out_of_range_names_the_line(tmp_path):
    _write(tmp_path / "train.tsv", "pos\tgood\n")
    processor = cd.GenericProcessor(text_a_column=2, label_column=0, has_header=False)
    with pytest.raises(cd.DataError, match=r"train\.tsv:1: no column 2 in a row of 2"):
        processor.get_train_examples(tmp_path)


def test_processors_written_for_googles_script_still_work():
    class OwnMrpc(cd.DataProcessor):
        def get_dev_examples(self, data_dir):
            lines = self._read_tsv(Path(data_dir) / "dev.tsv")
            return [cd.InputExample(f"dev-{i}", line[3], line[4], line[0])
                    for i, line in enumerate(lines[1:])]

    own = OwnMrpc().get_dev_examples(GLUE / "MRPC")
    assert own == cd.MrpcProcessor().get_dev_examples(GLUE / "MRPC")


def test_windows_cut_an_overlong_text_b_to_half_the_space(tokenizer, reference_tokenizer):
    long_a, long_b = _long_documents(2)
    short = cd.InputExample("s-0", "a short sentence .", "and its pair .", "0")
    features = cd.convert_examples_to_features(
        [cd.InputExample("p-0", long_a, long_b, "1"), short], ["0", "1"], 64, tokenizer,
        doc_stride=16)
    ids_a = reference_tokenizer(long_a, add_special_tokens=False)["input_ids"]
    ids_b = reference_tokenizer(long_b, add_special_tokens=False)["input_ids"]
    half = (64 - 3) // 2
    windows = features[:-1]
    for number, feature in enumerate(windows):
        assert feature.input_ids[-half - 1:-1] == ids_b[:half]
        assert feature.input_ids[1:-half - 2] == ids_a[number * 16:number * 16 + 64 - 3 - half]
    assert windows[-1].input_ids[1:-half - 2][-1] == ids_a[-1]
    # Examples that fit are unaffected by doc_stride.
    expected = reference_tokenizer(short.text_a, short.text_b, return_token_type_ids=True)
    assert (features[-1].input_ids, features[-1].segment_ids, features[-1].example_index) == \
        (expected["input_ids"], expected["token_type_ids"], 1)
