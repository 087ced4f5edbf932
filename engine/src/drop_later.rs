//! Dropping what a large transaction leaves behind on a worker thread.
//!
//! When a transaction ends, the writer lets go of its deltas (every node's, every
//! table's, every view's) and of its undo log. Each entry holds a row whose count
//! must be given back, and the rows were last touched long before: at a batch of
//! 10,000 changes this took the writer's thread about 3 ms of its 12 ms of serial
//! work per transaction, while the worker threads waited for the next one. Handed to
//! the worker pool instead, the rows are let go of while the writer stages the next
//! transaction. Small transactions drop in place: handing off costs more than it saves.
//!
//! The rows' memory is counted ([`crate::row_memory::live_bytes`]), so a reader of
//! that count waits for the drops handed off ([`Dropper::settle`]).

use std::sync::Arc;

use parking_lot::{Condvar, Mutex};

/// Drops handed to worker threads, and the count of those not done yet.
#[derive(Debug, Default, Clone)]
pub(crate) struct Dropper {
    pending: Arc<(Mutex<usize>, Condvar)>,
}

impl Dropper {
    /// Drops `what` on one of `pool`'s threads, or here without a pool.
    pub fn drop_later<T: Send + 'static>(&self, pool: Option<&rayon_core::ThreadPool>, what: T) {
        let Some(pool) = pool else {
            drop(what);
            return;
        };
        *self.pending.0.lock() += 1;
        let pending = self.pending.clone();
        pool.spawn(move || {
            drop(what);
            let (count, done) = &*pending;
            let mut count = count.lock();
            *count -= 1;
            if *count == 0 {
                done.notify_all();
            }
        });
    }

    /// Returns once every drop handed off so far is done.
    pub fn settle(&self) {
        let (count, done) = &*self.pending;
        let mut count = count.lock();
        while *count > 0 {
            done.wait(&mut count);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::row::Row;
    use crate::value::Value;

    /// Rows dropped on a worker are freed by the time `settle` returns: the rows'
    /// memory count is back where it was.
    #[test]
    fn settled_drops_have_given_their_rows_back() {
        let pool = rayon_core::ThreadPoolBuilder::new().num_threads(2).build().expect("pool");
        let dropper = Dropper::default();
        // Other tests allocate rows meanwhile: what is dropped here stands out.
        let rows: Vec<Row> = (0..200_000).map(|i| Row::new(vec![Value::Int(i), Value::Int(i)])).collect();
        let held = crate::row_memory::live_bytes();
        for chunk in rows.chunks(1000).map(<[Row]>::to_vec).collect::<Vec<_>>() {
            dropper.drop_later(Some(&pool), chunk);
        }
        drop(rows);
        dropper.settle();
        let after = crate::row_memory::live_bytes();
        assert!(after + 4_000_000 < held, "{held} -> {after}");
        // Without a pool, in place.
        let flag = Arc::new(());
        dropper.drop_later(None, flag.clone());
        assert_eq!(Arc::strong_count(&flag), 1);
    }
}
