# shellcheck shell=bash
# shellcheck source-path=SCRIPTDIR
# shellcheck disable=SC2034  # variables used by the scripts that source this file
# Shared helpers for the bench/sentinel scripts (run.sh, reload.sh, rolling-restart.sh);
# sourced, never run. Everything binds and connects to 127.0.0.1 only.
#
# Pinning (spec shared/specs/sentinel.md §8): the proxy under test on PROXY_CPU (0); the load
# generator and the upstream on CPU 1. With >= 4 CPUs the upstream gets CPU 2 and the
# generator CPU 3. Each may be overridden: PROXY_CPU, UPSTREAM_CPU, CLIENT_CPU.

SENTINEL_BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

if [ "$(nproc)" -ge 4 ]; then
    CLIENT_CPU="${CLIENT_CPU:-3}"
    UPSTREAM_CPU="${UPSTREAM_CPU:-2}"
else
    CLIENT_CPU="${CLIENT_CPU:-1}"
    UPSTREAM_CPU="${UPSTREAM_CPU:-1}"
fi
PROXY_CPU="${PROXY_CPU:-${SERVER_CPU:-0}}"
SERVER_CPU="$PROXY_CPU"

# Shared helpers: ROOT, TARGET, OHA, BENCH_PIDS/BENCH_TMP with an EXIT trap that stops
# exactly the processes started here, die, free_port, wait_http, stop_pid, machine_line.
# shellcheck source=../ron-metrics/lib.sh
source "$SENTINEL_BENCH_DIR/../ron-metrics/lib.sh"
rmdir "$BENCH_TMP" && BENCH_TMP="$(mktemp -d -t sentinel-bench.XXXXXX)"
# nginx workers drop root privileges; they must be able to reach their temp dirs.
chmod 755 "$BENCH_TMP"

need() {
    command -v "$1" >/dev/null 2>&1 || [ -x "$1" ] || die "$1 not found; run bench/sentinel/install.sh"
}

CONF="$SENTINEL_BENCH_DIR/conf"
BIN="$TARGET/release/sentinel-proxy"
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"
HAPROXY="$(command -v haproxy || echo /usr/sbin/haproxy)"
UPSTREAM="${UPSTREAM:-nginx}"
UPSTREAM_PORT="${UPSTREAM_PORT:-18081}"
UPSTREAM_ADDR="127.0.0.1:$UPSTREAM_PORT"
CLK_TCK="$(getconf CLK_TCK)"
BODY_BYTES=128

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# build_sentinel: cargo build --release -p sentinel into $TARGET, unless SKIP_BUILD=1.
build_sentinel() {
    if [ "${SKIP_BUILD:-0}" != 1 ]; then
        (cd "$ROOT" && cargo build --release --quiet -p sentinel) ||
            die "cargo build --release -p sentinel failed"
    fi
    [ -x "$BIN" ] || die "expected the sentinel binary at $BIN (set CARGO_TARGET_DIR or build first)"
}

# start_upstream: the 128-byte `return 200` nginx on UPSTREAM_ADDR, pinned to UPSTREAM_CPU.
# Sets UPSTREAM_PID (master) and UPSTREAM_WORKER.
start_upstream() {
    case "$UPSTREAM" in
        nginx) ;;
        hyper)
            die "UPSTREAM=hyper needs a bench-upstream example in crates/sentinel/examples/, which this tree does not have; only UPSTREAM=nginx is supported"
            ;;
        *) die "unknown UPSTREAM=$UPSTREAM (nginx)" ;;
    esac
    need "$NGINX"
    if curl -s -o /dev/null --max-time 1 "http://$UPSTREAM_ADDR/" 2>/dev/null; then
        die "something already answers on $UPSTREAM_ADDR; stop it or set UPSTREAM_PORT"
    fi
    mkdir -p "$BENCH_TMP/upstream"
    sed -e "s|@TMP@|$BENCH_TMP|g" -e "s|@PORT@|$UPSTREAM_PORT|" \
        "$CONF/upstream-nginx.conf.in" >"$BENCH_TMP/upstream/nginx.conf"
    taskset -c "$UPSTREAM_CPU" "$NGINX" -p "$BENCH_TMP/upstream" -e "$BENCH_TMP/upstream/error.log" \
        -c "$BENCH_TMP/upstream/nginx.conf" >"$BENCH_TMP/upstream/stdout.log" 2>&1 &
    UPSTREAM_PID=$!
    BENCH_PIDS+=("$UPSTREAM_PID")
    wait_http "http://$UPSTREAM_ADDR/"
    UPSTREAM_WORKER="$(pgrep -P "$UPSTREAM_PID" | head -n1)"
    [ -n "$UPSTREAM_WORKER" ] || die "no worker under the upstream nginx master $UPSTREAM_PID"
    local size
    size="$(curl -s -o /dev/null -w '%{size_download}' "http://$UPSTREAM_ADDR/")"
    [ "$size" = "$BODY_BYTES" ] || die "upstream body is $size bytes, want $BODY_BYTES"
}

# wait_up URL PID LOG...: waits up to 10 s for a 200 from URL; dies with the logs if PID
# exits or the time runs out.
wait_up() {
    local url="$1" pid="$2" code=""
    shift 2
    for _ in $(seq 1 100); do
        code="$(curl -s -o /dev/null -w '%{http_code}' "$url" 2>/dev/null || true)"
        [ "$code" = 200 ] && return 0
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    die "no 200 from $url (last status ${code:-none}; pid $pid $(kill -0 "$pid" 2>/dev/null && echo running || echo exited)): $(tail -n3 "$@" 2>/dev/null | tr '\n' ' ')"
}

# render_sentinel OUT LISTEN METRICS PID: the bench config (conf/sentinel.kdl.in).
render_sentinel() {
    sed -e "s|@LISTEN@|$2|" -e "s|@METRICS@|$3|" -e "s|@PID@|$4|" -e "s|@UPSTREAM@|$UPSTREAM_ADDR|" \
        "$CONF/sentinel.kdl.in" >"$1"
    "$BIN" --validate --config "$1" >/dev/null 2>"$1.validate" ||
        die "generated config $1 does not validate: $(cat "$1.validate")"
}

# Only the generated file configures sentinel: no SENTINEL_*/RUST_LOG from the caller.
sentinel_env_unset() {
    local v
    SENTINEL_UNSET=(-u RUST_LOG)
    for v in $(compgen -e | grep '^SENTINEL_' || true); do SENTINEL_UNSET+=(-u "$v"); done
}

# start_sentinel CONF LOG: starts sentinel-proxy with SENTINEL_WORKERS=1 pinned to PROXY_CPU
# and sets STARTED_PID. It does not wait; see wait_pidfile.
start_sentinel() {
    sentinel_env_unset
    env "${SENTINEL_UNSET[@]}" SENTINEL_WORKERS=1 \
        taskset -c "$PROXY_CPU" "$BIN" --config "$1" >"$2" 2>&1 &
    STARTED_PID=$!
    BENCH_PIDS+=("$STARTED_PID")
}

# wait_pidfile FILE PID LOG [SECS]: waits until FILE holds PID (sentinel writes it once
# ready, SEN-R41); dies if the process exits first.
wait_pidfile() {
    local file="$1" pid="$2" log="$3" secs="${4:-10}" t0
    t0="$(date +%s%N)"
    for _ in $(seq 1 $((secs * 50))); do
        if [ -f "$file" ] && [ "$(cat "$file" 2>/dev/null)" = "$pid" ]; then
            READY_MS=$((($(date +%s%N) - t0) / 1000000))
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || die "sentinel $pid exited before it was ready: $(tail -n5 "$log")"
        sleep 0.02
    done
    die "pid file $file did not hold $pid after $secs s: $(tail -n5 "$log")"
}

# tcp_migrate_on: sets net.ipv4.tcp_migrate_req=1 when permitted (restored at exit by
# tcp_migrate_restore) and prints what happened. Sets MIGRATE_STATE (on/already/unavailable).
TCP_MIGRATE_OLD=""
tcp_migrate_on() {
    local f=/proc/sys/net/ipv4/tcp_migrate_req
    if [ ! -e "$f" ]; then
        MIGRATE_STATE=unavailable
        echo "# tcp_migrate_req: not available on kernel $(uname -r) (needs Linux >= 5.14); connections queued in the old instance's backlog may be reset"
        return 0
    fi
    if [ "$(cat "$f")" = 1 ]; then
        MIGRATE_STATE=already
        echo "# tcp_migrate_req: already 1"
        return 0
    fi
    local old
    old="$(cat "$f")"
    if sysctl -q -w net.ipv4.tcp_migrate_req=1 >/dev/null 2>&1 && [ "$(cat "$f")" = 1 ]; then
        TCP_MIGRATE_OLD="$old"
        MIGRATE_STATE=on
        echo "# tcp_migrate_req: set to 1 with sysctl -w (was $old; restored at exit)"
    else
        MIGRATE_STATE=unavailable
        echo "# tcp_migrate_req: NOT set (sysctl -w net.ipv4.tcp_migrate_req=1 not permitted; value stays $old); connections queued in the old instance's backlog may be reset"
    fi
}
tcp_migrate_restore() {
    if [ -n "$TCP_MIGRATE_OLD" ]; then
        sysctl -q -w "net.ipv4.tcp_migrate_req=$TCP_MIGRATE_OLD" >/dev/null 2>&1 || true
        TCP_MIGRATE_OLD=""
    fi
}

# ticks PID...: utime+stime of the processes, in clock ticks (0 for a vanished one).
ticks() {
    local pid sum=0 f
    for pid in "$@"; do
        f="$(cut -d')' -f2- "/proc/$pid/stat" 2>/dev/null)" || continue
        # After the comm field: state is $1; utime and stime are $12 and $13.
        # shellcheck disable=SC2086
        set -- $f
        sum=$((sum + ${12} + ${13}))
    done
    echo "$sum"
}

# oha_stream NAME RATE SECS CONNS URL [oha args...]: one fixed-rate oha run in the
# background on CLIENT_CPU, JSON into $BENCH_TMP/NAME.json. Sets OHA_PID.
oha_stream() {
    local name="$1" rate="$2" secs="$3" conns="$4" url="$5"
    shift 5
    taskset -c "$CLIENT_CPU" "$OHA" -z "${secs}s" -c "$conns" -q "$rate" --latency-correction \
        --no-tui --output-format json --worker-threads 1 "$@" "$url" \
        >"$BENCH_TMP/$name.json" 2>"$BENCH_TMP/$name.err" &
    OHA_PID=$!
    BENCH_PIDS+=("$OHA_PID")
}

# oha_errors NAME: prints "LABEL: N requests, non-2xx X, socket errors Y {detail}" and
# adds to TOTAL_REQ, TOTAL_NON2XX and TOTAL_SOCKERR.
TOTAL_REQ=0
TOTAL_NON2XX=0
TOTAL_SOCKERR=0
oha_errors() {
    local line req non sock detail
    line="$(python3 "$SENTINEL_BENCH_DIR/report.py" oha-errors "$BENCH_TMP/$1.json")" ||
        die "cannot read oha output $1: $(cat "$BENCH_TMP/$1.err")"
    # line: "REQ NON2XX SOCKERR detail..."
    read -r req non sock detail <<<"$line"
    TOTAL_REQ=$((TOTAL_REQ + req))
    TOTAL_NON2XX=$((TOTAL_NON2XX + non))
    TOTAL_SOCKERR=$((TOTAL_SOCKERR + sock))
    echo "  $1: $req responses, non-2xx $non, socket errors $sock $detail"
}

# parse_quick LAST "$@": the scripts' one option. Sets QUICK=1 for --quick; -h/--help prints
# the script's header comment (lines 3..LAST); anything else is a usage error.
parse_quick() {
    local last="$1"
    shift
    QUICK=0
    while [ $# -gt 0 ]; do
        case "$1" in
            --quick) QUICK=1 ;;
            -h | --help)
                sed -n "3,${last}p" "$0"
                exit 0
                ;;
            *) die "unknown option $1 (expected --quick)" ;;
        esac
        shift
    done
}
