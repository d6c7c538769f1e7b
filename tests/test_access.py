"""An access request: one account's stored data as one JSON document, from the store and the logs."""

from __future__ import annotations

import json
import time

import pytest
from click.testing import CliRunner

from graph.eventlog import EventLog
from graph.memory_store import MemoryGraphStore
from graph.records import Event, Friendship, UserRecord
from pymk.access import export_account, records_of
from pymk.cli import main
from pymk.errors import UnknownUserError
from pymk.settings import Settings


def _logs(settings: Settings, a: str, b: str) -> None:
    EventLog(settings.event_log_dir).write_segment("file-1", [
        Event("impression", a, b, 1.0, position=0), Event("send", b, a, 2.0), Event("dismiss", a, b, 3.0)])
    EventLog(settings.served_log_dir).append_records([
        {"ts": 4.0, "viewer": a, "candidates": [{"user_id": b, "position": 0, "features": [0.5], "features_at": 3.0}]},
        {"ts": 5.0, "viewer": b, "candidates": [{"user_id": a, "position": 0}]}])


@pytest.mark.parametrize("user_id", ["u1", "ü \"quoted\" 1"])
def test_the_export_holds_the_accounts_own_records_and_no_one_elses(tmp_path, user_id):
    settings = Settings.from_env({"PYMK_DATA_DIR": str(tmp_path)})
    store = MemoryGraphStore()
    store.upsert_users([UserRecord(id=user_id, city="Oslo"), UserRecord(id="u2")])
    store.add_friendships([Friendship(user_id, "u2", 9.0)])
    _logs(settings, user_id, "u2")
    doc = export_account(settings, user_id, store)
    assert doc["profile"] == {"id": user_id, "city": "Oslo", "written_at": store.user_written[user_id]}
    assert doc["friends"] == [{"id": "u2", "since": 9.0}]
    # its impression and dismissal, not u2's request to it; the list served to it, not u2's list
    assert [(e["type"], e["ts"]) for e in doc["events"]] == [("impression", 1.0), ("dismiss", 3.0)]
    assert [s["ts"] for s in doc["suggestions_served"]] == [4.0]
    # what it was shown, not the shown user's ranking features (another person's degree, activity...)
    assert doc["suggestions_served"][0]["candidates"] == [{"user_id": "u2", "position": 0}]
    assert doc["derived_artifacts"] == {"snapshot": None, "embeddings": None, "ranker": None,
                                        "precomputed_lists": None}
    json.dumps(doc)   # a JSON document as it is
    with pytest.raises(UnknownUserError, match="'u3'"):
        export_account(settings, "u3", store)


def test_the_export_of_an_id_taken_again_leaves_out_the_former_accounts_records(tmp_path):
    settings = Settings.from_env({"PYMK_DATA_DIR": str(tmp_path)})
    store = MemoryGraphStore()
    store.upsert_users([UserRecord(id="u1"), UserRecord(id="u2")])
    _logs(settings, "u1", "u2")   # the former u1's, at 1-4 (s since 1970)
    store.delete_users(["u1"])
    store.upsert_users([UserRecord(id="u1")])   # someone else, before the nightly erasure ran
    now = time.time()
    EventLog(settings.event_log_dir).write_segment("file-2", [Event("impression", "u1", "u2", now, position=0)])
    doc = export_account(settings, "u1", store)
    assert [(e["type"], e["ts"]) for e in doc["events"]] == [("impression", now)]
    assert doc["suggestions_served"] == []


def test_records_of_skips_unreadable_lines_and_ids_inside_other_fields(tmp_path):
    log = EventLog(tmp_path / "log")
    log.root.mkdir()
    (log.root / "file-x.jsonl").write_text('{"src": "u1"\nnot json\n["u1"]\n{"src": "u10", "note": "u1"}\n'
                                           '{"src": "u1", "dst": 2}\n')
    assert list(records_of(log, "u1", "src")) == [{"src": "u1", "dst": 2}]


@pytest.mark.integration
def test_users_export_reads_the_real_store_and_refuses_an_unknown_id(neo4j_store, prefix, tmp_path):
    a, b, c = f"{prefix}a", f"{prefix}b", f"{prefix}c"
    neo4j_store.upsert_users([UserRecord(id=a, language="fi"), UserRecord(id=b), UserRecord(id=c)])
    neo4j_store.apply_events([Event("send", a, c, 7.0), Event("block", b, a, 8.0)])
    env = {"PYMK_DATA_DIR": str(tmp_path)}
    _logs(Settings.from_env(env), a, b)
    out = tmp_path / "export.json"
    result = CliRunner().invoke(main, ["users", "export", a, "--out", str(out)], env=env)
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    assert doc["profile"]["language"] == "fi" and doc["blocks"] == []     # b's block of a is b's
    assert doc["requests_sent"] == [{"src": a, "dst": c, "sent_at": 7.0, "status": "pending", "responded_at": None}]
    assert len(doc["events"]) == 2 and len(doc["suggestions_served"]) == 1
    result = CliRunner().invoke(main, ["users", "export", a, "--out", str(tmp_path / "no-such-dir" / "x.json")],
                                env=env)
    assert result.exit_code != 0 and "cannot write" in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(main, ["users", "export", f"{prefix}nobody"], env=env)
    assert result.exit_code != 0 and f"unknown user '{prefix}nobody'" in result.output
    assert "Traceback" not in result.output
    neo4j_store.delete_users_with_prefix(prefix)
