"""The Cypher the graph store runs: constant strings that take parameters, never formatted.

Kept apart from graph/neo4j_store.py (the only module that imports `neo4j`) so the store's
code and its queries can each be read whole; the parameters they take and the records they return
are built and decoded in graph/cypher_rows.py.
"""

from __future__ import annotations

SCHEMA = (
    "CREATE CONSTRAINT user_id_unique IF NOT EXISTS FOR (u:User) REQUIRE u.id IS UNIQUE",
    "CREATE INDEX user_created_at IF NOT EXISTS FOR (u:User) ON (u.created_at)",
    "CREATE INDEX user_city IF NOT EXISTS FOR (u:User) ON (u.city)",
    # dropped (made by earlier versions): with it the planner answered "this user's pending requests" by
    # seeking every pending request of the database, ~3x slower per request at 20,000 of them and growing
    "DROP INDEX requested_status IF EXISTS",
    "CREATE CONSTRAINT deleted_user_id_unique IF NOT EXISTS FOR (d:DeletedUser) REQUIRE d.id IS UNIQUE",
    # what changed since a time, for the newcomer index's incremental reads (Q_NEWCOMER_CHANGES)
    "CREATE INDEX friends_written_at IF NOT EXISTS FOR ()-[r:FRIENDS_WITH]-() ON (r.written_at)",
    "CREATE INDEX user_ties_ended_at IF NOT EXISTS FOR (u:User) ON (u.ties_ended_at)",
    "CREATE INDEX deleted_user_at IF NOT EXISTS FOR (d:DeletedUser) ON (d.at)",
    "CREATE INDEX user_written_at IF NOT EXISTS FOR (u:User) ON (u.written_at)",
)
# An account these create is stamped `written_at` (the writer's clock, $at): when it entered the store, whatever
# its created_at says (a file may date it years back, or not at all). No row sets it: its props are the profile's.
Q_MERGE_IDS = "UNWIND $ids AS id MERGE (u:User {id: id}) ON CREATE SET u.written_at = $at"
# $created_default dates an account this statement creates (a sign-up), when its row gives no created_at
Q_UPSERT_USERS = """
UNWIND $rows AS row MERGE (u:User {id: row.id}) ON CREATE SET u.created_at = $created_default, u.written_at = $at
SET u += row.props
"""
_MATCH_PAIRS = """
UNWIND $rows AS row
MATCH (a:User {id: row.a}) MATCH (b:User {id: row.b})
"""
# `written_at` (the writer's clock, $at) is when the tie entered the store, whatever its `since` says (a file
# may date it years back): the newcomer index reads the ties written since its last read by it.
_MERGE_TIE = """
MERGE (a)-[r:FRIENDS_WITH]->(b)
ON CREATE SET r.since = row.since, r.written_at = $at
ON MATCH SET r.since = CASE WHEN row.since IS NOT NULL AND (r.since IS NULL OR row.since < r.since)
                            THEN row.since ELSE r.since END
"""
Q_MERGE_FRIENDS = _MATCH_PAIRS + _MERGE_TIE
# A tie made by an accepted request, dated when the request stands accepted (never before it was sent):
# only while it does (an older accept arriving after a newer decline makes none), and never between two
# users with a block either way, whichever batch the block came in (a block in the same batch runs after
# this and removes the tie). Rows: src accepted dst's request; a, b the pair in stored order.
Q_ACCEPT_FRIENDS = """
UNWIND $rows AS event
MATCH (:User {id: event.src})<-[q:REQUESTED {status: 'accepted'}]-(:User {id: event.dst})
MATCH (a:User {id: event.a}) MATCH (b:User {id: event.b})
WHERE NOT EXISTS { (a)-[:BLOCKED]-(b) }
WITH a, b, {since: q.responded_at} AS row
""" + _MERGE_TIE + """
WITH a, b, row
OPTIONAL MATCH (a)-[p:REQUESTED {status: 'pending'}]-(b)
SET p.status = 'accepted', p.responded_at = CASE WHEN p.sent_at > row.since THEN p.sent_at ELSE row.since END
"""
# Same semantics as Q_MERGE_IDS + Q_MERGE_FRIENDS, as a procedure the bundled launcher registers
# (graph/neo4j_launcher/.../IngestProcedures.java); several times faster than interpreted MERGE.
Q_BULK_FRIENDS = "CALL pymk.mergeFriendships($rows, $at) YIELD created, matched RETURN created, matched"
Q_PROCEDURES = """
SHOW PROCEDURES YIELD name, signature WHERE name STARTS WITH 'pymk.' RETURN collect([name, signature]) AS procedures
"""
# What a procedure's signature must hold for this code to call it: a server still running an older
# launcher (started before an upgrade) has it with other arguments, and gets plain Cypher instead.
# (Its outputs count: a launcher from before `users` was one did not stamp the users it creates.)
PROCEDURE_SIGNATURES = {"pymk.mergeFriendships":
                        "(rows :: LIST<MAP>, writtenAt :: FLOAT) :: (created :: INTEGER, matched :: INTEGER, "
                        "users :: INTEGER)"}
# Both users of a tie that ends are stamped (`ties_ended_at`, the writer's clock): a snapshot made before
# still holds the tie, so serving names no mutual friend in their proofs until a snapshot made since.
Q_REMOVE_FRIEND = """
MATCH (a:User {id: $a})-[r:FRIENDS_WITH]-(b:User {id: $b})
SET a.ties_ended_at = $at, b.ties_ended_at = $at
DELETE r RETURN count(r) AS n
"""
# A request's state in time order (see event_statements: each request's events run one per statement):
# a send after the answer to an earlier request opens a new pending one (a second try after a decline's
# cool-down, or after an unfriending); a send while one is pending, or one older than the last answer,
# changes nothing (a retry, a file ingested again); an answer older than the last answer changes nothing,
# and so does one dated more than ANSWER_SKEW_S before the pending request (it answered an earlier one);
# one dated less than that before it (the answering client's clock behind the sender's) is dated when the
# request was sent. A send to a friend changes nothing (a stale client, or a tie made outside requests), nor
# does one across a block either way; the tie an accept makes answers the other way's pending request too
# (crossed requests: each had sent one), and a block withdraws the pending requests between the two.
ANSWER_SKEW_S = 3600.0
Q_SEND = """
UNWIND $rows AS row
MATCH (a:User {id: row.src}) MATCH (b:User {id: row.dst})
WHERE NOT EXISTS { (a)-[:FRIENDS_WITH]-(b) } AND NOT EXISTS { (a)-[:BLOCKED]-(b) }
MERGE (a)-[r:REQUESTED]->(b) ON CREATE SET r.sent_at = row.ts, r.status = 'pending'
WITH r, row WHERE r.status <> 'pending' AND row.ts > coalesce(r.responded_at, r.sent_at)
SET r.sent_at = row.ts, r.status = 'pending', r.responded_at = null
"""
Q_RESPOND = """
UNWIND $rows AS row
MATCH (me:User {id: row.src}) MATCH (other:User {id: row.dst})
MERGE (other)-[r:REQUESTED]->(me) ON CREATE SET r.sent_at = row.ts, r.status = 'pending'
WITH r, row WHERE CASE WHEN r.status = 'pending' THEN row.ts >= r.sent_at - $skew ELSE row.ts >= r.responded_at END
SET r.status = row.status, r.responded_at = CASE WHEN row.ts < r.sent_at THEN r.sent_at ELSE row.ts END
"""
Q_BLOCK = """
UNWIND $rows AS row
MATCH (a:User {id: row.src}) MATCH (b:User {id: row.dst})
MERGE (a)-[k:BLOCKED]->(b) ON CREATE SET k.at = row.ts
WITH a, b
OPTIONAL MATCH (a)-[f:FRIENDS_WITH]-(b)
FOREACH (_ IN CASE WHEN f IS NULL THEN [] ELSE [1] END | SET a.ties_ended_at = $at, b.ties_ended_at = $at)
DELETE f
WITH a, b
OPTIONAL MATCH (a)-[p:REQUESTED {status: 'pending'}]-(b)
DELETE p
"""
Q_UNBLOCK = """
UNWIND $rows AS row
MATCH (:User {id: row.src})-[k:BLOCKED]->(:User {id: row.dst})
DELETE k
"""
Q_DISMISS = """
UNWIND $rows AS row
MATCH (a:User {id: row.src}) MATCH (b:User {id: row.dst})
MERGE (a)-[d:DISMISSED]->(b) ON CREATE SET d.at = row.ts
ON MATCH SET d.at = CASE WHEN row.ts > d.at THEN row.ts ELSE d.at END
"""
Q_SET_OPT_OUT = "MATCH (u:User {id: $id}) SET u.opted_out = $value RETURN count(u) AS n"
# A deleted account leaves a tombstone (its id and when) so the served snapshot, made before the deletion,
# stops suggesting it at once; a user created again under the same id is not deleted (it has a node).
Q_DELETE_USERS = """
UNWIND $ids AS id MATCH (u:User {id: id}) DETACH DELETE u
WITH id MERGE (d:DeletedUser {id: id}) SET d.at = $at
RETURN count(*) AS n
"""
_DELETION = "RETURN d.id AS id, d.at AS at, EXISTS { MATCH (:User {id: d.id}) } AS again"
Q_DELETIONS = "MATCH (d:DeletedUser) " + _DELETION
Q_DELETIONS_OF = "UNWIND $ids AS id MATCH (d:DeletedUser {id: id}) " + _DELETION
Q_DELETIONS_SINCE = "MATCH (d:DeletedUser) WHERE d.at >= $since " + _DELETION   # through the index on `at`
Q_PURGE_TOMBSTONES_PREFIX = "MATCH (d:DeletedUser) WHERE d.id STARTS WITH $prefix DELETE d"
Q_DELETE_PREFIX = """
MATCH (u:User) WHERE u.id STARTS WITH $prefix
CALL (u) { DETACH DELETE u } IN TRANSACTIONS OF 5000 ROWS
RETURN count(*) AS n
"""
Q_GET_USER = "MATCH (u:User {id: $id}) RETURN properties(u) AS p"
# An access request: the account's properties, ties and its own requests, blocks and dismissals.
Q_ACCOUNT = """
MATCH (u:User {id: $id})
RETURN properties(u) AS p,
       [(u)-[r:FRIENDS_WITH]-(f:User) | [f.id, r.since]] AS friends,
       [(u)-[r:REQUESTED]->(x:User) | [x.id, r.sent_at, r.status, r.responded_at]] AS sent,
       [(u)<-[r:REQUESTED]-(x:User) | [x.id, r.sent_at, r.status, r.responded_at]] AS received,
       [(u)-[k:BLOCKED]->(x:User) | [x.id, k.at]] AS blocks,
       [(u)-[d:DISMISSED]->(x:User) | [x.id, d.at]] AS dismissals
"""
Q_EXISTING = "UNWIND $ids AS id MATCH (u:User {id: id}) RETURN u.id AS id"
# (the ids bound first: seeking on `pair[0]` itself ran ~3x slower on 5.26, 5.3 against 1.7 ms for 20 pairs)
Q_TIES_AMONG = """
UNWIND $pairs AS pair WITH pair, pair[0] AS x, pair[1] AS y
MATCH (a:User {id: x}) MATCH (b:User {id: y}) WHERE EXISTS { (a)-[:FRIENDS_WITH]-(b) } RETURN pair
"""
# The candidates' flags in two plain passes, one index seek each: their users (opted out or deactivated,
# missing, a tie ended at or after $since) and their tombstones; `unsuggestable_from_row` applies the
# rule. An OR of EXISTS subqueries per candidate cost more than the seeks themselves (RESULTS).
_CANDIDATE_FLAGS = """
CALL () {
  UNWIND $ids AS cid OPTIONAL MATCH (x:User {id: cid})
  RETURN collect(CASE WHEN x.opted_out = true OR x.deactivated = true THEN cid END) AS flagged,
         collect(CASE WHEN x IS NULL THEN cid END) AS missing,
         collect(CASE WHEN $since IS NOT NULL AND x.ties_ended_at >= $since THEN cid END) AS ties_ended
}
CALL () {
  UNWIND $ids AS cid MATCH (d:DeletedUser {id: cid})
  RETURN collect([cid, d.at]) AS tombstones
}
"""
Q_OPTED_OUT = _CANDIDATE_FLAGS + "RETURN flagged, missing, tombstones"
Q_FRIENDS = "MATCH (:User {id: $id})-[:FRIENDS_WITH]-(f:User) RETURN f.id AS id ORDER BY id"
Q_PENDING = """
MATCH (u:User {id: $id})
RETURN [(u)<-[r:REQUESTED]-(x) | [x.id, r.status]] AS incoming,
       [(u)-[r:REQUESTED]->(x) | [x.id, r.status]] AS outgoing
"""
Q_BLOCKED = "MATCH (:User {id: $id})-[:BLOCKED]-(x:User) RETURN DISTINCT x.id AS id"
# The viewer's rule state and the candidates' flags, in one round trip (serving).
Q_RULES = _CANDIDATE_FLAGS + """
OPTIONAL MATCH (u:User {id: $id})
RETURN flagged, missing, ties_ended, tombstones, coalesce(u.deactivated, false) AS deactivated,
       u IS NULL AND EXISTS { MATCH (:DeletedUser {id: $id}) } AS deleted,
       u IS NOT NULL AND $since IS NOT NULL
         AND EXISTS { MATCH (d:DeletedUser {id: $id}) WHERE d.at >= $since } AS replaced,
       [(u)-[:FRIENDS_WITH]-(f) | [f.id, f.opted_out = true OR f.deactivated = true]] AS friends,
       [(u)-[r:REQUESTED]-(p) | [p.id, r.status, r.responded_at]] AS requests,
       [(u)-[:BLOCKED]-(b) | b.id] AS blocked,
       [(u)-[:DISMISSED]->(x) | x.id] AS dismissed
"""
_FOF = """
MATCH (u)-[:FRIENDS_WITH]-(f:User)
WITH u, f, COUNT { (f)-[:FRIENDS_WITH]-() } AS fdeg
WHERE fdeg <= $max_deg
MATCH (f)-[:FRIENDS_WITH]-(c:User)
WHERE c <> u AND NOT EXISTS { (u)-[:FRIENDS_WITH]-(c) }
WITH c.id AS candidate, collect(f.id) AS mutual, sum(1.0 / log(fdeg)) AS aa
WITH candidate, size(mutual) AS mutual_count, aa, round(aa, 9) AS aa9, mutual
ORDER BY mutual_count DESC, aa9 DESC
WITH collect([candidate, mutual_count, aa, mutual, aa9]) AS ranked
WITH ranked, ranked[$limit - 1] AS cut
UNWIND [r IN ranked WHERE cut IS NULL OR r[1] > cut[1] OR (r[1] = cut[1] AND r[4] >= cut[4])] AS r
WITH r[0] AS candidate, r[1] AS mutual_count, r[2] AS aa, r[3] AS mutual
"""
Q_FOF = "MATCH (u:User {id: $id})" + _FOF + "RETURN candidate, mutual_count, aa, mutual"
# A viewer served off the snapshot (the fresh path): its profile, its friends and Q_FOF's rows in one read
Q_FRESH_VIEW = """
MATCH (u:User {id: $id})
CALL (u) {""" + _FOF + """RETURN collect([candidate, mutual_count, aa, mutual]) AS fof
}
RETURN properties(u) AS p, [(u)-[:FRIENDS_WITH]-(x:User) | x.id] AS friends, fof
"""
# When an account entered the store: `written_at`, or its created_at where a version that did not stamp it wrote it
_JOINED = "coalesce(n.written_at, n.created_at)"
# The accounts that entered the store at or after $since (two index seeks: those stamped, and those from before
# the stamp by created_at), the newest $limit of them with a friend, each with up to $max_friends friends; the
# accounts without one count towards $limit (they are the newest too).
Q_NEW_ACCOUNTS = """
CALL () {
  MATCH (n:User) WHERE n.written_at >= $since RETURN n
  UNION
  MATCH (n:User) WHERE n.created_at >= $since AND n.written_at IS NULL RETURN n
}
WITH n, """ + _JOINED + """ AS joined ORDER BY joined DESC, n.id ASC LIMIT $limit
MATCH (n)-[:FRIENDS_WITH]-(f:User)
WITH n, joined, f ORDER BY f.id
RETURN n.id AS id, joined AS written_at, n.created_at AS created_at, collect(f.id)[..$max_friends] AS friends
ORDER BY written_at DESC, id ASC
"""
# The accounts that entered the store at or after $since whose ties may have changed at or after $changed
# ($changed >= $since): written then, a tie written then (`written_at`), or a tie ended then (`ties_ended_at`);
# each with all of its friends now (none: it lost them), newest first. Each branch seeks its own index; the
# ties' branch starts from the ties alone, or the planner would expand every newcomer's ties from an index on
# the accounts instead.
Q_NEWCOMER_CHANGES = """
CALL () {
  MATCH (n:User) WHERE n.written_at >= $changed RETURN n
  UNION
  MATCH (n:User) WHERE n.created_at >= $changed AND n.written_at IS NULL RETURN n
  UNION
  MATCH ()-[r:FRIENDS_WITH]->() WHERE r.written_at >= $changed
  UNWIND [startNode(r), endNode(r)] AS n WITH n WHERE """ + _JOINED + """ >= $since RETURN n
  UNION
  MATCH (n:User) WHERE n.ties_ended_at >= $changed AND """ + _JOINED + """ >= $since RETURN n
}
WITH n, """ + _JOINED + """ AS joined ORDER BY joined DESC, n.id ASC LIMIT $limit
RETURN n.id AS id, joined AS written_at, n.created_at AS created_at,
       COLLECT { MATCH (n)-[:FRIENDS_WITH]-(f:User) RETURN f.id ORDER BY f.id LIMIT $max_friends } AS friends
ORDER BY written_at DESC, id ASC
"""
# the accounts deleted at or after $changed and not created again
Q_DELETED_SINCE = """
MATCH (d:DeletedUser) WHERE d.at >= $changed AND NOT EXISTS { MATCH (:User {id: d.id}) } RETURN d.id AS id
"""
Q_COUNTS = {
    "users": "MATCH (u:User) RETURN count(u) AS n",
    "friendships": "MATCH ()-[r:FRIENDS_WITH]->() RETURN count(r) AS n",
    "requests": "MATCH ()-[r:REQUESTED]->() RETURN count(r) AS n",
    "blocks": "MATCH ()-[r:BLOCKED]->() RETURN count(r) AS n",
    "dismissals": "MATCH ()-[r:DISMISSED]->() RETURN count(r) AS n",
}
Q_ALL_USERS = "MATCH (u:User) RETURN properties(u) AS p"
# One record per user with its outgoing ties (each tie is stored once, a -> b): ~4x faster to stream
# over Bolt than one record per tie.
Q_ALL_FRIENDS = """
MATCH (a:User)
CALL (a) { MATCH (a)-[r:FRIENDS_WITH]->(b:User) RETURN collect([b.id, r.since]) AS ties }
WITH a, ties WHERE size(ties) > 0
RETURN a.id AS a, ties
"""
# every pending request, and the others sent or answered at or after $since (null: all of them)
Q_ALL_REQUESTS = """
MATCH (a:User)-[r:REQUESTED]->(b:User)
WHERE $since IS NULL OR r.status = 'pending' OR coalesce(r.responded_at, r.sent_at) >= $since
RETURN a.id AS src, b.id AS dst, r.sent_at AS sent_at, r.status AS status, r.responded_at AS responded_at
"""
Q_ALL_BLOCKS = "MATCH (a:User)-[r:BLOCKED]->(b:User) RETURN a.id AS src, b.id AS dst, r.at AS at"
