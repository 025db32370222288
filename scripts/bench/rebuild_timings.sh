#!/usr/bin/env bash
# Rebuild after a one-line edit: appends a `const` to a file, times `cargo build` of the
# workspace (binaries and libraries) and of every target (test binaries too), then restores it.
# Usage: scripts/bench/rebuild_timings.sh [--release] FILE...
# Run it on a warm target directory; the first pass warms, the second is reported.
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/bhavstore-target}"
profile=()
if [[ "${1:-}" == --release ]]; then profile=(--release); shift; fi
for file in "$@"; do
  for targets in "" "--all-targets"; do
    cargo build -q --workspace "${profile[@]}" $targets
    for pass in warm timed; do
      cp "$file" "$file.orig"
      echo "const _REBUILD_PROBE_${pass^^}: u32 = $RANDOM;" >> "$file"
      start=$(date +%s.%N)
      cargo build -q --workspace "${profile[@]}" $targets
      end=$(date +%s.%N)
      mv "$file.orig" "$file"
      [[ $pass == timed ]] && printf '%s\t%s\t%s\t%.1f s\n' "${profile[*]:-debug}" "${targets:-bins+libs}" "$file" "$(echo "$end - $start" | bc)"
    done
    cargo build -q --workspace "${profile[@]}" $targets
  done
done
