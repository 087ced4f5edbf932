//! Top-k: `ORDER BY … LIMIT n OFFSET m`, maintained as a window over the first rows of
//! an ordered bag.
//!
//! State: a *prefix* of the input in order — every input row that sorts at or before
//! the last row held, with its multiplicity — and the rows currently in the window.
//! A change that sorts after the last row held cannot touch the window and is not
//! recorded, so a large input with a small LIMIT costs memory for the prefix only
//! (`offset + limit` rows plus slack), and most changes cost one comparison.
//!
//! When deletions leave the prefix shorter than the window needs, and rows beyond it
//! exist, the operator asks for its input's whole current contents and takes a new,
//! longer prefix from them (a refill). Each refill doubles the slack, so an input that
//! keeps losing its first rows (a queue drained from the head) pays for refills in
//! proportion to the rows it deletes, not once per few deletions. The prefix is cut
//! back when inserts grow it to twice its length.
//!
//! Without LIMIT the prefix is the whole input.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::sync::Arc;

use crate::plan::SortKey;
use crate::row::Row;
use crate::sort::{OrdRow, OrderSpec};
use crate::zset::{Weight, ZSet};

use super::{ENTRY_BYTES, Operator};

/// The slack a prefix starts with beyond the rows the window needs.
const MIN_SLACK: u64 = 8;

/// Keeps the rows at positions `offset .. offset + limit` of an order.
#[derive(Debug)]
pub struct TopK {
    spec: Arc<OrderSpec>,
    limit: Option<u64>,
    offset: u64,
    /// The first input rows in order, with their multiplicities.
    prefix: BTreeMap<OrdRow, Weight>,
    /// The sum of the prefix's multiplicities.
    prefix_rows: u64,
    /// Whether the prefix is the whole input.
    complete: bool,
    /// Rows kept beyond the window's last position.
    slack: u64,
    /// Set by a step that left the prefix too short: the step's output waits for
    /// [`Operator::refill`].
    starved: bool,
    /// The visible rows in order, repeated by multiplicity.
    window: Vec<Row>,
}

impl TopK {
    /// A window of `limit` rows after `offset` rows, by `order`.
    pub fn new(order: Vec<SortKey>, limit: Option<u64>, offset: u64) -> TopK {
        let slack = limit.map_or(0, |l| offset.saturating_add(l).max(MIN_SLACK));
        TopK {
            spec: Arc::new(OrderSpec::new(order)),
            limit,
            offset,
            prefix: BTreeMap::new(),
            prefix_rows: 0,
            complete: true,
            slack,
            starved: false,
            window: Vec::new(),
        }
    }

    /// Rows the window needs in the prefix: everything up to its last position.
    fn needed(&self) -> Option<u64> {
        self.limit.map(|l| self.offset.saturating_add(l))
    }

    /// Adds `w` copies of `row` to the prefix.
    fn add(&mut self, row: &Row, w: Weight) {
        match self.prefix.entry(OrdRow::new(row.clone(), &self.spec)) {
            Entry::Occupied(mut o) => {
                *o.get_mut() += w;
                if *o.get() == 0 {
                    o.remove();
                }
            }
            Entry::Vacant(v) => {
                v.insert(w);
            }
        }
        self.prefix_rows = self.prefix_rows.wrapping_add_signed(w);
    }

    /// Whether a change to `row` falls inside the prefix.
    fn in_prefix(&self, row: &Row) -> bool {
        self.complete || self.prefix.last_key_value().is_some_and(|(last, _)| self.spec.compare(row, &last.row).is_le())
    }

    /// Drops rows from the end of the prefix while it holds more than `keep` rows
    /// without them.
    fn cut_to(&mut self, keep: u64) {
        while let Some(entry) = self.prefix.last_entry() {
            let w = *entry.get();
            if self.prefix_rows.saturating_sub(w.max(0) as u64) < keep {
                break;
            }
            // A negative entry (mid-delta: a row deleted before its insertion comes)
            // goes too; the insertion then sorts after the prefix and is not recorded.
            entry.remove();
            self.prefix_rows = self.prefix_rows.wrapping_add_signed(-w);
            self.complete = false;
        }
    }

    fn read_window(&self) -> Vec<Row> {
        let mut out = Vec::new();
        let mut skip = self.offset;
        let cap = self.limit.unwrap_or(u64::MAX);
        for (r, &w) in &self.prefix {
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

    /// The change from the window as it was to the window the prefix now gives.
    fn window_delta(&mut self) -> ZSet {
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
}

impl Operator for TopK {
    fn step(&mut self, input_deltas: &[&ZSet]) -> ZSet {
        let delta = input_deltas[0];
        let full_before = self.limit.is_some_and(|l| self.window.len() as u64 == l);
        let last = if full_before { self.window.last().cloned() } else { None };
        let mut affects_window = !full_before;
        // A long delta (a load, a view registered over a loaded table) is cut as it
        // goes, so that the prefix never holds much more than it keeps: rows after its
        // end then cost one comparison each instead of a B-tree insertion.
        let cut_above =
            self.needed().and_then(|n| i64::try_from(n.saturating_add(2 * self.slack).saturating_mul(2)).ok());
        for (row, w) in delta.iter_prefetched() {
            if !self.in_prefix(row) {
                continue;
            }
            if let Some(last) = &last {
                affects_window |= self.spec.compare(row, last).is_le();
            }
            self.add(row, *w);
            if let (Some(above), Some(needed)) = (cut_above, self.needed())
                && (self.prefix_rows as i64) > above
            {
                self.cut_to(needed.saturating_add(self.slack));
            }
        }
        if let Some(needed) = self.needed() {
            if !self.complete && self.prefix_rows < needed {
                self.starved = true;
                return ZSet::new();
            }
            if self.prefix_rows > needed.saturating_add(2 * self.slack) {
                self.cut_to(needed.saturating_add(self.slack));
            }
        }
        if !affects_window {
            return ZSet::new();
        }
        self.window_delta()
    }

    fn starved(&self) -> bool {
        self.starved
    }

    fn may_starve(&self) -> bool {
        true
    }

    fn refill(&mut self, inputs: &[&ZSet]) -> ZSet {
        self.starved = false;
        self.slack = self.slack.saturating_mul(2);
        let keep = self.needed().map_or(u64::MAX, |n| n.saturating_add(self.slack));
        let mut rows: Vec<(OrdRow, Weight)> = inputs[0]
            .clone()
            .consolidated()
            .into_iter()
            .filter(|(_, w)| *w > 0)
            .map(|(r, w)| (OrdRow::new(r, &self.spec), w))
            .collect();
        // Only the first rows matter: find them without sorting the whole input.
        if let Ok(n) = usize::try_from(keep)
            && n < rows.len()
        {
            rows.select_nth_unstable_by(n, |a, b| a.0.cmp(&b.0));
        }
        rows.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        self.prefix.clear();
        self.prefix_rows = 0;
        self.complete = true;
        let mut taken = 0u64;
        for (r, w) in rows {
            if taken >= keep {
                self.complete = false;
                break;
            }
            taken += w as u64;
            self.prefix_rows += w as u64;
            self.prefix.insert(r, w);
        }
        self.window_delta()
    }

    fn current_output(&self) -> Option<ZSet> {
        Some(self.window.iter().map(|r| (r.clone(), 1)).collect::<ZSet>().consolidated())
    }

    fn state_bytes(&self) -> usize {
        // A B-tree entry: the key (row, first value, spec pointer), the weight, and node overhead.
        self.prefix.len() * (std::mem::size_of::<(OrdRow, Weight)>() + std::mem::size_of::<usize>())
            + self.window.len() * ENTRY_BYTES
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

    /// Steps `t` as the graph does: a starved step is finished from the whole input.
    fn drive(t: &mut TopK, delta: &ZSet, all: &ZSet) -> ZSet {
        let out = t.step(&[delta]);
        if t.starved() { t.refill(&[&all.clone().consolidated()]) } else { out }
    }

    #[test]
    fn a_prefix_drained_from_the_head_is_refilled() {
        // Keys 0..400 with duplicates; deletions take the current first rows, so the
        // prefix (window + slack) runs dry again and again; inserts land anywhere.
        let mut t = TopK::new(vec![key(0, true)], Some(3), 2);
        let (mut all, mut out) = (ZSet::new(), ZSet::new());
        let mut seed = 7u64;
        let mut next = |n: u64| {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (seed >> 33) % n
        };
        let mut live: Vec<i64> = Vec::new();
        for round in 0..300 {
            let mut d = ZSet::new();
            for _ in 0..if round == 0 { 400 } else { next(6) } {
                let v = next(400) as i64;
                live.push(v);
                d.push(row![v], 1);
            }
            if round % 3 != 0 {
                live.sort_unstable_by(|a, b| b.cmp(a));
                for v in live.drain(..(next(8) as usize).min(live.len())) {
                    d.push(row![v], -1);
                }
            }
            all.extend_from(&d);
            out.extend_from(&drive(&mut t, &d, &all));
            all = all.consolidated();
            assert_eq!(out.clone().consolidated(), reference(&all, 3, 2), "round {round}");
            assert!(t.prefix_rows < 100 + 2 * t.slack, "the prefix stays bounded");
        }
        assert!(t.slack > MIN_SLACK, "the test refilled the prefix");
    }

    #[test]
    fn long_deltas_are_cut_as_they_go_even_with_deletions_before_insertions() {
        let mut seed = 0x0005_DEEC_E66D_u64;
        let mut next = |n: u64| {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) % n
        };
        let mut t = TopK::new(vec![key(0, true)], Some(4), 3);
        let (mut all, mut out) = (ZSet::new(), ZSet::new());
        let mut live: Vec<i64> = Vec::new();
        for round in 0..40 {
            let mut d = ZSet::new();
            // Rows deleted before their insertion later in the same delta.
            let pending: Vec<i64> = (0..next(20)).map(|_| next(5_000) as i64).collect();
            for v in &pending {
                d.push(row![*v], -1);
            }
            for _ in 0..if round == 0 { 3_000 } else { next(500) } {
                let v = next(5_000) as i64;
                live.push(v);
                d.push(row![v], 1);
            }
            for v in &pending {
                d.push(row![*v], 1);
            }
            // Deletions of live rows, high ones (in the window) among them.
            live.sort_unstable_by(|a, b| b.cmp(a));
            for _ in 0..next(30).min(live.len() as u64) {
                let at = if next(2) == 0 { 0 } else { next(live.len() as u64) as usize };
                d.push(row![live.remove(at)], -1);
            }
            all.extend_from(&d);
            out.extend_from(&drive(&mut t, &d, &all));
            all = all.consolidated();
            assert_eq!(out.clone().consolidated(), reference(&all, 4, 3), "round {round}");
            assert!(t.prefix.len() < 200, "the prefix stays bounded: {}", t.prefix.len());
            assert_eq!(t.prefix_rows, t.prefix.values().sum::<i64>() as u64, "round {round}: the prefix's count");
        }
    }
}
