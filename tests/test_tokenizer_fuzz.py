"""Random Unicode text: FullTokenizer and GraphTokenizer against Google's own
`tokenization.py` (bert-tensorflow 1.0.4, see _google_tokenization.py).

20,000 seeded random strings mix every kind of code point the tokenizer
treats differently: controls (Cc), format characters (Cf: zero-width
joiners, soft hyphens, BOMs, tags), private use (Co), unassigned code points
(Cn, including noncharacters and emoji newer than Python's Unicode tables),
combining marks, CJK ideographs of every block, Hangul and kana, emoji with
modifiers and joiners, every whitespace and separator, accented letters,
Greek sigma, full-width forms, words over 200 characters, and real
vocabulary words in mixed case, glued together or separated. Lone
surrogates are left out: they cannot be encoded as UTF-8, so no string
tensor can hold them (test_tokenization.py checks one against Google's code).

Each string's ids must equal Google's, for the uncased English and the
Chinese vocabulary, with and without lower-casing: 0 differences and
0 exceptions. On failure the first differing strings are printed with
their code points.

Run as a script to print the figures for any number of strings:
    python tests/test_tokenizer_fuzz.py --strings 100000
"""

import collections
import random
import sys
import unicodedata
from pathlib import Path

import pytest

from _google_tokenization import google_full_tokenizer

SEED = 20190328
NUM_STRINGS = 20_000
SHOWN_FAILURES = 5

# Google's CJK ideograph blocks, Hangul syllables and kana.
_CJK = [(0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
        (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F)]
_HANGUL_KANA = [(0xAC00, 0xD7A3), (0x3040, 0x30FF), (0x1100, 0x11FF)]
_EMOJI = [(0x1F300, 0x1FAFF), (0x2600, 0x27BF), (0x1F1E6, 0x1F1FF)]
_EMOJI_GLUE = [0x200D, 0xFE0F, 0xFE0E, 0x20E3, *range(0x1F3FB, 0x1F400),
               *range(0xE0020, 0xE0080)]
# Every character Python's str.split() splits on, and Google's whitespace.
_WHITESPACE = [0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x1C, 0x1D, 0x1E, 0x1F, 0x20, 0x85, 0xA0,
               0x1680, *range(0x2000, 0x200B), 0x2028, 0x2029, 0x202F, 0x205F, 0x3000]
_SPECIAL = [0x00, 0xFFFD, 0x130, 0x131, 0x1E9E, 0xDF, 0x3A3, 0x3C2, 0xFB01, 0x1C4, 0x1C5,
            0x2026, 0xB4, 0xAD, 0xFEFF, 0xFFFE, 0xFFFF, *range(0xFDD0, 0xFDF0),
            *range(0xFF01, 0xFF5F)]

# (pool, weight): how often an atom of the string is drawn from each pool.
_WEIGHTS = {"word": 24, "ascii": 10, "accented": 6, "cjk": 8, "hangul_kana": 3,
            "emoji": 6, "emoji_glue": 3, "whitespace": 5, "Cc": 3, "Cf": 4, "Co": 4,
            "Cn": 6, "mark": 5, "letter": 5, "punct_symbol": 4, "number": 2,
            "special": 3, "any": 5}


def _expand(ranges):
    return [cp for first, last in ranges for cp in range(first, last + 1)]


def code_point_pools():
    """Lists of code points per kind, from Python's Unicode tables."""
    by_category = collections.defaultdict(list)
    for cp in range(sys.maxunicode + 1):
        if not 0xD800 <= cp <= 0xDFFF:
            by_category[unicodedata.category(chr(cp))].append(cp)

    def categories(*names):
        return [cp for name in names for cp in by_category[name]]

    accented = [cp for cp in range(0xC0, 0x250)
                if unicodedata.category(chr(cp))[0] == "L"]
    accented += _expand([(0x370, 0x3FF), (0x1F00, 0x1FFF), (0x400, 0x4FF)])
    return {
        "ascii": list(range(0x21, 0x7F)),
        "accented": accented,
        "cjk": _expand(_CJK),
        "hangul_kana": _expand(_HANGUL_KANA),
        "emoji": _expand(_EMOJI),
        "emoji_glue": _EMOJI_GLUE,
        "whitespace": _WHITESPACE,
        "Cc": categories("Cc"),
        "Cf": categories("Cf"),
        "Co": categories("Co"),
        "Cn": categories("Cn"),
        "mark": categories("Mn", "Mc", "Me"),
        "letter": categories("Lu", "Ll", "Lt", "Lm", "Lo"),
        "punct_symbol": categories("Pc", "Pd", "Ps", "Pe", "Pi", "Pf", "Po",
                                   "Sm", "Sc", "Sk", "So"),
        "number": categories("Nd", "Nl", "No"),
        "special": _SPECIAL,
        "any": [cp for name, cps in by_category.items() for cp in cps],
    }


def random_strings(count, vocab_words, seed=SEED):
    """`count` random strings, the same ones for a given seed."""
    rng = random.Random(seed)
    pools = code_point_pools()
    kinds, weights = zip(*_WEIGHTS.items())
    cases = [str, str.lower, str.upper, str.capitalize, str.swapcase]

    def atom():
        kind = rng.choices(kinds, weights)[0]
        if kind == "word":
            word = "".join(rng.choice(vocab_words) for _ in range(rng.randint(1, 3)))
            word = rng.choice(cases)(word)
            if rng.random() < 0.2:  # a decomposed accent somewhere inside
                at = rng.randint(0, len(word))
                word = word[:at] + chr(rng.choice([0x301, 0x308, 0x300, 0x327])) + word[at:]
            return word
        return "".join(chr(rng.choice(pools[kind])) for _ in range(rng.randint(1, 4)))

    strings = []
    for _ in range(count):
        parts = []
        for _ in range(rng.randint(1, 14)):
            parts.append(atom())
            roll = rng.random()
            if roll < 0.45:
                parts.append(" ")
            elif roll < 0.55:
                parts.append(chr(rng.choice(_WHITESPACE)))
        if rng.random() < 0.01:  # around Google's 200-character word limit
            letters = pools["accented"] + pools["ascii"]
            parts.append(" " + "".join(chr(rng.choice(letters))
                                       for _ in range(rng.randint(195, 205))))
        strings.append("".join(parts))
    return strings


def vocab_words(vocab_file):
    with open(vocab_file, encoding="utf-8") as reader:
        tokens = [line.strip() for line in reader]
    return [t.removeprefix("##") for t in tokens
            if t and not (t.startswith("[") and t.endswith("]"))]


def code_points(text):
    return " ".join(f"U+{ord(c):04X}" for c in text)


class Tally:
    """Differences and exceptions of one tokenizer against Google's ids."""

    def __init__(self, name):
        self.name = name
        self.strings = 0
        self.differences = []
        self.exceptions = []

    def add(self, text, expected, tokenize):
        self.strings += 1
        try:
            got = tokenize(text)
        except Exception as error:  # noqa: BLE001 - counted and reported
            self.exceptions.append((text, repr(error)))
            return
        if got != expected:
            self.differences.append((text, got, expected))

    def summary(self):
        return (f"{self.name}: {self.strings} strings, {len(self.differences)} differences "
                f"({100 * len(self.differences) / max(self.strings, 1):.1f}%), "
                f"{len(self.exceptions)} exceptions")

    def report(self):
        lines = [self.summary()]
        for text, got, expected in self.differences[:SHOWN_FAILURES]:
            lines.append(f"  {text!r}\n    code points: {code_points(text)}\n"
                         f"    ours:   {got}\n    Google: {expected}")
        for text, error in self.exceptions[:SHOWN_FAILURES]:
            lines.append(f"  {text!r}\n    code points: {code_points(text)}\n    raised {error}")
        return "\n".join(lines)


def compare(strings, vocab_file, do_lower_case, graph=True):
    """Tallies of FullTokenizer and GraphTokenizer against Google's ids."""
    from bert_tf import tokenization

    google = google_full_tokenizer(vocab_file, do_lower_case)
    expected = [google.convert_tokens_to_ids(google.tokenize(s)) for s in strings]
    label = f"{Path(vocab_file).name}, do_lower_case={do_lower_case}"
    ours = tokenization.FullTokenizer(vocab_file, do_lower_case)
    full = Tally(f"FullTokenizer ({label})")
    for text, ids in zip(strings, expected):
        full.add(text, ids, lambda s: ours.convert_tokens_to_ids(ours.tokenize(s)))
    tallies = [full]
    if graph:
        tallies.append(compare_graph(strings, expected, vocab_file, do_lower_case, label))
    return tallies


def compare_graph(strings, expected, vocab_file, do_lower_case, label, batch_size=2500):
    import tensorflow as tf

    from bert_tf import text_graph

    graph = text_graph.GraphTokenizer(vocab_file, do_lower_case)
    tokenize = tf.function(graph.tokenize, input_signature=[tf.TensorSpec([None], tf.string)])
    tally = Tally(f"GraphTokenizer ({label})")
    for start in range(0, len(strings), batch_size):
        batch = strings[start:start + batch_size]
        try:
            batch_ids = tokenize(tf.constant([s.encode("utf-8") for s in batch])).to_list()
        except Exception:  # noqa: BLE001 - retried one by one to find the culprit
            batch_ids = [None] * len(batch)
        for text, ids, got in zip(batch, expected[start:start + batch_size], batch_ids):
            if got is None:
                tally.add(text, ids, lambda s: tokenize(tf.constant([s.encode()])).to_list()[0])
            else:
                tally.add(text, ids, lambda s, got=got: got)
    return tally


@pytest.fixture(scope="module")
def strings():
    from conftest import UNCASED_VOCAB

    return random_strings(NUM_STRINGS, vocab_words(UNCASED_VOCAB))


def test_strings_cover_every_kind_of_character(strings):
    # The generator really produces the classes the comparison is about.
    seen = collections.Counter(unicodedata.category(c) for s in strings for c in s)
    for category in ("Cc", "Cf", "Co", "Cn", "Mn", "Mc", "Me", "Zs", "Zl", "Zp", "Lo", "So"):
        assert seen[category] > 100, category
    assert sum(len(s) > 0 for s in strings) > 0.99 * NUM_STRINGS


@pytest.mark.parametrize("vocab_name", ["UNCASED_VOCAB", "CHINESE_VOCAB"])
@pytest.mark.parametrize("do_lower_case", [True, False])
def test_ids_equal_google_on_random_strings(strings, vocab_name, do_lower_case):
    import conftest

    vocab_file = getattr(conftest, vocab_name)
    tallies = compare(strings, vocab_file, do_lower_case)
    report = "\n".join(t.report() for t in tallies)
    print(report)
    for tally in tallies:
        assert tally.strings == NUM_STRINGS
        assert not tally.differences and not tally.exceptions, report


def main(argv):
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--strings", type=int, default=NUM_STRINGS)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--vocab", action="append", default=None,
                        help="vocabulary file (repeatable); default: both of tests/data/vocab")
    parser.add_argument("--no-graph", action="store_true")
    args = parser.parse_args(argv)
    vocab_dir = Path(__file__).resolve().parent / "data" / "vocab"
    vocabs = [Path(v) for v in args.vocab] if args.vocab else [
        vocab_dir / "bert_uncased_vocab.txt", vocab_dir / "bert_chinese_vocab.txt"]
    strings = random_strings(args.strings, vocab_words(vocabs[0]), seed=args.seed)
    for vocab in vocabs:
        for do_lower_case in (True, False):
            for tally in compare(strings, vocab, do_lower_case, graph=not args.no_graph):
                print(tally.report(), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
