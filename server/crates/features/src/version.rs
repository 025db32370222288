//! A view's version: a hash of everything that decides its values, and nothing else.
//!
//! In: the SQL with comments and layout removed, the YAML fields that shape the data (name,
//! entity, event time, declared look-back, the feature list in order), the version of every
//! bhavstore function the SQL calls, and [`FORMAT`]. Out: descriptions, owner, tags and `ttl`
//! (which governs serving, not values), so documenting a feature does not start a new version.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::FeatureView;

/// Bumped when the materialized layout or the canonical input changes meaning.
pub const FORMAT: &str = "bhavstore-features/1";

/// Hash of a view's definition (hex sha256) and the version id derived from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionId {
    /// `v` and the first 12 hex digits of the hash.
    pub id: String,
    /// Full hex sha256 of the definition.
    pub definition_hash: String,
}

/// The version of `view`, given the functions its plan calls.
#[must_use]
pub fn version_of(view: &FeatureView, functions: &BTreeMap<String, u32>) -> VersionId {
    let mut h = Sha256::new();
    let mut field = |name: &str, value: &str| {
        h.update(name.as_bytes());
        h.update(b"\0");
        h.update(value.len().to_le_bytes());
        h.update(value.as_bytes());
    };
    field("format", FORMAT);
    field("sql", &normalize_sql(&view.sql));
    field("name", &view.spec.name);
    field("entity", &view.spec.entity);
    field("event_time", &view.spec.event_time);
    field("lookback_rows", &view.spec.lookback_rows.map(|n| n.to_string()).unwrap_or_default());
    for f in &view.spec.features {
        field("feature", &f.name);
    }
    for (name, version) in functions {
        field("function", &format!("{name}@{version}"));
    }
    let definition_hash = hex::encode(h.finalize());
    VersionId { id: format!("v{}", &definition_hash[..12]), definition_hash }
}

/// SQL without comments, with every run of whitespace outside quotes collapsed to one space
/// and no trailing semicolon: reformatting or commenting a view keeps its version.
#[must_use]
pub fn normalize_sql(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let chars: Vec<char> = sql.chars().collect();
    let mut i = 0;
    let mut pending_space = false;
    let push = |out: &mut String, c: char, pending: &mut bool| {
        if *pending && !out.is_empty() {
            out.push(' ');
        }
        *pending = false;
        out.push(c);
    };
    while i < chars.len() {
        let c = chars[i];
        match c {
            '-' if chars.get(i + 1) == Some(&'-') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
                pending_space = true;
                continue;
            }
            '/' if chars.get(i + 1) == Some(&'*') => {
                i += 2;
                while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                    i += 1;
                }
                i += 2;
                pending_space = true;
                continue;
            }
            '\'' | '"' => {
                push(&mut out, c, &mut pending_space);
                i += 1;
                while i < chars.len() {
                    out.push(chars[i]);
                    if chars[i] == c {
                        // A doubled quote is an escaped quote, not the end.
                        if chars.get(i + 1) == Some(&c) {
                            out.push(c);
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
                i += 1;
                continue;
            }
            c if c.is_whitespace() => pending_space = true,
            c => push(&mut out, c, &mut pending_space),
        }
        i += 1;
    }
    out.trim_end_matches(';').trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::normalize_sql;

    #[test]
    fn layout_and_comments_do_not_matter() {
        let a = "-- price\nSELECT a,\n   b  -- the b\nFROM t /* why */ WHERE x = 'a  -- b';\n";
        let b = "SELECT a, b FROM t WHERE x = 'a  -- b'";
        assert_eq!(normalize_sql(a), b);
        assert_ne!(normalize_sql("select 'it''s  x'"), normalize_sql("select 'it''s x'"));
    }
}
