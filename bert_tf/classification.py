"""Fine-tuning a pretrained encoder on a sentence(-pair) classification task.

`ClassificationTask` plugs the classifier into the shared trainer;
`run_classifier(settings)` is the whole of `run_classifier.py` (train,
evaluate, predict, export) as a library call, usable from a notebook.
"""

from __future__ import annotations

import dataclasses
import os
import random

import numpy as np
import tensorflow as tf
from absl import logging

from bert_tf import (classifier_data, metrics, modeling, pretrained, run_folders,
                     text_files, tokenization, trainer)


class ClassificationTask:
    """Softmax cross-entropy (or squared error for regression) on the pooled output."""

    def __init__(self, config: modeling.BertConfig, num_labels: int, is_regression: bool = False,
                 source: pretrained.Pretrained | None = None, dropout_rate: float = 0.1,
                 encoder_factory=None):
        self.config = config
        self.num_labels = 1 if is_regression else num_labels
        self.is_regression = is_regression
        self.source = source
        self.dropout_rate = dropout_rate
        self.encoder_factory = encoder_factory or (lambda: modeling.BertEncoder(config))
        self._initialized = None

    def build_model(self):
        return modeling.BertClassifier(self.encoder_factory(), self.num_labels, self.dropout_rate)

    def initialize(self, model) -> None:
        # run_classifier initialises before training starts (to check the
        # checkpoint first); the trainer's own call then has nothing to do.
        if self._initialized is model:
            return
        if self.source is not None and self.source.checkpoint:
            report = self.source.restore(model)
            if report is not None:
                logging.info("Restored %d variables from %s", len(report.restored),
                             self.source.checkpoint)
        self._initialized = model

    def loss_counts(self, batch):
        _, labels = batch
        return {"classification": tf.cast(tf.shape(labels)[0], tf.float32)}

    def forward(self, model, batch, training: bool) -> trainer.TaskOutputs:
        inputs, labels = batch
        inputs = dict(inputs)
        example_index = inputs.pop("example_index", None)
        logits = model(inputs, training=training)
        predictions = {"logits": logits}
        if example_index is not None:
            predictions["example_index"] = example_index
        if self.is_regression:
            errors = tf.square(logits[:, 0] - tf.cast(labels, tf.float32))
            return trainer.TaskOutputs(losses={"classification": tf.reduce_sum(errors)},
                                       predictions=predictions)
        nll = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
        correct = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32),
                                                 labels), tf.float32))
        count = tf.cast(tf.shape(labels)[0], tf.float32)
        return trainer.TaskOutputs(losses={"classification": tf.reduce_sum(nll)},
                                   metrics={"accuracy": (correct, count)},
                                   predictions=predictions)


@dataclasses.dataclass
class ClassifierSettings:
    """Everything `run_classifier.py`'s flags say, as one value."""

    task_name: str
    data_dir: str
    output_dir: str
    source: pretrained.Pretrained
    do_train: bool = True
    do_eval: bool = True
    do_predict: bool = False
    max_seq_length: int = 128
    doc_stride: int | None = None
    train_batch_size: int = 32
    eval_batch_size: int = 64
    predict_batch_size: int = 64
    learning_rate: float = 5e-5
    num_train_epochs: float = 3.0
    warmup_proportion: float = 0.1
    max_train_examples: int | None = None
    bucket_by_length: bool = True
    bucket_window_batches: int | None = classifier_data.DEFAULT_BUCKET_WINDOW_BATCHES
    skip_bad_rows: bool = False
    processor_kwargs: dict = dataclasses.field(default_factory=dict)
    training: trainer.TrainingOptions = dataclasses.field(default_factory=trainer.TrainingOptions)
    export_dir: str | None = None
    encoder_factory: object = None
    # The tokenizer's control-character rule (tokenization.CONTROL_CHAR_RULES),
    # for training, evaluation, prediction and the serving export alike.
    control_chars: str = tokenization.DEFAULT_CONTROL_CHARS


# Settings that must not change between runs sharing an output_dir, or the
# checkpoints found there would silently belong to another model.
_RUN_IDENTITY = ("task_name", "max_seq_length", "num_labels", "model")


def run_classifier(settings: ClassifierSettings, strategy=None) -> dict:
    """Trains, evaluates and predicts as asked; returns the eval metrics.

    Only what is asked runs: without `do_train` nothing is trained, without
    `do_eval` eval_results.txt is left alone. Every file a split needs is
    read (and its rows checked) before training starts.
    """
    if not (settings.do_train or settings.do_eval or settings.do_predict or settings.export_dir):
        raise ValueError("At least one of --do_train, --do_eval, --do_predict or "
                         "--export_dir must be set")
    source = settings.source
    processor = classifier_data.get_processor(
        settings.task_name, skip_bad_rows=settings.skip_bad_rows, **settings.processor_kwargs)
    is_regression = processor.is_regression
    if settings.do_train or settings.do_eval or settings.do_predict:
        if not os.path.isdir(settings.data_dir):
            raise FileNotFoundError(f"--data_dir {settings.data_dir!r} is not a folder")
    tokenizer = tokenization.FullTokenizer(source.vocab_file, source.do_lower_case,
                                           settings.control_chars)
    label_list = [] if is_regression else processor.get_labels()

    train_examples, total_train = [], 0
    if settings.do_train:
        train_examples = processor.get_train_examples(settings.data_dir)
        total_train = len(train_examples)
        if settings.max_train_examples and total_train > settings.max_train_examples:
            rng = random.Random(settings.training.seed)
            train_examples = rng.sample(train_examples, settings.max_train_examples)
    # Found now rather than after a long training run.
    dev_examples = processor.get_dev_examples(settings.data_dir) if settings.do_eval else []
    test_examples = processor.get_test_examples(settings.data_dir) if settings.do_predict else []
    num_labels = processor.num_labels
    identity = {"task_name": settings.task_name, "max_seq_length": settings.max_seq_length,
                "num_labels": num_labels, "model": source.config.to_dict(),
                "control_chars": settings.control_chars}
    new_output_dir = run_folders.check_output_dir(settings.output_dir, identity, _RUN_IDENTITY)

    task = ClassificationTask(source.config, num_labels, is_regression, source,
                              encoder_factory=settings.encoder_factory)
    num_train_steps, train_features = 1, []
    if settings.do_train:
        train_features = classifier_data.convert_examples_to_features(
            train_examples, label_list, settings.max_seq_length, tokenizer,
            settings.doc_stride, is_regression)
        num_train_steps = max(1, int(len(train_features) / settings.train_batch_size
                                     * settings.num_train_epochs))
    trainer_config = trainer.TrainerConfig.from_options(
        settings.training, model_dir=settings.output_dir, num_train_steps=num_train_steps,
        learning_rate=settings.learning_rate,
        num_warmup_steps=int(num_train_steps * settings.warmup_proportion))
    _log_recipe(settings, trainer_config, len(train_examples), total_train,
                len(train_features), len(dev_examples), len(test_examples))
    os.makedirs(settings.output_dir, exist_ok=True)
    runner = trainer.Trainer(task, trainer_config, strategy)

    # The starting weights load (or the checkpoint in output_dir restores)
    # before the run's identity is written: a checkpoint that does not fit
    # leaves the folder as it was.
    if new_output_dir or not settings.do_train:
        resumed = runner.restore_latest()
        if not resumed:
            task.initialize(runner.model)
    if new_output_dir:
        run_folders.write_identity(settings.output_dir, identity)
    if not settings.do_train:
        logging.info("Using %s (step %d); nothing is trained without --do_train",
                     tf.train.latest_checkpoint(settings.output_dir) if resumed
                     else run_folders.model_description(settings.source, settings.encoder_factory),
                     int(runner.global_step.numpy()))
    else:
        seed = trainer_config.seed
        runner.train(lambda ctx: classifier_data.classifier_dataset(
            train_features, settings.train_batch_size, is_training=True, seed=seed,
            bucket_by_length=settings.bucket_by_length,
            bucket_window_batches=settings.bucket_window_batches,
            max_seq_length=settings.max_seq_length, input_context=ctx))

    results = {}
    if settings.do_eval:
        outputs = _predict(runner, settings, dev_examples, label_list, tokenizer, is_regression,
                           settings.eval_batch_size)
        results = _eval_metrics(settings.task_name, outputs, dev_examples, label_list,
                                is_regression)
        results["global_step"] = int(runner.global_step.numpy())
        path = os.path.join(settings.output_dir, "eval_results.txt")
        run_folders.note_replacing(path)
        text_files.write_eval_results(path, results)
        summary = "  ".join(f"{k} = {v:.4f}" if isinstance(v, float) else f"{k} = {v}"
                            for k, v in sorted(results.items()))
        print(f"***** Eval results ({len(dev_examples)} examples) *****\n{summary}", flush=True)

    if settings.do_predict:
        logits = _predict(runner, settings, test_examples, label_list, tokenizer, is_regression,
                          settings.predict_batch_size)
        path = os.path.join(settings.output_dir, "test_results.tsv")
        run_folders.note_replacing(path)
        # One column of scores for regression, class probabilities otherwise.
        classifier_data.write_test_results(
            path, logits[:, None] if is_regression else _softmax(logits))
        submission = classifier_data.GLUE_SUBMISSION_FILES.get(
            classifier_data.canonical_task_name(settings.task_name))
        if submission:
            run_folders.note_replacing(os.path.join(settings.output_dir, submission))
            classifier_data.write_glue_submission(
                settings.output_dir, settings.task_name,
                logits if is_regression else logits.argmax(-1), label_list)
        logging.info("Wrote predictions for %d test examples to %s", len(test_examples), path)

    if settings.export_dir:
        from bert_tf import serving

        serving.export_classifier(runner.model, settings.export_dir, source.vocab_file,
                                  source.do_lower_case, settings.max_seq_length,
                                  label_list, is_regression, settings.control_chars)
        logging.info("Exported the serving SavedModel to %s", settings.export_dir)
    return results


def _log_recipe(settings, config, used, total, features, dev, test) -> None:
    """One line that says what this run does, whatever the flags' defaults."""
    model = run_folders.model_description(settings.source, settings.encoder_factory)
    parts = [f"task {settings.task_name}", f"model {model}",
             f"max_seq_length {settings.max_seq_length}",
             f"control_chars {settings.control_chars}"]
    if settings.do_train:
        subset = (f" (a random subset: --max_train_examples={settings.max_train_examples})"
                  if used < total else "")
        parts += [f"train examples {used} of {total}{subset}, {features} features",
                  f"{settings.num_train_epochs:g} epoch(s) = {config.num_train_steps} steps "
                  f"of batch {settings.train_batch_size}",
                  f"learning_rate {settings.learning_rate:g}",
                  f"warm-up {config.num_warmup_steps} steps "
                  f"(warmup_proportion {settings.warmup_proportion:g})"]
    else:
        parts.append("no training")
    if settings.do_eval:
        parts.append(f"eval {dev} dev examples, batch {settings.eval_batch_size}")
    if settings.do_predict:
        parts.append(f"predict {test} test examples, batch {settings.predict_batch_size}")
    logging.info("Run: %s; output_dir %s", "; ".join(parts), settings.output_dir)


def _predict(runner, settings, examples, label_list, tokenizer, is_regression, batch_size):
    """Logits per example (windows of long examples averaged), in input order."""
    features = classifier_data.convert_examples_to_features(
        examples, label_list, settings.max_seq_length, tokenizer, settings.doc_stride,
        is_regression)
    outputs = runner.predict(lambda ctx: classifier_data.classifier_dataset(
        features, batch_size, is_training=False, bucket_by_length=settings.bucket_by_length,
        max_seq_length=settings.max_seq_length, input_context=ctx))
    logits = classifier_data.aggregate_window_logits(
        outputs["logits"], outputs["example_index"], len(examples))
    return logits[:, 0] if is_regression else logits


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(-1, keepdims=True))
    return shifted / shifted.sum(-1, keepdims=True)


def _eval_metrics(task_name, logits, examples, label_list, is_regression) -> dict:
    if is_regression:
        labels = np.array([float(e.label) for e in examples])
        loss = float(np.mean((logits - labels) ** 2))
    else:
        index = {label: i for i, label in enumerate(label_list)}
        labels = np.array([index[e.label] for e in examples])
        log_probs = np.log(np.maximum(_softmax(logits), 1e-30))
        loss = float(-log_probs[np.arange(len(labels)), labels].mean())
    # Any regression task (STS-B or a generic one) is scored like STS-B.
    values = metrics.glue_metrics("sts-b" if is_regression else task_name.lower(),
                                  logits, labels)
    results = {f"eval_{k}": float(v) for k, v in values.items()}
    results["eval_loss"] = loss
    return results
