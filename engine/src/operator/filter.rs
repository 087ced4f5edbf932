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
