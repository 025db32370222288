"""Python Postgres client matrix for bhavstore's Postgres wire endpoint.

Drives the clients people already use (SQLAlchemy 2 with psycopg2 and psycopg 3, pandas,
asyncpg, polars with connectorx / ADBC / SQLAlchemy, psycopg 3 and psycopg2 directly, and
pgcli's metadata layer) the way their users drive them, and asserts on what comes back:
values compared with the same value read by a plain psycopg 3 query, column names, Python
types.

Every check is independent (its own connection). Each prints `ok <name>` or
`FAIL <name>: <first line of the error>`; the last line is a JSON summary
`{"passed": [...], "failed": {name: error}}`. Exit status 1 if anything failed.

usage: python3 pg_matrix.py [NAME_SUBSTRING ...]   (runs only checks whose name contains one)
env:   BHAVSTORE_PG_HOST (127.0.0.1), BHAVSTORE_PG_PORT (55432), BHAVSTORE_PG_USER (quant),
       BHAVSTORE_PG_PASSWORD (s3cret-pa55), BHAVSTORE_PG_DATABASE (bhavstore),
       BHAVSTORE_MATRIX_TIMEOUT (seconds per check, 120),
       BHAVSTORE_MATRIX_TRACEBACK=1 (print tracebacks to stderr),
       BHAVSTORE_MATRIX_PATCH_VERSION=1 (diagnostics only: make SQLAlchemy skip version() parsing,
       to see what its reflection fails on next)
Each check's start time (UTC) goes to stderr, to find its statements in the server log.
"""

import asyncio
import datetime as dt
import io
import json
import os
import re
import signal
import sys
import traceback
import warnings
from decimal import Decimal
from urllib.parse import quote

HOST = os.environ.get("BHAVSTORE_PG_HOST", "127.0.0.1")
PORT = int(os.environ.get("BHAVSTORE_PG_PORT", "55432"))
USER = os.environ.get("BHAVSTORE_PG_USER", "quant")
PASSWORD = os.environ.get("BHAVSTORE_PG_PASSWORD", "s3cret-pa55")
DATABASE = os.environ.get("BHAVSTORE_PG_DATABASE", "bhavstore")
TIMEOUT = int(os.environ.get("BHAVSTORE_MATRIX_TIMEOUT", "120"))

DSN = f"host={HOST} port={PORT} user={USER} password={PASSWORD} dbname={DATABASE} connect_timeout=10"
URI = f"postgresql://{quote(USER)}:{quote(PASSWORD, safe='')}@{HOST}:{PORT}/{DATABASE}"
SA_URLS = {
    "psycopg2": f"postgresql+psycopg2://{quote(USER)}:{quote(PASSWORD, safe='')}@{HOST}:{PORT}/{DATABASE}",
    "psycopg": f"postgresql+psycopg://{quote(USER)}:{quote(PASSWORD, safe='')}@{HOST}:{PORT}/{DATABASE}",
}

SCRIP = 500002
DAY = dt.date(2015, 2, 2)
# The SQLAlchemy PostgreSQL dialect's version regex (sqlalchemy/dialects/postgresql/base.py).
SA_VERSION_RE = re.compile(r".*(?:PostgreSQL|EnterpriseDB) (\d+)\.?(\d+)?(?:\.(\d+))?(?:\.\d+)?(?:devel|beta)?")

warnings.filterwarnings("ignore")

CHECKS = []


def check(name):
    def register(fn):
        CHECKS.append((name, fn))
        return fn

    return register


def eq(actual, expected, what=""):
    if actual != expected:
        raise AssertionError(f"{what}: expected {expected!r}, got {actual!r}")


def is_type(value, typ, what=""):
    # bool is an int subclass; a count must be a real int.
    if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
        raise AssertionError(f"{what}: expected {typ.__name__}, got {type(value).__name__} ({value!r})")


class Soft:
    """Collects failures of independent sub-assertions so one check reports all of them."""

    def __init__(self):
        self.errors = []

    def __call__(self, what, fn, *args):
        try:
            return fn(*args)
        except Exception as e:  # noqa: BLE001
            first = (str(e).strip().splitlines() or [""])[0]
            self.errors.append(f"[{what}] {type(e).__name__}: {first}" if not isinstance(e, AssertionError) else first)

    def done(self):
        if self.errors:
            raise AssertionError(" | ".join(self.errors))


def close_enough(a, b, what=""):
    if a is None or b is None or abs(float(a) - float(b)) > 1e-9 * max(1.0, abs(float(b))):
        raise AssertionError(f"{what}: expected {b!r}, got {a!r}")


# ---------------------------------------------------------------------------------------------
# Baseline: the same values read with a plain psycopg 3 query (simple query protocol, text).


class _Baseline:
    _done = False

    def load(self):
        if self._done:
            return self
        import psycopg

        with psycopg.connect(DSN, autocommit=True) as conn:
            q = conn.execute
            self.count_all = q("select count(*) from bhavcopy").fetchone()[0]
            self.count_day = q(f"select count(*) from bhavcopy where trade_date = '{DAY}'").fetchone()[0]
            self.close_day = q(
                f"select close from bhavcopy where scrip_code = {SCRIP} and trade_date = '{DAY}'"
            ).fetchone()[0]
            self.max_close = q("select max(close) from bhavcopy").fetchone()[0]
            self.rows_scrip = q(
                f"select trade_date, close from bhavcopy where scrip_code = {SCRIP} order by trade_date"
            ).fetchall()
            self.pf_scrip = q(
                f"select scrip_code, trade_date, close, sma_20 from price_features where scrip_code = {SCRIP} "
                "order by trade_date"
            ).fetchall()
            cur = q("select * from price_features limit 0")
            self.pf_columns = [d.name for d in cur.description]
            self.count_pf = q("select count(*) from price_features").fetchone()[0]
            self.calendar = q("select * from trading_calendar order by date").fetchall()
            cur = q("select * from trading_calendar limit 0")
            self.calendar_columns = [d.name for d in cur.description]
            self.source_line = q(
                f"select source_line from bhavcopy where scrip_code = {SCRIP} and trade_date = '{DAY}'"
            ).fetchone()[0]
        assert self.count_all > 0 and self.count_day > 0 and self.rows_scrip and self.pf_scrip
        self._done = True
        return self


BASE = _Baseline()

SCRIP_DAY_SQL = "select close from bhavcopy where scrip_code = {p} and trade_date = {d}"
PF_SCRIP_SQL = (
    f"select scrip_code, trade_date, close, sma_20 from price_features where scrip_code = {SCRIP} order by trade_date"
)


def check_pf_frame(rows, what):
    """rows: list of (scrip_code, trade_date, close, sma_20) from any client."""
    b = BASE.load().pf_scrip
    eq(len(rows), len(b), f"{what} row count")
    for got, exp in zip(rows, b):
        eq(int(got[0]), exp[0], f"{what} scrip_code")
        d = got[1]
        if hasattr(d, "date") and callable(d.date):  # pandas Timestamp / datetime
            d = d.date()
        eq(d, exp[1], f"{what} trade_date")
        close_enough(got[2], exp[2], f"{what} close")
        if exp[3] is None:
            if not (got[3] is None or got[3] != got[3]):
                raise AssertionError(f"{what} sma_20: expected NULL, got {got[3]!r}")
        else:
            close_enough(got[3], exp[3], f"{what} sma_20")


# ---------------------------------------------------------------------------------------------
# 7. version


@check("version_sqlalchemy_regex")
def _():
    import psycopg

    with psycopg.connect(DSN, autocommit=True) as conn:
        v = conn.execute("select pg_catalog.version()").fetchone()[0]
        if not v.startswith("PostgreSQL "):
            raise AssertionError(f"version() must start with 'PostgreSQL <major>.<minor>', got {v!r}")
        m = SA_VERSION_RE.match(v)
        if not m:
            raise AssertionError(f"SQLAlchemy cannot parse version() {v!r}")
        major = int(m.group(1))
        if major < 12:
            raise AssertionError(f"version() major {major} too old for clients' feature checks")


@check("version_show_server_version_consistent")
def _():
    import psycopg

    with psycopg.connect(DSN, autocommit=True) as conn:
        v = conn.execute("select version()").fetchone()[0]
        sv = conn.execute("show server_version").fetchone()[0]
        param = conn.info.parameter_status("server_version")
        param = param.decode() if isinstance(param, bytes) else param
        num = conn.execute("show server_version_num").fetchone()[0]
        if not re.match(r"^\d+\.\d+", sv):
            raise AssertionError(f"show server_version must be like '16.4', got {sv!r}")
        eq(param, sv, "ParameterStatus server_version vs show server_version")
        if not v.startswith(f"PostgreSQL {sv.split()[0]}"):
            raise AssertionError(f"version() {v!r} does not start with 'PostgreSQL {sv}'")
        major, minor = sv.split()[0].split(".")[:2]
        eq(int(num), int(major) * 10000 + int(minor), "server_version_num")
        eq(conn.info.server_version, int(num), "libpq server_version")


# ---------------------------------------------------------------------------------------------
# 1. SQLAlchemy 2, both dialects


def sa_engine(dialect):
    from sqlalchemy import create_engine

    if os.environ.get("BHAVSTORE_MATRIX_PATCH_VERSION"):
        # Diagnostics only: get past version() parsing to see what fails next.
        from sqlalchemy.dialects.postgresql.base import PGDialect

        PGDialect._get_server_version_info = lambda self, conn: (16, 4)

    return create_engine(SA_URLS[dialect], pool_pre_ping=False)


def sa_checks(d):
    @check(f"sqlalchemy_{d}_connect_execute")
    def _():
        from sqlalchemy import text

        eng = sa_engine(d)
        with eng.connect() as conn:
            n = conn.execute(text("select count(*) from bhavcopy")).scalar_one()
            is_type(n, int, "count(*)")
            eq(n, BASE.load().count_all, "count(*)")
            info = eng.dialect.server_version_info
            if not info or info[0] < 12:
                raise AssertionError(f"server_version_info {info!r}")
            eq(conn.execute(text("select current_schema()")).scalar_one(), "public", "current_schema()")
        eng.dispose()

    @check(f"sqlalchemy_{d}_bound_params")
    def _():
        from sqlalchemy import text

        eng = sa_engine(d)
        with eng.connect() as conn:
            r = conn.execute(
                text("select close from bhavcopy where scrip_code = :p and trade_date = :d"),
                {"p": SCRIP, "d": DAY},
            ).scalar_one()
            close_enough(r, BASE.load().close_day, "close")
            is_type(r, float, "close")
            rows = conn.execute(
                text("select trade_date, close from bhavcopy where scrip_code = :p order by trade_date"), {"p": SCRIP}
            ).all()
            eq([tuple(x) for x in rows], BASE.rows_scrip, "rows")
        eng.dispose()

    @check(f"sqlalchemy_{d}_inspect_schema_names")
    def _():
        from sqlalchemy import inspect

        names = inspect(sa_engine(d)).get_schema_names()
        if "public" not in names:
            raise AssertionError(f"public not in {names}")

    @check(f"sqlalchemy_{d}_inspect_table_and_view_names")
    def _():
        from sqlalchemy import inspect

        insp = inspect(sa_engine(d))
        tables = insp.get_table_names()
        views = insp.get_view_names()
        both = set(tables) | set(views)
        for t in ("bhavcopy", "price_features", "volatility_features", "trading_calendar", "bhavstore_runs"):
            if t not in both:
                raise AssertionError(f"{t} in neither get_table_names {tables} nor get_view_names {views}")
        # bhavcopy is stored data, a table; the bhavstore_* system relations are views.
        if "bhavcopy" not in tables or "bhavstore_runs" not in views:
            raise AssertionError(f"bhavcopy not a table {tables} or bhavstore_runs not a view {views}")
        if set(tables) & set(views):
            raise AssertionError(f"in both tables and views: {set(tables) & set(views)}")
        if any(t.startswith("pg_") for t in tables):
            raise AssertionError(f"catalog tables leaked into public: {tables}")

    @check(f"sqlalchemy_{d}_inspect_columns")
    def _():
        from sqlalchemy import inspect, types

        cols = inspect(sa_engine(d)).get_columns("price_features")
        eq([c["name"] for c in cols], BASE.load().pf_columns, "column names")
        by = {c["name"]: c for c in cols}
        if not isinstance(by["scrip_code"]["type"], types.Integer):
            raise AssertionError(f"scrip_code type {by['scrip_code']['type']!r}")
        if not isinstance(by["trade_date"]["type"], types.Date):
            raise AssertionError(f"trade_date type {by['trade_date']['type']!r}")
        if not isinstance(by["close"]["type"], types.Float):
            raise AssertionError(f"close type {by['close']['type']!r}")

    @check(f"sqlalchemy_{d}_inspect_constraints_indexes")
    def _():
        from sqlalchemy import inspect

        insp = inspect(sa_engine(d))
        pk = insp.get_pk_constraint("price_features")
        eq(pk.get("constrained_columns"), [], "pk constrained_columns")
        eq(insp.get_indexes("price_features"), [], "indexes")
        eq(insp.get_foreign_keys("price_features"), [], "foreign keys")
        eq(insp.get_unique_constraints("price_features"), [], "unique constraints")
        insp.get_check_constraints("price_features")
        insp.get_table_comment("price_features")

    @check(f"sqlalchemy_{d}_autoload_table")
    def _():
        from sqlalchemy import MetaData, Table, func, select

        eng = sa_engine(d)
        t = Table("price_features", MetaData(), autoload_with=eng)
        eq([c.name for c in t.columns], BASE.load().pf_columns, "autoloaded columns")
        with eng.connect() as conn:
            rows = conn.execute(
                select(t.c.scrip_code, t.c.trade_date, t.c.close, t.c.sma_20)
                .where(t.c.scrip_code == SCRIP)
                .order_by(t.c.trade_date)
            ).all()
            check_pf_frame(rows, "select(Table)")
            n = conn.execute(select(func.count()).select_from(t)).scalar_one()
            eq(n, BASE.count_pf, "count")
        eng.dispose()

    @check(f"sqlalchemy_{d}_autoload_view")
    def _():
        from sqlalchemy import MetaData, Table

        t = Table("bhavcopy", MetaData(), autoload_with=sa_engine(d))
        if "source_line" not in t.c or "close" not in t.c:
            raise AssertionError(f"columns {list(t.c.keys())}")

    @check(f"pandas_read_sql_text_engine_{d}")
    def _():
        import pandas as pd
        from sqlalchemy import text

        eng = sa_engine(d)
        df = pd.read_sql(
            text(
                "select scrip_code, trade_date, close, sma_20 from price_features where scrip_code = :s "
                "order by trade_date"
            ),
            eng,
            params={"s": SCRIP},
        )
        eq(list(df.columns), ["scrip_code", "trade_date", "close", "sma_20"], "columns")
        check_pf_frame(list(df.itertuples(index=False, name=None)), "read_sql")
        eng.dispose()

    @check(f"pandas_read_sql_str_conn_{d}")
    def _():
        import pandas as pd

        eng = sa_engine(d)
        with eng.connect() as conn:
            df = pd.read_sql("select count(*), max(close) from bhavcopy", conn)
        eq(list(df.columns), ["count", "max"], "columns")
        eq(int(df["count"][0]), BASE.load().count_all, "count")
        close_enough(df["max"][0], BASE.max_close, "max")
        eng.dispose()

    @check(f"pandas_read_sql_table_{d}")
    def _():
        import pandas as pd

        eng = sa_engine(d)
        df = pd.read_sql_table("trading_calendar", eng)
        eq(list(df.columns), BASE.load().calendar_columns, "columns")
        eq(len(df), len(BASE.calendar), "rows")
        df2 = pd.read_sql_table("price_features", eng, columns=["scrip_code", "trade_date", "close", "sma_20"])
        eq(len(df2), BASE.count_pf, "price_features rows")
        eng.dispose()


for _d in ("psycopg2", "psycopg"):
    sa_checks(_d)


# ---------------------------------------------------------------------------------------------
# 2. asyncpg


def arun(coro_fn):
    def runner():
        return asyncio.run(asyncio.wait_for(coro_fn(), TIMEOUT - 5))

    return runner


async def apg_connect():
    import asyncpg

    return await asyncpg.connect(host=HOST, port=PORT, user=USER, password=PASSWORD, database=DATABASE, ssl=False)


@check("asyncpg_pool_acquire_release")
@arun
async def _():
    import asyncpg

    pool = await asyncpg.create_pool(
        host=HOST, port=PORT, user=USER, password=PASSWORD, database=DATABASE, ssl=False, min_size=1, max_size=2
    )
    try:
        for i in range(6):
            async with pool.acquire() as conn:
                eq(await conn.fetchval("select $1::int8 + 1", i), i + 1, "fetchval")
        async with pool.acquire() as c1, pool.acquire() as c2:
            eq(await c1.fetchval("select count(*) from trading_calendar"), len(BASE.load().calendar), "c1")
            eq(await c2.fetchval("select 2"), 2, "c2")
    finally:
        await asyncio.wait_for(pool.close(), 10)


@check("asyncpg_fetch_and_types")
@arun
async def _():
    soft = Soft()
    conn = await apg_connect()
    try:
        async def rows():
            rs = await conn.fetch("select trade_date, close from bhavcopy where scrip_code = $1 order by trade_date", SCRIP)
            eq([tuple(r) for r in rs], BASE.load().rows_scrip, "rows")
            eq(list(rs[0].keys()), ["trade_date", "close"], "record keys")

        async def count():
            n = await conn.fetchval("select count(*) from bhavcopy")
            is_type(n, int, "count(*)")
            eq(n, BASE.load().count_all, "count(*)")

        async def source_line():
            sl = await conn.fetchval(
                "select source_line from bhavcopy where scrip_code = $1 and trade_date = $2", SCRIP, DAY
            )
            is_type(sl, int, "source_line (UInt64)")
            eq(sl, int(BASE.load().source_line), "source_line")

        async def names():
            r = await conn.fetchrow("select count(*), max(close), min(trade_date) from bhavcopy")
            eq(list(r.keys()), ["count", "max", "min"], "column names")

        for f in (rows, count, source_line, names):
            try:
                await f()
            except Exception as e:  # noqa: BLE001
                soft.errors.append(f"[{f.__name__}] {type(e).__name__}: {(str(e).splitlines() or [''])[0]}")
    finally:
        await conn.close()
    soft.done()


@check("asyncpg_fetchval_date_param")
@arun
async def _():
    conn = await apg_connect()
    try:
        n = await conn.fetchval("select count(*) from bhavcopy where trade_date = $1", DAY)
        eq(n, BASE.load().count_day, "count on date")
        c = await conn.fetchval("select close from bhavcopy where scrip_code = $1 and trade_date = $2", SCRIP, DAY)
        close_enough(c, BASE.close_day, "close")
    finally:
        await conn.close()


@check("asyncpg_fetchval_timestamp_cast_param")
@arun
async def _():
    conn = await apg_connect()
    try:
        n = await conn.fetchval(
            "select count(*) from bhavcopy where trade_date >= $1::timestamp and trade_date < $2::timestamp",
            dt.datetime(2015, 2, 2), dt.datetime(2015, 2, 3),
        )
        eq(n, BASE.load().count_day, "count in [2015-02-02, 2015-02-03) timestamp")
    finally:
        await conn.close()


@check("asyncpg_fetchval_datetime_untyped_param")
@arun
async def _():
    # Postgres infers $1 as date from `trade_date >= $1`; asyncpg encodes a datetime as a date.
    conn = await apg_connect()
    try:
        n = await conn.fetchval("select count(*) from bhavcopy where trade_date >= $1 and trade_date < $2",
                                dt.datetime(2015, 2, 2), dt.datetime(2015, 2, 3))
        eq(n, BASE.load().count_day, "count with untyped params given datetimes")
    finally:
        await conn.close()


@check("asyncpg_fetchval_timestamptz_param")
@arun
async def _():
    conn = await apg_connect()
    try:
        utc = dt.timezone.utc
        stmt = await conn.prepare(
            "select count(*) from bhavcopy where trade_date >= $1::timestamptz and trade_date < $2::timestamptz")
        eq([t.name for t in stmt.get_parameters()], ["timestamptz", "timestamptz"], "parameter types of $n::timestamptz")
        n = await stmt.fetchval(dt.datetime(2015, 2, 1, 12, tzinfo=utc), dt.datetime(2015, 2, 2, 12, tzinfo=utc))
        eq(n, BASE.load().count_day, "count with timestamptz params")
    finally:
        await conn.close()


@check("asyncpg_prepared_statement")
@arun
async def _():
    conn = await apg_connect()
    try:
        stmt = await conn.prepare("select trade_date, close from bhavcopy where scrip_code = $1 and trade_date >= $2 order by trade_date"
        )
        eq([a.name for a in stmt.get_attributes()], ["trade_date", "close"], "attributes")
        eq([t.name for t in stmt.get_parameters()], ["int4", "date"], "parameter types")
        for _i in range(3):
            rows = await stmt.fetch(SCRIP, DAY)
            eq([tuple(r) for r in rows], [r for r in BASE.load().rows_scrip if r[0] >= DAY], "rows")
        eq(await stmt.fetchval(SCRIP, DAY), BASE.rows_scrip[[r[0] for r in BASE.rows_scrip].index(DAY)][0], "fetchval")
    finally:
        await conn.close()


@check("asyncpg_cursor_in_transaction")
@arun
async def _():
    conn = await apg_connect()
    try:
        async with conn.transaction():
            cur = await conn.cursor(
                "select trade_date, close from bhavcopy where scrip_code = $1 order by trade_date", SCRIP
            )
            moved = await cur.forward(3)
            eq(moved, 3, "forward(3)")
            rows = await cur.fetch(4)
            eq([tuple(r) for r in rows], BASE.load().rows_scrip[3:7], "fetch(4) after forward(3)")
            row = await cur.fetchrow()
            eq(tuple(row), BASE.rows_scrip[7], "fetchrow")
    finally:
        await conn.close()


@check("asyncpg_cursor_iterate")
@arun
async def _():
    # `async for` over conn.cursor(): Bind to a named portal, then Execute with a row limit.
    conn = await apg_connect()
    try:
        async with conn.transaction():
            got = [
                tuple(r)
                async for r in conn.cursor(
                    "select trade_date, close from bhavcopy where scrip_code = $1 order by trade_date", SCRIP, prefetch=5
                )
            ]
        eq(got, BASE.load().rows_scrip, "async for over cursor")
    finally:
        await conn.close()


@check("asyncpg_copy_from_query")
@arun
async def _():
    conn = await apg_connect()
    try:
        buf = io.BytesIO()
        status = await conn.copy_from_query(
            f"select trade_date, close from bhavcopy where scrip_code = {SCRIP} order by trade_date",
            output=buf,
            format="csv",
        )
        lines = buf.getvalue().decode().splitlines()
        eq(status, f"COPY {len(BASE.load().rows_scrip)}", "status")
        eq(lines, [f"{d.isoformat()},{c!r}" for d, c in BASE.rows_scrip], "csv lines")
    finally:
        await conn.close()


@check("asyncpg_copy_from_query_args")
@arun
async def _():
    conn = await apg_connect()
    try:
        buf = io.BytesIO()
        await conn.copy_from_query(
            "select trade_date, close from bhavcopy where scrip_code = $1 and trade_date >= $2 order by trade_date",
            SCRIP,
            DAY,
            output=buf,
            format="csv",
        )
        lines = buf.getvalue().decode().splitlines()
        eq(lines, [f"{d.isoformat()},{c!r}" for d, c in BASE.load().rows_scrip if d >= DAY], "csv lines")
    finally:
        await conn.close()


# ---------------------------------------------------------------------------------------------
# 3. polars


PF_QUERY = PF_SCRIP_SQL


@check("polars_read_database_uri_connectorx")
def _():
    import polars as pl

    df = pl.read_database_uri(PF_QUERY, URI)
    eq(df.columns, ["scrip_code", "trade_date", "close", "sma_20"], "columns")
    eq(df["trade_date"].dtype, pl.Date, "trade_date dtype")
    check_pf_frame(df.rows(), "connectorx")
    n = pl.read_database_uri("select count(*) as n from bhavcopy", URI)["n"][0]
    eq(n, BASE.count_all, "count")


@check("polars_read_database_uri_adbc")
def _():
    import polars as pl

    df = pl.read_database_uri(PF_QUERY, URI, engine="adbc")
    eq(df.columns, ["scrip_code", "trade_date", "close", "sma_20"], "columns")
    eq(df["trade_date"].dtype, pl.Date, "trade_date dtype")
    check_pf_frame(df.rows(), "adbc")
    n = pl.read_database_uri("select count(*) as n from bhavcopy", URI, engine="adbc")["n"][0]
    eq(n, BASE.count_all, "count")


@check("adbc_postgresql_dbapi")
def _():
    import adbc_driver_postgresql.dbapi as adbc

    with adbc.connect(URI) as conn, conn.cursor() as cur:
        cur.execute("select scrip_code, trade_date, close, sma_20 from price_features where scrip_code = $1 "
                    "order by trade_date", parameters=(SCRIP,))
        check_pf_frame(cur.fetchall(), "adbc fetchall")
        cur.execute("select count(*) from bhavcopy")
        eq(cur.fetchone()[0], BASE.count_all, "count")
        # adbc_get_objects() (the driver's own catalog browsing) lists no tables yet: a known gap
        # in the README's compatibility table. Schemas are listed.
        objs = conn.adbc_get_objects(depth="db_schemas").read_all().to_pylist()
        schemas = {s["db_schema_name"] for c in objs for s in (c["catalog_db_schemas"] or [])}
        if "public" not in schemas:
            raise AssertionError(f"adbc_get_objects schemas {sorted(schemas)}")


@check("polars_read_database_sqlalchemy")
def _():
    import polars as pl

    for d in ("psycopg2", "psycopg"):
        eng = sa_engine(d)
        df = pl.read_database(PF_QUERY, connection=eng)
        eq(df.columns, ["scrip_code", "trade_date", "close", "sma_20"], f"{d} columns")
        check_pf_frame(df.rows(), f"polars+sqlalchemy {d}")
        eng.dispose()


# ---------------------------------------------------------------------------------------------
# 4. psycopg 3


def pg3(autocommit=True):
    import psycopg

    return psycopg.connect(DSN, autocommit=autocommit)


@check("psycopg_result_column_names")
def _():
    soft = Soft()
    with pg3() as conn:
        for sql, name in [
            ("select count(*) from bhavcopy", "count"),
            ("select 1", "?column?"),
            ("select 1+1 as x", "x"),
            ("select max(close) from bhavcopy", "max"),
            ("select min(trade_date), avg(close) from bhavcopy", "min"),
            ("select sum(volume) from bhavcopy", "sum"),
            ("select now()", "now"),
            ("select upper('a')", "upper"),
            ("select 'a'::text", "text"),
            ("select cast(1 as bigint)", "int8"),
        ]:
            def one(sql=sql, name=name):
                cur = conn.cursor()
                cur.execute(sql)
                eq(cur.description[0].name, name, sql)
                cur = conn.cursor(binary=True)
                cur.execute(sql)
                eq(cur.description[0].name, name, f"{sql} (extended protocol)")

            soft(sql, one)
        soft.done()


@check("psycopg_result_types")
def _():
    soft = Soft()
    with pg3() as conn:
        for binary in (False, True):
            mode = "binary" if binary else "text"
            cur = conn.cursor(binary=binary)

            def count():
                n = cur.execute("select count(*) from bhavcopy").fetchone()[0]
                is_type(n, int, f"count(*) {mode}")
                eq(cur.description[0].type_code, 20, f"count(*) oid (int8) {mode}")

            def source_line():
                sl = cur.execute(
                    "select source_line from bhavcopy where scrip_code = %s and trade_date = %s", (SCRIP, DAY)
                ).fetchone()[0]
                is_type(sl, int, f"source_line (UInt64) {mode}")

            def row():
                r = cur.execute(
                    "select scrip_code, trade_date, close, is_equity, name from bhavcopy where scrip_code = %s "
                    "and trade_date = %s",
                    (SCRIP, DAY),
                ).fetchone()
                eq([type(v).__name__ for v in r], ["int", "date", "float", "bool", "str"], f"python types {mode}")
                close_enough(r[2], BASE.load().close_day, "close")

            def sum_volume():
                s_ = cur.execute("select sum(volume) from bhavcopy where scrip_code = %s", (SCRIP,)).fetchone()[0]
                # Postgres: sum(bigint) is numeric -> Decimal; an int is also fine for users.
                if not isinstance(s_, (int, Decimal)):
                    raise AssertionError(f"sum(volume) type {type(s_).__name__} {mode}")

            for f in (count, source_line, row, sum_volume):
                soft(f"{f.__name__} {mode}", f)
    soft.done()


@check("psycopg_named_cursor_params")
def _():
    with pg3(autocommit=False) as conn:
        with conn.cursor(name="pf_pull") as cur:
            cur.itersize = 7
            cur.execute(
                "select trade_date, close from bhavcopy where scrip_code = %s order by trade_date", (SCRIP,)
            )
            eq([d.name for d in cur.description], ["trade_date", "close"], "description")
            eq(list(cur), BASE.load().rows_scrip, "rows")
        with conn.cursor(name="pf_pull2", scrollable=False, withhold=False) as cur:
            cur.execute("select close from bhavcopy where scrip_code = %s and trade_date = %s", (SCRIP, DAY))
            close_enough(cur.fetchone()[0], BASE.close_day, "close")
        conn.commit()


@check("psycopg_named_cursor_scroll_refused")
def _():
    # Cursors are forward-only here (results stream, nothing is kept to scroll back over):
    # scrolling back must fail with Postgres' SQLSTATE 55000 and say why, and reading forward
    # must still work (README, compatibility table).
    import psycopg

    with pg3(autocommit=False) as conn:
        with conn.cursor(name="scroller", scrollable=True) as cur:
            cur.execute("select trade_date, close from bhavcopy where scrip_code = %s order by trade_date", (SCRIP,))
            first = cur.fetchmany(5)
            eq(first, BASE.load().rows_scrip[:5], "forward rows")
            try:
                cur.scroll(0, mode="absolute")
                raise AssertionError("scrolling back was accepted")
            except psycopg.errors.ObjectNotInPrerequisiteState as e:
                if "forward-only" not in str(e):
                    raise AssertionError(f"message does not say why: {e}")
        conn.rollback()


@check("psycopg_nested_transactions_savepoint")
def _():
    import psycopg

    with pg3(autocommit=False) as conn:
        with conn.transaction():
            eq(conn.execute("select count(*) from trading_calendar").fetchone()[0], len(BASE.load().calendar), "outer")
            with conn.transaction():
                eq(conn.execute("select 1").fetchone()[0], 1, "inner")
                with conn.transaction():
                    eq(conn.execute("select 2").fetchone()[0], 2, "inner2")
            # Failed inner block rolls back to its savepoint; the outer one survives.
            try:
                with conn.transaction():
                    conn.execute("select * from no_such_table")
            except psycopg.errors.UndefinedTable:
                pass
            eq(conn.execute("select 3").fetchone()[0], 3, "after inner rollback")
            with conn.transaction(force_rollback=True):
                eq(conn.execute("select 4").fetchone()[0], 4, "force_rollback")


@check("psycopg_copy_binary_set_types")
def _():
    with pg3() as conn:
        cur = conn.cursor()
        rows = []
        with cur.copy(
            f"COPY (select scrip_code, trade_date, close from bhavcopy where scrip_code = {SCRIP} "
            "order by trade_date) TO STDOUT (FORMAT BINARY)"
        ) as copy:
            copy.set_types(["int4", "date", "float8"])
            rows = list(copy.rows())
        eq(rows, [(SCRIP, d, c) for d, c in BASE.load().rows_scrip], "rows")
        with cur.copy(
            f"COPY (select count(*), source_line from bhavcopy where scrip_code = {SCRIP} group by source_line "
            "order by source_line) TO STDOUT (FORMAT BINARY)"
        ) as copy:
            copy.set_types(["int8", "int8"])
            rows = list(copy.rows())
        if not rows or not all(isinstance(a, int) and isinstance(b, int) for a, b in rows):
            raise AssertionError(f"rows {rows!r}")


@check("psycopg_copy_text_and_csv")
def _():
    with pg3() as conn:
        cur = conn.cursor()
        with cur.copy(
            f"COPY (select trade_date, close from bhavcopy where scrip_code = {SCRIP} order by trade_date) TO STDOUT"
        ) as copy:
            copy.set_types(["date", "float8"])
            eq(list(copy.rows()), BASE.load().rows_scrip, "text rows")
        with cur.copy("COPY (select 1 as a, 'x' as b) TO STDOUT WITH CSV HEADER") as copy:
            eq(b"".join(bytes(c) for c in copy), b"a,b\n1,x\n", "csv")


@check("psycopg_typeinfo_fetch")
def _():
    from psycopg.types import TypeInfo

    with pg3() as conn:
        soft = Soft()
        for name, oid, array_oid in [("int8", 20, 1016), ("text", 25, 1009), ("date", 1082, 1182), ("float8", 701, 1022)]:
            def one(name=name, oid=oid, array_oid=array_oid):
                ti = TypeInfo.fetch(conn, name)
                if ti is None:
                    raise AssertionError(f"TypeInfo.fetch(conn, {name!r}) returned None")
                eq((ti.name, ti.oid, ti.array_oid), (name, oid, array_oid), f"TypeInfo {name}")
            soft(name, one)
        soft.done()


@check("psycopg_timestamp_param_vs_date")
def _():
    with pg3() as conn:
        n = conn.execute(
            "select count(*) from bhavcopy where trade_date = %s", (dt.datetime(2015, 2, 2),)
        ).fetchone()[0]
        eq(n, BASE.load().count_day, "trade_date = timestamp")
        n = conn.execute(
            "select count(*) from bhavcopy where trade_date >= %s and trade_date < %s",
            (dt.datetime(2015, 2, 2), dt.datetime(2015, 2, 2, 12)),
        ).fetchone()[0]
        eq(n, BASE.count_day, "timestamp range")


@check("psycopg_timestamptz_param_vs_date")
def _():
    utc = dt.timezone.utc
    with pg3() as conn:
        n = conn.execute(
            "select count(*) from bhavcopy where trade_date >= %s and trade_date < %s",
            (dt.datetime(2015, 2, 1, 12, tzinfo=utc), dt.datetime(2015, 2, 2, 12, tzinfo=utc)),
        ).fetchone()[0]
        eq(n, BASE.load().count_day, "timestamptz range")


@check("psycopg_date_param")
def _():
    with pg3() as conn:
        n = conn.execute("select count(*) from bhavcopy where trade_date = %s", (DAY,)).fetchone()[0]
        eq(n, BASE.load().count_day, "trade_date = date")
        n = conn.execute("select count(*) from bhavcopy where trade_date = %s", (str(DAY),)).fetchone()[0]
        eq(n, BASE.count_day, "trade_date = text '2015-02-02'")


@check("psycopg_now_tz_aware")
def _():
    with pg3() as conn:
        for binary in (False, True):
            now = conn.cursor(binary=binary).execute("select now()").fetchone()[0]
            is_type(now, dt.datetime, "now()")
            if now.tzinfo is None:
                raise AssertionError(f"now() is naive: {now!r} (binary={binary})")
            skew = abs((now - dt.datetime.now(dt.timezone.utc)).total_seconds())
            if skew > 300:
                raise AssertionError(f"now() {now} off by {skew}s")
            eq(conn.execute("select now()").description[0].type_code, 1184, "now() oid timestamptz")


@check("psycopg_pg_typeof")
def _():
    soft = Soft()
    with pg3() as conn:
        for sql, want in [
            # An integer literal is `bigint` here (DataFusion types literals as Int64), `integer`
            # in Postgres: the one documented difference (README, compatibility table).
            ("select pg_typeof(1::int)", "integer"),
            ("select pg_typeof(1::bigint)", "bigint"),
            ("select pg_typeof(close) from bhavcopy limit 1", "double precision"),
            ("select pg_typeof(trade_date) from bhavcopy limit 1", "date"),
            ("select pg_typeof('a'::text)", "text"),
        ]:
            soft(sql, lambda sql=sql, want=want: eq(str(conn.execute(sql).fetchone()[0]), want, sql))
    soft.done()


@check("psycopg_current_user_session_user")
def _():
    soft = Soft()
    with pg3() as conn:
        def both():
            cur = conn.execute("select current_user, session_user")
            eq(cur.fetchone(), (USER, USER), "current_user, session_user")
            eq([d.name for d in cur.description], ["current_user", "session_user"], "names")

        def one(sql, col):
            cur = conn.execute(sql)
            eq(cur.fetchone()[0], DATABASE if "database" in sql else USER, sql)
            eq(cur.description[0].name, col, f"{sql} column name")

        soft("select current_user, session_user", both)
        for sql, col in [("select current_user", "current_user"), ("select session_user", "session_user"),
                         ("select user", "user"), ("select current_database()", "current_database")]:
            soft(sql, one, sql, col)
    soft.done()


@check("psycopg_prepare_execute_deallocate")
def _():
    with pg3() as conn:
        conn.execute(
            "PREPARE p_close(int, date) AS select close from bhavcopy where scrip_code = $1 and trade_date = $2"
        )
        r = conn.execute(f"EXECUTE p_close({SCRIP}, '{DAY}')").fetchone()[0]
        close_enough(r, BASE.load().close_day, "EXECUTE")
        conn.execute("DEALLOCATE p_close")
        conn.execute("PREPARE p2 AS select count(*) from bhavcopy where trade_date = $1")
        eq(conn.execute(f"EXECUTE p2('{DAY}')").fetchone()[0], BASE.count_day, "EXECUTE p2 untyped")
        conn.execute("DEALLOCATE PREPARE p2")
        conn.execute("DEALLOCATE ALL")


@check("psycopg_auto_prepare")
def _():
    # psycopg prepares a query server-side after it ran prepare_threshold (5) times.
    with pg3() as conn:
        conn.prepare_threshold = 1
        for _i in range(4):
            r = conn.execute("select close from bhavcopy where scrip_code = %s and trade_date = %s", (SCRIP, DAY))
            close_enough(r.fetchone()[0], BASE.load().close_day, "close")
        conn.execute("select 1", prepare=True)
        conn.execute("select 1", prepare=True)


@check("psycopg_wrong_password")
def _():
    import psycopg

    try:
        psycopg.connect(DSN.replace(f"password={PASSWORD}", "password=wrong-password")).close()
    except psycopg.OperationalError as e:
        if f'password authentication failed for user "{USER}"' not in str(e):
            raise AssertionError(f"message {str(e)!r}")
        if getattr(e, "sqlstate", None) not in (None, "28P01"):
            raise AssertionError(f"sqlstate {e.sqlstate}")
        return
    raise AssertionError("connected with a wrong password")


@check("asyncpg_wrong_password")
def _():
    # asyncpg fails with "protocol is in an unexpected state" if a ReadyForQuery follows the
    # FATAL; it must see the error itself, naming the login user, with SQLSTATE 28P01.
    import asyncio

    import asyncpg

    async def attempt():
        try:
            conn = await asyncpg.connect(host=HOST, port=PORT, user=USER, password="wrong-password",
                                         database=DATABASE, ssl=False)
            await conn.close()
        except asyncpg.InvalidPasswordError as e:
            if f'password authentication failed for user "{USER}"' not in str(e) or e.sqlstate != "28P01":
                raise AssertionError(f"{e.sqlstate}: {e}")
            return
        raise AssertionError("connected with a wrong password")

    asyncio.run(attempt())


@check("psycopg_session_settings")
def _():
    # What ORMs/BI tools run right after connecting.
    soft = Soft()
    with pg3() as conn:
        def show(name, want):
            eq(conn.execute(f"show {name}").fetchone()[0], want, f"show {name}")

        def param(name, want):
            eq(conn.info.parameter_status(name), want, f"ParameterStatus {name}")

        soft("standard_conforming_strings", show, "standard_conforming_strings", "on")
        soft("param standard_conforming_strings", param, "standard_conforming_strings", "on")
        soft("transaction isolation level", show, "transaction isolation level", "read committed")
        soft("client_encoding", show, "client_encoding", "UTF8")
        soft("param client_encoding", param, "client_encoding", "UTF8")
        soft("set application_name", conn.execute, "set application_name = 'pg_matrix'")

        def tz():
            conn.execute("SET TIME ZONE 'UTC'")
            eq(conn.execute("show timezone").fetchone()[0], "UTC", "show timezone after SET TIME ZONE 'UTC'")

        soft("timezone", tz)

        def sp():
            conn.execute("set search_path to public")
            eq(conn.execute("select current_schema()").fetchone()[0], "public", "current_schema")

        soft("search_path", sp)
    soft.done()


@check("psycopg_client_cursor")
def _():
    import psycopg

    with psycopg.connect(DSN, autocommit=True, cursor_factory=psycopg.ClientCursor) as conn:
        r = conn.execute("select close from bhavcopy where scrip_code = %s and trade_date = %s", (SCRIP, DAY))
        close_enough(r.fetchone()[0], BASE.load().close_day, "close")


# ---------------------------------------------------------------------------------------------
# 5. psycopg2


def pg2():
    import psycopg2

    return psycopg2.connect(DSN)


@check("psycopg2_basic_params_types")
def _():
    soft = Soft()
    conn = pg2()
    conn.autocommit = True
    try:
        cur = conn.cursor()

        def count():
            cur.execute("select count(*) from bhavcopy")
            n = cur.fetchone()[0]
            is_type(n, int, "count(*)")
            eq(n, BASE.load().count_all, "count")
            eq(cur.description[0].name, "count", "count(*) column name")

        def rows():
            cur.execute("select trade_date, close from bhavcopy where scrip_code = %s order by trade_date", (SCRIP,))
            eq(cur.fetchall(), BASE.load().rows_scrip, "rows")

        def source_line():
            cur.execute("select source_line from bhavcopy where scrip_code = %(s)s and trade_date = %(d)s",
                        {"s": SCRIP, "d": DAY})
            is_type(cur.fetchone()[0], int, "source_line")

        for f in (count, rows, source_line):
            soft(f.__name__, f)
    finally:
        conn.close()
    soft.done()


@check("psycopg2_pandas_read_sql")
def _():
    import pandas as pd

    conn = pg2()
    try:
        df = pd.read_sql(
            "select scrip_code, trade_date, close, sma_20 from price_features where scrip_code = %(s)s "
            "order by trade_date",
            conn,
            params={"s": SCRIP},
        )
        check_pf_frame(list(df.itertuples(index=False, name=None)), "pandas+psycopg2")
    finally:
        conn.close()


@check("psycopg2_named_cursor")
def _():
    conn = pg2()
    try:
        cur = conn.cursor(name="pf_cursor")
        cur.itersize = 5
        cur.execute("select trade_date, close from bhavcopy where scrip_code = %s order by trade_date", (SCRIP,))
        eq(list(cur), BASE.load().rows_scrip, "rows")
        cur.close()
        cur = conn.cursor(name="pf_cursor2")
        cur.execute(PF_SCRIP_SQL)
        first = cur.fetchmany(3)
        rest = cur.fetchall()
        check_pf_frame(first + rest, "named cursor fetchmany/fetchall")
        cur.close()
        conn.commit()
    finally:
        conn.close()


@check("psycopg2_copy_expert")
def _():
    conn = pg2()
    try:
        buf = io.StringIO()
        conn.cursor().copy_expert(
            f"COPY (select trade_date, close from bhavcopy where scrip_code = {SCRIP} order by trade_date) "
            "TO STDOUT WITH CSV",
            buf,
        )
        eq(buf.getvalue().splitlines(), [f"{d.isoformat()},{c!r}" for d, c in BASE.load().rows_scrip], "csv")
    finally:
        conn.close()


# ---------------------------------------------------------------------------------------------
# 6. pgcli


def pgcli_exec():
    from pgcli.pgexecute import PGExecute

    return PGExecute(database=DATABASE, user=USER, password=PASSWORD, host=HOST, port=PORT)


@check("pgcli_connect_startup")
def _():
    ex = pgcli_exec()
    if not ex.server_version or not re.match(r"^\d+\.\d+", ex.server_version):
        raise AssertionError(f"server_version {ex.server_version!r}")
    eq(ex.is_virtual_database(), False, "is_virtual_database")
    eq(ex.dbname, DATABASE, "dbname")
    tz = ex.get_timezone()
    if not tz:
        raise AssertionError("show time zone empty")
    ex.set_timezone("Asia/Kolkata")
    eq(ex.get_timezone(), "Asia/Kolkata", "after set time zone")
    ex.conn.close()


@check("pgcli_search_path_schemata")
def _():
    ex = pgcli_exec()
    sp = ex.search_path()
    if "public" not in sp or "pg_catalog" not in sp:
        raise AssertionError(f"search_path {sp}")
    sc = list(ex.schemata())
    if "public" not in sc:
        raise AssertionError(f"schemata {sc}")


@check("pgcli_tables_views")
def _():
    ex = pgcli_exec()
    tables = set(ex.tables())
    views = set(ex.views())
    if ("public", "price_features") not in tables | views:
        raise AssertionError(f"price_features missing; tables={sorted(tables)[:20]} views={sorted(views)[:20]}")
    if ("public", "bhavcopy") not in tables or ("public", "bhavstore_runs") not in views:
        raise AssertionError(f"bhavcopy not a table or bhavstore_runs not a view: {sorted(tables)} {sorted(views)}")
    if {("pg_catalog", "pg_class"), ("pg_catalog", "pg_attribute"), ("pg_catalog", "pg_proc")} & views:
        raise AssertionError(f"catalog tables listed as views: {sorted(views)}")


@check("pgcli_columns")
def _():
    ex = pgcli_exec()
    tc = list(ex.table_columns())
    vc = list(ex.view_columns())
    cols = [r[2] for r in tc + vc if r[0] == "public" and r[1] == "price_features"]
    eq(cols, BASE.load().pf_columns, "price_features columns")
    types = {r[2]: r[3] for r in tc + vc if r[0] == "public" and r[1] == "price_features"}
    eq((types["scrip_code"], types["trade_date"], types["close"]), ("integer", "date", "double precision"), "types")
    src = [r[3] for r in tc if r[1] == "bhavcopy" and r[2] == "source_line"]
    eq(src, ["bigint"], "bhavcopy.source_line among table_columns, as bigint")


@check("pgcli_functions")
def _():
    fns = list(pgcli_exec().functions())
    names = {f.func_name for f in fns}
    for f in ("abs", "upper", "now"):
        if f not in names:
            raise AssertionError(f"{f} not among functions() ({len(names)} names)")


@check("pgcli_datatypes")
def _():
    # Non-catalog types only; none are defined here, so an empty list is right.
    eq([tuple(r) for r in pgcli_exec().datatypes()], [], "datatypes")


@check("pgcli_casing")
def _():
    list(pgcli_exec().casing())


@check("pgcli_foreignkeys")
def _():
    eq(list(pgcli_exec().foreignkeys()), [], "foreignkeys")


@check("pgcli_databases")
def _():
    ex = pgcli_exec()
    dbs = ex.databases()
    if DATABASE not in dbs:
        raise AssertionError(f"databases {dbs}")
    rows, headers, _status = ex.full_databases()
    if DATABASE not in [r[0] for r in rows]:
        raise AssertionError(f"full_databases {rows}")


@check("pgcli_run_select")
def _():
    ex = pgcli_exec()
    res = list(ex.run(f"select trade_date, close from bhavcopy where scrip_code = {SCRIP} order by trade_date; select 1"))
    eq(len(res), 2, "two result sets")
    title, cur, headers, status, sql, success, is_special = res[0]
    eq(list(headers), ["trade_date", "close"], "headers")
    rows = list(cur)
    eq(len(rows), len(BASE.load().rows_scrip), "rows")
    eq(rows[0][0], BASE.rows_scrip[0][0].isoformat(), "date as text (pgcli registers text loaders)")
    eq(success, True, "success")
    eq(status, f"SELECT {len(rows)}", "status")


@check("pgcli_backslash_commands")
def _():
    from pgspecial.main import PGSpecial

    ex = pgcli_exec()
    special = PGSpecial()
    soft = Soft()
    for cmd, needle in [("\\dt", "price_features"), ("\\dv", "bhavstore_runs"), ("\\d price_features", "sma_20"),
                        ("\\dn", "public"), ("\\l", DATABASE), ("\\df", None), ("\\du", USER)]:
        def one(cmd=cmd, needle=needle):
            res = list(ex.run(cmd, pgspecial=special))
            for r in res:
                if not r[5]:
                    raise AssertionError(f"{cmd} failed: {r[3]}")
            text = repr([list(r[1]) if r[1] is not None else None for r in res])
            if needle and needle not in text:
                raise AssertionError(f"{cmd}: {needle} not in {text[:200]}")

        soft(cmd, one)
    soft.done()


# ---------------------------------------------------------------------------------------------


class Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise Timeout(f"timed out after {TIMEOUT}s")


def main(argv):
    wanted = argv[1:]
    passed, failed = [], {}
    signal.signal(signal.SIGALRM, _alarm)
    for name, fn in CHECKS:
        if wanted and not any(w in name for w in wanted):
            continue
        start = dt.datetime.now(dt.timezone.utc).isoformat()
        print(f"# {name} start={start}", file=sys.stderr, flush=True)
        signal.alarm(TIMEOUT)
        try:
            fn()
        except BaseException as e:  # noqa: BLE001 - every failure is a result
            signal.alarm(0)
            if isinstance(e, KeyboardInterrupt):
                raise
            msg = f"{type(e).__name__}: {str(e).strip()}".splitlines()[0]
            failed[name] = msg
            print(f"FAIL {name}: {msg}", flush=True)
            if os.environ.get("BHAVSTORE_MATRIX_TRACEBACK"):
                traceback.print_exc()
        else:
            signal.alarm(0)
            passed.append(name)
            print(f"ok {name}", flush=True)
        print(f"# {name} end={dt.datetime.now(dt.timezone.utc).isoformat()}", file=sys.stderr, flush=True)
    print(json.dumps({"passed": passed, "failed": failed}))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
