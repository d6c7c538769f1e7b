"""`pymk eval` reads a graph, not a file: the same ties written in another row order, on a clock that starts
elsewhere, or as a KONECT dynamic list with removals give the same report, to the last digit."""

from __future__ import annotations

import random

from ranker.connect import ConnectConfig
from ranker.history import HistoryConfig
from tests.test_history_ranker import _anti_popular_history

KWARGS = {"users": 60, "progress": False, "history": HistoryConfig(viewers_per_cut=60, per_source_k=40),
          "connect": ConnectConfig(kinds=("logistic", "lgbm_lambdarank"))}


def _report(path) -> dict:
    from evaluation.harness import evaluate

    report = evaluate(path, seed=2, **KWARGS)
    validation = {k: {m: v for m, v in r.items() if m != "seconds"} for k, r in report["ranker"]["validation"].items()}
    return {"metrics": report["metrics"], "validation": validation, "chosen": report["ranker"]["chosen"]}


def test_row_order_clock_and_removals_leave_the_report_as_it_is(tmp_path):
    rows = list(zip(*_anti_popular_history(n=200, steps=600, seed=4), strict=True))
    plain = tmp_path / "plain.txt"
    plain.write_text("".join(f"{a} {b} {t!r}\n" for a, b, t in rows))
    rng = random.Random(1)
    shuffled = rows[:]
    rng.shuffle(shuffled)
    moved = tmp_path / "moved.txt"   # rows in another order, on a clock 40 years on (its times are 0-600 s)
    moved.write_text("".join(f"{b} {a} {t + 1_262_304_000.0!r}\n" for a, b, t in shuffled))
    lines = ["% asym dynamic"]   # every fifth tie removed right after it forms, every tenth added again then
    for i, (a, b, t) in enumerate(rows):
        lines.append(f"{a} {b} 1 {t!r}")
        if i % 5 == 0:
            lines.append(f"{b} {a} -1 {t + 0.25!r}")
        if i % 10 == 0:
            lines.append(f"{a} {b} +1 {t + 0.5!r}")
    dynamic = tmp_path / "dynamic.txt"
    dynamic.write_text("\n".join(lines) + "\n")

    expected = _report(plain)
    assert expected["metrics"]["pipeline"]["recall@20"] > 0
    assert _report(moved) == expected
    assert _report(dynamic) == expected
