//! Entity ids as users type them: a BSE scrip code, or a symbol or ISIN where the data has them
//! (UDiFF files carry both; the 18-column legacy file carries ISINs).

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type};
use std::collections::HashMap;

use super::OnlineError;
use bhavstore_storage::Storage;

/// Aliases of scrip codes.
#[derive(Debug, Default)]
pub struct EntityIndex {
    by_alias: HashMap<String, i64>,
}

impl EntityIndex {
    /// Resolves an entity id: digits are a scrip code; otherwise an ISIN or symbol, case-blind.
    #[must_use]
    pub fn resolve(&self, id: &str) -> Option<i64> {
        let id = id.trim();
        if !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) {
            return id.parse().ok();
        }
        self.by_alias.get(&id.to_ascii_uppercase()).copied()
    }

    /// Adds an alias (the newest mapping wins).
    pub fn insert(&mut self, alias: &str, scrip_code: i64) {
        let a = alias.trim().to_ascii_uppercase();
        if !a.is_empty() {
            self.by_alias.insert(a, scrip_code);
        }
    }

    /// Reads every (scrip code, symbol, ISIN) of `bhavcopy`, newest session last so it wins.
    pub async fn load(storage: &Storage) -> Result<Self, OnlineError> {
        let ctx = bhavstore_lake::session(storage)?;
        let df = ctx
            .sql(
                "SELECT scrip_code, isin, symbol FROM (SELECT scrip_code, isin, symbol, trade_date, \
                 row_number() OVER (PARTITION BY scrip_code ORDER BY trade_date DESC) AS rn FROM bhavcopy \
                 WHERE isin IS NOT NULL OR symbol IS NOT NULL) WHERE rn = 1",
            )
            .await?;
        let mut index = Self::default();
        for b in df.collect().await? {
            let codes = cast(b.column(0), &DataType::Int64).map_err(datafusion::error::DataFusionError::from)?;
            let codes = codes.as_primitive::<Int64Type>();
            let isin = cast(b.column(1), &DataType::Utf8).map_err(datafusion::error::DataFusionError::from)?;
            let symbol = cast(b.column(2), &DataType::Utf8).map_err(datafusion::error::DataFusionError::from)?;
            let (isin, symbol) = (isin.as_string::<i32>(), symbol.as_string::<i32>());
            for r in 0..b.num_rows() {
                if codes.is_null(r) {
                    continue;
                }
                if !isin.is_null(r) {
                    index.insert(isin.value(r), codes.value(r));
                }
                if !symbol.is_null(r) {
                    index.insert(symbol.value(r), codes.value(r));
                }
            }
        }
        Ok(index)
    }
}

#[cfg(test)]
mod tests {
    use super::EntityIndex;

    #[test]
    fn codes_symbols_and_isins() {
        let mut i = EntityIndex::default();
        i.insert("RELIANCE", 500_325);
        i.insert("INE002A01018", 500_325);
        assert_eq!(i.resolve("500325"), Some(500_325));
        assert_eq!(i.resolve("reliance"), Some(500_325));
        assert_eq!(i.resolve("INE002A01018"), Some(500_325));
        assert_eq!(i.resolve("NOPE"), None);
        assert_eq!(i.resolve(""), None);
    }
}
