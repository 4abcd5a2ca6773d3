#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# sentinel against nginx and HAProxy as reverse proxies (spec shared/specs/sentinel.md §8,
# SEN-R50): peak req/s (wrk), p99 at a fixed rate (oha), PSS memory, CPU per request.
# The proxy under test runs on PROXY_CPU (0); wrk/oha and the upstream run on CPU 1 (on
# >= 4 CPUs: upstream CPU 2, generator CPU 3). 127.0.0.1 only. See README.md; the latest
# numbers are in RESULTS.md.
#
# Usage: bench/sentinel/run.sh [--quick]
#   --quick   smoke run: 1 s warm-up, 3 s per wrk/oha run
# Environment: ROUNDS (3), CONNECTIONS (64), OHA_RATE_CAP (25000; none = no cap),
#   CARGO_TARGET_DIR (binary and JSON output; default target/), SKIP_BUILD=1 (use the
#   existing release binary), UPSTREAM (nginx), UPSTREAM_PORT (18081), PROXY_CPU,
#   UPSTREAM_CPU, CLIENT_CPU, OHA (path).
# Exit status: 0 the run completed (whatever the verdict), 2 setup/build/check problem.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=common.sh
source "$HERE/common.sh"

parse_quick 15 "$@"

ROUNDS="${ROUNDS:-3}"
CONNECTIONS="${CONNECTIONS:-64}"
if [ "$QUICK" = 1 ]; then
    WARM=1 PEAK_SECS=3 LAT_SECS=3
else
    WARM=5 PEAK_SECS=30 LAT_SECS=30
fi
RATE_FRACTION=0.5
# oha's fixed-rate mode (1.16, one worker thread on the one generator core) keeps its own
# p99 flat only up to about 25-30k req/s (measured in bench/svc-edge/RESULTS.md); above that
# the p99 measures oha's backlog, not the proxy. R is capped (README "Method").
OHA_RATE_CAP="${OHA_RATE_CAP:-25000}"
SERVERS=(sentinel nginx haproxy)

need wrk
need curl
need python3
need taskset
need "$OHA"
need "$NGINX"
need "$HAPROXY"
build_sentinel

OUT_DIR="$TARGET/bench/sentinel"
mkdir -p "$OUT_DIR"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
RESULTS="$BENCH_TMP/results.jsonl"
: >"$RESULTS"
LOAD_START="$(loadavg)"

echo "# sentinel vs nginx vs HAProxy: $(machine_line)"
echo "# proxies on CPU $PROXY_CPU, upstream on CPU $UPSTREAM_CPU, wrk/oha on CPU $CLIENT_CPU; load average at start: $LOAD_START"
echo "# $("$BIN" --version 2>&1 | head -1); $("$NGINX" -v 2>&1); $("$HAPROXY" -v 2>&1 | head -1 | cut -d' ' -f1-3); $(wrk --version 2>&1 | head -1 | cut -d' ' -f1-2); $("$OHA" --version)"

# --- Upstream. -------------------------------------------------------------------------------
start_upstream
echo "# upstream: nginx (1 worker, return 200 with a $BODY_BYTES-byte body) on $UPSTREAM_ADDR, master $UPSTREAM_PID worker $UPSTREAM_WORKER"

declare -A PORT PIDS LOGS

# --- sentinel. -------------------------------------------------------------------------------
PORT[sentinel]="$(free_port)"
SEN_METRICS="$(free_port)"
mkdir -p "$BENCH_TMP/sentinel"
SEN_CONF="$BENCH_TMP/sentinel/sentinel.kdl"
SEN_PIDFILE="$BENCH_TMP/sentinel/sentinel.pid"
render_sentinel "$SEN_CONF" "127.0.0.1:${PORT[sentinel]}" "127.0.0.1:$SEN_METRICS" "$SEN_PIDFILE"
LOGS[sentinel]="$BENCH_TMP/sentinel/stdout.log"
start_sentinel "$SEN_CONF" "${LOGS[sentinel]}"
SEN_PID="$STARTED_PID"
wait_pidfile "$SEN_PIDFILE" "$SEN_PID" "${LOGS[sentinel]}"
PIDS[sentinel]="$SEN_PID"

# --- nginx. ----------------------------------------------------------------------------------
PORT[nginx]="$(free_port)"
mkdir -p "$BENCH_TMP/nginx"
sed -e "s|@TMP@|$BENCH_TMP|g" -e "s|@PORT@|${PORT[nginx]}|" -e "s|@UPSTREAM@|$UPSTREAM_ADDR|" \
    "$CONF/nginx.conf.in" >"$BENCH_TMP/nginx/nginx.conf"
taskset -c "$PROXY_CPU" "$NGINX" -p "$BENCH_TMP/nginx" -e "$BENCH_TMP/nginx/error.log" \
    -c "$BENCH_TMP/nginx/nginx.conf" >"$BENCH_TMP/nginx/stdout.log" 2>&1 &
NGINX_PID=$!
BENCH_PIDS+=("$NGINX_PID")
wait_up "http://127.0.0.1:${PORT[nginx]}/" "$NGINX_PID" "$BENCH_TMP/nginx/error.log" "$BENCH_TMP/nginx/stdout.log"
NGINX_WORKERS="$(pgrep -P "$NGINX_PID" | tr '\n' ' ' || true)"
[ -n "$NGINX_WORKERS" ] || die "no nginx worker under master $NGINX_PID"
PIDS[nginx]="$NGINX_PID $NGINX_WORKERS"
LOGS[nginx]="$BENCH_TMP/nginx/error.log"

# --- HAProxy. --------------------------------------------------------------------------------
PORT[haproxy]="$(free_port)"
mkdir -p "$BENCH_TMP/haproxy"
sed -e "s|@TMP@|$BENCH_TMP|g" -e "s|@PORT@|${PORT[haproxy]}|" -e "s|@UPSTREAM@|$UPSTREAM_ADDR|" \
    "$CONF/haproxy.cfg.in" >"$BENCH_TMP/haproxy/haproxy.cfg"
"$HAPROXY" -c -q -f "$BENCH_TMP/haproxy/haproxy.cfg" || die "haproxy -c rejected the generated config"
taskset -c "$PROXY_CPU" "$HAPROXY" -db -f "$BENCH_TMP/haproxy/haproxy.cfg" \
    >"$BENCH_TMP/haproxy/stdout.log" 2>&1 &
HAPROXY_PID=$!
BENCH_PIDS+=("$HAPROXY_PID")
wait_up "http://127.0.0.1:${PORT[haproxy]}/" "$HAPROXY_PID" "$BENCH_TMP/haproxy/stdout.log"
PIDS[haproxy]="$HAPROXY_PID $(pgrep -P "$HAPROXY_PID" | tr '\n' ' ' || true)"
LOGS[haproxy]="$BENCH_TMP/haproxy/stdout.log"

echo "# sentinel pid ${PIDS[sentinel]} on :${PORT[sentinel]} (SENTINEL_WORKERS=1, ready after ${READY_MS} ms); nginx pids ${PIDS[nginx]}on :${PORT[nginx]}; haproxy pid ${PIDS[haproxy]}on :${PORT[haproxy]}"

url() { echo "http://127.0.0.1:${PORT[$1]}/bench"; }

# --- Checks: every proxy answers 200 with the upstream's 128 bytes. ---------------------------
for s in "${SERVERS[@]}"; do
    got="$(taskset -c "$CLIENT_CPU" curl -sS -o "$BENCH_TMP/chk-$s" -w '%{http_code} %{size_download}' "$(url "$s")")"
    [ "$got" = "200 $BODY_BYTES" ] || die "$s answered '$got' (status size), want '200 $BODY_BYTES'"
    cmp -s "$BENCH_TMP/chk-$s" "$BENCH_TMP/chk-sentinel" || die "$s body differs from sentinel's"
done
echo "# checks: all three answer 200 with the same $BODY_BYTES-byte body"

# server_pids S: every process of the server (nginx master + workers).
# shellcheck disable=SC2086
server_ticks() { ticks ${PIDS[$1]}; }
cpustat() { python3 "$HERE/report.py" cpustat "$PROXY_CPU"; }

# run_wrk SERVER ROUND SECS: one wrk run; ROUND "warm" is recorded but not summarised.
run_wrk() {
    local s="$1" round="$2" secs="$3" out t1 t2 c1 c2 load
    out="$BENCH_TMP/wrk-$s-$round.txt"
    load="$(cut -d' ' -f1 /proc/loadavg)"
    t1="$(server_ticks "$s")"
    c1="$(cpustat)"
    taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNECTIONS" -d"${secs}s" --latency "$(url "$s")" >"$out" 2>&1 || true
    c2="$(cpustat)"
    t2="$(server_ticks "$s")"
    python3 "$HERE/report.py" wrk "$out" phase=peak server="$s" round="$round" duration_s="$secs" \
        proxy_cpu="$(python3 -c "print(($t2-$t1)/$CLK_TCK/$secs)")" proxy_cpu_id="$PROXY_CPU" \
        cpu_busy="$(python3 -c "a,b='$c1'.split(); c,d='$c2'.split(); t=int(c)-int(a); print(1-(int(d)-int(b))/t if t else 0)")" \
        load1="$load" >>"$RESULTS"
    tail -n1 "$RESULTS" | python3 "$HERE/report.py" show
}

# run_oha SERVER ROUND RATE SECS
run_oha() {
    local s="$1" round="$2" rate="$3" secs="$4" out t1 t2 load n
    out="$BENCH_TMP/oha-$s-$round.json"
    load="$(cut -d' ' -f1 /proc/loadavg)"
    t1="$(server_ticks "$s")"
    taskset -c "$CLIENT_CPU" "$OHA" -z "${secs}s" -c "$CONNECTIONS" -q "$rate" --latency-correction \
        --no-tui --output-format json --worker-threads 1 "$(url "$s")" >"$out" 2>"$out.err" || true
    t2="$(server_ticks "$s")"
    n="$(python3 "$HERE/report.py" oha-errors "$out" | cut -d' ' -f1)" || n=0
    python3 "$HERE/report.py" oha "$out" phase=latency server="$s" round="$round" rate="$rate" duration_s="$secs" \
        cpu_us_per_req="$(python3 -c "print(($t2-$t1)*1e6/$CLK_TCK/max($n,1))")" load1="$load" >>"$RESULTS"
    tail -n1 "$RESULTS" | python3 "$HERE/report.py" show
}

echo "# peak:    taskset -c $CLIENT_CPU wrk -t1 -c$CONNECTIONS -d${PEAK_SECS}s --latency URL  (after a ${WARM} s warm-up; $ROUNDS rounds S N H)"
echo "# latency: taskset -c $CLIENT_CPU oha -z ${LAT_SECS}s -c $CONNECTIONS -q R --latency-correction --no-tui --output-format json --worker-threads 1 URL"
echo "#          R = min($RATE_FRACTION x lowest median peak, OHA_RATE_CAP=$OHA_RATE_CAP)"
echo
echo "== peak"
for s in "${SERVERS[@]}"; do run_wrk "$s" warm "$WARM"; done
for round in $(seq 1 "$ROUNDS"); do
    for s in "${SERVERS[@]}"; do run_wrk "$s" "$round" "$PEAK_SECS"; done
done

# --- Memory after the peak phase: PSS (and RSS) summed over each server's processes. -------
MEM_JSON="$BENCH_TMP/memory.json"
{
    echo "{"
    first=1
    for s in "${SERVERS[@]}"; do
        # shellcheck disable=SC2086
        read -r pss rss <<<"$(python3 "$HERE/report.py" mem ${PIDS[$s]})"
        [ "$first" = 1 ] || echo ","
        first=0
        # shellcheck disable=SC2086
        printf '"%s": {"pss_kib": %s, "rss_kib": %s, "processes": %s}' "$s" "$pss" "$rss" "$(echo ${PIDS[$s]} | wc -w)"
        echo "  memory $s: PSS $((pss / 1024)).$((pss % 1024 * 10 / 1024)) MiB, RSS $((rss / 1024)).$((rss % 1024 * 10 / 1024)) MiB (pids ${PIDS[$s]})" >&2
    done
    echo "}"
} >"$MEM_JSON"

cap=""
[ "$OHA_RATE_CAP" = none ] || cap="$OHA_RATE_CAP"
RATE="$(python3 - "$RESULTS" "$RATE_FRACTION" "$cap" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
peaks = []
for s in ("sentinel", "nginx", "haproxy"):
    rps = [r["rps"] for r in rows if r["server"] == s and r["round"] != "warm" and "rps" in r]
    if rps:
        peaks.append(statistics.median(rps))
rate = int(float(sys.argv[2]) * min(peaks)) if peaks else 1000
if sys.argv[3]:
    rate = min(rate, int(sys.argv[3]))
print(max(1, rate))
PY
)"
echo
echo "== latency at R = $RATE req/s"
for round in $(seq 1 "$ROUNDS"); do
    for s in "${SERVERS[@]}"; do run_oha "$s" "$round" "$RATE" "$LAT_SECS"; done
done

# --- Logged errors. ----------------------------------------------------------------------------
NGINX_ERR="$(grep -cE '\[(error|crit|alert|emerg)\]' "${LOGS[nginx]}" || true)"
HAPROXY_ERR="$(grep -cE '\[(ALERT|WARNING)\]' "${LOGS[haproxy]}" || true)"
SEN_WARN="$(grep -cE '"level":"(WARN|ERROR)"' "${LOGS[sentinel]}" || true)"
sample() { grep -m1 -E "$1" "$2" | cut -c1-200 | python3 -c 'import json,sys; print(json.dumps(sys.stdin.read().strip()))'; }
LOAD_END="$(loadavg)"

python3 - "$BENCH_TMP/meta.json" "$MEM_JSON" <<PY
import json, sys
json.dump({
    "date": "$STAMP",
    "machine": """$(machine_line)""",
    "proxy_cpu": $PROXY_CPU, "upstream_cpu": $UPSTREAM_CPU, "client_cpu": $CLIENT_CPU,
    "rounds": $ROUNDS, "connections": $CONNECTIONS, "peak_s": $PEAK_SECS, "latency_s": $LAT_SECS, "warm_s": $WARM,
    "quick": bool($QUICK), "rate_fraction": $RATE_FRACTION, "oha_rate_cap": "$OHA_RATE_CAP", "rate": $RATE,
    "upstream": "$UPSTREAM $UPSTREAM_ADDR",
    "sentinel": """$("$BIN" --version 2>&1 | head -1)""",
    "git": """$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" status --porcelain -- crates 2>/dev/null | grep -q . && echo ' (crates/ modified)')""",
    "nginx": """$("$NGINX" -v 2>&1)""",
    "haproxy": """$("$HAPROXY" -v 2>&1 | head -1)""",
    "wrk": """$(wrk --version 2>&1 | head -1 | cut -d' ' -f1-2)""",
    "oha": """$("$OHA" --version)""",
    "sentinel_ready_ms": ${READY_MS:-None},
    "memory": json.load(open(sys.argv[2])),
    "peer_log_errors": {"nginx": ${NGINX_ERR:-0}, "haproxy": ${HAPROXY_ERR:-0}},
    "peer_log_samples": {"nginx": $(sample '\[(error|crit|alert|emerg)\]' "${LOGS[nginx]}"), "haproxy": $(sample '\[(ALERT|WARNING)\]' "${LOGS[haproxy]}")},
    "sentinel_log_warn_lines": ${SEN_WARN:-0},
    "sentinel_log_sample": $(sample '"level":"(WARN|ERROR)"' "${LOGS[sentinel]}"),
    "load_start": "$LOAD_START", "load_end": "$LOAD_END",
}, open(sys.argv[1], "w"), indent=2)
PY

RAW="$OUT_DIR/raw-$STAMP"
mkdir -p "$RAW"
cp "$RESULTS" "$BENCH_TMP/meta.json" "$BENCH_TMP"/wrk-*.txt "$BENCH_TMP"/oha-*.json "$SEN_CONF" \
    "$BENCH_TMP/nginx/nginx.conf" "$BENCH_TMP/haproxy/haproxy.cfg" "$BENCH_TMP/upstream/nginx.conf" "$RAW"/ 2>/dev/null || true
cp "${LOGS[sentinel]}" "$RAW/sentinel.log" 2>/dev/null || true
cp "${LOGS[nginx]}" "$RAW/nginx-error.log" 2>/dev/null || true
cp "${LOGS[haproxy]}" "$RAW/haproxy.log" 2>/dev/null || true

echo
echo "== summary ($ROUNDS rounds S N H; medians; load average start $LOAD_START, end $LOAD_END)"
python3 "$HERE/report.py" summary "$RESULTS" "$BENCH_TMP/meta.json" "$OUT_DIR/results-$STAMP.json"
cp "$OUT_DIR/results-$STAMP.json" "$OUT_DIR/latest.json"
