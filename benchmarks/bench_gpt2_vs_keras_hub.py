"""GPT-2 speed, ours vs keras-hub GPT2CausalLM, side by side in one run.

Three comparisons, every figure a median over `--repeats` (>= 3) timed
windows taken after a warm-up (tracing, compilation), peers alternating so
that background load hits both alike:

- train: one optimizer update on the same batch of full windows (float32),
  with and without XLA for both. Ours is the trainer's compiled step loop
  over `lm.LMTask` (the code `run_lm.py` runs: the task loss, global-norm
  clipping, AdamWeightDecay); keras-hub's is `GPT2CausalLM.train_on_batch`
  compiled with AdamW, the same clipping and its sparse cross-entropy.
  Figure: windows (sequences) per second.
- generate: new tokens per second, `generation.generate(...)` with the
  key/value cache vs keras-hub `GPT2CausalLM.generate` (as shipped: its own
  compiled, cached loop), same model size, batch, prompt length, number of
  new tokens (no stop token) and sampler: greedy and top-k.
- cache: ours with the cache vs ours without (`use_cache=False`), same
  prompt (`--cache_batch_size`, default 1), 256 new tokens, greedy.

Models are randomly initialised (speed does not depend on the weights);
both peers get the same config: `--n_layer`, `--n_embd`, `--n_head`,
intermediate 4x, `--n_vocab`. Results go to `--output` (JSON); sections
already in it are kept, so a killed run resumes, and `--redo=generate,cache`
re-measures those sections only (say, after a change to the decode loop).

    PYTHONPATH=. nice -n 10 python benchmarks/bench_gpt2_vs_keras_hub.py \\
        --output=/tmp/bench_gpt2/bench_gpt2_vs_keras_hub.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import logging  # noqa: E402

from bert_tf import generation, gpt2, lm, trainer  # noqa: E402
from bench_pretraining_step import TrainerLoop, write_json  # noqa: E402

SECTIONS = ("train", "generate", "cache")


def gpt2_config(args, n_ctx: int) -> gpt2.GPT2Config:
    return gpt2.GPT2Config(n_vocab=args.n_vocab, n_ctx=n_ctx, n_embd=args.n_embd,
                           n_head=args.n_head, n_layer=args.n_layer)


def keras_hub_lm(config: gpt2.GPT2Config):
    import keras_hub

    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=config.n_vocab, num_layers=config.n_layer, num_heads=config.n_head,
        hidden_dim=config.n_embd, intermediate_dim=config.n_inner,
        dropout=config.resid_pdrop, max_sequence_length=config.n_ctx)
    return keras_hub.models.GPT2CausalLM(backbone=backbone, preprocessor=None)


def alternate(peers: dict, repeats: int):
    """Each peer's `run()` -> (units, seconds, CPU seconds) over `repeats`
    rounds, order flipped each round; returns units per second and units
    per CPU-second of this process (which moves far less when other work
    shares the cores), per peer."""
    rates = {name: [] for name in peers}
    cpu_rates = {name: [] for name in peers}
    order = list(peers)
    for i in range(repeats):
        for name in order if i % 2 == 0 else order[::-1]:
            units, seconds, cpu_seconds = peers[name]()
            rates[name].append(units / seconds)
            cpu_rates[name].append(units / cpu_seconds)
    return rates, cpu_rates


def _medians(rates):
    return {name: statistics.median(values) for name, values in rates.items()}


def _timed(fn):
    """(fn's units, seconds, CPU seconds)."""
    start, cpu_start = time.perf_counter(), time.process_time()
    units = fn()
    return units, time.perf_counter() - start, time.process_time() - cpu_start


# ----------------------------------------------------------------------------
# Training step
# ----------------------------------------------------------------------------

def train_section(args, use_xla: bool) -> dict:
    config = gpt2_config(args, args.seq_length)
    rng = np.random.default_rng(0)
    ids = rng.integers(0, config.n_vocab, (args.train_batch_size, args.seq_length + 1),
                       dtype=np.int32)
    batch = {"token_ids": tf.constant(ids[:, :-1]), "labels": tf.constant(ids[:, 1:])}
    steps = args.train_window

    with tempfile.TemporaryDirectory() as model_dir:
        runner = trainer.Trainer(lm.LMTask(config), trainer.TrainerConfig(
            model_dir=model_dir, num_train_steps=1_000_000, learning_rate=1e-4,
            num_warmup_steps=100, use_xla=use_xla))
        ours = TrainerLoop(runner, lambda _: tf.data.Dataset.from_tensors(batch).repeat())

        theirs = keras_hub_lm(config)
        theirs.compile(optimizer=keras.optimizers.AdamW(1e-4, weight_decay=0.01, epsilon=1e-6,
                                                        global_clipnorm=1.0),
                       loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                       weighted_metrics=[], jit_compile=use_xla)
        x = {"token_ids": batch["token_ids"], "padding_mask": tf.ones_like(batch["token_ids"])}

        def run_ours(n=steps):
            return ours.run(n)

        def run_theirs(n=steps):
            def steps_taken():
                for _ in range(n):
                    loss = theirs.train_on_batch(x, batch["labels"])
                float(np.asarray(loss))  # waits for the last step
                return float(n * args.train_batch_size)
            return _timed(steps_taken)

        for name, run in (("ours", run_ours), ("keras_hub", run_theirs)):
            print(f"  train xla={use_xla} {name}: warm-up {run(args.warmup_steps)[1]:.1f} s",
                  flush=True)
        rates, cpu_rates = alternate({"ours": run_ours, "keras_hub": run_theirs}, args.repeats)
    keras.backend.clear_session()
    medians, cpu = _medians(rates), _medians(cpu_rates)
    return {"xla": use_xla, "batch_size": args.train_batch_size, "seq_length": args.seq_length,
            "window_steps": steps, "seq_per_s": rates, "seq_per_cpu_s": cpu_rates,
            "ours_seq_per_s": medians["ours"], "keras_hub_seq_per_s": medians["keras_hub"],
            "ratio": medians["ours"] / medians["keras_hub"],
            "cpu_ratio": cpu["ours"] / cpu["keras_hub"], "target": 1.3}


# ----------------------------------------------------------------------------
# Generation
# ----------------------------------------------------------------------------

def _prompts(batch_size: int, length: int, vocab: int) -> list[list[int]]:
    rng = np.random.default_rng(1)
    return rng.integers(0, vocab, (batch_size, length)).tolist()


def _ours_generator(model, prompts, new_tokens, use_cache, top_k, seed=0):
    """top_k 1 is greedy."""

    def tokens():
        out = generation.generate(model, prompts, new_tokens, use_cache=use_cache,
                                  seed=seed, top_k=top_k)
        produced = sum(len(row) for row in out)
        if produced != len(prompts) * new_tokens:
            raise RuntimeError(f"ours produced {produced} tokens, expected "
                               f"{len(prompts) * new_tokens}")
        return float(produced)

    return lambda: _timed(tokens)


def _keras_hub_generator(causal_lm, prompts, new_tokens, top_k):
    import keras_hub

    causal_lm.compile(sampler="greedy" if top_k == 1
                      else keras_hub.samplers.TopKSampler(k=top_k, seed=0))
    total = len(prompts[0]) + new_tokens
    ids = np.zeros((len(prompts), total), np.int32)
    mask = np.zeros((len(prompts), total), bool)
    ids[:, :len(prompts[0])] = prompts
    mask[:, :len(prompts[0])] = True
    inputs = {"token_ids": tf.constant(ids), "padding_mask": tf.constant(mask)}

    def tokens():
        out = causal_lm.generate(inputs, stop_token_ids=None)
        produced = int(np.asarray(out["padding_mask"]).sum()) - int(mask.sum())
        if produced != len(prompts) * new_tokens:
            raise RuntimeError(f"keras-hub produced {produced} tokens, expected "
                               f"{len(prompts) * new_tokens}")
        return float(produced)

    return lambda: _timed(tokens)



def generate_section(args) -> dict:
    config = gpt2_config(args, args.prompt_length + args.new_tokens)
    keras.utils.set_random_seed(0)
    ours = gpt2.GPT2LM(config)
    theirs = keras_hub_lm(config)
    prompts = _prompts(args.gen_batch_size, args.prompt_length, config.n_vocab)
    results = {"batch_size": args.gen_batch_size, "prompt_length": args.prompt_length,
               "new_tokens": args.new_tokens, "top_k": args.top_k}
    for sampler, top_k in (("greedy", 1), ("top_k", args.top_k)):
        peers = {"ours": _ours_generator(ours, prompts, args.new_tokens, True, top_k),
                 "keras_hub": _keras_hub_generator(theirs, prompts, args.new_tokens, top_k)}
        for name, run in peers.items():
            print(f"  generate {sampler} {name}: warm-up {run()[1]:.1f} s", flush=True)
        rates, cpu_rates = alternate(peers, args.repeats)
        medians, cpu = _medians(rates), _medians(cpu_rates)
        results[sampler] = {"tokens_per_s": rates, "tokens_per_cpu_s": cpu_rates,
                            "ours_tokens_per_s": medians["ours"],
                            "keras_hub_tokens_per_s": medians["keras_hub"],
                            "ratio": medians["ours"] / medians["keras_hub"],
                            "cpu_ratio": cpu["ours"] / cpu["keras_hub"], "target": 1.5}
    results["keras_hub_jit_compile"] = bool(getattr(theirs, "jit_compile", None))
    keras.backend.clear_session()
    return results


def cache_section(args) -> dict:
    new_tokens = args.cache_new_tokens
    config = gpt2_config(args, args.prompt_length + new_tokens)
    keras.utils.set_random_seed(0)
    model = gpt2.GPT2LM(config)
    prompts = _prompts(args.cache_batch_size, args.prompt_length, config.n_vocab)
    peers = {"cached": _ours_generator(model, prompts, new_tokens, True, 1),
             "uncached": _ours_generator(model, prompts, new_tokens, False, 1)}
    for name, run in peers.items():
        print(f"  cache {name}: warm-up {run()[1]:.1f} s", flush=True)
    rates, cpu_rates = alternate(peers, args.repeats)
    medians, cpu = _medians(rates), _medians(cpu_rates)
    keras.backend.clear_session()
    return {"batch_size": args.cache_batch_size, "prompt_length": args.prompt_length,
            "new_tokens": new_tokens, "tokens_per_s": rates, "tokens_per_cpu_s": cpu_rates,
            "cached_tokens_per_s": medians["cached"],
            "uncached_tokens_per_s": medians["uncached"],
            "ratio": medians["cached"] / medians["uncached"],
            "cpu_ratio": cpu["cached"] / cpu["uncached"], "target": 5.0}


def _generation_source() -> dict:
    """Which decode loop was measured: the last commit of generation.py and
    whether the working tree differs from it."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(generation.__file__)))
    path = os.path.join("bert_tf", "generation.py")
    try:
        commit = subprocess.run(["git", "log", "-1", "--format=%h %s", "--", path], cwd=root,
                                capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "diff", "--quiet", "--", path], cwd=root).returncode != 0
    except (OSError, subprocess.CalledProcessError):
        return {}
    return {"generation_py_commit": commit, "generation_py_uncommitted_changes": dirty}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", default=",".join(SECTIONS))
    parser.add_argument("--redo", default="", help="sections to measure again")
    parser.add_argument("--modes", default="f32,xla", help="train: f32, xla or both")
    parser.add_argument("--n_layer", type=int, default=6)
    parser.add_argument("--n_embd", type=int, default=384)
    parser.add_argument("--n_head", type=int, default=6)
    parser.add_argument("--n_vocab", type=int, default=21128, help="BERT Chinese vocabulary size")
    parser.add_argument("--seq_length", type=int, default=128)
    parser.add_argument("--train_batch_size", type=int, default=8)
    parser.add_argument("--train_window", type=int, default=3, help="steps per timed window")
    parser.add_argument("--warmup_steps", type=int, default=2)
    parser.add_argument("--gen_batch_size", type=int, default=4)
    parser.add_argument("--prompt_length", type=int, default=16)
    parser.add_argument("--new_tokens", type=int, default=128)
    parser.add_argument("--cache_new_tokens", type=int, default=256)
    parser.add_argument("--cache_batch_size", type=int, default=1,
                        help="prompts in the cached vs uncached comparison")
    parser.add_argument("--top_k", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", default="/tmp/bench_gpt2/bench_gpt2_vs_keras_hub.json")
    args = parser.parse_args()
    if args.repeats < 3:
        parser.error("--repeats must be >= 3 (figures are medians)")
    logging.set_verbosity(logging.WARNING)

    wanted = [s for s in args.sections.split(",") if s]
    redo = {s for s in args.redo.split(",") if s}
    unknown = [s for s in wanted + sorted(redo) if s not in SECTIONS]
    if unknown:
        parser.error(f"unknown section(s): {', '.join(unknown)}; known: {', '.join(SECTIONS)}")
    settings = {k: v for k, v in vars(args).items() if k not in ("sections", "redo", "output")}
    report = {}
    if os.path.exists(args.output):
        with open(args.output, encoding="utf-8") as f:
            report = json.load(f)
        if report.get("settings") != settings:
            raise SystemExit(f"{args.output} was measured with other settings; pass another "
                             "--output or remove it")
    report.update({"settings": settings, "tensorflow": tf.__version__,
                   "keras": keras.__version__, "machine": f"{os.cpu_count()} CPU cores"})
    sections = report.setdefault("sections", {})

    def measured(name, fn):
        if name in sections and name.split("/")[0] not in redo:
            return
        print(f"{name}:", flush=True)
        value = fn()
        value.update(date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                     load_average_1min=os.getloadavg()[0])
        if name != "train":
            value.update(_generation_source())
        sections[name] = value
        write_json(args.output, report)

    if "train" in wanted:
        for mode in [m for m in args.modes.split(",") if m]:
            measured(f"train/{mode}", lambda: train_section(args, mode == "xla"))
    if "generate" in wanted:
        measured("generate", lambda: generate_section(args))
    if "cache" in wanted:
        measured("cache", lambda: cache_section(args))
    write_json(args.output, report)

    print(f"\n{'comparison':<34} {'ours':>10} {'peer':>10} {'ratio':>7} {'CPU-s':>7} "
          f"{'target':>7}")
    for mode in ("f32", "xla"):
        r = sections.get(f"train/{mode}")
        if r:
            print(f"{'train seq/s ' + mode + ' vs keras-hub':<34} {r['ours_seq_per_s']:>10.2f} "
                  f"{r['keras_hub_seq_per_s']:>10.2f} {r['ratio']:>6.2f}x {r['cpu_ratio']:>6.2f}x "
                  f"{r['target']:>6.1f}x")
    r = sections.get("generate")
    for sampler in ("greedy", "top_k"):
        if r and sampler in r:
            s = r[sampler]
            print(f"{'generate tok/s ' + sampler + ' vs keras-hub':<34} "
                  f"{s['ours_tokens_per_s']:>10.1f} {s['keras_hub_tokens_per_s']:>10.1f} "
                  f"{s['ratio']:>6.2f}x {s['cpu_ratio']:>6.2f}x {s['target']:>6.1f}x")
    r = sections.get("cache")
    if r:
        print(f"{'cached vs uncached tok/s':<34} {r['cached_tokens_per_s']:>10.1f} "
              f"{r['uncached_tokens_per_s']:>10.1f} {r['ratio']:>6.2f}x {r['cpu_ratio']:>6.2f}x "
              f"{r['target']:>6.1f}x")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
