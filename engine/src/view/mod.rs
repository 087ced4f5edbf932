//! Views: the read-only handle on a query's published result.
//!
//! The writer (see [`crate::database`]) computes each transaction's output deltas
//! without touching what readers see, then *publishes*: under a short write lock it
//! applies every view's delta to that view's rows ([`rows`]). A [`View`] takes the read
//! lock, so a reader sees each view as it was between two whole transactions, never
//! in the middle of one, and waits at most for one publish step.
//!
//! A view handle never writes into the database. A *partial* parameterized view holds
//! only the keys it was asked for: reading a key it lacks asks the writer side, behind
//! the [`KeyRequests`] seam (implemented in [`crate::partial`]), to fill it, and that
//! side lets idle keys go.
//!
//! `query()` returns an Arrow `RecordBatch`, built on first read after a change and
//! cached until the next change, so reading an unchanged view costs a clone of the
//! cached batch (reference counts, no data copied).

mod rows;

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use parking_lot::RwLock;

use crate::arrow_out;
use crate::error::{Error, Result};
use crate::plan::{ParamRole, ParamSpec};
use crate::row::Row;
use crate::sort::OrderSpec;
use crate::types::{Column, DataType};
use crate::value::Value;
pub(crate) use rows::{Published, ViewState};

/// A view's identity within one engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ViewId(pub u32);

/// What never changes about a view.
#[derive(Debug)]
pub(crate) struct ViewInfo {
    pub id: ViewId,
    pub name: Option<String>,
    pub sql: String,
    /// Every output column, the hidden sort columns after the visible ones.
    pub columns: Vec<Column>,
    pub visible: usize,
    /// Where each output column sits in a stored row (a view whose query ends in a
    /// projection of plain columns stores the unprojected rows it shares with its
    /// input, and projects when read).
    pub positions: Vec<usize>,
    pub schema: SchemaRef,
    pub order: Option<Arc<OrderSpec>>,
    /// For a parameterized view: how it is read by key, and where the key sits in a
    /// stored row.
    pub params: Option<Keyed>,
}

/// A parameterized view's reading rules.
#[derive(Debug)]
pub(crate) struct Keyed {
    pub spec: ParamSpec,
    /// Where each key component sits in a stored row.
    pub positions: Vec<usize>,
    /// For a partial view: the writer side that fills the keys it is asked for.
    pub partial: Option<Arc<dyn KeyRequests>>,
}

/// The writer side of a partial view, as its read-only handles see it.
pub(crate) trait KeyRequests: Send + Sync + std::fmt::Debug {
    /// Makes sure `keys` are held (filling the new ones from the state upstream,
    /// which publishes their rows before this returns), notes that they were read,
    /// and lets go of the keys the view's limits say to.
    fn request(&self, keys: &[Row]) -> Result<()>;
    /// How many keys are held.
    fn held(&self) -> usize;
    /// The name of the table of requested keys.
    fn keys_table(&self) -> Option<String>;
}

/// When a partial view lets keys go: those unread for `idle`, and the least recently
/// read beyond `max_keys` or beyond `max_bytes` of rows (estimated).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PartialLimits {
    /// Keys unread this long are evicted.
    pub idle: Option<std::time::Duration>,
    /// At most this many keys are kept.
    pub max_keys: Option<usize>,
    /// At most about this many bytes of rows are kept.
    pub max_bytes: Option<usize>,
}

/// A handle on a registered view. Cheap to clone; `Send + Sync`; reading never blocks
/// on a transaction for longer than its publish step.
#[derive(Clone)]
pub struct View {
    pub(crate) published: Arc<RwLock<Published>>,
    pub(crate) info: Arc<ViewInfo>,
    /// For a handle on one key of a parameterized view: the parameters' values.
    pub(crate) bound: Option<Arc<[Value]>>,
}

impl std::fmt::Debug for View {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("View").field("id", &self.info.id).field("sql", &self.info.sql).finish()
    }
}

impl View {
    /// The view's current rows as one Arrow batch (in ORDER BY order when the query
    /// has one). A parameterized view is read with [`View::query_with`] (or bound to
    /// its values first with [`View::bind`]).
    pub fn query(&self) -> Result<RecordBatch> {
        if let Some(args) = &self.bound {
            return self.query_with(args);
        }
        self.unkeyed()?;
        self.with_state(|s| s.batch(&self.info))
    }

    /// The parameters' names, in positional order (none for a plain view).
    pub fn params(&self) -> Vec<&str> {
        self.info.params.as_ref().map_or_else(Vec::new, |k| k.spec.params.iter().map(|p| p.name.as_str()).collect())
    }

    /// A parameterized view's rows for the parameter values `args` (in positional
    /// order), as one Arrow batch: a lookup, in time proportional to the rows.
    pub fn query_with(&self, args: &[Value]) -> Result<RecordBatch> {
        let types: Vec<DataType> = self.info.columns[..self.info.visible].iter().map(|c| c.data_type).collect();
        let positions = &self.info.positions[..self.info.visible];
        self.keyed_read(args, |rows, len| {
            arrow_out::rows_to_batch(&self.info.schema, &types, positions, rows.iter().map(|(r, n)| (r, *n)), len)
        })
    }

    /// [`View::query_with`] with the values by parameter name.
    pub fn query_named(&self, args: &[(&str, Value)]) -> Result<RecordBatch> {
        self.query_with(&self.by_name(args)?)
    }

    /// A parameterized view's rows for `args`, as engine rows (visible columns only).
    pub fn rows_with(&self, args: &[Value]) -> Result<Vec<Row>> {
        let positions = &self.info.positions[..self.info.visible];
        self.keyed_read(args, |rows, len| {
            let mut out = Vec::with_capacity(len);
            for (r, n) in rows {
                out.extend(std::iter::repeat_n(r.project(positions), n));
            }
            out
        })
    }

    /// The same view bound to the parameter values `args`: its `query()` and `rows()`
    /// read that key. (What an SQL text with literals in place of parameters gives.)
    pub fn bind(&self, args: Vec<Value>) -> Result<View> {
        let keyed = self.keyed()?;
        if args.len() != keyed.spec.params.len() {
            return Err(self.arity_error(keyed, args.len()));
        }
        let args: Vec<Value> =
            keyed.spec.params.iter().zip(args).map(|(p, v)| self.coerce_param(keyed, p, v)).collect::<Result<_>>()?;
        Ok(View { published: Arc::clone(&self.published), info: Arc::clone(&self.info), bound: Some(args.into()) })
    }

    /// `v` as the type of the key component parameter `p` gives, or why it cannot be.
    fn coerce_param(&self, keyed: &Keyed, p: &crate::plan::Param, v: Value) -> Result<Value> {
        let ty = self.info.columns[keyed.spec.key_columns[p.component]].data_type;
        crate::table::coerce(v, ty).map_err(|e| {
            Error::Sql(crate::error::SqlError::new(
                crate::error::SqlErrorKind::Type,
                format!("parameter {} is a {ty}: {e}", p.name),
            ))
        })
    }

    /// The values a bound view reads (None for other views).
    pub fn bound(&self) -> Option<&[Value]> {
        self.bound.as_deref()
    }

    fn keyed(&self) -> Result<&Keyed> {
        self.info.params.as_ref().ok_or_else(|| {
            Error::Sql(crate::error::SqlError::new(
                crate::error::SqlErrorKind::Invalid,
                "this view has no parameters: read it with query()",
            ))
        })
    }

    fn unkeyed(&self) -> Result<()> {
        match &self.info.params {
            None => Ok(()),
            Some(k) => Err(Error::Sql(crate::error::SqlError::new(
                crate::error::SqlErrorKind::Invalid,
                format!(
                    "this view takes parameters ({}): read it with query_with(values) or bind it first",
                    k.spec.params.iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join(", ")
                ),
            ))),
        }
    }

    fn arity_error(&self, keyed: &Keyed, got: usize) -> Error {
        let names: Vec<&str> = keyed.spec.params.iter().map(|p| p.name.as_str()).collect();
        Error::Sql(crate::error::SqlError::new(
            crate::error::SqlErrorKind::Invalid,
            format!("this view takes {} parameters ({}), not {got}", names.len(), names.join(", ")),
        ))
    }

    fn by_name(&self, args: &[(&str, Value)]) -> Result<Vec<Value>> {
        let keyed = self.keyed()?;
        let mut out = Vec::with_capacity(keyed.spec.params.len());
        for p in &keyed.spec.params {
            let v = args.iter().find(|(n, _)| n.eq_ignore_ascii_case(&p.name)).map(|(_, v)| v.clone());
            out.push(v.ok_or_else(|| {
                Error::Sql(crate::error::SqlError::new(
                    crate::error::SqlErrorKind::Invalid,
                    format!("no value for parameter {}", p.name),
                ))
            })?);
        }
        if let Some((n, _)) =
            args.iter().find(|(n, _)| !keyed.spec.params.iter().any(|p| p.name.eq_ignore_ascii_case(n)))
        {
            return Err(Error::Sql(crate::error::SqlError::new(
                crate::error::SqlErrorKind::Invalid,
                format!("this view has no parameter {n} (it has {})", self.params().join(", ")),
            )));
        }
        Ok(out)
    }

    /// The keys `args` name (each component's values, all combinations, without NULL
    /// and without repeats), then `f` on their rows.
    fn keyed_read<T>(&self, args: &[Value], f: impl FnOnce(Vec<(Row, usize)>, usize) -> T) -> Result<T> {
        let keyed = self.keyed()?;
        if args.len() != keyed.spec.params.len() {
            return Err(self.arity_error(keyed, args.len()));
        }
        let components = keyed.spec.key_columns.len();
        let mut per: Vec<Vec<Value>> = vec![Vec::new(); components];
        // Each bound: its value, and whether it is inclusive.
        let mut lower: Option<(Value, bool)> = None;
        let mut upper: Option<(Value, bool)> = None;
        let mut ranged = false;
        for (p, v) in keyed.spec.params.iter().zip(args) {
            let v = self.coerce_param(keyed, p, v.clone())?;
            match p.role {
                ParamRole::Eq => {
                    if !per[p.component].contains(&v) {
                        per[p.component].push(v);
                    }
                }
                ParamRole::Lower { inclusive } => {
                    ranged = true;
                    lower = Some((v, inclusive));
                }
                ParamRole::Upper { inclusive } => {
                    ranged = true;
                    upper = Some((v, inclusive));
                }
            }
        }
        // The range's component is the last; the others give the prefixes.
        let exact = if ranged { components - 1 } else { components };
        let mut keys: Vec<Vec<Value>> = vec![Vec::new()];
        for values in &per[..exact] {
            keys = keys
                .into_iter()
                .flat_map(|k| values.iter().map(move |v| k.iter().cloned().chain([v.clone()]).collect::<Vec<_>>()))
                .collect();
        }
        if ranged {
            // A NULL bound (`x > NULL`) holds for no row, as do NULL components.
            let null_bound =
                lower.as_ref().is_some_and(|(v, _)| v.is_null()) || upper.as_ref().is_some_and(|(v, _)| v.is_null());
            return self.with_state(|s| {
                let mut rows: Vec<(Row, usize)> = Vec::new();
                let mut len = 0;
                for prefix in keys.iter().filter(|k| !null_bound && !k.iter().any(Value::is_null)) {
                    let lo = lower.as_ref().map(|(v, i)| (v, *i));
                    let hi = upper.as_ref().map(|(v, i)| (v, *i));
                    for (group, n) in s.key_range(prefix, lo, hi) {
                        rows.extend(group.iter().map(|(r, n)| (r.clone(), n)));
                        len += n;
                    }
                }
                f(rows, len)
            });
        }
        let keys: Vec<Row> = keys.into_iter().map(Row::new).collect();
        if let Some(partial) = &keyed.partial {
            partial.request(&keys)?;
        }
        self.with_state(|s| {
            let mut rows: Vec<(Row, usize)> = Vec::new();
            let mut len = 0;
            for key in &keys {
                let null = key.iter().any(|v| v.is_null());
                match s.key_rows(key) {
                    Some((group, n)) if !null => {
                        rows.extend(group.iter().map(|(r, n)| (r.clone(), n)));
                        len += n;
                    }
                    _ => {
                        if let Some(empty) = &keyed.spec.empty {
                            let mut values: Vec<Value> =
                                empty.groups.iter().map(|&c| key.get(c).into_owned()).collect();
                            values.extend(empty.calls.iter().cloned());
                            if empty.filter.as_ref().is_none_or(|f| f.eval_truth(&values[..]) == Some(true)) {
                                rows.push((empty.exprs.iter().map(|e| e.eval(&values[..])).collect(), 1));
                                len += 1;
                            }
                        }
                    }
                }
            }
            f(rows, len)
        })
    }

    /// The name of a partial view's table of requested keys.
    pub fn keys_table(&self) -> Option<String> {
        self.info.params.as_ref()?.partial.as_ref()?.keys_table()
    }

    /// How many keys a partial view holds (None for other views).
    pub fn held_keys(&self) -> Option<usize> {
        self.info.params.as_ref()?.partial.as_ref().map(|p| p.held())
    }

    /// The view's current rows as a polars DataFrame (cargo feature `polars`).
    #[cfg(feature = "polars")]
    pub fn query_polars(&self) -> Result<polars_core::frame::DataFrame> {
        crate::polars_out::batch_to_dataframe(&self.query()?)
    }

    /// The view's current rows as engine rows (visible columns only), in order.
    pub fn rows(&self) -> Result<Vec<Row>> {
        if let Some(args) = &self.bound {
            return self.rows_with(args);
        }
        self.unkeyed()?;
        let positions = &self.info.positions[..self.info.visible];
        let identity = positions.iter().enumerate().all(|(i, p)| i == *p);
        self.with_state(|s| {
            let mut out = Vec::with_capacity(s.len());
            for (r, n) in s.rows() {
                let r = if identity && r.len() == positions.len() { r.clone() } else { r.project(positions) };
                out.extend(std::iter::repeat_n(r, n));
            }
            out
        })
    }

    /// The number of rows (with duplicates); for a bound view, of its key.
    pub fn len(&self) -> Result<usize> {
        if let Some(args) = &self.bound {
            return self.keyed_read(args, |_, len| len);
        }
        self.with_state(ViewState::len)
    }

    /// Whether the view has no rows.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// A number that changes whenever the view's rows change.
    pub fn version(&self) -> Result<u64> {
        self.with_state(ViewState::version)
    }

    /// The Arrow schema of [`View::query`]'s batches.
    pub fn schema(&self) -> SchemaRef {
        Arc::clone(&self.info.schema)
    }

    /// The visible columns.
    pub fn columns(&self) -> &[Column] {
        &self.info.columns[..self.info.visible]
    }

    /// The SQL text the view was registered with.
    pub fn sql(&self) -> &str {
        &self.info.sql
    }

    /// The view's name, for views created with a name.
    pub fn name(&self) -> Option<&str> {
        self.info.name.as_deref()
    }

    /// The view's id.
    pub fn id(&self) -> ViewId {
        self.info.id
    }

    fn with_state<T>(&self, f: impl FnOnce(&ViewState) -> T) -> Result<T> {
        let published = self.published.read();
        let state = published.view(self.info.id).ok_or_else(|| {
            Error::Sql(crate::error::SqlError::new(
                crate::error::SqlErrorKind::Catalog,
                format!("view {} was dropped", self.info.name.as_deref().unwrap_or(&self.info.sql)),
            ))
        })?;
        if let Some(e) = &state.broken {
            return Err(e.clone());
        }
        Ok(f(state))
    }
}
