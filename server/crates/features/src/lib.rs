//! Feature views: SQL plus YAML in `feature_defs/`, checked into git, validated as a whole and
//! registered in the catalog as SQL views.
//!
//! Every problem is reported with the file and, where it can be found, the line: unknown YAML
//! keys, SQL that does not parse or plan, a declared feature the SQL does not produce, a missing
//! entity or event-time column, a YAML without SQL or SQL without YAML.

pub mod analysis;
mod prepared;
pub mod registry;
pub mod resume;
mod spec;
pub mod version;

pub use prepared::{PrepareError, PreparedView, prepare, prepare_in};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use datafusion::catalog::view::ViewTable;
use datafusion::error::DataFusionError;
use datafusion::prelude::SessionContext;

pub use spec::{FeatureSpec, TtlError, ViewSpec, parse_ttl};

/// Errors in feature definitions. Each names the file; most name the line.
#[derive(Debug, thiserror::Error)]
pub enum FeatureDefError {
    /// The directory or a file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// A YAML file is invalid (serde's message carries line and column).
    #[error("{path}: {message}")]
    Yaml {
        /// The file.
        path: PathBuf,
        /// What is wrong, with its position.
        message: String,
    },
    /// A rule about a view is broken.
    #[error("{path}:{line}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The SQL does not parse or plan.
    #[error("{path}:{line}: {message}")]
    Sql {
        /// The file.
        path: PathBuf,
        /// 1-based line (1 when DataFusion does not say).
        line: usize,
        /// DataFusion's message.
        message: String,
    },
}

/// A loaded feature view.
#[derive(Debug, Clone)]
pub struct FeatureView {
    /// The YAML.
    pub spec: ViewSpec,
    /// The SQL text.
    pub sql: String,
    /// Where the SQL came from.
    pub sql_path: PathBuf,
    /// Where the YAML came from.
    pub yaml_path: PathBuf,
    /// The YAML text, for pointing errors found at registration at their line.
    pub yaml_text: String,
    /// Parsed `ttl`.
    pub ttl: Duration,
    /// Parsed `available_after` (zero when absent).
    pub available_after: Duration,
}

impl FeatureView {
    /// A view from its YAML and SQL texts; `name` is what the YAML's `name` must be (the file
    /// stem, or the name a registry record was kept under). The paths name the texts' origins in
    /// errors.
    pub fn parse(
        name: &str,
        yaml: &str,
        yaml_path: PathBuf,
        sql: &str,
        sql_path: PathBuf,
    ) -> Result<Self, FeatureDefError> {
        let spec: ViewSpec = serde_norway::from_str(yaml)
            .map_err(|e| FeatureDefError::Yaml { path: yaml_path.clone(), message: e.to_string() })?;
        let invalid = |key: &str, message: String| FeatureDefError::Invalid {
            path: yaml_path.clone(),
            line: line_of(yaml, key).unwrap_or(1),
            message,
        };
        if spec.name != name {
            return Err(invalid("name:", format!("name {:?} must match the file name {name:?}", spec.name)));
        }
        if !is_identifier(&spec.name) {
            return Err(invalid("name:", format!("name {:?} is not a lower-case SQL identifier", spec.name)));
        }
        let ttl = parse_ttl(&spec.ttl).map_err(|e| invalid("ttl:", e.to_string()))?;
        let available_after = match &spec.available_after {
            None => Duration::ZERO,
            Some(a) => parse_ttl(a)
                .map_err(|e| invalid("available_after:", e.to_string().replacen("ttl", "available_after", 1)))?,
        };
        if spec.features.is_empty() {
            return Err(invalid("features:", "a view needs at least one feature".into()));
        }
        let mut seen = std::collections::HashSet::new();
        for f in &spec.features {
            if !seen.insert(f.name.as_str()) {
                return Err(invalid(&format!("name: {}", f.name), format!("feature {:?} is declared twice", f.name)));
            }
        }
        Ok(Self { spec, sql: sql.to_string(), sql_path, yaml_path, yaml_text: yaml.to_string(), ttl, available_after })
    }

    /// Hash of what decides the view's values, computed without planning it: two texts with
    /// the same key define the same data (see [`version::version_of`]).
    #[must_use]
    pub fn definition_key(&self) -> String {
        version::version_of(self, &BTreeMap::new()).definition_hash
    }
}

/// Reads every `*.yaml` / `*.sql` pair in `dir`, checking the YAML and the pairing (not the SQL:
/// that needs a catalog, see [`register_views`]).
pub fn load_dir(dir: &Path) -> Result<Vec<FeatureView>, FeatureDefError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| FeatureDefError::Io { path, source }
    };
    let mut yamls = BTreeMap::new();
    let mut sqls = BTreeMap::new();
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let path = entry.map_err(io(dir))?.path();
        let Some(stem) = path.file_stem().map(|s| s.to_string_lossy().into_owned()) else { continue };
        match path.extension().and_then(|e| e.to_str()) {
            Some("yaml" | "yml") => {
                yamls.insert(stem, path);
            }
            Some("sql") => {
                sqls.insert(stem, path);
            }
            _ => {}
        }
    }
    let mut views = Vec::new();
    for (stem, yaml_path) in &yamls {
        let text = std::fs::read_to_string(yaml_path).map_err(io(yaml_path))?;
        let Some(sql_path) = sqls.get(stem) else {
            return Err(FeatureDefError::Invalid {
                path: yaml_path.clone(),
                line: line_of(&text, "name:").unwrap_or(1),
                message: format!("no SQL for view {stem:?}: expected {stem}.sql beside this file"),
            });
        };
        let sql = std::fs::read_to_string(sql_path).map_err(io(sql_path))?;
        views.push(FeatureView::parse(stem, &text, yaml_path.clone(), &sql, sql_path.clone())?);
    }
    if let Some((stem, path)) = sqls.iter().find(|(s, _)| !yamls.contains_key(*s)) {
        return Err(FeatureDefError::Invalid {
            path: path.clone(),
            line: 1,
            message: format!("no YAML for view {stem:?}: expected {stem}.yaml beside this file"),
        });
    }
    Ok(views)
}

/// Plans every view against `ctx`, checks its output columns against the YAML and registers it.
/// Views may build on each other: they are planned until no more succeed.
pub async fn register_views(ctx: &SessionContext, views: &[FeatureView]) -> Result<(), FeatureDefError> {
    let mut pending: Vec<&FeatureView> = views.iter().collect();
    while !pending.is_empty() {
        let mut next = Vec::new();
        let mut last_err = None;
        for view in pending.iter().copied() {
            match plan_and_register(ctx, view).await {
                Ok(()) => {}
                Err(PlanFailure::MaybeLater(e)) => {
                    next.push(view);
                    last_err = Some(e);
                }
                Err(PlanFailure::Fatal(e)) => return Err(e),
            }
        }
        if next.len() == pending.len() {
            return Err(last_err.expect("a failure was recorded"));
        }
        pending = next;
    }
    Ok(())
}

enum PlanFailure {
    /// Unknown table: perhaps another view not registered yet.
    MaybeLater(FeatureDefError),
    Fatal(FeatureDefError),
}

async fn plan_and_register(ctx: &SessionContext, view: &FeatureView) -> Result<(), PlanFailure> {
    let sql_err = |e: &DataFusionError| FeatureDefError::Sql {
        path: view.sql_path.clone(),
        line: sql_error_line(&view.sql, e),
        message: e.to_string(),
    };
    let plan = match ctx.state().create_logical_plan(&view.sql).await {
        Ok(p) => p,
        Err(e) => {
            let table_missing = e.to_string().contains("table") && e.to_string().contains("not found");
            return Err(if table_missing {
                PlanFailure::MaybeLater(sql_err(&e))
            } else {
                PlanFailure::Fatal(sql_err(&e))
            });
        }
    };
    use datafusion::logical_expr::LogicalPlan as P;
    if matches!(
        plan,
        P::Ddl(_) | P::Dml(_) | P::Copy(_) | P::Statement(_) | P::Explain(_) | P::Analyze(_) | P::DescribeTable(_)
    ) {
        return Err(PlanFailure::Fatal(FeatureDefError::Sql {
            path: view.sql_path.clone(),
            line: 1,
            message: "a feature view must be a single SELECT query".into(),
        }));
    }
    let schema = plan.schema();
    let has = |c: &str| schema.fields().iter().any(|f| f.name() == c);
    let missing = |key: &str, what: String| {
        PlanFailure::Fatal(FeatureDefError::Invalid {
            path: view.yaml_path.clone(),
            line: line_of(&view.yaml_text, key).unwrap_or(1),
            message: what,
        })
    };
    for (key, col) in [("entity:", &view.spec.entity), ("event_time:", &view.spec.event_time)] {
        if !has(col) {
            return Err(missing(
                key,
                format!(
                    "{} column {col:?} is not in the output of {}",
                    key.trim_end_matches(':'),
                    view.sql_path.display()
                ),
            ));
        }
    }
    for f in &view.spec.features {
        if !has(&f.name) {
            return Err(missing(
                &format!("name: {}", f.name),
                format!("feature {:?} is declared but {} does not produce it", f.name, view.sql_path.display()),
            ));
        }
    }
    // Window arguments (`sma(x, 0)`) are checked when DataFusion builds the physical plan:
    // build it once so a bad definition fails at load, not at the first query. It is built
    // over empty stand-ins of the tables: the checks need only the schemas, and the real day
    // tables would list every day partition of the history for each view.
    let check = without_data(&plan).unwrap_or_else(|_| plan.clone());
    if let Err(e) = ctx.state().create_physical_plan(&check).await {
        return Err(PlanFailure::Fatal(sql_err(&e)));
    }
    let table = ViewTable::new(plan, Some(view.sql.clone()));
    ctx.register_table(view.spec.name.as_str(), Arc::new(table)).map_err(|e| PlanFailure::Fatal(sql_err(&e)))?;
    Ok(())
}

/// `plan` with every table it scans (subqueries included) read from an empty table of the same
/// schema.
fn without_data(
    plan: &datafusion::logical_expr::LogicalPlan,
) -> datafusion::common::Result<datafusion::logical_expr::LogicalPlan> {
    use datafusion::common::tree_node::Transformed;
    use datafusion::logical_expr::LogicalPlan;
    plan.clone()
        .transform_up_with_subqueries(|node| match node {
            LogicalPlan::TableScan(mut scan) => {
                let empty = datafusion::datasource::empty::EmptyTable::new(scan.source.schema());
                scan.source = datafusion::datasource::provider_as_source(Arc::new(empty));
                Ok(Transformed::yes(LogicalPlan::TableScan(scan)))
            }
            other => Ok(Transformed::no(other)),
        })
        .map(|t| t.data)
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// 1-based line of the first line containing `needle`.
fn line_of(text: &str, needle: &str) -> Option<usize> {
    text.lines().position(|l| l.contains(needle)).map(|i| i + 1)
}

/// The line a DataFusion error points at: sqlparser says `Line: N`; planning errors name a
/// column or function, which is looked up in the SQL text.
fn sql_error_line(sql: &str, e: &DataFusionError) -> usize {
    let msg = e.to_string();
    if let Some(rest) = msg.split("Line: ").nth(1)
        && let Ok(n) = rest.chars().take_while(char::is_ascii_digit).collect::<String>().parse()
    {
        return n;
    }
    for marker in ["No field named ", "Invalid function '", "function '", "table '", "Error during planning: "] {
        if let Some(rest) = msg.split(marker).nth(1) {
            let name: String = rest
                .trim_start_matches(['"', '\''])
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '.')
                .collect();
            let name = name.trim_end_matches('.');
            let bare = name.rsplit('.').next().unwrap_or(name);
            if !bare.is_empty()
                && let Some(l) = line_of(sql, bare)
            {
                return l;
            }
        }
    }
    1
}
