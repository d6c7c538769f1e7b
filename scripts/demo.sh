#!/usr/bin/env bash
# The main job, end to end on the embedded default: set up, start local Neo4j, generate a sample
# world, ingest it, export a snapshot and print suggestions with their explanations.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >/dev/null
PY=.venv/bin/python
export PYMK_DATA_DIR=${PYMK_DATA_DIR:-$PWD/var/demo}
SAMPLE=$PYMK_DATA_DIR/sample
USERS=${PYMK_DEMO_USERS:-5000}

$PY -m pymk neo4j start
if [ ! -f "$SAMPLE/manifest.json" ]; then
  $PY -m pymk sim generate --users "$USERS" --days 7 --seed 1 --out "$SAMPLE"
fi
$PY -m pymk ingest users "$SAMPLE/users.csv" --no-progress
$PY -m pymk ingest edges "$SAMPLE/edges.txt" --no-progress
$PY -m pymk ingest events "$SAMPLE/events.jsonl" --no-progress
$PY -m pymk snapshot export
$PY -m pymk suggest 1 2 3 42 "$((USERS - 1))"
echo "Neo4j is still running for you to explore (bolt://127.0.0.1:${PYMK_NEO4J_PORT:-7687}); stop it with: $PY -m pymk neo4j stop"
