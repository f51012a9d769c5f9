# Quick start: `make run` (the whole service with demo data) and `make test`.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
# SIMULATE=0 starts the service without the simulated shop and drivers.
SIMULATE ?= 1
# The tests always run against this machine's real PostgreSQL and Redis.
# FAST=1 leaves out the slow production-shape tests (marked `slow`); CI runs everything.
FAST ?= 0
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/dispatch
TEST_REDIS_URL ?= redis://127.0.0.1:6379/0

.PHONY: venv assets run test lint bench migrations-check services browser osrm

$(VENV)/.installed: requirements.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

venv: $(VENV)/.installed

assets:
	bash bin/ensure-assets

run: venv assets $(if $(filter 1,$(ROUTING)),osrm)
	$(PY) manage.py migrate --noinput
	$(PY) manage.py load_demo
	@echo ""
	@echo "Open http://$(HOST):$(PORT)/        landing page"
	@echo "     http://$(HOST):$(PORT)/admin/  ops console (log in with the users above)"
	@echo "     http://$(HOST):$(PORT)/api/docs/  driver API docs"
	@echo "Ctrl-C stops everything."
	$(if $(filter 1,$(ROUTING)),bash bin/with-osrm) $(PY) manage.py serve --host $(HOST) --port $(PORT) $(if $(filter 0,$(SIMULATE)),,--simulate)

services:
	bash bin/ensure-services

browser:
	bash bin/ensure-chromium

osrm: venv
	bash bin/ensure-osrm

test: venv assets services browser osrm
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) $(PY) -m pytest $(if $(filter 1,$(FAST)),-m "not slow") $(PYTEST_ARGS)

lint: venv
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy .
	$(VENV)/bin/lint-imports

bench: venv assets services osrm
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) $(PY) bench/run.py
