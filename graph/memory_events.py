"""Events applied to the in-memory store as the Neo4j store's Cypher applies them (graph/cypher.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from graph.cypher import ANSWER_SKEW_S
from graph.cypher_rows import request_rounds, time_segments
from graph.records import Event, Friendship, Request

if TYPE_CHECKING:
    from graph.memory_store import MemoryGraphStore

# blocks and unblocks run after a segment's request rounds, in time order; dismissals last
_AFTER_REQUESTS = {"block": 3, "unblock": 3, "dismiss": 4}
# the steps of a request round each event type takes part in: sends, then answers, then accepts' ties
_STEPS = {"send": ("send",), "accept": ("answer", "tie"), "decline": ("answer",)}


def apply_events(store: MemoryGraphStore, events: Sequence[Event]) -> int:
    """Apply `events` a time segment at a time; returns how many were applied (unknown users' count too)."""
    return sum(_apply_segment(store, segment) for segment in time_segments(events))


def _apply_segment(store: MemoryGraphStore, events: Sequence[Event]) -> int:
    # as the Neo4j store's statements run a time segment: each pair's events in time order (a round at a
    # time: its sends, its answers, then its accepts' ties), then blocks and unblocks in time order, then
    # dismissals
    requests = [(step, ev) for batch in request_rounds(events) for step in ("send", "answer", "tie")
                for ev in batch if step in _STEPS[ev.type]]
    key = lambda e: (_AFTER_REQUESTS[e.type], e.ts if _AFTER_REQUESTS[e.type] == 3 else 0.0)  # noqa: E731
    others = [(ev.type, ev) for ev in sorted((e for e in events if e.type in _AFTER_REQUESTS), key=key)]
    applied = 0
    for step, ev in requests + others:
        applied += step != "tie"
        if ev.src not in store.users or ev.dst not in store.users:
            continue  # like MATCH in Cypher: events about unknown users change nothing
        if step == "send":
            _send(store, ev)
        elif step == "answer":
            _answer(store, ev)
        elif step == "tie":
            _tie(store, ev)
        elif ev.type == "block":   # Q_BLOCK: ends a tie, withdraws pending requests either way
            store.blocks.setdefault((ev.src, ev.dst), ev.ts)
            store.remove_friendship(ev.src, ev.dst)
            for pair in ((ev.src, ev.dst), (ev.dst, ev.src)):
                if pair in store.requests and store.requests[pair].status == "pending":
                    del store.requests[pair]
        elif ev.type == "unblock":
            store.blocks.pop((ev.src, ev.dst), None)
        else:
            pair = (ev.src, ev.dst)
            store.dismissals[pair] = max(store.dismissals.get(pair, ev.ts), ev.ts)
    return applied


def blocked_between(store: MemoryGraphStore, a: str, b: str) -> bool:
    """Whether a block stands either way between `a` and `b`."""
    return (a, b) in store.blocks or (b, a) in store.blocks


def _send(store: MemoryGraphStore, ev: Event) -> None:
    """Q_SEND: a request, or a new one after the last answer; none between friends or across a block."""
    if ev.dst in store.adj.get(ev.src, ()) or blocked_between(store, ev.src, ev.dst):
        return
    old = store.requests.get((ev.src, ev.dst))
    if old is None or (old.status != "pending"
                       and ev.ts > (old.responded_at if old.responded_at is not None else old.sent_at)):
        store.requests[(ev.src, ev.dst)] = Request(ev.src, ev.dst, ev.ts, "pending")


def _answer(store: MemoryGraphStore, ev: Event) -> None:
    """Q_RESPOND: an answer newer than the last, to this request (never dated before it)."""
    old = store.requests.get((ev.dst, ev.src), Request(ev.dst, ev.src, ev.ts, "pending"))
    if (ev.ts >= old.sent_at - ANSWER_SKEW_S if old.status == "pending"
            else old.responded_at is not None and ev.ts >= old.responded_at):
        status = "accepted" if ev.type == "accept" else "declined"
        store.requests[(ev.dst, ev.src)] = replace(old, status=status, responded_at=max(ev.ts, old.sent_at))


def _tie(store: MemoryGraphStore, ev: Event) -> None:
    """Q_ACCEPT_FRIENDS: a tie while the request stands accepted and no block stands between the two."""
    old = store.requests.get((ev.dst, ev.src))
    if old is not None and old.status == "accepted" and not blocked_between(store, ev.src, ev.dst):
        store.add_friendships([Friendship(ev.src, ev.dst, old.responded_at)])
        crossed = store.requests.get((ev.src, ev.dst))   # the other way's request, answered by the tie
        if crossed is not None and crossed.status == "pending":
            store.requests[(ev.src, ev.dst)] = replace(crossed, status="accepted",
                                                       responded_at=max(crossed.sent_at, old.responded_at))
