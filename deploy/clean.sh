#!/usr/bin/env bash
# Remove everything the test servers and the tests created in this checkout:
# the servers' state (also their fallback folders under /var/tmp, see
# deploy/postgres/paths.sh and deploy/dovecot/paths.sh), the embedded
# default's var/, build output and the hypothesis example database.  Stop the
# servers first (make clean does). The virtualenv stays.
set -euo pipefail
cd "$(dirname "$0")/.."
export FRONTDESK_STATE_DIR=${FRONTDESK_STATE_DIR:-$PWD/.state}
fallbacks=()
pgdata=$(source deploy/postgres/paths.sh && echo "$pgdata")
dovecot=$(source deploy/dovecot/paths.sh && echo "$dir")
for folder in "$pgdata" "$dovecot"; do
  case $folder in /var/tmp/frontdesk-*) fallbacks+=("$folder") ;; esac
done
rm -rf "${fallbacks[@]}" "$FRONTDESK_STATE_DIR" var build ./*.egg-info .hypothesis
