//! The benchmark's global allocator: mimalloc, counting the bytes it has handed out
//! and not taken back.
//!
//! The count is by usable size, so size-class rounding is included: it is what the
//! engine's data costs in memory. The resident size says less: it also holds memory
//! the allocator keeps after it was freed (a table's index left behind when it grew,
//! the load's buffers), and pages it has not touched yet do not count.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicUsize, Ordering};

use mimalloc::MiMalloc;

static LIVE: AtomicUsize = AtomicUsize::new(0);

/// Bytes allocated and not yet freed.
pub fn live() -> usize {
    LIVE.load(Ordering::Relaxed)
}

pub struct Counting;

// SAFETY: every call goes to mimalloc unchanged; the counter only observes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as received.
        let p = unsafe { MiMalloc.alloc(layout) };
        if !p.is_null() {
            // SAFETY: `p` was just allocated by mimalloc.
            LIVE.fetch_add(unsafe { MiMalloc.usable_size(p) }, Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as received.
        let p = unsafe { MiMalloc.alloc_zeroed(layout) };
        if !p.is_null() {
            // SAFETY: `p` was just allocated by mimalloc.
            LIVE.fetch_add(unsafe { MiMalloc.usable_size(p) }, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` is live and was allocated by mimalloc.
        LIVE.fetch_sub(unsafe { MiMalloc.usable_size(ptr) }, Ordering::Relaxed);
        // SAFETY: forwarded as received.
        unsafe { MiMalloc.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` is live and was allocated by mimalloc.
        let old = unsafe { MiMalloc.usable_size(ptr) };
        // SAFETY: forwarded as received.
        let p = unsafe { MiMalloc.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(old, Ordering::Relaxed);
            // SAFETY: `p` was just allocated by mimalloc.
            LIVE.fetch_add(unsafe { MiMalloc.usable_size(p) }, Ordering::Relaxed);
        }
        p
    }
}
