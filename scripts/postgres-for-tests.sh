#!/usr/bin/env bash
# Starts a throwaway PostgreSQL cluster on loopback for the store tests and prints the URL to use as
# EVOFORGE_TEST_POSTGRES_URL. `scripts/postgres-for-tests.sh stop DIR` stops and deletes it.
# Installs Debian's postgresql and the project's `postgres` extra when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "stop" ]; then
  dir="$2"
  runuser -u postgres -- "$(cat "$dir/bin")/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$dir"
  exit 0
fi

find_bin() {
  for d in /usr/lib/postgresql/*/bin /usr/local/bin; do
    [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && { echo "$d"; return 0; }
  done
  return 1
}
bin=$(find_bin) || {
  echo "postgres-for-tests: installing postgresql" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql postgresql-client >/dev/null
  bin=$(find_bin)
}
.venv/bin/python -c "import psycopg" 2>/dev/null || .venv/bin/python -m pip install -q -e ".[dev,postgres]"

dir=$(mktemp -d /tmp/evoforge-pg.XXXXXX)
chmod 755 "$dir"
echo "$bin" > "$dir/bin"
port=$(.venv/bin/python -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])")
chown postgres "$dir"
runuser -u postgres -- "$bin/initdb" -D "$dir/data" -U evoforge --auth=trust >/dev/null
runuser -u postgres -- "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w \
  -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
psql -q -h 127.0.0.1 -p "$port" -U evoforge -d postgres -c "CREATE DATABASE evoforge_test" >/dev/null
echo "$dir postgresql+psycopg://evoforge@127.0.0.1:$port/evoforge_test"
