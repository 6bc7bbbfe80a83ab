#!/usr/bin/env bash
# Stop the broker started by deploy/kafka/start.sh (its data stays for the next start).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
state=${FRONTDESK_STATE_DIR:-$here/../../.state}
pidfile=$state/kafka/broker.pid
[ -f "$pidfile" ] || exit 0
pid=$(cat "$pidfile")
if kill -0 "$pid" 2>/dev/null; then
  kill "$pid"  # SIGTERM: a controlled shutdown
  for _ in $(seq 1 120); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
fi
rm -f "$pidfile"
