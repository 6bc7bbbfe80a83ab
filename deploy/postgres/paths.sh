# Sourced by start.sh and stop.sh: where the throwaway cluster keeps its data.
# Normally $FRONTDESK_STATE_DIR/postgres (default .state/ in the repo).  As root
# the server runs as the postgres user, which must be able to reach that folder;
# inside a checkout other users cannot enter (a 0700 parent, as mktemp -d makes),
# we fall back to a folder under /var/tmp named after the state dir, so each
# checkout keeps its own cluster.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
state=${FRONTDESK_STATE_DIR:-$here/../../.state}
mkdir -p "$state"; state=$(cd "$state" && pwd)
pgdata=$state/postgres
if [ "$(id -u)" = 0 ] && ! runuser -u postgres -- test -x "$state" 2>/dev/null; then
  pgdata=/var/tmp/frontdesk-postgres-$(printf %s "$state" | md5sum | cut -c1-12)
fi
bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)

# PostgreSQL refuses to run as root; use the postgres system user when we are
# root.  From "/": the PostgreSQL tools first enter the current directory,
# and in a checkout the postgres user cannot enter they would print
# 'could not change directory to ...: Permission denied' on every call.
as_pg() { if [ "$(id -u)" = 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi; }
