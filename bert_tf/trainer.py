"""The one training loop behind pretraining and fine-tuning.

A `Task` supplies the model and its losses; `Trainer` runs it under any
tf.distribute strategy with gradient accumulation, global-norm clipping,
mixed precision, checkpoint/resume and TensorBoard summaries.

Losses are normalised exactly: each term is (its sum over the global batch) /
(its count over the global batch), where "global" spans all replicas, all
workers and all accumulated micro-batches. So 2 replicas of batch b, or k
micro-batches of b, take the same step as one device with batch 2b or k*b.

Resuming: the dataset returned by `dataset_fn` must be deterministic (fixed
shuffle seeds). After restoring step s the trainer skips the s * k *
replicas-per-pipeline batches each input pipeline had already produced, which
is exact and needs no iterator state in the checkpoint, but it re-reads the
skipped input and assumes the same strategy and batch size. A run killed at any
moment resumes from its last complete checkpoint: CheckpointManager renames
finished data files into place and only then atomically rewrites the
'checkpoint' file that names the latest one. All micro-batches of an update
run inside one call, so no accumulation state is ever left to save.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import threading
import time
from typing import Callable, Mapping, Protocol

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from bert_tf import modeling, optimization
# The configs live in a module without TensorFlow, so that the scripts' flags
# can take their defaults from them; they are part of this module's interface.
from bert_tf.trainer_config import PRECISION_POLICIES, TrainerConfig, TrainingOptions  # noqa: F401

DatasetFn = Callable[[tf.distribute.InputContext], tf.data.Dataset]
_SUM = tf.distribute.ReduceOp.SUM


class TrainingInterrupted(KeyboardInterrupt):
    """`train` stopped on SIGINT or SIGTERM after saving a checkpoint; the
    message says how to resume. A KeyboardInterrupt, so notebooks and scripts
    treat it as the interruption it is."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = signum


class _StopOnSignals:
    """Turns SIGINT and SIGTERM into a request to stop after the current step loop.

    A compiled step loop cannot be left midway and a checkpoint holds whole
    steps only, so the handler just notes the signal and `train` saves and
    stops when the loop returns. A second signal stops at once, unsaved.
    Signal handlers can only be set from the main thread; elsewhere (and on
    several workers, which must all save together) nothing changes.
    """

    def __init__(self, enabled: bool):
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.signum = None
        self._previous = {}

    def __enter__(self):
        if self.enabled:
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.signum is not None:
            self.__exit__()
            raise KeyboardInterrupt
        self.signum = signum
        # os.write: buffered streams and logging are not safe inside a handler.
        os.write(2, f"{signal.Signals(signum).name}: stopping after the current step loop to "
                    "save a checkpoint (send it again to stop at once, unsaved)\n".encode())

    def __exit__(self, *exc_info):
        for signum, handler in self._previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
        self._previous = {}


@dataclasses.dataclass
class TaskOutputs:
    """What a task computes on one (per-replica) batch.

    losses: summed (weighted) loss of each term, e.g. {"masked_lm": sum of
      weight * nll}; the trainer divides by the global `loss_counts`.
    metrics: (numerator, denominator) pairs, e.g. {"accuracy": (correct, n)},
      so they add up exactly over replicas and batches.
    predictions: per-example outputs (leading batch axis) for `predict`.
    """

    losses: Mapping[str, tf.Tensor]
    metrics: Mapping[str, tuple[tf.Tensor, tf.Tensor]] = dataclasses.field(default_factory=dict)
    predictions: Mapping[str, tf.Tensor] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Totals:
    """What the trainer measured over one logged window of training steps, or
    over one whole evaluation; the input of a task's optional `summaries`.

    losses: the mean of each loss term, as the trainer reports it.
    counts: each loss term's `loss_counts` summed over the window (say, the
      target tokens a language model saw).
    examples: examples (batch rows) seen; seconds: the wall-clock time taken.
    """

    training: bool
    losses: Mapping[str, float]
    counts: Mapping[str, float]
    examples: float
    steps: int
    seconds: float


class Task(Protocol):
    """What pretraining or a fine-tuning task plugs into the trainer.

    A task may also define `summaries(totals: Totals) -> dict[str, float]`:
    scalars of its own, derived from what the trainer measured (perplexity
    from the mean loss, tokens/s from the counts and the time). The trainer
    calls it for every logged training window and every evaluation, writes
    each scalar to TensorBoard under its name beside its own ones, adds it to
    the log line, and returns it with the window's or evaluation's values.
    """

    def build_model(self) -> keras.Model:
        """Returns the model with its variables created (built)."""

    def initialize(self, model: keras.Model) -> None:
        """Prepares a fresh model, e.g. loads an init checkpoint; not called on resume."""

    def loss_counts(self, batch) -> Mapping[str, tf.Tensor]:
        """The denominator of each loss term in `batch` (e.g. sum of masked_lm_weights).

        Must not depend on the model: the trainer totals the counts over all
        replicas and micro-batches before it takes any gradient.
        """

    def forward(self, model: keras.Model, batch, training: bool) -> TaskOutputs:
        """Runs the model on `batch`."""


class Trainer:
    """Trains, evaluates and predicts with a Task under a strategy.

    A task that fits y = 2x with one dense unit:

    >>> import tempfile
    >>> class LineTask:
    ...     def build_model(self):
    ...         return keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    ...     def initialize(self, model):
    ...         pass
    ...     def loss_counts(self, batch):
    ...         return {"mse": tf.cast(tf.shape(batch[1])[0], tf.float32)}
    ...     def forward(self, model, batch, training):
    ...         x, y = batch
    ...         error = model(x, training=training)[:, 0] - y
    ...         return TaskOutputs(losses={"mse": tf.reduce_sum(error ** 2)})
    ...     def summaries(self, totals):  # optional: scalars of the task's own
    ...         return {"rmse": totals.losses["mse"] ** 0.5}
    >>> data = tf.data.Dataset.from_tensor_slices(([[1.0], [2.0], [3.0]], [2.0, 4.0, 6.0]))
    >>> config = TrainerConfig(model_dir=tempfile.mkdtemp(), num_train_steps=300,
    ...                        learning_rate=0.1, weight_decay_rate=0.0, steps_per_loop=100)
    >>> runner = Trainer(LineTask(), config)
    >>> logged = runner.train(lambda input_context: data.batch(3))
    >>> results = runner.evaluate(lambda input_context: data.batch(3))
    >>> results["mse"] < 1e-3, abs(results["rmse"] ** 2 - results["mse"]) < 1e-12
    (True, True)
    """

    def __init__(self, task: Task, config: TrainerConfig, strategy: tf.distribute.Strategy | None = None):
        self.task = task
        self.config = config
        self.strategy = strategy or tf.distribute.get_strategy()
        # The policy must be in place before any layer is built.
        keras.mixed_precision.set_global_policy(PRECISION_POLICIES[config.mixed_precision])
        keras.utils.set_random_seed(config.seed)
        with self.strategy.scope():
            self.model = task.build_model()
            if not self.model.built or not self.model.trainable_variables:
                raise ValueError("Task.build_model() must return a built model with trainable variables")
            # _update sums gradients over replicas itself, before clipping.
            self.optimizer = optimization.create_optimizer(
                config.optimizer, config.learning_rate, config.num_train_steps,
                config.num_warmup_steps, config.weight_decay_rate, aggregate_gradients=False)
            if config.mixed_precision == "fp16":
                self.optimizer = keras.optimizers.LossScaleOptimizer(self.optimizer)
            self.optimizer.build(self.model.trainable_variables)
            # Counts every step taken, including fp16 steps skipped for
            # overflow; optimizer.iterations counts applied updates only.
            self.global_step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step",
                                           aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
        # `model_variables` also reaches state that a functional model does not
        # track by attribute (dropout seed states, non-trainable statistics);
        # variables saved under two paths are stored once.
        self.checkpoint = tf.train.Checkpoint(model=self.model, model_variables=list(self.model.variables),
                                              optimizer=self.optimizer, global_step=self.global_step)
        self._manager = tf.train.CheckpointManager(
            self.checkpoint, self._checkpoint_dir(), max_to_keep=config.keep_checkpoint_max,
            step_counter=self.global_step)
        self._writers = {}
        self._train_loop = None
        # Built once, so repeated evaluations (e.g. after every epoch) reuse the trace.
        self._eval_step = tf.function(self._distributed_eval, reduce_retracing=True)
        self._predict_step = tf.function(self._distributed_predict, reduce_retracing=True)

    # ----- distribution bookkeeping -----

    def is_chief(self) -> bool:
        """Whether this process keeps the checkpoints and writes the outputs: a
        run without a cluster, or the cluster's chief (worker 0 if it has none)."""
        resolver = getattr(self.strategy, "cluster_resolver", None)
        if resolver is None or not resolver.task_type:
            return True
        if resolver.task_type == "chief":
            return True
        has_chief = "chief" in resolver.cluster_spec().as_dict()
        return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief

    def _checkpoint_dir(self) -> str:
        # Every worker must take part in a save; only the chief keeps its files.
        if self.is_chief():
            return self.config.model_dir
        return os.path.join(self.config.model_dir, f".worker_{self.strategy.cluster_resolver.task_id}")

    def _writer(self, name: str):
        if name not in self._writers:
            if self.is_chief():
                self._writers[name] = tf.summary.create_file_writer(os.path.join(self.config.model_dir, name))
            else:
                self._writers[name] = tf.summary.create_noop_writer()
        return self._writers[name]

    # ----- checkpoints -----

    def restore_latest(self) -> bool:
        """Restores the newest checkpoint in model_dir; False when there is none."""
        path = tf.train.latest_checkpoint(self.config.model_dir)
        if path is None:
            return False
        self._check_fits(path)
        self.checkpoint.restore(path).assert_existing_objects_matched()
        logging.info("Restored %s (step %d)", path, int(self.global_step.numpy()))
        return True

    def _check_fits(self, path: str) -> None:
        """Refuses, in one line, a checkpoint that another model or task wrote
        (say, a pretraining run into a classifier's folder): TensorFlow's own
        restore would fail deep inside with a dtype or shape error."""
        from bert_tf import checkpoints

        stored = checkpoints.stored_object_variables(path, "model_variables")
        if stored is None:
            raise ValueError(f"{path}: not a checkpoint of this trainer (no model_variables); "
                             f"use a new --output_dir instead of {self.config.model_dir!r}")
        variables = self.model.variables
        problem = None
        if len(stored) != len(variables):
            problem = f"it holds {len(stored)} model variables, this model has {len(variables)}"
        else:
            for i, variable in enumerate(variables):
                shape, dtype = stored.get(str(i), (None, None))
                expected = tf.as_dtype(variable.dtype)
                if shape != tuple(variable.shape) or dtype != expected:
                    name = getattr(variable, "path", variable.name)
                    problem = (f"model variable {i} ({name}) is {dtype and dtype.name} "
                               f"{list(shape or [])} there, {expected.name} "
                               f"{list(variable.shape)} here")
                    break
        if problem:
            raise ValueError(f"{path}: the latest checkpoint in {self.config.model_dir!r} was "
                             f"written for another model or task ({problem}); use a new "
                             "--output_dir")

    def _save(self) -> None:
        self._manager.save(checkpoint_number=self.global_step)
        if not self.is_chief():
            shutil.rmtree(self._checkpoint_dir(), ignore_errors=True)

    # ----- training -----

    def _update(self, micro_batches):
        """One optimizer update on this replica from its k micro-batches.

        Runs under `strategy.run`, once per replica, and reads as the step
        itself: forward, scale, backward, accumulate, sum over replicas,
        clip, step. Returns the step's statistics summed over all replicas.
        """
        config = self.config
        replica = tf.distribute.get_replica_context()
        variables = self.model.trainable_variables
        loss_scaling = isinstance(self.optimizer, keras.optimizers.LossScaleOptimizer)

        # Each loss term is divided by its count over the global batch (all
        # replicas, all micro-batches), so the counts are totalled before any
        # gradient is taken; they do not depend on the model.
        counts = _add_all([_as_float(self.task.loss_counts(b)) for b in micro_batches])
        counts = replica.all_reduce(_SUM, counts)

        def forward_backward(batch):
            # XLA compiles ThreeFry dropout bits far better than Philox
            # (see modeling.dropout_random_algorithm).
            algorithm = "threefry" if config.use_xla else "philox"
            with tf.GradientTape() as tape, modeling.dropout_random_algorithm(algorithm):
                outputs = self.task.forward(self.model, batch, training=True)
                # This micro-batch's sums over the global counts: the shares of
                # all micro-batches and replicas add up to the global mean.
                terms = {name: tf.math.divide_no_nan(tf.cast(total, tf.float32), counts[name])
                         for name, total in outputs.losses.items()}
                loss = tf.add_n(list(terms.values()))
                if loss_scaling:
                    # fp16: scaled up so that small gradients do not flush to
                    # zero; the optimizer divides the scale out again.
                    loss = self.optimizer.scale_loss(loss)
            grads = tape.gradient(loss, variables)
            # Embedding lookups give IndexedSlices; dense tensors can be summed.
            grads = [None if g is None else tf.convert_to_tensor(g) for g in grads]
            metrics = {name: (tf.cast(num, tf.float32), tf.cast(den, tf.float32))
                       for name, (num, den) in outputs.metrics.items()}
            return grads, {"terms": terms, "metrics": metrics, "examples": _batch_size(batch)}

        # A function of its own, created per replica (it captures that
        # replica's variables): traced once though called twice when
        # accumulating, and the part XLA compiles when several replicas keep
        # the collectives outside it.
        forward_backward = tf.function(forward_backward, jit_compile=config.use_xla or None)

        grads, stats = forward_backward(micro_batches[0])
        # Variables the loss does not reach get no update at all (no weight
        # decay either), as in Google's optimizer.
        used = [i for i, g in enumerate(grads) if g is not None]
        if not used:
            raise ValueError("the task's losses depend on none of the model's trainable variables")
        grads = [grads[i] for i in used]

        if len(micro_batches) > 1:
            # Accumulate the other micro-batches in a graph loop, so the graph
            # holds two calls of forward_backward whatever k is. The loop
            # cannot index the Python tuple with a tensor, and micro-batches
            # padded to their own length cannot be stacked, so switch_case
            # picks the i-th one.
            pick = [lambda b=b: b for b in micro_batches]
            for i in tf.range(1, len(micro_batches)):
                more_grads, more_stats = forward_backward(tf.switch_case(i, pick))
                grads = [g + more_grads[j] for g, j in zip(grads, used)]
                stats = tf.nest.map_structure(tf.add, stats, more_stats)

        # Sum over replicas: the optimizer was built with
        # aggregate_gradients=False so that clipping sees the global gradient.
        grads, stats = replica.all_reduce(_SUM, (grads, stats))
        # Already global: the total over the window is what `Totals.counts` holds.
        stats["counts"] = counts

        # Clip by the global norm. Under fp16 the gradients still carry the
        # loss scale: clipping them at clip_norm * scale equals clipping the
        # unscaled ones at clip_norm, and an overflow leaves them non-finite,
        # so the loss-scale optimizer still skips the step.
        scale = tf.cast(self.optimizer.dynamic_scale, tf.float32) if loss_scaling else 1.0
        norm = tf.linalg.global_norm(grads)
        if config.clip_norm:
            grads, _ = tf.clip_by_global_norm(grads, config.clip_norm * scale, use_norm=norm)
        stats["grad_norm"] = norm / scale
        # Read before the step: the rate this update is taken with.
        stats["learning_rate"] = tf.cast(self.optimizer.learning_rate, tf.float32)

        self.optimizer.apply(grads, [variables[i] for i in used])
        self.global_step.assign_add(1)
        return stats

    def _build_train_loop(self):
        """The compiled loop `train` calls: `num_steps` updates per call
        (Google's iterations_per_loop), statistics summed over them."""
        k = self.config.gradient_accumulation_steps
        update = self._update
        if self.config.use_xla and self.strategy.num_replicas_in_sync == 1:
            # One replica needs no collective, so XLA can take the whole
            # update, optimizer included; with several, only forward_backward.
            update = tf.function(self._update, jit_compile=True)

        # A function of its own so that the loop below traces it once.
        @tf.function
        def train_step(iterator):
            # All k micro-batches are drawn first: the loss counts span them all.
            micro_batches = tuple(next(iterator) for _ in range(k))
            stats = self.strategy.run(update, args=(micro_batches,))
            # Statistics were all-reduced, so any replica's copy is the global value.
            return tf.nest.map_structure(lambda v: self.strategy.experimental_local_results(v)[0], stats)

        @tf.function
        def train_loop(iterator, num_steps):
            # The first step outside the loop gives the statistics' structure.
            totals = train_step(iterator)
            for _ in tf.range(num_steps - 1):
                totals = tf.nest.map_structure(tf.add, totals, train_step(iterator))
            return totals

        return train_loop

    def _skipping_dataset_fn(self, dataset_fn: DatasetFn, start_step: int) -> DatasetFn:
        per_pipeline = self.strategy.num_replicas_in_sync // max(1, self._num_input_pipelines())
        consumed = start_step * self.config.gradient_accumulation_steps * per_pipeline

        def fn(context):
            dataset = dataset_fn(context).repeat()
            return dataset.skip(consumed) if consumed else dataset

        return fn

    def _num_input_pipelines(self) -> int:
        resolver = getattr(self.strategy, "cluster_resolver", None)
        if resolver is None or not resolver.task_type:
            return 1
        jobs = resolver.cluster_spec().as_dict()
        return sum(len(jobs.get(job, ())) for job in ("chief", "worker"))

    def train(self, dataset_fn: DatasetFn) -> dict[str, float]:
        """Trains to num_train_steps, resuming from model_dir's latest checkpoint.

        dataset_fn(input_context) returns per-replica batches; it is repeated
        indefinitely. Returns the statistics of the last logged window.
        On one worker, SIGINT (Ctrl-C) or SIGTERM stops it after the current
        step loop with a checkpoint saved, raising TrainingInterrupted; the
        same call then resumes to the same weights as an uninterrupted run.
        """
        config = self.config
        if not self.restore_latest():
            self.task.initialize(self.model)
        step = int(self.global_step.numpy())
        if step >= config.num_train_steps:
            logging.info("Already trained to step %d", step)
            return {}
        dataset = self.strategy.distribute_datasets_from_function(self._skipping_dataset_fn(dataset_fn, step))
        iterator = iter(dataset)
        self._train_loop = self._train_loop or self._build_train_loop()
        with _StopOnSignals(enabled=self._num_input_pipelines() == 1) as stop:
            logged = self._train_steps(iterator, step, stop)
        self._writer("train").flush()
        if stop.signum is not None and int(self.global_step.numpy()) < config.num_train_steps:
            raise TrainingInterrupted(
                f"Stopped by {signal.Signals(stop.signum).name} at step "
                f"{int(self.global_step.numpy())}/{config.num_train_steps} with a checkpoint in "
                f"{config.model_dir}: run the same command again to resume", stop.signum)
        return logged

    def _train_steps(self, iterator, step, stop) -> dict[str, float]:
        """The loop of `train`: step loops, logging and checkpoints, until the
        last step or a stop request."""
        config = self.config
        window, window_steps, window_start = None, 0, time.time()
        run_start, run_start_step, logged = time.time(), step, {}
        while step < config.num_train_steps and stop.signum is None:
            num_steps = min(config.steps_per_loop, config.num_train_steps - step,
                            _to_next(step, config.save_checkpoints_steps), _to_next(step, config.log_steps))
            try:
                totals = self._train_loop(iterator, tf.constant(num_steps))
            except tf.errors.OutOfRangeError as err:
                raise ValueError("train: dataset_fn produced no batches (or too few for one "
                                 "update of every replica)") from err
            totals = tf.nest.map_structure(lambda t: np.float64(t.numpy()), totals)
            window = totals if window is None else tf.nest.map_structure(np.add, window, totals)
            window_steps += num_steps
            step += num_steps
            done = step == config.num_train_steps
            if step % config.log_steps == 0 or done:
                seconds = time.time() - window_start
                logged = _summarise(window, window_steps, seconds)
                extra = self._task_summaries(logged, Totals(
                    training=True,
                    losses={name: float(v / window_steps) for name, v in window["terms"].items()},
                    counts={name: float(v) for name, v in window["counts"].items()},
                    examples=float(window["examples"]), steps=window_steps, seconds=seconds))
                self._log_train(step, logged, extra, run_start, run_start_step)
                window, window_steps, window_start = None, 0, time.time()
            if step % config.save_checkpoints_steps == 0 or done or stop.signum is not None:
                self._save()
        return logged

    def _task_summaries(self, values: dict[str, float], totals: Totals) -> dict[str, float]:
        """The task's own scalars for `totals` (none without `Task.summaries`),
        added to `values`; returns them alone."""
        summaries = getattr(self.task, "summaries", None)
        if summaries is None:
            return {}
        extra = {name: float(value) for name, value in summaries(totals).items()}
        clashes = sorted(set(extra) & set(values))
        if clashes:
            raise ValueError(f"{type(self.task).__name__}.summaries returned {clashes}, names "
                             "the trainer already reports; choose others")
        values.update(extra)
        return extra

    def _log_train(self, step, logged, extra, run_start, run_start_step):
        with self._writer("train").as_default(step=step):
            for name, value in logged.items():
                tf.summary.scalar(name, value)
        rate = (step - run_start_step) / max(time.time() - run_start, 1e-9)
        eta = (self.config.num_train_steps - step) / max(rate, 1e-9)
        logging.info("step %d/%d  loss %.4f  lr %.3g  grad_norm %.3g  %.1f examples/s%s  ETA %s",
                     step, self.config.num_train_steps, logged["loss"], logged["learning_rate"],
                     logged["grad_norm"], logged["examples_per_second"],
                     "".join(f"  {name} {value:.6g}" for name, value in extra.items()),
                     _format_seconds(eta))

    # ----- evaluation and prediction -----

    def _replica_eval(self, batch):
        outputs = self.task.forward(self.model, batch, training=False)
        sums = {name: tf.cast(v, tf.float64) for name, v in outputs.losses.items()}
        counts = {name: tf.cast(v, tf.float64) for name, v in self.task.loss_counts(batch).items()}
        metrics = {name: (tf.cast(n, tf.float64), tf.cast(d, tf.float64))
                   for name, (n, d) in outputs.metrics.items()}
        examples = tf.cast(_batch_size(batch), tf.float64)
        return tf.distribute.get_replica_context().all_reduce(
            _SUM, (sums, counts, metrics, examples))

    def _distributed_eval(self, batch):
        result = self.strategy.run(self._replica_eval, args=(batch,))
        # All-reduced, so any replica's copy is the global value.
        return tf.nest.map_structure(lambda v: self.strategy.experimental_local_results(v)[0], result)

    def _distributed_predict(self, batch):
        def replica_predict(batch):
            return dict(self.task.forward(self.model, batch, training=False).predictions)

        outputs = self.strategy.run(replica_predict, args=(batch,))
        return tf.nest.map_structure(lambda v: self.strategy.gather(v, axis=0), outputs)

    def evaluate(self, dataset_fn: DatasetFn, max_steps: int | None = None) -> dict[str, float]:
        """Exact metrics over the whole (finite) dataset, or its first max_steps steps.

        Each loss term is its total over the data divided by its total count;
        'loss' is their sum; each metric is numerator total / denominator total;
        a task's `summaries` add their own values.
        """
        start = time.time()
        dataset = self.strategy.distribute_datasets_from_function(dataset_fn)
        totals, steps = None, 0
        for i, batch in enumerate(dataset):
            if max_steps is not None and i >= max_steps:
                break
            result = tf.nest.map_structure(lambda t: t.numpy(), self._eval_step(batch))
            totals = result if totals is None else tf.nest.map_structure(np.add, totals, result)
            steps += 1
        if totals is None:
            raise ValueError("evaluate: dataset_fn produced no batches")
        sums, counts, metrics, examples = totals
        losses = {name: float(sums[name] / counts[name]) if counts[name] else 0.0 for name in sums}
        results = dict(losses)
        results["loss"] = float(sum(losses.values()))
        results.update({name: float(n / d) if d else 0.0 for name, (n, d) in metrics.items()})
        self._task_summaries(results, Totals(
            training=False, losses=losses, counts={name: float(c) for name, c in counts.items()},
            examples=float(examples), steps=steps, seconds=time.time() - start))
        with self._writer("eval").as_default(step=int(self.global_step.numpy())):
            for name, value in results.items():
                tf.summary.scalar(name, value)
        self._writer("eval").flush()
        return results

    def predict(self, dataset_fn: DatasetFn) -> dict[str, np.ndarray]:
        """TaskOutputs.predictions over the whole dataset, from all replicas.

        On one worker the rows come back in input order (replica i of a step
        holds the i-th batch that step consumed). Across workers the rows of
        each step are concatenated in replica order.
        """
        dataset = self.strategy.distribute_datasets_from_function(dataset_fn)
        chunks: dict[str, list[np.ndarray]] = {}
        for batch in dataset:
            for name, value in self._predict_step(batch).items():
                chunks.setdefault(name, []).append(value.numpy())
        return {name: np.concatenate(parts, axis=0) for name, parts in chunks.items()}


def _batch_size(batch) -> tf.Tensor:
    first = tf.nest.flatten(batch)[0]
    return tf.cast(tf.shape(first)[0], tf.float32)


def _as_float(counts: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    return {name: tf.cast(tf.stop_gradient(c), tf.float32) for name, c in counts.items()}


def _add_all(dicts):
    total = dict(dicts[0])
    for d in dicts[1:]:
        total = {name: total[name] + d[name] for name in total}
    return total


def _to_next(step: int, every: int) -> int:
    return every - step % every


def _summarise(window, num_steps: int, seconds: float) -> dict[str, float]:
    """Turns summed per-step statistics into the values logged for a window."""
    logged = {f"loss/{name}": float(v / num_steps) for name, v in window["terms"].items()}
    logged["loss"] = float(sum(window["terms"].values()) / num_steps)
    logged.update({f"metrics/{name}": float(n / d) if d else 0.0 for name, (n, d) in window["metrics"].items()})
    logged["learning_rate"] = float(window["learning_rate"] / num_steps)
    logged["grad_norm"] = float(window["grad_norm"] / num_steps)
    logged["examples_per_second"] = float(window["examples"] / max(seconds, 1e-9))
    return logged


def _format_seconds(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
