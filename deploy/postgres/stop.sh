#!/usr/bin/env bash
# Stop the cluster started by deploy/postgres/start.sh.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
state=${FRONTDESK_STATE_DIR:-$here/../../.state}
pgdata=$state/postgres
bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -f "$pgdata/PG_VERSION" ] || exit 0
if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$bindir/pg_ctl" -D "$pgdata" -m fast stop >/dev/null 2>&1 || true
else "$bindir/pg_ctl" -D "$pgdata" -m fast stop >/dev/null 2>&1 || true; fi
