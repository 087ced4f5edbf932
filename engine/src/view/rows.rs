//! A view's rows as readers see them, and the published state of every view.
//!
//! The writer builds each transaction's view deltas apart and then applies them here
//! in one publish step, under the write lock of [`Published`]; [`super::View`] handles
//! read under its read lock. An unordered view keeps its rows in a hash table by the
//! row's cached hash, an ordered one in a B-tree by its ORDER BY key, and a
//! parameterized one groups them by key so that reading one key is one lookup.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::RecordBatch;
use hashbrown::HashTable;
use parking_lot::Mutex;

use super::{ViewId, ViewInfo};
use crate::arrow_out;
use crate::error::Error;
use crate::operator::{SLOT_ORDER_FROM, slot_mask};
use crate::probe_ahead::prefetch_probe;
use crate::row::{PREFETCH_AHEAD, Row};
use crate::sort::{OrdRow, OrderSpec};
use crate::types::DataType;
use crate::value::Value;
use crate::zset::{Weight, ZSet};

/// What readers see: every view's current rows (None where a view was dropped).
#[derive(Debug, Default)]
pub(crate) struct Published {
    pub views: Vec<Option<ViewState>>,
}

impl Published {
    /// The state of view `id`, unless it was dropped.
    pub fn view(&self, id: ViewId) -> Option<&ViewState> {
        self.views.get(id.0 as usize).and_then(Option::as_ref)
    }
}

#[derive(Debug)]
pub(super) enum ViewRows {
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
            ViewRows::Unordered(map) => add_unordered(map, row.hash_value(), row.clone(), w),
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

    pub(super) fn iter(&self) -> Box<dyn Iterator<Item = (&Row, usize)> + '_> {
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
    pub(super) fn key_rows(&self, key: &Row) -> Option<(&ViewRows, usize)> {
        match &self.rows {
            ViewRows::Keyed { groups, .. } => groups.get(key).map(|(g, n)| (g, *n)),
            _ => None,
        }
    }

    /// The groups of the keys that start with `prefix` and whose next component lies
    /// within the bounds (a NULL component never does): a scan of just those keys.
    pub(super) fn key_range(
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

    /// Applies a delta it may keep (a view's first rows): a large one's rows move
    /// into the view instead of being counted again, and are not reached once more
    /// to give the delta's counts back.
    pub fn apply_owned(&mut self, delta: ZSet, order: Option<&Arc<OrderSpec>>) {
        let ViewRows::Unordered(map) = &mut self.rows else { return self.apply(&delta, order) };
        if delta.len() < SLOT_ORDER_FROM {
            return self.apply(&delta, order);
        }
        let hashes: Vec<u64> = delta.iter_prefetched().map(|(r, _)| r.hash_value()).collect();
        let added: Weight = delta.iter().map(|(_, w)| *w).sum();
        add_unordered_in_slot_order(map, delta.into_iter().zip(hashes).map(|((r, w), h)| (h, r, w)).collect());
        self.len = (self.len as i64 + added) as usize;
        self.version += 1;
        *self.cache.get_mut() = None;
    }

    /// Applies a delta. `order` must be the spec the view was created with.
    pub fn apply(&mut self, delta: &ZSet, order: Option<&Arc<OrderSpec>>) {
        if delta.is_empty() {
            return;
        }
        match &mut self.rows {
            ViewRows::Unordered(map) if delta.len() < SLOT_ORDER_FROM => {
                // A few rows: every slot asked for first, so that their misses overlap.
                delta.iter().for_each(|(row, _)| prefetch_probe(map, row.hash_value()));
                delta.iter().for_each(|(row, w)| add_unordered(map, row.hash_value(), row.clone(), *w));
            }
            ViewRows::Unordered(map) => {
                // Each row's handle is taken while the row is in cache for its hash.
                let rows = delta.iter_prefetched().map(|(r, w)| (r.hash_value(), r.clone(), *w)).collect();
                add_unordered_in_slot_order(map, rows);
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

/// Adds many rows (each with its hash and multiplicity) to an unordered view's rows,
/// in the order of their slots in the table: one pass over it, in a table grown once
/// (a view's first rows are all inserts).
fn add_unordered_in_slot_order(map: &mut HashTable<(Row, Weight)>, mut rows: Vec<(u64, Row, Weight)>) {
    map.reserve(rows.len(), |(r, _)| r.hash_value());
    let mask = slot_mask(map.len() + rows.len());
    rows.sort_unstable_by_key(|&(h, ..)| h & mask);
    // In slot order the lookups of a long delta walk the table; a short one's (a
    // hundred rows in a view of a million) are far apart, and wait on memory
    // together when their slots are asked for a few rows ahead.
    rows.iter().take(PREFETCH_AHEAD).for_each(|&(h, ..)| prefetch_probe(map, h));
    let mut rows = rows.into_iter();
    while let Some((hash, row, w)) = rows.next() {
        if let Some(&(h, ..)) = rows.as_slice().get(PREFETCH_AHEAD - 1) {
            prefetch_probe(map, h);
        }
        add_unordered(map, hash, row, w);
    }
}

/// Adds `w` copies of `row` (whose hash is `hash`) to an unordered view's rows.
fn add_unordered(map: &mut HashTable<(Row, Weight)>, hash: u64, row: Row, w: Weight) {
    match map.find_entry(hash, |(r, _)| *r == row) {
        Ok(mut o) => {
            o.get_mut().1 += w;
            if o.get().1 == 0 {
                o.remove();
            }
        }
        Err(_) => {
            map.insert_unique(hash, (row, w), |(r, _)| r.hash_value());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::row;

    fn contents(state: &ViewState) -> Vec<(Row, usize)> {
        let mut rows: Vec<(Row, usize)> = state.rows().map(|(r, n)| (r.clone(), n)).collect();
        rows.sort();
        rows
    }

    /// A delta given by value ends as the same delta lent: the same rows and counts,
    /// long deltas (moved in slot order) and short ones alike.
    #[test]
    fn owned_deltas_apply_as_lent_ones() {
        let mut next = crate::operator::xorshift(0x2545_F491_4F6C_DD1D);
        let (mut lent, mut owned) = (ViewState::new(None, None), ViewState::new(None, None));
        for round in 0..50 {
            let len = if round % 2 == 0 { next(8) } else { SLOT_ORDER_FROM as u64 + next(200) };
            // Inserts of a few distinct rows (so some repeat), and some deletes of
            // rows held.
            let mut delta: Vec<(Row, Weight)> = (0..len).map(|_| (row![next(60) as i64], 1 + next(2) as i64)).collect();
            delta.extend(contents(&lent).into_iter().filter(|_| next(4) == 0).map(|(r, n)| (r, -(n as i64))));
            let delta: ZSet = delta.into_iter().collect();
            lent.apply(&delta, None);
            owned.apply_owned(delta, None);
            assert_eq!(contents(&owned), contents(&lent), "round {round}");
            assert_eq!((owned.len(), owned.version()), (lent.len(), lent.version()), "round {round}");
        }
    }
}
