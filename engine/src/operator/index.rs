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
//! key (the key is computed from the slot's rows), so it is 16 bytes.

use std::hash::BuildHasher;

use hashbrown::HashTable;
use thin_vec::ThinVec;

use crate::expr::Expr;
use crate::row::{Columns, Row};
use crate::value::Value;
use crate::zset::Weight;

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
pub(crate) trait Tally: Copy + std::fmt::Debug {
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
    /// capacity live in its allocation, so that a slot stays 16 bytes).
    Small(ThinVec<(u32, C, Row)>),
    /// Many rows, by their cached hashes (boxed: rare).
    Large(Box<HashTable<(Row, C)>>),
}

/// The part of a row's hash a small bucket keeps.
#[inline]
fn fragment(row: &Row) -> u32 {
    row.hash_value() as u32
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
            Bucket::Large(m) => &m.iter().next().expect("a bucket in a bag has rows").0,
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
                        for (_, c, r) in v.drain(..) {
                            m.insert_unique(r.hash_value(), (r, c), |(r, _)| r.hash_value());
                        }
                        m.insert_unique(row.hash_value(), (row.clone(), C::new(weight, matches)), |(r, _)| {
                            r.hash_value()
                        });
                        *self = Bucket::Large(Box::new(m));
                        1
                    }
                }
            }
            Bucket::Large(m) => match m.find_entry(row.hash_value(), |(r, _)| r == row) {
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
                    m.insert_unique(row.hash_value(), (row.clone(), C::new(weight, matches)), |(r, _)| r.hash_value());
                    1
                }
            },
        }
    }

    /// Every row with its tally.
    fn rows(&self) -> Box<dyn Iterator<Item = (&Row, C)> + '_> {
        match self {
            Bucket::One(r, c) => Box::new(std::iter::once((r, *c))),
            Bucket::Small(v) => Box::new(v.iter().map(|(_, c, r)| (r, *c))),
            Bucket::Large(m) => Box::new(m.iter().map(|(r, c)| (r, *c))),
        }
    }
}

/// The hash of a key: one seed per process, so that every bag agrees.
#[inline]
fn key_hash(key: &Key) -> u64 {
    static STATE: std::sync::OnceLock<hashbrown::DefaultHashBuilder> = std::sync::OnceLock::new();
    STATE.get_or_init(hashbrown::DefaultHashBuilder::default).hash_one(key)
}

/// Rows by join key, each with its tally `C`.
///
/// A bucket does not store its key: every row in it has that key, so the key is
/// computed from a row when needed (comparing a probe, growing the table). Keys are
/// usually columns, so that costs a read of a row the probe is about to use anyway,
/// and it keeps a slot at 16 bytes instead of 64.
#[derive(Debug)]
pub(crate) struct KeyedBag<C = Counts> {
    /// How a row's key is computed.
    keys: Vec<Expr>,
    buckets: HashTable<Bucket<C>>,
    rows: usize,
}

impl<C: Tally> KeyedBag<C> {
    /// An empty bag of rows keyed by `keys`.
    pub fn new(keys: Vec<Expr>) -> Self {
        KeyedBag { keys, buckets: HashTable::new(), rows: 0 }
    }

    /// How a row's key is computed.
    pub fn keys(&self) -> &[Expr] {
        &self.keys
    }

    /// Whether `bucket` holds the rows with `key`.
    #[inline]
    fn holds(keys: &[Expr], bucket: &Bucket<C>, key: &Key) -> bool {
        let row = bucket.first();
        keys.iter().zip(key.values()).all(|(e, v)| *e.eval_cow(row) == *v)
    }

    /// The bucket of `key`.
    #[inline]
    fn bucket(&self, key: &Key) -> Option<&Bucket<C>> {
        self.buckets.find(key_hash(key), |b| Self::holds(&self.keys, b, key))
    }

    /// Calls `f` with each row under `key`, its weight and its match count.
    #[inline]
    pub fn for_each<'a>(&'a self, key: &Key, mut f: impl FnMut(&'a Row, C)) {
        match self.bucket(key) {
            None => {}
            Some(Bucket::One(r, c)) => f(r, *c),
            Some(Bucket::Small(v)) => v.iter().for_each(|(_, c, r)| f(r, *c)),
            Some(Bucket::Large(m)) => m.iter().for_each(|(r, c)| f(r, *c)),
        }
    }

    /// Like [`KeyedBag::for_each`], with the counts mutable.
    #[inline]
    pub fn for_each_mut(&mut self, key: &Key, mut f: impl FnMut(&Row, &mut C)) {
        let keys = &self.keys;
        match self.buckets.find_mut(key_hash(key), |b| Self::holds(keys, b, key)) {
            None => {}
            Some(Bucket::One(r, c)) => f(r, c),
            Some(Bucket::Small(v)) => v.iter_mut().for_each(|(_, c, r)| f(r, c)),
            Some(Bucket::Large(m)) => m.iter_mut().for_each(|(r, c)| f(r, c)),
        }
    }

    /// Adds `weight` to `row`, whose key is `key`; a row new to the bag starts with
    /// `matches`. Rows whose weight reaches zero are dropped, and so are keys left
    /// empty.
    pub fn add(&mut self, key: &Key, row: &Row, weight: Weight, matches: Weight) {
        let keys = &self.keys;
        let hash = key_hash(key);
        match self.buckets.find_entry(hash, |b| Self::holds(keys, b, key)) {
            Ok(mut o) => match o.get_mut().add(row, weight, matches) {
                1 => self.rows += 1,
                -1 => {
                    self.rows -= 1;
                    if o.get().is_empty() {
                        o.remove();
                    }
                }
                _ => {}
            },
            Err(_) => {
                let rehash = |b: &Bucket<C>| key_hash(&Key::eval(keys, b.first()));
                self.buckets.insert_unique(hash, Bucket::One(row.clone(), C::new(weight, matches)), rehash);
                self.rows += 1;
            }
        }
    }

    /// Adds every row of `rows` with its weight, its key computed by the bag's keys;
    /// rows with a NULL in their key match nothing and are not stored. Consecutive
    /// rows with one key (an update that keeps the key: −old +new) share one lookup.
    pub fn add_all<'r>(&mut self, rows: impl Iterator<Item = (&'r Row, Weight)>) {
        let keys = &self.keys;
        let mut rows = rows.peekable();
        while let Some((row, weight)) = rows.next() {
            let Some(key) = join_key(keys, row) else { continue };
            let hash = key_hash(&key);
            match self.buckets.find_entry(hash, |b| Self::holds(keys, b, &key)) {
                Ok(mut o) => {
                    let mut next = Some((row, weight));
                    while let Some((row, weight)) = next {
                        match o.get_mut().add(row, weight, 0) {
                            1 => self.rows += 1,
                            -1 => self.rows -= 1,
                            _ => {}
                        }
                        if o.get().is_empty() {
                            o.remove();
                            break;
                        }
                        next = rows.next_if(|(r, _)| keys.iter().zip(key.values()).all(|(e, v)| *e.eval_cow(*r) == *v));
                    }
                }
                Err(_) => {
                    let rehash = |b: &Bucket<C>| key_hash(&Key::eval(keys, b.first()));
                    self.buckets.insert_unique(hash, Bucket::One(row.clone(), C::new(weight, 0)), rehash);
                    self.rows += 1;
                }
            }
        }
    }

    /// Every key with its rows.
    pub fn for_each_key<'a>(&'a self, mut f: impl FnMut(&Key, &mut dyn Iterator<Item = (&'a Row, C)>)) {
        for b in &self.buckets {
            f(&Key::eval(&self.keys, b.first()), &mut b.rows());
        }
    }

    /// Approximate heap bytes (not counting the rows, which are shared).
    pub fn state_bytes(&self) -> usize {
        let entry = std::mem::size_of::<(u32, C, Row)>();
        self.buckets.capacity() * (std::mem::size_of::<Bucket<C>>() + 1)
            + self
                .buckets
                .iter()
                .map(|b| match b {
                    Bucket::One(..) => 0,
                    Bucket::Small(v) => 8 + v.capacity() * entry,
                    Bucket::Large(m) => m.capacity() * (std::mem::size_of::<(Row, C)>() + 1),
                })
                .sum::<usize>()
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
        assert!(bag.buckets.is_empty());
    }

    #[test]
    fn runs_of_one_key_share_a_lookup_and_empty_buckets_go() {
        let mut bag: KeyedBag<Multiplicity> = KeyedBag::new(vec![Expr::col(0)]);
        let (a, b, c) = (row![1, "a"], row![1, "b"], row![2, "c"]);
        bag.add_all([(&a, 1), (&c, 1)].into_iter());
        // An update within key 1, then key 1 emptied and refilled within one run, and
        // a row whose key is NULL (never stored).
        bag.add_all([(&a, -1), (&b, 1), (&b, -1), (&a, 1), (&row![None::<i64>, "n"], 1)].into_iter());
        let rows = |bag: &KeyedBag<Multiplicity>, k: i64| {
            let mut out = Vec::new();
            bag.for_each(&Key::One(Value::Int(k)), |r, m| out.push((r.to_string(), m.weight())));
            out
        };
        assert_eq!(rows(&bag, 1), vec![("(1, 'a')".to_string(), 1)]);
        assert_eq!(rows(&bag, 2), vec![("(2, 'c')".to_string(), 1)]);
        assert_eq!(bag.rows, 2);
        bag.add_all([(&a, -1), (&c, -1)].into_iter());
        assert!(bag.buckets.is_empty());
    }
}
