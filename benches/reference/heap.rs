//! The benchmark's global allocator: mimalloc (or, with the cargo feature
//! `bench-system-allocator`, the system's: what a Rust application or the Python
//! package gets unless it chooses otherwise), counting the bytes it has handed out and
//! not taken back, plus the bytes the engine's rows hold (rows come from mimalloc
//! whatever the global allocator is).
//!
//! Under mimalloc the count is by usable size, so size-class rounding is included: it
//! is what the engine's data costs in memory. The system allocator does not say its
//! usable sizes; there the count is of the sizes asked for. The resident size says
//! less: it also holds memory the allocator keeps after it was freed (a table's index
//! left behind when it grew, the load's buffers), and pages it has not touched yet do
//! not count.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicUsize, Ordering};

#[cfg(not(feature = "bench-system-allocator"))]
mod inner {
    pub use mimalloc::MiMalloc as Inner;

    /// The bytes behind `p`, allocated by `Inner` for `_size` bytes.
    ///
    /// # Safety
    /// `p` is live and was allocated by `Inner`.
    pub unsafe fn size_of(p: *mut u8, _size: usize) -> usize {
        // SAFETY: as the caller promises.
        unsafe { Inner.usable_size(p) }
    }

    /// Which allocator this is, for the results.
    pub const NAME: &str = "mimalloc";
}

#[cfg(feature = "bench-system-allocator")]
mod inner {
    pub use std::alloc::System as Inner;

    /// The bytes asked for (the system allocator does not report what it rounds to).
    ///
    /// # Safety
    /// None needed: `p` is not read.
    pub unsafe fn size_of(_p: *mut u8, size: usize) -> usize {
        size
    }

    /// Which allocator this is, for the results.
    pub const NAME: &str = "system";
}

pub use inner::NAME;
use inner::{Inner, size_of};

static LIVE: AtomicUsize = AtomicUsize::new(0);

/// Bytes allocated and not yet freed: through the global allocator, and rows (which
/// the engine allocates from mimalloc itself, see `ciuf_engine::row_memory`).
pub fn live() -> usize {
    LIVE.load(Ordering::Relaxed) + ciuf_engine::row_memory::live_bytes()
}

pub struct Counting;

// SAFETY: every call goes to the inner allocator unchanged; the counter only observes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as received.
        let p = unsafe { Inner.alloc(layout) };
        if !p.is_null() {
            // SAFETY: `p` was just allocated by the inner allocator.
            LIVE.fetch_add(unsafe { size_of(p, layout.size()) }, Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as received.
        let p = unsafe { Inner.alloc_zeroed(layout) };
        if !p.is_null() {
            // SAFETY: `p` was just allocated by the inner allocator.
            LIVE.fetch_add(unsafe { size_of(p, layout.size()) }, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` is live and was allocated by the inner allocator.
        LIVE.fetch_sub(unsafe { size_of(ptr, layout.size()) }, Ordering::Relaxed);
        // SAFETY: forwarded as received.
        unsafe { Inner.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` is live and was allocated by the inner allocator.
        let old = unsafe { size_of(ptr, layout.size()) };
        // SAFETY: forwarded as received.
        let p = unsafe { Inner.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(old, Ordering::Relaxed);
            // SAFETY: `p` was just allocated by the inner allocator.
            LIVE.fetch_add(unsafe { size_of(p, new_size) }, Ordering::Relaxed);
        }
        p
    }
}
