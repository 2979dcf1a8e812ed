"""Text generation with a GPT-2: greedy or sampled, batched, with a key/value cache.

`generate(model, prompts, max_new_tokens, ...)` continues each prompt (a
list of token ids). Prompts of different lengths are left-padded into one
batch; each row's positions start at 0 at its first real token and the
padding is hidden from attention, so a row's continuation does not depend
on the others'. `generate_text(model, tokenizer, prompts, length, ...)`
does the same from strings to strings, with `nsamples` per prompt, the
tokenizer's stop tokens and every check generate.py reports (settings,
length against n_ctx, a tokenizer that does not fit the model, empty
prompts).

Each step's logits go through, in this order (the order of GPT2-Chinese's
`sample_sequence` and of Hugging Face's `generate`):
  1. repetition penalty: every token already in the row (prompt included)
     has its logit divided by `repetition_penalty` when positive and
     multiplied by it when negative, so it always becomes less likely
     (CTRL's rule, as Hugging Face applies it; GPT2-Chinese's own
     `sample_sequence` divides every such logit, which makes a token with a
     negative logit more likely, not less);
  2. `top_k=1`: the arg max (greedy); otherwise division by `temperature`;
  3. `top_k` > 1: only the k largest logits stay;
  4. `top_p` < 1: only the smallest set of most likely tokens whose
     probabilities sum to at least `top_p` stays (nucleus sampling);
  5. a draw from the softmax, by the Gumbel-max trick with noise from a
     stateless generator keyed by (`seed`, step): the same seed gives the
     same samples, with or without the cache.

With the cache (the default), the prompt runs once and each new token then
costs one position: its keys and values are appended to every layer's cache
instead of recomputing the whole sequence. That decoding is `decode`, graph
ops only: the prompt pass and a `tf.while_loop` over the new tokens, traced
once per model (settings, batch and lengths are tensors), the same function
the serving SavedModel (`generation_serving`) exports. `use_cache=False`
recomputes the sequence in an eager Python loop (the reference the cache is
tested against).

    >>> from bert_tf import gpt2
    >>> model = gpt2.GPT2LM(gpt2.GPT2Config(n_vocab=30, n_ctx=16, n_embd=16, n_head=2, n_layer=1))
    >>> out = generate(model, [[1, 2, 3], [4]], max_new_tokens=4, top_k=1)
    >>> [len(row) for row in out], out == generate(model, [[1, 2, 3], [4]], 4, top_k=1, use_cache=False)
    ([4, 4], True)
"""

from __future__ import annotations

import dataclasses
import weakref
from collections.abc import Sequence

import numpy as np
import tensorflow as tf
from absl import logging

_NEG_INF = float("-inf")


def check_sampling(temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
                   repetition_penalty: float = 1.0) -> None:
    """Raises ValueError naming the first setting out of its range."""
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0:
        raise ValueError(f"top_k must be an integer >= 0 (0: no limit, 1: greedy), got {top_k!r}")
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    if not repetition_penalty > 0:
        raise ValueError(f"repetition_penalty must be > 0, got {repetition_penalty}")


def check_length(length, n_ctx: int, name: str = "length") -> None:
    """Raises ValueError unless `length` new tokens fit in a window of `n_ctx`
    (one position at least is left for the prompt)."""
    if isinstance(length, bool) or not isinstance(length, int) or not 0 < length < n_ctx:
        raise ValueError(f"{name}={length!r} must be in [1, n_ctx - 1] = [1, {n_ctx - 1}] "
                         f"for this model (n_ctx={n_ctx})")


def check_vocabulary(n_vocab: int, vocab_size: int, model_source: str = "the model",
                     vocab_source: str = "the tokenizer") -> None:
    """Raises ValueError when a tokenizer does not fit a model: token ids
    beyond `n_vocab` would fail, and model outputs beyond the tokenizer's
    vocabulary could not be decoded."""
    if n_vocab != vocab_size:
        raise ValueError(f"the vocabulary does not fit the checkpoint: {vocab_source} has "
                         f"{vocab_size} tokens, {model_source} says n_vocab={n_vocab}")


def penalize_repetition(logits, seen, penalty):
    """`logits` `[batch, vocab]` with the tokens where `seen` is true made
    less likely: positive logits divided by `penalty`, negative multiplied.
    `penalty` may be a tensor (1 changes nothing: x / 1 and x * 1 are x)."""
    if isinstance(penalty, (int, float)) and penalty == 1.0:
        return logits
    penalty = tf.cast(penalty, logits.dtype)
    penalized = tf.where(logits > 0, logits / penalty, logits * penalty)
    return tf.where(seen, penalized, logits)


def filter_top_k(logits, k):
    """Logits outside each row's k largest become -inf (k = 0: no limit).
    `k` may be a Python integer (it then decides when tracing whether any
    op is needed) or an int32 tensor (decided in the graph)."""
    if isinstance(k, int) and (k <= 0 or (logits.shape[-1] is not None and k >= logits.shape[-1])):
        return logits
    k = tf.cast(k, tf.int32)
    vocab = tf.shape(logits)[-1]  # the static size is unknown in a relaxed trace

    def keep_k():
        kth = tf.math.top_k(logits, k=tf.minimum(k, vocab)).values[:, -1:]
        return tf.where(logits < kth, _NEG_INF, logits)

    return tf.cond((k > 0) & (k < vocab), keep_k, lambda: logits)


def filter_top_p(logits, p):
    """Keeps each row's most likely tokens until their probability sum
    reaches `p` (always the most likely one); the others become -inf.
    `p` may be a Python number or a float32 tensor; 1 keeps everything
    without sorting (a sort over the vocabulary costs more than the rest
    of a small model's step)."""
    if isinstance(p, (int, float)) and p >= 1.0:
        return logits
    p = tf.cast(p, tf.float32)

    def nucleus():
        ordered = tf.sort(logits, axis=-1, direction="DESCENDING")
        before = tf.cumsum(tf.nn.softmax(ordered, axis=-1), axis=-1, exclusive=True)
        kept = tf.where(before < p, ordered, float("inf"))
        smallest_kept = tf.reduce_min(kept, axis=-1, keepdims=True)
        return tf.where(logits < smallest_kept, _NEG_INF, logits)

    return tf.cond(p < 1.0, nucleus, lambda: logits)


def next_tokens(logits, seen, step, seed, temperature=1.0, top_k=0, top_p=1.0,
                repetition_penalty=1.0):
    """One token per row from `logits` `[batch, vocab]` (float32).

    The settings may be Python values or scalar tensors (a SavedModel takes
    them as inputs); `top_k == 1` is the arg max, whatever the others say.
    """
    logits = penalize_repetition(tf.cast(logits, tf.float32), seen, repetition_penalty)

    def sample():
        filtered = filter_top_p(filter_top_k(logits / tf.cast(temperature, tf.float32), top_k),
                                top_p)
        key = tf.stack([tf.cast(seed, tf.int64), tf.cast(step, tf.int64)])
        uniform = tf.random.stateless_uniform(tf.shape(filtered), seed=key,
                                              minval=1e-20, maxval=1.0)
        return tf.argmax(filtered - tf.math.log(-tf.math.log(uniform)), axis=-1,
                         output_type=tf.int32)

    if isinstance(top_k, int):
        return tf.argmax(logits, axis=-1, output_type=tf.int32) if top_k == 1 else sample()
    return tf.cond(tf.equal(tf.cast(top_k, tf.int32), 1),
                   lambda: tf.argmax(logits, axis=-1, output_type=tf.int32), sample)


def _mark_seen(seen, ids, mask=None):
    """`seen` `[batch, vocab]` with `ids` `[batch, n]` (where `mask` is 1) set."""
    rows = tf.broadcast_to(tf.range(tf.shape(ids)[0])[:, tf.newaxis], tf.shape(ids))
    where = tf.stack([rows, ids], axis=-1)
    if mask is not None:
        where = tf.boolean_mask(where, tf.cast(mask, tf.bool))
    where = tf.reshape(where, [-1, 2])
    return tf.tensor_scatter_nd_update(seen, where, tf.ones(tf.shape(where)[:1], tf.bool))


def decode(model, ids, mask, max_new_tokens, *, temperature=1.0, top_k=0, top_p=1.0,
           repetition_penalty=1.0, stop_token_ids=(-1,), seed=0):
    """The whole cached generation as graph ops: one pass over the prompts,
    then a `tf.while_loop` that feeds one token per step through the
    key/value cache, until `max_new_tokens` or every row has stopped.

    `ids` and `mask` `[batch, prompt]` int32 are left-padded prompts (1 in
    `mask` for real tokens); every other argument may be a scalar tensor
    (`stop_token_ids` an int32 vector, -1 for none). Returns `tokens`
    `[batch, max_new_tokens]` int32 (after a row's stop token, or after the
    loop ends early, the slots hold -1) and `lengths` `[batch]`, the new
    tokens before each row's first stop token. Call it inside a
    tf.function: `generate` does, and so does the serving SavedModel.
    """
    ids, mask = tf.cast(ids, tf.int32), tf.cast(mask, tf.int32)
    max_new_tokens = tf.cast(max_new_tokens, tf.int32)
    stop = tf.reshape(tf.cast(stop_token_ids, tf.int32), [-1])
    sampling = dict(temperature=temperature, top_k=top_k, top_p=top_p,
                    repetition_penalty=repetition_penalty)
    batch, prompt_length = tf.shape(ids)[0], tf.shape(ids)[1]
    total = prompt_length + max_new_tokens
    # Row r's token in slot j sits at position j - (padding of row r).
    padding = prompt_length - tf.reduce_sum(mask, axis=1, keepdims=True)
    positions = tf.maximum(tf.range(total)[tf.newaxis, :] - padding, 0)
    key_mask = tf.concat([mask, tf.ones([batch, max_new_tokens], tf.int32)], axis=1)
    seen = _mark_seen(tf.zeros([batch, model.config.n_vocab], tf.bool), ids, mask)

    def is_stop(token):
        return tf.reduce_any(token[:, tf.newaxis] == stop[tf.newaxis, :], axis=1)

    cache = model.empty_cache(batch, total)
    logits, cache = model.call_with_cache(ids, positions[:, :prompt_length], cache,
                                          tf.constant(0), key_mask)
    token = next_tokens(logits[:, -1], seen, 0, seed, **sampling)
    generated = tf.TensorArray(tf.int32, size=0, dynamic_size=True,
                               element_shape=tf.TensorShape([None])).write(0, token)

    def more(step, token, cache, seen, finished, generated):
        return (step < max_new_tokens) & ~tf.reduce_all(finished)

    def one_token(step, token, cache, seen, finished, generated):
        slot = prompt_length + step - 1  # where the last token goes
        logits, cache = model.call_with_cache(token[:, tf.newaxis], positions[:, slot:slot + 1],
                                              cache, slot, key_mask)
        seen = _mark_seen(seen, token[:, tf.newaxis])
        token = next_tokens(logits[:, -1], seen, step, seed, **sampling)
        return (step + 1, token, cache, seen, finished | is_stop(token),
                generated.write(step, token))

    _, _, _, _, _, generated = tf.while_loop(
        more, one_token, (tf.constant(1), token, cache, seen, is_stop(token), generated),
        maximum_iterations=max_new_tokens)
    tokens = tf.transpose(generated.stack())  # [batch, steps taken]
    stopped = tf.reduce_any(tokens[:, :, tf.newaxis] == stop, axis=2)
    steps = tf.shape(tokens)[1]
    first_stop = tf.where(stopped, tf.range(steps)[tf.newaxis, :], steps)
    lengths = tf.reduce_min(first_stop, axis=1)
    tokens = tf.where(tf.range(steps)[tf.newaxis, :] < lengths[:, tf.newaxis], tokens, -1)
    tokens = tf.pad(tokens, [[0, 0], [0, max_new_tokens - steps]], constant_values=-1)
    return tokens, lengths


def _left_pad(prompts: Sequence[Sequence[int]], pad_id: int):
    length = max(len(p) for p in prompts)
    ids = [[pad_id] * (length - len(p)) + list(p) for p in prompts]
    mask = [[0] * (length - len(p)) + [1] * len(p) for p in prompts]
    return tf.constant(ids, tf.int32), tf.constant(mask, tf.int32)


def _fit_prompts(prompts, max_new_tokens: int, n_ctx: int):
    if not prompts:
        raise ValueError("no prompts given")
    check_length(max_new_tokens, n_ctx, "max_new_tokens")
    room = n_ctx - max_new_tokens
    fitted = []
    for i, prompt in enumerate(prompts):
        prompt = [int(t) for t in prompt]
        if not prompt:
            raise ValueError(f"prompt {i} is empty: give at least one token "
                             "(for unconditional text, the end-of-text token)")
        if len(prompt) > room:
            logging.warning("Prompt %d has %d tokens; keeping its last %d so that %d new "
                            "tokens fit in n_ctx=%d", i, len(prompt), room, max_new_tokens, n_ctx)
            prompt = prompt[-room:]
        fitted.append(prompt)
    return fitted


def generate(model, prompts: Sequence[Sequence[int]], max_new_tokens: int, *,
             temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
             repetition_penalty: float = 1.0, stop_token_ids: Sequence[int] = (),
             seed: int = 0, use_cache: bool = True, pad_id: int = 0) -> list[list[int]]:
    """Continues each prompt by up to `max_new_tokens` tokens.

    Returns, per prompt, the new tokens only, ending before the first stop
    token. A prompt that leaves fewer than `max_new_tokens` positions of
    `n_ctx` keeps only its last tokens (with a warning).
    """
    check_sampling(temperature, top_k, top_p, repetition_penalty)
    vocab = model.config.n_vocab
    prompts = _fit_prompts(prompts, max_new_tokens, model.config.n_ctx)
    for i, prompt in enumerate(prompts):
        bad = [t for t in prompt if not 0 <= t < vocab]
        if bad:
            raise ValueError(f"prompt {i} has token id {bad[0]}, outside the model's "
                             f"vocabulary of {vocab}")
    ids, mask = _left_pad(prompts, pad_id)
    stop = list(stop_token_ids) or [-1]
    if use_cache:
        decoder = _decoder(model, dict(temperature=float(temperature), top_k=int(top_k),
                                       top_p=float(top_p),
                                       repetition_penalty=float(repetition_penalty)))
        tokens, lengths = decoder(ids, mask, tf.constant(max_new_tokens),
                                  tf.constant(stop, tf.int32), tf.constant(seed, tf.int64))
        return [row[:n] for row, n in zip(tokens.numpy().tolist(), lengths.numpy().tolist())]
    return _generate_uncached(model, ids, mask, max_new_tokens, stop, seed,
                              dict(temperature=temperature, top_k=top_k, top_p=top_p,
                                   repetition_penalty=repetition_penalty))


def _generate_uncached(model, ids, mask, max_new_tokens, stop_token_ids, seed, sampling):
    """The reference `decode` is tested against: eager, one Python step per
    token, the whole sequence recomputed each time."""
    vocab = model.config.n_vocab
    batch, prompt_length = ids.shape
    total = prompt_length + max_new_tokens
    padding = prompt_length - tf.reduce_sum(mask, axis=1, keepdims=True)
    positions = tf.maximum(tf.range(total)[tf.newaxis, :] - padding, 0)
    key_mask = tf.concat([mask, tf.ones([batch, max_new_tokens], tf.int32)], axis=1)
    seen = tf.reduce_max(tf.one_hot(ids, vocab, dtype=tf.int32) * mask[:, :, tf.newaxis],
                         axis=1) > 0
    stop = tf.constant(stop_token_ids, tf.int32)
    finished = tf.zeros([batch], tf.bool)
    generated = []
    for step in range(max_new_tokens):
        slot = prompt_length + step - 1  # where the last token goes
        if step:
            finished |= tf.reduce_any(token[:, tf.newaxis] == stop[tf.newaxis, :], axis=1)
            if bool(tf.reduce_all(finished)):
                break
            ids = tf.concat([ids, token[:, tf.newaxis]], axis=1)
        logits = model({"token_ids": ids, "padding_mask": key_mask[:, :slot + 1],
                        "positions": positions[:, :slot + 1]})
        token = next_tokens(logits[:, -1], seen, step, seed, **sampling)
        seen |= tf.one_hot(token, vocab, dtype=tf.int32) > 0
        generated.append(token)
    stops = set(stop_token_ids)
    out = []
    for row in tf.stack(generated, axis=1).numpy().tolist():
        ends = [i for i, t in enumerate(row) if t in stops]
        out.append(row[:ends[0]] if ends else row)
    return out


# The traced decoding loop per model and sampling settings (the settings
# choose the filters when tracing, so a step holds only the ops it uses; the
# serving SavedModel passes them as tensors instead), kept beside the model
# rather than on it. One trace serves every batch and prompt length.
_DECODERS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _decoder(model, sampling: dict):
    decoders = _DECODERS.setdefault(model, {})
    key = tuple(sorted(sampling.items()))
    if key not in decoders:
        def run(ids, mask, max_new_tokens, stop_token_ids, seed):
            return decode(model, ids, mask, max_new_tokens, stop_token_ids=stop_token_ids,
                          seed=seed, **sampling)

        decoders[key] = tf.function(run, input_signature=[
            tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([None, None], tf.int32),
            tf.TensorSpec([], tf.int32), tf.TensorSpec([None], tf.int32),
            tf.TensorSpec([], tf.int64)])
    return decoders[key]


# --- text in, text out ------------------------------------------------------

@dataclasses.dataclass
class Sample:
    """One continuation of one prompt."""

    prompt_index: int
    sample: int  # 0 .. nsamples - 1
    prefix: str  # the prompt as given ("" for an unconditional sample)
    text: str  # the continuation only, decoded, without the stop token
    prompt_tokens: int  # the prompt's tokens the model saw (after any cut)
    new_tokens: int  # tokens of `text`
    stopped: bool  # ended at a stop token rather than at `length`

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _vocabulary(tokenizer) -> dict[str, int]:
    # ByteLevelBPE keeps token -> id in `encoder`, ChineseWordPiece in `vocab`.
    return getattr(tokenizer, "encoder", None) or tokenizer.vocab


def document_start_token(tokenizer) -> str:
    """The token a document starts after in the tokenizer's training stream:
    `<|endoftext|>` for GPT-2's BPE (what OpenAI's unconditional sampling
    starts from), `[MASK]` for GPT2-Chinese's WordPiece."""
    return "[MASK]" if "[MASK]" in _vocabulary(tokenizer) and \
        "<|endoftext|>" not in _vocabulary(tokenizer) else "<|endoftext|>"


def default_stop_tokens(tokenizer) -> list[str]:
    """Where a document ends: `<|endoftext|>` (BPE) or `[CLS]` (GPT2-Chinese)."""
    vocabulary = _vocabulary(tokenizer)
    return [t for t in ("<|endoftext|>",) if t in vocabulary] or \
        [t for t in ("[CLS]",) if t in vocabulary]


def token_ids(tokenizer, tokens: Sequence[str], what: str = "stop token") -> list[int]:
    """Ids of whole tokens, with an error naming the first one not in the vocabulary."""
    vocabulary = _vocabulary(tokenizer)
    missing = [t for t in tokens if t not in vocabulary]
    if missing:
        raise ValueError(f"{what} {missing[0]!r} is not a token of the vocabulary")
    return [vocabulary[t] for t in tokens]


def sample_seed(seed: int, sample: int, batch: int) -> int:
    """The sampling key of one batch of one sample index, mixed from the run's
    seed (so that neighbouring seeds do not share streams)."""
    state = np.random.SeedSequence([seed, sample, batch]).generate_state(1, dtype=np.uint32)
    return int(state[0] >> 1)


def generate_text(model, tokenizer, prompts: Sequence[str | None], length: int, *,
                  nsamples: int = 1, batch_size: int = 1, temperature: float = 1.0,
                  top_k: int = 0, top_p: float = 1.0, repetition_penalty: float = 1.0,
                  stop_tokens: Sequence[str] | None = None, seed: int = 0,
                  use_cache: bool = True) -> list[Sample]:
    """`nsamples` continuations of `length` tokens at most for each prompt.

    A prompt of None is an unconditional sample: it starts from
    `document_start_token`. An empty string is refused (it is more often a
    mistake than a wish). `stop_tokens` None means `default_stop_tokens`;
    pass () to always generate `length` tokens.

    Samples come out sample index first: sample 0 of every prompt, then
    sample 1, ... Prompts go `batch_size` at a time, each batch of each
    sample index with its own key from (`seed`, sample index, batch index):
    the same arguments give the same samples, and sample i does not depend
    on `nsamples` (asking for more samples only adds new ones), though it
    does depend on `batch_size` and on the other prompts of its batch.

        >>> from bert_tf import bpe, gpt2
        >>> tokenizer = bpe.ByteLevelBPE.from_merges([("h", "i")])
        >>> model = gpt2.GPT2LM(gpt2.GPT2Config(n_vocab=tokenizer.vocab_size, n_ctx=16,
        ...                                     n_embd=8, n_head=2, n_layer=1))
        >>> out = generate_text(model, tokenizer, ["hi", None], 3, nsamples=2, seed=1)
        >>> [(s.prompt_index, s.sample, s.prefix, s.prompt_tokens) for s in out]
        [(0, 0, 'hi', 1), (1, 0, '', 1), (0, 1, 'hi', 1), (1, 1, '', 1)]
        >>> generate_text(model, tokenizer, ["hi", None], 3, nsamples=1, seed=1) == out[:2]
        True
    """
    check_sampling(temperature, top_k, top_p, repetition_penalty)
    n_ctx = model.config.n_ctx
    check_length(length, n_ctx)
    for name, value in (("nsamples", nsamples), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    check_vocabulary(model.config.n_vocab, tokenizer.vocab_size)
    if not prompts:
        raise ValueError("no prompts given")
    start = token_ids(tokenizer, [document_start_token(tokenizer)], "document start token")
    encoded = []
    for i, prompt in enumerate(prompts):
        if prompt is None:
            encoded.append(start)
            continue
        if not prompt:
            raise ValueError(f"prompt {i} is empty: give some text, or no prompt at all "
                             "for unconditional samples")
        ids = tokenizer.encode(prompt)
        if not ids:
            raise ValueError(f"prompt {i} ({prompt!r}) has no tokens")
        if len(ids) > n_ctx - length:
            logging.warning("Prompt %d has %d tokens; keeping its last %d so that length=%d "
                            "new tokens fit in n_ctx=%d", i, len(ids), n_ctx - length, length,
                            n_ctx)
            ids = ids[len(ids) - (n_ctx - length):]
        encoded.append(ids)
    stop_ids = token_ids(tokenizer, default_stop_tokens(tokenizer) if stop_tokens is None
                         else list(stop_tokens))
    out = []
    for sample in range(nsamples):
        for batch, first in enumerate(range(0, len(encoded), batch_size)):
            rows = encoded[first:first + batch_size]
            continuations = generate(
                model, rows, length, temperature=temperature, top_k=top_k, top_p=top_p,
                repetition_penalty=repetition_penalty, stop_token_ids=stop_ids,
                seed=sample_seed(seed, sample, batch), use_cache=use_cache)
            for offset, (ids, new) in enumerate(zip(rows, continuations)):
                index = first + offset
                out.append(Sample(
                    prompt_index=index, sample=sample, prefix=prompts[index] or "",
                    text=tokenizer.decode(new), prompt_tokens=len(ids),
                    new_tokens=len(new), stopped=len(new) < length))
    return out
