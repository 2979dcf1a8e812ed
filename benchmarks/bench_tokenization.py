"""Tokenization speed on SST-2 train, and in-graph vs pure-Python agreement.

Speed: wordpieces per second of our FullTokenizer (pure Python, a fresh
instance per run so its caches start empty), Hugging Face's pure-Python
port of Google's tokenizer, Hugging Face `tokenizers` (Rust) and our
in-graph GraphTokenizer (batches of 4096 in a traced tf.function), median
of 3 runs, printed relative to the HF pure-Python port.

Agreement: lines of every corpus where GraphTokenizer's ids differ from
FullTokenizer's, next to tensorflow-text's stock FastBertTokenizer. The
default corpora are the slices in tests/data/corpora (which the tests also
check line by line); pass --corpora_dir for whole corpora in the same layout
(en/brown.txt, en/kjv.txt, en/wiki.txt, zh/peoples_daily_1998.txt).

    PYTHONPATH=. python benchmarks/bench_tokenization.py [--runs 3] [--skip_agreement] \
        [--sst2_dir data/sst2] [--corpora_dir tests/data/corpora] \
        [--vocab_file tests/data/vocab/bert_uncased_vocab.txt] \
        [--chinese_vocab_file tests/data/vocab/bert_chinese_vocab.txt]
"""

import argparse
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf
import tensorflow_text as tf_text
from tokenizers import BertWordPieceTokenizer
from transformers.models.bert import tokenization_bert_legacy as hf_legacy

from bert_tf import text_graph, tokenization

REPO = Path(__file__).resolve().parents[1]
TEST_DATA = REPO / "tests" / "data"
BATCH = 4096


def sst2_sentences(sst2_dir):
    rows = (Path(sst2_dir) / "train.tsv").read_text(encoding="utf-8").splitlines()
    return [row.split("\t")[0] for row in rows[1:]]


def full_tokenizer_ids(lines, vocab):
    tokenizer = tokenization.FullTokenizer(str(vocab), do_lower_case=True)
    return [tokenizer.convert_tokens_to_ids(tokenizer.tokenize(line)) for line in lines]


def hf_python_ids(lines, vocab_file):
    vocab = hf_legacy.load_vocab(str(vocab_file))
    basic = hf_legacy.BasicTokenizer(do_lower_case=True)
    wordpiece = hf_legacy.WordpieceTokenizer(vocab, "[UNK]", max_input_chars_per_word=200)
    return [[vocab[p] for w in basic.tokenize(line) for p in wordpiece.tokenize(w)]
            for line in lines]


def hf_rust_ids(lines, vocab_file):
    tokenizer = BertWordPieceTokenizer(str(vocab_file), lowercase=True)
    return [e.ids for e in tokenizer.encode_batch(lines, add_special_tokens=False)]


def graph_function(vocab):
    tokenizer = text_graph.GraphTokenizer(vocab, do_lower_case=True)
    return tf.function(tokenizer.tokenize, input_signature=[tf.TensorSpec([None], tf.string)])


def fast_bert_function(vocab):
    """tensorflow-text's own FastBertTokenizer, with its ICU case folding."""
    # Lines that strip to nothing (a U+2028 line in the Chinese vocab) get
    # a placeholder so that ids stay line numbers.
    tokens = [token if token not in ("", "##") else f"[line {index}]"
              for index, token in enumerate(tokenization.load_vocab(vocab))]
    tokenizer = tf_text.FastBertTokenizer(
        vocab=tokens, token_out_type=tf.int32,
        lower_case_nfd_strip_accents=True, max_bytes_per_word=800)
    return tf.function(tokenizer.tokenize, input_signature=[tf.TensorSpec([None], tf.string)])


def graph_ids(function, lines):
    ids = []
    for start in range(0, len(lines), BATCH):
        ids.extend(function(tf.constant(lines[start:start + BATCH])).to_list())
    return ids


def median_seconds(run, runs):
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def speed(runs, sst2_dir, vocab):
    lines = sst2_sentences(sst2_dir)
    reference = hf_python_ids(lines, vocab)
    pieces = sum(map(len, reference))
    graph = graph_function(vocab)
    graph_ids(graph, lines[:BATCH])  # trace once, outside the timing
    contenders = {
        "HF pure-Python port (Google's algorithm)": lambda: hf_python_ids(lines, vocab),
        "FullTokenizer (ours, pure Python)": lambda: full_tokenizer_ids(lines, vocab),
        "HF tokenizers (Rust)": lambda: hf_rust_ids(lines, vocab),
        "GraphTokenizer (ours, tf-text)": lambda: graph_ids(graph, lines),
    }
    print(f"SST-2 train: {len(lines):,} sentences, {pieces:,} wordpieces, "
          f"median of {runs} runs")
    baseline = None
    for name, run in contenders.items():
        seconds, ids = median_seconds(run, runs)
        rate = pieces / seconds
        baseline = baseline or rate
        differing = sum(a != b for a, b in zip(ids, reference))
        print(f"  {name:42s} {rate / 1e3:8.0f}k wordpieces/s  "
              f"x{rate / baseline:5.2f}  lines differing from HF port: {differing}")


def agreement(sst2_dir, corpora_dir, uncased, chinese):
    corpora = {"SST-2 train": (sst2_sentences(sst2_dir), uncased)}
    for name in ["en/brown.txt", "en/kjv.txt", "en/wiki.txt"]:
        corpora[name] = ((Path(corpora_dir) / name).read_text(encoding="utf-8").splitlines(),
                         uncased)
    zh = Path(corpora_dir) / "zh" / "peoples_daily_1998.txt"
    corpora["zh/peoples_daily_1998.txt"] = (zh.read_text(encoding="utf-8").splitlines(), chinese)
    print("Lines whose ids differ from FullTokenizer's (do_lower_case=True):")
    print(f"  {'':28s} {'GraphTokenizer':>14s} {'FastBertTokenizer':>18s}")
    for name, (lines, vocab) in corpora.items():
        expected = full_tokenizer_ids(lines, vocab)
        counts = [sum(a != b for a, b in zip(graph_ids(make(vocab), lines), expected))
                  for make in (graph_function, fast_bert_function)]
        print(f"  {name:28s} {counts[0]:14d} {counts[1]:18d}   of {len(lines):,}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--skip_agreement", action="store_true")
    parser.add_argument("--sst2_dir", default=str(REPO / "data" / "sst2"),
                        help="folder with GLUE SST-2 train.tsv (default: the shipped copy)")
    parser.add_argument("--corpora_dir", default=str(TEST_DATA / "corpora"),
                        help="folder with en/brown.txt, en/kjv.txt, en/wiki.txt and "
                             "zh/peoples_daily_1998.txt (default: the test slices)")
    parser.add_argument("--vocab_file", default=str(TEST_DATA / "vocab" / "bert_uncased_vocab.txt"))
    parser.add_argument("--chinese_vocab_file",
                        default=str(TEST_DATA / "vocab" / "bert_chinese_vocab.txt"))
    args = parser.parse_args()
    speed(args.runs, args.sst2_dir, args.vocab_file)
    if not args.skip_agreement:
        agreement(args.sst2_dir, args.corpora_dir, args.vocab_file, args.chinese_vocab_file)


if __name__ == "__main__":
    main()
