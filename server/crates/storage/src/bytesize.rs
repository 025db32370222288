//! Sizes in configuration: `4GiB`, `512MiB`, `64KiB`, `1GB` or a plain number of bytes.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A size that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ByteSizeError(String);

/// A number of bytes, read from `4GiB`, `512MiB`, `64KiB`, `1GB` or a plain integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// `n` mebibytes.
    #[must_use]
    pub const fn mib(n: u64) -> Self {
        Self(n << 20)
    }

    /// `n` gibibytes.
    #[must_use]
    pub const fn gib(n: u64) -> Self {
        Self(n << 30)
    }

    /// The size as `usize` (saturating).
    #[must_use]
    pub fn as_usize(self) -> usize {
        usize::try_from(self.0).unwrap_or(usize::MAX)
    }

    /// Parses `4GiB`, `512 MiB`, `10MB`, `123`.
    pub fn parse(text: &str) -> Result<Self, ByteSizeError> {
        let t = text.trim();
        let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let value: f64 =
            num.parse().map_err(|_| ByteSizeError(format!("{text:?} is not a size such as 512MiB or 4GiB")))?;
        let factor: f64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1.0,
            "k" | "kb" => 1e3,
            "kib" => 1024.0,
            "m" | "mb" => 1e6,
            "mib" => 1024.0 * 1024.0,
            "g" | "gb" => 1e9,
            "gib" => 1024.0 * 1024.0 * 1024.0,
            "t" | "tb" => 1e12,
            "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
            other => {
                return Err(ByteSizeError(format!("{text:?}: unknown unit {other:?} (use B, KiB, MiB, GiB, TiB)")));
            }
        };
        let bytes = value * factor;
        if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
            return Err(ByteSizeError(format!("{text:?} is out of range")));
        }
        Ok(Self(bytes as u64))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        for (shift, unit) in [(40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")] {
            if b >= 1 << shift {
                let v = b as f64 / (1u64 << shift) as f64;
                return if (v - v.round()).abs() < 1e-9 {
                    write!(f, "{v:.0}{unit}")
                } else {
                    write!(f, "{v:.1}{unit}")
                };
            }
        }
        write!(f, "{b}B")
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Int(n) => Ok(Self(n)),
            Raw::Text(t) => Self::parse(&t).map_err(serde::de::Error::custom),
        }
    }
}
