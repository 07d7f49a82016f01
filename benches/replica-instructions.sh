#!/usr/bin/env bash
# Instructions, system calls and context switches per chat request of BIN as a replica: starts
# a throwaway PostgreSQL cluster and a Redis server on free loopback ports (Debian's binaries,
# as `tests/setup.sh` installs them; run as root, PostgreSQL runs as the `postgres` user), then
# runs `benches/instructions.sh BIN REQUESTS` against them. Usage:
#   bash benches/replica-instructions.sh target/release/llmgate [REQUESTS]
# LLMGATE_TEST_PG_BIN names another directory of PostgreSQL's server binaries.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(realpath "$1"); requests=${2:-2000}
pgbin=${LLMGATE_TEST_PG_BIN:-$(dirname "$(ls -d /usr/lib/postgresql/*/bin/pg_ctl | sort -V | tail -n 1)")}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
dir=$(mktemp -d /tmp/llmgate-replica-XXXX); chown postgres "$dir"
pgport=$(free_port); redisport=$(free_port)
as_postgres() { runuser -u postgres -- "$@"; }
as_postgres "$pgbin/initdb" -D "$dir/data" -A trust -U postgres >/dev/null
as_postgres "$pgbin/pg_ctl" -D "$dir/data" -l "$dir/pg.log" \
  -o "-p $pgport -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off" start >/dev/null
redis-server --port "$redisport" --bind 127.0.0.1 --save "" --appendonly no --daemonize yes \
  --dir "$dir" --pidfile "$dir/redis.pid" >/dev/null
cleanup() {
  as_postgres "$pgbin/pg_ctl" -D "$dir/data" stop -m fast >/dev/null || true
  kill "$(cat "$dir/redis.pid")" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
# benches/instructions.sh starts llmgate twice (the callgrind run, then the perf run): a database each.
for n in 1 2; do psql -h 127.0.0.1 -p "$pgport" -U postgres -qc "CREATE DATABASE llmgate_$n"; done
INSTRUCTIONS_DATABASE="postgres://postgres@127.0.0.1:$pgport/llmgate_{n}" \
LLMGATE_REDIS_URL="redis://127.0.0.1:$redisport" \
LLMGATE_ENCRYPTION_KEY=$(head -c 32 /dev/urandom | base64) \
  bash benches/instructions.sh "$bin" "$requests"
