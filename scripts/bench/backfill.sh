#!/usr/bin/env bash
# Full backfill (benchmark row of issue 14): the release `bhavstore` binary's `materialize --full`
# of both views of feature_defs/ over the whole synthetic history (5,000 securities x 5,000
# sessions = 24.2M rows), next to DuckDB computing 15 of the same features from the same Parquet
# files in one query (the query of user_run.py: default settings, threads = cores), in the same
# run, with the peak RSS of both processes.
#
#   1. binaries: gen-history (bhavstore-bench) and bhavstore, release;
#   2. the history: $BENCH_CACHE/history-{S}x{N}-seed{seed} (shared with run.sh; written once with
#      its change log, so `materialize` sees every day), hard-linked into a fresh store per round;
#   3. REPEAT rounds, alternating which side goes first: bhavstore `materialize --full`, DuckDB
#      `user_run.py duckdb`, each under GNU `time -v`;
#   4. $OUT/summary.md (printed), $OUT/runs.jsonl, logs in $OUT/logs/.
#
# Environment (defaults in brackets):
#   SECURITIES [5000]  SESSIONS [5000]  SEED [42]  REPEAT [2]  LOG [info]
#   BENCH_CACHE [$HOME/.cache/bhavstore-bench]  OUT [$BENCH_CACHE/out-backfill]
#   CARGO_TARGET_DIR [$HOME/.cache/bhavstore-target]  NO_BUILD [empty: build first]
# Smoke run: SECURITIES=200 SESSIONS=300 REPEAT=1 scripts/bench/backfill.sh
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
out="${OUT:-$cache/out-backfill}"
bin="$CARGO_TARGET_DIR/release"
py="$here/user_run.py"

[ -x /usr/bin/time ] || { echo "GNU time (/usr/bin/time) is needed" >&2; exit 1; }
python3 -c 'import duckdb' 2>/dev/null || { echo "python3 -m pip install duckdb pyarrow" >&2; exit 1; }

if [ -z "${NO_BUILD:-}" ]; then
    echo "== build (release)"
    (cd "$repo" && cargo build --release -p bhavstore -p bhavstore-bench --bins)
fi

name="${securities}x${sessions}-seed${seed}"
history="$cache/history-$name"
echo "== history $name -> $history"
ensure_history "$history" "$securities" "$sessions" "$seed"

rm -rf "$out"
mkdir -p "$out/logs"
runs="$out/runs.jsonl"

run_bhavstore() {
    local store="$out/work/store-$1"
    rm -rf "$store"
    mkdir -p "$out/work"
    cp -al "$history" "$store"
    warm
    timed bhavstore "$1" "$bin/bhavstore" --storage "file://$store" --feature-defs "$repo/feature_defs" \
        --log "${LOG:-info}" materialize --full
    rm -rf "$store"
}

run_duckdb() {
    mkdir -p "$out/work"
    warm
    timed duckdb "$1" python3 "$py" duckdb --store "$history" --out "$out/work/duckdb_out.parquet" \
        --json "$out/logs/r$1-duckdb.json"
    rm -f "$out/work/duckdb_out.parquet"
}

# Both sides read the same 1+ GB of day files: each starts with them in the page cache, so the
# side that runs first does not pay the disk for the other.
warm() {
    find "$history" -name '*.parquet' -exec cat {} + > /dev/null
}

for round in $(seq 1 "$repeat"); do
    echo "== round $round"
    if [ $((round % 2)) = 1 ]; then
        run_bhavstore "$round"
        run_duckdb "$round"
    else
        run_duckdb "$round"
        run_bhavstore "$round"
    fi
done
rm -rf "$out/work"

python3 - "$runs" "$name" > "$out/summary.md" <<'EOF'
import json, sys
runs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def best(side, key):
    return min(r[key] for r in runs if r["side"] == side)
def peak(side):
    return max(r["max_rss_kib"] for r in runs if r["side"] == side) / 1024
b, d = best("bhavstore", "wall_s"), best("duckdb", "wall_s")
bm, dm = peak("bhavstore"), peak("duckdb")
print(f"# Full backfill, {sys.argv[2]} (best of {len(runs) // 2} rounds; peak RSS = the largest)\n")
print("| | bhavstore `materialize --full` (both views) | DuckDB one query (15 features) | ratio |")
print("|---|---:|---:|---:|")
print(f"| wall | {b:.1f} s | {d:.1f} s | {b / d:.2f}x |")
print(f"| peak RSS | {bm:.0f} MiB | {dm:.0f} MiB | {bm / dm:.2f}x |")
print("\n| side | round | wall s | CPU s | peak RSS MiB | load before |")
print("|---|---:|---:|---:|---:|---|")
for r in runs:
    print(f"| {r['side']} | {r['round']} | {r['wall_s']:.2f} | {r['user_s'] + r['sys_s']:.2f} | "
          f"{r['max_rss_kib'] / 1024:.0f} | {r['load_before']} |")
EOF
cat "$out/summary.md"
