//! Reading bhavcopies out of zip archives. BSE's own zips hold one `EQ{DDMMYY}.CSV`; archives
//! users assemble may hold many, plus stray files (`__MACOSX/`, READMEs) that are ignored.
//!
//! Archives are untrusted: a few megabytes can claim (or really hold) gigabytes. Nothing here
//! trusts the sizes the central directory states: every limit is checked against the bytes the
//! decompressor actually produces, and members are read one at a time, never all at once.

use std::io::{Cursor, Read};

/// A CSV member of an archive that looks like a bhavcopy.
#[derive(Debug, Clone)]
pub struct ZipMember {
    /// The member's name inside the archive.
    pub name: String,
    /// The member's uncompressed bytes.
    pub bytes: Vec<u8>,
}

/// What an archive may expand to. Real bhavcopies are a few MB (the largest real UDiFF day is
/// under 1 MB; BSE's own zips expand about 3x), so the defaults leave wide room for archives of
/// many years while refusing decompression bombs early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZipLimits {
    /// Largest uncompressed size of one CSV member.
    pub max_member_bytes: u64,
    /// Largest uncompressed size of all CSV members together.
    pub max_total_bytes: u64,
    /// Largest ratio of uncompressed to compressed bytes (per member, and for the archive).
    pub max_ratio: u64,
    /// Most entries an archive may list.
    pub max_members: usize,
}

impl Default for ZipLimits {
    fn default() -> Self {
        Self { max_member_bytes: 64 << 20, max_total_bytes: 2 << 30, max_ratio: 100, max_members: 20_000 }
    }
}

/// Below this many uncompressed bytes the ratio is not checked: tiny, very compressible files
/// cost nothing, and a ratio over a few kilobytes says little.
const RATIO_FLOOR: u64 = 1 << 20;

/// Why an archive (or one of its members) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ZipError {
    /// The bytes are not a zip archive that can be read.
    #[error("not a readable zip archive: {0}")]
    Unreadable(String),
    /// The archive lists more entries than allowed.
    #[error("the archive lists {count} entries, more than the {limit} allowed (ingest.max_archive_members)")]
    TooManyMembers {
        /// Entries listed.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// One member expands beyond the per-member limit.
    #[error(
        "zip member {name} expands to more than {limit} bytes, too large for a bhavcopy (ingest.max_member_bytes); refused as a likely decompression bomb"
    )]
    MemberTooLarge {
        /// The member.
        name: String,
        /// The limit.
        limit: u64,
    },
    /// All members together expand beyond the archive limit.
    #[error(
        "the archive's CSV members expand to more than {limit} bytes in total (ingest.max_archive_bytes); refused as a likely decompression bomb"
    )]
    TotalTooLarge {
        /// The limit.
        limit: u64,
    },
    /// Compressed far more than text compresses.
    #[error(
        "{what} expands more than {limit}x its compressed size (ingest.max_compression_ratio); refused as a likely decompression bomb"
    )]
    RatioTooHigh {
        /// `zip member NAME` or `the archive`.
        what: String,
        /// The limit.
        limit: u64,
    },
    /// A member could not be decompressed.
    #[error("zip member {name}: {message}")]
    Member {
        /// The member.
        name: String,
        /// What went wrong.
        message: String,
    },
}

impl ZipError {
    /// Whether the archive was refused for its size (a bomb), as opposed to being unreadable.
    #[must_use]
    pub fn is_bomb(&self) -> bool {
        !matches!(self, Self::Unreadable(_) | Self::Member { .. })
    }

    /// The kind of problem, without names from inside the archive.
    #[must_use]
    pub fn category(&self) -> String {
        match self {
            Self::Unreadable(_) => "not a readable zip archive".into(),
            Self::Member { .. } => "a zip member cannot be decompressed".into(),
            Self::MemberTooLarge { limit, .. } => format!(
                "a zip member expands to more than {limit} bytes (ingest.max_member_bytes); refused as a likely decompression bomb"
            ),
            Self::RatioTooHigh { limit, .. } => format!(
                "the archive expands more than {limit}x its compressed size (ingest.max_compression_ratio); refused as a likely decompression bomb"
            ),
            Self::TooManyMembers { .. } | Self::TotalTooLarge { .. } => self.to_string(),
        }
    }
}

/// A CSV member found by [`scan`]: its index in the archive, name and real uncompressed size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberInfo {
    /// Index in the archive.
    pub index: usize,
    /// Name inside the archive.
    pub name: String,
    /// Bytes the decompressor produced for it.
    pub size: u64,
}

/// Whether an entry name is a CSV bhavcopy candidate (not a folder, not macOS metadata).
fn is_csv_member(name: &str, is_dir: bool) -> bool {
    let base = name.rsplit('/').next().unwrap_or(name);
    !(is_dir || name.starts_with("__MACOSX/") || base.starts_with("._")) && base.to_ascii_lowercase().ends_with(".csv")
}

fn open<'a>(zip_bytes: &'a [u8], limits: &ZipLimits) -> Result<zip::ZipArchive<Cursor<&'a [u8]>>, ZipError> {
    let archive = zip::ZipArchive::new(Cursor::new(zip_bytes)).map_err(|e| ZipError::Unreadable(e.to_string()))?;
    if archive.len() > limits.max_members {
        return Err(ZipError::TooManyMembers { count: archive.len(), limit: limits.max_members });
    }
    Ok(archive)
}

/// Decompresses every CSV member once, keeping nothing, and checks every limit against the
/// bytes really produced. Returns the CSV members in archive order. Run this before acting on
/// any member, so a refused archive leaves no member behind.
pub fn scan(zip_bytes: &[u8], limits: &ZipLimits) -> Result<Vec<MemberInfo>, ZipError> {
    let mut archive = open(zip_bytes, limits)?;
    let archive_len = zip_bytes.len() as u64;
    let mut total = 0u64;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    for index in 0..archive.len() {
        let mut file = archive
            .by_index(index)
            .map_err(|e| ZipError::Member { name: format!("#{index}"), message: e.to_string() })?;
        let name = file.name().to_string();
        if !is_csv_member(&name, file.is_dir()) {
            continue;
        }
        let compressed = file.compressed_size().clamp(1, archive_len.max(1));
        let mut size = 0u64;
        loop {
            let n = file.read(&mut buf).map_err(|e| ZipError::Member { name: name.clone(), message: e.to_string() })?;
            if n == 0 {
                break;
            }
            size += n as u64;
            total += n as u64;
            check(&name, size, compressed, total, archive_len, limits)?;
        }
        out.push(MemberInfo { index, name, size });
    }
    Ok(out)
}

fn check(
    name: &str,
    size: u64,
    compressed: u64,
    total: u64,
    archive_len: u64,
    limits: &ZipLimits,
) -> Result<(), ZipError> {
    if size > limits.max_member_bytes {
        return Err(ZipError::MemberTooLarge { name: name.to_string(), limit: limits.max_member_bytes });
    }
    if total > limits.max_total_bytes {
        return Err(ZipError::TotalTooLarge { limit: limits.max_total_bytes });
    }
    if size > RATIO_FLOOR && size / compressed > limits.max_ratio {
        return Err(ZipError::RatioTooHigh { what: format!("zip member {name}"), limit: limits.max_ratio });
    }
    if total > RATIO_FLOOR && total / archive_len.max(1) > limits.max_ratio {
        return Err(ZipError::RatioTooHigh { what: "the archive".into(), limit: limits.max_ratio });
    }
    Ok(())
}

/// Reads one member found by [`scan`], stopping at the per-member limit whatever the archive
/// claims.
pub fn read_member(zip_bytes: &[u8], member: &MemberInfo, limits: &ZipLimits) -> Result<ZipMember, ZipError> {
    let mut archive = open(zip_bytes, limits)?;
    let file = archive
        .by_index(member.index)
        .map_err(|e| ZipError::Member { name: member.name.clone(), message: e.to_string() })?;
    let mut bytes = Vec::with_capacity(usize::try_from(member.size.min(limits.max_member_bytes)).unwrap_or(0));
    file.take(limits.max_member_bytes + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| ZipError::Member { name: member.name.clone(), message: e.to_string() })?;
    if bytes.len() as u64 > limits.max_member_bytes {
        return Err(ZipError::MemberTooLarge { name: member.name.clone(), limit: limits.max_member_bytes });
    }
    Ok(ZipMember { name: member.name.clone(), bytes })
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn zip_of(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        for (name, body) in members {
            w.start_file(*name, opts).unwrap();
            w.write_all(body).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    #[test]
    fn lists_csv_members_with_real_sizes() {
        let z = zip_of(&[("a/EQ050115.CSV", b"x,y\n1,2\n"), ("__MACOSX/._x.csv", b"junk"), ("README.txt", b"hi")]);
        let members = scan(&z, &ZipLimits::default()).unwrap();
        assert_eq!(members, vec![MemberInfo { index: 0, name: "a/EQ050115.CSV".into(), size: 8 }]);
        let m = read_member(&z, &members[0], &ZipLimits::default()).unwrap();
        assert_eq!(m.bytes, b"x,y\n1,2\n");
    }

    #[test]
    fn bombs_are_refused_by_what_they_really_expand_to() {
        let zeros = vec![b'0'; 4 << 20];
        let z = zip_of(&[("a.csv", &zeros), ("b.csv", &zeros), ("c.csv", &zeros)]);
        let tight = ZipLimits { max_member_bytes: 1 << 20, ..ZipLimits::default() };
        assert!(matches!(scan(&z, &tight), Err(ZipError::MemberTooLarge { .. })));
        let total = ZipLimits { max_total_bytes: 10 << 20, max_ratio: u64::MAX, ..ZipLimits::default() };
        assert!(matches!(scan(&z, &total), Err(ZipError::TotalTooLarge { .. })));
        // Four MiB of one byte deflates about a thousandfold.
        assert!(matches!(scan(&z, &ZipLimits::default()), Err(ZipError::RatioTooHigh { .. })));
        let few = ZipLimits { max_members: 2, ..ZipLimits::default() };
        assert!(matches!(scan(&z, &few), Err(ZipError::TooManyMembers { count: 3, limit: 2 })));
        assert!(scan(&z, &few).unwrap_err().is_bomb());
        assert!(matches!(scan(b"PK\x03\x04 not really", &ZipLimits::default()), Err(ZipError::Unreadable(_))));
    }
}
