//! The canonical `bhavcopy` row every format normalises into, and its Arrow schemas.
//!
//! `trade_date` is not stored inside the Parquet files: it is the hive partition
//! (`trade_date=YYYY-MM-DD/`), which the catalog exposes as a `DATE` column and prunes on.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, Int32Builder, Int64Builder, RecordBatch, StringBuilder, UInt64Builder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::error::ArrowError;

/// One security's day, as every format normalises it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CanonicalRow {
    /// BSE scrip code (`SC_CODE` / `FinInstrmId`).
    pub scrip_code: i32,
    /// ISIN; `None` in the 14-column legacy file.
    pub isin: Option<String>,
    /// Ticker symbol (`TckrSymb`); only UDiFF has it.
    pub symbol: Option<String>,
    /// Security name, trimmed.
    pub name: String,
    /// Group (`SC_GROUP` / `SctySrs`), trimmed.
    pub sc_group: Option<String>,
    /// Security type: `SC_TYPE` (`Q` equity, `B`, `D`, `P`, `I`) or UDiFF `FinInstrmTp` (`STK`).
    pub sc_type: Option<String>,
    /// Opening price.
    pub open: Option<f64>,
    /// High price.
    pub high: Option<f64>,
    /// Low price.
    pub low: Option<f64>,
    /// Closing price.
    pub close: Option<f64>,
    /// Last traded price.
    pub last: Option<f64>,
    /// Previous close as BSE printed it (never adjusted for corporate actions; `None` where BSE
    /// prints 0.00 for a new listing).
    pub prev_close: Option<f64>,
    /// Shares traded (`NO_OF_SHRS` / `TtlTradgVol`).
    pub volume: Option<i64>,
    /// Turnover in rupees (`NET_TURNOV` / `TtlTrfVal`).
    pub turnover: Option<f64>,
    /// Number of trades (`NO_TRADES` / `TtlNbOfTxsExctd`).
    pub trades: Option<i64>,
    /// An equity-like security (shares, ETFs, partly paid shares): legacy `SC_TYPE = 'Q'`; in
    /// UDiFF, which has no such column, decided from the ISIN by [`equity_by_isin`].
    pub is_equity: bool,
    /// Ex-date flag (`TDCLOINDI`: XD, XB, SS, XR, SA, CS); `None` when empty.
    pub ex_flag: Option<String>,
    /// Settlement price (UDiFF `SttlmPric`); `None` in legacy files and T+0 rows.
    pub settlement_price: Option<f64>,
    /// Physical line number of the row in the raw file, for tracing a value back to its source.
    pub source_line: u64,
}

/// Whether an ISIN is an equity-like security in BSE's sense of `SC_TYPE = 'Q'`: issuer ISINs
/// (`INE…`) except debt and preference types (security-type code, characters 8 and 9: `04`
/// preference, `09`, `13`, and codes ending in 7 or 8: debentures and bonds), mutual-fund units and
/// ETFs (`INF…`) and partly paid shares (`IN9…`). Government securities (`IN0…`) are not.
/// Checked against every row of the real EQ_ISINCODE files, which carry both ISIN and `SC_TYPE`.
#[must_use]
pub fn equity_by_isin(isin: &str) -> bool {
    let isin = isin.trim().as_bytes();
    if isin.len() != 12 {
        return false;
    }
    match &isin[..3] {
        b"INF" | b"IN9" => true,
        b"INE" => {
            let code = &isin[7..9];
            !(matches!(code, b"04" | b"09" | b"13") || matches!(code[1], b'7' | b'8'))
        }
        _ => false,
    }
}

/// A line that could not become a row, kept with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantinedLine {
    /// 1-based physical line number in the raw file.
    pub line_number: u64,
    /// The line as it was (lossily decoded if not UTF-8).
    pub raw_line: String,
    /// Why it was refused.
    pub reason: String,
}

/// Schema of the Parquet files under `parquet/bse/equity/trade_date=.../` (no `trade_date`).
#[must_use]
pub fn canonical_file_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("scrip_code", DataType::Int32, false),
        Field::new("isin", DataType::Utf8, true),
        Field::new("symbol", DataType::Utf8, true),
        Field::new("name", DataType::Utf8, false),
        Field::new("sc_group", DataType::Utf8, true),
        Field::new("sc_type", DataType::Utf8, true),
        Field::new("open", DataType::Float64, true),
        Field::new("high", DataType::Float64, true),
        Field::new("low", DataType::Float64, true),
        Field::new("close", DataType::Float64, true),
        Field::new("last", DataType::Float64, true),
        Field::new("prev_close", DataType::Float64, true),
        Field::new("volume", DataType::Int64, true),
        Field::new("turnover", DataType::Float64, true),
        Field::new("trades", DataType::Int64, true),
        Field::new("is_equity", DataType::Boolean, false),
        Field::new("ex_flag", DataType::Utf8, true),
        Field::new("settlement_price", DataType::Float64, true),
        Field::new("source_format", DataType::Utf8, false),
        Field::new("raw_sha256", DataType::Utf8, false),
        Field::new("source_line", DataType::UInt64, false),
    ]))
}

/// The `bhavcopy` table as queried: the file schema with the `trade_date` partition column.
#[must_use]
pub fn canonical_schema() -> SchemaRef {
    with_trade_date(&canonical_file_schema())
}

/// Schema of the quarantine files under `quarantine/bse/equity/trade_date=.../`.
#[must_use]
pub fn quarantine_file_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("raw_sha256", DataType::Utf8, false),
        Field::new("source_name", DataType::Utf8, false),
        Field::new("line_number", DataType::UInt64, false),
        Field::new("raw_line", DataType::Utf8, false),
        Field::new("reason", DataType::Utf8, false),
    ]))
}

/// The `bhavcopy_quarantine` table as queried.
#[must_use]
pub fn quarantine_schema() -> SchemaRef {
    with_trade_date(&quarantine_file_schema())
}

fn with_trade_date(file: &SchemaRef) -> SchemaRef {
    let mut fields = vec![Arc::new(Field::new("trade_date", DataType::Date32, false))];
    fields.extend(file.fields().iter().cloned());
    Arc::new(Schema::new(fields))
}

/// Builds the file batch for one day's rows; rows must already be in the order to store.
pub fn rows_to_batch(rows: &[CanonicalRow], source_format: &str, raw_sha256: &str) -> Result<RecordBatch, ArrowError> {
    let n = rows.len();
    let mut scrip = Int32Builder::with_capacity(n);
    let mut isin = StringBuilder::new();
    let mut symbol = StringBuilder::new();
    let mut name = StringBuilder::new();
    let mut group = StringBuilder::new();
    let mut sc_type = StringBuilder::new();
    let mut f64s: Vec<Float64Builder> = (0..6).map(|_| Float64Builder::with_capacity(n)).collect();
    let mut volume = Int64Builder::with_capacity(n);
    let mut turnover = Float64Builder::with_capacity(n);
    let mut trades = Int64Builder::with_capacity(n);
    let mut is_equity = BooleanBuilder::with_capacity(n);
    let mut ex_flag = StringBuilder::new();
    let mut settle = Float64Builder::with_capacity(n);
    let mut fmt = StringBuilder::new();
    let mut sha = StringBuilder::new();
    let mut line = UInt64Builder::with_capacity(n);
    for r in rows {
        scrip.append_value(r.scrip_code);
        isin.append_option(r.isin.as_deref());
        symbol.append_option(r.symbol.as_deref());
        name.append_value(&r.name);
        group.append_option(r.sc_group.as_deref());
        sc_type.append_option(r.sc_type.as_deref());
        for (b, v) in f64s.iter_mut().zip([r.open, r.high, r.low, r.close, r.last, r.prev_close]) {
            b.append_option(v);
        }
        volume.append_option(r.volume);
        turnover.append_option(r.turnover);
        trades.append_option(r.trades);
        is_equity.append_value(r.is_equity);
        ex_flag.append_option(r.ex_flag.as_deref());
        settle.append_option(r.settlement_price);
        fmt.append_value(source_format);
        sha.append_value(raw_sha256);
        line.append_value(r.source_line);
    }
    let mut cols: Vec<ArrayRef> = vec![
        Arc::new(scrip.finish()),
        Arc::new(isin.finish()),
        Arc::new(symbol.finish()),
        Arc::new(name.finish()),
        Arc::new(group.finish()),
        Arc::new(sc_type.finish()),
    ];
    cols.extend(f64s.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef));
    cols.extend([
        Arc::new(volume.finish()) as ArrayRef,
        Arc::new(turnover.finish()),
        Arc::new(trades.finish()),
        Arc::new(is_equity.finish()),
        Arc::new(ex_flag.finish()),
        Arc::new(settle.finish()),
        Arc::new(fmt.finish()),
        Arc::new(sha.finish()),
        Arc::new(line.finish()),
    ]);
    RecordBatch::try_new(canonical_file_schema(), cols)
}

/// Builds the quarantine file batch for one raw file's refused lines.
pub fn quarantine_to_batch(
    lines: &[QuarantinedLine],
    raw_sha256: &str,
    source_name: &str,
) -> Result<RecordBatch, ArrowError> {
    let mut sha = StringBuilder::new();
    let mut src = StringBuilder::new();
    let mut num = UInt64Builder::with_capacity(lines.len());
    let mut raw = StringBuilder::new();
    let mut reason = StringBuilder::new();
    for q in lines {
        sha.append_value(raw_sha256);
        src.append_value(source_name);
        num.append_value(q.line_number);
        raw.append_value(&q.raw_line);
        reason.append_value(&q.reason);
    }
    RecordBatch::try_new(
        quarantine_file_schema(),
        vec![
            Arc::new(sha.finish()),
            Arc::new(src.finish()),
            Arc::new(num.finish()),
            Arc::new(raw.finish()),
            Arc::new(reason.finish()),
        ],
    )
}
