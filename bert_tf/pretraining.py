"""Masked-LM + next-sentence pretraining on the shared trainer.

`PretrainingTask` defines the two losses exactly as Google's
`run_pretraining.py` does: the masked-LM loss is the weighted mean negative
log-likelihood over the real (weight 1) predictions, the NSP loss the mean
cross-entropy, and the training loss their sum. `run_pretraining(settings)`
is the script's body as a library call.
"""

from __future__ import annotations

import dataclasses
import os

import tensorflow as tf
from absl import logging

from bert_tf import input_pipeline, modeling, pretrained, text_files, trainer


def masked_lm_cross_entropy(logits, labels):
    """Per-prediction negative log-likelihood and top-1 correctness.

    Same values and gradients as `tf.nn.sparse_softmax_cross_entropy_with_logits`,
    but faster on CPU where the vocabulary-wide softmax is a large share of a
    small model's step: the softmax is one oneDNN kernel, and its output serves
    the loss, the gradient (`probs - one_hot`) and the accuracy. The log
    normaliser is read off the largest probability, which cannot underflow
    (it is at least 1/vocab_size), so the loss stays finite however wrong the
    prediction. A prediction counts as correct when the label's logit equals
    the maximum (argmax, up to ties).

    logits: [..., vocab] (cast to float32); labels: [...] int32.
    """
    logits = tf.cast(logits, tf.float32)
    shape = tf.shape(labels)
    flat_logits = tf.reshape(logits, [-1, tf.shape(logits)[-1]])
    flat_labels = tf.reshape(tf.cast(labels, tf.int32), [-1])
    nll, correct = _softmax_cross_entropy(flat_logits, flat_labels)
    return tf.reshape(nll, shape), tf.reshape(correct, shape)


def _softmax_cross_entropy(logits, labels):
    index = tf.stack([tf.range(tf.shape(labels)[0]), labels], axis=1)
    # Constants to the gradient, which `grad` below gives in full.
    label_logit = tf.gather_nd(tf.stop_gradient(logits), index)
    top_logit = tf.reduce_max(tf.stop_gradient(logits), axis=-1)

    @tf.custom_gradient
    def nll_of(logits):
        probs = tf.nn.softmax(logits)
        # log(sum(exp(l - top))) = -log(max(probs)).
        nll = top_logit - label_logit - tf.math.log(tf.reduce_max(probs, axis=-1))

        def grad(upstream):
            return tf.tensor_scatter_nd_sub(probs * upstream[:, tf.newaxis], index, upstream)

        return nll, grad

    return nll_of(logits), tf.greater_equal(label_logit, top_logit)


class PretrainingTask:
    def __init__(self, config: modeling.BertConfig, source: pretrained.Pretrained | None = None):
        self.config = config
        self.source = source

    def build_model(self):
        return modeling.BertPretrainer(self.config)

    def initialize(self, model) -> None:
        # Continued pretraining: encoder weights are required, heads are
        # used when the checkpoint has them; optimizer slots never are.
        if self.source is not None and self.source.checkpoint:
            report = self.source.restore(model, required=("bert/",))
            if report is not None:
                logging.info("Initialised %d variables from %s (fresh: %s)",
                             len(report.restored), self.source.checkpoint,
                             ", ".join(report.missing) or "none")

    def loss_counts(self, batch):
        return {"masked_lm": tf.reduce_sum(batch["masked_lm_weights"]),
                "next_sentence": tf.cast(tf.shape(batch["next_sentence_labels"])[0], tf.float32)}

    def forward(self, model, batch, training: bool) -> trainer.TaskOutputs:
        outputs = model(batch, training=training)
        mlm_logits = outputs["masked_lm_logits"]
        weights = tf.cast(batch["masked_lm_weights"], tf.float32)
        mlm_ids = tf.cast(batch["masked_lm_ids"], tf.int32)
        mlm_nll, mlm_correct = masked_lm_cross_entropy(mlm_logits, mlm_ids)
        mlm_correct = tf.cast(mlm_correct, tf.float32) * weights

        nsp_logits = outputs["next_sentence_logits"]
        nsp_labels = tf.reshape(tf.cast(batch["next_sentence_labels"], tf.int32), [-1])
        nsp_nll = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=nsp_labels, logits=nsp_logits)
        nsp_correct = tf.cast(tf.equal(tf.argmax(nsp_logits, -1, output_type=tf.int32), nsp_labels),
                              tf.float32)
        count = tf.cast(tf.shape(nsp_labels)[0], tf.float32)
        return trainer.TaskOutputs(
            losses={"masked_lm": tf.reduce_sum(mlm_nll * weights),
                    "next_sentence": tf.reduce_sum(nsp_nll)},
            metrics={"masked_lm_accuracy": (tf.reduce_sum(mlm_correct), tf.reduce_sum(weights)),
                     "next_sentence_accuracy": (tf.reduce_sum(nsp_correct), count)})


@dataclasses.dataclass
class PretrainingSettings:
    """Everything `run_pretraining.py`'s flags say, as one value."""

    config: modeling.BertConfig
    input_file: str
    output_dir: str
    source: pretrained.Pretrained | None = None
    eval_input_file: str | None = None
    do_train: bool = True
    do_eval: bool = False
    max_seq_length: int = 128
    max_predictions_per_seq: int = 20
    train_batch_size: int = 32
    eval_batch_size: int = 8
    max_eval_steps: int = 100
    eval_all_checkpoints: bool = False
    dynamic_masking: input_pipeline.DynamicMasking | None = None
    num_train_steps: int = 100_000
    learning_rate: float = 5e-5
    num_warmup_steps: int = 10_000
    training: trainer.TrainingOptions = dataclasses.field(default_factory=trainer.TrainingOptions)


def run_pretraining(settings: PretrainingSettings, strategy=None) -> dict:
    """Trains (resuming from output_dir) and/or evaluates; returns eval results."""
    if not (settings.do_train or settings.do_eval):
        raise ValueError("At least one of --do_train or --do_eval must be set")
    if settings.max_seq_length > settings.config.max_position_embeddings:
        raise ValueError(f"--max_seq_length {settings.max_seq_length} exceeds the model's "
                         f"max_position_embeddings {settings.config.max_position_embeddings}")
    os.makedirs(settings.output_dir, exist_ok=True)
    task = PretrainingTask(settings.config, settings.source)
    config = trainer.TrainerConfig.from_options(
        settings.training, model_dir=settings.output_dir,
        num_train_steps=settings.num_train_steps, learning_rate=settings.learning_rate,
        num_warmup_steps=settings.num_warmup_steps)
    runner = trainer.Trainer(task, config, strategy)
    seed = runner.config.seed

    def dataset_fn(files, batch_size, is_training):
        def fn(context):
            return input_pipeline.pretraining_dataset(
                files, batch_size, settings.max_seq_length, settings.max_predictions_per_seq,
                is_training=is_training, input_context=context, seed=seed,
                dynamic_masking=settings.dynamic_masking)
        return fn

    if settings.do_train:
        with input_pipeline.naming_bad_files(settings.input_file):
            runner.train(dataset_fn(settings.input_file, settings.train_batch_size, True))
    elif not runner.restore_latest():
        task.initialize(runner.model)

    results = {}
    if settings.do_eval:
        files = settings.eval_input_file or settings.input_file
        eval_fn = dataset_fn(files, settings.eval_batch_size, False)
        with input_pipeline.naming_bad_files(files):
            if settings.eval_all_checkpoints:
                _evaluate_history(runner, eval_fn, settings.max_eval_steps)
            values = runner.evaluate(eval_fn, max_steps=settings.max_eval_steps)
        results = {
            "masked_lm_accuracy": values["masked_lm_accuracy"],
            "masked_lm_loss": values["masked_lm"],
            "next_sentence_accuracy": values["next_sentence_accuracy"],
            "next_sentence_loss": values["next_sentence"],
            "loss": values["loss"],
            "global_step": int(runner.global_step.numpy()),
        }
        text = text_files.write_eval_results(
            os.path.join(settings.output_dir, "eval_results.txt"), results)
        print("***** Eval results *****\n" + text, end="", flush=True)
    return results


def _evaluate_history(runner, eval_fn, max_steps) -> None:
    """Evaluates every kept checkpoint, oldest first, so that TensorBoard's
    eval curve covers the whole run; the latest weights are restored after."""
    state = tf.train.get_checkpoint_state(runner.config.model_dir)
    paths = list(state.all_model_checkpoint_paths) if state else []
    for path in paths:
        runner.checkpoint.restore(path).expect_partial()
        values = runner.evaluate(eval_fn, max_steps=max_steps)
        logging.info("%s: loss %.4f  masked_lm_accuracy %.4f  next_sentence_accuracy %.4f",
                     path, values["loss"], values["masked_lm_accuracy"],
                     values["next_sentence_accuracy"])
    runner.restore_latest()
