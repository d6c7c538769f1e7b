"""Untimed graphs: the inner holdouts the ranker learns from (ranker/history.py `holdouts`)."""

from __future__ import annotations

import numpy as np
import pytest

from graph.snapshot import from_pairs
from ranker.feature_names import FEATURE_NAMES
from ranker.history import HistoryConfig, history_examples, holdouts


def _untimed_graph(n: int = 80, m: int = 600, seed: int = 0):
    rng = np.random.default_rng(seed)
    src, dst = rng.integers(0, n, m), rng.integers(0, n, m)
    keep = src != dst
    return from_pairs([str(x) for x in src[keep]], [str(x) for x in dst[keep]])


def _pairs(src: np.ndarray, dst: np.ndarray) -> set[tuple[int, int]]:
    return {(min(a, b), max(a, b)) for a, b in zip(src.tolist(), dst.tolist(), strict=True)}


def test_holdouts_are_disjoint_and_no_training_graph_holds_a_validation_label():
    snap = _untimed_graph()
    every = _pairs(*snap.ties()[:2])
    hidden, earliest = holdouts(snap, 0.1, 4, seed=3)
    labels = [_pairs(h.label_src, h.label_dst) for h in hidden]
    assert all(0.05 * len(every) < len(lab) < 0.15 * len(every) for lab in labels)
    assert sum(len(lab) for lab in labels) == len(set().union(*labels))   # disjoint
    val = labels[-1]
    val_keys = {min(a, b) * snap.num_users + max(a, b) for a, b in val}
    for h, lab in zip(hidden[:-1], labels[:-1], strict=True):
        # a training holdout's graph: every tie but its own labels and the validation labels, which it
        # names as unlabelled (its rows of them are left out)
        assert _pairs(*h.graph.ties()[:2]) == every - lab - val
        assert set(h.unlabelled.tolist()) == val_keys and np.all(np.diff(h.unlabelled) > 0)
    assert _pairs(*hidden[-1].graph.ties()[:2]) == every - val and hidden[-1].unlabelled.size == 0
    assert _pairs(*earliest.ties()[:2]) == every - set().union(*labels)
    again, _ = holdouts(snap, 0.1, 4, seed=3)
    assert [_pairs(h.label_src, h.label_dst) for h in again] == labels
    assert [_pairs(h.label_src, h.label_dst) for h in holdouts(snap, 0.1, 4, seed=4)[0]] != labels
    with pytest.raises(ValueError, match=r"0\.3 x 4"):
        holdouts(snap, 0.3, 4, seed=0)


def test_untimed_history_trains_on_its_holdouts_and_validates_on_the_last():
    snap = _untimed_graph(n=150, m=1500)
    cfg = HistoryConfig(viewers_per_cut=40, per_source_k=30, holdout_share=0.1)
    seen = []

    def embed(graph):   # embeddings may only learn from ties no holdout hides
        seen.append(_pairs(*graph.ties()[:2]))
        return np.random.default_rng(0).normal(size=(graph.num_users, 8)).astype(np.float32)

    train, val = history_examples(snap, cfg, embed=embed)
    assert set(np.unique(train.cut).tolist()) == {0, 1, 2} and set(np.unique(val.cut).tolist()) == {3}
    hidden, _ = holdouts(snap, 0.1, 4, seed=cfg.seed)
    assert seen == [_pairs(*snap.ties()[:2]) - set().union(*(_pairs(h.label_src, h.label_dst) for h in hidden))]
    assert np.any(train.x[:, FEATURE_NAMES.index("emb_sim")] != 0)
    val_labels = _pairs(hidden[-1].label_src, hidden[-1].label_dst)
    pos = val.y > 0
    assert pos.any()
    # a validation positive is a hidden validation tie, and every hidden tie among its rows is a positive
    rows = _pairs(val.viewer, val.cand)
    assert _pairs(val.viewer[pos], val.cand[pos]) == rows & val_labels
    # no training row is a validation tie (hidden from the training graphs, neither positive nor negative)
    assert not _pairs(train.viewer, train.cand) & val_labels
    train_labels = set().union(*(_pairs(h.label_src, h.label_dst) for h in hidden[:-1]))
    assert _pairs(train.viewer[train.y > 0], train.cand[train.y > 0]) == _pairs(train.viewer, train.cand) & train_labels
