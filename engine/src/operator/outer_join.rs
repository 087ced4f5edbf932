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

use super::index::{Counts, KeyedBag, Tally, join_key};
use super::join::Emit;
use super::{ENTRY_BYTES, Operator};

/// An outer equi-join.
#[derive(Debug)]
pub struct OuterJoin {
    left_keys: Vec<Expr>,
    right_keys: Vec<Expr>,
    residual: Option<Expr>,
    preserve_left: bool,
    preserve_right: bool,
    emit: Emit,
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
    /// A join on `left_keys[i] = right_keys[i]` and `residual` (over the whole joined
    /// row), preserving the sides `preserve` names, emitting `emit`'s columns.
    pub fn new(
        left_keys: Vec<Expr>,
        right_keys: Vec<Expr>,
        residual: Option<Expr>,
        preserve: Preserve,
        emit: Emit,
    ) -> OuterJoin {
        assert_eq!(left_keys.len(), right_keys.len(), "join keys come in pairs");
        OuterJoin {
            left: KeyedBag::new(left_keys.clone()),
            right: KeyedBag::new(right_keys.clone()),
            left_keys,
            right_keys,
            residual,
            preserve_left: preserve.left,
            preserve_right: preserve.right,
            emit,
            left_unmatchable: HashMap::new(),
            right_unmatchable: HashMap::new(),
        }
    }
}

/// Moves a preserved row's match count by `w`; when the count crosses zero, the row's
/// NULL-extended form (`padded`) is retracted or restored.
fn shift_matches(c: &mut Counts, w: Weight, padded: impl FnOnce() -> Row, out: &mut ZSet) {
    let before = c.matches();
    c.add_matches(w);
    if before == 0 && c.matches() != 0 {
        out.push(padded(), -c.weight());
    } else if before != 0 && c.matches() == 0 {
        out.push(padded(), c.weight());
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
        let (preserve_left, preserve_right) = (self.preserve_left, self.preserve_right);
        let residual = &self.residual;
        let emit = &self.emit;
        // The pair's output row if it satisfies the residual condition.
        let matched = |l: &Row, r: &Row| -> Option<Row> {
            match residual {
                None => Some(emit.pair(l, r)),
                Some(p) => (p.eval_truth(&l.concat(r)) == Some(true)).then(|| emit.pair(l, r)),
            }
        };
        let mut out = ZSet::new();
        for (l, w) in left_delta {
            let Some(key) = join_key(&self.left_keys, l) else {
                if preserve_left {
                    out.push(emit.left_only(l), *w);
                    add_weight(&mut self.left_unmatchable, l, *w);
                }
                continue;
            };
            let mut partners = 0;
            self.right.for_each_mut(&key, |r, c| {
                let Some(joined) = matched(l, r) else { return };
                out.push(joined, w * c.weight());
                partners += c.weight();
                if preserve_right {
                    shift_matches(c, *w, || emit.right_only(r), &mut out);
                }
            });
            if preserve_left && partners == 0 {
                out.push(emit.left_only(l), *w);
            }
            self.left.add(&key, l, *w, partners);
        }
        for (r, w) in right_delta {
            let Some(key) = join_key(&self.right_keys, r) else {
                if preserve_right {
                    out.push(emit.right_only(r), *w);
                    add_weight(&mut self.right_unmatchable, r, *w);
                }
                continue;
            };
            let mut partners = 0;
            self.left.for_each_mut(&key, |l, c| {
                let Some(joined) = matched(l, r) else { return };
                out.push(joined, c.weight() * w);
                partners += c.weight();
                if preserve_left {
                    shift_matches(c, *w, || emit.left_only(l), &mut out);
                }
            });
            if preserve_right && partners == 0 {
                out.push(emit.right_only(r), *w);
            }
            self.right.add(&key, r, *w, partners);
        }
        out
    }

    fn current_output(&self) -> Option<ZSet> {
        let mut out = ZSet::new();
        let passes = |l: &Row, r: &Row| self.residual.as_ref().is_none_or(|p| p.eval_truth(&l.concat(r)) == Some(true));
        self.left.for_each_key(|key, ls| {
            for (l, lc) in ls {
                self.right.for_each(key, |r, rc| {
                    if passes(l, r) {
                        out.push(self.emit.pair(l, r), lc.weight() * rc.weight());
                    }
                });
                if self.preserve_left && lc.matches() == 0 {
                    out.push(self.emit.left_only(l), lc.weight());
                }
            }
        });
        if self.preserve_right {
            self.right.for_each_key(|_, rs| {
                for (r, rc) in rs.filter(|(_, c)| c.matches() == 0) {
                    out.push(self.emit.right_only(r), rc.weight());
                }
            });
        }
        for (l, w) in &self.left_unmatchable {
            out.push(self.emit.left_only(l), *w);
        }
        for (r, w) in &self.right_unmatchable {
            out.push(self.emit.right_only(r), *w);
        }
        Some(out)
    }

    fn state_bytes(&self) -> usize {
        self.left.state_bytes()
            + self.right.state_bytes()
            + (self.left_unmatchable.capacity() + self.right_unmatchable.capacity()) * (ENTRY_BYTES + 1)
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
            !a.get(0).is_null()
                && *a.get(0) == *b.get(0)
                && residual.as_ref().is_none_or(|e| e.eval_truth(&j) == Some(true))
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
                out.push(a.concat(&[Value::Null, Value::Null]), *wa);
            }
        }
        if p.right {
            for (b, wb) in &r {
                if !l.iter().any(|(a, _)| ok(a, b)) {
                    out.push(Row::new(vec![Value::Null, Value::Null]).concat(b), *wb);
                }
            }
        }
        out.consolidated()
    }

    #[test]
    fn full_join_with_residual_matches_the_reference() {
        let residual = Some(Expr::binary(BinaryOp::Lt, Expr::col(1), Expr::col(3)));
        for preserve in [
            Preserve { left: true, right: false },
            Preserve { left: false, right: true },
            Preserve { left: true, right: true },
        ] {
            let mut j =
                OuterJoin::new(vec![Expr::col(0)], vec![Expr::col(0)], residual.clone(), preserve, Emit::all(2, 2));
            let null = Value::Null;
            let steps = [
                (zset! { row![1, 5] => 1, row![2, 1] => 1 }, ZSet::new()),
                (ZSet::new(), zset! { row![1, 9] => 1, row![1, 3] => 1, row![3, 0] => 1 }),
                (zset! { row![1, 5] => 1, row![null.clone(), 1] => 1 }, zset! { row![2, 0] => 1 }),
                (ZSet::new(), zset! { row![1, 9] => -1 }),
                (zset! { row![1, 5] => -2 }, zset! { row![2, 4] => 1, row![null, 7] => 1 }),
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
