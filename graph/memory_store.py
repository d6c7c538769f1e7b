"""An in-memory GraphStore with the same semantics as the Neo4j one, for unit tests.

The contract tests run against both this and the real Neo4j store, so they cannot drift apart.
It records every call in `calls`, so tests can check what a caller asked for.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace

from graph import memory_events
from graph.records import (
    AccountData,
    Event,
    FofRow,
    FreshView,
    Friendship,
    GraphCounts,
    NewAccount,
    NewcomerChanges,
    PendingRequests,
    Request,
    UserRecord,
    UserState,
)
from graph.tiebreak import fof_order


def _chunks(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


class MemoryGraphStore:
    """GraphStore kept in Python dicts. Not for production: no persistence, one process."""

    def __init__(self) -> None:
        self.users: dict[str, UserRecord] = {}
        self.adj: dict[str, set[str]] = defaultdict(set)
        self.since: dict[tuple[str, str], float | None] = {}
        self.written: dict[tuple[str, str], float] = {}   # tie -> when it entered the store (its written_at)
        self.user_written: dict[str, float] = {}           # user -> when it entered the store (its written_at)
        self.requests: dict[tuple[str, str], Request] = {}
        self.blocks: dict[tuple[str, str], float] = {}
        self.dismissals: dict[tuple[str, str], float] = {}
        self.tombstones: dict[str, float] = {}   # deleted user -> when (as Neo4j's :DeletedUser nodes)
        self.ties_ended: dict[str, float] = {}   # user -> when a tie of theirs last ended (their ties_ended_at)
        self.calls: list[str] = []

    def server_info(self) -> str:
        return "in-memory fake store"

    def ensure_schema(self) -> None:
        self.calls.append("ensure_schema")

    def close(self) -> None:
        self.calls.append("close")

    def _touch(self, user_id: str, now: float) -> None:
        if user_id not in self.users:
            self.users[user_id] = UserRecord(id=user_id)
            self.user_written[user_id] = now

    def upsert_users(self, users: Sequence[UserRecord], created_at_default: float | None = None) -> int:
        self.calls.append("upsert_users")
        now = time.time()   # every account one call creates is stamped alike, as one Cypher statement does
        for u in users:
            new = UserRecord(id=u.id, created_at=created_at_default)   # a sign-up, dated unless it says when
            if u.id not in self.users:
                self.user_written[u.id] = now
            self.users[u.id] = self.users.get(u.id, new).updated(u)
        return len(users)

    def add_friendships(self, edges: Sequence[Friendship]) -> int:
        self.calls.append("add_friendships")
        applied = set()
        now = time.time()   # the ties and accounts one call creates are stamped alike (one statement's $at)
        for e in edges:
            c = e.canonical()
            if c.a == c.b:
                continue
            self._touch(c.a, now)
            self._touch(c.b, now)
            key = (c.a, c.b)
            applied.add(key)
            old = self.since.get(key, c.since)
            if key not in self.since:
                self.written[key] = now
            if key not in self.since or (c.since is not None and (old is None or c.since < old)):
                self.since[key] = c.since
            self.adj[c.a].add(c.b)
            self.adj[c.b].add(c.a)
        return len(applied)

    def remove_friendship(self, a: str, b: str) -> bool:
        key = tuple(sorted((a, b)))
        if key not in self.since:
            return False
        del self.since[key]
        self.written.pop(key, None)
        self.adj[a].discard(b)
        self.adj[b].discard(a)
        self.ties_ended[a] = self.ties_ended[b] = time.time()   # graph/cypher.py Q_REMOVE_FRIEND
        return True

    def apply_events(self, events: Sequence[Event]) -> int:
        self.calls.append("apply_events")
        return memory_events.apply_events(self, events)

    def set_opted_out(self, user_id: str, opted_out: bool) -> None:
        if user_id in self.users:
            self.users[user_id] = replace(self.users[user_id], opted_out=opted_out)

    def delete_users(self, ids: Iterable[str]) -> int:
        n = 0
        for uid in list(ids):
            if uid not in self.users:
                continue
            n += 1
            del self.users[uid]
            self.user_written.pop(uid, None)
            self.tombstones[uid] = time.time()
            self.ties_ended.pop(uid, None)   # went with the node
            for other in list(self.adj.pop(uid, ())):
                self.adj[other].discard(uid)
                self.since.pop(tuple(sorted((uid, other))), None)
                self.written.pop(tuple(sorted((uid, other))), None)
            for table in (self.requests, self.blocks, self.dismissals):
                for key in [k for k in table if uid in k]:
                    del table[key]
        return n

    def deletions(self, ids: Iterable[str] | None = None, since: float | None = None) -> dict[str, float]:
        wanted = self.tombstones.keys() if ids is None else set(ids) & self.tombstones.keys()
        return {u: self.tombstones[u] if u in self.users else math.inf for u in wanted
                if since is None or self.tombstones[u] >= since}

    def delete_users_with_prefix(self, prefix: str) -> int:
        if not prefix:
            raise ValueError("refusing to delete with an empty prefix (that is every user)")
        n = self.delete_users([u for u in self.users if u.startswith(prefix)])
        self.tombstones = {u: t for u, t in self.tombstones.items() if not u.startswith(prefix)}
        return n

    def get_user(self, user_id: str) -> UserRecord | None:
        return self.users.get(user_id)

    def account_data(self, user_id: str) -> AccountData | None:
        if user_id not in self.users:
            return None
        requests = [(r, r.dst if r.src == user_id else r.src) for r in self.requests.values()]
        return AccountData.of(
            {"id": user_id, **self.users[user_id].properties(),
             **({"written_at": self.user_written[user_id]} if user_id in self.user_written else {})},
            ((f, self.since[tuple(sorted((user_id, f)))]) for f in self.adj.get(user_id, ())),
            ((o, r.sent_at, r.status, r.responded_at) for r, o in requests if r.src == user_id),
            ((o, r.sent_at, r.status, r.responded_at) for r, o in requests if r.dst == user_id),
            ((b, t) for (a, b), t in self.blocks.items() if a == user_id),
            ((b, t) for (a, b), t in self.dismissals.items() if a == user_id))

    def existing_users(self, ids: Iterable[str]) -> set[str]:
        return {i for i in ids if i in self.users}

    def ties_among(self, pairs: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
        return {(a, b) for a, b in pairs if b in self.adj.get(a, ())}

    def opted_out_among(self, ids: Iterable[str]) -> set[str]:
        return {i for i in ids if (not self.users[i].suggestable if i in self.users else self._deleted(i))}

    def _deleted(self, user_id: str) -> bool:
        return user_id not in self.users and user_id in self.tombstones

    def friends(self, user_id: str) -> list[str]:
        return sorted(self.adj.get(user_id, ()))

    def pending_requests(self, user_id: str) -> PendingRequests:
        pending = [r for r in self.requests.values() if r.status == "pending"]
        return PendingRequests(
            tuple(sorted(r.src for r in pending if r.dst == user_id)),
            tuple(sorted(r.dst for r in pending if r.src == user_id)),
        )

    def blocked(self, user_id: str) -> set[str]:
        return {b if a == user_id else a for a, b in self.blocks if user_id in (a, b)}

    def user_state(self, user_id: str) -> UserState:
        pending = self.pending_requests(user_id)
        declined: dict[str, float] = {}
        for r in self.requests.values():
            if r.status == "declined" and user_id in (r.src, r.dst):
                other = r.dst if r.src == user_id else r.src
                declined[other] = max(declined.get(other, 0.0), float(r.responded_at or 0.0))
        return UserState(
            user_id, frozenset(self.adj.get(user_id, ())), frozenset(pending.incoming + pending.outgoing),
            frozenset(self.blocked(user_id)), declined,
            frozenset(b for a, b in self.dismissals if a == user_id),
            bool(user_id in self.users and self.users[user_id].deactivated), self._deleted(user_id),
            frozenset(self.opted_out_among(self.adj.get(user_id, ()))),
        )

    def viewer_rules(self, user_id: str, candidate_ids: Iterable[str], accounts_since: float | None = None
                     ) -> tuple[UserState, set[str]]:
        def replaced(i: str) -> bool:
            return accounts_since is not None and self.tombstones.get(i, -math.inf) >= accounts_since

        candidate_ids = list(candidate_ids)
        state = self.user_state(user_id)
        if user_id in self.users and replaced(user_id):
            state = replace(state, replaced=True)
        if accounts_since is not None:
            state = replace(state, ties_ended=frozenset(
                i for i in candidate_ids if i in self.users and self.ties_ended.get(i, -math.inf) >= accounts_since))
        return state, self.opted_out_among(candidate_ids) | {i for i in candidate_ids if replaced(i)}

    def _joined(self, u: UserRecord) -> float | None:
        """When `u` entered the store: its written_at, else its created_at (graph/cypher.py _JOINED)."""
        return self.user_written.get(u.id, u.created_at)

    def _newcomers(self, since: float, limit: int, max_friends: int,
                   also: Callable[[UserRecord, float], bool] | None = None) -> list[NewAccount]:
        """The `limit` newest accounts that entered the store at or after `since` (and pass `also`)."""
        joined = {u.id: t for u in self.users.values() if (t := self._joined(u)) is not None and t >= since
                  and (also is None or also(u, t))}
        return [NewAccount(i, t, tuple(sorted(self.adj.get(i, ()))[:max_friends]), self.users[i].created_at)
                for i, t in sorted(joined.items(), key=lambda it: (-it[1], it[0]))[:limit]]

    def new_accounts(self, since: float, limit: int, max_friends: int) -> list[NewAccount]:
        self.calls.append("new_accounts")
        return [a for a in self._newcomers(since, limit, max_friends) if a.friends]

    def newcomer_changes(self, since: float, changed_since: float, limit: int, max_friends: int) -> NewcomerChanges:
        self.calls.append("newcomer_changes")
        changed = max(since, changed_since)
        touched = {u for key, t in self.written.items() if t >= changed for u in key}
        touched |= {u for u, t in self.ties_ended.items() if t >= changed}
        return NewcomerChanges(
            tuple(self._newcomers(since, limit, max_friends, lambda u, t: t >= changed or u.id in touched)),
            tuple(u for u, t in self.tombstones.items() if t >= changed and u not in self.users))

    def fresh_view(self, user_id: str, limit: int, max_friend_degree: int) -> FreshView:
        return FreshView(self.get_user(user_id), tuple(self.friends(user_id)),
                         tuple(self.friends_of_friends(user_id, limit, max_friend_degree)))

    def friends_of_friends(self, user_id: str, limit: int, max_friend_degree: int) -> list[FofRow]:
        mine = self.adj.get(user_id, set())
        mutual: dict[str, list[str]] = defaultdict(list)
        aa: dict[str, float] = defaultdict(float)
        for f in mine:
            deg = len(self.adj[f])
            if deg > max_friend_degree:
                continue
            for c in self.adj[f]:
                if c != user_id and c not in mine:
                    mutual[c].append(f)
                    aa[c] += 1.0 / math.log(deg)
        return fof_order(user_id, [FofRow(c, len(m), aa[c], tuple(sorted(m))) for c, m in mutual.items()], limit)

    def counts(self) -> GraphCounts:
        return GraphCounts(len(self.users), len(self.since), len(self.requests), len(self.blocks),
                           len(self.dismissals))

    def iter_users(self, batch_size: int = 10_000) -> Iterator[list[UserRecord]]:
        yield from _chunks(list(self.users.values()), batch_size)

    def iter_friendships(self, batch_size: int = 50_000) -> Iterator[list[Friendship]]:
        yield from _chunks([Friendship(a, b, s) for (a, b), s in self.since.items()], batch_size)

    def iter_requests(self, batch_size: int = 50_000, since: float | None = None) -> Iterator[list[Request]]:
        yield from _chunks([r for r in self.requests.values() if since is None or r.status == "pending"
                            or (r.responded_at if r.responded_at is not None else r.sent_at) >= since], batch_size)

    def iter_blocks(self, batch_size: int = 50_000) -> Iterator[list[tuple[str, str, float]]]:
        yield from _chunks([(a, b, t) for (a, b), t in self.blocks.items()], batch_size)
