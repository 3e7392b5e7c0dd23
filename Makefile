# The commands of CONTRACT.md. Everything runs natively on this machine; see README.md.
PY := .venv/bin/python
.DEFAULT_GOAL := help

.PHONY: help install up down status demo test lint bench clean

help:
	@echo "make up | down | status | demo | test | bench | clean"

install:
	@bash infra/install.sh

up: install
	@$(PY) -m launcher up

down:
	@if [ -x $(PY) ]; then $(PY) -m launcher down; else echo "nothing to stop"; fi

status:
	@if [ -x $(PY) ]; then $(PY) -m launcher status || true; else echo "not installed: run make up"; fi

demo: up
	@$(PY) -m demo

test: install
	@bash infra/run-tests.sh

lint:
	@.venv/bin/ruff check . && .venv/bin/ruff format --check .

bench: install
	@bash infra/install.sh wrk nginx-light
	@bash bench/run.sh

clean:
	@if [ -x $(PY) ]; then $(PY) -m launcher clean; fi
