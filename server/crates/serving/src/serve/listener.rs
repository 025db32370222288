//! Accepting connections without letting a flood of them take the server down.
//!
//! Each protocol's listener admits at most its configured number of open connections. A
//! connection over the cap is answered in the protocol's own words where it has them (Postgres
//! `53300`, HTTP `503`) and closed at once, so the kernel's backlog never fills with clients
//! waiting to be refused. Accept errors (out of file descriptors, say) back off instead of
//! spinning, and are logged at most once every few seconds with a count. A connection that
//! sends nothing within the login timeout is closed.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How often accept errors are logged at most.
const ERROR_LOG_EVERY: Duration = Duration::from_secs(10);
/// Longest pause after an accept error.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// What a connection over the cap is sent before it is closed.
pub type Refusal = Arc<dyn Fn() -> Option<bytes::Bytes> + Send + Sync>;

/// A listener with a cap on open connections.
pub struct Acceptor {
    listener: TcpListener,
    protocol: &'static str,
    slots: Arc<Semaphore>,
    max: usize,
    refusal: Refusal,
    backoff: Duration,
    errors_since_log: u64,
    last_log: Option<Instant>,
    refused_since_log: u64,
    last_refusal_log: Option<Instant>,
    next_id: Arc<AtomicU64>,
}

impl std::fmt::Debug for Acceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acceptor").field("protocol", &self.protocol).field("max", &self.max).finish_non_exhaustive()
    }
}

/// An admitted connection: its socket, its slot (given back on drop) and a server-unique id.
#[derive(Debug)]
pub struct Admission {
    /// The socket.
    pub stream: TcpStream,
    /// The client.
    pub peer: SocketAddr,
    /// The connection's slot.
    pub permit: OwnedSemaphorePermit,
    /// Unique among this server's connections.
    pub id: u64,
}

impl Acceptor {
    /// Wraps a bound `listener` admitting at most `max` connections of `protocol`.
    #[must_use]
    pub fn new(listener: TcpListener, protocol: &'static str, max: usize, refusal: Refusal) -> Self {
        Self {
            listener,
            protocol,
            slots: Arc::new(Semaphore::new(max)),
            max,
            refusal,
            backoff: Duration::ZERO,
            errors_since_log: 0,
            last_log: None,
            refused_since_log: 0,
            last_refusal_log: None,
            next_id: Arc::new(AtomicU64::new(1)),
        }
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The next admitted connection; refuses and retries as needed.
    pub async fn accept(&mut self) -> Admission {
        loop {
            match self.listener.accept().await {
                Ok((stream, peer)) => {
                    self.backoff = Duration::ZERO;
                    match Arc::clone(&self.slots).try_acquire_owned() {
                        Ok(permit) => {
                            let _ = stream.set_nodelay(true);
                            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
                            return Admission { stream, peer, permit, id };
                        }
                        Err(_) => self.refuse(&stream, peer),
                    }
                }
                Err(e) if is_connection_error(&e) => {}
                Err(e) => {
                    self.errors_since_log += 1;
                    if self.last_log.is_none_or(|t| t.elapsed() >= ERROR_LOG_EVERY) {
                        tracing::error!(
                            protocol = self.protocol,
                            error = %e,
                            errors = self.errors_since_log,
                            "accepting connections failed; backing off (the next report comes in 10 s at the \
                             earliest, with a count)"
                        );
                        self.errors_since_log = 0;
                        self.last_log = Some(Instant::now());
                    }
                    self.backoff = (self.backoff * 2).clamp(Duration::from_millis(5), MAX_BACKOFF);
                    tokio::time::sleep(self.backoff).await;
                }
            }
        }
    }

    /// Answers a connection over the cap (best effort, without waiting) and closes it.
    fn refuse(&mut self, stream: &TcpStream, peer: SocketAddr) {
        self.refused_since_log += 1;
        if self.last_refusal_log.is_none_or(|t| t.elapsed() >= ERROR_LOG_EVERY) {
            tracing::warn!(
                protocol = self.protocol,
                %peer,
                max = self.max,
                refused = self.refused_since_log,
                "connection limit reached; refusing new connections"
            );
            self.refused_since_log = 0;
            self.last_refusal_log = Some(Instant::now());
        }
        // Read what the client already sent, so closing sends FIN rather than a reset that
        // could discard the answer.
        let mut sink = [0u8; 4096];
        while matches!(stream.try_read(&mut sink), Ok(n) if n > 0) {}
        if let Some(answer) = (self.refusal)() {
            let _ = stream.try_write(&answer);
        }
    }

    /// Turns admissions into IO for hyper-based servers, closing connections that send nothing
    /// within `login`; `on_close` is told each connection's id when it closes.
    pub fn into_admitted(self, login: Duration, on_close: Option<CloseHook>) -> AdmittedListener {
        AdmittedListener { acceptor: self, login, on_close }
    }
}

/// Called with a connection's id when it closes.
pub type CloseHook = Arc<dyn Fn(u64) + Send + Sync>;

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    )
}

/// An [`Acceptor`] whose connections are [`Admitted`] IO.
pub struct AdmittedListener {
    acceptor: Acceptor,
    login: Duration,
    on_close: Option<CloseHook>,
}

impl AdmittedListener {
    /// The next connection.
    pub async fn next(&mut self) -> Admitted {
        let a = self.acceptor.accept().await;
        Admitted {
            info: ConnInfo { id: a.id, peer: a.peer },
            stream: a.stream,
            _permit: a.permit,
            first_byte: Some(Box::pin(tokio::time::sleep(self.login))),
            on_close: self.on_close.clone(),
        }
    }

    /// The connections as a stream, for tonic.
    pub fn into_stream(self) -> impl futures::Stream<Item = io::Result<Admitted>> + Send {
        futures::stream::unfold(self, |mut l| async move {
            let io = l.next().await;
            Some((Ok(io), l))
        })
    }
}

impl axum::serve::Listener for AdmittedListener {
    type Io = Admitted;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let io = self.next().await;
        let peer = io.info.peer;
        (io, peer)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.acceptor.local_addr()
    }
}

/// What a request learns about its connection.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    /// Unique among this server's connections.
    pub id: u64,
    /// The client.
    pub peer: SocketAddr,
}

/// An admitted connection as IO: it holds its slot until it closes, and fails if the client
/// sends nothing before its login deadline.
pub struct Admitted {
    info: ConnInfo,
    stream: TcpStream,
    _permit: OwnedSemaphorePermit,
    first_byte: Option<Pin<Box<tokio::time::Sleep>>>,
    on_close: Option<CloseHook>,
}

impl Admitted {
    /// Who and which connection.
    #[must_use]
    pub fn info(&self) -> ConnInfo {
        self.info
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        if let Some(hook) = &self.on_close {
            hook(self.info.id);
        }
    }
}

impl AsyncRead for Admitted {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.stream).poll_read(cx, buf);
        match &result {
            Poll::Ready(Ok(())) if buf.filled().len() > before => self.first_byte = None,
            Poll::Pending => {
                if let Some(deadline) = self.first_byte.as_mut()
                    && deadline.as_mut().poll(cx).is_ready()
                {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the client sent nothing within the login timeout",
                    )));
                }
            }
            _ => {}
        }
        result
    }
}

impl AsyncWrite for Admitted {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

impl tonic::transport::server::Connected for Admitted {
    type ConnectInfo = ConnInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.info
    }
}

/// Raises this process's open-file limit to its hard limit, and warns when the connection
/// caps could still exhaust it (every connection is a file descriptor).
pub fn raise_fd_limit(connections: usize) {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if let Some(hard) = limit.maximum
        && limit.current.is_some_and(|c| c < hard)
    {
        limit.current = Some(hard);
        if let Err(e) = setrlimit(Resource::Nofile, limit) {
            tracing::debug!(error = %e, "could not raise the open-file limit");
        }
    }
    let now = getrlimit(Resource::Nofile).current;
    // Files, spill files and the object store need descriptors beyond the connections.
    let needed = connections as u64 + 256;
    if let Some(current) = now
        && current < needed
    {
        tracing::warn!(
            open_file_limit = current,
            connection_caps = connections,
            "the open-file limit (ulimit -n) is below the connection caps plus headroom; lower \
             server.limits.max_*_connections or raise the limit"
        );
    }
}

/// The HTTP answer for a REST connection over the cap.
#[must_use]
pub fn http_busy() -> bytes::Bytes {
    let body = r#"{"error":{"code":"too_many_connections","message":"the server has reached server.limits.max_http_connections; try again shortly"}}"#;
    bytes::Bytes::from(format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         retry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    ))
}
