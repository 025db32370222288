//! A running `bhavstore serve` with every listener on a free port, killed on drop.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use crate::bin::bhavstore;
use crate::storage_roots::Root;

/// The feature definitions of the repository.
#[must_use]
pub fn feature_defs() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../feature_defs")
}

/// A running server and the addresses it bound.
pub struct Serve {
    child: Child,
    /// REST address, `host:port`.
    pub http: String,
    /// Postgres address.
    pub pg: String,
    /// Flight SQL address.
    pub flight: String,
}

impl Serve {
    /// Starts `bhavstore serve --no-schedule` on `root` with listeners on port 0, with `env` added
    /// to its environment.
    #[must_use]
    pub fn start(root: &Root, config: Option<&Path>, env: &[(&str, &str)]) -> Self {
        let mut c = bhavstore();
        c.envs(env.iter().copied());
        root.apply(&mut c);
        if let Some(cfg) = config {
            c.arg("--config").arg(cfg);
        }
        let mut child = c
            .arg("--feature-defs")
            .arg(feature_defs())
            .args(["serve", "--no-schedule", "--http-addr", "127.0.0.1:0", "--pg-addr", "127.0.0.1:0"])
            .args(["--flight-addr", "127.0.0.1:0"])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn serve");
        let err = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if line.contains("listening") {
                    let proto = line.split("protocol=\"").nth(1).and_then(|s| s.split('"').next()).map(str::to_string);
                    let addr = line.split("addr=").nth(1).and_then(|s| s.split_whitespace().next()).map(str::to_string);
                    if let (Some(p), Some(a)) = (proto, addr) {
                        let _ = tx.send((p, a));
                    }
                }
                if std::env::var_os("BHAVSTORE_TEST_SERVER_LOG").is_some() {
                    eprintln!("serve: {line}");
                }
            }
        });
        let (mut http, mut pg, mut flight) = (None, None, None);
        while http.is_none() || pg.is_none() || flight.is_none() {
            let (p, a) = rx.recv_timeout(Duration::from_secs(120)).expect("serve logs its three bound addresses");
            match p.as_str() {
                "http" => http = Some(a),
                "postgres" => pg = Some(a),
                "flight" => flight = Some(a),
                _ => {}
            }
        }
        Self { child, http: http.unwrap_or_default(), pg: pg.unwrap_or_default(), flight: flight.unwrap_or_default() }
    }

    /// Host and port of the Postgres listener.
    #[must_use]
    pub fn pg_host_port(&self) -> (String, u16) {
        let (h, p) = self.pg.rsplit_once(':').expect("host:port");
        (h.to_string(), p.parse().expect("port"))
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
