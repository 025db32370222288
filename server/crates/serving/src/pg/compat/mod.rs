//! What Postgres clients expect of a Postgres server beyond `datafusion-postgres`: one
//! Postgres-shaped version everywhere, the catalog functions drivers and ORMs call, result
//! column names and types as Postgres gives them, spellings DataFusion cannot plan, and the
//! session statements that change nothing on a read-only server. Each part answers what
//! Postgres answers for our objects (tables and views, no keys, indexes, sequences, locks or
//! notifications); what makes no sense here fails with a Postgres error code that says why.

pub mod catalog;
pub mod functions;
pub mod names;
pub mod rewrite;
pub mod statements;
pub mod types;

pub use functions::{server_version, version_text};
