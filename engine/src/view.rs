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

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use hashbrown::HashTable;
use parking_lot::Mutex;

use crate::arrow_out;
use crate::dataflow::Shared;
use crate::error::{Error, Result};
use crate::operator::{SLOT_ORDER_FROM, slot_mask};
use crate::row::Row;
use crate::sort::{OrdRow, OrderSpec};
use crate::types::{Column, DataType};
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
}

#[derive(Debug)]
enum ViewRows {
    /// Rows by their cached hashes, each with its multiplicity.
    Unordered(HashTable<(Row, Weight)>),
    Ordered(BTreeMap<OrdRow, Weight>),
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
    /// An empty view, ordered by `order` if given.
    pub fn new(order: Option<&Arc<OrderSpec>>) -> ViewState {
        let rows = match order {
            Some(_) => ViewRows::Ordered(BTreeMap::new()),
            None => ViewRows::Unordered(HashTable::new()),
        };
        ViewState { rows, len: 0, version: 0, cache: Mutex::new(None), broken: None }
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
            ViewRows::Ordered(map) => {
                for (row, w) in delta {
                    let key = OrdRow::new(row.clone(), order.expect("ordered view has a spec"));
                    match map.entry(key) {
                        std::collections::btree_map::Entry::Occupied(mut o) => {
                            *o.get_mut() += w;
                            if *o.get() == 0 {
                                o.remove();
                            }
                        }
                        std::collections::btree_map::Entry::Vacant(v) => {
                            v.insert(*w);
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
        match &self.rows {
            ViewRows::Unordered(m) => Box::new(m.iter().map(|(r, w)| (r, (*w).max(0) as usize))),
            ViewRows::Ordered(m) => Box::new(m.iter().map(|(r, w)| (&r.row, (*w).max(0) as usize))),
        }
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
        let batch = match &self.rows {
            ViewRows::Unordered(m) => arrow_out::rows_to_batch(
                &info.schema,
                &types,
                positions,
                m.iter().map(|(r, w)| (r, (*w).max(0) as usize)),
                self.len,
            ),
            ViewRows::Ordered(m) => arrow_out::rows_to_batch(
                &info.schema,
                &types,
                positions,
                m.iter().map(|(r, w)| (&r.row, (*w).max(0) as usize)),
                self.len,
            ),
        };
        *cache = Some(batch.clone());
        batch
    }

    /// Approximate heap bytes.
    pub fn state_bytes(&self) -> usize {
        let per_entry = std::mem::size_of::<Row>() + std::mem::size_of::<Weight>();
        match &self.rows {
            ViewRows::Unordered(m) => m.capacity() * (per_entry + 1),
            ViewRows::Ordered(m) => m.len() * (per_entry + 3 * std::mem::size_of::<usize>()),
        }
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
}

impl std::fmt::Debug for View {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("View").field("id", &self.info.id).field("sql", &self.info.sql).finish()
    }
}

impl View {
    /// The view's current rows as one Arrow batch (in ORDER BY order when the query
    /// has one).
    pub fn query(&self) -> Result<RecordBatch> {
        self.with_state(|s| s.batch(&self.info))
    }

    /// The view's current rows as a polars DataFrame (cargo feature `polars`).
    #[cfg(feature = "polars")]
    pub fn query_polars(&self) -> Result<polars_core::frame::DataFrame> {
        crate::polars_out::batch_to_dataframe(&self.query()?)
    }

    /// The view's current rows as engine rows (visible columns only), in order.
    pub fn rows(&self) -> Result<Vec<Row>> {
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

    /// The number of rows (with duplicates).
    pub fn len(&self) -> Result<usize> {
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
