"""Graphs from edge lists, and Node2Vec / DeepWalk random walks over them.

An edge list has one edge per line, `u v` or, with `weighted=True`,
`u v w` (blank lines and lines starting with `#` are skipped). The graph
is held as compressed sparse rows (CSR) in numpy: for node `v`, its
neighbours are `indices[indptr[v]:indptr[v + 1]]`, sorted, with their
weights alongside. An undirected edge is stored in both directions.

Node2Vec (Grover & Leskovec, 2016) walks a graph with a second-order bias:
having come from `t` to `v`, it steps to a neighbour `x` of `v` with
probability proportional to `w(v, x) * alpha(t, x)`, where alpha is `1/p`
when `x == t` (going back), 1 when `x` is a neighbour of `t` (staying close)
and `1/q` otherwise (moving outward). The first step of a walk has no `t`
and follows the weights alone. DeepWalk is the case `p = q = 1`: uniform
(or weight-proportional) steps with no second-order work at all.

How the second-order step is sampled, and why it is exact: the reference
implementation precomputes one alias table per directed edge (t, v), of
size deg(v). That costs sum over v of deg(v)^2 entries; on BlogCatalog
(333,983 edges, hubs of degree ~4,000) that is 369 million entries, about
4.4 GB. Instead we use rejection sampling: draw `x` from `v`'s first-order
alias table (probability `w(v, x) / W(v)`, exact), and accept it with
probability `alpha(t, x) / max(1/p, 1, 1/q)`; otherwise draw again. The
accepted `x` then has probability exactly
`w(v, x) alpha(t, x) / sum_y w(v, y) alpha(t, y)`, Node2Vec's transition
probability, because each attempt is independent and accepts `x` with
probability proportional to that numerator. Nothing is truncated: a walker
retries until it accepts, and each attempt succeeds with probability at
least `min(alpha) / max(alpha)` > 0. The only extra memory is the sorted
array of edge keys that answers "is x a neighbour of t" by binary search.

Walks are generated for many walkers at once with numpy, in chunks of start
nodes; each chunk has its own random stream derived from
(seed, pass, chunk), so the walks are the same whatever the number of
worker processes. A pass yields one walk per node, as a generator: walks
are streamed, never all held in memory.

>>> import os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "g.edgelist")
>>> with open(path, "w") as f:
...     _ = f.write("a b\\nb c\\nc a\\nc d\\n")
>>> graph = read_edgelist(path)
>>> graph.nodes, graph.num_nodes, graph.num_edges
(['a', 'b', 'c', 'd'], 4, 4)
>>> [graph.nodes[i] for i in graph.neighbors(graph.index["c"])]
['a', 'b', 'd']
>>> with Walker(graph, walk_length=5, p=0.5, q=2.0, seed=7) as walker:
...     walks = [graph.names(w) for w in walker.walks(pass_index=0)]
>>> len(walks), sorted(w[0] for w in walks), all(len(w) == 5 for w in walks)
(4, ['a', 'b', 'c', 'd'], True)
"""

from __future__ import annotations

import collections
import math
import multiprocessing
import os
from typing import Iterator, Sequence

import numpy as np

from bert_tf import atomic_io, text_files

SELF_LOOP_POLICIES = ("drop", "keep", "error")

# Start nodes per chunk: each chunk is one vectorised job with its own random
# stream. Fixed (not derived from the worker count) so that walks do not
# depend on how many workers share the chunks.
CHUNK_SIZE = 256


class EdgeListError(text_files.LineError):
    """A malformed edge list line; the message starts with `file:line:`."""


class Graph:
    """A graph in compressed sparse rows; nodes are numbered 0..n-1.

    nodes: node names (strings, as in the edge list), by number.
    indptr, indices: CSR adjacency; each row's neighbours are sorted.
    weights: edge weights aligned with `indices` (None: all 1).
    directed: whether edges were read as directed.
    """

    def __init__(self, nodes: Sequence[str], indptr: np.ndarray, indices: np.ndarray,
                 weights: np.ndarray | None = None, directed: bool = False):
        self.nodes = list(nodes)
        self.index = {name: i for i, name in enumerate(self.nodes)}
        self.indptr = np.asarray(indptr, dtype=np.int64)
        self.indices = np.asarray(indices, dtype=np.int32)
        self.weights = None if weights is None else np.asarray(weights, dtype=np.float64)
        self.directed = bool(directed)
        n = len(self.nodes)
        if self.indptr.shape != (n + 1,) or self.indptr[-1] != len(self.indices):
            raise ValueError("indptr must have num_nodes + 1 entries ending at len(indices)")
        rows = np.repeat(np.arange(n, dtype=np.int64), np.diff(self.indptr))
        # Sorted rows of sorted neighbours make these keys ascending: one
        # binary search answers "is there an edge t -> x".
        self.edge_keys = rows * n + self.indices
        if len(self.edge_keys) > 1 and np.any(np.diff(self.edge_keys) <= 0):
            raise ValueError("each row's neighbours must be sorted and distinct")
        self.alias_prob, self.alias_index = (None, None) if self.weights is None else \
            _alias_tables(self.indptr, self.weights)

    @property
    def num_nodes(self) -> int:
        return len(self.nodes)

    @property
    def num_edges(self) -> int:
        """Edges as read: an undirected edge counts once."""
        stored = len(self.indices)
        if self.directed:
            return stored
        loops = int(np.sum(self.indices == np.repeat(np.arange(self.num_nodes),
                                                    np.diff(self.indptr))))
        return (stored - loops) // 2 + loops

    def degree(self, v: int) -> int:
        return int(self.indptr[v + 1] - self.indptr[v])

    def neighbors(self, v: int) -> np.ndarray:
        return self.indices[self.indptr[v]:self.indptr[v + 1]]

    def edge_weights(self, v: int) -> np.ndarray:
        if self.weights is None:
            return np.ones(self.degree(v))
        return self.weights[self.indptr[v]:self.indptr[v + 1]]

    def has_edges(self, sources: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """Whether each edge sources[i] -> targets[i] exists (vectorised)."""
        keys = np.asarray(sources, np.int64) * self.num_nodes + targets
        pos = np.searchsorted(self.edge_keys, keys)
        pos = np.minimum(pos, len(self.edge_keys) - 1)
        return (self.edge_keys[pos] == keys) if len(self.edge_keys) else np.zeros(len(keys), bool)

    def names(self, walk: np.ndarray) -> list[str]:
        return [self.nodes[i] for i in walk]

    def arrays(self) -> tuple:
        """What a worker process needs to rebuild the graph."""
        return (self.nodes, self.indptr, self.indices, self.weights, self.directed)


def _alias_tables(indptr: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Walker/Vose alias tables of every row's weights, flat and aligned with CSR.

    For row v of degree d, slot k (0 <= k < d) keeps its own neighbour k with
    probability prob[k] and gives the draw to neighbour alias[k] otherwise;
    picking k uniformly then gives neighbour j with probability w_j / sum(w).
    """
    prob = np.ones(len(weights))
    alias = np.zeros(len(weights), dtype=np.int32)
    for v in range(len(indptr) - 1):
        lo, hi = int(indptr[v]), int(indptr[v + 1])
        d = hi - lo
        if d <= 1:
            continue
        w = weights[lo:hi]
        scaled = w * (d / w.sum())
        row_prob, row_alias = scaled.copy(), np.arange(d, dtype=np.int32)
        small = [k for k in range(d) if scaled[k] < 1.0]
        large = [k for k in range(d) if scaled[k] >= 1.0]
        while small and large:
            s, g = small.pop(), large.pop()
            row_prob[s], row_alias[s] = scaled[s], g
            scaled[g] -= 1.0 - scaled[s]
            (small if scaled[g] < 1.0 else large).append(g)
        # Whatever is left is 1 up to rounding: it keeps its own slot.
        for k in small + large:
            row_prob[k] = 1.0
        prob[lo:hi], alias[lo:hi] = row_prob, row_alias
    return prob, alias


def read_edgelist(path: str, directed: bool = False, weighted: bool = False,
                  self_loops: str = "drop") -> Graph:
    """Reads `u v` (or, weighted, `u v w`) lines into a Graph.

    Nodes are numbered in order of first appearance. A malformed line, a
    weight that is not a finite positive number, a self-loop under
    `self_loops="error"`, or the same edge given twice with different
    weights raises EdgeListError naming `file:line`. The same edge repeated
    with the same weight (common in files that list both directions of an
    undirected edge) is kept once. `self_loops="drop"` skips self-loops (and
    says how many), "keep" keeps them as edges v -> v.
    """
    if self_loops not in SELF_LOOP_POLICIES:
        raise ValueError(f"self_loops must be one of {SELF_LOOP_POLICIES}, got {self_loops!r}")
    columns = 3 if weighted else 2
    index: dict[str, int] = {}
    nodes: list[str] = []
    src, dst, wts, lines = [], [], [], []
    dropped, first_dropped = 0, None
    for number, line in text_files.read_lines(path, error=EdgeListError):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        if len(fields) != columns:
            hint = ""
            if len(fields) == 3 and not weighted:
                hint = " (a weighted edge list? pass --weighted)"
            elif len(fields) == 2 and weighted:
                hint = " (no weight; without --weighted every edge weighs 1)"
            raise EdgeListError(path, number, f"expected {columns} fields "
                                f"({'u v w' if weighted else 'u v'}), got {len(fields)}"
                                f"{hint}: {line.strip()!r}")
        u, v = fields[0], fields[1]
        if u == v:
            if self_loops == "error":
                raise EdgeListError(path, number, f"self-loop {u} -> {v} (self loops are "
                                    "refused; drop or keep them with --self_loops)")
            if self_loops == "drop":
                dropped += 1
                first_dropped = first_dropped or number
                continue
        w = 1.0
        if weighted:
            try:
                w = float(fields[2])
            except ValueError:
                raise EdgeListError(path, number, f"weight {fields[2]!r} is not a number") \
                    from None
            if not math.isfinite(w) or w <= 0:
                raise EdgeListError(path, number, f"weight {fields[2]} must be a finite "
                                    "positive number")
        for name in (u, v):
            if name not in index:
                index[name] = len(nodes)
                nodes.append(name)
        src.append(index[u])
        dst.append(index[v])
        wts.append(w)
        lines.append(number)
    if not nodes:
        raise EdgeListError(path, None, "no edges")
    if dropped:
        from absl import logging

        logging.info("%s: dropped %d self-loop(s), the first on line %d", path, dropped,
                     first_dropped)
    src, dst = np.asarray(src, np.int64), np.asarray(dst, np.int64)
    wts, lines = np.asarray(wts), np.asarray(lines)
    n = len(nodes)
    # One key per edge as given; undirected edges are keyed by (min, max) so
    # that "a b" and "b a" are recognised as the same edge.
    a, b = (src, dst) if directed else (np.minimum(src, dst), np.maximum(src, dst))
    keys = a * n + b
    order = np.argsort(keys, kind="stable")
    keys, a, b, wts, lines = keys[order], a[order], b[order], wts[order], lines[order]
    repeat = np.zeros(len(keys), bool)
    repeat[1:] = keys[1:] == keys[:-1]
    if np.any(repeat):
        first_of = np.maximum.accumulate(np.where(~repeat, np.arange(len(keys)), 0))
        clash = repeat & (wts != wts[first_of])
        if np.any(clash):
            i = int(np.argmin(np.where(clash, lines, np.iinfo(np.int64).max)))
            raise EdgeListError(path, int(lines[i]), f"edge {nodes[a[i]]} {nodes[b[i]]} "
                                f"was given on line {lines[first_of[i]]} with weight "
                                f"{wts[first_of[i]]:g}, here with {wts[i]:g}")
        keep = ~repeat
        a, b, wts = a[keep], b[keep], wts[keep]
    if not directed:
        loop = a == b
        a, b = np.concatenate([a, b[~loop]]), np.concatenate([b, a[~loop]])
        wts = np.concatenate([wts, wts[~loop]])
    order = np.lexsort((b, a))
    a, b, wts = a[order], b[order], wts[order]
    indptr = np.zeros(n + 1, np.int64)
    np.cumsum(np.bincount(a, minlength=n), out=indptr[1:])
    return Graph(nodes, indptr, b, wts if weighted else None, directed)


def _first_order_step(graph: Graph, current: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One weight-proportional step from each node of `current` (all have out-edges)."""
    start = graph.indptr[current]
    degree = graph.indptr[current + 1] - start
    # u * d can round up to d for u just below 1; the clamp keeps the slot valid.
    slot = np.minimum((rng.random(len(current)) * degree).astype(np.int64), degree - 1)
    if graph.alias_prob is not None:
        keep = rng.random(len(current)) < graph.alias_prob[start + slot]
        slot = np.where(keep, slot, graph.alias_index[start + slot])
    return graph.indices[start + slot]


def _second_order_step(graph: Graph, previous: np.ndarray, current: np.ndarray, p: float,
                       q: float, rng: np.random.Generator) -> np.ndarray:
    """One Node2Vec step from `current`, having arrived from `previous`.

    Rejection sampling against the first-order proposal (see the module
    docstring): exact, and no per-edge tables.
    """
    alpha_back, alpha_out = 1.0 / p, 1.0 / q
    alpha_max = max(alpha_back, 1.0, alpha_out)
    chosen = np.empty(len(current), dtype=np.int64)
    pending = np.arange(len(current))
    while len(pending):
        t, x = previous[pending], _first_order_step(graph, current[pending], rng)
        alpha = np.where(x == t, alpha_back, np.where(graph.has_edges(t, x), 1.0, alpha_out))
        accept = rng.random(len(pending)) * alpha_max < alpha
        chosen[pending[accept]] = x[accept]
        pending = pending[~accept]
    return chosen


def walk_chunk(graph: Graph, starts: np.ndarray, walk_length: int, p: float, q: float,
               rng: np.random.Generator) -> np.ndarray:
    """Walks from each of `starts`: an int array [len(starts), walk_length].

    A walk that reaches a node with no out-edges (only possible in a
    directed graph, or from an isolated node) stops there; the rest of its
    row is -1.
    """
    walks = np.full((len(starts), walk_length), -1, dtype=np.int64)
    walks[:, 0] = starts
    degree = np.diff(graph.indptr)
    second_order = not (p == 1 and q == 1)
    alive = np.flatnonzero(degree[starts] > 0)
    for step in range(1, walk_length):
        if not len(alive):
            break
        current = walks[alive, step - 1]
        if step == 1 or not second_order:
            walks[alive, step] = _first_order_step(graph, current, rng)
        else:
            walks[alive, step] = _second_order_step(graph, walks[alive, step - 2], current,
                                                    p, q, rng)
        alive = alive[degree[walks[alive, step]] > 0]
    return walks


def pass_chunks(num_nodes: int, seed: int, pass_index: int,
                chunk_size: int = CHUNK_SIZE) -> list[tuple[np.ndarray, np.random.SeedSequence]]:
    """The start nodes of one pass, shuffled, in chunks, each with its random stream."""
    order = np.random.default_rng([seed, pass_index]).permutation(num_nodes)
    return [(order[i:i + chunk_size], np.random.SeedSequence([seed, pass_index, i // chunk_size]))
            for i in range(0, num_nodes, chunk_size)]


_WORKER_GRAPH: Graph | None = None


def _init_worker(arrays: tuple) -> None:
    global _WORKER_GRAPH
    _WORKER_GRAPH = Graph(*arrays)


def _worker_chunk(args) -> np.ndarray:
    starts, seed_seq, walk_length, p, q = args
    return walk_chunk(_WORKER_GRAPH, starts, walk_length, p, q, np.random.default_rng(seed_seq))


class Walker:
    """Node2Vec walks over `graph`, pass by pass, optionally in worker processes.

    `walks(pass_index)` yields one walk (an int array of node numbers) per
    node of the graph, starting from the nodes in a shuffled order. The
    walks depend only on (graph, walk_length, p, q, seed, pass_index):
    `workers` changes the speed, not the walks. With workers > 1, chunks
    are computed ahead by a pool of spawned processes, at most
    `2 * workers` chunks ahead of the consumer, so memory stays bounded
    when the consumer (training) is the slower side.
    """

    def __init__(self, graph: Graph, walk_length: int = 80, p: float = 1.0, q: float = 1.0,
                 seed: int = 1, workers: int = 1, chunk_size: int = CHUNK_SIZE):
        if walk_length < 1:
            raise ValueError(f"walk_length must be >= 1, got {walk_length}")
        if not (p > 0 and q > 0 and math.isfinite(p) and math.isfinite(q)):
            raise ValueError(f"p and q must be finite and positive, got p={p}, q={q}")
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.graph, self.walk_length, self.p, self.q = graph, walk_length, float(p), float(q)
        self.seed, self.workers, self.chunk_size = seed, workers, chunk_size
        self.steps = 0  # steps taken so far (a walk of length L has L - 1)
        self._pool = None

    def __enter__(self) -> "Walker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None

    def _chunks(self, pass_index: int) -> Iterator[np.ndarray]:
        jobs = [(starts, seed_seq, self.walk_length, self.p, self.q)
                for starts, seed_seq in pass_chunks(self.graph.num_nodes, self.seed, pass_index,
                                                    self.chunk_size)]
        if self.workers == 1:
            for starts, seed_seq, *_ in jobs:
                yield walk_chunk(self.graph, starts, self.walk_length, self.p, self.q,
                                 np.random.default_rng(seed_seq))
            return
        if self._pool is None:
            self._pool = multiprocessing.get_context("spawn").Pool(
                self.workers, initializer=_init_worker, initargs=(self.graph.arrays(),))
        ahead: collections.deque = collections.deque()
        jobs_iter = iter(jobs)
        for job in jobs_iter:
            ahead.append(self._pool.apply_async(_worker_chunk, (job,)))
            if len(ahead) >= 2 * self.workers:
                break
        while ahead:
            result = ahead.popleft().get()
            for job in jobs_iter:
                ahead.append(self._pool.apply_async(_worker_chunk, (job,)))
                break
            yield result

    def walks(self, pass_index: int) -> Iterator[np.ndarray]:
        for chunk in self._chunks(pass_index):
            lengths = np.argmax(np.append(chunk, np.full((len(chunk), 1), -1), axis=1) < 0,
                                axis=1)
            self.steps += int(np.sum(lengths - 1))
            for row, length in zip(chunk, lengths):
                yield row[:length]


def walk_file(folder: str, pass_index: int) -> str:
    return os.path.join(folder, f"walks-{pass_index:05d}.txt")


def write_walk_passes(walker: Walker, folder: str, num_walks: int) -> dict[str, float]:
    """Writes pass i's walks to `folder`/walks-0000i.txt (node names, one walk a line).

    Each file appears only when its pass is complete, so after a kill the
    passes already written are kept and the rest are generated: the same
    walks, since a pass depends only on its index and the seed. Returns the
    walk-generation figures of the passes generated now (steps, seconds).
    """
    import time

    os.makedirs(folder, exist_ok=True)
    steps_before, seconds, generated = walker.steps, 0.0, 0
    names = walker.graph.nodes
    for pass_index in range(num_walks):
        path = walk_file(folder, pass_index)
        if os.path.exists(path):
            continue
        start = time.perf_counter()
        with atomic_io.open_for_write(path) as f:
            for walk in walker.walks(pass_index):
                f.write(" ".join([names[i] for i in walk]))
                f.write("\n")
        seconds += time.perf_counter() - start
        generated += 1
    return {"passes": generated, "steps": walker.steps - steps_before, "seconds": seconds}


def walk_file_sequences(folder: str, num_walks: int):
    """A zero-argument callable streaming the walks of `folder`, pass after pass."""

    def sequences() -> Iterator[list[str]]:
        for pass_index in range(num_walks):
            with open(walk_file(folder, pass_index), encoding="utf-8") as f:
                for line in f:
                    yield line.split()

    return sequences
