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
            Some((_, item)) => {
                Field::new(f.name(), DataType::List(Arc::new(Field::new("item", item.clone(), true))), true)
            }
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
    Ok(Arc::new(bhavstore_lake::TableView(datafusion::catalog::view::ViewTable::new(plan, None))))
}

/// `relname.attname` of every unsigned column of the catalog's own schemas: their values go out
/// as `int8` ([`super::types`]), so the catalog must say so too.
async fn unsigned_columns(cat: &Arc<dyn datafusion::catalog::CatalogProvider>) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for schema_name in cat.schema_names() {
        if schema_name == "pg_catalog" || schema_name == "information_schema" {
            continue;
        }
        let Some(schema) = cat.schema(&schema_name) else { continue };
        for table in schema.table_names() {
            let Some(t) = schema.table(&table).await? else { continue };
            for f in t.schema().fields() {
                if super::types::wire_type(f.data_type()).is_some() {
                    out.push(format!("{table}.{}", f.name()));
                }
            }
        }
    }
    Ok(out)
}

/// `pg_attribute` with the type of each unsigned column given as the signed type its values
/// go out as (`int8` for `UInt32`/`UInt64`; `int2`/`int4` for the narrower ones).
fn signed_attributes(
    attributes: Arc<dyn TableProvider>,
    classes: Arc<dyn TableProvider>,
    unsigned: &[String],
) -> Result<Arc<dyn TableProvider>> {
    use datafusion::functions::string::expr_fn::concat;
    use datafusion::logical_expr::{JoinType, LogicalPlanBuilder, col, lit, when};
    let a = LogicalPlanBuilder::scan("a", datafusion::datasource::provider_as_source(Arc::clone(&attributes)), None)?;
    let c = LogicalPlanBuilder::scan("c", datafusion::datasource::provider_as_source(classes), None)?
        .project(vec![col("c.oid").alias("__c_oid"), col("c.relname").alias("__c_relname")])?
        .build()?;
    let joined = a.join(c, JoinType::Left, (vec!["a.attrelid"], vec!["__c_oid"]), None)?;
    let key = concat(vec![col("__c_relname"), lit("."), col("a.attname")]);
    let listed = key.in_list(unsigned.iter().map(|k| lit(k.clone())).collect(), false);
    let exprs: Vec<datafusion::prelude::Expr> = attributes
        .schema()
        .fields()
        .iter()
        .map(|f| match f.name().as_str() {
            "atttypid" => when(listed.clone(), datafusion::logical_expr::cast(lit(20_i64), f.data_type().clone()))
                .otherwise(col("a.atttypid"))
                .map(|e| e.alias("atttypid")),
            name => Ok(col(format!("a.{name}")).alias(name)),
        })
        .collect::<Result<_>>()?;
    let plan = joined.project(exprs)?.build()?;
    Ok(Arc::new(bhavstore_lake::TableView(datafusion::catalog::view::ViewTable::new(plan, None))))
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
        .map(|f| -> ArrayRef {
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

/// The functions registered on `ctx` beyond DataFusion's own: bhavstore's feature UDFs and
/// table functions. Call before `pg_catalog` is set up (its functions are Postgres', not ours).
#[must_use]
pub fn own_functions(ctx: &SessionContext) -> Vec<String> {
    let builtin = SessionContext::new().state();
    let state = ctx.state();
    let mut out: Vec<String> = state
        .window_functions()
        .keys()
        .filter(|k| !builtin.window_functions().contains_key(*k))
        .chain(state.scalar_functions().keys().filter(|k| !builtin.scalar_functions().contains_key(*k)))
        .chain(state.aggregate_functions().keys().filter(|k| !builtin.aggregate_functions().contains_key(*k)))
        .chain(state.table_functions().keys().filter(|k| !builtin.table_functions().contains_key(*k)))
        .cloned()
        .collect();
    out.sort();
    out.dedup();
    out
}

/// `pg_proc` listing the functions SQL can call here: bhavstore's in `public` (window functions
/// `w`, table functions returning sets), DataFusion's and the Postgres ones in `pg_catalog`.
/// Argument and result types are not described (`pg_get_function_result` is NULL).
fn functions_table(
    ctx: &SessionContext,
    schema: &SchemaRef,
    ours: &[String],
    public: i32,
) -> Result<Arc<dyn TableProvider>> {
    use datafusion::arrow::array::{Float32Array, Int16Array, ListArray};
    let state = ctx.state();
    let mut rows: Vec<(String, &str, bool, bool)> = Vec::new(); // name, kind, ours, returns a set
    for k in state.scalar_functions().keys() {
        rows.push((k.clone(), "f", ours.contains(k), false));
    }
    for k in state.aggregate_functions().keys() {
        rows.push((k.clone(), "a", ours.contains(k), false));
    }
    for k in state.window_functions().keys() {
        rows.push((k.clone(), "w", ours.contains(k), false));
    }
    for k in state.table_functions().keys() {
        rows.push((k.clone(), "f", ours.contains(k), true));
    }
    rows.sort();
    rows.dedup_by(|a, b| a.0 == b.0 && a.1 == b.1);
    let n = rows.len();
    let int_list = |len: usize| -> ArrayRef {
        let field = Arc::new(Field::new("item", DataType::Int32, true));
        Arc::new(ListArray::new_null(field, len))
    };
    let columns: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .map(|f| -> ArrayRef {
            match f.name().as_str() {
                "oid" => Arc::new(Int32Array::from_iter_values((0..n).map(|i| 90_000 + i as i32))),
                "proname" | "prosrc" => Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0.as_str()))),
                "pronamespace" => {
                    Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| if r.2 { public } else { 11 })))
                }
                "proowner" => Arc::new(Int32Array::from(vec![10; n])),
                "prolang" => Arc::new(Int32Array::from(vec![12; n])),
                "procost" => Arc::new(Float32Array::from(vec![1.0; n])),
                "prorows" => {
                    Arc::new(Float32Array::from_iter_values(rows.iter().map(|r| if r.3 { 1000.0 } else { 0.0 })))
                }
                "provariadic" | "prorettype" => Arc::new(Int32Array::from(vec![0; n])),
                "prosupport" => Arc::new(StringArray::from(vec!["-"; n])),
                "prokind" => Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1))),
                "proretset" => Arc::new(BooleanArray::from_iter(rows.iter().map(|r| Some(r.3)))),
                "provolatile" => Arc::new(StringArray::from(vec!["s"; n])),
                "proparallel" => Arc::new(StringArray::from(vec!["s"; n])),
                "pronargs" | "pronargdefaults" => Arc::new(Int16Array::from(vec![0; n])),
                "proargtypes" => {
                    let field = Arc::new(Field::new("item", DataType::Int32, true));
                    let offsets = datafusion::arrow::buffer::OffsetBuffer::new_zeroed(n);
                    Arc::new(ListArray::new(field, offsets, Arc::new(Int32Array::from(Vec::<i32>::new())), None))
                }
                "proallargtypes" => int_list(n),
                name if matches!(f.data_type(), DataType::Boolean) && name.starts_with("pro") => {
                    Arc::new(BooleanArray::from(vec![false; n]))
                }
                _ => new_null_array(f.data_type(), n),
            }
        })
        .collect();
    let schema = with_list_columns(
        schema,
        &[
            ("proargtypes", DataType::Int32),
            ("proallargtypes", DataType::Int32),
            ("proargmodes", DataType::Utf8),
            ("proargnames", DataType::Utf8),
            ("protrftypes", DataType::Int32),
            ("proconfig", DataType::Utf8),
            ("proacl", DataType::Utf8),
        ],
    );
    // Columns typed as lists now: rebuild the NULL ones with the new types.
    let columns: Vec<ArrayRef> = columns
        .into_iter()
        .zip(schema.fields())
        .map(|(c, f)| if c.data_type() == f.data_type() { c } else { new_null_array(f.data_type(), n) })
        .collect();
    let batch = RecordBatch::try_new(Arc::clone(&schema), columns)?;
    Ok(Arc::new(MemTable::try_new(schema, vec![vec![batch]])?))
}

/// Puts the overrides over `catalog`'s `pg_catalog` on `ctx`. `users` are the login names.
pub async fn install(ctx: &SessionContext, catalog: &str, users: &[String], ours: &[String]) -> Result<()> {
    let Some(cat) = ctx.catalog(catalog) else { return Ok(()) };
    let Some(inner) = cat.schema("pg_catalog") else { return Ok(()) };
    let mut tables: HashMap<&'static str, Arc<dyn TableProvider>> = HashMap::new();
    let i16s = DataType::Int16;
    let oids = DataType::Int32;
    if let Some(t) = inner.table("pg_index").await? {
        let s = with_list_columns(
            &t.schema(),
            &[
                ("indkey", i16s.clone()),
                ("indoption", i16s.clone()),
                ("indcollation", oids.clone()),
                ("indclass", oids.clone()),
            ],
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
        tables.insert(
            "pg_class",
            with_null_columns("pg_class", t, &[("reloptions", text_list()), ("relacl", text_list())])?,
        );
    }
    if let Some(t) = inner.table("pg_namespace").await? {
        tables.insert("pg_namespace", with_null_columns("pg_namespace", t, &[("nspacl", text_list())])?);
    }
    if let Some(t) = inner.table("pg_database").await? {
        tables.insert("pg_database", with_null_columns("pg_database", t, &[("datacl", text_list())])?);
    }
    if let (Some(attributes), Some(classes)) = (inner.table("pg_attribute").await?, inner.table("pg_class").await?) {
        let unsigned = unsigned_columns(&cat).await?;
        if !unsigned.is_empty() {
            tables.insert("pg_attribute", signed_attributes(attributes, classes, &unsigned)?);
        }
    }
    if let Some(t) = inner.table("pg_proc").await? {
        let public = ctx
            .sql("SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = 'public'")
            .await?
            .collect()
            .await?
            .first()
            .filter(|b| b.num_rows() > 0)
            .and_then(|b| b.column(0).as_any().downcast_ref::<Int32Array>().map(|a| a.value(0)))
            .unwrap_or(2200);
        tables.insert("pg_proc", functions_table(ctx, &t.schema(), ours, public)?);
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
