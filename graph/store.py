"""The graph store protocol. Only `graph.neo4j_store` knows Cypher; the rest of pymk sees this."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Protocol, runtime_checkable

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


@runtime_checkable
class GraphStore(Protocol):
    """What serving, ingestion and snapshot export need from the system of record."""

    def server_info(self) -> str:
        """A short description of the backing server, with its version."""

    def ensure_schema(self) -> None:
        """Create constraints and indexes; safe to call any number of times."""

    # writes (all idempotent)
    def upsert_users(self, users: Sequence[UserRecord], created_at_default: float | None = None) -> int:
        """Create or update accounts (a field a record leaves out keeps its value). An account this call
        creates gets `created_at_default` (the API's sign-ups: now) unless its record gives `created_at`;
        an existing one, even one without a creation time (made by a tie), keeps what it has. Every account
        either write creates is stamped with when it entered the store (`written_at`, the writer's clock), which
        no record can set: what the newcomer index reads by, whatever `created_at` a file gives."""

    def add_friendships(self, edges: Sequence[Friendship]) -> int:
        """Merge ties (creating missing users); `since` keeps the earliest time. Returns rows applied."""

    def remove_friendship(self, a: str, b: str) -> bool: ...
    def apply_events(self, events: Sequence[Event]) -> int:
        """Apply send/accept/decline/block/dismiss to the graph (impressions are not graph state)."""

    def set_opted_out(self, user_id: str, opted_out: bool) -> None: ...
    def delete_users(self, ids: Iterable[str]) -> int:
        """Delete accounts, each leaving a tombstone (never suggested nor served until created again)."""

    def deletions(self, ids: Iterable[str] | None = None, since: float | None = None) -> dict[str, float]:
        """Every deleted account (its tombstone; with `ids`, among those; with `since`, those deleted at or
        after it), and until when records under its id are that account's: all of them (inf) while the id
        is not created again, those before the deletion once it is (the id is a new account's from then
        on). What erasure works from."""

    def delete_users_with_prefix(self, prefix: str) -> int:
        """Delete every user whose id starts with `prefix` (test data, a tenant's namespace)."""

    # reads
    def get_user(self, user_id: str) -> UserRecord | None: ...
    def account_data(self, user_id: str) -> AccountData | None:
        """Everything stored about one account and its own actions (None: no such user)."""

    def existing_users(self, ids: Iterable[str]) -> set[str]: ...
    def friends(self, user_id: str) -> list[str]: ...
    def ties_among(self, pairs: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
        """The pairs, of those given, that are friends now (each as given)."""
    def pending_requests(self, user_id: str) -> PendingRequests: ...
    def blocked(self, user_id: str) -> set[str]: ...
    def user_state(self, user_id: str) -> UserState: ...
    def opted_out_among(self, ids: Iterable[str]) -> set[str]: ...
    def viewer_rules(self, user_id: str, candidate_ids: Iterable[str], accounts_since: float | None = None
                     ) -> tuple[UserState, set[str]]:
        """`user_state` and `opted_out_among(candidate_ids)` together (one round trip where it matters).

        With `accounts_since` (when the served snapshot read the accounts), an id deleted at or after it
        and created again is a new account that record does not describe: among the candidates it is
        unsuggestable, and as the viewer its state says `replaced`."""
    def friends_of_friends(self, user_id: str, limit: int, max_friend_degree: int) -> list[FofRow]:
        """Candidates two hops away, by mutual count then Adamic-Adar then id.

        Friends whose degree exceeds `max_friend_degree` are not used as intermediaries (hub cap).
        """

    def fresh_view(self, user_id: str, limit: int, max_friend_degree: int) -> FreshView:
        """`get_user`, `friends` and `friends_of_friends` of one user, in one round trip."""

    def new_accounts(self, since: float, limit: int, max_friends: int) -> list[NewAccount]:
        """The `limit` newest accounts that entered the store at or after `since` (`written_at`; newest first),
        those with a friend, each with up to `max_friends` of its friends (the first by id). An account written
        by a version that did not stamp `written_at` counts by its `created_at`."""

    def newcomer_changes(self, since: float, changed_since: float, limit: int, max_friends: int) -> NewcomerChanges:
        """Among the accounts that entered the store at or after `since` (as `new_accounts` reads them), the
        `limit` newest whose ties may have changed at or after `changed_since` (written then, a tie written or
        ended then), each with up to `max_friends`
        of its friends now (the first by id; none: it lost them), and the accounts deleted at or after
        `changed_since` and not created again. Ties are dated by when they entered the store (the writer's
        clock), not by their `since`."""

    def counts(self) -> GraphCounts: ...

    # bulk reads for the snapshot
    def iter_users(self, batch_size: int = 10_000) -> Iterator[list[UserRecord]]: ...
    def iter_friendships(self, batch_size: int = 50_000) -> Iterator[list[Friendship]]: ...
    def iter_requests(self, batch_size: int = 50_000, since: float | None = None) -> Iterator[list[Request]]:
        """Every pending request, and the others sent or answered at or after `since` (None: every one)."""
    def iter_blocks(self, batch_size: int = 50_000) -> Iterator[list[tuple[str, str, float]]]: ...

    def close(self) -> None: ...
