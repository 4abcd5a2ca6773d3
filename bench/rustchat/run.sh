#!/usr/bin/env bash
# rustchat load benchmark (spec shared/specs/rustchat.md §8, CHAT-R31; decision 16): builds
# release, starts a fresh server on loopback with a scratch data dir (and, for the pg modes,
# a scratch PostgreSQL 15 and redis-server on free ports), runs bench/rustchat/loadgen
# (`rustchat-loadgen`, Mattermost-style v4 traffic by default), stops everything and prints
# the summary. The latest numbers are in RESULTS.md. The spec's `--peer synapse` (matrix
# driver) is not implemented.
#
# Usage: bench/rustchat/run.sh --mode sqlite|pg|pg-2node [--users N | --search] [--hold SECS]
#                              [--out FILE] [-- LOADGEN-ARGS...]
#   --mode      sqlite: one node on embedded SQLite; pg: one node on PostgreSQL + Redis;
#               pg-2node: two nodes sharing PostgreSQL + Redis (users alternate between
#               nodes; the report adds cross-node delivery)
#   --users N   concurrent simulated users (default 5000, the spec's 5 × 1,000)
#   --search    +1,000 users per 3-min step until a gate fails, then bisect to 250
#   --hold SECS measured seconds after the ramp (default 600)
#   --out FILE  keep the JSON report there (default: printed path under the scratch dir,
#               removed at exit)
#   after --     passed to rustchat-loadgen (e.g. --driver v1 --seed-posts 20000
#               --ramp-per-sec 25); see `rustchat-loadgen --help`
# Environment: CARGO_TARGET_DIR (default target/), SKIP_BUILD=1 (use existing binaries).
# Exit status: 0 the run completed and deliveries reconciled; 1 it completed without
#   reconciling; 2 bad flags, build or start-up failure. Gate failures are results (exit 0).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

case "${1:-}" in
    -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
esac

# ROOT, TARGET, BENCH_PIDS/BENCH_TMP with an EXIT trap that stops exactly the processes
# started here, die, free_port, wait_http, machine_line.
# shellcheck source=../ron-metrics/lib.sh
source "$HERE/../ron-metrics/lib.sh"
rmdir "$BENCH_TMP" && BENCH_TMP="$(mktemp -d -t rustchat-bench.XXXXXX)"
chmod 755 "$BENCH_TMP"

MODE="" USERS=5000 SEARCH=0 HOLD=600 OUT=""
LOADGEN_ARGS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --mode) MODE="${2:-}"; shift 2 ;;
        --users) USERS="${2:-}"; shift 2 ;;
        --search) SEARCH=1; shift ;;
        --hold) HOLD="${2:-}"; shift 2 ;;
        --out) OUT="${2:-}"; shift 2 ;;
        --) shift; LOADGEN_ARGS=("$@"); break ;;
        *) die "unknown argument $1 (see --help)" ;;
    esac
done
case "$MODE" in
    sqlite|pg|pg-2node) ;;
    *) die "--mode sqlite|pg|pg-2node is required" ;;
esac
[[ "$USERS" =~ ^[0-9]+$ ]] || die "--users wants a number"
[[ "$HOLD" =~ ^[0-9]+$ ]] || die "--hold wants seconds"

SERVER_BIN="$TARGET/release/rustchat"
LOADGEN_BIN="$TARGET/release/rustchat-loadgen"
if [ "${SKIP_BUILD:-0}" != 1 ]; then
    (cd "$ROOT" && cargo build --release -p rustchat -p rustchat-loadgen) || die "build failed"
fi
if [ ! -x "$SERVER_BIN" ] || [ ! -x "$LOADGEN_BIN" ]; then
    die "binaries missing under $TARGET/release"
fi

# Every user holds an HTTP and a WebSocket connection on both sides of loopback.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
echo "# $(machine_line); ulimit -n $(ulimit -n); load average$(uptime | sed 's/.*load average//')"

PG_BIN=/usr/lib/postgresql/15/bin
PG_PORT="" REDIS_PORT=""

# as_postgres CMD...: PostgreSQL refuses to run as root; use its system account then.
as_postgres() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

start_pg() {
    [ -x "$PG_BIN/postgres" ] || die "PostgreSQL 15 not found in $PG_BIN"
    command -v redis-server >/dev/null || die "redis-server not found"
    local dir="$BENCH_TMP/pg"
    mkdir -p "$dir/sock"
    [ "$(id -u)" = 0 ] && chown -R postgres: "$dir"
    as_postgres "$PG_BIN/initdb" -D "$dir/data" -A trust -U postgres -E UTF8 --locale=C \
        --no-instructions >"$BENCH_TMP/initdb.log" 2>&1 || die "initdb failed: $(tail -3 "$BENCH_TMP/initdb.log")"
    PG_PORT="$(free_port)"
    # Durable commits as in production (fsync on); room for two nodes' pools.
    as_postgres "$PG_BIN/postgres" -D "$dir/data" -c port="$PG_PORT" -c listen_addresses=127.0.0.1 \
        -c unix_socket_directories="$dir/sock" -c max_connections=200 -c shared_buffers=256MB \
        >"$BENCH_TMP/postgres.log" 2>&1 &
    BENCH_PIDS+=("$!")
    for _ in $(seq 1 100); do
        "$PG_BIN/pg_isready" -q -h "$dir/sock" -p "$PG_PORT" -U postgres && break
        sleep 0.1
    done
    "$PG_BIN/pg_isready" -q -h "$dir/sock" -p "$PG_PORT" -U postgres || die "PostgreSQL did not start"
    "$PG_BIN/psql" -X -q -h "$dir/sock" -p "$PG_PORT" -U postgres -c "CREATE DATABASE rustchat" postgres
    REDIS_PORT="$(free_port)"
    mkdir -p "$BENCH_TMP/redis"
    redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no --daemonize no \
        --dir "$BENCH_TMP/redis" >"$BENCH_TMP/redis.log" 2>&1 &
    BENCH_PIDS+=("$!")
    for _ in $(seq 1 100); do
        redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    die "redis-server did not start"
}

# Shared secrets for every node of this run (random, development environment).
JWT_SECRET="$(head -c 48 /dev/urandom | base64 | tr -d '\n')"
ENC_KEY="$(head -c 48 /dev/urandom | base64 | tr -d '\n')"
SERVERS=() PIDS=()
start_node() {
    local i="$1" port
    port="$(free_port)"
    mkdir -p "$BENCH_TMP/node$i"
    local env=(RUSTCHAT_ENVIRONMENT=development RUSTCHAT_HOST=127.0.0.1 RUSTCHAT_PORT="$port"
        RUSTCHAT_DATA_DIR="$BENCH_TMP/node$i" RUSTCHAT_FILES_DIR="$BENCH_TMP/files"
        RUSTCHAT_JWT_SECRET="$JWT_SECRET" RUSTCHAT_ENCRYPTION_KEY="$ENC_KEY")
    if [ -n "$PG_PORT" ]; then
        env+=(RUSTCHAT_DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/rustchat"
            RUSTCHAT_REDIS_URL="redis://127.0.0.1:$REDIS_PORT")
    fi
    (cd "$BENCH_TMP/node$i" && exec env "${env[@]}" "$SERVER_BIN") >"$BENCH_TMP/node$i.log" 2>&1 &
    BENCH_PIDS+=("$!")
    PIDS+=("$!")
    SERVERS+=("http://127.0.0.1:$port")
    wait_http "http://127.0.0.1:$port/api/v1/health/live"
}

case "$MODE" in
    sqlite) start_node 1 ;;
    pg) start_pg; start_node 1 ;;
    pg-2node) start_pg; start_node 1; start_node 2 ;;
esac

REPORT="${OUT:-$BENCH_TMP/report.json}"
args=(--label "$MODE" --report "$REPORT" --hold "$HOLD")
for s in "${SERVERS[@]}"; do args+=(--server "$s"); done
for p in "${PIDS[@]}"; do args+=(--server-pid "$p"); done
if [ "$SEARCH" = 1 ]; then args+=(--search); else args+=(--users "$USERS"); fi

rc=0
"$LOADGEN_BIN" "${args[@]}" "${LOADGEN_ARGS[@]}" || rc=$?
if [ -n "$OUT" ]; then
    echo "report: $OUT"
fi
for i in "${!PIDS[@]}"; do
    if grep -q '"level":"ERROR"' "$BENCH_TMP/node$((i + 1)).log"; then
        echo "server node$((i + 1)) logged errors:"
        grep '"level":"ERROR"' "$BENCH_TMP/node$((i + 1)).log" | head -5
    fi
done
exit "$rc"
