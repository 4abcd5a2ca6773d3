#!/usr/bin/env bash
# G1: encode the large-load registry (spec §4.8) in ron-metrics and three peer libraries
# and print median/p90 and ratio_vs_fastest. See bench/ron-metrics/README.md.
#
# Usage: bench/ron-metrics/encode.sh [--gate] [--quick]
#   --gate   exit non-zero when G1 fails (ours / fastest peer > 1.00)
#   --quick  1 warm-up + 10 iterations instead of 3 + 30
# Environment: BENCH_CPU (default 0) pins the process with taskset; CARGO_TARGET_DIR.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

args=(encode)
for a in "$@"; do
    case "$a" in
        --gate) args+=(--gate) ;;
        --quick) args+=(--warmups 1 --iterations 10) ;;
        *) echo "encode.sh: unknown option $a (expected --gate or --quick)" >&2; exit 2 ;;
    esac
done

cargo build --release --quiet -p ron-metrics-bench
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
BIN="$TARGET/release/ron-metrics-bench"

echo "# encode: $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
echo "# command: taskset -c ${BENCH_CPU:-0} $BIN ${args[*]}"
exec taskset -c "${BENCH_CPU:-0}" "$BIN" "${args[@]}"
