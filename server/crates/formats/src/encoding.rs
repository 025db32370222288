//! Text encodings a bhavcopy must not be in. BSE publishes ASCII; a file re-saved by a Windows
//! editor as "Unicode" is UTF-16, whose header reads as garbage byte by byte. Naming the
//! encoding tells the user what to do about it.

/// An encoding bhavstore does not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Utf16 {
    /// Little-endian, with the byte-order mark `FF FE`.
    LeBom,
    /// Big-endian, with the byte-order mark `FE FF`.
    BeBom,
    /// Little-endian without a mark: ASCII letters interleaved with NUL bytes after them.
    LeNoBom,
    /// Big-endian without a mark: NUL bytes before each ASCII letter.
    BeNoBom,
}

impl std::fmt::Display for Utf16 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::LeBom => "UTF-16 little-endian (byte-order mark FF FE)",
            Self::BeBom => "UTF-16 big-endian (byte-order mark FE FF)",
            Self::LeNoBom => "UTF-16 little-endian (no byte-order mark; every other byte is NUL)",
            Self::BeNoBom => "UTF-16 big-endian (no byte-order mark; every other byte is NUL)",
        })
    }
}

/// Tells whether a body is UTF-16 text, from its first bytes.
#[must_use]
pub fn detect_utf16(body: &[u8]) -> Option<Utf16> {
    if body.starts_with(b"\xFF\xFE") {
        return Some(Utf16::LeBom);
    }
    if body.starts_with(b"\xFE\xFF") {
        return Some(Utf16::BeBom);
    }
    // ASCII text in UTF-16 has a NUL in every other byte. Look at the first 64 code units and
    // require nearly all of one parity to be NUL and the other to be printable ASCII.
    let head = &body[..body.len().min(128)];
    let pairs = head.len() / 2;
    if pairs < 4 {
        return None;
    }
    let (mut even_nul, mut odd_nul, mut even_text, mut odd_text) = (0, 0, 0, 0);
    for pair in head.chunks_exact(2) {
        let text = |b: u8| b.is_ascii_graphic() || matches!(b, b' ' | b'\t' | b'\r' | b'\n');
        even_nul += usize::from(pair[0] == 0);
        odd_nul += usize::from(pair[1] == 0);
        even_text += usize::from(text(pair[0]));
        odd_text += usize::from(text(pair[1]));
    }
    let most = |n: usize| n * 10 >= pairs * 9;
    if most(odd_nul) && most(even_text) {
        Some(Utf16::LeNoBom)
    } else if most(even_nul) && most(odd_text) {
        Some(Utf16::BeNoBom)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utf16le(s: &str) -> Vec<u8> {
        s.encode_utf16().flat_map(u16::to_le_bytes).collect()
    }

    #[test]
    fn names_utf16_with_and_without_a_mark() {
        let text = "SC_CODE,SC_NAME,SC_GROUP\r\n";
        let mut bom = vec![0xFF, 0xFE];
        bom.extend(utf16le(text));
        assert_eq!(detect_utf16(&bom), Some(Utf16::LeBom));
        assert_eq!(detect_utf16(&utf16le(text)), Some(Utf16::LeNoBom));
        let be: Vec<u8> = text.encode_utf16().flat_map(u16::to_be_bytes).collect();
        assert_eq!(detect_utf16(&be), Some(Utf16::BeNoBom));
        assert_eq!(detect_utf16(b"\xFE\xFF\x00S"), Some(Utf16::BeBom));
        assert_eq!(detect_utf16(text.as_bytes()), None);
        assert_eq!(detect_utf16(b"PK\x03\x04\x14\x00\x00\x00\x08\x00"), None);
    }
}
