//! Inner join on equal keys: `L ⋈ R`. State: none of its own; it probes both inputs'
//! arrangements by key, which the graph keeps and shares with other joins.
//!
//! Rule (bilinearity): `Δ(L ⋈ R) = ΔL ⋈ R + (L + ΔL) ⋈ ΔR`, where `R` is the right
//! input before the transaction. The arrangements already hold both inputs after it,
//! so the left delta is probed against the right arrangement minus the right delta,
//! and the right delta against the left arrangement as it is. A row whose key has a
//! NULL matches nothing. With no keys at all this is a cross join (every row under the
//! empty key).
//!
//! Output rows are the left row followed by the right row; further conditions of the
//! ON clause are a filter on the output.

use crate::expr::Expr;
use crate::row::{self, PREFETCH_AHEAD, Row};
use crate::value::Value;
use crate::zset::{Weight, ZSet};

use super::Operator;
use super::arrangement::{DeltaIndex, Shared};
use super::index::join_key;
use crate::workers::{self, Cost};

/// Which columns of a joined row (left then right) a join emits, built directly from
/// the two sides without materializing the whole joined row.
#[derive(Debug, Clone)]
pub struct Emit {
    output: Option<Vec<usize>>,
    left_width: usize,
    right_width: usize,
}

impl Emit {
    /// Emits `output` (all columns when `None`) of rows `left_width + right_width` wide.
    pub fn new(output: Option<Vec<usize>>, left_width: usize, right_width: usize) -> Emit {
        Emit { output, left_width, right_width }
    }

    /// Emits every column.
    pub fn all(left_width: usize, right_width: usize) -> Emit {
        Emit::new(None, left_width, right_width)
    }

    fn build(&self, l: Option<&Row>, r: Option<&Row>) -> Row {
        let value = |c: usize| -> Value {
            if c < self.left_width {
                l.map_or(Value::Null, |l| l.get(c).into_owned())
            } else {
                r.map_or(Value::Null, |r| r.get(c - self.left_width).into_owned())
            }
        };
        match &self.output {
            Some(cols) => cols.iter().map(|&c| value(c)).collect(),
            None => (0..self.left_width + self.right_width).map(value).collect(),
        }
    }

    /// The output row of a matching pair.
    #[inline]
    pub fn pair(&self, l: &Row, r: &Row) -> Row {
        self.build(Some(l), Some(r))
    }

    /// The output row of a left row without a partner.
    pub fn left_only(&self, l: &Row) -> Row {
        self.build(Some(l), None)
    }

    /// The output row of a right row without a partner.
    pub fn right_only(&self, r: &Row) -> Row {
        self.build(None, Some(r))
    }
}

/// An inner equi-join.
#[derive(Debug)]
pub struct Join {
    left_keys: Vec<Expr>,
    right_keys: Vec<Expr>,
    emit: Emit,
    left: Shared,
    right: Shared,
}

impl Join {
    /// A join on `left_keys[i] = right_keys[i]` for all i, emitting `emit`'s columns;
    /// `arrange(input, keys)` gives the arrangement of input 0 (left) or 1 (right).
    pub fn new(
        left_keys: Vec<Expr>,
        right_keys: Vec<Expr>,
        emit: Emit,
        arrange: &mut dyn FnMut(usize, &[Expr]) -> Shared,
    ) -> Join {
        assert_eq!(left_keys.len(), right_keys.len(), "join keys come in pairs");
        let (left, right) = (arrange(0, &left_keys), arrange(1, &right_keys));
        Join { left_keys, right_keys, emit, left, right }
    }
}

/// Matched pairs, joined a batch at a time: a probe finds its partners without reading
/// them, so the pairs are gathered first and each partner is prefetched a few pairs
/// before its values are copied (their cache misses overlap instead of following one
/// another). Emitted in the order they were found.
struct Pairs<'a, 'e> {
    emit: &'e Emit,
    pending: Vec<(&'a Row, &'a Row, Weight)>,
    out: ZSet,
}

/// How many pairs are gathered before they are joined.
const PAIRS: usize = 1024;

impl<'a, 'e> Pairs<'a, 'e> {
    fn new(emit: &'e Emit) -> Self {
        Pairs { emit, pending: Vec::new(), out: ZSet::new() }
    }

    #[inline]
    fn push(&mut self, l: &'a Row, r: &'a Row, w: Weight) {
        self.pending.push((l, r, w));
        if self.pending.len() == PAIRS {
            self.flush();
        }
    }

    fn flush(&mut self) {
        for (i, &(l, r, w)) in self.pending.iter().enumerate() {
            if let Some(&(al, ar, _)) = self.pending.get(i + PREFETCH_AHEAD) {
                al.prefetch();
                ar.prefetch();
            }
            self.out.push(self.emit.pair(l, r), w);
        }
        self.pending.clear();
    }

    fn finish(mut self) -> ZSet {
        self.flush();
        self.out
    }
}

impl Operator for Join {
    fn keeps_state(&self) -> bool {
        false
    }

    fn step(&mut self, input_deltas: &[&ZSet]) -> ZSet {
        let (left_delta, right_delta) = (input_deltas[0], input_deltas[1]);
        let (left, right) = (self.left.read(), self.right.read());
        let right_added =
            (!left_delta.is_empty() && !right_delta.is_empty()).then(|| DeltaIndex::new(&self.right_keys, right_delta));
        // Long deltas in chunks on the worker threads (see crate::workers).
        let (lefts, rights) = (left_delta.as_slice(), right_delta.as_slice());
        let mut out = ZSet::new();
        out.append(workers::concat(lefts.len(), Cost::Probe, |range| {
            let mut pairs = Pairs::new(&self.emit);
            // Rows read ahead: a delta's rows are fresh, but a loaded table's (a join
            // filled from its left input's rows) are not in cache.
            for (l, w) in row::prefetched(&lefts[range], |(r, _)| r) {
                let Some(key) = join_key(&self.left_keys, l) else { continue };
                right.for_each(&key, |r, rw| pairs.push(l, r, w * rw));
                if let Some(added) = &right_added {
                    added.for_each(&key, |r, rw| pairs.push(l, r, -w * rw));
                }
            }
            pairs.finish()
        }));
        out.append(workers::concat(rights.len(), Cost::Probe, |range| {
            let mut pairs = Pairs::new(&self.emit);
            for (r, w) in row::prefetched(&rights[range], |(r, _)| r) {
                let Some(key) = join_key(&self.right_keys, r) else { continue };
                left.for_each(&key, |l, lw| pairs.push(l, r, lw * w));
            }
            pairs.finish()
        }));
        out
    }

    /// Walks the side with fewer keys and probes the other.
    fn current_output(&self) -> Option<ZSet> {
        let (left, right) = (self.left.read(), self.right.read());
        let mut out = ZSet::new();
        if left.key_count() <= right.key_count() {
            left.for_each_key(|key, ls| {
                for (l, lw) in ls {
                    right.for_each(key, |r, rw| out.push(self.emit.pair(l, r), lw * rw));
                }
            });
        } else {
            right.for_each_key(|key, rs| {
                for (r, rw) in rs {
                    left.for_each(key, |l, lw| out.push(self.emit.pair(l, r), lw * rw));
                }
            });
        }
        Some(out)
    }

    fn output_from_arrangements(&self) -> bool {
        true
    }

    /// A join registered over loaded inputs: the output is their join, computed once —
    /// not the step rule, which with both whole inputs as deltas would emit every pair
    /// three times (twice added, once taken back). From both arrangements where both
    /// are built; where the left one is deferred (a loaded table's), the left rows
    /// probe the right arrangement, which is the step rule for the left input alone.
    fn initial(&mut self, inputs: &[&ZSet]) -> ZSet {
        if self.left.read().is_deferred() {
            return self.step(&[inputs[0], &ZSet::new()]);
        }
        self.current_output().expect("a join's arrangements hold its output")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operator::arrangement::TestArrangements;
    use crate::{row, zset};

    fn join(emit: Emit) -> (Join, TestArrangements) {
        let mut arrangements = TestArrangements::default();
        let j = Join::new(vec![Expr::col(0)], vec![Expr::col(0)], emit, &mut |i, k| arrangements.arrange(i, k));
        (j, arrangements)
    }

    /// Steps `j` as the graph does: arrangements first.
    fn step(j: &mut Join, arrangements: &TestArrangements, deltas: &[&ZSet]) -> ZSet {
        arrangements.apply(deltas);
        j.step(deltas)
    }

    fn reference(l: &ZSet, r: &ZSet) -> ZSet {
        let mut out = ZSet::new();
        for (a, wa) in l {
            for (b, wb) in r {
                if !a.get(0).is_null() && *a.get(0) == *b.get(0) {
                    out.push(a.concat(b), wa * wb);
                }
            }
        }
        out.consolidated()
    }

    #[test]
    fn deltas_sum_to_the_join_of_the_totals() {
        let (mut j, arrangements) = join(Emit::all(2, 2));
        let steps = [
            (zset! { row![1, "a"] => 1, row![2, "b"] => 1 }, zset! { row![1, "x"] => 1 }),
            (zset! { row![1, "a2"] => 1 }, zset! { row![1, "y"] => 2, row![2, "z"] => 1 }),
            (
                zset! { row![1, "a"] => -1, row![None::<i64>, "n"] => 1 },
                zset! { row![1, "x"] => -1, row![None::<i64>, "m"] => 1 },
            ),
        ];
        let (mut l, mut r, mut out) = (ZSet::new(), ZSet::new(), ZSet::new());
        for (dl, dr) in &steps {
            out.extend_from(&step(&mut j, &arrangements, &[dl, dr]));
            l.extend_from(dl);
            r.extend_from(dr);
            assert_eq!(out.clone().consolidated(), reference(&l, &r));
            assert_eq!(j.current_output().unwrap().consolidated(), reference(&l, &r));
        }
    }

    #[test]
    fn pairs_past_a_batch_are_all_joined() {
        // 3,000 pairs from either side, past the PAIRS gathered at once.
        let (mut j, arrangements) = join(Emit::all(2, 2));
        let l: ZSet = (0..30i64).flat_map(|k| (0..10i64).map(move |i| (row![k, i], 1))).collect();
        let r: ZSet = (0..30i64).flat_map(|k| (0..10i64).map(move |i| (row![k, i + 100], 1))).collect();
        const { assert!(30 * 10 * 10 > 2 * PAIRS) };
        let none = ZSet::new();
        assert!(step(&mut j, &arrangements, &[&l, &none]).is_empty());
        assert_eq!(step(&mut j, &arrangements, &[&none, &r]).consolidated(), reference(&l, &r));
        let more: ZSet = (0..30i64).map(|k| (row![k, 50], 1)).collect();
        let mut l2 = l.clone();
        l2.extend_from(&more);
        let mut out = reference(&l, &r);
        out.extend_from(&step(&mut j, &arrangements, &[&more, &none]));
        assert_eq!(out.consolidated(), reference(&l2, &r));
    }

    #[test]
    fn self_join_with_one_delta_on_both_sides() {
        let (mut j, arrangements) = join(Emit::all(1, 1));
        let d = zset! { row![1] => 1, row![1] => 1 };
        // 2 copies joined with 2 copies: 4.
        assert_eq!(step(&mut j, &arrangements, &[&d, &d]).consolidated(), zset! { row![1, 1] => 4 });
        let d = zset! { row![1] => -1 };
        // (2-1) * (2-1) = 1: the delta is -3.
        assert_eq!(step(&mut j, &arrangements, &[&d, &d]).consolidated(), zset! { row![1, 1] => -3 });
    }
}
