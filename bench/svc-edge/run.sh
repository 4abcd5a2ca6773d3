#!/usr/bin/env bash
# svc-edge against nginx on the four §8.3 scenarios (spec shared/specs/svc-edge.md §8).
# Both servers pinned to SERVER_CPU, every client (wrk, oha, curl checks) to CLIENT_CPU,
# 127.0.0.1 only. See bench/svc-edge/README.md; latest numbers in RESULTS.md.
#
# Usage: bench/svc-edge/run.sh [--scenario S] [--gate] [--quick]
#   --scenario S  run only S (files-1k, range-64k, revalidate-304, tiles); repeatable
#   --gate        exit 1 if any throughput ratio < 1.0, any p99 ratio > 1.0 or ours' VmRSS
#                 reaches 64 MiB (manual use only; tests never time anything)
#   --quick       smoke run: 3 s per wrk/oha run, 1 s warm-up, 2 s iperf3
# Environment: SERVER_CPU (0), CLIENT_CPU (1), ROUNDS (3), CONNECTIONS (50), OHA (path),
#   CARGO_TARGET_DIR (binary and JSON output; default target/), SKIP_BUILD=1 (use the
#   existing release binary as is), OHA_RATE_CAP (highest fixed rate given to oha, default
#   25000; none = no cap).
# Exit status: 0 ok, 1 gate failed, 2 setup/build/check problem.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# Shared helpers: ROOT, TARGET, OHA, SERVER_CPU, CLIENT_CPU, BENCH_PIDS/BENCH_TMP with an EXIT
# trap that stops exactly the processes started here, die, free_port, stop_pid, machine_line.
source "$HERE/../ron-metrics/lib.sh"
rmdir "$BENCH_TMP" && BENCH_TMP="$(mktemp -d -t svc-edge-bench.XXXXXX)"

need() {
    command -v "$1" >/dev/null 2>&1 || [ -x "$1" ] || die "$1 not found; run bench/svc-edge/setup.sh"
}

ALL_SCENARIOS=(files-1k range-64k revalidate-304 tiles)
SCENARIOS=()
GATE=0
QUICK=0
while [ $# -gt 0 ]; do
    case "$1" in
        --gate) GATE=1 ;;
        --quick) QUICK=1 ;;
        --scenario)
            [ $# -ge 2 ] || die "--scenario needs a value"
            case " ${ALL_SCENARIOS[*]} " in
                *" $2 "*) SCENARIOS+=("$2") ;;
                *) die "unknown scenario $2 (expected one of ${ALL_SCENARIOS[*]})" ;;
            esac
            shift
            ;;
        --scenario=*)
            s="${1#--scenario=}"
            case " ${ALL_SCENARIOS[*]} " in
                *" $s "*) SCENARIOS+=("$s") ;;
                *) die "unknown scenario $s (expected one of ${ALL_SCENARIOS[*]})" ;;
            esac
            ;;
        *) die "unknown option $1 (expected --scenario S, --gate or --quick)" ;;
    esac
    shift
done
[ "${#SCENARIOS[@]}" -gt 0 ] || SCENARIOS=("${ALL_SCENARIOS[@]}")

ROUNDS="${ROUNDS:-3}"
CONNECTIONS="${CONNECTIONS:-50}"
if [ "$QUICK" = 1 ]; then
    DURATION=3 WARM=1 IPERF_SECS=2
else
    DURATION=10 WARM=2 IPERF_SECS=5
fi
RATE_FRACTION=0.7
# oha's fixed-rate mode (1.16, one worker thread) keeps its own p99 flat only up to about
# 25-30k req/s on one core, whatever the response size; above that the p99 measures oha's
# backlog, not the server. R is capped here (README "Method"); OHA_RATE_CAP=none lifts it.
OHA_RATE_CAP="${OHA_RATE_CAP:-25000}"
RANGE_SEED=20250101

need wrk
need curl
need python3
need taskset
need "$OHA"
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"
need "$NGINX"
case " ${SCENARIOS[*]} " in *" range-64k "*) need iperf3 ;; esac

BIN="$TARGET/release/svc-edge"
if [ "${SKIP_BUILD:-0}" != 1 ]; then
    (cd "$ROOT" && cargo build --release --quiet -p svc-edge) || die "cargo build --release -p svc-edge failed"
fi
[ -x "$BIN" ] || die "expected the svc-edge binary at $BIN"

OUT_DIR="$TARGET/bench/svc-edge"
mkdir -p "$OUT_DIR"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
# nginx workers drop root privileges; they only need to read the data set.
chmod 755 "$BENCH_TMP"
DATA="$BENCH_TMP/data"
"$BIN" tools bench-data --out "$DATA" >"$BENCH_TMP/bench-data.log" 2>&1 || die "tools bench-data failed: $(cat "$BENCH_TMP/bench-data.log")"
chmod -R a+rX "$DATA"
RESULTS="$BENCH_TMP/results.jsonl"
RSS_TSV="$BENCH_TMP/rss.tsv"
: >"$RESULTS"
CLK_TCK="$(getconf CLK_TCK)"

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
LOAD_START="$(loadavg)"

echo "# svc-edge vs nginx: $(machine_line)"
echo "# servers on CPU $SERVER_CPU, clients on CPU $CLIENT_CPU; load average at start: $LOAD_START"
echo "# $("$BIN" --version 2>&1 | head -1); $("$NGINX" -v 2>&1); $(wrk --version 2>&1 | head -1 | cut -c1-40); $("$OHA" --version)"
echo "# data: $(tail -n1 "$BENCH_TMP/bench-data.log")"

# --- Loopback ceiling (§8.4), before any server is loaded. ---------------------------------
LOOPBACK_B=""
case " ${SCENARIOS[*]} " in
    *" range-64k "*)
        IPERF_PORT="$(free_port)"
        taskset -c "$SERVER_CPU" iperf3 -s -1 -B 127.0.0.1 -p "$IPERF_PORT" >"$BENCH_TMP/iperf-server.log" 2>&1 &
        IPERF_PID=$!
        BENCH_PIDS+=("$IPERF_PID")
        for _ in $(seq 1 50); do
            taskset -c "$CLIENT_CPU" iperf3 -c 127.0.0.1 -p "$IPERF_PORT" -t "$IPERF_SECS" -J \
                >"$BENCH_TMP/iperf.json" 2>/dev/null && break
            sleep 0.1
        done
        LOOPBACK_B="$(python3 "$HERE/report.py" iperf "$BENCH_TMP/iperf.json")" || die "iperf3 failed"
        stop_pid "$IPERF_PID"
        echo "# loopback ceiling B = $(python3 -c "print(f'{$LOOPBACK_B/1e9:.2f}')") GB/s (taskset -c $SERVER_CPU iperf3 -s; taskset -c $CLIENT_CPU iperf3 -c 127.0.0.1 -t $IPERF_SECS)"
        ;;
esac

# --- svc-edge. -------------------------------------------------------------------------------
OURS_PORT="$(free_port)"
OURS_METRICS_PORT="$(free_port)"
sed -e "s|@BIND@|127.0.0.1:$OURS_PORT|" -e "s|@METRICS@|127.0.0.1:$OURS_METRICS_PORT|" \
    -e "s|@DATA@|$DATA|g" "$HERE/svc-edge.toml.in" >"$BENCH_TMP/svc-edge.toml"
# Only the generated file configures the server: drop any SVC_EDGE_* from the environment.
UNSET=()
for v in $(compgen -e | grep '^SVC_EDGE' || true); do UNSET+=(-u "$v"); done
t0="$(date +%s%N)"
env "${UNSET[@]}" taskset -c "$SERVER_CPU" "$BIN" --config "$BENCH_TMP/svc-edge.toml" \
    >"$BENCH_TMP/svc-edge.log" 2>&1 &
OURS_PID=$!
BENCH_PIDS+=("$OURS_PID")
READY_MS=""
for _ in $(seq 1 500); do
    if [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$OURS_PORT/readyz" 2>/dev/null)" = 200 ]; then
        READY_MS=$((($(date +%s%N) - t0) / 1000000))
        break
    fi
    kill -0 "$OURS_PID" 2>/dev/null || die "svc-edge exited: $(tail -n5 "$BENCH_TMP/svc-edge.log")"
    sleep 0.02
done
[ -n "$READY_MS" ] || die "svc-edge /readyz not 200 after 10 s: $(tail -n5 "$BENCH_TMP/svc-edge.log")"

# --- nginx. ----------------------------------------------------------------------------------
NGINX_PORT="$(free_port)"
mkdir -p "$BENCH_TMP/nginx"
sed -e "s|@TMP@|$BENCH_TMP|g" -e "s|@PORT@|$NGINX_PORT|" -e "s|@DATA@|$DATA|g" \
    "$HERE/nginx.conf.in" >"$BENCH_TMP/nginx/nginx.conf"
taskset -c "$SERVER_CPU" "$NGINX" -p "$BENCH_TMP/nginx" -e "$BENCH_TMP/nginx/error.log" \
    -c "$BENCH_TMP/nginx/nginx.conf" >"$BENCH_TMP/nginx/stdout.log" 2>&1 &
NGINX_PID=$!
BENCH_PIDS+=("$NGINX_PID")
wait_http "http://127.0.0.1:$NGINX_PORT/1k/f0000.bin"
NGINX_WORKER="$(pgrep -P "$NGINX_PID" | head -n1)"
[ -n "$NGINX_WORKER" ] || die "no nginx worker under master $NGINX_PID"

echo "# svc-edge pid $OURS_PID on :$OURS_PORT (ready after $READY_MS ms), nginx master $NGINX_PID worker $NGINX_WORKER on :$NGINX_PORT"

# RSS of both servers every 200 ms for the rest of the run.
taskset -c "$CLIENT_CPU" python3 "$HERE/report.py" sample "$RSS_TSV" \
    ours="$OURS_PID" nginx="$NGINX_WORKER" nginx-master="$NGINX_PID" &
BENCH_PIDS+=("$!")

port_of() { if [ "$1" = ours ]; then echo "$OURS_PORT"; else echo "$NGINX_PORT"; fi; }
serving_pid() { if [ "$1" = ours ]; then echo "$OURS_PID"; else echo "$NGINX_WORKER"; fi; }
base() { echo "http://127.0.0.1:$(port_of "$1")"; }

# Paths per server.
files_prefix() { if [ "$1" = ours ]; then echo /edge/assets/1k/; else echo /1k/; fi; }
big_path() { if [ "$1" = ours ]; then echo /edge/assets/big.bin; else echo /big.bin; fi; }
tiles_prefix() { if [ "$1" = ours ]; then echo /edge/tiles/bench/; else echo /tiles/; fi; }
INM_FILE=f0001.bin

# --- Sanity checks: same bytes, expected statuses. ------------------------------------------
check() { taskset -c "$CLIENT_CPU" curl -sS "$@"; }
for s in ours nginx; do
    check -o "$BENCH_TMP/chk-$s-file" "$(base $s)$(files_prefix $s)f0001.bin"
    code="$(check -o "$BENCH_TMP/chk-$s-range" -w '%{http_code} %{size_header}' \
        -H 'Range: bytes=131072-196607' "$(base $s)$(big_path $s)")"
    [ "${code% *}" = 206 ] || die "$s: range request answered ${code% *}, want 206"
    eval "RANGE_HDR_$s=${code#* }"
    check -o "$BENCH_TMP/chk-$s-tile" -D "$BENCH_TMP/chk-$s-tile.h" -H 'Accept-Encoding: gzip' \
        "$(base $s)$(tiles_prefix $s)5/3/4.mvt"
    grep -qi '^content-encoding: gzip' "$BENCH_TMP/chk-$s-tile.h" || die "$s: tile without Content-Encoding: gzip"
    etag="$(check -I "$(base $s)$(files_prefix $s)$INM_FILE" | tr -d '\r' | sed -n 's/^[Ee][Tt][Aa][Gg]: //p')"
    [ -n "$etag" ] || die "$s: no ETag on $(files_prefix $s)$INM_FILE"
    eval "ETAG_$s=\$etag"
    code="$(check -o /dev/null -w '%{http_code}' -H "If-None-Match: $etag" "$(base $s)$(files_prefix $s)$INM_FILE")"
    [ "$code" = 304 ] || die "$s: If-None-Match with its own ETag answered $code, want 304"
done
cmp -s "$BENCH_TMP/chk-ours-file" "$DATA/static/1k/f0001.bin" || die "ours: wrong bytes for f0001.bin"
cmp -s "$BENCH_TMP/chk-nginx-file" "$DATA/static/1k/f0001.bin" || die "nginx: wrong bytes for f0001.bin"
cmp -s "$BENCH_TMP/chk-ours-range" "$BENCH_TMP/chk-nginx-range" || die "range bodies differ"
[ "$(wc -c <"$BENCH_TMP/chk-ours-range")" = 65536 ] || die "range body is not 64 KiB"
cmp -s "$BENCH_TMP/chk-ours-tile" "$BENCH_TMP/chk-nginx-tile" || die "tile bodies differ"
cmp -s "$BENCH_TMP/chk-ours-tile" "$DATA/tiles/5/3/4.mvt" || die "ours: tile is not the stored gzip bytes"
echo "# checks: same bytes for a file, a range and a tile; 304 for each server's own ETag"
echo "#   ETag ours $ETAG_ours, nginx $ETAG_nginx; 206 header bytes ours $RANGE_HDR_ours, nginx $RANGE_HDR_nginx"

# URL lists for oha (it picks uniformly at random from the list; wrk walks it in order).
for s in ours nginx; do
    for i in $(seq 0 999); do printf '%s%sf%04d.bin\n' "$(base $s)" "$(files_prefix $s)" "$i"; done >"$BENCH_TMP/urls-files-$s.txt"
    sed "s|^|$(base $s)$(tiles_prefix $s)|; s|\$|.mvt|" "$DATA/tiles.txt" >"$BENCH_TMP/urls-tiles-$s.txt"
done
# oha sends one fixed Range: the first offset of the seeded wrk sequence (range.lua).
OHA_RANGE_A=$(((16807 * RANGE_SEED % 2147483647) % 256 * 65536))
OHA_RANGE="bytes=$OHA_RANGE_A-$((OHA_RANGE_A + 65535))"

# wrk_args SERVER SCENARIO: the wrk script, URL and script arguments for one server.
wrk_args() {
    local s="$1" scn="$2"
    case "$scn" in
        files-1k) echo "-s $HERE/lua/files.lua $(base "$s") -- $(files_prefix "$s")" ;;
        range-64k) echo "-s $HERE/lua/range.lua $(base "$s") -- $(big_path "$s") $RANGE_SEED" ;;
        revalidate-304) echo "-s $HERE/lua/inm.lua $(base "$s") -- $(files_prefix "$s")$INM_FILE" ;;
        tiles) echo "-s $HERE/lua/tiles.lua $(base "$s") -- $DATA/tiles.txt $(tiles_prefix "$s")" ;;
    esac
}

ticks() { python3 "$HERE/report.py" cputicks "$1"; }

# run_wrk SERVER SCENARIO ROUND SECS: one wrk run; ROUND "warm" is not recorded.
run_wrk() {
    local s="$1" scn="$2" round="$3" secs="$4" out t1 t2 load extra=()
    out="$BENCH_TMP/wrk-$scn-$s-$round.txt"
    # The ETag contains quotes; pass it as its own argument.
    [ "$scn" = revalidate-304 ] && { if [ "$s" = ours ]; then extra=("$ETAG_ours"); else extra=("$ETAG_nginx"); fi; }
    load="$(cut -d' ' -f1 /proc/loadavg)"
    t1="$(ticks "$(serving_pid "$s")")"
    # shellcheck disable=SC2046
    taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNECTIONS" -d"${secs}s" --latency $(wrk_args "$s" "$scn") "${extra[@]}" \
        >"$out" 2>&1 || true
    t2="$(ticks "$(serving_pid "$s")")"
    [ "$round" = warm ] && return 0
    python3 "$HERE/report.py" wrk "$out" scenario="$scn" server="$s" round="$round" duration_s="$secs" \
        server_cpu="$(python3 -c "print(($t2-$t1)/$CLK_TCK/$secs)")" load1="$load" >>"$RESULTS"
    tail -n1 "$RESULTS" | python3 "$HERE/report.py" show
}

# run_oha SERVER SCENARIO ROUND RATE [SECS]: RATE 0 = unthrottled.
run_oha() {
    local s="$1" scn="$2" round="$3" rate="$4" secs="${5:-$DURATION}" out t1 t2 load args=() q=()
    out="$BENCH_TMP/oha-$scn-$s-$round.json"
    case "$scn" in
        files-1k) args=(--disable-compression --urls-from-file "$BENCH_TMP/urls-files-$s.txt") ;;
        range-64k) args=(--disable-compression -H "Range: $OHA_RANGE" "$(base "$s")$(big_path "$s")") ;;
        revalidate-304)
            local etag
            if [ "$s" = ours ]; then etag="$ETAG_ours"; else etag="$ETAG_nginx"; fi
            args=(--disable-compression -H "If-None-Match: $etag" "$(base "$s")$(files_prefix "$s")$INM_FILE")
            ;;
        tiles) args=(--disable-compression -H "Accept-Encoding: gzip" --urls-from-file "$BENCH_TMP/urls-tiles-$s.txt") ;;
    esac
    load="$(cut -d' ' -f1 /proc/loadavg)"
    t1="$(ticks "$(serving_pid "$s")")"
    [ "$rate" != 0 ] && q=(-q "$rate" --latency-correction)
    taskset -c "$CLIENT_CPU" "$OHA" -z "${secs}s" -c "$CONNECTIONS" "${q[@]}" \
        --no-tui --output-format json --worker-threads 1 "${args[@]}" >"$out" 2>"$out.err" || true
    t2="$(ticks "$(serving_pid "$s")")"
    python3 "$HERE/report.py" oha "$out" scenario="$scn" server="$s" round="$round" rate="$rate" \
        duration_s="$secs" server_cpu="$(python3 -c "print(($t2-$t1)/$CLK_TCK/$secs)")" load1="$load" >>"$RESULTS"
    tail -n1 "$RESULTS" | python3 "$HERE/report.py" show
}

order_for() { if [ $(($1 % 2)) -eq 1 ]; then echo "ours nginx"; else echo "nginx ours"; fi; }

echo "# per run: taskset -c $CLIENT_CPU wrk -t1 -c$CONNECTIONS -d${DURATION}s --latency -s lua/<scenario>.lua URL -- ARGS"
echo "#          taskset -c $CLIENT_CPU oha -z ${DURATION}s -c $CONNECTIONS -q R --latency-correction --no-tui --output-format json --worker-threads 1"
echo "#          R = min($RATE_FRACTION x nginx median wrk req/s, OHA_RATE_CAP=$OHA_RATE_CAP)"
for scn in "${SCENARIOS[@]}"; do
    echo
    echo "== $scn"
    for s in ours nginx; do run_wrk "$s" "$scn" warm "$WARM"; done
    for round in $(seq 1 "$ROUNDS"); do
        for s in $(order_for "$round"); do run_wrk "$s" "$scn" "$round" "$DURATION"; done
    done
    # R = 0.7 x nginx's median peak, capped at OHA_RATE_CAP (both servers get the same R).
    oha_cap=""
    [ "$OHA_RATE_CAP" = none ] || oha_cap="$OHA_RATE_CAP"
    rate="$(python3 - "$RESULTS" "$scn" "$RATE_FRACTION" "$oha_cap" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
rps = [r["rps"] for r in rows if r["scenario"] == sys.argv[2] and r["tool"] == "wrk" and r["server"] == "nginx" and "rps" in r]
rate = int(float(sys.argv[3]) * statistics.median(rps)) if rps else 1000
if sys.argv[4]:
    rate = min(rate, int(sys.argv[4]))
print(max(1, rate))
PY
)"
    echo "  R = $rate req/s (min of $RATE_FRACTION x nginx median wrk peak and OHA_RATE_CAP=$OHA_RATE_CAP)"
    for round in $(seq 1 "$ROUNDS"); do
        for s in $(order_for "$round"); do run_oha "$s" "$scn" "$round" "$rate"; done
    done
done

LOAD_END="$(loadavg)"
python3 - "$BENCH_TMP/meta.json" <<PY
import json, sys
json.dump({
    "date": "$STAMP",
    "machine": """$(machine_line)""",
    "server_cpu": $SERVER_CPU, "client_cpu": $CLIENT_CPU,
    "rounds": $ROUNDS, "connections": $CONNECTIONS, "duration_s": $DURATION, "warm_s": $WARM,
    "quick": bool($QUICK), "rate_fraction": $RATE_FRACTION,
    "scenarios": "${SCENARIOS[*]}".split(),
    "svc_edge": """$("$BIN" --version 2>&1 | head -1)""",
    "git": """$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" status --porcelain -- crates 2>/dev/null | grep -q . && echo ' (crates/ modified)')""", "nginx": """$("$NGINX" -v 2>&1)""",
    "oha": """$("$OHA" --version)""",
    "loopback_bytes_per_sec": ${LOOPBACK_B:-None},
    "range_header_bytes_ours": ${RANGE_HDR_ours:-None}, "range_header_bytes_nginx": ${RANGE_HDR_nginx:-None},
    "oha_range": "$OHA_RANGE",
    "ours_ready_ms": ${READY_MS:-None},
    "load_start": "$LOAD_START", "load_end": "$LOAD_END",
}, open(sys.argv[1], "w"), indent=2)
PY

# Stop the sampler and servers before the summary so the RSS file is complete.
bench_stop_all() {
    local pid
    for pid in "${BENCH_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${BENCH_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    BENCH_PIDS=()
}
bench_stop_all
RAW="$OUT_DIR/raw-$STAMP"
mkdir -p "$RAW"
cp "$RESULTS" "$RSS_TSV" "$BENCH_TMP/meta.json" "$BENCH_TMP"/wrk-*.txt "$BENCH_TMP"/oha-*.json "$RAW"/ 2>/dev/null || true
echo
echo "== summary ($ROUNDS alternating rounds each; medians; p99 from oha at R = min($RATE_FRACTION x nginx's median wrk peak, OHA_RATE_CAP=$OHA_RATE_CAP); load average end: $LOAD_END)"
status=0
python3 "$HERE/report.py" summary "$RESULTS" "$BENCH_TMP/meta.json" "$RSS_TSV" "$OUT_DIR/results-$STAMP.json" \
    $([ "$GATE" = 1 ] && echo --gate) || status=$?
cp "$OUT_DIR/results-$STAMP.json" "$OUT_DIR/latest.json"
exit "$status"
