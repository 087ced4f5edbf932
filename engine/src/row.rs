//! Rows: immutable, shared slices of values.
//!
//! A [`Row`] is a thin pointer (8 bytes) to one allocation holding a 16-byte header —
//! reference count, length and the row's hash — and then its values, so the same row
//! can sit in a table, in a join's index and in a view at the cost of a pointer each.
//! The hash is computed the first time the row is hashed and kept, so a row moving
//! through several hash maps is hashed once, and two rows with different hashes
//! compare unequal without looking at their values. Operators never mutate a row;
//! they build new ones.
//!
//! The allocation is written here rather than taken from an `Arc<[Value]>`-like crate
//! because every stored row pays for its header: a 32-bit count and length keep it at
//! 16 bytes (a five-value row is 96 bytes, not 112), and a row cannot be shared four
//! billion times in memory anyway.

use std::alloc::{Layout, alloc, dealloc, handle_alloc_error};
use std::cmp::Ordering;
use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher};
use std::ops::Deref;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering as AtomicOrdering, fence};

use crate::value::Value;

/// The hasher rows hash their values with: seeded once per process, so a row's hash
/// is the same in every map.
fn row_hasher() -> impl Hasher {
    static STATE: std::sync::OnceLock<hashbrown::DefaultHashBuilder> = std::sync::OnceLock::new();
    STATE.get_or_init(hashbrown::DefaultHashBuilder::default).build_hasher()
}

/// What precedes a row's values in its allocation.
#[repr(C)]
struct Header {
    count: AtomicU32,
    len: u32,
    hash: AtomicU64,
}

/// Where the values start, and the layout of a row of `len` values.
fn layout(len: usize) -> (Layout, usize) {
    let values = Layout::array::<Value>(len).expect("a row's size fits in memory");
    let (layout, offset) = Layout::new::<Header>().extend(values).expect("a row's size fits in memory");
    (layout.pad_to_align(), offset)
}

/// An immutable row of values.
pub struct Row(NonNull<Header>);

// SAFETY: a row is an immutable slice of values shared by an atomic count (as in
// `Arc<[Value]>`); values are `Send + Sync`, and the cached hash is atomic.
unsafe impl Send for Row {}
// SAFETY: as above.
unsafe impl Sync for Row {}

const UNHASHED: u64 = 0;

impl Row {
    /// A row of `values`.
    pub fn new(values: Vec<Value>) -> Row {
        let len = values.len();
        Row::from_exact(values.into_iter(), len)
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

    /// A row of the `len` values `values` yields (it must yield exactly that many).
    fn from_exact(values: impl Iterator<Item = Value>, len: usize) -> Row {
        let len32 = u32::try_from(len).expect("a row has fewer than 2^32 values");
        let (layout, offset) = layout(len);
        // SAFETY: the layout has a non-zero size (the header).
        let raw = unsafe { alloc(layout) };
        let Some(header) = NonNull::new(raw.cast::<Header>()) else { handle_alloc_error(layout) };
        // The values are written one by one; should the iterator panic or end early,
        // the guard drops those written and frees the allocation.
        struct Partial {
            raw: *mut u8,
            layout: Layout,
            first: *mut Value,
            written: usize,
        }
        impl Drop for Partial {
            fn drop(&mut self) {
                // SAFETY: `written` values were initialized at `first`, in `raw`.
                unsafe {
                    std::ptr::drop_in_place(std::ptr::slice_from_raw_parts_mut(self.first, self.written));
                    dealloc(self.raw, self.layout);
                }
            }
        }
        // SAFETY: `offset` lies within the allocation (Layout::extend).
        let first = unsafe { raw.add(offset) }.cast::<Value>();
        let mut partial = Partial { raw, layout, first, written: 0 };
        for v in values.take(len) {
            // SAFETY: slot `written` < len is within the allocation and not yet written.
            unsafe { first.add(partial.written).write(v) };
            partial.written += 1;
        }
        assert_eq!(partial.written, len, "a row's iterator yielded fewer values than announced");
        std::mem::forget(partial);
        // SAFETY: the header's slot is within the allocation and suitably aligned.
        unsafe { header.write(Header { count: AtomicU32::new(1), len: len32, hash: AtomicU64::new(UNHASHED) }) };
        Row(header)
    }

    #[inline]
    fn header(&self) -> &Header {
        // SAFETY: the header lives as long as any handle.
        unsafe { self.0.as_ref() }
    }

    /// Whether two handles share one allocation.
    pub fn ptr_eq(&self, other: &Row) -> bool {
        self.0 == other.0
    }

    /// The row's hash (computed on first use).
    #[inline]
    pub fn hash_value(&self) -> u64 {
        let cached = self.header().hash.load(AtomicOrdering::Relaxed);
        if cached != UNHASHED {
            return cached;
        }
        let mut h = row_hasher();
        self.deref().hash(&mut h);
        let hash = h.finish() | 1;
        self.header().hash.store(hash, AtomicOrdering::Relaxed);
        hash
    }
}

impl Clone for Row {
    #[inline]
    fn clone(&self) -> Row {
        let old = self.header().count.fetch_add(1, AtomicOrdering::Relaxed);
        // As `Arc` does: a count this high can only come from leaked handles.
        if old > i32::MAX as u32 {
            std::process::abort();
        }
        Row(self.0)
    }
}

impl Drop for Row {
    #[inline]
    fn drop(&mut self) {
        if self.header().count.fetch_sub(1, AtomicOrdering::Release) != 1 {
            return;
        }
        // Every other handle's use of the row happens before it is freed.
        fence(AtomicOrdering::Acquire);
        let len = self.header().len as usize;
        let (layout, offset) = layout(len);
        let raw = self.0.as_ptr().cast::<u8>();
        // SAFETY: this was the last handle; the values were initialized at `offset`.
        unsafe {
            std::ptr::drop_in_place(std::ptr::slice_from_raw_parts_mut(raw.add(offset).cast::<Value>(), len));
            dealloc(raw, layout);
        }
    }
}

impl PartialEq for Row {
    #[inline]
    fn eq(&self, other: &Row) -> bool {
        if self.ptr_eq(other) {
            return true;
        }
        let (a, b) =
            (self.header().hash.load(AtomicOrdering::Relaxed), other.header().hash.load(AtomicOrdering::Relaxed));
        if a != UNHASHED && b != UNHASHED && a != b {
            return false;
        }
        self.deref() == other.deref()
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
        self.deref().cmp(other.deref())
    }
}

impl Deref for Row {
    type Target = [Value];
    #[inline]
    fn deref(&self) -> &[Value] {
        let len = self.header().len as usize;
        // The header is 16 bytes and values are 8-aligned: they follow it directly.
        const OFFSET: usize = std::mem::size_of::<Header>();
        const _: () = assert!(std::mem::align_of::<Value>() <= 8);
        // SAFETY: `len` initialized values follow the header, alive while `self` is.
        unsafe { std::slice::from_raw_parts(self.0.as_ptr().cast::<u8>().add(OFFSET).cast::<Value>(), len) }
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
        assert_eq!(layout(5).0.size(), 96, "a five-value row is one 96-byte allocation");
        assert_eq!(layout(0).1, std::mem::size_of::<Header>());
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
