//! Quality figures of a run, about the newest session it published: rows, NULLs per feature,
//! entities that vanished since the previous session, suspicious moves in the input, and drift
//! (population stability index against the trailing sessions).

use std::sync::Arc;

use chrono::NaiveDate;
use datafusion::arrow::array::{Array, AsArray, Date32Array, Int64Array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::prelude::SessionContext;

use super::config::QualityThresholds;
use super::{MaterializeError, PreparedView};
use bhavstore_lake::manifest::Manifest;
use bhavstore_lake::quote_ident;
use bhavstore_lake::records::QualityRecord;
use bhavstore_lake::table::ParquetFilesTable;
use bhavstore_storage::Storage;

/// Sessions before the newest one that form the PSI reference.
pub const PSI_REFERENCE_SESSIONS: usize = 60;
const PSI_BINS: usize = 10;
/// Proportions are floored so an empty bin does not make the index infinite.
const PSI_FLOOR: f64 = 1e-4;

/// Computes the figures and the threshold warnings.
pub async fn assess(
    run_ctx: &SessionContext,
    storage: &Storage,
    pv: &PreparedView,
    published: &Manifest,
    schema: SchemaRef,
    limits: &QualityThresholds,
) -> Result<(Vec<QualityRecord>, Vec<String>), MaterializeError> {
    let Some(last) = published.max_trade_date else { return Ok((Vec::new(), Vec::new())) };
    let spec = &pv.view.spec;
    let files: Vec<_> = published.files().cloned().collect();
    let ctx = SessionContext::new();
    ctx.register_object_store(storage.store_url(), storage.object_store());
    ctx.register_table("published", Arc::new(ParquetFilesTable::new(storage, Arc::clone(&schema), &files)?))?;
    let (e, t) = (quote_ident(&spec.entity), quote_ident(&spec.event_time));

    // The newest session and the PSI_REFERENCE_SESSIONS before it.
    let dates = collect_dates(
        &ctx,
        &format!(
            "SELECT DISTINCT {t} FROM published WHERE {t} <= DATE '{last}' ORDER BY 1 DESC LIMIT {}",
            PSI_REFERENCE_SESSIONS + 1
        ),
    )
    .await?;
    let previous = dates.get(1).copied();
    let oldest = dates.last().copied().unwrap_or(last);

    let features: Vec<&str> = spec.features.iter().map(|f| f.name.as_str()).collect();
    let select: Vec<String> = features.iter().map(|f| quote_ident(f)).collect();
    let batches = ctx
        .sql(&format!(
            "SELECT {t}, {} FROM published WHERE {t} >= DATE '{oldest}' AND {t} <= DATE '{last}'",
            select.join(", ")
        ))
        .await?
        .collect()
        .await?;
    let last_days = days_since_epoch(last);
    let mut current: Vec<Vec<Option<f64>>> = vec![Vec::new(); features.len()];
    let mut reference: Vec<Vec<f64>> = vec![Vec::new(); features.len()];
    for b in &batches {
        let d = b
            .column(0)
            .as_any()
            .downcast_ref::<Date32Array>()
            .ok_or_else(|| MaterializeError::Corrupt("event time is not a date".into()))?;
        for (i, _) in features.iter().enumerate() {
            let values = cast(b.column(i + 1), &DataType::Float64).ok();
            let values = values.as_ref().map(|v| v.as_primitive::<datafusion::arrow::datatypes::Float64Type>());
            for row in 0..b.num_rows() {
                let v = values.and_then(|v| (!v.is_null(row)).then(|| v.value(row))).filter(|x| x.is_finite());
                if d.value(row) == last_days {
                    current[i].push(v);
                } else if let Some(x) = v {
                    reference[i].push(x);
                }
            }
        }
    }
    let row_count = current.first().map_or(0, Vec::len) as u64;
    let mut out = Vec::new();
    let mut warnings = Vec::new();
    let base = |feature: Option<String>| QualityRecord {
        run_id: published.run_id.clone(),
        view: spec.name.clone(),
        version: published.version.clone(),
        trade_date: last,
        feature,
        row_count,
        null_count: None,
        null_rate: None,
        missing_entities: None,
        suspicious_returns: None,
        psi: None,
        psi_reference_sessions: None,
    };
    for (i, f) in features.iter().enumerate() {
        let nulls = current[i].iter().filter(|v| v.is_none()).count() as u64;
        let rate = if row_count > 0 { Some(nulls as f64 / row_count as f64) } else { None };
        let now: Vec<f64> = current[i].iter().flatten().copied().collect();
        let psi = psi(&reference[i], &now);
        if let (Some(r), Some(max)) = (rate, limits.max_null_rate)
            && r > max
        {
            warnings.push(format!("{f}: NULL rate {r:.3} on {last} exceeds {max}"));
        }
        if let (Some(p), Some(max)) = (psi, limits.max_psi)
            && p > max
        {
            warnings.push(format!("{f}: drift (PSI) {p:.3} on {last} exceeds {max}"));
        }
        out.push(QualityRecord {
            null_count: Some(nulls),
            null_rate: rate,
            psi,
            psi_reference_sessions: psi.map(|_| (dates.len() - 1) as u64),
            ..base(Some((*f).to_string()))
        });
    }

    // View-level figures.
    let missing = match previous {
        Some(prev) => Some(
            count(
                &ctx,
                &format!(
                    "SELECT count(*) FROM (SELECT {e} FROM published WHERE {t} = DATE '{prev}' \
                     EXCEPT SELECT {e} FROM published WHERE {t} = DATE '{last}')"
                ),
            )
            .await?,
        ),
        None => None,
    };
    if let (Some(missing), Some(prev), Some(max)) = (missing, previous, limits.max_missing_rate) {
        let prev_rows = count(&ctx, &format!("SELECT count(*) FROM published WHERE {t} = DATE '{prev}'")).await?;
        if prev_rows > 0 && missing as f64 / prev_rows as f64 > max {
            warnings
                .push(format!("{missing} of {prev_rows} entities of {prev} are missing on {last} (more than {max})"));
        }
    }
    // Close-to-close moves beyond ±20% (BSE's widest price band) with no ex-date flag: an
    // unadjusted corporate action or bad data. Read from the run's own input.
    let suspicious = count(
        run_ctx,
        &format!(
            "SELECT count(*) FROM {b} WHERE trade_date = DATE '{last}' AND is_equity AND prev_close > 0 \
             AND abs(close / prev_close - 1) > 0.2001 AND (ex_flag IS NULL OR trim(ex_flag) = '')",
            b = if run_ctx.table_exist(super::run::FULL_INPUT).unwrap_or(false) {
                super::run::FULL_INPUT
            } else {
                pv.input_table()
            }
        ),
    )
    .await
    .ok();
    if let (Some(n), Some(max)) = (suspicious, limits.max_suspicious_returns)
        && n > max
    {
        warnings.push(format!("{n} moves beyond ±20% without an ex-date flag on {last} (more than {max})"));
    }
    out.push(QualityRecord { missing_entities: missing, suspicious_returns: suspicious, ..base(None) });
    Ok((out, warnings))
}

fn days_since_epoch(d: NaiveDate) -> i32 {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date");
    i32::try_from((d - epoch).num_days()).unwrap_or(i32::MAX)
}

async fn collect_dates(ctx: &SessionContext, sql: &str) -> Result<Vec<NaiveDate>, MaterializeError> {
    let mut out = Vec::new();
    for b in ctx.sql(sql).await?.collect().await? {
        if let Some(d) = b.column(0).as_any().downcast_ref::<Date32Array>() {
            out.extend(d.iter().flatten().filter_map(|v| NaiveDate::from_num_days_from_ce_opt(v + 719_163)));
        }
    }
    Ok(out)
}

async fn count(ctx: &SessionContext, sql: &str) -> Result<u64, MaterializeError> {
    let batches = ctx.sql(sql).await?.collect().await?;
    let n = batches
        .first()
        .and_then(|b| b.column(0).as_any().downcast_ref::<Int64Array>().map(|a| a.value(0)))
        .unwrap_or(0);
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Population stability index of `current` against `reference`, with bins at the reference's
/// deciles. `None` when either side has too few values to say anything.
#[must_use]
pub fn psi(reference: &[f64], current: &[f64]) -> Option<f64> {
    if reference.len() < 2 * PSI_BINS || current.len() < PSI_BINS {
        return None;
    }
    let mut sorted = reference.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mut edges: Vec<f64> = (1..PSI_BINS).map(|i| sorted[i * sorted.len() / PSI_BINS]).collect();
    edges.dedup();
    let bin = |x: f64| edges.partition_point(|e| *e <= x);
    let histogram = |xs: &[f64]| {
        let mut h = vec![0usize; edges.len() + 1];
        for &x in xs {
            h[bin(x)] += 1;
        }
        h.into_iter().map(|c| (c as f64 / xs.len() as f64).max(PSI_FLOOR)).collect::<Vec<_>>()
    };
    let (q, p) = (histogram(reference), histogram(current));
    Some(p.iter().zip(&q).map(|(p, q)| (p - q) * (p / q).ln()).sum())
}

#[cfg(test)]
mod tests {
    use super::psi;

    #[test]
    fn psi_is_zero_for_the_same_distribution_and_grows_with_shift() {
        let reference: Vec<f64> = (0..1000).map(f64::from).collect();
        let same = psi(&reference, &reference).unwrap();
        assert!(same.abs() < 1e-12, "{same}");
        let shifted: Vec<f64> = (0..1000).map(|x| f64::from(x) + 300.0).collect();
        let moved = psi(&reference, &shifted).unwrap();
        assert!(moved > 0.25, "{moved}");
        // Hand check: half the mass moved from the bottom five bins to the top one.
        let half: Vec<f64> = (0..1000).map(|x| if x < 500 { 950.0 } else { f64::from(x) }).collect();
        let expected = 5.0 * (1e-4 - 0.1) * (1e-4f64 / 0.1).ln() + (0.6 - 0.1) * (0.6f64 / 0.1).ln();
        assert!((psi(&reference, &half).unwrap() - expected).abs() < 1e-9);
        assert_eq!(psi(&reference[..5], &reference), None);
    }
}
