//! Rows: immutable, shared tuples of values, stored compactly.
//!
//! A [`Row`] is a thin pointer (8 bytes) to one allocation (from [`crate::row_memory`]):
//! an 8-byte header (reference count and 32 bits of the row's hash), the number of
//! values, one tag byte per value, and then one 8-byte slot per value. A [`Value`] is
//! 16 bytes because it carries its tag beside its payload; in a row the tags sit
//! together and the payloads are packed, so a five-value row takes 56 bytes instead of
//! the 96 a slice of values would. Rows are most of what the engine stores (a table's
//! rows, and the same rows again in indexes and views, shared by pointer), so this is
//! where memory is won.
//!
//! Values are read through [`Row::get`], which returns a [`Ref`]: a value rebuilt on
//! the stack from its tag and slot, that borrows the row's text or decimal instead of
//! taking a reference count, and derefs to `&Value`. Operators never mutate a row;
//! they build new ones. The hash is computed the first time the row is hashed and
//! kept, so a row moving through several hash maps is hashed once, and two rows with
//! different hashes compare unequal without looking at their values.
//!
//! Expressions read values from rows and from plain slices alike, through
//! [`Columns`].

use std::alloc::Layout;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher};
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::ops::Deref;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering as AtomicOrdering, fence};

use crate::value::{Value, tag};

/// The hasher rows hash their values with: seeded once per process, so a row's hash
/// is the same in every map.
fn row_hasher() -> impl Hasher {
    static STATE: std::sync::OnceLock<hashbrown::DefaultHashBuilder> = std::sync::OnceLock::new();
    STATE.get_or_init(hashbrown::DefaultHashBuilder::default).build_hasher()
}

/// What starts a row's allocation.
#[repr(C)]
struct Header {
    count: AtomicU32,
    /// 32 bits of the row's hash, never zero once computed.
    hash: AtomicU32,
}

/// Where the number of values (a `u16`) lies; the tags follow it.
const LEN: usize = std::mem::size_of::<Header>();
/// Where the tags start.
const TAGS: usize = LEN + std::mem::size_of::<u16>();

/// The offset of the first slot and the layout of a row of `len` values.
#[inline]
fn layout(len: usize) -> (Layout, usize) {
    let slots = (TAGS + len).next_multiple_of(8);
    let size = slots + 8 * len;
    (Layout::from_size_align(size, 8).expect("a row's size fits in memory"), slots)
}

/// How many items ahead [`prefetched`] asks for a row: enough to cover a memory
/// access's latency with the work on the rows in between.
pub const PREFETCH_AHEAD: usize = 8;

/// `items` in order, the row of each (`row` picks it) prefetched [`PREFETCH_AHEAD`]
/// items before it is reached (see [`Row::prefetch`]): for passes that read many
/// rows once each.
pub fn prefetched<'a, T>(items: &'a [T], row: impl Fn(&T) -> &Row + 'a) -> impl ExactSizeIterator<Item = &'a T> + 'a {
    items.iter().enumerate().map(move |(i, item)| {
        if let Some(ahead) = items.get(i + PREFETCH_AHEAD) {
            row(ahead).prefetch();
        }
        item
    })
}

/// Asks the processor to start loading the memory `at` points to (see
/// [`Row::prefetch`]); for the entry that names a row, when the entries themselves
/// are visited out of order.
#[inline]
pub fn prefetch_at<T>(at: &T) {
    prefetch_address((at as *const T).cast());
}

/// Asks the processor to start loading the line holding `address`, which need not
/// point into anything alive: the address is never read, only fetched.
#[inline]
pub fn prefetch_address(address: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetching is a hint; it never faults, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(address.cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = address;
}

/// An immutable row of values.
pub struct Row(NonNull<Header>);

// SAFETY: a row is immutable and shared by an atomic count (as in `Arc<[Value]>`); the
// values it holds are `Send + Sync`, and the cached hash is atomic.
unsafe impl Send for Row {}
// SAFETY: as above.
unsafe impl Sync for Row {}

const UNHASHED: u32 = 0;

/// Spreads 32 bits of hash over 64, so that hash tables find both their bucket (low
/// bits) and their control byte (high bits) in it.
#[inline]
fn spread(h: u32) -> u64 {
    (h as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

impl Row {
    /// A row of `values`.
    pub fn new(values: Vec<Value>) -> Row {
        let len = values.len();
        Row::from_exact(values.into_iter(), len)
    }

    /// The empty row (the key of a cross join, the input of a constant query).
    pub fn empty() -> Row {
        Row::from_exact(std::iter::empty(), 0)
    }

    /// `self` followed by the values of `other`.
    pub fn concat<C: Columns + ?Sized>(&self, other: &C) -> Row {
        let (a, b) = (self.len(), other.width());
        Row::from_exact(
            (0..a).map(|i| self.get(i).into_owned()).chain((0..b).map(|i| other.column(i).into_owned())),
            a + b,
        )
    }

    /// The values at `columns`, in that order.
    pub fn project(&self, columns: &[usize]) -> Row {
        Row::from_exact(columns.iter().map(|&c| self.get(c).into_owned()), columns.len())
    }

    /// A row of the `len` values `values` yields (it must yield exactly that many).
    fn from_exact(values: impl Iterator<Item = Value>, len: usize) -> Row {
        let len16 = u16::try_from(len).expect("a row has at most 65,535 values");
        let (layout, slots) = layout(len);
        // The layout has a non-zero size (the header).
        let raw = crate::row_memory::allocate(layout);
        let header = NonNull::new(raw.cast::<Header>()).expect("allocate never returns null");
        // SAFETY: the header's place is within the allocation and aligned; so is the
        // rest, zeroed here. Zeroed tags are NULLs, so the row is whole at every step
        // below: should the iterator panic or end early, dropping it frees what was
        // written.
        unsafe {
            header.write(Header { count: AtomicU32::new(1), hash: AtomicU32::new(UNHASHED) });
            raw.add(LEN).cast::<u16>().write(len16);
            raw.add(TAGS).write_bytes(0, layout.size() - TAGS);
        }
        let row = Row(header);
        let mut written = 0;
        for v in values.take(len) {
            let (t, bits) = v.into_slot();
            // SAFETY: slot `written` < len lies within the allocation; nothing else
            // sees the row yet.
            unsafe {
                raw.add(slots + 8 * written).cast::<u64>().write(bits);
                raw.add(TAGS + written).write(t);
            }
            written += 1;
        }
        assert_eq!(written, len, "a row's iterator yielded fewer values than announced");
        row
    }

    #[inline]
    fn header(&self) -> &Header {
        // SAFETY: the header lives as long as any handle.
        unsafe { self.0.as_ref() }
    }

    #[inline]
    fn base(&self) -> *const u8 {
        self.0.as_ptr().cast::<u8>().cast_const()
    }

    /// The tags of the values.
    #[inline]
    fn tags(&self) -> &[u8] {
        // SAFETY: `len` tags follow the header, alive while `self` is.
        unsafe { std::slice::from_raw_parts(self.base().add(TAGS), self.len()) }
    }

    /// The payloads of the values.
    #[inline]
    fn slots(&self) -> &[u64] {
        let len = self.len();
        // SAFETY: `len` slots start at the 8-aligned offset `layout` gives.
        unsafe { std::slice::from_raw_parts(self.base().add(layout(len).1).cast::<u64>(), len) }
    }

    /// The number of values.
    #[inline]
    pub fn len(&self) -> usize {
        // SAFETY: the length follows the header, 2-aligned.
        unsafe { self.base().add(LEN).cast::<u16>().read() as usize }
    }

    /// Whether the row has no values.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The value at `i` (panics past the end, as indexing does).
    #[inline]
    pub fn get(&self, i: usize) -> Ref<'_> {
        let (t, bits) = (self.tags()[i], self.slots()[i]);
        // SAFETY: the slot was written by `from_exact` and keeps its reference while
        // the row lives; the view is never dropped.
        Ref::view(unsafe { Value::from_slot(t, bits) })
    }

    /// The values, in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = Ref<'_>> + '_ {
        (0..self.len()).map(|i| self.get(i))
    }

    /// The values, cloned into a vector.
    pub fn to_vec(&self) -> Vec<Value> {
        self.iter().map(|v| v.into_owned()).collect()
    }

    /// Asks the processor to start loading the row, for a loop that will read it a
    /// few iterations later (rows sit wherever they were allocated; a walk over a
    /// hash table's rows otherwise waits on memory at every row).
    #[inline]
    pub fn prefetch(&self) {
        prefetch_address(self.base());
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
            return spread(cached);
        }
        let mut h = row_hasher();
        h.write_usize(self.len());
        self.iter().for_each(|v| v.hash(&mut h));
        let full = h.finish();
        let hash = ((full ^ (full >> 32)) as u32).max(1);
        self.header().hash.store(hash, AtomicOrdering::Relaxed);
        spread(hash)
    }
}

impl Row {
    /// A second handle to this row that was not counted (see
    /// [`crate::zset::Borrowed`]): reading through it touches nothing but the row.
    ///
    /// # Safety
    ///
    /// The handle must be forgotten, never dropped, and not used once the row's counted
    /// handles are all gone.
    #[inline]
    pub(crate) unsafe fn uncounted(&self) -> Row {
        Row(self.0)
    }
}

#[cfg(test)]
impl Row {
    /// How many handles the row has.
    pub(crate) fn handles(&self) -> u32 {
        self.header().count.load(AtomicOrdering::Relaxed)
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
        let len = self.len();
        for (&t, &bits) in self.tags().iter().zip(self.slots()) {
            if tag::owns_pointer(t) {
                // SAFETY: this was the last handle; the slot's reference is given back
                // once.
                drop(unsafe { Value::from_slot(t, bits) });
            }
        }
        // SAFETY: the allocation was made with this layout and has no other handle.
        unsafe { crate::row_memory::free(self.0.as_ptr().cast::<u8>(), layout(len).0) };
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
        if (a != UNHASHED && b != UNHASHED && a != b) || self.len() != other.len() {
            return false;
        }
        let (ta, tb, sa, sb) = (self.tags(), other.tags(), self.slots(), other.slots());
        // Equal tags and payloads are equal values (the same pointer for text); other
        // pairs may still be equal (equal text in two allocations, -0.0 and 0.0).
        (0..ta.len()).all(|i| (ta[i] == tb[i] && sa[i] == sb[i]) || *self.get(i) == *other.get(i))
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

/// Lexicographic by value, as slices of values order.
impl Ord for Row {
    fn cmp(&self, other: &Row) -> Ordering {
        for (a, b) in self.iter().zip(other.iter()) {
            match (*a).cmp(&*b) {
                Ordering::Equal => {}
                o => return o,
            }
        }
        self.len().cmp(&other.len())
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
            write!(f, "{}", *v)?;
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

/// A value read from a row or an expression: either a view of a value that lives
/// elsewhere for `'a` (a row's slot, a literal), which costs no reference count, or a
/// value of its own. Derefs to `&Value`.
pub struct Ref<'a> {
    value: ManuallyDrop<Value>,
    owned: bool,
    _lives_in: PhantomData<&'a Value>,
}

impl<'a> Ref<'a> {
    /// A value of its own.
    #[inline]
    pub fn owned(value: Value) -> Ref<'a> {
        Ref { value: ManuallyDrop::new(value), owned: true, _lives_in: PhantomData }
    }

    /// A view of `value`, which lives for `'a`.
    #[inline]
    pub fn borrowed(value: &'a Value) -> Ref<'a> {
        // SAFETY: a bitwise copy that is never dropped: its pointers (text and
        // decimals are reference-counted, never unique) stay owned by `value`, which
        // outlives the view.
        Ref::view(unsafe { std::ptr::read(value) })
    }

    /// A view of a value owned elsewhere for `'a`; it must never be dropped.
    #[inline]
    fn view(value: Value) -> Ref<'a> {
        Ref { value: ManuallyDrop::new(value), owned: false, _lives_in: PhantomData }
    }

    /// The value, cloned unless it is owned.
    #[inline]
    pub fn into_owned(self) -> Value {
        let mut this = ManuallyDrop::new(self);
        if this.owned {
            // SAFETY: owned, and `this` is never dropped: the value moves out once.
            unsafe { ManuallyDrop::take(&mut this.value) }
        } else {
            (*this.value).clone()
        }
    }
}

impl Deref for Ref<'_> {
    type Target = Value;
    #[inline]
    fn deref(&self) -> &Value {
        &self.value
    }
}

impl Drop for Ref<'_> {
    #[inline]
    fn drop(&mut self) {
        if self.owned {
            // SAFETY: owned, and dropped once.
            unsafe { ManuallyDrop::drop(&mut self.value) }
        }
    }
}

impl fmt::Debug for Ref<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// Anything expressions can read columns from: a [`Row`], or a slice of values.
pub trait Columns {
    /// The value of column `i`.
    fn column(&self, i: usize) -> Ref<'_>;
    /// The number of columns.
    fn width(&self) -> usize;
}

impl Columns for Row {
    #[inline]
    fn column(&self, i: usize) -> Ref<'_> {
        self.get(i)
    }
    #[inline]
    fn width(&self) -> usize {
        self.len()
    }
}

/// Slices, arrays and vectors of values.
impl<T: AsRef<[Value]> + ?Sized> Columns for T {
    #[inline]
    fn column(&self, i: usize) -> Ref<'_> {
        Ref::borrowed(&self.as_ref()[i])
    }
    #[inline]
    fn width(&self) -> usize {
        self.as_ref().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decimal::Decimal;

    #[test]
    fn rows_are_thin_compact_and_hash_by_value() {
        assert_eq!(std::mem::size_of::<Row>(), 8);
        assert_eq!(layout(5).0.size(), 56, "a five-value row is one 56-byte allocation");
        assert_eq!(layout(6).0.size(), 64);
        assert_eq!(layout(0).0.size(), 16);
        let a = crate::row![1, "x", 2.5];
        let b: Row = vec![Value::Int(1), Value::text("x"), Value::Float(2.5)].into_iter().collect();
        assert_eq!(a, b);
        assert_eq!(a.hash_value(), b.hash_value());
        assert_ne!(a, crate::row![1, "y", 2.5]);
        assert!(a < crate::row![1, "y", 2.5]);
        assert!(crate::row![1] < a);
        assert_eq!(a.project(&[2, 0]), crate::row![2.5, 1]);
        assert_eq!(a.concat(&[Value::Null][..]).len(), 4);
        let filtered: Row = a.iter().filter(|v| !matches!(**v, Value::Text(_))).map(Ref::into_owned).collect();
        assert_eq!(filtered, crate::row![1, 2.5]);
        assert_eq!(crate::row![-0.0], crate::row![0.0]);
    }

    #[test]
    fn every_kind_of_value_survives_a_slot() {
        let values = vec![
            Value::Null,
            Value::Bool(true),
            Value::Bool(false),
            Value::Int(i64::MIN),
            Value::Float(-1.5),
            Value::Decimal(std::sync::Arc::new(Decimal::parse("12.345").expect("a decimal"))),
            Value::text("a longer piece of text"),
            Value::Date(-719_162),
            Value::Timestamp(i64::MAX),
        ];
        let row = Row::new(values.clone());
        assert_eq!(row.to_vec(), values);
        let copy = row.clone();
        drop(row);
        // The text and the decimal are still alive through the other handle.
        assert_eq!(copy.to_vec(), values);
        assert_eq!(copy.get(6).as_str(), Some("a longer piece of text"));
    }

    #[test]
    fn a_panicking_iterator_leaves_nothing_behind() {
        let result = std::panic::catch_unwind(|| {
            Row::from_exact(
                [Value::text("kept"), Value::Int(1)].into_iter().chain(std::iter::from_fn(|| panic!("no more"))),
                3,
            )
        });
        assert!(result.is_err());
    }
}
