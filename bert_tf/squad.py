"""Fine-tuning a pretrained encoder for SQuAD 1.1 / 2.0 span extraction.

`BertSpanLabeler` is the model (encoder + one linear layer giving a start
and an end logit per token, Google's `cls/squad` weights); `SpanTask` plugs
it into the shared trainer; `run_squad(settings)` is the whole of
`run_squad.py` (train, predict, evaluate, export) as a library call.
"""

from __future__ import annotations

import dataclasses
import json
import os

import keras
import tensorflow as tf
from absl import logging

from bert_tf import (atomic_io, modeling, pretrained, run_folders, squad_data, squad_metrics,
                     squad_postprocess, text_files, tokenization, trainer)

# Settings that must not change between runs sharing an output_dir, or the
# checkpoints found there would silently belong to another model.
_RUN_IDENTITY = ("task_name", "max_seq_length", "model")


@keras.saving.register_keras_serializable(package="bert_tf")
class BertSpanLabeler(keras.Model):
    """Encoder + a linear layer scoring each token as answer start and end.

    Called with the encoder inputs (int32 `[batch, seq]`), returns float32
    `start_logits` and `end_logits` `[batch, seq]`. The layer is Google's
    `cls/squad/output_weights [2, hidden]` and `cls/squad/output_bias [2]`
    (truncated normal, stddev initializer_range), so fine-tuned Google SQuAD
    checkpoints restore and ours save in Google's format.

    >>> encoder = modeling.BertEncoder(modeling.BertConfig(vocab_size=100,
    ...     hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64))
    >>> out = BertSpanLabeler(encoder)(modeling.dummy_inputs(batch_size=2, seq_length=5))
    >>> {name: tuple(value.shape) for name, value in out.items()}
    {'start_logits': (2, 5), 'end_logits': (2, 5)}
    """

    def __init__(self, encoder: keras.Model, name: str = "span_labeler", **kwargs):
        super().__init__(name=name, **kwargs)
        self.encoder = encoder
        config = encoder.config
        # Not `head`: a classifier checkpoint's head must not restore into it.
        self.span_head = modeling.WeightsTimesInput(2, config.hidden_size,
                                                    config.initializer_range, name="squad")
        self.built = True

    def call(self, inputs, training=False):
        inputs = {k: inputs[k] for k in modeling.ENCODER_INPUTS if k in inputs}
        sequence = self.encoder(inputs, training=training)["sequence_output"]
        # [batch * seq, hidden] x [hidden, 2], as Google's create_model.
        shape = tf.shape(sequence)
        logits = self.span_head(tf.reshape(sequence, [-1, sequence.shape[-1]]))
        logits = tf.cast(tf.reshape(logits, [shape[0], shape[1], 2]), tf.float32)
        return {"start_logits": logits[:, :, 0], "end_logits": logits[:, :, 1]}

    def get_config(self):
        return {**keras.layers.Layer.get_config(self),
                "encoder": keras.saving.serialize_keras_object(self.encoder)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        encoder = keras.saving.deserialize_keras_object(config.pop("encoder"))
        return cls(encoder, **config)

    def checkpoint_map(self) -> dict[str, keras.Variable]:
        table = self.encoder.checkpoint_map()
        table["cls/squad/output_weights"] = self.span_head.output_weights
        table["cls/squad/output_bias"] = self.span_head.output_bias
        return table


def _restore_hf_span_head(model, folder: str) -> None:
    """A Hugging Face BertForQuestionAnswering keeps the span layer as
    `qa_outputs` ([2, hidden] weight, [2] bias: start row, then end row,
    as Google's); other Hugging Face models have none, and it stays new."""
    from bert_tf import checkpoints

    tensors = checkpoints.read_hf_weights(folder)
    weight, bias = tensors.get("qa_outputs.weight"), tensors.get("qa_outputs.bias")
    head = model.span_head
    if weight is None or bias is None:
        return
    if tuple(weight.shape) != tuple(head.output_weights.shape):
        raise checkpoints.CheckpointError(
            f"{folder}: qa_outputs.weight is {list(weight.shape)}, the span layer needs "
            f"{list(head.output_weights.shape)}")
    head.output_weights.assign(weight)
    head.output_bias.assign(bias)
    logging.info("Restored the span layer from %s (qa_outputs)", folder)


class SpanTask:
    """Google's SQuAD loss: the mean of the start and end positions' softmax
    cross-entropy over the window's tokens."""

    def __init__(self, config: modeling.BertConfig, source: pretrained.Pretrained | None = None,
                 max_seq_length: int | None = None, encoder_factory=None):
        self.config = config
        self.source = source
        self.max_seq_length = max_seq_length
        self.encoder_factory = encoder_factory or (lambda: modeling.BertEncoder(config))
        self._initialized = None

    def build_model(self):
        return BertSpanLabeler(self.encoder_factory())

    def initialize(self, model) -> None:
        if self._initialized is model:
            return
        if self.source is not None and self.source.checkpoint:
            # The pooler is not used for spans (Hugging Face's question-
            # answering models have none): only the encoder proper must load.
            report = self.source.restore(model, required=("bert/embeddings/", "bert/encoder/"))
            if report is not None:
                logging.info("Restored %d variables from %s", len(report.restored),
                             self.source.checkpoint)
            if self.source.format == "hf":
                _restore_hf_span_head(model, self.source.checkpoint)
        self._initialized = model

    def loss_counts(self, batch):
        _, labels = batch
        return {"span": tf.cast(tf.shape(labels["start_positions"])[0], tf.float32)}

    def forward(self, model, batch, training: bool) -> trainer.TaskOutputs:
        inputs, labels = batch
        inputs = dict(inputs)
        feature_index = inputs.pop("feature_index", None)
        outputs = model(inputs, training=training)
        start, end = outputs["start_logits"], outputs["end_logits"]
        start_nll = tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=labels["start_positions"], logits=start)
        end_nll = tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=labels["end_positions"], logits=end)
        count = tf.cast(tf.shape(start)[0], tf.float32)

        def hits(logits, positions):
            best = tf.argmax(logits, -1, output_type=tf.int32)
            return tf.reduce_sum(tf.cast(tf.equal(best, positions), tf.float32))

        predictions = {"start_logits": start, "end_logits": end}
        if feature_index is not None:
            predictions["feature_index"] = feature_index
        return trainer.TaskOutputs(
            losses={"span": tf.reduce_sum(start_nll + end_nll) / 2.0},
            metrics={"start_accuracy": (hits(start, labels["start_positions"]), count),
                     "end_accuracy": (hits(end, labels["end_positions"]), count)},
            predictions=predictions)


@dataclasses.dataclass
class SquadSettings:
    """Everything `run_squad.py`'s flags say, as one value (Google's defaults)."""

    output_dir: str
    source: pretrained.Pretrained
    train_file: str | None = None
    predict_file: str | None = None
    do_train: bool = False
    do_predict: bool = False
    do_eval: bool = False
    max_seq_length: int = 384
    doc_stride: int = 128
    max_query_length: int = 64
    train_batch_size: int = 32
    predict_batch_size: int = 8
    learning_rate: float = 5e-5
    num_train_epochs: float = 3.0
    warmup_proportion: float = 0.1
    n_best_size: int = 20
    max_answer_length: int = 30
    version_2_with_negative: bool = False
    null_score_diff_threshold: float = 0.0
    verbose_logging: bool = False
    training: trainer.TrainingOptions = dataclasses.field(default_factory=trainer.TrainingOptions)
    export_dir: str | None = None
    encoder_factory: object = None
    control_chars: str = tokenization.DEFAULT_CONTROL_CHARS
    bucket_window_batches: int | None = None


def validate_settings(settings: SquadSettings) -> None:
    """Google's validate_flags_or_throw, with the flags named."""
    if not (settings.do_train or settings.do_predict or settings.do_eval or settings.export_dir):
        raise ValueError("At least one of --do_train, --do_predict, --do_eval or --export_dir "
                         "must be set")
    if settings.do_train and not settings.train_file:
        raise ValueError("--do_train needs --train_file")
    if (settings.do_predict or settings.do_eval) and not settings.predict_file:
        raise ValueError("--do_predict and --do_eval need --predict_file")
    positions = settings.source.config.max_position_embeddings
    if settings.max_seq_length > positions:
        raise ValueError(f"--max_seq_length {settings.max_seq_length} exceeds the model's "
                         f"max_position_embeddings {positions}")
    if settings.max_seq_length <= settings.max_query_length + 3:
        raise ValueError(f"--max_seq_length ({settings.max_seq_length}) must be greater than "
                         f"--max_query_length ({settings.max_query_length}) + 3")
    for name in ("doc_stride", "max_query_length", "n_best_size", "train_batch_size",
                 "predict_batch_size"):
        if getattr(settings, name) < 1:
            raise ValueError(f"--{name} must be >= 1, got {getattr(settings, name)}")
    if settings.max_answer_length < 1:
        raise ValueError(f"--max_answer_length must be >= 1, got {settings.max_answer_length}")


def run_squad(settings: SquadSettings, strategy=None) -> dict:
    """Trains, predicts and evaluates as asked; returns the eval metrics.

    Only what is asked runs: without `do_train` nothing is trained (the
    weights are --init_checkpoint's, or the latest checkpoint in
    output_dir). `do_eval` predicts `predict_file` (writing the prediction
    files as `do_predict` does) and scores the predictions with the official
    metric. Both data files are read and checked before training starts.
    """
    validate_settings(settings)
    if settings.source.do_lower_case is None:
        # A model that does not say: Google's default, as the flag's.
        settings = dataclasses.replace(
            settings, source=dataclasses.replace(settings.source, do_lower_case=True))
    source = settings.source
    tokenizer = tokenization.FullTokenizer(source.vocab_file, source.do_lower_case,
                                           settings.control_chars)
    train_examples, skipped = [], []
    if settings.do_train:
        train_examples = squad_data.read_squad_examples(
            settings.train_file, True, settings.version_2_with_negative, skipped=skipped)
        if not train_examples:
            raise ValueError(f"--train_file {settings.train_file}: no usable training question")
    predict_articles, predict_examples = None, []
    if settings.do_predict or settings.do_eval:
        predict_articles = squad_data.read_squad_file(settings.predict_file)
        predict_examples = squad_data.read_squad_examples(
            settings.predict_file, False, articles=predict_articles)
        if settings.do_eval:
            check_references(predict_articles, settings.version_2_with_negative,
                             settings.predict_file)

    # doc_stride and max_query_length are recorded for the tools that read
    # the folder later (explain.py windows a question the way training did),
    # not checked: predicting with other windows is a legitimate choice.
    identity = {"task_name": "squad", "max_seq_length": settings.max_seq_length,
                "doc_stride": settings.doc_stride,
                "max_query_length": settings.max_query_length,
                "num_labels": 2, "model": source.config.to_dict(),
                "control_chars": settings.control_chars}
    new_output_dir = run_folders.check_output_dir(settings.output_dir, identity, _RUN_IDENTITY)

    task = SpanTask(source.config, source, settings.max_seq_length, settings.encoder_factory)
    num_train_steps, train_features = 1, []
    if settings.do_train:
        train_features = squad_data.convert_examples_to_features(
            train_examples, tokenizer, settings.max_seq_length, settings.doc_stride,
            settings.max_query_length, is_training=True)
        # Google's count: questions (not windows) per batch, times epochs.
        num_train_steps = max(1, int(len(train_examples) / settings.train_batch_size
                                     * settings.num_train_epochs))
    trainer_config = trainer.TrainerConfig.from_options(
        settings.training, model_dir=settings.output_dir, num_train_steps=num_train_steps,
        learning_rate=settings.learning_rate,
        num_warmup_steps=int(num_train_steps * settings.warmup_proportion))
    _log_recipe(settings, trainer_config, train_examples, skipped, train_features,
                predict_examples)
    os.makedirs(settings.output_dir, exist_ok=True)
    runner = trainer.Trainer(task, trainer_config, strategy)

    # The starting weights load (or output_dir's checkpoint restores) before
    # the identity is written: a checkpoint that does not fit leaves the
    # folder as it was.
    resumed = False
    if new_output_dir or not settings.do_train:
        resumed = runner.restore_latest()
        if not resumed:
            task.initialize(runner.model)
    if new_output_dir:
        run_folders.write_identity(settings.output_dir, identity)
        _write_model_files(settings)
    if settings.do_train:
        seed = trainer_config.seed
        runner.train(lambda ctx: squad_data.squad_dataset(
            train_features, settings.train_batch_size, is_training=True, seed=seed,
            input_context=ctx, bucket_window_batches=settings.bucket_window_batches))
    else:
        logging.info("Using %s (step %d); nothing is trained without --do_train",
                     tf.train.latest_checkpoint(settings.output_dir) if resumed
                     else run_folders.model_description(settings.source, settings.encoder_factory),
                     int(runner.global_step.numpy()))

    results = {}
    if settings.do_predict or settings.do_eval:
        predictions, _, null_odds = predict(runner, settings, tokenizer, predict_examples)
        if settings.do_eval:
            results = evaluate(predict_articles, predictions, null_odds,
                               settings.version_2_with_negative)
            results["global_step"] = int(runner.global_step.numpy())
            path = os.path.join(settings.output_dir, "eval_results.txt")
            run_folders.note_replacing(path)
            text_files.write_eval_results(path, results)
            summary = "  ".join(f"{k} = {v:.4f}" if isinstance(v, float) else f"{k} = {v}"
                                for k, v in sorted(results.items()))
            print(f"***** Eval results ({len(predict_examples)} questions) *****\n{summary}",
                  flush=True)

    if settings.export_dir:
        export(runner.model, settings)
    return results


def _write_model_files(settings: SquadSettings) -> None:
    """bert_config.json, vocab.txt and the case beside the checkpoints, so
    that --init_checkpoint=<this output_dir> needs no other flag."""
    source = settings.source
    folder = settings.output_dir
    atomic_io.write_text(os.path.join(folder, "bert_config.json"),
                         source.config.to_json_string() + "\n")
    with open(source.vocab_file, encoding="utf-8", newline="") as f:
        atomic_io.write_text(os.path.join(folder, "vocab.txt"), f.read())
    atomic_io.write_text(os.path.join(folder, "tokenizer_config.json"),
                         json.dumps({"do_lower_case": bool(source.do_lower_case)}) + "\n")


def predict(runner, settings: SquadSettings, tokenizer, examples):
    """Predicts every window and writes Google's prediction files; returns
    (predictions, nbest, null_odds)."""
    features = squad_data.convert_examples_to_features(
        examples, tokenizer, settings.max_seq_length, settings.doc_stride,
        settings.max_query_length, is_training=False)
    logging.info("Predicting %d questions (%d windows), batch %d", len(examples),
                 len(features), settings.predict_batch_size)
    if features:
        outputs = runner.predict(lambda ctx: squad_data.squad_dataset(
            features, settings.predict_batch_size, is_training=False,
            max_seq_length=settings.max_seq_length, input_context=ctx))
        order = outputs["feature_index"]
        start = outputs["start_logits"][order.argsort()]
        end = outputs["end_logits"][order.argsort()]
    else:
        start = end = tf.zeros([0, settings.max_seq_length]).numpy()
    outputs = squad_postprocess.compute_predictions(
        examples, features, start, end, settings.n_best_size, settings.max_answer_length,
        settings.source.do_lower_case, settings.version_2_with_negative,
        settings.null_score_diff_threshold, settings.verbose_logging, settings.control_chars)
    for name in squad_postprocess.PREDICTION_FILES:
        run_folders.note_replacing(os.path.join(settings.output_dir, name))
    paths = squad_postprocess.write_predictions(settings.output_dir, *outputs)
    logging.info("Wrote %s", ", ".join(paths))
    return outputs


def check_references(articles, version_2_with_negative: bool, path: str) -> None:
    """--do_eval needs reference answers for every question (SQuAD 2.0: a
    list, empty for unanswerable ones); a file without them is named now."""
    for article in articles:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                answers = qa.get("answers")
                if not isinstance(answers, list) or (not answers and not version_2_with_negative):
                    raise squad_data.SquadDataError(
                        f'{path}: question id {qa["id"]!r} has no reference "answers"; '
                        "--do_eval needs them (SQuAD 2.0 files mark unanswerable questions "
                        'with "answers": [] and --version_2_with_negative)')


def evaluate(articles, predictions, null_odds, version_2_with_negative: bool) -> dict:
    """The official metric, as Google's README runs it (v2.0 with
    --na-prob-file null_odds.json and its default threshold 1.0)."""
    if version_2_with_negative:
        return squad_metrics.evaluate_v2(articles, predictions, null_odds)
    return squad_metrics.evaluate_v1(articles, predictions)


def export(model, settings: SquadSettings) -> None:
    # Imported here: only an export needs the serving graph's tensorflow-text ops.
    from bert_tf import squad_serving

    source = settings.source
    squad_serving.export_squad_answerer(
        model, settings.export_dir, vocab_file=source.vocab_file,
        do_lower_case=source.do_lower_case, max_seq_length=settings.max_seq_length,
        doc_stride=settings.doc_stride, max_query_length=settings.max_query_length,
        max_answer_length=settings.max_answer_length, n_best_size=settings.n_best_size,
        version_2_with_negative=settings.version_2_with_negative,
        null_score_diff_threshold=settings.null_score_diff_threshold,
        control_chars=settings.control_chars)
    logging.info("Exported the SQuAD serving SavedModel to %s", settings.export_dir)


def _log_recipe(settings, config, examples, skipped, features, predict_examples) -> None:
    """One line that says what this run does, whatever the flags' defaults."""
    version = "2.0" if settings.version_2_with_negative else "1.1"
    parts = [f"SQuAD {version}", f"model {run_folders.model_description(settings.source, settings.encoder_factory)}",
             f"max_seq_length {settings.max_seq_length}, doc_stride {settings.doc_stride}, "
             f"max_query_length {settings.max_query_length}",
             f"control_chars {settings.control_chars}"]
    if settings.do_train:
        dropped = f" ({len(skipped)} skipped)" if skipped else ""
        parts += [f"train questions {len(examples)}{dropped}, {len(features)} windows",
                  f"{settings.num_train_epochs:g} epoch(s) = {config.num_train_steps} steps "
                  f"of batch {settings.train_batch_size}",
                  f"learning_rate {settings.learning_rate:g}",
                  f"warm-up {config.num_warmup_steps} steps "
                  f"(warmup_proportion {settings.warmup_proportion:g})"]
    else:
        parts.append("no training")
    if settings.do_predict or settings.do_eval:
        parts.append(f"predict {len(predict_examples)} questions, batch "
                     f"{settings.predict_batch_size}" + (", then evaluate" if settings.do_eval
                                                         else ""))
    logging.info("Run: %s; output_dir %s", "; ".join(parts), settings.output_dir)
