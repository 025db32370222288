#!/usr/bin/env bash
# psql client matrix: the meta-commands people type at a psql prompt (\d, \dt, \df, \l+ ...),
# PREPARE/EXECUTE/DEALLOCATE and session functions, against bhavstore's Postgres endpoint.
# Each psql meta-command is a catalog query the server must answer like PostgreSQL does.
#
# Connection from BHAVSTORE_PG_HOST/PORT/USER/PASSWORD (defaults: the dev server).
# Prints `ok <name>` or `FAIL <name>: <first error line>` per check; exits 1 if any failed.
set -uo pipefail

HOST="${BHAVSTORE_PG_HOST:-127.0.0.1}"
PORT="${BHAVSTORE_PG_PORT:-55432}"
USER_="${BHAVSTORE_PG_USER:-quant}"
export PGPASSWORD="${BHAVSTORE_PG_PASSWORD:-s3cret-pa55}"
DB=bhavstore

command -v psql >/dev/null 2>&1 || { echo "FAIL setup: psql not found (scripts/install-deps)"; exit 1; }

failed=0
out=""

# run_psql ARGS...: psql without ~/.psqlrc, unaligned ('|'-separated), stop on the first error.
# Sets $out to stdout+stderr; returns psql's exit code.
run_psql() {
    out="$(psql -X -q -v ON_ERROR_STOP=1 -P pager=off -A -h "$HOST" -p "$PORT" -U "$USER_" -d "$DB" "$@" 2>&1)"
}

fail() { # fail NAME MESSAGE
    echo "FAIL $1: $(printf '%s\n' "$2" | head -n 1)"
    failed=1
}

# check NAME COMMAND REGEX...: run COMMAND (a meta-command or SQL) through psql -c; it must exit 0,
# print no ERROR, and its output must match every extended REGEX (line-wise, grep -E).
check() {
    local name="$1" cmd="$2"
    shift 2
    if ! run_psql -c "$cmd" || grep -q 'ERROR' <<<"$out"; then
        fail "$name" "$(grep -m1 'ERROR' <<<"$out" || printf '%s' "$out")"
        return
    fi
    local re
    for re in "$@"; do
        if ! grep -Eq -- "$re" <<<"$out"; then
            fail "$name" "output lacks /$re/ in: $(tr '\n' ' ' <<<"$out" | cut -c1-300)"
            return
        fi
    done
    echo "ok $name"
}

# Reference value: the close of ABB (500002) on 2015-04-01, as plain SQL returns it.
EXPECTED_CLOSE=1275.85

check plain_select "SELECT close FROM bhavcopy WHERE scrip_code = 500002 AND trade_date = DATE '2015-04-01'" \
    "^${EXPECTED_CLOSE}\$"

# \d: every relation of the search path, bhavcopy (a view) and the feature views among them.
check 'meta_\d' '\d' \
    '^public\|bhavcopy\|(table|view)\|' \
    '^public\|price_features\|(table|view)\|' \
    '^public\|volatility_features\|(table|view)\|' \
    '^public\|bhavstore_runs\|(table|view)\|'

# \d price_features: its columns with their types and nullability.
check 'meta_\d_price_features' '\d price_features' \
    '"public\.price_features"' \
    '^scrip_code\|integer\|\|not null\|' \
    '^trade_date\|date\|\|not null\|' \
    '^close\|double precision\|' \
    '^sma_20\|double precision\|' \
    '^ema_12\|double precision\|' \
    '^rsi_14\|double precision\|'

check 'meta_\d_bhavcopy' '\d bhavcopy' \
    '"public\.bhavcopy"' \
    '^scrip_code\|integer\|' \
    '^trade_date\|date\|' \
    '^close\|double precision\|' \
    '^source_line\|bigint\|'

# \d+ adds storage, stats target and description columns (and the view definition for views).
check 'meta_\d+_price_features' '\d+ price_features' \
    '"public\.price_features"' \
    '^scrip_code\|integer\|' \
    '^rsi_14\|double precision\|'

# \dt: the tables. Users think of bhavcopy as a table, so it must be listed here.
check 'meta_\dt' '\dt' \
    '^public\|bhavcopy\|table\|' \
    '^public\|price_features\|table\|'

# \dt+: plus persistence, access method, size (pg_size_pretty(pg_table_size(...))), description.
check 'meta_\dt+' '\dt+' \
    '^public\|bhavcopy\|table\|' \
    '^public\|price_features\|table\|'

check 'meta_\dv' '\dv' \
    '^public\|bhavstore_runs\|view\|' \
    '^public\|bhavstore_versions\|view\|'

# \df: the function list (may be empty of user functions, must not error).
check 'meta_\df' '\df' \
    'List of functions' \
    'Schema\|Name\|Result data type\|Argument data types\|Type'

check 'meta_\du' '\du' \
    'List of roles' \
    "^${USER_}\\|"

check 'meta_\dn+' '\dn+' \
    'List of schemas' \
    '^public\|'

check 'meta_\l+' '\l+' \
    'List of databases' \
    '^bhavstore\|'

# PREPARE / EXECUTE / DEALLOCATE in one session: SQL-level prepared statements are reads.
if run_psql -t \
    -c "PREPARE close_on(int, date) AS SELECT close FROM bhavcopy WHERE scrip_code = \$1 AND trade_date = \$2" \
    -c "EXECUTE close_on(500002, '2015-04-01')" \
    -c "DEALLOCATE close_on" && ! grep -q ERROR <<<"$out"; then
    if grep -Eq "^${EXPECTED_CLOSE}\$" <<<"$out"; then
        echo "ok prepare_execute_deallocate"
    else
        fail prepare_execute_deallocate "EXECUTE returned '$(tr '\n' ' ' <<<"$out")', want ${EXPECTED_CLOSE}"
    fi
else
    fail prepare_execute_deallocate "$(grep -m1 ERROR <<<"$out" || printf '%s' "$out")"
fi

# EXECUTE of a prepared statement with a count: comes back as the integer.
if run_psql -t \
    -c "PREPARE n_days(int) AS SELECT count(*) FROM bhavcopy WHERE scrip_code = \$1" \
    -c "EXECUTE n_days(500002)" -c "DEALLOCATE ALL" && ! grep -q ERROR <<<"$out"; then
    if grep -Eq '^67$' <<<"$out"; then echo "ok prepare_execute_count"
    else fail prepare_execute_count "EXECUTE returned '$(tr '\n' ' ' <<<"$out")', want 67"; fi
else
    fail prepare_execute_count "$(grep -m1 ERROR <<<"$out" || printf '%s' "$out")"
fi

# current_user and session_user side by side (column names current_user, session_user).
check current_user_session_user 'select current_user, session_user' \
    '^current_user\|session_user$' \
    "^${USER_}\\|${USER_}\$"

check current_user_alone 'select current_user' "^${USER_}\$"

exit "$failed"
