"""TF-Hub BERT SavedModels: export any checkpoint we load, and load them back.

`export(source, export_dir)` writes two SavedModels with the interface of
the BERT models published on TF-Hub, so code written for those runs on ours:

  preprocessor = hub.load(f"{export_dir}/preprocessor")
  preprocessor(strings)                 -> {input_word_ids, input_mask,
                                            input_type_ids}, int32 [batch, seq]
  preprocessor.tokenize(strings)        -> int32 ragged [batch, words, pieces]
  preprocessor.tokenize.get_special_tokens_dict()
  preprocessor.bert_pack_inputs([tokens_a, tokens_b], seq_length=128)

  encoder = hub.load(f"{export_dir}/encoder")
  encoder(inputs, training=False)       -> {pooled_output, sequence_output,
                                            encoder_outputs, default}
  encoder.mlm(inputs_with_masked_lm_positions)  # when the checkpoint has
                                            # Google's cls/predictions head

Both roots carry the `vocab_file` asset and the `do_lower_case` variable;
the preprocessor also carries `control_chars`, a string variable naming the
tokenizer's control-character rule ("google", or "huggingface" for
checkpoints trained with Hugging Face's tokenizer).
The preprocessor runs tensorflow-text ops: plain `hub.load` or
`tf.saved_model.load` needs `import tensorflow_text` first (else
"Op type not registered"); `bert_tf.hub.load` does that for you.

`HubEncoder(handle)` turns an encoder SavedModel into a Keras 3 layer that
trains with Keras 3 optimizers and drops into `BertClassifier`.
"""

from __future__ import annotations

import dataclasses
import os

import keras
import tensorflow as tf

from bert_tf import atomic_io, modeling, pretrained, text_graph, tokenization

ENCODER_DIR = "encoder"
PREPROCESSOR_DIR = "preprocessor"
CONFIG_ASSET = "bert_config.json"

_INPUT_SPECS = {name: tf.TensorSpec([None, None], tf.int32, name=name)
                for name in modeling.ENCODER_INPUTS}


def load(handle: str):
    """`hub.load`, with tensorflow-text's ops registered first."""
    import tensorflow_hub as hub
    import tensorflow_text  # noqa: F401  (registers the preprocessor's ops)

    if not os.path.isdir(handle) and "://" not in handle:
        raise FileNotFoundError(f"TF-Hub handle {handle!r} is not a SavedModel folder")
    return hub.load(handle)


# --- export -----------------------------------------------------------------

class _Callable(tf.train.Checkpoint):
    """A SavedModel object whose attributes are free to choose.

    `tf.Module` reserves `variables` and `trainable_variables` as read-only
    properties; TF-Hub's reusable-SavedModel API wants them as attributes.
    """


def _encoder_outputs(outputs: dict) -> dict:
    return {
        "pooled_output": outputs["pooled_output"],
        "sequence_output": outputs["sequence_output"],
        "encoder_outputs": list(outputs["encoder_outputs"]),
        "default": outputs["pooled_output"],
    }


def _trace_training_modes(function, *specs):
    """Saves a concrete function for `training` False and True (a Python
    bool: Keras dropout cannot take a tensor)."""
    for training in (False, True):
        function.get_concrete_function(*specs, training=training)


def _with_assets(obj, vocab_file: str, do_lower_case: bool, variables: list) -> None:
    obj.vocab_file = tf.saved_model.Asset(vocab_file)
    obj.do_lower_case = tf.Variable(do_lower_case, trainable=False, name="do_lower_case")
    obj.variables = list(variables)
    obj.trainable_variables = [v for v in variables if v.trainable]
    obj.regularization_losses = []


def encoder_module(encoder: modeling.BertEncoder, vocab_file: str, do_lower_case: bool,
                   config_file: str, pretrainer: modeling.BertPretrainer | None = None):
    """The encoder SavedModel's root object (with `.mlm` given a pretrainer)."""
    root = _Callable()
    root.encoder = encoder
    root.bert_config_file = tf.saved_model.Asset(config_file)
    _with_assets(root, vocab_file, do_lower_case, encoder.variables)

    @tf.function
    def call(inputs, training=False):
        return _encoder_outputs(encoder(inputs, training=training))

    _trace_training_modes(call, _INPUT_SPECS)
    root.__call__ = call

    if pretrainer is not None:
        mlm = _Callable()
        mlm.pretrainer = pretrainer
        mlm.variables = list(pretrainer.variables)
        mlm.trainable_variables = list(pretrainer.trainable_variables)

        @tf.function
        def call_mlm(inputs, training=False):
            outputs = encoder({k: inputs[k] for k in modeling.ENCODER_INPUTS}, training=training)
            result = _encoder_outputs(outputs)
            del result["default"]
            logits = pretrainer.masked_lm.gather_and_call(outputs["sequence_output"],
                                                          inputs["masked_lm_positions"])
            result["mlm_logits"] = tf.cast(logits, tf.float32)
            return result

        mlm_specs = dict(_INPUT_SPECS, masked_lm_positions=tf.TensorSpec(
            [None, None], tf.int32, name="masked_lm_positions"))
        _trace_training_modes(call_mlm, mlm_specs)
        mlm.__call__ = call_mlm
        root.mlm = mlm
    return root


def _flat_pieces(segment: tf.RaggedTensor) -> tf.RaggedTensor:
    return segment.merge_dims(1, -1) if segment.shape.rank == 3 else segment


def preprocessor_module(vocab_file: str, do_lower_case: bool, seq_length: int = 128,
                        max_seq_length: int = 512,
                        control_chars: str = tokenization.DEFAULT_CONTROL_CHARS):
    """The preprocessor SavedModel's root object.

    `control_chars` is the tokenizer's control-character rule (see
    `tokenization.CONTROL_CHAR_RULES`), kept in the root's `control_chars`.

    `bert_pack_inputs` takes `seq_length` as a tensor (a Python int at the
    call is converted), so one SavedModel serves every length up to any
    size; `max_seq_length` only bounds the padded width built before the
    result is cut to `seq_length`.
    """
    tokenizer = text_graph.GraphTokenizer(vocab_file, do_lower_case, control_chars)
    root = _Callable()
    root.tokenizer = tokenizer
    _with_assets(root, vocab_file, do_lower_case, [])
    root.control_chars = tf.Variable(control_chars, trainable=False, name="control_chars")
    root.vocab_file = tokenizer.vocab_file

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="sentences")])
    def tokenize(strings):
        # Words are what Google's basic tokenizer yields; tokenizing each
        # word again gives its pieces (normalisation is idempotent).
        words = tf.strings.split(tokenizer.normalize(strings))
        pieces = tokenizer.tokenize(words.flat_values)
        return tf.RaggedTensor.from_row_splits(pieces, words.row_splits)

    @tf.function(input_signature=[])
    def special_tokens():
        return tokenizer.get_special_tokens_dict()

    @tf.function(autograph=False)
    def bert_pack_inputs(segments, seq_length=seq_length):
        segments = [tf.cast(_flat_pieces(s), tf.int32) for s in segments]
        seq_length = tf.cast(seq_length, tf.int32)
        tf.debugging.assert_greater_equal(
            seq_length, len(segments) + 2,
            message="bert_pack_inputs: seq_length leaves no room for tokens")
        # Truncate for the requested length, pack at a fixed width, then cut.
        segments = text_graph.truncate_segments(segments, seq_length - len(segments) - 1)
        packed = tokenizer.pack(segments, max_seq_length)
        padding = tokenizer.special_tokens["padding_id"]
        extra = tf.maximum(0, seq_length - max_seq_length)
        return {key: tf.pad(value[:, :seq_length], [[0, 0], [0, extra]],
                            constant_values=padding if key == "input_word_ids" else 0)
                for key, value in packed.items()}

    for ragged_rank in (1, 2):
        for count in (1, 2):
            bert_pack_inputs.get_concrete_function(
                [tf.RaggedTensorSpec([None] * (ragged_rank + 1), tf.int32)] * count,
                seq_length=tf.TensorSpec([], tf.int32))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="sentences")])
    def preprocess(strings):
        return tokenizer.pack([tokenizer.tokenize(strings)], seq_length)

    root.tokenize = _Callable()
    root.tokenize.__call__ = tokenize
    root.tokenize.get_special_tokens_dict = _Callable()
    root.tokenize.get_special_tokens_dict.__call__ = special_tokens
    root.bert_pack_inputs = _Callable()
    root.bert_pack_inputs.__call__ = bert_pack_inputs
    root.__call__ = preprocess
    return root


def _has_mlm_head(source: pretrained.Pretrained, report) -> bool:
    if source.format == "object":
        from bert_tf import checkpoints

        return any("masked_lm" in name for name in checkpoints.list_checkpoint(source.checkpoint))
    return report is not None and any(
        name.startswith("cls/predictions/") for name in report.restored)


def export(source: pretrained.Pretrained, export_dir: str, seq_length: int = 128,
           control_chars: str = tokenization.DEFAULT_CONTROL_CHARS) -> dict:
    """Writes `export_dir/preprocessor` and `export_dir/encoder`.

    The preprocessor tokenizes with control-character rule `control_chars`.

    The folder appears only when both are complete (a previous export in
    its place stays until then). Returns {"mlm": bool} saying whether the
    encoder got an `.mlm` head.
    """
    tokenization.check_control_chars(control_chars)
    if not source.vocab_file:
        raise ValueError("Exporting needs a vocabulary: pass --vocab_file")
    if source.do_lower_case is None:
        raise ValueError("The model does not say whether it is cased: pass --do_lower_case")
    if not 3 <= seq_length <= source.config.max_position_embeddings:
        raise ValueError(f"--seq_length {seq_length} must be in [3, "
                         f"{source.config.max_position_embeddings}]")
    pretrainer = modeling.BertPretrainer(source.config)
    report = source.restore(pretrainer)
    with_mlm = _has_mlm_head(source, report)

    with atomic_io.staged_folder(export_dir) as staging:
        config_file = os.path.join(staging, CONFIG_ASSET)
        source.config.to_json_file(config_file)
        encoder = encoder_module(pretrainer.encoder, source.vocab_file, source.do_lower_case,
                                 config_file, pretrainer if with_mlm else None)
        tf.saved_model.save(encoder, os.path.join(staging, ENCODER_DIR))
        preprocessor = preprocessor_module(source.vocab_file, source.do_lower_case,
                                           seq_length, source.config.max_position_embeddings,
                                           control_chars)
        tf.saved_model.save(preprocessor, os.path.join(staging, PREPROCESSOR_DIR))
        os.unlink(config_file)
    return {"mlm": with_mlm}


# --- loading ----------------------------------------------------------------

def _asset_path(asset) -> str:
    return asset.asset_path.numpy().decode("utf-8")


def _config_from_outputs(module, vocab_file: str | None) -> modeling.BertConfig:
    """A best guess at the config of an encoder exported elsewhere."""
    probe = {name: tf.constant([[0, 0]], tf.int32) for name in modeling.ENCODER_INPUTS}
    probe["input_mask"] = tf.ones_like(probe["input_mask"])
    outputs = module(probe, training=False)
    hidden = int(outputs["pooled_output"].shape[-1])
    vocab_size = 1
    if vocab_file:
        with open(vocab_file, encoding="utf-8") as f:
            vocab_size = sum(1 for _ in f)
    return modeling.BertConfig(vocab_size=vocab_size, hidden_size=hidden,
                               num_hidden_layers=len(outputs["encoder_outputs"]),
                               num_attention_heads=1, intermediate_size=4 * hidden)


def resolve(handle: str, vocab_file: str | None = None,
            do_lower_case: bool | None = None) -> pretrained.Pretrained:
    """Config, vocabulary and case of an encoder SavedModel (no weights to restore:
    they live in the SavedModel). Explicit arguments win over its assets."""
    module = load(handle)
    if vocab_file is None and hasattr(module, "vocab_file"):
        vocab_file = _asset_path(module.vocab_file)
    if do_lower_case is None and hasattr(module, "do_lower_case"):
        do_lower_case = bool(module.do_lower_case.numpy())
    if hasattr(module, "bert_config_file"):
        config = modeling.BertConfig.from_json_file(_asset_path(module.bert_config_file))
    else:
        config = _config_from_outputs(module, vocab_file)
    return pretrained.Pretrained(config=config, vocab_file=vocab_file,
                                 do_lower_case=do_lower_case, checkpoint=None, format="none")


@dataclasses.dataclass(frozen=True)
class HubEncoderConfig:
    """What `BertClassifier` and feature extraction read from an encoder."""

    hidden_size: int
    num_hidden_layers: int
    initializer_range: float = 0.02


def _keras_name(variable) -> str:
    # Keras 3 optimizers build slot names from variable names; ':' and '/'
    # are not allowed there.
    return variable.name.split(":")[0].replace("/", "_")


class HubEncoder(keras.layers.Layer):
    """A TF-Hub BERT encoder SavedModel as a Keras 3 layer.

    Called like `BertEncoder` (a dict of int32 `input_word_ids`,
    `input_mask`, `input_type_ids`), it returns the SavedModel's outputs.
    Its variables are the SavedModel's own, re-wrapped under Keras-safe
    names, so AdamW and checkpoints work on them.

    With an encoder exported by `export_hub.py` to export/encoder::

        encoder = HubEncoder("export/encoder")
        classifier = modeling.BertClassifier(encoder, num_labels=2)
    """

    def __init__(self, handle: str, trainable: bool = True, name: str = "hub_encoder", **kwargs):
        super().__init__(trainable=trainable, name=name, **kwargs)
        self.handle = handle
        module = load(handle)
        self._module = module
        self.vocab_file = _asset_path(module.vocab_file) if hasattr(module, "vocab_file") else None
        self.do_lower_case = (bool(module.do_lower_case.numpy())
                              if hasattr(module, "do_lower_case") else None)
        trainable_ids = {id(v) for v in module.trainable_variables}
        self.hub_weights = [
            keras.Variable(initializer=v, trainable=trainable and id(v) in trainable_ids,
                           dtype=v.dtype, shape=v.shape, name=_keras_name(v))
            for v in module.variables]
        probe = self._module_call(modeling.dummy_inputs(1, 2), training=False)
        config = (modeling.BertConfig.from_json_file(_asset_path(module.bert_config_file))
                  if hasattr(module, "bert_config_file") else None)
        self.config = HubEncoderConfig(
            hidden_size=int(probe["pooled_output"].shape[-1]),
            num_hidden_layers=len(probe["encoder_outputs"]),
            initializer_range=config.initializer_range if config else 0.02)
        self.built = True

    def _module_call(self, inputs, training):
        inputs = {name: tf.cast(inputs[name], tf.int32) for name in modeling.ENCODER_INPUTS}
        return self._module(inputs, training=bool(training))

    def call(self, inputs, training=False):
        if "input_mask" not in inputs or "input_type_ids" not in inputs:
            ids = tf.cast(inputs["input_word_ids"], tf.int32)
            inputs = {"input_word_ids": ids,
                      "input_mask": inputs.get("input_mask", tf.ones_like(ids)),
                      "input_type_ids": inputs.get("input_type_ids", tf.zeros_like(ids))}
        outputs = self._module_call(inputs, training)
        return {"sequence_output": outputs["sequence_output"],
                "pooled_output": outputs["pooled_output"],
                "encoder_outputs": list(outputs["encoder_outputs"])}

    def get_config(self):
        return {"handle": self.handle, "trainable": self.trainable, "name": self.name}
