//! A keyed bag of rows: the state of one side of a join.
//!
//! Rows are grouped by key; each key holds its distinct rows with their weights and a
//! per-row counter the outer join uses for "how many partners match". Keys with no
//! rows left are removed, so the index holds exactly the current input.

use hashbrown::HashMap;
use hashbrown::hash_map::Entry;

use crate::expr::Expr;
use crate::row::Row;
use crate::value::Value;
use crate::zset::Weight;

use super::ENTRY_BYTES;

/// One stored row: its weight and, for outer joins, its number of matching partners.
#[derive(Debug, Clone)]
pub(crate) struct Stored {
    pub row: Row,
    pub weight: Weight,
    pub matches: Weight,
}

/// Rows by join key.
#[derive(Debug, Default)]
pub(crate) struct KeyedBag {
    buckets: HashMap<Row, Vec<Stored>>,
    rows: usize,
}

impl KeyedBag {
    /// The rows under `key`.
    pub fn get(&self, key: &Row) -> &[Stored] {
        self.buckets.get(key).map_or(&[], Vec::as_slice)
    }

    /// The rows under `key`, mutably.
    pub fn get_mut(&mut self, key: &Row) -> &mut [Stored] {
        self.buckets.get_mut(key).map_or(&mut [], Vec::as_mut_slice)
    }

    /// Adds `weight` to `row` under `key`; a row new to the bag starts with `matches`.
    /// Rows whose weight reaches zero are dropped, and so are keys left empty.
    pub fn add(&mut self, key: Row, row: &Row, weight: Weight, matches: Weight) {
        match self.buckets.entry(key) {
            Entry::Occupied(mut o) => {
                let bucket = o.get_mut();
                match bucket.iter().position(|e| e.row == *row) {
                    Some(i) => {
                        bucket[i].weight += weight;
                        if bucket[i].weight == 0 {
                            bucket.swap_remove(i);
                            self.rows -= 1;
                            if bucket.is_empty() {
                                o.remove();
                            }
                        }
                    }
                    None => {
                        bucket.push(Stored {
                            row: row.clone(),
                            weight,
                            matches,
                        });
                        self.rows += 1;
                    }
                }
            }
            Entry::Vacant(v) => {
                v.insert(vec![Stored {
                    row: row.clone(),
                    weight,
                    matches,
                }]);
                self.rows += 1;
            }
        }
    }

    /// Every (key, rows) pair.
    pub fn iter(&self) -> impl Iterator<Item = (&Row, &[Stored])> {
        self.buckets.iter().map(|(k, v)| (k, v.as_slice()))
    }

    /// Approximate heap bytes.
    pub fn state_bytes(&self) -> usize {
        self.buckets.capacity()
            * (std::mem::size_of::<Row>() + std::mem::size_of::<Vec<Stored>>() + 1)
            + self.rows * (ENTRY_BYTES + std::mem::size_of::<Weight>())
    }
}

/// The join key of `row`: `keys` evaluated on it, or `None` if a key value is NULL
/// (NULL never equals anything, so such a row has no partner).
pub(crate) fn join_key(keys: &[Expr], row: &[Value]) -> Option<Row> {
    let mut values = Vec::with_capacity(keys.len());
    for k in keys {
        let v = k.eval(row);
        if v.is_null() {
            return None;
        }
        values.push(v);
    }
    Some(Row::new(values))
}
