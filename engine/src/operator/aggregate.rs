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

use std::hash::BuildHasher;

use hashbrown::hash_map::Entry as Slot;
use hashbrown::{DefaultHashBuilder, HashMap};

use crate::expr::Expr;
use crate::plan::AggregateCall;
use crate::row::Row;
use crate::value::Value;
use crate::zset::{Weight, ZSet};

use super::Operator;
use super::accumulator::Accumulator;
use super::index::Key;
use crate::workers::{self, SHARDS, shard_of};

#[derive(Debug, Clone)]
struct Group {
    rows: Weight,
    accumulators: Box<[Accumulator]>,
    /// The row the group last emitted (grouped aggregation only): retracting it
    /// retracts the very row downstream holds, with its hash already known, so a
    /// change to the group builds one row, not two.
    shown: Option<Row>,
}

impl Group {
    /// Adds `w` copies of `row` to the group.
    #[inline]
    fn add(&mut self, calls: &[AggregateCall], row: &Row, w: Weight) {
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
    Group { rows: 0, accumulators: calls.iter().map(Accumulator::new).collect(), shown: None }
}

/// A delta's rows split by shard from this many on, when worker threads are there.
const SPLIT_FROM: usize = 256;

/// A delta row: its key's hash and its place in the delta (also the last tie-break of
/// the sort, so that a group's rows reach its accumulators — a float sum — in the
/// delta's order, whichever path and however many threads, without a stable sort's
/// cost). Sixteen bytes: the key is computed again from the row when its run is
/// reached, rather than carried through the split and the sort.
#[derive(Debug, Clone, Copy)]
struct Entry {
    hash: u64,
    at: u32,
}

/// Grouped aggregation.
#[derive(Debug)]
pub struct Aggregate {
    group_by: Vec<Expr>,
    calls: Vec<AggregateCall>,
    /// The hasher every shard uses (so that a key's hash picks its shard and its slot).
    hasher: DefaultHashBuilder,
    shards: Vec<HashMap<Key, Group>>,
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
        let shards = (0..SHARDS).map(|_| HashMap::with_hasher(hasher.clone())).collect();
        Aggregate { group_by, calls, hasher, shards, global, started: false }
    }
}

impl Aggregate {
    /// A step on the worker threads: the delta's keys computed in chunks, then its rows
    /// added shard by shard at once (see the module docs). Emits what
    /// [`Operator::step`] on one thread emits, in the same order.
    fn step_split(&mut self, delta: &ZSet) -> ZSet {
        let (rows, group_by, hasher, calls) = (delta.as_slice(), &self.group_by, &self.hasher, &self.calls);
        let chunks = workers::chunked(rows.len(), workers::Cost::Row, |range| {
            let mut parts: Vec<Vec<Entry>> = (0..SHARDS).map(|_| Vec::new()).collect();
            let start = range.start;
            for (i, (row, _)) in crate::row::prefetched(&rows[range], |(r, _)| r).enumerate() {
                let hash = hasher.hash_one(Key::eval(group_by, row));
                parts[shard_of(hash)].push(Entry { hash, at: (start + i) as u32 });
            }
            parts
        });
        let mut parts: Vec<Vec<Entry>> =
            (0..SHARDS).map(|s| Vec::with_capacity(chunks.iter().map(|p| p[s].len()).sum())).collect();
        for chunk in chunks {
            for (all, part) in parts.iter_mut().zip(chunk) {
                all.extend(part);
            }
        }
        let work: Vec<_> = self.shards.iter_mut().zip(parts).filter(|(_, part)| !part.is_empty()).collect();
        let mut out = ZSet::new();
        for part in workers::each(work, |(groups, mut part)| {
            let mask = super::slot_mask(groups.len() + part.len());
            part.sort_unstable_by_key(|e| (e.hash & mask, e.hash, e.at));
            let mut out = ZSet::with_capacity(part.len().min(1024) * 2);
            add_runs(groups, calls, group_by, rows, &part, &mut out);
            out
        }) {
            out.append(part);
        }
        out
    }
}

/// Adds the rows of `delta` that `entries` name (rows of one shard, a group's rows next
/// to each other) to their groups in `groups`, pushing each changed group's −old +new
/// to `out`.
fn add_runs(
    groups: &mut HashMap<Key, Group>,
    calls: &[AggregateCall],
    group_by: &[Expr],
    delta: &[(Row, Weight)],
    entries: &[Entry],
    out: &mut ZSet,
) {
    let row_of = |e: &Entry| &delta[e.at as usize];
    let mut at = 0;
    while at < entries.len() {
        let hash = entries[at].hash;
        let key = Key::eval(group_by, &row_of(&entries[at]).0);
        // A run: the rows with this key from `at` on (by hash first; two keys whose
        // hashes collide may interleave, and each piece then looks its group up on
        // its own).
        let end = at
            + 1
            + entries[at + 1..]
                .iter()
                .take_while(|e| {
                    e.hash == hash && group_by.iter().zip(key.values()).all(|(g, v)| *g.eval_cow(&row_of(e).0) == *v)
                })
                .count();
        // Rows come in group order, not where they lie: the next groups' rows are
        // prefetched while this one's are added.
        for ahead in entries.get(end..(end + crate::row::PREFETCH_AHEAD).min(entries.len())).unwrap_or(&[]) {
            row_of(ahead).0.prefetch();
        }
        let run = entries[at..end].iter().map(row_of);
        at = end;
        match groups.entry(key) {
            Slot::Occupied(mut o) => {
                run.for_each(|(row, w)| o.get_mut().add(calls, row, *w));
                o.get_mut().settle();
                let after = (o.get().rows > 0).then(|| output(calls, o.key(), o.get()));
                let group = o.get_mut();
                if after != group.shown {
                    let before = std::mem::replace(&mut group.shown, after.clone());
                    push_replacement(out, before, after);
                }
                if group.rows == 0 {
                    o.remove();
                }
            }
            Slot::Vacant(v) => {
                let mut group = new_group(calls);
                run.for_each(|(row, w)| group.add(calls, row, *w));
                group.settle();
                let after = (group.rows > 0).then(|| output(calls, v.key(), &group));
                group.shown = after.clone();
                // A group whose rows net to nothing is not kept.
                if group.rows != 0 {
                    v.insert(group);
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
        let delta = input_deltas[0];
        let calls = &self.calls;
        if self.global {
            let started = std::mem::replace(&mut self.started, true);
            let group = self.shards[0].entry(Key::empty()).or_insert_with(|| new_group(calls));
            let before = started.then(|| output(calls, &Key::empty(), group));
            delta.iter().for_each(|(row, w)| group.add(calls, row, *w));
            group.settle();
            let after = output(calls, &Key::empty(), group);
            let mut out = ZSet::new();
            push_change(&mut out, before, Some(after));
            return out;
        }
        // The delta's rows in the order of their groups' slots in their shard's table
        // (the low bits of their keys' hashes; ties by hash), so that a group's rows
        // are next to each other — one lookup, one retraction and one insertion per
        // group — and a large delta walks each table from one end to the other
        // instead of jumping about it.
        assert!(u32::try_from(delta.len()).is_ok(), "a delta of fewer than 2^32 rows");
        if delta.len() >= SPLIT_FROM && workers::in_parallel() {
            return self.step_split(delta);
        }
        let rows = delta.as_slice();
        let mut entries: Vec<Entry> = crate::row::prefetched(rows, |(r, _)| r)
            .enumerate()
            .map(|(i, (row, _))| Entry { hash: self.hasher.hash_one(Key::eval(&self.group_by, row)), at: i as u32 })
            .collect();
        let mut counts = [0usize; SHARDS];
        entries.iter().for_each(|e| counts[shard_of(e.hash)] += 1);
        let masks: Vec<u64> = self.shards.iter().zip(counts).map(|(g, n)| super::slot_mask(g.len() + n)).collect();
        // By hash: a group's rows next to each other (their keys compared only within
        // a run of one hash). Last by place in the delta (see `Entry`).
        entries.sort_unstable_by_key(|e| (shard_of(e.hash), e.hash & masks[shard_of(e.hash)], e.hash, e.at));
        let mut out = ZSet::with_capacity(entries.len().min(1024) * 2);
        let mut rest = entries.as_slice();
        for (groups, n) in self.shards.iter_mut().zip(counts) {
            let (part, after) = rest.split_at(n);
            add_runs(groups, calls, &self.group_by, rows, part, &mut out);
            rest = after;
        }
        out
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

    fn state_bytes(&self) -> usize {
        let per_group = std::mem::size_of::<Row>()
            + std::mem::size_of::<Group>()
            + self.calls.len() * std::mem::size_of::<Accumulator>();
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
