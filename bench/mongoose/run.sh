#!/usr/bin/env bash
# mongoose one-hop benchmark (spec shared/specs/mongoose.md §8, MNG-R36; test MNG-T31):
# mongoose (latency recording off, then on) vs crossbeam-channel vs a bare rtrb ring, one
# pinned publisher thread -> one pinned busy-polling consumer thread each, run one after
# another in one process. Fixed-rate latency from the intended send time (no coordinated
# omission), then unpaced lossless throughput, then `ratio mongoose/PEER ...` lines. The
# latest numbers are in RESULTS.md.
#
# Usage: bench/mongoose/run.sh [--quick] [--rates R1,R2] [--warmup-s N] [--duration-s N]
#                              [--capacity N] [--out DIR] [--no-pin]
#   --quick        smoke run: 1 s warm-up, 2 s per run, 100000 msg/s (explicit flags win)
#   --rates        fixed rates in msg/s (default 100000,1000000)
#   --warmup-s     warm-up per run, not recorded (default 5)
#   --duration-s   recorded seconds per run and per throughput run (default 10)
#   --capacity     queue capacity of every implementation (default 1024)
#   --out DIR      also write DIR/results.json and one .hgrm per run and histogram
# Environment: CARGO_TARGET_DIR (default target/), SKIP_BUILD=1 (use the existing binary).
# Exit status: 0 the run completed and every implementation reconciled
#   sent = received + dropped; 1 it did not; 2 bad flags or build failure.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
BIN="$TARGET/release/mongoose-bench"

case "${1:-}" in
    -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
esac

if [ "${SKIP_BUILD:-0}" != 1 ]; then
    (cd "$ROOT" && cargo build --release -p mongoose-bench) || exit 2
fi
[ -x "$BIN" ] || { echo "run.sh: $BIN missing (build failed or SKIP_BUILD=1 without a build)" >&2; exit 2; }

echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) $(uname -sr); $(rustc --version 2>/dev/null || echo 'rustc unknown'); nproc $(nproc)"
exec "$BIN" "$@"
