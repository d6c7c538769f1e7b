"""Graph layer: the Neo4j store (system of record), ingestion, the local server and snapshots."""
