//! EXCEPT and INTERSECT, with or without ALL. State: the multiplicity of every row on
//! each side.
//!
//! The output multiplicity of a row is a function of its two input multiplicities
//! (`l`, `r`): `EXCEPT ALL` max(l − r, 0), `EXCEPT` 1 if l > 0 and r = 0,
//! `INTERSECT ALL` min(l, r), `INTERSECT` 1 if both are positive. Rule: for each row
//! touched by either delta, emit the function after minus the function before.

use hashbrown::HashMap;

use crate::plan::SetOpKind;
use crate::row::Row;
use crate::zset::{Weight, ZSet};

use super::{ENTRY_BYTES, Operator};

/// EXCEPT / INTERSECT of two inputs of one width.
#[derive(Debug)]
pub struct SetOp {
    kind: SetOpKind,
    all: bool,
    /// (left, right) multiplicities of every row present on either side.
    counts: HashMap<Row, (Weight, Weight)>,
}

impl SetOp {
    /// A new operator for `kind`, keeping duplicates when `all`.
    pub fn new(kind: SetOpKind, all: bool) -> SetOp {
        SetOp { kind, all, counts: HashMap::new() }
    }

    /// The output multiplicity of a row with input multiplicities `(l, r)`.
    fn output(&self, (l, r): (Weight, Weight)) -> Weight {
        match (self.kind, self.all) {
            (SetOpKind::Except, true) => (l - r).max(0),
            (SetOpKind::Except, false) => Weight::from(l > 0 && r <= 0),
            (SetOpKind::Intersect, true) => l.min(r).max(0),
            (SetOpKind::Intersect, false) => Weight::from(l > 0 && r > 0),
        }
    }
}

impl Operator for SetOp {
    fn step(&mut self, input_deltas: &[&ZSet]) -> ZSet {
        let mut before: HashMap<Row, Weight> = HashMap::new();
        for (side, delta) in input_deltas.iter().enumerate() {
            for (row, w) in *delta {
                let current = self.counts.get(row).copied().unwrap_or((0, 0));
                if !before.contains_key(row) {
                    before.insert(row.clone(), self.output(current));
                }
                let entry = self.counts.entry_ref(row).or_insert((0, 0));
                if side == 0 {
                    entry.0 += w;
                } else {
                    entry.1 += w;
                }
                if *entry == (0, 0) {
                    self.counts.remove(row);
                }
            }
        }
        let mut out = ZSet::new();
        for (row, old) in before {
            let new = self.output(self.counts.get(&row).copied().unwrap_or((0, 0)));
            if new != old {
                out.push(row, new - old);
            }
        }
        out
    }

    fn current_output(&self) -> Option<ZSet> {
        Some(
            self.counts
                .iter()
                .filter_map(|(r, c)| {
                    let w = self.output(*c);
                    (w > 0).then(|| (r.clone(), w))
                })
                .collect(),
        )
    }

    fn state_bytes(&self) -> usize {
        self.counts.capacity() * (ENTRY_BYTES + std::mem::size_of::<Weight>() + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{row, zset};

    fn run(kind: SetOpKind, all: bool) -> (ZSet, ZSet) {
        let mut op = SetOp::new(kind, all);
        let first = op.step(&[&zset! { row![1] => 3, row![2] => 1 }, &zset! { row![1] => 1, row![3] => 1 }]);
        // The right side loses its copy of 1 and gains a 2.
        let second = op.step(&[&zset! {}, &zset! { row![1] => -1, row![2] => 1 }]);
        (first.consolidated(), second.consolidated())
    }

    #[test]
    fn except_all_subtracts_multiplicities() {
        let (a, b) = run(SetOpKind::Except, true);
        assert_eq!(a, zset! { row![1] => 2, row![2] => 1 });
        assert_eq!(b, zset! { row![1] => 1, row![2] => -1 });
    }

    #[test]
    fn except_keeps_rows_absent_on_the_right() {
        let (a, b) = run(SetOpKind::Except, false);
        assert_eq!(a, zset! { row![2] => 1 });
        assert_eq!(b, zset! { row![1] => 1, row![2] => -1 });
    }

    #[test]
    fn intersect_all_takes_the_minimum() {
        let (a, b) = run(SetOpKind::Intersect, true);
        assert_eq!(a, zset! { row![1] => 1 });
        assert_eq!(b, zset! { row![1] => -1, row![2] => 1 });
    }

    #[test]
    fn intersect_keeps_rows_on_both_sides() {
        let (a, b) = run(SetOpKind::Intersect, false);
        assert_eq!(a, zset! { row![1] => 1 });
        assert_eq!(b, zset! { row![1] => -1, row![2] => 1 });
    }
}
