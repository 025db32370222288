"""bhavstore_daily: the day's BSE bhavcopy into bhavstore, every weekday after 20:00 IST.

ingest -> wait_for_run -> materialize -> quality_gate
                                      \-> mlflow_link

- ``ingest``: ``POST /feature-store/ingest`` for the trade date of the run (the logical date
  in Asia/Kolkata) and the view ``price_features``. The server fetches the day from BSE, loads
  it, materializes the view and refreshes its online store, as one run.
- ``wait_for_run``: polls ``GET /feature-store/runs/{id}`` until the run ends.
- ``materialize``: the view's materialization in that run (version, mode, rows, status, run
  id); fails if the view was not materialized. It starts no work: the REST API materializes
  inside the ingest run and has no separate materialize call.
- ``quality_gate``: fails the DAG run when the materialization ended ``warning`` (a
  ``materialize.quality`` threshold crossed).
- ``mlflow_link``: logs the MLflow run's link (connection ``mlflow_default`` or Variable
  ``bhavstore_mlflow_tracking_uri``; skipped without either). It runs beside the gate, not
  after it: a run with quality warnings is the one whose MLflow figures are worth opening, and
  the gate stays a leaf task, so its failure fails the DAG run (Airflow decides a DAG run's
  state from its leaves).

BSE publishes the bhavcopy in the evening; a day it has not published yet fails ``ingest``,
which retries every 15 minutes (the server's own scheduler does the same until 23:45 IST).
Connection ``bhavstore_default`` (type http): host, port, schema, and the token as password.
Params (``airflow dags trigger -c '{"feature_view": ...}'``) override the view.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, CronTriggerTimetable, Param

from bhavstore_airflow import (
    BhavstoreIngestOperator,
    BhavstoreMaterializationOperator,
    BhavstoreMlflowLinkOperator,
    BhavstoreQualityGateOperator,
    BhavstoreRunSensor,
)

#: The trade date of a run: its logical date in India (a run triggered at 20:00 IST on a
#: Tuesday ingests that Tuesday; ``airflow dags test bhavstore_daily 2015-05-12`` ingests
#: 2015-05-12).
TRADE_DATE = "{{ logical_date.in_timezone('Asia/Kolkata').strftime('%Y-%m-%d') }}"

with DAG(
    dag_id="bhavstore_daily",
    description="Ingest the day's BSE bhavcopy, materialize, gate on quality, link the MLflow run",
    # 20:15 IST Monday to Friday: BSE publishes the day's bhavcopy in the evening.
    schedule=CronTriggerTimetable("15 20 * * 1-5", timezone="Asia/Kolkata"),
    # Early, so that any past trade date can be run (``airflow dags test``, backfills); a task
    # whose start date is after the logical date is not run at all. No catch-up.
    start_date=datetime(2000, 1, 1),
    catchup=False,
    max_active_runs=1,
    params={"feature_view": Param("price_features", type="string", description="The view to materialize")},
    default_args={"retries": 0},
    tags=["bhavstore", "bse"],
) as dag:
    ingest = BhavstoreIngestOperator(
        task_id="ingest",
        feature_view="{{ params.feature_view }}",
        data_source=TRADE_DATE,
        timestamp="{{ logical_date.isoformat() }}",
        retries=8,
        retry_delay=timedelta(minutes=15),
    )
    wait = BhavstoreRunSensor(
        task_id="wait_for_run",
        run_id=ingest.output,
        poke_interval=5,
        timeout=timedelta(hours=2),
        mode="poke",
    )
    materialize = BhavstoreMaterializationOperator(
        task_id="materialize",
        feature_view="{{ params.feature_view }}",
        run_status=wait.output,
    )
    gate = BhavstoreQualityGateOperator(task_id="quality_gate", materialization=materialize.output)
    mlflow_link = BhavstoreMlflowLinkOperator(task_id="mlflow_link", materialization=materialize.output)
    ingest >> wait >> materialize >> [gate, mlflow_link]
