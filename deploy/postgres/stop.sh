#!/usr/bin/env bash
# Stop the cluster started by deploy/postgres/start.sh.
set -euo pipefail
source "$(dirname "$0")/paths.sh"
[ -f "$pgdata/PG_VERSION" ] || exit 0
as_pg "$bindir/pg_ctl" -D "$pgdata" -m fast stop >/dev/null 2>&1 || true
