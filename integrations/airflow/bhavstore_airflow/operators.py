"""Operators and a sensor for the daily bhavstore flow.

ingest (``BhavstoreIngestOperator``) -> wait (``BhavstoreRunSensor``) -> materialization
(``BhavstoreMaterializationOperator``) -> quality gate (``BhavstoreQualityGateOperator``) and
MLflow link (``BhavstoreMlflowLinkOperator``). Each passes what the next needs through XCom
(its return value).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseHook, BaseOperator, BaseSensorOperator, Connection, PokeReturnValue, Variable
from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSkipException

from bhavstore_airflow.hooks import BhavstoreApiError, BhavstoreHook, MaterializeResult, MlflowLinkFinder, RunStatus

#: How the server words a day BSE has no file for (the run's message).
_NO_FILE = "BSE has no bhavcopy for"


class BhavstoreIngestOperator(BaseOperator):
    """Asks bhavstore to load ``data_source`` and materialize ``feature_view``; returns the
    run id.

    ``data_source`` is a trade date ``YYYY-MM-DD`` (the server fetches BSE's bhavcopy of that
    day) or an ``s3://`` / ``file://`` location under the server's ``server.import_roots``.
    The server answers within 20 s, with the result or with the run id to poll; a run that
    failed in that time fails the task with the server's message. With ``skip_when_no_file``
    a day BSE published nothing for (holiday) skips the task, and so the rest of the DAG run,
    instead of failing it.
    """

    template_fields: Sequence[str] = ("feature_view", "data_source", "timestamp")

    def __init__(
        self,
        *,
        feature_view: str,
        data_source: str,
        features: Sequence[str] | None = None,
        timestamp: str | None = None,
        skip_when_no_file: bool = False,
        bhavstore_conn_id: str = BhavstoreHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.feature_view = feature_view
        self.data_source = data_source
        self.features = list(features or [])
        self.timestamp = timestamp
        self.skip_when_no_file = skip_when_no_file
        self.bhavstore_conn_id = bhavstore_conn_id

    def execute(self, context: Any) -> str:
        hook = BhavstoreHook(self.bhavstore_conn_id)
        try:
            body = hook.ingest(self.feature_view, self.data_source, self.features, self.timestamp)
        except BhavstoreApiError as e:
            if self.skip_when_no_file and e.code == "ingest_failed" and e.message.startswith(_NO_FILE):
                raise AirflowSkipException(e.message) from e
            raise
        run_id = str(body["run_id"])
        self.log.info(
            "bhavstore %s run %s for %s -> %s: %s",
            body.get("status"),
            run_id,
            self.data_source,
            self.feature_view,
            body.get("message", ""),
        )
        return run_id


class BhavstoreRunSensor(BaseSensorOperator):
    """Waits for an ingest run to finish; returns its status (a dict) when it succeeded, fails
    with the server's message when it failed.

    Run statuses live in the server's memory: if the server restarted meanwhile the run is
    unknown and the sensor fails (re-run the ingest task). Use ``mode="reschedule"`` for runs
    that take long, so the sensor does not hold a worker slot.
    """

    template_fields: Sequence[str] = ("run_id",)

    def __init__(
        self,
        *,
        run_id: str,
        bhavstore_conn_id: str = BhavstoreHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("poke_interval", 5)
        kwargs.setdefault("timeout", 60 * 60)
        super().__init__(**kwargs)
        self.run_id = run_id
        self.bhavstore_conn_id = bhavstore_conn_id

    def poke(self, context: Any) -> PokeReturnValue | bool:
        status = BhavstoreHook(self.bhavstore_conn_id).run_status(self.run_id)
        self.log.info("bhavstore run %s: %s: %s", status.run_id, status.status, status.message)
        if not status.finished:
            return False
        if status.status != "succeeded":
            raise AirflowException(f"bhavstore run {status.run_id} {status.status}: {status.message}")
        return PokeReturnValue(is_done=True, xcom_value=status.to_dict())


class BhavstoreMaterializationOperator(BaseOperator):
    """The materialization of ``feature_view`` that the ingest run did; returns it (a dict).

    bhavstore materializes inside the ingest run (``POST /feature-store/ingest`` loads the day,
    then materializes the view, then refreshes the online store; the REST API has no separate
    materialize call), so this step does not start work: it reads the finished run and fails
    when the view was not materialized. ``run_status`` is the sensor's return value.
    """

    template_fields: Sequence[str] = ("feature_view", "run_status")

    def __init__(self, *, feature_view: str, run_status: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.feature_view = feature_view
        self.run_status = run_status

    def execute(self, context: Any) -> dict[str, Any]:
        if not isinstance(self.run_status, dict):
            raise AirflowException(f"no run status to read (got {self.run_status!r})")
        status = RunStatus.from_json(self.run_status)
        found = [m for m in status.materializations() if m.view == self.feature_view]
        if not found:
            raise AirflowException(
                f"bhavstore run {status.run_id} reports no materialization of {self.feature_view}: {status.message}"
            )
        result = found[0]
        self.log.info(
            "%s@%s: %s, mode %s, %d rows (materialization run %s)",
            result.view,
            result.version,
            result.status,
            result.mode,
            result.rows,
            result.run_id,
        )
        return result.to_dict()


class BhavstoreQualityGateOperator(BaseOperator):
    """Fails (without retries) when the materialization's status is not ``succeeded``.

    bhavstore publishes the data of a run that crossed a ``materialize.quality`` threshold, and
    marks the run ``warning``; this gate turns that into a failed task, so the DAG run fails
    and whatever follows it (training, exports) does not run on suspicious data. The failure
    names the thresholds crossed (the run record's ``warnings``); figures are in
    ``bhavstore_quality`` (SQL) and in the MLflow run.
    """

    template_fields: Sequence[str] = ("materialization",)

    def __init__(self, *, materialization: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.materialization = materialization

    def execute(self, context: Any) -> dict[str, Any]:
        if not isinstance(self.materialization, dict):
            raise AirflowException(f"no materialization to check (got {self.materialization!r})")
        m = MaterializeResult(**self.materialization)
        if m.status != "succeeded":
            why = "; ".join(m.warnings) or f"see SELECT warnings FROM bhavstore_runs WHERE run_id = '{m.run_id}'"
            raise AirflowFailException(
                f"quality gate: {m.view}@{m.version} materialization run {m.run_id} ended {m.status!r}: {why}"
            )
        self.log.info("quality gate passed: %s@%s %s", m.view, m.version, m.status)
        return m.to_dict()


class BhavstoreMlflowLinkOperator(BaseOperator):
    """Logs (and returns) the MLflow UI link of the materialization's MLflow run.

    The tracking URI comes from the connection ``mlflow_conn_id`` (type ``http``: host, port,
    schema; login and password for basic auth) or, without it, the Variable
    ``tracking_uri_variable``. With neither the task is skipped. A run MLflow does not have
    (bhavstore only warns when MLflow is down) is logged as a warning, not a failure.

    In the DAG it runs beside the quality gate, so a run with warnings gets its link too.
    """

    template_fields: Sequence[str] = ("materialization", "experiment_prefix")

    def __init__(
        self,
        *,
        materialization: Any,
        mlflow_conn_id: str = "mlflow_default",
        tracking_uri_variable: str = "bhavstore_mlflow_tracking_uri",
        experiment_prefix: str = "bhavstore/",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.materialization = materialization
        self.mlflow_conn_id = mlflow_conn_id
        self.tracking_uri_variable = tracking_uri_variable
        self.experiment_prefix = experiment_prefix

    def _finder(self) -> MlflowLinkFinder | None:
        conn: Connection | None
        try:
            conn = BaseHook.get_connection(self.mlflow_conn_id)
        except Exception:  # noqa: BLE001 - an absent connection is reported in many ways
            conn = None
        if conn is not None and conn.host:
            host = conn.host.rstrip("/")
            uri = host if "://" in host else f"{conn.schema or 'http'}://{host}" + (f":{conn.port}" if conn.port else "")
            auth = (conn.login or "", conn.password or "") if conn.login else None
            return MlflowLinkFinder(uri, self.experiment_prefix, auth)
        uri = Variable.get(self.tracking_uri_variable, default=None)
        return MlflowLinkFinder(uri, self.experiment_prefix) if uri else None

    def execute(self, context: Any) -> str | None:
        if not isinstance(self.materialization, dict):
            raise AirflowSkipException("no materialization to link (an earlier task failed)")
        m = MaterializeResult(**self.materialization)
        finder = self._finder()
        if finder is None:
            raise AirflowSkipException(
                f"no MLflow tracking URI: set connection {self.mlflow_conn_id!r} or Variable {self.tracking_uri_variable!r}"
            )
        if not m.run_id:
            self.log.warning("bhavstore reported no materialization run id for %s; nothing to link", m.view)
            return None
        link = finder.find(m.view, m.run_id)
        if link is None:
            self.log.warning(
                "MLflow at %s has no run tagged bhavstore.run_id=%s in experiment %s%s (was mlflow.tracking_uri set on the server, and MLflow up?)",
                finder.tracking_uri,
                m.run_id,
                self.experiment_prefix,
                m.view,
            )
            return None
        self.log.info("MLflow run of %s@%s (%s): %s", m.view, m.version, m.status, link)
        return link
