"""Pretraining step speed: our BertPretrainer on the real Trainer vs keras-hub.

Both models get the same synthetic batch (full-length sequences of 128
tokens, 20 masked positions, vocabulary 30522) and an AdamW update every
step. Ours runs the Trainer's own compiled training loop (the code
`run_pretraining.py` runs: PretrainingTask's MLM + NSP losses, global-norm
clipping, AdamWeightDecay); keras-hub's `BertMaskedLM` runs its compiled
`train_on_batch` with `keras.optimizers.AdamW` and its masked-LM loss.

After a warm-up (tracing and compilation) the two are timed in alternating
windows, so background load hits both alike; the figures are medians over
the windows. A large float32 matmul, timed in the same process, gives the
machine's peak against which BERT's useful FLOP/s are set.

    PYTHONPATH=. python benchmarks/bench_pretraining_step.py --configs tiny,mini
    PYTHONPATH=. python benchmarks/bench_pretraining_step.py --configs base --modes xla
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import keras  # noqa: E402

from bert_tf import modeling, pretraining, trainer  # noqa: E402

SEQ_LENGTH = 128
MASKED_POSITIONS = 20
VOCAB_SIZE = 30522

# name: (layers, hidden, heads, intermediate, batch, steps per timed window)
CONFIGS = {
    "tiny": (2, 128, 2, 512, 32, 10),
    "mini": (4, 256, 4, 1024, 32, 5),
    "base": (12, 768, 12, 3072, 8, 3),
}


def bert_config(name: str) -> modeling.BertConfig:
    layers, hidden, heads, intermediate, _, _ = CONFIGS[name]
    return modeling.BertConfig(vocab_size=VOCAB_SIZE, hidden_size=hidden,
                               num_hidden_layers=layers, num_attention_heads=heads,
                               intermediate_size=intermediate)


def training_flops_per_sequence(config: modeling.BertConfig, seq_length: int = SEQ_LENGTH,
                                masked_positions: int = MASKED_POSITIONS,
                                last_layer_queries: int | None = None) -> float:
    """FLOPs of the matmuls of one training step, per sequence.

    Forward: 2 FLOPs per multiply-add of every dense kernel applied to every
    token (Q, K, V, attention output, intermediate and output per layer), the
    two attention products QK^T and PV (2 * S * H each per token per layer),
    the MLM transform and tied decoder at the masked positions only, and the
    pooler + NSP on the first token. Backward costs twice the forward
    (gradients w.r.t. inputs and weights), so training is 3x the forward.
    Embedding look-ups, softmax, LayerNorm, GELU and the optimizer are not
    counted: they are memory-bound and not matmuls.

    `last_layer_queries` counts a last layer that runs its queries,
    attention output and feed-forward net for that many tokens only (ours:
    the masked positions and [CLS]); keys and values still cover all tokens.
    """
    h, f, s = config.hidden_size, config.intermediate_size, seq_length
    layers = config.num_hidden_layers
    q = s if last_layer_queries is None else last_layer_queries
    per_token_queries = 2 * h * h + 2 * h * f  # Q, attention output, FFN
    per_token_keys = 2 * h * h  # K, V
    forward = 2 * layers * s * (per_token_queries + per_token_keys)
    forward -= 2 * (s - q) * per_token_queries
    forward += (layers - 1) * 2 * (2 * s * s * h) + 2 * (2 * q * s * h)
    forward += 2 * masked_positions * (h * h + h * config.vocab_size)
    forward += 2 * (h * h + 2 * h)
    return 3.0 * forward


def matmul_peak_gflops(size: int = 2048, repeats: int = 7) -> float:
    """Median GFLOP/s of a float32 [size, size] @ [size, size] matmul."""
    a = tf.random.normal([size, size])
    b = tf.random.normal([size, size])
    matmul = tf.function(lambda x, y: tf.reduce_sum(tf.matmul(x, y)))
    matmul(a, b).numpy()
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        matmul(a, b).numpy()
        rates.append(2 * size ** 3 / (time.perf_counter() - start) / 1e9)
    return statistics.median(rates)


def synthetic_batch(batch_size: int, seed: int = 0) -> dict[str, np.ndarray]:
    """A pretraining batch in the TFRecord feature layout, without padding."""
    rng = np.random.default_rng(seed)
    positions = np.stack([np.sort(rng.choice(np.arange(1, SEQ_LENGTH), MASKED_POSITIONS,
                                             replace=False)) for _ in range(batch_size)])
    shape = (batch_size, SEQ_LENGTH)
    return {
        "input_word_ids": rng.integers(1000, VOCAB_SIZE, shape, dtype=np.int32),
        "input_mask": np.ones(shape, np.int32),
        "input_type_ids": (np.arange(SEQ_LENGTH) >= SEQ_LENGTH // 2).astype(np.int32)[None].repeat(batch_size, 0),
        "masked_lm_positions": positions.astype(np.int32),
        "masked_lm_ids": rng.integers(1000, VOCAB_SIZE, (batch_size, MASKED_POSITIONS), dtype=np.int32),
        "masked_lm_weights": np.ones((batch_size, MASKED_POSITIONS), np.float32),
        "next_sentence_labels": rng.integers(0, 2, (batch_size, 1), dtype=np.int32),
    }


class TrainerLoop:
    """Times the Trainer's compiled multi-step loop (what `Trainer.train` calls),
    without the checkpointing and logging that surround it."""

    def __init__(self, runner: trainer.Trainer, dataset_fn):
        self.runner = runner
        self.loop = runner._build_train_loop()
        self.iterator = iter(runner.strategy.distribute_datasets_from_function(dataset_fn))

    def run(self, steps: int) -> tuple[float, float, float]:
        """Runs `steps` steps; returns (examples, seconds, CPU seconds)."""
        start, cpu_start = time.perf_counter(), time.process_time()
        totals = self.loop(self.iterator, tf.constant(steps))
        examples = float(totals["examples"].numpy())  # waits for the last step
        return examples, time.perf_counter() - start, time.process_time() - cpu_start


class OursPretraining:
    def __init__(self, config: modeling.BertConfig, batch: dict, use_xla: bool, model_dir: str):
        runner = trainer.Trainer(
            pretraining.PretrainingTask(config),
            trainer.TrainerConfig(model_dir=model_dir, num_train_steps=1_000_000,
                                  learning_rate=1e-4, num_warmup_steps=100,
                                  use_xla=use_xla))
        data = {k: tf.constant(v) for k, v in batch.items()}
        self.timer = TrainerLoop(runner, lambda _: tf.data.Dataset.from_tensors(data).repeat())

    def run(self, steps: int) -> tuple[float, float, float]:
        return self.timer.run(steps)


class KerasHubPretraining:
    def __init__(self, config: modeling.BertConfig, batch: dict, use_xla: bool):
        import keras_hub

        backbone = keras_hub.models.BertBackbone(
            vocabulary_size=config.vocab_size, num_layers=config.num_hidden_layers,
            num_heads=config.num_attention_heads, hidden_dim=config.hidden_size,
            intermediate_dim=config.intermediate_size, max_sequence_length=512)
        self.model = keras_hub.models.BertMaskedLM(backbone, preprocessor=None)
        self.model.compile(
            optimizer=keras.optimizers.AdamW(1e-4, weight_decay=0.01, epsilon=1e-6),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            weighted_metrics=[], jit_compile=use_xla)
        self.x = {"token_ids": tf.constant(batch["input_word_ids"]),
                  "padding_mask": tf.constant(batch["input_mask"]),
                  "segment_ids": tf.constant(batch["input_type_ids"]),
                  "mask_positions": tf.constant(batch["masked_lm_positions"])}
        self.y = tf.constant(batch["masked_lm_ids"])
        self.weights = tf.constant(batch["masked_lm_weights"])
        self.batch_size = len(batch["input_word_ids"])

    def run(self, steps: int) -> tuple[float, float, float]:
        start, cpu_start = time.perf_counter(), time.process_time()
        for _ in range(steps):
            loss = self.model.train_on_batch(self.x, self.y, sample_weight=self.weights)
        float(np.asarray(loss))
        return (float(steps * self.batch_size), time.perf_counter() - start,
                time.process_time() - cpu_start)


def compare(name: str, use_xla: bool, rounds: int, warmup_steps: int, window: int | None) -> dict:
    """Warms both up, then alternates timed windows; returns medians."""
    config = bert_config(name)
    batch_size, default_window = CONFIGS[name][4], CONFIGS[name][5]
    window = window or default_window
    batch = synthetic_batch(batch_size)
    with tempfile.TemporaryDirectory() as model_dir:
        peers = {"ours": OursPretraining(config, batch, use_xla, model_dir),
                 "keras_hub": KerasHubPretraining(config, batch, use_xla)}
        for peer_name, peer in peers.items():
            seconds = peer.run(warmup_steps)[1]
            print(f"  {name} xla={use_xla} {peer_name}: warm-up {seconds:.1f} s", flush=True)
        rates = {peer_name: [] for peer_name in peers}
        cpu_rates = {peer_name: [] for peer_name in peers}
        order = list(peers)
        for i in range(rounds):
            for peer_name in (order if i % 2 == 0 else order[::-1]):
                examples, seconds, cpu_seconds = peers[peer_name].run(window)
                rates[peer_name].append(examples / seconds)
                cpu_rates[peer_name].append(examples / cpu_seconds)
        del peers
    keras.backend.clear_session()
    medians = {peer_name: statistics.median(r) for peer_name, r in rates.items()}
    cpu = {peer_name: statistics.median(r) for peer_name, r in cpu_rates.items()}
    return {"config": name, "xla": use_xla, "batch_size": batch_size, "window_steps": window,
            "windows": rates, "ours_seq_per_s": medians["ours"],
            "keras_hub_seq_per_s": medians["keras_hub"],
            "ratio": medians["ours"] / medians["keras_hub"],
            "ours_seq_per_cpu_s": cpu["ours"], "keras_hub_seq_per_cpu_s": cpu["keras_hub"],
            "cpu_ratio": cpu["ours"] / cpu["keras_hub"],
            "train_gflop_per_seq": training_flops_per_sequence(config) / 1e9,
            "ours_executed_gflop_per_seq": training_flops_per_sequence(
                config, last_layer_queries=MASKED_POSITIONS + 1) / 1e9}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default="tiny,mini,base",
                        help="comma-separated subset of " + ",".join(CONFIGS))
    parser.add_argument("--modes", default="f32,xla", help="f32 (graph), xla (jit_compile), or both")
    parser.add_argument("--rounds", type=int, default=3, help="timed windows per peer (>= 3)")
    parser.add_argument("--warmup_steps", type=int, default=2)
    parser.add_argument("--window_steps", type=int, default=None,
                        help="steps per timed window (default: per config)")
    parser.add_argument("--output", default="output/benchmarks/pretraining_step.json")
    args = parser.parse_args()

    names = [n for n in args.configs.split(",") if n]
    modes = [m for m in args.modes.split(",") if m]
    unknown = [n for n in names if n not in CONFIGS] + [m for m in modes if m not in ("f32", "xla")]
    if unknown:
        parser.error(f"unknown config or mode: {', '.join(unknown)}")

    peak = matmul_peak_gflops()
    print(f"float32 matmul peak: {peak:.0f} GFLOP/s", flush=True)
    results = []
    for name in names:
        for mode in modes:
            results.append(compare(name, mode == "xla", args.rounds, args.warmup_steps,
                                   args.window_steps))
    peak_after = matmul_peak_gflops()
    peak = statistics.median([peak, peak_after])

    print(f"\nmatmul peak (median of before/after): {peak:.0f} GFLOP/s")
    print(f"{'config':<6} {'mode':<4} {'batch':>5} {'ours seq/s':>11} {'keras-hub':>10} "
          f"{'ratio':>6} {'ratio/CPU-s':>11} {'ours %peak':>10} {'k-h %peak':>9}")
    for r in results:
        # Each at the FLOPs it executes: ours skips most of the last layer.
        r["ours_share_of_peak"] = (r["ours_seq_per_s"] * r["ours_executed_gflop_per_seq"]
                                   / peak)
        r["keras_hub_share_of_peak"] = r["keras_hub_seq_per_s"] * r["train_gflop_per_seq"] / peak
        print(f"{r['config']:<6} {'xla' if r['xla'] else 'f32':<4} {r['batch_size']:>5} "
              f"{r['ours_seq_per_s']:>11.2f} {r['keras_hub_seq_per_s']:>10.2f} "
              f"{r['ratio']:>5.2f}x {r['cpu_ratio']:>10.2f}x {r['ours_share_of_peak']:>10.0%} "
              f"{r['keras_hub_share_of_peak']:>9.0%}")
    report = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "machine": f"{os.cpu_count()} CPU cores", "tensorflow": tf.__version__,
              "keras": keras.__version__, "matmul_peak_gflops": peak,
              "seq_length": SEQ_LENGTH, "masked_positions": MASKED_POSITIONS,
              "results": results,
              # Other work on the machine skews absolute figures; ratios of
              # alternating windows are far less affected.
              "load_average_1min": os.getloadavg()[0]}
    write_json(args.output, report)
    print(f"wrote {args.output}")


def write_json(path: str, value) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
    with os.fdopen(fd, "w") as f:
        json.dump(value, f, indent=2)
    os.replace(tmp, path)


if __name__ == "__main__":
    main()
