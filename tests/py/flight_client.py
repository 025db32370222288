"""Flight SQL from Python, as a training job would pull data: the ADBC Flight SQL driver and
plain pyarrow.flight. Prints one JSON document with what each client saw; the Rust test
(tests/tests/serving.rs) asserts on it.

usage: flight_client.py HOST:PORT USER PASSWORD QUERY PARAM_QUERY PARAM
"""

import json
import sys

import adbc_driver_flightsql.dbapi as flightsql
import adbc_driver_manager
import pyarrow as pa
import pyarrow.flight as fl
import polars as pl


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


def command_statement_query(sql):
    """google.protobuf.Any{CommandStatementQuery{query}}, encoded by hand: no protobuf module."""
    inner = field(1, sql.encode())
    return field(1, b"type.googleapis.com/arrow.flight.protocol.sql.CommandStatementQuery") + field(2, inner)


def jsonable(v):
    # Floats as repr text: exact, whatever JSON parser the test uses.
    if isinstance(v, float):
        return repr(v)
    return v.isoformat() if hasattr(v, "isoformat") else v


def rows(table):
    return [{k: jsonable(v) for k, v in r.items()} for r in table.to_pylist()]


def main():
    addr, user, password, query, param_query, param = sys.argv[1:7]
    out = {}
    uri = f"grpc://{addr}"

    # ADBC, the driver pandas/polars users reach for.
    with flightsql.connect(uri, db_kwargs={"username": user, "password": password}) as conn:
        with conn.cursor() as cur:
            cur.execute(query)
            table = cur.fetch_arrow_table()
            out["adbc_schema"] = {f.name: str(f.type) for f in table.schema}
            out["adbc_rows"] = rows(table)
            cur.execute(param_query, parameters=(int(param),))
            out["adbc_param_rows"] = rows(cur.fetch_arrow_table())
            # Every column type of the catalog's tables, strings included (DataFusion scans them
            # as Utf8View; the server sends Utf8), read by pyarrow and polars.
            types = {}
            for name in ("bhavcopy", "bhavcopy_quarantine", "price_features", "volatility_features", "bhavstore_runs"):
                cur.execute(f"SELECT * FROM {name} LIMIT 50")
                t = cur.fetch_arrow_table()
                pl.from_arrow(t)
                types[name] = {f.name: str(f.type) for f in t.schema}
            out["column_types"] = types
        objects = conn.adbc_get_objects(depth="all").read_all().to_pylist()
        out["objects"] = [
            {
                "catalog": c["catalog_name"],
                "schemas": [
                    {
                        "schema": s["db_schema_name"],
                        "tables": {
                            t["table_name"]: [col["column_name"] for col in (t["table_columns"] or [])]
                            for t in (s["db_schema_tables"] or [])
                        },
                    }
                    for s in (c["catalog_db_schemas"] or [])
                ],
            }
            for c in objects
        ]
        info = conn.adbc_get_info()
        out["info"] = {k: str(v) for k, v in info.items()}
        try:
            with conn.cursor() as cur:
                cur.execute("CREATE TABLE stolen AS SELECT 1")
                cur.fetchall()
            out["adbc_ddl"] = "accepted"
        except adbc_driver_manager.Error as e:
            out["adbc_ddl"] = str(e)

    # Plain pyarrow.flight: basic auth handshake, then a statement streamed batch by batch.
    client = fl.FlightClient(uri)
    header = client.authenticate_basic_token(user, password)
    options = fl.FlightCallOptions(headers=[header])
    info = client.get_flight_info(fl.FlightDescriptor.for_command(command_statement_query(query)), options)
    reader = client.do_get(info.endpoints[0].ticket, options)
    batches = 0
    collected = []
    for chunk in reader:
        batches += 1
        collected.append(chunk.data)
    table = pa.Table.from_batches(collected, schema=info.schema)
    out["pyarrow_schema_matches_info"] = table.schema.equals(info.schema)
    out["pyarrow_rows"] = rows(table)
    out["pyarrow_batches"] = batches

    try:
        fl.FlightClient(uri).authenticate_basic_token(user, password + "x")
        out["bad_password"] = "accepted"
    except fl.FlightError as e:
        out["bad_password"] = type(e).__name__
    try:
        anon = fl.FlightClient(uri)
        anon.get_flight_info(fl.FlightDescriptor.for_command(command_statement_query("SELECT 1")))
        out["anonymous"] = "accepted"
    except fl.FlightError as e:
        out["anonymous"] = type(e).__name__
    print(json.dumps(out, default=str))


if __name__ == "__main__":
    main()
