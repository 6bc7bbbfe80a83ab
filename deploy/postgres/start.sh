#!/usr/bin/env bash
# Start a throwaway PostgreSQL cluster from Debian's packages for development and tests.
#   deploy/postgres/start.sh   -> prints FRONTDESK_TEST_PG_URL=... on its last line
#   deploy/postgres/stop.sh
# The cluster lives in $FRONTDESK_STATE_DIR/postgres (default .state/ in the repo;
# see paths.sh for the fallback when the postgres user cannot reach it),
# listens on 127.0.0.1:${FRONTDESK_PG_PORT:-54329} and trusts local connections.
set -euo pipefail
source "$(dirname "$0")/paths.sh"
port=${FRONTDESK_PG_PORT:-54329}
if [ -z "$bindir" ]; then
  echo "PostgreSQL is not installed: run deploy/install-deps.sh" >&2; exit 1
fi

if [ ! -f "$pgdata/PG_VERSION" ]; then
  mkdir -p "$pgdata"
  [ "$(id -u)" = 0 ] && chown postgres:postgres "$pgdata"
  as_pg "$bindir/initdb" -D "$pgdata" -U postgres -A trust --no-sync -E UTF8 >/dev/null
fi
if ! as_pg "$bindir/pg_ctl" -D "$pgdata" status >/dev/null 2>&1; then
  # Test cluster: durability traded for speed (fsync off) is fine here and
  # only here; production runs a real cluster.
  as_pg "$bindir/pg_ctl" -D "$pgdata" -l "$pgdata/server.log" -w -t 60 start \
    -o "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories=/tmp -c fsync=off -c full_page_writes=off -c synchronous_commit=off -c max_connections=300" >/dev/null
fi
for _ in $(seq 1 60); do
  "$bindir/pg_isready" -h 127.0.0.1 -p "$port" -q && break
  sleep 0.5
done
echo "FRONTDESK_TEST_PG_URL=postgresql+asyncpg://postgres@127.0.0.1:$port/postgres"
