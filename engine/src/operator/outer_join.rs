//! Outer join (LEFT, RIGHT, FULL) on equal keys plus an optional residual condition.
//!
//! State: both inputs indexed by key, and for every stored row the number of partner
//! rows (weighted) that satisfy the whole ON condition. A row of a preserved side
//! appears NULL-extended exactly while that number is zero.
//!
//! Rule: the matched part follows the inner-join rule `ΔL ⋈ R + (L + ΔL) ⋈ ΔR`. While
//! a delta row is probed, each partner's match count moves by the delta's weight; a
//! partner whose count crosses zero retracts or restores its NULL-extended row. A delta
//! row with no match itself adds (or removes) its own NULL-extended row. Rows whose key
//! has a NULL match nothing; on a preserved side they are kept apart and always
//! NULL-extended.

use hashbrown::HashMap;

use crate::expr::Expr;
use crate::row::Row;
use crate::zset::{Weight, ZSet};

use super::index::{KeyedBag, join_key};
use super::{ENTRY_BYTES, Operator};

/// An outer equi-join.
#[derive(Debug)]
pub struct OuterJoin {
    left_keys: Vec<Expr>,
    right_keys: Vec<Expr>,
    residual: Option<Expr>,
    preserve_left: bool,
    preserve_right: bool,
    left_width: usize,
    right_width: usize,
    left: KeyedBag,
    right: KeyedBag,
    left_unmatchable: HashMap<Row, Weight>,
    right_unmatchable: HashMap<Row, Weight>,
}

/// Which sides an outer join preserves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preserve {
    /// LEFT or FULL.
    pub left: bool,
    /// RIGHT or FULL.
    pub right: bool,
}

impl OuterJoin {
    /// A join on `left_keys[i] = right_keys[i]` and `residual` (over the joined row),
    /// preserving the sides `preserve` names; `widths` are the inputs' column counts.
    pub fn new(
        left_keys: Vec<Expr>,
        right_keys: Vec<Expr>,
        residual: Option<Expr>,
        preserve: Preserve,
        widths: (usize, usize),
    ) -> OuterJoin {
        assert_eq!(left_keys.len(), right_keys.len(), "join keys come in pairs");
        OuterJoin {
            left_keys,
            right_keys,
            residual,
            preserve_left: preserve.left,
            preserve_right: preserve.right,
            left_width: widths.0,
            right_width: widths.1,
            left: KeyedBag::default(),
            right: KeyedBag::default(),
            left_unmatchable: HashMap::new(),
            right_unmatchable: HashMap::new(),
        }
    }

    fn matches(&self, joined: &[crate::value::Value]) -> bool {
        self.residual
            .as_ref()
            .is_none_or(|p| p.eval_truth(joined) == Some(true))
    }
}

fn add_weight(map: &mut HashMap<Row, Weight>, row: &Row, w: Weight) {
    let c = map.entry_ref(row).or_insert(0);
    *c += w;
    if *c == 0 {
        map.remove(row);
    }
}

impl Operator for OuterJoin {
    fn step(&mut self, input_deltas: &[&ZSet]) -> ZSet {
        let (left_delta, right_delta) = (input_deltas[0], input_deltas[1]);
        let mut out = ZSet::new();
        for (l, w) in left_delta {
            let Some(key) = join_key(&self.left_keys, l) else {
                if self.preserve_left {
                    out.push(l.pad_nulls(self.right_width, false), *w);
                    add_weight(&mut self.left_unmatchable, l, *w);
                }
                continue;
            };
            let mut partners = 0;
            let residual = &self.residual;
            for r in self.right.get_mut(&key) {
                let joined = l.concat(&r.row);
                if residual
                    .as_ref()
                    .is_some_and(|p| p.eval_truth(&joined) != Some(true))
                {
                    continue;
                }
                out.push(joined, w * r.weight);
                partners += r.weight;
                if self.preserve_right {
                    let before = r.matches;
                    r.matches += w;
                    if before == 0 && r.matches != 0 {
                        out.push(r.row.pad_nulls(self.left_width, true), -r.weight);
                    } else if before != 0 && r.matches == 0 {
                        out.push(r.row.pad_nulls(self.left_width, true), r.weight);
                    }
                }
            }
            if self.preserve_left && partners == 0 {
                out.push(l.pad_nulls(self.right_width, false), *w);
            }
            self.left.add(key, l, *w, partners);
        }
        for (r, w) in right_delta {
            let Some(key) = join_key(&self.right_keys, r) else {
                if self.preserve_right {
                    out.push(r.pad_nulls(self.left_width, true), *w);
                    add_weight(&mut self.right_unmatchable, r, *w);
                }
                continue;
            };
            let mut partners = 0;
            let residual = &self.residual;
            for l in self.left.get_mut(&key) {
                let joined = l.row.concat(r);
                if residual
                    .as_ref()
                    .is_some_and(|p| p.eval_truth(&joined) != Some(true))
                {
                    continue;
                }
                out.push(joined, l.weight * w);
                partners += l.weight;
                if self.preserve_left {
                    let before = l.matches;
                    l.matches += w;
                    if before == 0 && l.matches != 0 {
                        out.push(l.row.pad_nulls(self.right_width, false), -l.weight);
                    } else if before != 0 && l.matches == 0 {
                        out.push(l.row.pad_nulls(self.right_width, false), l.weight);
                    }
                }
            }
            if self.preserve_right && partners == 0 {
                out.push(r.pad_nulls(self.left_width, true), *w);
            }
            self.right.add(key, r, *w, partners);
        }
        out
    }

    fn current_output(&self) -> Option<ZSet> {
        let mut out = ZSet::new();
        for (key, ls) in self.left.iter() {
            let rs = self.right.get(key);
            for l in ls {
                for r in rs {
                    let joined = l.row.concat(&r.row);
                    if self.matches(&joined) {
                        out.push(joined, l.weight * r.weight);
                    }
                }
                if self.preserve_left && l.matches == 0 {
                    out.push(l.row.pad_nulls(self.right_width, false), l.weight);
                }
            }
        }
        if self.preserve_right {
            for (_, rs) in self.right.iter() {
                for r in rs.iter().filter(|r| r.matches == 0) {
                    out.push(r.row.pad_nulls(self.left_width, true), r.weight);
                }
            }
        }
        for (l, w) in &self.left_unmatchable {
            out.push(l.pad_nulls(self.right_width, false), *w);
        }
        for (r, w) in &self.right_unmatchable {
            out.push(r.pad_nulls(self.left_width, true), *w);
        }
        Some(out)
    }

    fn state_bytes(&self) -> usize {
        self.left.state_bytes()
            + self.right.state_bytes()
            + (self.left_unmatchable.capacity() + self.right_unmatchable.capacity())
                * (ENTRY_BYTES + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expr::BinaryOp;
    use crate::value::Value;
    use crate::{row, zset};

    /// Outer join from scratch: the oracle for the incremental rule.
    fn reference(l: &ZSet, r: &ZSet, residual: &Option<Expr>, p: Preserve) -> ZSet {
        let (l, r) = (l.clone().consolidated(), r.clone().consolidated());
        let ok = |a: &Row, b: &Row| {
            let j = a.concat(b);
            !a[0].is_null()
                && a[0] == b[0]
                && residual
                    .as_ref()
                    .is_none_or(|e| e.eval_truth(&j) == Some(true))
        };
        let mut out = ZSet::new();
        for (a, wa) in &l {
            let mut any = false;
            for (b, wb) in &r {
                if ok(a, b) {
                    out.push(a.concat(b), wa * wb);
                    any = true;
                }
            }
            if p.left && !any {
                out.push(a.pad_nulls(2, false), *wa);
            }
        }
        if p.right {
            for (b, wb) in &r {
                if !l.iter().any(|(a, _)| ok(a, b)) {
                    out.push(b.pad_nulls(2, true), *wb);
                }
            }
        }
        out.consolidated()
    }

    #[test]
    fn full_join_with_residual_matches_the_reference() {
        let residual = Some(Expr::binary(BinaryOp::Lt, Expr::col(1), Expr::col(3)));
        for preserve in [
            Preserve {
                left: true,
                right: false,
            },
            Preserve {
                left: false,
                right: true,
            },
            Preserve {
                left: true,
                right: true,
            },
        ] {
            let mut j = OuterJoin::new(
                vec![Expr::col(0)],
                vec![Expr::col(0)],
                residual.clone(),
                preserve,
                (2, 2),
            );
            let null = Value::Null;
            let steps = [
                (zset! { row![1, 5] => 1, row![2, 1] => 1 }, ZSet::new()),
                (
                    ZSet::new(),
                    zset! { row![1, 9] => 1, row![1, 3] => 1, row![3, 0] => 1 },
                ),
                (
                    zset! { row![1, 5] => 1, row![null.clone(), 1] => 1 },
                    zset! { row![2, 0] => 1 },
                ),
                (ZSet::new(), zset! { row![1, 9] => -1 }),
                (
                    zset! { row![1, 5] => -2 },
                    zset! { row![2, 4] => 1, row![null, 7] => 1 },
                ),
                (zset! { row![2, 1] => -1 }, zset! { row![1, 3] => -1 }),
            ];
            let (mut l, mut r, mut out) = (ZSet::new(), ZSet::new(), ZSet::new());
            for (dl, dr) in &steps {
                out.extend_from(&j.step(&[dl, dr]));
                l.extend_from(dl);
                r.extend_from(dr);
                let expected = reference(&l, &r, &residual, preserve);
                assert_eq!(out.clone().consolidated(), expected, "{preserve:?}");
                assert_eq!(j.current_output().unwrap().consolidated(), expected);
            }
        }
    }
}
