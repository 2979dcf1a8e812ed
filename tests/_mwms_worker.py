"""A toy task for the trainer tests, and the entry point of their subprocesses.

Run as a script it either trains the toy task and saves the final weights:
  python tests/_mwms_worker.py train OUT.npz MODEL_DIR STRATEGY GLOBAL_BATCH NUM_STEPS [SLEEP_S [DROPOUT]]
(STRATEGY is one_device or multi_worker_mirrored, which reads TF_CONFIG;
SLEEP_S slows every step down so a test can kill the run mid-way), or runs
the same training on one device and on 2 mirrored logical CPUs, which needs
a fresh process to split the CPU:
  python tests/_mwms_worker.py mirrored OUT.npz WORK_DIR
"""

import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Run as a script, this file's folder, not the repository, is on sys.path.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from bert_tf.trainer import TaskOutputs  # noqa: E402

NUM_FEATURES, NUM_CLASSES, NUM_EXAMPLES = 5, 3, 96


def toy_data(num_examples=NUM_EXAMPLES, seed=0):
    """Features, labels and per-example loss weights (the weights make counts uneven)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(num_examples, NUM_FEATURES)).astype("float32")
    y = np.argmax(x @ rng.normal(size=(NUM_FEATURES, NUM_CLASSES)), axis=1).astype("int32")
    w = rng.uniform(0.0, 2.0, size=num_examples).astype("float32")
    w[rng.random(num_examples) < 0.2] = 0.0
    return {"x": x, "y": y, "w": w, "index": np.arange(num_examples, dtype="int32")}


def dataset_fn_for(global_batch, data=None, shuffle=False):
    """Per-replica batches whose union per step is the global batch."""
    data = toy_data() if data is None else data

    def dataset_fn(context):
        batch = context.get_per_replica_batch_size(global_batch)
        dataset = tf.data.Dataset.from_tensor_slices(data)
        if shuffle:
            dataset = dataset.shuffle(len(data["x"]), seed=7)
        dataset = dataset.batch(batch)
        return dataset.shard(context.num_input_pipelines, context.input_pipeline_id)

    return dataset_fn


class ToyTask:
    """Weighted softmax classification with a two-layer MLP, dropout off."""

    def __init__(self, dropout=0.0, sleep_s=0.0):
        self.dropout = dropout
        self.sleep_s = sleep_s

    def build_model(self):
        inputs = keras.Input((NUM_FEATURES,), name="x")
        hidden = keras.layers.Dense(16, activation="tanh", name="hidden")(inputs)
        hidden = keras.layers.Dropout(self.dropout)(hidden)
        hidden = keras.layers.LayerNormalization(name="LayerNorm")(hidden)
        logits = keras.layers.Dense(NUM_CLASSES, name="logits")(hidden)
        return keras.Model(inputs, logits)

    def initialize(self, model):
        pass

    def loss_counts(self, batch):
        return {"xent": tf.reduce_sum(batch["w"])}

    def forward(self, model, batch, training):
        if self.sleep_s:
            tf.py_function(lambda: time.sleep(self.sleep_s), [], [])
        logits = tf.cast(model(batch["x"], training=training), tf.float32)
        nll = tf.nn.sparse_softmax_cross_entropy_with_logits(batch["y"], logits)
        correct = tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), batch["y"]), tf.float32)
        return TaskOutputs(
            losses={"xent": tf.reduce_sum(batch["w"] * nll)},
            metrics={"accuracy": (tf.reduce_sum(correct), tf.cast(tf.size(correct), tf.float32))},
            predictions={"logits": logits, "index": batch["index"]},
        )


def train(model_dir, strategy, global_batch, num_steps, accumulation=1, sleep_s=0.0, dropout=0.0,
          mixed_precision=None, save_checkpoints_steps=2):
    """Trains the toy task; returns the Trainer. Shared by tests and subprocesses."""
    from bert_tf import trainer

    config = trainer.TrainerConfig(model_dir=model_dir, num_train_steps=num_steps, learning_rate=0.05,
                                   num_warmup_steps=2, steps_per_loop=2,
                                   save_checkpoints_steps=save_checkpoints_steps,
                                   log_steps=2, gradient_accumulation_steps=accumulation, seed=3,
                                   mixed_precision=mixed_precision)
    run = trainer.Trainer(ToyTask(dropout=dropout, sleep_s=sleep_s), config, strategy)
    run.train(dataset_fn_for(global_batch, shuffle=True))
    return run


def weights(run):
    return [v.numpy() for v in run.model.trainable_variables]


def _train_main(out_path, model_dir, strategy_name, global_batch, num_steps, sleep_s=0.0, dropout=0.0,
                save_checkpoints_steps=2):
    from bert_tf import distribution

    strategy = distribution.get_strategy(strategy_name)
    run = train(model_dir, strategy, int(global_batch), int(num_steps), sleep_s=float(sleep_s),
                dropout=float(dropout), save_checkpoints_steps=int(save_checkpoints_steps))
    np.savez(out_path, replicas=strategy.num_replicas_in_sync,
             **{f"w{i}": w for i, w in enumerate(weights(run))})


def _mirrored_main(out_path, work_dir):
    from bert_tf import distribution

    distribution.split_cpu(2)
    single, mirrored = distribution.get_strategy("one_device"), distribution.get_strategy("mirrored")
    assert mirrored.num_replicas_in_sync == 2, mirrored.num_replicas_in_sync
    results = {}
    cases = {"single_fp16": (single, 16, 1, "fp16"), "mirrored_fp16": (mirrored, 16, 1, "fp16"),
             "single": (single, 16, 1, None), "mirrored": (mirrored, 16, 1, None),
             "mirrored_accum": (mirrored, 8, 2, None)}
    for name, (strategy, global_batch, accumulation, precision) in cases.items():
        run = train(os.path.join(work_dir, name), strategy, global_batch, 6, accumulation,
                    mixed_precision=precision)
        for i, w in enumerate(weights(run)):
            results[f"{name}/w{i}"] = w
    # Batches of 11 per replica over 96 examples: 9 batches, so the last step
    # leaves one replica with an empty batch.
    for name, value in run.evaluate(dataset_fn_for(22)).items():
        results[f"eval/{name}"] = np.float64(value)
    for name, value in run.predict(dataset_fn_for(22)).items():
        results[f"predict/{name}"] = value
    # Dropout must also work under the mirrored strategy (it updates a seed).
    dropout_run = train(os.path.join(work_dir, "dropout"), mirrored, 16, 2, dropout=0.3)
    results["dropout_finite"] = np.array(all(np.isfinite(w).all() for w in weights(dropout_run)))
    np.savez(out_path, **results)


if __name__ == "__main__":
    from bert_tf import cli

    # cli.run, as the scripts: a stop on SIGINT/SIGTERM prints one line.
    cli.run(lambda argv: {"train": _train_main, "mirrored": _mirrored_main}[argv[1]](*argv[2:]))
