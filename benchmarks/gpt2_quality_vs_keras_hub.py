"""Held-out loss of small GPT-2s trained from scratch: ours vs keras-hub.

Two languages, two models each, all four of the same size (6 layers, 384
wide, 6 heads, intermediate 4x; n_ctx 64, batch 8, 150 steps by default):

- Chinese: People's Daily 1998 with the BERT Chinese vocabulary, tokenized
  the GPT2-Chinese way (`create_lm_data.py --vocab_file`).
- English: the shared English corpora with a byte-level BPE vocabulary
  learned here by `bert_tf.bpe_learning` from the training documents only.

Documents are split, not lines: the last `--heldout_fraction` of each
corpus file's documents (blank-line separated) are held out, and both the
vocabulary and the training windows come from the rest.

Ours is `bert_tf.gpt2.GPT2LM` under `lm.LMTask` on `trainer.Trainer`, the code
`run_lm.py` runs. keras-hub's `GPT2CausalLM` (a `GPT2Backbone` of the same
vocabulary_size, layers, heads, hidden and intermediate sizes, max length
and dropout) runs on the SAME trainer with the SAME task loss, so everything
else is shared by construction: the TFRecords and their batches in the same
order (one dataset function, one seed), AdamW with the same warm-up/decay
schedule, clipping, batch, steps and global seed. Only the model differs,
including its own initialisation. Weight decay skips LayerNorm parameters
and biases in both (keras-hub's LayerNorms are named `*layer_norm*`, ours
`ln_*`, so the trainer's default patterns are extended to catch ours too).

Every `--eval_every` steps both are scored on the same first
`--eval_batches` held-out batches (dropout off); the curves, the final
losses, perplexities and the gap go to `--output_file` (JSON) and
`--markdown_file`. Each run resumes from its trainer checkpoints and the
JSON keeps finished points, so a killed benchmark continues where it was.

    PYTHONPATH=. nice -n 10 python benchmarks/gpt2_quality_vs_keras_hub.py \\
        --work_dir=/tmp/bench_gpt2/quality \\
        --output_file=/tmp/bench_gpt2/gpt2_quality_vs_keras_hub.json \\
        --markdown_file=/tmp/bench_gpt2/gpt2_quality_vs_keras_hub.md
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import logging  # noqa: E402

from bert_tf import atomic_io, bpe_learning, gpt2, lm, lm_data, optimization, trainer  # noqa: E402

SHARED = "/work/shared/data"
# LayerNorm parameters of ours, for the weight-decay exclusion (see above).
OUR_NORM_PATTERN = r"(^|/)ln_(\d+|f)/"


def split_documents(paths, heldout_fraction, train_path, heldout_path):
    """Writes the first documents of each file to `train_path` and its last
    `heldout_fraction` (at least one) to `heldout_path`; returns the counts."""
    counts = {"train_documents": 0, "heldout_documents": 0}
    with atomic_io.open_for_write(train_path) as train, \
            atomic_io.open_for_write(heldout_path) as heldout:
        for path in paths:
            with open(path, encoding="utf-8") as f:
                documents = [d.strip("\n") for d in f.read().split("\n\n") if d.strip()]
            held = max(1, round(len(documents) * heldout_fraction))
            for document in documents[:-held]:
                train.write(document + "\n\n")
            for document in documents[-held:]:
                heldout.write(document + "\n\n")
            counts["train_documents"] += len(documents) - held
            counts["heldout_documents"] += held
    return counts


def data_folder(language, args) -> str:
    """Where one language's split, vocabulary, records and runs live: named
    by what the records depend on, so other settings never reuse them."""
    name = f"{language}_ctx{args.n_ctx}" + (f"_bpe{args.bpe_vocab_size}" if language == "en" else "")
    return os.path.join(args.work_dir, name)


def prepare(language, args):
    """Split, vocabulary and TFRecords for one language (skipped when present)."""
    folder = data_folder(language, args)
    os.makedirs(folder, exist_ok=True)
    info_path = os.path.join(folder, "data.json")
    if os.path.exists(info_path):
        with open(info_path, encoding="utf-8") as f:
            return json.load(f)
    start = time.time()
    corpus = sorted(glob.glob(args.zh_corpus if language == "zh" else args.en_corpus))
    train_txt, heldout_txt = (os.path.join(folder, n) for n in ("train.txt", "heldout.txt"))
    info = {"corpus": corpus, **split_documents(corpus, args.heldout_fraction, train_txt,
                                                heldout_txt)}
    if language == "zh":
        vocab = {"vocab_file": args.zh_vocab}
        info["vocabulary"] = f"BERT Chinese vocab.txt ({args.zh_vocab})"
    else:
        bpe_dir = os.path.join(folder, "bpe")
        with open(train_txt, encoding="utf-8") as f:
            tokenizer = bpe_learning.learn_bpe(f, args.bpe_vocab_size)
        tokenizer.save(bpe_dir)
        vocab = {"vocab_dir": bpe_dir}
        info["vocabulary"] = (f"byte-level BPE of {tokenizer.vocab_size} tokens learned from "
                              "the training documents")
    tokenizer = lm_data.load_tokenizer(**vocab)
    info["n_vocab"] = tokenizer.vocab_size
    config = lm_data.LMDataConfig(n_ctx=args.n_ctx, **vocab)
    for split, text in (("train", train_txt), ("heldout", heldout_txt)):
        stats = lm_data.create_lm_data(text, os.path.join(folder, f"{split}.tfrecord"), config)
        info[f"{split}_windows"] = sum(s.windows for s in stats)
        info[f"{split}_tokens"] = sum(s.tokens for s in stats)
    info["prepare_seconds"] = round(time.time() - start, 1)
    atomic_io.write_text(info_path, json.dumps(info, indent=1))
    return info


class _KerasHubLM(keras.Model):
    """keras-hub's GPT2CausalLM behind our model interface: ids in, logits out
    (every window is full length, so the padding mask is all ones)."""

    def __init__(self, config: gpt2.GPT2Config, name: str = "keras_hub_gpt2", **kwargs):
        super().__init__(name=name, **kwargs)
        import keras_hub

        backbone = keras_hub.models.GPT2Backbone(
            vocabulary_size=config.n_vocab, num_layers=config.n_layer,
            num_heads=config.n_head, hidden_dim=config.n_embd,
            intermediate_dim=config.n_inner, dropout=config.resid_pdrop,
            max_sequence_length=config.n_ctx)
        self.causal_lm = keras_hub.models.GPT2CausalLM(backbone=backbone, preprocessor=None)
        self.config = config
        self.built = True

    def call(self, token_ids, training=False):
        return self.causal_lm({"token_ids": token_ids,
                               "padding_mask": tf.ones_like(token_ids)}, training=training)


class _KerasHubTask(lm.LMTask):
    """LMTask's loss and counts on keras-hub's model."""

    def build_model(self):
        return _KerasHubLM(self.config)


def run_one(language, peer, info, args, state, save):
    """Trains one model to --num_train_steps, scoring every --eval_every steps."""
    key = f"{language}/{peer}"
    record = state["runs"].setdefault(key, {"curve": []})
    if record.get("done"):
        return record
    config = gpt2.GPT2Config(n_vocab=info["n_vocab"], n_ctx=args.n_ctx, n_embd=args.n_embd,
                             n_head=args.n_head, n_layer=args.n_layer,
                             embd_pdrop=args.dropout, attn_pdrop=args.dropout,
                             resid_pdrop=args.dropout)
    task = (lm.LMTask if peer == "ours" else _KerasHubTask)(config)
    options = trainer.TrainingOptions(seed=args.seed, use_xla=args.use_xla,
                                      steps_per_loop=args.eval_every,
                                      save_checkpoints_steps=args.eval_every,
                                      log_steps=args.eval_every, keep_checkpoint_max=1)
    trainer_config = trainer.TrainerConfig.from_options(
        options, model_dir=os.path.join(data_folder(language, args), peer),
        num_train_steps=args.num_train_steps, learning_rate=args.learning_rate,
        num_warmup_steps=args.num_warmup_steps)
    runner = trainer.Trainer(task, trainer_config)
    runner.optimizer.exclude_from_weight_decay = [
        *optimization.DEFAULT_EXCLUDE_FROM_WEIGHT_DECAY, OUR_NORM_PATTERN]
    record["parameters"] = int(sum(v.numpy().size for v in runner.model.trainable_variables))
    folder = data_folder(language, args)

    def train_fn(context):
        return lm.lm_dataset(os.path.join(folder, "train.tfrecord"), args.batch_size,
                             args.n_ctx, True, input_context=context, seed=args.seed)

    def heldout_fn(context):
        return lm.lm_dataset(os.path.join(folder, "heldout.tfrecord"), args.batch_size,
                             args.n_ctx, False, input_context=context)

    done_steps = {point["step"] for point in record["curve"]}
    for stop in range(args.eval_every, args.num_train_steps + 1, args.eval_every):
        if stop in done_steps:
            continue
        # The schedule was built for num_train_steps; only the stopping point moves.
        runner.config.num_train_steps = stop
        start = time.time()
        logged = runner.train(train_fn)
        seconds = time.time() - start
        results = runner.evaluate(heldout_fn, max_steps=args.eval_batches)
        point = {"step": int(runner.global_step.numpy()), "heldout_loss": results["lm"],
                 "heldout_perplexity": math.exp(results["lm"]),
                 "heldout_accuracy": results["accuracy"],
                 "train_loss": logged.get("loss"), "train_seconds": round(seconds, 1)}
        record["curve"].append(point)
        print(f"{key} step {point['step']}: held-out loss {point['heldout_loss']:.4f} "
              f"(perplexity {point['heldout_perplexity']:.1f}), train loss "
              f"{point['train_loss']:.4f}, {seconds:.0f} s", flush=True)
        save()
    record["done"] = True
    save()
    return record


def markdown(state) -> str:
    lines = ["| corpus | step | ours loss | keras-hub loss | ours ppl | keras-hub ppl | gap (kh - ours) |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for language in ("zh", "en"):
        ours = state["runs"].get(f"{language}/ours", {}).get("curve", [])
        peer = {p["step"]: p for p in state["runs"].get(f"{language}/keras_hub", {}).get("curve", [])}
        for point in ours:
            other = peer.get(point["step"])
            if other is None:
                continue
            lines.append(
                f"| {language} | {point['step']} | {point['heldout_loss']:.4f} | "
                f"{other['heldout_loss']:.4f} | {point['heldout_perplexity']:.1f} | "
                f"{other['heldout_perplexity']:.1f} | "
                f"{other['heldout_loss'] - point['heldout_loss']:+.4f} |")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work_dir", required=True, help="Data, vocabularies, checkpoints.")
    parser.add_argument("--output_file", required=True, help="Results JSON.")
    parser.add_argument("--markdown_file", default=None, help="The curves as a markdown table.")
    parser.add_argument("--languages", default="zh,en")
    parser.add_argument("--zh_corpus", default=f"{SHARED}/corpora/zh/peoples_daily_1998.txt")
    parser.add_argument("--zh_vocab", default=f"{SHARED}/vocab/bert_chinese_vocab.txt")
    parser.add_argument("--en_corpus", default=f"{SHARED}/corpora/en/*.txt")
    parser.add_argument("--bpe_vocab_size", type=int, default=8192)
    parser.add_argument("--heldout_fraction", type=float, default=0.05)
    parser.add_argument("--n_ctx", type=int, default=64)
    parser.add_argument("--n_embd", type=int, default=384)
    parser.add_argument("--n_head", type=int, default=6)
    parser.add_argument("--n_layer", type=int, default=6)
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--num_train_steps", type=int, default=150)
    parser.add_argument("--num_warmup_steps", type=int, default=15)
    parser.add_argument("--learning_rate", type=float, default=1e-3)
    parser.add_argument("--eval_every", type=int, default=25)
    parser.add_argument("--eval_batches", type=int, default=8)
    parser.add_argument("--use_xla", action="store_true")
    parser.add_argument("--seed", type=int, default=12345)
    args = parser.parse_args()
    logging.set_verbosity(logging.WARNING)

    settings = {k: v for k, v in vars(args).items() if k not in ("output_file", "markdown_file")}
    state = {"settings": settings, "data": {}, "runs": {}}
    if os.path.exists(args.output_file):
        with open(args.output_file, encoding="utf-8") as f:
            stored = json.load(f)
        if stored.get("settings") != settings:
            raise SystemExit(f"{args.output_file} holds a run with other settings; pass another "
                             "--output_file or remove it")
        state = stored

    def save():
        atomic_io.write_text(args.output_file, json.dumps(state, indent=1))
        if args.markdown_file:
            atomic_io.write_text(args.markdown_file, markdown(state))

    start = time.time()
    for language in args.languages.split(","):
        state["data"][language] = prepare(language, args)
        save()
        for peer in ("ours", "keras_hub"):
            started = time.time()
            record = run_one(language, peer, state["data"][language], args, state, save)
            record.setdefault("wall_seconds", round(time.time() - started, 1))
        ours = state["runs"][f"{language}/ours"]["curve"][-1]
        other = state["runs"][f"{language}/keras_hub"]["curve"][-1]
        state.setdefault("final", {})[language] = {
            "ours_loss": ours["heldout_loss"], "keras_hub_loss": other["heldout_loss"],
            "ours_perplexity": ours["heldout_perplexity"],
            "keras_hub_perplexity": other["heldout_perplexity"],
            "loss_gap_keras_hub_minus_ours": other["heldout_loss"] - ours["heldout_loss"],
            "ours_no_worse": ours["heldout_loss"] <= other["heldout_loss"]}
        save()
    state["total_seconds_this_call"] = round(time.time() - start, 1)
    save()
    print(markdown(state))
    print(json.dumps(state.get("final", {}), indent=1))


if __name__ == "__main__":
    main()
