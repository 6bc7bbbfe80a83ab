# Sourced by start.sh and stop.sh: where the throwaway Dovecot keeps everything.
# Normally $FRONTDESK_STATE_DIR/dovecot (default .state/ in the repo).  Dovecot's
# unprivileged processes must be able to reach that folder; when we run as root
# inside a checkout other users cannot enter (a 0700 parent), we fall back to a
# folder under /var/tmp named after the state dir, so each checkout keeps its own.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
state=${FRONTDESK_STATE_DIR:-$here/../../.state}
mkdir -p "$state"; state=$(cd "$state" && pwd)
dir=$state/dovecot
if [ "$(id -u)" = 0 ] && ! runuser -u nobody -- test -x "$state" 2>/dev/null; then
  dir=/var/tmp/frontdesk-dovecot-$(printf %s "$state" | md5sum | cut -c1-12)
fi
conf=$dir/dovecot.conf
