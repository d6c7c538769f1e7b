package pymk;

import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;

import org.neo4j.graphdb.Direction;
import org.neo4j.graphdb.Label;
import org.neo4j.graphdb.Node;
import org.neo4j.graphdb.Relationship;
import org.neo4j.graphdb.Transaction;
import org.neo4j.procedure.Context;
import org.neo4j.procedure.Description;
import org.neo4j.procedure.Mode;
import org.neo4j.procedure.Name;
import org.neo4j.procedure.Procedure;

/**
 * Hard-rule state of one viewer in one pass over its relationships, registered by the launcher.
 * Same result as the Cypher query Q_RULES in graph/neo4j_store.py (which any other server runs):
 * opted-out candidates, friends, pending requests and blocks either way, declined requests either
 * way with their answer time, and the viewer's dismissals. A missing viewer yields null lists.
 */
public class RulesProcedures {
    private static final Label USER = Label.label("User");

    @Context
    public Transaction tx;

    public static class Rules {
        public List<String> opted;
        public List<String> friends;
        public List<String> pending;
        public List<String> blocked;
        public List<List<Object>> declined;
        public List<String> dismissed;
    }

    @Procedure(name = "pymk.viewerRules", mode = Mode.READ)
    @Description("pymk.viewerRules(id :: STRING, ids :: LIST<STRING>) - the viewer's hard-rule state")
    public Stream<Rules> viewerRules(@Name("id") String id, @Name("ids") List<String> ids) {
        Rules out = new Rules();
        out.opted = new ArrayList<>();
        for (String cid : ids) {
            Node c = tx.findNode(USER, "id", cid);
            if (c != null && Boolean.TRUE.equals(c.getProperty("opted_out", null))) {
                out.opted.add(cid);
            }
        }
        Node u = tx.findNode(USER, "id", id);
        if (u == null) {
            return Stream.of(out);
        }
        out.friends = new ArrayList<>();
        out.pending = new ArrayList<>();
        out.blocked = new ArrayList<>();
        out.declined = new ArrayList<>();
        out.dismissed = new ArrayList<>();
        try (var rels = u.getRelationships()) {
            for (Relationship r : rels) {
                Node other = r.getOtherNode(u);
                if (!other.hasLabel(USER)) {
                    continue;
                }
                String oid = (String) other.getProperty("id", null);
                switch (r.getType().name()) {
                    case "FRIENDS_WITH" -> out.friends.add(oid);
                    case "BLOCKED" -> out.blocked.add(oid);
                    case "DISMISSED" -> {
                        if (r.getStartNode().equals(u)) {
                            out.dismissed.add(oid);
                        }
                    }
                    case "REQUESTED" -> {
                        Object status = r.getProperty("status", null);
                        if ("pending".equals(status)) {
                            out.pending.add(oid);
                        } else if ("declined".equals(status)) {
                            List<Object> pair = new ArrayList<>(2);
                            pair.add(oid);
                            pair.add(r.getProperty("responded_at", null));
                            out.declined.add(pair);
                        }
                    }
                    default -> { }
                }
            }
        }
        return Stream.of(out);
    }
}
