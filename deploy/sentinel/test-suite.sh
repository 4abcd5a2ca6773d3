#!/usr/bin/env bash
# Smoke test for a running sentinel-proxy (spec shared/specs/sentinel.md §2.3 SEN-R12, §9;
# the runbook's `./test-suite.sh` after maintenance). Read-only: it sends GETs to the admin
# listener and one request per configured route; it changes no state (no POSTs to /admin).
#
# Usage: test-suite.sh [PROXY_URL] [ADMIN_URL]
#   PROXY_URL  a proxy listener, default http://localhost:8080
#   ADMIN_URL  the metrics/admin listener, default http://localhost:9090
# Environment: SMOKE_TIMEOUT (seconds per request, default 5), ADMIN_TOKEN (sent as
#   `Authorization: Bearer` to the admin listener when set; not needed for the GETs used here).
#
# Checks, in order:
#   1. proxy  GET /health  -> 200 {"status":"ok"}
#   2. proxy  GET /ready   -> 200, "degraded":false
#   3. admin  GET /healthz, /readyz -> 200
#   4. admin  GET /admin/routes -> 200 JSON with "generation" and "routes"
#   5. admin  GET /admin/upstreams/*/health and /admin/upstreams/NAME/health for each
#             upstream -> 200 JSON; every non-static upstream has >= 1 healthy target
#   6. one request per route from /admin/routes, built from its matchers (first path or
#      prefix, host, method, header). The route's sentinel_requests_total must go up. The
#      response must not be a sentinel-generated upstream failure (502/503/504 with
#      upstream_*, no_healthy_upstream, pool_exhausted or overloaded). A static upstream
#      passes with its configured status. A route that an earlier route shadows is
#      reported and skipped.
#   7. admin  GET /metrics -> 200 text with every sentinel_* family of spec §5 that the
#      config gives labels to (upstream/pool families need a non-static upstream, rate-limit
#      families a route with a rate limit).
# Exit status: 0 all checks passed; 1 a check failed (each failure is printed as FAIL: ...);
#   2 usage error or a missing tool (curl, python3).
set -euo pipefail

PROXY_URL="${1:-http://localhost:8080}"
ADMIN_URL="${2:-http://localhost:9090}"
PROXY_URL="${PROXY_URL%/}"
ADMIN_URL="${ADMIN_URL%/}"
TIMEOUT="${SMOKE_TIMEOUT:-5}"

case "${1:-}" in
    -h | --help)
        sed -n '2,30p' "$0"
        exit 0
        ;;
esac
[ $# -le 2 ] || {
    echo "usage: $(basename "$0") [PROXY_URL] [ADMIN_URL]" >&2
    exit 2
}
for tool in curl python3; do
    command -v "$tool" >/dev/null 2>&1 || {
        echo "test-suite: $tool is required" >&2
        exit 2
    }
done

TMP="$(mktemp -d -t sentinel-smoke.XXXXXX)"
trap 'rm -rf "$TMP"' EXIT

FAILS=0
PASSES=0
pass() {
    PASSES=$((PASSES + 1))
    echo "ok    $*"
}
fail() {
    FAILS=$((FAILS + 1))
    echo "FAIL: $*"
}
note() { echo "note  $*"; }

ADMIN_AUTH=()
[ -n "${ADMIN_TOKEN:-}" ] && ADMIN_AUTH=(-H "Authorization: Bearer $ADMIN_TOKEN")

# fetch OUT URL [curl args...]: body into OUT; prints the status code (000 = no answer).
fetch() {
    local out="$1" url="$2"
    shift 2
    curl -sS -o "$out" -w '%{http_code}' --max-time "$TIMEOUT" "$@" "$url" 2>"$out.err" || true
}
admin() { fetch "$1" "$ADMIN_URL$2" "${ADMIN_AUTH[@]}"; }
snippet() { head -c 200 "$1" 2>/dev/null | tr '\n' ' '; }
why() { if [ -s "$1.err" ]; then head -n1 "$1.err"; else snippet "$1"; fi; }

# json FILE EXPR: evaluates a Python expression over the parsed JSON `d`; prints the result
# (lists and dicts as JSON). Exits non-zero when the file is not JSON.
json() {
    python3 - "$1" "$2" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
v = eval(sys.argv[2], {"d": d})
print(json.dumps(v) if isinstance(v, (list, dict, bool)) or v is None else v)
PY
}

echo "sentinel smoke test: proxy $PROXY_URL, admin $ADMIN_URL"

# 1-2. Reserved paths on the proxy listener.
code="$(fetch "$TMP/health" "$PROXY_URL/health")"
if [ "$code" = 200 ] && [ "$(cat "$TMP/health")" = '{"status":"ok"}' ]; then
    pass "proxy /health 200 {\"status\":\"ok\"}"
else
    fail "proxy /health answered $code: $(why "$TMP/health")"
    if [ "$code" = 000 ]; then
        echo "test-suite: the proxy at $PROXY_URL does not answer; is sentinel running?"
        echo "result: FAIL ($FAILS failed)"
        exit 1
    fi
fi
code="$(fetch "$TMP/ready" "$PROXY_URL/ready")"
if [ "$code" = 200 ] && [ "$(json "$TMP/ready" 'd.get("degraded")' 2>/dev/null)" = false ]; then
    pass "proxy /ready 200 (not degraded)"
else
    fail "proxy /ready answered $code: $(why "$TMP/ready")"
fi

# 3. Admin listener health.
for p in /healthz /readyz; do
    code="$(admin "$TMP/a" "$p")"
    if [ "$code" = 200 ]; then pass "admin $p 200"; else fail "admin $p answered $code: $(why "$TMP/a")"; fi
done

# 4. Routes.
code="$(admin "$TMP/routes.json" /admin/routes)"
ROUTES_OK=0
if [ "$code" = 200 ] && json "$TMP/routes.json" 'isinstance(d["routes"], list) and isinstance(d["generation"], int)' >/dev/null 2>&1; then
    ROUTES_OK=1
    pass "admin /admin/routes 200: generation $(json "$TMP/routes.json" 'd["generation"]'), $(json "$TMP/routes.json" 'len(d["routes"])') route(s)"
else
    fail "admin /admin/routes answered $code: $(why "$TMP/routes.json")"
fi

# 5. Upstream health.
code="$(admin "$TMP/ups.json" '/admin/upstreams/*/health')"
UPS_OK=0
if [ "$code" = 200 ] && json "$TMP/ups.json" 'isinstance(d["upstreams"], list)' >/dev/null 2>&1; then
    UPS_OK=1
    pass "admin /admin/upstreams/*/health 200: $(json "$TMP/ups.json" 'len(d["upstreams"])') upstream(s)"
    while IFS=$'\t' read -r name static healthy total; do
        [ -n "$name" ] || continue
        c="$(admin "$TMP/u1.json" "/admin/upstreams/$name/health")"
        if [ "$c" = 200 ] && [ "$(json "$TMP/u1.json" '[u["name"] for u in d["upstreams"]]' 2>/dev/null)" = "[\"$name\"]" ]; then
            pass "admin /admin/upstreams/$name/health 200"
        else
            fail "admin /admin/upstreams/$name/health answered $c: $(why "$TMP/u1.json")"
        fi
        if [ "$static" = True ]; then
            note "upstream $name is static (answered by sentinel)"
        elif [ "$healthy" -ge 1 ]; then
            pass "upstream $name: $healthy/$total targets healthy"
        else
            fail "upstream $name: 0/$total targets healthy"
        fi
    done < <(python3 - "$TMP/ups.json" <<'PY'
import json, sys
for u in json.load(open(sys.argv[1]))["upstreams"]:
    print(f"{u['name']}\t{u['static']}\t{u['healthy_targets']}\t{u['total_targets']}")
PY
)
else
    fail "admin /admin/upstreams/*/health answered $code: $(why "$TMP/ups.json")"
fi

# route_count FILE: "ROUTE<TAB>N" for every route in sentinel_requests_total (all statuses).
route_counts() {
    python3 - "$1" <<'PY'
import re, sys
counts = {}
for line in open(sys.argv[1]):
    if not line.startswith("sentinel_requests_total{"):
        continue
    m = re.search(r'route="((?:[^"\\]|\\.)*)"', line)
    if m:
        counts[m.group(1)] = counts.get(m.group(1), 0) + float(line.rsplit(None, 1)[1])
for k, v in counts.items():
    print(f"{k}\t{v:.0f}")
PY
}
count_of() { awk -F'\t' -v r="$2" '$1 == r { print $2; f = 1 } END { if (!f) print 0 }' "$1"; }

# 6. One request per route.
if [ "$ROUTES_OK" = 1 ]; then
    python3 - "$TMP/routes.json" "$TMP/ups.json" >"$TMP/plan.tsv" <<'PY'
import json, sys
routes = json.load(open(sys.argv[1]))["routes"]
try:
    static = {u["name"]: u["static"] for u in json.load(open(sys.argv[2]))["upstreams"]}
except Exception:
    static = {}
for r in routes:
    m = r.get("matches") or {}
    path = (m.get("path") or [None])[0] or (m.get("path_prefix") or [None])[0] or "/"
    if path in ("/health", "/ready"):
        path = path + "/smoke"  # the exact paths are reserved (SEN-R13)
    host = (m.get("host") or [""])[0]
    if host.startswith("*."):
        host = "smoke." + host[2:]
    method = (m.get("method") or ["GET"])[0]
    if "GET" in (m.get("method") or []):
        method = "GET"
    headers = []
    for h in m.get("header") or []:
        headers.append(f"{h['name']}: {h.get('value') if h.get('value') is not None else 'smoke'}")
    print("\t".join([r["name"], r["upstream"], str(static.get(r["upstream"], False)), method, path, host,
                     "\x1f".join(headers)]))
PY
    while IFS=$'\t' read -r name upstream static method path host headers; do
        [ -n "$name" ] || continue
        args=(-X "$method")
        [ "$method" = HEAD ] && args=(--head)
        [ -n "$host" ] && args+=(-H "Host: $host")
        if [ -n "$headers" ]; then
            IFS=$'\x1f' read -r -a hs <<<"$headers"
            for h in "${hs[@]}"; do args+=(-H "$h"); done
        fi
        args+=(-H "X-Correlation-Id: smoke-test-$name")
        desc="route $name: $method $path${host:+ (Host: $host)}${headers:+ +headers}"
        case "$method" in
            CONNECT | TRACE)
                note "$desc skipped (sentinel answers $method with 405 before routing)"
                continue
                ;;
        esac
        curl -sS --max-time "$TIMEOUT" "${ADMIN_AUTH[@]}" "$ADMIN_URL/metrics" -o "$TMP/m0" 2>/dev/null || : >"$TMP/m0"
        route_counts "$TMP/m0" >"$TMP/c0"
        code="$(fetch "$TMP/r" "$PROXY_URL$path" "${args[@]}")"
        curl -sS --max-time "$TIMEOUT" "${ADMIN_AUTH[@]}" "$ADMIN_URL/metrics" -o "$TMP/m1" 2>/dev/null || : >"$TMP/m1"
        route_counts "$TMP/m1" >"$TMP/c1"
        before="$(count_of "$TMP/c0" "$name")"
        after="$(count_of "$TMP/c1" "$name")"
        errcode="$(json "$TMP/r" 'd.get("code", "")' 2>/dev/null || true)"
        if [ "$code" = 000 ]; then
            fail "$desc: no answer ($(why "$TMP/r"))"
            continue
        fi
        if [ "$after" -le "$before" ]; then
            served="$(python3 - "$TMP/c0" "$TMP/c1" <<'PY'
import sys
def load(p):
    return {l.split("\t")[0]: float(l.split("\t")[1]) for l in open(p) if "\t" in l}
a, b = load(sys.argv[1]), load(sys.argv[2])
print(",".join(k for k in b if b[k] > a.get(k, 0) and k != "_builtin") or "none")
PY
)"
            if [ "$served" != none ] && [ "$served" != _unmatched ]; then
                note "$desc answered $code by route '$served': shadowed by an earlier route, skipped"
            else
                fail "$desc answered $code${errcode:+ ($errcode)} and sentinel_requests_total{route=\"$name\"} did not move"
            fi
            continue
        fi
        case "$errcode" in
            upstream_* | no_healthy_upstream | pool_exhausted | overloaded | no_route)
                fail "$desc answered $code $errcode (upstream $upstream)"
                continue
                ;;
            rate_limited)
                note "$desc answered 429 rate_limited (the route's limiter is empty; retry later)"
                continue
                ;;
        esac
        if [ "$static" = True ]; then
            pass "$desc -> $code from static upstream $upstream"
        else
            pass "$desc -> $code via upstream $upstream"
        fi
    done <"$TMP/plan.tsv"
fi

# 7. Metrics families (after the requests above, so per-route series exist).
code="$(admin "$TMP/metrics" /metrics)"
if [ "$code" != 200 ]; then
    fail "admin /metrics answered $code: $(why "$TMP/metrics")"
else
    HAS_UPSTREAM=0
    HAS_LIMIT=0
    if [ "$UPS_OK" = 1 ] && [ "$(json "$TMP/ups.json" 'any(not u["static"] for u in d["upstreams"])')" = true ]; then
        HAS_UPSTREAM=1
    fi
    if [ "$ROUTES_OK" = 1 ] && [ "$(json "$TMP/routes.json" 'any((r.get("policies") or {}).get("rate_limit") for r in d["routes"])')" = true ]; then
        HAS_LIMIT=1
    fi
    families=(
        sentinel_requests_total sentinel_request_duration_seconds
        sentinel_request_duration_quantile_seconds sentinel_error_rate
        sentinel_in_flight_requests sentinel_open_connections sentinel_connections_total
        sentinel_connections_rejected_total sentinel_connections_max
        sentinel_downstream_errors_total sentinel_retries_total sentinel_open_tunnels
        sentinel_config_reloads_total sentinel_config_generation
        sentinel_config_last_reload_success_timestamp_seconds sentinel_memory_usage_bytes
        sentinel_access_log_dropped_total sentinel_log_write_errors_total sentinel_panics_total
    )
    [ "$HAS_UPSTREAM" = 1 ] && families+=(
        sentinel_upstream_health sentinel_upstream_in_flight sentinel_upstream_attempts_total
        sentinel_health_checks_total sentinel_passive_ejections_total
        sentinel_circuit_breaker_state sentinel_circuit_breaker_trips_total
        sentinel_connection_pool_open sentinel_connection_pool_in_use sentinel_connection_pool_idle
        sentinel_connection_pool_connects_total sentinel_connection_pool_reused_total
        sentinel_connection_pool_exhausted_total
    )
    [ "$HAS_LIMIT" = 1 ] && families+=(sentinel_rate_limited_total sentinel_rate_limit_keys)
    missing=()
    for f in "${families[@]}"; do
        grep -q "^# TYPE $f " "$TMP/metrics" || missing+=("$f")
    done
    if [ "${#missing[@]}" -eq 0 ]; then
        pass "admin /metrics 200: all ${#families[@]} expected sentinel_* families present"
    else
        fail "admin /metrics lacks ${#missing[@]} famil$([ "${#missing[@]}" = 1 ] && echo y || echo ies): ${missing[*]}"
    fi
    if grep -q '^sentinel_request_duration_quantile_seconds{.*quantile="0.99"' "$TMP/metrics"; then
        pass "admin /metrics has sentinel_request_duration_quantile_seconds quantile=\"0.99\" lines"
    else
        fail "admin /metrics has no sentinel_request_duration_quantile_seconds{quantile=\"0.99\"} line"
    fi
    [ "$HAS_UPSTREAM" = 1 ] || note "no non-static upstream: upstream and pool families not required"
    [ "$HAS_LIMIT" = 1 ] || note "no rate-limited route: rate-limit families not required"
fi

echo
if [ "$FAILS" -eq 0 ]; then
    echo "result: PASS ($PASSES checks)"
    exit 0
fi
echo "result: FAIL ($FAILS failed, $PASSES passed)"
exit 1
