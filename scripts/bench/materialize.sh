#!/usr/bin/env bash
# Materialization benchmark: the release `bhavstore` binary materializing the feature views of
# feature_defs/ over synthetic histories of H sessions (default 250 and 5000):
#   1. release build of bhavstore, gen-history and bench-materialize;
#   2. per H: sessions 1..H of an (H + REPEAT)-session history with its change log, generated
#      once into the cache and hard-linked into a work root;
#   3. `bhavstore materialize --full` (timed), then REPEAT times: append the next session and
#      time `bhavstore materialize` (incremental, one new day);
#   4. the summary table: $OUT/summary.md (details in results.json, the binary's logs in logs/).
#
# Environment overrides (defaults in brackets):
#   SECURITIES [5000]  SESSIONS_LIST [250,5000]  SEED [42]  REPEAT [3]  LOG [info]
#   BENCH_CACHE [$HOME/.cache/bhavstore-bench]  OUT [$BENCH_CACHE/out-materialize]
#   CARGO_TARGET_DIR [$HOME/.cache/bhavstore-target]  KEEP_WORK [empty: delete the work roots]
# Smoke run: SECURITIES=200 SESSIONS_LIST=50,300 scripts/bench/materialize.sh
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/bhavstore-target}"
cache="${BENCH_CACHE:-$HOME/.cache/bhavstore-bench}"
out="${OUT:-$cache/out-materialize}"
bin="$CARGO_TARGET_DIR/release"

echo "== build (release)"
(cd "$repo" && cargo build --release -p bhavstore -p bhavstore-bench)

keep=()
if [ -n "${KEEP_WORK:-}" ]; then
    keep=(--keep-work)
fi
rm -rf "$out"
mkdir -p "$out"
"$bin/bench-materialize" \
    --bhavstore "$bin/bhavstore" --gen-history "$bin/gen-history" --feature-defs "$repo/feature_defs" \
    --cache "$cache" --out "$out" \
    --securities "${SECURITIES:-5000}" --sessions "${SESSIONS_LIST:-250,5000}" --seed "${SEED:-42}" \
    --repeat "${REPEAT:-3}" --log "${LOG:-info}" "${keep[@]}"
