#!/usr/bin/env bash
# REST lookup benchmark: bhavstore's online lookups vs Feast's feature server holding the same
# features of the same securities, on loopback, in the same run:
#   1. release build of bhavstore, gen-history and bench-lookup;
#   2. a synthetic history (cached), hard-linked into a work root, `bhavstore materialize
#      price_features`;
#   3. a Feast venv (created once), a Feast repo made from the view's published Parquet files
#      (feast/make_repo.py), `feast apply`, `feast materialize` over the whole history;
#   4. `bhavstore serve --no-schedule --http-addr 127.0.0.1:0` and `feast serve`;
#   5. like-for-like check: every feature of SAMPLES random securities, same values on both;
#   6. load (bench-lookup): per features-per-request, each server's throughput at a fixed
#      concurrency (closed loop), then both at the same fixed request rate (open loop);
#   7. the table: $OUT/summary.md.
#
# Environment overrides (defaults in brackets):
#   SECURITIES [2000]  SESSIONS [250]  SEED [42]
#   RATE [auto: per features-per-request, half of Feast's throughput at CONCURRENCY, rounded
#         down to 50/s]
#   CONCURRENCY [16]  FPR ["1 5": features per request]  DURATION [30]  WARMUP [5] (seconds)
#   GEN_THREADS [1]  SAMPLES [50]
#   FEAST_VERSION [0.67.0]  FEAST_VENV [$BENCH_CACHE/feast-venv]
#   FEAST_WORKERS [2]  FEAST_ARGS [--no-access-log --max-requests 0; FEAST_ARGS= for none]
#   BENCH_CACHE [$HOME/.cache/bhavstore-bench]  OUT [$BENCH_CACHE/out-lookup]
#   CARGO_TARGET_DIR [$HOME/.cache/bhavstore-target]  NO_BUILD [empty: build]
# Smoke run: SECURITIES=200 SESSIONS=60 DURATION=3 WARMUP=1 scripts/bench/lookup.sh
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/bench/lib.sh
. "$here/lib.sh"
repo="$(cd "$here/../.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/bhavstore-target}"
cache="${BENCH_CACHE:-$HOME/.cache/bhavstore-bench}"
out="${OUT:-$cache/out-lookup}"
bin="$CARGO_TARGET_DIR/release"
securities="${SECURITIES:-2000}"
sessions="${SESSIONS:-250}"
seed="${SEED:-42}"
concurrency="${CONCURRENCY:-16}"
fpr_list="${FPR:-1 5}"
duration="${DURATION:-30}"
warmup="${WARMUP:-5}"
gen_threads="${GEN_THREADS:-1}"
samples="${SAMPLES:-50}"
feast_version="${FEAST_VERSION:-0.67.0}"
venv="${FEAST_VENV:-$cache/feast-venv}"
feast_workers="${FEAST_WORKERS:-2}"
read -r -a feast_args <<< "${FEAST_ARGS---no-access-log --max-requests 0}"

if [ -z "${NO_BUILD:-}" ]; then
    echo "== build (release)"
    (cd "$repo" && cargo build --release -p bhavstore -p bhavstore-bench)
fi

name="${securities}x${sessions}-seed${seed}"
history="$cache/history-$name"
echo "== history $name -> $history"
ensure_history "$history" "$securities" "$sessions" "$seed"

rm -rf "$out"
mkdir -p "$out/logs" "$out/results"
root="$out/root"
cp -al "$history" "$root"

echo "== bhavstore materialize price_features"
"$bin/bhavstore" --storage "$root" --feature-defs "$repo/feature_defs" materialize price_features \
    > "$out/logs/materialize.out" 2> "$out/logs/materialize.log"
cat "$out/logs/materialize.out"

echo "== Feast $feast_version venv: $venv"
if ! "$venv/bin/feast" version 2>/dev/null | grep -q "\"$feast_version\""; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --no-cache-dir --quiet "feast==$feast_version"
fi
"$venv/bin/feast" version

echo "== Feast repo"
feast_repo="$out/feast_repo"
"$venv/bin/python" "$here/feast/make_repo.py" --root "$root" --view price_features \
    --feature-defs "$repo/feature_defs" --repo "$feast_repo"
meta="$feast_repo/meta.json"
json_get() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$@"; }
min_date="$(json_get "$meta" min_trade_date)"
max_date="$(json_get "$meta" max_trade_date)"
features="$(python3 -c "import json,sys; print(','.join(json.load(open(sys.argv[1]))['features']))" "$meta")"
# Both servers answer with the newest session's values: Feast's online store holds only those,
# bhavstore is asked as of 18:00 UTC that day (23:30 IST). Under bhavstore's default rule
# `available` a day counts once its bhavcopy is published (20:00 IST, 14:30 UTC, for days
# downloaded later than that); at 12:00 UTC it would still answer with the day before. "Now"
# would be refused as older than the view's ttl (the synthetic history is in the past).
as_of="${max_date}T18:00:00Z"
(
    cd "$feast_repo"
    "$venv/bin/feast" apply > "$out/logs/feast_apply.log" 2>&1
    start="$(date -u -d "$min_date - 1 day" +%Y-%m-%dT00:00:00)"
    end="$(date -u -d "$max_date + 1 day" +%Y-%m-%dT00:00:00)"
    t0=$(date +%s.%N)
    "$venv/bin/feast" materialize "$start" "$end" > "$out/logs/feast_materialize.log" 2>&1
    t1=$(date +%s.%N)
    echo "feast materialize $start $end: $(python3 -c "print(f'{$t1 - $t0:.1f}')") s"
)

pids=()
cleanup() {
    for p in "${pids[@]}"; do
        kill -TERM "$p" 2>/dev/null || true
    done
    for p in "${pids[@]}"; do
        wait "$p" 2>/dev/null || true
    done
}
trap cleanup EXIT

echo "== servers"
"$bin/bhavstore" --storage "$root" --feature-defs "$repo/feature_defs" serve --no-schedule \
    --http-addr 127.0.0.1:0 > "$out/logs/bhavstore_serve.log" 2>&1 &
pids+=($!)
feast_port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
(cd "$feast_repo" && exec "$venv/bin/feast" serve -h 127.0.0.1 -p "$feast_port" --workers "$feast_workers" \
    "${feast_args[@]}" > "$out/logs/feast_serve.log" 2>&1) &
pids+=($!)
bh_addr=""
for _ in $(seq 1 600); do
    bh_addr="$(grep -o 'listening protocol="http" addr=[0-9.:]*' "$out/logs/bhavstore_serve.log" | head -n 1 | sed 's/.*addr=//')" || true
    [ -n "$bh_addr" ] && break
    sleep 0.1
done
[ -n "$bh_addr" ] || { echo "bhavstore did not start:"; cat "$out/logs/bhavstore_serve.log"; exit 1; }
bh="http://$bh_addr"
fe="http://127.0.0.1:$feast_port"
for _ in $(seq 1 600); do
    curl -sf "$fe/health" > /dev/null && break
    sleep 0.1
done
curl -sf "$fe/health" > /dev/null || { echo "Feast did not start:"; cat "$out/logs/feast_serve.log"; exit 1; }
echo "bhavstore $bh, Feast $fe (workers $feast_workers, ${feast_args[*]})"

common=(--securities "$feast_repo/securities.txt" --view price_features --features "$features"
    --timestamp "$as_of" --seed "$seed")

echo "== check: $samples securities, every feature, both servers"
"$bin/bench-lookup" check "${common[@]}" --bhavstore "$bh" --feast "$fe" --samples "$samples" \
    --out "$out/results/check.json"

load() { # target url label out-name args...
    local target="$1" url="$2" label="$3" file="$4"
    shift 4
    echo "$(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)" >> "$out/logs/loadavg.log"
    "$bin/bench-lookup" load "${common[@]}" --target "$target" --url "$url" --label "$label" \
        --duration "$duration" --warmup "$warmup" --threads "$gen_threads" \
        --out "$out/results/$file.json" "$@"
}

echo "== load (each run: ${warmup} s warm-up, ${duration} s measured; generator threads $gen_threads)"
for fpr in $fpr_list; do
    rate="${RATE:-auto}"
    load feast "$fe" "closed c=$concurrency f=$fpr" "closed-c$concurrency-f$fpr-feast" \
        --concurrency "$concurrency" --features-per-request "$fpr"
    load bhavstore "$bh" "closed c=$concurrency f=$fpr" "closed-c$concurrency-f$fpr-bhavstore" \
        --concurrency "$concurrency" --features-per-request "$fpr"
    if [ "$rate" = auto ]; then
        rate="$(python3 -c "import json,sys; r=json.load(open(sys.argv[1]))['throughput_rps']; print(max(50, int(r / 2 // 50 * 50)))" \
            "$out/results/closed-c$concurrency-f$fpr-feast.json")"
        echo "RATE=auto: half of Feast's throughput, rounded down to 50/s: $rate req/s"
    fi
    load feast "$fe" "open rate=$rate f=$fpr" "open-r$rate-f$fpr-feast" --rate "$rate" --features-per-request "$fpr"
    load bhavstore "$bh" "open rate=$rate f=$fpr" "open-r$rate-f$fpr-bhavstore" --rate "$rate" --features-per-request "$fpr"
done

cleanup
pids=()
trap - EXIT

echo "== summary"
python3 "$here/feast/summary.py" --out "$out" --feast-version "$("$venv/bin/python" -c 'import feast; print(feast.__version__)')" \
    --feast-serve "feast serve --workers $feast_workers ${feast_args[*]}" --history "$(cat "$history.done")" \
    | tee "$out/summary.md"
