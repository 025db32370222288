//! bhavstore: a single-node feature server for BSE equity data.
//!
//! This crate is the `bhavstore` command: the CLI ([`cli`]) and the root configuration
//! ([`config`]) that assembles each layer's section. The work is done by the library crates
//! under `server/crates/` (see `ARCHITECTURE.md`): `bhavstore-ingest` downloads from BSE and keeps
//! the raw bytes, `bhavstore-materialize` computes feature views into versioned Parquet, the
//! `bhavstore-query` catalog and the `bhavstore-online` store read what the `bhavstore-lake`
//! publisher publishes, and `bhavstore-serving` puts them on the wire.

pub mod cli;
pub mod config;
