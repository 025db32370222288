//! bhavstore: a single-node feature server for BSE equity data.
//!
//! See `ARCHITECTURE.md` at the repository root for the bird's-eye view. In short:
//! [`source`] downloads from BSE, [`ingest`] keeps the raw bytes in [`storage`] under keys from
//! [`paths`] and normalises them through [`formats`] into the canonical Parquet table that
//! [`catalog`] serves as SQL. [`cli`] is the `bhavstore` command.

pub mod catalog;
pub mod cli;
pub mod config;
pub mod features;
pub mod flight;
pub mod formats;
pub mod ingest;
pub mod materialize;
pub mod mlflow;
pub mod online;
pub mod paths;
pub mod pg;
pub mod rest;
pub mod schedule;
pub mod serve;
pub mod source;
pub mod sqlguard;
pub mod storage;
pub mod training;
