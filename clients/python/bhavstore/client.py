"""The bhavstore client: SQL and training sets over Arrow Flight SQL (ADBC), online lookups,
lineage, pushes and live streams over the REST API."""

from __future__ import annotations

import datetime as _dt
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import (
    TYPE_CHECKING,
    Any,
    Dict,
    Iterable,
    Iterator,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    Union,
)

import pandas as pd
import pyarrow as pa
import requests

from . import errors as _errors
from .errors import (
    BhavstoreError,
    InvalidRequestError,
    NotFoundError,
    QueryTimeoutError,
    ServiceUnavailableError,
    StreamDroppedError,
)

if TYPE_CHECKING:  # pragma: no cover
    import polars as pl

__all__ = ["Client", "FeatureView", "OnlineResponse", "Subscription"]

FrameLike = Union["pd.DataFrame", "pl.DataFrame", pa.Table, pa.RecordBatch]
"""A pandas or polars DataFrame, or an Arrow table / record batch."""

EVENT_TIMESTAMP = "event_timestamp"
_ROW = "__bhavstore_row"
_TS = "__bhavstore_ts"
_OUTPUTS = ("pandas", "polars", "arrow")


@dataclass(frozen=True)
class FeatureView:
    """One feature view as the server defines it.

    ``entity`` and ``event_time`` are the view's key columns (``scrip_code``/``trade_date`` for
    the daily views, ``instrument``/``ts`` for streaming ones), ``features`` its feature columns
    in order with their Arrow types. ``version`` is the current version's id when it has been
    materialized (``None`` while the view is computed live), with the row count and trade-date
    range of its newest published state."""

    name: str
    entity: str
    event_time: Optional[str]
    entity_type: pa.DataType
    features: Tuple[str, ...]
    feature_types: Dict[str, pa.DataType] = field(default_factory=dict, compare=False)
    version: Optional[str] = None
    rows: Optional[int] = None
    min_trade_date: Optional[_dt.date] = None
    max_trade_date: Optional[_dt.date] = None
    published_at: Optional[_dt.datetime] = None

    @property
    def streaming(self) -> bool:
        """True for views over ``intraday_bars`` (string instrument entities)."""
        return pa.types.is_string(self.entity_type) or pa.types.is_large_string(self.entity_type)


def _to_arrow(data: Any, what: str) -> pa.Table:
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    if isinstance(data, pd.DataFrame):
        return pa.Table.from_pandas(data, preserve_index=False)
    mod = type(data).__module__ or ""
    if mod.startswith("polars"):
        return data.to_arrow()
    if isinstance(data, (list, tuple)) and all(isinstance(r, Mapping) for r in data):
        return pa.Table.from_pylist([dict(r) for r in data])
    if isinstance(data, Mapping):
        return pa.table(dict(data))
    raise InvalidRequestError(
        f"{what} must be a pandas or polars DataFrame, an Arrow table or a list of dicts, got {type(data).__name__}",
        code="bad_request",
    )


def _kind(data: Any) -> str:
    if isinstance(data, pd.DataFrame):
        return "pandas"
    if (type(data).__module__ or "").startswith("polars"):
        return "polars"
    return "arrow"


def _utc_timestamps(col: pa.ChunkedArray, name: str) -> pa.ChunkedArray:
    """``col`` as timestamp[us, UTC]: zoned times converted, naive ones taken as UTC (as Feast
    and the server do), dates at midnight UTC, strings parsed by pandas."""
    t = col.type
    if pa.types.is_timestamp(t):
        if t.tz is None:
            return col.cast(pa.timestamp("us")).cast(pa.timestamp("us", tz="UTC"))
        return col.cast(pa.timestamp("us", tz="UTC"))
    if pa.types.is_date(t):
        return col.cast(pa.timestamp("us")).cast(pa.timestamp("us", tz="UTC"))
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        values = pd.Series(col.to_pylist())
        try:
            try:
                parsed = pd.to_datetime(values, utc=True)
            except ValueError:
                parsed = pd.to_datetime(values, utc=True, format="mixed")
        except (ValueError, TypeError) as e:
            raise InvalidRequestError(f"column {name!r}: cannot read timestamps: {e}", code="bad_timestamp") from e
        return pa.chunked_array([pa.array(parsed, type=pa.timestamp("us", tz="UTC"))])
    raise InvalidRequestError(f"column {name!r} must hold timestamps, got {t}", code="bad_timestamp")


def _rfc3339(ts: Any) -> Optional[str]:
    """An RFC 3339 string for a timestamp argument (naive datetimes are UTC)."""
    if ts is None:
        return None
    if isinstance(ts, str):
        return ts
    if isinstance(ts, _dt.datetime) or isinstance(ts, pd.Timestamp):
        t = pd.Timestamp(ts)
        if t.tzinfo is None:
            t = t.tz_localize("UTC")
        return t.isoformat()
    if isinstance(ts, _dt.date):
        return _dt.datetime(ts.year, ts.month, ts.day, tzinfo=_dt.timezone.utc).isoformat()
    raise InvalidRequestError(f"timestamp must be a datetime or an RFC 3339 string, got {type(ts).__name__}", code="bad_timestamp")


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class Client:
    """A connection to one bhavstore server.

    Args:
        flight: Arrow Flight SQL address, ``grpc://host:port`` (``grpc+tls://`` for TLS). Needed
            by :meth:`sql`, :meth:`get_historical_features` and :meth:`list_feature_views`.
        http: REST address, ``http://host:port``. Needed by :meth:`get_online_features`,
            :meth:`lineage`, :meth:`push`, :meth:`subscribe`, :meth:`run`.
        username, password: a ``server.users`` login; used for Flight SQL (basic auth).
        token: a ``server.tokens`` bearer token; used for REST and, when no username is given,
            for Flight SQL too. Pushes need a token with the ``write`` role.
        timeout: seconds for each REST request (default 60).

    The Flight SQL connection is opened on first use and kept; training sets use a connection of
    their own for their temporary upload, closed when they return. Use the client as a context
    manager, or call :meth:`close`.
    """

    def __init__(
        self,
        flight: Optional[str] = None,
        http: Optional[str] = None,
        *,
        username: Optional[str] = None,
        password: Optional[str] = None,
        token: Optional[str] = None,
        timeout: float = 60.0,
    ) -> None:
        if flight is None and http is None:
            raise InvalidRequestError("give a Flight SQL address (flight=) or a REST address (http=)", code="bad_request")
        if (username is None) != (password is None):
            raise InvalidRequestError("give both username and password, or neither", code="bad_request")
        self.flight = flight
        self.http = http.rstrip("/") if http else None
        self.username = username
        self.password = password
        self.token = token
        self.timeout = timeout
        self._session = requests.Session()
        if token:
            self._session.headers["Authorization"] = f"Bearer {token}"
        self._conn: Any = None
        self._lock = threading.Lock()
        self._views: Optional[Dict[str, FeatureView]] = None

    # ------------------------------------------------------------------ plumbing

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Close the Flight SQL connection and the HTTP session."""
        with self._lock:
            if self._conn is not None:
                try:
                    self._conn.close()
                except Exception:  # noqa: BLE001 - closing a broken connection
                    pass
                self._conn = None
        self._session.close()

    def _db_kwargs(self) -> Dict[str, str]:
        if self.username is not None:
            return {"username": self.username, "password": self.password or ""}
        if self.token:
            return {"adbc.flight.sql.authorization_header": f"Bearer {self.token}"}
        return {}

    def _connect(self) -> Any:
        if not self.flight:
            raise InvalidRequestError("this call needs the Flight SQL address: Client(flight='grpc://host:port')", code="bad_request")
        import adbc_driver_flightsql.dbapi as flightsql
        import adbc_driver_manager

        import warnings

        try:
            with warnings.catch_warnings():
                # "Cannot disable autocommit": Flight SQL has no transactions; nothing to warn about.
                warnings.simplefilter("ignore")
                conn = flightsql.connect(self.flight, db_kwargs=self._db_kwargs(), autocommit=True)
        except adbc_driver_manager.Error as e:
            raise _errors.from_flight(e) from None
        return conn

    def _shared_conn(self) -> Any:
        with self._lock:
            if self._conn is None:
                self._conn = self._connect()
            return self._conn

    def _drop_shared_conn(self) -> None:
        with self._lock:
            if self._conn is not None:
                try:
                    self._conn.close()
                except Exception:  # noqa: BLE001
                    pass
                self._conn = None

    def _run(self, conn: Any, query: str, params: Optional[Sequence[Any]] = None) -> pa.Table:
        import adbc_driver_manager

        try:
            with conn.cursor() as cur:
                if params is None:
                    cur.execute(query)
                else:
                    cur.execute(query, params)
                return cur.fetch_arrow_table()
        except adbc_driver_manager.Error as e:
            raise _errors.from_flight(e) from None

    def _rest(self, method: str, path: str, *, params: Any = None, json_body: Any = None, ok: Tuple[int, ...] = (200,)) -> Any:
        if not self.http:
            raise InvalidRequestError("this call needs the REST address: Client(http='http://host:port')", code="bad_request")
        try:
            resp = self._session.request(method, self.http + path, params=params, json=json_body, timeout=self.timeout)
        except requests.Timeout as e:
            raise QueryTimeoutError(f"{method} {path}: {e}", code="timeout", protocol="http") from None
        except requests.RequestException as e:
            raise ServiceUnavailableError(f"{method} {path}: {e}", code="unavailable", protocol="http") from None
        try:
            body = resp.json()
        except ValueError:
            body = None
        if resp.status_code not in ok:
            raise _errors.from_http(resp.status_code, body, resp.text[:500])
        return body

    # ------------------------------------------------------------------ SQL

    def sql(self, query: str, params: Optional[Sequence[Any]] = None) -> pa.Table:
        """Run one SQL statement over Flight SQL and return the result as an Arrow table.

        ``params`` binds ``?`` (or ``$1``) placeholders. Every table the server serves is
        readable: ``bhavcopy``, the feature views, ``"price_features@v..."`` versions, the
        ``bhavstore_*`` system tables, ``features_asof(...)``, ``lineage(...)``.
        """
        conn = self._shared_conn()
        try:
            return self._run(conn, query, params)
        except ServiceUnavailableError:
            # The server restarted under us: one fresh connection, one retry.
            self._drop_shared_conn()
            return self._run(self._shared_conn(), query, params)

    # ------------------------------------------------------------------ the registry

    def list_feature_views(self, refresh: bool = True) -> List[FeatureView]:
        """Every feature view the server defines, with its entity, event time, features and the
        current materialized version.

        The view names come from the server's registry, ``GET /feature-store/views`` (every
        defined view, materialized or not; without the REST address, the views with a published
        version in ``bhavstore_versions``); over Flight SQL, the key columns from
        ``information_schema.columns``, the feature columns from the schema ``features_asof``
        returns, the version from ``bhavstore_versions``.
        """
        if refresh or self._views is None:
            self._views = self._load_views()
        return list(self._views.values())

    def get_feature_view(self, name: str) -> FeatureView:
        """One view of :meth:`list_feature_views`; :class:`NotFoundError` when there is none."""
        views = self._catalog()
        if name not in views:
            views = self._catalog(refresh=True)
        if name not in views:
            raise NotFoundError(
                f"unknown feature view {name!r} (views: {', '.join(sorted(views))})", code="unknown_view"
            )
        return views[name]

    def _catalog(self, refresh: bool = False) -> Dict[str, FeatureView]:
        if refresh or self._views is None:
            self._views = self._load_views()
        return self._views

    def _view_names(self, conn: Any) -> List[str]:
        # The server's registry of defined views (materialized or not), over REST.
        if self.http:
            return [v["name"] for v in self._rest("GET", "/feature-store/views")["views"]]
        # Without the REST address: the views with a published version, over Flight SQL.
        t = self._run(conn, "SELECT DISTINCT \"view\" FROM bhavstore_versions")
        return sorted(v for v in t.column(0).to_pylist() if v)

    def _load_views(self) -> Dict[str, FeatureView]:
        import adbc_driver_manager

        conn = self._shared_conn()
        names = self._view_names(conn)
        if not names:
            return {}
        in_list = ", ".join(_quote_literal(n) for n in names)
        cols = self._run(
            conn,
            "SELECT table_name, column_name FROM information_schema.columns "
            f"WHERE table_schema = 'public' AND table_name IN ({in_list}) ORDER BY table_name, ordinal_position",
        ).to_pylist()
        versions = {
            r["view"]: r
            for r in self._run(
                conn,
                'SELECT "view", version, "rows", min_trade_date, max_trade_date, published_at '
                "FROM bhavstore_versions WHERE is_current",
            ).to_pylist()
        }
        out: Dict[str, FeatureView] = {}
        for name in names:
            spine = "SELECT CAST(NULL AS BIGINT) AS e, CAST(NULL AS TIMESTAMP) AS t WHERE false"
            q = f"SELECT * FROM features_asof({_quote_literal(name)}, {_quote_literal(spine)})"
            try:
                with conn.cursor() as cur:
                    schema = cur.adbc_execute_schema(q)
            except adbc_driver_manager.NotSupportedError:
                schema = self._run(conn, q).schema
            except adbc_driver_manager.Error as e:
                raise _errors.from_flight(e) from None
            features = tuple(schema.names[4:])
            keys = [c["column_name"] for c in cols if c["table_name"] == name and c["column_name"] not in features]
            v = versions.get(name, {})
            out[name] = FeatureView(
                name=name,
                entity=keys[0] if keys else "entity",
                event_time=keys[1] if len(keys) > 1 else None,
                entity_type=schema.field(0).type,
                features=features,
                feature_types={f: schema.field(f).type for f in features},
                version=v.get("version"),
                rows=v.get("rows"),
                min_trade_date=v.get("min_trade_date"),
                max_trade_date=v.get("max_trade_date"),
                published_at=v.get("published_at"),
            )
        return out

    def _resolve(
        self, features: Sequence[str], full_feature_names: bool, taken: Iterable[str] = ()
    ) -> List[Tuple[FeatureView, str, str]]:
        """``(view, feature, output column)`` for every ``"view:feature"``, in order, checked."""
        if isinstance(features, str):
            features = [features]
        if not features:
            raise InvalidRequestError("no features requested", code="bad_request")
        parsed: List[Tuple[str, str]] = []
        for ref in features:
            if not isinstance(ref, str) or ref.count(":") != 1 or not all(ref.split(":")):
                raise InvalidRequestError(
                    f"feature reference {ref!r} is not 'view:feature' (e.g. 'price_features:sma_20')",
                    code="bad_request",
                )
            pair = tuple(ref.split(":"))
            if pair not in parsed:
                parsed.append(pair)  # type: ignore[arg-type]
        catalog = self._catalog()
        if any(v not in catalog or f not in catalog[v].features for v, f in parsed):
            catalog = self._catalog(refresh=True)
        for v, f in parsed:
            if v not in catalog:
                raise NotFoundError(
                    f"unknown feature view {v!r} in {v + ':' + f!r} (views: {', '.join(sorted(catalog))})",
                    code="unknown_view",
                )
            if f not in catalog[v].features:
                raise NotFoundError(
                    f"feature view {v!r} has no feature {f!r} (features: {', '.join(catalog[v].features)})",
                    code="unknown_feature",
                )
        counts: Dict[str, int] = {}
        for _, f in parsed:
            counts[f] = counts.get(f, 0) + 1
        taken = set(taken)
        out = []
        for v, f in parsed:
            col = f"{v}__{f}" if full_feature_names or counts[f] > 1 else f
            if col in taken:
                raise InvalidRequestError(
                    f"feature column {col!r} would overwrite a column of the entity rows; rename that column "
                    "or pass full_feature_names=True",
                    code="bad_request",
                )
            out.append((catalog[v], f, col))
        return out

    # ------------------------------------------------------------------ training sets

    def get_historical_features(
        self,
        entity_df: FrameLike,
        features: Sequence[str],
        *,
        rule: str = "available",
        full_feature_names: bool = False,
        output: Optional[str] = None,
        include_feature_timestamps: bool = False,
    ) -> Any:
        """Point-in-time features for every row of ``entity_df`` (a training set), as Feast does.

        Args:
            entity_df: pandas, polars or Arrow; one row per example with the views' entity
                column (``scrip_code`` for the daily views, ``instrument`` for streaming ones)
                and ``event_timestamp`` (zoned, or naive meaning UTC). Other columns (labels,
                ...) are kept and not uploaded.
            features: ``["price_features:sma_20", "volatility_features:atr_14", ...]``.
            rule: ``"available"`` (default: the newest row whose bhavcopy was available at the
                timestamp) or ``"close"`` (the newest whose market close is at or before it).
            full_feature_names: name every feature column ``view__feature``. Without it a
                column is named as the feature, and only names two requested views share get
                the ``view__feature`` form.
            output: ``"pandas"``, ``"polars"`` or ``"arrow"``. Default: pandas, or polars when
                ``entity_df`` is polars.
            include_feature_timestamps: add ``{view}__feature_trade_date`` and
                ``{view}__feature_event_time``: which row of the view each value came from.

        Returns:
            ``entity_df``'s rows in ``entity_df``'s order, its columns, then one column per
            feature. NULL (NaN) where the view has no row at or before the timestamp under the
            rule, or that row is older than the view's ttl.

        The spine (entity, timestamp, row number) is uploaded over Flight SQL bulk ingestion as
        a temporary table of a private session, then each view is read with one
        ``features_asof(view, spine, rule)`` and the columns are joined back by row number.

        Raises:
            NotFoundError: an unknown view (``code="unknown_view"``) or feature
                (``"unknown_feature"``), naming it.
            InvalidRequestError: a missing entity or ``event_timestamp`` column, a bad rule.
        """
        import adbc_driver_manager

        rule_l = (rule or "available").lower()
        if rule_l not in ("available", "close"):
            raise InvalidRequestError(f"rule must be 'available' or 'close', got {rule!r}", code="bad_rule")
        kind = _kind(entity_df)
        out_kind = output or ("polars" if kind == "polars" else "pandas")
        if out_kind not in _OUTPUTS:
            raise InvalidRequestError(f"output must be one of {_OUTPUTS}, got {output!r}", code="bad_request")
        table = _to_arrow(entity_df, "entity_df")
        columns = list(table.column_names)
        resolved = self._resolve(features, full_feature_names, taken=columns)
        if EVENT_TIMESTAMP not in columns:
            raise InvalidRequestError(
                f"entity_df needs an {EVENT_TIMESTAMP!r} column (columns: {', '.join(columns)})", code="bad_request"
            )
        views: List[FeatureView] = []
        for fv, _, _ in resolved:
            if fv not in views:
                views.append(fv)
        for fv in views:
            if fv.entity not in columns:
                raise InvalidRequestError(
                    f"entity_df needs the entity column {fv.entity!r} of view {fv.name!r} (columns: {', '.join(columns)})",
                    code="bad_request",
                )
        n = table.num_rows
        spine_cols: Dict[str, Any] = {_ROW: pa.array(range(n), pa.int64())}
        for fv in views:
            if fv.entity not in spine_cols:
                spine_cols[fv.entity] = table.column(fv.entity)
        spine_cols[_TS] = _utc_timestamps(table.column(EVENT_TIMESTAMP), EVENT_TIMESTAMP)
        spine = pa.table(spine_cols)

        results: Dict[str, pa.ChunkedArray] = {}
        if n > 0:
            name = "spine_" + uuid.uuid4().hex[:16]
            conn = self._connect()
            try:
                with conn.cursor() as cur:
                    try:
                        cur.adbc_ingest(name, spine, mode="create", temporary=True)
                    except adbc_driver_manager.Error as e:
                        raise _errors.from_flight(e) from None
                for fv in views:
                    wanted = [(f, col) for v, f, col in resolved if v is fv]
                    ent = _quote_ident(fv.entity)
                    if pa.types.is_integer(fv.entity_type):
                        ent = f"CAST({ent} AS BIGINT)"
                    elif fv.streaming:
                        ent = f"CAST({ent} AS VARCHAR)"
                    spine_sql = f"SELECT {ent}, {_quote_ident(_TS)} FROM temp.public.{name} ORDER BY {_quote_ident(_ROW)}"
                    select = ["feature_trade_date", "feature_event_time"] + [f for f, _ in wanted]
                    q = (
                        f"SELECT {', '.join(_quote_ident(c) for c in select)} FROM features_asof("
                        f"{_quote_literal(fv.name)}, {_quote_literal(spine_sql)}, {_quote_literal(rule_l)})"
                    )
                    got = self._run(conn, q)
                    if got.num_rows != n:
                        raise BhavstoreError(
                            f"features_asof({fv.name}) returned {got.num_rows} rows for a spine of {n}",
                            code="row_count_mismatch",
                            protocol="flight",
                        )
                    if include_feature_timestamps:
                        results[f"{fv.name}__feature_trade_date"] = got.column("feature_trade_date")
                        results[f"{fv.name}__feature_event_time"] = got.column("feature_event_time")
                    for f, col in wanted:
                        results[col] = got.column(f)
            finally:
                try:
                    conn.close()
                except Exception:  # noqa: BLE001
                    pass
        else:
            for fv, f, col in resolved:
                results[col] = pa.chunked_array([], fv.feature_types.get(f, pa.float64()))
            if include_feature_timestamps:
                for fv in views:
                    results[f"{fv.name}__feature_trade_date"] = pa.chunked_array([], pa.date32())
                    results[f"{fv.name}__feature_event_time"] = pa.chunked_array([], pa.timestamp("us", tz="UTC"))
        ordered = [col for _, _, col in resolved]
        if include_feature_timestamps:
            ordered = [c for fv in views for c in (f"{fv.name}__feature_trade_date", f"{fv.name}__feature_event_time")] + ordered
        return self._attach(entity_df, kind, table, {c: results[c] for c in ordered}, out_kind)

    @staticmethod
    def _attach(original: Any, kind: str, table: pa.Table, new: Dict[str, pa.ChunkedArray], out_kind: str) -> Any:
        if out_kind == "arrow":
            table = table.replace_schema_metadata(None)
            for name, col in new.items():
                table = table.append_column(name, col)
            return table
        if out_kind == "pandas":
            base = original.copy() if kind == "pandas" else table.to_pandas()
            added = pa.table(new).to_pandas() if new else pd.DataFrame(index=range(len(base)))
            added.index = base.index
            for name in new:
                base[name] = added[name]
            return base
        import polars as pl

        base = original if kind == "polars" else pl.from_arrow(table)
        if not new:
            return base
        return base.hstack(pl.from_arrow(pa.table(new)).get_columns())

    # ------------------------------------------------------------------ online

    def get_online_features(
        self,
        features: Any,
        entity_rows: Any = None,
        *,
        timestamp: Any = None,
        rule: str = "available",
        full_feature_names: bool = False,
    ) -> "OnlineResponse":
        """The feature values of each entity as of one time, from the server's online store
        (REST ``POST /feature-store/lookup/batch``, one request per view).

        Args:
            features: ``["price_features:sma_20", ...]``.
            entity_rows: ``[{"scrip_code": 500325}, {"scrip_code": 500002}]`` (the view's entity
                column; ``entity_id`` works for every view), or a DataFrame with that column.
                ``(entity_rows, features)`` in that order is accepted too.
            timestamp: as of when (datetime, naive = UTC, or RFC 3339); default now. The 2015
                data is older than the views' 5-day ttl, so "now" answers ``stale_value``.
            rule: ``"available"`` or ``"close"``, as in :meth:`get_historical_features`.
            full_feature_names: ``view__feature`` column names.

        Returns:
            An :class:`OnlineResponse`: ``to_dict()``, ``to_df()``, ``to_arrow()``,
            ``to_polars()``; ``errors`` names, per row, why a value is missing
            (``stale_value``, ``unknown_entity``, ``no_value``, ...; those values are None).
        """
        if entity_rows is not None and _looks_like_features(entity_rows) and not _looks_like_features(features):
            features, entity_rows = entity_rows, features
        if entity_rows is None:
            raise InvalidRequestError("entity_rows is required", code="bad_request")
        rows = _rows_of(entity_rows)
        if not rows:
            raise InvalidRequestError("entity_rows is empty", code="bad_request")
        keys = list(rows[0].keys())
        resolved = self._resolve(features, full_feature_names, taken=keys)
        rule_l = (rule or "available").lower()
        ts = _rfc3339(timestamp)
        values: Dict[str, List[Any]] = {col: [None] * len(rows) for _, _, col in resolved}
        stamps: Dict[str, List[Any]] = {col: [None] * len(rows) for _, _, col in resolved}
        errors: List[Dict[str, str]] = [{} for _ in rows]
        by_view: Dict[str, List[Tuple[str, str]]] = {}
        views: Dict[str, FeatureView] = {}
        for fv, f, col in resolved:
            by_view.setdefault(fv.name, []).append((f, col))
            views[fv.name] = fv
        meta: Dict[str, Any] = {}
        for vname, wanted in by_view.items():
            fv = views[vname]
            ids = []
            for i, r in enumerate(rows):
                if fv.entity in r:
                    ids.append(r[fv.entity])
                elif "entity_id" in r:
                    ids.append(r["entity_id"])
                else:
                    raise InvalidRequestError(
                        f"entity row {i} has no {fv.entity!r} (the entity of {vname!r}) nor 'entity_id'", code="bad_request"
                    )
            body: Dict[str, Any] = {
                "entity_ids": [str(x) for x in ids],
                "feature_names": [f for f, _ in wanted],
                "feature_view": vname,
                "rule": rule_l,
            }
            if ts is not None:
                body["timestamp"] = ts
            answer = self._rest("POST", "/feature-store/lookup/batch", json_body=body)
            meta[vname] = {k: answer.get(k) for k in ("version", "timestamp", "rule")}
            results = answer.get("results", [])
            if len(results) != len(rows):
                raise BhavstoreError(
                    f"lookup/batch answered {len(results)} results for {len(rows)} entities", code="bad_answer", protocol="http"
                )
            for i, res in enumerate(results):
                if "error" in res:
                    errors[i][vname] = res["error"]
                    continue
                feats = res.get("features", {})
                for f, col in wanted:
                    cell = feats.get(f)
                    if cell is not None:
                        values[col][i] = cell.get("value")
                        stamps[col][i] = cell.get("timestamp")
        return OnlineResponse(
            entity_columns={k: [r.get(k) for r in rows] for k in keys},
            values=values,
            timestamps=stamps,
            errors=errors,
            metadata=meta,
        )

    def lookup(
        self,
        entity_id: Union[str, int],
        feature_name: str,
        timestamp: Any = None,
        *,
        feature_view: Optional[str] = None,
        rule: str = "available",
    ) -> Dict[str, Any]:
        """One value, as REST ``GET /feature-store/lookup`` answers it: ``{"value", "timestamp",
        "trade_date", "available_at", "feature_view", "version", ...}``.

        Raises :class:`NotFoundError` (``unknown_feature``, ``unknown_entity``, ``no_value``,
        ``stale_value``, ``before_online_history``) when there is no value."""
        params: Dict[str, Any] = {"entity_id": str(entity_id), "feature_name": feature_name, "rule": rule}
        ts = _rfc3339(timestamp)
        if ts is not None:
            params["timestamp"] = ts
        if feature_view:
            params["feature_view"] = feature_view
        return self._rest("GET", "/feature-store/lookup", params=params)

    # ------------------------------------------------------------------ lineage, runs

    def lineage(self, feature_view: str, entity_id: Union[str, int], date: Union[str, _dt.date]) -> Dict[str, Any]:
        """Where one daily value comes from (REST ``GET /feature-store/lineage``): ``version``,
        ``definition_hash``, ``manifest_seq``, ``run_id``, ``prices``, and ``inputs``: for every
        trade date in the window behind the value its ``raw_key`` (the raw bhavcopy object),
        ``raw_sha256``, ``source_line`` and ``adj_factor``; ``corporate_actions`` applied.
        (The same rows as a table: ``sql("SELECT * FROM lineage('price_features', 511064, '2015-03-12')")``.)
        """
        if isinstance(date, (_dt.date, _dt.datetime)):
            date = date.strftime("%Y-%m-%d")
        return self._rest(
            "GET",
            "/feature-store/lineage",
            params={"feature_view": feature_view, "entity_id": str(entity_id), "date": str(date)},
        )

    def run(self, run_id: str) -> Dict[str, Any]:
        """The status of a REST ingest run (``GET /feature-store/runs/{id}``)."""
        return self._rest("GET", f"/feature-store/runs/{requests.utils.quote(run_id, safe='')}")

    def ingest(
        self,
        feature_view: str,
        data_source: str,
        *,
        features: Optional[Sequence[str]] = None,
        timestamp: Any = None,
    ) -> Dict[str, Any]:
        """Load a trade date from BSE (``"2015-03-02"``) or files under ``server.import_roots``
        (``file:///...``, ``s3://...``), then materialize the view (``POST /feature-store/ingest``).
        Answers ``{"status": "success", ...}`` or, after 20 s, ``{"status": "accepted",
        "run_id", "status_url"}``: poll :meth:`run`."""
        body: Dict[str, Any] = {"feature_view": feature_view, "data_source": data_source}
        if features is not None:
            body["features"] = list(features)
        ts = _rfc3339(timestamp)
        if ts is not None:
            body["timestamp"] = ts
        return self._rest("POST", "/feature-store/ingest", json_body=body, ok=(200, 202))

    def health(self) -> Dict[str, Any]:
        """``GET /health``: liveness, the views held in memory, intraday counters."""
        return self._rest("GET", "/health")

    # ------------------------------------------------------------------ real time

    def push(self, df: FrameLike, *, source: str = "intraday_bars", batch_rows: int = 100_000) -> Dict[str, Any]:
        """Push intraday bars (REST ``POST /feature-store/push``); the answer comes once every
        stored row is durable, and the streaming views are recomputed for those instruments.

        ``df`` (pandas, polars, Arrow or a list of dicts) has ``instrument`` (``EXCHANGE:SYMBOL``),
        ``ts`` (bar start; zoned, or naive meaning IST as the server reads it), ``open``,
        ``high``, ``low``, ``close``, ``volume`` and optionally ``interval_s`` (60).

        Returns the server's answer summed over the requests (``batch_rows`` rows each):
        ``status`` (``ok`` or ``partial``), ``accepted``, ``new``, ``duplicates``,
        ``corrections``, ``rejected`` (``[{index, reason}]``, index into ``df``),
        ``durable_at``, ``log_seq``.

        Raises:
            PermissionDeniedError: the token lacks the ``write`` role (``write_role_required``).
            PushRejectedError: every row was refused (``details["rejected"]`` says why).
        """
        table = _to_arrow(df, "df")
        if table.num_rows == 0:
            raise InvalidRequestError("nothing to push: df has no rows", code="bad_request")
        rows = _bars_json(table)
        total: Dict[str, Any] = {"status": "ok", "accepted": 0, "new": 0, "duplicates": 0, "corrections": 0, "rejected": []}
        for start in range(0, len(rows), batch_rows):
            chunk = rows[start : start + batch_rows]
            try:
                answer = self._rest("POST", "/feature-store/push", json_body={"source": source, "rows": chunk})
            except _errors.PushRejectedError as e:
                if len(rows) <= batch_rows:
                    raise
                answer = dict(e.details)
            for k in ("accepted", "new", "duplicates", "corrections"):
                total[k] += int(answer.get(k) or 0)
            for r in answer.get("rejected") or []:
                total["rejected"].append({**r, "index": start + int(r.get("index", 0))})
            for k in ("durable_at", "log_seq"):
                if answer.get(k) is not None:
                    total[k] = answer[k]
        if total["rejected"]:
            total["status"] = "partial" if total["accepted"] else "rejected"
        if total["status"] == "rejected":
            raise _errors.PushRejectedError(
                f"every row was refused (first: {total['rejected'][0]})", code="rejected", status=422, protocol="http", details=total
            )
        return total

    def subscribe(
        self,
        view: str,
        entities: Union[None, str, int, Sequence[Union[str, int]]] = None,
        *,
        timeout: Optional[float] = None,
    ) -> "Subscription":
        """Subscribe to a streaming view's new feature rows (REST ``GET /feature-store/stream``,
        Server-Sent Events).

        Returns once the server has confirmed the subscription, so every row computed after
        this call returns is delivered. Iterate it for dicts ``{"view", "entity_id", "ts",
        "known_at", "trade_date", "values": {feature: value}}``, in computation order (a row
        recomputed by a late bar or a correction comes again).

        Args:
            view: a streaming view, e.g. ``"intraday_features"``; other views raise
                :class:`NotFoundError` (``unknown_view``).
            entities: instruments to follow (``"NSE:TCS"`` or a list); None: every instrument.
            timeout: seconds to wait for each next row; when they pass, iteration ends (no
                error). None: wait forever.

        Close it with ``close()`` or use it as a context manager. A subscriber the server
        drops as too slow gets :class:`StreamDroppedError`.
        """
        if entities is None:
            ids: List[str] = []
        elif isinstance(entities, (str, int)):
            ids = [str(entities)]
        else:
            ids = [str(e) for e in entities]
        if not self.http:
            raise InvalidRequestError("subscribe needs the REST address: Client(http='http://host:port')", code="bad_request")
        params: List[Tuple[str, str]] = [("view", view)] + [("entity_id", e) for e in ids]
        return Subscription(self._session, self.http + "/feature-store/stream", params, timeout, self.timeout)


def _looks_like_features(x: Any) -> bool:
    if isinstance(x, str):
        return ":" in x
    return isinstance(x, (list, tuple)) and len(x) > 0 and all(isinstance(e, str) and ":" in e for e in x)


def _rows_of(entity_rows: Any) -> List[Dict[str, Any]]:
    if isinstance(entity_rows, Mapping):
        entity_rows = [entity_rows]
    if isinstance(entity_rows, (list, tuple)):
        out = []
        for r in entity_rows:
            if not isinstance(r, Mapping):
                raise InvalidRequestError("entity_rows must be dicts such as {'scrip_code': 500325}", code="bad_request")
            out.append(dict(r))
        return out
    return _to_arrow(entity_rows, "entity_rows").to_pylist()


_BAR_FIELDS = ("instrument", "ts", "open", "high", "low", "close", "volume", "interval_s")


def _bars_json(table: pa.Table) -> List[Dict[str, Any]]:
    missing = [c for c in _BAR_FIELDS[:7] if c not in table.column_names]
    if missing:
        raise InvalidRequestError(f"bars need the columns {', '.join(missing)}", code="bad_request")
    extra = [c for c in table.column_names if c not in _BAR_FIELDS]
    if extra:
        raise InvalidRequestError(f"unknown bar columns: {', '.join(extra)} (known: {', '.join(_BAR_FIELDS)})", code="bad_request")
    rows = table.to_pylist()
    for r in rows:
        t = r["ts"]
        if isinstance(t, (_dt.datetime, pd.Timestamp)):
            r["ts"] = pd.Timestamp(t).isoformat()
        elif isinstance(t, _dt.date):
            r["ts"] = t.isoformat()
        if r.get("interval_s") is None:
            r.pop("interval_s", None)
        v = r.get("volume")
        if isinstance(v, float) and v.is_integer():
            r["volume"] = int(v)
    return rows


class OnlineResponse:
    """The answer of :meth:`Client.get_online_features`, shaped like Feast's."""

    def __init__(
        self,
        entity_columns: Dict[str, List[Any]],
        values: Dict[str, List[Any]],
        timestamps: Dict[str, List[Any]],
        errors: List[Dict[str, str]],
        metadata: Dict[str, Any],
    ) -> None:
        self._entities = entity_columns
        self._values = values
        self._timestamps = timestamps
        self.errors: List[Dict[str, str]] = errors
        """Per entity row: ``{view: error code}`` for every view that had no values for it."""
        self.metadata: Dict[str, Any] = metadata
        """Per view: the ``version``, ``timestamp`` (as of) and ``rule`` the server applied."""

    def to_dict(self, include_event_timestamps: bool = False) -> Dict[str, List[Any]]:
        """``{column: [value per entity row]}``: the entity columns, then one per feature; with
        ``include_event_timestamps`` also ``{feature}__ts`` (the value's event time)."""
        out: Dict[str, List[Any]] = {k: list(v) for k, v in self._entities.items()}
        for col, vals in self._values.items():
            out[col] = list(vals)
            if include_event_timestamps:
                out[f"{col}__ts"] = list(self._timestamps[col])
        return out

    def to_arrow(self, include_event_timestamps: bool = False) -> pa.Table:
        """The answer as an Arrow table."""
        d = self.to_dict(include_event_timestamps)
        return pa.table({k: pa.array(v) for k, v in d.items()})

    def to_df(self, include_event_timestamps: bool = False) -> pd.DataFrame:
        """The answer as a pandas DataFrame (missing values NaN / None)."""
        return pd.DataFrame(self.to_dict(include_event_timestamps))

    def to_polars(self, include_event_timestamps: bool = False) -> "pl.DataFrame":
        """The answer as a polars DataFrame."""
        import polars as pl

        return pl.from_arrow(self.to_arrow(include_event_timestamps))  # type: ignore[return-value]

    def __repr__(self) -> str:
        return f"OnlineResponse({self.to_dict()!r})"


class Subscription:
    """A live Server-Sent Events stream of feature rows; an iterator of dicts.

    Made by :meth:`Client.subscribe`. ``subscribed`` holds the server's confirmation
    (``{"view", "entity_ids"}``)."""

    def __init__(
        self,
        session: requests.Session,
        url: str,
        params: List[Tuple[str, str]],
        timeout: Optional[float],
        connect_timeout: float,
    ) -> None:
        self.timeout = timeout
        self.closed = False
        try:
            self._resp = session.get(
                url,
                params=params,
                stream=True,
                headers={"Accept": "text/event-stream"},
                timeout=(connect_timeout, timeout),
            )
        except requests.RequestException as e:
            raise ServiceUnavailableError(f"GET {url}: {e}", code="unavailable", protocol="http") from None
        if self._resp.status_code != 200:
            try:
                body = self._resp.json()
            except ValueError:
                body = None
            status, text = self._resp.status_code, self._resp.text[:500]
            self._resp.close()
            raise _errors.from_http(status, body, text)
        self._events = self._parse()
        self.subscribed: Optional[Dict[str, Any]] = None
        # The first event confirms the subscription: from here on nothing computed is missed.
        first = self._next_event(self.timeout if self.timeout is not None else connect_timeout)
        if first is None:
            self.close()
            raise QueryTimeoutError("the server did not confirm the subscription", code="timeout", protocol="http")
        while first is not None and first[0] == ":":
            first = self._next_event(None)
        if first is None:
            self.close()
            raise QueryTimeoutError("the server did not confirm the subscription", code="timeout", protocol="http")
        name, data = first
        if name != "subscribed":
            self._pending: Optional[Tuple[str, Any]] = first
        else:
            self._pending = None
            self.subscribed = data

    def _parse(self) -> Iterator[Tuple[str, Any]]:
        buf = b""
        event, data = "message", []  # type: str, List[str]
        for chunk in self._resp.iter_content(chunk_size=None):
            buf += chunk
            while True:
                nl = buf.find(b"\n")
                if nl < 0:
                    break
                line, buf = buf[:nl].rstrip(b"\r").decode("utf-8"), buf[nl + 1 :]
                if line == "":
                    if data:
                        text = "\n".join(data)
                        try:
                            payload: Any = json.loads(text)
                        except ValueError:
                            payload = text
                        yield event, payload
                    event, data = "message", []
                elif line.startswith(":"):
                    yield ":", None  # a keep-alive comment: lets the caller check its deadline
                else:
                    k, _, v = line.partition(":")
                    v = v[1:] if v.startswith(" ") else v
                    if k == "event":
                        event = v
                    elif k == "data":
                        data.append(v)

    def _next_event(self, _timeout: Optional[float]) -> Optional[Tuple[str, Any]]:
        try:
            return next(self._events)
        except StopIteration:
            return None
        except (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError, requests.Timeout) as e:
            if "timed out" in str(e).lower() or isinstance(e, requests.Timeout):
                return None
            if self.closed:
                return None
            raise ServiceUnavailableError(f"the stream broke: {e}", code="unavailable", protocol="http") from None
        except (AttributeError, ValueError):
            # Reading a response closed by close() from another thread.
            if self.closed:
                return None
            raise

    def __iter__(self) -> "Subscription":
        return self

    def __next__(self) -> Dict[str, Any]:
        started = time.monotonic()
        while True:
            if self.closed:
                raise StopIteration
            if self.timeout is not None and time.monotonic() - started > self.timeout:
                self.close()
                raise StopIteration
            if self._pending is not None:
                ev, self._pending = self._pending, None
            else:
                ev = self._next_event(self.timeout)
            if ev is None:
                self.close()
                raise StopIteration
            name, data = ev
            if name == "features":
                return data  # type: ignore[no-any-return]
            if name == "subscribed":
                self.subscribed = data
                continue
            if name == "dropped":
                self.close()
                raise StreamDroppedError(
                    f"the server dropped the subscription: {data}", code="dropped", status=200, protocol="http", details=data
                )
            # Unknown event kinds are skipped (forward compatible).

    def take(self, n: int) -> List[Dict[str, Any]]:
        """Up to ``n`` rows: fewer when the timeout passes first."""
        out = []
        for row in self:
            out.append(row)
            if len(out) >= n:
                break
        return out

    def close(self) -> None:
        """End the subscription (closes the HTTP stream)."""
        self.closed = True
        try:
            self._resp.close()
        except Exception:  # noqa: BLE001
            pass

    def __enter__(self) -> "Subscription":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
