"""TF-Hub export and loading.

The exported SavedModels are loaded in a fresh process with nothing but
`tensorflow_hub` and `tensorflow_text` (as a TF-Hub user would), and what
they compute is checked against independent references: Google's
`FullTokenizer` and Google's packing rules written out in plain Python,
the vocabulary file itself, and the Keras model restored from the Google
checkpoint the export came from.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SEQ_LENGTH = 48  # the preprocessor's default length in the tiny export
NUM_SENTENCES = 1000
# Text on which Google's control-character rule and Hugging Face's differ.
ODD_TEXT = ["I love it \U0001FAE8!", "private\ue000use \U000F0000 unassigned\u0378",
            "zero\u200bwidth soft\u00adhyphen \x07bell \ufdd0\uffff end"]


def _python(code: str, env: dict | None = None, timeout: int = 300, cwd=REPO) -> str:
    """Runs `code` in a fresh interpreter; returns stdout, fails with stderr."""
    full_env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", **(env or {}))
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd,
                            env=full_env, capture_output=True, text=True, timeout=timeout,
                            check=False)
    assert result.returncode == 0, result.stderr[-4000:]
    return result.stdout


def _sentences(sst2_data: Path, count: int) -> list[str]:
    lines = (sst2_data / "train.tsv").read_text(encoding="utf-8").splitlines()
    return [line.split("\t")[0] for line in lines[1:count + 1]]


@pytest.fixture(scope="module")
def vocab_file(repo_data) -> Path:
    return repo_data / "vocab" / "bert_uncased_vocab.txt"


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory, vocab_file) -> Path:
    """A random 2-layer BERT with pretraining heads, in Google's release layout."""
    from bert_tf import checkpoints, modeling

    folder = tmp_path_factory.mktemp("tiny_bert")
    config = modeling.BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2,
                                 num_attention_heads=4, intermediate_size=64,
                                 max_position_embeddings=64)
    config.to_json_file(str(folder / "bert_config.json"))
    (folder / "vocab.txt").write_bytes(vocab_file.read_bytes())
    checkpoints.save_google_checkpoint(modeling.BertPretrainer(config),
                                       str(folder / "bert_model.ckpt"))
    return folder


@pytest.fixture(scope="module")
def tiny_export(tiny_checkpoint, tmp_path_factory) -> Path:
    from bert_tf import hub, pretrained

    export_dir = tmp_path_factory.mktemp("hub") / "tiny"
    source = pretrained.resolve(str(tiny_checkpoint), do_lower_case=True)
    result = hub.export(source, str(export_dir),
                        seq_length=SEQ_LENGTH)
    assert result == {"mlm": True}
    return export_dir


@pytest.fixture(scope="module")
def fresh_process(tiny_export, sst2_data, tmp_path_factory):
    """Everything the exported models compute, from a process that knows no bert_tf."""
    work = tmp_path_factory.mktemp("fresh")
    (work / "sentences.json").write_text(json.dumps(_sentences(sst2_data, NUM_SENTENCES)))
    (work / "odd.json").write_text(json.dumps(ODD_TEXT))
    _python(f"""
        import json
        import numpy as np
        import tensorflow as tf
        import tensorflow_hub as hub
        import tensorflow_text  # registers the preprocessor's ops

        work = {str(work)!r}
        pre = hub.load({str(tiny_export / "preprocessor")!r})
        enc = hub.load({str(tiny_export / "encoder")!r})
        sentences = tf.constant(json.load(open(work + "/sentences.json")))
        half = {NUM_SENTENCES // 2}
        tokens = pre.tokenize(sentences)
        out = {{"tokens": tokens.to_list(),
               "special": {{k: int(v) for k, v in pre.tokenize.get_special_tokens_dict().items()}},
               "assets": [open(m.vocab_file.asset_path.numpy(), "rb").read().decode()
                          for m in (pre, enc)],
               "lower": [bool(m.do_lower_case.numpy()) for m in (pre, enc)],
               "has_mlm": hasattr(enc, "mlm"),
               "control_chars": pre.control_chars.numpy().decode(),
               "odd_tokens": pre.tokenize(
                   tf.constant(json.load(open(work + "/odd.json")))).to_list()}}
        arrays = {{}}
        for key, value in pre(sentences).items():
            arrays["root_" + key] = value.numpy()
        pair = pre.bert_pack_inputs([tokens[:half], tokens[half:]], seq_length=24)
        for key, value in pair.items():
            arrays["pair_" + key] = value.numpy()
        single = pre.bert_pack_inputs([tokens.merge_dims(1, 2)], seq_length=tf.constant(10))
        for key, value in single.items():
            arrays["single_" + key] = value.numpy()
        inputs = {{k: v[:16] for k, v in pre(sentences).items()}}
        outputs = enc(inputs)
        arrays["pooled_output"] = outputs["pooled_output"].numpy()
        arrays["default"] = outputs["default"].numpy()
        arrays["sequence_output"] = outputs["sequence_output"].numpy()
        arrays["encoder_outputs"] = np.stack([x.numpy() for x in outputs["encoder_outputs"]])
        arrays["training_pooled"] = enc(inputs, training=True)["pooled_output"].numpy()
        positions = tf.constant([[1, 2, 3]] * 16)
        arrays["positions"] = positions.numpy()
        arrays["mlm_logits"] = enc.mlm(dict(inputs, masked_lm_positions=positions))["mlm_logits"].numpy()
        for key, value in inputs.items():
            arrays["inputs_" + key] = value.numpy()
        np.savez(work + "/arrays.npz", **arrays)
        json.dump(out, open(work + "/out.json", "w"))
    """)
    return (json.loads((work / "out.json").read_text()),
            dict(np.load(work / "arrays.npz")),
            _sentences(sst2_data, NUM_SENTENCES))


@pytest.fixture(scope="module")
def full_tokenizer(vocab_file):
    from bert_tf import tokenization

    return tokenization.FullTokenizer(str(vocab_file), do_lower_case=True)


def google_pack(tokenizer, tokens_a, tokens_b, seq_length):
    """Google's run_classifier packing, step by step, in plain Python."""
    a, b = list(tokens_a), (list(tokens_b) if tokens_b is not None else None)
    if b is None:
        a = a[:seq_length - 2]
    else:
        while len(a) + len(b) > seq_length - 3:
            (a if len(a) > len(b) else b).pop()
    tokens = ["[CLS]", *a, "[SEP]"]
    types = [0] * len(tokens)
    if b is not None:
        tokens += [*b, "[SEP]"]
        types += [1] * (len(b) + 1)
    ids = tokenizer.convert_tokens_to_ids(tokens)
    padding = seq_length - len(ids)
    return ids + [0] * padding, [1] * len(ids) + [0] * padding, types + [0] * padding


def test_tokenize_gives_full_tokenizer_pieces_per_word(fresh_process, full_tokenizer):
    out, _, sentences = fresh_process
    for sentence, words in zip(sentences, out["tokens"]):
        expected = [full_tokenizer.convert_tokens_to_ids(
                        full_tokenizer.wordpiece_tokenizer.tokenize(word))
                    for word in full_tokenizer.basic_tokenizer.tokenize(sentence)]
        assert words == expected, sentence


def test_root_and_bert_pack_inputs_pack_like_google(fresh_process, full_tokenizer):
    _, arrays, sentences = fresh_process
    tokens = [full_tokenizer.tokenize(s) for s in sentences]
    half = len(sentences) // 2
    cases = [("root", [(t, None) for t in tokens], SEQ_LENGTH),
             ("pair", list(zip(tokens[:half], tokens[half:])), 24),
             ("single", [(t, None) for t in tokens], 10)]
    for name, segments, seq_length in cases:
        expected = [google_pack(full_tokenizer, a, b, seq_length) for a, b in segments]
        ids, mask, types = (np.array(x) for x in zip(*expected))
        np.testing.assert_array_equal(arrays[f"{name}_input_word_ids"], ids, err_msg=name)
        np.testing.assert_array_equal(arrays[f"{name}_input_mask"], mask, err_msg=name)
        np.testing.assert_array_equal(arrays[f"{name}_input_type_ids"], types, err_msg=name)
    # The pairs include truncation of both segments and of one only.
    assert (arrays["pair_input_mask"].sum(1) == 24).sum() > 50


def test_assets_and_special_tokens(fresh_process, vocab_file):
    out, _, _ = fresh_process
    vocab = vocab_file.read_text(encoding="utf-8")
    assert out["assets"] == [vocab, vocab]
    assert out["lower"] == [True, True]
    lines = vocab.splitlines()
    assert out["special"] == {
        "vocab_size": len(lines), "start_of_sequence_id": lines.index("[CLS]"),
        "end_of_segment_id": lines.index("[SEP]"), "padding_id": lines.index("[PAD]"),
        "mask_id": lines.index("[MASK]")}


def test_preprocessor_follows_googles_control_character_rule(fresh_process, vocab_file):
    from _google_tokenization import google_full_tokenizer

    out, _, _ = fresh_process
    assert out["control_chars"] == "google"
    google = google_full_tokenizer(vocab_file, do_lower_case=True)
    expected = [[google.convert_tokens_to_ids(google.wordpiece_tokenizer.tokenize(word))
                 for word in google.basic_tokenizer.tokenize(text)] for text in ODD_TEXT]
    assert out["odd_tokens"] == expected


def test_preprocessor_with_hugging_face_rule_keeps_it(vocab_file, tmp_path):
    import tensorflow as tf
    from transformers.models.bert import tokenization_bert_legacy as hf_legacy

    from bert_tf import hub

    root = hub.preprocessor_module(str(vocab_file), True, seq_length=16, max_seq_length=64,
                                   control_chars="huggingface")
    tf.saved_model.save(root, str(tmp_path / "preprocessor"))
    loaded = hub.load(str(tmp_path / "preprocessor"))
    assert loaded.control_chars.numpy().decode() == "huggingface"
    vocab = hf_legacy.load_vocab(str(vocab_file))
    basic = hf_legacy.BasicTokenizer(do_lower_case=True)
    wordpiece = hf_legacy.WordpieceTokenizer(vocab, unk_token="[UNK]", max_input_chars_per_word=200)
    expected = [[[vocab[p] for p in wordpiece.tokenize(word)] for word in basic.tokenize(text)]
                for text in ODD_TEXT]
    assert loaded.tokenize(tf.constant(ODD_TEXT)).to_list() == expected
    with pytest.raises(ValueError, match="control_chars"):
        hub.preprocessor_module(str(vocab_file), True, control_chars="hf")


def test_encoder_and_mlm_match_the_checkpoint_model(fresh_process, tiny_checkpoint):
    from bert_tf import checkpoints, modeling

    out, arrays, _ = fresh_process
    config = modeling.BertConfig.from_json_file(str(tiny_checkpoint / "bert_config.json"))
    model = modeling.BertPretrainer(config)
    checkpoints.load_google_checkpoint(model, str(tiny_checkpoint / "bert_model.ckpt"),
                                       required=("bert/", "cls/"))
    inputs = {k: arrays["inputs_" + k] for k in modeling.ENCODER_INPUTS}
    expected = dict(model.encoder(inputs, training=False))
    expected["masked_lm_logits"] = model(dict(inputs, masked_lm_positions=arrays["positions"]),
                                         training=False)["masked_lm_logits"]
    for key in ("pooled_output", "sequence_output"):
        np.testing.assert_allclose(arrays[key], expected[key].numpy(), atol=1e-5, err_msg=key)
    np.testing.assert_allclose(arrays["default"], expected["pooled_output"].numpy(), atol=1e-5)
    np.testing.assert_allclose(arrays["encoder_outputs"],
                               np.stack([x.numpy() for x in expected["encoder_outputs"]]),
                               atol=1e-5)
    assert out["has_mlm"]
    np.testing.assert_allclose(arrays["mlm_logits"], expected["masked_lm_logits"].numpy(),
                               atol=1e-5)
    # training=True reaches the dropout layers.
    assert np.abs(arrays["training_pooled"] - arrays["pooled_output"]).max() > 1e-3


def test_keras_layer_fine_tunes_under_legacy_keras(tiny_export):
    """hub.KerasLayer, the TF-Hub way, works with tf_keras (Keras 2)."""
    report = _python(f"""
        import json
        import numpy as np
        import tensorflow as tf
        import tensorflow_hub as hub

        layer = hub.KerasLayer({str(tiny_export / "encoder")!r}, trainable=True)
        names = ("input_word_ids", "input_mask", "input_type_ids")
        inputs = {{n: tf.keras.layers.Input(shape=(None,), dtype=tf.int32, name=n) for n in names}}
        logits = tf.keras.layers.Dense(2)(layer(inputs)["pooled_output"])
        model = tf.keras.Model(inputs, logits)
        model.compile(tf.keras.optimizers.Adam(1e-3),
                      tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        rng = np.random.default_rng(0)
        ids = rng.integers(1000, 2000, size=(16, 12)).astype("int32")
        x = {{"input_word_ids": ids, "input_mask": np.ones_like(ids),
              "input_type_ids": np.zeros_like(ids)}}
        y = np.array([0, 1] * 8)
        before = [v.numpy().copy() for v in layer.trainable_weights]
        history = model.fit(x, y, batch_size=16, epochs=8, verbose=0).history["loss"]
        changed = [bool(np.any(b != v.numpy())) for b, v in zip(before, layer.trainable_weights)]
        print(json.dumps({{"loss": history, "changed": changed,
                          "keras": type(model).__module__}}))
    """, env={"TF_USE_LEGACY_KERAS": "1"})
    result = json.loads(report.strip().splitlines()[-1])
    assert result["keras"].startswith("tf_keras")
    assert len(result["changed"]) == 39 and all(result["changed"])
    assert result["loss"][-1] < result["loss"][0] - 0.05


def test_hub_encoder_trains_with_adamw_under_keras3(tiny_export, tiny_checkpoint):
    import tensorflow as tf

    from bert_tf import checkpoints, hub, modeling, optimization

    encoder = hub.HubEncoder(str(tiny_export / "encoder"))
    assert encoder.vocab_file.endswith("vocab.txt") and encoder.do_lower_case is True
    reference = modeling.BertEncoder(
        modeling.BertConfig.from_json_file(str(tiny_checkpoint / "bert_config.json")))
    checkpoints.load_google_checkpoint(reference, str(tiny_checkpoint / "bert_model.ckpt"))
    rng = np.random.default_rng(1)
    ids = rng.integers(1000, 2000, size=(8, 12)).astype("int32")
    inputs = {"input_word_ids": ids, "input_mask": np.ones_like(ids),
              "input_type_ids": np.zeros_like(ids)}
    np.testing.assert_allclose(encoder(inputs)["pooled_output"].numpy(),
                               reference(inputs)["pooled_output"].numpy(), atol=1e-5)

    classifier = modeling.BertClassifier(encoder, num_labels=2)
    assert len(classifier.trainable_variables) == len(reference.trainable_variables) + 2
    optimizer = optimization.create_optimizer("adamw", 1e-3, num_train_steps=20,
                                              num_warmup_steps=2)
    labels = np.array([0, 1] * 4, "int32")
    before = [v.numpy().copy() for v in encoder.trainable_variables]

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            logits = classifier(inputs, training=True)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
        grads = tape.gradient(loss, classifier.trainable_variables)
        optimizer.apply([tf.convert_to_tensor(g) for g in grads], classifier.trainable_variables)
        return loss

    losses = [float(step()) for _ in range(10)]
    assert losses[-1] < losses[0] - 0.1
    assert all(np.any(b != v.numpy()) for b, v in zip(before, encoder.trainable_variables))
    # The optimizer updated the SavedModel's own variables: its function sees them.
    after = encoder(inputs)["pooled_output"].numpy()
    assert np.abs(after - reference(inputs)["pooled_output"].numpy()).max() > 1e-3


def test_run_classifier_with_hub_module_handle(tiny_export, tmp_path):
    """Vocabulary and case come from the SavedModel; no checkpoint is read."""
    data = tmp_path / "data"
    data.mkdir()
    train = (REPO / "data" / "sst2" / "train.tsv").read_text(encoding="utf-8").splitlines()
    dev = (REPO / "data" / "sst2" / "dev.tsv").read_text(encoding="utf-8").splitlines()
    (data / "train.tsv").write_text("\n".join(train[:65]) + "\n", encoding="utf-8")
    (data / "dev.tsv").write_text("\n".join(dev[:41]) + "\n", encoding="utf-8")
    output = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "run_classifier.py", f"--bert_hub_module_handle={tiny_export}/encoder",
         "--task_name=sst-2", "--do_train", "--do_eval",
         f"--data_dir={data}", f"--output_dir={output}", "--max_seq_length=32",
         "--train_batch_size=16", "--num_train_epochs=2"],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert result.returncode == 0, result.stderr[-4000:]
    results = dict(line.split(" = ") for line in
                   (output / "eval_results.txt").read_text().splitlines())
    assert int(results["global_step"]) == 8
    assert 0.0 <= float(results["eval_accuracy"]) <= 1.0


def test_extract_features_with_hub_encoder(tiny_export, tiny_checkpoint, tmp_path):
    from bert_tf import checkpoints, feature_extraction, modeling, tokenization

    text = tmp_path / "input.txt"
    text.write_text("Hello, TF-Hub world!\nThe cat sat. ||| On the mat.\n", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "extract_features.py", f"--bert_hub_module_handle={tiny_export}/encoder",
         f"--input_file={text}", f"--output_file={tmp_path / 'hub.jsonl'}", "--layers=-1,-2",
         "--max_seq_length=16"],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert result.returncode == 0, result.stderr[-4000:]

    encoder = modeling.BertEncoder(
        modeling.BertConfig.from_json_file(str(tiny_checkpoint / "bert_config.json")))
    checkpoints.load_google_checkpoint(encoder, str(tiny_checkpoint / "bert_model.ckpt"))
    tokenizer = tokenization.FullTokenizer(str(tiny_checkpoint / "vocab.txt"), True)
    feature_extraction.extract(encoder, tokenizer, str(text), str(tmp_path / "ckpt.jsonl"),
                               [-1, -2], max_seq_length=16)
    hub_lines = (tmp_path / "hub.jsonl").read_text().splitlines()
    ckpt_lines = (tmp_path / "ckpt.jsonl").read_text().splitlines()
    assert len(hub_lines) == len(ckpt_lines) == 2
    for hub_line, ckpt_line in zip(hub_lines, ckpt_lines):
        got, want = json.loads(hub_line), json.loads(ckpt_line)
        assert [t["token"] for t in got["features"]] == [t["token"] for t in want["features"]]
        for g, w in zip(got["features"], want["features"]):
            for gl, wl in zip(g["layers"], w["layers"]):
                assert gl["index"] == wl["index"]
                np.testing.assert_allclose(gl["values"], wl["values"], atol=2e-5)


def test_export_rejects_bad_arguments(tiny_checkpoint, tmp_path):
    from bert_tf import hub, pretrained

    source = pretrained.resolve(str(tiny_checkpoint))
    with pytest.raises(ValueError, match="do_lower_case"):
        hub.export(source, str(tmp_path / "x"))
    source.do_lower_case = True
    with pytest.raises(ValueError, match="seq_length"):
        hub.export(source, str(tmp_path / "x"), seq_length=65)
    source.vocab_file = None
    with pytest.raises(ValueError, match="vocab"):
        hub.export(source, str(tmp_path / "x"))
    assert not (tmp_path / "x").exists()
    with pytest.raises(FileNotFoundError, match="no-such-folder"):
        hub.HubEncoder(str(tmp_path / "no-such-folder"))


def test_export_hub_script_reports_bad_input(tmp_path):
    result = subprocess.run(
        [sys.executable, "export_hub.py", f"--init_checkpoint={tmp_path / 'missing'}",
         f"--export_dir={tmp_path / 'out'}"],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert result.returncode == 2
    assert "missing" in result.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "out").exists()
