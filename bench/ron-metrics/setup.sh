#!/usr/bin/env bash
# Installs the load tools and the peer server used by the ron-metrics benchmarks:
# wrk and nginx-light from Debian, oha (fixed rate with latency correction) from crates.io
# into bench/.tools (gitignored). Idempotent: anything already present is skipped.
#
# Usage: bench/ron-metrics/setup.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TOOLS="$ROOT/bench/.tools"

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

missing=()
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
command -v taskset >/dev/null 2>&1 || missing+=(util-linux)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
if [ "${#missing[@]}" -gt 0 ]; then
    echo "setup: apt-get install ${missing[*]}"
    $SUDO apt-get update
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y "${missing[@]}"
fi

if [ ! -x "$TOOLS/bin/oha" ]; then
    echo "setup: cargo install --locked oha --root $TOOLS"
    cargo install --locked oha --root "$TOOLS"
fi

echo "setup: wrk    $(command -v wrk)"
echo "setup: nginx  $(command -v nginx || echo /usr/sbin/nginx)"
echo "setup: oha    $TOOLS/bin/oha ($("$TOOLS/bin/oha" --version))"
