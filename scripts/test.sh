#!/usr/bin/env bash
# Set up, start a throw-away local Neo4j (unless NEO4J_URI is set), run lint and the whole test
# suite (integration tests included), stop Neo4j. Exit status is the suite's.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >/dev/null

export PYMK_DATA_DIR=${PYMK_TEST_DATA_DIR:-$PWD/var/test}
export PYMK_NEO4J_PORT=${PYMK_TEST_NEO4J_PORT:-7688}
# a short keep-alive, so the test of a server that stops answering waits 2 s for the driver to give up
export PYMK_NEO4J_KEEP_ALIVE_S=${PYMK_NEO4J_KEEP_ALIVE_S:-1}
PY=.venv/bin/python

if [ -z "${NEO4J_URI:-}" ]; then
  trap '$PY -m pymk neo4j stop >/dev/null 2>&1 || true' EXIT
  $PY -m pymk neo4j start
fi
echo "[test] ruff"
.venv/bin/ruff check .
echo "[test] pytest"
set +e
$PY -m pytest "$@"
rc=$?
set -e
if [ $rc -eq 5 ]; then echo "[test] no tests were collected" >&2; rc=1; fi
exit $rc
