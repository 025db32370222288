//! Where `POST /feature-store/ingest` may read files from: only inside the configured import
//! roots (`server.import_roots`), none by default.
//!
//! A request names a location as `file:///abs/dir` or `s3://bucket/prefix`. It is parsed
//! strictly (no percent-encoding, no `.` or `..` segments, no backslashes or control
//! characters), compared with the roots segment by segment (so `file:///data/in` does not admit
//! `file:///data/incoming`), and for local paths every component below the root is checked with
//! `symlink_metadata`: a symbolic link anywhere on the way is refused, and nothing is created.

use std::path::{Path, PathBuf};

/// A parsed location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// An absolute local path, as segments below `/`.
    Local(Vec<String>),
    /// An S3 bucket and a key prefix, as segments.
    S3 {
        /// The bucket.
        bucket: String,
        /// The prefix, as segments.
        prefix: Vec<String>,
    },
}

/// Why a location was refused.
#[derive(Debug, thiserror::Error)]
pub enum LocationError {
    /// The text is not a location this server reads.
    #[error("data_source {location:?}: {reason}")]
    Malformed {
        /// What was given (shortened).
        location: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// No import roots are configured.
    #[error(
        "loading files from file:// or s3:// locations is turned off on this server; an operator enables it by listing the allowed locations in server.import_roots (file:///abs/dir or s3://bucket/prefix)"
    )]
    NoRoots,
    /// The location is outside every root.
    #[error("{location} is not inside any of the locations this server may load from (server.import_roots)")]
    OutsideRoots {
        /// The location.
        location: String,
    },
    /// A component of the path below the root is a symbolic link.
    #[error("{location}: the path goes through a symbolic link; links are not followed")]
    SymbolicLink {
        /// The location.
        location: String,
    },
    /// The location does not exist.
    #[error("{location}: no such file or directory")]
    NotFound {
        /// The location.
        location: String,
    },
    /// A configured root is malformed or unusable.
    #[error("server.import_roots entry {root:?}: {reason}")]
    BadRoot {
        /// The root as configured.
        root: String,
        /// What is wrong.
        reason: String,
    },
    /// The file system refused to tell.
    #[error("{location}: cannot be read ({kind})")]
    Io {
        /// The location.
        location: String,
        /// The kind of IO error (never the path of a link target).
        kind: std::io::ErrorKind,
    },
}

fn malformed(text: &str, reason: &'static str) -> LocationError {
    LocationError::Malformed { location: bhavstore_formats::detect::truncate(text, 200), reason }
}

/// Splits a path into segments, refusing anything that could mean something else than it says.
fn segments(text: &str, path: &str) -> Result<Vec<String>, LocationError> {
    if path.contains('%') {
        return Err(malformed(text, "percent-encoded characters are not accepted"));
    }
    if path.chars().any(|c| c == '\\' || c.is_control() || c == '?' || c == '#') {
        return Err(malformed(text, "backslashes, control characters, '?' and '#' are not accepted"));
    }
    let mut out = Vec::new();
    for seg in path.split('/').filter(|s| !s.is_empty()) {
        if seg == "." || seg == ".." {
            return Err(malformed(text, "'.' and '..' path segments are not accepted"));
        }
        out.push(seg.to_string());
    }
    Ok(out)
}

impl Location {
    /// Parses `file:///abs/path` or `s3://bucket/prefix` (a trailing slash and repeated slashes
    /// do not matter).
    pub fn parse(text: &str) -> Result<Self, LocationError> {
        let t = text.trim();
        if let Some(path) = t.strip_prefix("file://") {
            if !path.starts_with('/') {
                return Err(malformed(t, "file locations must be absolute: file:///abs/dir (no host)"));
            }
            return Ok(Self::Local(segments(t, path)?));
        }
        if let Some(rest) = t.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            let valid_bucket = (3..=63).contains(&bucket.len())
                && bucket.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
                && !bucket.contains("..");
            if !valid_bucket {
                return Err(malformed(t, "not a valid S3 bucket name"));
            }
            return Ok(Self::S3 { bucket: bucket.to_string(), prefix: segments(t, prefix)? });
        }
        Err(malformed(t, "must be a trade date (YYYY-MM-DD), s3://bucket/prefix or file:///path"))
    }

    /// Whether `self` is `root` or below it, segment by segment.
    #[must_use]
    pub fn is_within(&self, root: &Self) -> bool {
        match (self, root) {
            (Self::Local(p), Self::Local(r)) => p.starts_with(r),
            (Self::S3 { bucket: b, prefix: p }, Self::S3 { bucket: rb, prefix: rp }) => b == rb && p.starts_with(rp),
            _ => false,
        }
    }

    /// The normalised URL.
    #[must_use]
    pub fn url(&self) -> String {
        match self {
            Self::Local(p) => format!("file:///{}", p.join("/")),
            Self::S3 { bucket, prefix } if prefix.is_empty() => format!("s3://{bucket}"),
            Self::S3 { bucket, prefix } => format!("s3://{bucket}/{}", prefix.join("/")),
        }
    }
}

/// A location checked against the roots: safe to read without following links.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Confined {
    /// A local file or directory.
    Local {
        /// The root it is under, with the operator's own links resolved.
        root: PathBuf,
        /// The file or directory: `root` joined with segments none of which is a link.
        path: PathBuf,
        /// The location as asked, for messages and provenance.
        url: String,
    },
    /// A prefix in a bucket.
    S3 {
        /// The bucket.
        bucket: String,
        /// The key prefix (no leading or trailing slash).
        prefix: String,
        /// The location as asked.
        url: String,
    },
}

impl Confined {
    /// The location as asked (normalised).
    #[must_use]
    pub fn url(&self) -> &str {
        match self {
            Self::Local { url, .. } | Self::S3 { url, .. } => url,
        }
    }
}

/// The configured import roots.
#[derive(Debug, Clone, Default)]
pub struct ImportRoots {
    roots: Vec<(String, Location)>,
}

impl ImportRoots {
    /// Parses `server.import_roots`.
    pub fn parse(roots: &[String]) -> Result<Self, LocationError> {
        let roots = roots
            .iter()
            .map(|r| {
                Location::parse(r)
                    .map(|l| (r.clone(), l))
                    .map_err(|e| LocationError::BadRoot { root: r.clone(), reason: e.to_string() })
            })
            .collect::<Result<Vec<_>, _>>()?;
        for (text, root) in &roots {
            if matches!(root, Location::Local(segs) if segs.is_empty()) {
                return Err(LocationError::BadRoot {
                    root: text.clone(),
                    reason: "the whole file system cannot be an import root".into(),
                });
            }
        }
        Ok(Self { roots })
    }

    /// Whether no roots are configured.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.roots.is_empty()
    }

    /// Checks a requested location: inside a root, and for local paths existing with no
    /// symbolic link between the root and it. Nothing is created.
    pub fn confine(&self, location: &Location) -> Result<Confined, LocationError> {
        if self.roots.is_empty() {
            return Err(LocationError::NoRoots);
        }
        let url = location.url();
        // The most specific root decides.
        let root = self
            .roots
            .iter()
            .filter(|(_, r)| location.is_within(r))
            .max_by_key(|(_, r)| match r {
                Location::Local(s) | Location::S3 { prefix: s, .. } => s.len(),
            })
            .ok_or_else(|| LocationError::OutsideRoots { location: url.clone() })?;
        match (location, &root.1) {
            (Location::Local(segs), Location::Local(root_segs)) => {
                let root_path: PathBuf = std::iter::once("/".to_string()).chain(root_segs.iter().cloned()).collect();
                // The operator chose the root, links and all; below it nothing is followed.
                let canonical = std::fs::canonicalize(&root_path).map_err(|e| LocationError::BadRoot {
                    root: root.0.clone(),
                    reason: format!("cannot be opened ({})", e.kind()),
                })?;
                let path = walk_down(&canonical, &segs[root_segs.len()..], &url)?;
                Ok(Confined::Local { root: canonical, path, url })
            }
            (Location::S3 { bucket, prefix }, Location::S3 { .. }) => {
                Ok(Confined::S3 { bucket: bucket.clone(), prefix: prefix.join("/"), url })
            }
            _ => Err(LocationError::OutsideRoots { location: url }),
        }
    }
}

/// Follows `rel` below `root` one component at a time without following links.
fn walk_down(root: &Path, rel: &[String], url: &str) -> Result<PathBuf, LocationError> {
    let mut cur = root.to_path_buf();
    for seg in rel {
        cur.push(seg);
        match std::fs::symlink_metadata(&cur) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(LocationError::SymbolicLink { location: url.to_string() });
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(LocationError::NotFound { location: url.to_string() });
            }
            Err(e) => return Err(LocationError::Io { location: url.to_string(), kind: e.kind() }),
        }
    }
    Ok(cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roots(r: &[&str]) -> ImportRoots {
        ImportRoots::parse(&r.iter().map(|s| (*s).to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn parsing_refuses_tricks() {
        for bad in [
            "file://host/etc",
            "file:///data/../etc",
            "file:///data/./x",
            "file:///data/%2e%2e/etc",
            "file:///data\\..\\etc",
            "file:///data/x?y",
            "s3://",
            "s3://Bad_Bucket/x",
            "s3://bucket/a/../b",
            "http://169.254.169.254/latest",
        ] {
            assert!(matches!(Location::parse(bad), Err(LocationError::Malformed { .. })), "{bad}");
        }
        assert_eq!(Location::parse("file:///data//in/").unwrap(), Location::Local(vec!["data".into(), "in".into()]));
        assert_eq!(Location::parse("s3://b-1/p/q/").unwrap().url(), "s3://b-1/p/q");
    }

    #[test]
    fn roots_compare_by_segment() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().canonicalize().unwrap();
        std::fs::create_dir_all(base.join("in/day")).unwrap();
        std::fs::create_dir_all(base.join("incoming")).unwrap();
        std::os::unix::fs::symlink("/etc", base.join("in/etc")).unwrap();
        let r = roots(&[&format!("file://{}/in/", base.display()), "s3://bucket/in"]);
        let loc = |s: String| Location::parse(&s).unwrap();
        let ok = r.confine(&loc(format!("file://{}/in/day", base.display()))).unwrap();
        assert_eq!(
            ok,
            Confined::Local {
                root: base.join("in"),
                path: base.join("in/day"),
                url: format!("file://{}/in/day", base.display())
            }
        );
        assert!(matches!(
            r.confine(&loc(format!("file://{}/incoming", base.display()))),
            Err(LocationError::OutsideRoots { .. })
        ));
        assert!(matches!(
            r.confine(&loc(format!("file://{}/in/etc", base.display()))),
            Err(LocationError::SymbolicLink { .. })
        ));
        assert!(matches!(
            r.confine(&loc(format!("file://{}/in/x/a/b", base.display()))),
            Err(LocationError::NotFound { .. })
        ));
        assert!(!base.join("in/x").exists(), "nothing is created");
        assert!(r.confine(&loc("s3://bucket/in/2024".into())).is_ok());
        assert!(matches!(r.confine(&loc("s3://bucket/inbox".into())), Err(LocationError::OutsideRoots { .. })));
        assert!(matches!(r.confine(&loc("s3://other/in".into())), Err(LocationError::OutsideRoots { .. })));
        assert!(matches!(ImportRoots::default().confine(&loc("s3://bucket/in".into())), Err(LocationError::NoRoots)));
        assert!(ImportRoots::parse(&["file:///".to_string()]).is_err());
    }
}
