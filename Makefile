# make up | up-cluster | down | status | demo | check | test | lint | lock | bench | clean. Everything runs natively here; see README.md.
PY := .venv/bin/python
.DEFAULT_GOAL := help

.PHONY: help install up up-cluster down status demo chaos check test lint lock bench clean

help:
	@echo "make up | up-cluster | down | status | demo | check | test | lint | lock | bench | clean"

install:
	@bash infra/install.sh

up: install
	@$(PY) -m launcher up

# Cluster mode: 3 KRaft brokers (RF 3, min.insync.replicas 2), 2 Connect workers, 2 catalog-service instances;
# their data apart from make up's (.stack/kafka-cluster/). make status/down follow whichever layout runs.
up-cluster: install
	@KAFKA_BROKERS=3 CONNECT_WORKERS=2 CATALOG_INSTANCES=2 $(PY) -m launcher up

down:
	@if [ -x $(PY) ]; then $(PY) -m launcher down; else echo "nothing to stop"; fi

status:
	@if [ -x $(PY) ]; then $(PY) -m launcher status || true; else echo "not installed: run make up"; fi

demo: up
	@$(PY) -m demo

# Orders flow while components are killed (-9) and restarted in turn; the auditor's verdict after each fault and at
# the end (exit 1 on any discrepancy). `make chaos CHAOS_ARGS=--short` is the 60 s run make test does.
chaos: up
	@$(PY) -m chaos $(CHAOS_ARGS)

# No stack needed, only .venv: lint, types, the lock, the unit tests of pure logic, gateway and discovery.
check:
	@bash infra/install.sh --python
	@bash infra/check.sh

# make check first (it runs the gateway and discovery suites), then every other suite against the real stack.
test: install
	@bash infra/check.sh && bash infra/run-tests.sh --ignore=gateway --ignore=discovery

lint:
	@bash infra/install.sh --python
	@bash infra/check.sh lint

# The consistency auditor over the running stack (README, "Consistency auditor"): exit 1 on any discrepancy.
# Incremental from its last run's state (.stack/audit-state.json); AUDIT_ARGS="--full", "--json", "--since -600".
.PHONY: audit
audit: install
	@$(PY) -m consistency_audit $(AUDIT_ARGS)

# After changing constraints.txt or a pyproject.toml's dependencies.
lock:
	@bash infra/lock.sh

bench: install
	@bash infra/install.sh wrk nginx-light
	@bash bench/run.sh

clean:
	@if [ -x $(PY) ]; then $(PY) -m launcher clean; fi

# The stack in containers (README.md, "Containers"): Docker Compose with a Docker engine, else podman-compose and
# podman (CONTAINERS_CONF=infra/containers/containers.conf, set by the script). compose-test runs its own project on
# its own ports (gateway 18000), beside make up, and removes it afterwards.
.PHONY: compose-up compose-down compose-test
compose-up:
	@bash infra/containers/compose.sh up

compose-down:
	@bash infra/containers/compose.sh down

compose-test:
	@bash infra/containers/compose.sh test
