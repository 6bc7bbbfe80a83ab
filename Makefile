# Frontdesk: the two commands a newcomer needs are `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

# setuptools always tells, as information, that an editable install through
# its import finder (which package-dir needs) can be shadowed by a folder named
# like the package; here that folder *is* the package.  Only that notice is
# silenced; real warnings still show.
EDITABLE_QUIET := PYTHONWARNINGS="ignore:Editable installation"

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
	$(EDITABLE_QUIET) $(BIN)/pip install -q -e ".[test]"
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

## services-down: stop the test servers (their data stays for the next services-up; make clean removes it)
services-down:
	-deploy/kafka/stop.sh
	-deploy/dovecot/stop.sh
	-deploy/postgres/stop.sh

## clean: stop the servers and remove what they and the tests created (.state, var, build, egg-info, /var/tmp fallbacks)
clean: services-down
	deploy/clean.sh
