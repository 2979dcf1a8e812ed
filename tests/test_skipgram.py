"""The skip-gram engine: its vocabulary, subsampling and noise distribution
against gensim's (the reference word2vec in Python), the pairs it trains on
against word2vec's definitions, and training itself."""

import numpy as np
import pytest
from gensim.models import Word2Vec

from bert_tf import skipgram


def _zipf_corpus(seed=0, sentences=400, length=12, vocab=300):
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, vocab + 1)
    weights /= weights.sum()
    return [[f"w{i}" for i in rng.choice(vocab, size=length, p=weights)]
            for _ in range(sentences)]


@pytest.fixture(scope="module")
def corpus():
    return _zipf_corpus()


@pytest.fixture(scope="module")
def gensim_model(corpus):
    model = Word2Vec(vector_size=4, min_count=3, sample=1e-3, sg=1, negative=5, seed=1)
    model.build_vocab(corpus)
    return model


def test_vocabulary_is_gensims(corpus, gensim_model):
    vocab = skipgram.Vocabulary.build(corpus, min_count=3)
    wv = gensim_model.wv
    # The same words and counts, most frequent first (gensim's order among
    # equal counts is its sort's; ours is first seen first).
    assert sorted(vocab.words) == sorted(wv.index_to_key)
    assert vocab.counts.tolist() == [wv.get_vecattr(w, "count") for w in wv.index_to_key]
    assert all(wv.get_vecattr(w, "count") == c for w, c in zip(vocab.words, vocab.counts))


def test_subsampling_probabilities_are_word2vecs(corpus, gensim_model):
    vocab = skipgram.Vocabulary.build(corpus, min_count=3)
    ours = vocab.keep_probabilities(1e-3)
    # gensim stores P(keep) as an integer out of 2**32.
    theirs = np.array([gensim_model.wv.get_vecattr(w, "sample_int") for w in vocab.words]) / 2**32
    np.testing.assert_allclose(ours, theirs, atol=1e-9)
    # word2vec.c's formula, written out: (sqrt(c / (s * N)) + 1) * (s * N) / c.
    total = vocab.counts.sum()
    c = vocab.counts.astype(float)
    expected = np.minimum(1, (np.sqrt(c / (1e-3 * total)) + 1) * (1e-3 * total) / c)
    np.testing.assert_allclose(ours, expected)
    assert ours[0] < 0.5 and ours[-1] == 1.0


def test_noise_distribution_is_gensims_cumulative_table(corpus, gensim_model):
    vocab = skipgram.Vocabulary.build(corpus, min_count=3)
    table = gensim_model.cum_table.astype(np.float64)
    theirs = np.diff(np.concatenate([[0.0], table])) / table[-1]
    sampler = skipgram.NegativeSampler(vocab.counts, 0.75)
    np.testing.assert_allclose(sampler.probabilities(0), theirs, atol=1e-8)
    np.testing.assert_allclose(vocab.negative_distribution(0.75), theirs, atol=1e-8)
    # The alias draws follow it.
    draws = sampler.sample(np.zeros(200_000, np.int64), 1, np.random.default_rng(0)).ravel()
    frequencies = np.bincount(draws, minlength=len(vocab)) / len(draws)
    np.testing.assert_allclose(frequencies[:10], theirs[:10], atol=0.003)


def test_dynamic_windows_use_distance_d_with_probability_w_minus_d_plus_1_over_w():
    n, window = 40_000, 5
    sequence = [str(i) for i in range(n)]  # each item once: ids give positions
    options = skipgram.SkipGramOptions(window=window, min_count=1, sample=0)
    vocab = skipgram.Vocabulary.build([sequence], min_count=1)
    generator = skipgram.PairGenerator(lambda: [sequence], vocab, options)
    chunk = next(generator.chunks())
    inputs, outputs = generator.chunk_pairs(chunk, np.random.default_rng(1))
    position = np.array([int(w) for w in vocab.words])
    distance = np.abs(position[inputs] - position[outputs])
    found = np.bincount(distance, minlength=window + 2)
    assert found[0] == 0 and found[window + 1] == 0
    for d in range(1, window + 1):
        # Both neighbours at distance d of each centre, each used when the
        # centre's reach (uniform in 1..window) is >= d.
        expected = 2 * (n - d) * (window - d + 1) / window
        assert abs(found[d] - expected) < 0.02 * expected, d
    # A fixed window uses every neighbour.
    fixed = skipgram.PairGenerator(lambda: [sequence], vocab,
                                   skipgram.SkipGramOptions(window=2, min_count=1, sample=0,
                                                            dynamic_window=False))
    inputs, _ = fixed.chunk_pairs(next(fixed.chunks()), np.random.default_rng(1))
    assert len(inputs) == 2 * (n - 1) + 2 * (n - 2)


def test_windows_never_cross_sequences_and_subsampling_thins_frequent_items():
    sequences = [["a", "b"], ["c", "d"]] * 1000 + [["e"] * 5]
    options = skipgram.SkipGramOptions(window=5, min_count=1, sample=0)
    vocab = skipgram.Vocabulary.build(sequences, min_count=1)
    generator = skipgram.PairGenerator(lambda: sequences, vocab, options)
    pairs = set()
    for chunk in generator.chunks():
        inputs, outputs = generator.chunk_pairs(chunk, np.random.default_rng(0))
        pairs |= {(vocab.words[i], vocab.words[o]) for i, o in zip(inputs, outputs)}
    assert pairs == {("a", "b"), ("b", "a"), ("c", "d"), ("d", "c"), ("e", "e")}


def test_group_negatives_never_leave_the_group_and_global_context_pairs_are_there():
    rng = np.random.default_rng(5)
    markets = {f"item{i}": f"market{i % 3}" for i in range(60)}
    sessions, booked = [], []
    for s in range(300):
        market = s % 3
        items = [f"item{i}" for i in rng.choice(np.arange(market, 60, 3), size=6)]
        sessions.append(items)
        booked.append(items[-1] if s % 2 else None)
    options = skipgram.SkipGramOptions(window=2, min_count=1, sample=0, negatives=4,
                                       batch_size=256, chunk_tokens=500)
    vocab = skipgram.Vocabulary.build(sessions, min_count=1)
    groups = np.array([int(markets[w][-1]) for w in vocab.words])
    generator = skipgram.PairGenerator(lambda: sessions, vocab, options, lambda: booked, groups)
    pairs = set()
    stream = generator.batches(256)
    total_pairs, _ = generator.count_pairs()
    for _ in range(total_pairs // 256):
        batch = next(stream)
        assert (groups[batch["negatives"]] == groups[batch["outputs"]][:, None]).all()
        pairs |= set(zip(batch["inputs"].tolist(), batch["outputs"].tolist()))
    # Every item of a session with a booking predicts the booked item
    # (the last batch's worth of pairs may not have been drawn yet).
    wanted = {(vocab.index[i], vocab.index[b]) for items, b in zip(sessions, booked) if b
              for i in items if i != b}
    assert len(wanted - pairs) <= 0.05 * len(wanted)
    # And the within-group distribution is count ** 0.75 within the group.
    sampler = skipgram.NegativeSampler(vocab.counts, 0.75, groups)
    probs = sampler.probabilities(0)
    same = groups == groups[0]
    weights = np.where(same, vocab.counts.astype(float) ** 0.75, 0)
    np.testing.assert_allclose(probs, weights / weights.sum(), atol=1e-12)


def test_training_learns_which_items_go_together(tmp_path):
    # Two topics that never share a sentence: every word's nearest
    # neighbours must be words of its own topic.
    rng = np.random.default_rng(0)
    topics = [[f"a{i}" for i in range(10)], [f"b{i}" for i in range(10)]]
    sentences = [[str(w) for w in rng.choice(topics[s % 2], size=8)] for s in range(600)]
    options = skipgram.SkipGramOptions(dim=16, window=3, min_count=1, epochs=2, sample=0,
                                       batch_size=256)
    vectors = skipgram.train_skipgram(
        lambda: sentences, options, str(tmp_path),
        training_options=skipgram.default_training_options(use_xla=False, log_steps=1000))
    for word in vectors.words:
        neighbours = [w for w, _ in vectors.most_similar(word, topn=5)]
        assert all(w[0] == word[0] for w in neighbours), (word, neighbours)
    assert (tmp_path / skipgram.VOCAB_FILE).exists() and (tmp_path / skipgram.VECTORS_FILE).exists()
    # The folder is refused to a run with other options.
    with pytest.raises(ValueError, match="other options"):
        skipgram.train_skipgram(lambda: sentences, skipgram.SkipGramOptions(
            dim=8, min_count=1), str(tmp_path))


def test_max_row_updates_scales_the_steps_of_rows_repeated_in_a_batch():
    import tensorflow as tf

    # Hand-worked: id 0 four times, id 2 once; with a cap of 2 the gradient
    # reaching each occurrence of id 0 is halved, id 2's is untouched.
    model = skipgram._build_model(vocab_size=3, dim=2, seed=0, max_row_updates=2.0)
    ids = tf.constant([0, 0, 2, 0, 0])
    with tf.GradientTape() as tape:
        rows = model.input_vectors(ids)
        capped = skipgram._cap_row_updates(rows, ids, 3, 2.0)
        loss = tf.reduce_sum(capped * tf.constant([[1.0, 2.0]]))
    grad = tf.convert_to_tensor(tape.gradient(loss, model.input_vectors.embeddings))
    np.testing.assert_allclose(grad.numpy(), [[2.0, 4.0], [0.0, 0.0], [1.0, 2.0]])


def test_diverged_training_is_an_error(tmp_path):
    sentences = [["a", "b", "c", "a", "b"]] * 200
    options = skipgram.SkipGramOptions(dim=4, window=2, min_count=1, sample=0, epochs=1,
                                       batch_size=512, learning_rate=1e30)
    with pytest.raises(ValueError, match="training diverged"):
        skipgram.train_skipgram(lambda: sentences, options, str(tmp_path),
                                training_options=skipgram.default_training_options(
                                    use_xla=False, log_steps=1000))
