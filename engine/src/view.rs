//! Views: the published, readable result of a query.
//!
//! The writer computes each transaction's output deltas without touching what readers
//! see, then *publishes*: under a short write lock it applies every view's delta to
//! that view's [`ViewState`]. Readers take the read lock, so a reader sees each view as
//! it was between two whole transactions, never in the middle of one, and waits at
//! most for one publish step.
//!
//! `query()` returns an Arrow `RecordBatch`, built on first read after a change and
//! cached until the next change, so reading an unchanged view costs a clone of the
//! cached batch (reference counts, no data copied).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use hashbrown::{HashMap, HashTable};
use parking_lot::Mutex;

use crate::arrow_out;
use crate::dataflow::Shared;
use crate::error::{Error, Result};
use crate::operator::{SLOT_ORDER_FROM, slot_mask};
use crate::plan::{ParamRole, ParamSpec};
use crate::row::Row;
use crate::sort::{OrdRow, OrderSpec};
use crate::types::{Column, DataType};
use crate::value::Value;
use crate::zset::{Weight, ZSet};

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
    /// For a partial view: the keys requested, when each was last read, and the limits.
    pub partial: Option<Mutex<Requested>>,
}

/// The keys a partial view holds.
#[derive(Debug)]
pub(crate) struct Requested {
    pub last_read: HashMap<Row, Instant>,
    pub limits: PartialLimits,
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

#[derive(Debug)]
enum ViewRows {
    /// Rows by their cached hashes, each with its multiplicity.
    Unordered(HashTable<(Row, Weight)>),
    Ordered(BTreeMap<OrdRow, Weight>),
    /// A parameterized view's rows, by key (the key's values, in component order),
    /// each group with its row count.
    Keyed {
        positions: Vec<usize>,
        groups: BTreeMap<Row, (ViewRows, usize)>,
    },
}

impl ViewRows {
    fn flat(order: Option<&Arc<OrderSpec>>) -> ViewRows {
        match order {
            Some(_) => ViewRows::Ordered(BTreeMap::new()),
            None => ViewRows::Unordered(HashTable::new()),
        }
    }

    /// Adds `w` copies of `row` to flat rows.
    fn add(&mut self, row: &Row, w: Weight, order: Option<&Arc<OrderSpec>>) {
        match self {
            ViewRows::Unordered(map) => add_unordered(map, row.hash_value(), row, w),
            ViewRows::Ordered(map) => {
                let key = OrdRow::new(row.clone(), order.expect("ordered view has a spec"));
                match map.entry(key) {
                    std::collections::btree_map::Entry::Occupied(mut o) => {
                        *o.get_mut() += w;
                        if *o.get() == 0 {
                            o.remove();
                        }
                    }
                    std::collections::btree_map::Entry::Vacant(v) => {
                        v.insert(w);
                    }
                }
            }
            ViewRows::Keyed { .. } => unreachable!("groups hold flat rows"),
        }
    }

    fn iter(&self) -> Box<dyn Iterator<Item = (&Row, usize)> + '_> {
        match self {
            ViewRows::Unordered(m) => Box::new(m.iter().map(|(r, w)| (r, (*w).max(0) as usize))),
            ViewRows::Ordered(m) => Box::new(m.iter().map(|(r, w)| (&r.row, (*w).max(0) as usize))),
            ViewRows::Keyed { groups, .. } => Box::new(groups.values().flat_map(|(g, _)| g.iter())),
        }
    }
}

/// A view's current rows, as readers see them.
#[derive(Debug)]
pub(crate) struct ViewState {
    rows: ViewRows,
    /// Rows counted with multiplicity.
    len: usize,
    /// Bumped by every publish that changes the view.
    version: u64,
    /// The Arrow form of the current rows, once built.
    cache: Mutex<Option<RecordBatch>>,
    /// Set when the view can no longer be maintained (its table was dropped).
    pub broken: Option<Error>,
}

impl ViewState {
    /// An empty view, ordered by `order` if given, grouped by the key at `key` (the
    /// positions of its components in a stored row) for a parameterized view.
    pub fn new(order: Option<&Arc<OrderSpec>>, key: Option<Vec<usize>>) -> ViewState {
        let rows = match key {
            Some(positions) => ViewRows::Keyed { positions, groups: BTreeMap::new() },
            None => ViewRows::flat(order),
        };
        ViewState { rows, len: 0, version: 0, cache: Mutex::new(None), broken: None }
    }

    /// The rows of one key of a parameterized view, with their count.
    fn key_rows(&self, key: &Row) -> Option<(&ViewRows, usize)> {
        match &self.rows {
            ViewRows::Keyed { groups, .. } => groups.get(key).map(|(g, n)| (g, *n)),
            _ => None,
        }
    }

    /// The groups of the keys that start with `prefix` and whose next component lies
    /// within the bounds (a NULL component never does): a scan of just those keys.
    fn key_range(
        &self,
        prefix: &[Value],
        lower: Option<(&Value, bool)>,
        upper: Option<(&Value, bool)>,
    ) -> Vec<(&ViewRows, usize)> {
        use std::ops::Bound;
        let ViewRows::Keyed { groups, .. } = &self.rows else { return Vec::new() };
        let at = prefix.len();
        let with = |v: &Value| Row::new(prefix.iter().cloned().chain([v.clone()]).collect());
        let start = match lower {
            Some((v, true)) => Bound::Included(with(v)),
            Some((v, false)) => Bound::Excluded(with(v)),
            // Past the NULLs, which sort first and satisfy no bound.
            None => Bound::Excluded(with(&Value::Null)),
        };
        let mut out = Vec::new();
        for (key, (g, n)) in groups.range((start, Bound::Unbounded)) {
            if key.len() <= at || key.iter().take(at).zip(prefix).any(|(a, b)| *a != *b) {
                break;
            }
            let v = key.get(at);
            if v.is_null() {
                continue;
            }
            if let Some((hi, inclusive)) = upper
                && (if inclusive { &*v > hi } else { &*v >= hi })
            {
                break;
            }
            out.push((g, *n));
        }
        out
    }

    /// Applies a delta. `order` must be the spec the view was created with.
    pub fn apply(&mut self, delta: &ZSet, order: Option<&Arc<OrderSpec>>) {
        if delta.is_empty() {
            return;
        }
        match &mut self.rows {
            ViewRows::Unordered(map) if delta.len() < SLOT_ORDER_FROM => {
                delta.iter().for_each(|(row, w)| add_unordered(map, row.hash_value(), row, *w));
            }
            ViewRows::Unordered(map) => {
                // In the order of the rows' slots in the table: one pass over it.
                let mask = slot_mask(map.len() + delta.len());
                let mut rows: Vec<(u64, &Row, Weight)> = delta.iter().map(|(r, w)| (r.hash_value(), r, *w)).collect();
                rows.sort_unstable_by_key(|&(h, ..)| h & mask);
                rows.into_iter().for_each(|(hash, row, w)| add_unordered(map, hash, row, w));
            }
            rows @ ViewRows::Ordered(_) => {
                for (row, w) in delta {
                    rows.add(row, *w, order);
                }
            }
            ViewRows::Keyed { positions, groups } => {
                for (row, w) in delta {
                    match groups.entry(row.project(positions)) {
                        std::collections::btree_map::Entry::Occupied(mut o) => {
                            let (g, n) = o.get_mut();
                            g.add(row, *w, order);
                            *n = (*n as i64 + w) as usize;
                            if *n == 0 {
                                o.remove();
                            }
                        }
                        std::collections::btree_map::Entry::Vacant(v) => {
                            let (g, n) = v.insert((ViewRows::flat(order), 0));
                            g.add(row, *w, order);
                            *n = (*n as i64 + w) as usize;
                        }
                    }
                }
            }
        }
        self.len = (self.len as i64 + delta.iter().map(|(_, w)| *w).sum::<Weight>()) as usize;
        self.version += 1;
        *self.cache.get_mut() = None;
    }

    /// Every row with its multiplicity, in the view's order.
    pub fn rows(&self) -> Box<dyn Iterator<Item = (&Row, usize)> + '_> {
        self.rows.iter()
    }

    /// Rows counted with multiplicity.
    pub fn len(&self) -> usize {
        self.len
    }

    /// The version.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The rows as Arrow, from the cache when unchanged since the last build.
    pub fn batch(&self, info: &ViewInfo) -> RecordBatch {
        let mut cache = self.cache.lock();
        if let Some(b) = &*cache {
            return b.clone();
        }
        let types: Vec<DataType> = info.columns[..info.visible].iter().map(|c| c.data_type).collect();
        let positions = &info.positions[..info.visible];
        let batch = arrow_out::rows_to_batch(&info.schema, &types, positions, self.rows.iter(), self.len);
        *cache = Some(batch.clone());
        batch
    }

    /// Approximate heap bytes.
    pub fn state_bytes(&self) -> usize {
        let per_entry = std::mem::size_of::<Row>() + std::mem::size_of::<Weight>();
        fn bytes(rows: &ViewRows, per_entry: usize) -> usize {
            match rows {
                ViewRows::Unordered(m) => m.capacity() * (per_entry + 1),
                ViewRows::Ordered(m) => m.len() * (per_entry + 3 * std::mem::size_of::<usize>()),
                ViewRows::Keyed { groups, .. } => {
                    groups.iter().map(|(k, (g, _))| 64 + k.len() * 9 + bytes(g, per_entry)).sum()
                }
            }
        }
        bytes(&self.rows, per_entry)
    }
}

/// Adds `w` copies of `row` (whose hash is `hash`) to an unordered view's rows.
fn add_unordered(map: &mut HashTable<(Row, Weight)>, hash: u64, row: &Row, w: Weight) {
    match map.find_entry(hash, |(r, _)| r == row) {
        Ok(mut o) => {
            o.get_mut().1 += w;
            if o.get().1 == 0 {
                o.remove();
            }
        }
        Err(_) => {
            map.insert_unique(hash, (row.clone(), w), |(r, _)| r.hash_value());
        }
    }
}

/// A handle on a registered view. Cheap to clone; `Send + Sync`; reading never blocks
/// on a transaction for longer than its publish step.
#[derive(Clone)]
pub struct View {
    pub(crate) shared: Arc<Shared>,
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
        Ok(View { shared: Arc::clone(&self.shared), info: Arc::clone(&self.info), bound: Some(args.into()) })
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
        self.request(keyed, &keys)?;
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

    /// For a partial view: makes sure `keys` are held (requesting the new ones, which
    /// fills them from the state upstream), notes that they were read, and lets go of
    /// the keys the limits say to.
    fn request(&self, keyed: &Keyed, keys: &[Row]) -> Result<()> {
        let (Some(partial), Some(table)) = (&keyed.partial, keyed.spec.keys_table) else { return Ok(()) };
        let mut req = partial.lock();
        let now = Instant::now();
        let keys: Vec<&Row> = keys.iter().filter(|k| !k.iter().any(|v| v.is_null())).collect();
        let new: Vec<Row> = keys.iter().filter(|k| !req.last_read.contains_key(**k)).map(|k| (*k).clone()).collect();
        for k in &keys {
            req.last_read.insert((*k).clone(), now);
        }
        let mut victims: Vec<Row> = Vec::new();
        let limits = req.limits;
        if let Some(idle) = limits.idle {
            victims
                .extend(req.last_read.iter().filter(|(_, t)| now.duration_since(**t) > idle).map(|(k, _)| k.clone()));
        }
        let mut keep = limits.max_keys.unwrap_or(usize::MAX);
        if let Some(bytes) = limits.max_bytes {
            let held = req.last_read.len().max(1);
            let rows = self.with_state(ViewState::len).unwrap_or(0) + new.len();
            let row_bytes = 32 + 9 * self.info.columns.len();
            let per_key = (rows * row_bytes / held).max(1);
            keep = keep.min(bytes / per_key).max(keys.len());
        }
        if req.last_read.len() - victims.len() > keep {
            let mut by_age: Vec<(&Row, &Instant)> =
                req.last_read.iter().filter(|(k, _)| !victims.contains(k)).collect();
            by_age.sort_by_key(|(_, t)| **t);
            let extra = req.last_read.len() - victims.len() - keep;
            victims.extend(by_age.into_iter().filter(|(k, _)| !keys.contains(k)).take(extra).map(|(k, _)| k.clone()));
        }
        victims.retain(|v| !keys.contains(&v));
        for v in &victims {
            req.last_read.remove(v);
        }
        if new.is_empty() && victims.is_empty() {
            return Ok(());
        }
        let mut changes: Vec<crate::change::Change> = new
            .iter()
            .filter(|k| !victims.contains(k))
            .map(|k| crate::change::Change::insert(table, k.to_vec()))
            .collect();
        changes.extend(victims.iter().map(|k| crate::change::Change::delete(table, k.to_vec())));
        let applied = crate::dataflow::Dataflow::from_shared(Arc::clone(&self.shared)).apply(changes);
        if applied.is_err() {
            // Nothing changed: the bookkeeping goes back to what the table holds.
            for k in &new {
                req.last_read.remove(k);
            }
            for k in victims {
                req.last_read.insert(k, now);
            }
        }
        applied
    }

    /// The name of a partial view's table of requested keys.
    pub fn keys_table(&self) -> Option<String> {
        let table = self.info.params.as_ref()?.spec.keys_table?;
        crate::dataflow::Dataflow::from_shared(Arc::clone(&self.shared)).table_name(table).ok()
    }

    /// How many keys a partial view holds (None for other views).
    pub fn held_keys(&self) -> Option<usize> {
        self.info.params.as_ref()?.partial.as_ref().map(|p| p.lock().last_read.len())
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
        let published = self.shared.published.read();
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
