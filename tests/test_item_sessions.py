"""Session logs: reading, splitting by inactivity, bookings and groups, bad
lines named by file:line, and next-item HR/MRR against hand-worked values."""

import numpy as np
import pytest

from bert_tf import item_sessions
from bert_tf.item_sessions import Columns, read_sessions
from bert_tf.text_files import LineError


def write(tmp_path, text, name="clicks.tsv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def items_of(log):
    return {s.key: s.items for s in log.sessions}


def test_clicks_are_ordered_by_time_and_ties_keep_the_file_order(tmp_path):
    path = write(tmp_path, "SessionId\tItemId\tTime\n"
                           "7\tc\t300\n7\ta\t100\n7\tb\t200\n7\tx\t200\n8\tq\t50\n")
    log = read_sessions(path)
    # Session 8 starts first (t=50), so it comes first.
    assert [(s.key, s.items) for s in log.sessions] == [("8", ["q"]), ("7", ["a", "b", "x", "c"])]
    assert log.sessions[1].times == [100.0, 200.0, 200.0, 300.0]
    assert log.clicks() == 5


def test_inactivity_of_more_than_the_gap_starts_a_new_session(tmp_path):
    # Gaps in seconds: 1800 (exactly 30 min: same visit), 1801 (a new one), 60,
    # then 7200 (another).
    path = write(tmp_path, "1\ta\t0\n1\tb\t1800\n1\tc\t3601\n1\td\t3661\n1\te\t10861\n"
                           "2\tf\t0\n2\tg\t5\n")
    log = read_sessions(path)
    assert items_of(log.split(30)) == {"1": ["a", "b"], "1#2": ["c", "d"], "1#3": ["e"],
                                       "2": ["f", "g"]}
    # One minute: every gap above 60 s cuts; 60 s itself does not.
    assert items_of(log.split(1)) == {"1": ["a"], "1#2": ["b"], "1#3": ["c", "d"],
                                      "1#4": ["e"], "2": ["f", "g"]}
    assert items_of(log.split(None)) == items_of(log) == {"1": list("abcde"), "2": ["f", "g"]}


def test_consecutive_repeats_collapse_but_returns_to_an_item_stay(tmp_path):
    path = write(tmp_path, "s,i,t\n1,a,1\n1,a,2\n1,b,3\n1,a,4\n1,a,5\n1,a,6\n1,c,7\n")
    log = read_sessions(path)
    assert items_of(log) == {"1": ["a", "a", "b", "a", "a", "a", "c"]}
    assert items_of(log.without_repeats()) == {"1": ["a", "b", "a", "c"]}
    assert log.without_repeats().sessions[0].times == [1.0, 3.0, 4.0, 7.0]


def test_iso_times_and_comma_files_without_a_header(tmp_path):
    path = write(tmp_path, "u1,x,2014-04-07T10:00:00Z\nu1,y,2014-04-07T10:45:00\n"
                           "u1,z,2014-04-07T11:50:00+02:00\n", "clicks.csv")
    log = read_sessions(path)
    # 11:50+02:00 is 09:50 UTC: z comes first; x -> y is 45 minutes apart.
    assert items_of(log) == {"u1": ["z", "x", "y"]}
    assert items_of(log.split(30)) == {"u1": ["z", "x"], "u1#2": ["y"]}


def test_named_columns_bookings_and_groups(tmp_path):
    path = write(tmp_path, "ts\tmarket\tuser\tlisting\tbooked\n"
                           "10\tparis\tu1\tp1\t0\n"
                           "20\tparis\tu1\tp2\t\n"
                           "30\tparis\tu1\tp3\ttrue\n"
                           "9000\tlondon\tu1\tl1\t\n"
                           "9010\tlondon\tu1\tl2\tno\n"
                           "5\tlondon\tu2\tl2\tyes\n"
                           "6\tlondon\tu2\tl1\t1\n")
    columns = Columns(session="user", item="listing", time="ts", booked="booked",
                      group="market")
    log = read_sessions(path, columns)
    assert log.group_of == {"p1": "paris", "p2": "paris", "p3": "paris", "l1": "london",
                            "l2": "london"}
    whole = {s.key: (s.items, s.booked) for s in log.sessions}
    # u2 marks two clicks: the last one is the session's booking.
    assert whole == {"u1": (["p1", "p2", "p3", "l1", "l2"], "p3"), "u2": (["l2", "l1"], "l1")}
    parts = log.split(30)
    assert {s.key: (s.items, s.booked) for s in parts.sessions} == {
        "u1": (["p1", "p2", "p3"], "p3"), "u1#2": (["l1", "l2"], None),
        "u2": (["l2", "l1"], "l1")}
    # What the engine receives, aligned session by session.
    assert list(parts.sequences()()) == [["l2", "l1"], ["p1", "p2", "p3"], ["l1", "l2"]]
    assert list(parts.global_context()()) == ["l1", "p3", None]
    # Each call is a fresh pass.
    assert list(parts.sequences()()) == list(parts.sequences()())
    assert read_sessions(path, Columns(session="user", item="listing", time="ts")
                         ).global_context() is None


def test_a_booking_inside_a_run_of_repeats_survives_collapsing(tmp_path):
    path = write(tmp_path, "s\ti\tt\tb\n1\ta\t1\t0\n1\tb\t2\t0\n1\tb\t3\t1\n1\tc\t4\t0\n")
    log = read_sessions(path, Columns(booked="3")).without_repeats()
    assert log.sessions[0].items == ["a", "b", "c"]
    assert log.sessions[0].marks == [False, True, False]
    assert log.sessions[0].booked == "b"


@pytest.mark.parametrize("text,columns,line,message", [
    ("1\ta\t10\n1\tb\n", Columns(), 2, "no time column"),
    ("1\ta\t10\n2\n", Columns(), 2, "no item or time column"),
    ("s\ti\tt\n1\ta\t10\n1\tb\tyesterday\n", Columns(), 3, "'yesterday' is neither"),
    ("1\ta\t10\n\n1\t\t11\n", Columns(), 3, "empty item"),
    ("s,i,t\n1,red shoe,10\n", Columns(), 2, "'red shoe' contains whitespace"),
    ("1\ta\t10\t0\n1\tb\t11\tmaybe\n", Columns(booked="3"), 2, "booked mark 'maybe'"),
    ("1\ta\t10\tg1\n2\ta\t11\tg2\n", Columns(group="3"), 2, "in group 'g2' here but in 'g1'"),
    ("1\ta\t10\t\n", Columns(group="3"), 1, "empty group"),
    ("session\titem\ttime\n1\ta\t3\n", Columns(session="user"), 1, "no column 'user'"),
    ("1\ta\t5\n1\tb\tnan\n", Columns(), 2, "'nan' is neither"),
    ("1\ta\tnan\n", Columns(), 1, "'nan' is neither"),
])
def test_malformed_lines_are_named_by_file_and_line(tmp_path, text, columns, line, message):
    path = write(tmp_path, text)
    with pytest.raises(LineError) as info:
        read_sessions(path, columns)
    assert str(info.value).startswith(f"{path}:{line}: ")
    assert message in str(info.value)


def test_a_pattern_that_matches_nothing_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no file matches"):
        read_sessions(str(tmp_path / "missing-*.tsv"))


# Training: b a b c / a b / b c / d  ->  counts b 4, a 2, c 2, d 1, so the
# candidates (ties by first click) are b, a, c, d and the transitions are
# b->a 1, a->b 2, b->c 2.
TRAIN = "1\tb\t1\n1\ta\t2\n1\tb\t3\n1\tc\t4\n2\ta\t5\n2\tb\t6\n3\tb\t7\n3\tc\t8\n4\td\t9\n"
# Test events: a->c, c->b, b->c, a->d, d->b, b->e (e never seen in training).
TEST = "1\ta\t1\n1\tc\t2\n1\tb\t3\n2\tb\t4\n2\tc\t5\n3\ta\t6\n3\td\t7\n4\td\t8\n4\tb\t9\n" \
       "4\te\t10\n"


@pytest.fixture
def logs(tmp_path):
    return read_sessions(write(tmp_path, TRAIN, "train.tsv")), \
        read_sessions(write(tmp_path, TEST, "test.tsv"))


def test_events_and_candidates(logs):
    train, test = logs
    candidates = item_sessions.Candidates(train)
    assert candidates.items == ["b", "a", "c", "d"]
    assert item_sessions.next_click_events(test) == (
        ["a", "c", "b", "a", "d", "b"], ["c", "b", "c", "d", "b", "e"])


def test_popularity_and_transition_baselines_against_hand_ranks(logs):
    train, test = logs
    candidates = item_sessions.Candidates(train)
    models = [item_sessions.PopularityModel(candidates),
              item_sessions.TransitionModel(candidates, train)]
    # Popularity ranks b a c d for every event: c 3, b 1, c 3, d 4, b 1, e miss.
    # Transitions: after a only b (2): c ties at 0 behind b and a -> 3;
    # after c nothing -> popularity, b 1; after b: c 2, a 1 -> c 1;
    # after a: d 4; after d nothing -> b 1; e miss.
    for cutoff, want in [
        (1, {"popularity": (2 / 6, 2 / 6), "cooccurrence": (3 / 6, 3 / 6)}),
        (3, {"popularity": (4 / 6, (1 / 3 + 1 + 1 / 3 + 1) / 6),
             "cooccurrence": (4 / 6, (1 / 3 + 1 + 1 + 1) / 6)}),
        (4, {"popularity": (5 / 6, (1 / 3 + 1 + 1 / 3 + 1 / 4 + 1) / 6),
             "cooccurrence": (5 / 6, (1 / 3 + 1 + 1 + 1 / 4 + 1) / 6)}),
    ]:
        got = item_sessions.evaluate_next_item(test, models, cutoff=cutoff, chunk=4)
        for name, (hr, mrr) in want.items():
            assert got[name]["events"] == 6
            assert got[name][f"hr@{cutoff}"] == pytest.approx(hr)
            assert got[name][f"mrr@{cutoff}"] == pytest.approx(mrr)


def test_nearest_neighbours_of_the_last_item_against_hand_ranks(logs):
    train, test = logs
    candidates = item_sessions.Candidates(train)
    # a = (1, 0), b = (0, 1), c = (1, 1) / anything; d has no vector.
    model = item_sessions.NearestNeighbourModel(candidates, ["a", "c", "b", "z"],
                                                np.array([[2., 0.], [3., 3.], [0., .5], [1., 9.]]))
    # a->c: a 1, c .71, b 0, d -inf: rank 2.  c->b: c 1, then b and a tie
    # at .71 and b (a candidate before a) wins: rank 2.  b->c: b 1, c .71:
    # rank 2.  a->d: d has no vector: miss.  d->b: no vector for d, so
    # popularity: rank 1.  b->e: miss.
    got = item_sessions.evaluate_next_item(test, [model], cutoff=2)["item_vectors"]
    assert got["hr@2"] == pytest.approx(4 / 6)
    assert got["mrr@2"] == pytest.approx((0.5 + 0.5 + 0.5 + 1) / 6)
    got = item_sessions.evaluate_next_item(test, [model], cutoff=1)["item_vectors"]
    assert got["hr@1"] == pytest.approx(1 / 6) and got["mrr@1"] == pytest.approx(1 / 6)


def test_ranks_against_a_full_sort():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 4, size=(50, 9)).astype(float)
    targets = rng.integers(0, 9, size=50)
    want = [list(np.lexsort((np.arange(9), -row))).index(t) + 1 for row, t in zip(scores, targets)]
    assert item_sessions.ranks(scores, targets).tolist() == want


def test_held_out_split_takes_the_sessions_that_end_last(tmp_path):
    path = write(tmp_path, "1\ta\t1\n1\tb\t2\n2\tb\t3\n2\tc\t4\n3\ta\t5\n3\tz\t6\n3\tb\t7\n"
                           "4\tc\t8\n4\ty\t9\n")
    early, late = read_sessions(path).split_by_time(0.5)
    assert items_of(early) == {"1": ["a", "b"], "2": ["b", "c"]}
    # Unseen items are dropped, and then sessions of one click.
    assert items_of(late) == {"3": ["a", "b"]}
