#!/usr/bin/env bash
# G2: /healthz (and, for information, /metrics) from the example exposer against nginx
# `return 200`, each server pinned to one core, wrk pinned to another, alternating rounds.
# See bench/ron-metrics/README.md.
#
# Usage: bench/ron-metrics/healthz-vs-nginx.sh [--gate] [--quick]
#   --gate   exit 1 when G2 fails (median /healthz req/s ours / nginx < 0.80)
#   --quick  3 s per wrk run instead of 10 s
# Environment: SERVER_CPU (default 0), CLIENT_CPU (default 1), ROUNDS (default 3),
#   CONNECTIONS (default 50), CARGO_TARGET_DIR.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

GATE=0
DURATION=10s
for a in "$@"; do
    case "$a" in
        --gate) GATE=1 ;;
        --quick) DURATION=3s ;;
        *) die "unknown option $a (expected --gate or --quick)" ;;
    esac
done
ROUNDS="${ROUNDS:-3}"
CONNECTIONS="${CONNECTIONS:-50}"
G2_MIN_RATIO=0.80

need wrk
need curl
need python3
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"
need "$NGINX"
build_exposer

OURS_PORT="$(free_port)"
start_exposer "$OURS_PORT" "$BENCH_TMP/exposer.log"
wait_http "http://127.0.0.1:$OURS_PORT/healthz"
# nginx serves our first-party exposition as a static file: same bytes, no encoding.
curl -fsS -o "$BENCH_TMP/metrics.txt" "http://127.0.0.1:$OURS_PORT/metrics"

NGINX_PORT="$(free_port)"
mkdir -p "$BENCH_TMP/nginx"
# nginx workers drop root privileges; they only need to read the static copy.
chmod 755 "$BENCH_TMP"
chmod 644 "$BENCH_TMP/metrics.txt"
cat >"$BENCH_TMP/nginx/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $BENCH_TMP/nginx/nginx.pid;
error_log $BENCH_TMP/nginx/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    # nginx closes a keep-alive connection after 1000 requests by default; the exposer
    # never does, so lift the cap to keep the comparison about request handling.
    keepalive_requests 1000000;
    client_body_temp_path $BENCH_TMP/nginx/body;
    proxy_temp_path $BENCH_TMP/nginx/proxy;
    fastcgi_temp_path $BENCH_TMP/nginx/fastcgi;
    uwsgi_temp_path $BENCH_TMP/nginx/uwsgi;
    scgi_temp_path $BENCH_TMP/nginx/scgi;
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location = /healthz {
            default_type "text/plain; charset=utf-8";
            return 200 "ok";
        }
        location = /metrics {
            default_type "text/plain; version=0.0.4; charset=utf-8";
            alias $BENCH_TMP/metrics.txt;
        }
    }
}
CONF
taskset -c "$SERVER_CPU" "$NGINX" -p "$BENCH_TMP/nginx" -e "$BENCH_TMP/nginx/error.log" \
    -c "$BENCH_TMP/nginx/nginx.conf" >"$BENCH_TMP/nginx/stdout.log" 2>&1 &
NGINX_PID=$!
BENCH_PIDS+=("$NGINX_PID")
wait_http "http://127.0.0.1:$NGINX_PORT/healthz"
cmp -s <(curl -fsS "http://127.0.0.1:$NGINX_PORT/metrics") "$BENCH_TMP/metrics.txt" ||
    die "nginx does not serve the same /metrics bytes"

echo "# healthz-vs-nginx: $(machine_line)"
echo "# servers on CPU $SERVER_CPU (exposer pid $EXPOSER_PID, nginx master pid $NGINX_PID), wrk on CPU $CLIENT_CPU"
echo "# $(wrk --version 2>&1 | head -1 | cut -c1-60); $("$NGINX" -v 2>&1)"
echo "# per run: taskset -c $CLIENT_CPU wrk -t1 -c$CONNECTIONS -d$DURATION --latency http://127.0.0.1:PORT/PATH"
echo "# /metrics body: $(wc -c <"$BENCH_TMP/metrics.txt") bytes (first-party set)"

RESULTS="$BENCH_TMP/results.tsv"
: >"$RESULTS"
run_wrk() {
    local server="$1" port="$2" path="$3" round="$4" out
    out="$BENCH_TMP/wrk-$server-${path#/}-$round.txt"
    taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency \
        "http://127.0.0.1:$port$path" >"$out" 2>&1
    python3 - "$out" "$server" "$path" "$round" >>"$RESULTS" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
def ms(v):
    n, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", v).groups()
    return float(n) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
p99 = ms(re.search(r"^\s+99%\s+(\S+)", text, re.M).group(1))
non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
sock = re.search(r"Socket errors: (.*)", text)
errors = (int(non2xx.group(1)) if non2xx else 0)
bad = f"non2xx={errors}" + (f" socket_errors[{sock.group(1)}]" if sock else "")
print(f"{sys.argv[2]}\t{sys.argv[3]}\t{sys.argv[4]}\t{rps:.0f}\t{p99:.3f}\t{bad}")
PY
    tail -n1 "$RESULTS" | awk -F'\t' '{printf "round %s %-6s %-9s %10s req/s  p99 %8s ms  %s\n", $3, $1, $2, $4, $5, $6}'
}

for round in $(seq 1 "$ROUNDS"); do
    # Alternate who goes first so drift (thermal, neighbours) does not favour one server.
    if [ $((round % 2)) -eq 1 ]; then order="ours nginx"; else order="nginx ours"; fi
    for path in /healthz /metrics; do
        for server in $order; do
            if [ "$server" = ours ]; then port="$OURS_PORT"; else port="$NGINX_PORT"; fi
            run_wrk "$server" "$port" "$path" "$round"
        done
    done
done

echo
python3 - "$RESULTS" "$G2_MIN_RATIO" "$GATE" <<'PY'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
g2_min, gate = float(sys.argv[2]), sys.argv[3] == "1"
def med(server, path, col):
    return statistics.median(float(r[col]) for r in rows if r[0] == server and r[1] == path)
print("| path | ours req/s | nginx req/s | ratio ours/nginx | ours p99 ms | nginx p99 ms |")
print("|---|--:|--:|--:|--:|--:|")
ratios = {}
for path in ("/healthz", "/metrics"):
    o, n = med("ours", path, 3), med("nginx", path, 3)
    ratios[path] = o / n
    print(f"| {path} | {o:,.0f} | {n:,.0f} | {o / n:.2f} | {med('ours', path, 4):.2f} | {med('nginx', path, 4):.2f} |")
bad = [r for r in rows if r[5] != "non2xx=0"]
print()
print(f"medians of {len(rows) // 4} rounds; errors: {'none' if not bad else bad}")
ok = ratios["/healthz"] >= g2_min and not bad
print(f"G2 (/healthz ours / nginx) = {ratios['/healthz']:.2f} (target >= {g2_min:.2f}): {'PASS' if ok else 'FAIL'}")
sys.exit(1 if gate and not ok else 0)
PY
