//! From a raw body (zip or CSV) to the one bhavcopy CSV inside it.

use std::borrow::Cow;

use chrono::NaiveDate;

use super::IngestError;
use crate::formats::{BodyKind, bhavcopy_members, classify, file_name::date_from_file_name};

/// The CSV to parse out of a raw body, with the name to take a date from.
#[derive(Debug)]
pub struct CsvBody<'a> {
    /// The CSV's own name (the zip member's name for archives).
    pub name: String,
    /// The CSV bytes.
    pub bytes: Cow<'a, [u8]>,
    /// The trade date the names (member, then archive) carry.
    pub name_date: Option<NaiveDate>,
}

/// Finds the bhavcopy CSV in a raw body. For a zip, a member whose name carries the archive's
/// date wins; stray members are ignored; several candidates are an error (use `import`, which
/// splits a user's archive per member).
pub fn csv_body<'a>(name: &str, bytes: &'a [u8]) -> Result<CsvBody<'a>, IngestError> {
    let outer_date = date_from_file_name(name);
    match classify(bytes) {
        // Unknown text goes to the parser too: its error names the header it saw.
        BodyKind::Csv(_) | BodyKind::Unknown(_) if !bytes.trim_ascii().is_empty() => {
            Ok(CsvBody { name: name.to_string(), bytes: Cow::Borrowed(bytes), name_date: outer_date })
        }
        BodyKind::Zip => {
            let members =
                bhavcopy_members(bytes).map_err(|e| IngestError::NotABhavcopy { name: name.into(), what: e })?;
            let pick = |pred: &dyn Fn(&str) -> bool| members.iter().filter(|m| pred(&m.name)).collect::<Vec<_>>();
            let dated = pick(&|n| outer_date.is_some() && date_from_file_name(n) == outer_date);
            let chosen: &crate::formats::ZipMember = match (dated.as_slice(), members.as_slice()) {
                ([one], _) => one,
                ([], [one]) => one,
                _ => {
                    let names: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
                    return Err(IngestError::NotABhavcopy {
                        name: name.into(),
                        what: format!(
                            "a zip with {} CSV members ({}), expected one bhavcopy",
                            members.len(),
                            names.join(", ")
                        ),
                    });
                }
            };
            let member_date = date_from_file_name(&chosen.name);
            Ok(CsvBody {
                name: chosen.name.clone(),
                bytes: Cow::Owned(chosen.bytes.clone()),
                name_date: member_date.or(outer_date),
            })
        }
        BodyKind::FirewallBlock => Err(IngestError::FirewallPage { name: name.into() }),
        BodyKind::NoFilePage => Err(IngestError::NotABhavcopy {
            name: name.into(),
            what: "an HTML page (BSE's answer for a day without a file), not a bhavcopy".into(),
        }),
        BodyKind::Csv(_) | BodyKind::Unknown(_) => {
            Err(IngestError::NotABhavcopy { name: name.into(), what: "an empty body".into() })
        }
    }
}
