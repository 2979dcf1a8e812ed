"""Fine-tuning quality on GLUE tasks: our default batching vs random batches vs Hugging Face.

Every method fine-tunes the same MiniLM weights on the same random training
subset (drawn per seed as `run_classifier.py --max_train_examples` draws it,
tokenized by Google's tokenizer) with the same recipe: lr 5e-5, batch 32,
10% linear warm-up then linear decay, length 128, 2 epochs, weight decay
0.01, gradients clipped at norm 1, dropout 0.1. Methods:

  ours         `run_classifier`'s defaults: length-sorted windows of
               shuffled batches (`--bucket_by_length`; 50 batches, or a
               tenth of an epoch when fewer), Google's optimizer
  ours_random  random batches (`--bucket_window_batches=1`): the same
               example order as `--nobucket_by_length`, padded per batch
               instead of to 128, which changes the speed, not the result
  ours_bc      as `ours`, with Adam's bias correction (`--optimizer=adamw_bias_corrected`)
  hf           Hugging Face PyTorch `BertForSequenceClassification`, random
               batches cut to their own longest sequence, torch AdamW

Tasks: SST-2 (data/sst2 ships in the repository), MRPC and CoLA from
`--glue_dir` (the `download_glue_data.py` layout), and a regression task built
from real human similarity scores, `--wordsim_dir` holding EN-SIMLEX-999.txt
and EN-WS-353-ALL.txt (`word1<TAB>word2<TAB>score`, 0-10): each word pair
becomes a sentence pair scored through the generic processor's regression.
Metrics as GLUE reports them (SST-2 accuracy, MRPC F1, CoLA MCC, Pearson).

The script also counts the padding each batching pads to, and times training
(ours default vs Hugging Face padded to 128 as usual, alternating windows in
one run, reusing bench_finetune_vs_hf's timers). Results go to `--output`
after every fine-tuning run; rerunning with the same output resumes.

    PYTHONPATH=. python benchmarks/bench_glue_quality.py --glue_dir glue_data \
        --wordsim_dir wordsim                         # ~60 min on 2 cores
    PYTHONPATH=. python benchmarks/bench_glue_quality.py --tasks sst-2 --seeds 1 \
        --num_train_examples 200 --skip_throughput    # a quick look
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
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_finetune_vs_hf import BATCH_SIZE, MODEL, padded_arrays  # noqa: E402

METHODS = {
    "ours": dict(bucket_window_batches=None, optimizer="adamw"),
    "ours_random": dict(bucket_window_batches=1, optimizer="adamw"),
    "ours_bc": dict(bucket_window_batches=None, optimizer="adamw_bias_corrected"),
    "hf": None,
}
# (processor task name, metric GLUE reports, metric key of glue_metrics)
TASKS = {
    "sst-2": ("sst-2", "accuracy"),
    "mrpc": ("mrpc", "f1"),
    "cola": ("cola", "mcc"),
    "wordsim": ("generic", "pearson"),
}
WORDSIM_FILES = ("EN-SIMLEX-999.txt", "EN-WS-353-ALL.txt")


def build_wordsim_task(wordsim_dir: str, out_dir: str, dev_share: float = 0.25) -> str:
    """train.tsv/dev.tsv of word pairs and their similarity scores, split at random.

    A pair that occurs in both sets keeps its SimLex-999 score (similarity
    proper; WS-353 scores relatedness) and is listed once.
    """
    pairs = {}
    for name in WORDSIM_FILES:
        path = os.path.join(wordsim_dir, name)
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                fields = line.rstrip("\n").split("\t")
                if len(fields) != 3:
                    raise ValueError(f"{path}:{number}: expected word1<TAB>word2<TAB>score")
                key = tuple(sorted(w.lower() for w in fields[:2]))
                pairs.setdefault(key, (fields[0], fields[1], float(fields[2])))
    rows = sorted(pairs.values())
    random.Random(0).shuffle(rows)
    num_dev = int(len(rows) * dev_share)
    os.makedirs(out_dir, exist_ok=True)
    for split, part in (("dev", rows[:num_dev]), ("train", rows[num_dev:])):
        with open(os.path.join(out_dir, f"{split}.tsv"), "w", encoding="utf-8") as f:
            f.write("word1\tword2\tscore\n")
            f.writelines(f"{a}\t{b}\t{score}\n" for a, b, score in part)
    return out_dir


def task_setup(name: str, args, work_dir: str):
    """(data_dir, processor task name, processor kwargs) for one task."""
    if name == "sst-2":
        return args.sst2_dir, "sst-2", {}
    if name in ("mrpc", "cola"):
        if not args.glue_dir:
            raise ValueError(f"task {name} needs --glue_dir")
        return os.path.join(args.glue_dir, name.upper() if name == "mrpc" else "CoLA"), name, {}
    if name == "wordsim":
        if not args.wordsim_dir:
            raise ValueError("task wordsim needs --wordsim_dir")
        data_dir = build_wordsim_task(args.wordsim_dir, os.path.join(work_dir, "wordsim"))
        return data_dir, "generic", dict(text_a_column="word1", text_b_column="word2",
                                         label_column="score", is_regression=True,
                                         data_dir=data_dir)
    raise ValueError(f"unknown task {name!r}; known: {', '.join(TASKS)}")


def task_features(name, args, work_dir, seed, tokenizer):
    """The train subset run_classifier draws for this seed, and the dev set, as features."""
    from bert_tf import classifier_data

    data_dir, processor_name, kwargs = task_setup(name, args, work_dir)
    processor = classifier_data.get_processor(processor_name, **kwargs)
    train = processor.get_train_examples(data_dir)
    if args.num_train_examples and len(train) > args.num_train_examples:
        train = random.Random(seed).sample(train, args.num_train_examples)
    dev = processor.get_dev_examples(data_dir)
    labels = processor.get_labels()
    regression = processor.is_regression

    def convert(examples):
        return classifier_data.convert_examples_to_features(
            examples, labels, args.max_seq_length, tokenizer, is_regression=regression)

    return convert(train), convert(dev), dev, labels, regression


def num_train_steps(num_features: int, epochs: float) -> int:
    # As run_classifier counts them.
    return max(1, int(num_features / BATCH_SIZE * epochs))


def run_ours(name, method, args, work_dir, seed, source) -> dict:
    from bert_tf import classification, trainer

    data_dir, processor_name, kwargs = task_setup(name, args, work_dir)
    options = METHODS[method]
    window = options["bucket_window_batches"] or args.bucket_window_batches  # None: default
    start = time.perf_counter()
    results = classification.run_classifier(classification.ClassifierSettings(
        task_name=processor_name, data_dir=data_dir, source=source,
        output_dir=os.path.join(work_dir, f"{name}-{method}-{seed}"),
        max_seq_length=args.max_seq_length, learning_rate=args.learning_rate,
        num_train_epochs=args.epochs, warmup_proportion=0.1, train_batch_size=BATCH_SIZE,
        max_train_examples=args.num_train_examples or None, processor_kwargs=kwargs,
        bucket_window_batches=window,
        training=trainer.TrainingOptions(seed=seed, optimizer=options["optimizer"],
                                         steps_per_loop=50, log_steps=50,
                                         save_checkpoints_steps=10 ** 6)))
    return {"metrics": {k[len("eval_"):]: v for k, v in results.items()
                        if k.startswith("eval_")},
            "seconds": time.perf_counter() - start}


def run_hf(name, args, work_dir, seed, hf_folder, tokenizer) -> dict:
    """Fine-tunes in a child process that never imports TensorFlow."""
    from bert_tf import metrics

    train, dev_features, dev, labels, regression = task_features(name, args, work_dir, seed,
                                                                 tokenizer)
    data = os.path.join(work_dir, f"hf-{name}-{seed}.npz")
    train_arrays = padded_arrays(train, args.max_seq_length)
    dev_arrays = padded_arrays(dev_features, args.max_seq_length)
    if regression:
        train_arrays["labels"] = np.array([f.label_id for f in train], np.float32)
    np.savez(data, **{f"train_{k}": v for k, v in train_arrays.items()},
             **{f"dev_{k}": v for k, v in dev_arrays.items() if k != "labels"})
    spec = {"hf_folder": hf_folder, "data": data, "logits": data + ".logits.npy",
            "num_steps": num_train_steps(len(train), args.epochs),
            "learning_rate": args.learning_rate, "seed": seed,
            "num_labels": 1 if regression else len(labels)}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-u", os.path.abspath(__file__), "--hf_run", json.dumps(spec)],
                   check=True, env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"})
    seconds = time.perf_counter() - start
    logits = np.load(spec["logits"])
    # Windows never occur here (no doc_stride): one row of logits per example.
    if regression:
        gold = np.array([float(e.label) for e in dev])
        values = metrics.glue_metrics("sts-b", logits[:, 0], gold)
    else:
        index = {label: i for i, label in enumerate(labels)}
        gold = np.array([index[e.label] for e in dev])
        values = metrics.glue_metrics(TASKS[name][0], logits, gold)
    return {"metrics": {k: float(v) for k, v in values.items()}, "seconds": seconds}


def serve_hf_run(spec: str) -> None:
    from bench_finetune_vs_hf import HuggingFaceFineTuning

    spec = json.loads(spec)
    arrays = np.load(spec["data"])
    split = lambda prefix: {k[len(prefix):]: arrays[k] for k in arrays.files if k.startswith(prefix)}
    hf = HuggingFaceFineTuning(spec["hf_folder"], split("train_"), spec["num_steps"],
                               spec["learning_rate"], spec["seed"],
                               num_labels=spec["num_labels"], pad_per_batch=True)
    hf.run(spec["num_steps"])
    np.save(spec["logits"], hf.predict(split("dev_")))


def padding_report(name, args, work_dir, seed, tokenizer) -> dict:
    """Tokens each batching pads to over one run's training batches."""
    from bert_tf import classifier_data

    train = task_features(name, args, work_dir, seed, tokenizer)[0]
    steps = num_train_steps(len(train), args.epochs)
    report = {}
    for label, window in (("windows", args.bucket_window_batches), ("random", 1)):
        dataset = classifier_data.classifier_dataset(
            train, BATCH_SIZE, is_training=True, seed=seed, bucket_window_batches=window)
        real = padded = 0
        for inputs, _ in dataset.take(steps):
            ids = inputs["input_word_ids"].numpy()
            real += int((ids != 0).sum())
            padded += ids.size
        report[label] = {"real_over_padded": real / padded,
                         "saved_vs_max": 1 - padded / (steps * BATCH_SIZE * args.max_seq_length)}
    return report


def throughput(args, source, hf_folder, tokenizer, work_dir) -> dict:
    """Ours (default batching) vs Hugging Face padded to max_seq_length, SST-2 subset."""
    from bench_finetune_vs_hf import throughput_runs

    train = task_features("sst-2", args, work_dir, args.seeds[0], tokenizer)[0]
    timing = argparse.Namespace(max_seq_length=args.max_seq_length, learning_rate=args.learning_rate,
                                seed=args.seeds[0], warmup_steps=args.warmup_steps,
                                window_steps=args.window_steps, rounds=args.rounds)
    speed_dir = os.path.join(work_dir, "speed")
    os.makedirs(speed_dir, exist_ok=True)
    speed = throughput_runs(timing, source, hf_folder, train, speed_dir)
    hf = speed["hf_padded"]["seq_per_s"]
    return {"runs": speed, "ratio_ours_default_vs_hf_padded": speed["ours_bucketed"]["seq_per_s"] / hf,
            "ratio_ours_padded_vs_hf_padded": speed["ours_padded"]["seq_per_s"] / hf}


def summarise(report: dict, args) -> list[str]:
    lines = [f"MiniLM, {args.num_train_examples} train examples per task, {args.epochs:g} epochs, "
             f"batch {BATCH_SIZE}, lr {args.learning_rate}, length {args.max_seq_length}, "
             f"seeds {args.seeds}; mean ± sample std (x100)"]
    header = f"{'task (metric)':<20}" + "".join(f"{m:>16}" for m in args.methods)
    header += f"{'ours - best ref':>17}"
    lines.append(header)
    for task in args.tasks:
        metric = TASKS[task][1]
        cells, means = "", {}
        for method in args.methods:
            values = [100 * r["metrics"][metric] for key, r in report["runs"].items()
                      if key.startswith(f"{task}/{method}/")]
            if not values:
                cells += f"{'-':>16}"
                continue
            means[method] = statistics.mean(values)
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            cells += f"{means[method]:>9.1f} ± {spread:<4.1f}"
        refs = [means[m] for m in ("ours_random", "hf") if m in means]
        gap = f"{means['ours'] - max(refs):+.1f}" if "ours" in means and refs else "-"
        lines.append(f"{task + ' (' + metric + ')':<20}{cells}{gap:>17}")
    for task, pad in report.get("padding", {}).items():
        lines.append(f"padding {task}: windows {pad['windows']['real_over_padded']:.2f} real/padded "
                     f"({100 * pad['windows']['saved_vs_max']:.0f}% saved vs {args.max_seq_length}), "
                     f"random {pad['random']['real_over_padded']:.2f} "
                     f"({100 * pad['random']['saved_vs_max']:.0f}%)")
    if "throughput" in report:
        speed = report["throughput"]
        lines.append(f"training throughput, SST-2: ours default "
                     f"{speed['runs']['ours_bucketed']['seq_per_s']:.1f} seq/s, ours padded "
                     f"{speed['runs']['ours_padded']['seq_per_s']:.1f}, Hugging Face padded to "
                     f"{args.max_seq_length} {speed['runs']['hf_padded']['seq_per_s']:.1f}: "
                     f"{speed['ratio_ours_default_vs_hf_padded']:.2f}x")
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--glue_dir", help="folder with MRPC/ and CoLA/ (download_glue_data.py)")
    parser.add_argument("--wordsim_dir", help="folder with EN-SIMLEX-999.txt, EN-WS-353-ALL.txt")
    parser.add_argument("--sst2_dir", default="data/sst2")
    parser.add_argument("--tasks", default="sst-2,mrpc,cola,wordsim")
    parser.add_argument("--methods", default="ours,ours_random,hf")
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--num_train_examples", type=int, default=1000)
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--learning_rate", type=float, default=5e-5)
    parser.add_argument("--max_seq_length", type=int, default=128)
    parser.add_argument("--bucket_window_batches", type=int, default=None,
                        help="ours: batches per length-sorting window (default: run_classifier's)")
    parser.add_argument("--skip_throughput", action="store_true")
    parser.add_argument("--warmup_steps", type=int, default=3)
    parser.add_argument("--window_steps", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--output", default="output/benchmarks/glue_quality.json")
    parser.add_argument("--hf_run", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.hf_run:
        serve_hf_run(args.hf_run)
        return
    args.tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    args.methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    args.seeds = [int(s) for s in args.seeds.split(",")]
    for method in args.methods:
        if method not in METHODS:
            raise ValueError(f"--methods: unknown {method!r}; known: {', '.join(METHODS)}")
    for task in args.tasks:
        if task not in TASKS:
            raise ValueError(f"--tasks: unknown {task!r}; known: {', '.join(TASKS)}")

    import tensorflow as tf

    from bench_pretraining_step import write_json
    from bert_tf import pretrained, tokenization

    source = pretrained.resolve(MODEL)
    hf_folder = os.path.join(pretrained.fetch_known_model(MODEL), "huggingface")
    tokenizer = tokenization.FullTokenizer(source.vocab_file, source.do_lower_case)
    report = {"args": {k: v for k, v in vars(args).items() if k != "hf_run"}, "runs": {}}
    if os.path.exists(args.output):
        with open(args.output, encoding="utf-8") as f:
            previous = json.load(f)
        # Resume: keep the runs already done with the same recipe, whatever
        # the tasks, methods and seeds asked for this time.
        scope = ("tasks", "methods", "seeds", "skip_throughput", "warmup_steps",
                 "window_steps", "rounds", "output")
        same = lambda a: {k: v for k, v in a.items() if k not in scope}
        if same(previous.get("args", {})) == same(report["args"]):
            previous["args"] = report["args"]
            report = previous
    report.update(tensorflow=tf.__version__, machine=f"{os.cpu_count()} CPU cores")

    with tempfile.TemporaryDirectory() as work_dir:
        # Seed by seed over all tasks, so that a run cut short still covers every task.
        for seed in args.seeds:
            for task in args.tasks:
                for method in args.methods:
                    key = f"{task}/{method}/{seed}"
                    if key in report["runs"]:
                        continue
                    print(f"[{time.strftime('%H:%M:%S')}] {key}", flush=True)
                    if method == "hf":
                        result = run_hf(task, args, work_dir, seed, hf_folder, tokenizer)
                    else:
                        result = run_ours(task, method, args, work_dir, seed, source)
                    report["runs"][key] = result
                    print(f"    {TASKS[task][1]} = {result['metrics'][TASKS[task][1]]:.4f} "
                          f"({result['seconds']:.0f} s)", flush=True)
                    write_json(args.output, report)
                if task not in report.setdefault("padding", {}):
                    report["padding"][task] = padding_report(task, args, work_dir, seed,
                                                             tokenizer)
                    write_json(args.output, report)
        if not args.skip_throughput and "throughput" not in report:
            report["throughput"] = throughput(args, source, hf_folder, tokenizer, work_dir)
            report["load_average_1min"] = os.getloadavg()[0]
            write_json(args.output, report)
    report["summary"] = summarise(report, args)
    write_json(args.output, report)
    print("\n".join(report["summary"]))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
