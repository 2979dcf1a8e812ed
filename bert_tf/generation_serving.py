"""A GPT-2 SavedModel that continues raw strings, tokenizer and decoding in-graph.

`export_generator(model, tokenizer, export_dir)` writes one signature:

  generate(prompt: string [batch], max_new_tokens: int32, temperature: float32,
           top_k: int32, top_p: float32, seed: int32) ->
    text           string [batch]: each continuation, decoded, without the stop token
    token_ids      int32 [batch, max_new_tokens]: its tokens, -1 after the end
    lengths        int32 [batch]: how many tokens `text` holds
    prompt_tokens  int32 [batch]: the prompt tokens the model saw (after any cut)
    stopped        bool [batch]: ended at a stop token rather than at max_new_tokens

A client needs TensorFlow and tensorflow-text only (`import tensorflow_text`,
then `tf.saved_model.load`; `load` does both), and gets what the library's
`generation.generate_text(model, tokenizer, prompts, max_new_tokens,
batch_size=len(prompts), seed=s)` gives when it passes
`seed=generation.sample_seed(s, 0, 0)` (the signature's seed is the sampling
key itself):

  * prompts are tokenized in the graph: GPT-2's byte-level BPE
    (`bpe_graph.GraphByteLevelBPE`) or GPT2-Chinese's WordPiece
    (`GraphChineseWordPiece`), with the ids of the Python tokenizers;
  * an empty prompt (or one without tokens) is an unconditional sample,
    started from `generation.document_start_token`;
  * a prompt longer than `n_ctx - max_new_tokens` keeps its last tokens;
  * prompts of different lengths are left-padded into one batch and
    decoded by `generation.decode`, the library's own loop, with the
    tokenizer's stop tokens (or those given at export) and the export's
    `repetition_penalty` (a variable: assign it on a loaded model);
  * settings out of range (temperature <= 0, top_p outside (0, 1], top_k < 0,
    max_new_tokens outside [1, n_ctx - 1]) fail with an InvalidArgumentError
    that names the setting.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import weakref

import tensorflow as tf
import tensorflow_text as tf_text  # also registers the ops the SavedModel needs

from bert_tf import atomic_io, bpe, bpe_graph, generation, lm_tokenization, text_graph

SETTINGS_FILE = "generator.json"

# Python's str.isspace(), which ChineseWordPiece.decode's strip() uses.
_PY_WHITESPACE = "[" + "".join(f"\\x{{{cp:X}}}" for cp in range(0x3001)
                               if chr(cp).isspace()) + "]"


class GraphChineseWordPiece(tf.Module):
    """`lm_tokenization.ChineseWordPiece`'s `encode` and `decode` as graph ops.

    Google's basic tokenization and WordPiece are `text_graph.GraphTokenizer`'s
    (with Hugging Face's control-character rule, as ChineseWordPiece); on top
    of it, GPT2-Chinese's rules: a newline is `[SEP]`, the special tokens
    written in the text stay whole, a word over 100 characters is `[UNK]`.
    """

    def __init__(self, tokenizer: lm_tokenization.ChineseWordPiece, name: str | None = None):
        super().__init__(name=name)
        vocab = tokenizer.vocab
        tokens = [f"[unused-id-{i}]" for i in range(tokenizer.vocab_size)]
        for token, index in vocab.items():
            tokens[index] = token
        # GraphTokenizer reads a vocabulary file (and keeps it as an asset).
        self._folder = tempfile.mkdtemp(prefix="chinese_wordpiece_")
        weakref.finalize(self, shutil.rmtree, self._folder, ignore_errors=True)
        vocab_file = os.path.join(self._folder, "vocab.txt")
        with open(vocab_file, "w", encoding="utf-8") as f:
            f.write("".join(t + "\n" for t in tokens))
        self.vocab_size = tokenizer.vocab_size
        self._words = text_graph.GraphTokenizer(
            vocab_file, tokenizer.full_tokenizer.basic_tokenizer.do_lower_case,
            control_chars="huggingface")
        specials = list(tokenizer.SPECIAL_TOKENS)
        self._special_pattern = "|".join(re.escape(t) for t in specials)
        self._special_ids = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(specials), tf.constant([vocab[t] for t in specials], tf.int32)), -1)
        self._tokens = tf.constant(tokens, tf.string)
        # GraphTokenizer's stand-in for an over-long word (beyond the
        # WordPiece op's byte limit, so [UNK]).
        self._too_long = text_graph._TOO_LONG_WORD
        self.max_chars_per_word = tokenizer.MAX_CHARS_PER_WORD

    def encode(self, strings) -> tf.RaggedTensor:
        """Token ids, int32 [batch, (ids)], of a [batch] string tensor."""
        strings = tf.strings.regex_replace(tf.convert_to_tensor(strings, tf.string),
                                           "\n", " [SEP] ")
        # tensorflow-text's regex split stops at a NUL byte; U+0001 stands in
        # for it (both are control characters, deleted before WordPiece).
        strings = tf.strings.regex_replace(strings, "\x00", "\x01")
        pieces = tf_text.regex_split(strings, self._special_pattern, self._special_pattern)
        flat = pieces.flat_values
        special = tf.strings.regex_full_match(flat, self._special_pattern)
        words = tf.strings.split(self._words.normalize(tf.where(special, "", flat)))
        # FastWordpieceTokenizer counts bytes: a word over the character
        # limit is replaced by one over its byte limit, which gives [UNK].
        too_long = tf.strings.length(words.flat_values, unit="UTF8_CHAR") > \
            self.max_chars_per_word
        words = words.with_flat_values(tf.where(too_long, self._too_long, words.flat_values))
        ids = self._words._wordpiece.tokenize(words).merge_dims(-2, -1)  # [pieces, (ids)]
        special_ids = tf.RaggedTensor.from_row_lengths(
            self._special_ids.lookup(tf.boolean_mask(flat, special)),
            tf.cast(special, tf.int64))
        ids = tf.concat([special_ids, ids], axis=1)
        return tf.RaggedTensor.from_row_splits(
            ids.flat_values, tf.gather(ids.row_splits, pieces.row_splits), validate=False)

    def decode(self, ids) -> tf.Tensor:
        """Text as `ChineseWordPiece.decode` gives it (ragged ids, or dense
        with -1 for no token)."""
        if not isinstance(ids, tf.RaggedTensor):
            ids = tf.RaggedTensor.from_tensor(ids, padding=-1)
        tokens = tf.gather(self._tokens, ids)
        flat = tokens.flat_values
        is_word = tf.strings.regex_full_match(flat, "[a-z]+")
        position = tf.range(tf.size(flat, out_type=tf.int64))
        row_end = tf.gather(tokens.row_splits[1:], tokens.value_rowids())
        next_is_word = tf.concat([is_word[1:], [False]], axis=0) & (position + 1 < row_end)
        flat = tf.where(is_word & next_is_word, flat + " ", flat)
        flat = tf.where(tf.equal(flat, "[MASK]"), "", flat)
        flat = tf.where(tf.equal(flat, "[CLS]"), "\n\n", flat)
        flat = tf.where(tf.equal(flat, "[SEP]"), "\n", flat)
        text = tf.strings.reduce_join(tokens.with_flat_values(flat), axis=-1)
        text = tf.strings.regex_replace(text, "##", "")
        return tf.strings.regex_replace(text, f"^{_PY_WHITESPACE}+|{_PY_WHITESPACE}+$", "")


def graph_tokenizer(tokenizer):
    """The graph twin of a library tokenizer (ByteLevelBPE or ChineseWordPiece)."""
    if isinstance(tokenizer, bpe.ByteLevelBPE):
        return bpe_graph.GraphByteLevelBPE(tokenizer)
    if isinstance(tokenizer, lm_tokenization.ChineseWordPiece):
        return GraphChineseWordPiece(tokenizer)
    raise TypeError(f"no in-graph tokenizer for {type(tokenizer).__name__}")


class GenerationServer(tf.Module):
    """A GPT2LM, its tokenizer and the decoding loop, as one exportable module."""

    def __init__(self, model, tokenizer, stop_tokens=None, repetition_penalty: float = 1.0):
        super().__init__(name="generation_server")
        generation.check_vocabulary(model.config.n_vocab, tokenizer.vocab_size)
        generation.check_sampling(repetition_penalty=repetition_penalty)
        self.model = model
        self.text = graph_tokenizer(tokenizer)
        self.n_ctx = model.config.n_ctx
        self.start_id = generation.token_ids(
            tokenizer, [generation.document_start_token(tokenizer)], "document start token")[0]
        self.stop_tokens = (generation.default_stop_tokens(tokenizer) if stop_tokens is None
                            else list(stop_tokens))
        self.stop_ids = tf.constant(generation.token_ids(tokenizer, self.stop_tokens) or [-1],
                                    tf.int32)
        self.repetition_penalty = tf.Variable(float(repetition_penalty), trainable=False,
                                              name="repetition_penalty")

    def _check(self, prompt, max_new_tokens, temperature, top_k, top_p):
        n_ctx = self.n_ctx
        return [
            tf.debugging.assert_positive(tf.size(prompt), message="no prompts given"),
            tf.debugging.assert_greater(temperature, 0.0, message="temperature must be > 0"),
            tf.debugging.assert_non_negative(
                top_k, message="top_k must be >= 0 (0: no limit, 1: greedy)"),
            tf.debugging.assert_greater(top_p, 0.0, message="top_p must be in (0, 1]"),
            tf.debugging.assert_less_equal(top_p, 1.0, message="top_p must be in (0, 1]"),
            tf.debugging.assert_greater_equal(
                max_new_tokens, 1, message=f"max_new_tokens must be in [1, n_ctx - 1] = "
                                           f"[1, {n_ctx - 1}] (n_ctx={n_ctx})"),
            tf.debugging.assert_less_equal(
                max_new_tokens, n_ctx - 1, message=f"max_new_tokens must be in [1, n_ctx - 1] "
                                                   f"= [1, {n_ctx - 1}] (n_ctx={n_ctx})"),
        ]

    def _prompt_ids(self, prompt, max_new_tokens):
        """Left-padded ids and mask of the prompts, and their lengths."""
        ids = self.text.encode(prompt)
        empty = tf.equal(ids.row_lengths(), 0)
        start = tf.RaggedTensor.from_row_lengths(
            tf.fill([tf.reduce_sum(tf.cast(empty, tf.int32))], self.start_id),
            tf.cast(empty, tf.int64))
        ids = tf.concat([ids, start], axis=1)
        # Keep each prompt's last tokens that leave room for the new ones.
        room = tf.cast(self.n_ctx - max_new_tokens, tf.int64)
        kept = tf.minimum(ids.row_lengths(), room)
        limits = ids.row_splits[1:]
        longest = tf.reduce_max(kept)
        column = tf.range(longest)[tf.newaxis, :]
        source = limits[:, tf.newaxis] - longest + column  # right-aligned
        mask = column >= (longest - kept[:, tf.newaxis])
        dense = tf.gather(ids.flat_values, tf.where(mask, source, 0))
        return (tf.where(mask, dense, 0), tf.cast(mask, tf.int32), tf.cast(kept, tf.int32))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="prompt"),
                                  tf.TensorSpec([], tf.int32, name="max_new_tokens"),
                                  tf.TensorSpec([], tf.float32, name="temperature"),
                                  tf.TensorSpec([], tf.int32, name="top_k"),
                                  tf.TensorSpec([], tf.float32, name="top_p"),
                                  tf.TensorSpec([], tf.int32, name="seed")])
    def generate(self, prompt, max_new_tokens, temperature, top_k, top_p, seed):
        with tf.control_dependencies(self._check(prompt, max_new_tokens, temperature, top_k,
                                                 top_p)):
            ids, mask, prompt_tokens = self._prompt_ids(prompt, max_new_tokens)
        tokens, lengths = generation.decode(
            self.model, ids, mask, max_new_tokens, temperature=temperature, top_k=top_k,
            top_p=top_p, repetition_penalty=self.repetition_penalty.read_value(),
            stop_token_ids=self.stop_ids, seed=tf.cast(seed, tf.int64))
        return {
            "text": self.text.decode(tf.RaggedTensor.from_tensor(tokens, lengths=lengths)),
            "token_ids": tokens,
            "lengths": lengths,
            "prompt_tokens": prompt_tokens,
            "stopped": lengths < max_new_tokens,
        }


def export_generator(model, tokenizer, export_dir: str, *, stop_tokens=None,
                     repetition_penalty: float = 1.0) -> str:
    """Writes the generating SavedModel; the folder appears only when complete.

    `stop_tokens` None means the tokenizer's (`generation.default_stop_tokens`);
    () means none. The settings are recorded in `generator.json` beside the model.
    """
    server = GenerationServer(model, tokenizer, stop_tokens, repetition_penalty)
    settings = {"tokenizer": type(tokenizer).__name__, "n_ctx": model.config.n_ctx,
                "n_vocab": model.config.n_vocab, "stop_tokens": server.stop_tokens,
                "repetition_penalty": float(repetition_penalty)}
    with atomic_io.staged_folder(export_dir) as staging:
        tf.saved_model.save(server, staging, signatures={"generate": server.generate})
        with open(os.path.join(staging, SETTINGS_FILE), "w", encoding="utf-8") as f:
            json.dump(settings, f, indent=2, ensure_ascii=False)
    return export_dir


def load(export_dir: str):
    """`tf.saved_model.load` with tensorflow-text's ops registered first."""
    import tensorflow_text  # noqa: F401  (registers the ops the graph uses)

    return tf.saved_model.load(export_dir)
