//! A web server on 127.0.0.1 that behaves like bseindia.com's download site: files by URL,
//! `200 OK` with an HTML page for days without a file, 403 and a block page for clients that do
//! not look like a browser, and on request slow answers or connections cut mid-body.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How the server answers one file name.
#[derive(Debug, Clone)]
pub enum Route {
    /// `200` with the bytes.
    File(Vec<u8>),
    /// Waits `delay` before answering with the bytes.
    Slow(Vec<u8>, Duration),
    /// The first `n` requests get headers announcing the full length, then half the body and a
    /// closed connection; later requests get the whole file.
    CutMidBody(Vec<u8>, u32),
    /// The first `n` requests get `503`, later ones the file.
    Unavailable(Vec<u8>, u32),
    /// `200` with the firewall's block page.
    FirewallPage,
}

/// The block page BSE's firewall sends (same shape as the real one in `../shared`).
pub const FIREWALL_PAGE: &str = "<!DOCTYPE html PUBLIC \"-//W3C//DTD XHTML 1.0 Transitional//EN\" \"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd\"><html xmlns=\"http://www.w3.org/1999/xhtml\"><head><title>Error</title></head><body><H2>Error</H2><table><tr><td>This page can't be displayed. Contact support for additional information. The incident ID is: N/A.</td></tr></table></body></html>";

/// BSE's ordinary page for a day without a file: about 14 KB of HTML, answered with `200 OK`.
#[must_use]
pub fn no_file_page() -> String {
    let mut s = String::from(
        "<!DOCTYPE html>\r\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>BSE - Bombay Stock Exchange | Live Stock Market Updates</title></head><body>",
    );
    while s.len() < 14_000 {
        s.push_str("<div class=\"container\"><p>Equity Bhavcopy, Derivatives, Debt, Indices.</p></div>\r\n");
    }
    s.push_str("</body></html>");
    s
}

/// A running fake BSE; stops when dropped (its thread ends with the test process).
pub struct FakeBse {
    addr: SocketAddr,
    routes: Arc<Mutex<HashMap<String, Route>>>,
    hits: Arc<Mutex<HashMap<String, u32>>>,
}

impl FakeBse {
    /// Binds 127.0.0.1:0 and serves on a thread of its own.
    #[must_use]
    pub fn start() -> Self {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        std_listener.set_nonblocking(true).expect("nonblocking");
        let addr = std_listener.local_addr().expect("addr");
        let routes: Arc<Mutex<HashMap<String, Route>>> = Arc::default();
        let hits: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
        let (r, h) = (Arc::clone(&routes), Arc::clone(&hits));
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(async move {
                let listener = TcpListener::from_std(std_listener).expect("listener");
                loop {
                    let Ok((sock, _)) = listener.accept().await else { continue };
                    let (r, h) = (Arc::clone(&r), Arc::clone(&h));
                    tokio::spawn(async move {
                        let _ = serve(sock, r, h).await;
                    });
                }
            });
        });
        Self { addr, routes, hits }
    }

    /// Base URL to pass as `--source-url`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Serves `route` for the file `name` (under `/download/BhavCopy/Equity/`), or for an API
    /// call's whole path and query (`/BseIndiaAPI/api/...`).
    pub fn set(&self, name: &str, route: Route) {
        self.routes.lock().expect("lock").insert(name.to_string(), route);
    }

    /// Requests received for `name` (any answer).
    #[must_use]
    pub fn hits(&self, name: &str) -> u32 {
        self.hits.lock().expect("lock").get(name).copied().unwrap_or(0)
    }

    /// Requests received in total.
    #[must_use]
    pub fn total_hits(&self) -> u32 {
        self.hits.lock().expect("lock").values().sum()
    }
}

async fn serve(
    mut sock: TcpStream,
    routes: Arc<Mutex<HashMap<String, Route>>>,
    hits: Arc<Mutex<HashMap<String, u32>>>,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = sock.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buf).to_string();
    let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
    let ua = head
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("user-agent:"))
        .map(|l| l[11..].trim().to_string())
        .unwrap_or_default();
    // Bhavcopies are routed by file name; API calls (corporate actions, holidays) by their whole
    // path and query.
    let name = path.strip_prefix("/download/BhavCopy/Equity/").map_or_else(|| path.clone(), str::to_string);
    let hit = {
        let mut h = hits.lock().expect("lock");
        let e = h.entry(name.clone()).or_insert(0);
        *e += 1;
        *e
    };
    if !ua.contains("Mozilla") {
        return respond(&mut sock, 403, "text/html", FIREWALL_PAGE.as_bytes(), None).await;
    }
    let route = routes.lock().expect("lock").get(&name).cloned();
    match route {
        None => respond(&mut sock, 200, "text/html; charset=utf-8", no_file_page().as_bytes(), None).await,
        Some(Route::File(b)) => respond(&mut sock, 200, content_type(&name), &b, None).await,
        Some(Route::Slow(b, d)) => {
            tokio::time::sleep(d).await;
            respond(&mut sock, 200, content_type(&name), &b, None).await
        }
        Some(Route::CutMidBody(b, n)) => {
            let cut = (hit <= n).then_some(b.len() / 2);
            respond(&mut sock, 200, content_type(&name), &b, cut).await
        }
        Some(Route::Unavailable(b, n)) => {
            if hit <= n {
                respond(&mut sock, 503, "text/plain", b"busy", None).await
            } else {
                respond(&mut sock, 200, content_type(&name), &b, None).await
            }
        }
        Some(Route::FirewallPage) => respond(&mut sock, 200, "text/html", FIREWALL_PAGE.as_bytes(), None).await,
    }
}

fn content_type(name: &str) -> &'static str {
    if name.to_ascii_lowercase().ends_with(".zip") { "application/x-zip-compressed" } else { "text/csv" }
}

async fn respond(
    sock: &mut TcpStream,
    status: u16,
    ctype: &str,
    body: &[u8],
    cut_at: Option<usize>,
) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        403 => "Forbidden",
        503 => "Service Unavailable",
        _ => "Status",
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    sock.write_all(head.as_bytes()).await?;
    let end = cut_at.unwrap_or(body.len());
    sock.write_all(&body[..end]).await?;
    sock.flush().await?;
    if cut_at.is_some() {
        // Drop the connection with bytes still owed.
        sock.shutdown().await?;
    }
    Ok(())
}
