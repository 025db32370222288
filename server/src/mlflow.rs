//! MLflow tracking over its REST API (being written).
