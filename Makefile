# pymk developer commands. `make demo` and `make test` are the two README commands.
.PHONY: setup demo test lint neo4j-start neo4j-stop neo4j-status bench-ingest clean

PY := .venv/bin/python

setup:
	bash scripts/setup.sh

demo:
	bash scripts/demo.sh

test:
	bash scripts/test.sh

lint: setup
	.venv/bin/ruff check .

neo4j-start: setup
	$(PY) -m pymk neo4j start

neo4j-stop:
	$(PY) -m pymk neo4j stop

neo4j-status:
	$(PY) -m pymk neo4j status

bench-ingest: setup
	$(PY) bench/ingest.py

clean:
	rm -rf var graph/neo4j_launcher/target .pytest_cache .ruff_cache
