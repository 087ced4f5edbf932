//! GROUP BY with aggregates. State: per group, its row count and one accumulator per
//! aggregate (see the accumulator module for how each stays exact under deletion).
//!
//! Rule: for each group touched by the input delta, remember the output row it had
//! before, apply the delta's rows to its accumulators, and emit −old +new when they
//! differ. A group whose rows all go away is dropped (its row retracted); it comes back
//! like a new group when rows return.
//!
//! Without GROUP BY there is exactly one group, which exists even over no rows (SQL:
//! `SELECT count(*) FROM empty` is one row, 0): its row is emitted on the first step
//! and afterwards only ever replaced.
//!
//! Groups live in [`SHARDS`] tables, by three bits of their keys' hashes: a large
//! delta is split by shard and the shards are updated on the worker threads at once
//! (see [`crate::workers`]). The number is fixed, so that what a step emits, and in
//! which order, does not depend on the number of threads.
//!
//! A shard with few groups (they fit in cache) takes its rows in delta order, each
//! looked up where it lies; a shard with many takes them sorted by slot, so that a
//! large delta walks its table from one end to the other instead of missing the cache
//! on every row (see [`add_runs`]). A dashboard's `GROUP BY region, category` over a
//! million joined rows is the first kind; a `GROUP BY customer_id` the second.

use std::hash::BuildHasher;

use hashbrown::hash_table::Entry as Slot;
use hashbrown::{DefaultHashBuilder, HashTable};
use smallvec::SmallVec;

use crate::expr::Expr;
use crate::plan::AggregateCall;
use crate::row::{Columns, Row};
use crate::value::Value;
use crate::zset::{Weight, ZSet};

use super::Operator;
use super::accumulator::Accumulator;
use super::index::Key;
use crate::workers::{self, SHARDS, shard_of};

/// A group's accumulators: up to two inline (a count and a sum, the common case), so
/// that reaching a group's state costs one cache miss, not two.
type Accumulators = SmallVec<[Accumulator; 2]>;

#[derive(Debug, Clone)]
struct Group {
    rows: Weight,
    accumulators: Accumulators,
    /// The row the group last emitted (grouped aggregation only): retracting it
    /// retracts the very row downstream holds, with its hash already known, so a
    /// change to the group builds one row, not two.
    shown: Option<Row>,
    /// Whether the step under way has added rows to the group (see [`add_in_order`]).
    touched: bool,
}

impl Group {
    /// Adds `w` copies of `row` to the group.
    #[inline]
    fn add<R: Columns + ?Sized>(&mut self, calls: &[AggregateCall], row: &R, w: Weight) {
        self.rows += w;
        for (call, acc) in calls.iter().zip(self.accumulators.iter_mut()) {
            match &call.arg {
                None => acc.update(&Value::Bool(true), w),
                Some(arg) => acc.update(&arg.eval(row), w),
            }
        }
    }
}

impl Group {
    /// Ends a run of additions (see [`Accumulator::settle`]).
    fn settle(&mut self) {
        self.accumulators.iter_mut().for_each(Accumulator::settle);
    }
}

fn new_group(calls: &[AggregateCall]) -> Group {
    Group { rows: 0, accumulators: calls.iter().map(Accumulator::new).collect(), shown: None, touched: false }
}

/// A delta's keys are computed on the worker threads from this many rows on.
const SPLIT_FROM: usize = 256;

/// Up to how many groups a shard takes its rows in delta order (see the module docs):
/// a few hundred kilobytes of groups, which stay in cache.
const FEW_GROUPS: usize = 2048;

/// A delta row: its key's hash and its place in the delta (also the last tie-break of
/// the sort, so that a group's rows reach its accumulators — a float sum — in the
/// delta's order, whichever path and however many threads, without a stable sort's
/// cost). Sixteen bytes: the key is computed again from the row when its group is
/// looked up, rather than carried through the split and the sort.
#[derive(Debug, Clone, Copy)]
struct Entry {
    hash: u64,
    at: u32,
}

/// A group and its key, as a shard holds them.
type Held = (Key, Group);

/// Grouped aggregation.
#[derive(Debug)]
pub struct Aggregate {
    group_by: Vec<Expr>,
    calls: Vec<AggregateCall>,
    /// The hasher every shard uses (so that a key's hash picks its shard and its slot).
    hasher: DefaultHashBuilder,
    shards: Vec<HashTable<Held>>,
    /// No GROUP BY: one group that always exists.
    global: bool,
    /// For the global group: whether its row has been emitted.
    started: bool,
}

impl Aggregate {
    /// Aggregates `calls` per distinct value of `group_by`.
    pub fn new(group_by: Vec<Expr>, calls: Vec<AggregateCall>) -> Aggregate {
        let global = group_by.is_empty();
        let hasher = DefaultHashBuilder::default();
        let shards = (0..SHARDS).map(|_| HashTable::new()).collect();
        Aggregate { group_by, calls, hasher, shards, global, started: false }
    }

    /// [`Operator::step`] over `delta`'s rows (see [`Input`]).
    pub(crate) fn step_rows<D: Input + ?Sized>(&mut self, delta: &D) -> ZSet {
        let calls = &self.calls;

        if self.global {
            let started = std::mem::replace(&mut self.started, true);
            let empty = Key::empty();
            let hash = self.hasher.hash_one(&empty);
            let (_, group) = self.shards[0]
                .entry(hash, |(k, _)| *k == empty, |(k, _)| self.hasher.hash_one(k))
                .or_insert_with(|| (Key::empty(), new_group(calls)))
                .into_mut();
            let before = started.then(|| output(calls, &empty, group));
            (0..delta.len()).for_each(|i| group.add(calls, delta.row(i), delta.weight(i)));
            group.settle();
            let after = output(calls, &empty, group);
            let mut out = ZSet::new();
            push_change(&mut out, before, Some(after));
            return out;
        }
        assert!(u32::try_from(delta.len()).is_ok(), "a delta of fewer than 2^32 rows");
        let rows = delta;
        let (mut entries, starts) = self.split(rows);
        let step = StepOf { calls, group_by: &self.group_by, hasher: &self.hasher, delta: rows };
        // Each shard with its rows (slices of one vector).
        let mut work: Vec<(&mut HashTable<Held>, &mut [Entry])> = Vec::with_capacity(SHARDS.min(rows.len()));
        let mut rest = entries.as_mut_slice();
        for (s, groups) in self.shards.iter_mut().enumerate() {
            let (part, after) = std::mem::take(&mut rest).split_at_mut(starts[s + 1] - starts[s]);
            rest = after;
            if !part.is_empty() {
                work.push((groups, part));
            }
        }
        // One shard's work after another, or on the worker threads at once: the same
        // changes in the same order (shard by shard).
        let mut out = ZSet::with_capacity(rows.len().min(1024) * 2);
        if rows.len() >= SPLIT_FROM && workers::in_parallel() {
            let parts = workers::each(work, |(groups, part)| {
                let mut out = ZSet::with_capacity(part.len().min(1024) * 2);
                add_part(step, groups, part, &mut out, &mut Vec::new());
                out
            });
            parts.into_iter().for_each(|part| out.append(part));
        } else {
            let mut touched = Vec::new();
            for (groups, part) in work {
                add_part(step, groups, part, &mut out, &mut touched);
            }
        }
        out
    }

    /// A group as [`Operator::save`] wrote it.
    fn load_group(&self, row: &Row) -> Option<(Key, Group)> {
        let width = self.group_by.len();
        let mut values = row.iter().map(|v| v.into_owned());
        let key_values: Vec<Value> = values.by_ref().take(width).collect();
        if key_values.len() != width {
            return None;
        }
        let Some(Value::Int(rows)) = values.next() else { return None };
        let accumulators =
            (0..self.calls.len()).map(|_| Accumulator::load(&mut values)).collect::<Option<Accumulators>>()?;
        if values.next().is_some() || (!self.global && rows <= 0) {
            return None;
        }
        let key = Key::from_values(key_values);
        let mut group = Group { rows, accumulators, shown: None, touched: false };
        if !self.global {
            group.shown = Some(output(&self.calls, &key, &group));
        }
        Some((key, group))
    }

    /// The delta's rows by shard, each shard's in delta order, and where each shard's
    /// rows start (one vector: a step of a few rows allocates it alone); the keys are
    /// computed in chunks on the worker threads when the delta is long.
    fn split<D: Input + ?Sized>(&self, rows: &D) -> (Vec<Entry>, [usize; SHARDS + 1]) {
        let (group_by, hasher) = (&self.group_by, &self.hasher);
        let entry = |i: usize| {
            rows.prefetch(i + crate::row::PREFETCH_AHEAD);
            Entry { hash: hasher.hash_one(Key::eval(group_by, rows.row(i))), at: i as u32 }
        };
        let mut starts = [0; SHARDS + 1];
        if rows.len() < SPLIT_FROM || !workers::in_parallel() {
            let entries: Vec<Entry> = (0..rows.len()).map(entry).collect();
            let mut counts = [0usize; SHARDS];
            entries.iter().for_each(|e| counts[shard_of(e.hash)] += 1);
            for s in 0..SHARDS {
                starts[s + 1] = starts[s] + counts[s];
            }
            if entries.len() < SORT_BELOW {
                let mut entries = entries;
                entries.sort_unstable_by_key(|e| (shard_of(e.hash), e.at));
                return (entries, starts);
            }
            // Scattered by shard, in delta order within each.
            let mut next = starts;
            let mut by_shard = vec![Entry { hash: 0, at: 0 }; entries.len()];
            for e in entries {
                let s = shard_of(e.hash);
                by_shard[next[s]] = e;
                next[s] += 1;
            }
            return (by_shard, starts);
        }
        let chunks = workers::chunked(rows.len(), workers::Cost::Row, |range: std::ops::Range<usize>| {
            let mut parts: Vec<Vec<Entry>> = (0..SHARDS).map(|_| Vec::new()).collect();
            for i in range {
                let e = entry(i);
                parts[shard_of(e.hash)].push(e);
            }
            parts
        });
        let mut entries = Vec::with_capacity(rows.len());
        for s in 0..SHARDS {
            for chunk in &chunks {
                entries.extend_from_slice(&chunk[s]);
            }
            starts[s + 1] = entries.len();
        }
        (entries, starts)
    }
}

/// Below this many rows a delta's entries are put in shard order by a sort, from it on
/// by a pass that scatters them.
const SORT_BELOW: usize = 64;

/// What every shard's part of a step reads: the aggregate's definition and the delta.
struct StepOf<'a, D: ?Sized> {
    calls: &'a [AggregateCall],
    group_by: &'a [Expr],
    hasher: &'a DefaultHashBuilder,
    delta: &'a D,
}

impl<D: ?Sized> Clone for StepOf<'_, D> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<D: ?Sized> Copy for StepOf<'_, D> {}

/// A delta as an aggregate reads it: rows, or rows of only the values it reads (a
/// join fused with the aggregate above it emits those, see
/// [`super::join_aggregate`]), each with its weight.
pub(crate) trait Input: Sync {
    type Row: Columns + ?Sized;
    /// The number of rows.
    fn len(&self) -> usize;
    /// Row `i`.
    fn row(&self, i: usize) -> &Self::Row;
    /// Row `i`'s weight.
    fn weight(&self, i: usize) -> Weight;
    /// Asks for row `i`'s memory ahead of reading it, if there is such a row.
    fn prefetch(&self, _i: usize) {}
}

impl Input for [(Row, Weight)] {
    type Row = Row;

    #[inline]
    fn len(&self) -> usize {
        <[_]>::len(self)
    }

    #[inline]
    fn row(&self, i: usize) -> &Row {
        &self[i].0
    }

    #[inline]
    fn weight(&self, i: usize) -> Weight {
        self[i].1
    }

    #[inline]
    fn prefetch(&self, i: usize) {
        if let Some((row, _)) = self.get(i) {
            row.prefetch();
        }
    }
}

/// Rows of `width` values each, laid end to end (no allocation per row), with their
/// weights.
#[derive(Debug, Default)]
pub(crate) struct Flat {
    width: usize,
    values: Vec<Value>,
    weights: Vec<Weight>,
}

impl Flat {
    /// No rows yet, of `width` values each, with room for `rows`.
    pub fn with_capacity(width: usize, rows: usize) -> Flat {
        Flat { width, values: Vec::with_capacity(width * rows), weights: Vec::with_capacity(rows) }
    }

    /// Adds a row of the `width` values `values` yields, with its weight.
    #[inline]
    pub fn push(&mut self, values: impl Iterator<Item = Value>, w: Weight) {
        self.values.extend(values);
        self.weights.push(w);
        debug_assert_eq!(self.values.len(), self.weights.len() * self.width);
    }

    /// Drops the rows, keeping the room for the next step's unless it is more than
    /// [`crate::zset::KEPT_ENTRIES`] rows' (a big transaction's is freed).
    pub fn clear_for_reuse(&mut self) {
        if self.weights.capacity() > crate::zset::KEPT_ENTRIES {
            *self = Flat::with_capacity(self.width, 0);
        } else {
            self.values.clear();
            self.weights.clear();
        }
    }

    /// Appends `other`'s rows.
    pub fn append(&mut self, mut other: Flat) {
        if self.weights.is_empty() {
            *self = other;
        } else {
            self.values.append(&mut other.values);
            self.weights.append(&mut other.weights);
        }
    }
}

impl Input for Flat {
    type Row = [Value];

    #[inline]
    fn len(&self) -> usize {
        self.weights.len()
    }

    #[inline]
    fn row(&self, i: usize) -> &[Value] {
        &self.values[i * self.width..(i + 1) * self.width]
    }

    #[inline]
    fn weight(&self, i: usize) -> Weight {
        self.weights[i]
    }
}

/// Adds the rows of the delta that `part` names (one shard's rows, in delta order) to
/// that shard's `groups`, pushing each changed group's −old +new to `out`: in delta
/// order while the groups are few, the rest sorted by slot; a group that takes rows
/// both ways is pushed once. `touched` is scratch space.
fn add_part<D: Input + ?Sized>(
    step: StepOf<'_, D>,
    groups: &mut HashTable<Held>,
    part: &mut [Entry],
    out: &mut ZSet,
    touched: &mut Vec<Entry>,
) {
    let StepOf { calls, group_by, delta, .. } = step;
    touched.clear();
    let done = if groups.len() < FEW_GROUPS { add_in_order(step, groups, part, touched) } else { 0 };
    let rest = &mut part[done..];
    if !rest.is_empty() {
        let mask = super::slot_mask(groups.len() + rest.len());
        rest.sort_unstable_by_key(|e| (e.hash & mask, e.hash, e.at));
        add_runs(step, groups, rest, out);
    }
    for e in touched.iter() {
        let row = delta.row(e.at as usize);
        // Gone, or pushed already, if its sorted rows emptied or changed it.
        if let Ok(mut o) = groups.find_entry(e.hash, holds(group_by, row))
            && o.get().1.touched
        {
            let (key, group) = o.get_mut();
            group.touched = false;
            group.settle();
            push_group_change(out, calls, key, group);
            if group.rows == 0 {
                o.remove();
            }
        }
    }
}

/// Whether `held` is the group of `row`'s key.
#[inline]
fn holds<'a, R: Columns + ?Sized>(group_by: &'a [Expr], row: &'a R) -> impl Fn(&Held) -> bool + 'a {
    move |(key, _)| group_by.iter().zip(key.values()).all(|(g, v)| *g.eval_cow(row) == *v)
}

/// Pushes −old +new for a group whose rows changed, unless its row is the same.
fn push_group_change(out: &mut ZSet, calls: &[AggregateCall], key: &Key, group: &mut Group) {
    let after = (group.rows > 0).then(|| output(calls, key, group));
    if after != group.shown {
        let before = std::mem::replace(&mut group.shown, after.clone());
        push_replacement(out, before, after);
    }
}

/// Adds the rows `part` names to their groups in delta order, each looked up where it
/// lies, until the shard holds [`FEW_GROUPS`]. Returns how many rows it took, and
/// pushes to `touched` the first row of each group it touched, in the order first
/// touched: their changes are pushed once the shard's rows are all in (a group
/// emptied stays until then).
fn add_in_order<D: Input + ?Sized>(
    step: StepOf<'_, D>,
    groups: &mut HashTable<Held>,
    part: &[Entry],
    touched: &mut Vec<Entry>,
) -> usize {
    let StepOf { calls, group_by, hasher, delta } = step;
    let mut done = 0;
    for e in part {
        if groups.len() >= FEW_GROUPS {
            break;
        }
        let (row, w) = (delta.row(e.at as usize), &delta.weight(e.at as usize));
        match groups.find_mut(e.hash, holds(group_by, row)) {
            Some((_, group)) => {
                if !group.touched {
                    group.touched = true;
                    touched.push(*e);
                }
                group.add(calls, row, *w);
            }
            None => {
                let mut group = new_group(calls);
                group.touched = true;
                group.add(calls, row, *w);
                groups.insert_unique(e.hash, (Key::eval(group_by, row), group), |(k, _)| hasher.hash_one(k));
                touched.push(*e);
            }
        }
        done += 1;
    }
    done
}

/// Adds the rows of the delta that `entries` name (rows of one shard, a group's rows
/// next to each other) to their groups in `groups`, pushing each changed group's −old
/// +new to `out`.
fn add_runs<D: Input + ?Sized>(step: StepOf<'_, D>, groups: &mut HashTable<Held>, entries: &[Entry], out: &mut ZSet) {
    let StepOf { calls, group_by, hasher, delta } = step;
    let row_of = |e: &Entry| delta.row(e.at as usize);
    // The groups' slots are asked for a few entries ahead: a short delta's groups
    // (a hundred customers of a hundred thousand) lie far apart, and their misses
    // then overlap.
    let mut fetched = 0;
    let mut at = 0;
    while at < entries.len() {
        while fetched < (at + crate::row::PREFETCH_AHEAD).min(entries.len()) {
            crate::probe_ahead::prefetch_probe(groups, entries[fetched].hash);
            fetched += 1;
        }
        let hash = entries[at].hash;
        let first = row_of(&entries[at]);
        // A run: the rows with this key from `at` on (by hash first; two keys whose
        // hashes collide may interleave, and each piece then looks its group up on
        // its own).
        let end = at
            + 1
            + entries[at + 1..]
                .iter()
                .take_while(|e| e.hash == hash && group_by.iter().all(|g| *g.eval_cow(row_of(e)) == *g.eval_cow(first)))
                .count();
        // Rows come in group order, not where they lie: the next groups' rows are
        // prefetched while this one's are added.
        for ahead in entries.get(end..(end + crate::row::PREFETCH_AHEAD).min(entries.len())).unwrap_or(&[]) {
            delta.prefetch(ahead.at as usize);
        }
        let run = entries[at..end].iter().map(|e| (row_of(e), delta.weight(e.at as usize)));
        at = end;
        match groups.entry(hash, holds(group_by, first), |(k, _)| hasher.hash_one(k)) {
            Slot::Occupied(mut o) => {
                let (key, group) = o.get_mut();
                run.for_each(|(row, w)| group.add(calls, row, w));
                group.settle();
                // Rows it took in delta order are in too: one change for all.
                group.touched = false;
                push_group_change(out, calls, key, group);
                if group.rows == 0 {
                    o.remove();
                }
            }
            Slot::Vacant(v) => {
                let key = Key::eval(group_by, first);
                let mut group = new_group(calls);
                run.for_each(|(row, w)| group.add(calls, row, w));
                group.settle();
                let after = (group.rows > 0).then(|| output(calls, &key, &group));
                group.shown = after.clone();
                // A group whose rows net to nothing is not kept.
                if group.rows != 0 {
                    v.insert((key, group));
                }
                push_replacement(out, None, after);
            }
        }
    }
}

/// The group's output row: its key's values, then each aggregate's result.
fn output(calls: &[AggregateCall], key: &Key, group: &Group) -> Row {
    key.values().iter().cloned().chain(calls.iter().zip(&group.accumulators).map(|(c, a)| a.result(c.func))).collect()
}

/// Retracts a group's row from before and inserts its row after, unless they agree.
fn push_change(out: &mut ZSet, before: Option<Row>, after: Option<Row>) {
    if before != after {
        push_replacement(out, before, after);
    }
}

/// Retracts `before` and inserts `after`, known to differ.
fn push_replacement(out: &mut ZSet, before: Option<Row>, after: Option<Row>) {
    if let Some(before) = before {
        out.push(before, -1);
    }
    if let Some(after) = after {
        out.push(after, 1);
    }
}

/// The group's visible row, if it has one (a global aggregate's always, once started).
fn visible(calls: &[AggregateCall], exists: bool, key: &Key, group: &Group) -> Option<Row> {
    exists.then(|| output(calls, key, group))
}

impl Operator for Aggregate {
    fn step(&mut self, input_deltas: &[&ZSet]) -> ZSet {
        self.step_rows(input_deltas[0].as_slice())
    }

    fn current_output(&self) -> Option<ZSet> {
        let exists = |g: &Group| if self.global { self.started } else { g.rows > 0 };
        Some(
            self.shards
                .iter()
                .flatten()
                .filter_map(|(k, g)| visible(&self.calls, exists(g), k, g))
                .map(|r| (r, 1))
                .collect(),
        )
    }

    /// One row per group: its key's values, its row count, then each accumulator's
    /// state (see [`Accumulator::save`]); `None` if an accumulator is not saved.
    fn save(&self) -> Option<Vec<Row>> {
        let mut rows = Vec::with_capacity(self.shards.iter().map(HashTable::len).sum());
        let mut values = Vec::new();
        for (key, group) in self.shards.iter().flatten() {
            values.extend(key.values().iter().cloned());
            values.push(Value::Int(group.rows));
            for acc in group.accumulators.iter() {
                if !acc.save(&mut values) {
                    return None;
                }
            }
            if values.len() > usize::from(u16::MAX) {
                return None;
            }
            rows.push(Row::new(std::mem::take(&mut values)));
        }
        Some(rows)
    }

    fn restore(&mut self, saved: &[Row]) -> bool {
        if self.started || self.shards.iter().any(|s| !s.is_empty()) || (self.global && saved.len() > 1) {
            return false;
        }
        let mut shards: Vec<HashTable<Held>> = (0..SHARDS).map(|_| HashTable::new()).collect();
        for row in saved {
            let Some((key, group)) = self.load_group(row) else { return false };
            let hash = self.hasher.hash_one(&key);
            let shard = if self.global { 0 } else { shard_of(hash) };
            match shards[shard].entry(hash, |(k, _)| *k == key, |(k, _)| self.hasher.hash_one(k)) {
                Slot::Occupied(_) => return false,
                Slot::Vacant(v) => {
                    v.insert((key, group));
                }
            }
        }
        self.started = self.global && saved.len() == 1;
        self.shards = shards;
        true
    }

    fn state_bytes(&self) -> usize {
        let spilled = if self.calls.len() > 2 { self.calls.len() * std::mem::size_of::<Accumulator>() } else { 0 };
        let per_group = std::mem::size_of::<Row>() + std::mem::size_of::<Group>() + spilled;
        self.shards.iter().map(|g| g.capacity()).sum::<usize>() * (per_group + 1)
            + self
                .shards
                .iter()
                .flatten()
                .map(|(k, g)| {
                    std::mem::size_of_val(k.values())
                        + g.accumulators.iter().map(Accumulator::state_bytes).sum::<usize>()
                })
                .sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::AggFunc;
    use crate::types::DataType;
    use crate::{row, zset};

    fn calls() -> Vec<AggregateCall> {
        vec![
            AggregateCall {
                func: AggFunc::CountStar,
                arg: None,
                distinct: false,
                arg_type: DataType::Null,
                separator: None,
            },
            AggregateCall {
                func: AggFunc::Sum,
                arg: Some(Expr::col(1)),
                distinct: false,
                arg_type: DataType::BigInt,
                separator: None,
            },
            AggregateCall {
                func: AggFunc::Max,
                arg: Some(Expr::col(1)),
                distinct: false,
                arg_type: DataType::BigInt,
                separator: None,
            },
        ]
    }

    #[test]
    fn groups_appear_change_and_disappear() {
        let mut a = Aggregate::new(vec![Expr::col(0)], calls());
        let out = a.step(&[&zset! { row!["a", 1] => 1, row!["a", 5] => 1, row!["b", 2] => 1 }]);
        assert_eq!(out.consolidated(), zset! { row!["a", 2, 6, 5] => 1, row!["b", 1, 2, 2] => 1 });
        let out = a.step(&[&zset! { row!["a", 5] => -1 }]);
        assert_eq!(out.consolidated(), zset! { row!["a", 2, 6, 5] => -1, row!["a", 1, 1, 1] => 1 });
        let out = a.step(&[&zset! { row!["b", 2] => -1 }]);
        assert_eq!(out.consolidated(), zset! { row!["b", 1, 2, 2] => -1 });
        let out = a.step(&[&zset! { row!["b", 7] => 1 }]);
        assert_eq!(out.consolidated(), zset! { row!["b", 1, 7, 7] => 1 });
        assert_eq!(
            a.current_output().unwrap().consolidated(),
            zset! { row!["a", 1, 1, 1] => 1, row!["b", 1, 7, 7] => 1 }
        );
    }

    #[test]
    fn large_deltas_on_worker_threads_give_what_one_thread_gives() {
        // Deltas long enough to be split by shard: groups born, changed and emptied.
        let pool = crate::workers::Workers::new(2).pool().expect("two threads make a pool");
        let (mut one, mut many) =
            (Aggregate::new(vec![Expr::col(0)], calls()), Aggregate::new(vec![Expr::col(0)], calls()));
        let mut held: Vec<Row> = Vec::new();
        let mut next = crate::operator::xorshift(0x9E37_79B9u64);
        for round in 0..20 {
            let mut delta = ZSet::new();
            for _ in 0..SPLIT_FROM * 4 {
                if next(3) == 0 && !held.is_empty() {
                    let r = held.swap_remove(next(held.len() as u64) as usize);
                    delta.push(r, -1);
                } else {
                    let r = row![format!("g{}", next(if round % 2 == 0 { 50 } else { 5000 })), next(1000) as i64];
                    held.push(r.clone());
                    delta.push(r, 1);
                }
            }
            // (Two aggregates hash with different seeds: the same Z-set, not the same
            // order.)
            let expected = one.step(&[&delta]).consolidated();
            let got = pool.install(|| many.step(&[&delta])).consolidated();
            assert_eq!(got, expected, "round {round}");
            assert_eq!(many.current_output().unwrap().consolidated(), one.current_output().unwrap().consolidated());
        }
    }

    #[test]
    fn shards_past_few_groups_give_what_grouping_from_scratch_gives() {
        // Deltas whose shards start with few groups and pass FEW_GROUPS midway (rows
        // in delta order, then sorted runs), and later deltas into many groups.
        let mut a = Aggregate::new(vec![Expr::col(0)], calls());
        let mut held: Vec<Row> = Vec::new();
        let mut emitted = ZSet::new();
        let mut next = crate::operator::xorshift(0x5851_F42Du64);
        for round in 0..4 {
            let mut delta = ZSet::new();
            for _ in 0..FEW_GROUPS * SHARDS * 3 {
                if round > 0 && next(2) == 0 && !held.is_empty() {
                    delta.push(held.swap_remove(next(held.len() as u64) as usize), -1);
                } else {
                    let r = row![next(FEW_GROUPS as u64 * SHARDS as u64 * 4) as i64, next(1000) as i64];
                    held.push(r.clone());
                    delta.push(r, 1);
                }
            }
            emitted.extend_from(&a.step(&[&delta]));
            let mut groups: std::collections::BTreeMap<i64, (i64, i64, i64)> = Default::default();
            for r in &held {
                let (Value::Int(k), Value::Int(v)) = (r.get(0).into_owned(), r.get(1).into_owned()) else { panic!() };
                let g = groups.entry(k).or_insert((0, 0, i64::MIN));
                *g = (g.0 + 1, g.1 + v, g.2.max(v));
            }
            let expected: ZSet = groups.into_iter().map(|(k, (n, s, m))| (row![k, n, s, m], 1)).collect();
            assert_eq!(emitted.clone().consolidated(), expected.clone().consolidated(), "round {round}");
            assert_eq!(a.current_output().unwrap().consolidated(), expected.consolidated(), "round {round}");
        }
    }

    /// COUNT, an integer SUM, MAX, a float SUM and AVG (which an infinity turns into
    /// the mixed sum), MIN of text, and SUM over per-value typing.
    fn every_saved_kind() -> Vec<AggregateCall> {
        let call = |func, col: usize, arg_type| AggregateCall {
            func,
            arg: Some(Expr::col(col)),
            distinct: false,
            arg_type,
            separator: None,
        };
        let mut calls = calls();
        calls.extend([
            call(AggFunc::Sum, 2, DataType::Double),
            call(AggFunc::Avg, 2, DataType::Double),
            call(AggFunc::Min, 3, DataType::Text),
            call(AggFunc::Sum, 4, DataType::Any),
        ]);
        calls
    }

    fn random_delta(next: &mut impl FnMut(u64) -> u64, held: &mut Vec<Row>, groups: u64) -> ZSet {
        let mut delta = ZSet::new();
        for _ in 0..300 {
            if next(3) == 0 && !held.is_empty() {
                delta.push(held.swap_remove(next(held.len() as u64) as usize), -1);
            } else {
                let float = match next(50) {
                    0 => f64::INFINITY,
                    _ => next(1000) as f64 / 7.0,
                };
                let any =
                    if next(2) == 0 { Value::Int(next(100) as i64) } else { Value::Float(next(100) as f64 / 3.0) };
                let r = Row::new(vec![
                    Value::Int(next(groups) as i64),
                    Value::Int(next(1000) as i64),
                    Value::Float(float),
                    Value::text(format!("t{}", next(100))),
                    any,
                ]);
                held.push(r.clone());
                delta.push(r, 1);
            }
        }
        delta
    }

    #[test]
    fn a_restored_state_steps_as_the_saved_one() {
        for group_by in [vec![Expr::col(0)], vec![]] {
            let mut a = Aggregate::new(group_by.clone(), every_saved_kind());
            let mut held = Vec::new();
            let mut next = crate::operator::xorshift(0x2545_F491u64);
            for _ in 0..3 {
                a.step(&[&random_delta(&mut next, &mut held, 40)]);
            }
            let saved = a.save().expect("these accumulators are saved");
            let mut b = Aggregate::new(group_by.clone(), every_saved_kind());
            assert!(b.restore(&saved));
            let output = |x: &Aggregate| x.current_output().unwrap().consolidated();
            assert_eq!(output(&b), output(&a));
            // Groups changed, emptied and born again, an infinity taken away: the same
            // changes from both, to the bit.
            for round in 0..6 {
                let delta = random_delta(&mut next, &mut held, 40);
                let (x, y) = (a.step(&[&delta]).consolidated(), b.step(&[&delta]).consolidated());
                assert_eq!(format!("{x:?}"), format!("{y:?}"), "round {round} of {group_by:?}");
            }
            assert!(!b.restore(&saved), "a state goes only into an empty aggregate");
        }
    }

    #[test]
    fn a_state_that_does_not_read_is_refused_and_distinct_is_not_saved() {
        let mut a = Aggregate::new(vec![Expr::col(0)], every_saved_kind());
        let mut next = crate::operator::xorshift(7);
        a.step(&[&random_delta(&mut next, &mut Vec::new(), 5)]);
        let saved = a.save().unwrap();
        let fresh = || Aggregate::new(vec![Expr::col(0)], every_saved_kind());
        let cut: Vec<Row> = saved.iter().map(|r| Row::new(r.to_vec()[..r.len() - 1].to_vec())).collect();
        let twice: Vec<Row> = saved.iter().chain(&saved).cloned().collect();
        let mut other_kind = saved[0].to_vec();
        other_kind[2] = Value::Int(99);
        for bad in [cut, twice, vec![Row::new(other_kind)]] {
            let mut b = fresh();
            assert!(!b.restore(&bad));
            assert!(b.current_output().unwrap().is_empty(), "nothing taken from a refused state");
        }
        let mut distinct = calls();
        distinct[1].distinct = true;
        let mut d = Aggregate::new(vec![Expr::col(0)], distinct);
        d.step(&[&zset! { row!["a", 1] => 1 }]);
        assert!(d.save().is_none());
    }

    #[test]
    fn global_aggregate_always_has_one_row() {
        let mut a = Aggregate::new(vec![], calls());
        assert_eq!(a.step(&[&ZSet::new()]), zset! { row![0, None::<i64>, None::<i64>] => 1 });
        let out = a.step(&[&zset! { row!["x", 3] => 1 }]);
        assert_eq!(out.consolidated(), zset! { row![0, None::<i64>, None::<i64>] => -1, row![1, 3, 3] => 1 });
        let out = a.step(&[&zset! { row!["x", 3] => -1 }]);
        assert_eq!(out.consolidated(), zset! { row![0, None::<i64>, None::<i64>] => 1, row![1, 3, 3] => -1 });
    }

    #[test]
    fn a_count_passing_through_zero_inside_a_delta_loses_nothing() {
        // A join's delta may hold a row and its retraction next to other rows (ΔL ⋈ R
        // after, minus ΔL ⋈ ΔR): the float sum must not be reset on the way.
        let sum = AggregateCall {
            func: AggFunc::Sum,
            arg: Some(Expr::col(1)),
            distinct: false,
            arg_type: DataType::Double,
            separator: None,
        };
        let mut a = Aggregate::new(vec![Expr::col(0)], vec![sum]);
        let mut delta = ZSet::new();
        delta.push(row!["g", 1.5], 1);
        delta.push(row!["g", 2.0], -1);
        delta.push(row!["g", 2.0], 1);
        assert_eq!(a.step(&[&delta]).consolidated(), zset! { row!["g", 1.5] => 1 });
        let mut delta = ZSet::new();
        delta.push(row!["g", 0.25], 1);
        delta.push(row!["g", 1.5], -1);
        delta.push(row!["h", 3.0], -1);
        delta.push(row!["h", 3.0], 1);
        assert_eq!(a.step(&[&delta]).consolidated(), zset! { row!["g", 1.5] => -1, row!["g", 0.25] => 1 });
    }
}
