#!/usr/bin/env bash
# Restart the broker from deploy/kafka/start.sh on the same data: stop, then start.
# The broker-restart tests call this; clients see their connections drop.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
"$here/stop.sh"
exec "$here/start.sh"
