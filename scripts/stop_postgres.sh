#!/bin/sh
# Stop the throw-away PostgreSQL cluster of scripts/start_postgres.sh. Usage: stop_postgres.sh [DATA_DIR] [MARK]
# With MARK, only a server that start_postgres.sh started with that MARK (the file exists; it is
# removed once the server is down): a server that was running before is left running.
set -eu
DIR=${1:-/tmp/harness-postgres}
MARK=${2:-}
if [ -n "$MARK" ] && [ ! -f "$MARK" ]; then exit 0; fi
BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
if [ -z "$BIN" ]; then
  echo "PostgreSQL is not installed: nothing to stop" >&2
  exit 1
fi
AS=""
if [ "$(id -u)" = 0 ]; then AS="runuser -u postgres --"; fi  # as start_postgres.sh: pg_ctl refuses root
if $AS "$BIN/pg_ctl" -D "$DIR" status >/dev/null 2>&1; then
  $AS "$BIN/pg_ctl" -D "$DIR" -m fast -w -t 60 stop >/dev/null
  echo "PostgreSQL in $DIR stopped"
else
  echo "no PostgreSQL running in $DIR"
fi
if [ -n "$MARK" ]; then rm -f "$MARK"; fi
