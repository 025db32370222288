"""A training job's view of bhavstore: upload an (entity, timestamp) spine over Flight SQL bulk
ingestion into the session's temporary catalog, then pull point-in-time features for it with
features_asof. Prints one JSON document for tests/tests/serving.rs.

usage: flight_training.py HOST:PORT USER PASSWORD SPINE.json
"""

import datetime as dt
import json
import sys

import adbc_driver_flightsql.dbapi as flightsql
import adbc_driver_manager
import pyarrow as pa

QUERY = (
    "SELECT entity, ts, feature_trade_date, sma_20 "
    "FROM features_asof('price_features', 'SELECT entity, ts FROM temp.public.spine')"
)


def main():
    addr, user, password, spine_path = sys.argv[1:5]
    with open(spine_path) as f:
        spine = json.load(f)
    table = pa.table(
        {
            "entity": pa.array([r[0] for r in spine], pa.int64()),
            "ts": pa.array([dt.datetime.fromisoformat(r[1]) for r in spine], pa.timestamp("us", tz="UTC")),
        }
    )
    # Many small batches, as a big upload arrives: the result must still keep spine order.
    table = pa.Table.from_batches(table.to_batches(max_chunksize=17))
    out = {}
    kwargs = {"username": user, "password": password}
    with flightsql.connect(f"grpc://{addr}", db_kwargs=kwargs) as conn:
        with conn.cursor() as cur:
            out["ingested"] = cur.adbc_ingest("spine", table, mode="create", temporary=True)
            cur.execute(QUERY)
            result = cur.fetch_arrow_table()
            # Floats as repr text: exact, whatever JSON parser the test uses.
            out["rows"] = [
                {k: repr(v) if isinstance(v, float) else (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in r.items()}
                for r in result.to_pylist()
            ]
            try:
                cur.adbc_ingest("kept", table, mode="create", temporary=False)
                out["persistent"] = "accepted"
            except adbc_driver_manager.Error as e:
                out["persistent"] = str(e)
    # Another connection is another session: it does not see the upload.
    with flightsql.connect(f"grpc://{addr}", db_kwargs=kwargs) as other:
        try:
            with other.cursor() as cur:
                cur.execute("SELECT count(*) FROM temp.public.spine")
                cur.fetchall()
            out["other_session"] = "visible"
        except adbc_driver_manager.Error as e:
            out["other_session"] = str(e)
    print(json.dumps(out, default=str))


if __name__ == "__main__":
    main()
