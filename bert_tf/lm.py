"""Causal language-model training (GPT-2) on the shared trainer.

`LMTask` is next-token prediction: the loss is the mean negative
log-likelihood over all target tokens of the global batch (every record of
`create_lm_data.py` holds n_ctx + 1 tokens, so each row has n_ctx targets
and none is padding). That is the loss of Hugging Face's
`GPT2LMHeadModel(labels=...)`. `run_lm(settings)` is `run_lm.py`'s body as
a library call.

The output folder is a GPT-2 model folder in our layout (OpenAI's:
`hparams.json`, the tokenizer files and a TF checkpoint `model.ckpt` under
OpenAI's names, written when training ends or is stopped), so
`generate.py --init_checkpoint=OUTPUT_DIR` samples from it. The trainer's
own resumable checkpoints and the TensorBoard logs live in its `training/`
folder; `eval_results.txt` holds the held-out perplexity.
"""

from __future__ import annotations

import dataclasses
import math
import os

import tensorflow as tf
from absl import logging

from bert_tf import (atomic_io, checkpoints, gpt2, gpt2_checkpoints, input_pipeline, lm_data,
                     pretraining, text_files, trainer)

TRAINING_DIR = "training"
CHECKPOINT_NAME = "model.ckpt"
AUTOTUNE = tf.data.AUTOTUNE


# ----------------------------------------------------------------------------
# Input
# ----------------------------------------------------------------------------

def window_length(file_patterns, n_vocab: int | None = None, records_checked: int = 100) -> int:
    """n_ctx of the records (their `input_ids` length minus one), from the first
    file; with `n_vocab`, its first records' ids must lie below it (records made
    with another vocabulary are named here rather than failing inside a step)."""
    path = text_files.expand_globs(file_patterns)[0]
    spec = {lm_data.FEATURE: tf.io.VarLenFeature(tf.int64)}
    try:
        first = next(iter(tf.data.TFRecordDataset(path).take(1)), None)
    except tf.errors.DataLossError as error:
        raise input_pipeline.InputFileError(
            f"{path}: not a readable TFRecord file ({error.message})") from None
    if first is None:
        raise input_pipeline.InputFileError(f"{path}: holds no records")
    try:
        ids = tf.io.parse_single_example(first, spec)[lm_data.FEATURE]
    except tf.errors.InvalidArgumentError as error:
        raise input_pipeline.InputFileError(
            f"{path}: not create_lm_data.py records ({error.message})") from None
    length = int(tf.shape(ids.values)[0]) - 1
    if length < 1:
        raise input_pipeline.InputFileError(f"{path}: records without an {lm_data.FEATURE} "
                                            "window (create_lm_data.py writes them)")
    if n_vocab is not None:
        largest = max(int(tf.reduce_max(tf.io.parse_single_example(r, spec)[lm_data.FEATURE]
                                        .values))
                      for r in tf.data.TFRecordDataset(path).take(records_checked))
        if largest >= n_vocab:
            raise input_pipeline.InputFileError(
                f"{path}: token id {largest} is beyond the model's n_vocab {n_vocab}: the "
                "records were made with another vocabulary")
    return length


def lm_dataset(file_patterns, batch_size: int, n_ctx: int, is_training: bool,
               input_context: tf.distribute.InputContext | None = None,
               seed: int | None = None, shuffle_buffer_size: int = 1000) -> tf.data.Dataset:
    """Batches of {"token_ids": [b, n_ctx], "labels": [b, n_ctx]} (int32).

    `batch_size` is global; with an input context each pipeline reads its
    share of the files (or of the records of each file when files are fewer
    than pipelines). Training shuffles with `seed` and repeats; evaluation
    reads every record once, in order, the last batch possibly smaller.
    """
    files = text_files.expand_globs(file_patterns)
    spec = {lm_data.FEATURE: tf.io.FixedLenFeature([n_ctx + 1], tf.int64)}
    for path in files:
        input_pipeline.validate_record_file(path, spec)
    dataset = input_pipeline.record_batches(files, batch_size, is_training, input_context,
                                            seed, shuffle_buffer_size)

    def to_inputs(records):
        ids = tf.cast(tf.io.parse_example(records, spec)[lm_data.FEATURE], tf.int32)
        return {"token_ids": ids[:, :-1], "labels": ids[:, 1:]}

    return dataset.map(to_inputs, num_parallel_calls=AUTOTUNE,
                       deterministic=True).prefetch(AUTOTUNE)


# ----------------------------------------------------------------------------
# The task
# ----------------------------------------------------------------------------

class LMTask:
    """Next-token prediction with a `gpt2.GPT2LM`; `init_checkpoint` is any
    GPT-2 model folder `gpt2_pretrained` reads (or a checkpoint prefix in one)."""

    def __init__(self, config: gpt2.GPT2Config, init_checkpoint: str | None = None):
        self.config = config
        self.init_checkpoint = init_checkpoint

    def build_model(self):
        return gpt2.GPT2LM(self.config)

    def initialize(self, model) -> None:
        if not self.init_checkpoint:
            return
        from bert_tf import gpt2_pretrained

        found = gpt2_pretrained.describe_folder(self.init_checkpoint)
        if found.format == "huggingface":
            report = gpt2_checkpoints.load_hf_weights(model, found.folder)
        else:
            report = gpt2_checkpoints.load_openai_checkpoint(model, found.checkpoint)
        logging.info("Initialised %d variables from %s", len(report.restored), found.checkpoint)

    def loss_counts(self, batch):
        # Every target is a real token: the count is the labels' size.
        return {"lm": tf.cast(tf.size(batch["labels"]), tf.float32)}

    def forward(self, model, batch, training: bool) -> trainer.TaskOutputs:
        logits = model(batch["token_ids"], training=training)
        nll, correct = pretraining.masked_lm_cross_entropy(logits, batch["labels"])
        count = tf.cast(tf.size(batch["labels"]), tf.float32)
        return trainer.TaskOutputs(
            losses={"lm": tf.reduce_sum(nll)},
            metrics={"accuracy": (tf.reduce_sum(tf.cast(correct, tf.float32)), count)})

    def summaries(self, totals: trainer.Totals) -> dict[str, float]:
        """Perplexity (exp of the mean token NLL), and tokens/s in training:
        the loss count is the number of target tokens."""
        values = {"perplexity": _perplexity(totals.losses["lm"])}
        if totals.training:
            values["tokens_per_second"] = totals.counts["lm"] / max(totals.seconds, 1e-9)
        return values


def _perplexity(nll: float) -> float:
    return math.exp(nll) if nll < 700 else math.inf


# ----------------------------------------------------------------------------
# The run
# ----------------------------------------------------------------------------

@dataclasses.dataclass
class LMSettings:
    """Everything `run_lm.py`'s flags say, as one value.

    `tokenizer_files` maps the names the output folder gives them
    (`encoder.json` + `vocab.bpe`, or `vocab.txt`) to the files to copy.
    """

    config: gpt2.GPT2Config
    input_file: str | None
    output_dir: str
    tokenizer_files: dict[str, str]
    init_checkpoint: str | None = None
    eval_file: str | None = None
    do_train: bool = True
    do_eval: bool = False
    train_batch_size: int = 8
    eval_batch_size: int = 8
    max_eval_steps: int | None = None
    num_train_steps: int = 10_000
    learning_rate: float = 2.5e-4
    num_warmup_steps: int = 1_000
    training: trainer.TrainingOptions = dataclasses.field(default_factory=trainer.TrainingOptions)
    export_dir: str | None = None


def write_model_folder(model: gpt2.GPT2LM, output_dir: str, tokenizer_files: dict[str, str],
                       global_step: int | None = None) -> str:
    """hparams.json, the tokenizer files and `model.ckpt` (OpenAI's names) into
    `output_dir`, each file atomically; returns the checkpoint prefix."""
    gpt2_checkpoints.write_hparams(model.config,
                                   os.path.join(output_dir, gpt2_checkpoints.HPARAMS_FILE))
    for name, source in tokenizer_files.items():
        target = os.path.join(output_dir, name)
        if os.path.abspath(source) == os.path.abspath(target):
            continue
        with open(source, encoding="utf-8") as f:
            atomic_io.write_text(target, f.read())
    prefix = os.path.join(output_dir, CHECKPOINT_NAME)
    checkpoints.save_google_checkpoint(gpt2_checkpoints._OpenAITensors(model), prefix, global_step)
    return prefix


def run_lm(settings: LMSettings, strategy=None) -> dict:
    """Trains (resuming from output_dir) and/or evaluates; returns eval results."""
    if not (settings.do_train or settings.do_eval):
        raise ValueError("At least one of --do_train or --do_eval must be set")
    if settings.do_train and not settings.input_file:
        raise ValueError("--do_train needs --input_file")
    eval_file = settings.eval_file or settings.input_file
    if settings.do_eval and not eval_file:
        raise ValueError("--do_eval needs --eval_file")
    n_ctx = window_length(settings.input_file if settings.do_train else eval_file,
                          settings.config.n_vocab)
    if n_ctx > settings.config.n_ctx:
        raise ValueError(f"the records hold windows of {n_ctx} tokens, more than the model's "
                         f"n_ctx {settings.config.n_ctx}: recreate them with --n_ctx={settings.config.n_ctx} "
                         "or lower")
    os.makedirs(settings.output_dir, exist_ok=True)
    task = LMTask(settings.config, settings.init_checkpoint)
    config = trainer.TrainerConfig.from_options(
        settings.training, model_dir=os.path.join(settings.output_dir, TRAINING_DIR),
        num_train_steps=settings.num_train_steps, learning_rate=settings.learning_rate,
        num_warmup_steps=settings.num_warmup_steps)
    runner = trainer.Trainer(task, config, strategy)
    seed = runner.config.seed

    def dataset_fn(files, batch_size, is_training):
        return lambda context: lm_dataset(files, batch_size, n_ctx, is_training,
                                          input_context=context, seed=seed)

    if settings.do_train:
        try:
            with input_pipeline.naming_bad_files(settings.input_file):
                runner.train(dataset_fn(settings.input_file, settings.train_batch_size, True))
        finally:
            # Also after a stop by signal: the folder then holds the last weights.
            if runner.is_chief() and int(runner.global_step.numpy()) > 0:
                write_model_folder(runner.model, settings.output_dir, settings.tokenizer_files,
                                   int(runner.global_step.numpy()))
    elif not runner.restore_latest():
        task.initialize(runner.model)

    results = {}
    if settings.do_eval:
        with input_pipeline.naming_bad_files(eval_file):
            values = runner.evaluate(dataset_fn(eval_file, settings.eval_batch_size, False),
                                     max_steps=settings.max_eval_steps)
        results = {"loss": values["lm"], "perplexity": values["perplexity"],
                   "accuracy": values["accuracy"],
                   "global_step": int(runner.global_step.numpy())}
        text = text_files.write_eval_results(
            os.path.join(settings.output_dir, "eval_results.txt"), results)
        print("***** Eval results *****\n" + text, end="", flush=True)
    if settings.export_dir and runner.is_chief():
        # From the model folder just written, so the SavedModel is exactly what
        # generate.py --init_checkpoint=output_dir would sample from.
        from bert_tf import generation_serving, gpt2_pretrained

        model, tokenizer, _ = gpt2_pretrained.load(settings.output_dir)
        generation_serving.export_generator(model, tokenizer, settings.export_dir)
        logging.info("Exported the generating SavedModel to %s", settings.export_dir)
    return results
