"""Log lines for a log pipeline (PYMK_LOG_FORMAT=json): one object a line, with the request's id."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys

import orjson
import pytest

from graph.memory_store import MemoryGraphStore
from graph.records import Friendship
from graph.snapshot import from_store, save_snapshot
from pymk import logs
from pymk.artifacts import ArtifactStore
from pymk.errors import GraphStoreUnavailableError
from pymk.settings import Settings


def _record(msg: str, *args, exc_info=None) -> logging.LogRecord:
    return logging.LogRecord("pymk.x", logging.WARNING, __file__, 1, msg, args, exc_info)


def test_a_record_is_one_json_line_with_its_time_level_logger_and_message():
    record = _record("ranked %d users in %s", 5, "1.5 s")
    record.created, record.msecs = 1_700_000_000.25, 250.0
    line = logs.JsonFormatter().format(record)
    assert "\n" not in line
    assert orjson.loads(line) == {"ts": "2023-11-14T22:13:20.250Z", "level": "WARNING", "logger": "pymk.x",
                                  "message": "ranked 5 users in 1.5 s"}


def test_a_traceback_is_one_field_and_the_request_id_is_there_inside_a_request():
    try:
        raise ValueError("bad 'x'")
    except ValueError:
        record = _record("failed", exc_info=sys.exc_info())
    token = logs.REQUEST_ID.set("r-1")
    try:
        out = orjson.loads(logs.JsonFormatter().format(record))
    finally:
        logs.REQUEST_ID.reset(token)
    assert out["request_id"] == "r-1" and out["message"] == "failed"
    assert out["exc"].startswith("Traceback") and "ValueError: bad 'x'" in out["exc"]
    assert "request_id" not in orjson.loads(logs.JsonFormatter().format(_record("after")))


def test_an_api_requests_log_lines_carry_the_id_its_response_gives(tmp_path, monkeypatch):
    from api import create_app

    store = MemoryGraphStore()
    store.add_friendships([Friendship("a", "b"), Friendship("b", "c")])
    settings = Settings.from_env({"PYMK_DATA_DIR": str(tmp_path)})
    save_snapshot(from_store(store), ArtifactStore(settings.snapshot_dir), source="test")
    client = create_app(settings, store=store).test_client()

    def down(*_a):
        raise GraphStoreUnavailableError("bolt://x", OSError("refused"))

    monkeypatch.setattr(store, "viewer_rules", down)
    out = io.StringIO()
    handler = logging.StreamHandler(out)   # formats as the record is logged, as the CLI's handler does
    handler.setFormatter(logs.JsonFormatter())
    logging.getLogger("api").addHandler(handler)
    try:
        resp = client.get("/v1/users/a/suggestions", headers={"X-Request-ID": "abc-123"})
    finally:
        logging.getLogger("api").removeHandler(handler)
    assert resp.status_code == 503 and resp.headers["X-Request-ID"] == "abc-123"
    lines = [orjson.loads(line) for line in out.getvalue().splitlines()]
    assert lines and all(line["request_id"] == "abc-123" for line in lines)
    assert logs.REQUEST_ID.get() is None   # reset when the request ended


def _pymk(*args: str, **env: str) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if not k.startswith("PYMK_")} | env
    return subprocess.run([sys.executable, "-m", "pymk", *args], capture_output=True, text=True, env=full,
                          timeout=120)


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_the_cli_logs_in_the_format_asked_for_its_settings_warnings_included(tmp_path, fmt):
    run = _pymk("status", PYMK_LOG_FORMAT=fmt, PYMK_DATA_DIR=str(tmp_path), PYMK_TYPO="1")
    lines = [line for line in run.stderr.splitlines() if "PYMK_TYPO" in line]
    assert len(lines) == 1, run.stderr
    if fmt == "json":
        out = orjson.loads(lines[0])
        assert out["level"] == "WARNING" and out["logger"] == "pymk.settings" and "ignoring PYMK_TYPO" in out["message"]
    else:
        assert " WARNING pymk.settings: ignoring PYMK_TYPO" in lines[0]


def test_an_unknown_log_format_is_a_clear_error(tmp_path):
    run = _pymk("status", PYMK_LOG_FORMAT="xml", PYMK_DATA_DIR=str(tmp_path))
    assert run.returncode == 1 and "PYMK_LOG_FORMAT must be one of text, json (got 'xml')" in run.stderr
    assert "Traceback" not in run.stderr
