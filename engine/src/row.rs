//! Rows: immutable, shared slices of values.
//!
//! A [`Row`] is an `Arc<[Value]>`, so the same row can sit in a table, in a join's
//! index and in a view at the cost of a pointer each. Operators never mutate a row;
//! they build new ones (projections, join outputs).

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use crate::value::Value;

/// An immutable row of values.
#[derive(Clone, Eq, Hash, PartialOrd, Ord)]
pub struct Row(Arc<[Value]>);

impl Row {
    /// A row of `values`.
    pub fn new(values: Vec<Value>) -> Row {
        Row(values.into())
    }

    /// The empty row (the key of a cross join, the input of a constant query).
    pub fn empty() -> Row {
        Row(Arc::from(Vec::new()))
    }

    /// `self` followed by `other`.
    pub fn concat(&self, other: &[Value]) -> Row {
        Row(self.iter().chain(other.iter()).cloned().collect())
    }

    /// The values at `columns`, in that order.
    pub fn project(&self, columns: &[usize]) -> Row {
        Row(columns.iter().map(|&c| self[c].clone()).collect())
    }

    /// `n` NULLs followed by `self` (`prepend = true`) or `self` followed by `n` NULLs.
    pub fn pad_nulls(&self, n: usize, prepend: bool) -> Row {
        let nulls = std::iter::repeat_n(Value::Null, n);
        if prepend {
            Row(nulls.chain(self.iter().cloned()).collect())
        } else {
            Row(self.iter().cloned().chain(nulls).collect())
        }
    }

    /// Whether two handles share one allocation.
    pub fn ptr_eq(&self, other: &Row) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl PartialEq for Row {
    fn eq(&self, other: &Row) -> bool {
        self.ptr_eq(other) || self.0 == other.0
    }
}

impl Deref for Row {
    type Target = [Value];
    fn deref(&self) -> &[Value] {
        &self.0
    }
}

impl From<Vec<Value>> for Row {
    fn from(values: Vec<Value>) -> Row {
        Row::new(values)
    }
}

impl FromIterator<Value> for Row {
    fn from_iter<I: IntoIterator<Item = Value>>(iter: I) -> Row {
        Row(iter.into_iter().collect())
    }
}

impl fmt::Debug for Row {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// `(v1, v2, …)` with values in SQL literal form.
impl fmt::Display for Row {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(")?;
        for (i, v) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{v}")?;
        }
        f.write_str(")")
    }
}

/// A [`Row`] from values that convert into [`Value`]: `row![1, "a", 2.5, None::<i64>]`.
#[macro_export]
macro_rules! row {
    ($($v:expr),* $(,)?) => {
        $crate::Row::new(vec![$($crate::Value::from($v)),*])
    };
}

impl From<&Row> for Row {
    fn from(row: &Row) -> Row {
        row.clone()
    }
}
