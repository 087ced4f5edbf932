//! Arrangements: one node's output indexed by a key, shared by every join that probes
//! that node by that key.
//!
//! Two views that join `orders` on `product_id` need the same index of `orders`; kept
//! per join, a large table would be indexed twice, and every change to it paid twice.
//! The graph therefore owns the indexes: it keeps one arrangement per (node, key),
//! applies each node's delta to its arrangements as soon as the node has produced it,
//! and joins read them. A join thus always sees its inputs *after* the transaction;
//! where its delta rule needs an input as it was before, it subtracts that input's
//! delta, indexed the same way for the step ([`DeltaIndex`]).
//!
//! An arrangement of a base table made when the table already holds rows (a view
//! registered over a snapshot, a restart) is *deferred*: built from the table's rows
//! the first time a join needs it, and kept up to date from then on. A join of a fact
//! table with its dimensions probes the fact table's arrangement by a dimension key
//! only when that dimension changes, which for many dimensions is never: building it
//! up front would cost a pass over the largest table, its memory, and its upkeep on
//! every change, for nothing. The graph decides when it is needed
//! ([`crate::dataflow`]); reading one that was not built is a bug, and panics.

use std::sync::Arc;

use hashbrown::HashMap;
use parking_lot::RwLock;

use crate::expr::Expr;
use crate::row::Row;
use crate::zset::{Weight, ZSet};

use super::index::{Key, KeyedBag, Multiplicity, Tally, join_key};

/// An arrangement as joins hold it.
pub type Shared = Arc<RwLock<Arrangement>>;

/// Rows of one node's output by the key `keys` computes from them.
#[derive(Debug)]
pub struct Arrangement {
    bag: KeyedBag<Multiplicity>,
    /// Deferred and not built: holds nothing, and ignores deltas.
    deferred: bool,
}

impl Arrangement {
    /// An empty arrangement by `keys`.
    pub fn new(keys: Vec<Expr>) -> Arrangement {
        Arrangement { bag: KeyedBag::new(keys), deferred: false }
    }

    /// An empty arrangement by `keys`, ready to share.
    pub fn shared(keys: Vec<Expr>) -> Shared {
        Arc::new(RwLock::new(Arrangement::new(keys)))
    }

    /// The key expressions.
    pub fn keys(&self) -> &[Expr] {
        self.bag.keys()
    }

    /// The number of distinct keys held.
    pub fn key_count(&self) -> usize {
        self.built().key_count()
    }

    /// Adds a delta of the node's output. Rows whose key has a NULL match nothing and
    /// are not stored. A deferred arrangement ignores it: it is built from the whole
    /// output when needed.
    pub fn apply(&mut self, delta: &ZSet) {
        if !self.deferred {
            self.bag.add_delta(delta);
        }
    }

    /// Defers an empty arrangement: it holds nothing until [`Arrangement::build`].
    pub fn defer(&mut self) {
        assert!(self.bag.key_count() == 0, "only an empty arrangement is deferred");
        self.deferred = true;
    }

    /// Whether it is deferred and not built yet.
    pub fn is_deferred(&self) -> bool {
        self.deferred
    }

    /// Builds a deferred arrangement from its node's whole current output `rows`;
    /// kept up to date by [`Arrangement::apply`] from then on.
    pub fn build(&mut self, rows: &ZSet) {
        if std::mem::take(&mut self.deferred) {
            self.bag.add_delta(rows);
        }
    }

    /// The index, which must be built.
    #[inline]
    fn built(&self) -> &KeyedBag<Multiplicity> {
        assert!(!self.deferred, "a deferred arrangement was read before it was built");
        &self.bag
    }

    /// Calls `f` with each row under `key` and its multiplicity.
    #[inline]
    pub(crate) fn for_each<'a>(&'a self, key: &Key, mut f: impl FnMut(&'a Row, Weight)) {
        self.built().for_each(key, |r, c| f(r, c.weight()));
    }

    /// Asks the processor to start loading what a lookup of a key whose hash
    /// ([`key_hash`](super::index::key_hash)) is `hash` reads first.
    #[inline]
    pub(crate) fn prefetch_hash(&self, hash: u64) {
        self.built().prefetch_hash(hash);
    }

    /// [`Arrangement::for_each`] for `key`, whose hash ([`key_hash`](super::index::key_hash)) is `hash`.
    #[inline]
    pub(crate) fn for_each_hashed<'a>(&'a self, key: &Key, hash: u64, mut f: impl FnMut(&'a Row, Weight)) {
        self.built().for_each_hashed(key, hash, |r, c| f(r, c.weight()));
    }

    /// Every row with its multiplicity, key by key.
    pub(crate) fn for_each_row<'a>(&'a self, mut f: impl FnMut(&'a Row, Weight)) {
        self.built().for_each_row(|r, c| f(r, c.weight()));
    }

    /// Every key with its rows and their multiplicities.
    pub(crate) fn for_each_key<'a>(&'a self, mut f: impl FnMut(&Key, &mut dyn Iterator<Item = (&'a Row, Weight)>)) {
        self.built().for_each_key(|k, rows| f(k, &mut rows.map(|(r, c)| (r, c.weight()))));
    }

    /// Approximate heap bytes (not counting the rows, which are shared).
    pub fn state_bytes(&self) -> usize {
        self.bag.state_bytes()
    }
}

/// One step's delta of an input, indexed by an arrangement's key: what to subtract
/// from the arrangement to see the input as it was before the transaction.
#[derive(Debug, Default)]
pub(crate) struct DeltaIndex<'a> {
    rows: HashMap<Key, Vec<(&'a Row, Weight)>>,
}

impl<'a> DeltaIndex<'a> {
    /// `delta` by `keys`.
    pub fn new(keys: &[Expr], delta: &'a ZSet) -> DeltaIndex<'a> {
        let mut rows: HashMap<Key, Vec<(&'a Row, Weight)>> = HashMap::new();
        for (row, w) in delta {
            if let Some(k) = join_key(keys, row) {
                rows.entry(k).or_default().push((row, *w));
            }
        }
        DeltaIndex { rows }
    }

    /// Calls `f` with each delta row under `key` and its weight.
    #[inline]
    pub fn for_each(&self, key: &Key, mut f: impl FnMut(&'a Row, Weight)) {
        if let Some(rows) = self.rows.get(key) {
            rows.iter().for_each(|(r, w)| f(r, *w));
        }
    }
}

/// For operator tests: the arrangements an operator asked for, by input, kept up to
/// date the way the graph does before each step.
#[cfg(test)]
#[derive(Debug, Default)]
pub(crate) struct TestArrangements {
    by_input: Vec<(usize, Shared)>,
}

#[cfg(test)]
impl TestArrangements {
    /// A fresh arrangement of input `input` by `keys` (what the graph would share).
    pub fn arrange(&mut self, input: usize, keys: &[Expr]) -> Shared {
        let a = Arrangement::shared(keys.to_vec());
        self.by_input.push((input, Arc::clone(&a)));
        a
    }

    /// Applies each input's delta to its arrangements.
    pub fn apply(&self, deltas: &[&ZSet]) {
        for (input, a) in &self.by_input {
            a.write().apply(deltas[*input]);
        }
    }
}
