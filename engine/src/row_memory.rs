//! Where rows' memory comes from: mimalloc, whatever the process's global allocator is,
//! with a count of the bytes rows hold.
//!
//! Rows are the one thing the engine allocates and frees one at a time: a load makes a
//! million, a batch of updates frees the old versions and makes the new. The system
//! allocator (glibc's, what a Rust application gets unless it chooses otherwise) spends
//! more on that than the engine spends on the rows: its per-thread cache holds seven
//! chunks per size, so a batch's rows go through its shared bins, and the next large
//! request walks every chunk freed since (`malloc_consolidate`). mimalloc keeps free
//! lists per page and per thread, and takes back a block freed on another thread (a
//! worker's, a reader's) without a lock. It is called directly here, not installed as
//! the global allocator: the application keeps its own choice for everything else.
//!
//! The count ([`live_bytes`]) is kept per thread (a thread adds what it allocates and
//! takes away what it frees, whoever allocated it) and summed when asked, so that
//! counting costs no shared write on the hot path. A thread's count outlives it: at its
//! exit it is folded into one shared total.

use std::alloc::{GlobalAlloc, Layout, handle_alloc_error};
use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, Ordering};

use mimalloc::MiMalloc;
use parking_lot::Mutex;

/// The counts of the threads alive that have allocated or freed a row.
static COUNTS: Mutex<Vec<Arc<AtomicIsize>>> = Mutex::new(Vec::new());

/// The counts of threads that have exited, and of frees made while a thread's own
/// count was already gone (in another thread-local's destructor).
static RETIRED: AtomicIsize = AtomicIsize::new(0);

/// A thread's count: written by its thread alone, read by [`live_bytes`].
struct ThreadCount(Arc<AtomicIsize>);

impl ThreadCount {
    fn new() -> ThreadCount {
        let count = Arc::new(AtomicIsize::new(0));
        COUNTS.lock().push(count.clone());
        ThreadCount(count)
    }
}

impl Drop for ThreadCount {
    fn drop(&mut self) {
        let mut counts = COUNTS.lock();
        counts.retain(|c| !Arc::ptr_eq(c, &self.0));
        RETIRED.fetch_add(self.0.load(Ordering::Relaxed), Ordering::Relaxed);
    }
}

thread_local! {
    static COUNT: ThreadCount = ThreadCount::new();
}

/// Adds `bytes` (negative when freed) to this thread's count.
#[inline]
fn count(bytes: isize) {
    let counted = COUNT.try_with(|c| {
        // Only this thread writes its count: a plain load and store, no locked add.
        let n = c.0.load(Ordering::Relaxed);
        c.0.store(n + bytes, Ordering::Relaxed);
    });
    if counted.is_err() {
        RETIRED.fetch_add(bytes, Ordering::Relaxed);
    }
}

/// The bytes rows hold now, over every thread (the allocator's sizes: a row's layout
/// rounded up to its size class).
pub fn live_bytes() -> usize {
    let counts = COUNTS.lock();
    let sum = counts.iter().map(|c| c.load(Ordering::Relaxed)).sum::<isize>() + RETIRED.load(Ordering::Relaxed);
    sum.max(0) as usize
}

/// Memory for a row of `layout` (a non-zero size); never null.
#[inline]
pub(crate) fn allocate(layout: Layout) -> *mut u8 {
    // SAFETY: the layout has a non-zero size, as the caller promises.
    let p = unsafe { MiMalloc.alloc(layout) };
    if p.is_null() {
        handle_alloc_error(layout);
    }
    // SAFETY: `p` was just allocated by mimalloc.
    count(unsafe { MiMalloc.usable_size(p) } as isize);
    p
}

/// Gives back a row's memory.
///
/// # Safety
/// `p` came from [`allocate`] with `layout` and is not used again.
#[inline]
pub(crate) unsafe fn free(p: *mut u8, layout: Layout) {
    // SAFETY: `p` is live and was allocated by mimalloc, as the caller promises.
    count(-(unsafe { MiMalloc.usable_size(p) } as isize));
    // SAFETY: as the caller promises.
    unsafe { MiMalloc.dealloc(p, layout) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_made_and_freed_on_any_thread_are_counted() {
        // Other tests run beside this one: count what this test's rows add, on a
        // quiet total, by allocating enough to stand out and checking both directions.
        let layout = Layout::from_size_align(1 << 16, 8).expect("layout");
        // Half of the 16 MiB allocated: what the other tests' rows can move the total
        // by meanwhile stays far below it.
        const MOVED: usize = 128 << 16;
        let before = live_bytes();
        let blocks: Vec<usize> = (0..256).map(|_| allocate(layout) as usize).collect();
        let grown = live_bytes();
        assert!(grown >= before + MOVED, "{before} -> {grown}");
        // Freed on another thread, which then exits.
        std::thread::spawn(move || {
            for p in blocks {
                // SAFETY: allocated above with this layout, freed once.
                unsafe { free(p as *mut u8, layout) };
            }
        })
        .join()
        .expect("thread");
        let after = live_bytes();
        assert!(after + MOVED <= grown, "{grown} -> {after}");
    }
}
