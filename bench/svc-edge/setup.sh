#!/usr/bin/env bash
# Installs what bench/svc-edge/run.sh needs: Debian nginx (any flavour that provides
# /usr/sbin/nginx, e.g. nginx or nginx-light), wrk, iperf3, util-linux (taskset), curl and
# python3 via apt; oha via `cargo install --locked` into bench/.tools (gitignored).
# Idempotent: anything already present is skipped.
#
# Usage: bench/svc-edge/setup.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TOOLS="$ROOT/bench/.tools"

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

missing=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v iperf3 >/dev/null 2>&1 || missing+=(iperf3)
command -v taskset >/dev/null 2>&1 || missing+=(util-linux)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
if [ "${#missing[@]}" -gt 0 ]; then
    echo "setup: apt-get install ${missing[*]}"
    $SUDO apt-get update
    # iperf3's package asks whether to start a daemon; the bench starts its own, one-off.
    echo "iperf3 iperf3/start_daemon boolean false" | $SUDO debconf-set-selections 2>/dev/null || true
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y "${missing[@]}"
fi

if [ ! -x "$TOOLS/bin/oha" ]; then
    echo "setup: cargo install --locked oha --root $TOOLS"
    cargo install --locked oha --root "$TOOLS"
fi

echo "setup: nginx  $(command -v nginx || echo /usr/sbin/nginx) ($( (nginx -v || /usr/sbin/nginx -v) 2>&1))"
echo "setup: wrk    $(command -v wrk)"
echo "setup: iperf3 $(command -v iperf3)"
echo "setup: oha    $TOOLS/bin/oha ($("$TOOLS/bin/oha" --version))"
