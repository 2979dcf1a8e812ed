"""Pretraining data creation, checked against Google's record format and rules.

Records are read back with TensorFlow and a feature spec written here from
Google's documented format, never with the code under test.
"""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bert_tf import pretraining_data as ptd
from bert_tf import tfrecords
from bert_tf.tokenization import FullTokenizer
from conftest import google_record_spec

SEQ, PRED = 128, 20
PAD, CLS, SEP, MASK = 0, 101, 102, 103  # ids in both Google vocabularies
REPO = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------

def write_documents(path, documents):
    path.write_text("\n\n".join("\n".join(lines) for lines in documents) + "\n",
                    encoding="utf-8")
    return str(path)


def first_documents(corpus: Path, count: int) -> list[list[str]]:
    text = corpus.read_text(encoding="utf-8")
    return [block.split("\n") for block in text.strip("\n").split("\n\n")[:count]]


def read_records(paths, dynamic=False) -> dict[str, np.ndarray]:
    """All records of `paths`, parsed with Google's feature spec."""
    import tensorflow as tf

    spec = google_record_spec(SEQ, PRED, dynamic)
    batches = [tf.io.parse_example(records, spec)
               for records in tf.data.TFRecordDataset(list(map(str, paths))).batch(4096)]
    return {name: np.concatenate([batch[name].numpy() for batch in batches])
            for name in spec}


def generate(tmp_path, corpus, vocab, name="out.tfrecord", num_workers=1, **settings):
    config = ptd.PretrainingDataConfig(**settings)
    output = str(tmp_path / name)
    ptd.create_pretraining_data([str(corpus)], [output], str(vocab), config, num_workers)
    return ptd.output_paths([output], num_workers)


def unmasked_ids(records) -> np.ndarray:
    """input_ids with the original token put back at each masked position."""
    ids = records["input_ids"].copy()
    rows = np.arange(len(ids))[:, None]
    real = records["masked_lm_weights"] > 0
    ids[np.broadcast_to(rows, real.shape)[real], records["masked_lm_positions"][real]] = \
        records["masked_lm_ids"][real]
    return ids


def masked_flags(records) -> np.ndarray:
    flags = np.zeros(records["input_ids"].shape, bool)
    real = records["masked_lm_weights"] > 0
    rows = np.broadcast_to(np.arange(len(flags))[:, None], real.shape)
    flags[rows[real], records["masked_lm_positions"][real]] = True
    return flags


@pytest.fixture(scope="module")
def uncased_vocab(repo_data):
    return repo_data / "vocab" / "bert_uncased_vocab.txt"


@pytest.fixture(scope="module")
def vocab_tokens(uncased_vocab):
    return uncased_vocab.read_text(encoding="utf-8").split("\n")[:-1]


@pytest.fixture(scope="module")
def brown_slice(repo_data, tmp_path_factory):
    documents = first_documents(repo_data / "corpora" / "en" / "brown.txt", 200)
    return write_documents(tmp_path_factory.mktemp("brown") / "brown200.txt", documents)


@pytest.fixture(scope="module")
def brown_records(brown_slice, uncased_vocab, tmp_path_factory):
    paths = generate(tmp_path_factory.mktemp("static"), brown_slice, uncased_vocab,
                     dupe_factor=3)
    return read_records(paths)


# ----------------------------------------------------------------------------
# TFRecord and tf.train.Example encoding without TensorFlow
# ----------------------------------------------------------------------------

def test_crc32c_matches_published_check_value():
    masked = int(tfrecords.masked_crc32c([b"123456789"])[0])
    rotated = (masked - 0xA282EAD8) & 0xFFFFFFFF
    crc = ((rotated << 15) | (rotated >> 17)) & 0xFFFFFFFF
    assert crc == 0xE3069283  # CRC-32C check value (RFC 3720 family)


def test_framing_is_byte_identical_to_tensorflow(tmp_path):
    import tensorflow as tf

    rng = np.random.default_rng(0)
    records = [b"", b"x"] + [rng.bytes(int(n)) for n in rng.integers(1, 9000, size=40)]
    reference = tmp_path / "reference.tfrecord"
    with tf.io.TFRecordWriter(str(reference)) as writer:
        for record in records:
            writer.write(record)
    ours = tmp_path / "ours.tfrecord"
    with tfrecords.TFRecordWriter(ours) as writer:
        writer.write_batch(records[:7])
        writer.write_batch(records[7:])
    assert ours.read_bytes() == reference.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ours.tfrecord", "reference.tfrecord"]


def test_example_encoding_parses_as_tensorflow_example():
    import tensorflow as tf

    ints = [0, 1, 127, 128, 300, 70000, 2**40, -5]
    floats = [1.0, 0.0, -2.5, 3.25]
    small, large = [3, -1, 0, -70000], [5, 70000, 2**40, 127]
    encoded = tfrecords.encode_example({"ids": ints, "one": [7], "small": small,
                                        "large": large}, {"weights": floats})
    example = tf.train.Example.FromString(encoded)
    assert list(example.features.feature["ids"].int64_list.value) == ints
    assert list(example.features.feature["small"].int64_list.value) == small
    assert list(example.features.feature["large"].int64_list.value) == large
    assert list(example.features.feature["one"].int64_list.value) == [7]
    assert list(example.features.feature["weights"].float_list.value) == floats


def test_writer_leaves_nothing_on_error(tmp_path):
    with pytest.raises(RuntimeError):
        with tfrecords.TFRecordWriter(tmp_path / "broken.tfrecord") as writer:
            writer.write_batch([b"abc"])
            raise RuntimeError("stop")
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------
# Static masking on real English text
# ----------------------------------------------------------------------------

def test_records_have_googles_layout(brown_records):
    ids, mask, segments = (brown_records[k] for k in ("input_ids", "input_mask", "segment_ids"))
    lengths = mask.sum(axis=1)
    assert len(ids) > 5000
    assert ((mask == (np.arange(SEQ) < lengths[:, None]))).all()  # ones, then padding
    assert (ids[mask == 0] == PAD).all() and (segments[mask == 0] == 0).all()
    assert (ids[:, 0] == CLS).all()
    for row in range(0, len(ids), 97):
        n = lengths[row]
        seps = np.flatnonzero(unmasked_ids(brown_records)[row, :n] == SEP)
        assert len(seps) == 2 and seps[1] == n - 1 and 1 < seps[0] < n - 2
        assert (segments[row, :seps[0] + 1] == 0).all()
        assert (segments[row, seps[0] + 1:n] == 1).all()
    assert lengths.max() <= SEQ


def test_number_of_predictions_follows_googles_formula(brown_records):
    lengths = brown_records["input_mask"].sum(axis=1)
    weights = brown_records["masked_lm_weights"]
    counts = weights.sum(axis=1)
    expected = np.minimum(PRED, np.maximum(1, np.round(lengths * 0.15)))
    np.testing.assert_array_equal(counts, expected)
    assert set(np.unique(weights)) <= {0.0, 1.0}
    assert ((weights == 1) == (np.arange(PRED) < counts[:, None])).all()
    # ~15% of the maskable (non-special) tokens; no sequence here hits the cap.
    assert (np.round(lengths * 0.15) <= PRED).all()
    assert 0.14 <= counts.sum() / (lengths - 3).sum() <= 0.16
    short = lengths < SEQ // 2
    assert short.sum() > 100  # short_seq_prob and document ends give short ones


def test_masked_positions_are_sorted_real_non_special_tokens(brown_records):
    positions = brown_records["masked_lm_positions"]
    real = brown_records["masked_lm_weights"] > 0
    lengths = brown_records["input_mask"].sum(axis=1)
    original = brown_records["masked_lm_ids"]
    assert (positions[~real] == 0).all() and (original[~real] == 0).all()
    assert not np.isin(original[real], [PAD, CLS, SEP]).any()
    assert (positions[real] >= 1).all()
    assert (positions < lengths[:, None])[real].all()
    for row in range(len(positions)):
        p = positions[row][real[row]]
        assert (np.diff(p) > 0).all()
    # The id kept at a masked position is never [CLS]/[SEP] from the template.
    tokens = np.take_along_axis(unmasked_ids(brown_records), positions, axis=1)
    np.testing.assert_array_equal(tokens[real], original[real])


def test_replacements_are_80_10_10(brown_records):
    real = brown_records["masked_lm_weights"] > 0
    shown = np.take_along_axis(brown_records["input_ids"],
                               brown_records["masked_lm_positions"], axis=1)[real]
    original = brown_records["masked_lm_ids"][real]
    as_mask = np.mean(shown == MASK)
    kept = np.mean(shown == original)
    replaced = np.mean((shown != MASK) & (shown != original))
    assert abs(as_mask - 0.8) < 0.02 and abs(kept - 0.1) < 0.02 and abs(replaced - 0.1) < 0.02
    # Random replacements are spread over the vocabulary, not one id.
    assert len(np.unique(shown[(shown != MASK) & (shown != original)])) > 1000


def test_nsp_labels_half_on_real_text(brown_records, brown_slice, uncased_vocab, tmp_path):
    labels = brown_records["next_sentence_labels"]
    # ~3,000 fair coins: standard deviation 0.009.
    assert abs(labels.mean() - 0.5) < 0.03, (labels.mean(), labels.size)
    # Google's rule forces a random next segment whenever a chunk holds a
    # single sentence (long sentences, short targets, document ends).
    google = read_records(generate(tmp_path, brown_slice, uncased_vocab, dupe_factor=3,
                                   fair_next_sentence=False))["next_sentence_labels"]
    assert 0.52 < google.mean() < 0.6, google.mean()


def test_segments_are_runs_of_the_tokenized_corpus(brown_records, brown_slice, uncased_vocab):
    """Unmasked A and B segments appear verbatim in Hugging Face's tokenization."""
    from transformers import BertTokenizer  # an independent WordPiece implementation

    reference = BertTokenizer(str(uncased_vocab), do_lower_case=True)
    lines = Path(brown_slice).read_text(encoding="utf-8").split("\n")
    stream = " " + " ".join(" ".join(reference.tokenize(line)) if line else "|"
                            for line in lines) + " "
    vocab = reference.convert_ids_to_tokens
    ids = unmasked_ids(brown_records)
    for row in range(0, len(ids), 250):
        tokens = vocab([int(t) for t in ids[row, :brown_records["input_mask"][row].sum()]])
        sep = tokens.index("[SEP]")
        for segment in (tokens[1:sep], tokens[sep + 1:-1]):
            assert f" {' '.join(segment)} " in stream


# ----------------------------------------------------------------------------
# Next-sentence semantics on a corpus whose tokens name their own place
# ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def place_words(vocab_tokens):
    """Whole lower-case vocabulary words; token k stands for one sentence."""
    return [t for t in vocab_tokens[2000:] if t.isalpha() and t.islower() and t.isascii()]


def test_next_sentence_labels_tell_the_truth(tmp_path, uncased_vocab, place_words):
    # 40 documents of 150 one-token sentences: chunks never need truncation,
    # so B's first token follows A's last in the corpus iff label is 0.
    docs, where = [], {}
    for d in range(40):
        lines = place_words[d * 150:(d + 1) * 150]
        docs.append(lines)
        where.update({word: (d, i) for i, word in enumerate(lines)})
    corpus = write_documents(tmp_path / "places.txt", docs)
    records = read_records(generate(tmp_path, corpus, uncased_vocab, dupe_factor=40,
                                    short_seq_prob=0.0))
    vocab = uncased_vocab.read_text(encoding="utf-8").split("\n")
    ids, labels = unmasked_ids(records), records["next_sentence_labels"][:, 0]
    checked = 0
    for row in range(len(ids)):
        sep = int(np.flatnonzero(ids[row] == SEP)[0])
        last_a, first_b = where[vocab[ids[row, sep - 1]]], where[vocab[ids[row, sep + 1]]]
        follows = first_b == (last_a[0], last_a[1] + 1)
        assert follows == (labels[row] == 0), (row, last_a, first_b, labels[row])
        checked += 1
    assert checked > 4000
    assert abs(labels.mean() - 0.5) < 0.02


def test_small_chunks_and_degenerate_documents(tmp_path, uncased_vocab, place_words):
    # Chunks of two documents still draw random next segments from the other one.
    docs = [place_words[d * 150:(d + 1) * 150] for d in range(6)]
    where = {word: d for d, lines in enumerate(docs) for word in lines}
    corpus = write_documents(tmp_path / "places.txt", docs)
    records = read_records(generate(tmp_path, corpus, uncased_vocab, dupe_factor=5,
                                    short_seq_prob=0.0, documents_per_chunk=2))
    vocab = uncased_vocab.read_text(encoding="utf-8").split("\n")
    ids = unmasked_ids(records)
    for row, label in enumerate(records["next_sentence_labels"][:, 0]):
        sep = int(np.flatnonzero(ids[row] == SEP)[0])
        same_document = where[vocab[ids[row, 1]]] == where[vocab[ids[row, sep + 1]]]
        assert same_document == (label == 0)
    # A lone one-sentence document and a line with nothing to tokenize: with
    # Google's rule, B is always "random" (here from the same document).
    tiny = write_documents(tmp_path / "tiny.txt", [["just one sentence ."], ["\x01\x02"]])
    records = read_records(generate(tmp_path, tiny, uncased_vocab, name="tiny.tfrecord",
                                    dupe_factor=2, fair_next_sentence=False))
    assert len(records["input_ids"]) == 2 and (records["next_sentence_labels"] == 1).all()


def test_fair_coin_splits_a_lone_sentence_at_a_word_boundary(tmp_path, uncased_vocab):
    text = "the unaffable playwright reconsidered everything ."
    corpus = write_documents(tmp_path / "one.txt", [[text]])
    records = read_records(generate(tmp_path, corpus, uncased_vocab, dupe_factor=200))
    labels = records["next_sentence_labels"][:, 0]
    assert 0.38 < labels.mean() < 0.62  # 200 fair coins
    vocab = uncased_vocab.read_text(encoding="utf-8").split("\n")
    whole = " ".join(FullTokenizer(str(uncased_vocab)).tokenize(text))
    assert whole.count("##") >= 3
    cuts = set()
    for row in np.flatnonzero(labels == 0):
        ids = unmasked_ids(records)[row]
        sep = int(np.flatnonzero(ids == SEP)[0])
        a = [vocab[i] for i in ids[1:sep]]
        b = [vocab[i] for i in ids[sep + 1:] if i not in (SEP, 0)]
        assert " ".join(a + b) == whole  # A then B is the sentence itself
        assert not b[0].startswith("##")  # cut between words
        cuts.add(len(a))
    assert len(cuts) > 3  # the cut point is drawn


# ----------------------------------------------------------------------------
# Whole-word, phrase and n-gram masking
# ----------------------------------------------------------------------------

def broken_words(records, vocab) -> int:
    """Masked '##' pieces whose neighbour in the same word is not masked."""
    ids, masked = unmasked_ids(records), masked_flags(records)
    continuation = np.array([t.startswith("##") for t in vocab])[ids]
    special = np.isin(ids, [CLS, SEP, PAD])
    left_cut = masked[:, 1:] & continuation[:, 1:] & ~masked[:, :-1] & ~special[:, :-1]
    right_cut = masked[:, :-1] & continuation[:, 1:] & ~masked[:, 1:]
    return int(left_cut.sum() + right_cut.sum())


def test_whole_word_masking_keeps_words_whole(tmp_path, brown_slice, uncased_vocab,
                                              vocab_tokens, brown_records):
    records = read_records(generate(tmp_path, brown_slice, uncased_vocab, dupe_factor=1,
                                    do_whole_word_mask=True))
    assert broken_words(records, vocab_tokens) == 0
    assert broken_words(brown_records, vocab_tokens) > 50  # the check can fail
    lengths = records["input_mask"].sum(axis=1)
    counts = records["masked_lm_weights"].sum(axis=1)
    assert (counts <= np.minimum(PRED, np.maximum(1, np.round(lengths * 0.15)))).all()
    assert counts.sum() / (lengths - 3).sum() > 0.14
    # Multi-piece words do get masked.
    ids, masked = unmasked_ids(records), masked_flags(records)
    continuation = np.array([t.startswith("##") for t in vocab_tokens])[ids]
    assert (masked & continuation).sum() > 200


def _runs(flags_row):
    runs, start = [], None
    for i, flag in enumerate(list(flags_row) + [False]):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            runs.append((start, i))
            start = None
    return runs


def test_ngram_masking_masks_spans_of_whole_words(tmp_path, brown_slice, uncased_vocab,
                                                  vocab_tokens):
    records = read_records(generate(tmp_path, brown_slice, uncased_vocab, dupe_factor=1,
                                    do_whole_word_mask=True, max_ngram=3))
    assert broken_words(records, vocab_tokens) == 0
    ids, masked = unmasked_ids(records), masked_flags(records)
    continuation = np.array([t.startswith("##") for t in vocab_tokens])
    words_per_run = [sum(not continuation[t] for t in ids[row, a:b])
                     for row in range(0, len(ids), 5) for a, b in _runs(masked[row])]
    assert max(words_per_run) >= 3
    assert np.mean(np.array(words_per_run) >= 2) > 0.2
    lengths = records["input_mask"].sum(axis=1)
    counts = records["masked_lm_weights"].sum(axis=1)
    assert (counts <= np.minimum(PRED, np.maximum(1, np.round(lengths * 0.15)))).all()


def test_lexicon_phrases_are_masked_as_units(tmp_path, brown_slice, uncased_vocab):
    phrases = ["united states", "new york", "at least", "per cent", "of course"]
    lexicon = tmp_path / "phrases.txt"
    lexicon.write_text("\n".join(phrases) + "\n", encoding="utf-8")
    records = read_records(generate(tmp_path, brown_slice, uncased_vocab, dupe_factor=4,
                                    masking_lexicon=str(lexicon)))
    tokenizer = FullTokenizer(uncased_vocab)
    patterns = [tokenizer.convert_tokens_to_ids(tokenizer.tokenize(p)) for p in phrases]
    ids, masked = unmasked_ids(records), masked_flags(records)
    whole = partial = 0
    for pattern in patterns:
        windows = np.lib.stride_tricks.sliding_window_view(ids, len(pattern), axis=1)
        found = (windows == pattern).all(axis=2)
        hits = np.lib.stride_tricks.sliding_window_view(masked, len(pattern), axis=1).sum(axis=2)
        whole += int((found & (hits == len(pattern))).sum())
        partial += int((found & (hits > 0) & (hits < len(pattern))).sum())
    assert whole >= 20 and partial == 0


# ----------------------------------------------------------------------------
# Chinese whole-word masking against the gold segmentation
# ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def chinese_corpus(repo_data, tmp_path_factory):
    """Gold-segmented lines whose every character is one WordPiece token.

    Returns (corpus path, vocab path, per-document text, per-document word ids).
    """
    vocab = repo_data / "vocab" / "bert_chinese_vocab.txt"
    tokenizer = FullTokenizer(vocab)
    documents, texts, word_ids = [], [], []
    next_word = 0
    for lines in first_documents(repo_data / "corpora" / "zh" / "peoples_daily_1998.seg.txt", 80):
        kept, text, ids = [], [], []
        for line in lines:
            plain = line.replace(" ", "")
            if tokenizer.tokenize(plain) != list(plain):
                continue  # Latin runs, full-width digits, unknown characters
            kept.append(line)
            for word in line.split():
                text.append(word)
                ids += [next_word] * len(word)
                next_word += 1
        if len(kept) >= 2:
            documents.append(kept)
            texts.append("".join(text))
            word_ids.append(ids)
    folder = tmp_path_factory.mktemp("zh")
    return write_documents(folder / "seg.txt", documents), vocab, texts, word_ids


def split_whole_words(records, chinese_corpus) -> tuple[int, int, int]:
    """(masked multi-character words seen whole, words split by the mask, segments checked)."""
    _, vocab_path, texts, word_ids = chinese_corpus
    vocab = vocab_path.read_text(encoding="utf-8").split("\n")
    corpus = "\n".join(texts)
    gold = [w for ids in word_ids for w in ids + [-1]]
    ids, masked = unmasked_ids(records), masked_flags(records)
    whole = split = checked = 0
    for row in range(len(ids)):
        n = records["input_mask"][row].sum()
        sep = int(np.flatnonzero(ids[row, :n] == SEP)[0])
        for first, end in ((1, sep), (sep + 1, n - 1)):
            segment = "".join(vocab[t] for t in ids[row, first:end])
            offset = corpus.find(segment)
            if offset < 0 or corpus.find(segment, offset + 1) >= 0:
                continue  # ambiguous (repeated text): cannot place it
            checked += 1
            words = gold[offset:offset + len(segment)]
            flags = masked[row, first:end]
            for word in set(w for w, f in zip(words, flags) if f):
                in_word = [f for w, f in zip(words, flags) if w == word]
                if all(in_word):
                    whole += len(in_word) > 1
                else:
                    split += 1
    return whole, split, checked


def test_chinese_presegmented_masks_whole_gold_words(tmp_path, chinese_corpus):
    corpus, vocab, _, _ = chinese_corpus
    records = read_records(generate(tmp_path, corpus, vocab, dupe_factor=2,
                                    do_whole_word_mask=True, word_segmenter="presegmented"))
    whole, split, checked = split_whole_words(records, chinese_corpus)
    assert checked > 500 and whole > 1000 and split == 0
    # Google's '##' rule groups nothing in Chinese: the same check fails.
    original = read_records(generate(tmp_path, corpus, vocab, name="none.tfrecord",
                                     dupe_factor=1, do_whole_word_mask=True))
    assert split_whole_words(original, chinese_corpus)[1] > 100


def test_presegmented_tokens_equal_tokenization_of_the_joined_text(repo_data):
    vocab = repo_data / "vocab" / "bert_chinese_vocab.txt"
    tokenizer = FullTokenizer(vocab)
    lines = first_documents(repo_data / "corpora" / "zh" / "peoples_daily_1998.seg.txt", 30)
    config = ptd.PretrainingDataConfig(do_whole_word_mask=True, word_segmenter="presegmented")
    segment = ptd.LineTokenizer(tokenizer, config)
    mixed = 0
    for line in (line for doc in lines for line in doc):
        ids, starts = segment(line)
        plain = line.replace(" ", "")
        assert ids == tokenizer.convert_tokens_to_ids(tokenizer.tokenize(plain))
        assert len(starts) == len(ids) and (not ids or starts[0])
        mixed += any(not c.isascii() and c.isalnum() and ord(c) > 0xFF00 for c in plain)
    assert mixed > 10  # lines with full-width Latin letters and digits were covered


def test_jieba_segmentation_groups_jieba_words(repo_data):
    import jieba  # a test extra: missing, it must fail rather than skip
    vocab = repo_data / "vocab" / "bert_chinese_vocab.txt"
    tokenizer = FullTokenizer(vocab)
    config = ptd.PretrainingDataConfig(do_whole_word_mask=True, word_segmenter="jieba")
    segment = ptd.LineTokenizer(tokenizer, config)
    lines = first_documents(repo_data / "corpora" / "zh" / "peoples_daily_1998.txt", 5)
    multi = 0
    for line in (line for doc in lines for line in doc):
        if tokenizer.tokenize(line) != list(line):
            continue
        ids, starts = segment(line)
        boundaries = np.cumsum([0] + [len(w) for w in jieba.lcut(line)])[:-1]
        expected = np.zeros(len(line), bool)
        expected[boundaries] = True
        assert list(expected) == starts
        multi += int((~expected).sum())
    assert multi > 100


# ----------------------------------------------------------------------------
# Dynamic-masking records, workers, determinism, errors
# ----------------------------------------------------------------------------

def test_dynamic_masking_records_hold_unmasked_tokens(tmp_path, brown_slice, uncased_vocab,
                                                      vocab_tokens):
    records = read_records(generate(tmp_path, brown_slice, uncased_vocab, dupe_factor=1,
                                    dynamic_masking=True, do_whole_word_mask=True),
                           dynamic=True)
    ids, starts = records["input_ids"], records["word_starts"]
    assert MASK not in ids
    special = np.isin(ids, [PAD, CLS, SEP])
    assert (starts[special] == 0).all()
    continuation = np.array([t.startswith("##") for t in vocab_tokens])[ids]
    # A unit starts at every non-special token except '##' pieces inside a word.
    after_special = np.zeros_like(special)
    after_special[:, 1:] = special[:, :-1]
    expected = ~special & (~continuation | after_special)
    np.testing.assert_array_equal(starts == 1, expected)


def test_same_seed_and_workers_give_identical_files(tmp_path, repo_data, uncased_vocab):
    corpus = write_documents(tmp_path / "brown40.txt", first_documents(
        repo_data / "corpora" / "en" / "brown.txt", 40))
    first = generate(tmp_path / "a", corpus, uncased_vocab, num_workers=2, dupe_factor=1)
    second = generate(tmp_path / "b", corpus, uncased_vocab, num_workers=2, dupe_factor=1)
    other = generate(tmp_path / "c", corpus, uncased_vocab, num_workers=2, dupe_factor=1,
                     random_seed=7)
    assert [Path(p).name for p in first] == ["out.tfrecord-00000-of-00002",
                                             "out.tfrecord-00001-of-00002"]
    for a, b, c in zip(first, second, other):
        assert Path(a).read_bytes() == Path(b).read_bytes() != Path(c).read_bytes()
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [Path(p).name for p in first]
    # Each worker took half of the documents.
    config = ptd.PretrainingDataConfig(dupe_factor=1)
    stats = ptd.create_pretraining_data([corpus], [str(tmp_path / "d.tfrecord")],
                                        str(uncased_vocab), config, num_workers=2)
    assert [s.documents for s in stats] == [20, 20]
    assert all(len(read_records([p])["input_ids"]) > 100 for p in first)


def test_command_line_writes_round_robin_outputs(tmp_path, brown_slice, uncased_vocab):
    outputs = [str(tmp_path / f"part{i}.tfrecord") for i in range(3)]
    subprocess.run(
        [sys.executable, str(REPO / "create_pretraining_data.py"),
         f"--input_file={brown_slice}", f"--output_file={','.join(outputs)}",
         f"--vocab_file={uncased_vocab}", "--dupe_factor=1", "--max_seq_length=64",
         "--max_predictions_per_seq=10"],
        check=True, capture_output=True, cwd=REPO, timeout=120)
    counts = [sum(1 for _ in _record_lengths(path)) for path in outputs]
    assert max(counts) - min(counts) <= 1 and sum(counts) > 1000


def test_command_line_reports_bad_input_without_a_traceback(tmp_path, uncased_vocab):
    corpus = tmp_path / "bad.txt"
    corpus.write_bytes(b"fine .\n\xc3\n")
    result = subprocess.run(
        [sys.executable, str(REPO / "create_pretraining_data.py"), f"--input_file={corpus}",
         f"--output_file={tmp_path / 'out.tfrecord'}", f"--vocab_file={uncased_vocab}"],
        capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 1
    assert f"{corpus}:2: invalid UTF-8" in result.stderr and "Traceback" not in result.stderr


def _record_lengths(path):
    data = Path(path).read_bytes()
    offset = 0
    while offset < len(data):
        length = int.from_bytes(data[offset:offset + 8], "little")
        yield length
        offset += 16 + length


def test_invalid_utf8_names_file_and_line(tmp_path, uncased_vocab):
    corpus = tmp_path / "bad.txt"
    corpus.write_bytes(b"good line .\nanother one .\nbroken \xff byte .\n")
    with pytest.raises(ptd.PretrainingDataError, match=r"bad\.txt:3: invalid UTF-8"):
        generate(tmp_path, corpus, uncased_vocab, dupe_factor=1)
    assert not list(tmp_path.glob("*.tfrecord*")) and not list(tmp_path.glob(".*"))


def test_invalid_utf8_in_a_worker_leaves_no_output(tmp_path, uncased_vocab):
    corpus = tmp_path / "bad.txt"
    corpus.write_bytes(b"a b c .\n\nd e f .\n\n\xfe\n")
    with pytest.raises(ptd.PretrainingDataError, match=r"bad\.txt:5"):
        generate(tmp_path, corpus, uncased_vocab, dupe_factor=1, num_workers=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.txt"]


def test_empty_corpus_is_an_error(tmp_path, uncased_vocab):
    corpus = tmp_path / "empty.txt"
    corpus.write_text("\n\n  \n", encoding="utf-8")
    with pytest.raises(ptd.PretrainingDataError, match="no documents.*empty.txt"):
        generate(tmp_path, corpus, uncased_vocab)


def test_too_few_predictions_is_reported_at_start(tmp_path, brown_slice, uncased_vocab):
    with pytest.raises(ptd.PretrainingDataError) as error:
        generate(tmp_path, brown_slice, uncased_vocab, max_seq_length=512,
                 max_predictions_per_seq=20)
    assert "--max_predictions_per_seq=20" in str(error.value)
    assert "--max_seq_length=512" in str(error.value)


def test_missing_files_are_named(tmp_path, brown_slice, uncased_vocab):
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        generate(tmp_path, brown_slice, tmp_path / "nope.txt")
    with pytest.raises(FileNotFoundError, match="missing"):
        generate(tmp_path, tmp_path / "missing*.txt", uncased_vocab)


def test_missing_jieba_is_a_clear_error(tmp_path, brown_slice, uncased_vocab, monkeypatch):
    monkeypatch.setitem(sys.modules, "jieba", None)  # makes `import jieba` fail
    with pytest.raises(ptd.PretrainingDataError, match="pip install jieba"):
        generate(tmp_path, brown_slice, uncased_vocab, do_whole_word_mask=True,
                 word_segmenter="jieba")
