//! Materialization (being written).
