package pymk;

import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.stream.Stream;

import org.neo4j.graphdb.Direction;
import org.neo4j.graphdb.Label;
import org.neo4j.graphdb.Node;
import org.neo4j.graphdb.NotFoundException;
import org.neo4j.graphdb.Relationship;
import org.neo4j.graphdb.RelationshipType;
import org.neo4j.graphdb.Transaction;
import org.neo4j.procedure.Context;
import org.neo4j.procedure.Description;
import org.neo4j.procedure.Mode;
import org.neo4j.procedure.Name;
import org.neo4j.procedure.Procedure;

/**
 * Bulk ingestion procedure, registered by the launcher. Same semantics as the Cypher MERGE in
 * graph/neo4j_store.py (users merged by id, one FRIENDS_WITH per pair from the smaller id to the
 * larger, `since` keeps the earliest time, `written_at` set when the tie or the user is created), without
 * the per-row cost of the Cypher interpreter.
 */
public class IngestProcedures {
    private static final Label USER = Label.label("User");
    private static final RelationshipType FRIENDS = RelationshipType.withName("FRIENDS_WITH");

    /**
     * External id -> internal node id, shared across transactions so bulk loads skip most index
     * seeks. Internal ids can be reused after a delete, so every hit is verified (label and id
     * property) and falls back to the index on mismatch. Cleared when it grows past MAX_CACHED.
     */
    private static final int MAX_CACHED = 2_000_000;
    private static final ConcurrentHashMap<String, Long> NODE_IDS = new ConcurrentHashMap<>();

    @Context
    public Transaction tx;

    public static class Counts {
        public long created;   // ties created
        public long matched;   // ties already there
        public long users;     // users created
    }

    @Procedure(name = "pymk.mergeFriendships", mode = Mode.WRITE)
    @Description("pymk.mergeFriendships(rows :: LIST<MAP>, writtenAt :: FLOAT) - merge {a, b, since} ties (a < b), "
            + "creating missing users; a tie or user created gets written_at = writtenAt")
    public Stream<Counts> mergeFriendships(@Name("rows") List<Map<String, Object>> rows,
                                           @Name("writtenAt") Double writtenAt) {
        Map<String, Node> nodes = new HashMap<>();
        Counts counts = new Counts();
        for (Map<String, Object> row : rows) {
            Node a = user(nodes, (String) row.get("a"), writtenAt, counts);
            Node b = user(nodes, (String) row.get("b"), writtenAt, counts);
            Object since = row.get("since");
            Relationship existing = find(a, b);
            if (existing == null) {
                Relationship r = a.createRelationshipTo(b, FRIENDS);
                if (since != null) {
                    r.setProperty("since", since);
                }
                if (writtenAt != null) {
                    r.setProperty("written_at", writtenAt);
                }
                counts.created++;
            } else {
                counts.matched++;
                if (since != null) {
                    Object old = existing.getProperty("since", null);
                    if (old == null || ((Number) since).doubleValue() < ((Number) old).doubleValue()) {
                        existing.setProperty("since", since);
                    }
                }
            }
        }
        return Stream.of(counts);
    }

    private Node user(Map<String, Node> cache, String id, Double writtenAt, Counts counts) {
        if (id == null) {
            throw new IllegalArgumentException("row without a user id");
        }
        Node n = cache.get(id);
        if (n != null) {
            return n;
        }
        Long known = NODE_IDS.get(id);
        if (known != null) {
            n = verified(known, id);
        }
        if (n == null) {
            n = tx.findNode(USER, "id", id);
            if (n == null) {
                n = tx.createNode(USER);
                n.setProperty("id", id);
                if (writtenAt != null) {
                    n.setProperty("written_at", writtenAt);
                }
                counts.users++;
            }
            if (NODE_IDS.size() >= MAX_CACHED) {
                NODE_IDS.clear();
            }
            NODE_IDS.put(id, n.getId());
        }
        cache.put(id, n);
        return n;
    }

    private Node verified(long nodeId, String id) {
        try {
            Node n = tx.getNodeById(nodeId);
            if (n.hasLabel(USER) && id.equals(n.getProperty("id", null))) {
                return n;
            }
        } catch (NotFoundException e) {
            // deleted since it was cached
        }
        NODE_IDS.remove(id);
        return null;
    }

    /**
     * The a->b tie if it exists. Walks a's outgoing and b's incoming FRIENDS_WITH chains in lockstep,
     * so the cost is about twice the smaller degree without asking for degrees (which walks the
     * chain of a sparse node once more).
     */
    private static Relationship find(Node a, Node b) {
        try (var out = a.getRelationships(Direction.OUTGOING, FRIENDS);
             var in = b.getRelationships(Direction.INCOMING, FRIENDS)) {
            var outIt = out.iterator();
            var inIt = in.iterator();
            while (outIt.hasNext() && inIt.hasNext()) {
                Relationship r = outIt.next();
                if (r.getEndNode().equals(b)) {
                    return r;
                }
                r = inIt.next();
                if (r.getStartNode().equals(a)) {
                    return r;
                }
            }
        }
        return null;
    }
}
