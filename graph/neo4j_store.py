"""GraphStore over Neo4j's Bolt protocol: the only module that imports `neo4j`.

Every query is a constant string with parameters (graph/cypher.py); batches are written with UNWIND inside one
managed transaction (retried by the driver on transient errors), so a batch applies whole or not.
Friendships are stored once per pair, directed from the smaller id to the larger, read undirected.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import neo4j
from neo4j import GraphDatabase

from graph import cypher as q
from graph import cypher_rows as rows_of
from graph.breaker import CircuitBreaker
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
from pymk.errors import GraphStoreCircuitOpenError, GraphStoreTimeoutError, GraphStoreUnavailableError
from pymk.settings import Neo4jSettings

log = logging.getLogger(__name__)


# the driver's errors for "cannot reach the server" (refused, dropped, timed out, no routing)
UNAVAILABLE = (neo4j.exceptions.ServiceUnavailable, neo4j.exceptions.SessionExpired, OSError)
# the server's codes for a transaction ended at its timeout (the client's, or its own db.transaction.timeout);
# one ended while it waited for a lock says LockClientStopped (also said of an operator's kill or a shutdown:
# a 503 to retry then too)
TIMED_OUT = frozenset({"Neo.ClientError.Transaction.TransactionTimedOutClientConfiguration",
                       "Neo.ClientError.Transaction.TransactionTimedOut",
                       "Neo.ClientError.Transaction.LockClientStopped"})


class Neo4jGraphStore:
    """GraphStore backed by a Neo4j server reached over Bolt."""

    def __init__(self, cfg: Neo4jSettings, query_timeout_s: float | None = None,
                 breaker: CircuitBreaker | None = None) -> None:
        """`query_timeout_s`: the server's bound on each query (None: its db.transaction.timeout); the API's
        store has one, batch jobs' none. A server that stops answering is given up on after its own
        `connection.recv_timeout_seconds` hint (keep-alive x probes: PYMK_NEO4J_KEEP_ALIVE_S x 2 locally);
        with a `breaker` (the API's) the calls after such a slow failure then fail at once."""
        auth = (cfg.user, cfg.password) if cfg.password else None
        self._timeout = query_timeout_s or None
        self._driver = GraphDatabase.driver(
            cfg.bolt_uri, auth=auth, notifications_min_severity="OFF",
            # transient failures (deadlocks, leader switches) are retried within the same budget
            max_transaction_retry_time=min(30.0, self._timeout or 30.0),
            connection_timeout=cfg.connect_timeout_s, connection_acquisition_timeout=2 * cfg.connect_timeout_s,
        )
        self._breaker = breaker
        self._db = cfg.database
        self._uri = cfg.bolt_uri
        self._use_procedures = cfg.procedures
        self._procedures: frozenset[str] | None = None  # the launcher's procedures this code can call; lazy

    # plumbing
    def _has(self, procedure: str) -> bool:
        """Whether to call this procedure of the bundled launcher (probed once; any other server, or one with
        another version of it: no)."""
        if not self._use_procedures:
            return False
        if self._procedures is None:
            found = dict(self._read(q.Q_PROCEDURES)[0]["procedures"])
            self._procedures = frozenset(n for n, sig in found.items() if q.PROCEDURE_SIGNATURES.get(n, "") in sig)
            log.info("server-side procedures: %s", ", ".join(sorted(self._procedures)) or "none (plain Cypher)")
            for name in sorted(found.keys() - self._procedures):
                log.warning("the server's %s is another version (%s; this code calls %s): plain Cypher instead, "
                            "slower; restart the local Neo4j to load the current launcher", name, found[name],
                            q.PROCEDURE_SIGNATURES[name])
        return procedure in self._procedures

    @contextmanager
    def _reachable(self) -> Iterator[None]:
        """Every call to the server goes through here: one it cannot reach is GraphStoreUnavailableError,
        a query the server ended at this store's bound GraphStoreTimeoutError (a kind of it), and a call
        the breaker holds back GraphStoreCircuitOpenError (another kind)."""
        breaker, trial = self._breaker, False
        if breaker is not None:
            go, wait_s, trial = breaker.admit()
            if not go:
                raise GraphStoreCircuitOpenError(self._uri, breaker.cause, wait_s)
        start = time.monotonic()
        try:
            yield
        except UNAVAILABLE as exc:
            if breaker is not None:
                breaker.failed(time.monotonic() - start, exc, trial)
                breaker = None
            raise GraphStoreUnavailableError(self._uri, exc) from exc
        except neo4j.exceptions.ClientError as exc:
            if self._timeout is not None and exc.code in TIMED_OUT:
                raise GraphStoreTimeoutError(self._uri, self._timeout, exc) from exc
            raise
        finally:
            if breaker is not None:   # the server answered (an error of the query is an answer too)
                breaker.succeeded()

    def _query(self, text: str, bounded: bool = True) -> neo4j.Query:
        """`text` (a constant of graph/cypher.py) with this store's bound on how long it may run."""
        return neo4j.Query(text, timeout=self._timeout if bounded else None)  # type: ignore[arg-type]

    def _write(self, statements: Sequence[tuple[str, dict[str, Any]]]) -> None:
        @neo4j.unit_of_work(timeout=self._timeout)
        def work(tx: neo4j.ManagedTransaction) -> None:
            for query, params in statements:
                tx.run(query, params).consume()

        with self._reachable(), self._driver.session(database=self._db) as session:
            session.execute_write(work)

    def _read(self, query: str, **params: Any) -> list[neo4j.Record]:
        """An auto-commit read: one round trip (serving reads are small and idempotent, never retried:
        a server that cannot be reached is reported at once as GraphStoreUnavailableError)."""
        with self._reachable(), self._driver.session(database=self._db,
                                                     default_access_mode=neo4j.READ_ACCESS) as session:
            return list(session.run(self._query(query), params))

    def _execute(self, query: str, bounded: bool = True, **params: Any) -> list[neo4j.Record]:
        """A write whose result is read back (its count), in one managed transaction."""
        with self._reachable():
            return self._driver.execute_query(self._query(query, bounded), params, database_=self._db).records

    def _stream(self, query: str, batch_size: int, **params: Any) -> Iterator[list[neo4j.Record]]:
        with self._reachable(), self._driver.session(database=self._db, fetch_size=batch_size) as session:
            batch: list[neo4j.Record] = []
            for record in session.run(self._query(query), params):
                batch.append(record)
                if len(batch) >= batch_size:
                    yield batch
                    batch = []
            if batch:
                yield batch

    def server_info(self) -> str:
        with self._reachable():
            info = self._driver.get_server_info()
        return f"{info.agent} at {self._uri} (Bolt {'.'.join(map(str, info.protocol_version))})"

    def ensure_schema(self) -> None:
        with self._reachable():
            for statement in q.SCHEMA:
                self._driver.execute_query(self._query(statement), database_=self._db)

    def close(self) -> None:
        self._driver.close()

    # writes
    def upsert_users(self, users: Sequence[UserRecord], created_at_default: float | None = None) -> int:
        rows = [{"id": u.id, "props": u.properties()} for u in users]
        if rows:
            self._write([(q.Q_UPSERT_USERS, {"rows": rows, "created_default": created_at_default, "at": time.time()})])
        return len(rows)

    def add_friendships(self, edges: Sequence[Friendship]) -> int:
        rows = rows_of.friendship_rows(edges)
        if not rows:
            return 0
        if self._has("pymk.mergeFriendships"):
            self._write([(q.Q_BULK_FRIENDS, {"rows": rows, "at": time.time()})])
        else:
            ids = sorted({r[k] for r in rows for k in ("a", "b")})
            at = time.time()
            self._write([(q.Q_MERGE_IDS, {"ids": ids, "at": at}), (q.Q_MERGE_FRIENDS, {"rows": rows, "at": at})])
        return len(rows)

    def remove_friendship(self, a: str, b: str) -> bool:
        records = self._execute(q.Q_REMOVE_FRIEND, a=a, b=b, at=time.time())
        return bool(records and records[0]["n"])

    def apply_events(self, events: Sequence[Event]) -> int:
        statements, applied = rows_of.event_statements(events)
        if statements:
            self._write(statements)
        return applied

    def set_opted_out(self, user_id: str, opted_out: bool) -> None:
        self._write([(q.Q_SET_OPT_OUT, {"id": user_id, "value": opted_out})])

    def delete_users(self, ids: Iterable[str]) -> int:
        # never bounded: its cost grows with the accounts' ties (3.3-3.7 s for one with 100,000 on 2 cores),
        # and an erasure that always ran out would never happen
        records = self._execute(q.Q_DELETE_USERS, bounded=False, ids=sorted(set(ids)), at=time.time())
        return int(records[0]["n"]) if records else 0

    def deletions(self, ids: Iterable[str] | None = None, since: float | None = None) -> dict[str, float]:
        if ids is not None:
            records = self._read(q.Q_DELETIONS_OF, ids=list(ids))
        else:
            records = self._read(q.Q_DELETIONS) if since is None else self._read(q.Q_DELETIONS_SINCE, since=since)
        return {r["id"]: float(r["at"]) if r["again"] else math.inf for r in records
                if since is None or r["at"] >= since}

    def delete_users_with_prefix(self, prefix: str) -> int:
        if not prefix:
            raise ValueError("refusing to delete with an empty prefix (that is every user)")
        # CALL IN TRANSACTIONS needs autocommit
        with self._reachable(), self._driver.session(database=self._db) as session:
            record = session.run(self._query(q.Q_DELETE_PREFIX), {"prefix": prefix}).single()
        self._write([(q.Q_PURGE_TOMBSTONES_PREFIX, {"prefix": prefix})])   # a namespace wiped leaves nothing
        return int(record["n"]) if record else 0

    # reads
    def get_user(self, user_id: str) -> UserRecord | None:
        records = self._read(q.Q_GET_USER, id=user_id)
        return rows_of.user_from_props(records[0]["p"]) if records else None

    def account_data(self, user_id: str) -> AccountData | None:
        records = self._read(q.Q_ACCOUNT, id=user_id)
        if not records:
            return None
        r = records[0]
        return AccountData.of(r["p"], r["friends"], r["sent"], r["received"], r["blocks"], r["dismissals"])

    def existing_users(self, ids: Iterable[str]) -> set[str]:
        return {r["id"] for r in self._read(q.Q_EXISTING, ids=list(ids))}

    def ties_among(self, pairs: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
        return {tuple(r["pair"]) for r in self._read(q.Q_TIES_AMONG, pairs=[list(p) for p in pairs])}

    def opted_out_among(self, ids: Iterable[str]) -> set[str]:
        return rows_of.unsuggestable_from_row(self._read(q.Q_OPTED_OUT, ids=list(ids), since=None)[0], None)

    def friends(self, user_id: str) -> list[str]:
        return [r["id"] for r in self._read(q.Q_FRIENDS, id=user_id)]

    def pending_requests(self, user_id: str) -> PendingRequests:
        records = self._read(q.Q_PENDING, id=user_id)
        return rows_of.pending_from_row(records[0] if records else None)

    def blocked(self, user_id: str) -> set[str]:
        return {r["id"] for r in self._read(q.Q_BLOCKED, id=user_id)}

    def user_state(self, user_id: str) -> UserState:
        return self.viewer_rules(user_id, [])[0]

    def viewer_rules(self, user_id: str, candidate_ids: Iterable[str], accounts_since: float | None = None
                     ) -> tuple[UserState, set[str]]:
        record = self._read(q.Q_RULES, id=user_id, ids=list(candidate_ids), since=accounts_since)[0]
        return rows_of.state_from_rules_row(user_id, record), rows_of.unsuggestable_from_row(record, accounts_since)

    def friends_of_friends(self, user_id: str, limit: int, max_friend_degree: int) -> list[FofRow]:
        records = self._read(q.Q_FOF, id=user_id, limit=limit, max_deg=max_friend_degree)
        return fof_order(user_id, [rows_of.fof_row(r["candidate"], r["mutual_count"], r["aa"], r["mutual"])
                                   for r in records], limit)

    def fresh_view(self, user_id: str, limit: int, max_friend_degree: int) -> FreshView:
        records = self._read(q.Q_FRESH_VIEW, id=user_id, limit=limit, max_deg=max_friend_degree)
        if not records:
            return FreshView(None, (), ())
        r = records[0]
        return FreshView(rows_of.user_from_props(r["p"]), tuple(sorted(r["friends"])),
                         tuple(fof_order(user_id, [rows_of.fof_row(*row) for row in r["fof"]], limit)))

    def new_accounts(self, since: float, limit: int, max_friends: int) -> list[NewAccount]:
        records = self._read(q.Q_NEW_ACCOUNTS, since=since, limit=limit, max_friends=max_friends)
        return [rows_of.new_account(r) for r in records]

    def newcomer_changes(self, since: float, changed_since: float, limit: int, max_friends: int) -> NewcomerChanges:
        params = {"since": since, "changed": max(since, changed_since)}
        with self._reachable(), self._driver.session(database=self._db,
                                                     default_access_mode=neo4j.READ_ACCESS) as session:
            def work(tx: neo4j.ManagedTransaction) -> NewcomerChanges:   # one snapshot of the store for both
                accounts = tx.run(q.Q_NEWCOMER_CHANGES, {**params, "limit": limit, "max_friends": max_friends})
                changed = [rows_of.new_account(r) for r in accounts]
                gone = tuple(r["id"] for r in tx.run(q.Q_DELETED_SINCE, params))
                return NewcomerChanges(tuple(changed), gone)
            return session.execute_read(neo4j.unit_of_work(timeout=self._timeout)(work))

    def counts(self) -> GraphCounts:
        return GraphCounts(**{name: int(self._read(q)[0]["n"]) for name, q in q.Q_COUNTS.items()})

    # bulk reads
    def iter_users(self, batch_size: int = 10_000) -> Iterator[list[UserRecord]]:
        for batch in self._stream(q.Q_ALL_USERS, batch_size):
            yield [rows_of.user_from_props(r["p"]) for r in batch]

    def iter_friendships(self, batch_size: int = 50_000) -> Iterator[list[Friendship]]:
        batch: list[Friendship] = []
        for records in self._stream(q.Q_ALL_FRIENDS, max(1, batch_size // 20)):
            for r in records:
                a = r["a"]
                batch.extend(Friendship(a, b, since) for b, since in r["ties"])
            if len(batch) >= batch_size:
                yield batch
                batch = []
        if batch:
            yield batch

    def iter_requests(self, batch_size: int = 50_000, since: float | None = None) -> Iterator[list[Request]]:
        for batch in self._stream(q.Q_ALL_REQUESTS, batch_size, since=since):
            yield [Request(r["src"], r["dst"], r["sent_at"], r["status"], r["responded_at"]) for r in batch]

    def iter_blocks(self, batch_size: int = 50_000) -> Iterator[list[tuple[str, str, float]]]:
        for batch in self._stream(q.Q_ALL_BLOCKS, batch_size):
            yield [(r["src"], r["dst"], r["at"]) for r in batch]
