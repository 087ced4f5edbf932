//! Project: π_e. Stateless: `Δπ_e(R) = π_e(ΔR)`.
//!
//! Each output row is the list of expressions evaluated on an input row. Projection
//! does not remove duplicates (bags), so weights pass through unchanged.

use crate::expr::Expr;
use crate::row::Row;
use crate::workers::{self, Cost};
use crate::zset::ZSet;

use super::Operator;

/// Computes `exprs` on every row.
#[derive(Debug)]
pub struct Project {
    exprs: Vec<Expr>,
}

impl Project {
    /// A projection onto `exprs`.
    pub fn new(exprs: Vec<Expr>) -> Project {
        Project { exprs }
    }
}

impl Operator for Project {
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
            let mut out = ZSet::with_capacity(range.len());
            for (row, w) in crate::row::prefetched(&rows[range], |(r, _)| r) {
                out.push(self.exprs.iter().map(|e| e.eval(row)).collect::<Row>(), *w);
            }
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
    fn maps_rows_and_keeps_weights() {
        let mut p = Project::new(vec![Expr::col(1), Expr::binary(BinaryOp::Mul, Expr::col(0), Expr::lit(10))]);
        let d = zset! { row![1, "a"] => 2, row![2, "b"] => -1 };
        assert_eq!(p.step(&[&d]), zset! { row!["a", 10] => 2, row!["b", 20] => -1 });
    }
}
