"""SQuAD fine-tuning: ours vs Hugging Face transformers (PyTorch), one run.

The SQuAD file is split by article: the first `--train_articles` to train
on, the next `--eval_articles` (default: all the others) to evaluate on.
Both sides start from the same weights (`--init_checkpoint`, a known model
name or a Hugging Face folder; the span layer starts random on both) and
train on the same windows (our features, which are Google's) with the same
recipe. Batching is each side's own: ours is `run_squad.py`'s default
(length-sorted windows of shuffled batches, each batch padded to its
longest window, `--bucket_window_batches`), Hugging Face's random batches
padded to `--max_seq_length` as its SQuAD feature conversion pads them
(`--hf_padding=max`) or to each batch's longest window
(`--hf_padding=batch`). The recipe: AdamW with bias
correction, epsilon 1e-6, weight decay 0.01 (not on biases and LayerNorm),
linear warm-up over `--warmup_proportion` of the steps then linear decay,
gradients clipped at global norm 1, dropout on, Google's step count
(questions / batch * epochs). Both then predict the same evaluation windows
(padded to `--max_seq_length`); both sets of logits go through the same
postprocessing (Google's `write_predictions`) and the official SQuAD v1.1
metric.

Training throughput is windows (sequences) per second over the steps after
the first `--warmup_windows` log windows of `--log_steps` steps (ours: the
trainer's own figure per log window; theirs: the same windows timed around
the PyTorch loop), so tracing and start-up are left out on both sides.
PyTorch runs in a child process that never imports TensorFlow (in one
process the two thread pools fight); the two trainings run one after the
other, so background load during one of them shows in the ratio.

    # a tiny check (2 train / 1 eval article of the shipped slice, a few steps):
    PYTHONPATH=. python benchmarks/bench_squad_vs_hf.py --train_articles 2 \
        --max_seq_length 128 --doc_stride 64 --max_steps 12 --log_steps 4
    # the real run: 20 articles to train, the other 4 to evaluate
    PYTHONPATH=. python benchmarks/bench_squad_vs_hf.py \
        --squad_file squad/dev-v1.1.json --train_articles 20 \
        --output squad_vs_hf.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_SQUAD = os.path.join(REPO, "tests", "data", "squad", "dev-v1.1-slice.json")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--squad_file", default=DEFAULT_SQUAD)
    parser.add_argument("--train_articles", type=int, default=20)
    parser.add_argument("--eval_articles", type=int, default=None,
                        help="default: every article after the training ones")
    parser.add_argument("--init_checkpoint", default="minilm-l6-h384-uncased")
    parser.add_argument("--max_seq_length", type=int, default=384)
    parser.add_argument("--doc_stride", type=int, default=128)
    parser.add_argument("--max_query_length", type=int, default=64)
    parser.add_argument("--train_batch_size", type=int, default=32)
    parser.add_argument("--predict_batch_size", type=int, default=32)
    parser.add_argument("--learning_rate", type=float, default=5e-5)
    parser.add_argument("--num_train_epochs", type=float, default=2.0)
    parser.add_argument("--warmup_proportion", type=float, default=0.1)
    parser.add_argument("--max_steps", type=int, default=None,
                        help="stop both trainings after this many steps (a quick check)")
    parser.add_argument("--log_steps", type=int, default=20)
    parser.add_argument("--warmup_windows", type=int, default=1,
                        help="log windows left out of the throughput (tracing, start-up)")
    parser.add_argument("--hf_padding", choices=("max", "batch"), default="max",
                        help="Hugging Face's batches padded to max_seq_length or to their longest")
    parser.add_argument("--bucket_window_batches", type=int, default=None,
                        help="ours: batches per length-sorting window (default: run_squad's)")
    parser.add_argument("--seed", type=int, default=12345)
    parser.add_argument("--work_dir", default=None)
    parser.add_argument("--output", default=None, help="also write the JSON result here")
    parser.add_argument("--hf_worker", default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


# ---------------------------------------------------------------------------
# Data shared by both sides
# ---------------------------------------------------------------------------

def split_by_article(path, train_articles, eval_articles, work_dir):
    with open(path, encoding="utf-8") as f:
        squad = json.load(f)
    articles = squad["data"]
    if train_articles < 1 or train_articles >= len(articles):
        raise SystemExit(f"--train_articles must be in [1, {len(articles) - 1}] for {path}")
    evaluated = articles[train_articles:] if eval_articles is None else (
        articles[train_articles:train_articles + eval_articles])
    paths = {}
    for name, part in (("train", articles[:train_articles]), ("eval", evaluated)):
        paths[name] = os.path.join(work_dir, f"{name}.json")
        with open(paths[name], "w", encoding="utf-8") as f:
            json.dump({"data": part, "version": squad.get("version", "1.1")}, f)
    return paths, [a["title"] for a in articles[:train_articles]], [a["title"] for a in evaluated]


def hf_folder_of(init_checkpoint: str) -> str:
    from bert_tf import pretrained

    if init_checkpoint in pretrained.KNOWN_MODELS:
        return os.path.join(pretrained.fetch_known_model(init_checkpoint), "huggingface")
    if os.path.exists(os.path.join(init_checkpoint, "model.safetensors")):
        return init_checkpoint
    raise SystemExit("--init_checkpoint must be a known model name or a Hugging Face folder, "
                     "so that both sides load the same weights")


def save_features(path, train_features, eval_features, max_seq_length):
    def padded(features, field):
        out = np.zeros((len(features), max_seq_length), np.int64)
        for row, feature in enumerate(features):
            values = getattr(feature, field)
            out[row, :len(values)] = values
        return out

    np.savez(path, train_ids=padded(train_features, "input_ids"),
             train_types=padded(train_features, "segment_ids"),
             train_lengths=np.array([len(f.input_ids) for f in train_features]),
             train_start=np.array([f.start_position for f in train_features]),
             train_end=np.array([f.end_position for f in train_features]),
             eval_ids=padded(eval_features, "input_ids"),
             eval_types=padded(eval_features, "segment_ids"))


def schedule_steps(num_questions, args):
    steps = max(1, int(num_questions / args.train_batch_size * args.num_train_epochs))
    total = steps
    if args.max_steps:
        steps = min(steps, args.max_steps)
    return steps, total


def throughput(window_rates, warmup_windows):
    """Mean windows/s over the log windows after the warm-up ones, weighting
    each window by its steps (given as (steps, seconds) pairs)."""
    kept = window_rates[warmup_windows:] or window_rates[-1:]
    steps = sum(s for s, _ in kept)
    seconds = sum(t for _, t in kept)
    return steps, seconds


# ---------------------------------------------------------------------------
# Ours
# ---------------------------------------------------------------------------

def run_ours(args, source, train_features, eval_features, num_steps, total_steps, work_dir):
    import tensorflow as tf

    from bert_tf import squad, squad_data, trainer

    config = trainer.TrainerConfig(
        model_dir=os.path.join(work_dir, "ours"), num_train_steps=total_steps,
        learning_rate=args.learning_rate,
        num_warmup_steps=int(total_steps * args.warmup_proportion),
        optimizer="adamw_bias_corrected", steps_per_loop=args.log_steps,
        log_steps=args.log_steps, save_checkpoints_steps=10 ** 9, seed=args.seed)
    task = squad.SpanTask(source.config, source, args.max_seq_length)
    runner = trainer.Trainer(task, config)
    task.initialize(runner.model)
    runner.config.num_train_steps = num_steps  # the schedule keeps total_steps
    start = time.time()
    runner.train(lambda ctx: squad_data.squad_dataset(
        train_features, args.train_batch_size, is_training=True, seed=args.seed,
        input_context=ctx, bucket_window_batches=args.bucket_window_batches))
    train_seconds = time.time() - start
    # The trainer's own per-window figures, from its TensorBoard summaries.
    rates = []
    events = tf.io.gfile.glob(os.path.join(config.model_dir, "train", "events.*"))
    previous = 0
    for path in sorted(events):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.tag == "examples_per_second":
                    rate = float(tf.make_ndarray(value.tensor))
                    steps = event.step - previous
                    previous = event.step
                    rates.append((steps, steps * args.train_batch_size / rate))
    outputs = runner.predict(lambda ctx: squad_data.squad_dataset(
        eval_features, args.predict_batch_size, is_training=False,
        max_seq_length=args.max_seq_length, input_context=ctx))
    order = outputs["feature_index"].argsort()
    return {"start": outputs["start_logits"][order], "end": outputs["end_logits"][order],
            "windows": rates, "train_seconds": train_seconds}


# ---------------------------------------------------------------------------
# Hugging Face (child process, PyTorch only)
# ---------------------------------------------------------------------------

def hf_worker(spec_path):
    import torch
    import transformers

    spec = json.load(open(spec_path))
    data = np.load(spec["data"])
    torch.set_num_threads(os.cpu_count())
    torch.manual_seed(spec["seed"])
    model = transformers.BertForQuestionAnswering.from_pretrained(spec["hf_folder"])
    model.train()
    no_decay = ("bias", "LayerNorm.weight")
    named = list(model.named_parameters())
    groups = [{"params": [p for n, p in named if not any(k in n for k in no_decay)],
               "weight_decay": 0.01},
              {"params": [p for n, p in named if any(k in n for k in no_decay)],
               "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=spec["learning_rate"], eps=1e-6)
    schedule = transformers.get_linear_schedule_with_warmup(
        optimizer, spec["num_warmup_steps"], spec["total_steps"])
    ids, types = data["train_ids"], data["train_types"]
    lengths, starts, ends = data["train_lengths"], data["train_start"], data["train_end"]
    rng = np.random.default_rng(spec["seed"])
    order, cursor = rng.permutation(len(ids)), 0
    batch = spec["train_batch_size"]
    windows, window_start, window_steps = [], time.time(), 0
    start_all = time.time()
    for step in range(spec["num_steps"]):
        if cursor + batch > len(order):
            order, cursor = rng.permutation(len(ids)), 0
        rows = order[cursor:cursor + batch]
        cursor += batch
        width = int(lengths[rows].max()) if spec["pad_per_batch"] else ids.shape[1]
        input_ids = torch.from_numpy(ids[rows, :width])
        outputs = model(input_ids=input_ids, token_type_ids=torch.from_numpy(types[rows, :width]),
                        attention_mask=(input_ids != 0).long(),
                        start_positions=torch.from_numpy(starts[rows]),
                        end_positions=torch.from_numpy(ends[rows]))
        outputs.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
        window_steps += 1
        if (step + 1) % spec["log_steps"] == 0 or step + 1 == spec["num_steps"]:
            windows.append((window_steps, time.time() - window_start))
            window_start, window_steps = time.time(), 0
    train_seconds = time.time() - start_all
    model.eval()
    eval_ids, eval_types = data["eval_ids"], data["eval_types"]
    start_logits, end_logits = [], []
    with torch.no_grad():
        for i in range(0, len(eval_ids), spec["predict_batch_size"]):
            input_ids = torch.from_numpy(eval_ids[i:i + spec["predict_batch_size"]])
            out = model(input_ids=input_ids,
                        token_type_ids=torch.from_numpy(eval_types[i:i + spec["predict_batch_size"]]),
                        attention_mask=(input_ids != 0).long())
            start_logits.append(out.start_logits.numpy())
            end_logits.append(out.end_logits.numpy())
    np.savez(spec["result"], start=np.concatenate(start_logits), end=np.concatenate(end_logits),
             windows=np.array(windows, np.float64), train_seconds=train_seconds)


def run_hf(args, hf_folder, data_path, num_steps, total_steps, work_dir):
    spec = {"hf_folder": hf_folder, "data": data_path, "seed": args.seed,
            "learning_rate": args.learning_rate, "num_steps": num_steps,
            "total_steps": total_steps,
            "num_warmup_steps": int(total_steps * args.warmup_proportion),
            "train_batch_size": args.train_batch_size, "log_steps": args.log_steps,
            "predict_batch_size": args.predict_batch_size,
            "pad_per_batch": args.hf_padding == "batch",
            "result": os.path.join(work_dir, "hf_result.npz")}
    spec_path = os.path.join(work_dir, "hf_spec.json")
    with open(spec_path, "w") as f:
        json.dump(spec, f)
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    subprocess.run([sys.executable, os.path.abspath(__file__), "--hf_worker", spec_path],
                   check=True, env=env)
    result = np.load(spec["result"])
    return {"start": result["start"], "end": result["end"],
            "windows": [tuple(w) for w in result["windows"].tolist()],
            "train_seconds": float(result["train_seconds"])}


# ---------------------------------------------------------------------------

def score(logits, examples, features, articles, max_seq_length):
    from bert_tf import squad_metrics, squad_postprocess

    predictions, _, _ = squad_postprocess.compute_predictions(
        examples, features, logits["start"][:, :max_seq_length], logits["end"][:, :max_seq_length])
    return squad_metrics.evaluate_v1(articles, predictions), predictions


def main(argv=None):
    args = parse_args(argv)
    if args.hf_worker:
        hf_worker(args.hf_worker)
        return
    from bert_tf import pretrained, squad_data, tokenization

    work_dir = args.work_dir or tempfile.mkdtemp(prefix="bench_squad_")
    os.makedirs(work_dir, exist_ok=True)
    paths, train_titles, eval_titles = split_by_article(
        args.squad_file, args.train_articles, args.eval_articles, work_dir)
    hf_folder = hf_folder_of(args.init_checkpoint)
    source = pretrained.resolve(args.init_checkpoint)
    tokenizer = tokenization.FullTokenizer(source.vocab_file, source.do_lower_case
                                           if source.do_lower_case is not None else True)
    train_examples = squad_data.read_squad_examples(paths["train"], True)
    train_features = squad_data.convert_examples_to_features(
        train_examples, tokenizer, args.max_seq_length, args.doc_stride, args.max_query_length,
        True)
    eval_articles = squad_data.read_squad_file(paths["eval"])
    eval_examples = squad_data.read_squad_examples(paths["eval"], False, articles=eval_articles)
    eval_features = squad_data.convert_examples_to_features(
        eval_examples, tokenizer, args.max_seq_length, args.doc_stride, args.max_query_length,
        False)
    num_steps, total_steps = schedule_steps(len(train_examples), args)
    data_path = os.path.join(work_dir, "features.npz")
    save_features(data_path, train_features, eval_features, args.max_seq_length)

    sides = {"ours": run_ours(args, source, train_features, eval_features, num_steps,
                              total_steps, work_dir),
             "huggingface": run_hf(args, hf_folder, data_path, num_steps, total_steps, work_dir)}
    report = {"squad_file": args.squad_file, "train_articles": train_titles,
              "eval_articles": eval_titles, "train_questions": len(train_examples),
              "train_windows": len(train_features), "eval_questions": len(eval_examples),
              "eval_windows": len(eval_features), "init_checkpoint": args.init_checkpoint,
              "max_seq_length": args.max_seq_length, "doc_stride": args.doc_stride,
              "train_batch_size": args.train_batch_size, "learning_rate": args.learning_rate,
              "hf_padding": args.hf_padding, "bucket_window_batches": args.bucket_window_batches,
              "load_average_1min_at_end": os.getloadavg()[0],
              "num_train_epochs": args.num_train_epochs, "steps": num_steps,
              "schedule_steps": total_steps, "cpu_count": os.cpu_count()}
    for name, side in sides.items():
        metrics, _ = score(side, eval_examples, eval_features, eval_articles, args.max_seq_length)
        steps, seconds = throughput(side["windows"], args.warmup_windows)
        report[name] = {"exact_match": metrics["exact_match"], "f1": metrics["f1"],
                        "train_sequences_per_second": steps * args.train_batch_size / seconds,
                        "timed_steps": int(steps), "train_seconds_total": side["train_seconds"]}
    report["f1_difference"] = report["ours"]["f1"] - report["huggingface"]["f1"]
    report["speed_ratio_ours_over_hf"] = (report["ours"]["train_sequences_per_second"]
                                          / report["huggingface"]["train_sequences_per_second"])
    text = json.dumps(report, indent=2)
    print(text)
    if args.output:
        with open(args.output, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
