//! Importing bhavcopies from files: paths a user names (`bhavstore import`), or a location under
//! an import root (`POST /feature-store/ingest`). Both find their files under a link policy
//! (`local_files.rs`) or by listing a bucket prefix, and then take one shared path: read one file
//! at a time (up to `ingest.max_file_bytes`), split a user's archive of many days into its
//! members (after checking the whole archive against the zip limits, so a refused archive is
//! kept once under `rejected/` and none of its members is), and ingest each body.
//! The trade date comes from the content or from BSE's file name.

use std::path::PathBuf;

use bytes::Bytes;
use chrono::Utc;

use super::local_files::{self, LocalFile, ReadError};
use super::location::Confined;
use super::{IngestError, Ingested, Ingestor, Provenance, Unusable};
use bhavstore_formats::file_name::date_from_file_name;
use bhavstore_formats::{BodyKind, classify, read_zip_member, scan_zip};
use bhavstore_storage::S3Config;
use bhavstore_storage::Storage;

/// Why one file (or archive member) was not imported.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// It could not be read.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// It was read but not taken in.
    #[error(transparent)]
    Ingest(#[from] IngestError),
}

impl FileError {
    /// The error for someone who does not own the file (see [`IngestError::client_message`]).
    #[must_use]
    pub fn client_message(&self) -> String {
        match self {
            Self::Read(e) => e.to_string(),
            Self::Ingest(e) => e.client_message(),
        }
    }
}

/// One file (or archive member) and what became of it.
#[derive(Debug)]
pub struct ImportedFile {
    /// Path, with `!member` for a member of an archive.
    pub source: String,
    /// The outcome.
    pub result: Result<Ingested, FileError>,
}

/// Everything an import did.
#[derive(Debug, Default)]
pub struct ImportReport {
    /// Files and members processed, in order.
    pub files: Vec<ImportedFile>,
    /// Entries that were not looked at (not `.csv`/`.zip`, links not followed, loops), with
    /// the reason.
    pub skipped: Vec<(String, String)>,
}

impl ImportReport {
    /// Files that failed.
    #[must_use]
    pub fn failed(&self) -> usize {
        self.files.iter().filter(|f| f.result.is_err()).count()
    }

    /// Files stored but held back because they would lose rows.
    #[must_use]
    pub fn held(&self) -> usize {
        self.files.iter().filter(|f| matches!(f.result, Ok(Ingested::Held(_)))).count()
    }
}

/// Imports the paths a user named. Paths named are followed even when they are links; inside
/// the directories walked, links leaving the tree are skipped and loops are detected. Errors of
/// single files are reported, not fatal; storage failures are.
pub async fn import_paths(
    ingestor: &Ingestor,
    paths: &[PathBuf],
    on_file: &(dyn Fn(&ImportedFile) + Sync),
) -> Result<ImportReport, IngestError> {
    let paths = paths.to_vec();
    let walk = tokio::task::spawn_blocking(move || local_files::walk_user_paths(&paths))
        .await
        .map_err(|e| IngestError::Write(format!("walking the paths: {e}")))?;
    let mut report = ImportReport { skipped: walk.skipped, ..ImportReport::default() };
    for file in walk.files {
        import_local(ingestor, file, &mut report, on_file).await?;
    }
    Ok(report)
}

/// Imports a location confined to an import root (see `location.rs`): no link is followed,
/// nothing is created, and an S3 prefix is read with the storage's S3 settings.
pub async fn import_location(
    ingestor: &Ingestor,
    location: &Confined,
    s3: &S3Config,
    on_file: &(dyn Fn(&ImportedFile) + Sync),
) -> Result<ImportReport, IngestError> {
    let mut report = ImportReport::default();
    match location {
        Confined::Local { path, url, .. } => {
            let (path, url) = (path.clone(), url.clone());
            let walk = tokio::task::spawn_blocking(move || local_files::walk_confined(&path, &url))
                .await
                .map_err(|e| IngestError::Write(format!("walking the location: {e}")))?;
            report.skipped = walk.skipped;
            for file in walk.files {
                import_local(ingestor, file, &mut report, on_file).await?;
            }
        }
        Confined::S3 { bucket, prefix, url } => {
            let source = Storage::open_s3(bucket, prefix, s3)?;
            let max = ingestor.config().max_file_bytes.0;
            for (key, size) in source.list_sized("").await? {
                let name = key.rsplit('/').next().unwrap_or(&key).to_string();
                let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
                if ext != "csv" && ext != "zip" && ext != "json" {
                    report.skipped.push((key, "not a .csv, .zip or .json file".into()));
                    continue;
                }
                let object_url = format!("{}/{key}", url.trim_end_matches('/'));
                if size > max {
                    let f = ImportedFile {
                        source: key,
                        result: Err(FileError::Read(ReadError::TooLarge { size, limit: max })),
                    };
                    on_file(&f);
                    report.files.push(f);
                    continue;
                }
                let Some(bytes) = source.get(&key).await? else {
                    report.skipped.push((key, "vanished while importing".into()));
                    continue;
                };
                import_body(ingestor, &key, &object_url, &name, bytes, &mut report, on_file).await?;
            }
        }
    }
    Ok(report)
}

async fn import_local(
    ingestor: &Ingestor,
    file: LocalFile,
    report: &mut ImportReport,
    on_file: &(dyn Fn(&ImportedFile) + Sync),
) -> Result<(), IngestError> {
    let max = ingestor.config().max_file_bytes.0;
    let (display, source, name) = (file.display.clone(), file.source.clone(), file.name.clone());
    let read = tokio::task::spawn_blocking(move || local_files::read(&file, max))
        .await
        .unwrap_or_else(|e| Err(ReadError::Io(std::io::Error::other(e.to_string()))));
    match read {
        Ok(bytes) => import_body(ingestor, &display, &source, &name, Bytes::from(bytes), report, on_file).await,
        Err(e) => {
            let f = ImportedFile { source: display, result: Err(FileError::Read(e)) };
            on_file(&f);
            report.files.push(f);
            Ok(())
        }
    }
}

fn provenance(source: String) -> Provenance {
    Provenance { kind: "import".into(), source, fetched_at: Utc::now(), http_status: None, content_type: None }
}

/// One body read from a file: a user's archive of many days is split per member, BSE's own
/// one-member zip and plain CSVs are ingested as they are.
async fn import_body(
    ingestor: &Ingestor,
    display: &str,
    source: &str,
    name: &str,
    bytes: Bytes,
    report: &mut ImportReport,
    on_file: &(dyn Fn(&ImportedFile) + Sync),
) -> Result<(), IngestError> {
    let mut push = |f: ImportedFile| {
        on_file(&f);
        report.files.push(f);
    };
    if classify(&bytes) == BodyKind::Zip {
        let limits = ingestor.config().zip_limits();
        match scan_zip(&bytes, &limits) {
            Err(e) => {
                // Refused whole, before any member is looked at: the archive is kept once.
                let err = IngestError::NotABhavcopy { name: name.into(), what: Unusable::Archive(e) };
                let err =
                    ingestor.reject(date_from_file_name(name), name, &bytes, provenance(source.into()), err).await;
                if err.is_storage() {
                    return Err(err);
                }
                push(ImportedFile { source: display.into(), result: Err(err.into()) });
                return Ok(());
            }
            Ok(members) if members.len() > 1 => {
                for m in &members {
                    let shown = format!("{display}!{}", m.name);
                    let member = match read_zip_member(&bytes, m, &limits) {
                        Ok(member) => member,
                        Err(e) => {
                            let err = IngestError::NotABhavcopy { name: m.name.clone(), what: Unusable::Archive(e) };
                            push(ImportedFile { source: shown, result: Err(err.into()) });
                            continue;
                        }
                    };
                    let base = m.name.rsplit('/').next().unwrap_or(&m.name).to_string();
                    let prov = provenance(format!("{source}!{}", m.name));
                    let result = ingest_one(ingestor, &base, Bytes::from(member.bytes), prov).await?;
                    push(ImportedFile { source: shown, result });
                }
                return Ok(());
            }
            Ok(_) => {}
        }
    }
    if let Some(kind) = super::reference::detect(&bytes) {
        let result = match super::reference::store(
            ingestor.storage(),
            kind,
            name,
            &bytes,
            provenance(source.into()),
            None,
        )
        .await
        {
            Ok(loaded) => Ok(Ingested::Reference(loaded)),
            Err(e) if e.is_storage() => return Err(e),
            Err(e) => Err(e.into()),
        };
        push(ImportedFile { source: display.into(), result });
        return Ok(());
    }
    let result = ingest_one(ingestor, name, bytes, provenance(source.into())).await?;
    push(ImportedFile { source: display.into(), result });
    Ok(())
}

/// Ingests one body; the outer error (storage) stops the import, the inner one is the file's.
async fn ingest_one(
    ingestor: &Ingestor,
    name: &str,
    bytes: Bytes,
    prov: Provenance,
) -> Result<Result<Ingested, FileError>, IngestError> {
    match ingestor.ingest_bytes(name, bytes, prov, None).await {
        Ok(r) => Ok(Ok(r)),
        Err(e) if e.is_storage() => Err(e),
        Err(e) => Ok(Err(e.into())),
    }
}
