"""What the graph store's Cypher takes and gives back, in Python: the parameters of the batch writes
(friendships, events cut into time segments and request rounds) and the records the reads return,
decoded. The queries themselves are graph/cypher.py; the in-memory store applies events in the same
segments and rounds, so both stores leave the same state."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from graph.cypher import ANSWER_SKEW_S, Q_ACCEPT_FRIENDS, Q_BLOCK, Q_DISMISS, Q_RESPOND, Q_SEND, Q_UNBLOCK
from graph.records import (
    PROFILE_FIELDS,
    Event,
    FofRow,
    Friendship,
    NewAccount,
    PendingRequests,
    UserRecord,
    UserState,
)


def friendship_rows(edges: Sequence[Friendship]) -> list[dict[str, Any]]:
    """The `rows` parameter of a friendship merge: each pair once, smaller id first, its earliest known time."""
    merged: dict[tuple[str, str], float | None] = {}
    for e in edges:
        c = e.canonical()
        if c.a == c.b:
            continue
        old = merged.get((c.a, c.b), c.since)
        merged[(c.a, c.b)] = c.since if old is None else (old if c.since is None else min(old, c.since))
    return [{"a": a, "b": b, "since": s} for (a, b), s in merged.items()]


def event_statements(events: Sequence[Event]) -> tuple[list[tuple[str, dict[str, Any]]], int]:
    """The statements that apply a batch of events in one transaction, and how many events they apply."""
    now = time.time()   # `at` of the ties this batch ends or makes (the writer's clock)
    statements: list[tuple[str, dict[str, Any]]] = []
    applied = 0
    for segment in time_segments(events):
        more, n = _segment_statements(segment, now)
        statements += more
        applied += n
    return statements, applied


def time_segments(events: Sequence[Event]) -> list[list[Event]]:
    """The batch in time order, cut where applying it as one would go against time. A segment runs its
    requests' events (each pair's in time order, request_rounds), then its blocks, then its unblocks; so a
    send or an answer dated after a block or an unblock of the same pair, or a block dated after an unblock
    of it, starts a new segment (a tie accepted after an unblock would otherwise be lost, a decline's record
    replaced by a send the block then withdraws). The segments apply one after the other, in one
    transaction: a batch leaves what its events leave applied one at a time in time order. Most batches
    are one segment."""
    segments: list[list[Event]] = [[]]
    blocking: dict[frozenset[str], float] = {}   # pair -> its first block or unblock in the current segment
    lifted: dict[frozenset[str], float] = {}     # pair -> its first unblock in the current segment
    for ev in sorted(events, key=lambda e: e.ts):   # stable: equal times keep the batch's order
        pair = frozenset((ev.src, ev.dst))
        if ((ev.type in REQUEST_EVENTS and blocking.get(pair, ev.ts) < ev.ts)
                or (ev.type == "block" and lifted.get(pair, ev.ts) < ev.ts)):
            segments.append([])
            blocking, lifted = {}, {}
        if ev.type in ("block", "unblock"):
            blocking.setdefault(pair, ev.ts)
        if ev.type == "unblock":
            lifted.setdefault(pair, ev.ts)
        segments[-1].append(ev)
    return [s for s in segments if s]


def _segment_statements(events: Sequence[Event], now: float) -> tuple[list[tuple[str, dict[str, Any]]], int]:
    """event_statements for one time segment."""
    blocks: list[dict[str, Any]] = []
    dismissals: list[dict[str, Any]] = []
    # every block of the batch runs (each ends a tie), then the unblocks of the pairs whose last block
    # or unblock, by time, was an unblock: what applying them one by one in time order leaves
    last: dict[tuple[str, str], Event] = {}
    for ev in events:
        if ev.type in ("block", "unblock") and ev.ts >= last.get((ev.src, ev.dst), ev).ts:
            last[(ev.src, ev.dst)] = ev
    unblocks = [{"src": ev.src, "dst": ev.dst} for ev in last.values() if ev.type == "unblock"]
    statements: list[tuple[str, dict[str, Any]]] = []
    for requests in request_rounds(events):   # each request's events in time order, one a round
        sends, responses, friends = [], [], []
        for ev in requests:
            row = {"src": ev.src, "dst": ev.dst, "ts": ev.ts}
            if ev.type == "send":
                sends.append(row)
                continue
            responses.append({**row, "status": "accepted" if ev.type == "accept" else "declined"})
            if ev.type == "accept":
                lo, hi = sorted((ev.src, ev.dst))
                friends.append({"src": ev.src, "dst": ev.dst, "a": lo, "b": hi})
        statements += [(q, {"rows": rows, **extra}) for q, rows, extra in (
            (Q_SEND, sends, {}), (Q_RESPOND, responses, {"skew": ANSWER_SKEW_S}),
            (Q_ACCEPT_FRIENDS, friends, {"at": now})) if rows]
    for ev in events:
        if ev.type == "block":
            blocks.append({"src": ev.src, "dst": ev.dst, "ts": ev.ts})
        elif ev.type == "dismiss":
            dismissals.append({"src": ev.src, "dst": ev.dst, "ts": ev.ts})
    statements += [(q, {"rows": rows, **extra}) for q, rows, extra in (
        (Q_BLOCK, blocks, {"at": now}), (Q_UNBLOCK, unblocks, {}), (Q_DISMISS, dismissals, {})) if rows]
    applied = sum(ev.type in REQUEST_EVENTS for ev in events) + len(blocks) + len(dismissals) + \
        sum(ev.type == "unblock" for ev in events)
    return statements, applied


REQUEST_EVENTS = ("send", "accept", "decline")


def request_rounds(events: Sequence[Event]) -> list[list[Event]]:
    """The batch's sends and answers in rounds: round i holds the i-th event of every pair of users (their
    requests both ways) in time order (a send first among equal times, then the batch's order), so one
    statement never touches a pair twice and each pair's events apply in the order they happened (an
    accept's tie answers the other way's request: the two ways are one sequence). A send right after a
    send of the same request is left out: it changes nothing (the request is pending), and a client
    repeating one send a thousand times would otherwise cost a thousand rounds."""
    mine = [ev for ev in events if ev.type in REQUEST_EVENTS]
    order = sorted(range(len(mine)), key=lambda i: (mine[i].ts, mine[i].type != "send", i))
    rounds: list[list[Event]] = []
    seen: dict[frozenset[str], int] = {}
    last: dict[frozenset[str], tuple[str, tuple[str, str]]] = {}
    for i in order:
        ev = mine[i]
        request = (ev.src, ev.dst) if ev.type == "send" else (ev.dst, ev.src)
        pair = frozenset(request)
        if ev.type == "send" and last.get(pair) == ("send", request):
            continue
        last[pair] = (ev.type, request)
        r = seen[pair] = seen.get(pair, -1) + 1
        if r == len(rounds):
            rounds.append([])
        rounds[r].append(ev)
    return rounds


def new_account(r: Mapping[str, Any]) -> NewAccount:
    """One row of Q_NEW_ACCOUNTS or Q_NEWCOMER_CHANGES."""
    created = r["created_at"]
    return NewAccount(r["id"], float(r["written_at"]), tuple(r["friends"]),
                      None if created is None else float(created))


def fof_row(candidate: str, mutual_count: int, aa: float, mutual: Sequence[str]) -> FofRow:
    """One row of Q_FOF (or of Q_FRESH_VIEW's `fof`)."""
    return FofRow(candidate, int(mutual_count), float(aa), tuple(sorted(mutual)))


def pending_from_row(r: Mapping[str, Any] | None) -> PendingRequests:
    """A user's pending requests from the row Q_PENDING returns (None: no such user)."""
    if r is None:
        return PendingRequests((), ())
    incoming, outgoing = ([x for x, status in r[way] if status == "pending"] for way in ("incoming", "outgoing"))
    return PendingRequests(tuple(sorted(incoming)), tuple(sorted(outgoing)))


def unsuggestable_from_row(r: Mapping[str, Any], since: float | None) -> set[str]:
    """The candidates never to suggest, from the row Q_RULES or Q_OPTED_OUT returns: opted out or
    deactivated, deleted, or deleted at or after `since` and created again (the snapshot's record of them
    is a former account's)."""
    missing = set(r["missing"])
    gone = {cid for cid, at in r["tombstones"] if cid in missing or (since is not None and at >= since)}
    return set(r["flagged"]) | gone


def state_from_rules_row(user_id: str, r: Mapping[str, Any]) -> UserState:
    """The viewer's state from the row Q_RULES returns."""
    if r["friends"] is None:   # no such user: nothing to rule on (deleted since the snapshot, if a tombstone says so)
        return UserState(user_id, frozenset(), frozenset(), frozenset(), {}, frozenset(), deleted=bool(r["deleted"]))
    # the viewer's requests in one expansion from its node, split here: a status predicate in the pattern
    # lets the planner scan every pending request of the database through the status index instead
    pending, declined = set(), {}
    for other, status, at in r["requests"]:
        if status == "pending":
            pending.add(other)
        elif status == "declined":
            declined[other] = max(declined.get(other, 0.0), float(at or 0.0))
    return UserState(user_id, frozenset(f for f, _ in r["friends"]), frozenset(pending), frozenset(r["blocked"]),
                     declined, frozenset(r["dismissed"]), bool(r["deactivated"]), bool(r["deleted"]),
                     frozenset(f for f, hidden in r["friends"] if hidden), bool(r["replaced"]),
                     frozenset(r["ties_ended"]))


def user_from_props(props: Mapping[str, Any]) -> UserRecord:
    known = {k: props.get(k) for k in PROFILE_FIELDS}
    return UserRecord(id=str(props["id"]), **known)
