"""Google's own `tokenization.py`, as the reference for FullTokenizer's ids.

The registry package `bert-tensorflow` 1.0.4 is Google's release of the
google-research/bert repository (`bert/tokenization.py`, with the current
control-character rule: only Cc and Cf are deleted). Install it with
`pip install --no-deps bert-tensorflow==1.0.4`: it needs only `six`, and
its optional extras would ask for TensorFlow 1.

That release differs from the repository's last commit in two places
that no test here reaches: `load_vocab` gives a repeated token its first
position instead of its last line (neither of Google's vocabularies repeats
a token), and an opt-in flag keeps `[unusedN]` tokens whole.

Two things stand between that file and a TF2 test process, both handled
here without changing what it computes:
  * it imports `tensorflow.compat.v1 as tf` and reads the vocabulary with
    `tf.gfile.GFile`; TF2 still has `tf.compat.v1.gfile`, and should a
    release drop it, `tf.io.gfile` (the same class) is put in its place;
  * it asks absl for the flag `--preserve_unused_tokens`, which absl refuses
    to read before a command line is parsed; the flag's default (False,
    "tokenize [unusedN] like any text") is applied instead.
"""

import pytest


def google_tokenization():
    """The module `bert.tokenization` of bert-tensorflow 1.0.4."""
    try:
        import tensorflow.compat.v1 as tf_v1
        from bert import tokenization
    except ImportError as error:
        pytest.fail("Google's tokenization.py is missing: "
                    f"pip install --no-deps bert-tensorflow==1.0.4 ({error})")
    if not hasattr(tf_v1, "gfile"):
        import tensorflow as tf

        tf_v1.gfile = tf.io.gfile
    tokenization.preserve_token = lambda token, vocab: False
    return tokenization


def google_full_tokenizer(vocab_file, do_lower_case):
    return google_tokenization().FullTokenizer(str(vocab_file), do_lower_case=do_lower_case)
