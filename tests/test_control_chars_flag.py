"""`--control_chars` reaches the tokenizer in every script that tokenizes.

A private-use character (U+E000, category Co) tells the two rules apart:
Google's tokenization.py (bert-tensorflow 1.0.4, see _google_tokenization.py)
keeps it as a token that becomes [UNK]; Hugging Face's BasicTokenizer, like
Google's code before 2019-03-28, deletes it. Each script runs in this process
(one TensorFlow import for all of them) on a tiny random model, and what it
wrote is compared with the reference of the rule it was given.
"""

import json
import logging
import runpy
import threading
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from absl import flags
from transformers.models.bert import tokenization_bert_legacy as hf_legacy

from _google_tokenization import google_full_tokenizer, google_tokenization
from bert_tf import checkpoints, cli, modeling, tokenization
from conftest import UNCASED_VOCAB

REPO = Path(__file__).resolve().parents[1]
PROBE = "I love it \ue000!"
RULES = ["google", "huggingface"]


def reference_tokens(text, rule):
    """Wordpieces of `text` from the reference implementation of `rule`."""
    if rule == "google":
        return google_full_tokenizer(UNCASED_VOCAB, True).tokenize(text)
    vocab = hf_legacy.load_vocab(str(UNCASED_VOCAB))
    wordpiece = hf_legacy.WordpieceTokenizer(vocab, unk_token="[UNK]",
                                             max_input_chars_per_word=200)
    return [piece for word in hf_legacy.BasicTokenizer(do_lower_case=True).tokenize(text)
            for piece in wordpiece.tokenize(word)]


def test_references_disagree_on_the_probe():
    # Otherwise the tests below could not tell the rules apart.
    assert reference_tokens(PROBE, "google") == ["i", "love", "it", "[UNK]", "!"]
    assert reference_tokens(PROBE, "huggingface") == ["i", "love", "it", "!"]


@pytest.fixture(autouse=True)
def keep_absl_log_level():
    """Running a script's flags and main() here leaves the "absl" logger at
    WARNING (absl's --verbosity default); later tests in this process read
    its INFO records, so each test hands the level back as it found it."""
    logger = logging.getLogger("absl")
    level = logger.level
    yield
    logger.setLevel(level)


def run_script(script, *args):
    """Runs `script`'s main() here with `args` as its command line.

    Scripts define their flags on absl's global FLAGS when loaded; they are
    removed again afterwards so that the next script can define its own.
    """
    before = set(flags.FLAGS)
    try:
        namespace = runpy.run_path(str(REPO / script), run_name="script_under_test")
        flags.FLAGS([script, *args])
        return namespace["main"]([script])
    finally:
        flags.FLAGS.unparse_flags()
        for name in set(flags.FLAGS) - before:
            delattr(flags.FLAGS, name)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A random tiny BERT in Google's release layout, with Google's uncased vocab."""
    folder = tmp_path_factory.mktemp("tiny_bert")
    config = modeling.BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2,
                                 num_attention_heads=4, intermediate_size=64,
                                 max_position_embeddings=64, type_vocab_size=2)
    config.to_json_file(str(folder / "bert_config.json"))
    (folder / "vocab.txt").write_bytes(UNCASED_VOCAB.read_bytes())
    checkpoints.save_google_checkpoint(modeling.BertEncoder(config),
                                       str(folder / "bert_model.ckpt"))
    return folder


@pytest.fixture
def made_tokenizers(monkeypatch):
    """Every FullTokenizer the code under test constructs."""
    made = []

    class Recording(tokenization.FullTokenizer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(tokenization, "FullTokenizer", Recording)
    return made


def test_flag_offers_the_rules_with_googles_as_default():
    before = set(flags.FLAGS)
    cli.define_control_chars_flag()
    try:
        flag = flags.FLAGS["control_chars"]
        assert flag.default == "google"
        assert sorted(flag.parser.enum_values) == sorted(tokenization.CONTROL_CHAR_RULES)
        assert "2019-03-28" in flag.help and "Hugging Face" in flag.help
        with pytest.raises(flags.IllegalFlagValueError):
            flags.FLAGS(["prog", "--control_chars=hf"])
    finally:
        flags.FLAGS.unparse_flags()
        for name in set(flags.FLAGS) - before:
            delattr(flags.FLAGS, name)


@pytest.mark.parametrize("rule", RULES)
def test_run_classifier(rule, tiny_model, tmp_path, made_tokenizers):
    data = tmp_path / "data"
    data.mkdir()
    (data / "test.tsv").write_text(f"index\tsentence\n0\t{PROBE}\n", encoding="utf-8")
    out = tmp_path / "out"
    run_script("run_classifier.py", "--task_name=sst-2", "--do_predict", f"--data_dir={data}",
               f"--init_checkpoint={tiny_model}", f"--output_dir={out}",
               "--max_seq_length=16", f"--control_chars={rule}")
    assert made_tokenizers and all(t.control_chars == rule for t in made_tokenizers)
    assert made_tokenizers[0].tokenize(PROBE) == reference_tokens(PROBE, rule)
    assert json.loads((out / "run_identity.json").read_text())["control_chars"] == rule
    assert np.loadtxt(out / "test_results.tsv").shape == (2,)


@pytest.mark.parametrize("rule", RULES)
def test_extract_features(rule, tiny_model, tmp_path):
    (tmp_path / "in.txt").write_text(PROBE + "\n", encoding="utf-8")
    out = tmp_path / "features.jsonl"
    run_script("extract_features.py", f"--input_file={tmp_path / 'in.txt'}",
               f"--output_file={out}", f"--init_checkpoint={tiny_model}", "--layers=-1",
               "--max_seq_length=16", f"--control_chars={rule}")
    [line] = out.read_text(encoding="utf-8").splitlines()
    tokens = [f["token"] for f in json.loads(line)["features"]]
    assert tokens == ["[CLS]", *reference_tokens(PROBE, rule), "[SEP]"]


@pytest.mark.parametrize("rule", RULES)
def test_create_pretraining_data(rule, tmp_path):
    # Two documents of identical sentences: every segment is made of whole
    # sentences (--nofair_next_sentence), so each is the probe's tokens repeated.
    (tmp_path / "corpus.txt").write_text(
        "\n".join([PROBE] * 3 + [""] + [PROBE] * 3) + "\n", encoding="utf-8")
    out = tmp_path / "out.tfrecord"
    run_script("create_pretraining_data.py", f"--input_file={tmp_path / 'corpus.txt'}",
               f"--output_file={out}", f"--vocab_file={UNCASED_VOCAB}", "--dupe_factor=1",
               "--max_seq_length=32", "--dynamic_masking", "--nofair_next_sentence",
               f"--control_chars={rule}")
    inverse = {i: token for token, i in tokenization.load_vocab(str(UNCASED_VOCAB)).items()}
    want = reference_tokens(PROBE, rule)
    records = list(tf.data.TFRecordDataset(str(out)))
    assert records
    for record in records:
        example = tf.train.Example.FromString(record.numpy())
        ids = example.features.feature["input_ids"].int64_list.value
        tokens = [inverse[i] for i in ids if i]
        assert tokens[0] == "[CLS]" and tokens[-1] == "[SEP]"
        for segment in " ".join(tokens[1:-1]).split(" [SEP] "):
            pieces = segment.split(" ")
            assert len(pieces) % len(want) == 0 and pieces == want * (len(pieces) // len(want))


@pytest.mark.parametrize("rule", RULES)
def test_learn_vocab(rule, tmp_path):
    (tmp_path / "corpus.txt").write_text((PROBE + "\n") * 20, encoding="utf-8")
    out = tmp_path / "vocab.txt"
    run_script("learn_vocab.py", f"--input_file={tmp_path / 'corpus.txt'}",
               f"--output_file={out}", "--vocab_size=40", f"--control_chars={rule}")
    vocab = out.read_text(encoding="utf-8").splitlines()
    # A word of Google's basic tokenizer under the rule, or none at all.
    google_words = google_tokenization().BasicTokenizer(do_lower_case=True).tokenize(PROBE)
    hf_words = hf_legacy.BasicTokenizer(do_lower_case=True).tokenize(PROBE)
    words = google_words if rule == "google" else hf_words
    assert ("\ue000" in vocab) == ("\ue000" in words)
    assert {"i", "love", "it", "!"} <= set(vocab)


@pytest.mark.parametrize("rule", RULES)
def test_export_hub(rule, tiny_model, tmp_path, monkeypatch):
    # The preprocessor's own handling of the rule is tested in test_hub.py;
    # here, that the flag gets there.
    from bert_tf import hub

    calls = []
    monkeypatch.setattr(hub, "export", lambda *args, **kwargs: calls.append(kwargs)
                        or {"mlm": False})
    run_script("export_hub.py", f"--init_checkpoint={tiny_model}",
               f"--export_dir={tmp_path / 'hub'}", "--max_seq_length=16",
               f"--control_chars={rule}")
    [kwargs] = calls
    assert kwargs["control_chars"] == rule


@pytest.mark.parametrize("rule", RULES)
def test_serve_embeddings(rule, tiny_model, monkeypatch):
    from bert_tf import embedding_service

    answers = {}

    def serve_briefly(server):
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            request = urllib.request.Request(
                server.url + "/encode", data=json.dumps({"texts": [PROBE]}).encode(),
                headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=60) as response:
                answers["encode"] = json.loads(response.read())
            with urllib.request.urlopen(server.url + "/health", timeout=60) as response:
                answers["health"] = json.loads(response.read())
        finally:
            server.shutdown()
            thread.join(10)
            server.server_close()
            server.service.close()

    monkeypatch.setattr(embedding_service, "serve_until_signalled", serve_briefly)
    run_script("serve_embeddings.py", f"--init_checkpoint={tiny_model}", "--port=0",
               "--pooling_strategy=none", "--max_seq_len=16", f"--control_chars={rule}")
    [tokens] = answers["encode"]["tokens"]
    assert tokens == ["[CLS]", *reference_tokens(PROBE, rule), "[SEP]"]
    assert answers["health"]["control_chars"] == rule


def _classifier_run(folder, tiny_model, rule):
    """A run_classifier.py-like output folder whose run used `rule`."""
    config = modeling.BertConfig.from_json_file(str(tiny_model / "bert_config.json"))
    classifier = modeling.BertClassifier(modeling.BertEncoder(config), 2)
    classifier({"input_word_ids": tf.zeros([1, 4], tf.int32),
                "input_mask": tf.ones([1, 4], tf.int32),
                "input_type_ids": tf.zeros([1, 4], tf.int32)})
    tf.train.CheckpointManager(tf.train.Checkpoint(model=classifier), str(folder), 1).save()
    (folder / "run_identity.json").write_text(json.dumps(
        {"task_name": "sst-2", "num_labels": 2, "max_seq_length": 16,
         "model": config.to_dict(), "control_chars": rule}))


def test_explain_tokenizes_as_the_run_did_unless_told(tiny_model, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    _classifier_run(run, tiny_model, "huggingface")
    out = tmp_path / "e.json"
    args = [f"--init_checkpoint={tiny_model}", f"--output_dir={run}", f"--text={PROBE}",
            "--ig_steps=2", f"--output_json={out}", f"--output_html={tmp_path / 'e.html'}"]
    run_script("explain.py", *args)
    [explanation] = json.loads(out.read_text(encoding="utf-8"))
    assert explanation["tokens"][1:-1] == reference_tokens(PROBE, "huggingface")
    # The flag, given, wins over the run's setting.
    run_script("explain.py", *args, "--control_chars=google")
    [explanation] = json.loads(out.read_text(encoding="utf-8"))
    assert explanation["tokens"][1:-1] == reference_tokens(PROBE, "google")
