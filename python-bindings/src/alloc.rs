//! The module's global allocator: mimalloc.
//!
//! Only the module's Rust allocations go here; Python's objects stay with Python's
//! allocator. The engine allocates per row (a joined row, a delta's entries) and frees
//! a transaction's intermediate results when it ends: under the system allocator
//! `malloc`, `free` and glibc's consolidation of freed chunks took about a fifth of
//! the reference workload's time. Measured through the Python API in one session
//! (README, "Through Python"): the change stream at batch 10,000 and one event at a
//! time about a quarter faster, the load a little faster.
//!
//! mimalloc's options are left as they are. Keeping freed memory longer before giving
//! it back (`MIMALLOC_PURGE_DELAY=1000` instead of 10 ms) sped the batches a little
//! more but slowed a million-row `insert_many` by 60 % on a kernel with transparent
//! huge pages always on (the kernel cleared whole huge pages for sparsely touched
//! memory); a user can still set it.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
