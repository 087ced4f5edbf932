//! Rows: immutable, shared slices of values.
//!
//! A [`Row`] is a thin pointer (8 bytes) to one allocation holding a reference count,
//! the row's hash, its length and its values, so the same row can sit in a table, in a
//! join's index and in a view at the cost of a pointer each. The hash is computed the
//! first time the row is hashed and kept, so a row moving through several hash maps is
//! hashed once, and two rows with different hashes compare unequal without looking at
//! their values. Operators never mutate a row; they build new ones.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher};
use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};

use triomphe::ThinArc;

use crate::value::Value;

/// The hasher rows hash their values with: seeded once per process, so a row's hash
/// is the same in every map.
fn row_hasher() -> impl Hasher {
    static STATE: std::sync::OnceLock<hashbrown::DefaultHashBuilder> = std::sync::OnceLock::new();
    STATE.get_or_init(hashbrown::DefaultHashBuilder::default).build_hasher()
}

/// An immutable row of values.
pub struct Row(ThinArc<AtomicU64, Value>);

const UNHASHED: u64 = 0;

impl Row {
    /// A row of `values`.
    pub fn new(values: Vec<Value>) -> Row {
        Row(ThinArc::from_header_and_iter(AtomicU64::new(UNHASHED), values.into_iter()))
    }

    /// The empty row (the key of a cross join, the input of a constant query).
    pub fn empty() -> Row {
        Row::new(Vec::new())
    }

    /// `self` followed by `other`.
    pub fn concat(&self, other: &[Value]) -> Row {
        Row::from_exact(self.iter().chain(other.iter()).cloned(), self.len() + other.len())
    }

    /// The values at `columns`, in that order.
    pub fn project(&self, columns: &[usize]) -> Row {
        Row::from_exact(columns.iter().map(|&c| self[c].clone()), columns.len())
    }

    /// A row of exactly `len` values from `values`.
    fn from_exact(values: impl Iterator<Item = Value>, len: usize) -> Row {
        Row(ThinArc::from_header_and_iter(AtomicU64::new(UNHASHED), ExactLen { inner: values, left: len }))
    }

    /// Whether two handles share one allocation.
    pub fn ptr_eq(&self, other: &Row) -> bool {
        std::ptr::eq(&self.0.slice, &other.0.slice)
    }

    /// The row's hash (computed on first use).
    #[inline]
    pub fn hash_value(&self) -> u64 {
        let cached = self.0.header.header.load(AtomicOrdering::Relaxed);
        if cached != UNHASHED {
            return cached;
        }
        let mut h = row_hasher();
        self.0.slice.hash(&mut h);
        let hash = h.finish() | 1;
        self.0.header.header.store(hash, AtomicOrdering::Relaxed);
        hash
    }
}

/// An iterator of known length (`ThinArc` needs the length up front).
struct ExactLen<I> {
    inner: I,
    left: usize,
}

impl<I: Iterator> Iterator for ExactLen<I> {
    type Item = I::Item;
    fn next(&mut self) -> Option<I::Item> {
        let item = self.inner.next();
        if item.is_some() {
            self.left -= 1;
        }
        item
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl<I: Iterator> ExactSizeIterator for ExactLen<I> {}

impl Clone for Row {
    #[inline]
    fn clone(&self) -> Row {
        Row(self.0.clone())
    }
}

impl PartialEq for Row {
    #[inline]
    fn eq(&self, other: &Row) -> bool {
        if self.ptr_eq(other) {
            return true;
        }
        let (a, b) =
            (self.0.header.header.load(AtomicOrdering::Relaxed), other.0.header.header.load(AtomicOrdering::Relaxed));
        if a != UNHASHED && b != UNHASHED && a != b {
            return false;
        }
        self.0.slice == other.0.slice
    }
}

impl Eq for Row {}

impl Hash for Row {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash_value());
    }
}

impl PartialOrd for Row {
    fn partial_cmp(&self, other: &Row) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Row {
    fn cmp(&self, other: &Row) -> Ordering {
        self.0.slice.cmp(&other.0.slice)
    }
}

impl Deref for Row {
    type Target = [Value];
    #[inline]
    fn deref(&self) -> &[Value] {
        &self.0.slice
    }
}

impl From<Vec<Value>> for Row {
    fn from(values: Vec<Value>) -> Row {
        Row::new(values)
    }
}

impl FromIterator<Value> for Row {
    fn from_iter<I: IntoIterator<Item = Value>>(iter: I) -> Row {
        let iter = iter.into_iter();
        match iter.size_hint() {
            (lo, Some(hi)) if lo == hi => Row::from_exact(iter, lo),
            _ => Row::new(iter.collect()),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_thin_and_hash_by_value() {
        assert_eq!(std::mem::size_of::<Row>(), 8);
        let a = crate::row![1, "x", 2.5];
        let b: Row = vec![Value::Int(1), Value::text("x"), Value::Float(2.5)].into_iter().collect();
        assert_eq!(a, b);
        assert_eq!(a.hash_value(), b.hash_value());
        assert_ne!(a, crate::row![1, "y", 2.5]);
        assert!(a < crate::row![1, "y", 2.5]);
        assert_eq!(a.project(&[2, 0]), crate::row![2.5, 1]);
        assert_eq!(a.concat(&[Value::Null]).len(), 4);
        let filtered: Row = a.iter().filter(|v| !matches!(v, Value::Text(_))).cloned().collect();
        assert_eq!(filtered, crate::row![1, 2.5]);
    }
}
