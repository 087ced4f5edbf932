//! The journal: where a durable engine records what it commits.
//!
//! The engine does no I/O; a durable engine is given a [`Journal`] (the `ciuf` crate's
//! state directory is one) and tells it, while it holds the writer, every table made or
//! dropped and every transaction's effect on the tables — each table's delta, full
//! rows with signed weights, after the transaction was checked and before any view
//! sees it — with the source position the transaction brings the engine to. The
//! journal may refuse (a full disk): the transaction is then undone and the error
//! returned, so that the engine never holds what the journal lost. Because the calls
//! come in commit order under the writer's lock, replaying them on an empty engine
//! gives the same tables.
//!
//! Tables whose names begin with [`INTERNAL_PREFIX`] (the keys a partial view was
//! asked for) are the engine's own bookkeeping and never journaled.

use std::sync::Arc;

use crate::error::Result;
use crate::row::Row;
use crate::types::TableSchema;
use crate::zset::ZSet;

/// Names of tables the engine makes for itself; they are not journaled.
pub const INTERNAL_PREFIX: &str = "__ciuf_";

/// Whether the table called `name` is the engine's own.
pub fn is_internal(name: &str) -> bool {
    name.starts_with(INTERNAL_PREFIX)
}

/// One committed transaction, as the journal receives it.
#[derive(Debug)]
pub struct Committed<'a> {
    /// Each changed table's delta (names as declared; rows in column order).
    pub tables: Vec<(&'a str, &'a ZSet)>,
    /// The source position after the transaction (a PostgreSQL LSN, a SQLite log
    /// position), if the transaction came from a source.
    pub position: Option<&'a str>,
}

/// A table's schema and rows, each with its multiplicity (1 in a keyed table).
pub type TableContents = (Arc<TableSchema>, Vec<(Row, i64)>);

/// An operator's saved state: the identity of its graph node and its state as rows
/// (see [`crate::Database::offer_states`]).
pub type SavedState = (Arc<str>, Vec<Row>);

/// The layout of saved operator states. A journal keeps it beside the states it
/// stores, and gives back only states of this layout: the others are computed again.
/// Raise it whenever what an operator saves, or what its state means, changes.
pub const STATE_LAYOUT: u32 = 1;

/// Receives what a durable engine commits (see the module docs).
pub trait Journal: Send + Sync + std::fmt::Debug {
    /// A table was created (about to be: an error refuses it).
    fn table_created(&self, schema: &TableSchema) -> Result<()>;
    /// A table is about to be dropped (an error keeps it).
    fn table_dropped(&self, name: &str) -> Result<()>;
    /// A transaction is about to be published (an error undoes it).
    fn committed(&self, transaction: &Committed<'_>) -> Result<()>;
    /// A source position reached without a change to any journaled table (a source
    /// transaction that touched only other tables); the journal may note it lazily.
    fn passed(&self, _position: &str) -> Result<()> {
        Ok(())
    }
    /// Whether the journal would like every table's contents now (to write a
    /// checkpoint and start a shorter log).
    fn wants_checkpoint(&self) -> bool {
        false
    }
    /// Every journaled table's contents as of the last committed transaction, given
    /// under the writer's lock when [`Journal::wants_checkpoint`] said so, with the
    /// state of the operators that save theirs (computed from those tables as they
    /// are): given back at a restart, they spare computing the views again.
    fn checkpoint(&self, _tables: Vec<TableContents>, _states: Vec<SavedState>) -> Result<()> {
        Ok(())
    }
}
