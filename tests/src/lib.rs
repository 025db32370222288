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
