"""Flight SQL bulk ingest into intraday_bars with the ADBC driver, as a live system would send
bars: `cursor.adbc_ingest("intraday_bars", table, mode="append")`. Prints one JSON document:
{"rows": n} (what the server reports stored) or {"error": message}.

usage: flight_ingest.py HOST:PORT USER PASSWORD INSTRUMENT N_BARS [MODE]
(USER "-" connects without credentials)
"""

import datetime as dt
import json
import sys

import adbc_driver_flightsql.dbapi as flightsql
import pyarrow as pa


def main():
    addr, user, password, instrument, n = sys.argv[1:6]
    mode = sys.argv[6] if len(sys.argv) > 6 else "append"
    n = int(n)
    kwargs = {}
    if user != "-":
        kwargs["db_kwargs"] = {"username": user, "password": password}
    start = dt.datetime(2026, 7, 14, 9, 15, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30)))
    ts = [start + dt.timedelta(minutes=i) for i in range(n)]
    close = [100.0 + i * 0.05 for i in range(n)]
    table = pa.table(
        {
            "instrument": pa.array([instrument] * n, pa.string()),
            "ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
            "open": pa.array(close, pa.float64()),
            "high": pa.array([c + 0.1 for c in close], pa.float64()),
            "low": pa.array([c - 0.1 for c in close], pa.float64()),
            "close": pa.array(close, pa.float64()),
            "volume": pa.array([1000 + i for i in range(n)], pa.int64()),
        }
    )
    try:
        with flightsql.connect(f"grpc://{addr}", **kwargs) as conn:
            with conn.cursor() as cur:
                rows = cur.adbc_ingest("intraday_bars", table, mode=mode)
            conn.commit()
        print(json.dumps({"rows": rows}))
    except Exception as e:  # noqa: BLE001 - the test asserts on the message
        print(json.dumps({"error": str(e)}))


if __name__ == "__main__":
    main()
