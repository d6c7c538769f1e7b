"""Plain records exchanged with the graph store. No driver types leak past the store."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

PROFILE_FIELDS: tuple[str, ...] = (
    "created_at", "school", "employer", "city", "lat", "lon", "age_group", "language", "opted_out",
    "deactivated",
)
CATEGORICAL_FIELDS: tuple[str, ...] = ("school", "employer", "city", "age_group", "language")
# "interaction": a message, comment or other contact between two users (logged only; no state changes).
# New types go at the end: a type's code is its position, and stored snapshots keep their codes.
# "unblock": `src` lifts its own block of `dst` (a block `dst` made stays; a tie the block ended stays ended).
EVENT_TYPES: tuple[str, ...] = ("impression", "send", "accept", "decline", "dismiss", "block", "interaction",
                                "unblock")
REQUEST_STATUSES: tuple[str, ...] = ("pending", "accepted", "declined")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
MAX_ID_LENGTH = 256


def id_problem(user_id: str) -> str | None:
    """Why `user_id` cannot be a user id, or None. The snapshot holds ids in one fixed-width array, so one
    id of 100,000 characters (a corrupt line) would make every id take 400 kB; and it drops trailing NULs,
    so 'a\\x00' would become another account's 'a'. A line break cannot be written in an edge list."""
    if len(user_id) > MAX_ID_LENGTH:
        return f"user id {user_id[:40]!r}... is {len(user_id):,} characters long (at most {MAX_ID_LENGTH})"
    if user_id.isprintable():   # every control character is unprintable: the common case, without the search
        return None
    bad = _CONTROL.search(user_id)
    return None if bad is None else f"user id {user_id!r} holds the control character {bad.group()!r}"


@dataclass(frozen=True)
class UserRecord:
    """A user and its profile. Missing attributes are None."""

    id: str
    created_at: float | None = None
    school: str | None = None
    employer: str | None = None
    city: str | None = None
    lat: float | None = None
    lon: float | None = None
    age_group: str | None = None
    language: str | None = None
    opted_out: bool | None = None  # None: not given, so an existing opt-out is left alone
    deactivated: bool | None = None  # a closed or suspended account: never suggested (like opted_out)

    @property
    def suggestable(self) -> bool:
        return not (self.opted_out or self.deactivated)

    def updated(self, later: UserRecord) -> UserRecord:
        """This record with the fields `later` gives (an upsert: a field it leaves out keeps its value)."""
        return replace(self, **later.properties())

    def properties(self) -> dict[str, object]:
        """Profile properties to write (None values are left out, so they are not stored)."""
        props = {name: getattr(self, name) for name in PROFILE_FIELDS}
        return {k: v for k, v in props.items() if v is not None}


@dataclass(frozen=True)
class Friendship:
    """An undirected tie; `since` is the earliest time it was seen (epoch seconds) or None."""

    a: str
    b: str
    since: float | None = None

    def canonical(self) -> Friendship:
        """The same tie with endpoints ordered, so each pair is stored exactly once."""
        return self if self.a <= self.b else Friendship(self.b, self.a, self.since)


@dataclass(frozen=True)
class Event:
    """A feedback event. `src` is the actor: for accept/decline, `src` answers `dst`'s request."""

    type: str
    src: str
    dst: str
    ts: float
    position: int | None = None
    extra: dict[str, object] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class Request:
    src: str
    dst: str
    sent_at: float
    status: str
    responded_at: float | None = None


@dataclass(frozen=True)
class AccountData:
    """What the graph store holds about one account and its own actions: the answer to an access
    request. Others' actions toward it (their blocks, their dismissals of it) are theirs, not here."""

    profile: dict[str, object]                  # every stored property of the user, id included
    friends: tuple[Friendship, ...]             # (this user, friend, since), by friend id
    requests_sent: tuple[Request, ...]          # by time sent
    requests_received: tuple[Request, ...]      # by time sent, with this user's answer
    blocks: tuple[tuple[str, float], ...]       # (whom, when) this user blocked
    dismissals: tuple[tuple[str, float], ...]   # (whom, when) this user dismissed as a suggestion

    @classmethod
    def of(cls, profile: dict[str, object], friends: Iterable[tuple], sent: Iterable[tuple],
           received: Iterable[tuple], blocks: Iterable[tuple], dismissals: Iterable[tuple]) -> AccountData:
        """From the store's rows, each about one other user, its id first: friends (id, since); requests
        (id, sent_at, status, responded_at); blocks and dismissals (id, when). Sorted, so both stores agree."""
        me = str(profile["id"])
        return cls(
            dict(profile),
            tuple(Friendship(me, str(o), s) for o, s in sorted(friends, key=lambda r: str(r[0]))),
            tuple(sorted((Request(me, str(o), t, st, r) for o, t, st, r in sent), key=lambda q: (q.sent_at, q.dst))),
            tuple(sorted((Request(str(o), me, t, st, r) for o, t, st, r in received),
                         key=lambda q: (q.sent_at, q.src))),
            tuple(sorted((str(o), t) for o, t in blocks)),
            tuple(sorted((str(o), t) for o, t in dismissals)),
        )


@dataclass(frozen=True)
class FofRow:
    """One friends-of-friends candidate as the store computes it."""

    candidate: str
    mutual_count: int
    adamic_adar: float
    mutual_ids: tuple[str, ...]


@dataclass(frozen=True)
class FreshView:
    """What the fresh path reads of a viewer in one go: its profile (None: no such user), its friends
    (sorted) and its friends-of-friends rows (as `GraphStore.friends_of_friends` gives them)."""

    profile: UserRecord | None
    friends: tuple[str, ...]
    fof: tuple[FofRow, ...]


@dataclass(frozen=True)
class NewAccount:
    """An account that entered the store since some time, with its friends (the newcomer stage's input)."""

    id: str
    written_at: float                 # when it entered the store (the writer's clock; its created_at where a
                                      # version before 2026-12-07 wrote it, which did not record this)
    friends: tuple[str, ...]
    created_at: float | None = None   # the account's own creation time, as its profile says (None: unknown)


@dataclass(frozen=True)
class NewcomerChanges:
    """What changed for the newcomer index since its last read: the accounts whose ties may have changed,
    each with all of its friends now (none: it has lost them), and the accounts deleted since."""

    accounts: tuple[NewAccount, ...]
    gone: tuple[str, ...]


@dataclass(frozen=True)
class GraphCounts:
    users: int
    friendships: int
    requests: int
    blocks: int
    dismissals: int


@dataclass(frozen=True)
class PendingRequests:
    incoming: tuple[str, ...]
    outgoing: tuple[str, ...]


@dataclass(frozen=True)
class UserState:
    """Fresh, correctness-critical state of a viewer, read at serving time."""

    user_id: str
    friends: frozenset[str]
    pending: frozenset[str]            # requests either way
    blocked: frozenset[str]            # blocks either way
    declined: dict[str, float]         # candidate -> when a request between them was declined
    dismissed: frozenset[str]          # suggestions this viewer dismissed
    deactivated: bool = False          # the viewer's own account is closed or suspended: shown nothing
    deleted: bool = False              # the viewer's account was deleted after the served snapshot was made
    unnamed: frozenset[str] = frozenset()   # friends never named in a proof (opted out or deactivated)
    replaced: bool = False             # deleted at or after `accounts_since` and created again: a new account
    ties_ended: frozenset[str] = frozenset()   # candidates of this read with a tie ended since `accounts_since`
