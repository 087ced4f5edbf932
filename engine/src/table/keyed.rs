//! A keyed table's rows, in [`SHARDS`] hash tables by their key's hash.
//!
//! One hash table would do for lookups; split by the hash's shard bits (those an
//! aggregate's groups and an arrangement's slots are split by, see
//! [`crate::workers::shard_of`]), a long run of inserts (a load, a snapshot) goes into
//! the shards on the worker threads at once, each shard walked from one end to the
//! other in slot order. The number of shards is fixed, so that what a table holds and
//! the order it is read in do not depend on the number of threads.

use hashbrown::{DefaultHashBuilder, HashTable};

use super::hash_key;
use crate::row::{PREFETCH_AHEAD, Row};
use crate::workers::{self, Cost, SHARDS, shard_of};

/// A shard and the rows of a run it takes (key hashes and places in the run).
type Part<'a> = (&'a mut HashTable<Row>, &'a mut [(u64, u32)]);

#[derive(Debug)]
pub(super) struct KeyedRows {
    shards: Box<[HashTable<Row>; SHARDS]>,
}

impl KeyedRows {
    pub fn new() -> KeyedRows {
        KeyedRows { shards: Box::new(std::array::from_fn(|_| HashTable::new())) }
    }

    pub fn len(&self) -> usize {
        self.shards.iter().map(HashTable::len).sum()
    }

    /// Slots allocated, over the shards.
    pub fn capacity(&self) -> usize {
        self.shards.iter().map(HashTable::capacity).sum()
    }

    /// Every row, shard after shard.
    pub fn iter(&self) -> impl Iterator<Item = &Row> {
        self.shards.iter().flat_map(HashTable::iter)
    }

    /// The table a key hashed `hash` lives in.
    #[inline]
    pub fn shard(&self, hash: u64) -> &HashTable<Row> {
        &self.shards[shard_of(hash)]
    }

    /// [`KeyedRows::shard`], to change.
    #[inline]
    pub fn shard_mut(&mut self, hash: u64) -> &mut HashTable<Row> {
        &mut self.shards[shard_of(hash)]
    }

    /// Makes room for about `additional` more rows over the shards (a snapshot's
    /// estimate: keys spread evenly, with an eighth more for each shard's share).
    pub fn reserve(&mut self, additional: usize, hasher: &DefaultHashBuilder, key: &[usize]) {
        let share = additional / SHARDS + additional / (8 * SHARDS);
        for shard in self.shards.iter_mut() {
            reserve(shard, share, hasher, key);
        }
    }

    /// Stores `rows` if none of their keys is held or repeated, each shard's in the
    /// order of its slots; otherwise stores nothing and returns `false`. On the
    /// worker threads the shards take theirs at once.
    pub fn insert_run(&mut self, rows: &[Row], hasher: &DefaultHashBuilder, key: &[usize]) -> bool {
        assert!(u32::try_from(rows.len()).is_ok(), "fewer than 2^32 rows at once");
        // Each row's hash and place, grouped by shard (a counting sort, stable).
        let hashed: Vec<Vec<(u64, u32)>> = workers::chunks_of(rows.len(), Cost::Row, |range| {
            let start = range.start;
            rows[range].iter().enumerate().map(|(i, r)| (hash_key(hasher, key, r), (start + i) as u32)).collect()
        });
        let mut ends = [0usize; SHARDS + 1];
        for &(h, _) in hashed.iter().flatten() {
            ends[shard_of(h) + 1] += 1;
        }
        for s in 0..SHARDS {
            ends[s + 1] += ends[s];
        }
        let mut by_shard = vec![(0u64, 0u32); rows.len()];
        let mut next = ends;
        for &(h, i) in hashed.iter().flatten() {
            let s = shard_of(h);
            by_shard[next[s]] = (h, i);
            next[s] += 1;
        }
        drop(hashed);
        let mut parts: Vec<Part<'_>> = Vec::with_capacity(SHARDS);
        let mut left = by_shard.as_mut_slice();
        for (s, shard) in self.shards.iter_mut().enumerate() {
            let (part, rest) = left.split_at_mut(ends[s + 1] - ends[s]);
            left = rest;
            if !part.is_empty() {
                parts.push((shard, part));
            }
        }
        let parallel = workers::parts_for(rows.len(), Cost::Row) > 1;
        let work = |(shard, part): &mut Part<'_>| insert_in_slot_order(shard, part, rows, hasher, key);
        let stored: Vec<bool> = if parallel {
            workers::each(parts.iter_mut().collect(), work)
        } else {
            parts.iter_mut().map(work).collect()
        };
        if stored.iter().all(|s| *s) {
            return true;
        }
        // A shard met a key held or repeated and took its rows out again; the others
        // take theirs out too.
        for ((shard, part), stored) in parts.into_iter().zip(stored) {
            if stored {
                remove(shard, part, rows);
            }
        }
        false
    }
}

/// Stores the rows `part` names (key hashes and places in `rows`) in `shard`, in the
/// order of their slots, unless one's key is held or repeated: then none is stored,
/// and `false` is returned.
fn insert_in_slot_order(
    shard: &mut HashTable<Row>,
    part: &mut [(u64, u32)],
    rows: &[Row],
    hasher: &DefaultHashBuilder,
    key: &[usize],
) -> bool {
    reserve(shard, part.len(), hasher, key);
    let mask = crate::operator::slot_mask(shard.len() + part.len());
    part.sort_unstable_by_key(|&(h, i)| (h & mask, h, i));
    for n in 0..part.len() {
        // Taken in slot order, the rows themselves come out of order: each is fetched
        // (its count is taken below) some rows before it is reached.
        if let Some(&(_, ahead)) = part.get(n + PREFETCH_AHEAD) {
            rows[ahead as usize].prefetch();
        }
        let (hash, i) = part[n];
        let row = &rows[i as usize];
        let same_key = |r: &Row| key.iter().all(|&c| *r.get(c) == *row.get(c));
        match shard.entry(hash, same_key, |r| hash_key(hasher, key, r)) {
            hashbrown::hash_table::Entry::Vacant(v) => {
                v.insert(row.clone());
            }
            hashbrown::hash_table::Entry::Occupied(_) => {
                remove(shard, &part[..n], rows);
                return false;
            }
        }
    }
    true
}

/// Takes out of `shard` the very rows (not rows with their keys) `part` names.
fn remove(shard: &mut HashTable<Row>, part: &[(u64, u32)], rows: &[Row]) {
    for &(hash, i) in part {
        let stored = &rows[i as usize];
        if let Ok(e) = shard.find_entry(hash, |r| r.ptr_eq(stored)) {
            e.remove();
        }
    }
}

/// Makes room in `table` for `additional` more rows. Growing moves every row to a
/// larger table, which needs each row's key hash, read from the row: hashbrown's own
/// growth reads the rows one after the other, a cache miss each (a third of loading a
/// large table went there), so rows are moved here with each row prefetched a few
/// rows before its hash is needed.
pub(super) fn reserve(table: &mut HashTable<Row>, additional: usize, hasher: &DefaultHashBuilder, key: &[usize]) {
    if table.capacity() - table.len() >= additional {
        return;
    }
    // At least doubled, as hashbrown grows, so that growth stays amortized.
    let capacity = (table.len() + additional).max(table.capacity() * 2);
    let old: Vec<Row> = std::mem::replace(table, HashTable::with_capacity(capacity)).into_iter().collect();
    // Moved, not cloned (as `crate::row::prefetched`, which lends, would need): no
    // count is taken and given back on a row.
    let mut rows = old.into_iter();
    while let Some(row) = rows.next() {
        if let Some(ahead) = rows.as_slice().get(PREFETCH_AHEAD - 1) {
            ahead.prefetch();
        }
        table.insert_unique(hash_key(hasher, key, &row), row, |_| unreachable!("room was made"));
    }
}
