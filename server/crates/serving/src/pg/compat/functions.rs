//! Postgres functions that drivers, ORMs and `psql` call while connecting or browsing the
//! schema, answering what Postgres answers for a read-only server with our objects: no
//! sequences, locks or notifications, every function visible.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Int32Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature, Volatility,
};
use datafusion::prelude::SessionContext;
use datafusion_postgres::arrow_pg::datatypes::into_pg_type;

/// The version every surface reports: `version()`, `SHOW server_version` and the startup
/// parameter. It starts like Postgres' own, because drivers and ORMs (SQLAlchemy, asyncpg,
/// JDBC) parse it to decide what the server can do.
#[must_use]
pub fn server_version() -> String {
    format!("{PG_VERSION} (bhavstore {}, DataFusion {})", env!("CARGO_PKG_VERSION"), datafusion::DATAFUSION_VERSION)
}

/// The Postgres release whose behaviour the wire protocol follows.
pub const PG_VERSION: &str = "16.6";

/// `server_version_num` for [`PG_VERSION`].
pub const PG_VERSION_NUM: &str = "160006";

/// The text of `select version()`.
#[must_use]
pub fn version_text() -> String {
    format!("PostgreSQL {} on {}-pc-linux-gnu, 64-bit", server_version(), std::env::consts::ARCH)
}

/// What one function computes from its arguments (already arrays of the call's length).
type Body = fn(&[ArrayRef], usize) -> Result<ArrayRef>;

/// A function of a fixed or any signature, defined by a plain `fn`.
#[derive(Debug)]
struct PgFunction {
    name: &'static str,
    signature: Signature,
    returns: DataType,
    body: Body,
}

// Functions are told apart by name: each name is registered once.
impl PartialEq for PgFunction {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for PgFunction {}

impl std::hash::Hash for PgFunction {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

impl ScalarUDFImpl for PgFunction {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(self.returns.clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let out = (self.body)(&arrays, rows)?;
        if args.args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_))) && out.len() == 1 {
            return Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?));
        }
        Ok(ColumnarValue::Array(out))
    }
}

fn function(name: &'static str, signature: Signature, returns: DataType, body: Body) -> ScalarUDF {
    ScalarUDF::new_from_impl(PgFunction { name, signature, returns, body })
}

/// Text arguments accept whatever a client binds (`text`, `varchar`, `name`, `unknown`).
fn text_args(n: usize) -> Signature {
    Signature::one_of(
        vec![
            TypeSignature::Exact(vec![DataType::Utf8; n]),
            TypeSignature::Exact(vec![DataType::Utf8View; n]),
            TypeSignature::Exact(vec![DataType::LargeUtf8; n]),
        ],
        Volatility::Immutable,
    )
}

fn strings(a: &ArrayRef) -> Result<Vec<Option<String>>> {
    let cast = datafusion::arrow::compute::cast(a, &DataType::Utf8)?;
    Ok(cast.as_string::<i32>().iter().map(|v| v.map(str::to_string)).collect())
}

fn repeat_text(rows: usize, value: Option<&str>) -> ArrayRef {
    Arc::new(StringArray::from(vec![value; rows.max(1)]))
}

/// Registers every function of this module on `ctx` (replacing any of the same name).
pub fn register(ctx: &SessionContext) {
    let any0 = || Signature::nullary(Volatility::Stable);
    let oid_arg = || Signature::any(1, Volatility::Stable);
    let udfs = [
        function("version", any0(), DataType::Utf8, |_, rows| Ok(repeat_text(rows, Some(&version_text())))),
        // No column is backed by a sequence.
        function("pg_get_serial_sequence", text_args(2), DataType::Utf8, |_, rows| Ok(repeat_text(rows, None))),
        // Sessions take no advisory locks; releasing them all is a no-op (asyncpg's pool does it
        // on every release). `void` prints as an empty string.
        function("pg_advisory_unlock_all", any0(), DataType::Utf8, |_, rows| Ok(repeat_text(rows, Some("")))),
        function("quote_literal", oid_arg(), DataType::Utf8, |args, _| {
            Ok(Arc::new(strings(&args[0])?.into_iter().map(|v| v.map(|s| quote_literal(&s))).collect::<StringArray>()))
        }),
        function("quote_nullable", oid_arg(), DataType::Utf8, |args, _| {
            let quoted =
                strings(&args[0])?.into_iter().map(|v| Some(v.map_or_else(|| "NULL".into(), |s| quote_literal(&s))));
            Ok(Arc::new(quoted.collect::<StringArray>()))
        }),
        function("pg_function_is_visible", oid_arg(), DataType::Boolean, |args, _| {
            Ok(Arc::new(BooleanArray::from(vec![true; args[0].len()])))
        }),
        function("pg_type_is_visible", oid_arg(), DataType::Boolean, |args, _| {
            Ok(Arc::new(BooleanArray::from(vec![true; args[0].len()])))
        }),
        function("pg_get_function_result", oid_arg(), DataType::Utf8, |args, _| Ok(repeat_text(args[0].len(), None))),
        function("pg_get_function_arguments", oid_arg(), DataType::Utf8, |args, _| {
            Ok(repeat_text(args[0].len(), Some("")))
        }),
        function("pg_get_function_identity_arguments", oid_arg(), DataType::Utf8, |args, _| {
            Ok(repeat_text(args[0].len(), Some("")))
        }),
        function("pg_size_pretty", oid_arg(), DataType::Utf8, |args, _| {
            let bytes = datafusion::arrow::compute::cast(&args[0], &DataType::Int64)?;
            let out: StringArray = bytes.as_primitive::<Int64Type>().iter().map(|v| v.map(size_pretty)).collect();
            Ok(Arc::new(out))
        }),
        function("to_regtype", text_args(1), DataType::Int32, |args, _| {
            let out: Int32Array = strings(&args[0])?.into_iter().map(|v| v.and_then(|s| type_oid(&s))).collect();
            Ok(Arc::new(out))
        }),
        function("pg_typeof", Signature::any(1, Volatility::Immutable), DataType::Utf8, |args, _| {
            let name = type_display_name(args[0].data_type());
            Ok(repeat_text(args[0].len(), Some(&name)))
        }),
        function("bhavstore_like_escape", text_args(2), DataType::Utf8, |args, _| {
            let patterns = strings(&args[0])?;
            let escapes = strings(&args[1])?;
            let mut out = Vec::with_capacity(patterns.len());
            for (p, e) in patterns.into_iter().zip(escapes) {
                out.push(match (p, e) {
                    (Some(p), Some(e)) => Some(like_with_backslash(&p, &e)?),
                    _ => None,
                });
            }
            Ok(Arc::new(StringArray::from(out)))
        }),
        // No comments are kept on objects.
        function("obj_description", Signature::variadic_any(Volatility::Stable), DataType::Utf8, null_text),
        function("col_description", Signature::any(2, Volatility::Stable), DataType::Utf8, null_text),
        function("shobj_description", Signature::any(2, Volatility::Stable), DataType::Utf8, null_text),
        function("pg_get_indexdef", Signature::variadic_any(Volatility::Stable), DataType::Utf8, null_text),
        function("pg_get_viewdef", Signature::variadic_any(Volatility::Stable), DataType::Utf8, null_text),
        function("inet_server_addr", any0(), DataType::Utf8, |_, rows| Ok(repeat_text(rows, None))),
        // Sizes of Parquet-backed relations are not tracked per relation: unknown, as NULL.
        function("pg_table_size", oid_arg(), DataType::Int64, null_int),
        function("pg_indexes_size", oid_arg(), DataType::Int64, null_int),
        function("pg_database_size", oid_arg(), DataType::Int64, null_int),
        function("pg_collation_is_visible", oid_arg(), DataType::Boolean, |args, _| {
            Ok(Arc::new(BooleanArray::from(vec![true; args[0].len()])))
        }),
        // Sessions have no temporary schema.
        function("pg_my_temp_schema", any0(), DataType::Int32, |_, rows| {
            Ok(Arc::new(Int32Array::from(vec![0; rows.max(1)])))
        }),
        function("pg_is_in_recovery", any0(), DataType::Boolean, |_, rows| {
            Ok(Arc::new(BooleanArray::from(vec![false; rows.max(1)])))
        }),
        function("current_setting", Signature::variadic_any(Volatility::Stable), DataType::Utf8, |args, _| {
            let mut out = Vec::with_capacity(args[0].len());
            for name in strings(&args[0])? {
                out.push(match name {
                    Some(n) => match super::catalog::setting(&n) {
                        Some(v) => Some(v),
                        None if n.eq_ignore_ascii_case("timezone") => Some("UTC".to_string()),
                        None => return exec_err!("unrecognized configuration parameter \"{n}\""),
                    },
                    None => None,
                });
            }
            Ok(Arc::new(StringArray::from(out)))
        }),
        function("bhavstore_regtype_name", oid_arg(), DataType::Utf8, |args, _| {
            let oids = datafusion::arrow::compute::cast(&args[0], &DataType::Int64)?;
            let out: StringArray = oids
                .as_primitive::<Int64Type>()
                .iter()
                .map(|v| v.map(|oid| regtype_name(oid).map_or_else(|| oid.to_string(), str::to_string)))
                .collect();
            Ok(Arc::new(out))
        }),
        function("regexp_split_to_array", text_args(2), list_of_text(), |args, _| {
            let texts = strings(&args[0])?;
            let patterns = strings(&args[1])?;
            let mut b = datafusion::arrow::array::ListBuilder::new(datafusion::arrow::array::StringBuilder::new());
            for (t, p) in texts.into_iter().zip(patterns) {
                match (t, p) {
                    (Some(t), Some(p)) => {
                        let re = regex::Regex::new(&p).map_err(|e| {
                            datafusion::common::DataFusionError::Execution(format!("invalid regular expression: {e}"))
                        })?;
                        for part in re.split(&t) {
                            b.values().append_value(part);
                        }
                        b.append(true);
                    }
                    _ => b.append(false),
                }
            }
            Ok(Arc::new(b.finish()))
        }),
        function("bhavstore_expandarray", Signature::any(1, Volatility::Immutable), expanded_type(), expand_array),
        function("json_build_object", Signature::variadic_any(Volatility::Stable), DataType::Utf8, json_build_object),
    ];
    for udf in udfs {
        ctx.register_udf(udf);
    }
}

fn expanded_type() -> DataType {
    use datafusion::arrow::datatypes::{Field, Fields};
    let fields = Fields::from(vec![Field::new("x", DataType::Int64, true), Field::new("n", DataType::Int64, false)]);
    DataType::List(Arc::new(Field::new("item", DataType::Struct(fields), true)))
}

/// `information_schema._pg_expandarray(a)` before its `unnest`: each element with its 1-based
/// position, as the records `(x, n)` Postgres returns.
fn expand_array(args: &[ArrayRef], _rows: usize) -> Result<ArrayRef> {
    use datafusion::arrow::array::{Int64Builder, ListBuilder, StructBuilder};
    use datafusion::arrow::datatypes::{Field, Fields};
    let fields = Fields::from(vec![Field::new("x", DataType::Int64, true), Field::new("n", DataType::Int64, false)]);
    let mut out = ListBuilder::new(StructBuilder::from_fields(fields, 0));
    let lists = match args[0].data_type() {
        DataType::List(_) => args[0].as_list::<i32>().clone(),
        DataType::Null => {
            for _ in 0..args[0].len() {
                out.append(false);
            }
            return Ok(Arc::new(out.finish()));
        }
        other => return exec_err!("_pg_expandarray expects an array, got {other}"),
    };
    for row in 0..lists.len() {
        if lists.is_null(row) {
            out.append(false);
            continue;
        }
        let values = datafusion::arrow::compute::cast(&lists.value(row), &DataType::Int64)?;
        let values = values.as_primitive::<Int64Type>();
        let st = out.values();
        for (i, v) in values.iter().enumerate() {
            if let Some(b) = st.field_builder::<Int64Builder>(0) {
                b.append_option(v);
            }
            if let Some(b) = st.field_builder::<Int64Builder>(1) {
                b.append_value(i64::try_from(i + 1).unwrap_or(i64::MAX));
            }
            st.append(true);
        }
        out.append(true);
    }
    Ok(Arc::new(out.finish()))
}

fn null_text(args: &[ArrayRef], rows: usize) -> Result<ArrayRef> {
    Ok(repeat_text(args.first().map_or(rows, |a| a.len()), None))
}

fn null_int(args: &[ArrayRef], _rows: usize) -> Result<ArrayRef> {
    Ok(Arc::new(datafusion::arrow::array::Int64Array::from(vec![None; args[0].len()])))
}

fn list_of_text() -> DataType {
    DataType::List(Arc::new(datafusion::arrow::datatypes::Field::new("item", DataType::Utf8, true)))
}

/// `json_build_object(k1, v1, ...)` as JSON text, keys as text, values as JSON scalars.
fn json_build_object(args: &[ArrayRef], rows: usize) -> Result<ArrayRef> {
    if !args.len().is_multiple_of(2) {
        return exec_err!("argument list must have even number of elements");
    }
    let n = args.first().map_or(rows.max(1), |a| a.len());
    let mut out = Vec::with_capacity(n);
    for row in 0..n {
        let mut map = serde_json::Map::new();
        for pair in args.chunks(2) {
            let key = ScalarValue::try_from_array(&pair[0], row)?;
            if key.is_null() {
                return exec_err!("null value not allowed for object key");
            }
            let value = ScalarValue::try_from_array(&pair[1], row)?;
            let json = match &value {
                v if v.is_null() => serde_json::Value::Null,
                ScalarValue::Boolean(Some(b)) => serde_json::Value::Bool(*b),
                ScalarValue::Int8(Some(_))
                | ScalarValue::Int16(Some(_))
                | ScalarValue::Int32(Some(_))
                | ScalarValue::Int64(Some(_))
                | ScalarValue::UInt8(Some(_))
                | ScalarValue::UInt16(Some(_))
                | ScalarValue::UInt32(Some(_))
                | ScalarValue::UInt64(Some(_))
                | ScalarValue::Float32(Some(_))
                | ScalarValue::Float64(Some(_)) => {
                    serde_json::from_str(&value.to_string()).unwrap_or(serde_json::Value::String(value.to_string()))
                }
                other => serde_json::Value::String(other.to_string()),
            };
            map.insert(key.to_string(), json);
        }
        out.push(serde_json::Value::Object(map).to_string());
    }
    Ok(Arc::new(StringArray::from(out)))
}

/// The name `regtype` prints for a type oid, for the types this server has.
#[must_use]
pub fn regtype_name(oid: i64) -> Option<&'static str> {
    Some(match oid {
        16 => "boolean",
        17 => "bytea",
        18 => "\"char\"",
        19 => "name",
        20 => "bigint",
        21 => "smallint",
        23 => "integer",
        25 => "text",
        26 => "oid",
        114 => "json",
        700 => "real",
        701 => "double precision",
        1000 => "boolean[]",
        1005 => "smallint[]",
        1007 => "integer[]",
        1009 => "text[]",
        1016 => "bigint[]",
        1021 => "real[]",
        1022 => "double precision[]",
        1042 => "character",
        1043 => "character varying",
        1082 => "date",
        1083 => "time without time zone",
        1114 => "timestamp without time zone",
        1184 => "timestamp with time zone",
        1186 => "interval",
        1700 => "numeric",
        2205 => "regclass",
        2206 => "regtype",
        2249 => "record",
        2275 => "cstring",
        2276 => "\"any\"",
        2277 => "anyarray",
        2278 => "void",
        2279 => "trigger",
        2950 => "uuid",
        3802 => "jsonb",
        _ => return None,
    })
}

/// `quote_literal`: single quotes doubled; a string with backslashes becomes an `E''` string
/// with them doubled, as Postgres writes it.
#[must_use]
pub fn quote_literal(s: &str) -> String {
    let body = s.replace('\'', "''");
    if s.contains('\\') { format!("E'{}'", body.replace('\\', "\\\\")) } else { format!("'{body}'") }
}

/// `pg_size_pretty` exactly as Postgres 16 computes it: bytes below 10,240, then kB, MB, GB,
/// TB, PB, each shown while its value (kept in half units, rounded half away from zero) stays
/// under 20,480 halves.
#[must_use]
pub fn size_pretty(bytes: i64) -> String {
    // (name, limit, rounded, unit bits)
    const UNITS: [(&str, u64, bool, u32); 6] = [
        ("bytes", 10 * 1024, false, 0),
        ("kB", 20 * 1024 - 1, true, 10),
        ("MB", 20 * 1024 - 1, true, 20),
        ("GB", 20 * 1024 - 1, true, 30),
        ("TB", 20 * 1024 - 1, true, 40),
        ("PB", 20 * 1024 - 1, true, 50),
    ];
    let half_rounded = |x: i64| (x + if x < 0 { -1 } else { 1 }) / 2;
    let mut size = bytes;
    for (i, (name, limit, round, bits)) in UNITS.iter().enumerate() {
        let last = i + 1 == UNITS.len();
        if last || size.unsigned_abs() < *limit {
            let shown = if *round { half_rounded(size) } else { size };
            return format!("{shown} {name}");
        }
        let (_, _, next_round, next_bits) = UNITS[i + 1];
        let shift = next_bits - bits - u32::from(next_round) + u32::from(*round);
        size /= 1_i64 << shift;
    }
    unreachable!("the last unit always answers")
}

/// A `LIKE` pattern written with escape character `escape`, rewritten to use the backslash,
/// the only escape DataFusion's `LIKE` knows.
pub fn like_with_backslash(pattern: &str, escape: &str) -> Result<String> {
    let mut esc = escape.chars();
    let (Some(e), None) = (esc.next(), esc.next()) else {
        return exec_err!("invalid escape string: it must be empty or one character");
    };
    let mut out = String::with_capacity(pattern.len() + 4);
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c == e {
            match chars.next() {
                Some(next) => {
                    out.push('\\');
                    out.push(next);
                }
                None => return exec_err!("LIKE pattern must not end with escape character"),
            }
        } else if c == '\\' {
            out.push_str("\\\\");
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

/// The oid of a type name as `to_regtype` resolves it (`int8`, `bigint`, `_int8`, `int8[]`...).
#[must_use]
pub fn type_oid(name: &str) -> Option<i32> {
    let n = name.trim().trim_start_matches("pg_catalog.").to_ascii_lowercase();
    let (base, array) = match n.strip_suffix("[]") {
        Some(b) => (b.trim().to_string(), true),
        None => match n.strip_prefix('_') {
            Some(b) => (b.to_string(), true),
            None => (n.clone(), false),
        },
    };
    let (scalar, array_oid) = match base.as_str() {
        "bool" | "boolean" => (16, 1000),
        "bytea" => (17, 1001),
        "char" | "\"char\"" => (18, 1002),
        "name" => (19, 1003),
        "int8" | "bigint" => (20, 1016),
        "int2" | "smallint" => (21, 1005),
        "int4" | "integer" | "int" => (23, 1007),
        "text" => (25, 1009),
        "oid" => (26, 1028),
        "json" => (114, 199),
        "float4" | "real" => (700, 1021),
        "float8" | "double precision" => (701, 1022),
        "bpchar" | "character" => (1042, 1014),
        "varchar" | "character varying" => (1043, 1015),
        "date" => (1082, 1182),
        "time" | "time without time zone" => (1083, 1183),
        "timestamp" | "timestamp without time zone" => (1114, 1115),
        "timestamptz" | "timestamp with time zone" => (1184, 1185),
        "interval" => (1186, 1187),
        "numeric" | "decimal" => (1700, 1231),
        "uuid" => (2950, 2951),
        "jsonb" => (3802, 3807),
        "regtype" => (2206, 2211),
        "regclass" => (2205, 2210),
        "regproc" => (24, 1008),
        _ => return None,
    };
    Some(if array { array_oid } else { scalar })
}

/// The name `pg_typeof` prints for a value of `ty`, as `format_type` writes it.
#[must_use]
pub fn type_display_name(ty: &DataType) -> String {
    let Ok(t) = into_pg_type(ty) else { return "unknown".into() };
    match t.name() {
        "int2" => "smallint".into(),
        "int4" => "integer".into(),
        "int8" => "bigint".into(),
        "float4" => "real".into(),
        "float8" => "double precision".into(),
        "bool" => "boolean".into(),
        "varchar" => "character varying".into(),
        "timestamp" => "timestamp without time zone".into(),
        "timestamptz" => "timestamp with time zone".into(),
        "time" => "time without time zone".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_parses_as_postgres() {
        // SQLAlchemy: r".*(?:PostgreSQL|EnterpriseDB) (\d+)\.?(\d+)?(?:\.(\d+))?(?:\.\d+)?(?:devel|beta)?"
        let v = version_text();
        assert!(v.starts_with("PostgreSQL 16.6 (bhavstore "), "{v}");
        assert!(server_version().starts_with("16.6 "));
    }

    #[test]
    fn quoting_like_postgres() {
        assert_eq!(quote_literal("O'Reilly"), "'O''Reilly'");
        assert_eq!(quote_literal(r"a\b"), r"E'a\\b'");
    }

    #[test]
    fn sizes_like_postgres() {
        assert_eq!(size_pretty(0), "0 bytes");
        assert_eq!(size_pretty(10239), "10239 bytes");
        assert_eq!(size_pretty(10240), "10 kB");
        assert_eq!(size_pretty(1_000_000), "977 kB");
        assert_eq!(size_pretty(10_485_760), "10 MB");
        assert_eq!(size_pretty(-10240), "-10 kB");
    }

    #[test]
    fn like_escapes_move_to_backslash() {
        assert_eq!(like_with_backslash("pg/_%", "/").unwrap(), r"pg\_%");
        assert_eq!(like_with_backslash(r"a\b//c", "/").unwrap(), r"a\\b\/c");
        assert!(like_with_backslash("ab/", "/").is_err());
        assert!(like_with_backslash("ab", "//").is_err());
    }

    #[test]
    fn type_names_resolve() {
        assert_eq!(type_oid("int8"), Some(20));
        assert_eq!(type_oid("bigint[]"), Some(1016));
        assert_eq!(type_oid("_text"), Some(1009));
        assert_eq!(type_oid("double precision"), Some(701));
        assert_eq!(type_oid("hstore"), None);
        assert_eq!(type_display_name(&DataType::Int32), "integer");
        assert_eq!(type_display_name(&DataType::Float64), "double precision");
    }
}
