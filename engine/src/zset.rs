//! Z-sets: the one currency between operators.
//!
//! A Z-set maps rows to integer weights. A relation (a bag of rows) is a Z-set with
//! positive weights; a *delta* is any Z-set: +1 inserts a row, −1 deletes one, and an
//! update is a deletion of the old row plus an insertion of the new. Operators take
//! the deltas of their inputs and produce the delta of their output, so that applying
//! every output delta to the output keeps it equal to the query over the inputs.
//!
//! A [`ZSet`] is a plain vector of `(row, weight)` and may hold the same row more than
//! once; [`ZSet::consolidate`] (sort, sum, drop zeros) is the one routine that puts it
//! in canonical form. Stateful operators and views apply weights one at a time and
//! tolerate a row's count passing through negative values inside one delta, so most
//! deltas never need consolidating.

use crate::row::Row;

/// The multiplicity of a row in a Z-set.
pub type Weight = i64;

/// The most entries whose room [`ZSet::clear_for_reuse`] keeps (1.5 MB).
pub const KEPT_ENTRIES: usize = 1 << 16;

/// Rows with weights: a relation or a delta.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ZSet {
    entries: Vec<(Row, Weight)>,
}

impl ZSet {
    /// An empty Z-set.
    pub const fn new() -> ZSet {
        ZSet { entries: Vec::new() }
    }

    /// An empty Z-set with room for `n` entries.
    pub fn with_capacity(n: usize) -> ZSet {
        ZSet { entries: Vec::with_capacity(n) }
    }

    /// Makes room for `n` more entries (charged to the memory budget as growth is).
    pub fn reserve(&mut self, n: usize) {
        let before = self.entries.capacity();
        self.entries.reserve(n);
        crate::budget::charge((self.entries.capacity() - before) * std::mem::size_of::<(Row, Weight)>());
    }

    /// Adds `weight` copies of `row` (removes them if negative).
    #[inline]
    pub fn push(&mut self, row: Row, weight: Weight) {
        if weight != 0 {
            // Charged to the memory budget (see crate::budget): the row, and the
            // entries' growth when they grow.
            let entry = std::mem::size_of::<(Row, Weight)>();
            let grown = if self.entries.len() == self.entries.capacity() { self.entries.capacity().max(4) } else { 0 };
            crate::budget::charge(16 + 16 * row.len() + grown * entry);
            self.entries.push((row, weight));
        }
    }

    /// Appends every entry of `other`.
    pub fn extend_from(&mut self, other: &ZSet) {
        self.entries.extend(other.entries.iter().cloned());
    }

    /// Moves every entry of `other` to the end (taking its vector whole when this one
    /// is empty).
    pub fn append(&mut self, mut other: ZSet) {
        if self.entries.is_empty() {
            self.entries = other.entries;
        } else {
            self.entries.append(&mut other.entries);
        }
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The number of entries (not the sum of weights).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The entries, as a slice.
    pub fn as_slice(&self) -> &[(Row, Weight)] {
        &self.entries
    }

    /// The entries.
    pub fn iter(&self) -> std::slice::Iter<'_, (Row, Weight)> {
        self.entries.iter()
    }

    /// The entries, each row prefetched a few entries before it is reached (see
    /// [`crate::row::prefetched`]): for passes over long deltas that read every row.
    pub fn iter_prefetched(&self) -> impl ExactSizeIterator<Item = &(Row, Weight)> + '_ {
        crate::row::prefetched(&self.entries, |(r, _)| r)
    }

    /// Removes every entry, keeping the allocation.
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// Moves the entries to the end of `out`, keeping this set's room as
    /// [`ZSet::clear_for_reuse`] does.
    pub fn move_into(&mut self, out: &mut Vec<(Row, Weight)>) {
        out.append(&mut self.entries);
        self.clear_for_reuse();
    }

    /// Removes every entry, keeping the allocation for the next transaction's delta
    /// unless it is larger than [`KEPT_ENTRIES`] (a load's delta is not held for ever).
    pub fn clear_for_reuse(&mut self) {
        if self.entries.capacity() > KEPT_ENTRIES {
            self.entries = Vec::new();
        } else {
            self.entries.clear();
        }
    }

    /// Canonical form: rows sorted, one entry per row, no zero weights.
    pub fn consolidate(&mut self) {
        if self.entries.len() <= 1 {
            return;
        }
        self.entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut out = 0;
        for i in 0..self.entries.len() {
            if out > 0 && self.entries[out - 1].0 == self.entries[i].0 {
                self.entries[out - 1].1 += self.entries[i].1;
            } else {
                if out > 0 && self.entries[out - 1].1 == 0 {
                    out -= 1;
                }
                self.entries.swap(out, i);
                out += 1;
            }
        }
        if out > 0 && self.entries[out - 1].1 == 0 {
            out -= 1;
        }
        self.entries.truncate(out);
    }

    /// The consolidated form, by value.
    pub fn consolidated(mut self) -> ZSet {
        self.consolidate();
        self
    }
}

impl FromIterator<(Row, Weight)> for ZSet {
    fn from_iter<I: IntoIterator<Item = (Row, Weight)>>(iter: I) -> ZSet {
        ZSet { entries: iter.into_iter().filter(|(_, w)| *w != 0).collect() }
    }
}

/// Adds entries as [`FromIterator`] collects them (into the room already made).
impl Extend<(Row, Weight)> for ZSet {
    fn extend<I: IntoIterator<Item = (Row, Weight)>>(&mut self, iter: I) {
        self.entries.extend(iter.into_iter().filter(|(_, w)| *w != 0));
    }
}

impl IntoIterator for ZSet {
    type Item = (Row, Weight);
    type IntoIter = std::vec::IntoIter<(Row, Weight)>;
    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}

impl<'a> IntoIterator for &'a ZSet {
    type Item = &'a (Row, Weight);
    type IntoIter = std::slice::Iter<'a, (Row, Weight)>;
    fn into_iter(self) -> Self::IntoIter {
        self.entries.iter()
    }
}

impl std::fmt::Debug for ZSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("{")?;
        for (i, (r, w)) in self.entries.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{r}: {w:+}")?;
        }
        f.write_str("}")
    }
}

/// A consolidated Z-set from `row => weight` pairs:
/// `zset! { row![1, "a"] => 1, row![2, "b"] => -1 }`.
#[macro_export]
macro_rules! zset {
    ($($row:expr => $w:expr),* $(,)?) => {
        $crate::ZSet::from_iter(vec![$(($row, $w)),*]).consolidated()
    };
}

/// Rows borrowed from a store that outlives the set — a table's rows, or those a filter
/// over it keeps, while new graph nodes are filled from them — read as a [`ZSet`]. Its
/// handles were never counted (see [`Row::uncounted`]), so making it touches no row,
/// only the store's index, and letting it go touches none either; a row taken from it
/// is cloned, and so counted, as from any Z-set. For a million-row table read by each
/// view registered over it, that is a million counts taken and given back (each a cache
/// miss) fewer per view.
pub(crate) struct Borrowed<'a> {
    set: std::mem::ManuallyDrop<ZSet>,
    _rows: std::marker::PhantomData<&'a Row>,
}

impl<'a> Borrowed<'a> {
    /// The rows `rows` gives, with their weights, borrowed.
    pub(crate) fn new(rows: impl Iterator<Item = (&'a Row, Weight)>) -> Borrowed<'a> {
        // SAFETY: the handles are forgotten in `drop`, never dropped, and the borrow of
        // `'a` keeps their rows alive meanwhile. Making one cannot panic, so none is
        // dropped by an unwinding `collect` either (an allocation failure aborts).
        let entries = rows.map(|(r, w)| (unsafe { r.uncounted() }, w)).collect();
        Borrowed { set: std::mem::ManuallyDrop::new(ZSet { entries }), _rows: std::marker::PhantomData }
    }

    /// The rows at places `at` (in order), borrowed from where these are.
    pub(crate) fn pick(&self, at: &[u32]) -> Borrowed<'a> {
        let entries = &self.set.entries;
        // SAFETY: as in `new`: these handles are as uncounted as the ones they copy,
        // forgotten in `drop`, and the rows live for `'a`, as this set's do.
        let picked = at.iter().map(|&i| {
            let (r, w) = &entries[i as usize];
            (unsafe { r.uncounted() }, *w)
        });
        Borrowed {
            set: std::mem::ManuallyDrop::new(ZSet { entries: picked.collect() }),
            _rows: std::marker::PhantomData,
        }
    }
}

impl std::ops::Deref for Borrowed<'_> {
    type Target = ZSet;

    fn deref(&self) -> &ZSet {
        &self.set
    }
}

impl Drop for Borrowed<'_> {
    fn drop(&mut self) {
        // SAFETY: taken once, here, and never used again.
        let set = unsafe { std::mem::ManuallyDrop::take(&mut self.set) };
        // Forgotten, not dropped: they were never counted. The vector itself is freed.
        set.entries.into_iter().for_each(std::mem::forget);
    }
}

#[cfg(test)]
mod tests {
    use crate::row;

    #[test]
    fn consolidate_sums_and_drops_zeros() {
        let z = zset! { row![2] => 1, row![1] => 1, row![2] => -1, row![1] => 2, row![3] => 1, row![3] => -1 };
        assert_eq!(z.consolidated(), zset! { row![1] => 3 });
        let z = zset! { row![1] => 1, row![1] => -1, row![2] => 5 };
        assert_eq!(z.consolidated(), zset! { row![2] => 5 });
        let z = zset! { row![1] => 1, row![1] => -1 };
        assert!(z.consolidated().is_empty());
    }
}
