"""`?` placeholders and executemany over Flight SQL, from the ADBC driver (paramstyle 'qmark').

Checks, and fails (exit 1, with the reason) on the first that does not hold:

* a `?` query with parameters returns exactly the rows of the same query written with `$1, $2`;
* a `?` inside a string literal, a quoted identifier or a comment stays text;
* the prepared statement reports its parameter schema for `?` (one field per `?`, typed);
* mixing `?` and `$1` is refused as an invalid argument;
* executemany of a query runs every row and answers rowcount 0 (nothing was changed), and a
  value that does not convert is refused naming the parameter;
* executemany of a write (INSERT) is refused as read-only (PermissionDenied), and so is a
  DoPut update sent without preparing (CommandStatementUpdate) or with a handle made by hand
  (CommandPreparedStatementUpdate): the server checks the statement, not the client.

Prints one JSON document with what it saw (the Rust test asserts on it too).

usage: adbc_qmark.py HOST:PORT USER PASSWORD
"""

import datetime
import json
import sys

import adbc_driver_flightsql.dbapi as flightsql
import pyarrow as pa
import pyarrow.flight as fl

QUERY = (
    "SELECT scrip_code, trade_date, close, sma_20 FROM price_features "
    "WHERE scrip_code = {} AND trade_date >= {} ORDER BY trade_date"
)
QMARK = QUERY.format("?", "?")
DOLLAR = QUERY.format("$1", "$2")
PARAMS = (500002, datetime.date(2015, 1, 15))


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field(number, payload):
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def any_command(name, inner):
    """google.protobuf.Any{arrow.flight.protocol.sql.NAME{field 1 = inner}}, encoded by hand."""
    return field(1, f"type.googleapis.com/arrow.flight.protocol.sql.{name}".encode()) + field(2, field(1, inner))


def check(cond, what):
    if not cond:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)


def refused(fn):
    """The exception `fn` raises, as text ('' when it does not raise)."""
    try:
        fn()
    except Exception as e:  # noqa: BLE001 - any refusal is what is looked at
        return f"{type(e).__name__}: {e}"
    return ""


def raw_update(addr, user, password, command, params):
    """A DoPut update with `command` (bytes), bypassing ADBC; returns the error text or ''."""
    client = fl.FlightClient(f"grpc://{addr}")
    token = client.authenticate_basic_token(user, password)
    options = fl.FlightCallOptions(headers=[token])
    descriptor = fl.FlightDescriptor.for_command(command)

    def go():
        writer, reader = client.do_put(descriptor, params.schema, options)
        writer.write_table(params)
        writer.done_writing()
        reader.read()
        writer.close()

    try:
        return refused(go)
    finally:
        client.close()


def main():
    addr, user, password = sys.argv[1:4]
    out = {}
    with flightsql.connect(f"grpc://{addr}", db_kwargs={"username": user, "password": password}) as conn:
        with conn.cursor() as cur:
            cur.execute(QMARK, PARAMS)
            qmark_rows = cur.fetchall()
            cur.execute(DOLLAR, PARAMS)
            dollar_rows = cur.fetchall()
            check(len(qmark_rows) > 5, f"the ? query returned {len(qmark_rows)} rows")
            check(qmark_rows == dollar_rows, f"? and $n differ: {qmark_rows[:3]} vs {dollar_rows[:3]}")
            check(all(r[0] == PARAMS[0] and r[1] >= PARAMS[1] for r in qmark_rows), "rows match the parameters")
            out["qmark_rows"] = len(qmark_rows)
            out["first"] = [qmark_rows[0][0], qmark_rows[0][1].isoformat(), repr(qmark_rows[0][2])]

            cur.execute("SELECT '?' AS \"a?\", CAST(? AS BIGINT) AS v /* what? */ -- and?\n", (7,))
            row = cur.fetchall()
            check(row == [("?", 7)], f"? in a literal, an identifier and comments: {row}")
            check(cur.description[0][0] == "a?", f"quoted identifier: {cur.description}")

            schema = cur.adbc_prepare(QMARK)
            check(schema is not None and len(schema) == 2, f"parameter schema of the ? statement: {schema}")
            check(schema.field(0).type == pa.int32() or pa.types.is_integer(schema.field(0).type), f"{schema}")
            check(schema.field(1).type == pa.date32(), f"{schema}")
            out["parameter_schema"] = [f"{f.name}:{f.type}" for f in schema]

            mixed = refused(lambda: cur.execute("SELECT ? + $1", (1,)))
            check("InvalidArgument" in mixed and "mixes ? and numbered" in mixed, f"mixed styles: {mixed!r}")

            # executemany of a query: every row runs, nothing changes.
            cur.executemany("SELECT close FROM price_features WHERE scrip_code = ?", [(500002,), (500325,), (1,)])
            out["executemany_query_rowcount"] = cur.rowcount
            check(cur.rowcount == 0, f"executemany of a query: rowcount {cur.rowcount}")
            bad = refused(lambda: cur.executemany("SELECT close FROM price_features WHERE scrip_code = ?", [("x1",)]))
            check("InvalidArgument" in bad and "$1" in bad, f"a value that does not convert: {bad!r}")

            # executemany of a write: refused, read-only.
            write = refused(
                lambda: cur.executemany(
                    "INSERT INTO price_features (scrip_code) VALUES (?)", [(1,), (2,)]
                )
            )
            out["executemany_write"] = write
            check("PermissionDenied" in write and "read-only" in write, f"executemany INSERT: {write!r}")

    # The same refusals when the client skips prepare, or makes a handle by hand.
    params = pa.table({"0": pa.array([1, 2], pa.int64())})
    statement = raw_update(addr, user, password, any_command("CommandStatementUpdate", b"DELETE FROM price_features"), params)
    handle = json.dumps({"sql": "INSERT INTO price_features (scrip_code) VALUES (?)"}).encode()
    prepared = raw_update(addr, user, password, any_command("CommandPreparedStatementUpdate", handle), params)
    for what, text in [("statement update", statement), ("hand-made prepared update", prepared)]:
        check("Unauthorized" in text and "read-only" in text, f"{what}: {text!r}")
    out["raw_statement_update"] = statement
    out["raw_prepared_update"] = prepared
    print(json.dumps(out))


if __name__ == "__main__":
    main()
