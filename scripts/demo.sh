#!/usr/bin/env bash
# The main job, end to end on the embedded default: set up, start local Neo4j, generate a sample
# world, ingest it, export a snapshot and print suggestions with their explanations.
set -euo pipefail
cd "$(dirname "$0")/.."
USERS=${PYMK_DEMO_USERS:-5000}
if ! [[ "$USERS" =~ ^[0-9]+$ ]] || [ "$USERS" -lt 100 ]; then
  echo "[demo] PYMK_DEMO_USERS must be a whole number of at least 100 (got '$USERS'): the walkthrough asks" \
       "for user 42 and its friends" >&2
  exit 2
fi
bash scripts/setup.sh >/dev/null
PY=.venv/bin/python
export PYMK_DATA_DIR=${PYMK_DATA_DIR:-$PWD/var/demo}
SAMPLE=$PYMK_DATA_DIR/sample

mkdir -p "$PYMK_DATA_DIR"
LOG=$PYMK_DATA_DIR/demo.log   # progress bars and warnings of every step; the screen gets the results
: > "$LOG"
step() {
  if ! "$@" 2>>"$LOG"; then
    echo "[demo] failed: $*; the end of $LOG:" >&2
    tail -n 30 "$LOG" >&2
    exit 1
  fi
}
step $PY -m pymk neo4j start
if [ ! -f "$SAMPLE/manifest.json" ]; then
  step $PY -m pymk sim generate --users "$USERS" --days 7 --seed 1 --out "$SAMPLE"
fi
step $PY -m pymk ingest users "$SAMPLE/users.csv" --no-progress
step $PY -m pymk ingest edges "$SAMPLE/edges.txt" --no-progress
step $PY -m pymk ingest events "$SAMPLE/events.jsonl" --no-progress
step $PY -m pymk snapshot export
step $PY -m pymk embeddings refresh --epochs 30 --max-auc-drop 1.0
step $PY -m pymk ranker train --epochs 6
step $PY -m pymk candidates precompute
step $PY -m pymk suggest 1 2

# Serve the API and ask it for suggestions, as a client would.
PORT=${PYMK_DEMO_PORT:-8080}
KEYS=${PYMK_API_KEYS:-demo-key}
PYMK_API_KEYS=$KEYS PYMK_NEWCOMER_REFRESH_S=${PYMK_NEWCOMER_REFRESH_S:-0} PYMK_SEEN_REFRESH_S=${PYMK_SEEN_REFRESH_S:-0} \
  $PY -m pymk serve --port "$PORT" > "$PYMK_DATA_DIR/api.log" 2>&1 &
API_PID=$!
trap 'kill $API_PID 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.5; done
for u in 3 42 "$((USERS - 1))"; do
  curl -sf "http://127.0.0.1:$PORT/v1/users/$u/suggestions?limit=5" | $PY scripts/show_suggestions.py
done
# Someone signs up now, after the snapshot: suggestions from their profile at once, not at the next refresh.
PROFILE=$(sed -n 2p "$SAMPLE/users.csv" | cut -d, -f3,5)   # the first sample user's school and city
NEW="new-user-$(date +%s)"   # a new id each run (an earlier run's is deleted, its tombstone kept)
curl -sf -X POST -H "X-API-Key: ${KEYS%%,*}" -H 'Content-Type: application/json' "http://127.0.0.1:$PORT/v1/users" \
  -d "{\"id\": \"$NEW\", \"school\": \"${PROFILE%,*}\", \"city\": \"${PROFILE#*,}\"}" >/dev/null
curl -sf "http://127.0.0.1:$PORT/v1/users/$NEW/suggestions?limit=5" | $PY scripts/show_suggestions.py
# They befriend two of user 42's friends: 42 is suggested them at once too (a newcomer slot, the 3rd; the
# demo's API reads its newcomer index on every request, PYMK_NEWCOMER_REFRESH_S=0, where a server's waits 30 s).
for f in $(awk '$1 == 42 {print $2} $2 == 42 {print $1}' "$SAMPLE/edges.txt" | head -2); do
  curl -sf -X POST -H "X-API-Key: ${KEYS%%,*}" -H 'Content-Type: application/json' \
    "http://127.0.0.1:$PORT/v1/friendships" -d "{\"a\": \"$NEW\", \"b\": \"$f\"}" >/dev/null
done
curl -sf "http://127.0.0.1:$PORT/v1/users/42/suggestions?limit=5" | $PY scripts/show_suggestions.py
# The sign-up leaves again (its ties, and a tombstone in its place): the sample world's timeline (years ago)
# is not mixed with today's, so the next run's snapshot and ranker see the sample alone.
curl -sf -X DELETE -H "X-API-Key: ${KEYS%%,*}" "http://127.0.0.1:$PORT/v1/users/$NEW" >/dev/null
# the client logs what it showed (the first two, twice each); the next list brings new faces
SHOWN=$(curl -sf "http://127.0.0.1:$PORT/v1/users/42/suggestions?limit=5" | $PY -c '
import json, sys, time
b = json.load(sys.stdin)
print(json.dumps([{"type": "impression", "src": b["user_id"], "dst": s["user_id"], "ts": time.time() + n,
                   "position": s["position"], "request_id": b["request_id"]} for s in b["suggestions"][:2] for n in (0, 1)]))')
curl -sf -X POST -H "X-API-Key: ${KEYS%%,*}" -H 'Content-Type: application/json' "http://127.0.0.1:$PORT/v1/events" \
  -d "$SHOWN" >/dev/null
echo "(logged: user 42 was shown its first two suggestions twice each)"
curl -sf "http://127.0.0.1:$PORT/v1/users/42/suggestions?limit=5" | $PY scripts/show_suggestions.py
echo "Neo4j is still running (bolt://127.0.0.1:${PYMK_NEO4J_PORT:-7687}); stop it with: PYMK_DATA_DIR=$PYMK_DATA_DIR $PY -m pymk neo4j stop"
