//! The seam between a source and the engine: what a source hands over, and the one
//! path by which it writes.
//!
//! A source's reading half (the pgoutput decoder in `postgres/stream.rs`, the change
//! log reader in `sqlite/source.rs`) knows its database's protocol and nothing of the
//! engine: it turns what the database sends into [`Batch`]es — the changes of one or
//! more source transactions and the source position after them. The source's driver
//! hands each batch to its [`Feed`], which applies it as one engine transaction; on a
//! durable engine the transaction's rows and its position go into the journal in the
//! same step (see `ciuf_engine::journal`), so the two can never disagree. Besides
//! batches a source only makes, drops and fails the tables it follows, loads their
//! snapshots, and reads what the engine holds (to resynchronise) — all through here.

use std::sync::Arc;

use ciuf_engine::{Change, Database, Result, Row, TableId, TableSchema};

/// Changes of one or more whole source transactions, and the source position after
/// them (a PostgreSQL LSN as `XXXXXXXX/XXXXXXXX`, a SQLite change-log sequence number).
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub changes: Vec<Change>,
    pub position: String,
}

/// What a source writes through: its engine's database.
#[derive(Debug, Clone)]
pub struct Feed {
    db: Database,
}

impl Feed {
    pub fn new(db: Database) -> Feed {
        Feed { db }
    }

    /// Applies a batch as one engine transaction (all of it or, with an error, none),
    /// journaled with its position on a durable engine. An empty batch records a
    /// position passed with nothing for the views.
    pub fn apply(&self, batch: Batch) -> Result<()> {
        self.db.apply_at(batch.changes, Some(&batch.position))
    }

    /// Records a position reached with nothing for the views (transactions of tables
    /// not followed; a keepalive).
    pub fn pass(&self, position: &str) -> Result<()> {
        self.db.apply_at([], Some(position))
    }

    /// Loads part of a table's snapshot (a transaction without a position: the
    /// position the snapshot brings comes with the first batch after it).
    pub fn load(&self, rows: impl IntoIterator<Item = Change>) -> Result<()> {
        self.db.apply(rows)
    }

    /// Makes room in a table for about `rows` more rows before a snapshot loads them
    /// (a hint: the load is right whatever the estimate).
    pub fn reserve(&self, table: TableId, rows: usize) -> Result<()> {
        self.db.reserve_rows(table, rows)
    }

    /// Makes a table to follow.
    pub fn create_table(&self, schema: TableSchema) -> Result<TableId> {
        self.db.create_table(schema)
    }

    /// Drops a table whose loading failed.
    pub fn drop_table(&self, name: &str) -> Result<()> {
        self.db.drop_table(name)
    }

    /// Stops maintaining a table that can no longer be followed: its views report
    /// `why` from now on.
    pub fn fail_table(&self, table: TableId, why: &str) {
        let _ = self.db.fail_table(table, why);
    }

    /// The tables the engine holds (those a restored durable engine brings back).
    pub fn table_names(&self) -> Vec<String> {
        self.db.table_names()
    }

    /// A table's id.
    pub fn table_id(&self, name: &str) -> Result<TableId> {
        self.db.table_id(name)
    }

    /// A table's name.
    pub fn table_name(&self, table: TableId) -> Result<String> {
        self.db.table_name(table)
    }

    /// A table's schema.
    pub fn table_schema(&self, name: &str) -> Result<Arc<TableSchema>> {
        self.db.table_schema(name)
    }

    /// A table's rows (to compute what a new snapshot changes).
    pub fn table_rows(&self, name: &str) -> Result<Vec<Row>> {
        self.db.table_rows(name)
    }
}
