#!/usr/bin/env bash
# Runs every cargo-fuzz target of fuzz/ for a bounded time each (default 60 s; FUZZ_SECS
# overrides), with libFuzzer on the nightly toolchain. A crash stops the script, leaving the
# input under fuzz/artifacts/<target>/; turn it into a regression test in the crate it
# belongs to, fix, and rerun. Corpora grow under fuzz/corpus/ (not committed).
#
#   scripts/fuzz.sh                 # every target, 60 s each
#   FUZZ_SECS=600 scripts/fuzz.sh edge_range sentinel_config
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root/fuzz"
secs="${FUZZ_SECS:-60}"

command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
rustup toolchain list | grep -q '^nightly' \
  || { echo "fuzz.sh: the nightly toolchain is needed (rustup toolchain install nightly)" >&2; exit 1; }

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo +nightly fuzz list)
fi
for t in "${targets[@]}"; do
  echo "==> fuzz $t for ${secs}s"
  # Panics are the bugs we look for; Rust needs no address sanitizer for memory safety,
  # and skipping it keeps the instrumented build small on a 2-core machine.
  cargo +nightly fuzz run --sanitizer none "$t" -- -max_total_time="$secs" -rss_limit_mb=4096
done
echo "fuzz.sh: ${#targets[@]} targets ran ${secs}s each without a crash"
