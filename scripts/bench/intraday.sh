#!/usr/bin/env bash
# Intraday bar ingestion benchmark, on loopback, in one run (see README.md, "Intraday bars"):
#   1. replay: a synthetic session (INSTRUMENTS x MINUTES one-minute bars) through Flight SQL
#      bulk ingest (`adbc_ingest("intraday_bars", ..., mode="append")`, CHUNK_MINUTES minutes of
#      bars per call) until the server reports every feature computed and durable -> bars/s
#      (target >= 200,000);
#   2. minute-boundary burst: per simulated minute, every instrument's bar pushed at once over
#      REST (one push, or BURST_PUSHES concurrent pushes), time from the last acknowledgement
#      until all instruments' intraday_features events for that minute arrived on the SSE
#      stream -> p50/p99/max over the minutes (target p99 <= 50 ms);
#   3. single-bar REST pushes, open loop at RATE/s -> ack latency p50/p99 (target p99 <= 10 ms);
#      server RSS with every instrument live (target <= 1 GiB);
#   4. Feast 0.67 push API (`feast serve`, SQLite online store): the same rows with their
#      features precomputed client-side, the same chunks -> rows/s (target: bhavstore >= 20x);
#      single-row pushes at RATE/s (and at the rate it sustains).
# Each bhavstore measurement runs against a fresh `bhavstore serve --no-schedule` on an empty
# storage root (bars are keyed by (instrument, ts): a second run into the same root would be
# a no-op).
#
# Environment overrides (defaults in brackets):
#   INSTRUMENTS [2000]  MINUTES [375: one-minute bars from 09:15 IST]  SEED [42]  DATE [2026-07-14]
#   CHUNK_MINUTES ["1 15": replay chunk sizes, minutes of bars per adbc_ingest / Feast push; one
#     replay run and one Feast throughput run per size]
#   DONE_CHECK [auto: /health's intraday.features_through_seq >= intraday.durable_seq when /health
#     has them, else a lookup of the last instrument's last bar; or health, lookup]  POLL_MS [5]
#   BURST_PUSHES ["1 8": concurrent pushes per minute, one burst run each]  BURST_MINUTES [MINUTES]
#   BURST_INTERVAL_MS [200: from one minute's first push to the next minute's]  VISIBLE_TIMEOUT [5 s]
#   RATE [2000 pushes/s]  DURATION [30]  WARMUP [5] (seconds; single-row push runs)
#   FEAST_VERSION [0.67.0]  FEAST_VENV [$BENCH_CACHE/feast-venv]  FEAST_WORKERS [2]
#   FEAST_ARGS [--no-access-log --max-requests 0; FEAST_ARGS= for none]
#   FEAST_CONCURRENCY [1: chunk pushes in flight in the throughput run]
#   FEAST_CLOSED_CONCURRENCY ["1 2": single-row closed-loop runs, connections each; more concurrent
#     pushes fail in Feast's SQLite store]
#   FEAST_SUSTAIN_RATE [auto: 80% of Feast's best closed-loop rate, rounded down to 10/s]
#   FEAST_MAX_CONNS [FEAST_WORKERS: connections of Feast's open-loop runs; more pushes queue in the
#     client, still timed from when they were due (bhavstore's runs may open 1024)]
#   BHAVSTORE_ONLY / FEAST_ONLY [empty]  SKIP [empty; any of replay,burst,push,feast-throughput,feast-latency]
#   FEATURE_DEFS [$repo/feature_defs]  SERVE_ARGS [empty: extra flags for `serve`]  LOG [info]
#   BENCH_CACHE [$HOME/.cache/bhavstore-bench]  OUT [$BENCH_CACHE/out-intraday, replaced each run;
#     with BHAVSTORE_ONLY or FEAST_ONLY only that side's results are replaced]
#   KEEP_WORK [empty: the servers' storage roots are removed after each run]
#   CARGO_TARGET_DIR [$HOME/.cache/bhavstore-target]  NO_BUILD [empty: build]
# Smoke run: MINUTES=30 BURST_PUSHES=1 CHUNK_MINUTES=1 DURATION=3 WARMUP=1 scripts/bench/intraday.sh
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/bhavstore-target}"
cache="${BENCH_CACHE:-$HOME/.cache/bhavstore-bench}"
out="${OUT:-$cache/out-intraday}"
bin="$CARGO_TARGET_DIR/release"
instruments="${INSTRUMENTS:-2000}"
minutes="${MINUTES:-375}"
seed="${SEED:-42}"
date_="${DATE:-2026-07-14}"
chunk_list="${CHUNK_MINUTES:-1 15}"
burst_list="${BURST_PUSHES:-1 8}"
burst_minutes="${BURST_MINUTES:-$minutes}"
rate="${RATE:-2000}"
duration="${DURATION:-30}"
warmup="${WARMUP:-5}"
defs="${FEATURE_DEFS:-$repo/feature_defs}"
feast_version="${FEAST_VERSION:-0.67.0}"
venv="${FEAST_VENV:-$cache/feast-venv}"
feast_workers="${FEAST_WORKERS:-2}"
read -r -a feast_args <<< "${FEAST_ARGS---no-access-log --max-requests 0}"
read -r -a serve_args <<< "${SERVE_ARGS:-}"
py="python3"
bench="$here/intraday_bench.py"
unset BHAVSTORE_CONFIG BHAVSTORE_STORAGE

run_bhavstore=1 run_feast=1
[ -n "${FEAST_ONLY:-}" ] && run_bhavstore=""
[ -n "${BHAVSTORE_ONLY:-}" ] && run_feast=""
skipped() { case ",${SKIP:-}," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }

"$py" -c 'import adbc_driver_flightsql, aiohttp, numpy, orjson, pandas, pyarrow, requests' || {
    echo "python3 needs adbc_driver_flightsql, aiohttp, numpy, orjson, pandas, pyarrow and requests" >&2
    exit 1
}

if [ -n "$run_bhavstore" ] && [ -z "${NO_BUILD:-}" ]; then
    echo "== build (release)"
    (cd "$repo" && cargo build --release -p bhavstore)
fi

if [ -n "$run_bhavstore" ] && [ -n "$run_feast" ]; then
    rm -rf "$out"
else # one side only: keep the other side's results, so the summary covers both
    [ -n "$run_bhavstore" ] && rm -rf "$out"/results/replay-* "$out"/results/burst-* "$out"/results/push-* "$out/roots"
    [ -n "$run_feast" ] && rm -rf "$out"/results/feast-* "$out/feast_repo"
fi
mkdir -p "$out/logs" "$out/results" "$cache"

name="intraday-${instruments}x${minutes}-seed${seed}-${date_}"
bars="$cache/$name.parquet"
echo "== bars $name -> $bars"
if [ -f "$bars.done" ] && [ -f "$bars" ]; then
    echo "present (remove $bars.done to regenerate): $(cat "$bars.done")"
else
    "$py" "$bench" gen --out "$bars" --instruments "$instruments" --minutes "$minutes" --seed "$seed" --date "$date_" \
        | tee "$bars.done"
fi

# ---------------------------------------------------------------------------------------------
# bhavstore

serve_pid="" http="" flight="" root=""
start_server() { # $1: run name
    root="$out/roots/$1"
    rm -rf "$root"
    mkdir -p "$root"
    # env -u: the server warns about BHAVSTORE_* variables it does not know (this script's knob).
    env -u BHAVSTORE_ONLY "$bin/bhavstore" --storage "$root" --feature-defs "$defs" --log "${LOG:-info}" serve --no-schedule \
        --http-addr 127.0.0.1:0 --pg-addr 127.0.0.1:0 --flight-addr 127.0.0.1:0 "${serve_args[@]}" \
        > "$out/logs/serve-$1.out" 2> "$out/logs/serve-$1.log" &
    serve_pid=$!
    http="" flight=""
    local addr
    for _ in $(seq 600); do
        addr="$(grep -o 'listening protocol="http" addr=[0-9.:]*' "$out/logs/serve-$1.log" | head -n 1 || true)"
        http="${addr##*addr=}"
        addr="$(grep -o 'listening protocol="flight" addr=[0-9.:]*' "$out/logs/serve-$1.log" | head -n 1 || true)"
        flight="${addr##*addr=}"
        [ -n "$http" ] && [ -n "$flight" ] && break
        kill -0 "$serve_pid" 2>/dev/null || { cat "$out/logs/serve-$1.log"; echo "serve exited" >&2; exit 1; }
        sleep 0.2
    done
    [ -n "$http" ] && [ -n "$flight" ] || { echo "serve did not start listening" >&2; exit 1; }
    http="http://$http"
    echo "bhavstore ($1): http $http, flight $flight, pid $serve_pid"
}
stop_server() {
    if [ -n "$serve_pid" ] && kill -0 "$serve_pid" 2>/dev/null; then
        kill -TERM "$serve_pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$serve_pid" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$serve_pid" 2>/dev/null || true
        wait "$serve_pid" 2>/dev/null || true
    fi
    serve_pid=""
    if [ -n "$root" ] && [ -z "${KEEP_WORK:-}" ]; then
        rm -rf "$root"
    fi
    root=""
}
feast_pid=""
stop_feast() {
    if [ -n "$feast_pid" ] && kill -0 "$feast_pid" 2>/dev/null; then
        kill -TERM "$feast_pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$feast_pid" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$feast_pid" 2>/dev/null || true
        wait "$feast_pid" 2>/dev/null || true
    fi
    feast_pid=""
}
cleanup() { stop_server; stop_feast; }
trap cleanup EXIT
loadavg() { echo "$(date -u +%H:%M:%S) $1 load $(cut -d' ' -f1-3 /proc/loadavg)" >> "$out/logs/loadavg.log"; }

status=0
if [ -n "$run_bhavstore" ]; then
    [ -x "$bin/bhavstore" ] || { echo "no $bin/bhavstore (NO_BUILD set?)" >&2; exit 1; }
    if ! skipped replay; then
        for c in $chunk_list; do
            echo "== bhavstore replay, $c-minute chunks"
            start_server "replay-$c"
            loadavg "replay-$c"
            "$py" "$bench" replay --bars "$bars" --flight "$flight" --http "$http" --server-pid "$serve_pid" \
                --chunk-minutes "$c" --done-check "${DONE_CHECK:-auto}" --poll-ms "${POLL_MS:-5}" \
                --out "$out/results/replay-$c.json" || status=$?
            stop_server
        done
    fi
    if ! skipped burst; then
        for p in $burst_list; do
            echo "== bhavstore minute burst, $p push(es) per minute"
            start_server "burst-$p"
            loadavg "burst-$p"
            "$py" "$bench" burst --bars "$bars" --http "$http" --server-pid "$serve_pid" --minutes "$burst_minutes" \
                --pushes "$p" --interval-ms "${BURST_INTERVAL_MS:-200}" --visible-timeout "${VISIBLE_TIMEOUT:-5}" \
                --out "$out/results/burst-$p.json" || status=$?
            stop_server
        done
    fi
    if ! skipped push; then
        echo "== bhavstore single-bar pushes at $rate/s"
        start_server push
        loadavg push
        "$py" "$bench" push-latency --bars "$bars" --http "$http" --server-pid "$serve_pid" --rate "$rate" \
            --duration "$duration" --warmup "$warmup" --out "$out/results/push-latency.json" || status=$?
        stop_server
    fi
fi

# ---------------------------------------------------------------------------------------------
# Feast

if [ -n "$run_feast" ] && ! { skipped feast-throughput && skipped feast-latency; }; then
    echo "== Feast $feast_version venv: $venv"
    if ! "$venv/bin/feast" version 2>/dev/null | grep -q "\"$feast_version\""; then
        python3 -m venv "$venv"
        "$venv/bin/pip" install --no-cache-dir --quiet "feast==$feast_version"
    fi
    "$venv/bin/feast" version

    features="$cache/$name.features.parquet"
    echo "== features for Feast (pandas, not timed) -> $features"
    if [ -f "$features.done" ] && [ -f "$features" ] && [ "$features.done" -nt "$bars.done" ]; then
        echo "present: $(cat "$features.done")"
    else
        "$py" "$bench" features --bars "$bars" --out "$features" | tee "$features.done"
    fi

    echo "== Feast repo"
    feast_repo="$out/feast_repo"
    "$venv/bin/python" "$here/feast/intraday_repo.py" --repo "$feast_repo"
    (cd "$feast_repo" && "$venv/bin/feast" apply > "$out/logs/feast_apply.log" 2>&1) \
        || { cat "$out/logs/feast_apply.log"; exit 1; }

    feast_port="$("$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
    (cd "$feast_repo" && exec "$venv/bin/feast" serve -h 127.0.0.1 -p "$feast_port" --workers "$feast_workers" \
        "${feast_args[@]}" > "$out/logs/feast_serve.log" 2>&1) &
    feast_pid=$!
    fe="http://127.0.0.1:$feast_port"
    for _ in $(seq 600); do
        curl -sf "$fe/health" > /dev/null && break
        kill -0 "$feast_pid" 2>/dev/null || { cat "$out/logs/feast_serve.log"; echo "feast serve exited" >&2; exit 1; }
        sleep 0.2
    done
    curl -sf "$fe/health" > /dev/null || { echo "Feast did not start:"; cat "$out/logs/feast_serve.log"; exit 1; }
    echo "Feast $fe (pid $feast_pid, workers $feast_workers, ${feast_args[*]})"

    if ! skipped feast-throughput; then
        for c in $chunk_list; do
            echo "== Feast push throughput, $c-minute chunks"
            loadavg "feast-throughput-$c"
            "$py" "$bench" feast-throughput --features "$features" --url "$fe" --server-pid "$feast_pid" \
                --chunk-rows "$((c * instruments))" --concurrency "${FEAST_CONCURRENCY:-1}" \
                --out "$out/results/feast-throughput-$c.json" || status=$?
        done
    fi
    if ! skipped feast-latency; then
        echo "== Feast single-row pushes"
        loadavg feast-latency
        "$py" "$bench" feast-latency --features "$features" --url "$fe" --server-pid "$feast_pid" --rate "$rate" \
            --duration "$duration" --warmup "$warmup" --concurrency "${FEAST_CLOSED_CONCURRENCY:-1 2}" \
            --sustain-rate "${FEAST_SUSTAIN_RATE:-auto}" --max-conns "${FEAST_MAX_CONNS:-$feast_workers}" \
            --out "$out/results/feast-latency.json" || status=$?
    fi
    stop_feast
fi

cleanup
trap - EXIT

echo "== summary"
meta="$(date -u +%Y-%m-%dT%H:%MZ); $(nproc) cores; ${instruments} instruments x ${minutes} bars ($date_, seed $seed); \
bhavstore $(cd "$repo" && git rev-parse --short HEAD 2>/dev/null || echo '?')$(cd "$repo" && git diff --quiet 2>/dev/null || echo '+dirty'); \
Feast $([ -n "$run_feast" ] && "$venv/bin/python" -c 'import feast; print(feast.__version__)' 2>/dev/null || echo '-') \
(feast serve --workers $feast_workers ${feast_args[*]}, SQLite online store)"
"$py" "$bench" summary --out "$out" --meta "$meta" | tee "$out/summary.md"
echo "== results: $out/summary.md; $out/results/*.json; logs in $out/logs"
exit "$status"
