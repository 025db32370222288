//! One run per view at a time. Within a process a set of running views answers at once; across
//! processes (a CLI run while `serve` is up) a lock object created with a create-only put does.
//! A lock left by a killed process is taken over when its process is gone (same host) or its
//! lease has run out (another host).
//!
//! Taking over is itself a create-only step. Several processes may find the same stale lock at
//! once; if each deleted it and created its own, the later deleter would remove the lock the
//! earlier one had just taken, and two runs would go ahead. So only the process that creates the
//! takeover marker of that stale lock (keyed by the stale run's id) may delete it; the others
//! wait and then find either the new owner's live lock or a free key. A taker that dies between
//! its marker and the delete is passed over by a marker of the next level. Markers are kept for
//! an hour (a slow competitor must still find them) and removed by later acquisitions.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};

use bytes::Bytes;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::MaterializeError;
use bhavstore_lake::host::{host_name, process_alive};
use bhavstore_storage::paths;
use bhavstore_storage::{Created, Storage};

/// How long a lock from another host is honoured.
const LEASE: Duration = Duration::hours(6);
/// How long a takeover marker of another host is honoured: a takeover takes milliseconds.
const TAKEOVER_LEASE: Duration = Duration::minutes(5);
/// How long takeover markers are kept before later acquisitions delete them.
const MARKER_KEEP: Duration = Duration::hours(1);
/// Attempts to create the lock before giving up as busy.
const ATTEMPTS: usize = 20;
/// Takers of one stale lock that may die mid-takeover before the lock is given up on.
const MAX_LEVELS: u32 = 8;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct LockBody {
    run_id: String,
    pid: u32,
    host: String,
    acquired_at: DateTime<Utc>,
}

impl LockBody {
    /// Whether the process holding this (lock or marker) is known to be gone.
    fn is_dead(&self, lease: Duration) -> bool {
        if self.host == host_name() { !process_alive(self.pid) } else { Utc::now() - self.acquired_at > lease }
    }
}

fn running() -> &'static Mutex<HashSet<String>> {
    static RUNNING: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    RUNNING.get_or_init(Default::default)
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
        let body =
            LockBody { run_id: run_id.into(), pid: std::process::id(), host: host_name(), acquired_at: Utc::now() };
        match acquire_object(storage, view, &body).await {
            Ok(()) => Ok(Self { key: paths::view_lock(view), local }),
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

fn to_json(body: &LockBody) -> Result<Bytes, MaterializeError> {
    serde_json::to_vec(body).map(Bytes::from).map_err(|e| MaterializeError::Corrupt(e.to_string()))
}

/// The cross-process half of [`ViewLock::acquire`].
async fn acquire_object(storage: &Storage, view: &str, body: &LockBody) -> Result<(), MaterializeError> {
    let key = paths::view_lock(view);
    let bytes = to_json(body)?;
    for attempt in 0..ATTEMPTS {
        if storage.put_create(&key, bytes.clone()).await? == Created::New {
            remove_old_markers(storage, view).await;
            return Ok(());
        }
        // Released in between: just try again.
        let Some(held_bytes) = storage.get(&key).await? else { continue };
        let stale_id = match serde_json::from_slice::<LockBody>(&held_bytes) {
            Ok(h) if h.is_dead(LEASE) => {
                if h.host == host_name() {
                    tracing::warn!(view, stale_run = %h.run_id, pid = h.pid, "taking over the lock of a run whose process is gone");
                } else {
                    tracing::warn!(view, stale_run = %h.run_id, host = %h.host, "taking over an expired lock");
                }
                h.run_id
            }
            Ok(h) => {
                return Err(MaterializeError::Busy(format!(
                    "{view} is being materialized by run {} (pid {} on {}, since {})",
                    h.run_id, h.pid, h.host, h.acquired_at
                )));
            }
            Err(_) => {
                tracing::warn!(view, "the lock object is unreadable; taking it over");
                format!("unreadable-{}", &bhavstore_storage::sha256_hex(&held_bytes)[..16])
            }
        };
        if claim_takeover(storage, view, &stale_id, body).await? {
            // Only the claimant deletes, and only the stale lock it examined: markers live long
            // enough that no other process can claim the same stale lock meanwhile.
            if storage.get(&key).await?.as_deref() == Some(&held_bytes[..]) {
                storage.delete(&key).await?;
            }
        } else {
            // Someone else is taking it over; give it time, then look again.
            let pause = 20 + 10 * u64::try_from(attempt).unwrap_or(0);
            tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
        }
    }
    Err(MaterializeError::Busy(format!("could not take the lock of {view}: another run is taking over its stale lock")))
}

/// Creates the takeover marker of the stale lock `stale_id`: `true` when this process won the
/// right to delete it. A marker whose taker died before finishing is passed over by the next
/// level.
async fn claim_takeover(
    storage: &Storage,
    view: &str,
    stale_id: &str,
    body: &LockBody,
) -> Result<bool, MaterializeError> {
    let mine = to_json(&LockBody { acquired_at: Utc::now(), ..body.clone() })?;
    for level in 0..MAX_LEVELS {
        let marker = paths::view_lock_takeover(view, stale_id, level);
        if storage.put_create(&marker, mine.clone()).await? == Created::New {
            return Ok(true);
        }
        let taker = storage.get(&marker).await?.and_then(|b| serde_json::from_slice::<LockBody>(&b).ok());
        match taker {
            Some(t) if !t.is_dead(TAKEOVER_LEASE) => return Ok(false),
            _ => tracing::warn!(
                view,
                stale_run = stale_id,
                level,
                "a takeover of the stale lock did not finish; trying the next level"
            ),
        }
    }
    Ok(false)
}

/// Deletes takeover markers older than [`MARKER_KEEP`]; failures only cost a stale file.
async fn remove_old_markers(storage: &Storage, view: &str) {
    let Ok(keys) = storage.list(&paths::view_lock_takeovers(view)).await else { return };
    for key in keys {
        let old = match storage.get(&key).await {
            Ok(Some(b)) => match serde_json::from_slice::<LockBody>(&b) {
                Ok(m) => Utc::now() - m.acquired_at > MARKER_KEEP,
                Err(_) => true,
            },
            _ => false,
        };
        if old && let Err(e) = storage.delete(&key).await {
            tracing::debug!(%key, error = %e, "could not delete an old takeover marker");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bhavstore_storage::StorageConfig;

    /// A pid no process has (above the kernel's maximum).
    const DEAD_PID: u32 = 0x7fff_fff0;

    fn storage(dir: &tempfile::TempDir) -> Storage {
        Storage::open(&StorageConfig { url: dir.path().display().to_string(), ..StorageConfig::default() }).unwrap()
    }

    fn body(run_id: &str, pid: u32) -> LockBody {
        LockBody { run_id: run_id.into(), pid, host: host_name(), acquired_at: Utc::now() }
    }

    /// The race of the issue: after a kill -9, several runs find the same stale lock at once.
    /// Exactly one may end up holding the lock, and the lock object must be that one's.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_takers_of_a_stale_lock_give_one_owner() {
        let dir = tempfile::tempdir().unwrap();
        let s = storage(&dir);
        let key = paths::view_lock("v");
        for round in 0..12 {
            s.put(&key, to_json(&body(&format!("dead-{round}"), DEAD_PID)).unwrap()).await.unwrap();
            let tasks: Vec<_> = (0..8)
                .map(|i| {
                    let s = s.clone();
                    tokio::spawn(async move {
                        let b = body(&format!("r{round}-{i}"), std::process::id());
                        acquire_object(&s, "v", &b).await.map(|()| b.run_id)
                    })
                })
                .collect();
            let mut winners = Vec::new();
            for t in tasks {
                if let Ok(id) = t.await.unwrap() {
                    winners.push(id);
                }
            }
            assert_eq!(winners.len(), 1, "round {round}: {winners:?}");
            let held: LockBody = serde_json::from_slice(&s.get(&key).await.unwrap().unwrap()).unwrap();
            assert_eq!(held.run_id, winners[0], "round {round}");
            s.delete(&key).await.unwrap();
        }
    }

    #[tokio::test]
    async fn a_dead_taker_is_passed_over_and_old_markers_go() {
        let dir = tempfile::tempdir().unwrap();
        let s = storage(&dir);
        let key = paths::view_lock("v");
        s.put(&key, to_json(&body("dead", DEAD_PID)).unwrap()).await.unwrap();
        // A taker that died after its marker and before deleting the lock.
        let mut old = body("taker", DEAD_PID);
        old.acquired_at = Utc::now() - Duration::hours(2);
        s.put(&paths::view_lock_takeover("v", "dead", 0), to_json(&old).unwrap()).await.unwrap();
        acquire_object(&s, "v", &body("me", std::process::id())).await.unwrap();
        let held: LockBody = serde_json::from_slice(&s.get(&key).await.unwrap().unwrap()).unwrap();
        assert_eq!(held.run_id, "me");
        let markers = s.list(&paths::view_lock_takeovers("v")).await.unwrap();
        assert_eq!(markers, vec![paths::view_lock_takeover("v", "dead", 1)], "the two-hour-old marker is removed");
        // A live holder is respected.
        let err = acquire_object(&s, "v", &body("other", std::process::id())).await.unwrap_err();
        assert!(err.to_string().contains("run me"), "{err}");
    }
}
