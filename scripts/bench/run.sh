#!/usr/bin/env bash
# bhavstore vs DuckDB feature benchmark, end to end:
#   1. release build of gen-history and bench-features;
#   2. the synthetic history, generated once into a cache folder (reused when present);
#   3. bench-features (bhavstore: full views with a breakdown, and the comparable subset) and
#      duckdb_features.py (DuckDB: the comparable subset), each running every query REPEAT times;
#   4. a cross-check that both engines computed the same values (the run fails otherwise);
#   5. the summary: times and the bhavstore/DuckDB ratio.
#
# Environment overrides (defaults in brackets):
#   SECURITIES [5000]  SESSIONS [5000]  SEED [42]  REPEAT [2]
#   BENCH_CACHE [$HOME/.cache/bhavstore-bench]  OUT [$BENCH_CACHE/out-{size}]
#   CARGO_TARGET_DIR [$HOME/.cache/bhavstore-target]
#   BENCH_SET [empty]: space-separated DataFusion settings KEY=VALUE for bhavstore's session, for
#       experiments (the default measures the catalog exactly as bhavstore configures it)
# Smoke run: SECURITIES=200 SESSIONS=300 scripts/bench/run.sh
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/bench/lib.sh
. "$here/lib.sh"
repo="$(cd "$here/../.." && pwd)"
securities="${SECURITIES:-5000}"
sessions="${SESSIONS:-5000}"
seed="${SEED:-42}"
repeat="${REPEAT:-2}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/bhavstore-target}"
cache="${BENCH_CACHE:-$HOME/.cache/bhavstore-bench}"
name="${securities}x${sessions}-seed${seed}"
root="$cache/history-$name"
out="${OUT:-$cache/out-$name}"
bin="$CARGO_TARGET_DIR/release"

echo "== build (release)"
(cd "$repo" && cargo build --release -p bhavstore-bench)

echo "== history $name -> $root"
ensure_history "$root" "$securities" "$sessions" "$seed"
generation="$(cat "$root.done")"

# Peak resident memory of each engine's process, when GNU time is there.
measure() {
    local name="$1"
    shift
    if [ -x /usr/bin/time ]; then
        /usr/bin/time -f "%M" -o "$out/$name.maxrss_kib" "$@"
    else
        "$@"
    fi
}

set_args=()
for kv in ${BENCH_SET:-}; do
    set_args+=(--set "$kv")
done

rm -rf "$out"
mkdir -p "$out"
echo "== bhavstore (bench-features, $repeat runs per query) -> $out"
measure bhavstore "$bin/bench-features" --root "$root" --feature-defs "$repo/feature_defs" --out "$out" \
    --repeat "$repeat" "${set_args[@]}" | tee "$out/bhavstore.txt"

echo "== DuckDB (duckdb_features.py, $repeat runs per query)"
measure duckdb python3 "$here/duckdb_features.py" --root "$root" --out "$out" --repeat "$repeat" | tee "$out/duckdb.txt"

echo "== cross-check of the values"
python3 "$here/crosscheck.py" --out "$out" | tee "$out/crosscheck.txt"

python3 "$here/summary.py" --out "$out" --generation "$generation" | tee "$out/summary.txt"
