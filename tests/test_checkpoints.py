"""Checkpoint interop: Google TF1 names (written by TF1's own Saver as the
independent reference), Hugging Face folders, our TF2 checkpoints."""

import re

import numpy as np
import pytest
import tensorflow as tf

from bert_tf import checkpoints, modeling, pretrained


TINY = modeling.BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2,
                           num_attention_heads=4, intermediate_size=37,
                           max_position_embeddings=64, type_vocab_size=2,
                           hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                           hidden_act="gelu_exact")


def _google_names_from_hf(state_dict):
    """Hugging Face tensor name -> Google TF1 name, written from Google's
    published checkpoint layout independently of bert_tf's own table."""
    out = {}
    for name, value in state_dict.items():
        value = value.numpy()
        if name.endswith("position_ids") or name == "cls.predictions.decoder.weight":
            continue
        if not name.startswith(("bert.", "cls.", "classifier.")):
            name = "bert." + name  # a bare BertModel's file
        g = name.replace("bert.", "bert/", 1).replace(".", "/")
        g = re.sub(r"layer/(\d+)", r"layer_\1", g)
        g = g.replace("cls/predictions/bias", "cls/predictions/output_bias")
        g = g.replace("cls/predictions/decoder/bias", "cls/predictions/output_bias")
        if g.startswith("cls/seq_relationship/"):
            g = g.replace("/weight", "/output_weights").replace("/bias", "/output_bias")
        elif g.startswith("classifier/"):
            g = g.replace("classifier/weight", "output_weights").replace("classifier/bias", "output_bias")
        elif "LayerNorm" in g:
            g = g.replace("/weight", "/gamma").replace("/bias", "/beta")
        elif "embeddings/" in g and g.endswith("_embeddings/weight"):
            g = g[: -len("/weight")]
        elif g.endswith("/weight"):
            g, value = g[: -len("weight")] + "kernel", value.T
        out[g] = value
    return out


def _write_with_tf1_saver(prefix, named_values, adam_slots=True, global_step=1234):
    """A checkpoint as Google's TF1 code writes it (graph-mode Saver)."""
    graph = tf.Graph()
    with graph.as_default():
        variables = {}
        for name, value in named_values.items():
            variables[name] = tf.compat.v1.Variable(value, name=name)
            if adam_slots:
                for slot in ("adam_m", "adam_v"):
                    variables[f"{name}/{slot}"] = tf.compat.v1.Variable(
                        np.full_like(value, 0.5), name=f"{name}/{slot}")
        if global_step is not None:
            variables["global_step"] = tf.compat.v1.Variable(
                np.int64(global_step), name="global_step")
        saver = tf.compat.v1.train.Saver(var_list=variables)
        with tf.compat.v1.Session(graph=graph) as session:
            session.run(tf.compat.v1.global_variables_initializer())
            saver.save(session, prefix, write_meta_graph=False)
    return prefix


def _read_with_tf1_saver(prefix, names_and_shapes):
    graph = tf.Graph()
    with graph.as_default():
        variables = {n: tf.compat.v1.Variable(tf.zeros(s), name=n) for n, s in names_and_shapes.items()}
        saver = tf.compat.v1.train.Saver(var_list=variables)
        with tf.compat.v1.Session(graph=graph) as session:
            saver.restore(session, prefix)
            return session.run(variables)


def _hf_tiny(cls, **kwargs):
    import torch
    import transformers
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=37, max_position_embeddings=64, type_vocab_size=2, **kwargs)
    return cls(config).eval()


def _inputs():
    rng = np.random.default_rng(0)
    ids = rng.integers(1, 99, size=(2, 9)).astype(np.int32)
    mask = np.ones_like(ids)
    mask[1, 6:] = 0
    return {"input_word_ids": ids, "input_mask": mask, "input_type_ids": np.zeros_like(ids)}


def test_google_pretraining_checkpoint_with_adam_slots_loads(tmp_path):
    import torch
    import transformers
    reference = _hf_tiny(transformers.BertForPreTraining)
    prefix = _write_with_tf1_saver(str(tmp_path / "bert_model.ckpt"),
                                   _google_names_from_hf(reference.state_dict()))
    # Into an encoder: the cls/* heads and the Adam slots are not an error.
    encoder = modeling.BertEncoder(TINY)
    report = checkpoints.load_google_checkpoint(encoder, prefix)
    assert not report.missing and len(report.restored) == len(encoder.checkpoint_map())
    inputs = _inputs()
    with torch.no_grad():
        expected = reference.bert(input_ids=torch.tensor(inputs["input_word_ids"]).long(),
                                  attention_mask=torch.tensor(inputs["input_mask"]).long())
    np.testing.assert_allclose(encoder(inputs)["pooled_output"], expected.pooler_output, atol=1e-5)
    # Into the pretrainer: every head weight is used.
    model = modeling.BertPretrainer(TINY)
    report = checkpoints.load_google_checkpoint(model, prefix, required=("bert/", "cls/"))
    assert not report.missing and not report.unexpected


def test_google_classifier_checkpoint_restores_output_layer(tmp_path):
    import torch
    import transformers
    reference = _hf_tiny(transformers.BertForSequenceClassification, num_labels=3)
    prefix = _write_with_tf1_saver(str(tmp_path / "model.ckpt-300"),
                                   _google_names_from_hf(reference.state_dict()), adam_slots=False)
    model = modeling.BertClassifier(modeling.BertEncoder(TINY), num_labels=3)
    checkpoints.load_google_checkpoint(model, prefix, required=("bert/", "output_"))
    inputs = _inputs()
    with torch.no_grad():
        expected = reference(input_ids=torch.tensor(inputs["input_word_ids"]).long(),
                             attention_mask=torch.tensor(inputs["input_mask"]).long()).logits
    np.testing.assert_allclose(model(inputs), expected.numpy(), atol=1e-5)


def test_our_google_checkpoint_is_readable_by_tf1_saver(tmp_path):
    model = modeling.BertPretrainer(TINY)
    prefix = checkpoints.save_google_checkpoint(model, str(tmp_path / "out" / "bert_model.ckpt"),
                                                global_step=7)
    table = model.checkpoint_map()
    restored = _read_with_tf1_saver(prefix, {n: v.shape for n, v in table.items()})
    for name, variable in table.items():
        np.testing.assert_array_equal(restored[name], variable.numpy(), err_msg=name)
    assert tf.train.latest_checkpoint(str(tmp_path / "out")).endswith("bert_model.ckpt")


def test_round_trip_hugging_face_to_google_to_ours_is_exact(minilm_dir, tmp_path):
    import torch
    hf_dir = str(minilm_dir / "huggingface")
    config = checkpoints.read_hf_config(hf_dir)
    first = modeling.BertEncoder(config)
    checkpoints.load_hf_weights(first, hf_dir)
    prefix = checkpoints.save_google_checkpoint(first, str(tmp_path / "bert_model.ckpt"))
    second = modeling.BertEncoder(config)
    checkpoints.load_google_checkpoint(second, prefix)
    from safetensors.numpy import load_file
    original = load_file(f"{hf_dir}/model.safetensors")
    assert len(first.checkpoint_map()) == len([k for k in original if "position_ids" not in k])
    for name, variable in second.checkpoint_map().items():
        np.testing.assert_array_equal(variable.numpy(), first.checkpoint_map()[name].numpy(),
                                      err_msg=name)
    # And identical to the original file's tensors, independently of our name table.
    ours = _google_names_from_hf({k: torch.tensor(v) for k, v in original.items()})
    for name, value in ours.items():
        np.testing.assert_array_equal(second.checkpoint_map()[name].numpy(), value, err_msg=name)


def test_tf2_pretraining_checkpoint_initialises_a_classifier(tmp_path):
    pretrainer = modeling.BertPretrainer(TINY)
    path = tf.train.Checkpoint(model=pretrainer).write(str(tmp_path / "ckpt-1"))
    classifier = modeling.BertClassifier(modeling.BertEncoder(TINY), num_labels=2)
    checkpoints.load_checkpoint(classifier, path)
    for name, variable in classifier.encoder.checkpoint_map().items():
        np.testing.assert_array_equal(variable.numpy(),
                                      pretrainer.encoder.checkpoint_map()[name].numpy())


def test_missing_checkpoint_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="no_such.ckpt"):
        checkpoints.load_checkpoint(modeling.BertEncoder(TINY), str(tmp_path / "no_such.ckpt"))


def test_mismatched_shapes_name_every_variable_and_both_shapes(tmp_path):
    model = modeling.BertEncoder(TINY)
    prefix = checkpoints.save_google_checkpoint(model, str(tmp_path / "bert_model.ckpt"))
    wider = modeling.BertEncoder(modeling.BertConfig(
        vocab_size=99, hidden_size=48, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=37, max_position_embeddings=64, type_vocab_size=2))
    with pytest.raises(checkpoints.CheckpointError) as error:
        checkpoints.load_google_checkpoint(wider, prefix)
    message = str(error.value)
    assert "bert/embeddings/word_embeddings: checkpoint has [99, 32], model expects [99, 48]" in message
    assert "bert/encoder/layer_1/output/dense/kernel" in message
    deeper = modeling.BertEncoder(modeling.BertConfig(
        vocab_size=99, hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
        intermediate_size=37, max_position_embeddings=64, type_vocab_size=2))
    with pytest.raises(checkpoints.CheckpointError, match="missing.*\n.*layer_2"):
        checkpoints.load_google_checkpoint(deeper, prefix)


def test_resolver_accepts_every_layout(minilm_dir, tmp_path):
    by_name = pretrained.resolve("minilm-l6-h384-uncased")
    assert by_name.config.hidden_size == 384 and by_name.do_lower_case is True
    assert by_name.vocab_file.endswith("vocab.txt") and by_name.format == "google"
    hf = pretrained.resolve(str(minilm_dir / "huggingface"))
    assert hf.format == "hf" and hf.config == by_name.config and hf.do_lower_case is True
    prefix = pretrained.resolve(str(minilm_dir / "bert_model.ckpt"))
    assert prefix.format == "google" and prefix.config == by_name.config
    encoder = modeling.BertEncoder(TINY)
    tf.train.CheckpointManager(tf.train.Checkpoint(model=encoder), str(tmp_path), 1).save()
    TINY.to_json_file(str(tmp_path / "bert_config.json"))
    own = pretrained.resolve(str(tmp_path))
    assert own.format == "object" and own.config == TINY
    with pytest.raises(FileNotFoundError, match="nothing_here"):
        pretrained.resolve(str(tmp_path / "nothing_here"), bert_config_file=None)
