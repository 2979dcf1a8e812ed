"""Edge lists and Node2Vec / DeepWalk walks against Node2Vec's definition.

The expected transition probabilities are written out by hand from the
paper's formula (weight times 1/p back to the previous node, 1 to nodes
adjacent to it, 1/q further out) and compared with walk frequencies by a
chi-square test; parsed graphs are compared with networkx's reading of the
same file.
"""

import os

import networkx as nx
import numpy as np
import pytest
from scipy import stats

from bert_tf import graph_walks

# Chi-square tests use fixed seeds, so they are deterministic; the threshold
# only has to reject a wrong distribution, which these sample sizes do with
# p-values far below it.
P_VALUE = 1e-3


def write(tmp_path, text, name="g.edgelist"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def next_step_frequencies(graph, start, via, p, q, n=120_000, seed=0):
    """Counts of the third node of walks start -> via -> x, by x's name."""
    walks = graph_walks.walk_chunk(graph, np.full(n, graph.index[start]), 3, p, q,
                                   np.random.default_rng(seed))
    walks = walks[walks[:, 1] == graph.index[via]]
    names, counts = np.unique(walks[:, 2], return_counts=True)
    return {graph.nodes[i]: c for i, c in zip(names, counts)}, len(walks)


def assert_distribution(counts, total, expected_weights):
    keys = sorted(expected_weights)
    assert set(counts) == set(keys), (counts, keys)
    weights = np.array([expected_weights[k] for k in keys], float)
    expected = total * weights / weights.sum()
    observed = np.array([counts[k] for k in keys])
    assert stats.chisquare(observed, expected).pvalue > P_VALUE, (observed, expected)


WEIGHTED = """\
a b 1
b c 2
a c 1
b d 3
b e 0.5
d f 1
e f 1
"""


@pytest.mark.parametrize("p,q", [(0.5, 2.0), (4.0, 0.25), (1.0, 1.0)])
def test_second_order_transition_probabilities_follow_the_node2vec_formula(tmp_path, p, q):
    graph = graph_walks.read_edgelist(write(tmp_path, WEIGHTED), weighted=True)
    counts, total = next_step_frequencies(graph, "a", "b", p, q)
    # From b, having come from a: back to a (1/p), c is a's neighbour (1),
    # d and e are not (1/q); each times the weight of the edge from b.
    assert_distribution(counts, total, {"a": 1 * (1 / p), "c": 2 * 1.0, "d": 3 * (1 / q),
                                        "e": 0.5 * (1 / q)})


def test_first_step_follows_the_edge_weights(tmp_path):
    graph = graph_walks.read_edgelist(write(tmp_path, WEIGHTED), weighted=True)
    walks = graph_walks.walk_chunk(graph, np.full(60_000, graph.index["b"]), 2, 0.5, 2.0,
                                   np.random.default_rng(1))
    names, counts = np.unique(walks[:, 1], return_counts=True)
    assert_distribution({graph.nodes[i]: c for i, c in zip(names, counts)}, len(walks),
                        {"a": 1, "c": 2, "d": 3, "e": 0.5})


def test_deepwalk_steps_are_uniform_whatever_the_previous_node(tmp_path):
    # Unweighted, p = q = 1: from b every neighbour is equally likely, even
    # though a is b's previous node and c is a's neighbour.
    graph = graph_walks.read_edgelist(write(tmp_path, "a b\nb c\na c\nb d\nb e\nd f\n"))
    counts, total = next_step_frequencies(graph, "a", "b", 1.0, 1.0)
    assert_distribution(counts, total, {"a": 1, "c": 1, "d": 1, "e": 1})


def test_directed_walks_follow_out_edges_and_distance_from_the_previous_node(tmp_path):
    # a->b, b->{a, c, d}, a->c, and d->a (an edge INTO a, which does not make
    # d one step from a): from b having come from a, a is "back" (1/p), c is
    # one step from a (1), d is not (1/q).
    text = "a b\nb a\nb c\nb d\na c\nd a\n"
    graph = graph_walks.read_edgelist(write(tmp_path, text), directed=True)
    assert graph.num_edges == 6
    assert [graph.nodes[i] for i in graph.neighbors(graph.index["c"])] == []
    p, q = 0.5, 4.0
    counts, total = next_step_frequencies(graph, "a", "b", p, q)
    assert_distribution(counts, total, {"a": 1 / p, "c": 1.0, "d": 1 / q})
    # c has no out-edges: walks stop there.
    with graph_walks.Walker(graph, walk_length=6, p=p, q=q, seed=3) as walker:
        walks = [graph.names(w) for w in walker.walks(0)]
    assert any(w[-1] == "c" and len(w) < 6 for w in walks)
    assert all("c" not in w[:-1] for w in walks)
    reference = nx.read_edgelist(write(tmp_path, text, "n.edgelist"), create_using=nx.DiGraph)
    for w in walks:
        assert all(reference.has_edge(u, v) for u, v in zip(w, w[1:]))


def test_alias_tables_give_each_neighbour_exactly_its_share():
    rng = np.random.default_rng(5)
    degrees = [1, 2, 7, 50]
    weights = rng.gamma(0.5, size=sum(degrees)) + 1e-3
    indptr = np.concatenate([[0], np.cumsum(degrees)])
    prob, alias = graph_walks._alias_tables(indptr, weights)
    for v, d in enumerate(degrees):
        lo, hi = indptr[v], indptr[v + 1]
        # Slot k keeps itself with prob[k] and hands 1 - prob[k] to alias[k].
        share = prob[lo:hi] / d
        np.add.at(share, alias[lo:hi], (1 - prob[lo:hi]) / d)
        np.testing.assert_allclose(share, weights[lo:hi] / weights[lo:hi].sum(), atol=1e-12)


def test_walks_are_the_same_whatever_the_number_of_workers(tmp_path):
    edges = nx.gnm_random_graph(60, 200, seed=2).edges()
    path = write(tmp_path, "".join(f"n{u} n{v}\n" for u, v in edges))
    graph = graph_walks.read_edgelist(path)

    def all_walks(workers):
        with graph_walks.Walker(graph, walk_length=12, p=0.25, q=4.0, seed=11,
                                workers=workers, chunk_size=7) as walker:
            return [[w.tolist() for w in walker.walks(i)] for i in range(2)], walker.steps

    one, steps_one = all_walks(1)
    two, steps_two = all_walks(2)
    assert one == two and steps_one == steps_two
    assert one[0] != one[1]  # passes differ
    reference = nx.read_edgelist(path)
    for walks in one:
        assert sorted(graph.nodes[w[0]] for w in walks) == sorted(reference.nodes)
        for w in walks:
            names = graph.names(w)
            assert all(reference.has_edge(u, v) for u, v in zip(names, names[1:]))
    # Every node is one of the 60 and had at least one edge, so each walk is full.
    assert steps_one == 2 * graph.num_nodes * 11


def test_graph_matches_networkx_reading_of_the_same_file(tmp_path):
    text = "# a comment\n\n3 1 0.5\n1 2 2\n2 3 1.5\n3 4 1\n2 1 2\n"
    path = write(tmp_path, text)
    graph = graph_walks.read_edgelist(path, weighted=True)
    reference = nx.read_weighted_edgelist(path)
    assert sorted(graph.nodes) == sorted(reference.nodes)
    assert graph.nodes[:2] == ["3", "1"]  # numbered by first appearance
    assert graph.num_edges == reference.number_of_edges() == 4
    for v in reference.nodes:
        ours = {graph.nodes[u]: w for u, w in zip(graph.neighbors(graph.index[v]),
                                                 graph.edge_weights(graph.index[v]))}
        assert ours == {u: reference[v][u]["weight"] for u in reference[v]}


def test_self_loop_policies(tmp_path):
    path = write(tmp_path, "a b\nb b\nb c\n")
    assert graph_walks.read_edgelist(path).num_edges == 2
    kept = graph_walks.read_edgelist(path, self_loops="keep")
    assert kept.num_edges == 3
    assert sorted(kept.names(kept.neighbors(kept.index["b"]))) == ["a", "b", "c"]
    with pytest.raises(graph_walks.EdgeListError, match=r"g\.edgelist:2: self-loop b -> b"):
        graph_walks.read_edgelist(path, self_loops="error")


@pytest.mark.parametrize("text,kwargs,where,message", [
    ("a b\nb c 1\n", {}, 2, r"expected 2 fields \(u v\), got 3 \(a weighted edge list"),
    ("a b 1\nb c\n", {"weighted": True}, 2, r"expected 3 fields \(u v w\), got 2"),
    ("a\n", {}, 1, "expected 2 fields"),
    ("a b 1\nb c x\n", {"weighted": True}, 2, "weight 'x' is not a number"),
    ("a b 1\nb c -2\n", {"weighted": True}, 2, "weight -2 must be a finite positive number"),
    ("a b nan\n", {"weighted": True}, 1, "weight nan must be a finite positive"),
    ("a b inf\n", {"weighted": True}, 1, "weight inf must be"),
    ("a b 0\n", {"weighted": True}, 1, "weight 0 must be"),
    ("a b 1\nc d 1\nb a 2\n", {"weighted": True}, 3,
     "edge a b was given on line 1 with weight 1, here with 2"),
])
def test_malformed_edge_lists_name_the_file_and_line(tmp_path, text, kwargs, where, message):
    path = write(tmp_path, text)
    with pytest.raises(graph_walks.EdgeListError, match=rf"g\.edgelist:{where}: {message}"):
        graph_walks.read_edgelist(path, **kwargs)


def test_unreadable_and_empty_edge_lists(tmp_path):
    path = tmp_path / "g.edgelist"
    path.write_bytes(b"a b\nb \xff\n")
    with pytest.raises(graph_walks.EdgeListError, match=r"g\.edgelist:2: invalid UTF-8"):
        graph_walks.read_edgelist(str(path))
    with pytest.raises(graph_walks.EdgeListError, match=r"g\.edgelist: no edges"):
        graph_walks.read_edgelist(write(tmp_path, "# nothing\n"))
    with pytest.raises(FileNotFoundError):
        graph_walks.read_edgelist(os.path.join(str(tmp_path), "missing.edgelist"))


def test_same_edge_repeated_is_kept_once_and_directed_pairs_are_distinct(tmp_path):
    path = write(tmp_path, "a b\nb a\na b\n")
    assert graph_walks.read_edgelist(path).num_edges == 1
    assert graph_walks.read_edgelist(path, directed=True).num_edges == 2


def test_walker_rejects_bad_parameters(tmp_path):
    graph = graph_walks.read_edgelist(write(tmp_path, "a b\n"))
    for kwargs in ({"p": 0}, {"q": -1}, {"p": float("nan")}, {"walk_length": 0},
                   {"workers": 0}):
        with pytest.raises(ValueError):
            graph_walks.Walker(graph, **kwargs)
