"""Our SQuAD windows against Google's convert_examples_to_features on a whole file.

Reads a SQuAD v1.1 file as prediction data and, with each question's first
reference answer only (the training format Google's code accepts), as
training data; builds both sets of windows with our `bert_tf.squad_data`
and with Google's `run_squad.py` (bert-tensorflow 1.0.4, loaded by
tests/_google_squad.py), and counts the windows whose tokens, ids, segment
ids, mask, start/end positions, token-to-word map and max-context flags are
all identical. Prints one JSON line per setting.

    PYTHONPATH=. python benchmarks/squad_features_vs_google.py \
        --squad_file squad/dev-v1.1.json --max_seq_length 384 --doc_stride 128
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--squad_file",
                        default=os.path.join(REPO, "tests/data/squad/dev-v1.1-slice.json"))
    parser.add_argument("--vocab_file",
                        default=os.path.join(REPO, "tests/data/vocab/bert_uncased_vocab.txt"))
    parser.add_argument("--max_seq_length", type=int, default=384)
    parser.add_argument("--doc_stride", type=int, default=128)
    parser.add_argument("--max_query_length", type=int, default=64)
    args = parser.parse_args()

    from _google_squad import google_run_squad
    from bert_tf import squad_data, tokenization

    with open(args.squad_file, encoding="utf-8") as f:
        squad = json.load(f)
    for article in squad["data"]:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                qa["answers"] = qa["answers"][:1]
    train_file = os.path.join(tempfile.mkdtemp(), "train.json")
    with open(train_file, "w", encoding="utf-8") as f:
        json.dump(squad, f)

    google = google_run_squad()
    google_tokenizer = google.tokenization.FullTokenizer(args.vocab_file, do_lower_case=True)
    tokenizer = tokenization.FullTokenizer(args.vocab_file, do_lower_case=True)
    windows = (args.max_seq_length, args.doc_stride, args.max_query_length)
    for is_training, path in ((False, args.squad_file), (True, train_file)):
        start = time.time()
        g_examples = google.read_squad_examples(path, is_training)
        g_features = []
        google.convert_examples_to_features(g_examples, google_tokenizer, *windows, is_training,
                                            g_features.append)
        google_seconds = time.time() - start
        start = time.time()
        examples = squad_data.read_squad_examples(path, is_training)
        features = squad_data.convert_examples_to_features(examples, tokenizer, *windows,
                                                           is_training)
        our_seconds = time.time() - start
        identical = 0
        for ours, theirs in zip(features, g_features):
            padded = ours.padded(args.max_seq_length)
            identical += all((
                ours.unique_id == theirs.unique_id, ours.tokens == theirs.tokens,
                padded["input_ids"] == theirs.input_ids,
                padded["input_mask"] == theirs.input_mask,
                padded["segment_ids"] == theirs.segment_ids,
                ours.start_position == theirs.start_position,
                ours.end_position == theirs.end_position,
                ours.token_to_orig_map == theirs.token_to_orig_map,
                ours.token_is_max_context == theirs.token_is_max_context))
        print(json.dumps({"squad_file": args.squad_file, "is_training": is_training,
                          "max_seq_length": args.max_seq_length, "doc_stride": args.doc_stride,
                          "questions": len(examples), "google_questions": len(g_examples),
                          "windows": len(features), "google_windows": len(g_features),
                          "identical_windows": identical,
                          "seconds_ours": round(our_seconds, 1),
                          "seconds_google": round(google_seconds, 1)}), flush=True)


if __name__ == "__main__":
    main()
