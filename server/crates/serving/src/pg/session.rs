//! What one Postgres connection carries besides pgwire's own state: its query session (with
//! its own memory pool), the way to interrupt its running statement (a cancel request, the
//! statement timeout, or the client going away), its login deadline and its user's slot.
//!
//! pgwire reads a connection's socket only between messages, so while a statement runs nobody
//! would notice the client closing it. A duplicate of the socket is kept to peek at it: end of
//! stream there means the client is gone and the statement stops.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{FutureExt, Stream};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::startup::SecretKey;

use crate::serve::limits::LimitsConfig;

/// How often a running statement checks that its client is still connected.
const LIVENESS_EVERY: Duration = Duration::from_millis(250);

/// Metadata key under which datafusion-postgres keeps `SET statement_timeout`.
const STATEMENT_TIMEOUT_KEY: &str = "statement_timeout_ms";

/// Why a statement was stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interrupt {
    /// A cancel request for this connection arrived.
    Canceled,
    /// The statement ran past its timeout.
    Timeout(Duration),
    /// The client closed the connection.
    ClientGone,
}

impl Interrupt {
    /// The error the client gets (as Postgres words it).
    #[must_use]
    pub fn error(self) -> PgWireError {
        let (code, message) = match self {
            Self::Canceled => ("57014", "canceling statement due to user request".to_string()),
            Self::Timeout(d) => (
                "57014",
                format!(
                    "canceling statement due to statement timeout ({} ms; SET statement_timeout, \
                     server.limits.statement_timeout_secs)",
                    d.as_millis()
                ),
            ),
            Self::ClientGone => ("08006", "the client closed the connection".to_string()),
        };
        PgWireError::UserError(Box::new(ErrorInfo::new("ERROR".into(), code.into(), message)))
    }
}

/// What a client cancels with: the backend pid and secret key from `BackendKeyData`.
type CancelKey = (i32, Vec<u8>);

/// Connections by the (pid, secret key) their clients cancel with.
#[derive(Debug, Default)]
pub struct CancelRegistry {
    by_key: Mutex<HashMap<CancelKey, Weak<Connection>>>,
}

impl CancelRegistry {
    /// Interrupts the running statement of the connection with this key, if any.
    pub fn cancel(&self, pid: i32, secret: &SecretKey) -> bool {
        let key = (pid, secret_bytes(secret));
        let conn = self.by_key.lock().ok().and_then(|m| m.get(&key).and_then(Weak::upgrade));
        match conn {
            Some(c) => {
                c.cancel();
                true
            }
            None => false,
        }
    }

    fn insert(&self, key: (i32, Vec<u8>), conn: Weak<Connection>) {
        if let Ok(mut m) = self.by_key.lock() {
            m.insert(key, conn);
        }
    }

    fn remove(&self, key: &(i32, Vec<u8>)) {
        if let Ok(mut m) = self.by_key.lock() {
            m.remove(key);
        }
    }
}

fn secret_bytes(secret: &SecretKey) -> Vec<u8> {
    match secret {
        SecretKey::I32(v) => v.to_be_bytes().to_vec(),
        SecretKey::Bytes(b) => b.to_vec(),
    }
}

/// Open connections per user.
#[derive(Debug, Default)]
pub struct UserSlots {
    open: Mutex<HashMap<String, usize>>,
}

/// One connection's place in [`UserSlots`]; given back on drop.
#[derive(Debug)]
pub struct UserSlot {
    slots: Arc<UserSlots>,
    user: String,
}

impl UserSlots {
    /// Takes a slot for `user`, unless `max` are open.
    pub fn acquire(self: &Arc<Self>, user: &str, max: usize) -> Option<UserSlot> {
        let mut open = self.open.lock().ok()?;
        let n = open.entry(user.to_string()).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(UserSlot { slots: Arc::clone(self), user: user.to_string() })
    }
}

impl Drop for UserSlot {
    fn drop(&mut self) {
        if let Ok(mut open) = self.slots.open.lock()
            && let Some(n) = open.get_mut(&self.user)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.user);
            }
        }
    }
}

/// One connection.
#[derive(Debug)]
pub struct Connection {
    peer: SocketAddr,
    /// A duplicate of the client's socket, only ever peeked at.
    probe: Option<std::net::TcpStream>,
    cancel: tokio::sync::watch::Sender<u64>,
    logged_in: AtomicBool,
    user_slot: Mutex<Option<UserSlot>>,
    cancel_key: Mutex<Option<(i32, Vec<u8>)>>,
    registry: Arc<CancelRegistry>,
    limits: Arc<LimitsConfig>,
}

impl Connection {
    /// A connection from `peer`; `probe` is a duplicate of its socket.
    #[must_use]
    pub fn new(
        peer: SocketAddr,
        probe: Option<std::net::TcpStream>,
        registry: Arc<CancelRegistry>,
        limits: Arc<LimitsConfig>,
    ) -> Arc<Self> {
        Arc::new(Self {
            peer,
            probe,
            cancel: tokio::sync::watch::channel(0).0,
            logged_in: AtomicBool::new(false),
            user_slot: Mutex::new(None),
            cancel_key: Mutex::new(None),
            registry,
            limits,
        })
    }

    /// The client's address.
    #[must_use]
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// The server's limits.
    #[must_use]
    pub fn limits(&self) -> &LimitsConfig {
        &self.limits
    }

    /// Records a completed login: the user's slot, and the key cancel requests will name.
    pub fn logged_in(self: &Arc<Self>, slot: Option<UserSlot>, pid: i32, secret: &SecretKey) {
        let key = (pid, secret_bytes(secret));
        self.registry.insert(key.clone(), Arc::downgrade(self));
        if let Ok(mut k) = self.cancel_key.lock() {
            *k = Some(key);
        }
        if let Ok(mut s) = self.user_slot.lock() {
            *s = slot;
        }
        self.logged_in.store(true, Ordering::SeqCst);
    }

    /// Resolves if the login has not completed within `within`; never resolves once it has.
    pub async fn login_overdue(&self, within: Duration) {
        tokio::time::sleep(within).await;
        if self.logged_in.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
    }

    /// Interrupts the running statement, if any.
    pub fn cancel(&self) {
        self.cancel.send_modify(|g| *g = g.wrapping_add(1));
    }

    /// Whether the client has closed its end.
    fn client_gone(&self) -> bool {
        let Some(probe) = &self.probe else { return false };
        let mut buf = [0u8; 1];
        match probe.peek(&mut buf) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted),
        }
    }

    /// The timeout of the next statement: the client's `SET statement_timeout`, else the
    /// server's default, at most the server's maximum.
    #[must_use]
    pub fn statement_timeout(&self, metadata: &HashMap<String, String>) -> Option<Duration> {
        let asked = metadata.get(STATEMENT_TIMEOUT_KEY).and_then(|v| v.parse::<u64>().ok()).map(Duration::from_millis);
        self.limits.statement_timeout(asked)
    }

    /// A future that resolves when the statement starting now must stop.
    #[must_use]
    pub fn interrupt(self: &Arc<Self>, timeout: Option<Duration>) -> BoxFuture<'static, Interrupt> {
        let mut canceled = self.cancel.subscribe();
        canceled.mark_unchanged();
        let conn = Arc::clone(self);
        async move {
            let deadline = async {
                match timeout {
                    Some(d) => {
                        tokio::time::sleep(d).await;
                        Interrupt::Timeout(d)
                    }
                    None => std::future::pending().await,
                }
            };
            let gone = async {
                loop {
                    tokio::time::sleep(LIVENESS_EVERY).await;
                    if conn.client_gone() {
                        return Interrupt::ClientGone;
                    }
                }
            };
            tokio::select! {
                r = canceled.changed() => if r.is_ok() { Interrupt::Canceled } else { std::future::pending().await },
                i = deadline => i,
                i = gone => i,
            }
        }
        .boxed()
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        if let Ok(k) = self.cancel_key.lock()
            && let Some(key) = k.as_ref()
        {
            self.registry.remove(key);
        }
    }
}

/// Runs `work` unless `interrupt` resolves first.
pub async fn guarded<T>(
    interrupt: &mut BoxFuture<'static, Interrupt>,
    work: impl std::future::Future<Output = PgWireResult<T>>,
) -> PgWireResult<T> {
    tokio::select! {
        r = std::panic::AssertUnwindSafe(work).catch_unwind() => r.unwrap_or_else(|p| Err(panicked(p.as_ref()))),
        i = interrupt => Err(i.error()),
    }
}

/// The error a statement gets when the engine panicked while running it: the connection and
/// the server go on (a bug in one operator must not take the session down with it).
fn panicked(payload: &(dyn std::any::Any + Send)) -> PgWireError {
    let what = crate::serve::engine::panic_message(payload);
    tracing::error!(panic = %what, "the query engine panicked while running a statement");
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".into(),
        "XX000".into(),
        "internal error while running the statement (logged on the server); try a simpler form".into(),
    )))
}

/// A result stream that stops (and drops the query behind it, which stops DataFusion's work)
/// when its statement is interrupted.
pub struct Guarded<S> {
    inner: Option<S>,
    interrupt: BoxFuture<'static, Interrupt>,
}

impl<S> Guarded<S> {
    /// Guards `inner` with `interrupt`.
    pub fn new(inner: S, interrupt: BoxFuture<'static, Interrupt>) -> Self {
        Self { inner: Some(inner), interrupt }
    }
}

impl<S, T> Stream for Guarded<S>
where
    S: Stream<Item = PgWireResult<T>> + Unpin,
{
    type Item = PgWireResult<T>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.as_mut().get_mut();
        let Some(inner) = this.inner.as_mut() else { return Poll::Ready(None) };
        if let Poll::Ready(why) = this.interrupt.poll_unpin(cx) {
            this.inner = None;
            tracing::info!(reason = ?why, "statement interrupted");
            return Poll::Ready(Some(Err(why.error())));
        }
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| Pin::new(inner).poll_next(cx))) {
            Ok(Poll::Ready(None)) => {
                this.inner = None;
                Poll::Ready(None)
            }
            Ok(other) => other,
            Err(p) => {
                this.inner = None;
                Poll::Ready(Some(Err(panicked(p.as_ref()))))
            }
        }
    }
}

/// The bytes of a Postgres `ErrorResponse` with severity FATAL, for refusing a connection
/// before pgwire sees it.
#[must_use]
pub fn fatal_error_bytes(code: &str, message: &str) -> Bytes {
    let mut body = Vec::new();
    for (tag, value) in [(b'S', "FATAL"), (b'V', "FATAL"), (b'C', code), (b'M', message)] {
        body.push(tag);
        body.extend_from_slice(value.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut out = Vec::with_capacity(body.len() + 5);
    out.push(b'E');
    out.extend_from_slice(&u32::try_from(body.len() + 4).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(&body);
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_slots_cap_and_release() {
        let slots = Arc::new(UserSlots::default());
        let a = slots.acquire("quant", 2).unwrap();
        let _b = slots.acquire("quant", 2).unwrap();
        assert!(slots.acquire("quant", 2).is_none());
        assert!(slots.acquire("other", 2).is_some());
        drop(a);
        assert!(slots.acquire("quant", 2).is_some());
    }

    #[test]
    fn error_response_framing() {
        let b = fatal_error_bytes("53300", "too many");
        assert_eq!(b[0], b'E');
        let len = u32::from_be_bytes([b[1], b[2], b[3], b[4]]) as usize;
        assert_eq!(len + 1, b.len());
        assert!(b.ends_with(b"too many\0\0"));
    }

    #[tokio::test]
    async fn cancel_interrupts_only_the_running_statement() {
        let registry = Arc::new(CancelRegistry::default());
        let conn = Connection::new(
            "127.0.0.1:1".parse().unwrap(),
            None,
            Arc::clone(&registry),
            Arc::new(LimitsConfig::default()),
        );
        conn.logged_in(None, 7, &SecretKey::I32(42));
        // A cancel with no statement running is lost, as in Postgres.
        assert!(registry.cancel(7, &SecretKey::I32(42)));
        let mut interrupt = conn.interrupt(Some(Duration::from_secs(30)));
        assert!(futures::poll!(&mut interrupt).is_pending());
        assert!(!registry.cancel(7, &SecretKey::I32(1)), "wrong secret");
        assert!(registry.cancel(7, &SecretKey::I32(42)));
        assert_eq!(interrupt.await, Interrupt::Canceled);
        let timeout = conn.interrupt(Some(Duration::from_millis(20)));
        assert_eq!(timeout.await, Interrupt::Timeout(Duration::from_millis(20)));
        drop(conn);
        assert!(!registry.cancel(7, &SecretKey::I32(42)), "dropped connections leave the registry");
    }
}
