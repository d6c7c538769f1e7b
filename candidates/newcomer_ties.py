"""The newcomer index's contents as one read left them: when each newcomer entered the store, its creation
time and its friends, and the newcomers tied to each friend (candidates/newcomers.py reads the store into it
and serves from it).

Plain tuples, strings, floats and None only: once the garbage collector has seen them it stops tracking
them, so 200,000 newcomers add no pause to a full collection in an API worker (as objects with attributes they made
each one ~160 ms longer; bench/RESULTS.md).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass

from graph.records import NewAccount, NewcomerChanges

Entry = tuple[float, float | None, tuple[str, ...]]   # a newcomer's written_at, created_at and friends, as read


def _entry(a: NewAccount) -> Entry:
    return a.written_at, a.created_at, tuple(a.friends)


@dataclass(frozen=True)
class NewcomerTies:
    """The index as one read left it (or as a read of what changed updated it)."""

    read_at: float                                         # when the store was read (time.time())
    accounts: dict[str, Entry]                             # newcomer -> (written_at, created_at, friends)
    by_friend: dict[str, tuple[str, ...]]                  # friend -> the newcomers tied to it

    @classmethod
    def of(cls, read_at: float, accounts: Iterable[NewAccount]) -> NewcomerTies:
        kept = {a.id: _entry(a) for a in accounts if a.friends}
        by_friend: dict[str, list[str]] = {}
        for n, (_, _, friends) in kept.items():
            for f in friends:
                by_friend.setdefault(f, []).append(n)
        return cls(read_at, kept, {f: tuple(ns) for f, ns in by_friend.items()})

    def updated(self, read_at: float, changes: NewcomerChanges, cap: int) -> NewcomerTies:
        """A new index: this one with the changed accounts as read now and without the deleted ones (the
        newest `cap` kept). Copied, not changed in place: requests go on reading this one meanwhile."""
        accounts = dict(self.accounts)
        gone = set(changes.gone)
        # a deleted account's ties went with it: its newcomer friends are read as they are left without it
        changed = {n: (*accounts[n][:2], tuple(f for f in accounts[n][2] if f not in gone))
                   for g in gone for n in self.by_friend.get(g, ()) if n not in gone}
        changed.update((a.id, _entry(a)) for a in changes.accounts)   # as read now
        dropped: dict[str, set[str]] = {}   # friend -> newcomers to take out of its entry
        added: dict[str, list[str]] = {}    # friend -> newcomers to put in
        for n in (*gone, *changed):
            for f in accounts.pop(n, (0.0, None, ()))[2]:
                dropped.setdefault(f, set()).add(n)
        for n, entry in changed.items():
            if entry[2]:
                accounts[n] = entry
                for f in entry[2]:
                    added.setdefault(f, []).append(n)
        # over the cap, the oldest go (a partial selection: a platform at the cap pays it every read)
        capped = set(heapq.nlargest(len(accounts) - cap, accounts, key=lambda n: (-accounts[n][0], n))
                     if len(accounts) > cap else ())
        for n in capped:
            for f in accounts.pop(n)[2]:
                dropped.setdefault(f, set()).add(n)
        by_friend = dict(self.by_friend)
        for f in dropped.keys() | added.keys():
            out = dropped.get(f, set())
            ns = (*(n for n in by_friend.get(f, ()) if n not in out), *(n for n in added.get(f, ()) if n not in capped))
            if ns:
                by_friend[f] = ns
            else:
                by_friend.pop(f, None)
        return NewcomerTies(read_at, accounts, by_friend)
