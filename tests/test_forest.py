"""The compiled tree pass (ranker/forest.py) gives LightGBM's own scores bit for bit."""

import lightgbm as lgb
import numpy as np
import pytest

from ranker.forest import Forest, UnsupportedModelError
from ranker.scorers import LightGBMScorer

F = 12


def _data(rng, n, holes=True):
    x = rng.normal(size=(n, F)).astype(np.float32)
    if holes:
        x[rng.random(x.shape) < 0.1] = np.nan
        x[rng.random(x.shape) < 0.15] = 0.0
    return x


def _booster(rng, rounds=60, **params):
    x = _data(rng, 3000)
    y = (np.nan_to_num(x[:, 0]) + 0.5 * np.nan_to_num(x[:, 1]) + 0.3 * rng.normal(size=3000) > 0.8).astype(float)
    params = {"objective": "lambdarank", "num_leaves": 15, "min_data_in_leaf": 10, "verbosity": -1, **params}
    return lgb.train(params, lgb.Dataset(x, y, group=[50] * 60), num_boost_round=rounds)


def _awkward_rows(rng, forest, n=4000):
    """Rows with NaNs, infinities, zeros, -0.0, values within 1e-35 of zero, and values at and beside every
    threshold."""
    x = _data(rng, n).astype(np.float64)
    x[rng.random(x.shape) < 0.05] = -0.0
    x[rng.random(x.shape) < 0.05] = 1e-38
    x[rng.random(x.shape) < 0.03] = -1e-36
    x[rng.random(x.shape) < 0.01] = np.inf
    x[rng.random(x.shape) < 0.01] = -np.inf
    pick = rng.integers(0, forest.feature.size, size=n)
    for shift in (0.0, np.inf, -np.inf):   # exactly at a threshold, and the neighbouring doubles
        rows = rng.integers(0, n, size=n)
        x[rows, forest.feature[pick]] = np.nextafter(forest.threshold[pick], shift)
    return x


@pytest.mark.parametrize("params", [{}, {"zero_as_missing": True}, {"use_missing": False},
                                    {"monotone_constraints": [1, -1] + [0] * (F - 2)},
                                    {"objective": "rank_xendcg"}])
def test_scores_are_lightgbms_bit_for_bit(params):
    rng = np.random.default_rng(len(str(params)))
    booster = _booster(rng, **params)
    forest = Forest.from_booster(booster)
    assert forest.num_trees == booster.num_trees()
    x = _awkward_rows(rng, forest)
    with np.errstate(over="ignore"):   # thresholds beyond float32 become inf there
        narrow = x.astype(np.float32)
    for rows in (x, narrow):
        assert np.array_equal(forest.score(rows), booster.predict(rows, num_threads=1))


def test_early_stopped_model_scores_its_best_iteration():
    rng = np.random.default_rng(3)
    x, y = _data(rng, 2000), (rng.random(2000) < 0.1).astype(float)
    train = lgb.Dataset(x[:1500], y[:1500], group=[50] * 30)
    valid = lgb.Dataset(x[1500:], y[1500:], group=[50] * 10, reference=train)
    booster = lgb.train({"objective": "lambdarank", "verbosity": -1, "metric": "ndcg", "min_data_in_leaf": 5},
                        train, num_boost_round=300, valid_sets=[valid],
                        callbacks=[lgb.early_stopping(10, verbose=False)], keep_training_booster=True)
    assert 0 < booster.best_iteration < booster.num_trees()
    forest = Forest.from_booster(booster)
    assert forest.num_trees == booster.best_iteration
    assert np.array_equal(forest.score(x), booster.predict(x, num_threads=1))


def test_single_leaf_trees_add_their_one_value():
    rng = np.random.default_rng(4)
    booster = _booster(rng, rounds=5, min_data_in_leaf=5000)   # no split is allowed
    forest = Forest.from_booster(booster)
    assert forest.node_start[-1] == 0 and forest.num_trees == booster.num_trees() > 0
    x = _data(rng, 50)
    assert np.array_equal(forest.score(x), booster.predict(x, num_threads=1))


def test_models_it_cannot_read_keep_lightgbms_predictor():
    rng = np.random.default_rng(5)
    binary = _booster(rng, objective="binary")
    with pytest.raises(UnsupportedModelError, match="binary"):
        Forest.from_booster(binary)
    x = _data(rng, 3000)
    y = (x[:, 1] > 0).astype(float)
    x[:, 0] = rng.integers(0, 6, size=3000)
    y[x[:, 0] == 3] = 1.0
    categorical = lgb.train({"objective": "lambdarank", "verbosity": -1, "min_data_in_leaf": 5,
                             "min_data_per_group": 5, "cat_smooth": 1},
                            lgb.Dataset(x, y, group=[50] * 60, categorical_feature=[0]), num_boost_round=10)
    with pytest.raises(UnsupportedModelError, match="categorical"):
        Forest.from_booster(categorical)
    for booster in (binary, categorical):
        scorer = LightGBMScorer(booster)
        assert scorer.forest is None
        assert np.array_equal(scorer(x)["score"], booster.predict(x, num_threads=1))


def test_scorer_uses_the_forest_and_its_row_chunks_agree():
    rng = np.random.default_rng(6)
    booster = _booster(rng)
    x = _data(rng, 25_000)   # above the size scored in chunks on several threads
    one, two = LightGBMScorer(booster), LightGBMScorer(booster, threads=2)
    assert one.forest is not None
    want = booster.predict(x, num_threads=1)
    assert np.array_equal(one(x)["score"], want) and np.array_equal(two(x)["score"], want)


def test_wrong_width_is_refused_with_the_shapes():
    forest = Forest.from_booster(_booster(np.random.default_rng(7), rounds=3))
    with pytest.raises(ValueError, match=r"\(4, 3\).*12 columns"):
        forest.score(np.zeros((4, 3)))
