# Frontdesk: the two commands a newcomer needs are `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: run test install deps venv lint migration services-up services-down bench clean

## run: start the ingestion daemon on the embedded default (SQLite under ./var)
run: venv
	$(BIN)/frontdesk run

## test: install everything the tests need, start the real servers, run the suite on SQLite and PostgreSQL
test: deps
	deploy/test.sh

## deps: system packages (PostgreSQL, Dovecot, wrk), the virtualenv, Kafka's jars
deps:
	deploy/install-deps.sh

venv: $(BIN)/frontdesk

$(BIN)/frontdesk: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[test]"
	touch $@

## lint: the import layers of docs/architecture.md
lint: venv
	deploy/lint.sh

## migration: regenerate the (single, pre-release) migration from the models
migration: venv
	$(BIN)/python -m frontdesk.storage.migrate

services-up:
	deploy/postgres/start.sh
	deploy/dovecot/start.sh
	deploy/kafka/start.sh

services-down:
	-deploy/kafka/stop.sh
	-deploy/dovecot/stop.sh
	-deploy/postgres/stop.sh

clean: services-down
	rm -rf .state var
