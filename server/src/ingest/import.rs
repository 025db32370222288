//! Importing bhavcopies a user already has: files, zips or directories (walked recursively).
//! The trade date comes from the content or from BSE's file name.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use chrono::Utc;

use super::{IngestError, Ingested, Ingestor, Provenance};
use crate::formats::{BodyKind, bhavcopy_members, classify};

/// One file (or archive member) and what became of it.
#[derive(Debug, Clone)]
pub struct ImportedFile {
    /// Path, with `!member` for a member of an archive.
    pub source: String,
    /// The outcome: `Ok` with what changed, or the error message.
    pub result: Result<Ingested, String>,
}

/// Everything an import did.
#[derive(Debug, Clone, Default)]
pub struct ImportReport {
    /// Files and members processed, in order.
    pub files: Vec<ImportedFile>,
    /// Files in directories that were not looked at (not `.csv`/`.zip`), with the reason.
    pub skipped: Vec<(String, String)>,
}

impl ImportReport {
    /// Files that failed.
    #[must_use]
    pub fn failed(&self) -> usize {
        self.files.iter().filter(|f| f.result.is_err()).count()
    }
}

/// Imports every path. Errors of single files are reported, not fatal; storage failures are.
pub async fn import_paths(
    ingestor: &Ingestor,
    paths: &[PathBuf],
    on_file: &(dyn Fn(&ImportedFile) + Sync),
) -> Result<ImportReport, IngestError> {
    let mut report = ImportReport::default();
    let mut files = Vec::new();
    for p in paths {
        collect(p, true, &mut files, &mut report.skipped);
    }
    for path in files {
        let display = path.display().to_string();
        let bytes = match std::fs::read(&path) {
            Ok(b) => Bytes::from(b),
            Err(e) => {
                let f = ImportedFile { source: display, result: Err(format!("cannot read: {e}")) };
                on_file(&f);
                report.files.push(f);
                continue;
            }
        };
        let name = path.file_name().map_or_else(|| display.clone(), |n| n.to_string_lossy().into_owned());
        let prov = |source: String| Provenance {
            kind: "import".into(),
            source,
            fetched_at: Utc::now(),
            http_status: None,
            content_type: None,
        };
        // A user's archive of many days is split per member; BSE's own one-member zip is
        // stored as the zip it is.
        let members = match classify(&bytes) {
            BodyKind::Zip => bhavcopy_members(&bytes).unwrap_or_default(),
            _ => Vec::new(),
        };
        let jobs: Vec<(String, String, Bytes)> = if members.len() > 1 {
            members
                .into_iter()
                .map(|m| {
                    let base = m.name.rsplit('/').next().unwrap_or(&m.name).to_string();
                    (format!("{display}!{}", m.name), base, Bytes::from(m.bytes))
                })
                .collect()
        } else {
            vec![(display, name, bytes)]
        };
        for (source, name, body) in jobs {
            let result = match ingestor.ingest_bytes(&name, body, prov(source.clone()), None).await {
                Ok(r) => Ok(r),
                Err(e @ (IngestError::Storage(_) | IngestError::Write(_))) => return Err(e),
                Err(e) => Err(e.to_string()),
            };
            let f = ImportedFile { source, result };
            on_file(&f);
            report.files.push(f);
        }
    }
    Ok(report)
}

fn collect(path: &Path, explicit: bool, out: &mut Vec<PathBuf>, skipped: &mut Vec<(String, String)>) {
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = match std::fs::read_dir(path) {
            Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
            Err(e) => {
                skipped.push((path.display().to_string(), format!("cannot list directory: {e}")));
                return;
            }
        };
        entries.sort();
        for e in entries {
            collect(&e, false, out, skipped);
        }
    } else if explicit {
        out.push(path.to_path_buf());
    } else {
        let ext = path.extension().map(|e| e.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
        if ext == "csv" || ext == "zip" {
            out.push(path.to_path_buf());
        } else {
            skipped.push((path.display().to_string(), "not a .csv or .zip file".into()));
        }
    }
}
