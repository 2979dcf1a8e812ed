"""GPT-2: logits against Hugging Face PyTorch GPT2LMHeadModel on the same
random weights (read from and written to Hugging Face folders), OpenAI's TF
checkpoint layout written and read by TF1's own Saver, configs and Keras
serialization."""

import json
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from bert_tf import bpe_learning, checkpoints, gpt2, gpt2_checkpoints
from conftest import TEST_DATA

N_CTX = 48


def _lines(name, limit=None):
    text = (TEST_DATA / "corpora" / "en" / name).read_text(encoding="utf-8")
    lines = [line for line in text.split("\n") if line.strip()]
    return lines[:limit] if limit else lines


@pytest.fixture(scope="module")
def tokenizer():
    # A real English BPE vocabulary, learned from Genesis.
    return bpe_learning.learn_bpe(_lines("kjv.txt"), vocab_size=600)


@pytest.fixture(scope="module")
def hf_model(tokenizer):
    import torch
    import transformers
    torch.manual_seed(0)
    config = transformers.GPT2Config(
        vocab_size=tokenizer.vocab_size, n_positions=N_CTX, n_embd=32, n_head=4, n_layer=2,
        bos_token_id=tokenizer.eot_id, eos_token_id=tokenizer.eot_id)
    return transformers.GPT2LMHeadModel(config).eval()


@pytest.fixture(scope="module")
def hf_folder(hf_model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("hf_gpt2")
    hf_model.save_pretrained(folder)
    return str(folder)


def _real_text_batch(tokenizer):
    """Two Wikipedia sentences of different lengths, right-padded, with masks."""
    sentences = [s for s in _lines("wiki.txt", 200) if 20 < len(tokenizer.encode(s)) < N_CTX]
    rows = [tokenizer.encode(sentences[0]), tokenizer.encode(sentences[1])[:15]]
    length = max(map(len, rows))
    ids = np.zeros([2, length], np.int64)
    mask = np.zeros([2, length], np.int64)
    for i, row in enumerate(rows):
        ids[i, :len(row)], mask[i, :len(row)] = row, 1
    return ids, mask


def _hf_logits(hf_model, ids, mask):
    import torch
    with torch.no_grad():
        return hf_model(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask)).logits.numpy()


def _max_diff_on_real_tokens(ours, reference, mask):
    real = mask.astype(bool)
    return float(np.abs(np.asarray(ours)[real] - reference[real]).max())


def test_hugging_face_folder_gives_the_same_logits_on_real_text(tokenizer, hf_model, hf_folder):
    model = gpt2_checkpoints.load_pretrained(hf_folder)
    assert model.config.n_vocab == tokenizer.vocab_size and model.config.n_ctx == N_CTX
    ids, mask = _real_text_batch(tokenizer)
    expected = _hf_logits(hf_model, ids, mask)
    got = model({"token_ids": ids, "padding_mask": mask})
    assert _max_diff_on_real_tokens(got, expected, mask) < 1e-5


def test_unpadded_batch_in_a_graph_gives_hugging_face_logits(tokenizer, hf_model, hf_folder):
    # The training path: a batch of full windows, no padding mask, inside a
    # tf.function, where the attention's matmul, scale and bias are fused.
    model = gpt2_checkpoints.load_pretrained(hf_folder)
    ids = np.array([tokenizer.encode(s)[:20] for s in _lines("wiki.txt", 200)
                    if len(tokenizer.encode(s)) >= 20][:3])
    expected = _hf_logits(hf_model, ids, np.ones_like(ids))
    got = tf.function(lambda x: model(x, training=False))(tf.constant(ids))
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_our_hugging_face_export_loads_in_transformers(tokenizer, tmp_path):
    import transformers
    config = gpt2.GPT2Config(n_vocab=tokenizer.vocab_size, n_ctx=N_CTX, n_embd=32, n_head=4,
                             n_layer=2, n_inner=40)
    model = gpt2.GPT2LM(config)
    # Non-trivial norms and biases, so a mixed-up name cannot pass.
    rng = np.random.default_rng(1)
    for variable in model.checkpoint_map().values():
        variable.assign(variable + rng.normal(0, 0.05, variable.shape).astype(np.float32))
    gpt2_checkpoints.save_hf_folder(model, str(tmp_path / "export"), eos_token_id=tokenizer.eot_id)
    reference = transformers.GPT2LMHeadModel.from_pretrained(str(tmp_path / "export")).eval()
    ids, mask = _real_text_batch(tokenizer)
    expected = _hf_logits(reference, ids, mask)
    assert _max_diff_on_real_tokens(model({"token_ids": ids, "padding_mask": mask}),
                                    expected, mask) < 1e-5
    assert reference.config.n_inner == 40 and reference.config.eos_token_id == tokenizer.eot_id


def _openai_names_from_hf(state_dict):
    """Hugging Face tensor name -> OpenAI variable name and value, from
    OpenAI's published layout (gpt-2's model.py), independent of bert_tf."""
    out = {}
    for name, value in state_dict.items():
        value = value.numpy()
        if name == "lm_head.weight" or re.search(r"\.attn\.(masked_)?bias$", name):
            continue
        name = name.removeprefix("transformer.")
        name = re.sub(r"^h\.(\d+)\.", r"h\1.", name)
        scope, leaf = name.rsplit(".", 1)
        scope = "model/" + scope.replace(".", "/")
        if scope in ("model/wte", "model/wpe"):
            out[scope] = value
        elif scope.endswith(("ln_1", "ln_2", "ln_f")):
            out[scope + ("/g" if leaf == "weight" else "/b")] = value
        elif leaf == "weight":  # conv1d: [1, nx, nf]
            out[scope + "/w"] = value[np.newaxis]
        else:
            out[scope + "/b"] = value
    return out


def _write_with_tf1_saver(prefix, named_values):
    graph = tf.Graph()
    with graph.as_default():
        variables = {n: tf.compat.v1.Variable(v, name=n) for n, v in named_values.items()}
        saver = tf.compat.v1.train.Saver(var_list=variables)
        with tf.compat.v1.Session(graph=graph) as session:
            session.run(tf.compat.v1.global_variables_initializer())
            saver.save(session, prefix, write_meta_graph=False)


def _read_with_tf1_saver(prefix, names_and_shapes):
    graph = tf.Graph()
    with graph.as_default():
        variables = {n: tf.compat.v1.Variable(tf.zeros(s), name=n)
                     for n, s in names_and_shapes.items()}
        saver = tf.compat.v1.train.Saver(var_list=variables)
        with tf.compat.v1.Session(graph=graph) as session:
            saver.restore(session, prefix)
            return session.run(variables)


def test_openai_layout_checkpoint_loads(tokenizer, hf_model, tmp_path):
    folder = tmp_path / "124M"
    folder.mkdir()
    named = _openai_names_from_hf(hf_model.state_dict())
    assert named["model/h0/attn/c_attn/w"].shape == (1, 32, 96)
    _write_with_tf1_saver(str(folder / "model.ckpt"), named)
    hparams = {"n_vocab": tokenizer.vocab_size, "n_ctx": N_CTX, "n_embd": 32, "n_head": 4,
               "n_layer": 2}
    (folder / "hparams.json").write_text(json.dumps(hparams))
    model = gpt2_checkpoints.load_pretrained(str(folder))
    ids, mask = _real_text_batch(tokenizer)
    assert _max_diff_on_real_tokens(model({"token_ids": ids, "padding_mask": mask}),
                                    _hf_logits(hf_model, ids, mask), mask) < 1e-5


def test_our_openai_checkpoint_is_readable_by_tf1_saver(tokenizer, hf_model, tmp_path):
    model = gpt2.GPT2LM(gpt2.GPT2Config(n_vocab=tokenizer.vocab_size, n_ctx=N_CTX, n_embd=32,
                                        n_head=4, n_layer=2))
    tokenizer.save(str(tmp_path))
    files = {name: str(tmp_path / name) for name in ("encoder.json", "vocab.bpe")}
    prefix = gpt2_checkpoints.save_openai_folder(model, str(tmp_path / "out"), files)
    expected = {n: v for n, v in _openai_names_from_hf(hf_model.state_dict()).items()}
    restored = _read_with_tf1_saver(prefix, {n: v.shape for n, v in expected.items()})
    for name, value in model.checkpoint_map().items():
        np.testing.assert_array_equal(restored[name].reshape(value.shape), value.numpy(),
                                      err_msg=name)
    hparams = json.loads((tmp_path / "out" / "hparams.json").read_text())
    assert hparams == {"n_vocab": tokenizer.vocab_size, "n_ctx": N_CTX, "n_embd": 32,
                       "n_head": 4, "n_layer": 2}
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "checkpoint", "encoder.json", "hparams.json", "model.ckpt.data-00000-of-00001",
        "model.ckpt.index", "vocab.bpe"]
    again = gpt2_checkpoints.load_pretrained(str(tmp_path / "out"))
    ids = np.array([[3, 4, 5, 6]])
    np.testing.assert_array_equal(again(ids), model(ids))


def test_checkpoint_of_another_size_is_refused_naming_the_variable(tokenizer, hf_folder):
    model = gpt2.GPT2LM(gpt2.GPT2Config(n_vocab=tokenizer.vocab_size + 1, n_ctx=N_CTX, n_embd=32, n_head=4,
                                        n_layer=2))
    with pytest.raises(checkpoints.CheckpointError, match=r"model/wte: checkpoint has \[\d+, 32\]"):
        gpt2_checkpoints.load_hf_weights(model, hf_folder)


def test_presets_and_hparams_files(tmp_path):
    small, medium = gpt2.GPT2Config.preset("small"), gpt2.GPT2Config.preset("medium")
    assert (small.n_embd, small.n_head, small.n_layer, small.n_vocab, small.n_ctx) == (
        768, 12, 12, 50257, 1024)
    assert (medium.n_embd, medium.n_head, medium.n_layer, medium.n_inner) == (1024, 16, 24, 4096)
    path = tmp_path / "hparams.json"
    # OpenAI's released hparams.json of the 124M model.
    path.write_text('{"n_vocab": 50257, "n_ctx": 1024, "n_embd": 768, "n_head": 12, "n_layer": 12}')
    assert gpt2.GPT2Config.from_json_file(str(path)) == small
    small.to_json_file(str(tmp_path / "ours.json"))
    assert gpt2.GPT2Config.from_json_file(str(tmp_path / "ours.json")) == small
    path.write_text('{"n_embd": 100, "n_head": 12}')
    with pytest.raises(ValueError, match=re.escape(f"{path}: n_embd 100 is not a multiple")):
        gpt2.GPT2Config.from_json_file(str(path))


def test_keras_save_and_load_keeps_every_layer_and_weight(tmp_path):
    config = gpt2.GPT2Config(n_vocab=50, n_ctx=16, n_embd=16, n_head=2, n_layer=2,
                             layer_norm_epsilon=1e-6)
    model = gpt2.GPT2LM(config)
    ids = np.array([[1, 2, 3, 4, 5]])
    model.save(str(tmp_path / "gpt2.keras"))
    loaded = keras.saving.load_model(str(tmp_path / "gpt2.keras"))
    assert loaded.config == config
    np.testing.assert_array_equal(loaded(ids), model(ids))
    for layer in (model.h0, model.h0.attn, model.h0.mlp):
        clone = type(layer).from_config(layer.get_config())
        assert clone.config == config and clone.name == layer.name


def test_cache_gives_the_logits_of_the_full_sequence():
    model = gpt2.GPT2LM(gpt2.GPT2Config(n_vocab=50, n_ctx=16, n_embd=16, n_head=2, n_layer=2))
    ids = tf.constant([[5, 9, 2, 7, 7, 1]])
    full = model(ids)
    cache = model.empty_cache(1, 8)
    mask = tf.ones([1, 8], tf.int32)
    # A prompt of three tokens, then one token at a time.
    logits, cache = model.call_with_cache(ids[:, :3], tf.range(3)[tf.newaxis], cache, 0, mask)
    steps = [logits]
    for i in range(3, 6):
        logits, cache = model.call_with_cache(ids[:, i:i + 1], [[i]], cache, i, mask)
        steps.append(logits)
    np.testing.assert_allclose(tf.concat(steps, axis=1), full, atol=1e-5)


def test_mixed_precision_logits_stay_float32_and_close():
    config = gpt2.GPT2Config(n_vocab=50, n_ctx=16, n_embd=16, n_head=2, n_layer=2)
    reference = gpt2.GPT2LM(config)
    ids = tf.constant([[5, 9, 2, 7]])
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = gpt2.GPT2LM(config)
        model.set_weights(reference.get_weights())
        logits = model(ids)
        cached, _ = model.call_with_cache(ids, [[0, 1, 2, 3]], model.empty_cache(1, 4), 0,
                                          tf.ones([1, 4]))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert logits.dtype == tf.float32 and model.h0.attn.c_attn.compute_dtype == "bfloat16"
    expected = reference(ids).numpy()
    # bfloat16 keeps 8 bits of mantissa: errors of a few percent of the scale.
    scale = np.abs(expected).max()
    np.testing.assert_allclose(logits, expected, atol=0.05 * scale)
    np.testing.assert_allclose(cached, logits, atol=0.05 * scale)
