//! Worker threads: a large transaction spread over the machine's cores.
//!
//! The scheme (measured against sharding every operator's state by key hash, which
//! needs an exchange wherever two operators key differently) is parallelism over the
//! operator graph plus data parallelism inside the operators that dominate bulk work:
//!
//! - the graph runs every node as soon as all its inputs have produced their deltas,
//!   so independent views and branches step at the same time ([`crate::dataflow`]);
//! - a node's arrangements are applied in parallel, one task each;
//! - long deltas through joins are cut into chunks probed in parallel (the
//!   arrangements are only read during a step), and the chunks' outputs are joined in
//!   chunk order.
//!
//! Every node still sees exactly the deltas it sees on one thread and computes the
//! same output delta, so results do not depend on the number of threads, and a
//! transaction is published to readers in one step as before. Small transactions
//! (fewer than [`PARALLEL_FROM`] changed rows) run on the writer's thread alone: a
//! one-event transaction never waits for a wake-up.
//!
//! Pools are started by the first transaction that needs one and shared
//! process-wide per thread count, so that many engines (a test suite's, or
//! per-request views') do not each start their own threads. A process forked after
//! its parent started a pool (a pre-forking web server's workers) starts its own: the
//! parent's threads do not exist in it.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, OnceLock, Weak};

use parking_lot::Mutex;
use rayon_core::{ThreadPool, ThreadPoolBuilder};

use crate::zset::ZSet;

/// The most worker threads an engine starts by default, however many cores there are.
pub const MAX_DEFAULT_THREADS: usize = 8;

/// The number of changed table rows in a transaction from which it runs on the
/// worker threads (unless `CIUF_PARALLEL_FROM` says otherwise).
pub const PARALLEL_FROM: usize = 2048;

/// The environment variable that sets the default number of threads (as the test
/// suite does, to run every test with 1 and with several threads).
pub const THREADS_VAR: &str = "CIUF_THREADS";

/// The environment variable that sets [`parallel_from`]: the test suite sets it to 1
/// so that its small transactions take the parallel path too.
pub const PARALLEL_FROM_VAR: &str = "CIUF_PARALLEL_FROM";

/// The number of changed table rows from which a transaction runs on the worker
/// threads: `CIUF_PARALLEL_FROM` if set, else [`PARALLEL_FROM`].
pub fn parallel_from() -> usize {
    static FROM: OnceLock<usize> = OnceLock::new();
    *FROM.get_or_init(|| {
        std::env::var(PARALLEL_FROM_VAR).ok().and_then(|v| v.trim().parse::<usize>().ok()).unwrap_or(PARALLEL_FROM)
    })
}

/// The fewest items a chunk of a parallel pass over items costing `cost` each holds
/// (below that, the hand-off costs more than the work).
fn min_chunk(cost: Cost) -> usize {
    let rows = match cost {
        Cost::Row => 1024,
        Cost::Probe => 16,
    };
    // Under a lowered threshold (the tests' 1), chunks shrink with it.
    rows.min(parallel_from()).max(1)
}

/// What one item of a parallel pass costs, roughly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cost {
    /// A pass over a row: hashing it, storing it.
    Row,
    /// A probe that may fan out into many rows: a join's.
    Probe,
}

/// The number of shards that state split by key hash is kept in (an aggregate's
/// groups, an arrangement's slots): fixed, so that what is computed, and in which
/// order, does not depend on the number of threads.
pub(crate) const SHARDS: usize = 8;

/// A hash's shard: the three bits just below the seven that a hashbrown table keeps in
/// each slot's control byte, so that within a shard those seven still tell keys apart.
/// (The top three would leave four: a probe would then compare keys for one occupied
/// slot in sixteen rather than one in 128.)
#[inline]
pub(crate) fn shard_of(hash: u64) -> usize {
    ((hash >> 54) & (SHARDS as u64 - 1)) as usize
}

/// The number of threads an engine uses unless told otherwise: `CIUF_THREADS` if set,
/// else the machine's cores up to [`MAX_DEFAULT_THREADS`].
pub fn default_threads() -> usize {
    static DEFAULT: OnceLock<usize> = OnceLock::new();
    *DEFAULT.get_or_init(|| {
        std::env::var(THREADS_VAR)
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .filter(|&n| n > 0)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()).min(MAX_DEFAULT_THREADS))
    })
}

/// The threads an engine's transactions may use.
pub(crate) struct Workers {
    threads: usize,
    /// The pool, started on the first transaction that uses it, with the process that
    /// started it: a process forked from it (a pre-forking web server's workers) has
    /// none of its threads, and starts its own.
    pool: Mutex<Option<(u32, Arc<ThreadPool>)>>,
    /// The changed rows from which a transaction runs on the pool.
    from: usize,
}

impl std::fmt::Debug for Workers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workers").field("threads", &self.threads).finish()
    }
}

impl Default for Workers {
    fn default() -> Self {
        Workers::new(default_threads())
    }
}

impl Workers {
    /// `threads` threads (at least one; one runs everything on the writer's thread).
    pub fn new(threads: usize) -> Workers {
        Workers { threads: threads.max(1), pool: Mutex::new(None), from: parallel_from() }
    }

    /// Uses `threads` threads from now on.
    pub fn set_threads(&mut self, threads: usize) {
        let from = self.from;
        *self = Workers::new(threads);
        self.from = from;
    }

    /// Runs transactions of `rows` changed rows and more on the pool.
    pub fn set_parallel_from(&mut self, rows: usize) {
        self.from = rows;
    }

    /// The pool, when there is more than one thread and a transaction of `rows`
    /// changed rows is long enough to use it.
    pub fn pool_for(&self, rows: usize) -> Option<Arc<ThreadPool>> {
        if rows >= self.from { self.pool() } else { None }
    }

    /// The number of threads.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// The pool, when there is more than one thread (started now if need be).
    pub fn pool(&self) -> Option<Arc<ThreadPool>> {
        if self.threads <= 1 {
            return None;
        }
        let pid = std::process::id();
        let mut held = self.pool.lock();
        match &*held {
            Some((owner, pool)) if *owner == pid => Some(Arc::clone(pool)),
            _ => {
                // A pool of the process this one was forked from has no threads here:
                // it is left alone (never dropped, which would signal threads that do
                // not exist), and this process starts its own.
                if let Some(stale) = held.take() {
                    std::mem::forget(stale);
                }
                let pool = shared_pool(pid, self.threads);
                *held = Some((pid, Arc::clone(&pool)));
                Some(pool)
            }
        }
    }
}

/// The pool of `threads` threads of process `pid`, started on first use and stopped
/// when the last engine using it goes.
fn shared_pool(pid: u32, threads: usize) -> Arc<ThreadPool> {
    type Pools = HashMap<(u32, usize), Weak<ThreadPool>>;
    static POOLS: Mutex<Option<Pools>> = Mutex::new(None);
    let mut pools = POOLS.lock();
    let pools = pools.get_or_insert_with(HashMap::new);
    if let Some(pool) = pools.get(&(pid, threads)).and_then(Weak::upgrade) {
        return pool;
    }
    // Entries of the process this one was forked from are forgotten (not dropped).
    pools.retain(|(owner, _), _| *owner == pid);
    let pool = Arc::new(
        ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("ciuf-worker-{i}"))
            .build()
            .expect("the worker threads start"),
    );
    pools.insert((pid, threads), Arc::downgrade(&pool));
    pool
}

/// Whether the caller runs on worker threads with others to share work with.
pub(crate) fn in_parallel() -> bool {
    rayon_core::current_thread_index().is_some() && rayon_core::current_num_threads() > 1
}

/// Into how many chunks [`chunked`] cuts `len` items: 1 off the worker threads or for
/// a short input.
pub(crate) fn parts_for(len: usize, cost: Cost) -> usize {
    if in_parallel() { (len / min_chunk(cost)).min(rayon_core::current_num_threads() * 4).max(1) } else { 1 }
}

/// Runs `f` over `0..len` cut into chunks, in parallel when on worker threads and
/// `len` is long enough, and returns the chunks' results in order (see [`each`]).
pub(crate) fn chunked<R: Send>(len: usize, cost: Cost, f: impl Fn(Range<usize>) -> R + Sync) -> Vec<R> {
    let parts = parts_for(len, cost);
    if parts <= 1 {
        return vec![f(0..len)];
    }
    each((0..parts).map(|i| len * i / parts..len * (i + 1) / parts).collect(), f)
}

/// [`chunked`] for passes that each yield a delta: the chunks' deltas joined in
/// order. With one chunk (a short input, or no worker threads: every small
/// transaction) `f` runs on the whole range, allocating nothing of its own.
pub(crate) fn concat(len: usize, cost: Cost, f: impl Fn(Range<usize>) -> ZSet + Sync) -> ZSet {
    if !in_parallel() || len / min_chunk(cost) <= 1 {
        return f(0..len);
    }
    let mut out = ZSet::new();
    for part in chunked(len, cost, f) {
        out.append(part);
    }
    out
}

/// [`chunked`] without cutting a range too short to be worth handing off: one chunk,
/// `f` on the whole range, when not on worker threads or when `len` is short.
pub(crate) fn chunks_of<R: Send>(len: usize, cost: Cost, f: impl Fn(Range<usize>) -> R + Sync) -> Vec<R> {
    if !in_parallel() || len / min_chunk(cost) <= 1 {
        return vec![f(0..len)];
    }
    chunked(len, cost, f)
}

/// Runs `f` on each item, in parallel when on worker threads, and returns the results
/// in the items' order. Each runs as a step does (charged to the memory budget, see
/// [`crate::budget`]); a value an item could not compute ([`crate::expr::fault`]) is
/// raised again on the caller's thread, in the items' order, and a panic is the
/// caller's.
pub(crate) fn each<T: Send, R: Send>(items: Vec<T>, f: impl Fn(T) -> R + Sync) -> Vec<R> {
    if items.len() <= 1 || !in_parallel() {
        return items.into_iter().map(f).collect();
    }
    // An item may run on this thread: what was raised before is kept apart, first.
    let earlier = crate::expr::fault::take();
    let mut results: Vec<Option<(R, Option<String>)>> = items.iter().map(|_| None).collect();
    let f = &f;
    rayon_core::scope(|s| {
        for (item, slot) in items.into_iter().zip(results.iter_mut()) {
            s.spawn(move |_| {
                let r = crate::budget::in_step(|| f(item));
                *slot = Some((r, crate::expr::fault::take()));
            });
        }
    });
    if let Some(why) = earlier {
        crate::expr::fault::raise(why);
    }
    results
        .into_iter()
        .map(|r| {
            let (r, fault) = r.expect("every item ran");
            if let Some(why) = fault {
                crate::expr::fault::raise(why);
            }
            r
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_the_range_in_order_on_any_pool() {
        for threads in [1, 2, 3] {
            let workers = Workers::new(threads);
            let run = || chunked(10_000, Cost::Row, |r| r.collect::<Vec<usize>>()).concat();
            let got = match workers.pool() {
                Some(pool) => pool.install(run),
                None => run(),
            };
            assert_eq!(got, (0..10_000).collect::<Vec<_>>());
        }
    }

    #[test]
    fn a_fault_in_a_chunk_reaches_the_caller() {
        let workers = Workers::new(2);
        let fault = workers.pool().unwrap().install(|| {
            chunked(10_000, Cost::Row, |r| {
                if r.contains(&9_999) {
                    crate::expr::fault::raise("division by zero");
                }
            });
            crate::expr::fault::take()
        });
        assert_eq!(fault.as_deref(), Some("division by zero"));
    }

    #[test]
    fn engines_with_equal_thread_counts_share_one_pool() {
        let (a, b) = (Workers::new(3), Workers::new(3));
        assert!(Arc::ptr_eq(&a.pool().unwrap(), &b.pool().unwrap()));
        assert!(Workers::new(1).pool().is_none());
    }
}
