"""Samples text from a GPT-2: Hugging Face, OpenAI or our own model folders.

--init_checkpoint is a model folder (see bert_tf/gpt2_pretrained.py): a
Hugging Face GPT-2 folder (config.json, model.safetensors, vocab.json +
merges.txt or tokenizer.json, or vocab.txt), OpenAI's release layout
(hparams.json, encoder.json, vocab.bpe, model.ckpt.*), or what our own
training writes (the OpenAI layout, with vocab.txt for a Chinese WordPiece
model). The tokenizer always comes from the folder.

Defaults are those of OpenAI's interactive_conditional_samples.py:
--length is n_ctx // 2, --temperature=1, --top_k=0 and --top_p=1 (no
limit), one sample per prompt, a random seed. Without --prefix and
--prefix_file the samples are unconditional, started from <|endoftext|> as
OpenAI's generate_unconditional_samples.py starts them ([MASK] for a
GPT2-Chinese vocabulary). --top_k=1 is greedy decoding. Generation stops
at <|endoftext|> (or [CLS]) unless --stop_token says otherwise.

Each sample is one JSON line: prefix, text (the continuation only),
prompt_index, sample, prompt_tokens, new_tokens, stopped, seed. With
--output_file the lines are written there (the file appears whole, or
not at all); otherwise they are printed.

    python generate.py --init_checkpoint=models/124M --prefix="The meaning of life" \\
        --length=40 --nsamples=3 --temperature=0.8 --top_k=40 --top_p=0.9 \\
        --repetition_penalty=1.1 --seed=1 --output_file=samples.jsonl

With --export_dir the model is exported instead of sampled: a SavedModel
(bert_tf/generation_serving.py) whose `generate` signature takes raw
prompt strings, max_new_tokens, temperature, top_k, top_p and seed, with
the tokenizer and the decoding loop in the graph and --stop_token and
--repetition_penalty built in. A client needs TensorFlow and
tensorflow-text only:

    python generate.py --init_checkpoint=models/124M --export_dir=served/124M
"""

import json
import random
import sys

from absl import flags, logging

from bert_tf import cli

FLAGS = flags.FLAGS

flags.DEFINE_string("init_checkpoint", None,
                    "Model folder (Hugging Face, OpenAI layout or ours), or a checkpoint "
                    "prefix inside one.")
flags.DEFINE_string("prefix", None, "The prompt. Without it (and --prefix_file), "
                    "unconditional samples.")
flags.DEFINE_string("prefix_file", None, "A UTF-8 file of prompts, one per line (a line with "
                    "a literal \\n in it stands for a newline); batched together.")
flags.DEFINE_integer("length", None, "New tokens per sample, at most; default n_ctx // 2.")
flags.DEFINE_integer("nsamples", 1, "Samples per prompt.")
flags.DEFINE_integer("batch_size", 1, "Prompts decoded together.")
flags.DEFINE_float("temperature", 1.0, "Divides the logits; > 0. Greedy is --top_k=1.")
flags.DEFINE_integer("top_k", 0, "Sample among the k most likely tokens; 0: all, 1: greedy.")
flags.DEFINE_float("top_p", 1.0, "Nucleus sampling: the most likely tokens whose "
                   "probabilities reach p; in (0, 1], 1: all.")
flags.DEFINE_float("repetition_penalty", 1.0, "> 1 makes tokens already in the text less "
                   "likely (CTRL's rule); 1: off.")
flags.DEFINE_integer("seed", None, "Seed of the samples; the same seed gives the same "
                     "samples. Default: a random one (recorded in the output).")
flags.DEFINE_list("stop_token", None, "Tokens that end a sample (not included in it). "
                  "Default <|endoftext|> (BPE) or [CLS] (WordPiece); empty: none.")
flags.DEFINE_string("output_file", None, "JSON lines file to write; default: print.")
flags.DEFINE_string("export_dir", None, "Export a generating SavedModel (raw strings in, "
                    "continuations out) here instead of sampling; the folder appears whole.")
flags.mark_flag_as_required("init_checkpoint")


def read_prompts():
    """(prompts, name of where they came from); None is an unconditional prompt."""
    if FLAGS.prefix is not None and FLAGS.prefix_file:
        raise ValueError("give --prefix or --prefix_file, not both")
    if FLAGS.prefix_file:
        from bert_tf import text_files

        prompts = []
        for number, line in text_files.read_lines(FLAGS.prefix_file):
            line = line.rstrip("\r\n")
            if not line:
                raise ValueError(f"{FLAGS.prefix_file}:{number}: empty prompt")
            prompts.append(line.replace("\\n", "\n"))
        if not prompts:
            raise ValueError(f"--prefix_file={FLAGS.prefix_file} has no prompts")
        return prompts
    if FLAGS.prefix == "":
        raise ValueError("--prefix is empty: give some text, or leave --prefix out for "
                         "unconditional samples")
    return [FLAGS.prefix]


def main(_):
    from bert_tf import generation

    # Settings are checked before the model loads, so a typo costs nothing.
    generation.check_sampling(FLAGS.temperature, FLAGS.top_k, FLAGS.top_p,
                              FLAGS.repetition_penalty)
    if FLAGS.length is not None and FLAGS.length < 1:
        raise ValueError(f"--length must be a positive integer, got {FLAGS.length}")
    if FLAGS.export_dir:
        given = [name for name in ("prefix", "prefix_file", "output_file")
                 if getattr(FLAGS, name) is not None]
        if given:
            raise ValueError(f"--export_dir exports the model instead of sampling; "
                             f"--{given[0]} has no use with it")
        return export()
    prompts = read_prompts()
    seed = FLAGS.seed if FLAGS.seed is not None else random.randrange(2 ** 31)

    from bert_tf import gpt2_pretrained

    model, tokenizer, found = gpt2_pretrained.load(FLAGS.init_checkpoint)
    n_ctx = model.config.n_ctx
    length = FLAGS.length if FLAGS.length is not None else n_ctx // 2
    logging.info("%s model from %s (n_ctx=%d, n_vocab=%d), %s tokenizer, seed %d",
                 found.format, found.folder, n_ctx, model.config.n_vocab,
                 found.tokenizer_type, seed)
    samples = generation.generate_text(
        model, tokenizer, prompts, length, nsamples=FLAGS.nsamples, batch_size=FLAGS.batch_size,
        temperature=FLAGS.temperature, top_k=FLAGS.top_k, top_p=FLAGS.top_p,
        repetition_penalty=FLAGS.repetition_penalty, stop_tokens=FLAGS.stop_token, seed=seed)
    lines = [json.dumps({**s.to_dict(), "seed": seed}, ensure_ascii=False) + "\n"
             for s in sorted(samples, key=lambda s: (s.prompt_index, s.sample))]
    if FLAGS.output_file:
        from bert_tf import atomic_io

        atomic_io.write_text(FLAGS.output_file, "".join(lines))
        logging.info("Wrote %d samples to %s", len(lines), FLAGS.output_file)
    else:
        sys.stdout.write("".join(lines))


def export():
    """--export_dir: the generating SavedModel of --init_checkpoint."""
    from bert_tf import generation_serving, gpt2_pretrained

    model, tokenizer, found = gpt2_pretrained.load(FLAGS.init_checkpoint)
    generation_serving.export_generator(model, tokenizer, FLAGS.export_dir,
                                        stop_tokens=FLAGS.stop_token,
                                        repetition_penalty=FLAGS.repetition_penalty)
    logging.info("Exported the %s model of %s (n_ctx=%d) to %s", found.format, found.folder,
                 model.config.n_ctx, FLAGS.export_dir)


if __name__ == "__main__":
    cli.run(main)
