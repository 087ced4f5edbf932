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

use std::hash::BuildHasher;

use hashbrown::HashMap;
use hashbrown::hash_map::Entry;

use crate::expr::Expr;
use crate::plan::AggregateCall;
use crate::row::Row;
use crate::value::Value;
use crate::zset::{Weight, ZSet};

use super::Operator;
use super::accumulator::Accumulator;
use super::index::Key;

#[derive(Debug, Clone)]
struct Group {
    rows: Weight,
    accumulators: Vec<Accumulator>,
    /// During a step: whether the group was touched, and the row it had before.
    touched: bool,
    before: Option<Row>,
}

/// Grouped aggregation.
#[derive(Debug)]
pub struct Aggregate {
    group_by: Vec<Expr>,
    calls: Vec<AggregateCall>,
    groups: HashMap<Key, Group>,
    /// No GROUP BY: one group that always exists.
    global: bool,
    /// For the global group: whether its row has been emitted.
    started: bool,
}

impl Aggregate {
    /// Aggregates `calls` per distinct value of `group_by`.
    pub fn new(group_by: Vec<Expr>, calls: Vec<AggregateCall>) -> Aggregate {
        let global = group_by.is_empty();
        Aggregate { group_by, calls, groups: HashMap::new(), global, started: false }
    }

    fn new_group(&self) -> Group {
        Group { rows: 0, accumulators: self.calls.iter().map(Accumulator::new).collect(), touched: false, before: None }
    }
}

/// The group's output row: its key's values, then each aggregate's result.
fn output(calls: &[AggregateCall], key: &Key, group: &Group) -> Row {
    key.values().iter().cloned().chain(calls.iter().zip(&group.accumulators).map(|(c, a)| a.result(c.func))).collect()
}

/// The group's visible row, if it has one (a global aggregate's always, once started).
fn visible(calls: &[AggregateCall], exists: bool, key: &Key, group: &Group) -> Option<Row> {
    exists.then(|| output(calls, key, group))
}

impl Operator for Aggregate {
    fn step(&mut self, input_deltas: &[&ZSet]) -> ZSet {
        // Keys of the groups this step touches, each once; a group remembers its row
        // from before the step the first time it is touched.
        let mut touched: Vec<Key> = Vec::new();
        if self.global && !self.started {
            let mut g = self.new_group();
            g.touched = true;
            self.groups.insert(Key::empty(), g);
            touched.push(Key::empty());
        }
        let (calls, global, started) = (&self.calls, self.global, self.started);
        // A large delta is taken in the order of its keys' hashes, so that it walks the
        // group table from one end to the other instead of jumping about it.
        let delta = input_deltas[0];
        let mut keyed: Vec<(u64, Key, &Row, Weight)> = delta
            .iter()
            .map(|(row, w)| {
                let key = if global { Key::empty() } else { Key::eval(&self.group_by, row) };
                (self.groups.hasher().hash_one(&key), key, row, *w)
            })
            .collect();
        if keyed.len() > 64 {
            keyed.sort_unstable_by_key(|(h, ..)| *h);
        }
        for (_, key, row, w) in keyed {
            let w = &w;
            let group = match self.groups.entry(key) {
                Entry::Occupied(o) => {
                    let (key, group) = (o.key().clone(), o.into_mut());
                    if !group.touched {
                        group.touched = true;
                        let exists = if global { started } else { group.rows > 0 };
                        group.before = visible(calls, exists, &key, group);
                        touched.push(key);
                    }
                    group
                }
                Entry::Vacant(v) => {
                    touched.push(v.key().clone());
                    v.insert(Group {
                        rows: 0,
                        accumulators: calls.iter().map(Accumulator::new).collect(),
                        touched: true,
                        before: None,
                    })
                }
            };
            group.rows += w;
            for (call, acc) in calls.iter().zip(group.accumulators.iter_mut()) {
                match &call.arg {
                    None => acc.update(&Value::Bool(true), *w),
                    Some(arg) => acc.update(&arg.eval(row), *w),
                }
            }
        }
        self.started = true;
        let mut out = ZSet::with_capacity(touched.len() * 2);
        for key in touched {
            let group = self.groups.get_mut(&key).expect("touched groups exist");
            group.touched = false;
            let old = group.before.take();
            let exists = if self.global { true } else { group.rows > 0 };
            let new = visible(&self.calls, exists, &key, group);
            if old != new {
                if let Some(old) = old {
                    out.push(old, -1);
                }
                if let Some(new) = new {
                    out.push(new, 1);
                }
            }
            if !self.global && group.rows == 0 {
                self.groups.remove(&key);
            }
        }
        out
    }

    fn current_output(&self) -> Option<ZSet> {
        let exists = |g: &Group| if self.global { self.started } else { g.rows > 0 };
        Some(self.groups.iter().filter_map(|(k, g)| visible(&self.calls, exists(g), k, g)).map(|r| (r, 1)).collect())
    }

    fn state_bytes(&self) -> usize {
        let per_group = std::mem::size_of::<Row>()
            + std::mem::size_of::<Group>()
            + self.calls.len() * std::mem::size_of::<Accumulator>();
        self.groups.capacity() * (per_group + 1)
            + self
                .groups
                .iter()
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
            AggregateCall { func: AggFunc::CountStar, arg: None, distinct: false, arg_type: DataType::Null },
            AggregateCall { func: AggFunc::Sum, arg: Some(Expr::col(1)), distinct: false, arg_type: DataType::BigInt },
            AggregateCall { func: AggFunc::Max, arg: Some(Expr::col(1)), distinct: false, arg_type: DataType::BigInt },
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
    fn global_aggregate_always_has_one_row() {
        let mut a = Aggregate::new(vec![], calls());
        assert_eq!(a.step(&[&ZSet::new()]), zset! { row![0, None::<i64>, None::<i64>] => 1 });
        let out = a.step(&[&zset! { row!["x", 3] => 1 }]);
        assert_eq!(out.consolidated(), zset! { row![0, None::<i64>, None::<i64>] => -1, row![1, 3, 3] => 1 });
        let out = a.step(&[&zset! { row!["x", 3] => -1 }]);
        assert_eq!(out.consolidated(), zset! { row![0, None::<i64>, None::<i64>] => 1, row![1, 3, 3] => -1 });
    }
}
