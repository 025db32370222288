//! Shared fixtures for bhavstore's end-to-end tests: the real BSE files in `../shared`, a fake
//! BSE web server on 127.0.0.1, storage roots on the local filesystem and on a real S3 server,
//! and the `bhavstore` binary.

pub mod bin;
pub mod fake_bse;
pub mod hostile;
pub mod real_data;
pub mod seaweed;
pub mod serve;
pub mod storage_roots;
pub mod synthetic;

/// This crate's directory (`tests/`). Read at run time, where cargo and nextest set it: a test
/// binary cargo reuses from a build in another checkout keeps the compile-time path of that
/// checkout, which may no longer exist.
#[must_use]
pub fn crate_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| env!("CARGO_MANIFEST_DIR").into(), Into::into)
}
