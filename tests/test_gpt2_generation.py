"""Generation: cached decoding equals uncached decoding token for token,
greedy continuations equal Hugging Face `generate` on the same random
weights, and the logit filters equal Hugging Face's logits processors."""

import numpy as np
import pytest
import tensorflow as tf

from bert_tf import generation, gpt2_checkpoints

PROMPTS = [[11, 12, 13, 14, 15, 16, 17], [40], [7, 7, 8, 9]]


@pytest.fixture(scope="module")
def hf_model():
    import torch
    import transformers
    torch.manual_seed(3)
    config = transformers.GPT2Config(vocab_size=97, n_positions=40, n_embd=32, n_head=4,
                                     n_layer=2, bos_token_id=96, eos_token_id=96)
    return transformers.GPT2LMHeadModel(config).eval()


@pytest.fixture(scope="module")
def model(hf_model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("hf_gpt2_generation")
    hf_model.save_pretrained(folder)
    return gpt2_checkpoints.load_pretrained(str(folder))


def test_cached_greedy_equals_uncached_and_each_row_alone(model):
    cached = generation.generate(model, PROMPTS, 12, top_k=1)
    assert cached == generation.generate(model, PROMPTS, 12, top_k=1, use_cache=False)
    assert [len(row) for row in cached] == [12, 12, 12]
    # Left padding changes nothing for a row: the shortest prompt, alone.
    assert generation.generate(model, [PROMPTS[1]], 12, top_k=1) == [cached[1]]


def test_cached_sampling_equals_uncached_with_a_seed(model):
    settings = dict(temperature=0.8, top_k=20, top_p=0.9, repetition_penalty=1.3, seed=5)
    cached = generation.generate(model, PROMPTS, 10, **settings)
    assert cached == generation.generate(model, PROMPTS, 10, use_cache=False, **settings)
    assert cached == generation.generate(model, PROMPTS, 10, **settings)
    assert cached != generation.generate(model, PROMPTS, 10, **{**settings, "seed": 6})


def test_greedy_equals_hugging_face_generate(model, hf_model):
    import torch
    ids, mask = generation._left_pad(PROMPTS, pad_id=0)
    with torch.no_grad():
        out = hf_model.generate(input_ids=torch.tensor(ids.numpy()).long(),
                                attention_mask=torch.tensor(mask.numpy()).long(),
                                do_sample=False, max_new_tokens=12, pad_token_id=0,
                                eos_token_id=96)
    expected = [[t for t in row] for row in out[:, ids.shape[1]:].tolist()]
    expected = [row[:row.index(96)] if 96 in row else row for row in expected]
    assert generation.generate(model, PROMPTS, 12, top_k=1, stop_token_ids=[96]) == expected
    # And with a repetition penalty (one prompt: Hugging Face penalises padding too).
    with torch.no_grad():
        out = hf_model.generate(input_ids=torch.tensor([PROMPTS[2]]), do_sample=False,
                                max_new_tokens=12, repetition_penalty=1.5, pad_token_id=0)
    assert generation.generate(model, [PROMPTS[2]], 12, top_k=1, repetition_penalty=1.5) == [
        out[0, len(PROMPTS[2]):].tolist()]


def test_filters_equal_hugging_face_logits_processors():
    import torch
    from transformers.generation import logits_process as hf
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, size=(4, 50)).astype(np.float32)
    history = rng.integers(0, 50, size=(4, 6))
    seen = tf.reduce_max(tf.one_hot(history, 50), axis=1) > 0
    t_logits, t_history = torch.tensor(logits), torch.tensor(history)
    for p in (0.3, 0.9):
        expected = hf.TopPLogitsWarper(p)(t_history, t_logits.clone()).numpy()
        np.testing.assert_array_equal(generation.filter_top_p(tf.constant(logits), p), expected)
    expected = hf.TopKLogitsWarper(7)(t_history, t_logits.clone()).numpy()
    np.testing.assert_array_equal(generation.filter_top_k(tf.constant(logits), 7), expected)
    expected = hf.RepetitionPenaltyLogitsProcessor(1.7)(t_history, t_logits.clone()).numpy()
    np.testing.assert_allclose(generation.penalize_repetition(tf.constant(logits), seen, 1.7),
                               expected, rtol=1e-6)


def test_bad_settings_and_prompts_are_named(model, caplog):
    for settings, message in [({"temperature": 0.0}, "temperature must be > 0, got 0.0"),
                              ({"top_p": 0.0}, r"top_p must be in \(0, 1\], got 0.0"),
                              ({"top_p": 1.5}, "got 1.5"),
                              ({"top_k": -1}, "top_k must be an integer >= 0"),
                              ({"repetition_penalty": 0}, "repetition_penalty must be > 0")]:
        with pytest.raises(ValueError, match=message):
            generation.generate(model, PROMPTS, 3, **settings)
    with pytest.raises(ValueError, match="prompt 1 is empty"):
        generation.generate(model, [[1], []], 3)
    with pytest.raises(ValueError, match="prompt 0 has token id 97, outside"):
        generation.generate(model, [[97]], 3)
    long_prompt = list(range(1, 60))
    with caplog.at_level("WARNING"):
        out = generation.generate(model, [long_prompt], 5, top_k=1)
    assert "keeping its last 35" in caplog.text
    assert out == generation.generate(model, [long_prompt[-35:]], 5, top_k=1)
