//! Storage roots for tests: a temporary local directory, and a fresh prefix on a real S3 server
//! (SeaweedFS started by `scripts/test`, which exports `BHAVSTORE_TEST_S3_*`).

use std::process::Command;

use bhavstore_storage::Storage;
use bhavstore_storage::{S3Config, StorageConfig};

/// One place to store things in.
pub enum Root {
    /// A temporary directory, removed on drop.
    Local(tempfile::TempDir),
    /// A unique prefix in a bucket of the test S3 server.
    S3 {
        /// `s3://bucket/prefix`.
        url: String,
        /// Endpoint, e.g. `http://127.0.0.1:8333`.
        endpoint: String,
        /// Access key.
        key: String,
        /// Secret key.
        secret: String,
    },
}

impl Root {
    /// A local root.
    #[must_use]
    pub fn local() -> Self {
        Self::Local(tempfile::tempdir().expect("tempdir"))
    }

    /// An S3 root, if the test S3 server is configured. Under CI its absence is a failure, not
    /// a skip, so the S3 half of the suite cannot silently vanish.
    #[must_use]
    pub fn s3(test: &str) -> Option<Self> {
        let Ok(endpoint) = std::env::var("BHAVSTORE_TEST_S3_ENDPOINT") else {
            assert!(
                std::env::var_os("CI").is_none(),
                "BHAVSTORE_TEST_S3_ENDPOINT is not set under CI: scripts/test must start SeaweedFS"
            );
            eprintln!(
                "SKIPPED (S3 half): BHAVSTORE_TEST_S3_ENDPOINT not set; run the suite through scripts/test to get a SeaweedFS server"
            );
            return None;
        };
        let bucket = std::env::var("BHAVSTORE_TEST_S3_BUCKET").unwrap_or_else(|_| "bhavstore-test".into());
        let key = std::env::var("BHAVSTORE_TEST_S3_ACCESS_KEY").unwrap_or_else(|_| "bhavstore".into());
        let secret = std::env::var("BHAVSTORE_TEST_S3_SECRET_KEY").unwrap_or_else(|_| "bhavstore-secret".into());
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        let url = format!("s3://{bucket}/{test}-{}-{nanos}", std::process::id());
        Some(Self::S3 { url, endpoint, key, secret })
    }

    /// Local always, S3 when available: storage tests run on both.
    #[must_use]
    pub fn all(test: &str) -> Vec<Self> {
        let mut v = vec![Self::local()];
        v.extend(Self::s3(test));
        v
    }

    /// Label for messages.
    #[must_use]
    pub fn label(&self) -> &'static str {
        match self {
            Self::Local(_) => "local",
            Self::S3 { .. } => "s3",
        }
    }

    /// The `--storage` URL.
    #[must_use]
    pub fn url(&self) -> String {
        match self {
            Self::Local(d) => format!("file://{}", d.path().display()),
            Self::S3 { url, .. } => url.clone(),
        }
    }

    /// Storage configuration for library calls.
    #[must_use]
    pub fn config(&self) -> StorageConfig {
        match self {
            Self::Local(_) => StorageConfig { url: self.url(), s3: S3Config::default() },
            Self::S3 { url, endpoint, key, secret } => StorageConfig {
                url: url.clone(),
                s3: S3Config {
                    endpoint: Some(endpoint.clone()),
                    region: Some("us-east-1".into()),
                    access_key_id: Some(key.clone()),
                    secret_access_key: Some(secret.clone()),
                    allow_http: Some(true),
                    ..S3Config::default()
                },
            },
        }
    }

    /// Opens the storage.
    #[must_use]
    pub fn open(&self) -> Storage {
        Storage::open(&self.config()).expect("open storage")
    }

    /// Points a `bhavstore` command at this root, the way a user would: `--storage` plus the
    /// standard `AWS_*` variables for S3.
    pub fn apply(&self, cmd: &mut Command) {
        cmd.arg("--storage").arg(self.url());
        if let Self::S3 { endpoint, key, secret, .. } = self {
            cmd.env("AWS_ENDPOINT_URL", endpoint)
                .env("AWS_ACCESS_KEY_ID", key)
                .env("AWS_SECRET_ACCESS_KEY", secret)
                .env("AWS_REGION", "us-east-1")
                .env("AWS_ALLOW_HTTP", "true");
        }
    }

    /// `bhavstore --feature-defs DEFS ARGS...` on this root; panics with the command's output
    /// unless it succeeds, and returns its standard output.
    #[must_use]
    pub fn run_ok(&self, defs: &std::path::Path, args: &[&str]) -> String {
        let mut c = crate::bin::bhavstore();
        self.apply(&mut c);
        let o = crate::bin::run(c.arg("--feature-defs").arg(defs).args(args));
        assert!(
            o.status.success(),
            "[{}] {args:?}: {}\n{}",
            self.label(),
            crate::bin::stdout(&o),
            crate::bin::stderr(&o)
        );
        crate::bin::stdout(&o)
    }

    /// `bhavstore import PATHS...` on this root; panics with the command's stderr unless it
    /// succeeds.
    pub fn import<I, S>(&self, paths: I)
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut c = crate::bin::bhavstore();
        self.apply(&mut c);
        let o = crate::bin::run(c.arg("import").args(paths));
        assert!(o.status.success(), "[{}] import: {}", self.label(), crate::bin::stderr(&o));
    }

    /// A local root with every 2015 file of the real data imported and every view materialized
    /// (what the client programs check real values against); `None` without the real files.
    #[must_use]
    pub fn local_2015_materialized() -> Option<Self> {
        let dir = crate::real_data::real_data_dir()?;
        let root = Self::local();
        root.import(crate::real_data::files_2015(&dir.join("legacy-eq-14col/2015")));
        let _ = root.run_ok(&crate::serve::feature_defs(), &["materialize"]);
        Some(root)
    }
}
