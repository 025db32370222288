//! Finding and reading local files to import, under one of two link policies.
//!
//! `bhavstore import PATH...` follows the paths the user names, but inside the directories it
//! walks it follows a symbolic link only when the link's target lies inside the tree being
//! imported, and it visits every directory and file once (canonical paths, and device and inode
//! numbers), so a link back up the tree is a loop that is reported, not walked forever.
//!
//! REST ingest from an import root follows no link at all: every entry is examined with
//! `symlink_metadata`, a link is skipped and reported by name without being read, and a file is
//! read only if the file actually opened is the one examined (same device and inode, and on
//! Linux the kernel's own path of the open file is the path expected), so swapping a link in
//! between is caught too.

use std::collections::HashSet;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// How symbolic links are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkPolicy {
    /// Named paths are followed; inside walked directories only links into the same tree.
    WithinTree,
    /// No link is ever followed or read.
    Never,
}

/// Device and inode: what a file is, whatever path reaches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct FileId {
    dev: u64,
    ino: u64,
}

impl FileId {
    fn of(m: &std::fs::Metadata) -> Self {
        Self { dev: m.dev(), ino: m.ino() }
    }
}

/// A file found for import.
#[derive(Debug, Clone)]
pub struct LocalFile {
    /// What to show: the path as the user gave it, or the path below the REST location.
    pub display: String,
    /// Provenance: the path, or the `file://` URL.
    pub source: String,
    /// The file's own name (what dates and keys are taken from).
    pub name: String,
    /// Path to open.
    path: PathBuf,
    /// The file examined at walk time; `None` when it could not be examined (the read then
    /// reports why).
    id: Option<FileId>,
    /// Under [`LinkPolicy::Never`]: the path the opened file must really have.
    exact: Option<PathBuf>,
}

/// Why a file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The operating system refused.
    #[error("cannot read: {0}")]
    Io(#[from] std::io::Error),
    /// Larger than `ingest.max_file_bytes`.
    #[error("{size} bytes, larger than ingest.max_file_bytes ({limit} bytes); not read")]
    TooLarge {
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The file opened is not the one examined (a link or another file swapped in).
    #[error("the file changed while it was being imported (replaced or swapped for a link); not read")]
    Changed,
    /// Not a regular file.
    #[error("not a regular file; not read")]
    NotRegular,
}

/// Files and skipped entries of a walk.
#[derive(Debug, Default)]
pub struct Walk {
    /// Files to import, in order.
    pub files: Vec<LocalFile>,
    /// Entries not imported, with the reason.
    pub skipped: Vec<(String, String)>,
}

fn has_import_extension(path: &Path) -> bool {
    let ext = path.extension().map(|e| e.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
    ext == "csv" || ext == "zip" || ext == "json"
}

fn name_of(path: &Path) -> String {
    path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned())
}

fn sorted_entries(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)?.filter_map(|e| e.ok().map(|e| e.path())).collect();
    v.sort();
    Ok(v)
}

/// Walks the paths a user named on the command line ([`LinkPolicy::WithinTree`]).
#[must_use]
pub fn walk_user_paths(paths: &[PathBuf]) -> Walk {
    let mut w = Walk::default();
    let mut seen_dirs = HashSet::new();
    let mut seen_files = HashSet::new();
    for p in paths {
        let display = p.display().to_string();
        match std::fs::metadata(p) {
            Ok(m) if m.is_dir() => {
                let Ok(root) = std::fs::canonicalize(p) else {
                    w.skipped.push((display, "cannot resolve the directory".into()));
                    continue;
                };
                if seen_dirs.insert(root.clone()) {
                    walk_tree(p, &root, &mut seen_dirs, &mut seen_files, &mut w);
                }
            }
            Ok(m) => {
                // A file the user named is imported whatever its name, links followed.
                seen_files.insert(FileId::of(&m));
                w.files.push(LocalFile {
                    source: display.clone(),
                    name: name_of(p),
                    display,
                    path: p.clone(),
                    id: Some(FileId::of(&m)),
                    exact: None,
                });
            }
            // Reading reports the error, and the file counts as failed.
            Err(_) => w.files.push(LocalFile {
                source: display.clone(),
                name: name_of(p),
                display,
                path: p.clone(),
                id: None,
                exact: None,
            }),
        }
    }
    w
}

fn walk_tree(
    dir: &Path,
    root: &Path,
    seen_dirs: &mut HashSet<PathBuf>,
    seen_files: &mut HashSet<FileId>,
    w: &mut Walk,
) {
    let entries = match sorted_entries(dir) {
        Ok(e) => e,
        Err(e) => {
            w.skipped.push((dir.display().to_string(), format!("cannot list directory: {e}")));
            return;
        }
    };
    for entry in entries {
        let display = entry.display().to_string();
        let Ok(lm) = std::fs::symlink_metadata(&entry) else {
            w.skipped.push((display, "vanished while walking".into()));
            continue;
        };
        let (target, meta) = if lm.file_type().is_symlink() {
            let (Ok(target), Ok(meta)) = (std::fs::canonicalize(&entry), std::fs::metadata(&entry)) else {
                w.skipped.push((display, "broken symbolic link".into()));
                continue;
            };
            if !target.starts_with(root) {
                w.skipped.push((display, "symbolic link to a path outside the imported tree; not followed".into()));
                continue;
            }
            (target, meta)
        } else if lm.is_dir() {
            match std::fs::canonicalize(&entry) {
                Ok(t) => (t, lm),
                Err(e) => {
                    w.skipped.push((display, format!("cannot resolve the directory: {e}")));
                    continue;
                }
            }
        } else {
            (entry.clone(), lm)
        };
        if meta.is_dir() {
            if seen_dirs.insert(target) {
                walk_tree(&entry, root, seen_dirs, seen_files, w);
            } else {
                w.skipped
                    .push((display, "directory already walked (a symbolic link loop or a second path to it)".into()));
            }
        } else if !meta.is_file() {
            w.skipped.push((display, "not a regular file".into()));
        } else if !has_import_extension(&entry) {
            w.skipped.push((display, "not a .csv, .zip or .json file".into()));
        } else if !seen_files.insert(FileId::of(&meta)) {
            w.skipped.push((display, "already imported through another path".into()));
        } else {
            w.files.push(LocalFile {
                source: display.clone(),
                name: name_of(&entry),
                display,
                path: entry,
                id: Some(FileId::of(&meta)),
                exact: None,
            });
        }
    }
}

/// Walks a confined location ([`LinkPolicy::Never`]): `path` is below `root`, reached without
/// links (see `location::ImportRoots::confine`); `url` is how the location was asked for.
#[must_use]
pub fn walk_confined(path: &Path, url: &str) -> Walk {
    let mut w = Walk::default();
    let url = url.trim_end_matches('/');
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => w.skipped.push((name_of(path), "symbolic link; not followed".into())),
        Ok(m) if m.is_file() => w.files.push(LocalFile {
            display: name_of(path),
            source: url.to_string(),
            name: name_of(path),
            path: path.to_path_buf(),
            id: Some(FileId::of(&m)),
            exact: Some(path.to_path_buf()),
        }),
        Ok(m) if m.is_dir() => {
            let mut seen = HashSet::from([FileId::of(&m)]);
            walk_confined_dir(path, path, url, &mut seen, &mut w);
        }
        Ok(_) => w.skipped.push((name_of(path), "not a regular file or directory".into())),
        Err(e) => w.skipped.push((name_of(path), format!("cannot be read ({})", e.kind()))),
    }
    w
}

fn walk_confined_dir(base: &Path, dir: &Path, url: &str, seen: &mut HashSet<FileId>, w: &mut Walk) {
    let rel = |p: &Path| p.strip_prefix(base).unwrap_or(p).display().to_string();
    let entries = match sorted_entries(dir) {
        Ok(e) => e,
        Err(e) => {
            w.skipped.push((rel(dir), format!("cannot list directory ({})", e.kind())));
            return;
        }
    };
    for entry in entries {
        let shown = rel(&entry);
        match std::fs::symlink_metadata(&entry) {
            Ok(m) if m.file_type().is_symlink() => {
                w.skipped.push((shown, "symbolic link; not followed".into()));
            }
            Ok(m) if m.is_dir() => {
                // Without links a tree has no loops, except through bind mounts.
                if seen.insert(FileId::of(&m)) {
                    walk_confined_dir(base, &entry, url, seen, w);
                } else {
                    w.skipped.push((shown, "directory already walked".into()));
                }
            }
            Ok(m) if m.is_file() => {
                if has_import_extension(&entry) {
                    w.files.push(LocalFile {
                        source: format!("{url}/{shown}"),
                        name: name_of(&entry),
                        display: shown,
                        path: entry.clone(),
                        id: Some(FileId::of(&m)),
                        exact: Some(entry),
                    });
                } else {
                    w.skipped.push((shown, "not a .csv, .zip or .json file".into()));
                }
            }
            Ok(_) => w.skipped.push((shown, "not a regular file".into())),
            Err(e) => w.skipped.push((shown, format!("cannot be read ({})", e.kind()))),
        }
    }
}

/// Reads a file found by a walk, refusing it when it is larger than `max_bytes` or is not the
/// file the walk examined.
pub fn read(file: &LocalFile, max_bytes: u64) -> Result<Vec<u8>, ReadError> {
    let f = std::fs::File::open(&file.path)?;
    let m = f.metadata()?;
    if !m.is_file() {
        return Err(ReadError::NotRegular);
    }
    if file.id.is_some_and(|id| id != FileId::of(&m)) {
        return Err(ReadError::Changed);
    }
    if let Some(exact) = &file.exact
        && opened_path(&f).is_some_and(|real| &real != exact)
    {
        return Err(ReadError::Changed);
    }
    if m.len() > max_bytes {
        return Err(ReadError::TooLarge { size: m.len(), limit: max_bytes });
    }
    let mut bytes = Vec::with_capacity(usize::try_from(m.len()).unwrap_or(0));
    f.take(max_bytes + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max_bytes {
        return Err(ReadError::TooLarge { size: bytes.len() as u64, limit: max_bytes });
    }
    Ok(bytes)
}

/// The path the kernel has for an open file (Linux), which no link on the way can disguise.
fn opened_path(f: &std::fs::File) -> Option<PathBuf> {
    use std::os::fd::AsRawFd;
    std::fs::read_link(format!("/proc/self/fd/{}", f.as_raw_fd())).ok()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    #[test]
    fn user_walk_skips_links_out_of_the_tree_and_loops() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().canonicalize().unwrap();
        let tree = base.join("tree");
        std::fs::create_dir_all(tree.join("sub")).unwrap();
        std::fs::write(tree.join("sub/EQ050115.CSV"), b"x").unwrap();
        std::fs::write(base.join("outside.csv"), b"secret").unwrap();
        symlink(".", tree.join("loop")).unwrap();
        symlink(base.join("outside.csv"), tree.join("EQ010216.CSV")).unwrap();
        symlink("sub/EQ050115.CSV", tree.join("EQ060115.CSV")).unwrap();
        let w = walk_user_paths(std::slice::from_ref(&tree));
        let names: Vec<&str> = w.files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["EQ060115.CSV"], "{w:?}");
        let reasons: Vec<String> = w.skipped.iter().map(|(p, r)| format!("{p}: {r}")).collect();
        assert!(reasons.iter().any(|r| r.contains("EQ010216.CSV: symbolic link to a path outside")), "{reasons:?}");
        assert!(reasons.iter().any(|r| r.contains("loop: directory already walked")), "{reasons:?}");
        assert!(reasons.iter().any(|r| r.contains("sub/EQ050115.CSV: already imported")), "{reasons:?}");
        // A link the user names is followed.
        let w = walk_user_paths(&[tree.join("EQ010216.CSV")]);
        assert_eq!(read(&w.files[0], 100).unwrap(), b"secret");
    }

    #[test]
    fn confined_walk_reads_no_link_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().canonicalize().unwrap();
        std::fs::write(base.join("EQ050115.CSV"), b"data").unwrap();
        symlink("/etc/passwd", base.join("EQ010216.CSV")).unwrap();
        symlink("EQ050115.CSV", base.join("EQ060115.CSV")).unwrap();
        let w = walk_confined(&base, "file:///in");
        assert_eq!(w.files.len(), 1);
        assert_eq!(w.files[0].source, "file:///in/EQ050115.CSV");
        assert_eq!(read(&w.files[0], 100).unwrap(), b"data");
        assert_eq!(w.skipped.len(), 2, "{:?}", w.skipped);
        assert!(w.skipped.iter().all(|(_, r)| r.contains("symbolic link")));
        // Swapping the examined file for a link is noticed at read time.
        std::fs::remove_file(base.join("EQ050115.CSV")).unwrap();
        std::fs::write(base.join("elsewhere.csv"), b"other").unwrap();
        symlink(base.join("elsewhere.csv"), base.join("EQ050115.CSV")).unwrap();
        assert!(matches!(read(&w.files[0], 100), Err(ReadError::Changed)));
        assert!(matches!(
            read(&walk_user_paths(&[base.join("elsewhere.csv")]).files[0], 2),
            Err(ReadError::TooLarge { .. })
        ));
    }
}
