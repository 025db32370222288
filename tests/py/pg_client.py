"""Postgres wire from Python with psycopg 3, as analysts and BI-style tools use it: SCRAM
login, server-side parameter binding, a named (server-side) cursor, COPY TO STDOUT, and the
SQLSTATEs of refused or wrong statements. Prints one JSON document; the Rust test
(tests/tests/serving.rs) asserts on it.

usage: pg_client.py HOST PORT USER PASSWORD QUERY PARAM_QUERY PARAM
"""

import json
import sys

import psycopg


def jsonable(v):
    # Floats as repr text: exact, whatever JSON parser the test uses.
    if isinstance(v, float):
        return repr(v)
    return v.isoformat() if hasattr(v, "isoformat") else v


def main():
    host, port, user, password, query, param_query, param = sys.argv[1:8]
    out = {}
    dsn = f"host={host} port={port} user={user} password={password} dbname=bhavstore sslmode=disable"
    with psycopg.connect(dsn, autocommit=True) as conn:
        with conn.cursor() as cur:
            cur.execute(query)
            names = [d.name for d in cur.description]
            out["rows"] = [{n: jsonable(v) for n, v in zip(names, r)} for r in cur.fetchall()]
            # psycopg binds server-side: Parse with $1, Bind with the value.
            cur.execute(param_query, (int(param),))
            names = [d.name for d in cur.description]
            out["param_rows"] = [{n: jsonable(v) for n, v in zip(names, r)} for r in cur.fetchall()]
        # A named cursor: DECLARE, then FETCH FORWARD itersize until done.
        with conn.transaction():
            with conn.cursor(name="training_pull") as cur:
                cur.itersize = 1000
                cur.execute("SELECT scrip_code, trade_date, close FROM price_features ORDER BY scrip_code, trade_date")
                out["named_cursor_columns"] = [d.name for d in cur.description]
                n = 0
                first = None
                for r in cur:
                    if first is None:
                        first = [jsonable(v) for v in r]
                    n += 1
                out["named_cursor_rows"] = n
                out["named_cursor_first"] = first
        with conn.cursor() as cur:
            copied = []
            with cur.copy(
                "COPY (SELECT scrip_code, trade_date, close FROM price_features ORDER BY scrip_code, trade_date LIMIT 5) "
                "TO STDOUT WITH (FORMAT csv, HEADER)"
            ) as copy:
                for chunk in copy:
                    copied.append(bytes(chunk).decode())
            out["copy_csv"] = "".join(copied)
        errors = {}
        for name, sql in {
            "undefined_table": "SELECT * FROM no_such_table",
            "undefined_column": "SELECT no_such_column FROM price_features",
            "syntax": "SELEC 1",
            "create_table": "CREATE TABLE t AS SELECT 1",
            "insert": "INSERT INTO price_features (scrip_code) VALUES (1)",
            "copy_to_file": "COPY (SELECT 1) TO '/tmp/bhavstore-pwned.csv'",
            "external_table": "CREATE EXTERNAL TABLE pw STORED AS CSV LOCATION '/etc/passwd'",
            "engine_setting": "SET datafusion.execution.batch_size = 1",
        }.items():
            try:
                with conn.cursor() as cur:
                    cur.execute(sql)
                errors[name] = {"sqlstate": None, "message": "accepted"}
            except psycopg.Error as e:
                errors[name] = {"sqlstate": e.sqlstate, "message": str(e)}
        out["errors"] = errors
    try:
        bad = dsn.replace(f"password={password}", f"password={password}x")
        psycopg.connect(bad).close()
        out["bad_password"] = "accepted"
    except psycopg.OperationalError as e:
        out["bad_password"] = str(e)
    print(json.dumps(out, default=str))


if __name__ == "__main__":
    main()
