"""The learned pipeline's sections of bench/RESULTS.md (the table across graphs, each graph's rows, the
backtest), from the JSON files bench/eval_graphs.py and bench/backtest.py wrote (bench/report.py)."""

from __future__ import annotations

from collections.abc import Callable


def pm(v: list[float]) -> str:
    return f"{v[0]:.4f} ± {v[1]:.4f}"


def oracle(graph: dict) -> str:
    """The best possible ranking of the pipeline's pool (evaluation.harness.pool_oracle), if measured."""
    m = graph.get("pool_oracle")
    return f"{m['recall@20'][0]:.4f} / {m['ndcg@20'][0]:.4f}" if m else "–"


def ratio(r: dict) -> str:
    """The pipeline's ratio to the best single row, with its bootstrap interval where measured."""
    ci = r.get("ratio_95ci")
    return f"**{r['ratio']:.4f}**" + (f" ({ci[0]:.3f}-{ci[1]:.3f})" if ci else "")


def single(r: dict) -> str:
    """The best single row of a ratio and its mean."""
    return f"{r['best_single']} {r['best_single_mean']:.4f}"


def _curve(kind: str, c: dict) -> str:
    """A learning curve in words: where validation peaked, and what training did from there."""
    val, train, steps = c["validation"], c["train"], c["steps"]
    b = max(range(len(val)), key=val.__getitem__)
    return (f"{kind} best {c['step']} {steps[b]} of {steps[-1]} (validation {val[0]:.3f} -> {val[b]:.3f} -> "
            f"{val[-1]:.3f}; training {train[0]:.3f} -> {train[b]:.3f} -> {train[-1]:.3f})")


def _pick(sel: dict | None, chosen: str) -> str:
    if not sel:
        return ""
    if "ensemble_weights" in sel:
        mix = ", ".join(f"{k} {w:.2f}" for k, w in sel["ensemble_weights"].items() if w > 0)
        return f"{chosen} (ensemble selection: {mix})"
    if "lead" not in sel:   # reports from before ensemble selection
        return sel["best_on_validation"]
    served = "ensemble" if sel["ensemble"] else sel["best_on_validation"]
    return f"{sel['best_on_validation']} +{sel['lead']:.4f} (se {sel['standard_error']:.4f}) -> {served}"


def eval_lines(load: Callable[[str], dict | None]) -> list[str]:
    """The sections' lines, as bench/report.py prints them (none where a benchmark has not run)."""
    lines: list[str] = []
    add = lines.append
    if r := load("eval_graphs"):
        add(f"### Learned pipeline vs the best single baseline ({r['date']}, {r['machine']}; mean ± sd over "
            f"{r['seeds']} seeds, up to {r['users']:,} test users, {r['viewers_per_cut']} viewers per inner cut)\n")
        add("| graph | pipeline R@20 | best single R@20 | ratio (95% CI over test users) | pipeline NDCG@20 | "
            "best single NDCG@20 | ratio (95% CI over test users) | "
            "union of sources R@20 | best ranking of the pool R@20 / NDCG@20 | ranker chosen (per seed) | "
            "ranker training s |")
        add("|---|---|---|---|---|---|---|---|---|---|---|")
        for g in r["graphs"]:
            rec, nd = g["recall@20"], g["ndcg@20"]
            add(f"| {g['graph']} | {pm(g['pipeline']['recall@20'])} | {single(rec)} | {ratio(rec)} | "
                f"{pm(g['pipeline']['ndcg@20'])} | {single(nd)} | {ratio(nd)} | "
                f"{pm(g['union_recall@20'])} | {oracle(g)} | "
                f"{', '.join(g['chosen'])} | {', '.join(str(s) for s in g['ranker_train_s'])} |")
        add("")
        for g in r["graphs"]:
            e = load(f"eval_{g['graph']}")
            if e is None:
                continue
            run = e["runs"][0]
            cut = "random 20% holdout (no usable times)" if run["cut"] is None else f"time cut at {run['cut']:.0f}"
            add(f"#### {g['graph']} ({run['train_ties']:,} train ties, {run['test_ties']:,} test ties, {cut}, "
                f"{e['evaluated_users']} users)\n")
            add("| row | Recall@20 | NDCG@20 | Recall@100 | MRR |\n|---|---|---|---|---|")
            rows = sorted(e["summary"].items(), key=lambda kv: -kv[1]["recall@20"][0])
            for name, m in rows:
                add(f"| {name} | " + " | ".join(pm(m[k]) if k in m else "–"
                                                for k in ("recall@20", "ndcg@20", "recall@100", "mrr")) + " |")
            val = run["ranker"].get("validation", {})
            if val:
                best = sorted(val.items(), key=lambda kv: -kv[1]["recall@20"])[:6]
                add("\nInner validation (seed 0), top 6 by Recall@20: " + "; ".join(
                    f"{k} {v['recall@20']:.4f} / {v['ndcg@20']:.4f}" for k, v in best) + ".")
            picks = [_pick(x["ranker"].get("selection"), x["ranker"]["chosen"]) for x in e["runs"]]
            if any(picks):
                add("Choice per seed (the contender best on validation; the ensemble's weights, chosen on validation "
                    "by ensemble selection): " + "; ".join(picks) + ".")
            imp = run["ranker"].get("permutation_importance")
            if imp:
                add(f"Permutation importance of the chosen ranker ({run['ranker']['chosen']}, seed 0: drop in "
                    "validation Recall@20 + NDCG@20 when the feature is shuffled; up to 400 validation viewers), "
                    "top 8: "
                    + ", ".join(f"{k} {v:.4f}" for k, v in list(imp.items())[:8]) + ".")
            curves = run["ranker"].get("learning_curves")
            if curves:
                add("Learning curves (seed 0; Recall@20 + NDCG@20 on a probe of the training examples / on "
                    "validation): " + "; ".join(_curve(k, c) for k, c in curves.items() if c.get("validation"))
                    + f". Plot: `bench/out/eval_{g['graph']}_learning.png`.")
            add(f"Plot: `bench/out/eval_{g['graph']}.png`.\n")
    if r := load("backtest"):
        add(f"### Backtest: the same comparison at other cuts ({r['date']}, {r['machine']}; {r['seeds']} seeds, up "
            f"to {r['users']:,} test users)\n")
        add("| graph | cut (share of ties before it) | test users | R@20 ratio (95% CI) | best single R@20 | "
            "NDCG@20 ratio (95% CI) | best single NDCG@20 | ranker chosen (per seed) |")
        add("|---|---|---|---|---|---|---|---|")
        for g in r["rows"]:
            rec, nd = g["recall@20"], g["ndcg@20"]
            add(f"| {g['graph']} | {g['train_share']:.0%} | {g['evaluated_users']} | {ratio(rec)} | {single(rec)} | "
                f"{ratio(nd)} | {single(nd)} | {', '.join(g['chosen'])} |")
        add("")
    return lines
