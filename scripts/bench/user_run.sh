#!/usr/bin/env bash
# "What a user runs" (benchmark row of issue 14): the release `bhavstore` binary's
# `materialize --full` of both views of feature_defs/ (price_features, volatility_features) over a
# history imported from legacy BSE CSVs, next to ONE DuckDB query computing 15 of the same features
# from the same Parquet files, as a new DuckDB user would run it (python `duckdb`, default settings).
# Targets: bhavstore <= 0.5x DuckDB's wall time and <= 1.2x its peak memory.
#
#   1. binaries: gen-history (package bhavstore-bench) and bhavstore (package bhavstore), release;
#   2. the synthetic history (gen-history, 1,500 securities x 1,200 sessions = ~1.8M rows),
#      converted to legacy 14-column `EQ{DDMMYY}.CSV` files (user_run.py csv), cached in
#      $BENCH_CACHE/user-run-csv-{S}x{N}-seed{seed}/ (delete the .done file beside it to
#      regenerate; the counts are in the .json beside it: nothing but the CSVs in the folder, as
#      `bhavstore import DIR` reads every .csv, .zip and .json under DIR);
#   3. per round: a fresh store; `bhavstore import CSV_DIR` (timed, reported, not in the ratio);
#      then, alternating the order (odd rounds bhavstore first):
#        bhavstore: `bhavstore materialize --full` under GNU `time -v`, then a count of both views;
#        DuckDB:    `python3 user_run.py duckdb` (one COPY ... TO 'out.parquet' statement over
#                   STORE/parquet/bse/equity/**/*.parquet) under GNU `time -v`;
#   4. a cross-check of DuckDB's 15 columns against bhavstore's published views (last round);
#   5. $OUT/summary.md (printed), $OUT/results.json, $OUT/duckdb.sql, logs in $OUT/logs/.
# Wall = the whole process (date +%s%N around it), peak RSS = GNU time's maximum resident set size.
#
# Environment (defaults in brackets):
#   SECURITIES [1500]  SESSIONS [1200]  SEED [42]  REPEAT [3]
#   BENCH_CACHE [$HOME/.cache/bhavstore-bench]  OUT [$BENCH_CACHE/out-user-run]
#   CARGO_TARGET_DIR [$HOME/.cache/bhavstore-target]  BIN [$CARGO_TARGET_DIR/release/bhavstore]
#   NO_BUILD [empty: cargo build the bench binaries, and bhavstore when $BIN is missing]
#   LOG [empty: the binary's default, info]: passed as `--log $LOG` to bhavstore
#   VIEWS [empty: `materialize --full` of every view of feature_defs/, as a user runs it; the
#       intraday view has no input here and finishes in ~0.1 s]: space-separated view names
#   KEEP_WORK [empty: delete the store after the run]
# Smoke run: NO_BUILD=1 SECURITIES=100 SESSIONS=80 REPEAT=1 scripts/bench/user_run.sh
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/bench/lib.sh
. "$here/lib.sh"
repo="$(cd "$here/../.." && pwd)"
securities="${SECURITIES:-1500}"
sessions="${SESSIONS:-1200}"
seed="${SEED:-42}"
repeat="${REPEAT:-3}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/bhavstore-target}"
cache="${BENCH_CACHE:-$HOME/.cache/bhavstore-bench}"
out="${OUT:-$cache/out-user-run}"
BIN="${BIN:-$CARGO_TARGET_DIR/release/bhavstore}"
gen="$CARGO_TARGET_DIR/release/gen-history"
defs="$repo/feature_defs"
py="$here/user_run.py"

[ -x /usr/bin/time ] || { echo "GNU time (/usr/bin/time) is needed" >&2; exit 1; }

# -- 1. binaries --------------------------------------------------------------------------------
if [ -z "${NO_BUILD:-}" ]; then
    echo "== build (release): bhavstore-bench binaries"
    (cd "$repo" && cargo build --release -p bhavstore-bench --bins)
    if [ ! -x "$BIN" ]; then
        echo "== build (release): bhavstore ($BIN is missing)"
        (cd "$repo" && cargo build --release -p bhavstore)
    fi
fi
for b in "$BIN" "$gen"; do
    [ -x "$b" ] || { echo "missing binary $b (unset NO_BUILD to build it)" >&2; exit 1; }
done
log_args=()
if [ -n "${LOG:-}" ]; then
    log_args=(--log "$LOG")
fi

# -- 2. the legacy CSV history ------------------------------------------------------------------
name="${securities}x${sessions}-seed${seed}"
csv="$cache/user-run-csv-$name"
echo "== legacy CSV history $name -> $csv"
if [ -f "$csv.done" ]; then
    echo "present (remove $csv.done to regenerate): $(cat "$csv.done")"
else
    rm -rf "$csv" "$csv.json"
    mkdir -p "$cache"
    tmproot="$(mktemp -d "$cache/user-run-gen.XXXXXX")"
    "$gen" --root "$tmproot" --securities "$securities" --sessions "$sessions" --seed "$seed" --no-record-loads
    python3 "$py" csv --parquet-root "$tmproot" --out "$csv" --info "$csv.json" | tee "$csv.log"
    rm -rf "$tmproot"
    tail -n 1 "$csv.log" > "$csv.done"
fi

# -- 3. rounds ----------------------------------------------------------------------------------
mkdir -p "$out"
rm -rf "$out/work" "$out/logs" "$out/runs.jsonl" "$out/results.json" "$out/summary.md" "$out/meta.json"
mkdir -p "$out/work" "$out/logs"
store="$out/work/store"
duck_out="$out/work/duckdb_out.parquet"
runs="$out/runs.jsonl"
bhav=("$BIN" --storage "file://$store" --feature-defs "$defs" "${log_args[@]}")
started="$(date -u +%Y-%m-%dT%H:%M:%SZ)"

extra=()

run_bhavstore() {
    local round="$1"
    extra=()
    # shellcheck disable=SC2086 # VIEWS is a word list
    timed bhavstore "$round" "${bhav[@]}" materialize --full ${VIEWS:-}
    # Both views published? Count their rows (not timed).
    local counts
    counts="$("${bhav[@]}" query --format csv \
        "select (select count(*) from price_features) as p, (select count(*) from volatility_features) as v" \
        2> "$out/logs/r$round-count.stderr" | tail -n 1)"
    local p="${counts%%,*}" v="${counts##*,}"
    if ! [[ "$p" =~ ^[0-9]+$ && "$v" =~ ^[0-9]+$ && "$p" -gt 0 && "$v" -gt 0 ]]; then
        echo "!! views not published after materialize --full (count query said: $counts)" >&2
        cat "$out/logs/r$round-count.stderr" >&2
        exit 1
    fi
    # Attach the counts, and each view's line of materialize's stdout, to the record just written.
    python3 - "$runs" "$p" "$v" "$out/logs/r$round-bhavstore.stdout" <<'EOF'
import json, re, sys
path, p, v = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
lines = open(path).read().splitlines()
r = json.loads(lines[-1]); r["price_rows"] = p; r["volatility_rows"] = v
# e.g. "price_features@v7465...: succeeded (full), 198437 rows for 2015-01-05..2015-05-11, manifest 1, run ... in 1491 ms"
r["views"] = {
    m["view"]: {"status": m["status"], "rows": int(m["rows"] or 0), "ms": int(m["ms"])}
    for m in re.finditer(r"^(?P<view>\w+)@\S+: (?P<status>\w+) \(\w+\), (?:(?P<rows>\d+) rows)?.*? in (?P<ms>\d+) ms$",
                         open(sys.argv[4]).read(), re.M)
}
lines[-1] = json.dumps(r)
open(path, "w").write("\n".join(lines) + "\n")
EOF
    echo "   views: price_features $p rows, volatility_features $v rows"
}

run_duckdb() {
    local round="$1" info="$out/logs/r$round-duckdb.json"
    rm -f "$duck_out"
    timed duckdb "$round" python3 "$py" duckdb --store "$store" --out "$duck_out" --json "$info"
    python3 - "$runs" "$info" <<'EOF'
import json, sys
path, info = sys.argv[1], json.load(open(sys.argv[2]))
lines = open(path).read().splitlines()
r = json.loads(lines[-1]); r.update(rows=info["rows"], query_s=info["query_s"], duckdb_version=info["duckdb_version"])
lines[-1] = json.dumps(r)
open(path, "w").write("\n".join(lines) + "\n")
print(f"   DuckDB {info['duckdb_version']}: {info['rows']} rows, query {info['query_s']:.2f} s in-process")
EOF
}

for round in $(seq 1 "$repeat"); do
    echo "== round $round/$repeat"
    rm -rf "$store"
    mkdir -p "$store"
    timed import "$round" "${bhav[@]}" import "$csv"
    if [ $((round % 2)) = 1 ]; then
        run_bhavstore "$round"
        run_duckdb "$round"
    else
        run_duckdb "$round"
        run_bhavstore "$round"
    fi
done
python3 "$py" sql --store "$store" --out "$duck_out" > "$out/duckdb.sql"

# -- 4. cross-check (not timed) -----------------------------------------------------------------
echo "== cross-check: DuckDB's 15 columns vs bhavstore's published views (round $repeat)"
crosscheck="not run"
if python3 "$py" crosscheck --store "$store" --duckdb-out "$duck_out" | tee "$out/crosscheck.txt"; then
    crosscheck="agree ($(grep -c 'out of tolerance 0' "$out/crosscheck.txt") columns within rel 1e-9 / abs 1e-12)"
else
    crosscheck="DISAGREE, see crosscheck.txt"
fi

# -- 5. summary ---------------------------------------------------------------------------------
STARTED="$started" BIN="$BIN" REPEAT="$repeat" CSV_DIR="$csv" CROSSCHECK="$crosscheck" \
    SECURITIES="$securities" SESSIONS="$sessions" SEED="$seed" python3 - "$out/meta.json" <<'EOF'
import datetime, json, os, sys
import duckdb
e = os.environ
info = json.load(open(e["CSV_DIR"] + ".json"))
mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
meta = {
    "started": e["STARTED"], "nproc": os.cpu_count(), "mem_gib": round(mem, 1),
    "duckdb": f"DuckDB {duckdb.__version__} (python module, default settings)",
    "bin": e["BIN"],
    "bin_mtime": datetime.datetime.fromtimestamp(os.path.getmtime(e["BIN"]), datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    "repeat": int(e["REPEAT"]), "crosscheck": e["CROSSCHECK"],
    "history": {"securities": int(e["SECURITIES"]), "sessions": int(e["SESSIONS"]), "seed": int(e["SEED"]), **info},
    "csv_dir": e["CSV_DIR"],
}
json.dump(meta, open(sys.argv[1], "w"), indent=2)
EOF
echo
python3 "$py" summary --out "$out"
if [ -z "${KEEP_WORK:-}" ]; then
    rm -rf "$out/work"
fi
