#!/usr/bin/env bash
# Set up everything pymk needs: a Python venv (cached outside the checkout, keyed by the
# requirements hash, so torch's ~3 GB is downloaded once) and the Maven-built Neo4j launcher.
# Prints nothing else on success but the venv path on its last line.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
CACHE=${PYMK_CACHE:-$HOME/.cache/pymk}
KEY=$(cat requirements.txt requirements-dev.txt | sha256sum | cut -c1-16)-$($PY -c 'import sys; print("py%d%d" % sys.version_info[:2])')
VENV="$CACHE/venv-$KEY"

if [ ! -x "$VENV/bin/python" ] || [ ! -f "$VENV/.complete" ]; then
  echo "[setup] creating venv $VENV" >&2
  rm -rf "$VENV"
  mkdir -p "$CACHE"
  $PY -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --upgrade pip >&2
  # pip's own cache (~/.cache/pip) is reused too when the key changes. Progress stays visible: the
  # first install downloads ~3 GB (torch's CUDA build) and takes minutes.
  echo "[setup] installing requirements (~3 GB on a fresh machine)" >&2
  "$VENV/bin/pip" install --progress-bar on -r requirements.txt -r requirements-dev.txt >&2
  touch "$VENV/.complete"
else
  echo "[setup] reusing venv $VENV" >&2
fi
ln -sfn "$VENV" .venv

if ! command -v mvn >/dev/null || ! command -v java >/dev/null; then
  echo "[setup] java and maven are required (apt-get install openjdk-17-jdk-headless maven)" >&2
  exit 1
fi
echo "[setup] building the Neo4j launcher (Maven)" >&2
.venv/bin/python -m pymk neo4j build >&2
echo "$VENV"
