//! Reading bhavcopies out of zip archives. BSE's own zips hold one `EQ{DDMMYY}.CSV`; archives
//! users assemble may hold many, plus stray files (`__MACOSX/`, READMEs) that are ignored.

use std::io::{Cursor, Read};

/// A CSV member of an archive that looks like a bhavcopy.
#[derive(Debug, Clone)]
pub struct ZipMember {
    /// The member's name inside the archive.
    pub name: String,
    /// The member's uncompressed bytes.
    pub bytes: Vec<u8>,
}

/// Upper bound on one member's uncompressed size: a real bhavcopy is under 2 MB, so anything far
/// larger is a zip bomb or not a bhavcopy.
const MAX_MEMBER_BYTES: u64 = 256 * 1024 * 1024;

/// The `.csv` members of an archive, in archive order, skipping directories and macOS metadata.
pub fn bhavcopy_members(zip_bytes: &[u8]) -> Result<Vec<ZipMember>, String> {
    let mut archive =
        zip::ZipArchive::new(Cursor::new(zip_bytes)).map_err(|e| format!("not a readable zip archive: {e}"))?;
    let mut out = Vec::new();
    for i in 0..archive.len() {
        let mut file = archive.by_index(i).map_err(|e| format!("zip member {i}: {e}"))?;
        let name = file.name().to_string();
        let base = name.rsplit('/').next().unwrap_or(&name);
        if file.is_dir() || name.starts_with("__MACOSX/") || base.starts_with("._") {
            continue;
        }
        if !base.to_ascii_lowercase().ends_with(".csv") {
            continue;
        }
        if file.size() > MAX_MEMBER_BYTES {
            return Err(format!("zip member {name} is {} bytes uncompressed, too large for a bhavcopy", file.size()));
        }
        let mut bytes = Vec::with_capacity(usize::try_from(file.size()).unwrap_or(0));
        file.by_ref()
            .take(MAX_MEMBER_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| format!("zip member {name}: {e}"))?;
        out.push(ZipMember { name, bytes });
    }
    Ok(out)
}
