//! One run per view at a time. Within a process a set of running views answers at once; across
//! processes (a CLI run while `serve` is up) a lock object created with a create-only put does.
//! A lock left by a killed process is taken over when its process is gone (same host) or its
//! lease has run out (another host).

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};

use bytes::Bytes;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::MaterializeError;
use crate::paths;
use crate::storage::{Created, Storage};

/// How long a lock from another host is honoured.
const LEASE: Duration = Duration::hours(6);

#[derive(Debug, Serialize, Deserialize)]
struct LockBody {
    run_id: String,
    pid: u32,
    host: String,
    acquired_at: DateTime<Utc>,
}

fn running() -> &'static Mutex<HashSet<String>> {
    static RUNNING: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    RUNNING.get_or_init(Default::default)
}

/// Name of this machine, for lock and run records.
#[must_use]
pub fn host_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}

/// Whether process `pid` of this host is alive.
#[must_use]
pub fn process_alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// A held lock; release it with [`ViewLock::release`].
#[derive(Debug)]
pub struct ViewLock {
    key: String,
    local: String,
}

impl ViewLock {
    /// Takes the lock of `view` for `run_id`.
    pub async fn acquire(storage: &Storage, view: &str, run_id: &str) -> Result<Self, MaterializeError> {
        let local = format!("{}|{view}", storage.display());
        if !running().lock().map_err(|_| MaterializeError::Corrupt("lock table poisoned".into()))?.insert(local.clone())
        {
            return Err(MaterializeError::Busy(format!("a run of {view} is already going in this process")));
        }
        let key = paths::view_lock(view);
        let body =
            LockBody { run_id: run_id.into(), pid: std::process::id(), host: host_name(), acquired_at: Utc::now() };
        let bytes = Bytes::from(serde_json::to_vec(&body).map_err(|e| MaterializeError::Corrupt(e.to_string()))?);
        let result = async {
            for _ in 0..3 {
                if storage.put_create(&key, bytes.clone()).await? == Created::New {
                    return Ok(());
                }
                let held: Option<LockBody> = storage.get(&key).await?.and_then(|b| serde_json::from_slice(&b).ok());
                match held {
                    Some(h) if h.host == body.host && !process_alive(h.pid) => {
                        tracing::warn!(view, stale_run = %h.run_id, pid = h.pid, "taking over the lock of a run whose process is gone");
                    }
                    Some(h) if h.host != body.host && Utc::now() - h.acquired_at > LEASE => {
                        tracing::warn!(view, stale_run = %h.run_id, host = %h.host, "taking over an expired lock");
                    }
                    Some(h) => {
                        return Err(MaterializeError::Busy(format!(
                            "{view} is being materialized by run {} (pid {} on {}, since {})",
                            h.run_id, h.pid, h.host, h.acquired_at
                        )));
                    }
                    None => tracing::warn!(view, "replacing an unreadable lock object"),
                }
                storage.delete(&key).await?;
            }
            Err(MaterializeError::Busy(format!("could not take the lock of {view}")))
        }
        .await;
        match result {
            Ok(()) => Ok(Self { key, local }),
            Err(e) => {
                if let Ok(mut set) = running().lock() {
                    set.remove(&local);
                }
                Err(e)
            }
        }
    }

    /// Gives the lock back.
    pub async fn release(self, storage: &Storage) {
        if let Err(e) = storage.delete(&self.key).await {
            tracing::warn!(key = %self.key, error = %e, "could not delete the lock object; the next run takes it over");
        }
        if let Ok(mut set) = running().lock() {
            set.remove(&self.local);
        }
    }
}
