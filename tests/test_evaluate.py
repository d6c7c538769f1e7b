"""The offline evaluation harness: metrics by hand, the time split, an end-to-end run."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from evaluation.harness import (
    best_single,
    evaluate,
    evaluate_seeds,
    pool_oracle,
    ratio_interval,
    time_split,
    write_report,
)
from graph.snapshot.format import EVENT_CODE
from pymk.errors import EvaluationError, InputFormatError
from pymk.metrics import paired_ratio_interval, rank_metrics


def test_rank_metrics_by_hand():
    m = rank_metrics(["x", "a", "y", "b"], {"a", "b", "c"})
    assert m["mrr"] == 0.5
    assert m["recall@1"] == 0 and m["hits@1"] == 0
    assert m["recall@5"] == pytest.approx(2 / 3) and m["hits@5"] == 1
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    idcg = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert m["ndcg@5"] == pytest.approx(dcg / idcg)


def _timed_edges(tmp_path):
    # past: a square a-b-c-d-a plus a pendant e-a; future: the diagonals close triangles, and a
    # tie to a brand-new user z (unseen before the cut). Repeated pair a-b is one tie at time 1.
    lines = ["a b 1", "b c 2", "c d 3", "d a 4", "e a 5", "b a 6",
             "a c 10", "b d 11", "e b 12", "z a 13"]
    path = tmp_path / "timed.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_time_split_has_no_leakage(tmp_path):
    split = time_split(_timed_edges(tmp_path), train_share=0.6)
    assert split.cut == 9.0  # linear quantile between the 5th (t=5) and 6th (t=10) of 9 tie times
    assert split.train.num_edges == 5 and split.train_ties == 5
    assert split.test == {"a": {"c"}, "c": {"a"}, "b": {"d", "e"}, "d": {"b"}, "e": {"b"}}
    assert split.test_ties_unseen_users == 1
    for u, vs in split.test.items():
        i = split.train.index_of(u)
        assert not {split.train.external_id(int(j)) for j in split.train.neighbors(i)} & vs


def test_time_split_keeps_interactions_before_the_cut_where_pairs_repeat(tmp_path):
    split = time_split(_timed_edges(tmp_path), train_share=0.6)   # "b a 6" repeats a-b: a message graph
    ev = split.train.events
    ids = split.train.id_strings
    got = sorted((ids[s], ids[d], t) for s, d, t in zip(ev["src"], ev["dst"], ev["ts"], strict=True))
    assert got == [("a", "b", 1.0), ("b", "a", 6.0), ("b", "c", 2.0), ("c", "d", 3.0), ("d", "a", 4.0),
                   ("e", "a", 5.0)]   # every row before the cut (9), none after
    assert set(ev["type"].tolist()) == {EVENT_CODE["interaction"]}
    once = tmp_path / "once.txt"
    once.write_text("a b 1\nb c 2\nc d 3\na c 10\n")
    assert time_split(once, train_share=0.6).train.events["ts"].size == 0   # no repeats: ties, not messages


def test_a_snap_download_as_shipped_splits_like_the_plain_file(tmp_path, caplog):
    """SNAP's own files: gzip, no header, `src,dst,rating,time`; bad rows are skipped with their line."""
    import gzip

    plain = _timed_edges(tmp_path)
    shipped = tmp_path / "shipped.csv.gz"
    rows = [f"{a},{b},-3,{t}" for a, b, t in (line.split() for line in plain.read_text().splitlines())]
    shipped.write_bytes(gzip.compress(("\n".join([*rows[:3], "x,y,1,notatime", *rows[3:]]) + "\n").encode()))
    a, b = time_split(plain, train_share=0.6), time_split(shipped, train_share=0.6)
    assert (a.cut, a.test, a.train_ties) == (b.cut, b.test, b.train_ties)
    assert "shipped.csv.gz:4: bad timestamp 'notatime'" in caplog.text and "1 bad rows skipped" in caplog.text


def test_a_published_snapshot_splits_like_the_edge_list_it_holds(tmp_path):
    """`pymk eval` on a graph already in Neo4j: the snapshot's friendships at their times and its
    interaction events (not its impressions) give the split the edge list gives."""
    from evaluation.edgelist import read_ties
    from graph.snapshot import from_pairs, interaction_table, save_snapshot
    from pymk.artifacts import ArtifactStore

    plain = _timed_edges(tmp_path)
    edges = read_ties(plain)
    snap = from_pairs(edges.named(edges.src), edges.named(edges.dst), edges.ts)
    said = interaction_table(snap, edges.named(edges.said[0]), edges.named(edges.said[1]), edges.said[2])
    said["type"] = np.append(said["type"], np.int8(EVENT_CODE["impression"]))   # a shown suggestion: no tie
    for key, value in (("src", 0), ("dst", 2), ("ts", 7.0), ("position", 0)):
        said[key] = np.append(said[key], np.array(value, dtype=said[key].dtype))
    snap.events = said
    root = tmp_path / "snapshots"
    version = save_snapshot(snap, ArtifactStore(root), "test")
    a = time_split(plain, train_share=0.6)
    for path in (root, version):   # the current version through CURRENT, or a version named
        b = time_split(path, train_share=0.6)
        assert (a.cut, a.test, a.train_ties, a.test_ties) == (b.cut, b.test, b.train_ties, b.test_ties)
        assert a.test_ties_unseen_users == b.test_ties_unseen_users == 1   # z's tie: z is new at the cut
        for ev in ("src", "dst", "ts", "type"):
            assert np.array_equal(np.sort(a.train.events[ev]), np.sort(b.train.events[ev])), ev


def test_time_zero_among_dates_is_unknown_but_a_clock_from_zero_is_kept(tmp_path, caplog):
    from evaluation.edgelist import read_ties

    stamped = tmp_path / "crawl.txt"
    stamped.write_text("a b 0\nb c 0\nc d 1300000000\nd a 1300000500\na b 1300000900\n")
    ties = read_ties(stamped)
    assert np.isnan(ties.ts[:2]).all() and ties.ts[2:].tolist() == [1300000000.0, 1300000500.0]
    assert ties.said[2].tolist() == [1300000000.0, 1300000500.0, 1300000900.0]   # timed rows only
    assert "2 ties at time 0 among times from 2011-03-13 on: read as ties of unknown time" in caplog.text
    relative = tmp_path / "relative.txt"
    relative.write_text("a b 0\nb c 5\nc d 90\n")
    assert read_ties(relative).ts.tolist() == [0.0, 5.0, 90.0]


def test_an_edge_lists_ties_are_its_pairs_once_at_their_first_time(tmp_path):
    """Known answers for what the reader keeps (numbered ids in arrays since 2026-12-07, where it held tuples
    of strings): a pair once, in order of first appearance, its lower id as strings compare first ("10" <
    "9"), at its earliest time, unknown when its first row has none; every timed row an interaction, its
    direction as written."""
    from evaluation.edgelist import read_ties

    path = tmp_path / "msgs.txt"
    path.write_text("9 10 300\n"       # ("10", "9") at 300, then 200 (its earliest)
                    "x y\n"            # ("x", "y") unknown: its first row has no time
                    "10 9 200\n"
                    "y x 100\n"
                    "b a 50\n"         # ("a", "b") 50, its later row at 70 kept as an interaction only
                    "a b 70\n")
    ties = read_ties(path)
    assert list(zip(ties.named(ties.src), ties.named(ties.dst), strict=True)) == [("10", "9"), ("x", "y"), ("a", "b")]
    assert ties.ts[0] == 200.0 and np.isnan(ties.ts[1]) and ties.ts[2] == 50.0
    assert list(zip(*map(ties.named, ties.said[:2]), strict=True)) == \
        [("9", "10"), ("10", "9"), ("y", "x"), ("b", "a"), ("a", "b")]
    assert ties.said[2].tolist() == [300.0, 200.0, 100.0, 50.0, 70.0]
    once = tmp_path / "once.txt"
    once.write_text("a b 5\nb c 6\n")
    assert read_ties(once).said is None   # no pair repeats: not a message graph


@pytest.mark.parametrize("unit, factor", [("milliseconds", 1_000), ("microseconds", 1_000_000),
                                          ("nanoseconds", 1_000_000_000)])
def test_an_edge_list_in_finer_units_is_read_in_the_unit_that_makes_times_of_it(tmp_path, caplog, unit, factor):
    from evaluation.edgelist import read_ties
    from graph.timestamps import time_window

    seconds = [1300000000, 1300000500, 1300000900]
    path = tmp_path / "fine.txt"
    path.write_text("".join(f"{a} {b} {t * factor}\n" for (a, b), t in zip(["ab", "bc", "cd"], seconds, strict=True)))
    assert read_ties(path).ts.tolist() == [float(t) for t in seconds]
    assert f"read them as {unit}" in caplog.text and time_window().unit_s == 1.0   # the setting is left as it was
    # numbers past the clock that no finer unit makes epoch times of (they would land in 1970) stay an error
    future = tmp_path / "future.txt"
    future.write_text("a b 5000000000\nb c 5000000100\n")
    with pytest.raises(InputFormatError, match=r"future\.txt: no edge could be read .*outside the accepted window"):
        read_ties(future)


def test_a_file_without_one_readable_edge_is_a_named_error(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text("1 2 3 4 5\n6 7 8 9 10\n")
    with pytest.raises(InputFormatError, match=r"bad\.txt: no edge could be read \(first bad row: .*bad\.txt:1: "):
        time_split(path)


def test_a_graph_without_test_users_is_a_named_error_before_training(tmp_path):
    """A graph that grows only by new users (a tree, each tie bringing one) has no pair to score."""
    path = tmp_path / "tree.txt"
    path.write_text("".join(f"{i} {i // 2} {1_300_000_000 + 60 * i}\n" for i in range(1, 200)))
    with pytest.raises(EvaluationError, match=r"tree\.txt: no test users: none of the 40 ties .* \(40 touch a user"):
        evaluate(path, users=10, progress=False)


@pytest.mark.parametrize(("kwargs", "message"), [({"train_share": 1.5}, "train_share .* 1.5"),
                                                 ({"train_share": 0.0}, "train_share .* 0.0"),
                                                 ({"users": 0}, "users .* 0")])
def test_bad_arguments_are_named_errors_before_reading(tmp_path, kwargs, message):
    with pytest.raises(EvaluationError, match=message):
        evaluate(tmp_path / "never-read.txt", progress=False, **kwargs)


def test_no_seeds_is_a_named_error():
    with pytest.raises(EvaluationError, match="no seeds"):
        evaluate_seeds(Path("never-read.txt"), seeds=())


def test_harness_finds_triangle_closures_and_writes_report(tmp_path):
    report = evaluate(_timed_edges(tmp_path), users=10, train_share=0.6, progress=False)
    m = report["metrics"]
    assert m["fof"]["recall@5"] == 1.0   # every future tie closes a triangle
    assert m["union"]["recall@5"] == 1.0
    assert m["pool_oracle"]["recall@20"] == m["pool_oracle"]["ndcg@20"] == 1.0   # every future tie is in the pool
    assert m["adamic_adar"]["recall@5"] == 1.0 and m["pipeline"]["recall@5"] == 1.0
    assert report["evaluated_users"] == 5
    users = report["per_user"]["users"]   # the sample's ids, one per evaluated user
    assert len(users) == 5 and set(users) == {"a", "b", "c", "d", "e"}   # z had no tie before the cut
    for name in ("pipeline", "adamic_adar", "ppr"):   # the per-user values behind the ratio's interval
        for metric in ("recall@20", "ndcg@20"):
            values = report["per_user"]["rows"][name][metric]
            assert len(values) == 5 and np.mean(values) == pytest.approx(m[name][metric], abs=1e-4)
    json_path, png_path = write_report(report, tmp_path / "out")
    assert json.loads(json_path.read_text())["metrics"]["fof"]["recall@5"] == 1.0
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report["ranker"]["learning_curves"] = {"mlp_focal": {"metric": "recall@20 + ndcg@20", "step": "epoch",
                                                         "steps": [1, 2, 3], "train": [0.1, 0.2, 0.3],
                                                         "validation": [0.1, 0.15, 0.12]}}
    write_report(report, tmp_path / "out")
    assert (tmp_path / "out" / "eval_timed_learning.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_pool_oracle_is_the_best_ranking_of_the_pool():
    # 2 of 3 relevant users in the pool: the best ranking puts both first
    got = pool_oracle({"a", "b", "x", "y"}, {"a", "b", "c"}, ks=(1, 2))
    assert got["recall@1"] == pytest.approx(1 / 3) and got["recall@2"] == pytest.approx(2 / 3)
    assert got["ndcg@1"] == got["ndcg@2"] == 1.0
    got = pool_oracle({"a", "x"}, {"a", "b", "c"}, ks=(2,))   # one hit at rank 1 of an ideal two
    assert got["recall@2"] == pytest.approx(1 / 3) and got["ndcg@2"] == pytest.approx(1 / (1 + 1 / math.log2(3)))
    assert pool_oracle(set(), {"a"}, ks=(20,)) == {"recall@20": 0.0, "ndcg@20": 0.0}


def test_the_ratio_to_the_best_single_baseline_is_not_rounded_up_to_a_target():
    metrics = {"pipeline": {"recall@20": 0.3853, "ndcg@20": 0.22}, "recent_popularity": {"recall@20": 0.3504,
                                                                                          "ndcg@20": 0.2},
               "union": {"recall@20": 0.9, "ndcg@20": 0.9}}   # not a single baseline: never the best single
    best = best_single(metrics)
    assert best["recall@20"]["name"] == "recent_popularity"
    assert best["recall@20"]["ratio"] == pytest.approx(0.3853 / 0.3504) and best["recall@20"]["ratio"] < 1.10
    assert best["ndcg@20"]["ratio"] == pytest.approx(1.10)


def test_paired_ratio_interval_known_answers():
    rng = np.random.default_rng(3)
    theirs = [rng.random(300), rng.random(500)]
    lo, hi = paired_ratio_interval([1.1 * t for t in theirs], theirs)   # 1.1x for every user: no spread
    assert lo == pytest.approx(1.1) and hi == pytest.approx(1.1)
    # against a constant 1 the ratio is the mean of 0/1 values: the normal approximation p +- 1.96 se
    ours = (rng.random(4000) < 0.3).astype(float)
    lo, hi = paired_ratio_interval([ours], [np.ones(4000)], draws=4000)
    p, se = ours.mean(), np.sqrt(ours.mean() * (1 - ours.mean()) / 4000)
    assert lo == pytest.approx(p - 1.96 * se, abs=0.003) and hi == pytest.approx(p + 1.96 * se, abs=0.003)
    # paired: a shared per-user swing cancels, so the interval is far narrower than for unpaired values
    base = rng.random(400)
    paired = paired_ratio_interval([base + 0.01], [base])
    unpaired = paired_ratio_interval([rng.permutation(base) + 0.01], [np.full(400, base.mean())])
    assert paired[1] - paired[0] < (unpaired[1] - unpaired[0]) / 5
    with pytest.raises(ValueError, match="aligned"):
        paired_ratio_interval([np.ones(3)], [np.ones(4)])


def test_ratio_interval_reads_the_runs_per_user_values_of_both_rows():
    runs = [{"per_user": {"users": ["a", "b", "c"], "rows": {"pipeline": {"ndcg@20": [0.2, 0.4, 0.6]},
                                                             "ppr": {"ndcg@20": [0.1, 0.2, 0.3]}}}},
            {"per_user": {"users": ["d", "a"], "rows": {"pipeline": {"ndcg@20": [0.4, 0.2]},
                                                       "ppr": {"ndcg@20": [0.2, 0.1]}}}}]
    assert ratio_interval(runs, "ppr", "ndcg@20") == [2.0, 2.0]   # twice the baseline for every user
    assert ratio_interval(runs, "fof", "ndcg@20") is None          # a row without per-user values


def test_a_user_tested_by_every_run_is_one_draw_for_all_of_them():
    """Three runs of the same users (in different orders) are one sample, not three: named, the interval
    is as wide as one run's; unnamed, the runs count as independent users and it narrows by ~sqrt(3)."""
    rng = np.random.default_rng(5)
    ours, theirs = rng.random(300) + 0.05, rng.random(300)
    orders = [rng.permutation(300) for _ in range(3)]
    names = [[f"u{i}" for i in order] for order in orders]
    one = paired_ratio_interval([ours], [theirs])
    named = paired_ratio_interval([ours[o] for o in orders], [theirs[o] for o in orders], names)
    unnamed = paired_ratio_interval([ours[o] for o in orders], [theirs[o] for o in orders])
    width = [hi - lo for lo, hi in (one, named, unnamed)]
    assert width[1] == pytest.approx(width[0], rel=0.1)
    assert width[2] == pytest.approx(width[0] / np.sqrt(3), rel=0.15)
