//! Pause points for crash tests. When `BHAVSTORE_FAILPOINT` names a point, a run reaching it
//! prints `FAILPOINT {name} reached` on stderr and waits: until the file named by
//! `BHAVSTORE_FAILPOINT_RESUME` exists, or forever (the test kills the process there). Unset in
//! production, where each point costs one environment lookup.

use std::time::Duration;

/// The lock is held, nothing written yet.
pub const LOCKED: &str = "locked";
/// Feature files written, tail and manifest not.
pub const DATA_WRITTEN: &str = "data_written";
/// Tail written, manifest not.
pub const TAIL_WRITTEN: &str = "tail_written";
/// Manifest published, cleanup and records not done.
pub const PUBLISHED: &str = "published";

/// Pauses here if the environment asks for it.
pub async fn reach(point: &str) {
    let Ok(wanted) = std::env::var("BHAVSTORE_FAILPOINT") else { return };
    if wanted != point {
        return;
    }
    eprintln!("FAILPOINT {point} reached");
    let resume = std::env::var("BHAVSTORE_FAILPOINT_RESUME").ok();
    loop {
        if resume.as_deref().is_some_and(|f| std::path::Path::new(f).exists()) {
            eprintln!("FAILPOINT {point} resumed");
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
