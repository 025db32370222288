//! Running the real `bhavstore` binary.

use std::path::PathBuf;
use std::process::{Command, Output};

/// Path of the `bhavstore` binary built beside this test (`cargo build -p bhavstore` first;
/// `scripts/test` does). `BHAVSTORE_BIN` overrides it.
#[must_use]
pub fn bhavstore_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("BHAVSTORE_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<test> -> target/<profile>/bhavstore
    let dir = exe.parent().and_then(|p| p.parent()).expect("target dir");
    let bin = dir.join("bhavstore");
    assert!(
        bin.is_file(),
        "{} not found: run the suite with `cargo test --workspace` or scripts/test, which build it",
        bin.display()
    );
    bin
}

/// A `bhavstore` command with a clean environment for config (no stray `BHAVSTORE_*`).
#[must_use]
pub fn bhavstore() -> Command {
    let mut c = Command::new(bhavstore_bin());
    for (k, _) in std::env::vars() {
        if k.starts_with("BHAVSTORE_") {
            c.env_remove(k);
        }
    }
    c.env("RUST_LOG", "warn");
    c
}

/// Runs a command and returns its output, panicking with both streams if it cannot start.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// Standard output as text.
#[must_use]
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Standard error as text.
#[must_use]
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
