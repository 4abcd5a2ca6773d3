#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Zero-failure rolling restart (spec shared/specs/sentinel.md §8, SEN-R50; §4.9 SEN-R40,
# R41): oha sends RATE req/s (2,000) through sentinel for DURATION s (30). Meanwhile, the
# script runs RESTARTS (2) hand-overs: start instance B with the same config (same ports via
# SO_REUSEPORT, same pid file), wait until the pid file holds B's pid (B writes it only once
# ready), then SIGTERM the old instance A and wait for it to exit (it drains; exit 0 and
# B's pid file left in place are checked). Prints the error counts; 0 is the goal.
# 127.0.0.1 only.
#
# net.ipv4.tcp_migrate_req=1 is set when permitted (and restored at exit) so the kernel moves
# connections still queued in A's accept backlog to B; the script says so when it cannot.
#
# Load: two oha streams of RATE/2 each on CLIENT_CPU:
#   keepalive  -c CONNECTIONS, persistent connections (A answers them with Connection: close
#              while draining, then the client reconnects to B)
#   fresh      -c CONNECTIONS --disable-keepalive (a new connection per request)
#
# Usage: bench/sentinel/rolling-restart.sh [--quick]
#   --quick   10 s and 1 restart
# Environment: RATE (2000), DURATION (30), RESTARTS (2), CONNECTIONS (16 per stream),
#   CARGO_TARGET_DIR, SKIP_BUILD=1, UPSTREAM_PORT (18081), PROXY_CPU, UPSTREAM_CPU,
#   CLIENT_CPU, OHA.
# Exit status: 0 no failed request, 1 failed requests or a bad hand-over, 2 setup problem.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=common.sh
source "$HERE/common.sh"
trap 'tcp_migrate_restore; bench_cleanup' EXIT

parse_quick 24 "$@"
RATE="${RATE:-2000}"
DURATION="${DURATION:-30}"
RESTARTS="${RESTARTS:-2}"
if [ "$QUICK" = 1 ]; then
    DURATION=10
    RESTARTS=1
fi
CONNECTIONS="${CONNECTIONS:-16}"

need curl
need python3
need taskset
need "$OHA"
build_sentinel

echo "# sentinel rolling restart under load: $(machine_line)"
echo "# $("$BIN" --version 2>&1 | head -1); $("$OHA" --version); load average $(loadavg)"
tcp_migrate_on
start_upstream

PORT="$(free_port)"
METRICS="$(free_port)"
D="$BENCH_TMP/sentinel"
mkdir -p "$D"
PIDFILE="$D/sentinel.pid"
render_sentinel "$D/sentinel.kdl" "127.0.0.1:$PORT" "127.0.0.1:$METRICS" "$PIDFILE"

# forget PID: drop a process that has exited from BENCH_PIDS.
forget() {
    local p keep=()
    for p in "${BENCH_PIDS[@]}"; do
        [ "$p" = "$1" ] || keep+=("$p")
    done
    BENCH_PIDS=("${keep[@]}")
}

N=1
start_sentinel "$D/sentinel.kdl" "$D/instance-$N.log"
CUR="$STARTED_PID"
wait_pidfile "$PIDFILE" "$CUR" "$D/instance-$N.log"
URL="http://127.0.0.1:$PORT/bench"
code="$(curl -s -o /dev/null -w '%{http_code}' "$URL")"
[ "$code" = 200 ] || die "sentinel answered $code on $URL before the load started"

HALF=$((RATE / 2))
echo "# instance 1: pid $CUR on :$PORT (SENTINEL_WORKERS=1, CPU $PROXY_CPU), metrics :$METRICS, pid file $PIDFILE"
echo "# load: taskset -c $CLIENT_CPU oha -z ${DURATION}s -c $CONNECTIONS -q $HALF --latency-correction (keep-alive)"
echo "#     + taskset -c $CLIENT_CPU oha -z ${DURATION}s -c $CONNECTIONS -q $HALF --latency-correction --disable-keepalive"
oha_stream keepalive "$HALF" "$DURATION" "$CONNECTIONS" "$URL"
OHA_KA="$OHA_PID"
oha_stream fresh "$HALF" "$DURATION" "$CONNECTIONS" "$URL" --disable-keepalive
OHA_FRESH="$OHA_PID"
T0="$(date +%s%N)"
elapsed() { python3 -c "print(f'{($(date +%s%N) - $T0) / 1e9:5.1f}')"; }

BAD=0
GAP_MS=$((DURATION * 1000 / (RESTARTS + 1)))
for i in $(seq 1 "$RESTARTS"); do
    # Hand-over i happens at i x DURATION / (RESTARTS + 1) seconds into the load.
    while [ $((($(date +%s%N) - T0) / 1000000)) -lt $((i * GAP_MS)) ]; do sleep 0.05; done
    N=$((N + 1))
    start_sentinel "$D/sentinel.kdl" "$D/instance-$N.log"
    NEW="$STARTED_PID"
    echo "  t=$(elapsed) s: started instance $N (pid $NEW) beside pid $CUR"
    wait_pidfile "$PIDFILE" "$NEW" "$D/instance-$N.log"
    echo "  t=$(elapsed) s: pid file holds $NEW after ${READY_MS} ms; kill -TERM $CUR"
    kill -TERM "$CUR"
    t1="$(date +%s%N)"
    rc=0
    wait "$CUR" || rc=$?
    forget "$CUR"
    held="$(cat "$PIDFILE" 2>/dev/null || echo missing)"
    echo "  t=$(elapsed) s: pid $CUR exited with $rc after $((($(date +%s%N) - t1) / 1000000)) ms of drain; pid file holds $held"
    [ "$rc" = 0 ] || { echo "  old instance exit status $rc, want 0"; BAD=1; }
    [ "$held" = "$NEW" ] || { echo "  pid file holds $held, want $NEW"; BAD=1; }
    CUR="$NEW"
done
wait "$OHA_KA" || true
wait "$OHA_FRESH" || true

echo
echo "== results (tcp_migrate_req: $MIGRATE_STATE)"
oha_errors keepalive
oha_errors fresh
for f in "$D"/instance-*.log; do
    w="$(grep -cE '"level":"(WARN|ERROR)"' "$f" || true)"
    if [ "${w:-0}" -gt 0 ]; then
        echo "$(basename "$f" .log) WARN/ERROR log lines: $w; first: $(grep -m1 -E '"level":"(WARN|ERROR)"' "$f" | cut -c1-240)"
    fi
done
echo "hand-overs: $RESTARTS; failed requests: $((TOTAL_NON2XX + TOTAL_SOCKERR)) of $((TOTAL_REQ + TOTAL_SOCKERR)) (non-2xx $TOTAL_NON2XX, socket errors $TOTAL_SOCKERR)"
if [ $((TOTAL_NON2XX + TOTAL_SOCKERR)) -eq 0 ] && [ "$BAD" = 0 ] && [ "$TOTAL_REQ" -gt 0 ]; then
    echo "result: PASS (0 failed requests over $RESTARTS rolling restarts)"
else
    echo "result: FAIL"
    exit 1
fi
