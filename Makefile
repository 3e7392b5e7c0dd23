# `make help` lists every target. Everything runs natively here; README.md is the map, DEVELOPING.md the workflow.
PY := .venv/bin/python
.DEFAULT_GOAL := help

.PHONY: help install up up-cluster down status demo chaos check test lint lock bench clean

# One line per target: a new target gets its line here.
help:
	@echo "make <target>   (README.md is the map; DEVELOPING.md the test tiers)"
	@echo "  up            install what is missing, start the whole stack natively, print its URLs"
	@echo "  up-cluster    the same with 3 Kafka brokers, 2 Connect workers, 2 catalog-service instances, 2 discovery peers, 2 gateways, 3 Galera nodes"
	@echo "  down          stop everything make up started (data stays until make clean)"
	@echo "  status        one line per component: up/down, port, pid, log file"
	@echo "  demo          the seed scenario end to end through the gateway, with a report"
	@echo "  audit         the consistency auditor over the running stack (exit 1 on a discrepancy)"
	@echo "  chaos         orders flow while components are killed in turn; the auditor's verdict"
	@echo "  check         lint, mypy, the lock check, unit tests, the discovery suite (needs only .venv, under a minute)"
	@echo "  test          make check, then every suite against the native stack (what CI runs)"
	@echo "  lint          ruff and mypy only"
	@echo "  lock          recompile requirements.lock after changing constraints.txt or a pyproject.toml"
	@echo "  bench         the benchmarks, each next to its anchor (never part of make test)"
	@echo "  clean         make down, then delete .stack/ (all data and logs of the native stack)"
	@echo "  install       what make up installs, without starting anything"
	@echo "  compose-up    the same stack in containers (Docker Compose, or podman-compose)"
	@echo "  compose-down  stop the containers, keep their volumes"
	@echo "  compose-test  a compose stack of its own on other ports, its suites, then removed"
	@echo "  help          this list"

install:
	@bash infra/install.sh

up: install
	@$(PY) -m launcher up

# Cluster mode: 3 KRaft brokers (RF 3, min.insync.replicas 2), 2 Connect workers, 2 catalog-service instances;
# their data apart from make up's (.stack/kafka-cluster/). make status/down follow whichever layout runs.
up-cluster: install
	@KAFKA_BROKERS=3 CONNECT_WORKERS=2 CATALOG_INSTANCES=2 DISCOVERY_INSTANCES=2 GATEWAY_INSTANCES=2 MARIADB_NODES=3 $(PY) -m launcher up

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

# No stack needed, only .venv: lint, types, the lock, the unit tests of pure logic and the discovery suite (under a
# minute).
check:
	@bash infra/install.sh --python
	@bash infra/check.sh

# make check first, then every other suite (the gateway's too) against the real stack.
test:
	@bash infra/install.sh wrk
	@bash infra/check.sh && bash infra/run-tests.sh

lint:
	@bash infra/install.sh --python
	@bash infra/check.sh lint

# The consistency auditor over the running stack (docs/auditor.md): exit 1 on any discrepancy.
# Incremental from its last run's state (.stack/audit-state.json); AUDIT_ARGS="--full", "--json", "--since -600".
.PHONY: audit
audit: install
	@$(PY) -m consistency_audit $(AUDIT_ARGS)

# After changing constraints.txt or a pyproject.toml's dependencies.
lock:
	@bash infra/lock.sh

bench:
	@bash infra/install.sh wrk nginx-light
	@bash bench/run.sh

clean:
	@if [ -x $(PY) ]; then $(PY) -m launcher clean; fi

# The stack in containers (docs/containers.md): Docker Compose with a Docker engine, else podman-compose and
# podman (CONTAINERS_CONF=infra/containers/containers.conf, set by the script). compose-test runs its own project on
# its own ports (gateway 18000), beside make up, and removes it afterwards.
.PHONY: compose-up compose-down compose-test
compose-up:
	@bash infra/containers/compose.sh up

compose-down:
	@bash infra/containers/compose.sh down

compose-test:
	@bash infra/containers/compose.sh test
