"""Ingestion: idempotent, batched, bad rows reported while good rows load, safe to re-run; the schema
and the launcher's procedure."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from graph.eventlog import EventLog
from graph.ingest import ingest_deletions, ingest_edges, ingest_events, ingest_users
from graph.records import Friendship, UserRecord


def _write_edges(path, prefix: str, n: int) -> set[tuple[str, str]]:
    pairs = set()
    with open(path, "w") as f:
        f.write("# generated\n")
        for i in range(n):
            a, b = f"{prefix}{i % 997}", f"{prefix}{(i * 7919) % 1009 + 1000}"
            f.write(f"{a} {b} {i}\n")
            pairs.add(tuple(sorted((a, b))))
    return pairs


def test_same_edge_list_twice_leaves_same_counts(store, prefix, tmp_path):
    path = tmp_path / "edges.txt"
    pairs = _write_edges(path, prefix, 3000)
    before = store.counts()
    r1 = ingest_edges(store, path, batch_size=700, progress=False)
    after_first = store.counts()
    r2 = ingest_edges(store, path, batch_size=300, progress=False)
    assert store.counts() == after_first
    assert after_first.friendships - before.friendships == len(pairs)
    assert (r1.rows_read, r1.loaded, r1.rejected) == (3000, 3000, 0)
    assert r2.loaded == 3000


def test_malformed_lines_are_reported_and_good_lines_load(store, prefix, tmp_path, caplog):
    path = tmp_path / "mixed.txt"
    path.write_text(f"{prefix}a {prefix}b 1\nbroken\n{prefix}b {prefix}c 2\n{prefix}c {prefix}d yesterday\n"
                    f"{prefix}d {prefix}d 3\n{prefix}d {prefix}e\n")
    report = ingest_edges(store, path, batch_size=2, progress=False)
    assert (report.rows_read, report.loaded, report.rejected) == (6, 3, 3)
    assert [e.line for e in report.errors] == [2, 4, 5]
    assert f"{path}:2:" in caplog.text and f"{path}:4: bad timestamp 'yesterday'" in caplog.text
    assert store.friends(f"{prefix}b") == [f"{prefix}a", f"{prefix}c"]
    assert store.friends(f"{prefix}d") == [f"{prefix}e"]


def test_a_message_edge_list_loads_each_pair_once_and_logs_every_message(store, prefix, tmp_path):
    from graph.snapshot import from_store
    from graph.snapshot.format import EVENT_CODE

    path = tmp_path / "messages.txt"
    path.write_text(f"{prefix}a {prefix}b 10\n{prefix}b {prefix}a 11\n{prefix}a {prefix}b 12\n{prefix}b {prefix}c 13\n"
                    f"{prefix}c {prefix}d\n")   # the untimed row is a tie, not an interaction
    log = EventLog(tmp_path / "log")
    report = ingest_edges(store, path, batch_size=2, progress=False, interactions=log)
    assert (report.loaded, report.rejected) == (5, 0)
    assert store.friends(f"{prefix}b") == [f"{prefix}a", f"{prefix}c"]
    ingest_edges(store, path, progress=False, interactions=log)   # re-run: the same one segment
    said = [(e.type, e.src.removeprefix(prefix), e.dst.removeprefix(prefix), e.ts) for e in log.read()]
    assert said == [("interaction", "a", "b", 10.0), ("interaction", "b", "a", 11.0),
                    ("interaction", "a", "b", 12.0), ("interaction", "b", "c", 13.0)]
    snap = from_store(store, log)
    mine = np.isin(snap.events["src"], [snap.index_of(f"{prefix}{x}") for x in "abc"])
    assert (snap.events["type"][mine] == EVENT_CODE["interaction"]).sum() == 4


def test_users_then_events_with_unknown_users_rejected(store, prefix, tmp_path):
    users = tmp_path / "users.csv"
    users.write_text("id,city,opted_out\n" + "".join(f"{prefix}{i},Oslo,{i == 2}\n" for i in range(4)))
    assert ingest_users(store, users, progress=False).loaded == 4
    events = tmp_path / "events.jsonl"
    events.write_text(
        f'{{"type":"send","src":"{prefix}0","dst":"{prefix}1","ts":1}}\n'
        f'{{"type":"send","src":"{prefix}0","dst":"{prefix}ghost","ts":2}}\n'
        f'{{"type":"impression","src":"{prefix}0","dst":"{prefix}3","ts":3,"position":0}}\n'
        f'{{"type":"accept","src":"{prefix}1","dst":"{prefix}0","ts":4}}\n')
    log = EventLog(tmp_path / "log")
    report = ingest_events(store, events, log, progress=False)
    assert (report.loaded, report.rejected) == (3, 1)
    assert report.errors[0].line == 2 and f"'{prefix}ghost'" in report.errors[0].message
    assert store.friends(f"{prefix}0") == [f"{prefix}1"]
    assert store.opted_out_among([f"{prefix}{i}" for i in range(4)]) == {f"{prefix}2"}
    # re-ingesting the same file replaces its segment: the log does not grow
    ingest_events(store, events, log, progress=False)
    assert len(log.segments()) == 1 and len(list(log.read())) == 3


@pytest.mark.parametrize("batch_size", [1, 100])
def test_a_later_partial_row_updates_only_its_given_fields_whatever_the_batches(store, prefix, tmp_path, batch_size):
    """A full row, then a row for the same id with blanks: the blanks keep what was given before (an
    opt-out must not be lost because two rows shared a batch)."""
    users = tmp_path / "users.csv"
    users.write_text(f"id,school,city,opted_out\n{prefix}u,mit,oslo,true\n{prefix}v,,bergen,\n{prefix}u,harvard,,\n")
    assert ingest_users(store, users, batch_size=batch_size, progress=False).loaded == 3
    u = store.get_user(f"{prefix}u")
    assert (u.school, u.city, u.opted_out) == ("harvard", "oslo", True)
    assert store.opted_out_among([f"{prefix}u", f"{prefix}v"]) == {f"{prefix}u"}


@pytest.mark.integration
@pytest.mark.parametrize("batch_size", [1, 100])
def test_a_deletions_file_deletes_each_account_once_and_can_be_rerun(store, prefix, tmp_path, batch_size):
    ids = [f"{prefix}{i}" for i in range(5)]
    store.add_friendships([Friendship(ids[i], ids[i + 1]) for i in range(4)])
    path = tmp_path / "deletions.csv"
    path.write_text(f"id,reason\n{ids[1]},gdpr\n\n{ids[3]},\n{ids[1]},again\n\"{ids[4]}\n")
    report = ingest_deletions(store, path, batch_size, progress=False)
    assert (report.rows_read, report.loaded, report.rejected) == (4, 3, 1)
    assert report.summary().endswith("; 2 accounts deleted now, 1 already gone or unknown")   # ids[1] twice
    assert report.errors[0].line == 6    # file and line of the malformed row
    assert store.existing_users(ids) == {ids[0], ids[2], ids[4]}
    assert store.opted_out_among(ids) == {ids[1], ids[3]} and store.friends(ids[2]) == []
    again = ingest_deletions(store, path, batch_size, progress=False)   # re-run: nothing more, no error
    assert again.loaded == 3 and store.existing_users(ids) == {ids[0], ids[2], ids[4]}
    assert again.detail == "0 accounts deleted now, 3 already gone or unknown"


def test_killed_ingestion_rerun_completes_without_duplicates(neo4j_store, prefix, tmp_path, settings):
    path = tmp_path / "big.txt"
    pairs = _write_edges(path, prefix, 40_000)
    before = neo4j_store.counts()
    env = {**os.environ, "PYMK_DATA_DIR": str(settings.data_dir), "PYMK_NEO4J_PORT": str(settings.neo4j.port)}
    proc = subprocess.Popen([sys.executable, "-m", "pymk", "ingest", "edges", str(path), "--batch-size", "200",
                             "--no-progress"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while neo4j_store.counts().friendships == before.friendships and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    partial = neo4j_store.counts().friendships - before.friendships
    assert 0 < partial < len(pairs), "the kill should land mid-run"
    ingest_edges(neo4j_store, path, batch_size=5000, progress=False)
    assert neo4j_store.counts().friendships - before.friendships == len(pairs)
    ids = {x for p in pairs for x in p}
    neo4j_store.delete_users(ids)


@pytest.mark.integration
def test_ingest_command_exits_non_zero_when_rows_are_rejected(neo4j_store, prefix, tmp_path):
    from click.testing import CliRunner

    from pymk.cli import main

    path = tmp_path / "edges.txt"
    path.write_text(f"{prefix}a {prefix}b 5\n{prefix}c\n")
    rejects = tmp_path / "rejects.txt"
    result = CliRunner().invoke(main, ["ingest", "edges", str(path), "--no-progress", "--rejects", str(rejects)])
    assert result.exit_code == 2, result.output
    assert "1 row(s) rejected" in result.output and rejects.read_text().startswith(f"{path}:2:")
    assert neo4j_store.friends(f"{prefix}a") == [f"{prefix}b"]  # the good row loaded anyway
    again = CliRunner().invoke(main, ["ingest", "edges", str(path), "--no-progress", "--allow-rejects"])
    assert again.exit_code == 0, again.output


@pytest.mark.integration
def test_suggest_command_goes_through_the_hard_rules_with_the_decline_cool_down(neo4j_store, prefix):
    from click.testing import CliRunner

    from graph.records import Event, Friendship
    from pymk.cli import main

    p = prefix
    neo4j_store.add_friendships([Friendship(f"{p}a", f"{p}b"), Friendship(f"{p}b", f"{p}c"),
                                 Friendship(f"{p}a", f"{p}d"), Friendship(f"{p}d", f"{p}e")])
    now = time.time()
    long_ago = now - 400 * 86_400   # past the 90-day cool-down: may be suggested again
    neo4j_store.apply_events([Event("send", f"{p}a", f"{p}c", long_ago), Event("decline", f"{p}c", f"{p}a", long_ago),
                              Event("send", f"{p}a", f"{p}e", now - 60), Event("decline", f"{p}e", f"{p}a", now - 30)])
    result = CliRunner().invoke(main, ["suggest", f"{p}a"])
    assert result.exit_code == 0, result.output
    shown = {line.split()[0] for line in result.output.splitlines()[1:]}
    assert f"{p}c" in shown and f"{p}e" not in shown


@pytest.mark.integration
def test_schema_command_makes_the_indexes_serving_reads_by(neo4j_store, prefix):
    """After an upgrade that adds an index (the ties' written_at), `pymk neo4j schema` makes it; the API
    does the same at start."""
    from click.testing import CliRunner

    from pymk.cli import main

    def indexes() -> set[str]:
        return {r["name"] for r in neo4j_store._driver.execute_query("SHOW INDEXES YIELD name").records}

    neo4j_store._driver.execute_query("DROP INDEX friends_written_at IF EXISTS")
    assert "friends_written_at" not in indexes()
    neo4j_store.add_friendships([Friendship(f"{prefix}n", f"{prefix}m")])
    neo4j_store.upsert_users([UserRecord(id=f"{prefix}n", created_at=time.time())])
    # without the index the read of what changed still answers (planned another way, slower)
    changed = neo4j_store.newcomer_changes(time.time() - 60, time.time() - 60, 100, 10)
    assert f"{prefix}n" in {a.id for a in changed.accounts}
    result = CliRunner().invoke(main, ["neo4j", "schema"])
    assert result.exit_code == 0, result.output
    assert "schema in place" in result.output and "friends_written_at" in indexes()
    neo4j_store.delete_users([f"{prefix}n", f"{prefix}m"])


@pytest.mark.integration
@pytest.mark.parametrize("signature", [
    "pymk.mergeFriendships(rows :: LIST<MAP>) :: (created :: INTEGER)",   # other arguments: the call would fail
    # the same arguments, from before it stamped the users it creates (their `written_at`)
    "pymk.mergeFriendships(rows :: LIST<MAP>, writtenAt :: FLOAT) :: (created :: INTEGER, matched :: INTEGER)"])
def test_a_server_running_an_older_launcher_gets_plain_cypher(settings, neo4j_store, prefix, caplog, signature):
    """A local Neo4j started before an upgrade still has the older procedure: ingestion goes on in plain
    Cypher, with a warning to restart it, rather than failing on every batch or writing what this code's
    readers would miss."""
    from graph.neo4j_store import Neo4jGraphStore

    store = Neo4jGraphStore(settings.neo4j)
    read = store._read
    old = [["pymk.mergeFriendships", signature]]
    store._read = lambda query, **params: ([{"procedures": old}] if "SHOW PROCEDURES" in query
                                           else read(query, **params))
    try:
        with caplog.at_level("WARNING", logger="graph.neo4j_store"):
            assert store.add_friendships([Friendship(f"{prefix}a", f"{prefix}b", 3.0)]) == 1
        assert "another version" in caplog.text and not store._has("pymk.mergeFriendships")
        assert neo4j_store.friends(f"{prefix}a") == [f"{prefix}b"]
        assert {f"{prefix}a", f"{prefix}b"} <= {a.id for a in neo4j_store.new_accounts(time.time() - 60, 10_000, 1)}
    finally:
        store.delete_users_with_prefix(prefix)
        store.close()
