# Shared helpers for the ron-metrics benchmark scripts; sourced, never run.
# Everything binds and connects to 127.0.0.1 only.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
EXPOSER="$TARGET/release/examples/exposer"
OHA="${OHA:-$ROOT/bench/.tools/bin/oha}"
SERVER_CPU="${SERVER_CPU:-0}"
CLIENT_CPU="${CLIENT_CPU:-1}"

# PIDs started by this script; cleanup stops exactly these.
BENCH_PIDS=()
BENCH_TMP="$(mktemp -d -t ron-metrics-bench.XXXXXX)"

bench_cleanup() {
    local pid
    for pid in "${BENCH_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${BENCH_PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    BENCH_PIDS=()
    rm -rf "$BENCH_TMP"
}
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

die() {
    echo "$(basename "$0"): $*" >&2
    exit 2
}

need() {
    command -v "$1" >/dev/null 2>&1 || [ -x "$1" ] || die "$1 not found; run bench/ron-metrics/setup.sh"
}

machine_line() {
    echo "$(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), kernel $(uname -r)"
}

# A currently free TCP port on 127.0.0.1.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# wait_http URL [curl args...]: waits up to 10 s for a 2xx answer.
wait_http() {
    local url="$1"
    shift
    for _ in $(seq 1 100); do
        if curl -fsS -o /dev/null "$@" "$url" 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    die "no answer from $url after 10 s"
}

build_exposer() {
    (cd "$ROOT" && cargo build --release --quiet -p ron-metrics --example exposer) ||
        die "building the example exposer failed"
    [ -x "$EXPOSER" ] || die "expected the exposer at $EXPOSER"
}

# start_exposer PORT LOG [VAR=value...]: starts the example pinned to SERVER_CPU; sets
# EXPOSER_PID. Extra arguments are environment assignments for the exposer only.
start_exposer() {
    local port="$1" log="$2"
    shift 2
    env -u RON_METRICS_LOAD -u RON_METRICS_TLS_CERT -u RON_METRICS_TLS_KEY \
        RON_METRICS_ADDR="127.0.0.1:$port" "$@" \
        taskset -c "$SERVER_CPU" "$EXPOSER" >"$log" 2>&1 &
    EXPOSER_PID=$!
    BENCH_PIDS+=("$EXPOSER_PID")
}

# stop_pid PID: stops one process this script started.
stop_pid() {
    local pid="$1" p keep=()
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    for p in "${BENCH_PIDS[@]}"; do
        [ "$p" = "$pid" ] || keep+=("$p")
    done
    BENCH_PIDS=("${keep[@]}")
}
