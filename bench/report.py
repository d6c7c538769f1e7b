"""Render the tables of bench/RESULTS.md from the JSON files the benchmarks wrote in bench/out.

    python bench/report.py > bench/RESULTS.tables.md
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"
sys.path.insert(0, str(OUT.parent.parent))

from bench.report_eval import eval_lines  # noqa: E402


def load(name: str) -> dict | None:
    path = OUT / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def ms(p: dict) -> str:
    return f"{p['p50_ms']:.2f} / {p['p99_ms']:.2f}"


def main() -> None:
    lines: list[str] = []
    add = lines.append
    if r := load("ingest"):
        add(f"### Ingestion and snapshots ({r['date']}, {r['machine']})\n")
        add(f"Generated graph: {r['users']:,} users, {r['edges_rows']:,} edge rows -> {r['friendships']:,} "
            f"friendships; batches of {r['batch_size']:,}; {r['server']}.\n")
        add("| figure | value |\n|---|---|")
        for key, label in (("users_rows_per_s", "users CSV ingested, rows/s"),
                           ("edges_rows_per_s", "edges ingested (first load), rows/s"),
                           ("edges_ingest_s", "edges, total seconds"),
                           ("rerun_rows_per_s", "same file again (idempotent re-run), rows/s"),
                           ("rerun_counts_unchanged", "re-run left node/relationship counts unchanged"),
                           ("baseline_one_tx_per_edge_rows_per_s", "baseline: one transaction per edge, rows/s"),
                           ("speedup_vs_one_tx_per_edge", "batched vs one-tx-per-edge, ratio"),
                           ("ingest_peak_rss_mb", "ingesting process peak RSS, MB"),
                           ("initial_load_rows_per_s", "initial load into an empty database (offline importer), "
                                                       "rows/s, files to a started server with its schema"),
                           ("initial_load_s", "initial load, total seconds"),
                           ("initial_load_importer_s", "of which neo4j-admin import, s"),
                           ("initial_load_counts_match_merge", "initial load gives the same counts as MERGE ingestion"),
                           ("initial_load_vs_merge_ratio", "initial load vs MERGE ingestion, ratio"),
                           ("snapshot_export_s", "snapshot export from Neo4j, s"),
                           ("snapshot_save_s", "snapshot write, s"), ("snapshot_load_s", "snapshot load, s"),
                           ("snapshot_from_edge_list_s", "snapshot straight from the edge list file, s"),
                           ("baseline_networkx_read_edgelist_s", "baseline: networkx.read_edgelist, s"),
                           ("load_speedup_vs_networkx", "snapshot load vs networkx read, ratio")):
            add(f"| {label} | {r[key]:,} |" if not isinstance(r[key], bool) else f"| {label} | {r[key]} |")
        add("")
    sims = [x for x in (load("sim"), load("sim_50m")) if x]
    if sims:
        add(f"### Simulator world generation ({sims[0]['date']}, {sims[0]['machine']})\n")
        add("| users | friendships | seconds | peak RSS MB | mean degree | max degree | cold-start share |")
        add("|---|---|---|---|---|---|---|")
        for s in sims:
            for run in s["runs"]:
                add(f"| {run['users']:,} | {run['friendships']:,} | {run['seconds']} | {run['peak_rss_mb']:,} | "
                    f"{run['mean_degree']} | {run['max_degree']:,} | {run['cold_start_share']} |")
        base = sims[0].get("baseline_networkx_powerlaw_cluster_graph")
        if base:
            add(f"\nBaseline in the same run: `networkx.powerlaw_cluster_graph` (Holme-Kim) at "
                f"{sims[0]['runs'][0]['users']:,} users with {base['edges']:,} edges took {base['seconds']} s, "
                f"{sims[0]['speedup_vs_networkx_at_smallest']}x slower.\n")
    for name in ("candidates", "candidates_68"):
        if r := load(name):
            g = r["graph"]
            add(f"### Candidate sources ({r['date']}, {r['machine']})\n")
            add(f"Simulator world: {g['users']:,} users, {g['directed_edges']:,} directed CSR entries. "
                "Latency per viewer, top 100, p50 / p99 ms:\n")
            add("| source | p50 / p99 ms |\n|---|---|")
            add(f"| friends-of-friends | {ms(r['fof_top100'])} |\n| personalized PageRank (push, eps 1e-4) | "
                f"{ms(r['ppr_top100'])} |")
            rg = r["ratio_graph"]
            add(f"\nAgainst networkx on a {rg['users']:,}-user world ({rg['directed_edges']:,} directed entries): "
                f"our FoF {ms(r['fof_top100_100k'])} ms vs `networkx.adamic_adar_index` over the same two-hop pairs "
                f"{ms(r['baseline_networkx_adamic_adar_100k'])} ms: {r['fof_speedup_vs_networkx_p50']}x at p50.\n")
    if r := load("ppr_push"):
        g = r["graph"]
        add(f"### Personalized PageRank push per viewer ({r['date']}, {r['machine']})\n")
        add(f"Simulator world: {g['users']:,} users, {g['directed_edges']:,} directed CSR entries, eps {r['eps']}.\n")
        add("| implementation | one viewer p50 / p99 ms | block, viewers/s |\n|---|---|---|")
        add(f"| compiled push (numba, candidates/push.py) | {ms(r['compiled_one_viewer'])} | "
            f"{r['compiled_block_viewers_per_s']:,} |")
        add(f"| baseline: vectorized numpy rounds (the previous code) | {ms(r['baseline_numpy_rounds_one_viewer'])} | "
            f"{r['baseline_numpy_rounds_block_viewers_per_s']:,} |")
        add(f"| baseline: `networkx.pagerank` personalized (power iteration over the whole graph) | "
            f"{ms(r['baseline_networkx_pagerank_one_viewer'])} | – |")
        add(f"\nSame estimates bit for bit: {r['bit_identical']}. One viewer: {r['speedup_one_viewer_p50']}x the numpy "
            f"rounds at p50, {r['speedup_vs_networkx_p50']:,}x networkx (which solves the whole graph to a "
            f"tolerance, not a local push).\n")
    lines += eval_lines(load)
    for name in ("gnn", "gnn_1m"):
        if r := load(name):
            add(f"### GraphSAGE and FAISS ({r['date']}, {r['machine']})\n")
            add("| users | friendships | mode | s/epoch | embed all users, s | HNSW build s | exact query p50/p99 ms | "
                "HNSW query p50/p99 ms | HNSW recall@10 vs exact | peak RSS MB |")
            add("|---|---|---|---|---|---|---|---|---|---|")
            for run in r["runs"]:
                fz = run["faiss"]
                add(f"| {run['users']:,} | {run['friendships']:,} | {run['mode']} | {run['seconds_per_epoch']} | "
                    f"{run['inference_all_users_s']} | {fz['hnsw_build_s']} | {ms(fz['exact_query'])} | "
                    f"{ms(fz['hnsw_query'])} | {fz['hnsw_recall@10_vs_exact']} | {run['peak_rss_mb']:,} |")
            add("")
    if r := load("gnn_quality"):
        add(f"### Link prediction on held-out ties ({r['date']}, {r['seeds']} seeds, up to {r['epochs']} epochs "
            f"with early stopping on validation Hits@50; mean ± sd over seeds)\n")
        add("| dataset | variant | test AUC | test Hits@50 |\n|---|---|---|---|")
        for ds, variants in r["datasets"].items():
            for v, m in variants.items():
                add(f"| {ds} | {v} | {m['auc_mean']} ± {m['auc_sd']} | {m['hits@50_mean']} ± {m['hits@50_sd']} |")
        add("")
    if r := load("ranker_quality"):
        add(f"### Ranker on the simulator's logs ({r['date']}, {r['train_rows']:,} training impressions after "
            f"downsampling, {r['test_rows']:,} test impressions)\n")
        add("| model | send AUC | send PR-AUC | send NE | send ECE | accept AUC | accept PR-AUC | accept NE | "
            "accept ECE | NDCG@10 connections | NDCG@10 send-only |")
        add("|---|---|---|---|---|---|---|---|---|---|---|")
        for name, res in r["results"].items():
            if "send_head" not in res:
                add(f"| {name} | | | | | | | | | {res['ndcg@10_connections']} | |")
                continue
            s, a = res["send_head"], res["accept_head"]
            add(f"| {name} | {s['auc']} | {s['pr_auc']} | {s['normalized_entropy']} | {s['calibration']['ece']} | "
                f"{a['auc']} | {a['pr_auc']} | {a['normalized_entropy']} | {a['calibration']['ece']} | "
                f"{res['ndcg@10_connections']} | {res['ndcg@10_connections_send_only']} |")
        add("\nCalibration (Platt scaling per head on the validation period; the table above is calibrated) and the "
            "accept exponent chosen there:\n")
        add("| model | send NE raw -> calibrated | send ECE raw -> calibrated | accept NE raw -> calibrated | "
            "accept ECE raw -> calibrated | accept exponent |\n|---|---|---|---|---|---|")
        for name, res in r["results"].items():
            if "send_head_uncalibrated" not in res:
                continue
            s, a = res["send_head"], res["accept_head"]
            rs, ra = res["send_head_uncalibrated"], res["accept_head_uncalibrated"]
            add(f"| {name} | {rs['normalized_entropy']} -> {s['normalized_entropy']} | "
                f"{rs['calibration']['ece']} -> {s['calibration']['ece']} | "
                f"{ra['normalized_entropy']} -> {a['normalized_entropy']} | "
                f"{ra['calibration']['ece']} -> {a['calibration']['ece']} | {res['calibration']['accept_weight']} |")
        add("")
    for name in ("closed_loop", "closed_loop_16000"):
        if not (r := load(name)):
            continue
        add(f"### Closed-loop A/B in the simulator ({r['date']}, {r['users']:,} users, {r['days']} days, 95% bootstrap "
            f"intervals over viewers; ranked arm: calibrated P(send) * P(accept)^{r.get('accept_weight', 1.0)})\n")
        add("| arm | viewers | impressions | send rate | accept rate | connections / 1000 impressions | decline rate | "
            "requests to top 1% |")
        add("|---|---|---|---|---|---|---|---|")
        for a in r["arms"]:
            e, ci = a["estimates"], a["intervals"]["connections_per_1000"]
            add(f"| {a['name']} | {a['viewers']} | {a['impressions']:,} | {e['send_rate']:.3f} | "
                f"{e['accept_rate']:.3f} | {e['connections_per_1000']:.1f} [{ci[0]:.1f}, {ci[1]:.1f}] | "
                f"{e['decline_rate']:.3f} | "
                f"{e['top1pct_request_share']:.3f} |")
        for pair, (d, lo, hi) in r.get("connections_per_1000_differences", {}).items():
            add(f"\nDifference {pair}: {d:+.1f} connections / 1000 impressions [{lo:+.1f}, {hi:+.1f}].")
        add("")
    if r := load("ranker"):
        add(f"### Ranking latency ({r['date']}, {r['machine']})\n")
        # the ensemble's rows by LightGBM's rounds (bench/ranker.py names them rank_total_ensemble_<n>_rounds...)
        ensembles = "; ".join(f"with the ensemble (connect head + logistic + LightGBM at {k.split('_')[3]} rounds"
                              f"{', the cap' if k.endswith('_the_cap') else ''}) {ms(v)}" for k, v in r.items()
                              if k.startswith("rank_total_ensemble_"))
        add(f"{r['candidates_per_viewer']} candidates, {r['users']:,}-user world, p50 / p99 ms: features + the "
            f"multi-task model's heads + sort {ms(r['rank_total'])}; with a 400-round LightGBM LambdaRank model "
            f"{ms(r['rank_total_lightgbm_400_rounds'])}; {ensembles}; features alone {ms(r['features_only'])}. "
            f"Baseline: networkx "
            f"common-neighbours sort {ms(r['baseline_networkx_mutual_sort'])} (ratio {r['speedup_vs_networkx_p50']}x "
            f"at p50: ours computes {r.get('features', 'its')} features and scores them, the baseline one count).\n")
    for r in filter(None, (load("api"), load("api_active"))):
        listed = ("every user with a friend" if r.get("precomputed_for") == "all"
                  else "the users active in the logged day")
        add(f"### API under load ({r['date']}, {r['users']:,} users, {r['friendships']:,} friendships, "
            f"{r.get('workers', 1)} worker processes x {r.get('threads', 8)} threads, lists precomputed for "
            f"{listed}: {r.get('active_users', 0):,} users, in {r.get('precompute_s', '?')} s)\n")
        for key, label in (("runs", "users with a precomputed list"), ("runs_inactive", "users without a list"),
                           ("runs_all", "all users (the mixed traffic)")):
            if not r.get(key):
                continue
            cpu = any("cpu_ms_per_request" in run for run in r[key])
            add(f"{label}; medians over trials, "
                + ("p99 of every trial and CPU per request over all trials (server processes / Neo4j / load "
                   "generator) in the last two columns" if cpu else "p99 of every trial in the last column")
                + ":\n")
            add("| target req/s | achieved | requests | errors | p50 ms | p99 ms | p99 per trial |"
                + (" CPU ms/request |" if cpu else ""))
            add("|---|---|---|---|---|---|---|" + ("---|" if cpu else ""))
            for run in r.get(key, []):
                c = run.get("cpu_ms_per_request", {})
                add(f"| {run['target_rps']:.0f} | {run['achieved_rps']} | {run['requests']} | {run['errors']} | "
                    f"{run['p50_ms']:.1f} | {run['p99_ms']:.1f} | "
                    f"{', '.join(f'{x:.0f}' for x in run.get('trials_p99_ms', [run['p99_ms']]))} |"
                    + (f" {c.get('server', '-')} / {c.get('neo4j', '-')} / {c.get('generator', '-')} |" if cpu else ""))
            add("")
    if r := load("refresh"):
        add(f"### The nightly refresh at scale ({r['date']}, {r['machine']}; simulator worlds, mean degree "
            f"{r['mean_degree']:.0f}; each stage in its own process)\n")
        add("| users | directed edges | snapshot s | embeddings s (epochs) | ranker s | precompute users/s "
            "| precompute s (all users with a friend) | refresh s | peak RSS MB (emb / ranker / precompute) |")
        add("|---|---|---|---|---|---|---|---|---|")
        for run in r["runs"]:
            sn, em, rk, pc = run["snapshot"], run["embeddings"], run["ranker"], run["precompute"]
            sampled = "" if pc["users"] >= sn["users"] * 0.9 else f" ({pc['users']:,}-user sample, extrapolated)"
            add(f"| {sn['users']:,} | {sn['directed_edges']:,} | {sn['snapshot_s']} | {em['seconds']} "
                f"({em['epochs']}) | {rk['seconds']} | {pc['users_per_s']} | {run['precompute_all_users_s']}"
                f"{sampled} | {run['refresh_s']} | {em['peak_rss_mb']} / {rk['peak_rss_mb']} / "
                f"{pc['peak_rss_mb']} |")
        add("")
        spark = load("refresh_spark")
        if spark and (first := spark["runs"][0]).get("spark"):
            small, large = first["spark"]
            add(f"Spark (`--engine spark`, local[{first['spark_inprocess']['workers']}], same machine, "
                f"{first['snapshot']['users']:,}-user world): {small['users']:,} users in {small['seconds']} s, "
                f"{large['users']:,} in {large['seconds']} s (in-process block engine: {large['users']:,} in "
                f"{first['spark_inprocess']['seconds']} s, {first['spark_inprocess']['users_per_s']} users/s). "
                f"Fitted: {first['spark_fixed_s']} s fixed (session, Parquet export, loading the artifacts in "
                f"each Python worker, the final sort) + {first['spark_users_per_core_s']} users/s per executor "
                f"core (ranking tasks alone: {large.get('ranking_task_users_per_core_s')} users/s per core); "
                f"executor cores to rank all {first['snapshot']['users']:,} users sooner than this machine "
                f"in-process: {first['spark_cores_to_overtake_this_machine']}.\n")
    if r := load("events_export"):
        add(f"### The snapshot's read of the event log ({r['date']}, {r['machine']}; `bench/events_export.py`)\n")
        add(f"{r['days']} daily segments, {r['events']:,} events ({r['log_mb']} MB) among {r['users']:,} users.\n")
        add("| arm | events kept | seconds | peak RSS MB | vs baseline |\n|---|---|---|---|---|")
        base = r["baseline_all"]["seconds"]
        for key, label in (("baseline_all", "baseline: every event, one at a time"),
                           ("columnar_all", "columnar: every event"),
                           ("window_no_cache", f"columnar, last {r['window_days']:g} days, no segment cache"),
                           ("window_cached", f"columnar, last {r['window_days']:g} days, cached segment ranges")):
            a = r[key]
            add(f"| {label} | {a['events_kept']:,} | {a['seconds']} | {a['peak_rss_mb']:,} | "
                f"{base / a['seconds']:.1f}x |")
        add("")
    if r := load("shown_memory"):
        add(f"### The impression log in the API's workers ({r['date']}, {r['machine']}; `bench/shown_memory.py`)\n")
        add(f"{r['users']:,} users, {r['impressions']:,} impressions.\n")
        add("| arm | anonymous memory MB | bytes an impression | seconds |\n|---|---|---|---|")
        for key, label in (("shared", "saved with the snapshot, memory-mapped"),
                           ("baseline_per_worker", "baseline: sorted in each worker")):
            add(f"| {label} | {r[key]['private_mb']} | {r['private_bytes_per_impression'][key]} | "
                f"{r[key]['seconds']} |")
        add("")
    if r := load("edge_read"):
        add(f"### Reading an edge list: blocks of lines against one line at a time ({r['date']}, {r['machine']}; "
            f"`bench/edge_read.py`)\n")
        add(f"Generated files of {r['rows']:,} rows over {r['users']:,} users; best of {r['trials']} alternating "
            "trials, both readers in one process, the same rows checked.\n")
        add("| layout | reader | one line at a time s | blocks s | speedup |\n|---|---|---|---|---|")
        for layout, got in r["layouts"].items():
            names = ("read_edge_blocks", "read_edges", "eval read_ties", "snapshot from_edge_list",
                     "initial-load edges")
            for i, name in enumerate(n for n in names if n in got["speedup_vs_lines"]):
                slow = got["lines"]["read_edges" if name == "read_edge_blocks" else name]["seconds"]
                add(f"| {layout if i == 0 else ''} | {name} | {slow} | {got['blocks'][name]['seconds']} | "
                    f"{got['speedup_vs_lines'][name]}x |")
        add("")
    if r := load("edge_split"):
        add(f"### The evaluation's split and the snapshot of an edge list, ids as codes ({r['date']}, {r['machine']}; "
            f"`bench/edge_split.py`)\n")
        add(f"Generated files of {r['rows']:,} rows over {r['users']:,} users; each task in its own process, the trees "
            f"alternating, best of {r['trials']}; both trees' results identical (digest). This: {r['trees']['this']}; "
            f"baseline: {r['trees']['baseline']}. Memory: peak RSS above the process's once its modules are "
            "imported.\n")
        add("| file | task | baseline s | this s | speedup | baseline peak MB | this peak MB |\n"
            "|---|---|---|---|---|---|---|")
        for name, tasks in r["files"].items():
            for i, (task, f) in enumerate(tasks.items()):
                label = {"split": "time_split (pymk eval)", "snapshot": "from_edge_list (snapshot from-edges)"}[task]
                add(f"| {name if i == 0 else ''} | {label} | {f['baseline_s']} | {f['this_s']} | {f['speedup']}x | "
                    f"{f['baseline_peak_mb']:,} | {f['this_peak_mb']:,} |")
        add("")
    if r := load("stall"):
        normal, stall, after = r["phases_s"]
        add(f"### Serving through a Neo4j stall, with the circuit breaker and without it ({r['date']}, "
            f"{r['machine']}; `bench/stall.py`)\n")
        add(f"{r['users']:,}-user world, {r['workers']} workers x {r['threads']} threads, {r['rate_rps']:g} req/s "
            f"open loop; silence limit {r['silence_limit_s']:g} s, connect timeout {r['connect_timeout_s']:g} s.\n")
        add("| phase | arm | requests | answered within 1 s | 200 | 503 | p50 ms | p99 ms |\n"
            "|---|---|---|---|---|---|---|---|")
        for phase, secs in (("normal", normal), ("stall", stall), ("after", after)):
            for i, arm in enumerate(r["arms"]):
                p = arm[phase]
                name = f"breaker ({arm['breaker_cooldown_s']:g} s)" if arm["breaker_cooldown_s"] else "no breaker"
                add(f"| {f'{phase} ({secs:g} s)' if i == 0 else ''} | {name} | {p['requests']} | "
                    f"{p['answered_within_1s']} | {p['served_200']} | {p['status_503']} | {p['p50_ms']:,} | "
                    f"{p['p99_ms']:,} |")
        add("")
    if r := load("gnn_tuning"):
        add(f"### GraphSAGE aggregators vs the shallow pure-id model under training configs ({r['date']}, "
            f"ego-Facebook, ids only, held-out ties, mean over {r['seeds']} seeds)\n")
        add("| config | GCN aggregator AUC | GCN aggregator Hits@50 | mean aggregator AUC | mean aggregator Hits@50 "
            "| shallow AUC | shallow Hits@50 |\n|---|---|---|---|---|---|---|")
        for row in r["rows"]:
            g, m, sh = row["graphsage_gcn"], row["graphsage_mean"], row["shallow_pure_id"]
            add(f"| {row['config']} | {g['auc']} | {g['hits@50']} | {m['auc']} | {m['hits@50']} | {sh['auc']} | "
                f"{sh['hits@50']} |")
        add("")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
