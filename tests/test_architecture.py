"""Dependencies point one way (README, Architecture), checked on every import statement of the code,
including the ones inside functions; API workers do not load PyTorch Geometric."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# layer of each package (pymk's base modules are below everything; its CLI and assembly on top)
BASE = {"pymk.errors", "pymk.envvars", "pymk.settings", "pymk.artifacts", "pymk.metrics", "pymk.group_topk",
        "pymk.progress"}
LAYER = {"base": 0, "graph": 1, "candidates": 2, "gnn": 3, "ranker": 4, "sim": 5, "evaluation": 5,
         "top": 6, "api": 7}
# what each layer may import besides its own package and lower layers' packages
# gnn sits just above candidates: its refresh job builds the FAISS index the ANN source serves
ALLOWED = {"candidates": {"base", "graph"}, "gnn": {"base", "graph", "candidates"}, "graph": {"base"}, "base": set(),
           "ranker": {"base", "graph", "candidates", "gnn"},
           "sim": {"base", "graph", "candidates", "ranker"},
           "evaluation": {"base", "graph", "candidates", "gnn", "ranker"},
           "api": {"base", "graph", "candidates", "ranker", "top"},
           "top": {"base", "graph", "candidates", "gnn", "ranker", "sim", "evaluation", "api"}}


def _unit(module: str) -> str | None:
    top = module.split(".")[0]
    if top == "pymk":
        return "base" if any(module == b or module.startswith(b + ".") for b in BASE) else "top"
    return top if top in LAYER else None


def _imports(path: Path) -> list[str]:
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append(node.module)
    return out


def test_dependencies_point_one_way():
    wrong = []
    for path in ROOT.glob("*/**/*.py"):
        rel = path.relative_to(ROOT)
        module = ".".join(rel.with_suffix("").parts).removesuffix(".__init__")
        unit = _unit(module)
        if unit is None or "neo4j_launcher" in rel.parts:
            continue
        for imported in _imports(path):
            other = _unit(imported)
            if other is None or other == unit:
                continue
            if other not in ALLOWED[unit]:
                wrong.append(f"{rel}: {unit} imports {imported} ({other})")
    assert not wrong, "\n".join(wrong)


def test_the_check_finds_a_wrong_way_import(tmp_path, monkeypatch):
    bad = ROOT / "graph" / "_probe_wrong_way.py"
    bad.write_text("from ranker.features import FEATURE_NAMES\n")
    try:
        try:
            test_dependencies_point_one_way()
        except AssertionError as exc:
            assert "graph/_probe_wrong_way.py: graph imports ranker.features (ranker)" in str(exc)
        else:
            raise AssertionError("a graph module importing the ranker went unnoticed")
    finally:
        bad.unlink()


def test_api_workers_do_not_load_torch_geometric_nor_arrow():
    """Each is memory in every worker process for code only batch jobs run (training, the snapshot export)."""
    code = ("import sys, api, ranker.serve, pymk.assemble; from api import create_app; "
            "print('torch_geometric' in sys.modules, 'triton' in sys.modules, 'pyarrow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False", "False"]
