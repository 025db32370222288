//! `pg_catalog` tables as drivers read them, over `datafusion-postgres`' own:
//! * `pg_index` and `pg_constraint` list the keys and indexes of the tables a client can query:
//!   there are none, so they are empty; their key columns are `int2[]`, so the catalog queries
//!   of SQLAlchemy, pgcli and JDBC (`unnest(indkey)`, `conkey[n]`) plan;
//! * `pg_settings` holds the settings clients look up ([`SETTINGS`], also what `SHOW` answers);
//! * `pg_roles` lists the configured logins (psql's `\du`).

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, BooleanArray, Int32Array, RecordBatch, StringArray, new_null_array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{SchemaProvider, TableProvider};
use datafusion::common::Result;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;

/// Settings a client may read, with the values this server has. `SHOW` and `pg_settings`
/// answer from here.
pub const SETTINGS: &[(&str, &str)] = &[
    ("standard_conforming_strings", "on"),
    ("client_encoding", "UTF8"),
    ("server_encoding", "UTF8"),
    ("integer_datetimes", "on"),
    ("transaction_isolation", "read committed"),
    ("default_transaction_isolation", "read committed"),
    ("transaction_read_only", "on"),
    ("default_transaction_read_only", "on"),
    ("is_superuser", "off"),
    ("max_index_keys", "32"),
    ("max_identifier_length", "63"),
    ("lc_collate", "C.UTF-8"),
    ("lc_ctype", "C.UTF-8"),
    ("DateStyle", "ISO, MDY"),
    ("IntervalStyle", "postgres"),
    ("search_path", "\"$user\", public"),
];

/// The value of setting `name` (case-insensitive), as `SHOW` prints it.
#[must_use]
pub fn setting(name: &str) -> Option<String> {
    let name = match name.to_ascii_lowercase().as_str() {
        "transaction isolation level" => "transaction_isolation".to_string(),
        "server_version" => return Some(super::functions::server_version()),
        "server_version_num" => return Some(super::functions::PG_VERSION_NUM.to_string()),
        other => other.to_string(),
    };
    SETTINGS.iter().find(|(n, _)| n.eq_ignore_ascii_case(&name)).map(|(_, v)| (*v).to_string())
}

/// `pg_catalog` with the overrides of this module.
#[derive(Debug)]
struct Overlay {
    inner: Arc<dyn SchemaProvider>,
    tables: HashMap<&'static str, Arc<dyn TableProvider>>,
}

#[async_trait]
impl SchemaProvider for Overlay {
    fn table_names(&self) -> Vec<String> {
        self.inner.table_names()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        match self.tables.get(name) {
            Some(t) => Ok(Some(Arc::clone(t))),
            None => self.inner.table(name).await,
        }
    }

    fn table_exist(&self, name: &str) -> bool {
        self.tables.contains_key(name) || self.inner.table_exist(name)
    }
}

/// `schema` with its array-valued columns (`int2vector`, `oidvector`, `int2[]` written as text by
/// the catalog we start from) typed as lists.
fn with_list_columns(schema: &Schema, lists: &[(&str, DataType)]) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match lists.iter().find(|(n, _)| n == f.name()) {
            Some((_, item)) => Field::new(f.name(), DataType::List(Arc::new(Field::new("item", item.clone(), true))), true),
            None => f.as_ref().clone(),
        })
        .collect();
    Arc::new(Schema::new(fields))
}

fn text_list() -> DataType {
    DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)))
}

/// `table` with `columns` NULL of their Postgres type (`aclitem[]`, `text[]`), added where it
/// lacks them and replacing its text stand-ins; nothing here sets them.
fn with_null_columns(
    name: &str,
    table: Arc<dyn TableProvider>,
    columns: &[(&str, DataType)],
) -> Result<Arc<dyn TableProvider>> {
    use datafusion::logical_expr::{LogicalPlanBuilder, cast, col, lit};
    let null = |ty: &DataType, n: &str| cast(lit(datafusion::common::ScalarValue::Null), ty.clone()).alias(n);
    let schema = table.schema();
    let mut exprs: Vec<datafusion::prelude::Expr> = schema
        .fields()
        .iter()
        .map(|f| match columns.iter().find(|(n, _)| n == f.name()) {
            Some((n, ty)) => null(ty, n),
            None => col(f.name().as_str()),
        })
        .collect();
    for (n, ty) in columns {
        if schema.field_with_name(n).is_err() {
            exprs.push(null(ty, n));
        }
    }
    let source = datafusion::datasource::provider_as_source(table);
    let plan = LogicalPlanBuilder::scan(name, source, None)?.project(exprs)?.build()?;
    Ok(Arc::new(datafusion::catalog::view::ViewTable::new(plan, None)))
}

fn empty(schema: SchemaRef) -> Result<Arc<dyn TableProvider>> {
    Ok(Arc::new(MemTable::try_new(schema, vec![vec![]])?))
}

fn settings_table(schema: &SchemaRef) -> Result<Arc<dyn TableProvider>> {
    let n = SETTINGS.len();
    let columns: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .map(|f| -> ArrayRef {
            match f.name().as_str() {
                "name" => Arc::new(StringArray::from_iter_values(SETTINGS.iter().map(|(k, _)| *k))),
                "setting" | "reset_val" | "boot_val" => {
                    Arc::new(StringArray::from_iter_values(SETTINGS.iter().map(|(_, v)| *v)))
                }
                "context" => Arc::new(StringArray::from_iter_values(std::iter::repeat_n("internal", n))),
                "vartype" => Arc::new(StringArray::from_iter_values(std::iter::repeat_n("string", n))),
                "source" => Arc::new(StringArray::from_iter_values(std::iter::repeat_n("default", n))),
                "pending_restart" => Arc::new(BooleanArray::from(vec![false; n])),
                _ => new_null_array(f.data_type(), n),
            }
        })
        .collect();
    let batch = RecordBatch::try_new(Arc::clone(schema), columns)?;
    Ok(Arc::new(MemTable::try_new(Arc::clone(schema), vec![vec![batch]])?))
}

fn roles_table(schema: &SchemaRef, users: &[String]) -> Result<Arc<dyn TableProvider>> {
    let n = users.len();
    let columns: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(_, f)| -> ArrayRef {
            match (f.name().as_str(), f.data_type()) {
                ("rolname", _) => Arc::new(StringArray::from_iter_values(users.iter().map(String::as_str))),
                ("oid", DataType::Int32) => Arc::new(Int32Array::from_iter_values((0..n).map(|i| 16_384 + i as i32))),
                ("rolcanlogin" | "rolinherit", DataType::Boolean) => Arc::new(BooleanArray::from(vec![true; n])),
                ("rolconnlimit", DataType::Int32) => Arc::new(Int32Array::from(vec![-1; n])),
                (_, DataType::Boolean) => Arc::new(BooleanArray::from(vec![false; n])),
                (_, t) => new_null_array(t, n),
            }
        })
        .collect();
    let batch = RecordBatch::try_new(Arc::clone(schema), columns)?;
    Ok(Arc::new(MemTable::try_new(Arc::clone(schema), vec![vec![batch]])?))
}

/// Puts the overrides over `catalog`'s `pg_catalog` on `ctx`. `users` are the login names.
pub async fn install(ctx: &SessionContext, catalog: &str, users: &[String]) -> Result<()> {
    let Some(cat) = ctx.catalog(catalog) else { return Ok(()) };
    let Some(inner) = cat.schema("pg_catalog") else { return Ok(()) };
    let mut tables: HashMap<&'static str, Arc<dyn TableProvider>> = HashMap::new();
    let i16s = DataType::Int16;
    let oids = DataType::Int32;
    if let Some(t) = inner.table("pg_index").await? {
        let s = with_list_columns(
            &t.schema(),
            &[("indkey", i16s.clone()), ("indoption", i16s.clone()), ("indcollation", oids.clone()), ("indclass", oids.clone())],
        );
        tables.insert("pg_index", empty(s)?);
    }
    if let Some(t) = inner.table("pg_constraint").await? {
        let s = with_list_columns(
            &t.schema(),
            &[
                ("conkey", i16s.clone()),
                ("confkey", i16s.clone()),
                ("confdelsetcols", i16s),
                ("conpfeqop", oids.clone()),
                ("conppeqop", oids.clone()),
                ("conffeqop", oids.clone()),
                ("conexclop", oids),
            ],
        );
        tables.insert("pg_constraint", empty(s)?);
    }
    if let Some(t) = inner.table("pg_class").await? {
        tables.insert("pg_class", with_null_columns("pg_class", t, &[("reloptions", text_list()), ("relacl", text_list())])?);
    }
    if let Some(t) = inner.table("pg_namespace").await? {
        tables.insert("pg_namespace", with_null_columns("pg_namespace", t, &[("nspacl", text_list())])?);
    }
    if let Some(t) = inner.table("pg_database").await? {
        tables.insert("pg_database", with_null_columns("pg_database", t, &[("datacl", text_list())])?);
    }
    if let Some(t) = inner.table("pg_settings").await? {
        tables.insert("pg_settings", settings_table(&t.schema())?);
    }
    if let Some(t) = inner.table("pg_roles").await? {
        tables.insert("pg_roles", roles_table(&t.schema(), users)?);
    }
    cat.register_schema("pg_catalog", Arc::new(Overlay { inner, tables }))?;
    Ok(())
}
