"""Tie times in days or years, where many ties share a time: the outer split and the inner cuts move
to the times the ties allow (graph/splits.py, ranker/history.py `time_cuts`), and a timed graph that
falls back to random holdouts computes its rows on the graph as it stands."""

from __future__ import annotations

import numpy as np
import pytest

from evaluation.harness import time_split
from graph.snapshot import from_pairs
from graph.splits import time_boundaries, time_split_mask
from ranker.feature_names import FEATURE_NAMES
from ranker.history import HistoryConfig, history_examples, time_cuts

YEARS = np.repeat([2000.0, 2001.0, 2002.0, 2003.0], [2, 4, 3, 1])   # shares before each year: 0, .2, .6, .9


def test_time_boundaries_are_every_cut_times_allow():
    values, shares = time_boundaries(YEARS)
    assert values.tolist() == [2001.0, 2002.0, 2003.0]
    assert np.allclose(shares, [0.2, 0.6, 0.9])


def test_a_cut_inside_a_run_of_equal_times_moves_to_the_closest_time_the_ties_allow():
    # the 80% quantile is 2002, which puts 60% before it (a random holdout, before); 2003 puts 90%
    train, cut = time_split_mask(YEARS, 0.8)
    assert cut == 2003.0 and train.tolist() == (YEARS < 2003).tolist()
    train, cut = time_split_mask(YEARS, 0.5)
    assert cut == 2002.0 and train.mean() == pytest.approx(0.6)
    # ties of unknown time train, and count in the share: 2002 puts 11 of 15 before it, 2003 puts 14
    with_unknown = np.concatenate([YEARS, [np.nan] * 5])
    train, cut = time_split_mask(with_unknown, 0.8)
    assert cut == 2002.0 and train[-5:].all() and train.mean() == pytest.approx(11 / 15)
    # too coarse to come near the share (two times, half each): still a random holdout, no cut
    train, cut = time_split_mask(np.repeat([1.0, 2.0], 50), 0.8, seed=1)
    assert cut is None and 0.6 < train.mean() < 0.95


def test_a_graph_with_most_ties_untimed_cuts_its_timed_ones_so_the_share_holds():
    # 60 ties of unknown time train; the timed ones' 80% quantile would train 92% (a random holdout,
    # before); the cut that trains 80% is the timed ties' median
    ts = np.concatenate([np.full(60, np.nan), np.arange(40, dtype=np.float64) * 100])
    train, cut = time_split_mask(ts, 0.8)
    assert cut == 2000.0 and train.mean() == pytest.approx(0.8) and train[:60].all()


def test_fine_times_keep_the_quantile_cut():
    ts = np.random.default_rng(0).uniform(0, 1e6, 1001)
    train, cut = time_split_mask(ts, 0.8)
    assert cut == float(np.quantile(ts, 0.8)) and train.tolist() == (ts < cut).tolist()


def test_an_edge_list_in_years_splits_by_time(tmp_path):
    rng = np.random.default_rng(1)
    years = rng.choice(np.arange(2000, 2010), size=400, p=np.array([5, 5, 4, 4, 3, 3, 2, 2, 1, 1]) / 30)
    lines = [f"{a} {b} {y}" for (a, b), y in zip(rng.integers(0, 60, (400, 2)).tolist(), years.tolist(), strict=True)
             if a != b]
    path = tmp_path / "years.txt"
    path.write_text("\n".join(lines) + "\n")
    split = time_split(path, train_share=0.8)
    assert split.cut is not None and float(split.cut).is_integer()   # a year, not a random holdout
    _, _, since = split.train.ties()
    assert since.max() < split.cut


def _yearly_graph(seed: int = 0):
    """Ties in five 'years' on 400 users, clustered so that later ties close triangles."""
    rng = np.random.default_rng(seed)
    src, dst, ts = [], [], []
    for year, m in zip(range(2000, 2005), (500, 300, 250, 200, 150), strict=True):
        a = rng.integers(0, 400, m)
        b = (a + rng.integers(1, 6, m)) % 400
        src += a.tolist()
        dst += b.tolist()
        ts += [float(year)] * m
    return from_pairs([str(x) for x in src], [str(x) for x in dst], ts)


def test_inner_cuts_in_years_are_distinct_years_whose_labels_come_after_them():
    snap = _yearly_graph()
    _, _, since = snap.ties()
    assert np.unique(np.quantile(since, (0.5, 0.6, 0.7, 0.85))).size < 4   # the quantiles collapse
    cuts = time_cuts(snap, (0.5, 0.6, 0.7, 0.85), 0.15)
    assert cuts is not None
    times = [t for _, t, _, _ in cuts]
    assert times == sorted(set(times)) and all(t in (2001.0, 2002.0, 2003.0, 2004.0) for t in times)
    assert len(times) >= 2
    src, dst, since = snap.ties()
    year_of = {(min(a, b), max(a, b)): s for a, b, s in zip(src.tolist(), dst.tolist(), since.tolist(), strict=True)}
    last = times[-1]
    for past, t, ls, ld in cuts:
        assert past.ties()[2].max() < t                            # the graph at a cut holds nothing from it on
        label_years = {year_of[(min(a, b), max(a, b))] for a, b in zip(ls.tolist(), ld.tolist(), strict=True)}
        assert label_years and min(label_years) >= t
        if t < last:
            assert max(label_years) < last                         # training labels end before validation's cut
    _, t, ls, ld = cuts[-1]
    assert {year_of[(min(a, b), max(a, b))] for a, b in zip(ls.tolist(), ld.tolist(), strict=True)} == {
        y for y in (2001.0, 2002.0, 2003.0, 2004.0) if y >= t}    # validation's labels run to the end


def test_times_that_allow_no_two_cuts_fall_back_to_holdouts_computed_on_the_graph_as_it_stands():
    # one time for every tie: no cut is possible, so random holdouts; before, their rows were
    # computed on the graph as it stood at time 0 (empty), and every proximity column was 0
    base = _yearly_graph()
    src, dst, _ = base.ties()
    ids = base.id_strings
    snap = from_pairs([ids[i] for i in src], [ids[i] for i in dst], [1.6e9] * src.size)
    assert time_cuts(snap, (0.5, 0.6, 0.7, 0.85), 0.15) is None
    train, val = history_examples(snap, HistoryConfig(viewers_per_cut=40, per_source_k=30, holdout_share=0.1))
    for ex in (train, val):
        assert ex.y.any() and ex.x[:, FEATURE_NAMES.index("mutual")].any()


def test_a_constant_time_column_falls_back_quietly_and_varying_times_that_cannot_split_warn(caplog):
    """One value for every tie (SNAP's weight 1 read as a time) is the expected random holdout (info);
    times that vary and still cannot split near the share get a warning."""
    import logging

    with caplog.at_level(logging.INFO, logger="graph.splits"):
        assert time_split_mask(np.ones(100), 0.8)[1] is None
        assert [r.levelno for r in caplog.records] == [logging.INFO]
        caplog.clear()
        assert time_split_mask(np.repeat([1.0, 2.0], 50), 0.8, seed=1)[1] is None
        assert [r.levelno for r in caplog.records][-1] == logging.WARNING
