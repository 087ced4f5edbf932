//! Prefetching where a hash table will look for a hash, before looking.
//!
//! A lookup in a large table waits on memory for the table's control bytes and for
//! the slot they point to; a pass that looks up many keys one after the other (a
//! batch's updates located in a table, a delta's rows probing a join's index) waits
//! for each in turn. Asking for those lines a few keys ahead lets the waits overlap.
//!
//! hashbrown offers no prefetch, but its layout is plain: the control bytes start at
//! the allocation's `ctrl` pointer, bucket `i` lies at `ctrl - (i + 1) * size_of::<T>()`,
//! and a probe for `hash` starts at bucket `hash & (buckets - 1)`. The `ctrl` pointer
//! is found from the place and index of one occupied bucket. A prefetch is only a
//! hint: an address computed wrongly would cost one wasted load, never a fault or a
//! wrong answer; the test below checks the layout against the hashbrown built.

use hashbrown::HashTable;

/// Where `table`'s probe for `hash` starts: its first bucket and its control bytes.
/// `None` for an empty table (a lookup there reads nothing worth fetching), and for a
/// table mostly emptied (hashbrown never shrinks one by itself): finding an occupied
/// bucket there would scan most of its control bytes.
#[inline]
fn probe_start<T>(table: &HashTable<T>, hash: u64) -> Option<(*const u8, *const u8)> {
    if table.len() < table.num_buckets() / 16 {
        return None;
    }
    let size = std::mem::size_of::<T>();
    let occupied = table.iter_buckets().next()?;
    let at = (table.get_bucket(occupied)? as *const T).cast::<u8>();
    let ctrl = at.wrapping_add((occupied + 1) * size);
    let pos = (hash as usize) & (table.num_buckets() - 1);
    Some((ctrl.wrapping_sub((pos + 1) * size), ctrl.wrapping_add(pos)))
}

/// Asks the processor to start loading what a lookup of `hash` in `table` reads
/// first: the control bytes and the bucket where its probe starts.
#[inline]
pub(crate) fn prefetch_probe<T>(table: &HashTable<T>, hash: u64) {
    if let Some((bucket, ctrl)) = probe_start(table, hash) {
        crate::row::prefetch_address(ctrl);
        crate::row::prefetch_address(bucket);
    }
}

#[cfg(test)]
mod tests {
    use std::hash::BuildHasher;

    use super::*;

    #[test]
    fn the_probe_starts_where_hashbrown_puts_an_undisplaced_key() {
        let hasher = hashbrown::DefaultHashBuilder::default();
        let mut table: HashTable<(u64, [u8; 16])> = HashTable::new();
        assert!(probe_start(&table, 1).is_none(), "an empty table has nothing to fetch");
        let mut checked = 0;
        for k in 0..50_000u64 {
            table.insert_unique(hasher.hash_one(k), (k, [0; 16]), |(k, _)| hasher.hash_one(k));
        }
        for k in 0..50_000u64 {
            let hash = hasher.hash_one(k);
            let index = table.find_bucket_index(hash, |(x, _)| *x == k).expect("inserted");
            // A key that sits where its probe starts must be found at the address
            // computed for it (keys displaced by collisions sit further on).
            if index == (hash as usize) & (table.num_buckets() - 1) {
                let (bucket, _) = probe_start(&table, hash).expect("not empty");
                let actual = (table.get_bucket(index).expect("occupied") as *const (u64, [u8; 16])).cast::<u8>();
                assert_eq!(bucket, actual, "key {k}");
                checked += 1;
            }
        }
        assert!(checked > 10_000, "most keys sit where their probe starts ({checked})");
        // Emptied down to a few keys, the table keeps its size: no probe is fetched
        // there (finding the control bytes would scan most of them).
        for k in 100..50_000u64 {
            let hash = hasher.hash_one(k);
            table.find_entry(hash, |(x, _)| *x == k).expect("inserted").remove();
        }
        assert!(table.num_buckets() >= 50_000, "hashbrown does not shrink on removal");
        assert!(probe_start(&table, hasher.hash_one(7u64)).is_none());
    }
}
