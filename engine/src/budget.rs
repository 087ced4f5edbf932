//! The memory budget: a view's computation that would take more memory than the
//! process may use stops, and fails that view alone.
//!
//! A cross join of two 20,000-row tables is 400 million rows: computed, it would grow
//! until the operating system killed the process. What operators produce goes into
//! [`crate::zset::ZSet`]s, which grow by doubling; each growth inside a node's step is
//! charged here, and so is each row pushed (an estimate of its bytes). Past every
//! [`CHECK_EVERY`] bytes charged in one step, the process's resident memory is read
//! (`/proc/self/status`; where the system does not say, nothing is stopped), and if it
//! is over the budget the step unwinds — without the panic hook, with an
//! [`OverBudget`] payload — to the graph, which fails that node and the views
//! downstream of it with the reason, or refuses a view being registered. The budget is
//! process-wide (memory is), half of the machine's or the container's memory unless
//! set with [`set`].

use std::cell::Cell;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// How many bytes a step may charge between two readings of resident memory.
pub const CHECK_EVERY: usize = 64 << 20;

/// The budget in bytes (0: the default, worked out on first use).
static BUDGET: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Bytes the current step may still charge before resident memory is read again;
    /// `usize::MAX` outside a step (only steps are stopped). One cell, so that the
    /// charge on every row pushed costs a subtraction.
    static UNTIL_CHECK: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// The payload a step over budget unwinds with.
#[derive(Debug)]
pub struct OverBudget {
    /// The budget, in bytes.
    pub budget: usize,
    /// The process's resident memory when it stopped, in bytes.
    pub resident: usize,
}

impl OverBudget {
    /// The reason, in words.
    pub fn message(&self) -> String {
        format!(
            "it needs more memory than the memory budget of {} MB (the process holds {} MB); a join of many rows to \
             many rows, say — set a larger budget with ciuf::set_memory_budget (Python: ciuf.set_memory_budget) \
             if the machine has it",
            self.budget >> 20,
            self.resident >> 20
        )
    }
}

/// Sets the budget, in bytes, for every engine of the process.
pub fn set(bytes: usize) {
    BUDGET.store(bytes.max(1), Ordering::Relaxed);
}

/// The budget, in bytes.
pub fn get() -> usize {
    match BUDGET.load(Ordering::Relaxed) {
        0 => *DEFAULT.get_or_init(default_budget),
        b => b,
    }
}

static DEFAULT: OnceLock<usize> = OnceLock::new();

/// Half of the machine's memory, or of the container's limit where that is lower.
fn default_budget() -> usize {
    let total = read_kb("/proc/meminfo", "MemTotal:").map(|kb| kb << 10);
    let cgroup = std::fs::read_to_string("/sys/fs/cgroup/memory.max")
        .ok()
        .or_else(|| std::fs::read_to_string("/sys/fs/cgroup/memory/memory.limit_in_bytes").ok())
        .and_then(|s| s.trim().parse::<usize>().ok());
    match (total, cgroup) {
        (Some(t), Some(c)) => t.min(c) / 2,
        (Some(t), None) => t / 2,
        (None, Some(c)) => c / 2,
        (None, None) => 8 << 30,
    }
}

/// The number after `key` in a `/proc` file of `key value kB` lines.
fn read_kb(path: &str, key: &str) -> Option<usize> {
    let text = std::fs::read_to_string(path).ok()?;
    let line = text.lines().find(|l| l.starts_with(key))?;
    line[key.len()..].split_whitespace().next()?.parse().ok()
}

/// The process's resident memory, in bytes, where the system says.
fn resident() -> Option<usize> {
    read_kb("/proc/self/status", "VmRSS:").map(|kb| kb << 10)
}

/// Runs `f` as a node's step: what it produces is charged, and it unwinds with
/// [`OverBudget`] should the process go over the budget.
pub(crate) fn in_step<T>(f: impl FnOnce() -> T) -> T {
    struct Done(usize);
    impl Drop for Done {
        fn drop(&mut self) {
            UNTIL_CHECK.set(self.0);
        }
    }
    let _done = Done(UNTIL_CHECK.replace(CHECK_EVERY));
    f()
}

/// Charges `bytes` produced by the current step (nothing outside a step).
#[inline]
pub(crate) fn charge(bytes: usize) {
    let left = UNTIL_CHECK.get();
    if left > bytes {
        UNTIL_CHECK.set(left - bytes);
    } else {
        check();
    }
}

#[cold]
fn check() {
    UNTIL_CHECK.set(CHECK_EVERY);
    let budget = get();
    let resident = resident().unwrap_or(0);
    if resident > budget {
        UNTIL_CHECK.set(usize::MAX);
        std::panic::resume_unwind(Box::new(OverBudget { budget, resident }));
    }
}

/// The reason a step's unwinding carried, if it was the budget.
pub(crate) fn reason(panic: &(dyn std::any::Any + Send)) -> Option<String> {
    panic.downcast_ref::<OverBudget>().map(OverBudget::message)
}
