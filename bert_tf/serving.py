"""Serving SavedModels: raw strings in, class probabilities out.

Tokenization runs in the graph (`text_graph.GraphTokenizer`), so a client
needs no tokenizer and no bert_tf: `import tensorflow_text` (which registers
the tokenizer's ops, as for any TF-Hub BERT preprocessor) and
`tf.saved_model.load(export_dir)`. `bert_tf.serving.load` does both.

Signatures of an exported classifier:
  serving_default(text: string [batch]) -> probabilities [batch, labels]
  serve_pair(text_a, text_b: string [batch]) -> probabilities
(regression models return `scores [batch]` instead of probabilities.)
"""

from __future__ import annotations

import json
import os

import tensorflow as tf

from bert_tf import atomic_io, text_graph, tokenization


class ClassifierServer(tf.Module):
    """A fine-tuned classifier and its tokenizer, as one exportable module."""

    def __init__(self, model, vocab_file: str, do_lower_case: bool, seq_length: int,
                 labels: list[str], is_regression: bool = False,
                 control_chars: str = tokenization.DEFAULT_CONTROL_CHARS):
        super().__init__(name="classifier_server")
        self.model = model
        self.tokenizer = text_graph.GraphTokenizer(vocab_file, do_lower_case, control_chars)
        self.seq_length = seq_length
        self.is_regression = is_regression
        self.labels = tf.constant(labels or [""], tf.string)

    def _outputs(self, inputs):
        logits = self.model(inputs, training=False)
        if self.is_regression:
            return {"scores": logits[:, 0]}
        return {"probabilities": tf.nn.softmax(logits, axis=-1)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def serve(self, text):
        inputs = self.tokenizer.pack([self.tokenizer.tokenize(text)], self.seq_length)
        return self._outputs(inputs)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text_a"),
                                  tf.TensorSpec([None], tf.string, name="text_b")])
    def serve_pair(self, text_a, text_b):
        segments = [self.tokenizer.tokenize(text_a), self.tokenizer.tokenize(text_b)]
        return self._outputs(self.tokenizer.pack(segments, self.seq_length))


def export_classifier(model, export_dir: str, vocab_file: str, do_lower_case: bool,
                      seq_length: int, labels: list[str], is_regression: bool = False,
                      control_chars: str = tokenization.DEFAULT_CONTROL_CHARS) -> str:
    """Writes the serving SavedModel; the folder appears only when complete.

    `control_chars` is the tokenizer's control-character rule (see
    `tokenization.CONTROL_CHAR_RULES`), recorded in labels.json.
    """
    server = ClassifierServer(model, vocab_file, do_lower_case, seq_length, labels,
                              is_regression, control_chars)
    with atomic_io.staged_folder(export_dir) as staging:
        tf.saved_model.save(server, staging, signatures={
            "serving_default": server.serve, "serve_pair": server.serve_pair})
        with open(os.path.join(staging, "labels.json"), "w", encoding="utf-8") as f:
            json.dump({"labels": labels, "is_regression": is_regression,
                       "seq_length": seq_length, "do_lower_case": do_lower_case,
                       "control_chars": control_chars}, f)
    return export_dir


def load(export_dir: str):
    """`tf.saved_model.load` with tensorflow-text's ops registered first."""
    import tensorflow_text  # noqa: F401  (registers the ops the graph uses)

    return tf.saved_model.load(export_dir)
