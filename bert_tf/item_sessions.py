"""Click sessions to item sequences, and next-item evaluation of item vectors.

A session log has one click per line: a session id, an item id and a time,
tab- or comma-separated (decided per file by its first line), optionally
with a header, a column marking the clicks that converted (the booked
listing of Airbnb's search sessions) and a column naming each item's group
(its market). Columns are named by header name or by 0-based position.

Reading keeps every click; the training view is derived from it:
  * clicks are ordered by time within a session (file order breaks ties);
  * `split(gap_minutes)` starts a new session after more than `gap_minutes`
    of inactivity (Airbnb used 30): a user's clicks a day apart are two
    visits with two intents, and their items should not be each other's
    context;
  * `without_repeats()` collapses consecutive clicks on the same item into
    one (a reload, a back-button click). Whether that helps is measured, not
    assumed: on held-out YOOCHOOSE training sessions, keeping the repeats
    gave the better next-click figures (a repeated item's neighbours weigh
    more), so train_item_vectors.py keeps them unless --collapse_repeats.
Evaluation uses the sessions as logged (no split, repeats kept), which is
session-rec's protocol for the rsc15 sample: every next click is an event,
a repeated click included.

>>> import os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "clicks.tsv")
>>> _ = open(path, "w").write("SessionId\\tItemId\\tTime\\n"
...                           "1\\ta\\t0\\n1\\tb\\t60\\n1\\tb\\t90\\n1\\tc\\t4000\\n2\\tc\\t10\\n")
>>> log = read_sessions(path)
>>> [s.items for s in log.sessions]
[['a', 'b', 'b', 'c'], ['c']]
>>> [(s.key, s.items) for s in log.split(30).without_repeats().sessions]
[('1', ['a', 'b']), ('1#2', ['c']), ('2', ['c'])]
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import math
from typing import Callable, Iterable, Sequence

import numpy as np

from bert_tf import text_files

TRUE_MARKS = frozenset({"1", "true", "t", "yes", "y"})
FALSE_MARKS = frozenset({"", "0", "false", "f", "no", "n"})


@dataclasses.dataclass(frozen=True)
class Columns:
    """Where the fields are: a header name, or a 0-based position as digits.

    `booked` marks a converted click (1/true/yes vs 0/false/no/empty);
    `group` gives the clicked item's group. Both are optional (None).
    """
    session: str = "0"
    item: str = "1"
    time: str = "2"
    booked: str | None = None
    group: str | None = None

    def named(self) -> dict[str, str]:
        fields = dataclasses.asdict(self)
        return {field: spec for field, spec in fields.items() if spec not in (None, "")}

    def by_name(self) -> bool:
        return any(not spec.isdigit() for spec in self.named().values())


@dataclasses.dataclass
class Session:
    """One session's clicks in time order; `booked` is its converted item."""
    key: str
    items: list[str]
    times: list[float]
    booked: str | None = None
    marks: list[bool] | None = None


class SessionLog:
    """Sessions (in the order of their first click) and the item -> group map."""

    def __init__(self, sessions: list[Session], group_of: dict[str, str] | None = None):
        self.sessions = sessions
        self.group_of = group_of

    def __len__(self) -> int:
        return len(self.sessions)

    def clicks(self) -> int:
        return sum(len(s.items) for s in self.sessions)

    def split(self, gap_minutes: float | None) -> SessionLog:
        """Sessions cut wherever more than `gap_minutes` pass between clicks.

        The parts are keyed `id`, `id#2`, `id#3`...; the booked item of a
        part is its own last marked click. None or 0 keeps sessions whole.
        """
        if not gap_minutes:
            return self
        gap = gap_minutes * 60.0
        parts = []
        for s in self.sessions:
            start, part = 0, 1
            for i in range(1, len(s.items) + 1):
                if i == len(s.items) or s.times[i] - s.times[i - 1] > gap:
                    key = s.key if part == 1 else f"{s.key}#{part}"
                    marks = s.marks[start:i] if s.marks is not None else None
                    parts.append(Session(key, s.items[start:i], s.times[start:i],
                                         _last_marked(s.items[start:i], marks), marks))
                    start, part = i, part + 1
        return SessionLog(parts, self.group_of)

    def without_repeats(self) -> SessionLog:
        """Consecutive clicks on one item collapsed into the first of them."""
        out = []
        for s in self.sessions:
            keep = [i for i in range(len(s.items)) if i == 0 or s.items[i] != s.items[i - 1]]
            marks = None
            if s.marks is not None:
                # A run of clicks on one item keeps a conversion anywhere in it.
                marks = [any(s.marks[i:j]) for i, j in zip(keep, keep[1:] + [len(s.items)])]
            out.append(Session(s.key, [s.items[i] for i in keep], [s.times[i] for i in keep],
                               s.booked, marks))
        return SessionLog(out, self.group_of)

    def sequences(self) -> Callable[[], Iterable[list[str]]]:
        """The engine's `sequences`: a callable giving a fresh pass each call."""
        return lambda: (s.items for s in self.sessions)

    def global_context(self) -> Callable[[], Iterable[str | None]] | None:
        """The engine's `global_context`, aligned with `sequences()`: each
        session's booked item (None when it has none); None without bookings."""
        if not any(s.booked is not None for s in self.sessions):
            return None
        return lambda: (s.booked for s in self.sessions)

    def item_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for s in self.sessions:
            for item in s.items:
                counts[item] = counts.get(item, 0) + 1
        return counts

    def split_by_time(self, fraction: float) -> tuple[SessionLog, SessionLog]:
        """(earlier, later): the `fraction` of sessions that end last, held out.

        The held-out part keeps only items seen in the earlier part and
        sessions of two clicks or more, as the YOOCHOOSE test split does, so
        that it measures what the earlier part can teach.
        """
        if not 0 < fraction < 1:
            raise ValueError(f"the held-out fraction must be in (0, 1), got {fraction}")
        order = sorted(range(len(self.sessions)), key=lambda i: self.sessions[i].times[-1])
        cut = len(order) - max(1, int(round(fraction * len(order))))
        early = [self.sessions[i] for i in sorted(order[:cut])]
        known = {item for s in early for item in s.items}
        late = []
        for i in sorted(order[cut:]):
            s = self.sessions[i]
            keep = [j for j, item in enumerate(s.items) if item in known]
            if len(keep) >= 2:
                marks = [s.marks[j] for j in keep] if s.marks is not None else None
                items = [s.items[j] for j in keep]
                late.append(Session(s.key, items, [s.times[j] for j in keep],
                                    _last_marked(items, marks), marks))
        return SessionLog(early, self.group_of), SessionLog(late, self.group_of)


def _last_marked(items: Sequence[str], marks: Sequence[bool] | None) -> str | None:
    if marks is None:
        return None
    booked = [item for item, marked in zip(items, marks) if marked]
    return booked[-1] if booked else None


def parse_time(text: str) -> float:
    """Seconds since the epoch from a number or an ISO 8601 time (UTC unless
    it says otherwise).

    >>> parse_time("1396860669.277"), parse_time("2014-04-07T10:51:09.277Z")
    (1396860669.277, 1396867869.277)
    """
    try:
        value = float(text)
    except ValueError:
        when = datetime.datetime.fromisoformat(text)  # ValueError when not a time
        if when.tzinfo is None:
            when = when.replace(tzinfo=datetime.timezone.utc)
        return when.timestamp()
    if not math.isfinite(value):
        raise ValueError(f"{text!r} is not a finite time")
    return value


def _is_float(text: str) -> bool:
    try:
        float(text)  # "nan" and "inf" too: bad times, not titles
        return True
    except ValueError:
        return False


def _fields(line: str, delimiter: str) -> list[str]:
    line = line.rstrip("\r\n")
    if delimiter == "\t":
        return [f.strip() for f in line.split("\t")]
    return [f.strip() for f in next(csv.reader([line]))]


def _positions(path: str, number: int, fields: list[str] | None, columns: Columns
               ) -> dict[str, int]:
    """Column positions, from `fields` (the header) when columns are named."""
    named = columns.named()
    if fields is None:
        return {field: int(spec) for field, spec in named.items()}
    lowered = [f.lower() for f in fields]
    positions = {}
    for field, spec in named.items():
        if spec.isdigit():
            positions[field] = int(spec)
        elif spec.lower() in lowered:
            positions[field] = lowered.index(spec.lower())
        else:
            raise text_files.LineError(path, number, f"the header has no column {spec!r} (the "
                                       f"{field} column); it has {', '.join(fields)}")
    return positions


def read_sessions(paths: str | Sequence[str], columns: Columns = Columns()) -> SessionLog:
    """Every click of the files (comma-separated globs), grouped by session.

    The first line of a file is a header when the columns are named, or
    when its time field has no digit (a title such as "Time"). A line
    without one of the columns, with an empty session or item, an item with
    whitespace in it, a time that does not parse, a mark that is not yes/no,
    or a second group for an item is an error naming
    `file:line`. Blank lines are skipped.
    """
    files = text_files.expand_globs(paths, flag="session log")
    clicks: dict[str, list[tuple[float, int, str, bool]]] = {}
    group_of: dict[str, tuple[str, str]] = {}  # item -> (group, where it was first given)
    order = 0
    for path in files:
        positions = delimiter = None
        for number, line in text_files.read_lines(path):
            if not line.strip():
                continue
            if delimiter is None:
                delimiter = "\t" if "\t" in line else ","
                fields = _fields(line, delimiter)
                time_spec = columns.time
                header = columns.by_name()
                if not header and int(time_spec) < len(fields):
                    # A column title ("Time", "ts"), not a bad time ("12:3o").
                    title = fields[int(time_spec)]
                    header = not any(c.isdigit() for c in title) and not _is_float(title)
                positions = _positions(path, number, fields if header else None, columns)
                if header:
                    continue
            fields = _fields(line, delimiter)
            needed = max(positions.values()) + 1
            if len(fields) < needed:
                missing = [f for f, p in positions.items() if p >= len(fields)]
                raise text_files.LineError(path, number, f"{len(fields)} fields, no "
                                           f"{' or '.join(missing)} column (column "
                                           f"{positions[missing[0]] + 1} is needed)")
            session, item = fields[positions["session"]], fields[positions["item"]]
            if not session or not item:
                raise text_files.LineError(path, number, "empty session" if not session
                                           else "empty item")
            if any(c.isspace() for c in item):
                # A vector file is `item v1 ... vd` per line: the item is one word.
                raise text_files.LineError(path, number, f"item {item!r} contains whitespace, "
                                           "which the word2vec formats cannot hold")
            try:
                when = parse_time(fields[positions["time"]])
            except ValueError:
                raise text_files.LineError(path, number, f"time {fields[positions['time']]!r} "
                                           "is neither a number nor an ISO 8601 time") from None
            marked = False
            if "booked" in positions:
                mark = fields[positions["booked"]].lower()
                if mark not in TRUE_MARKS | FALSE_MARKS:
                    raise text_files.LineError(path, number, f"booked mark {mark!r} is not "
                                               "1/true/yes or 0/false/no/empty")
                marked = mark in TRUE_MARKS
            if "group" in positions:
                group = fields[positions["group"]]
                if not group:
                    raise text_files.LineError(path, number, f"item {item!r} has an empty group")
                known = group_of.setdefault(item, (group, f"{path}:{number}"))
                if known[0] != group:
                    raise text_files.LineError(path, number, f"item {item!r} is in group "
                                               f"{group!r} here but in {known[0]!r} at {known[1]}")
            clicks.setdefault(session, []).append((when, order, item, marked))
            order += 1
    sessions = []
    with_marks = columns.booked not in (None, "")
    for key, rows in clicks.items():
        rows.sort()
        items = [r[2] for r in rows]
        marks = [r[3] for r in rows] if with_marks else None
        sessions.append(Session(key, items, [r[0] for r in rows], _last_marked(items, marks),
                                marks))
    sessions.sort(key=lambda s: s.times[0])
    groups = {item: group for item, (group, _) in group_of.items()} if columns.group else None
    return SessionLog(sessions, groups)


# Next-item evaluation ------------------------------------------------------

class Candidates:
    """The items a recommender ranks: the training items, most clicked first.

    Every model scores this list; equal scores are ordered by this list, so
    a model that cannot tell items apart (an unseen last item, no observed
    transition) falls back to popularity, and every rank is deterministic.
    """

    def __init__(self, log: SessionLog):
        counts = log.item_counts()  # insertion order = first click
        self.items = sorted(counts, key=lambda item: -counts[item])
        self.counts = np.array([counts[item] for item in self.items], np.float64)
        self.index = {item: i for i, item in enumerate(self.items)}

    def __len__(self) -> int:
        return len(self.items)


class PopularityModel:
    """The same ranking for every event: the most clicked training items."""

    name = "popularity"

    def __init__(self, candidates: Candidates):
        self.candidates = candidates

    def scores(self, last_items: Sequence[str]) -> np.ndarray:
        return np.broadcast_to(self.candidates.counts, (len(last_items), len(self.candidates)))


class TransitionModel:
    """Counts of `a -> b` next clicks in the training sessions: after `a`,
    the items that followed `a` most often (repeats included, as logged)."""

    name = "cooccurrence"

    def __init__(self, candidates: Candidates, log: SessionLog):
        self.candidates = candidates
        rows: dict[int, dict[int, int]] = {}
        index = candidates.index
        for s in log.sessions:
            for a, b in zip(s.items, s.items[1:]):
                row = rows.setdefault(index[a], {})
                row[index[b]] = row.get(index[b], 0) + 1
        self.rows = {a: (np.fromiter(row, np.int64), np.fromiter(row.values(), np.float64))
                     for a, row in rows.items()}

    def scores(self, last_items: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(last_items), len(self.candidates)))
        for n, item in enumerate(last_items):
            row = self.rows.get(self.candidates.index.get(item, -1))
            if row is not None:
                out[n, row[0]] = row[1]
        return out


class NearestNeighbourModel:
    """Cosine similarity of each candidate's vector to the last item's.

    The last item itself stays a candidate (its cosine is 1): a repeated
    click is a next click like any other. Candidates without a vector score
    -inf; an event whose last item has no vector scores 0 everywhere, i.e.
    falls back to popularity.
    """

    name = "item_vectors"

    def __init__(self, candidates: Candidates, words: Sequence[str], matrix: np.ndarray):
        self.candidates = candidates
        matrix = np.asarray(matrix, np.float64)
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        unit = matrix / np.where(norms > 0, norms, 1.0)
        self.row_of = {word: i for i, word in enumerate(words)}
        rows = np.array([self.row_of.get(item, -1) for item in candidates.items])
        self.known = rows >= 0
        self.candidate_unit = np.zeros((len(candidates), matrix.shape[1]))
        self.candidate_unit[self.known] = unit[rows[self.known]]
        self.unit = unit

    def scores(self, last_items: Sequence[str]) -> np.ndarray:
        queries = np.zeros((len(last_items), self.unit.shape[1]))
        for n, item in enumerate(last_items):
            row = self.row_of.get(item)
            if row is not None:
                queries[n] = self.unit[row]
        out = queries @ self.candidate_unit.T
        asked = np.any(queries != 0, axis=1)
        out[np.ix_(asked, ~self.known)] = -np.inf
        return out


def next_click_events(log: SessionLog) -> tuple[list[str], list[str]]:
    """(last item, next item) for every click after a session's first."""
    last, target = [], []
    for s in log.sessions:
        last.extend(s.items[:-1])
        target.extend(s.items[1:])
    return last, target


def ranks(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """1-based rank of each row's target column; ties go to the lower column.

    >>> ranks(np.array([[3., 1., 3., 2.], [0., 0., 0., 0.]]), np.array([2, 3]))
    array([2, 4])
    """
    rows = np.arange(len(targets))
    own = scores[rows, targets][:, None]
    columns = np.arange(scores.shape[1])[None, :]
    before = (scores > own) | ((scores == own) & (columns < targets[:, None]))
    return before.sum(axis=1) + 1


def evaluate_next_item(test: SessionLog, models: Sequence, cutoff: int = 20,
                       chunk: int = 2048) -> dict[str, dict[str, float]]:
    """HR@cutoff and MRR@cutoff of each model over every next-click event.

    HR counts the events whose next item is among the top `cutoff`; MRR
    averages 1/rank over the events, 0 beyond the cutoff. A next item that
    is not a candidate (or has no vector) is a miss.
    """
    last, target = next_click_events(test)
    results = {}
    for model in models:
        index = model.candidates.index
        hits = reciprocal = 0.0
        for start in range(0, len(last), chunk):
            batch_last, batch_target = last[start:start + chunk], target[start:start + chunk]
            columns = np.array([index.get(t, -1) for t in batch_target])
            known = columns >= 0
            scores = np.asarray(model.scores(batch_last), np.float64)
            rank = np.full(len(columns), np.inf)
            if known.any():
                rank[known] = ranks(scores[known], columns[known])
                own = scores[known, columns[known]]
                rank[np.flatnonzero(known)[own == -np.inf]] = np.inf
            top = rank <= cutoff
            hits += top.sum()
            reciprocal += (1.0 / rank[top]).sum()
        events = max(len(last), 1)
        results[model.name] = {f"hr@{cutoff}": hits / events, f"mrr@{cutoff}": reciprocal / events,
                               "events": len(last)}
    return results


def results_table(results: dict[str, dict[str, float]], cutoff: int = 20) -> str:
    """The models side by side, one row each."""
    lines = [f"{'model':<16} {'HR@' + str(cutoff):>8} {'MRR@' + str(cutoff):>8} {'events':>8}"]
    for name, r in results.items():
        lines.append(f"{name:<16} {r[f'hr@{cutoff}']:>8.4f} {r[f'mrr@{cutoff}']:>8.4f} "
                     f"{r['events']:>8d}")
    return "\n".join(lines)
