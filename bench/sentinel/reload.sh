#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Zero-failure reload scenario (spec shared/specs/sentinel.md §8, SEN-R50; SEN-R36, R37):
# oha sends RATE req/s (2,000) through sentinel for DURATION s (30) while the script swaps
# the config file between two valid configs and sends SIGHUP every INTERVAL s (1).
# Prints the non-2xx and socket-error counts; 0 is the goal. 127.0.0.1 only.
#
# Load: two oha streams of RATE/2 each on CLIENT_CPU, so both kinds of client are covered:
#   keepalive  -c CONNECTIONS, persistent connections (old connections, new snapshots)
#   fresh      -c CONNECTIONS --disable-keepalive (a new connection per request)
# Configs: A = conf/sentinel.kdl.in; B = conf/sentinel-reload-b.kdl.in, i.e. A with
# connection-pool max-idle 32 merged in front (the upstream pool is replaced on each
# reload) and an extra route "alt".
#
# Usage: bench/sentinel/reload.sh [--quick]
#   --quick   10 s instead of DURATION
# Environment: RATE (2000), DURATION (30), INTERVAL (1), CONNECTIONS (16 per stream),
#   CARGO_TARGET_DIR, SKIP_BUILD=1, UPSTREAM_PORT (18081), PROXY_CPU, UPSTREAM_CPU,
#   CLIENT_CPU, OHA.
# Exit status: 0 no failed request, 1 failed requests or a failed reload, 2 setup problem.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=common.sh
source "$HERE/common.sh"

parse_quick 20 "$@"
RATE="${RATE:-2000}"
DURATION="${DURATION:-30}"
[ "$QUICK" = 1 ] && DURATION=10
INTERVAL="${INTERVAL:-1}"
CONNECTIONS="${CONNECTIONS:-16}"

need curl
need python3
need taskset
need "$OHA"
build_sentinel

echo "# sentinel reload under load: $(machine_line)"
echo "# $("$BIN" --version 2>&1 | head -1); $("$OHA" --version); load average $(loadavg)"
start_upstream

PORT="$(free_port)"
METRICS="$(free_port)"
D="$BENCH_TMP/sentinel"
mkdir -p "$D"
render_sentinel "$D/a.kdl" "127.0.0.1:$PORT" "127.0.0.1:$METRICS" "$D/sentinel.pid"
awk -v base="$D/a.kdl" '$0 == "// @BASE@" { while ((getline l < base) > 0) print l; next } { print }' \
    "$CONF/sentinel-reload-b.kdl.in" >"$D/b.kdl"
"$BIN" --validate --config "$D/b.kdl" >/dev/null 2>"$D/b.validate" || die "config B does not validate: $(cat "$D/b.validate")"
cp "$D/a.kdl" "$D/live.kdl"

start_sentinel "$D/live.kdl" "$D/stdout.log"
SEN_PID="$STARTED_PID"
wait_pidfile "$D/sentinel.pid" "$SEN_PID" "$D/stdout.log"
URL="http://127.0.0.1:$PORT/bench"
code="$(curl -s -o /dev/null -w '%{http_code}' "$URL")"
[ "$code" = 200 ] || die "sentinel answered $code on $URL before the load started"

metric() {
    curl -s "http://127.0.0.1:$METRICS/metrics" |
        awk -v m="$1" -v l="$2" 'index($0, m) == 1 && index($0, l) > 0 { v = $NF } END { print (v == "" ? 0 : v) }'
}
OK0="$(metric sentinel_config_reloads_total 'result="success"')"
FAIL0="$(metric sentinel_config_reloads_total 'result="failure"')"
GEN0="$(metric sentinel_config_generation '')"

HALF=$((RATE / 2))
echo "# sentinel pid $SEN_PID on :$PORT (SENTINEL_WORKERS=1, CPU $PROXY_CPU), metrics :$METRICS; upstream $UPSTREAM_ADDR (CPU $UPSTREAM_CPU)"
echo "# load: taskset -c $CLIENT_CPU oha -z ${DURATION}s -c $CONNECTIONS -q $HALF --latency-correction (keep-alive)"
echo "#     + taskset -c $CLIENT_CPU oha -z ${DURATION}s -c $CONNECTIONS -q $HALF --latency-correction --disable-keepalive"
echo "# every ${INTERVAL} s: write config A or B (alternating) to live.kdl with cp + mv, then kill -HUP $SEN_PID"
oha_stream keepalive "$HALF" "$DURATION" "$CONNECTIONS" "$URL"
OHA_KA="$OHA_PID"
oha_stream fresh "$HALF" "$DURATION" "$CONNECTIONS" "$URL" --disable-keepalive
OHA_FRESH="$OHA_PID"

SENT=0
START="$(date +%s)"
while [ $(($(date +%s) - START)) -lt $((DURATION - 1)) ]; do
    sleep "$INTERVAL"
    kill -0 "$SEN_PID" 2>/dev/null || die "sentinel exited during the run: $(tail -n5 "$D/stdout.log")"
    if [ $((SENT % 2)) -eq 0 ]; then next=b; else next=a; fi
    cp "$D/$next.kdl" "$D/live.kdl.tmp"
    mv "$D/live.kdl.tmp" "$D/live.kdl"
    kill -HUP "$SEN_PID"
    SENT=$((SENT + 1))
done
wait "$OHA_KA" || true
wait "$OHA_FRESH" || true
sleep 0.5

kill -0 "$SEN_PID" 2>/dev/null || die "sentinel exited during the run: $(tail -n5 "$D/stdout.log")"
OK1="$(metric sentinel_config_reloads_total 'result="success"')"
FAIL1="$(metric sentinel_config_reloads_total 'result="failure"')"
GEN1="$(metric sentinel_config_generation '')"
OK=$((${OK1%.*} - ${OK0%.*}))
FAILED_RELOADS=$((${FAIL1%.*} - ${FAIL0%.*}))

echo
echo "== results"
oha_errors keepalive
oha_errors fresh
echo "SIGHUPs sent: $SENT; reloads counted by sentinel: success $OK, failure $FAILED_RELOADS; config generation ${GEN0%.*} -> ${GEN1%.*}"
WARNS="$(grep -cE '"level":"(WARN|ERROR)"' "$D/stdout.log" || true)"
if [ "${WARNS:-0}" -gt 0 ]; then
    echo "sentinel WARN/ERROR log lines: $WARNS; first: $(grep -m1 -E '"level":"(WARN|ERROR)"' "$D/stdout.log" | cut -c1-240)"
fi
echo "failed requests: $((TOTAL_NON2XX + TOTAL_SOCKERR)) of $((TOTAL_REQ + TOTAL_SOCKERR)) (non-2xx $TOTAL_NON2XX, socket errors $TOTAL_SOCKERR)"
if [ $((TOTAL_NON2XX + TOTAL_SOCKERR)) -eq 0 ] && [ "$FAILED_RELOADS" -eq 0 ] && [ "$OK" -eq "$SENT" ] && [ "$TOTAL_REQ" -gt 0 ]; then
    echo "result: PASS (0 failed requests, $OK/$SENT reloads applied)"
else
    echo "result: FAIL"
    exit 1
fi
