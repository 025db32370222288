#!/usr/bin/env bash
# Serving benchmarks, on loopback, in one run (see README.md, "Serving benchmarks"):
#   1. pull: `SELECT * FROM price_features` (the whole feature table) over Flight SQL and over
#      the Postgres wire, each client consuming every row; target Flight >= 20x faster;
#   2. training set: features_asof('price_features', spine) for a seeded 1,000,000-row
#      (scrip_code, ts) spine, to an Arrow table over Flight, next to DuckDB's ASOF JOIN of the
#      same spine (Parquet) with the view's published Parquet files; target <= DuckDB's time;
#      the two results are compared row by row (the run fails if they differ).
# Steps: release build; synthetic history (cached); a work root hard-linked from it with
# price_features materialized (cached: a full run takes ~95 s); per phase, a fresh
# `bhavstore serve` on port 0 and serving_bench.py (clients, timings, cross-check, summary).
#
# Environment overrides (defaults in brackets):
#   SECURITIES [5000]  SESSIONS [5000]  SEED [42]  REPEAT [3]  SPINE_ROWS [1000000]
#   PG_MAX_SECONDS [600: a pgwire client estimated slower than this on the whole table makes
#     every client run on a subset of SUBSET_ROWS [5000000] too]  PROBE_ROWS [500000]
#   FLIGHT_CLIENTS, PG_CLIENTS [all: see serving_bench.py]  SKIP [empty; pull and/or training]
#   DUCKDB_THREADS [2]  BENCH_CACHE [$HOME/.cache/bhavstore-bench]  OUT [$BENCH_CACHE/out-serving]
#   WORK [$BENCH_CACHE/serving-work-{S}x{N}-seed{seed}]  CARGO_TARGET_DIR [$HOME/.cache/bhavstore-target]
#   NO_BUILD [empty: build]  LOG [info]
# Smoke run: SECURITIES=200 SESSIONS=300 SPINE_ROWS=20000 scripts/bench/serving.sh
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/bench/lib.sh
. "$here/lib.sh"
repo="$(cd "$here/../.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/bhavstore-target}"
cache="${BENCH_CACHE:-$HOME/.cache/bhavstore-bench}"
out="${OUT:-$cache/out-serving}"
bin="$CARGO_TARGET_DIR/release"
securities="${SECURITIES:-5000}"
sessions="${SESSIONS:-5000}"
seed="${SEED:-42}"
name="${securities}x${sessions}-seed${seed}"
work="${WORK:-$cache/serving-work-$name}"
defs="$repo/feature_defs"
unset BHAVSTORE_CONFIG BHAVSTORE_STORAGE

if [ -z "${NO_BUILD:-}" ]; then
    echo "== build (release)"
    (cd "$repo" && cargo build --release --workspace)
fi

history="$cache/history-$name"
echo "== history $name -> $history"
ensure_history "$history" "$securities" "$sessions" "$seed"

rm -rf "$out"
mkdir -p "$out/logs"
root="$work/root"
# The work root shares the history's day files (hard links: they are never modified in place,
# object_store replaces by rename) and adds features/ and system/. It is kept between runs;
# `materialize` without --full then has nothing to do unless the view's definition changed.
if [ ! -d "$root" ] || [ "$history.done" -nt "$work/.linked" ]; then
    rm -rf "$work"
    mkdir -p "$work"
    cp -al "$history" "$root"
    touch "$work/.linked"
fi
echo "== materialize price_features -> $root"
/usr/bin/time -v -o "$out/logs/materialize.time" \
    "$bin/bhavstore" --storage "$root" --feature-defs "$defs" --log "${LOG:-info}" materialize price_features \
    > "$out/logs/materialize.out" 2> "$out/logs/materialize.log"
cat "$out/logs/materialize.out"
grep -E 'Elapsed|Maximum resident' "$out/logs/materialize.time" | sed 's/^\s*/   /'

serve_pid=""
start_server() { # $1: log name
    "$bin/bhavstore" --storage "$root" --feature-defs "$defs" --log "${LOG:-info}" serve --no-schedule \
        --http-addr 127.0.0.1:0 --pg-addr 127.0.0.1:0 --flight-addr 127.0.0.1:0 \
        > "$out/logs/$1.out" 2> "$out/logs/$1.log" &
    serve_pid=$!
    flight="" pg=""
    local addr
    for _ in $(seq 600); do
        addr="$(grep -o 'listening protocol="flight" addr=[0-9.:]*' "$out/logs/$1.log" | head -n 1 || true)"
        flight="${addr##*addr=}"
        addr="$(grep -o 'listening protocol="postgres" addr=[0-9.:]*' "$out/logs/$1.log" | head -n 1 || true)"
        pg="${addr##*addr=}"
        [ -n "$flight" ] && [ -n "$pg" ] && break
        kill -0 "$serve_pid" 2>/dev/null || { cat "$out/logs/$1.log"; echo "serve exited" >&2; exit 1; }
        sleep 0.5
    done
    [ -n "$flight" ] && [ -n "$pg" ] || { echo "serve did not start listening" >&2; exit 1; }
    echo "flight $flight, postgres $pg, pid $serve_pid"
}
stop_server() {
    if [ -n "$serve_pid" ] && kill -0 "$serve_pid" 2>/dev/null; then
        kill -TERM "$serve_pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$serve_pid" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$serve_pid" 2>/dev/null || true
    fi
    serve_pid=""
}
trap stop_server EXIT
bench() { # $1: phase (pull or training)
    local skip=pull
    [ "$1" = pull ] && skip=training
    python3 "$here/serving_bench.py" --flight "$flight" --pg "$pg" --server-pid "$serve_pid" \
        --root "$root" --feature-defs "$defs" --out "$out/$1" --repeat "${REPEAT:-3}" \
        --spine-rows "${SPINE_ROWS:-1000000}" --seed "$seed" --duckdb-threads "${DUCKDB_THREADS:-2}" \
        --pg-max-seconds "${PG_MAX_SECONDS:-600}" --subset-rows "${SUBSET_ROWS:-5000000}" \
        --probe-rows "${PROBE_ROWS:-500000}" --skip "$skip" \
        ${FLIGHT_CLIENTS:+--flight-clients "$FLIGHT_CLIENTS"} ${PG_CLIENTS:+--pg-clients "$PG_CLIENTS"}
}

# One server per phase, so each phase's memory figures start from a fresh process.
status=0
for phase in pull training; do
    case ",${SKIP:-}," in *",$phase,"*) continue ;; esac
    echo "== serve ($phase)"
    start_server "serve-$phase"
    echo "== benchmark: $phase"
    bench "$phase" || status=$?
    stop_server
    [ -f "$out/$phase/summary.md" ] && cat "$out/$phase/summary.md" >> "$out/summary.md"
    [ "$status" = 0 ] || break
done
echo "== results: $out/summary.md; $out/{pull,training}/results.json; logs in $out/logs"
exit "$status"
