#!/usr/bin/env bash
# Start the real servers the suite talks to, run it on SQLite and PostgreSQL,
# and stop the servers again, whatever the outcome.
set -euo pipefail
cd "$(dirname "$0")/.."
export FRONTDESK_STATE_DIR=${FRONTDESK_STATE_DIR:-$PWD/.state}

last_line_env() { local line; line=$("$@" | tail -n 1); export "${line?}"; echo "  $line"; }

cleanup() {
  deploy/kafka/stop.sh >/dev/null 2>&1 || true
  deploy/dovecot/stop.sh >/dev/null 2>&1 || true
  deploy/postgres/stop.sh >/dev/null 2>&1 || true
}
trap cleanup EXIT

echo "starting test servers"
last_line_env deploy/postgres/start.sh
last_line_env deploy/dovecot/start.sh
last_line_env deploy/kafka/start.sh

export FRONTDESK_TEST_DATABASES=sqlite,postgresql
# The servers were just started: one missing is an error, not a skip.
export FRONTDESK_REQUIRE_SERVERS=1
deploy/lint.sh
# The slowest tests and the reasons for any skip, at the end of the run.
# Two workers (the machine has two cores and much of the suite waits on
# servers); the tests that share the Kafka broker stay on one of them.
.venv/bin/pytest -q -p no:cacheprovider -n "${FRONTDESK_TEST_WORKERS:-2}" --dist loadgroup --durations=15 -rfEs "$@"
