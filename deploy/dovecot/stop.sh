#!/usr/bin/env bash
# Stop the Dovecot started by deploy/dovecot/start.sh (its state dir is kept).
set -euo pipefail
source "$(dirname "$0")/paths.sh"
[ -f "$conf" ] || exit 0
if [ -f "$dir/run/master.pid" ] && kill -0 "$(cat "$dir/run/master.pid")" 2>/dev/null; then
  dovecot -c "$conf" stop >/dev/null 2>&1 || kill "$(cat "$dir/run/master.pid")" 2>/dev/null || true
  for _ in $(seq 1 50); do
    [ -f "$dir/run/master.pid" ] && kill -0 "$(cat "$dir/run/master.pid")" 2>/dev/null || break
    sleep 0.1
  done
fi
