//! `key IN (subquery)`, as a column: each input row with one more value, SQL's
//! three-valued answer to whether its key is among the subquery's values.
//!
//! - TRUE when some value of the set equals the key;
//! - FALSE when the set is empty (whatever the key), or when the key is not NULL, no
//!   value equals it, and the set holds no NULL;
//! - NULL otherwise (a NULL key, or no match but a NULL in the set).
//!
//! State: the set's values with their multiplicities (and how many NULLs, and in all),
//! and the input rows indexed by key. A change to the set changes the answer only for
//! rows whose key's presence flipped — unless the set's NULLs or its emptiness flipped,
//! which can change every row (rare: then every row is re-answered).

use hashbrown::HashMap;

use crate::expr::Expr;
use crate::row::Row;
use crate::value::Value;
use crate::zset::{Weight, ZSet};

use super::{ENTRY_BYTES, Operator};

/// The set's summary an answer depends on, besides the key's own presence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Summary {
    has_null: bool,
    empty: bool,
}

fn answer(key: &Value, present: bool, s: Summary) -> Value {
    if s.empty {
        Value::Bool(false)
    } else if key.is_null() {
        Value::Null
    } else if present {
        Value::Bool(true)
    } else if s.has_null {
        Value::Null
    } else {
        Value::Bool(false)
    }
}

/// Marks input rows with whether their key is in the set.
#[derive(Debug)]
pub struct InSet {
    key: Expr,
    /// Non-NULL values of the set and their multiplicities.
    values: HashMap<Value, Weight>,
    nulls: Weight,
    total: Weight,
    /// Input rows by key, with their multiplicities.
    rows: HashMap<Value, HashMap<Row, Weight>>,
}

impl InSet {
    /// Marks rows by whether `key` (of an input row) is in the set.
    pub fn new(key: Expr) -> InSet {
        InSet { key, values: HashMap::new(), nulls: 0, total: 0, rows: HashMap::new() }
    }

    fn summary(&self) -> Summary {
        Summary { has_null: self.nulls > 0, empty: self.total == 0 }
    }

    fn present(&self, key: &Value) -> bool {
        !key.is_null() && self.values.get(key).is_some_and(|&n| n > 0)
    }

    fn marked(row: &Row, mark: Value) -> Row {
        let mut values = row.to_vec();
        values.push(mark);
        Row::new(values)
    }
}

impl Operator for InSet {
    fn step(&mut self, input_deltas: &[&ZSet]) -> ZSet {
        let mut out = ZSet::new();
        // The set first, answering again the stored rows it changes.
        let before = self.summary();
        let mut flipped: Vec<Value> = Vec::new();
        for (row, w) in input_deltas[1] {
            let v = row.get(0).into_owned();
            self.total += w;
            if v.is_null() {
                self.nulls += w;
                continue;
            }
            let count = self.values.entry(v.clone()).or_insert(0);
            let was = *count > 0;
            *count += w;
            let is = *count > 0;
            if *count == 0 {
                self.values.remove(&v);
            }
            if was != is && !flipped.contains(&v) {
                flipped.push(v);
            } else if was != is {
                flipped.retain(|f| *f != v);
            }
        }
        let after = self.summary();
        let answer_again = |key: &Value, rows: &HashMap<Row, Weight>, was_present: bool, out: &mut ZSet, me: &Self| {
            let old = answer(key, was_present, before);
            let new = answer(key, me.present(key), after);
            if old != new {
                for (r, &w) in rows {
                    out.push(Self::marked(r, old.clone()), -w);
                    out.push(Self::marked(r, new.clone()), w);
                }
            }
        };
        if before != after {
            for (key, rows) in &self.rows {
                let was_present = self.present(key) != flipped.contains(key);
                answer_again(key, rows, was_present, &mut out, self);
            }
        } else {
            for key in &flipped {
                if let Some(rows) = self.rows.get(key) {
                    answer_again(key, rows, !self.present(key), &mut out, self);
                }
            }
        }
        // Then the input rows, answered against the set as it now is.
        for (row, w) in input_deltas[0] {
            let key = self.key.eval(row);
            out.push(Self::marked(row, answer(&key, self.present(&key), after)), *w);
            let bucket = self.rows.entry(key.clone()).or_default();
            let n = bucket.entry(row.clone()).or_insert(0);
            *n += w;
            if *n == 0 {
                bucket.remove(row);
                if bucket.is_empty() {
                    self.rows.remove(&key);
                }
            }
        }
        out
    }

    fn current_output(&self) -> Option<ZSet> {
        let s = self.summary();
        let mut out = ZSet::new();
        for (key, rows) in &self.rows {
            let mark = answer(key, self.present(key), s);
            for (r, &w) in rows {
                out.push(Self::marked(r, mark.clone()), w);
            }
        }
        Some(out)
    }

    fn state_bytes(&self) -> usize {
        self.values.capacity() * (std::mem::size_of::<(Value, Weight)>() + 1)
            + self.rows.values().map(|b| b.capacity() * (ENTRY_BYTES + 1)).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::row;

    fn z(rows: &[(Row, Weight)]) -> ZSet {
        let mut z = ZSet::new();
        for (r, w) in rows {
            z.push(r.clone(), *w);
        }
        z
    }

    /// The answers for `rows` against `set`, from scratch.
    fn reference(rows: &[Row], set: &[Value]) -> Vec<Row> {
        let mut out: Vec<Row> = rows
            .iter()
            .map(|r| {
                let k = r.get(0).into_owned();
                let present = !k.is_null() && set.contains(&k);
                let s = Summary { has_null: set.iter().any(Value::is_null), empty: set.is_empty() };
                InSet::marked(r, answer(&k, present, s))
            })
            .collect();
        out.sort();
        out
    }

    fn contents(op_out: &ZSet) -> Vec<Row> {
        let mut acc: HashMap<Row, Weight> = HashMap::new();
        for (r, w) in op_out {
            *acc.entry(r.clone()).or_default() += w;
        }
        let mut out = Vec::new();
        for (r, w) in acc {
            assert!(w >= 0, "negative multiplicity for {r}");
            out.extend(std::iter::repeat_n(r, w as usize));
        }
        out.sort();
        out
    }

    #[test]
    fn answers_follow_the_set_through_nulls_and_emptiness() {
        let mut op = InSet::new(Expr::Column(0));
        let rows = [row![1], row![2], row![Value::Null], row![3]];
        let mut total = ZSet::new();
        let mut set: Vec<Value> = Vec::new();
        type Step = (Vec<(Row, Weight)>, Vec<(Value, Weight)>);
        let steps: Vec<Step> = vec![
            (rows.iter().map(|r| (r.clone(), 1)).collect(), vec![]),
            (vec![], vec![(Value::Int(2), 1)]),
            (vec![], vec![(Value::Null, 1)]),
            (vec![(row![4], 1)], vec![(Value::Int(4), 1), (Value::Int(2), -1)]),
            (vec![], vec![(Value::Null, -1)]),
            (vec![(row![1], -1)], vec![(Value::Int(4), -1)]),
        ];
        let mut live: Vec<Row> = Vec::new();
        for (drows, dset) in steps {
            for (r, w) in &drows {
                if *w > 0 {
                    live.push(r.clone());
                } else {
                    let i = live.iter().position(|x| x == r).unwrap();
                    live.remove(i);
                }
            }
            for (v, w) in &dset {
                if *w > 0 {
                    set.push(v.clone());
                } else {
                    let i = set.iter().position(|x| x == v).unwrap();
                    set.remove(i);
                }
            }
            let dset_z = z(&dset.iter().map(|(v, w)| (row![v.clone()], *w)).collect::<Vec<_>>());
            let out = op.step(&[&z(&drows), &dset_z]);
            for (r, w) in &out {
                total.push(r.clone(), *w);
            }
            assert_eq!(contents(&total), reference(&live, &set));
        }
    }
}
