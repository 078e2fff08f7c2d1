#!/bin/sh
# Start a throw-away PostgreSQL cluster on 127.0.0.1 for the integration tests (idempotent: does
# nothing when one already answers on the port). Usage: start_postgres.sh [PORT] [DATA_DIR] [MARK]
# Role `harness`, password `harness-pw`, database `postgres`; the tests create their own databases.
# MARK: a file written only when this call started the server (removed first), so that the caller
# stops what it started and no more: `scripts/stop_postgres.sh DATA_DIR MARK` (as `make test` does).
set -eu
PORT=${1:-54329}
DIR=${2:-/tmp/harness-postgres}
MARK=${3:-}
if [ -n "$MARK" ]; then rm -f "$MARK"; fi
BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
if [ -z "$BIN" ]; then
  echo "PostgreSQL is not installed (apt-get install postgresql)" >&2
  exit 1
fi
if "$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT"; then
  echo "PostgreSQL already answers on 127.0.0.1:$PORT"
  exit 0
fi
AS=""
if [ "$(id -u)" = 0 ]; then AS="runuser -u postgres --"; fi  # initdb/postgres refuse to run as root
init() {
  rm -rf "$DIR" && mkdir -p "$DIR"
  PW="$DIR.pw"
  echo harness-pw > "$PW"
  if [ -n "$AS" ]; then chown postgres "$DIR" "$PW"; fi
  $AS "$BIN/initdb" -D "$DIR" -U harness --pwfile="$PW" --auth=scram-sha-256 --no-sync >/dev/null
  rm -f "$PW"
}
start() {
  $AS "$BIN/pg_ctl" -D "$DIR" -l "$DIR/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $PORT -k $DIR -c fsync=off -c max_connections=200" start >/dev/null
}
if [ ! -f "$DIR/PG_VERSION" ]; then init; fi
if ! start; then  # a cluster left broken by an earlier machine or a killed server: start afresh
  echo "PostgreSQL in $DIR did not start (log: $DIR/server.log); re-creating it" >&2
  init
  start
fi
if [ -n "$MARK" ]; then echo "$PORT" > "$MARK"; fi
echo "PostgreSQL started on 127.0.0.1:$PORT (data $DIR, log $DIR/server.log)"
