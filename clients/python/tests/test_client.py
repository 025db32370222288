"""The bhavstore Python client against a live server.

Server from the environment (defaults: the dev server):
  BHAVSTORE_FLIGHT    grpc://127.0.0.1:55051
  BHAVSTORE_HTTP      http://127.0.0.1:58080
  BHAVSTORE_USER      quant
  BHAVSTORE_PASSWORD  s3cret-pa55
  BHAVSTORE_TOKEN     training-token-1   (a read token: server.tokens)
  BHAVSTORE_WRITE_TOKEN                  (a token with roles: [write]; without it the push /
                                          subscribe round trip is skipped, saying so)

The server must hold the BSE 2015 bhavcopies (2015-01..2015-05) and the shipped feature views.
Expected values are read back with plain SQL over the views and computed here with an
independent as-of merge (pandas.merge_asof), and checked against the REST lookups.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import random
import string
import time

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import bhavstore
from bhavstore import (
    AuthenticationError,
    Client,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    PushRejectedError,
)

FLIGHT = os.environ.get("BHAVSTORE_FLIGHT", "grpc://127.0.0.1:55051")
HTTP = os.environ.get("BHAVSTORE_HTTP", "http://127.0.0.1:58080")
USER = os.environ.get("BHAVSTORE_USER", "quant")
PASSWORD = os.environ.get("BHAVSTORE_PASSWORD", "s3cret-pa55")
TOKEN = os.environ.get("BHAVSTORE_TOKEN", "training-token-1")
WRITE_TOKEN = os.environ.get("BHAVSTORE_WRITE_TOKEN")

IST = "Asia/Kolkata"
CLOSE_TIME = pd.Timedelta(hours=15, minutes=30)  # online.market_close, IST
PUBLISH_TIME = pd.Timedelta(hours=18)  # online.publish_time, IST: when an imported day is available
TTL = pd.Timedelta(days=5)  # price_features.yaml / volatility_features.yaml


def same(a, b) -> bool:
    """Equal as feature values: both missing, or equal floats."""
    a_missing = a is None or (isinstance(a, float) and math.isnan(a))
    b_missing = b is None or (isinstance(b, float) and math.isnan(b))
    if a_missing or b_missing:
        return a_missing and b_missing
    return a == b


@pytest.fixture(scope="module")
def client():
    c = Client(flight=FLIGHT, http=HTTP, username=USER, password=PASSWORD, token=TOKEN)
    try:
        c.sql("SELECT 1")
    except bhavstore.ServiceUnavailableError as e:
        pytest.fail(f"no bhavstore server at {FLIGHT} / {HTTP}: {e}")
    yield c
    c.close()


@pytest.fixture(scope="module")
def history(client):
    """price_features and volatility_features of a few liquid scrips, read with plain SQL."""
    scrips = client.sql(
        "SELECT scrip_code FROM price_features WHERE trade_date = DATE '2015-03-10' AND sma_20 IS NOT NULL "
        "ORDER BY volume_sma_20 DESC LIMIT 12"
    ).column(0).to_pylist()
    assert len(scrips) == 12
    scrips = sorted(set(scrips) | {500325, 511064})
    in_list = ", ".join(str(s) for s in scrips)
    p = client.sql(
        f"SELECT scrip_code, trade_date, close, sma_20, rsi_14 FROM price_features WHERE scrip_code IN ({in_list})"
    ).to_pandas()
    v = client.sql(
        f"SELECT scrip_code, trade_date, atr_14 FROM volatility_features WHERE scrip_code IN ({in_list})"
    ).to_pandas()
    df = p.merge(v, on=["scrip_code", "trade_date"], how="outer")
    day = pd.to_datetime(df["trade_date"]).dt.tz_localize(IST)
    df["close_at"] = (day + CLOSE_TIME).dt.tz_convert("UTC")
    df["available_at"] = (day + PUBLISH_TIME).dt.tz_convert("UTC")
    df["scrip_code"] = df["scrip_code"].astype("int64")
    return scrips, df


def expected_asof(spine: pd.DataFrame, history: pd.DataFrame, rule: str) -> pd.DataFrame:
    """An independent as-of merge: per spine row the newest row of its scrip whose close
    (rule close) or availability (rule available) is at or before the timestamp, NULL when
    there is none or it is older than the ttl (from its close)."""
    key = "close_at" if rule == "close" else "available_at"
    left = spine.reset_index(drop=True).assign(_pos=lambda d: np.arange(len(d)))
    left["_ts"] = pd.to_datetime(left["event_timestamp"], utc=True).astype("datetime64[ns, UTC]")
    right = history.sort_values(key).copy()
    right["_key"] = right[key].astype("datetime64[ns, UTC]")
    merged = pd.merge_asof(
        left.sort_values("_ts"), right, left_on="_ts", right_on="_key", by="scrip_code", direction="backward"
    ).sort_values("_pos")
    stale = merged["close_at"].isna() | (merged["_ts"] - merged["close_at"] > TTL)
    for col in ("close", "sma_20", "rsi_14", "atr_14"):
        merged.loc[stale, col] = np.nan
    merged.loc[stale, "trade_date"] = None
    return merged.reset_index(drop=True)


def make_spine(scrips, n: int, seed: int) -> pd.DataFrame:
    """Shuffled (scrip, time) rows: before the close, between close and publication, evening,
    weekends, before the data, after the ttl, an unknown scrip, and repeats."""
    rng = random.Random(seed)
    days = pd.date_range("2014-12-28", "2015-05-25", freq="D")
    hours = ["09:30", "15:29", "15:30", "16:00", "17:59", "18:00", "20:00", "23:59"]
    rows = []
    for _ in range(n):
        d = rng.choice(days)
        h = rng.choice(hours)
        ts = pd.Timestamp(f"{d.date()} {h}", tz=IST)
        rows.append((rng.choice(scrips + [999999]), ts))
    rows += [(500325, pd.Timestamp("2015-03-10 16:00", tz=IST))] * 3  # README's example, repeated
    rng.shuffle(rows)
    spine = pd.DataFrame(rows, columns=["scrip_code", "event_timestamp"])
    spine["event_timestamp"] = spine["event_timestamp"].dt.tz_convert("UTC")
    spine["label"] = [rng.random() for _ in range(len(spine))]
    return spine


# ---------------------------------------------------------------------------- registry, SQL


def test_list_feature_views(client):
    views = {v.name: v for v in client.list_feature_views()}
    assert {"price_features", "volatility_features"} <= set(views)
    p = views["price_features"]
    assert (p.entity, p.event_time) == ("scrip_code", "trade_date")
    assert "sma_20" in p.features and "close" in p.features
    assert "scrip_code" not in p.features and "trade_date" not in p.features
    # The feature list is the view's columns without its keys, in the view's order.
    cols = client.sql(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'price_features' ORDER BY ordinal_position"
    ).column(0).to_pylist()
    assert list(p.features) == [c for c in cols if c not in ("scrip_code", "trade_date")]
    assert views["volatility_features"].features[:2] == ("std_20", "volatility_20")
    current = {
        r["view"]: r["version"]
        for r in client.sql('SELECT "view", version FROM bhavstore_versions WHERE is_current').to_pylist()
    }
    for name, v in views.items():
        assert v.version == current.get(name)
    assert client.get_feature_view("price_features") == p
    with pytest.raises(NotFoundError) as e:
        client.get_feature_view("no_such_view")
    assert e.value.code == "unknown_view" and "no_such_view" in e.value.message


def test_sql_returns_arrow(client):
    t = client.sql("SELECT trade_date, close FROM bhavcopy WHERE scrip_code = ? ORDER BY trade_date", [500325])
    assert isinstance(t, pa.Table)
    assert t.column_names == ["trade_date", "close"]
    n = client.sql("SELECT count(*) AS n FROM bhavcopy WHERE scrip_code = 500325").column(0)[0].as_py()
    sessions = client.sql("SELECT count(DISTINCT trade_date) FROM bhavcopy").column(0)[0].as_py()
    assert t.num_rows == n == sessions > 20  # 500325 (Reliance) traded every session
    dates = t.column("trade_date").to_pylist()
    assert dates == sorted(dates) and len(set(dates)) == len(dates)
    assert dates[0] >= dt.date(2015, 1, 1) and dates[-1] <= dt.date(2015, 5, 31)
    assert pa.types.is_date32(t.schema.field("trade_date").type)
    with pytest.raises(InvalidRequestError) as e:
        client.sql("SELEC 1")
    assert e.value.status == "INVALID_ARGUMENT" and e.value.protocol == "flight"
    with pytest.raises(NotFoundError):
        client.sql("SELECT * FROM no_such_table")


# ---------------------------------------------------------------------------- training sets


@pytest.mark.parametrize("rule", ["available", "close"])
def test_historical_features_equal_sql_asof(client, history, rule):
    scrips, hist = history
    spine = make_spine(scrips, 400, seed=7 if rule == "close" else 11)
    spine.index = pd.Index(range(1000, 1000 + len(spine)))  # a non-default index is kept
    out = client.get_historical_features(
        spine,
        ["price_features:sma_20", "price_features:close", "volatility_features:atr_14", "price_features:rsi_14"],
        rule=rule,
        include_feature_timestamps=True,
    )
    assert isinstance(out, pd.DataFrame)
    # The spine's rows in the spine's order, its columns first, then one column per feature.
    assert list(out.index) == list(spine.index)
    assert list(out.columns) == [
        "scrip_code", "event_timestamp", "label",
        "price_features__feature_trade_date", "price_features__feature_event_time",
        "volatility_features__feature_trade_date", "volatility_features__feature_event_time",
        "sma_20", "close", "atr_14", "rsi_14",
    ]
    pd.testing.assert_frame_equal(out[["scrip_code", "event_timestamp", "label"]], spine)
    exp = expected_asof(spine, hist, rule)
    got_dates = out["price_features__feature_trade_date"].tolist()
    mismatches = []
    for i in range(len(spine)):
        e = exp.iloc[i]
        want_date = e["trade_date"] if isinstance(e["trade_date"], dt.date) else None
        if got_dates[i] != want_date:
            mismatches.append((i, spine.iloc[i].tolist(), "trade_date", got_dates[i], want_date))
        for col in ("sma_20", "close", "atr_14", "rsi_14"):
            if not same(out[col].iloc[i], e[col]):
                mismatches.append((i, spine.iloc[i].tolist(), col, out[col].iloc[i], e[col]))
    assert not mismatches, mismatches[:10]
    # Not vacuous: most rows have values, some are NULL (before the data, past the ttl, unknown scrip).
    assert out["close"].notna().sum() > 200
    assert out["close"].isna().sum() > 10
    # README's example: at 2015-03-10 16:00 IST "available" answers 2015-03-09, "close" 2015-03-10.
    readme = out[(out["scrip_code"] == 500325) & (out["event_timestamp"] == pd.Timestamp("2015-03-10 10:30", tz="UTC"))]
    assert len(readme) == 3
    want = dt.date(2015, 3, 9) if rule == "available" else dt.date(2015, 3, 10)
    assert set(readme["price_features__feature_trade_date"]) == {want}


def test_historical_features_equal_rest_lookups(client, history):
    """The training set (features_asof over Flight) and the online store (REST) agree."""
    scrips, _ = history
    spine = make_spine(scrips[:5], 30, seed=3)
    spine = spine[spine["event_timestamp"] >= pd.Timestamp("2015-01-05", tz="UTC")]
    for rule in ("available", "close"):
        out = client.get_historical_features(spine, ["price_features:sma_20", "volatility_features:atr_14"], rule=rule)
        checked = 0
        for row in out.itertuples():
            for feature, got in (("sma_20", row.sma_20), ("atr_14", row.atr_14)):
                try:
                    r = client.lookup(row.scrip_code, feature, row.event_timestamp.to_pydatetime(), rule=rule)
                    want = r["value"]
                    assert r["rule"] == rule
                except NotFoundError as e:
                    assert e.code in ("unknown_entity", "no_value", "stale_value", "before_online_history"), e
                    want = None
                assert same(got, want), (rule, row, feature, got, want)
                checked += want is not None
        assert checked > 10


def test_historical_features_order_and_formats(client, history):
    scrips, hist = history
    spine = make_spine(scrips, 3000, seed=5)  # many upload batches: order must survive
    shuffled = spine.sample(frac=1.0, random_state=1).reset_index(drop=True)
    a = client.get_historical_features(shuffled, ["price_features:close"], rule="close")
    exp = expected_asof(shuffled, hist, "close")
    assert all(same(x, y) for x, y in zip(a["close"], exp["close"]))

    # polars in, polars out; Arrow in, Arrow out (on request); the same values.
    pl = pytest.importorskip("polars")
    p_out = client.get_historical_features(pl.from_pandas(shuffled), ["price_features:close"], rule="close")
    assert isinstance(p_out, pl.DataFrame)
    assert p_out.columns == ["scrip_code", "event_timestamp", "label", "close"]
    assert all(same(x, y) for x, y in zip(p_out["close"].to_list(), a["close"]))
    arrow_in = pa.Table.from_pandas(shuffled, preserve_index=False)
    t = client.get_historical_features(arrow_in, ["price_features:close"], rule="close", output="arrow")
    assert isinstance(t, pa.Table) and t.num_rows == len(shuffled)
    assert t.column("scrip_code").to_pylist() == shuffled["scrip_code"].tolist()
    assert all(same(x, y) for x, y in zip(t.column("close").to_pylist(), a["close"]))
    pd_from_arrow = client.get_historical_features(arrow_in, ["price_features:close"], rule="close")
    assert isinstance(pd_from_arrow, pd.DataFrame)

    # Naive timestamps are UTC; string entity codes are read as scrip codes.
    naive = shuffled.assign(
        event_timestamp=shuffled["event_timestamp"].dt.tz_localize(None), scrip_code=shuffled["scrip_code"].astype(str)
    )
    n_out = client.get_historical_features(naive, ["price_features:close"], rule="close")
    assert all(same(x, y) for x, y in zip(n_out["close"], a["close"]))

    # An empty spine gives an empty frame with the feature column.
    empty = client.get_historical_features(shuffled.iloc[:0], ["price_features:close"])
    assert len(empty) == 0 and "close" in empty.columns


def test_historical_features_shared_names(client):
    """Two views with the same feature name: those columns are named view__feature."""
    spine = pd.DataFrame(
        {
            "scrip_code": [500325, 500002],
            "instrument": ["NSE:NOSUCH", "NSE:NOSUCH"],
            # 16:30 IST: after the close, before the 18:00 publication: the previous session.
            "event_timestamp": pd.to_datetime(["2015-03-10 11:00", "2015-03-12 11:00"], utc=True),
        }
    )
    out = client.get_historical_features(spine, ["price_features:close", "intraday_features:close", "price_features:sma_5"])
    assert list(out.columns)[3:] == ["price_features__close", "intraday_features__close", "sma_5"]
    want = client.sql(
        "SELECT close FROM price_features WHERE (scrip_code = 500325 AND trade_date = DATE '2015-03-09') "
        "OR (scrip_code = 500002 AND trade_date = DATE '2015-03-11') ORDER BY scrip_code DESC"
    ).column(0).to_pylist()
    assert out["price_features__close"].tolist() == want
    assert out["intraday_features__close"].isna().all()
    full = client.get_historical_features(spine.drop(columns="instrument"), ["price_features:close"], full_feature_names=True)
    assert list(full.columns)[-1] == "price_features__close"


def test_historical_features_errors(client):
    spine = pd.DataFrame({"scrip_code": [500325], "event_timestamp": [pd.Timestamp("2015-03-10", tz="UTC")]})
    with pytest.raises(NotFoundError) as e:
        client.get_historical_features(spine, ["price_features:sma_20", "price_features:no_such_feature"])
    assert e.value.code == "unknown_feature"
    assert "no_such_feature" in str(e.value) and "price_features" in str(e.value)
    with pytest.raises(NotFoundError) as e:
        client.get_historical_features(spine, ["no_such_view:sma_20"])
    assert e.value.code == "unknown_view" and "no_such_view" in e.value.message
    with pytest.raises(InvalidRequestError) as e:
        client.get_historical_features(spine, ["sma_20"])
    assert "view:feature" in e.value.message
    with pytest.raises(InvalidRequestError) as e:
        client.get_historical_features(spine.rename(columns={"event_timestamp": "ts"}), ["price_features:sma_20"])
    assert "event_timestamp" in e.value.message
    with pytest.raises(InvalidRequestError) as e:
        client.get_historical_features(spine.rename(columns={"scrip_code": "code"}), ["price_features:sma_20"])
    assert "scrip_code" in e.value.message
    with pytest.raises(InvalidRequestError):
        client.get_historical_features(spine, ["price_features:sma_20"], rule="later")
    # The server's own answer to an unknown view in features_asof maps to NotFoundError too.
    with pytest.raises(NotFoundError) as e:
        client.sql("SELECT * FROM features_asof('no_such_view', 'SELECT 1, 2')")
    assert e.value.code == "unknown_view" and e.value.protocol == "flight"


# ---------------------------------------------------------------------------- online


def test_online_features_match_rest_lookup(client):
    ts = dt.datetime(2015, 3, 12, 14, 0, tzinfo=dt.timezone.utc)
    rows = [{"scrip_code": 500325}, {"scrip_code": 500002}, {"scrip_code": 511064}, {"scrip_code": 999999}]
    feats = ["price_features:sma_20", "price_features:close", "volatility_features:atr_14"]
    resp = client.get_online_features(features=feats, entity_rows=rows, timestamp=ts)
    d = resp.to_dict(include_event_timestamps=True)
    assert d["scrip_code"] == [500325, 500002, 511064, 999999]
    for i, r in enumerate(rows[:3]):
        for f in ("sma_20", "close", "atr_14"):
            one = client.lookup(r["scrip_code"], f, ts)
            assert same(d[f][i], one["value"]), (r, f)
            assert d[f"{f}__ts"][i] == one["timestamp"]
            assert one["trade_date"] == "2015-03-12"  # 14:00 UTC is after 18:00 IST publication
    # ... and equal to plain SQL.
    sql_close = client.sql(
        "SELECT close FROM price_features WHERE scrip_code = 511064 AND trade_date = DATE '2015-03-12'"
    ).column(0)[0].as_py()
    assert d["close"][2] == sql_close == 46.9
    assert resp.errors[3] == {"price_features": "unknown_entity", "volatility_features": "unknown_entity"}
    assert resp.errors[0] == {} and d["close"][3] is None
    assert resp.metadata["price_features"]["version"] == client.get_feature_view("price_features").version
    df = resp.to_df()
    assert list(df.columns) == ["scrip_code", "sma_20", "close", "atr_14"] and len(df) == 4
    assert resp.to_arrow().num_rows == 4
    # (entity_rows, features) in the order is accepted too; "close" rule answers later rows.
    a = client.get_online_features(rows[:1], ["price_features:close"], timestamp="2015-03-10T10:30:00Z").to_dict()
    c = client.get_online_features(rows[:1], ["price_features:close"], timestamp="2015-03-10T10:30:00Z", rule="close").to_dict()
    assert (a["close"], c["close"]) == ([868.65], [859.1])  # 2015-03-09 vs 2015-03-10
    # As of now the 2015 values are older than the ttl: no value, a reason.
    now = client.get_online_features(["price_features:close"], rows[:1])
    assert now.to_dict()["close"] == [None] and now.errors[0]["price_features"] == "stale_value"


def test_online_features_unknown_feature(client):
    with pytest.raises(NotFoundError) as e:
        client.get_online_features(["price_features:no_such_feature"], [{"scrip_code": 500325}])
    assert e.value.code == "unknown_feature" and "no_such_feature" in e.value.message
    with pytest.raises(NotFoundError) as e:  # the server's answer, not the client's check
        client.lookup(500325, "no_such_feature", "2015-03-10T12:00:00Z")
    assert (e.value.code, e.value.status, e.value.protocol) == ("unknown_feature", 404, "http")


# ---------------------------------------------------------------------------- lineage, runs, ingest


def test_lineage_names_the_raw_file(client):
    lin = client.lineage("price_features", 511064, "2015-03-12")
    assert lin["feature_view"] == "price_features"
    assert lin["version"] == client.get_feature_view("price_features").version
    inputs = {i["trade_date"]: i for i in lin["inputs"]}
    day = inputs["2015-03-12"]
    raw = client.sql(
        "SELECT raw_sha256, source_line FROM bhavcopy WHERE scrip_code = 511064 AND trade_date = DATE '2015-03-12'"
    ).to_pylist()[0]
    assert day["raw_sha256"] == raw["raw_sha256"] and len(day["raw_sha256"]) == 64
    assert day["source_line"] == raw["source_line"]
    assert day["raw_key"].startswith("raw/bse/equity/2015/03/12/") and day["raw_key"].upper().endswith(".CSV")
    # The 10:1 split of 2015-03-11 is named, and earlier days are adjusted by it.
    assert any(a["ex_session"] == "2015-03-11" for a in lin["corporate_actions"])
    assert inputs["2015-03-12"]["adj_factor"] / inputs["2015-03-10"]["adj_factor"] == pytest.approx(10)
    # The SQL table function agrees.
    t = client.sql("SELECT trade_date, raw_key FROM lineage('price_features', 511064, '2015-03-12')").to_pylist()
    assert {str(r["trade_date"]): r["raw_key"] for r in t} == {k: v["raw_key"] for k, v in inputs.items()}
    with pytest.raises(NotFoundError):
        client.lineage("price_features", 999999, "2015-03-12")


def test_runs_ingest_health(client):
    with pytest.raises(NotFoundError) as e:
        client.run("no-such-run")
    assert e.value.code == "unknown_run"
    with pytest.raises(InvalidRequestError) as e:
        client.ingest("price_features", "not-a-date")
    assert e.value.code == "bad_data_source" and e.value.status == 400
    with pytest.raises(NotFoundError) as e:
        client.ingest("no_such_view", "2015-03-02")
    assert e.value.code == "unknown_view"
    h = client.health()
    assert h["status"] == "ok"


# ---------------------------------------------------------------------------- credentials


def test_wrong_password(client):
    bad = Client(flight=FLIGHT, http=HTTP, username=USER, password=PASSWORD + "-wrong")
    with pytest.raises(AuthenticationError) as e:
        bad.sql("SELECT 1")
    assert e.value.status == "UNAUTHENTICATED" and e.value.protocol == "flight"
    with pytest.raises(AuthenticationError):
        bad.get_historical_features(
            pd.DataFrame({"scrip_code": [500325], "event_timestamp": [pd.Timestamp("2015-03-10", tz="UTC")]}),
            ["price_features:close"],
        )
    bad.close()


def test_wrong_token(client):
    bad = Client(flight=FLIGHT, http=HTTP, token="not-a-token")
    with pytest.raises(AuthenticationError) as e:
        bad.lookup(500325, "close", "2015-03-10T12:00:00Z")
    assert (e.value.status, e.value.code) == (401, "unauthorized")
    with pytest.raises(AuthenticationError):
        bad.get_online_features(["price_features:close"], [{"scrip_code": 500325}], timestamp="2015-03-10T12:00:00Z")
    with pytest.raises(AuthenticationError):
        bad.lineage("price_features", 511064, "2015-03-12")
    with pytest.raises(AuthenticationError):  # a bearer token over Flight SQL too
        bad.sql("SELECT 1")
    with pytest.raises(AuthenticationError):
        bad.subscribe("intraday_features")
    bad.close()
    good = Client(flight=FLIGHT, token=TOKEN)  # the right token works over Flight SQL
    assert good.sql("SELECT 1 AS x").column(0).to_pylist() == [1]
    good.close()


# ---------------------------------------------------------------------------- real time


def _bars(instrument: str, n: int, start: str = "2026-07-14 09:15") -> pd.DataFrame:
    rng = np.random.default_rng(42)
    close = 1000 + np.cumsum(rng.normal(0, 2, n)).round(2)
    open_ = np.concatenate([[1000.0], close[:-1]])
    high = (np.maximum(open_, close) + rng.uniform(0, 1, n)).round(2)
    low = (np.minimum(open_, close) - rng.uniform(0, 1, n)).round(2)
    return pd.DataFrame(
        {
            "instrument": instrument,
            "ts": pd.date_range(start, periods=n, freq="1min", tz=IST),
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": rng.integers(100, 10_000, n),
        }
    )


def test_push_without_write_role():
    """A read-only token cannot push (the bar is invalid anyway, so nothing is ever stored)."""
    c = Client(http=HTTP, token=TOKEN)
    bar = [{"instrument": "NSE:PYCLIENT", "ts": "2026-07-14T09:15:00+05:30", "open": 1, "high": 1, "low": 2, "close": 1, "volume": 1}]
    try:
        c.push(bar)
    except PermissionDeniedError as e:
        assert e.code == "write_role_required" and e.status == 403
    except PushRejectedError:
        pytest.skip(f"BHAVSTORE_TOKEN has the write role (or the server has no tokens): nothing to refuse")
    else:
        pytest.fail("an invalid bar was accepted")
    finally:
        c.close()


@pytest.mark.skipif(
    not WRITE_TOKEN,
    reason="push/subscribe need BHAVSTORE_WRITE_TOKEN, a token with the write role "
    "(server.tokens: [{token: ..., roles: [write]}]); the server needs no other intraday config",
)
def test_push_subscribe_online_historical():
    c = Client(flight=FLIGHT, http=HTTP, username=USER, password=PASSWORD, token=WRITE_TOKEN)
    instrument = "NSE:PY" + "".join(random.choices(string.ascii_uppercase, k=8))
    bars = _bars(instrument, 20)
    with c.subscribe("intraday_features", [instrument], timeout=20) as sub:
        assert sub.subscribed["entity_ids"] == [instrument]
        res = c.push(bars)
        assert (res["status"], res["accepted"], res["new"], res["rejected"]) == ("ok", 20, 20, [])
        rows = sub.take(20)
    assert len(rows) == 20
    assert [r["entity_id"] for r in rows] == [instrument] * 20
    # Independent computation of the streamed values.
    typical = (bars["high"] + bars["low"] + bars["close"]) / 3
    vwap = (typical * bars["volume"]).cumsum() / bars["volume"].cumsum()
    for i, r in enumerate(rows):
        assert pd.Timestamp(r["ts"]) == bars["ts"][i]
        v = r["values"]
        assert v["close"] == bars["close"][i]
        assert v["session_high"] == bars["high"][: i + 1].max()
        assert v["session_low"] == bars["low"][: i + 1].min()
        assert v["vwap_session"] == pytest.approx(vwap[i], rel=1e-12)
        assert v["session_return"] == pytest.approx(bars["close"][i] / bars["open"][0] - 1, rel=1e-12)
        if i == 0:
            assert v["return_1m"] is None
        else:
            assert v["return_1m"] == pytest.approx(bars["close"][i] / bars["close"][i - 1] - 1, rel=1e-12)
    # Pushed again: duplicates; one bad row among good ones: partial, the bad one named.
    again = c.push(bars)
    assert (again["duplicates"], again["new"]) == (20, 0)
    extra = _bars(instrument, 2, start="2026-07-14 09:35")
    extra.loc[1, "low"] = extra.loc[1, "high"] + 5
    part = c.push(extra)
    assert part["status"] == "partial" and part["accepted"] == 1
    assert [r["index"] for r in part["rejected"]] == [1] and "low" in part["rejected"][0]["reason"]
    # The bars are served over SQL, online and in training sets with the same values.
    n = c.sql("SELECT count(*) FROM intraday_bars WHERE instrument = ?", [instrument]).column(0)[0].as_py()
    assert n == 21
    at = bars["ts"][19] + pd.Timedelta(minutes=1)  # the 09:34 bar is known from 09:35
    online = c.get_online_features(["intraday_features:vwap_session", "intraday_features:close"], [{"instrument": instrument}], timestamp=at)
    assert online.to_dict()["vwap_session"] == [rows[19]["values"]["vwap_session"]]
    spine = pd.DataFrame({"instrument": [instrument] * 3, "event_timestamp": [at, bars["ts"][5] + pd.Timedelta(seconds=59), bars["ts"][0]]})
    hist = c.get_historical_features(spine, ["intraday_features:vwap_session", "intraday_features:close"])
    assert hist["vwap_session"][0] == rows[19]["values"]["vwap_session"]
    assert hist["close"][1] == rows[4]["values"]["close"]  # 09:20 bar not known until 09:21
    assert math.isnan(hist["close"][2])  # the first bar is not known at its own start
    # A subscription with nothing to say ends after its timeout.
    t0 = time.monotonic()
    with c.subscribe("intraday_features", [instrument + "X"], timeout=1.5) as quiet:
        assert list(quiet) == []
    assert time.monotonic() - t0 < 10
    with pytest.raises(PushRejectedError) as e:
        c.push(extra.assign(low=extra["high"] + 1))
    assert len(e.value.details["rejected"]) == 2
    c.close()


def test_subscribe_checks_the_view(client):
    with pytest.raises(NotFoundError) as e:
        client.subscribe("price_features", ["500325"], timeout=5)
    assert e.value.code == "unknown_view" and "price_features" in e.value.message
    with client.subscribe("intraday_features", ["NSE:NOSUCH"], timeout=1) as sub:
        assert sub.subscribed == {"entity_ids": ["NSE:NOSUCH"], "view": "intraday_features"}
        assert sub.take(1) == []
