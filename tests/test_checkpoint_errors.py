"""A checkpoint that does not fit the model is one compact error: the file,
the counts, the first few variables with both shapes, the rest summed up by
shape on a few lines, and every (name, shape) pair kept, in the message and
on the exception, as tf.train.list_variables reads the file."""

import re

import pytest
import tensorflow as tf

from bert_tf import checkpoints, modeling


def _config(hidden, layers, intermediate):
    return modeling.BertConfig(vocab_size=99, hidden_size=hidden, num_hidden_layers=layers,
                               num_attention_heads=4, intermediate_size=intermediate,
                               max_position_embeddings=64)


def test_a_wide_mismatch_is_a_few_lines_that_keep_every_name_and_shape(tmp_path):
    prefix = checkpoints.save_google_checkpoint(modeling.BertEncoder(_config(32, 6, 64)),
                                                str(tmp_path / "bert_model.ckpt"))
    model = modeling.BertEncoder(_config(48, 6, 96))
    with pytest.raises(checkpoints.CheckpointError) as caught:
        checkpoints.load_google_checkpoint(model, prefix)
    error, message = caught.value, str(caught.value)
    stored = dict(tf.train.list_variables(prefix))
    want = {name: (tuple(stored[name]), tuple(variable.shape))
            for name, variable in model.checkpoint_map().items()
            if name in stored and tuple(stored[name]) != tuple(variable.shape)}
    assert len(want) == 5 + 6 * 16 + 2  # embeddings, layers, pooler: every weight
    assert {n: (a, b) for n, a, b in error.mismatched} == want
    lines = message.splitlines()
    assert lines[0] == f"Checkpoint {prefix!r} does not fit the model:"
    assert lines[1] == "103 variable(s) with mismatched shapes (checkpoint vs model):"
    assert lines[2] == ("  bert/embeddings/word_embeddings: checkpoint has [99, 32], "
                        "model expects [99, 48]")
    assert lines[7] == "  ... and 98 more:"
    assert len(lines) < 16
    # The summary lines: "[checkpoint] vs [model]: name, name, ...".
    listed = {}
    for line in lines[8:]:
        have, want_shape, names = re.fullmatch(r"    (\[.*?\]) vs (\[.*?\]): (.*)", line).groups()
        for name in names.split(", "):
            listed[name] = (have, want_shape)
    for name, (have, want_shape) in list(want.items())[5:]:
        assert listed[name] == (str(list(have)), str(list(want_shape)))
    assert len(listed) == 98


def test_missing_and_unexpected_variables_are_kept_on_the_exception(tmp_path):
    prefix = checkpoints.save_google_checkpoint(modeling.BertEncoder(_config(32, 2, 64)),
                                                str(tmp_path / "bert_model.ckpt"))
    deeper = modeling.BertEncoder(_config(32, 9, 64))
    with pytest.raises(checkpoints.CheckpointError) as caught:
        checkpoints.load_google_checkpoint(deeper, prefix)
    error = caught.value
    stored = dict(tf.train.list_variables(prefix))
    want = {n: tuple(v.shape) for n, v in deeper.checkpoint_map().items() if n not in stored}
    assert dict(error.missing) == want and len(want) == 7 * 16
    assert error.mismatched == [] and error.unexpected == []
    message = str(error)
    assert f"{len(want)} variable(s) missing from the checkpoint:" in message
    assert all(name in message for name in want)
    assert len(message.splitlines()) < 14
