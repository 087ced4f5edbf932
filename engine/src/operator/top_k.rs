//! Top-k: `ORDER BY … LIMIT n OFFSET m`, maintained as a window over an ordered bag.
//!
//! State: every input row in order (a `BTreeMap` from row to multiplicity), and the
//! rows currently in the window. After applying a delta, the window is read again from
//! the ordered state and the output delta is the difference between the new window and
//! the old. A delta whose rows all sort after the last row of a full window cannot
//! change the window, and is only recorded: the common case of a large table with a
//! small LIMIT costs one comparison per changed row.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::sync::Arc;

use crate::plan::SortKey;
use crate::row::Row;
use crate::sort::{OrdRow, OrderSpec};
use crate::zset::{Weight, ZSet};

use super::{ENTRY_BYTES, Operator};

/// Keeps the rows at positions `offset .. offset + limit` of an order.
#[derive(Debug)]
pub struct TopK {
    spec: Arc<OrderSpec>,
    limit: Option<u64>,
    offset: u64,
    all: BTreeMap<OrdRow, Weight>,
    /// The visible rows in order, repeated by multiplicity.
    window: Vec<Row>,
}

impl TopK {
    /// A window of `limit` rows after `offset` rows, by `order`.
    pub fn new(order: Vec<SortKey>, limit: Option<u64>, offset: u64) -> TopK {
        TopK { spec: Arc::new(OrderSpec::new(order)), limit, offset, all: BTreeMap::new(), window: Vec::new() }
    }

    fn window_full(&self) -> bool {
        self.limit.is_some_and(|l| self.window.len() as u64 == l)
    }

    fn read_window(&self) -> Vec<Row> {
        let mut out = Vec::new();
        let mut skip = self.offset;
        let cap = self.limit.unwrap_or(u64::MAX);
        for (r, &w) in &self.all {
            let mut w = w.max(0) as u64;
            let skipped = w.min(skip);
            skip -= skipped;
            w -= skipped;
            while w > 0 && (out.len() as u64) < cap {
                out.push(r.row.clone());
                w -= 1;
            }
            if out.len() as u64 >= cap {
                break;
            }
        }
        out
    }
}

impl Operator for TopK {
    fn step(&mut self, input_deltas: &[&ZSet]) -> ZSet {
        let delta = input_deltas[0];
        let mut affects_window = !self.window_full();
        let last = if self.window_full() { self.window.last().cloned() } else { None };
        for (row, w) in delta {
            let key = OrdRow::new(row.clone(), &self.spec);
            if let Some(last) = &last {
                affects_window |= self.spec.compare(row, last) != std::cmp::Ordering::Greater;
            }
            match self.all.entry(key) {
                Entry::Occupied(mut o) => {
                    *o.get_mut() += w;
                    if *o.get() == 0 {
                        o.remove();
                    }
                }
                Entry::Vacant(v) => {
                    v.insert(*w);
                }
            }
        }
        if !affects_window {
            return ZSet::new();
        }
        let new_window = self.read_window();
        let mut out = ZSet::with_capacity(self.window.len() + new_window.len());
        for r in &self.window {
            out.push(r.clone(), -1);
        }
        for r in &new_window {
            out.push(r.clone(), 1);
        }
        self.window = new_window;
        out.consolidated()
    }

    fn current_output(&self) -> Option<ZSet> {
        Some(self.window.iter().map(|r| (r.clone(), 1)).collect::<ZSet>().consolidated())
    }

    fn state_bytes(&self) -> usize {
        // A B-tree entry: the key (row + spec pointer), the weight, and node overhead.
        self.all.len() * (ENTRY_BYTES + std::mem::size_of::<usize>() * 2) + self.window.len() * ENTRY_BYTES
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{row, zset};

    fn key(column: usize, descending: bool) -> SortKey {
        SortKey { column, descending, nulls_first: !descending }
    }

    /// The window computed from scratch.
    fn reference(all: &ZSet, limit: usize, offset: usize) -> ZSet {
        let spec = OrderSpec::new(vec![key(0, true)]);
        let mut rows: Vec<Row> = Vec::new();
        for (r, w) in all.clone().consolidated() {
            rows.extend(std::iter::repeat_n(r, w as usize));
        }
        rows.sort_by(|a, b| spec.compare(a, b));
        rows.into_iter().skip(offset).take(limit).map(|r| (r, 1)).collect::<ZSet>().consolidated()
    }

    #[test]
    fn window_follows_inserts_and_deletes() {
        let mut t = TopK::new(vec![key(0, true)], Some(2), 1);
        let steps = [
            zset! { row![5] => 1, row![3] => 1 },
            zset! { row![9] => 1, row![1] => 1 },
            zset! { row![0] => 1 },
            zset! { row![9] => -1 },
            zset! { row![5] => 1 },
            zset! { row![5] => -2, row![7] => 1, row![1] => -1 },
            zset! { row![3] => -1, row![0] => -1, row![7] => -1 },
        ];
        let (mut all, mut out) = (ZSet::new(), ZSet::new());
        for d in &steps {
            out.extend_from(&t.step(&[d]));
            all.extend_from(d);
            assert_eq!(out.clone().consolidated(), reference(&all, 2, 1), "after {d:?}");
        }
    }
}
