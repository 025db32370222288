//! Per-column Parquet encodings chosen by measuring a sample of the data to be written.
//!
//! Feature columns are noisy floats: a dictionary never pays for them (nearly every value is
//! distinct, so the writer builds a dictionary, overflows it and falls back to plain), and zstd
//! saves a few percent while its decompression is the largest single cost of every scan of a
//! published view (a Flight pull, a training set, the online store's load). Price-like columns
//! (closes, moving averages of prices, lags) repeat and compress by a third or more. So each
//! float column gets a dictionary only when its sample has few distinct values, and compression
//! only when zstd shrinks the sample's plain bytes by at least [`MIN_SAVING`]. Other types keep
//! the defaults (dictionary, zstd): codes, dates and text compress well and decode cheaply.

use std::collections::HashSet;

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Float32Type, Float64Type};
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::WriterPropertiesBuilder;
use datafusion::parquet::schema::types::ColumnPath;

/// Rows of the first batch looked at.
pub const SAMPLE_ROWS: usize = 64 * 1024;
/// Below this many non-null values the sample says nothing: defaults are kept.
const MIN_SAMPLE: usize = 512;
/// A column is compressed when zstd saves at least this fraction of its plain bytes.
pub const MIN_SAVING: f64 = 0.10;
/// A float column keeps a dictionary when at most this fraction of its values are distinct.
pub const MAX_DISTINCT_FOR_DICTIONARY: f64 = 0.10;

/// The zstd level of every compressed column.
pub fn zstd() -> Compression {
    Compression::ZSTD(ZstdLevel::try_new(3).unwrap_or_default())
}

/// What the sample says about one float column.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ColumnChoice {
    /// Keep the dictionary encoding.
    pub dictionary: bool,
    /// Compress with zstd (else uncompressed).
    pub compress: bool,
}

/// Measures one float column: distinct share and zstd saving on its plain (little-endian) bytes.
/// `None` when the column is not a float or the sample is too small to say.
#[must_use]
pub fn measure(array: &dyn Array) -> Option<ColumnChoice> {
    let (bits, bytes): (Vec<u64>, Vec<u8>) = match array.data_type() {
        DataType::Float64 => {
            let a = array.as_primitive::<Float64Type>();
            let v: Vec<u64> = a.iter().flatten().map(f64::to_bits).collect();
            let b = v.iter().flat_map(|x| x.to_le_bytes()).collect();
            (v, b)
        }
        DataType::Float32 => {
            let a = array.as_primitive::<Float32Type>();
            let v: Vec<u64> = a.iter().flatten().map(|x| u64::from(x.to_bits())).collect();
            let b = a.iter().flatten().flat_map(|x| x.to_le_bytes()).collect();
            (v, b)
        }
        _ => return None,
    };
    if bits.len() < MIN_SAMPLE {
        return None;
    }
    let distinct = bits.iter().collect::<HashSet<_>>().len();
    let dictionary = (distinct as f64) <= MAX_DISTINCT_FOR_DICTIONARY * bits.len() as f64;
    let compressed = zstd::bulk::compress(&bytes, 3).map(|c| c.len()).unwrap_or(bytes.len());
    let compress = dictionary || (compressed as f64) <= (1.0 - MIN_SAVING) * bytes.len() as f64;
    Some(ColumnChoice { dictionary, compress })
}

/// `builder` with each float column of `sample` set as its measurement says (top-level columns;
/// nested types keep the defaults).
#[must_use]
pub fn apply(mut builder: WriterPropertiesBuilder, sample: &RecordBatch) -> WriterPropertiesBuilder {
    let rows = sample.num_rows().min(SAMPLE_ROWS);
    for (field, column) in sample.schema().fields().iter().zip(sample.columns()) {
        let Some(choice) = measure(column.slice(0, rows).as_ref()) else { continue };
        let path = ColumnPath::new(vec![field.name().clone()]);
        builder = builder
            .set_column_dictionary_enabled(path.clone(), choice.dictionary)
            .set_column_compression(path, if choice.compress { zstd() } else { Compression::UNCOMPRESSED });
    }
    builder
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Float64Array, Int64Array};
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::parquet::arrow::ArrowWriter;
    use datafusion::parquet::file::properties::WriterProperties;
    use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};

    use super::*;

    /// A SplitMix64 stream mapped to [0, 1): noise no codec can shrink much.
    fn noise(n: usize) -> Vec<f64> {
        let mut s = 42u64;
        (0..n)
            .map(|_| {
                s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
                let mut z = s;
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                (z ^ (z >> 31)) as f64 / u64::MAX as f64
            })
            .collect()
    }

    #[test]
    fn noise_is_left_plain_and_prices_keep_their_encodings() {
        let n = 20_000;
        let noisy = Float64Array::from(noise(n));
        let choice = measure(&noisy).unwrap();
        assert_eq!(choice, ColumnChoice { dictionary: false, compress: false });
        // Paise prices of a few hundred securities: few distinct values.
        let prices = Float64Array::from((0..n).map(|i| ((i % 300) as f64 * 7.35).round() / 100.0).collect::<Vec<_>>());
        assert_eq!(measure(&prices).unwrap(), ColumnChoice { dictionary: true, compress: true });
        // Distinct but smooth (a moving average of a slow walk): no dictionary, compressed.
        let smooth = Float64Array::from((0..n).map(|i| 100.0 + (i / 40) as f64 * 0.25).collect::<Vec<_>>());
        let c = measure(&smooth).unwrap();
        assert!(c.compress, "{c:?}");
        // Too few values, or not a float: no opinion.
        assert_eq!(measure(&Float64Array::from(vec![1.0; 10])), None);
        assert_eq!(measure(&Int64Array::from(vec![1; 10_000])), None);
    }

    #[test]
    fn the_choice_reaches_the_file_and_values_round_trip() {
        let n = 20_000;
        let schema = Arc::new(Schema::new(vec![
            Field::new("code", DataType::Int64, false),
            Field::new("noise", DataType::Float64, true),
        ]));
        let values = noise(n);
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(Int64Array::from((0..n as i64).collect::<Vec<_>>())),
                Arc::new(Float64Array::from(values.iter().map(|v| Some(*v)).collect::<Vec<_>>())),
            ],
        )
        .unwrap();
        let props = apply(WriterProperties::builder().set_compression(zstd()), &batch).build();
        let mut buf = Vec::new();
        let mut w = ArrowWriter::try_new(&mut buf, Arc::clone(&schema), Some(props)).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        let reader = SerializedFileReader::new(bytes::Bytes::from(buf.clone())).unwrap();
        let rg = reader.metadata().row_group(0);
        assert!(matches!(rg.column(0).compression(), Compression::ZSTD(_)));
        assert_eq!(rg.column(1).compression(), Compression::UNCOMPRESSED);
        assert!(rg.column(1).dictionary_page_offset().is_none(), "no dictionary for noise");
        let back = datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReader::try_new(
            bytes::Bytes::from(buf),
            1 << 20,
        )
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
        assert_eq!(back, batch);
    }
}
