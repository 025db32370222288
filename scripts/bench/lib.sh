# Shared by the benchmark harnesses (sourced, not run): the cached synthetic history and the
# timed run of one side. Callers set `bin` (the release folder) before `ensure_history`, and
# `out`, `runs` and `py` (user_run.py, which records runs) before `timed`.

# ensure_history DIR SECURITIES SESSIONS SEED: writes the synthetic history (its day files and
# change log) into DIR once; DIR.done holds gen-history's last line, DIR.log its output.
ensure_history() {
    local dir="$1" securities="$2" sessions="$3" seed="$4"
    if [ -f "$dir.done" ]; then
        echo "present (remove $dir.done to regenerate): $(cat "$dir.done")"
    else
        rm -rf "$dir"
        mkdir -p "$(dirname "$dir")"
        "$bin/gen-history" --root "$dir" --securities "$securities" --sessions "$sessions" --seed "$seed" \
            | tee "$dir.log"
        tail -n 1 "$dir.log" > "$dir.done"
    fi
}

# timed SIDE ROUND CMD...: runs CMD under GNU time -v (stdout/stderr to $out/logs/), records the
# run in $runs and prints one line. Extra KEY=VALUE pairs for the record can be set in the array
# `extra` before the call; a failing command stops the harness with its last lines.
extra=()

timed() {
    local side="$1" round="$2"
    shift 2
    local tag="$out/logs/r$round-$side" load t0 t1 rc=0
    load="$(cut -d' ' -f1-3 /proc/loadavg)"
    t0="$(date +%s%N)"
    /usr/bin/time -v -o "$tag.time" "$@" > "$tag.stdout" 2> "$tag.stderr" || rc=$?
    t1="$(date +%s%N)"
    if [ "$rc" != 0 ]; then
        echo "!! $side (round $round) failed with exit status $rc: $*" >&2
        tail -n 30 "$tag.stderr" "$tag.stdout" >&2
        exit 1
    fi
    python3 "$py" record --runs "$runs" --side "$side" --round "$round" --time-file "$tag.time" \
        --load "$load" --extra "wall_ns=$((t1 - t0))" "${extra[@]/#/--extra=}"
    extra=()
    python3 - "$runs" <<'PY'
import json, sys
r = json.loads(open(sys.argv[1]).read().splitlines()[-1])
print(f"   {r['side']:<9} round {r['round']}: wall {r['wall_s']:.2f} s, CPU {r['user_s'] + r['sys_s']:.2f} s, "
      f"peak RSS {r['max_rss_kib'] / 1024:.0f} MiB, load before {r['load_before']}")
PY
}
