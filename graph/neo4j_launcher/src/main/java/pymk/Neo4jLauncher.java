package pymk;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.CountDownLatch;

import org.neo4j.configuration.GraphDatabaseSettings;
import org.neo4j.configuration.connectors.BoltConnector;
import org.neo4j.configuration.connectors.HttpConnector;
import org.neo4j.configuration.helpers.SocketAddress;
import org.neo4j.dbms.api.DatabaseManagementService;
import org.neo4j.dbms.api.DatabaseManagementServiceBuilder;
import org.neo4j.graphdb.GraphDatabaseService;
import org.neo4j.graphdb.Result;
import org.neo4j.graphdb.Transaction;
import org.neo4j.io.ByteUnit;
import org.neo4j.kernel.api.procedure.GlobalProcedures;
import org.neo4j.kernel.internal.GraphDatabaseAPI;

/**
 * Runs Neo4j Community embedded with only the Bolt connector, until SIGTERM/SIGINT.
 *
 * Usage: Neo4jLauncher --home DIR [--host 127.0.0.1] [--port 7687] [--pagecache-mb 512] [--conf FILE]
 * Prints one line "PYMK_NEO4J_READY bolt://HOST:PORT version=X" on stdout once Bolt accepts queries.
 */
public final class Neo4jLauncher {
    private Neo4jLauncher() {}

    public static void main(String[] args) throws Exception {
        Map<String, String> opts = parse(args);
        Path home = Path.of(require(opts, "--home")).toAbsolutePath();
        String host = opts.getOrDefault("--host", "127.0.0.1");
        int port = Integer.parseInt(opts.getOrDefault("--port", "7687"));
        long pagecacheMb = Long.parseLong(opts.getOrDefault("--pagecache-mb", "512"));
        Files.createDirectories(home);

        DatabaseManagementServiceBuilder builder = new DatabaseManagementServiceBuilder(home);
        if (opts.containsKey("--conf")) {
            builder.loadPropertiesFromFile(Path.of(opts.get("--conf")));
        }
        builder.setConfig(BoltConnector.enabled, true)
               .setConfig(BoltConnector.listen_address, new SocketAddress(host, port))
               .setConfig(HttpConnector.enabled, false)
               .setConfig(GraphDatabaseSettings.pagecache_memory, ByteUnit.mebiBytes(pagecacheMb));
        DatabaseManagementService service = builder.build();

        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            System.out.println("PYMK_NEO4J_STOPPING");
            System.out.flush();
            service.shutdown();
            stopped.countDown();
        }, "pymk-neo4j-shutdown"));

        String version;
        try {
            version = ready(service);
        } catch (Exception e) {
            // the server's own threads would keep the JVM up, unready, until the start command gave up on it
            e.printStackTrace();
            System.out.flush();
            System.exit(1);   // the shutdown hook stops the server
            return;
        }
        System.out.println("PYMK_NEO4J_READY bolt://" + host + ":" + port + " version=" + version);
        System.out.flush();
        stopped.await();
    }

    /** Registers the bundled procedures and returns the server's version. */
    private static String ready(DatabaseManagementService service) throws Exception {
        GraphDatabaseService db = service.database(GraphDatabaseSettings.DEFAULT_DATABASE_NAME);
        GlobalProcedures procedures = ((GraphDatabaseAPI) db).getDependencyResolver()
            .resolveDependency(GlobalProcedures.class);
        procedures.registerProcedure(IngestProcedures.class);
        String version = "unknown";
        try (Transaction tx = db.beginTx(); Result r = tx.execute("CALL dbms.components() YIELD versions RETURN versions[0] AS v")) {
            if (r.hasNext()) {
                version = String.valueOf(r.next().get("v"));
            }
            tx.commit();
        }
        return version;
    }

    private static Map<String, String> parse(String[] args) {
        Map<String, String> out = new java.util.HashMap<>();
        for (int i = 0; i + 1 < args.length; i += 2) {
            if (!args[i].startsWith("--")) {
                throw new IllegalArgumentException("expected an --option, got '" + args[i] + "'");
            }
            out.put(args[i], args[i + 1]);
        }
        if (args.length % 2 != 0) {
            throw new IllegalArgumentException("option '" + args[args.length - 1] + "' has no value");
        }
        return out;
    }

    private static String require(Map<String, String> opts, String key) {
        String v = opts.get(key);
        if (v == null) {
            throw new IllegalArgumentException("missing required option " + key);
        }
        return v;
    }
}
