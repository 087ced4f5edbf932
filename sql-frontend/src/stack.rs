//! Deep statements on a deep stack.
//!
//! A statement's syntax tree is as deep as its longest chain of operators: `a = 0 OR
//! a = 1 OR …` over 3,500 terms is a tree 3,500 levels deep, and parsing it, walking
//! it, planning it and dropping it all recurse that deep. On an application's thread
//! (a Python thread, a small worker stack) that overflows the stack and kills the
//! process. Short SQL cannot nest deeply enough to matter; anything longer is parsed,
//! planned and dropped on a thread of its own whose stack is large (its pages are only
//! committed as they are used). SQL beyond SQLite's own limit of 1,000,000 bytes is
//! refused, and expressions are bounded at SQLite's depth of 1,000 while they are
//! planned (chains of AND and OR, which any depth of, are planned flat).

use ciuf_engine::{Error, SqlError, SqlErrorKind};

/// SQL at most this long runs on the caller's thread: it cannot nest deeper than a
/// few hundred levels.
const SHORT: usize = 1024;

/// The stack of the planning thread.
const STACK: usize = 1 << 30;

/// The longest SQL accepted (SQLite's default `SQLITE_MAX_SQL_LENGTH`).
pub const MAX_SQL_LENGTH: usize = 1_000_000;

/// Runs `f`, which parses and plans `sql` (and drops what it parsed), where the
/// statement's depth cannot overflow the stack; refuses SQL longer than
/// [`MAX_SQL_LENGTH`].
pub fn on_deep_stack<T: Send>(sql: &str, f: impl FnOnce() -> Result<T, Error> + Send) -> Result<T, Error> {
    if sql.len() <= SHORT {
        return f();
    }
    if sql.len() > MAX_SQL_LENGTH {
        return Err(SqlError::new(
            SqlErrorKind::Invalid,
            format!("the SQL is {} bytes long; the limit is {MAX_SQL_LENGTH}, as SQLite's", sql.len()),
        )
        .into());
    }
    std::thread::scope(|s| {
        let planner = std::thread::Builder::new().name("ciuf-planner".into()).stack_size(STACK).spawn_scoped(s, f);
        match planner {
            Ok(h) => h.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            Err(e) => Err(Error::Internal(format!("cannot start a thread to plan a long statement: {e}"))),
        }
    })
}
