//! A delta join fused with the aggregate that reads it: `GROUP BY` over a join of
//! three or more inputs (a dashboard's revenue by region and category over orders,
//! customers and products).
//!
//! Separately, the join builds every joined row it emits (an allocation each, and
//! its values copied), the aggregate reads each once to find its group and feed its
//! accumulators, and the rows are dropped at the end of the transaction: a million of
//! them when such a view is built over loaded tables, and most of a batch's row
//! allocations when a changed product walks its orders. Fused, the join evaluates
//! the aggregate's group keys and arguments on each combination where it is found
//! (see [`Joined`]) and lays only those values end to end ([`Flat`]); the aggregate
//! takes them in the order the join found them, which is the order the separate
//! aggregate would have taken the joined rows in, so every sum is computed exactly
//! as before, on any number of threads.
//!
//! The fused node replaces both nodes in the graph; its state is the aggregate's
//! (the join keeps none of its own), saved and restored as the aggregate's is.

use crate::expr::Expr;
use crate::plan::{AggregateCall, JoinEdge};
use crate::row::Row;
use crate::zset::{Weight, ZSet};

use super::Operator;
use super::aggregate::{Aggregate, Flat};
use super::arrangement::Shared;
use super::multi_join::{Joined, MultiJoin, Sink};

/// `GROUP BY` over a delta join, without the joined rows.
#[derive(Debug)]
pub struct JoinAggregate {
    join: MultiJoin,
    /// The group keys, then each aggregate's argument, over the joined row: what is
    /// evaluated on each combination.
    read: Vec<Expr>,
    /// The aggregate, over rows of the values `read` gives.
    aggregate: Aggregate,
    /// The values of a step's combinations, emptied after the step: its room is
    /// kept, as a changed product's hundred combinations grew it from a few rows
    /// (reallocated half a dozen times) in every transaction.
    found: Flat,
}

impl JoinAggregate {
    /// `aggregates` per distinct `group_by` over the join of inputs of `widths` on
    /// `edges` that emits `output` (see [`MultiJoin::new`]); the expressions are over
    /// the join's output row.
    pub fn new(
        widths: Vec<usize>,
        edges: &[JoinEdge],
        output: Option<Vec<usize>>,
        group_by: &[Expr],
        aggregates: &[AggregateCall],
        arrange: &mut dyn FnMut(usize, &[Expr]) -> Shared,
    ) -> JoinAggregate {
        let join = MultiJoin::new(widths, edges, output, arrange);
        let mut read: Vec<Expr> = group_by.to_vec();
        let calls = aggregates
            .iter()
            .map(|call| {
                let arg = call.arg.as_ref().map(|arg| {
                    read.push(arg.clone());
                    Expr::col(read.len() - 1)
                });
                AggregateCall { arg, ..call.clone() }
            })
            .collect();
        let aggregate = Aggregate::new((0..group_by.len()).map(Expr::col).collect(), calls);
        let found = Flat::with_capacity(read.len(), 0);
        JoinAggregate { join, read, aggregate, found }
    }
}

/// Rows of the join's first input aggregated at a time when the node is filled (a
/// few in unit tests, so that filling takes many blocks). A block's values (four of
/// sixteen bytes a row for a revenue by region and category) fit in a core's L2
/// cache, where the aggregate reads them back shard by shard: blocks of 65,536 rows
/// (4 MB) built such a view over a million orders 2–7 % slower.
#[cfg(not(test))]
const INITIAL_BLOCK: usize = 1 << 12;
#[cfg(test)]
const INITIAL_BLOCK: usize = 16;

/// Each combination as the values the aggregate reads.
struct Values<'e> {
    read: &'e [Expr],
}

impl Sink for Values<'_> {
    type Out = Flat;

    fn start(&self, expected: usize) -> Flat {
        Flat::with_capacity(self.read.len(), expected)
    }

    #[inline]
    fn emit(&self, out: &mut Flat, joined: &Joined<'_, '_>, w: Weight) {
        out.push(self.read.iter().map(|e| e.eval(joined)), w);
    }

    fn append(&self, out: &mut Flat, part: Flat) {
        out.append(part);
    }
}

impl Operator for JoinAggregate {
    fn step(&mut self, input_deltas: &[&ZSet]) -> ZSet {
        let sink = Values { read: &self.read };
        // Empty unless a step failed half way.
        self.found.clear_for_reuse();
        self.join.step_into(input_deltas, &sink, &mut self.found);
        let out = self.aggregate.step_rows(&self.found);
        self.found.clear_for_reuse();
        out
    }

    /// The join's whole output, aggregated (the aggregate's rule with it as the
    /// delta), never built as rows, and found [`INITIAL_BLOCK`] rows of the first
    /// input at a time: a million combinations' values are never held at once (the
    /// fresh memory alone cost a third of the time). The aggregate starts empty, so its
    /// output is read once at the end; a group's values reach it in the same order as
    /// in one step, so float sums are the same to the last bit.
    fn initial(&mut self, inputs: &[&ZSet]) -> ZSet {
        let sink = Values { read: &self.read };
        let first = inputs[0].as_slice();
        // At least one step, which starts a global aggregate's row.
        for block in first.chunks(INITIAL_BLOCK).chain(first.is_empty().then_some(first)) {
            let mut found = sink.start(0);
            self.join.initial_into(block, &sink, &mut found);
            self.aggregate.step_rows(&found);
        }
        self.aggregate.current_output().expect("an aggregate knows its output")
    }

    fn current_output(&self) -> Option<ZSet> {
        self.aggregate.current_output()
    }

    fn probed_by(&self, arrangement: &Shared) -> Option<Vec<usize>> {
        Some(self.join.probed_by(arrangement))
    }

    fn state_bytes(&self) -> usize {
        self.aggregate.state_bytes()
    }

    fn save(&self) -> Option<Vec<Row>> {
        self.aggregate.save()
    }

    fn restore(&mut self, saved: &[Row]) -> bool {
        self.aggregate.restore(saved)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operator::arrangement::TestArrangements;
    use crate::plan::AggFunc;
    use crate::row;
    use crate::types::DataType;

    /// a(x, y) ⋈ b(y, z) ⋈ c(z, w) on a.y = b.y and b.z = c.z.
    fn edges() -> Vec<JoinEdge> {
        vec![
            JoinEdge { left: 0, left_keys: vec![Expr::col(1)], right: 1, right_keys: vec![Expr::col(0)] },
            JoinEdge { left: 1, left_keys: vec![Expr::col(1)], right: 2, right_keys: vec![Expr::col(0)] },
        ]
    }

    fn call(func: AggFunc, arg: Option<Expr>, distinct: bool, arg_type: DataType) -> AggregateCall {
        AggregateCall { func, arg, distinct, arg_type, separator: None }
    }

    /// `GROUP BY` w (input c's second column, emitted last) or, with `global`, over
    /// everything: count(*), a float sum of a.x * 0.1 (so that the order the values
    /// arrive in shows in its last bits), min, count(DISTINCT) and avg.
    fn aggregate_of(global: bool) -> (Vec<Expr>, Vec<AggregateCall>) {
        let group_by = if global { Vec::new() } else { vec![Expr::col(2)] };
        let tenth = Expr::Binary {
            op: crate::expr::BinaryOp::Mul,
            left: Box::new(Expr::col(0)),
            right: Box::new(Expr::Literal(crate::value::Value::Float(0.1))),
        };
        let calls = vec![
            call(AggFunc::CountStar, None, false, DataType::Null),
            call(AggFunc::Sum, Some(tenth), false, DataType::Double),
            call(AggFunc::Min, Some(Expr::col(1)), false, DataType::BigInt),
            call(AggFunc::Count, Some(Expr::col(1)), true, DataType::BigInt),
            call(AggFunc::Avg, Some(Expr::col(0)), false, DataType::BigInt),
        ];
        (group_by, calls)
    }

    /// Random deltas of the three inputs: rows added, and rows held removed.
    fn random_deltas(next: &mut impl FnMut(u64) -> u64, held: &mut [Vec<Row>; 3], n: usize) -> [ZSet; 3] {
        let mut deltas = [ZSet::new(), ZSet::new(), ZSet::new()];
        for _ in 0..n {
            let input = next(10) as usize % 3;
            let input = if next(4) == 0 { input } else { 0 };
            if next(3) == 0 && !held[input].is_empty() {
                let i = next(held[input].len() as u64) as usize;
                deltas[input].push(held[input].swap_remove(i), -1);
            } else {
                let r = match input {
                    0 => row![next(1000) as i64, next(30) as i64],
                    1 => row![next(30) as i64, next(20) as i64],
                    _ => row![next(20) as i64, next(5) as i64],
                };
                held[input].push(r.clone());
                deltas[input].push(r, 1);
            }
        }
        deltas
    }

    /// A delta's rows with their weights, every float to its last bit, in one order
    /// (two aggregates hash their groups with seeds of their own, and so emit them in
    /// orders of their own).
    fn exactly(delta: ZSet) -> Vec<String> {
        let mut rows: Vec<String> = delta.consolidated().iter().map(|(r, w)| format!("{r:?} {w}")).collect();
        rows.sort();
        rows
    }

    /// The fused node against the join and the aggregate apart, on the same random
    /// deltas: the same output after every step, to the last bit of every float.
    fn fused_equals_apart(global: bool, rounds: usize, rows_per_step: usize) {
        let output = Some(vec![0, 2, 5]);
        let (group_by, calls) = aggregate_of(global);
        let (mut fused_arr, mut apart_arr) = (TestArrangements::default(), TestArrangements::default());
        let mut fused = JoinAggregate::new(vec![2, 2, 2], &edges(), output.clone(), &group_by, &calls, &mut |i, k| {
            fused_arr.arrange(i, k)
        });
        let mut join = MultiJoin::new(vec![2, 2, 2], &edges(), output, &mut |i, k| apart_arr.arrange(i, k));
        let mut aggregate = Aggregate::new(group_by, calls);
        let mut next = crate::operator::xorshift(0x9E37_79B9_7F4A_7C15);
        let mut held: [Vec<Row>; 3] = Default::default();
        for round in 0..rounds {
            let deltas = random_deltas(&mut next, &mut held, rows_per_step);
            let deltas: Vec<&ZSet> = deltas.iter().collect();
            fused_arr.apply(&deltas);
            apart_arr.apply(&deltas);
            let got = fused.step(&deltas);
            let expected = aggregate.step(&[&join.step(&deltas)]);
            assert_eq!(exactly(got), exactly(expected), "round {round}");
            let (now, then) = (fused.current_output().unwrap(), aggregate.current_output().unwrap());
            assert_eq!(exactly(now), exactly(then), "round {round}");
        }
        // Built over what is there, as for a view registered later.
        let totals: Vec<ZSet> = held.iter().map(|rows| rows.iter().map(|r| (r.clone(), 1)).collect()).collect();
        let totals: Vec<&ZSet> = totals.iter().collect();
        let (mut fused_arr, mut apart_arr) = (TestArrangements::default(), TestArrangements::default());
        let (group_by, calls) = aggregate_of(global);
        let output = Some(vec![0, 2, 5]);
        let mut fused = JoinAggregate::new(vec![2, 2, 2], &edges(), output.clone(), &group_by, &calls, &mut |i, k| {
            fused_arr.arrange(i, k)
        });
        let mut join = MultiJoin::new(vec![2, 2, 2], &edges(), output, &mut |i, k| apart_arr.arrange(i, k));
        let mut late = Aggregate::new(group_by, calls);
        fused_arr.apply(&totals);
        apart_arr.apply(&totals);
        let built = fused.initial(&totals);
        let expected = late.initial(&[&join.initial(&totals)]);
        assert_eq!(exactly(built.clone()), exactly(expected));
        // And both agree, up to the float sum's last bits, with the state maintained.
        let apart = aggregate.current_output().unwrap().consolidated();
        assert_eq!(built.clone().consolidated().len(), apart.len());
    }

    #[test]
    fn fused_gives_what_the_join_and_the_aggregate_give_apart() {
        fused_equals_apart(false, 60, 12);
        fused_equals_apart(true, 60, 12);
    }

    #[test]
    fn fused_on_worker_threads_gives_what_they_give_apart() {
        let pool = crate::workers::Workers::new(2).pool().expect("two threads make a pool");
        pool.install(|| {
            // Deltas long enough to be probed in chunks and aggregated by shard.
            fused_equals_apart(false, 8, 400);
            fused_equals_apart(true, 8, 400);
        });
    }
}
