//! The binary starts and explains itself. (Being an integration test of this package also makes
//! `cargo test --workspace` build `bhavstore` with the workspace's features, which the
//! end-to-end tests in `tests/` then run.)

use std::process::Command;

#[test]
fn binary_prints_help_and_version() {
    let out = Command::new(env!("CARGO_BIN_EXE_bhavstore")).arg("--help").output().expect("run bhavstore");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Usage: bhavstore"), "{text}");
    let out = Command::new(env!("CARGO_BIN_EXE_bhavstore")).arg("--version").output().expect("run bhavstore");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("bhavstore {}", env!("CARGO_PKG_VERSION")));
}
