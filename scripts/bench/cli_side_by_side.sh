#!/usr/bin/env bash
# Two `bhavstore` binaries side by side, in one run, on the same real files: what a user runs
# day to day. For each binary (alternating, REPEAT rounds, a fresh store each round):
#   import   the 2015 legacy bhavcopies but the last one
#   full     materialize (first run: full recompute of every view)
#   incr     import the last file, materialize (incremental)
#   query    a scan of price_features
#   asof     a features_asof training set of 100,000 (scrip, instant) rows: 1,000 scrip codes x 100 days
# Usage: scripts/bench/cli_side_by_side.sh BIN_BEFORE BIN_AFTER [DATA_DIR]
# Prints one line per step and binary: the median wall time in seconds.
# DEFS_BEFORE / DEFS_AFTER (default: feature_defs/) give each side its own feature definitions:
# the same binary twice with two definition folders compares two forms of the views (for
# example the raw-price views against the split-adjusted ones).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
a="$1"; b="$2"
data="${3:-$repo/../shared/data/bse-real}/legacy-eq-14col/2015"
repeat="${REPEAT:-3}"
mapfile -t files < <(ls "$data"/EQ*.CSV | sort -t/ -k1,1 | python3 -c '
import sys,re
fs=[l.strip() for l in sys.stdin]
key=lambda f: (lambda m: (m[2],m[1],m[0]))(re.search(r"EQ(\d\d)(\d\d)(\d\d)",f).groups())
print("\n".join(sorted(fs,key=key)))')
last="${files[-1]}"; rest=("${files[@]:0:${#files[@]}-1}")
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
out="$work/times.tsv"
t() {
  local label=$1 bin=$2; shift 2; local s e
  s=$(date +%s.%N)
  if ! "$bin" "$@" >"$work/last.log" 2>&1; then
    echo "$label failed with $bin: $(tail -1 "$work/last.log")" >&2
    echo -e "$label\t$side\tnan" >> "$out"; return 0
  fi
  e=$(date +%s.%N)
  echo -e "$label\t$side\t$(echo "$e - $s" | bc)" >> "$out"
}
# Before issue 11, `bhavstore query` could not run features_asof at all (it lost the catalog's
# tables while planning: "No table named 'price_features'"): a binary that fails a step is
# reported as failed for it instead of stopping the run.
asof="select count(*), count(sma_5), sum(sma_5) from features_asof('price_features', 'select 500000 + value % 1000 as scrip_code, to_timestamp_seconds(1420454000 + (value / 1000) * 86400) from generate_series(0, 99999)')"
for r in $(seq "$repeat"); do
  for side in before after; do
    if [[ $side == before ]]; then bin="$a"; defs="${DEFS_BEFORE:-$repo/feature_defs}"; else bin="$b"; defs="${DEFS_AFTER:-$repo/feature_defs}"; fi
    store="$work/store-$r-$side-$RANDOM"
    common=(--storage "file://$store" --feature-defs "$defs")
    t import "$bin" "${common[@]}" import "${rest[@]}"
    t full "$bin" "${common[@]}" materialize
    "$bin" "${common[@]}" import "$last" >"$work/last.log" 2>&1 || { tail -5 "$work/last.log" >&2; exit 1; }
    t incr "$bin" "${common[@]}" materialize
    t query "$bin" "${common[@]}" query --format csv "select count(*), sum(close), sum(sma_20) from price_features"
    t asof "$bin" "${common[@]}" query --format csv "$asof"
  done
done
python3 - "$out" before after <<'PY'
import sys,statistics,collections
rows=[l.rstrip('\n').split('\t') for l in open(sys.argv[1])]
d=collections.defaultdict(list)
for step,b,s in rows: d[(step,b)].append(float(s))
a,b=sys.argv[2],sys.argv[3]
print(f"{'step':8} {'before s':>9} {'after s':>9} {'after/before':>12}")
for step in ['import','full','incr','query','asof']:
    x,y=statistics.median(d[(step,a)]),statistics.median(d[(step,b)])
    ratio=f"{y/x:12.2f}" if x==x and y==y else f"{'-':>12}"
    print(f"{step:8} {x:9.2f} {y:9.2f} {ratio}")
PY
