//! # ciuf
//!
//! Embedded incremental view maintenance: register SQL queries as views once, feed row
//! changes, and read every view — always exactly up to date — in microseconds, as
//! Arrow record batches.
//!
//! ```
//! use ciuf::{Engine, Value};
//!
//! let engine = Engine::in_memory();
//! engine.execute("CREATE TABLE orders (id BIGINT PRIMARY KEY, customer_id BIGINT, amount DOUBLE)")?;
//! let totals = engine.from_sql(
//!     "SELECT customer_id, COUNT(*) AS n, SUM(amount) AS total FROM orders GROUP BY customer_id",
//! )?;
//! engine.on_insert("orders", vec![Value::Int(1), Value::Int(42), Value::Float(99.0)])?;
//! engine.on_insert("orders", [("id", Value::Int(2)), ("customer_id", Value::Int(42)), ("amount", Value::Float(1.0))])?;
//! let batch = totals.query()?; // arrow RecordBatch: customer_id=42, n=2, total=100.0
//! assert_eq!(batch.num_rows(), 1);
//! # Ok::<(), ciuf::Error>(())
//! ```
//!
//! The data path:
//!
//! ```text
//!  SQL ─▶ ciuf-sql: parse, resolve, type ─▶ Plan ─▶ ciuf-engine: operator graph
//!  on_insert/on_update/on_delete/apply ─▶ tables ─▶ deltas through the graph ─▶ views
//!  View::query() ─▶ Arrow RecordBatch (cached until the view changes)
//! ```
//!
//! This crate is the facade: [`Engine`] joins the engine ([`ciuf_engine`]) and the SQL
//! front end ([`ciuf_sql`]); change sources live in [`ciuf_connectors`].

mod durable;
mod engine;
mod script;

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

pub use ciuf_connectors::store::Durability;
pub use durable::OpenOptions;
pub use engine::{Engine, Outcome, ViewOptions, from_sql};

pub use ciuf_connectors as connectors;
pub use ciuf_engine as core;
pub use ciuf_engine::{
    Change, Column, ConstraintError, DataType, Decimal, Dialect, Error, PartialLimits, Position, RecordBatch, Result,
    Row, RowData, SchemaError, SqlError, SqlErrorKind, Stats, TableRef, TableSchema, Value, View, row,
};
pub use ciuf_sql as sql;

/// Sets the memory budget of every engine in the process, in bytes: a view whose
/// computation would take the process past it fails (or, being registered, is refused)
/// with [`Error::Evaluation`] naming the budget, and the process goes on. The default
/// is half of the machine's memory, or of the container's limit where that is lower.
pub fn set_memory_budget(bytes: usize) {
    ciuf_engine::budget::set(bytes);
}

/// Removes the state directory `dir` of a durable engine (refused while an engine
/// holds it, or if it is not one): the next engine opened on it starts afresh. The
/// directory of an engine that followed PostgreSQL holds a replication slot on the
/// server: use [`drop_state_with`] and the database's URL, so that it goes too.
pub fn drop_state(dir: impl AsRef<std::path::Path>) -> Result<()> {
    drop_state_with(dir, None)
}

/// [`drop_state`], dropping a PostgreSQL engine's replication slot (and the
/// publication ciuf made) on the database at `url` first.
pub fn drop_state_with(dir: impl AsRef<std::path::Path>, url: Option<&str>) -> Result<()> {
    use ciuf_connectors::postgres::{OWN_PUBLICATION_KEY, PUBLICATION_KEY, SLOT_KEY};
    let dir = dir.as_ref();
    if !dir.join("FORMAT").exists() {
        return Err(Error::State {
            message: format!("{} is not a ciuf state directory (it has no FORMAT file)", dir.display()),
            retryable: false,
        });
    }
    let (state, recovered) =
        ciuf_connectors::store::StateDir::open(dir, ciuf_connectors::store::StoreOptions::default())?;
    if let Some(slot) = recovered.meta.get(SLOT_KEY) {
        let source = recovered.meta.get("source").cloned().unwrap_or_default();
        let Some(url) = url else {
            return Err(Error::State {
                message: format!(
                    "the state directory {} holds replication slot {slot} on {source}: give the database's URL \
                     (ciuf::drop_state_with, ciuf.drop_state(dir, url=…), `ciuf state drop <dir> <url>`) so that \
                     the slot is dropped with it",
                    dir.display()
                ),
                retryable: false,
            });
        };
        if ciuf_connectors::postgres::identity(url)? != source {
            return Err(Error::State {
                message: format!("the state directory {} follows {source}, not that URL's database", dir.display()),
                retryable: false,
            });
        }
        let own = recovered.meta.get(OWN_PUBLICATION_KEY).is_some_and(|v| v == "1");
        let publication = recovered.meta.get(PUBLICATION_KEY).filter(|_| own);
        ciuf_connectors::postgres::drop_replication(url, slot, publication.map(String::as_str))?;
    }
    state.close()?;
    drop(state);
    Ok(ciuf_connectors::store::drop_state(dir)?)
}

/// The memory budget of the process, in bytes (see [`set_memory_budget`]).
pub fn memory_budget() -> usize {
    ciuf_engine::budget::get()
}
