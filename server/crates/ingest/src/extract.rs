//! From a raw body (zip or CSV) to the one bhavcopy CSV inside it.

use std::borrow::Cow;

use chrono::NaiveDate;

use super::{IngestError, Unusable};
use bhavstore_formats::{BodyKind, ZipLimits, classify, file_name::date_from_file_name, read_zip_member, scan_zip};

/// The CSV to parse out of a raw body, with the name to take a date from.
#[derive(Debug)]
pub(crate) struct CsvBody<'a> {
    /// The CSV's own name (the zip member's name for archives).
    pub name: String,
    /// The CSV bytes.
    pub bytes: Cow<'a, [u8]>,
    /// The trade date the names (member, then archive) carry.
    pub name_date: Option<NaiveDate>,
}

/// Finds the bhavcopy CSV in a raw body. For a zip, a member whose name carries the archive's
/// date wins; stray members are ignored; several candidates are an error (use `import`, which
/// splits a user's archive per member). Archives are checked against `limits` by what they
/// really expand to before any member is read, and only the chosen member is held in memory.
pub(crate) fn csv_body<'a>(name: &str, bytes: &'a [u8], limits: &ZipLimits) -> Result<CsvBody<'a>, IngestError> {
    let outer_date = date_from_file_name(name);
    match classify(bytes) {
        // Unknown text goes to the parser too: its error says what it saw.
        BodyKind::Csv(_) | BodyKind::Unknown(_) if !bytes.trim_ascii().is_empty() => {
            Ok(CsvBody { name: name.to_string(), bytes: Cow::Borrowed(bytes), name_date: outer_date })
        }
        BodyKind::Zip => {
            let not = |what| IngestError::NotABhavcopy { name: name.into(), what };
            let members = scan_zip(bytes, limits).map_err(|e| not(Unusable::Archive(e)))?;
            let dated: Vec<_> =
                members.iter().filter(|m| outer_date.is_some() && date_from_file_name(&m.name) == outer_date).collect();
            let chosen = match (dated.as_slice(), members.as_slice()) {
                ([one], _) => *one,
                ([], [one]) => one,
                ([], []) => return Err(not(Unusable::NoCsvMember)),
                _ => {
                    return Err(not(Unusable::ManyMembers { names: members.iter().map(|m| m.name.clone()).collect() }));
                }
            };
            let member = read_zip_member(bytes, chosen, limits).map_err(|e| not(Unusable::Archive(e)))?;
            let member_date = date_from_file_name(&member.name);
            Ok(CsvBody { name: member.name, bytes: Cow::Owned(member.bytes), name_date: member_date.or(outer_date) })
        }
        BodyKind::FirewallBlock => Err(IngestError::FirewallPage { name: name.into() }),
        BodyKind::NoFilePage => Err(IngestError::NotABhavcopy { name: name.into(), what: Unusable::HtmlPage }),
        BodyKind::Csv(_) | BodyKind::Unknown(_) => {
            Err(IngestError::NotABhavcopy { name: name.into(), what: Unusable::Empty })
        }
    }
}
