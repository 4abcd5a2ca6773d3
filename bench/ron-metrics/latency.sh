#!/usr/bin/env bash
# The spec §8.1 latency rows against the example exposer, with oha at a fixed rate and
# latency correction; prints p50/p95/p99 next to each target. See bench/ron-metrics/README.md.
#
# Usage: bench/ron-metrics/latency.sh [--gate] [--quick] [--no-tls]
#   --gate    exit 1 when any measured target is missed
#   --quick   10 s per run instead of 30 s
#   --no-tls  skip the two TLS rows
# Environment: SERVER_CPU (default 0), CLIENT_CPU (default 1), OHA, CARGO_TARGET_DIR.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

GATE=0
DURATION=30s
TLS=1
for a in "$@"; do
    case "$a" in
        --gate) GATE=1 ;;
        --quick) DURATION=10s ;;
        --no-tls) TLS=0 ;;
        *) die "unknown option $a (expected --gate, --quick or --no-tls)" ;;
    esac
done

need "$OHA"
need curl
need python3
[ "$TLS" = 0 ] || need openssl
build_exposer

RUNS="$BENCH_TMP/runs.tsv"
: >"$RUNS"

echo "# latency: $(machine_line)"
echo "# exposer on CPU $SERVER_CPU, oha on CPU $CLIENT_CPU; $("$OHA" --version)"
echo "# per run: taskset -c $CLIENT_CPU oha [-q RATE] -c CONN -z $DURATION --latency-correction --no-tui --output-format json URL"

# oha_run ID RATE CONN URL TARGETS [oha args...]: one load run; RATE "max" means no -q.
# TARGETS is "p50=0.5,p95=2,p99=5,rps=2000" (ms; rps is a floor).
oha_run() {
    local id="$1" rate="$2" conn="$3" url="$4" targets="$5"
    shift 5
    local rate_args=()
    [ "$rate" = max ] || rate_args=(-q "$rate" --latency-correction)
    echo "run $id: oha ${rate_args[*]:+${rate_args[*]} }-c $conn -z $DURATION ${*:+$* }$url" >&2
    taskset -c "$CLIENT_CPU" "$OHA" "${rate_args[@]}" -c "$conn" -z "$DURATION" --no-tui \
        --output-format json "$@" "$url" >"$BENCH_TMP/$id.json" 2>"$BENCH_TMP/$id.err" ||
        die "oha failed for $id: $(tail -n3 "$BENCH_TMP/$id.err")"
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$id" "$rate" "$conn" "$url" "$targets" "$*" >>"$RUNS"
}

# cpu_ticks PID: utime+stime in clock ticks.
cpu_ticks() {
    awk '{print $14 + $15}' "/proc/$1/stat"
}

# 1. Plain TCP, first-party set.
PORT="$(free_port)"
start_exposer "$PORT" "$BENCH_TMP/exposer.log"
BASE="http://127.0.0.1:$PORT"
wait_http "$BASE/readyz"
oha_run healthz 500 32 "$BASE/healthz" "p50=0.5,p95=2,p99=5"
oha_run healthz-ceiling max 32 "$BASE/healthz" "rps=2000"
oha_run readyz 300 32 "$BASE/readyz" "p95=3"
oha_run metrics 200 16 "$BASE/metrics" "p50=1,p95=5,p99=10"
curl -fsS "$BASE/metrics" >"$BENCH_TMP/after-metrics.txt"
stop_pid "$EXPOSER_PID"

# 2. RON_METRICS_LOAD=large, with RSS and CPU of the exposer during the run.
PORT="$(free_port)"
start_exposer "$PORT" "$BENCH_TMP/exposer-large.log" RON_METRICS_LOAD=large
BASE="http://127.0.0.1:$PORT"
wait_http "$BASE/readyz"
LARGE_PID="$EXPOSER_PID"
t0="$(date +%s.%N)"
c0="$(cpu_ticks "$LARGE_PID")"
oha_run metrics-large 10 4 "$BASE/metrics" "p50=15,p95=60,p99=120"
c1="$(cpu_ticks "$LARGE_PID")"
t1="$(date +%s.%N)"
LARGE_BYTES="$(curl -fsS "$BASE/metrics" | wc -c)"
LARGE_RSS_KB="$(awk '/^VmHWM/ {print $2}' "/proc/$LARGE_PID/status")"
LARGE_CPU="$(python3 -c "import os; print(round(100 * ($c1 - $c0) / os.sysconf('SC_CLK_TCK') / ($t1 - $t0), 1))")"
stop_pid "$LARGE_PID"

# 3. TLS: a throwaway self-signed certificate; keep-alive, then one handshake per request.
if [ "$TLS" = 1 ]; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
        -subj "/CN=127.0.0.1" -addext "subjectAltName=IP:127.0.0.1" \
        -keyout "$BENCH_TMP/key.pem" -out "$BENCH_TMP/cert.pem" 2>/dev/null
    chmod 600 "$BENCH_TMP/key.pem"
    PORT="$(free_port)"
    start_exposer "$PORT" "$BENCH_TMP/exposer-tls.log" \
        RON_METRICS_TLS_CERT="$BENCH_TMP/cert.pem" RON_METRICS_TLS_KEY="$BENCH_TMP/key.pem"
    BASE="https://127.0.0.1:$PORT"
    wait_http "$BASE/readyz" --cacert "$BENCH_TMP/cert.pem"
    oha_run metrics-tls 200 16 "$BASE/metrics" "p95=12" --insecure
    oha_run metrics-tls-cold 20 4 "$BASE/metrics" "p95=120" --insecure --disable-keepalive
    stop_pid "$EXPOSER_PID"
fi

echo
python3 - "$RUNS" "$BENCH_TMP" "$GATE" "$LARGE_BYTES" "$LARGE_RSS_KB" "$LARGE_CPU" <<'PY'
import json, re, sys
runs_file, tmp, gate = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
large_bytes, rss_kb, cpu = int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6])
labels = {
    "healthz": "/healthz at 500 rps, 32 connections",
    "healthz-ceiling": "/healthz ceiling (no rate limit), 32 connections",
    "readyz": "/readyz at 300 rps, 32 connections (ready)",
    "metrics": "/metrics first-party, 200 rps, 16 connections",
    "metrics-large": "/metrics RON_METRICS_LOAD=large, 10 rps, 4 connections",
    "metrics-tls": "/metrics over TLS keep-alive, 200 rps, 16 connections",
    "metrics-tls-cold": "/metrics over TLS, new handshake per request, 20 rps, 4 connections",
}
failed = []
def verdict(ok):
    return "PASS" if ok else "FAIL"
print("| measure | achieved rps | p50 ms | p95 ms | p99 ms | target | result |")
print("|---|--:|--:|--:|--:|---|---|")
for line in open(runs_file):
    rid, rate, conn, url, targets, extra = line.rstrip("\n").split("\t")
    d = json.load(open(f"{tmp}/{rid}.json"))
    pct = {k: v * 1e3 for k, v in d["latencyPercentiles"].items() if v is not None}
    rps = d["summary"]["requestsPerSec"]
    codes = d.get("statusCodeDistribution", {})
    # oha cancels requests still in flight when -z ends; those are not server errors.
    errors = {k: v for k, v in d.get("errorDistribution", {}).items() if k != "aborted due to deadline"}
    got = dict(pct, rps=rps)
    checks, ok = [], True
    for t in targets.split(","):
        key, limit = t.split("=")
        limit = float(limit)
        good = got[key] >= limit if key == "rps" else got[key] <= limit
        ok &= good
        checks.append(f"{key} {'>=' if key == 'rps' else '<='} {limit:g}{'' if key == 'rps' else ' ms'}")
    non200 = {k: v for k, v in codes.items() if k != "200"}
    if non200 or errors:
        ok = False
        checks.append(f"errors: status {non200} {errors}")
    if not ok:
        failed.append(rid)
    print(f"| {labels[rid]} | {rps:,.0f} | {pct['p50']:.2f} | {pct['p95']:.2f} | {pct['p99']:.2f} | {', '.join(checks)} | {verdict(ok)} |")

# exposition_latency_seconds for /metrics after the first-party run: the smallest bucket
# bound holding 95% of the encodes.
buckets, count = [], None
for l in open(f"{tmp}/after-metrics.txt"):
    if l.startswith("exposition_latency_seconds_bucket") and '"/metrics"' in l:
        le = re.search(r'le="([^"]+)"', l).group(1)
        buckets.append((float("inf") if le == "+Inf" else float(le), float(l.split()[-1])))
    elif l.startswith("exposition_latency_seconds_count") and '"/metrics"' in l:
        count = float(l.split()[-1])
p95 = next((le for le, c in sorted(buckets) if count and c >= 0.95 * count), None)
ok = p95 is not None and p95 < 0.010
if not ok:
    failed.append("exposition_latency")
print(f"| exposition_latency_seconds (first-party, {int(count or 0)} encodes) | | | <= {p95 * 1e3:g} (bucket) | | p95 < 10 ms | {verdict(ok)} |")
ok = rss_kb < 64 * 1024 and cpu < 30
if not ok:
    failed.append("large-resources")
print(f"| resources under large load ({large_bytes:,} bytes per scrape) | | | | | RSS peak {rss_kb / 1024:.1f} MiB < 64 MiB, CPU {cpu:.1f}% < 30% of one core | {verdict(ok)} |")
print()
print("not measured here: /readyz when not ready (needs a degraded exposer), hot path and Metrics::new()/serve() (criterion benches)")
print(f"targets missed: {', '.join(failed) if failed else 'none'}")
sys.exit(1 if gate and failed else 0)
PY
