//! Values an expression or aggregate cannot compute.
//!
//! Evaluation gives a value for almost anything (SQLite's way: a division by zero is
//! NULL, an integer overflow a real), but a few results are errors in the dialect a
//! view follows: SQLite's `sum()` of integers beyond 64 bits and `abs()` of the least
//! integer, PostgreSQL's integer overflow. Such an error cannot be returned through
//! `Expr::eval` without taxing every evaluation, so it is *raised* here, on the
//! evaluating thread, and the graph takes it after the operator's step: that node and
//! the views downstream of it stop with the reason; the rest of the engine goes on.

use std::cell::RefCell;

thread_local! {
    static FAULT: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Records that a value could not be computed, and why (the first reason raised in a
/// step is the one reported). Evaluation goes on with a placeholder value; the step's
/// output is then discarded.
pub fn raise(why: impl Into<String>) {
    FAULT.with(|f| {
        let mut f = f.borrow_mut();
        if f.is_none() {
            *f = Some(why.into());
        }
    });
}

/// The reason raised since the last call, if any (and clears it).
pub(crate) fn take() -> Option<String> {
    FAULT.with(|f| f.borrow_mut().take())
}

/// Runs `f` (an evaluation outside the graph: a constant folded while planning), with
/// what it raises as the error.
pub fn catch<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    take();
    let value = f();
    match take() {
        None => Ok(value),
        Some(why) => Err(why),
    }
}
