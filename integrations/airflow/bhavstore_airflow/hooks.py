"""Hooks: bhavstore's REST API, and finding a materialization's run in MLflow.

``BhavstoreHook`` reads an Airflow connection (default ``bhavstore_default``, type ``http``):
host, port and schema (``http`` or ``https``) make the base URL, the password is the bearer
token (``server.tokens`` on the server; leave it empty for a server without tokens). A host
given as a whole URL (``https://features.example.com``) is used as it is.

Every error answer of the API is JSON, ``{"error": {"code": ..., "message": ...}}``; the hook
raises ``BhavstoreApiError`` (an ``AirflowException``) carrying the HTTP status, that code and
that message, so a failed task's log says what the server said.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import requests
from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowException

class BhavstoreApiError(AirflowException):
    """An error answer of bhavstore's REST API (or no answer at all)."""

    def __init__(self, status: int | None, code: str, message: str, run_id: str | None = None) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.run_id = run_id
        where = f"HTTP {status}" if status is not None else "no answer"
        run = f" (run {run_id})" if run_id else ""
        super().__init__(f"bhavstore: {where} {code}: {message}{run}")


@dataclass(frozen=True)
class MaterializeResult:
    """One view's materialization inside an ingest run."""

    view: str
    #: The view's version (``v`` + hash of its definition), ``-`` when nothing was published.
    version: str
    #: ``succeeded`` or ``warning`` (a quality threshold was crossed; the data is published).
    status: str
    #: ``full``, ``incremental``, ``recompute`` or ``none`` (nothing new to compute).
    mode: str
    #: Rows the run wrote.
    rows: int
    #: bhavstore's materialization run id (``bhavstore_runs.run_id``, MLflow tag
    #: ``bhavstore.run_id``), when the server reported one for this view.
    run_id: str | None = None
    #: Why the run is a ``warning``: the quality thresholds it crossed.
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A plain dict, for XCom."""
        return asdict(self)


@dataclass(frozen=True)
class RunStatus:
    """``GET /feature-store/runs/{id}``."""

    run_id: str
    #: ``running``, ``succeeded`` or ``failed``.
    status: str
    message: str
    started_at: str | None = None
    finished_at: str | None = None
    #: Materialization run ids.
    materialize_runs: list[str] = field(default_factory=list)
    #: The records of those runs, as ``bhavstore_runs`` shows them.
    records: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> RunStatus:
        """Parses the server's answer."""
        return cls(
            run_id=str(body["run_id"]),
            status=str(body["status"]),
            message=str(body.get("message", "")),
            started_at=body.get("started_at"),
            finished_at=body.get("finished_at"),
            materialize_runs=[str(r) for r in body.get("materialize_runs") or []],
            # The server's answer names them `materializations`; a status passed on through
            # XCom (`to_dict`) names them `records`.
            records=[dict(r) for r in body.get("materializations") or body.get("records") or []],
        )

    @property
    def finished(self) -> bool:
        """Whether the run has ended, one way or the other."""
        return self.status != "running"

    def materializations(self) -> list[MaterializeResult]:
        """The views the run materialized, from the run status's ``materializations`` (the
        ``bhavstore_runs`` records of its materialization runs)."""
        return [
            MaterializeResult(
                view=str(r.get("view") or ""),
                version=str(r.get("version") or "-"),
                status=str(r.get("status") or ""),
                mode=str(r.get("mode") or "-"),
                rows=int(r.get("rows") or 0),
                run_id=r.get("run_id"),
                warnings=[str(w) for w in r.get("warnings") or []],
            )
            for r in self.records
        ]

    def to_dict(self) -> dict[str, Any]:
        """A plain dict, for XCom."""
        return asdict(self)


class BhavstoreHook(BaseHook):
    """bhavstore's REST API, with the base URL and bearer token of an Airflow connection."""

    conn_name_attr = "bhavstore_conn_id"
    default_conn_name = "bhavstore_default"
    conn_type = "http"
    hook_name = "bhavstore"

    def __init__(self, bhavstore_conn_id: str = default_conn_name, timeout: float = 60.0) -> None:
        super().__init__()
        self.bhavstore_conn_id = bhavstore_conn_id
        self.timeout = timeout
        self._session: requests.Session | None = None
        self._base_url: str | None = None

    @property
    def base_url(self) -> str:
        """``scheme://host:port`` of the server, from the connection."""
        if self._base_url is None:
            conn = self.get_connection(self.bhavstore_conn_id)
            host = (conn.host or "").rstrip("/")
            if not host:
                raise AirflowException(f"connection {self.bhavstore_conn_id!r} has no host")
            if "://" in host:
                base = host
            else:
                base = f"{conn.schema or 'http'}://{host}"
                if conn.port:
                    base += f":{conn.port}"
            self._base_url = base
        return self._base_url

    def get_conn(self) -> requests.Session:
        """A session that sends the connection's password as the bearer token."""
        if self._session is None:
            conn = self.get_connection(self.bhavstore_conn_id)
            session = requests.Session()
            if conn.password:
                session.headers["Authorization"] = f"Bearer {conn.password}"
            session.headers["Accept"] = "application/json"
            self._session = session
        return self._session

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        ok: tuple[int, ...] = (200,),
    ) -> tuple[int, dict[str, Any]]:
        """Sends one request; answers (status, JSON body) for the statuses in ``ok``."""
        url = f"{self.base_url}{path}"
        try:
            resp = self.get_conn().request(method, url, params=params, json=json, timeout=self.timeout)
        except requests.RequestException as e:
            raise BhavstoreApiError(None, "unreachable", f"{method} {url}: {e}") from e
        try:
            body = resp.json()
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {"value": body}
        if resp.status_code in ok:
            return resp.status_code, body
        err = body.get("error")
        if isinstance(err, dict):
            code, message = str(err.get("code", "error")), str(err.get("message", ""))
        else:
            code, message = "http_error", resp.text[:500]
        raise BhavstoreApiError(resp.status_code, code, message, body.get("run_id"))

    def health(self) -> dict[str, Any]:
        """``GET /health`` (no token needed)."""
        return self._call("GET", "/health")[1]

    def ingest(
        self,
        feature_view: str,
        data_source: str,
        features: list[str] | None = None,
        timestamp: str | None = None,
    ) -> dict[str, Any]:
        """``POST /feature-store/ingest``: loads ``data_source`` (a trade date ``YYYY-MM-DD``
        fetched from BSE, or an ``s3://`` / ``file://`` location inside the server's
        ``server.import_roots``), then materializes ``feature_view``.

        Answers the body of ``200`` (finished: ``status`` ``success``) or ``202`` (still working:
        ``status`` ``accepted``); both carry ``run_id``. A run that failed within the server's
        wait (``422 ingest_failed``) raises, with the run id.
        """
        body: dict[str, Any] = {"feature_view": feature_view, "data_source": data_source}
        if features:
            body["features"] = list(features)
        if timestamp:
            body["timestamp"] = timestamp
        # The server waits up to 20 s before answering 202.
        return self._call("POST", "/feature-store/ingest", json=body, ok=(200, 202))[1]

    def run_status(self, run_id: str) -> RunStatus:
        """``GET /feature-store/runs/{id}``. Run statuses live in the server's memory: after a
        restart the id is unknown (``404 unknown_run``)."""
        return RunStatus.from_json(self._call("GET", f"/feature-store/runs/{run_id}")[1])

    def lookup(self, entity_id: str | int, feature_name: str, timestamp: str | None = None) -> dict[str, Any]:
        """``GET /feature-store/lookup``: the value known at ``timestamp`` (RFC 3339; now when
        omitted)."""
        params: dict[str, Any] = {"entity_id": entity_id, "feature_name": feature_name}
        if timestamp:
            params["timestamp"] = timestamp
        return self._call("GET", "/feature-store/lookup", params=params)[1]

    def lookup_batch(
        self, entity_ids: list[str | int], feature_names: list[str], timestamp: str | None = None
    ) -> dict[str, Any]:
        """``POST /feature-store/lookup/batch``; per-entity errors are inline in ``results``."""
        body: dict[str, Any] = {"entity_ids": entity_ids, "feature_names": feature_names}
        if timestamp:
            body["timestamp"] = timestamp
        return self._call("POST", "/feature-store/lookup/batch", json=body)[1]


class MlflowLinkFinder:
    """Finds the MLflow run bhavstore logged for a materialization, through MLflow's REST API.

    bhavstore logs each materialization run to experiment ``{experiment_prefix}{view}``
    (``mlflow.experiment_prefix``, default ``bhavstore/``) with the tag ``bhavstore.run_id``;
    the run status of the REST API does not report the MLflow run id, so it is searched for.
    """

    def __init__(
        self,
        tracking_uri: str,
        experiment_prefix: str = "bhavstore/",
        auth: tuple[str, str] | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.tracking_uri = tracking_uri.rstrip("/")
        self.experiment_prefix = experiment_prefix
        self.auth = auth
        self.timeout = timeout

    def _api(self, method: str, path: str, **kw: Any) -> requests.Response:
        url = f"{self.tracking_uri}/api/2.0/mlflow/{path}"
        try:
            return requests.request(method, url, auth=self.auth, timeout=self.timeout, **kw)
        except requests.RequestException as e:
            raise AirflowException(f"MLflow at {self.tracking_uri} unreachable: {e}") from e

    def experiment_id(self, view: str) -> str | None:
        """The id of the view's experiment, or None when it does not exist."""
        name = f"{self.experiment_prefix}{view}"
        resp = self._api("GET", "experiments/get-by-name", params={"experiment_name": name})
        if resp.status_code == 404:
            return None
        if resp.status_code != 200:
            raise AirflowException(f"MLflow experiments/get-by-name {name!r}: HTTP {resp.status_code} {resp.text[:300]}")
        return str(resp.json()["experiment"]["experiment_id"])

    def find(self, view: str, bhavstore_run_id: str) -> str | None:
        """The MLflow UI link of the run tagged ``bhavstore.run_id = bhavstore_run_id``, or
        None when MLflow has no such run."""
        experiment_id = self.experiment_id(view)
        if experiment_id is None:
            return None
        resp = self._api(
            "POST",
            "runs/search",
            json={
                "experiment_ids": [experiment_id],
                "filter": f"tags.`bhavstore.run_id` = '{bhavstore_run_id}'",
                "max_results": 1,
            },
        )
        if resp.status_code != 200:
            raise AirflowException(f"MLflow runs/search: HTTP {resp.status_code} {resp.text[:300]}")
        runs = resp.json().get("runs") or []
        if not runs:
            return None
        mlflow_run_id = runs[0]["info"]["run_id"]
        return f"{self.tracking_uri}/#/experiments/{experiment_id}/runs/{mlflow_run_id}"
