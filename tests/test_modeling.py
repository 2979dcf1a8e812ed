"""The Keras encoder and heads against Hugging Face's PyTorch BERT, an
independent implementation, with real and random weights."""

import json
import math

import numpy as np
import pytest
import tensorflow as tf

from bert_tf import checkpoints, modeling



def _sst2_sentences(sst2_data, count):
    lines = (sst2_data / "dev.tsv").read_text(encoding="utf-8").splitlines()[1:]
    return [line.split("\t")[0].strip() for line in lines[:count]]


@pytest.fixture(scope="module")
def minilm(minilm_dir):
    import transformers
    hf_dir = minilm_dir / "huggingface"
    reference = transformers.BertModel.from_pretrained(str(hf_dir)).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(hf_dir))
    config = modeling.BertConfig.from_json_file(str(minilm_dir / "bert_config.json"))
    encoder = modeling.BertEncoder(config)
    checkpoints.load_google_checkpoint(encoder, str(minilm_dir / "bert_model.ckpt"))
    return encoder, reference, tokenizer


def _compare(encoder, reference, batch):
    import torch
    with torch.no_grad():
        expected = reference(**{k: torch.tensor(v) for k, v in batch.items()},
                             output_hidden_states=True)
    ours = encoder({"input_word_ids": batch["input_ids"], "input_mask": batch["attention_mask"],
                    "input_type_ids": batch["token_type_ids"]})
    real = batch["attention_mask"].astype(bool)
    diffs = {"pooled_output": np.abs(expected.pooler_output.numpy()
                                     - ours["pooled_output"].numpy()).max(),
             "embedding_output": np.abs(expected.hidden_states[0].numpy()
                                        - ours["embedding_output"].numpy())[real].max()}
    for i, layer in enumerate(ours["encoder_outputs"]):
        diffs[f"layer_{i}"] = np.abs(expected.hidden_states[i + 1].numpy() - layer.numpy())[real].max()
    diffs["sequence_output"] = np.abs(expected.last_hidden_state.numpy()
                                      - ours["sequence_output"].numpy())[real].max()
    return diffs


def test_minilm_matches_hugging_face_on_real_sentences(minilm, sst2_data):
    encoder, reference, tokenizer = minilm
    sentences = _sst2_sentences(sst2_data, 64)
    for start in range(0, 64, 16):  # padded batches of mixed lengths
        batch = dict(tokenizer(sentences[start:start + 16], padding=True, return_tensors="np"))
        assert batch["attention_mask"].min() == 0  # the batch really is padded
        diffs = _compare(encoder, reference, batch)
        assert max(diffs.values()) < 1e-4, diffs


def test_minilm_matches_hugging_face_on_sentence_pairs(minilm, sst2_data):
    encoder, reference, tokenizer = minilm
    sentences = _sst2_sentences(sst2_data, 128)[64:]
    first, second = sentences[:32], sentences[32:]
    for start in range(0, 32, 16):
        batch = dict(tokenizer(first[start:start + 16], second[start:start + 16],
                               padding=True, return_tensors="np"))
        assert batch["token_type_ids"].max() == 1
        diffs = _compare(encoder, reference, batch)
        assert max(diffs.values()) < 1e-4, diffs


def _tiny_hf_config(**overrides):
    import transformers
    values = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                  intermediate_size=37, max_position_embeddings=64, type_vocab_size=2,
                  hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    values.update(overrides)
    return transformers.BertConfig(**values)


def _random_inputs(rng, batch=3, length=11, vocab=99):
    ids = rng.integers(1, vocab, size=(batch, length)).astype(np.int64)
    mask = np.ones_like(ids)
    mask[0, 7:] = 0
    ids[0, 7:] = 0
    types = np.zeros_like(ids)
    types[1, 5:] = 1
    return ids, mask, types


def test_pretraining_heads_match_hugging_face(tmp_path):
    import torch
    import transformers
    torch.manual_seed(0)
    reference = transformers.BertForPreTraining(_tiny_hf_config()).eval()
    reference.save_pretrained(tmp_path)
    config = checkpoints.read_hf_config(str(tmp_path))
    model = modeling.BertPretrainer(config)
    report = checkpoints.load_hf_weights(model, str(tmp_path), required=("bert/", "cls/"))
    assert not report.missing

    ids, mask, types = _random_inputs(np.random.default_rng(1))
    positions = np.array([[1, 3, 6], [2, 4, 10], [0, 5, 9]])
    with torch.no_grad():
        expected = reference(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask),
                             token_type_ids=torch.tensor(types))
    ours = model({"input_word_ids": ids, "input_mask": mask, "input_type_ids": types,
                  "masked_lm_positions": positions})
    expected_mlm = np.take_along_axis(expected.prediction_logits.numpy(),
                                      positions[:, :, None], axis=1)
    np.testing.assert_allclose(ours["masked_lm_logits"], expected_mlm, atol=1e-4)
    np.testing.assert_allclose(ours["next_sentence_logits"],
                               expected.seq_relationship_logits.numpy(), atol=1e-5)


def test_pretraining_gradients_match_hugging_face(tmp_path):
    """The last layer runs only at the masked positions and [CLS]; the loss
    and every parameter's gradient still equal PyTorch's full computation."""
    import torch
    import transformers
    torch.manual_seed(3)
    reference = transformers.BertForPreTraining(_tiny_hf_config()).train()
    reference.save_pretrained(tmp_path)
    model = modeling.BertPretrainer(checkpoints.read_hf_config(str(tmp_path)))
    checkpoints.load_hf_weights(model, str(tmp_path), required=("bert/", "cls/"))

    ids, mask, types = _random_inputs(np.random.default_rng(4))
    positions = np.array([[1, 3, 6], [2, 4, 10], [0, 5, 5]])  # [CLS] and a repeat too
    labels = np.array([[5, 7, 9], [11, 13, 17], [19, 23, 23]])
    nsp_labels = np.array([0, 1, 1])
    out = reference(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask),
                    token_type_ids=torch.tensor(types))
    gathered = out.prediction_logits[torch.arange(3)[:, None], torch.tensor(positions)]
    expected_loss = (torch.nn.functional.cross_entropy(gathered.reshape(-1, 99),
                                                       torch.tensor(labels).reshape(-1))
                     + torch.nn.functional.cross_entropy(out.seq_relationship_logits,
                                                         torch.tensor(nsp_labels)))
    expected_loss.backward()
    expected_grads = dict(reference.named_parameters())

    with tf.GradientTape() as tape:
        ours = model({"input_word_ids": ids, "input_mask": mask, "input_type_ids": types,
                      "masked_lm_positions": positions}, training=True)
        loss = (tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
                    labels, ours["masked_lm_logits"]))
                + tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
                    nsp_labels, ours["next_sentence_logits"])))
    table = model.checkpoint_map()
    grads = tape.gradient(loss, list(table.values()))
    np.testing.assert_allclose(loss.numpy(), expected_loss.item(), rtol=1e-5)
    checked = 0
    for (google_name, _), grad in zip(table.items(), grads):
        name, transpose = checkpoints.hf_name(google_name)
        expected = expected_grads[name].grad.numpy()
        grad = tf.convert_to_tensor(grad).numpy()
        np.testing.assert_allclose(grad.T if transpose else grad, expected,
                                   atol=2e-5, rtol=1e-4, err_msg=google_name)
        checked += 1
    # PyTorch lists the decoder weight, tied to the word embeddings, once.
    assert checked == len(expected_grads)


def test_classifier_matches_hugging_face(tmp_path):
    import torch
    import transformers
    torch.manual_seed(0)
    reference = transformers.BertForSequenceClassification(
        _tiny_hf_config(num_labels=3)).eval()
    reference.save_pretrained(tmp_path)
    model = modeling.BertClassifier(
        modeling.BertEncoder(checkpoints.read_hf_config(str(tmp_path))), num_labels=3)
    report = checkpoints.load_hf_weights(model, str(tmp_path), required=("bert/", "output_"))
    assert not report.missing
    ids, mask, types = _random_inputs(np.random.default_rng(2))
    with torch.no_grad():
        expected = reference(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask),
                             token_type_ids=torch.tensor(types)).logits.numpy()
    ours = model({"input_word_ids": ids, "input_mask": mask, "input_type_ids": types})
    np.testing.assert_allclose(ours, expected, atol=1e-5)


def test_gelu_is_googles_tanh_approximation():
    x = np.linspace(-6, 6, 101).astype(np.float32)
    expected = 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
    np.testing.assert_allclose(modeling.ACTIVATIONS["gelu"](tf.constant(x)), expected, atol=1e-6)
    exact = np.array([0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in x])
    np.testing.assert_allclose(modeling.ACTIVATIONS["gelu_exact"](tf.constant(x)), exact, atol=1e-6)


GOOGLE_BASE_CONFIG = {  # bert-base-chinese's released bert_config.json, extra keys included
    "attention_probs_dropout_prob": 0.1, "directionality": "bidi", "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1, "hidden_size": 768, "initializer_range": 0.02,
    "intermediate_size": 3072, "max_position_embeddings": 512, "num_attention_heads": 12,
    "num_hidden_layers": 12, "pooler_fc_size": 768, "pooler_num_attention_heads": 12,
    "pooler_num_fc_layers": 3, "pooler_size_per_head": 128, "pooler_type": "first_token_transform",
    "type_vocab_size": 2, "vocab_size": 21128}


def test_config_reads_released_config_and_round_trips(tmp_path):
    path = tmp_path / "bert_config.json"
    path.write_text(json.dumps(GOOGLE_BASE_CONFIG))
    config = modeling.BertConfig.from_json_file(str(path))
    assert (config.vocab_size, config.hidden_size, config.type_vocab_size) == (21128, 768, 2)
    config.to_json_file(str(tmp_path / "out.json"))
    again = modeling.BertConfig.from_json_file(str(tmp_path / "out.json"))
    assert again == config


@pytest.mark.parametrize("content, culprit", [
    ("{not json", "not valid JSON"),
    ('{"hidden_size": 768}', "vocab_size"),
    ('{"vocab_size": 100, "hidden_size": 100, "num_attention_heads": 12}', "num_attention_heads"),
    ('{"vocab_size": 100, "num_hidden_layers": -2}', "num_hidden_layers"),
    ('{"vocab_size": "many"}', "vocab_size"),
    ('{"vocab_size": 100, "hidden_act": "gleu"}', "hidden_act"),
    ('{"vocab_size": 100, "hidden_dropout_prob": 1.5}', "hidden_dropout_prob"),
    ("[1, 2]", "JSON object"),
])
def test_malformed_config_is_rejected_naming_file_and_key(tmp_path, content, culprit):
    path = tmp_path / "bert_config.json"
    path.write_text(content)
    with pytest.raises(modeling.ConfigError) as error:
        modeling.BertConfig.from_json_file(str(path))
    assert str(path) in str(error.value) and culprit in str(error.value)


def test_missing_config_file_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.json"):
        modeling.BertConfig.from_json_file(str(tmp_path / "nowhere.json"))


def test_dropout_drops_at_the_rate_and_scales_the_rest():
    rate = 0.1
    layer = modeling.Dropout(rate, seed=7)
    x = tf.ones([400, 500])
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=True)
    grad = tape.gradient(y, x).numpy()
    y = y.numpy()
    dropped = float((y == 0).mean())
    # 200,000 Bernoulli(0.1) draws: standard deviation 0.00067.
    assert abs(dropped - rate) < 0.004, dropped
    np.testing.assert_allclose(np.unique(y), [0.0, 1 / (1 - rate)], rtol=1e-4)
    np.testing.assert_array_equal(grad, y)  # d(x * mask) / dx = mask, here equal to y
    again = layer(x, training=True).numpy()
    assert 0.15 < float(((again == 0) != (y == 0)).mean()) < 0.21  # fresh draws: 2 p (1 - p)
    np.testing.assert_array_equal(layer(x, training=False), x)
    assert modeling.Dropout(0.0)(x, training=True) is x


@pytest.mark.parametrize("algorithm", ["philox", "threefry"])
def test_dropout_under_xla_with_either_generator(algorithm):
    layer = modeling.Dropout(0.25, seed=1)
    x = tf.ones([333, 7])  # an odd number of elements: 16-bit halves of 32-bit draws

    @tf.function(jit_compile=True)
    def apply(x):
        with modeling.dropout_random_algorithm(algorithm):
            return layer(x, training=True)

    y = apply(x).numpy()
    assert y.shape == (333, 7)
    assert abs(float((y == 0).mean()) - 0.25) < 0.03
    with pytest.raises(ValueError, match="unknown random algorithm"):
        with modeling.dropout_random_algorithm("mt19937"):
            pass


def test_plain_call_keys_and_the_positions_call_match_hugging_face(tmp_path):
    """The plain call returns the same keys whatever it is asked; the cheaper
    call at a few positions gives PyTorch's full-sequence values there."""
    import torch
    import transformers
    torch.manual_seed(5)
    reference = transformers.BertModel(_tiny_hf_config()).eval()
    reference.save_pretrained(tmp_path)
    encoder = modeling.BertEncoder(checkpoints.read_hf_config(str(tmp_path)))
    checkpoints.load_hf_weights(encoder, str(tmp_path))
    ids, mask, types = _random_inputs(np.random.default_rng(6))
    inputs = {"input_word_ids": ids, "input_mask": mask, "input_type_ids": types}
    with torch.no_grad():
        expected = reference(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask),
                             token_type_ids=torch.tensor(types))

    plain_keys = {"sequence_output", "pooled_output", "encoder_outputs", "embedding_output"}
    assert set(encoder(inputs)) == plain_keys
    assert set(encoder(inputs, training=True)) == plain_keys
    assert set(encoder(inputs, output_attentions=True)) == plain_keys | {"attention_probs"}

    positions = np.array([[0, 3, 6], [2, 4, 10], [5, 5, 1]])  # [CLS] and a repeat too
    out = encoder.call_at_positions(inputs, positions)
    assert set(out) == {"gathered_output", "pooled_output"}
    np.testing.assert_allclose(
        out["gathered_output"],
        np.take_along_axis(expected.last_hidden_state.numpy(), positions[:, :, None], axis=1),
        atol=1e-5)
    np.testing.assert_allclose(out["pooled_output"], expected.pooler_output.numpy(), atol=1e-5)


def _tiny_config():
    return modeling.BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2,
                               num_attention_heads=2, intermediate_size=24,
                               max_position_embeddings=32)


def _tiny_inputs():
    return {"input_word_ids": tf.constant([[2, 5, 7, 3, 0, 0], [2, 9, 3, 11, 12, 3]]),
            "input_mask": tf.constant([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]]),
            "input_type_ids": tf.constant([[0, 0, 0, 0, 0, 0], [0, 0, 0, 1, 1, 1]])}


@pytest.mark.parametrize("kind", ["classifier", "pretrainer", "encoder"])
def test_task_models_round_trip_through_keras_saving(tmp_path, kind):
    import keras
    config = _tiny_config()
    inputs = _tiny_inputs()

    def build():
        if kind == "classifier":
            return modeling.BertClassifier(modeling.BertEncoder(config), num_labels=3,
                                           dropout_rate=0.2)
        if kind == "pretrainer":
            return modeling.BertPretrainer(config)
        return modeling.BertEncoder(config)

    def outputs(model):
        if kind == "pretrainer":
            result = model(dict(inputs, masked_lm_positions=tf.constant([[1, 2], [3, 5]])))
        else:
            result = model(inputs)
        if not isinstance(result, dict):
            result = {"logits": result}
        return {name: result[name].numpy() for name in result if name != "encoder_outputs"}

    model = build()
    path = str(tmp_path / f"{kind}.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert type(loaded) is type(model)
    assert loaded.get_config() == model.get_config()
    before, after = outputs(model), outputs(loaded)
    fresh = outputs(build())  # differently initialised: the weights did travel
    for name in before:
        np.testing.assert_array_equal(after[name], before[name])
        assert not np.allclose(fresh[name], before[name]), name
    if kind == "classifier":
        assert (loaded.num_labels, loaded.dropout_rate) == (3, 0.2)
        assert loaded.encoder.config == config
    if kind == "pretrainer":  # the decoder is still the word embedding matrix itself
        assert loaded.masked_lm.word_embeddings is loaded.encoder.embeddings.word_embeddings

    # The config alone (no weights) rebuilds the same architecture.
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(model))
    assert [w.shape for w in again.weights] == [w.shape for w in model.weights]


def test_layers_get_config_returns_every_constructor_argument():
    import keras
    config = _tiny_config()
    layers = [modeling.Embeddings(config, name="e"), modeling.SelfAttention(config),
              modeling.TransformerLayer(config), modeling.Dropout(0.3, seed=4),
              modeling.WeightsTimesInput(3, 16, 0.05, name="w")]
    for layer in layers:
        rebuilt = type(layer).from_config(layer.get_config())
        assert rebuilt.get_config() == layer.get_config()
        assert [w.shape for w in rebuilt.weights] == [w.shape for w in layer.weights]
    assert layers[3].get_config()["rate"] == 0.3 and layers[3].get_config()["seed"] == 4
    assert keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(layers[4])).units == 3
