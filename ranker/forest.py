"""A LightGBM model's trees as flat arrays, scored by one compiled pass (numba).

LightGBM's own predictor costs 15-30 ns per row and tree on one thread (10 ms for one viewer's 500 rows
and a 400-tree model, bench/ranker.py); this pass is 1.0-2.0x as fast on the trained models measured
(bench/RESULTS.md, "Ranking latency"), the most where the splits are predictable. It walks blocks of
512 rows through one tree after another (a tree's nodes and the block's values stay in cache: walking
row by row over all trees, or over every row at once, was slower), with
LightGBM's own decision rule (tree.h `NumericalDecision`: missing values, default directions, values
within 1e-35 of zero read as zero) and adds the leaves in the same order from 0.0, so its scores are
LightGBM's raw scores bit for bit (tests/test_forest.py checks it on random models, NaNs included).

Models this pass cannot read exactly (categorical splits, linear trees, several trees per iteration,
an objective whose predictions transform the raw score) raise UnsupportedModelError, and the caller keeps
LightGBM's predictor.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from numba import njit

from pymk.errors import PymkError

log = logging.getLogger(__name__)

ZERO = float(np.float32(1e-35))   # LightGBM's kZeroThreshold (a float constant widened to double)
_CATEGORICAL, _DEFAULT_LEFT = 1, 2
_MISSING_ZERO, _MISSING_NAN = 1, 2
RAW_OBJECTIVES = ("lambdarank", "rank_xendcg")   # objectives whose predictions are the raw scores
_BLOCK = 512   # rows walked through every tree before the next block: both stay in cache


class UnsupportedModelError(PymkError, ValueError):
    """A LightGBM model with a part the compiled pass does not read (the message names it)."""


@dataclass(frozen=True)
class Forest:
    """Every tree's nodes and leaves, concatenated; tree t's nodes are node_start[t]:node_start[t+1]
    (none: a single leaf) and its leaves leaf_start[t]:leaf_start[t+1]. A child < 0 is leaf ~child."""

    num_features: int
    node_start: np.ndarray   # int64 (trees + 1)
    leaf_start: np.ndarray   # int64 (trees + 1)
    feature: np.ndarray      # int32 per node
    threshold: np.ndarray    # float64 per node
    default_left: np.ndarray  # bool per node
    missing: np.ndarray      # int8 per node: 0 none, 1 zero, 2 NaN
    left: np.ndarray         # int32 per node
    right: np.ndarray        # int32 per node
    leaf_value: np.ndarray   # float64 per leaf
    has_missing: bool        # some split treats a value as missing (missing != 0 somewhere)

    @property
    def num_trees(self) -> int:
        return self.node_start.size - 1

    @classmethod
    def from_booster(cls, booster: object) -> Forest:
        """The trees LightGBM's predict uses by default (the best iteration when early stopping set one)."""
        return cls.from_model_string(booster.model_to_string())

    @classmethod
    def from_model_string(cls, text: str) -> Forest:
        """Parse LightGBM's text model (the format of model.txt)."""
        header, trees = _sections(text)
        objective = header.get("objective", "").split(" ")[0]
        if objective not in RAW_OBJECTIVES:
            raise UnsupportedModelError(f"objective {header.get('objective')!r} (predictions transform the raw score)")
        if int(header.get("num_tree_per_iteration", "1")) != 1:
            raise UnsupportedModelError(f"num_tree_per_iteration={header['num_tree_per_iteration']} (one only)")
        if "average_output" in header:
            raise UnsupportedModelError("average_output (random forest mode)")
        parts: dict[str, list[np.ndarray]] = {k: [] for k in ("feature", "threshold", "decision", "left", "right",
                                                            "leaf_value")}
        nodes, leaves = [0], [0]
        for i, tree in enumerate(trees):
            if tree.get("is_linear", "0") != "0":
                raise UnsupportedModelError(f"tree {i} is linear")
            if tree.get("num_cat", "0") != "0":
                raise UnsupportedModelError(f"tree {i} has {tree['num_cat']} categorical splits")
            num_leaves = int(tree["num_leaves"])
            parts["leaf_value"].append(_floats(tree["leaf_value"]))
            if num_leaves > 1:
                parts["feature"].append(_ints(tree["split_feature"]))
                parts["threshold"].append(_floats(tree["threshold"]))
                parts["decision"].append(_ints(tree["decision_type"]))
                parts["left"].append(_ints(tree["left_child"]))
                parts["right"].append(_ints(tree["right_child"]))
            nodes.append(nodes[-1] + num_leaves - 1)
            leaves.append(leaves[-1] + num_leaves)
        cat = {k: np.concatenate(v) if v else np.zeros(0) for k, v in parts.items()}
        decision = cat["decision"].astype(np.int64)
        if np.any(decision & _CATEGORICAL):
            raise UnsupportedModelError("a categorical split")
        missing = ((decision >> 2) & 3).astype(np.int8)
        forest = cls(num_features=int(header["max_feature_idx"]) + 1,
                     node_start=np.asarray(nodes, np.int64), leaf_start=np.asarray(leaves, np.int64),
                     feature=cat["feature"].astype(np.int32), threshold=cat["threshold"].astype(np.float64),
                     default_left=(decision & _DEFAULT_LEFT) > 0, missing=missing,
                     left=cat["left"].astype(np.int32), right=cat["right"].astype(np.int32),
                     leaf_value=cat["leaf_value"].astype(np.float64), has_missing=bool(missing.any()))
        if forest.leaf_value.size != forest.leaf_start[-1] or forest.feature.size != forest.node_start[-1]:
            raise UnsupportedModelError("tree arrays do not match their num_leaves")
        return forest

    def score(self, x: np.ndarray) -> np.ndarray:
        """Raw scores (float64) of the rows of x, as LightGBM's `predict` gives them."""
        x = np.ascontiguousarray(x)
        if x.ndim != 2 or x.shape[1] != self.num_features:
            raise ValueError(f"feature matrix of shape {x.shape}; the model reads {self.num_features} columns")
        if x.dtype not in (np.float32, np.float64):
            x = x.astype(np.float64)
        out = np.empty(x.shape[0])
        _score(x, self.node_start, self.leaf_start, self.feature, self.threshold, self.default_left, self.missing,
               self.left, self.right, self.leaf_value, out, self.has_missing)
        return out


def _sections(text: str) -> tuple[dict[str, str], list[dict[str, str]]]:
    header: dict[str, str] = {}
    trees: list[dict[str, str]] = []
    current = header
    for line in text.splitlines():
        if line.startswith("end of trees"):
            break
        if line.startswith("Tree="):
            current = {}
            trees.append(current)
        elif "=" in line:
            key, _, value = line.partition("=")
            current[key] = value
    return header, trees


def _floats(value: str) -> np.ndarray:
    return np.array([float(v) for v in value.split()], dtype=np.float64)   # Python's float(): exact decimal parse


def _ints(value: str) -> np.ndarray:
    return np.array([int(v) for v in value.split()], dtype=np.int64)


@njit(cache=True, nogil=True)
def _score(x, node_start, leaf_start, feature, threshold, default_left, missing, left, right, leaf_value,
           out, has_missing):   # pragma: no cover - compiled
    # has_missing False (no split treats a value as missing, as in every model trained on pymk's columns,
    # which hold no NaN): the compiler moves the test out of the walk, 15% faster
    n, m = x.shape
    value, nan = np.empty((_BLOCK, m)), np.zeros((_BLOCK, m), np.bool_)
    for start in range(0, n, _BLOCK):
        rows = min(_BLOCK, n - start)
        for r in range(rows):   # the values LightGBM's dense rows hold: NaN and |x| <= 1e-35 read as 0
            out[start + r] = 0.0
            for k in range(m):
                v = np.float64(x[start + r, k])
                nan[r, k] = np.isnan(v)
                value[r, k] = 0.0 if nan[r, k] or abs(v) <= ZERO else v
        for t in range(node_start.size - 1):   # tree by tree: a tree's nodes stay in cache over the block
            base, first_leaf = node_start[t], leaf_start[t]
            if node_start[t + 1] == base:
                for r in range(rows):
                    out[start + r] += leaf_value[first_leaf]
                continue
            for r in range(rows):
                node = 0
                while node >= 0:
                    j = base + node
                    k = feature[j]
                    v = value[r, k]
                    if has_missing and missing[j] != 0 and ((missing[j] == _MISSING_ZERO and v == 0.0)
                                                            or (missing[j] == _MISSING_NAN and nan[r, k])):
                        node = left[j] if default_left[j] else right[j]
                    elif v <= threshold[j]:
                        node = left[j]
                    else:
                        node = right[j]
                out[start + r] += leaf_value[first_leaf + ~node]
