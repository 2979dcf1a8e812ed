"""Per-token activations of chosen encoder layers, as JSON lines.

The output format is that of Google's `extract_features.py`: one JSON object
per input line, `{"linex_index": i, "features": [{"token": t, "layers":
[{"index": -1, "values": [...]}, ...]}, ...]}`, values rounded to 6 places.
An input line `text_a ||| text_b` is a sentence pair.
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Iterable, Iterator

import numpy as np
import tensorflow as tf

from bert_tf import atomic_io, text_files, tokenization

_PAIR = re.compile(r"^(.*) \|\|\| (.*)$")


@dataclasses.dataclass
class Features:
    unique_id: int
    tokens: list[str]
    input_ids: list[int]
    input_type_ids: list[int]


def truncate_seq_pair(tokens_a: list, tokens_b: list, max_length: int) -> None:
    """Trims the longer sequence one token at a time, from its end, in place."""
    while len(tokens_a) + len(tokens_b) > max_length:
        longer = tokens_a if len(tokens_a) > len(tokens_b) else tokens_b
        longer.pop()


def read_lines(path: str) -> Iterator[tuple[int, str, str | None]]:
    """Yields (line index, text_a, text_b or None); names file and line on bad UTF-8."""
    for number, line in text_files.read_lines(path):
        line = line.strip()
        match = _PAIR.match(line)
        if match:
            yield number - 1, match.group(1), match.group(2)
        else:
            yield number - 1, line, None


def to_features(examples: Iterable[tuple[int, str, str | None]],
                tokenizer: tokenization.FullTokenizer, max_seq_length: int) -> Iterator[Features]:
    """[CLS] a [SEP] (b [SEP]) with Google's truncation rules."""
    for unique_id, text_a, text_b in examples:
        tokens_a = tokenizer.tokenize(text_a)
        tokens_b = tokenizer.tokenize(text_b) if text_b is not None else None
        if tokens_b is not None:
            truncate_seq_pair(tokens_a, tokens_b, max_seq_length - 3)
        else:
            tokens_a = tokens_a[: max_seq_length - 2]
        tokens = ["[CLS]", *tokens_a, "[SEP]"]
        type_ids = [0] * len(tokens)
        if tokens_b is not None:
            tokens += [*tokens_b, "[SEP]"]
            type_ids += [1] * (len(tokens_b) + 1)
        yield Features(unique_id, tokens, tokenizer.convert_tokens_to_ids(tokens), type_ids)


def _batches(items: Iterable, size: int) -> Iterator[list]:
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def pad_batch(features: list[Features]) -> dict[str, np.ndarray]:
    """Pads a batch to its own longest sequence (outputs at real tokens do not
    depend on the amount of padding)."""
    length = max(len(f.input_ids) for f in features)
    ids = np.zeros((len(features), length), np.int32)
    types = np.zeros_like(ids)
    mask = np.zeros_like(ids)
    for row, f in enumerate(features):
        n = len(f.input_ids)
        ids[row, :n], types[row, :n], mask[row, :n] = f.input_ids, f.input_type_ids, 1
    return {"input_word_ids": ids, "input_mask": mask, "input_type_ids": types}


def extract(encoder, tokenizer, input_file: str, output_file: str, layers: list[int],
            max_seq_length: int = 128, batch_size: int = 32) -> int:
    """Writes the JSON-lines features of `input_file`; returns the line count.

    The output file appears only when complete.
    """
    num_layers = encoder.config.num_hidden_layers
    for index in layers:
        if not -num_layers <= index < num_layers:
            raise ValueError(f"--layers: index {index} is out of range for a "
                             f"{num_layers}-layer encoder")

    @tf.function(reduce_retracing=True)
    def run(inputs):
        outputs = encoder(inputs, training=False)["encoder_outputs"]
        return [outputs[i] for i in layers]

    count = 0
    with atomic_io.open_for_write(output_file) as out:
        features = to_features(read_lines(input_file), tokenizer, max_seq_length)
        for batch in _batches(features, batch_size):
            values = [v.numpy() for v in run(pad_batch(batch))]
            for row, f in enumerate(batch):
                out.write(json.dumps(_record(f, row, layers, values)) + "\n")
                count += 1
    return count


def _record(feature: Features, row: int, layers: list[int], values: list[np.ndarray]) -> dict:
    tokens = []
    for position, token in enumerate(feature.tokens):
        tokens.append({
            "token": token,
            "layers": [{"index": index,
                        "values": [round(float(x), 6) for x in layer[row, position]]}
                       for index, layer in zip(layers, values)],
        })
    return {"linex_index": feature.unique_id, "features": tokens}
