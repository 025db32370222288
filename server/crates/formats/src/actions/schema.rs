//! The Arrow tables for corporate actions and trading holidays.
//!
//! One action row per (exported row, purpose): a row holding a dividend and a bonus is two
//! rows, told apart by `part`, each carrying the whole text in `purpose` so nothing is lost.

use std::sync::Arc;

use chrono::NaiveDate;
use datafusion::arrow::array::{
    ArrayRef, Date32Builder, Float64Builder, Int32Builder, RecordBatch, StringBuilder, UInt64Builder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::error::ArrowError;

use super::{Holiday, ParsedActions};

/// Where every row of this module comes from: the exchange's own list, not an inference.
const ORIGIN_REPORTED: &str = "reported";

/// Schema of the corporate-actions table.
#[must_use]
pub fn actions_schema() -> SchemaRef {
    let utf8 = |name: &str, nullable| Field::new(name, DataType::Utf8, nullable);
    let f64 = |name: &str| Field::new(name, DataType::Float64, true);
    Arc::new(Schema::new(vec![
        utf8("exchange", false),
        Field::new("scrip_code", DataType::Int32, true),
        utf8("symbol", true),
        utf8("isin", true),
        utf8("company", true),
        utf8("series", true),
        Field::new("ex_date", DataType::Date32, false),
        Field::new("record_date", DataType::Date32, true),
        utf8("kind", false),
        f64("price_factor"),
        Field::new("ratio_new", DataType::Int32, true),
        Field::new("ratio_old", DataType::Int32, true),
        f64("face_value_from"),
        f64("face_value_to"),
        f64("amount"),
        f64("rights_price"),
        utf8("purpose_text", false),
        utf8("purpose", false),
        Field::new("part", DataType::Int32, false),
        utf8("origin", false),
        utf8("source_format", false),
        utf8("source_name", false),
        utf8("raw_sha256", false),
        Field::new("source_line", DataType::UInt64, false),
    ]))
}

/// Builds the table rows for one parsed export: one per (row, purpose), in body order.
///
/// # Errors
/// A ratio term above `i32::MAX`, or Arrow refusing the columns (which would be a bug here).
pub fn actions_to_batch(
    parsed: &ParsedActions,
    source_name: &str,
    raw_sha256: &str,
) -> Result<RecordBatch, ArrowError> {
    let n: usize = parsed.rows.iter().map(|r| r.purposes.len()).sum();
    let mut exchange = StringBuilder::new();
    let mut scrip = Int32Builder::with_capacity(n);
    let mut symbol = StringBuilder::new();
    let mut isin = StringBuilder::new();
    let mut company = StringBuilder::new();
    let mut series = StringBuilder::new();
    let mut ex_date = Date32Builder::with_capacity(n);
    let mut record_date = Date32Builder::with_capacity(n);
    let mut kind = StringBuilder::new();
    let mut factor = Float64Builder::with_capacity(n);
    let mut ratio_new = Int32Builder::with_capacity(n);
    let mut ratio_old = Int32Builder::with_capacity(n);
    let mut fv_from = Float64Builder::with_capacity(n);
    let mut fv_to = Float64Builder::with_capacity(n);
    let mut amount = Float64Builder::with_capacity(n);
    let mut rights_price = Float64Builder::with_capacity(n);
    let mut purpose_text = StringBuilder::new();
    let mut purpose = StringBuilder::new();
    let mut part = Int32Builder::with_capacity(n);
    let mut origin = StringBuilder::new();
    let mut source_format = StringBuilder::new();
    let mut source = StringBuilder::new();
    let mut sha = StringBuilder::new();
    let mut line = UInt64Builder::with_capacity(n);
    let to_i32 = |v: u32| {
        i32::try_from(v).map_err(|_| ArrowError::InvalidArgumentError(format!("ratio term {v} does not fit Int32")))
    };
    for row in &parsed.rows {
        for (i, p) in row.purposes.iter().enumerate() {
            exchange.append_value(parsed.format.exchange());
            scrip.append_option(row.scrip_code);
            symbol.append_option(row.symbol.as_deref());
            isin.append_option(row.isin.as_deref());
            company.append_option(row.company.as_deref());
            series.append_option(row.series.as_deref());
            ex_date.append_value(days(row.ex_date));
            record_date.append_option(row.record_date.map(days));
            kind.append_value(p.kind.as_str());
            factor.append_option(p.price_factor);
            match p.ratio {
                Some((a, b)) => {
                    ratio_new.append_value(to_i32(a)?);
                    ratio_old.append_value(to_i32(b)?);
                }
                None => {
                    ratio_new.append_null();
                    ratio_old.append_null();
                }
            }
            fv_from.append_option(p.face_value.map(|f| f.0));
            fv_to.append_option(p.face_value.map(|f| f.1));
            amount.append_option(p.amount);
            rights_price.append_option(p.rights_price);
            purpose_text.append_value(&p.text);
            purpose.append_value(&row.purpose);
            part.append_value(
                i32::try_from(i).map_err(|_| ArrowError::InvalidArgumentError("too many purposes".into()))?,
            );
            origin.append_value(ORIGIN_REPORTED);
            source_format.append_value(parsed.format.as_str());
            source.append_value(source_name);
            sha.append_value(raw_sha256);
            line.append_value(row.line);
        }
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(exchange.finish()),
        Arc::new(scrip.finish()),
        Arc::new(symbol.finish()),
        Arc::new(isin.finish()),
        Arc::new(company.finish()),
        Arc::new(series.finish()),
        Arc::new(ex_date.finish()),
        Arc::new(record_date.finish()),
        Arc::new(kind.finish()),
        Arc::new(factor.finish()),
        Arc::new(ratio_new.finish()),
        Arc::new(ratio_old.finish()),
        Arc::new(fv_from.finish()),
        Arc::new(fv_to.finish()),
        Arc::new(amount.finish()),
        Arc::new(rights_price.finish()),
        Arc::new(purpose_text.finish()),
        Arc::new(purpose.finish()),
        Arc::new(part.finish()),
        Arc::new(origin.finish()),
        Arc::new(source_format.finish()),
        Arc::new(source.finish()),
        Arc::new(sha.finish()),
        Arc::new(line.finish()),
    ];
    RecordBatch::try_new(actions_schema(), columns)
}

/// Schema of the trading-holidays table.
#[must_use]
pub fn holidays_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("date", DataType::Date32, false),
        Field::new("description", DataType::Utf8, true),
        Field::new("source_name", DataType::Utf8, false),
        Field::new("raw_sha256", DataType::Utf8, false),
    ]))
}

/// Builds the table rows for one holiday list, in the order given.
///
/// # Errors
/// Arrow refusing the columns (which would be a bug here).
pub fn holidays_to_batch(holidays: &[Holiday], source_name: &str, raw_sha256: &str) -> Result<RecordBatch, ArrowError> {
    let mut date = Date32Builder::with_capacity(holidays.len());
    let mut description = StringBuilder::new();
    let mut source = StringBuilder::new();
    let mut sha = StringBuilder::new();
    for h in holidays {
        date.append_value(days(h.date));
        description.append_option(h.description.as_deref());
        source.append_value(source_name);
        sha.append_value(raw_sha256);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(date.finish()),
        Arc::new(description.finish()),
        Arc::new(source.finish()),
        Arc::new(sha.finish()),
    ];
    RecordBatch::try_new(holidays_schema(), columns)
}

/// Arrow `Date32`: days since 1970-01-01.
fn days(d: NaiveDate) -> i32 {
    // Every chrono date is within ±262,143 years, far inside i32 days.
    (d - NaiveDate::default()).num_days() as i32
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::{Date32Type, Float64Type, Int32Type, UInt64Type};

    use super::super::{ActionFormat, parse};
    use super::*;

    #[test]
    fn one_row_per_purpose() {
        let body = b"Security Code,Security Name,Company Name,Ex Date,Purpose,Record Date\n\
                     500001,ABC,ABC Ltd,05 Jan 2016,Final Dividend - Rs. - 1.0000 / Bonus issue 1:2,-\n\
                     500002,XYZ,XYZ Ltd,06 Jan 2016,Stock  Split From Rs.10/- to Rs.1/-,07 Jan 2016\n";
        let parsed = parse(body).unwrap();
        assert_eq!(parsed.format, ActionFormat::BseCsv);
        let b = actions_to_batch(&parsed, "bse_ca.csv", "ab12").unwrap();
        assert_eq!(b.schema(), actions_schema());
        assert_eq!(b.num_rows(), 3);
        let s = |name: &str| b.column_by_name(name).unwrap().as_string::<i32>().clone();
        assert_eq!(s("kind").iter().flatten().collect::<Vec<_>>(), ["dividend", "bonus", "split"]);
        assert_eq!(s("purpose_text").value(1), "Bonus issue 1:2");
        assert_eq!(s("purpose").value(1), "Final Dividend - Rs. - 1.0000 / Bonus issue 1:2");
        assert_eq!(s("exchange").value(0), "BSE");
        assert_eq!(s("origin").value(2), "reported");
        assert_eq!(s("source_format").value(2), "bse_ca_csv");
        assert_eq!((s("source_name").value(2), s("raw_sha256").value(2)), ("bse_ca.csv", "ab12"));
        assert!(s("isin").is_null(0));
        let part = b.column_by_name("part").unwrap().as_primitive::<Int32Type>();
        assert_eq!(part.values().to_vec(), [0, 1, 0]);
        let line = b.column_by_name("source_line").unwrap().as_primitive::<UInt64Type>();
        assert_eq!(line.values().to_vec(), [2, 2, 3]);
        let f = b.column_by_name("price_factor").unwrap().as_primitive::<Float64Type>();
        assert!(f.is_null(0));
        assert_eq!((f.value(1), f.value(2)), (1.5, 10.0));
        let ratio_old = b.column_by_name("ratio_old").unwrap().as_primitive::<Int32Type>();
        assert_eq!(ratio_old.value(1), 2);
        let ex = b.column_by_name("ex_date").unwrap().as_primitive::<Date32Type>();
        assert_eq!(ex.value(0), 16_805); // 2016-01-05
        let rec = b.column_by_name("record_date").unwrap().as_primitive::<Date32Type>();
        assert!(rec.is_null(0));
        assert_eq!(rec.value(2), 16_807);
    }

    #[test]
    fn holidays_table() {
        let h = [Holiday { date: NaiveDate::from_ymd_opt(2026, 1, 26).unwrap(), description: None }];
        let b = holidays_to_batch(&h, "holidays.json", "cd34").unwrap();
        assert_eq!(b.schema(), holidays_schema());
        assert_eq!(b.column(0).as_primitive::<Date32Type>().value(0), 20_479);
        assert!(b.column(1).is_null(0));
    }
}
