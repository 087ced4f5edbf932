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
use crate::zset::ZSet;

use super::Operator;
use super::index::{KeyedBag, join_key};

/// An inner equi-join.
#[derive(Debug)]
pub struct Join {
    left_keys: Vec<Expr>,
    right_keys: Vec<Expr>,
    left: KeyedBag,
    right: KeyedBag,
}

impl Join {
    /// A join on `left_keys[i] = right_keys[i]` for all i.
    pub fn new(left_keys: Vec<Expr>, right_keys: Vec<Expr>) -> Join {
        assert_eq!(left_keys.len(), right_keys.len(), "join keys come in pairs");
        Join {
            left_keys,
            right_keys,
            left: KeyedBag::default(),
            right: KeyedBag::default(),
        }
    }
}

impl Operator for Join {
    fn step(&mut self, input_deltas: &[&ZSet]) -> ZSet {
        let (left_delta, right_delta) = (input_deltas[0], input_deltas[1]);
        let mut out = ZSet::new();
        for (l, w) in left_delta {
            let Some(key) = join_key(&self.left_keys, l) else {
                continue;
            };
            for r in self.right.get(&key) {
                out.push(l.concat(&r.row), w * r.weight);
            }
            self.left.add(key, l, *w, 0);
        }
        for (r, w) in right_delta {
            let Some(key) = join_key(&self.right_keys, r) else {
                continue;
            };
            for l in self.left.get(&key) {
                out.push(l.row.concat(r), l.weight * w);
            }
            self.right.add(key, r, *w, 0);
        }
        out
    }

    fn current_output(&self) -> Option<ZSet> {
        let mut out = ZSet::new();
        for (key, ls) in self.left.iter() {
            let rs = self.right.get(key);
            for l in ls {
                for r in rs {
                    out.push(l.row.concat(&r.row), l.weight * r.weight);
                }
            }
        }
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
        let mut j = Join::new(vec![Expr::col(0)], vec![Expr::col(0)]);
        let steps = [
            (
                zset! { row![1, "a"] => 1, row![2, "b"] => 1 },
                zset! { row![1, "x"] => 1 },
            ),
            (
                zset! { row![1, "a2"] => 1 },
                zset! { row![1, "y"] => 2, row![2, "z"] => 1 },
            ),
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
            assert_eq!(
                j.current_output().unwrap().consolidated(),
                reference(&l, &r)
            );
        }
    }

    #[test]
    fn self_join_with_one_delta_on_both_sides() {
        let mut j = Join::new(vec![Expr::col(0)], vec![Expr::col(0)]);
        let d = zset! { row![1] => 1, row![1] => 1 };
        // 2 copies joined with 2 copies: 4.
        assert_eq!(j.step(&[&d, &d]).consolidated(), zset! { row![1, 1] => 4 });
        let d = zset! { row![1] => -1 };
        // (2-1) * (2-1) = 1: the delta is -3.
        assert_eq!(j.step(&[&d, &d]).consolidated(), zset! { row![1, 1] => -3 });
    }
}
