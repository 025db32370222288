"""Airflow hooks and operators for bhavstore's REST API.

The daily DAG (``dags/bhavstore_daily.py``) is built from these: ingest a trade day, wait for
the run, read its materialization, gate on data quality and log the MLflow run's link.
"""

from bhavstore_airflow.hooks import BhavstoreHook, MaterializeResult, MlflowLinkFinder, RunStatus
from bhavstore_airflow.operators import (
    BhavstoreIngestOperator,
    BhavstoreMaterializationOperator,
    BhavstoreMlflowLinkOperator,
    BhavstoreQualityGateOperator,
    BhavstoreRunSensor,
)

__all__ = [
    "BhavstoreHook",
    "BhavstoreIngestOperator",
    "BhavstoreMaterializationOperator",
    "BhavstoreMlflowLinkOperator",
    "BhavstoreQualityGateOperator",
    "BhavstoreRunSensor",
    "MaterializeResult",
    "MlflowLinkFinder",
    "RunStatus",
]
