"""Accounts newer than the served snapshot, suggested to the friends of their friends (the newcomer stage).

The snapshot's sources cannot propose a user the snapshot does not hold: until the next refresh a sign-up
would be suggested to no one, however many of a viewer's friends it has already befriended.
`NewcomerIndex` holds the ties of the accounts that entered the store since the snapshot read the accounts
(by `written_at`: a sign-up, an account ingested from a file whatever its created_at, one made by its first
tie), read from the graph store and read again in the background when a request finds it older than
`refresh_s`. A viewer's newcomers are those
tied to its friends now, most mutual friends first; `blend` puts them in fixed slots of the ranked list
(no model has scored them: the ranker's features are the snapshot's), after every hard rule on fresh state.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from candidates.filters import FilterContext, StateReader, passing_rules
from candidates.newcomer_ties import NewcomerTies
from candidates.read_gate import ReadGate
from candidates.types import Candidate, Recommendation
from graph.snapshot import Snapshot
from graph.snapshot.build import in_snapshot_order
from graph.store import GraphStore
from pymk.errors import GraphStoreUnavailableError

log = logging.getLogger(__name__)

SOURCE = "newcomers"
MAX_NAMED = 20       # mutual friends a proof names, as the friends-of-friends source's do
READ_SPACING = 10    # the index's next read waits at least this many times as long as the last one took


@dataclass(frozen=True)
class NewcomerConfig:
    slots: tuple[int, ...] = (3, 8)  # 1-based positions newcomers take in a list (); (): the stage is off
    refresh_s: float = 30.0          # how old the index's read of the newest accounts may grow (0: read by
                                     # every request, in its own thread: tests and demos, not production)
    full_read_s: float = 900.0       # how often the index is read whole; the reads between read what changed
    max_accounts: int = 200_000      # newest accounts read (a day of sign-ups on a large platform)
    max_friends: int = 1_000         # friends read per account (more in its first day: a bulk import)


# A read of what changed since the last read goes back this much further: a tie stamped by its writer before
# the last read but committed after it (a long ingestion batch), or stamped by a writer whose clock runs
# behind the reader's, is read by the next one. Anything later still (a historical file) waits for the next
# full read.
CHANGE_OVERLAP_S = 120.0


@dataclass(frozen=True)
class IndexRead:
    """One read of the index, as `NewcomerIndex.on_read` is told of it (the API's metrics)."""

    kind: str                # "whole" or "changes"
    seconds: float
    ok: bool
    accounts: int            # newcomers the index holds after it
    read_at: float | None    # when the data it holds was read (the last read that worked; time.time())


class NewcomerIndex:
    """The ties of the accounts that entered the store at or after `since`, kept in memory and read again
    when stale: whole every `full_read_s`, and in between only what changed since the last read
    (`GraphStore.newcomer_changes`), so a read costs what changed, not every newcomer's ties."""

    def __init__(self, store: GraphStore, since: float, config: NewcomerConfig | None = None,
                 on_read: Callable[[IndexRead], None] | None = None) -> None:
        self.store = store
        self.since = since
        self.config = config or NewcomerConfig()
        self.on_read = on_read                 # told of every read, whether it worked (metrics)
        self._ties: NewcomerTies | None = None
        self._gate = ReadGate(self._read, "newcomer-index")
        self._next_full = -math.inf          # time.monotonic() of the next full read
        self._failures = 0
        self.read_s = 0.0                               # how long the last read took
        self.last_read_full = False                     # whether the last read was a full one

    @property
    def reading(self) -> threading.Thread | None:
        """The last read run in a thread of its own."""
        return self._gate.reading

    @property
    def _next_read(self) -> float:
        return self._gate.next_read

    @property
    def read_at(self) -> float | None:
        return self._ties.read_at if self._ties is not None else None

    def refresh(self, force: bool = False) -> bool:
        """Read the newest accounts again if the last read is older than `refresh_s` (or `force`). The first
        read, a forced one and every one with `refresh_s` 0 run in the caller's thread (True if read); later
        ones in a thread of their own while the requests go on with the previous read, so no request waits
        on it. One read at a time; a failed read keeps the previous one (logged), tried again `refresh_s` later."""
        inline = force or self._ties is None or self.config.refresh_s == 0
        return self._gate.refresh(self.config.refresh_s, inline, force)

    def _read(self) -> bool:
        """One read of the store into the index, whole or what changed (run by the gate, one at a time).
        The next read of each kind waits at least READ_SPACING times as long as the last of its kind took
        (unless `refresh_s` is 0, or it was the first read), so however many newcomers there are, reading them
        keeps Neo4j busy at most about 2 / READ_SPACING of the time per API worker."""
        started, first = time.monotonic(), self._ties is None
        full = first or started >= self._next_full
        ok = False
        try:
            read_at = time.time()
            try:
                self._ties = self._read_full(read_at) if full else self._read_changes(read_at)
            except Exception as exc:   # the newcomers are an addition: a list is served without them
                self._failures += 1
                log.warning("newcomer index: reading the accounts written since %.0f failed (%d so far), "
                            "keeping the read of %s: %s", self.since, self._failures, self.read_at, exc)
                return False
            self.last_read_full, ok = full, True
            return True
        finally:
            self.read_s = time.monotonic() - started
            self._report(IndexRead("whole" if full else "changes", self.read_s, ok,
                                   len(self._ties.accounts) if self._ties is not None else 0, self.read_at))
            spaced = self.config.refresh_s > 0 and not first   # the first read's time is mostly query planning
            if full:
                self._next_full = started + max(self.config.full_read_s, READ_SPACING * self.read_s * spaced)
            elif spaced:
                self._gate.next_read = max(self._gate.next_read, time.monotonic() + READ_SPACING * self.read_s)

    def _report(self, read: IndexRead) -> None:
        if self.on_read is not None:
            try:
                self.on_read(read)
            except Exception:   # a report must never fail the read
                log.exception("newcomer index: reporting a read failed")

    def _read_full(self, read_at: float) -> NewcomerTies:
        accounts = self.store.new_accounts(self.since, self.config.max_accounts, self.config.max_friends)
        if len(accounts) >= self.config.max_accounts:
            log.warning("newcomer index: %d accounts written since %.0f read, the cap (NewcomerConfig."
                        "max_accounts): older newcomers wait for the next snapshot", len(accounts), self.since)
        return NewcomerTies.of(read_at, accounts)

    def _read_changes(self, read_at: float) -> NewcomerTies:
        assert self._ties is not None
        changes = self.store.newcomer_changes(self.since, self._ties.read_at - CHANGE_OVERLAP_S,
                                              self.config.max_accounts, self.config.max_friends)
        if len(changes.accounts) >= self.config.max_accounts:   # some changes may be missing: read all next
            self._next_full = -math.inf
        return self._ties.updated(read_at, changes, self.config.max_accounts)

    def near(self, viewer: str, friends: frozenset[str], limit: int) -> list[Candidate]:
        """Up to `limit` newcomers tied to the viewer's `friends`, most mutual friends first (then the
        newest, then by id), each with a friends-of-friends proof naming them."""
        self.refresh()
        ties = self._ties
        if ties is None or limit <= 0:
            return []
        mutual: dict[str, list[str]] = {}
        for f in friends:
            for n in ties.by_friend.get(f, ()):
                mutual.setdefault(n, []).append(f)
        ranked = sorted((n for n in mutual if n != viewer and n not in friends),
                        key=lambda n: (-len(mutual[n]), -ties.accounts[n][0], n))[:limit]
        out = []
        for i, n in enumerate(ranked):
            names = in_snapshot_order(mutual[n])[:MAX_NAMED]
            out.append(Candidate(n, -1 - i, (SOURCE,), MappingProxyType({SOURCE: float(len(mutual[n]))}),
                                 MappingProxyType({"fof": {"mutual_count": len(mutual[n]), "mutual_ids": names},
                                                   SOURCE: {"written_at": ties.accounts[n][0],
                                                            "created_at": ties.accounts[n][1]}})))
        return out


def newcomer_index(store: GraphStore, snap: Snapshot, config: NewcomerConfig,
                   on_read: Callable[[IndexRead], None] | None = None) -> NewcomerIndex | None:
    """The index of the accounts written since `snap` read the accounts, read once now (None when the slots
    are off, or for a snapshot that did not record when it read them)."""
    since = snap.meta.get("accounts_read_at")
    if not config.slots or since is None:
        return None
    index = NewcomerIndex(store, float(since), config, on_read)
    index.refresh()   # a failure is logged there; the requests try again
    return index


def blend(ranked: list[Candidate], newcomers: list[Candidate], slots: tuple[int, ...]) -> list[Candidate]:
    """`ranked` with the newcomers in the given 1-based slots, in order (at the end when the list is shorter).
    One already in `ranked` under its id: when it is the same user (a snapshot user proposed as a friend of a
    new friend) it gets the stage's proof (its mutual friends now) and, when it stands below the slot, moves
    up to it; an account the list holds under that id otherwise keeps its place."""
    out = list(ranked)
    at = {c.user_id: i for i, c in enumerate(out)}
    same = {c.user_id for c in newcomers if c.user_id in at and out[at[c.user_id]].index == c.index}
    for c in newcomers:
        if c.user_id in same:
            out[at[c.user_id]] = out[at[c.user_id]].merged(c)
    queue = [c for c in newcomers if c.user_id not in at or c.user_id in same]
    for slot in sorted(slots):
        while queue:
            c = queue.pop(0)
            here = next((i for i, o in enumerate(out) if o.user_id == c.user_id), None)
            if here is not None and here <= slot - 1:
                continue   # already at or above the slot
            out.insert(min(slot - 1, len(out)), c if here is None else out.pop(here))
            break
    return out


def _slots(index: NewcomerIndex | None, k: int) -> tuple[int, ...]:
    return tuple(s for s in index.config.slots if s <= k) if index is not None else ()


def newcomers_ahead(index: NewcomerIndex | None, viewer: str, friends: Iterable[str], k: int) -> list[str]:
    """The newcomers the stage will most likely propose, from the viewer's friends in the snapshot: the
    pipeline reads their hard rules with its first batch's, so the stage needs no read of its own unless
    the viewer's friends changed since."""
    slots = _slots(index, k)
    try:
        return [c.user_id for c in index.near(viewer, frozenset(friends), 3 * len(slots))] if slots else []
    except Exception:   # only a prefetch: the stage itself reads again, and logs and reports a failure
        log.debug("newcomers ahead of the stage failed for %r", viewer, exc_info=True)
        return []


def with_newcomers(index: NewcomerIndex | None, state: StateReader, viewer: str, final: list[Candidate], k: int,
                   rec: Recommendation, seen: Callable[[], Mapping[str, int]] | None = None,
                   seen_decay: float = 1.0, more: Callable[[frozenset[str], int], list[Candidate]] | None = None,
                   accounts_since: float | None = None) -> list[Candidate]:
    """The fresh-tie stage: the viewer's newcomers (tied to its friends now), and what `more` proposes from
    its friends now (the friends of its new friends: candidates/new_friends.py, snapshot users), through
    every hard rule on fresh state, their proofs current, most mutual friends first, blended into `final`'s
    slots up to k. The rules come from the pipeline's read (`rec.rules`) when it covered every one of them
    (its `accounts_since` is the snapshot's, earlier than the index's read: an id deleted and created again
    in between is left out until the next snapshot, and more pairs are checked for ended ties); else from a
    read of their own (since `accounts_since`, the snapshot's, when `more` proposed any). Skipped, with the
    reason, when the graph store cannot be read. `seen()`: how often each user was shown to the viewer, by
    id; a candidate's mutual friends are weighed by `seen_decay` to that power, as the re-rank weighs the
    others' scores, so one shown again and again gives its slot to the next one."""
    slots = _slots(index, k)
    if not slots or rec.removed["viewer_deactivated"]:
        return final
    start = time.perf_counter()
    try:
        ctx = rec.rules
        friends = ctx.state.friends if ctx else state.rules(viewer, [])[0].friends
        proposed = index.near(viewer, friends, 3 * len(slots))
        others = more(friends, 3 * len(slots)) if more is not None else []
        newcomers = {c.user_id for c in proposed}
        proposed += [c for c in others if c.user_id not in newcomers]
        if not proposed:
            return final
        ids = [c.user_id for c in proposed]
        if ctx is None or not ctx.read_for.issuperset(ids):
            since = accounts_since if others and accounts_since is not None else index.read_at
            ctx = FilterContext(viewer, *state.rules(viewer, ids, since), read_for=frozenset(ids))
        # a candidate left with no mutual friend goes
        kept = [c for c in passing_rules(state, proposed, ctx, rec.removed) if "fof" in c.proof]
        shown = seen() if seen is not None and kept else {}
        kept.sort(key=lambda c: -c.proof["fof"]["mutual_count"] * seen_decay ** shown.get(c.user_id, 0))  # stable
    except GraphStoreUnavailableError as exc:
        rec.failed(SOURCE, exc, f"failed: {exc}")
        log.warning("newcomer stage skipped for %r: %s", viewer, exc)
        return final
    except Exception as exc:   # a broken stage degrades the list (its slots stay the ranked list's), as a source
        rec.failed(SOURCE, exc)
        log.error("newcomer stage failed for %r: the list goes without its slots", viewer, exc_info=exc)
        return final
    finally:
        rec.timings_ms[SOURCE] = (time.perf_counter() - start) * 1000
    return blend(final, kept, slots)
