//! Filter: σ_p. Stateless: `Δσ_p(R) = σ_p(ΔR)`.
//!
//! A row passes when the predicate is true; false and unknown (NULL) both drop it.
//! Passing rows keep their allocation (the `Arc` is shared, not copied).

use crate::expr::Expr;
use crate::workers::{self, Cost};
use crate::zset::ZSet;

use super::Operator;

/// Keeps the rows for which `predicate` is true.
#[derive(Debug)]
pub struct Filter {
    predicate: Expr,
}

impl Filter {
    /// A filter on `predicate`.
    pub fn new(predicate: Expr) -> Filter {
        Filter { predicate }
    }
}

impl Operator for Filter {
    fn keeps_state(&self) -> bool {
        false
    }

    fn step(&mut self, input_deltas: &[&ZSet]) -> ZSet {
        self.evaluate(input_deltas).expect("stateless")
    }

    /// Long inputs in chunks on the worker threads (see [`crate::workers`]).
    fn evaluate(&self, input_deltas: &[&ZSet]) -> Option<ZSet> {
        let rows = input_deltas[0].as_slice();
        Some(workers::concat(rows.len(), Cost::Row, |range| {
            // Room for every row of a short delta (grown from nothing, a few rows
            // reallocated twice); a long one grows as rows pass.
            let mut out = ZSet::with_capacity(range.len().min(1024));
            out.extend(
                crate::row::prefetched(&rows[range], |(r, _)| r)
                    .filter(|(row, _)| self.predicate.eval_truth(row) == Some(true))
                    .cloned(),
            );
            out
        }))
    }

    /// In chunks on the worker threads, as [`Operator::evaluate`].
    fn kept(&self, input: &ZSet) -> Option<Vec<u32>> {
        let rows = input.as_slice();
        assert!(u32::try_from(rows.len()).is_ok(), "fewer than 2^32 rows at once");
        let parts = workers::chunks_of(rows.len(), Cost::Row, |range| {
            let start = range.start;
            crate::row::prefetched(&rows[range], |(r, _)| r)
                .enumerate()
                .filter(|(_, (row, _))| self.predicate.eval_truth(row) == Some(true))
                .map(|(i, _)| (start + i) as u32)
                .collect::<Vec<u32>>()
        });
        Some(if parts.len() == 1 { parts.into_iter().next().expect("one part") } else { parts.concat() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expr::BinaryOp;
    use crate::{row, zset};

    #[test]
    fn keeps_true_drops_false_and_unknown() {
        let mut f = Filter::new(Expr::binary(BinaryOp::Gt, Expr::col(0), Expr::lit(1)));
        let d = zset! { row![1] => 1, row![2] => 1, row![None::<i64>] => 1, row![3] => -1 };
        assert_eq!(f.step(&[&d]), zset! { row![2] => 1, row![3] => -1 });
    }
}
