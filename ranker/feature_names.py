"""The ranker's feature columns, by name (ranker/features.py computes them, ranker/columns.py fills them)."""

from __future__ import annotations

import numpy as np

SOURCE_NAMES = ("fof", "ppr", "coldstart", "ann", "popular", "trending")
SOURCE_FEATURES = tuple(f"{kind}_{s}" for s in SOURCE_NAMES for kind in ("in", "inv_rank"))
FEATURE_NAMES = (
    "mutual", "log_mutual", "adamic_adar", "resource_allocation", "jaccard", "log_deg_viewer", "log_deg_cand",
    "mutual_links", "car", "mutual_density",
    "same_school", "same_employer", "same_city", "log_distance_km", "distance_missing", "age_gap",
    "same_language", "viewer_sends_7d", "cand_accept_rate", "log_cand_pending", "pair_impressions",
    "emb_sim", "log_ppr", "ppr_rank", "log_ppr_per_degree",
    "viewer_new_ties_w1", "viewer_new_ties_w5", "viewer_new_ties_w20", "cand_new_ties_w1", "cand_new_ties_w5",
    "cand_new_ties_w20", "viewer_since_last_tie", "cand_since_last_tie", "cand_growth_w20", "recent_mutual",
    "cand_recent_pct_in_list", "cand_degree_pct_in_list",
    "viewer_side_strength", "cand_side_strength", "viewer_interactions_w5", "cand_interactions_w5",
    "cand_new_ties_span10", "log_paths3", "paths3_norm", "viewer_age_share", "cand_age_share",
    "cand_recent_partner_deg",
    *SOURCE_FEATURES,
)
# Columns an impression-log example cannot have (which sources proposed the shown user was not
# logged): the send/accept heads see them as zero in training and serving alike.
SOURCE_COLUMNS = np.array([FEATURE_NAMES.index(n) for n in SOURCE_FEATURES])
# the categorical columns compared between viewer and candidate (same_<field>), in GraphAt.codes' order
SAME_FIELDS = ("school", "employer", "city", "language")
# What the columns mean, beyond their names: bump it whenever a column's values change meaning (its
# formula, its window, its order at ties) and regenerate tests/feature_golden.json. A ranker is served only
# over the feature version it was trained on (ranker/serve.py); a manifest without one is version 1.
# 1: until 2026-12-07, a source's equal scores got ranks in index order.
# 2: a source's equal scores share the best rank (graph.snapshot.csr.shared_ranks).
FEATURE_VERSION = 2


def feature_mismatch(manifest: dict) -> str | None:
    """Why a ranker published with `manifest` cannot rank this code's features (None: it can), e.g. "was
    trained on feature version 1, this code computes version 2"."""
    trained = list(manifest.get("features") or [])
    if trained != list(FEATURE_NAMES):
        added = [n for n in FEATURE_NAMES if n not in trained]
        gone = [n for n in trained if n not in FEATURE_NAMES]
        return ("was trained on other features (this code adds " + (", ".join(added) or "none") + "; it lacks "
                + (", ".join(gone) or "none") + ("" if added or gone else "; their order differs") + ")")
    trained_on = manifest.get("feature_version", 1)
    if trained_on != FEATURE_VERSION:
        return f"was trained on feature version {trained_on!r}, this code computes version {FEATURE_VERSION}"
    return None
