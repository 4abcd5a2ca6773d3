#!/usr/bin/env bash
# Installs what the bench/sentinel scripts need (spec shared/specs/sentinel.md §8, SEN-R50):
# Debian nginx (upstream and peer), haproxy (peer), wrk, util-linux (taskset), curl and
# python3 via apt; oha 1.x via `cargo install --locked` into bench/.tools (gitignored), the
# same place bench/svc-edge/setup.sh and bench/ron-metrics/lib.sh use.
# Idempotent: anything already present is skipped.
#
# Usage: bench/sentinel/install.sh
# Environment: OHA_VERSION (pinned oha 1.x for a fresh install, default 1.16.0).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TOOLS="$ROOT/bench/.tools"
OHA_VERSION="${OHA_VERSION:-1.16.0}"

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

missing=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || missing+=(haproxy)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v taskset >/dev/null 2>&1 || missing+=(util-linux)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
if [ "${#missing[@]}" -gt 0 ]; then
    echo "install: apt-get install -y ${missing[*]}"
    $SUDO apt-get update
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y "${missing[@]}"
fi

# The Debian packages enable and start system-wide nginx/haproxy services on :80 where an
# init system runs. The bench starts its own instances on free loopback ports, so those
# services are left as they are; they do not share ports with the bench.

if [ ! -x "$TOOLS/bin/oha" ]; then
    echo "install: cargo install --locked oha@$OHA_VERSION --root $TOOLS"
    cargo install --locked "oha@$OHA_VERSION" --root "$TOOLS"
fi
case "$("$TOOLS/bin/oha" --version)" in
    "oha 1."*) ;;
    *) echo "install: warning: $TOOLS/bin/oha is not oha 1.x ($("$TOOLS/bin/oha" --version))" >&2 ;;
esac

NGINX="$(command -v nginx || echo /usr/sbin/nginx)"
HAPROXY="$(command -v haproxy || echo /usr/sbin/haproxy)"
echo "install: nginx   $NGINX ($("$NGINX" -v 2>&1))"
echo "install: haproxy $HAPROXY ($("$HAPROXY" -v 2>&1 | head -n1))"
echo "install: wrk     $(command -v wrk)"
echo "install: oha     $TOOLS/bin/oha ($("$TOOLS/bin/oha" --version))"
