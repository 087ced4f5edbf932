//! Inner join on equal keys: `L ⋈ R`. State: both inputs, indexed by key.
//!
//! Rule (bilinearity): `Δ(L ⋈ R) = ΔL ⋈ R + (L + ΔL) ⋈ ΔR`. The left delta is probed
//! against the right index as it was before the transaction, then added to the left
//! index; the right delta is probed against the updated left index, then added to the
//! right index. A row whose key has a NULL matches nothing and is not stored. With no
//! keys at all this is a cross join (every row under the empty key).
//!
//! Output rows are the left row followed by the right row; further conditions of the
//! ON clause are a filter on the output.

use crate::expr::Expr;
use crate::row::Row;
use crate::value::Value;
use crate::zset::ZSet;

use super::Operator;
use super::index::{KeyedBag, join_key};

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

    fn build(&self, l: Option<&[Value]>, r: Option<&[Value]>) -> Row {
        let value = |c: usize| -> Value {
            if c < self.left_width {
                l.map_or(Value::Null, |l| l[c].clone())
            } else {
                r.map_or(Value::Null, |r| r[c - self.left_width].clone())
            }
        };
        match &self.output {
            Some(cols) => cols.iter().map(|&c| value(c)).collect(),
            None => (0..self.left_width + self.right_width).map(value).collect(),
        }
    }

    /// The output row of a matching pair.
    #[inline]
    pub fn pair(&self, l: &[Value], r: &[Value]) -> Row {
        self.build(Some(l), Some(r))
    }

    /// The output row of a left row without a partner.
    pub fn left_only(&self, l: &[Value]) -> Row {
        self.build(Some(l), None)
    }

    /// The output row of a right row without a partner.
    pub fn right_only(&self, r: &[Value]) -> Row {
        self.build(None, Some(r))
    }
}

/// An inner equi-join.
#[derive(Debug)]
pub struct Join {
    left_keys: Vec<Expr>,
    right_keys: Vec<Expr>,
    emit: Emit,
    left: KeyedBag,
    right: KeyedBag,
}

impl Join {
    /// A join on `left_keys[i] = right_keys[i]` for all i, emitting `emit`'s columns.
    pub fn new(left_keys: Vec<Expr>, right_keys: Vec<Expr>, emit: Emit) -> Join {
        assert_eq!(left_keys.len(), right_keys.len(), "join keys come in pairs");
        Join { left_keys, right_keys, emit, left: KeyedBag::default(), right: KeyedBag::default() }
    }
}

impl Operator for Join {
    fn step(&mut self, input_deltas: &[&ZSet]) -> ZSet {
        let (left_delta, right_delta) = (input_deltas[0], input_deltas[1]);
        let mut out = ZSet::new();
        for (l, w) in left_delta {
            let Some(key) = join_key(&self.left_keys, l) else { continue };
            self.right.for_each(&key, |r, c| out.push(self.emit.pair(l, r), w * c.weight()));
            self.left.add(key, l, *w, 0);
        }
        for (r, w) in right_delta {
            let Some(key) = join_key(&self.right_keys, r) else { continue };
            self.left.for_each(&key, |l, c| out.push(self.emit.pair(l, r), c.weight() * w));
            self.right.add(key, r, *w, 0);
        }
        out
    }

    fn current_output(&self) -> Option<ZSet> {
        let mut out = ZSet::new();
        self.left.for_each_key(|key, ls| {
            for (l, lc) in ls {
                self.right.for_each(key, |r, rc| out.push(self.emit.pair(l, r), lc.weight() * rc.weight()));
            }
        });
        Some(out)
    }

    fn state_bytes(&self) -> usize {
        self.left.state_bytes() + self.right.state_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{row, zset};

    fn reference(l: &ZSet, r: &ZSet) -> ZSet {
        let mut out = ZSet::new();
        for (a, wa) in l {
            for (b, wb) in r {
                if !a[0].is_null() && a[0] == b[0] {
                    out.push(a.concat(b), wa * wb);
                }
            }
        }
        out.consolidated()
    }

    #[test]
    fn deltas_sum_to_the_join_of_the_totals() {
        let mut j = Join::new(vec![Expr::col(0)], vec![Expr::col(0)], Emit::all(2, 2));
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
            out.extend_from(&j.step(&[dl, dr]));
            l.extend_from(dl);
            r.extend_from(dr);
            assert_eq!(out.clone().consolidated(), reference(&l, &r));
            assert_eq!(j.current_output().unwrap().consolidated(), reference(&l, &r));
        }
    }

    #[test]
    fn self_join_with_one_delta_on_both_sides() {
        let mut j = Join::new(vec![Expr::col(0)], vec![Expr::col(0)], Emit::all(1, 1));
        let d = zset! { row![1] => 1, row![1] => 1 };
        // 2 copies joined with 2 copies: 4.
        assert_eq!(j.step(&[&d, &d]).consolidated(), zset! { row![1, 1] => 4 });
        let d = zset! { row![1] => -1 };
        // (2-1) * (2-1) = 1: the delta is -3.
        assert_eq!(j.step(&[&d, &d]).consolidated(), zset! { row![1, 1] => -3 });
    }
}
