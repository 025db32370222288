//! A running `bhavstore serve` with every listener on a free port, killed on drop.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::bin::bhavstore;
use crate::storage_roots::Root;

/// The feature definitions of the repository.
#[must_use]
pub fn feature_defs() -> PathBuf {
    crate::crate_dir().join("../feature_defs")
}

/// A running server and the addresses it bound.
pub struct Serve {
    child: Child,
    logs: Arc<Mutex<Vec<String>>>,
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
        Self::start_with(root, config, env, None)
    }

    /// [`Serve::start`], with the process's open-file limit (soft and hard) set to `nofile`.
    #[must_use]
    pub fn start_with(root: &Root, config: Option<&Path>, env: &[(&str, &str)], nofile: Option<u64>) -> Self {
        let mut c = match nofile {
            // `ulimit -n` in a shell that then becomes the server, so both limits hold.
            Some(n) => {
                let mut sh = std::process::Command::new("sh");
                sh.arg("-c").arg(format!("ulimit -n {n} && exec \"$0\" \"$@\"")).arg(crate::bin::bhavstore_bin());
                for (k, _) in std::env::vars() {
                    if k.starts_with("BHAVSTORE_") {
                        sh.env_remove(k);
                    }
                }
                sh
            }
            None => bhavstore(),
        };
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
        let logs = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&logs);
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if let Ok(mut l) = kept.lock() {
                    // Bounded: a test that floods the log must not fill the test's memory.
                    if l.len() < 100_000 {
                        l.push(line.clone());
                    }
                }
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
            let Ok((p, a)) = rx.recv_timeout(Duration::from_secs(120)) else {
                let status = child.try_wait();
                let seen = logs.lock().map(|l| l.join("\n")).unwrap_or_default();
                panic!("serve did not log its three bound addresses (exit: {status:?}); its log:\n{seen}");
            };
            match p.as_str() {
                "http" => http = Some(a),
                "postgres" => pg = Some(a),
                "flight" => flight = Some(a),
                _ => {}
            }
        }
        Self {
            child,
            logs,
            http: http.unwrap_or_default(),
            pg: pg.unwrap_or_default(),
            flight: flight.unwrap_or_default(),
        }
    }

    /// The server's process id.
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Lines the server has logged so far.
    #[must_use]
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Whether the server process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Resident memory now and at its peak, bytes (`VmRSS`, `VmHWM`).
    #[must_use]
    pub fn memory(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        let kib = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
                * 1024
        };
        (kib("VmRSS:"), kib("VmHWM:"))
    }

    /// CPU time the server has used, seconds (user + system).
    #[must_use]
    pub fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap_or_default();
        // Fields after the command name (which is in parentheses and may contain spaces).
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after the name.
        (ticks(11) + ticks(12)) / 100.0
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
