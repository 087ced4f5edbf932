//! Orderings over rows, for top-k state and ordered views.
//!
//! An [`OrderSpec`] compares rows by its keys (direction and NULL placement per key;
//! numbers by value, so that an integer and a real of one value tie and the next key
//! decides, as in SQL) and then by the whole row, so it is a total order: equal rows
//! are the only ties,
//! and which rows fill a LIMIT window never depends on arrival order. [`OrdRow`]
//! carries its spec so that rows can live in a `BTreeMap`, and a copy of its first
//! sort value, so that most comparisons in a large ordered state are decided without
//! following the pointer to the row.

use std::cmp::Ordering;
use std::sync::Arc;

use crate::plan::SortKey;
use crate::row::Row;
use crate::value::Value;

/// A total order on rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderSpec {
    keys: Vec<SortKey>,
}

impl OrderSpec {
    /// An order by `keys`, then by the whole row.
    pub fn new(keys: Vec<SortKey>) -> OrderSpec {
        OrderSpec { keys }
    }

    /// Compares two rows.
    pub fn compare(&self, a: &Row, b: &Row) -> Ordering {
        for k in &self.keys {
            let o = compare_key(k, &a.get(k.column), &b.get(k.column));
            if o != Ordering::Equal {
                return o;
            }
        }
        a.cmp(b)
    }

    /// The value of `row` that orders it first (NULL when the order has no keys).
    fn first_value(&self, row: &Row) -> Value {
        self.keys.first().map_or(Value::Null, |k| row.get(k.column).into_owned())
    }
}

/// Compares two values of one sort key.
fn compare_key(k: &SortKey, x: &Value, y: &Value) -> Ordering {
    match (x.is_null(), y.is_null()) {
        (true, true) => Ordering::Equal,
        (true, false) if k.nulls_first => Ordering::Less,
        (true, false) => Ordering::Greater,
        (false, true) if k.nulls_first => Ordering::Greater,
        (false, true) => Ordering::Less,
        (false, false) if k.descending => x.sort_cmp(y).reverse(),
        (false, false) => x.sort_cmp(y),
    }
}

/// A row ordered by a shared [`OrderSpec`].
#[derive(Debug, Clone)]
pub struct OrdRow {
    /// The row.
    pub row: Row,
    /// The row's first sort value, kept beside the pointer.
    first: Value,
    spec: Arc<OrderSpec>,
}

impl OrdRow {
    /// `row` under `spec`.
    pub fn new(row: Row, spec: &Arc<OrderSpec>) -> OrdRow {
        OrdRow { first: spec.first_value(&row), row, spec: Arc::clone(spec) }
    }
}

impl PartialEq for OrdRow {
    fn eq(&self, other: &Self) -> bool {
        self.row == other.row
    }
}

impl Eq for OrdRow {}

impl Ord for OrdRow {
    fn cmp(&self, other: &Self) -> Ordering {
        if let Some(k) = self.spec.keys.first() {
            let o = compare_key(k, &self.first, &other.first);
            if o != Ordering::Equal {
                return o;
            }
        }
        self.spec.compare(&self.row, &other.row)
    }
}

impl PartialOrd for OrdRow {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::row;

    #[test]
    fn directions_and_nulls() {
        let spec = OrderSpec::new(vec![
            SortKey { column: 0, descending: true, nulls_first: false },
            SortKey { column: 1, descending: false, nulls_first: true },
        ]);
        let mut rows = vec![row![1, 2], row![None::<i64>, 0], row![3, 1], row![1, None::<i64>], row![3, 0]];
        rows.sort_by(|a, b| spec.compare(a, b));
        assert_eq!(rows, vec![row![3, 0], row![3, 1], row![1, None::<i64>], row![1, 2], row![None::<i64>, 0]]);
    }
}
