//! A keyed bag of rows: an arrangement's index, and the state of one side of an outer
//! join.
//!
//! Rows are grouped by key; each key holds its distinct rows with their weights and a
//! per-row counter the outer join uses for "how many partners match". A key with one
//! row (the common case: a join on a primary key) keeps it inline in the key's slot,
//! so a probe costs one cache miss for the slot and one for the row; a few rows live in
//! a small vector, and many move to a hash map, so that adding or removing a row costs
//! the same whether its key has ten partners or ten thousand. Keys with no rows left
//! are removed, so the index holds exactly the current input. A slot does not hold its
//! key as a value: a single fixed-width key keeps its 8 bytes, any other is computed
//! from the slot's rows (see [`KeyedBag`]); a slot is 24 bytes.
//!
//! Slots live in [`SHARDS`] tables by three bits of their keys' hashes, so that a
//! large delta (a load, a view built over a loaded table) is added to the shards on
//! the worker threads at once (see [`crate::workers`]); the number is fixed, so the
//! bag's contents do not depend on the number of threads.

use std::hash::BuildHasher;

use hashbrown::HashTable;
use smallvec::SmallVec;
use thin_vec::ThinVec;

use crate::expr::Expr;
use crate::row::{Columns, PREFETCH_AHEAD, Row};
use crate::value::{Value, canonical, tag};
use crate::workers::{SHARDS, shard_of};
use crate::zset::{Weight, ZSet};

/// A join or group key: up to two values inline (no allocation), or boxed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Key {
    One(Value),
    Two([Value; 2]),
    Many(Box<[Value]>),
}

impl Key {
    /// The empty key (a cross join's, a global aggregate's).
    pub fn empty() -> Key {
        Key::Many(Box::new([]))
    }

    /// The key's values.
    pub fn values(&self) -> &[Value] {
        match self {
            Key::One(v) => std::slice::from_ref(v),
            Key::Two(vs) => vs,
            Key::Many(r) => r,
        }
    }

    /// The key of these values (as [`Key::eval`] makes it of as many expressions).
    pub fn from_values(mut values: Vec<Value>) -> Key {
        match values.len() {
            1 => Key::One(values.pop().expect("one value")),
            2 => {
                let b = values.pop().expect("two values");
                Key::Two([values.pop().expect("two values"), b])
            }
            _ => Key::Many(values.into_boxed_slice()),
        }
    }

    /// `exprs` evaluated on `row`.
    pub fn eval<R: Columns + ?Sized>(exprs: &[Expr], row: &R) -> Key {
        match exprs {
            [e] => Key::One(e.eval(row)),
            [a, b] => Key::Two([a.eval(row), b.eval(row)]),
            _ => Key::Many(exprs.iter().map(|e| e.eval(row)).collect()),
        }
    }
}

/// How many rows a key keeps in a vector before moving them to a hash map.
const SMALL: usize = 16;

/// A row's weight and its number of matching partners (outer joins), stored in 32
/// bits each: a count beyond two billion copies of one row cannot fit in memory.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Counts {
    weight: i32,
    matches: i32,
}

fn narrow(w: Weight) -> i32 {
    i32::try_from(w).expect("a row's count fits in 32 bits")
}

/// What a bag keeps beside each row: at least its multiplicity.
pub(crate) trait Tally: Copy + std::fmt::Debug + Send + Sync {
    /// A row new to the bag, with `weight` copies and `matches` partners.
    fn new(weight: Weight, matches: Weight) -> Self;
    /// The row's multiplicity.
    fn weight(&self) -> Weight;
    /// Adds `w` to the multiplicity.
    fn add_weight(&mut self, w: Weight);
}

/// A row's multiplicity alone (what an arrangement keeps), in 32 bits.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Multiplicity(i32);

impl Tally for Multiplicity {
    #[inline]
    fn new(weight: Weight, _matches: Weight) -> Multiplicity {
        Multiplicity(narrow(weight))
    }

    #[inline]
    fn weight(&self) -> Weight {
        self.0 as Weight
    }

    #[inline]
    fn add_weight(&mut self, w: Weight) {
        self.0 = narrow(self.0 as Weight + w);
    }
}

impl Tally for Counts {
    fn new(weight: Weight, matches: Weight) -> Counts {
        Counts { weight: narrow(weight), matches: narrow(matches) }
    }

    #[inline]
    fn weight(&self) -> Weight {
        self.weight as Weight
    }

    fn add_weight(&mut self, w: Weight) {
        self.weight = narrow(self.weight as Weight + w);
    }
}

impl Counts {
    /// The number (weighted) of partners the row matches.
    #[inline]
    pub fn matches(&self) -> Weight {
        self.matches as Weight
    }

    /// Adds `w` to the match count.
    #[inline]
    pub fn add_matches(&mut self, w: Weight) {
        self.matches = narrow(self.matches as Weight + w);
    }
}

#[derive(Debug)]
enum Bucket<C> {
    /// One row, inline.
    One(Row, C),
    /// Few rows, each with 32 bits of its hash beside it, so that a scan compares
    /// hashes without touching the rows themselves (a thin vector: its length and
    /// capacity live in its allocation, so that a bucket stays 16 bytes).
    Small(ThinVec<(u32, C, Row)>),
    /// Many rows, by the same 32 bits of their hashes, kept beside each row (boxed:
    /// rare). Growing the table then reads no row: it used to read every row's
    /// cached hash, a cache miss per row, each time a key with a hundred rows grew.
    Large(Box<HashTable<(u32, C, Row)>>),
}

/// The part of a row's hash a small or large bucket keeps.
#[inline]
fn fragment(row: &Row) -> u32 {
    row.hash_value() as u32
}

/// A large bucket's hash of a row from its [`fragment`]: the bits spread to the top,
/// where the table takes its tags from.
#[inline]
fn spread(fragment: u32) -> u64 {
    u64::from(fragment).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

impl<C: Tally> Bucket<C> {
    /// Whether no row is left (a single row goes when its weight reaches zero).
    fn is_empty(&self) -> bool {
        match self {
            Bucket::One(_, c) => c.weight() == 0,
            Bucket::Small(v) => v.is_empty(),
            Bucket::Large(m) => m.is_empty(),
        }
    }

    /// A row of the bucket (every row has the bucket's key); buckets in a bag are
    /// never empty.
    #[inline]
    fn first(&self) -> &Row {
        match self {
            Bucket::One(r, _) => r,
            Bucket::Small(v) => &v[0].2,
            Bucket::Large(m) => &m.iter().next().expect("a bucket in a bag has rows").2,
        }
    }

    /// Adds `weight` to `row`; returns +1 if the row is new, -1 if it went away, else 0.
    fn add(&mut self, row: &Row, weight: Weight, matches: Weight) -> i8 {
        match self {
            Bucket::One(r, c) => {
                if r == row {
                    c.add_weight(weight);
                    return if c.weight() == 0 { -1 } else { 0 };
                }
                let mut v = ThinVec::with_capacity(2);
                v.push((fragment(r), *c, r.clone()));
                v.push((fragment(row), C::new(weight, matches), row.clone()));
                *self = Bucket::Small(v);
                1
            }
            Bucket::Small(v) => {
                let hash = fragment(row);
                match v.iter().position(|(h, _, r)| *h == hash && r == row) {
                    Some(i) => {
                        v[i].1.add_weight(weight);
                        if v[i].1.weight() != 0 {
                            return 0;
                        }
                        v.swap_remove(i);
                        -1
                    }
                    None if v.len() < SMALL => {
                        // Grown by half, not doubled: most keys stop at a few rows,
                        // and a doubled vector would be a third empty on average.
                        if v.len() == v.capacity() {
                            v.reserve_exact(v.len() / 2 + 1);
                        }
                        v.push((hash, C::new(weight, matches), row.clone()));
                        1
                    }
                    None => {
                        let mut m = HashTable::with_capacity(v.len() * 2);
                        for entry in v.drain(..) {
                            m.insert_unique(spread(entry.0), entry, |e| spread(e.0));
                        }
                        m.insert_unique(spread(hash), (hash, C::new(weight, matches), row.clone()), |e| spread(e.0));
                        *self = Bucket::Large(Box::new(m));
                        1
                    }
                }
            }
            Bucket::Large(m) => {
                let hash = fragment(row);
                match m.find_entry(spread(hash), |(h, _, r)| *h == hash && r == row) {
                    Ok(mut o) => {
                        let c = &mut o.get_mut().1;
                        c.add_weight(weight);
                        if c.weight() != 0 {
                            return 0;
                        }
                        o.remove();
                        -1
                    }
                    Err(_) => {
                        m.insert_unique(spread(hash), (hash, C::new(weight, matches), row.clone()), |e| spread(e.0));
                        1
                    }
                }
            }
        }
    }

    /// Asks the processor to start loading what adding a row to the bucket reads
    /// first: the row it holds alone, the start of its vector, or its map's header.
    #[inline]
    fn prefetch(&self) {
        match self {
            Bucket::One(r, _) => r.prefetch(),
            Bucket::Small(v) => {
                // The vector's length and capacity lie just before its first entry.
                let first = v.as_ptr().cast::<u8>();
                crate::row::prefetch_address(first.wrapping_sub(16));
                crate::row::prefetch_address(first.wrapping_add(48));
            }
            Bucket::Large(m) => crate::row::prefetch_at(&**m),
        }
    }

    /// Every row with its tally.
    fn rows(&self) -> Box<dyn Iterator<Item = (&Row, C)> + '_> {
        match self {
            Bucket::One(r, c) => Box::new(std::iter::once((r, *c))),
            Bucket::Small(v) => Box::new(v.iter().map(|(_, c, r)| (r, *c))),
            Bucket::Large(m) => Box::new(m.iter().map(|(_, c, r)| (r, *c))),
        }
    }
}

/// The hash of a key: one seed per process, so that every bag agrees.
#[inline]
pub(crate) fn key_hash(key: &Key) -> u64 {
    static STATE: std::sync::OnceLock<hashbrown::DefaultHashBuilder> = std::sync::OnceLock::new();
    STATE.get_or_init(hashbrown::DefaultHashBuilder::default).hash_one(key)
}

/// A key of one fixed-width value as its tag and 8 bits-exact bytes: equal keys, and
/// only they, have equal bits (floats are made canonical: -0.0 is 0.0, one NaN).
#[inline]
fn inline_key(key: &Key) -> Option<(u8, u64)> {
    match key {
        Key::One(Value::Bool(b)) => Some((tag::BOOL, *b as u64)),
        Key::One(Value::Int(i)) => Some((tag::INT, *i as u64)),
        Key::One(Value::Float(f)) => Some((tag::FLOAT, canonical(*f).to_bits())),
        Key::One(Value::Date(d)) => Some((tag::DATE, *d as u32 as u64)),
        Key::One(Value::Timestamp(t)) => Some((tag::TIMESTAMP, *t as u64)),
        _ => None,
    }
}

/// The key [`inline_key`] encoded.
fn from_inline(tag: u8, bits: u64) -> Key {
    Key::One(match tag {
        tag::BOOL => Value::Bool(bits != 0),
        tag::INT => Value::Int(bits as i64),
        tag::FLOAT => Value::Float(f64::from_bits(bits)),
        tag::DATE => Value::Date(bits as u32 as i32),
        _ => Value::Timestamp(bits as i64),
    })
}

/// How a bag compares keys.
#[derive(Debug, Clone, Copy, PartialEq)]
enum KeyMode {
    /// No key seen yet.
    Unset,
    /// Every key is one fixed-width value with this tag, kept in its slot: a probe
    /// compares 8 bytes without reading a row.
    Inline(u8),
    /// Keys are compared by computing them from a row of the slot.
    FromRows,
}

/// A delta's rows are added shard by shard on the worker threads from this many on.
const SPLIT_FROM: usize = 16 * 1024;

/// A row of a long delta to add: its key's hash and its place in the delta. Sixteen
/// bytes, where the key and the row beside them took sixty-four: a load's million-row
/// deltas are sorted and split by shard as these, and the key is computed again from
/// the row when the row is reached (it is read then anyway).
#[derive(Debug, Clone, Copy)]
struct Entry {
    hash: u64,
    at: u32,
}

/// The mode after keys with these inline forms (see [`KeyMode`]) are added.
fn mode_after(mode: KeyMode, inline: Option<(u8, u64)>) -> KeyMode {
    match (mode, inline) {
        (KeyMode::Unset, Some((t, _))) => KeyMode::Inline(t),
        (KeyMode::Inline(t), Some((kt, _))) if t == kt => KeyMode::Inline(t),
        _ => KeyMode::FromRows,
    }
}

/// A bucket and, in [`KeyMode::Inline`], its key's bits.
#[derive(Debug)]
struct Slot<C> {
    key: u64,
    bucket: Bucket<C>,
}

/// Rows by join key, each with its tally `C`.
///
/// A slot does not store its key as a value: where keys are single fixed-width values
/// (integers, dates: nearly every join key) it keeps their 8 bytes, and otherwise
/// the key is computed from a row of the bucket (every row in it has the key) when
/// comparing or growing. A slot is thus 24 bytes instead of 64.
#[derive(Debug)]
pub(crate) struct KeyedBag<C = Counts> {
    /// How a row's key is computed.
    keys: Vec<Expr>,
    mode: KeyMode,
    /// The slots, in [`SHARDS`] tables by their keys' hashes ([`shard_of`]).
    buckets: Vec<HashTable<Slot<C>>>,
    rows: usize,
    /// Per shard, the emptied key lists of the last delta taken on this thread, kept
    /// for the next: allocating them anew cost glibc a consolidation of its fast bins
    /// each time.
    scratch: Vec<Vec<Entry>>,
}

impl<C: Tally> KeyedBag<C> {
    /// An empty bag of rows keyed by `keys`.
    pub fn new(keys: Vec<Expr>) -> Self {
        let buckets = (0..SHARDS).map(|_| HashTable::new()).collect();
        KeyedBag { keys, mode: KeyMode::Unset, buckets, rows: 0, scratch: Vec::new() }
    }

    /// How a row's key is computed.
    pub fn keys(&self) -> &[Expr] {
        &self.keys
    }

    /// The number of distinct keys held.
    pub fn key_count(&self) -> usize {
        self.buckets.iter().map(HashTable::len).sum()
    }

    /// Whether `slot` holds the rows with `key` (`inline`: the key's bits), or `None`
    /// if no slot can (the bag's keys are inline, and this key is of another kind).
    #[inline]
    fn matcher<'k>(
        keys: &'k [Expr],
        mode: KeyMode,
        key: &'k Key,
        inline: Option<(u8, u64)>,
    ) -> Option<impl Fn(&Slot<C>) -> bool + 'k> {
        let bits = match (mode, inline) {
            (KeyMode::Inline(t), Some((kt, bits))) if t == kt => Some(bits),
            (KeyMode::Inline(_), _) => return None,
            _ => None,
        };
        Some(move |slot: &Slot<C>| match bits {
            Some(bits) => slot.key == bits,
            None => {
                let row = slot.bucket.first();
                keys.iter().zip(key.values()).all(|(e, v)| *e.eval_cow(row) == *v)
            }
        })
    }

    /// The hash a slot is stored by, for growing the table.
    fn rehash(keys: &[Expr], mode: KeyMode) -> impl Fn(&Slot<C>) -> u64 + '_ {
        move |slot| match mode {
            KeyMode::Inline(t) => key_hash(&from_inline(t, slot.key)),
            _ => key_hash(&Key::eval(keys, slot.bucket.first())),
        }
    }

    /// The bucket of `key`, whose hash is `hash`.
    #[inline]
    fn bucket(&self, key: &Key, hash: u64) -> Option<&Bucket<C>> {
        let holds = Self::matcher(&self.keys, self.mode, key, inline_key(key))?;
        self.buckets[shard_of(hash)].find(hash, holds).map(|s| &s.bucket)
    }

    /// A new slot for `key` holding `row` (a key must not be there already).
    fn insert(&mut self, hash: u64, inline: Option<(u8, u64)>, row: &Row, tally: C) {
        self.insert_bucket(hash, inline, Bucket::One(row.clone(), tally));
        self.rows += 1;
    }

    /// Adds a slot for a key the bag lacks, holding `bucket` (its rows not counted).
    fn insert_bucket(&mut self, hash: u64, inline: Option<(u8, u64)>, bucket: Bucket<C>) {
        self.mode = mode_after(self.mode, inline);
        let slot = Slot { key: inline.map_or(0, |(_, bits)| bits), bucket };
        self.buckets[shard_of(hash)].insert_unique(hash, slot, Self::rehash(&self.keys, self.mode));
    }

    /// Asks the processor to start loading the slot a lookup of a key whose hash
    /// ([`key_hash`]) is `hash` reads first (see [`crate::probe_ahead`]), for a pass
    /// that looks up many keys in turn.
    #[inline]
    pub fn prefetch_hash(&self, hash: u64) {
        crate::probe_ahead::prefetch_probe(&self.buckets[shard_of(hash)], hash);
    }

    /// Calls `f` with each row under `key`, its weight and its match count.
    #[inline]
    pub fn for_each<'a>(&'a self, key: &Key, f: impl FnMut(&'a Row, C)) {
        self.for_each_hashed(key, key_hash(key), f);
    }

    /// [`KeyedBag::for_each`] for `key`, whose hash ([`key_hash`]) is `hash`: a pass
    /// that prefetched the key's slot hashed it then.
    #[inline]
    pub fn for_each_hashed<'a>(&'a self, key: &Key, hash: u64, mut f: impl FnMut(&'a Row, C)) {
        match self.bucket(key, hash) {
            None => {}
            Some(Bucket::One(r, c)) => f(r, *c),
            Some(Bucket::Small(v)) => v.iter().for_each(|(_, c, r)| f(r, *c)),
            Some(Bucket::Large(m)) => m.iter().for_each(|(_, c, r)| f(r, *c)),
        }
    }

    /// Like [`KeyedBag::for_each`], with the counts mutable.
    #[inline]
    pub fn for_each_mut(&mut self, key: &Key, mut f: impl FnMut(&Row, &mut C)) {
        let Some(holds) = Self::matcher(&self.keys, self.mode, key, inline_key(key)) else { return };
        let hash = key_hash(key);
        match self.buckets[shard_of(hash)].find_mut(hash, holds).map(|s| &mut s.bucket) {
            None => {}
            Some(Bucket::One(r, c)) => f(r, c),
            Some(Bucket::Small(v)) => v.iter_mut().for_each(|(_, c, r)| f(r, c)),
            Some(Bucket::Large(m)) => m.iter_mut().for_each(|(_, c, r)| f(r, c)),
        }
    }

    /// Adds `weight` to `row`, whose key is `key`; a row new to the bag starts with
    /// `matches`. Rows whose weight reaches zero are dropped, and so are keys left
    /// empty.
    pub fn add(&mut self, key: &Key, row: &Row, weight: Weight, matches: Weight) {
        self.add_hashed(key, key_hash(key), row, weight, matches);
    }

    /// [`KeyedBag::add`] for `key`, whose hash ([`key_hash`]) is `hash`.
    fn add_hashed(&mut self, key: &Key, hash: u64, row: &Row, weight: Weight, matches: Weight) {
        let inline = inline_key(key);
        if let Some(holds) = Self::matcher(&self.keys, self.mode, key, inline)
            && let Ok(mut o) = self.buckets[shard_of(hash)].find_entry(hash, holds)
        {
            match o.get_mut().bucket.add(row, weight, matches) {
                1 => self.rows += 1,
                -1 => {
                    self.rows -= 1;
                    if o.get().bucket.is_empty() {
                        o.remove();
                    }
                }
                _ => {}
            }
            return;
        }
        self.insert(hash, inline, row, C::new(weight, matches));
    }

    /// Adds every row of `delta` with its weight, its key computed by the bag's keys;
    /// rows with a NULL in their key match nothing and are not stored.
    ///
    /// A long delta is taken in the order of the rows' slots in the table, so that it
    /// walks the table from one end to the other (several rows to a cache line of the
    /// table's control bytes) instead of jumping about it, and rows with one key (an
    /// update that keeps its key: −old +new) share one lookup. On worker threads its
    /// keys are computed in chunks and its shards filled at once.
    pub fn add_delta(&mut self, delta: &ZSet) {
        let rows = delta.as_slice();
        if rows.len() < super::SLOT_ORDER_FROM {
            // A few rows (a small transaction's) have keys far apart in the table:
            // every slot, then every bucket a slot points to, is asked for before any
            // is used, so that their misses overlap instead of following each other.
            let keyed: SmallVec<[Option<(Key, u64)>; super::SLOT_ORDER_FROM]> = rows
                .iter()
                .map(|(row, _)| {
                    join_key(&self.keys, row).map(|key| {
                        let hash = key_hash(&key);
                        self.prefetch_hash(hash);
                        (key, hash)
                    })
                })
                .collect();
            if rows.len() > 1 {
                for (key, hash) in keyed.iter().flatten() {
                    if let Some(bucket) = self.bucket(key, *hash) {
                        bucket.prefetch();
                    }
                }
            }
            for ((row, weight), keyed) in rows.iter().zip(&keyed) {
                if let Some((key, hash)) = keyed {
                    self.add_hashed(key, *hash, row, *weight, 0);
                }
            }
            return;
        }
        assert!(u32::try_from(rows.len()).is_ok(), "a delta of fewer than 2^32 rows");
        let keys = &self.keys;
        let parallel = rows.len() >= SPLIT_FROM && crate::workers::in_parallel();
        let entries = |range: std::ops::Range<usize>, mut parts: Vec<Vec<Entry>>| {
            let start = range.start;
            // Room for a shard's share and a quarter more: keys spread evenly grow
            // none of them.
            let room = range.len() / SHARDS + range.len() / (4 * SHARDS) + 8;
            parts.resize_with(SHARDS, Vec::new);
            for part in &mut parts {
                part.clear();
                part.reserve(room);
            }
            let mut mode = KeyMode::Unset;
            for (i, (r, _)) in crate::row::prefetched(&rows[range], |(r, _)| r).enumerate() {
                if let Some(k) = join_key(keys, r) {
                    let hash = key_hash(&k);
                    mode = mode_after(mode, inline_key(&k));
                    parts[shard_of(hash)].push(Entry { hash, at: (start + i) as u32 });
                }
            }
            (parts, mode)
        };
        let chunks = if parallel {
            crate::workers::chunked(rows.len(), crate::workers::Cost::Row, |range| entries(range, Vec::new()))
        } else {
            vec![entries(0..rows.len(), std::mem::take(&mut self.scratch))]
        };
        let one_chunk = chunks.len() == 1;
        let mut parts: Vec<Vec<Entry>> = if one_chunk {
            Vec::new()
        } else {
            (0..SHARDS).map(|s| Vec::with_capacity(chunks.iter().map(|(p, _)| p[s].len()).sum())).collect()
        };
        for (chunk, mode) in chunks {
            // A chunk's mode is what its keys alone make; combined in order with the
            // bag's, it is what adding them one by one would make. The mode is settled
            // for the whole delta first, so that the shards can take their rows
            // independently (a mode that turns to comparing keys from rows on a key
            // that then nets to nothing only costs speed).
            self.mode = match (self.mode, mode) {
                (m, KeyMode::Unset) | (KeyMode::Unset, m) => m,
                (KeyMode::Inline(a), KeyMode::Inline(b)) if a == b => KeyMode::Inline(a),
                _ => KeyMode::FromRows,
            };
            if one_chunk {
                parts = chunk;
                continue;
            }
            for (all, part) in parts.iter_mut().zip(chunk) {
                all.extend(part);
            }
        }
        let (keys, mode) = (&self.keys, self.mode);
        let work: Vec<_> = self.buckets.iter_mut().zip(parts).filter(|(_, p)| !p.is_empty()).collect();
        let work_on = |(table, mut part): (&mut HashTable<Slot<C>>, Vec<Entry>)| {
            // By slot, then hash, then place in the delta: a key's rows in delta order.
            let mask = super::slot_mask(table.len() + part.len());
            part.sort_unstable_by_key(|e| (e.hash & mask, e.hash, e.at));
            (add_runs(table, keys, mode, rows, &part), part)
        };
        let done = if parallel { crate::workers::each(work, work_on) } else { work.into_iter().map(work_on).collect() };
        let mut added = 0;
        for (n, part) in done {
            added += n;
            // As much as a kept delta holds, across the shards (a big transaction's
            // lists are freed).
            if !parallel && part.capacity() <= crate::zset::KEPT_ENTRIES / SHARDS {
                self.scratch.push(part);
            }
        }
        self.rows = (self.rows as isize + added) as usize;
    }

    /// Every row with its tally, key by key (no key is computed).
    pub fn for_each_row<'a>(&'a self, mut f: impl FnMut(&'a Row, C)) {
        for s in self.buckets.iter().flatten() {
            match &s.bucket {
                Bucket::One(r, c) => f(r, *c),
                Bucket::Small(v) => v.iter().for_each(|(_, c, r)| f(r, *c)),
                Bucket::Large(m) => m.iter().for_each(|(_, c, r)| f(r, *c)),
            }
        }
    }

    /// Every key with its rows.
    pub fn for_each_key<'a>(&'a self, mut f: impl FnMut(&Key, &mut dyn Iterator<Item = (&'a Row, C)>)) {
        for s in self.buckets.iter().flatten() {
            f(&Key::eval(&self.keys, s.bucket.first()), &mut s.bucket.rows());
        }
    }

    /// Approximate heap bytes (not counting the rows, which are shared).
    pub fn state_bytes(&self) -> usize {
        let entry = std::mem::size_of::<(u32, C, Row)>();
        self.buckets.iter().map(HashTable::capacity).sum::<usize>() * (std::mem::size_of::<Slot<C>>() + 1)
            + self
                .buckets
                .iter()
                .flatten()
                .map(|s| match &s.bucket {
                    Bucket::One(..) => 0,
                    Bucket::Small(v) => 8 + v.capacity() * entry,
                    Bucket::Large(m) => m.capacity() * (std::mem::size_of::<(u32, C, Row)>() + 1),
                })
                .sum::<usize>()
    }
}

/// Adds the rows of `delta` that `entries` name (rows of one shard, in slot order, a
/// key's rows next to each other) to that shard's `table`, whose bag compares keys as
/// `mode` says; returns the change in the number of distinct rows held.
fn add_runs<C: Tally>(
    table: &mut HashTable<Slot<C>>,
    keys: &[Expr],
    mode: KeyMode,
    delta: &[(Row, Weight)],
    entries: &[Entry],
) -> isize {
    if table.is_empty() {
        // Built in bulk: the table is sized once for the keys coming, instead of
        // growing (and rehashing every key) again and again.
        let distinct = entries.windows(2).filter(|w| w[0].hash != w[1].hash).count() + usize::from(!entries.is_empty());
        table.reserve(distinct, KeyedBag::<C>::rehash(keys, mode));
    }
    let row_of = |e: &Entry| &delta[e.at as usize];
    let mut ahead = Ahead { entries, delta, rows: 0, names: 0, buckets: 0 };
    let mut added = 0isize;
    let mut i = 0;
    while i < entries.len() {
        ahead.reach(i, table, keys, mode);
        let hash = entries[i].hash;
        let key = Key::eval(keys, &row_of(&entries[i]).0);
        // The entries with this key, from `i` on (a hash shared by two keys is rare:
        // compared first, the key only then).
        let mut end = i + 1;
        while end < entries.len()
            && entries[end].hash == hash
            && keys.iter().zip(key.values()).all(|(k, v)| *k.eval_cow(&row_of(&entries[end]).0) == *v)
        {
            end += 1;
            ahead.reach(end, table, keys, mode);
        }
        let mut rows = entries[i..end].iter().map(row_of).peekable();
        i = end;
        let inline = inline_key(&key);
        if let Some(holds) = KeyedBag::<C>::matcher(keys, mode, &key, inline)
            && let Ok(mut o) = table.find_entry(hash, holds)
        {
            for (r, w) in rows.by_ref() {
                added += o.get_mut().bucket.add(r, *w, 0) as isize;
                if o.get().bucket.is_empty() {
                    // The key is gone; rows after this make it anew.
                    o.remove();
                    break;
                }
            }
            if rows.peek().is_none() {
                continue;
            }
        }
        // A new key: one row in the slot, several in a bucket made to size.
        let rows: Vec<&(Row, Weight)> = rows.collect();
        let bucket = match rows[..] {
            [(row, weight)] => {
                added += 1;
                Bucket::One(row.clone(), C::new(*weight, 0))
            }
            _ => {
                let mut bucket = if rows.len() <= SMALL {
                    Bucket::Small(ThinVec::with_capacity(rows.len()))
                } else {
                    Bucket::Large(Box::new(HashTable::with_capacity(rows.len())))
                };
                for (r, w) in rows {
                    added += bucket.add(r, *w, 0) as isize;
                }
                bucket
            }
        };
        if !bucket.is_empty() {
            let slot = Slot { key: inline.map_or(0, |(_, bits)| bits), bucket };
            table.insert_unique(hash, slot, KeyedBag::<C>::rehash(keys, mode));
        }
    }
    added
}

/// Prefetching for a pass over a delta's rows in the order `entries` name them (not
/// the order they lie in), in three steps so that no load waits on another: the
/// delta's entry naming a row (a row's handle, itself out of order) twice
/// [`PREFETCH_AHEAD`] entries before it is reached; the row, and where the table's
/// probe for its key starts, [`PREFETCH_AHEAD`] before; and, half that before, what
/// the key's slot points to (the bucket's rows), found then through the slot and the
/// row already fetched. A short delta (a small transaction's) touches keys far apart
/// in the table, so that each of these is a miss of its own.
struct Ahead<'a> {
    entries: &'a [Entry],
    delta: &'a [(Row, Weight)],
    /// Entries below this have had their rows and probes prefetched.
    rows: usize,
    /// Entries below this have had their delta entries prefetched.
    names: usize,
    /// Entries below this have had their buckets prefetched.
    buckets: usize,
}

impl Ahead<'_> {
    /// Prefetches for the entries up to `at` plus the distances above, in `table`,
    /// whose bag computes keys by `keys` and compares them as `mode` says.
    #[inline]
    fn reach<C: Tally>(&mut self, at: usize, table: &HashTable<Slot<C>>, keys: &[Expr], mode: KeyMode) {
        let names = (at + 2 * PREFETCH_AHEAD).min(self.entries.len());
        while self.names < names {
            crate::row::prefetch_at(&self.delta[self.entries[self.names].at as usize]);
            self.names += 1;
        }
        let rows = (at + PREFETCH_AHEAD).min(self.entries.len());
        while self.rows < rows {
            let e = self.entries[self.rows];
            self.delta[e.at as usize].0.prefetch();
            crate::probe_ahead::prefetch_probe(table, e.hash);
            self.rows += 1;
        }
        let buckets = (at + PREFETCH_AHEAD / 2).min(self.entries.len());
        while self.buckets < buckets {
            let e = self.entries[self.buckets];
            self.buckets += 1;
            if self.buckets > 1 && self.entries[self.buckets - 2].hash == e.hash {
                // The same key as the entry before (an update's old and new row).
                continue;
            }
            let key = Key::eval(keys, &self.delta[e.at as usize].0);
            if let Some(holds) = KeyedBag::<C>::matcher(keys, mode, &key, inline_key(&key))
                && let Some(slot) = table.find(e.hash, holds)
            {
                slot.bucket.prefetch();
            }
        }
    }
}

/// The join key of `row`: `keys` evaluated on it, or `None` if a key value is NULL
/// (NULL never equals anything, so such a row has no partner).
pub(crate) fn join_key<R: Columns + ?Sized>(keys: &[Expr], row: &R) -> Option<Key> {
    let key = Key::eval(keys, row);
    if key.values().iter().any(Value::is_null) { None } else { Some(key) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operator::SLOT_ORDER_FROM;
    use crate::row;

    #[test]
    fn buckets_grow_into_maps_and_shrink_away() {
        let mut bag: KeyedBag = KeyedBag::new(vec![Expr::col(0)]);
        let key = Key::One(Value::Int(1));
        for i in 0..40 {
            bag.add(&key, &row![1, i], 1, 0);
        }
        bag.add(&key, &row![1, 3], 2, 0);
        let mut total = 0;
        bag.for_each(&key, |_, c| total += c.weight());
        assert_eq!(total, 42);
        for i in 0..40 {
            let w = if i == 3 { -3 } else { -1 };
            bag.add(&key, &row![1, i], w, 0);
        }
        assert_eq!(bag.rows, 0);
        assert_eq!(bag.key_count(), 0);
    }

    /// A delta of these rows, in this order.
    fn zset(rows: Vec<(&Row, Weight)>) -> ZSet {
        rows.into_iter().map(|(r, w)| (r.clone(), w)).collect()
    }

    #[test]
    fn runs_of_one_key_share_a_lookup_and_empty_buckets_go() {
        let rows = |bag: &KeyedBag<Multiplicity>, k: i64| {
            let mut out = Vec::new();
            bag.for_each(&Key::One(Value::Int(k)), |r, m| out.push((r.to_string(), m.weight())));
            out
        };
        // Short deltas are applied as they come, long ones in slot order: both alike.
        for filler in [0, SLOT_ORDER_FROM] {
            let mut bag: KeyedBag<Multiplicity> = KeyedBag::new(vec![Expr::col(0)]);
            let (a, b, c, n) = (row![1, "a"], row![1, "b"], row![2, "c"], row![None::<i64>, "n"]);
            let others: Vec<Row> = (0..filler as i64).map(|i| row![100 + i, "x"]).collect();
            let mut first: Vec<(&Row, Weight)> = vec![(&a, 1), (&c, 1)];
            first.extend(others.iter().map(|r| (r, 1)));
            bag.add_delta(&zset(first));
            // An update within key 1, then key 1 emptied and refilled within one
            // delta, and a row whose key is NULL (never stored).
            bag.add_delta(&zset(vec![(&a, -1), (&b, 1), (&b, -1), (&a, 1), (&n, 1)]));
            assert_eq!(rows(&bag, 1), vec![("(1, 'a')".to_string(), 1)]);
            assert_eq!(rows(&bag, 2), vec![("(2, 'c')".to_string(), 1)]);
            assert_eq!(bag.rows, 2 + filler);
            let mut gone: Vec<(&Row, Weight)> = vec![(&a, -1), (&c, -1)];
            gone.extend(others.iter().map(|r| (r, -1)));
            bag.add_delta(&zset(gone));
            assert_eq!(bag.key_count(), 0);
        }
        // The same key changing many times in one long delta.
        let mut bag: KeyedBag<Multiplicity> = KeyedBag::new(vec![Expr::col(0)]);
        let versions: Vec<Row> = (0..40).map(|v| row![7, v]).collect();
        let mut delta: Vec<(&Row, Weight)> = vec![(&versions[0], 1)];
        for pair in versions.windows(2) {
            delta.push((&pair[0], -1));
            delta.push((&pair[1], 1));
        }
        bag.add_delta(&zset(delta));
        assert_eq!(rows(&bag, 7), vec![("(7, 39)".to_string(), 1)]);
        assert_eq!(bag.rows, 1);
    }

    #[test]
    fn inline_keys_give_way_to_keys_read_from_rows() {
        let mut bag: KeyedBag<Multiplicity> = KeyedBag::new(vec![Expr::col(0)]);
        let count = |bag: &KeyedBag<Multiplicity>, key: Value| {
            let mut n = 0;
            bag.for_each(&Key::One(key), |_, m| n += m.weight());
            n
        };
        bag.add(&Key::One(Value::Float(-0.0)), &row![-0.0, 1], 1, 0);
        bag.add(&Key::One(Value::Float(0.0)), &row![0.0, 2], 1, 0);
        assert_eq!(bag.mode, KeyMode::Inline(tag::FLOAT));
        assert_eq!(count(&bag, Value::Float(0.0)), 2, "-0.0 and 0.0 are one key");
        assert_eq!(count(&bag, Value::Int(0)), 0, "an integer key is another key");
        // A key of another kind: from now on keys are read from rows.
        bag.add(&Key::One(Value::text("a")), &row!["a", 3], 1, 0);
        assert_eq!(bag.mode, KeyMode::FromRows);
        for i in 0..100 {
            bag.add(&Key::One(Value::Float(i as f64)), &row![i as f64, i], 1, 0);
        }
        assert_eq!(count(&bag, Value::Float(-0.0)), 3);
        assert_eq!(count(&bag, Value::Float(99.0)), 1);
        assert_eq!(count(&bag, Value::text("a")), 1);
    }

    #[test]
    fn bulk_adds_equal_row_by_row_adds_whatever_the_delta() {
        bulk_adds_equal_row_by_row_adds(SLOT_ORDER_FROM, 60);
    }

    #[test]
    fn bulk_adds_on_worker_threads_equal_row_by_row_adds() {
        // Deltas long enough to be split by shard and added on two threads.
        let pool = crate::workers::Workers::new(2).pool().expect("two threads make a pool");
        pool.install(|| bulk_adds_equal_row_by_row_adds(SPLIT_FROM, 2000));
    }

    /// Random deltas of `least + [0, spread)` rows over few keys and rows: keys born in
    /// bulk, keys that vanish and come back within one delta, rows that pass through
    /// negative counts; the bag added to in bulk must equal the one added to row by row.
    fn bulk_adds_equal_row_by_row_adds(least: usize, spread: u64) {
        let mut next = crate::operator::xorshift(0x2545_F491_4F6C_DD1Du64);
        let contents = |bag: &KeyedBag<Multiplicity>| {
            let mut out: Vec<(String, Weight)> = Vec::new();
            bag.for_each_key(|_, rows| out.extend(rows.map(|(r, m)| (r.to_string(), m.weight()))));
            out.sort();
            out
        };
        let mut bulk: KeyedBag<Multiplicity> = KeyedBag::new(vec![Expr::col(0)]);
        let mut single: KeyedBag<Multiplicity> = KeyedBag::new(vec![Expr::col(0)]);
        let mut held: Vec<(i64, i64)> = Vec::new();
        for round in 0..200 {
            let mut delta: Vec<(Row, Weight)> = Vec::new();
            for _ in 0..least + next(spread) as usize {
                let (k, v) = (next(if round % 2 == 0 { 4 } else { 400 }) as i64, next(30) as i64);
                if next(3) == 0 && !held.is_empty() {
                    let (k, v) = held.swap_remove(next(held.len() as u64) as usize);
                    delta.push((row![k, v], -1));
                } else if next(4) == 0 {
                    // Out and back in, within the delta.
                    delta.push((row![k, v], -1));
                    delta.push((row![k, v], 1));
                } else {
                    held.push((k, v));
                    delta.push((row![k, v], 1));
                }
            }
            bulk.add_delta(&delta.iter().cloned().collect());
            for (r, w) in &delta {
                single.add(&Key::One(r.get(0).into_owned()), r, *w, 0);
            }
            assert_eq!(contents(&bulk), contents(&single), "round {round}");
            assert_eq!(bulk.rows, single.rows, "round {round}");
            assert!(contents(&bulk).iter().all(|(_, w)| *w != 0), "no row is kept at weight zero");
        }
    }
}
