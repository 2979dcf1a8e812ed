"""Fine-tuning MiniLM on SST-2: ours vs Hugging Face transformers (PyTorch).

Both start from the same MiniLM weights and train on the same random subset
of SST-2 train (same seed, same Google-tokenized features) with the same
recipe: AdamW with weight decay 0.01 (not on biases and LayerNorm), linear
warm-up over 10% of the steps then linear decay, batch 32, one epoch,
dropout on, gradients clipped at global norm 1. Both are then evaluated on
the full SST-2 dev set (872 sentences).

Accuracy comes from the full epochs. Throughput is measured separately, in
alternating windows of a few steps after a warm-up, so background load hits
every contender alike: Hugging Face padded to `--max_seq_length` (as usual),
ours with length bucketing (mode a, our default), and ours padded to the
same fixed length (mode b). Ours runs the Trainer's compiled loop, i.e. what
`run_classifier.py` runs. PyTorch runs in a child process that never
imports TensorFlow: in one process the two runtimes' thread pools fight and
PyTorch slows down tenfold.

    PYTHONPATH=. python benchmarks/bench_finetune_vs_hf.py                 # ~20 min
    PYTHONPATH=. python benchmarks/bench_finetune_vs_hf.py --num_examples 2000 --max_seq_length 128
    PYTHONPATH=. python benchmarks/bench_finetune_vs_hf.py --skip_accuracy  # throughput only
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

MODEL = "minilm-l6-h384-uncased"
BATCH_SIZE = 32
LABELS = ["0", "1"]


def padded_arrays(features, length: int) -> dict[str, np.ndarray]:
    """Features as fixed-length arrays, zero-padded as Google's pipeline pads."""
    ids = np.zeros((len(features), length), np.int64)
    types = np.zeros_like(ids)
    for row, feature in enumerate(features):
        ids[row, :len(feature.input_ids)] = feature.input_ids
        types[row, :len(feature.segment_ids)] = feature.segment_ids
    return {"input_ids": ids, "token_type_ids": types, "attention_mask": (ids != 0).astype(np.int64),
            "labels": np.array([f.label_id for f in features], np.int64)}


class HuggingFaceFineTuning:
    """The usual transformers recipe, written as a plain PyTorch loop."""

    def __init__(self, hf_folder: str, train: dict, num_steps: int, learning_rate: float, seed: int,
                 num_labels: int = 2, pad_per_batch: bool = False):
        import torch
        import transformers

        torch.set_num_threads(os.cpu_count())
        torch.manual_seed(seed)
        # num_labels=1 makes it a regression head with a mean squared error loss.
        self.model = transformers.BertForSequenceClassification.from_pretrained(
            hf_folder, num_labels=num_labels)
        self.pad_per_batch = pad_per_batch
        self.model.train()
        no_decay = ("bias", "LayerNorm.weight")
        named = list(self.model.named_parameters())
        groups = [{"params": [p for n, p in named if not any(k in n for k in no_decay)],
                   "weight_decay": 0.01},
                  {"params": [p for n, p in named if any(k in n for k in no_decay)],
                   "weight_decay": 0.0}]
        self.optimizer = torch.optim.AdamW(groups, lr=learning_rate)
        self.schedule = transformers.get_linear_schedule_with_warmup(
            self.optimizer, int(0.1 * num_steps), num_steps)
        self.train = {k: torch.from_numpy(v) for k, v in train.items()}
        self.generator = torch.Generator().manual_seed(seed)
        self.order = torch.empty(0, dtype=torch.long)

    def _next_batch(self):
        import torch

        if len(self.order) < BATCH_SIZE:  # a new epoch; the partial batch is dropped
            self.order = torch.randperm(len(self.train["labels"]), generator=self.generator)
        rows, self.order = self.order[:BATCH_SIZE], self.order[BATCH_SIZE:]
        batch = {k: v[rows] for k, v in self.train.items()}
        if self.pad_per_batch:  # dynamic padding: cut to this batch's longest sequence
            width = int(batch["attention_mask"].sum(1).max())
            batch = {k: v[:, :width] if v.dim() == 2 else v for k, v in batch.items()}
        return batch

    def run(self, steps: int) -> tuple[float, float, float]:
        """Takes `steps` optimizer steps; returns (examples, seconds, CPU seconds)."""
        import torch

        start, cpu_start = time.perf_counter(), time.process_time()
        for _ in range(steps):
            loss = self.model(**self._next_batch()).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
            self.optimizer.step()
            self.schedule.step()
            self.optimizer.zero_grad()
        return (float(steps * BATCH_SIZE), time.perf_counter() - start,
                time.process_time() - cpu_start)

    def predict(self, dev: dict) -> np.ndarray:
        """Logits [examples, num_labels], each batch of 64 cut to its own longest."""
        import torch

        self.model.eval()
        logits = []
        with torch.no_grad():
            for start in range(0, len(dev["input_ids"]), 64):
                batch = {k: v[start:start + 64] for k, v in dev.items() if k != "labels"}
                width = int(batch["attention_mask"].sum(1).max())
                batch = {k: torch.from_numpy(v[:, :width]) for k, v in batch.items()}
                logits.append(self.model(**batch).logits.numpy())
        self.model.train()
        return np.concatenate(logits)

    def accuracy(self, dev: dict) -> float:
        import torch

        self.model.eval()
        correct = 0
        with torch.no_grad():
            for start in range(0, len(dev["labels"]), 64):
                batch = {k: torch.from_numpy(v[start:start + 64]) for k, v in dev.items()
                         if k != "labels"}
                correct += int((self.model(**batch).logits.argmax(-1).numpy()
                                == dev["labels"][start:start + 64]).sum())
        self.model.train()
        return correct / len(dev["labels"])


class HuggingFaceWorker:
    """Drives a HuggingFaceFineTuning in a child process, one command a line."""

    def __init__(self, hf_folder: str, train: dict, dev: dict, num_steps: int,
                 learning_rate: float, seed: int, work_dir: str):
        data = os.path.join(work_dir, "hf_data.npz")
        np.savez(data, **{f"train_{k}": v for k, v in train.items()},
                 **{f"dev_{k}": v for k, v in dev.items()})
        spec = json.dumps({"hf_folder": hf_folder, "data": data, "num_steps": num_steps,
                           "learning_rate": learning_rate, "seed": seed})
        self.process = subprocess.Popen(
            [sys.executable, "-u", os.path.abspath(__file__), "--hf_worker", spec],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            # Idle OpenMP threads sleep instead of spinning: with spinning,
            # any other load on the machine slows PyTorch down about fivefold.
            env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"})
        self._ask("ready")

    def _ask(self, command: str):
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        while True:
            line = self.process.stdout.readline()
            if not line:
                raise RuntimeError(f"the Hugging Face worker died (exit {self.process.wait()})")
            if line.startswith("RESULT "):
                return json.loads(line[len("RESULT "):])

    def run(self, steps: int) -> tuple[float, float, float]:
        return tuple(self._ask(f"run {steps}"))

    def accuracy(self) -> float:
        return self._ask("accuracy")

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait()


def serve_hf_worker(spec: str) -> None:
    """The child side of HuggingFaceWorker: PyTorch only, no TensorFlow."""
    spec = json.loads(spec)
    arrays = np.load(spec["data"])
    split = lambda prefix: {k[len(prefix):]: arrays[k] for k in arrays.files if k.startswith(prefix)}
    hf = HuggingFaceFineTuning(spec["hf_folder"], split("train_"), spec["num_steps"],
                               spec["learning_rate"], spec["seed"])
    dev = split("dev_")
    for line in sys.stdin:
        command, *rest = line.split()
        if command == "ready":
            result = True
        elif command == "run":
            result = hf.run(int(rest[0]))
        elif command == "accuracy":
            result = hf.accuracy(dev)
        else:
            raise ValueError(f"unknown command {command!r}")
        print("RESULT " + json.dumps(result), flush=True)


class OursFineTuning:
    """The Trainer's compiled loop on the classification task, for timing only."""

    def __init__(self, source: pretrained.Pretrained, features, length: int, bucket: bool,
                 learning_rate: float, seed: int, model_dir: str):
        from bench_pretraining_step import TrainerLoop
        from bert_tf import classification, classifier_data, trainer

        task = classification.ClassificationTask(source.config, len(LABELS), source=source)
        runner = trainer.Trainer(task, trainer.TrainerConfig(
            model_dir=model_dir, num_train_steps=len(features) // BATCH_SIZE,
            learning_rate=learning_rate, num_warmup_steps=len(features) // BATCH_SIZE // 10,
            seed=seed))
        task.initialize(runner.model)
        self.timer = TrainerLoop(runner, lambda ctx: classifier_data.classifier_dataset(
            features, BATCH_SIZE, is_training=True, seed=seed, bucket_by_length=bucket,
            max_seq_length=length, input_context=ctx))

    def run(self, steps: int) -> tuple[float, float, float]:
        return self.timer.run(steps)


def accuracy_runs(args, source, hf_folder, train_features, dev_features, work_dir) -> dict:
    """One full epoch each; dev accuracy and wall time."""
    from bert_tf import classification, trainer

    num_steps = len(train_features) // BATCH_SIZE
    print(f"[accuracy] Hugging Face: {num_steps} steps at length {args.max_seq_length}", flush=True)
    hf = HuggingFaceWorker(hf_folder, padded_arrays(train_features, args.max_seq_length),
                           padded_arrays(dev_features, args.max_seq_length), num_steps,
                           args.learning_rate, args.seed, work_dir)
    seconds = hf.run(num_steps)[1]
    results = {"hf": {"dev_accuracy": hf.accuracy(), "train_seconds": seconds}}
    hf.close()
    print(f"[accuracy] ours (run_classifier, length buckets): {num_steps} steps", flush=True)
    start = time.perf_counter()
    metrics = classification.run_classifier(classification.ClassifierSettings(
        task_name="sst-2", data_dir=args.data_dir, output_dir=os.path.join(work_dir, "ours"),
        source=source, max_seq_length=args.max_seq_length, learning_rate=args.learning_rate,
        num_train_epochs=1.0, warmup_proportion=0.1, train_batch_size=BATCH_SIZE,
        max_train_examples=args.num_examples,
        training=trainer.TrainingOptions(seed=args.seed, steps_per_loop=50, log_steps=50,
                                         save_checkpoints_steps=10 ** 6)))
    results["ours"] = {"dev_accuracy": metrics["eval_accuracy"],
                       "train_and_eval_seconds": time.perf_counter() - start}
    return results


def throughput_runs(args, source, hf_folder, train_features, work_dir) -> dict:
    """Alternating timed windows after a warm-up; medians of sequences/s."""
    num_steps = len(train_features) // BATCH_SIZE
    padded = padded_arrays(train_features, args.max_seq_length)
    peers = {"hf_padded": HuggingFaceWorker(hf_folder, padded, padded, num_steps,
                                            args.learning_rate, args.seed, work_dir)}
    for name, bucket in (("ours_bucketed", True), ("ours_padded", False)):
        peers[name] = OursFineTuning(source, train_features, args.max_seq_length, bucket,
                                     args.learning_rate, args.seed, os.path.join(work_dir, name))
    for name, peer in peers.items():
        seconds = peer.run(args.warmup_steps)[1]
        print(f"[throughput] {name}: warm-up {seconds:.1f} s", flush=True)
    rates = {name: [] for name in peers}
    cpu_rates = {name: [] for name in peers}
    order = list(peers)
    for i in range(args.rounds):
        for name in (order if i % 2 == 0 else order[::-1]):
            examples, seconds, cpu_seconds = peers[name].run(args.window_steps)
            rates[name].append(examples / seconds)
            cpu_rates[name].append(examples / cpu_seconds)
        print(f"[throughput] round {i + 1}: " + ", ".join(
            f"{n} {r[-1]:.1f}" for n, r in rates.items()), flush=True)
    peers["hf_padded"].close()
    return {name: {"windows": r, "seq_per_s": statistics.median(r),
                   "seq_per_cpu_s": statistics.median(cpu_rates[name])}
            for name, r in rates.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num_examples", type=int, default=8000)
    parser.add_argument("--max_seq_length", type=int, default=64)
    parser.add_argument("--learning_rate", type=float, default=5e-5)
    parser.add_argument("--seed", type=int, default=12345)
    parser.add_argument("--data_dir", default="data/sst2")
    parser.add_argument("--skip_accuracy", action="store_true", help="only the throughput windows")
    parser.add_argument("--skip_throughput", action="store_true", help="only the full epochs")
    parser.add_argument("--warmup_steps", type=int, default=5)
    parser.add_argument("--window_steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--output", default="output/benchmarks/finetune_vs_hf.json")
    parser.add_argument("--hf_worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.hf_worker:
        serve_hf_worker(args.hf_worker)
        return

    import tensorflow as tf

    from bench_pretraining_step import write_json
    from bert_tf import classifier_data, pretrained, tokenization

    source = pretrained.resolve(MODEL)
    hf_folder = os.path.join(pretrained.fetch_known_model(MODEL), "huggingface")
    processor = classifier_data.Sst2Processor()
    examples = processor.get_train_examples(args.data_dir)
    # The same subset run_classifier draws for max_train_examples and this seed.
    if args.num_examples < len(examples):
        examples = random.Random(args.seed).sample(examples, args.num_examples)
    tokenizer = tokenization.FullTokenizer(source.vocab_file, source.do_lower_case)
    train_features = classifier_data.convert_examples_to_features(
        examples, LABELS, args.max_seq_length, tokenizer)
    dev_features = classifier_data.convert_examples_to_features(
        processor.get_dev_examples(args.data_dir), LABELS, args.max_seq_length, tokenizer)

    report = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "machine": f"{os.cpu_count()} CPU cores", "tensorflow": tf.__version__,
              "num_examples": len(train_features), "dev_examples": len(dev_features),
              "mean_tokens": float(np.mean([len(f.input_ids) for f in train_features])),
              "args": vars(args),
              # Other work on the machine skews absolute figures; ratios of
              # alternating windows are far less affected.
              "load_average_1min": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory() as work_dir:
        if not args.skip_accuracy:
            report["accuracy"] = accuracy_runs(args, source, hf_folder, train_features,
                                               dev_features, work_dir)
        if not args.skip_throughput:
            speed = throughput_runs(args, source, hf_folder, train_features, work_dir)
            hf_rate = speed["hf_padded"]["seq_per_s"]
            report["throughput"] = speed
            report["ratio_bucketed_vs_hf"] = speed["ours_bucketed"]["seq_per_s"] / hf_rate
            report["ratio_padded_vs_hf"] = speed["ours_padded"]["seq_per_s"] / hf_rate

    print(f"\nSST-2, MiniLM, {len(train_features)} train examples, length {args.max_seq_length}, "
          f"batch {BATCH_SIZE}, lr {args.learning_rate}, seed {args.seed}")
    if "accuracy" in report:
        acc = report["accuracy"]
        print(f"dev accuracy: ours {acc['ours']['dev_accuracy']:.4f}  "
              f"Hugging Face {acc['hf']['dev_accuracy']:.4f}  "
              f"(diff {100 * (acc['ours']['dev_accuracy'] - acc['hf']['dev_accuracy']):+.1f} points)")
    if "throughput" in report:
        speed = report["throughput"]
        hf = speed["hf_padded"]
        print(f"{'training, medians':<34} {'seq/s':>7} {'vs HF':>6} {'seq/CPU-s':>10} {'vs HF':>6}")
        for name, label in (("hf_padded", f"Hugging Face, padded to {args.max_seq_length}"),
                            ("ours_bucketed", "ours, length buckets (a)"),
                            ("ours_padded", f"ours, padded to {args.max_seq_length} (b)")):
            rate, cpu_rate = speed[name]["seq_per_s"], speed[name]["seq_per_cpu_s"]
            print(f"{label:<34} {rate:>7.1f} {rate / hf['seq_per_s']:>5.2f}x "
                  f"{cpu_rate:>10.1f} {cpu_rate / hf['seq_per_cpu_s']:>5.2f}x")
    write_json(args.output, report)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
