//! # ciuf-connectors
//!
//! Change sources that feed a [`ciuf_engine::Database`] from a database. Changes pushed
//! by the application itself need no connector: they go straight to
//! [`ciuf_engine::Database::apply`].
//!
//! - [`postgres`]: PostgreSQL logical replication — tables discovered in the catalog
//!   when a view names them, copied from a consistent snapshot, then every committed
//!   transaction streamed in and applied atomically.
//! - [`sqlite`]: SQLite files — tables read when a view names them, loaded, then every
//!   write from any connection or process captured by triggers into a log table and
//!   applied, one committed source transaction whole.

pub mod feed;
pub mod postgres;
pub mod sqlite;
pub mod store;

/// A database the engine's tables come from.
pub trait Source: Send + Sync + std::fmt::Debug {
    /// Makes the tables `names` (as a view names them) tables of the database, loaded
    /// and followed. Names the database does not have are left out.
    fn add_tables(&self, names: &[String]) -> ciuf_engine::Result<()>;

    /// Stops following and releases what the source holds on the database.
    fn close(&self);

    /// What the source is doing.
    fn status(&self) -> SourceStatus;
}

/// What a source is doing, for progress lines and health checks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceStatus {
    /// The source's position after the last applied transaction (for PostgreSQL, an
    /// LSN as `XXXXXXXX/XXXXXXXX`; for SQLite, the change log's sequence number).
    pub position: String,
    /// Source transactions applied (for SQLite, batches: the transactions that
    /// committed while the previous batch was applied arrive together).
    pub transactions: u64,
    /// The table being loaded and the rows loaded so far.
    pub loading: Option<(String, u64)>,
    /// Whether changes are streaming in.
    pub streaming: bool,
    /// Reconnections so far.
    pub reconnects: u64,
    /// Times the followed tables were read again and the views brought to them with
    /// the difference, where the change stream could not carry on (a SQLite follower
    /// paused past what the log kept, a file replaced under it).
    pub resyncs: u64,
    /// Rows read from the database's tables (loads, copies and resyncs), as opposed
    /// to changes streamed: what a durable engine's restart does not do.
    pub rows_read: u64,
    /// Why the source stopped following, if it did.
    pub error: Option<String>,
}

impl Source for sqlite::SqliteSource {
    fn add_tables(&self, names: &[String]) -> ciuf_engine::Result<()> {
        sqlite::SqliteSource::add_tables(self, names).map_err(Into::into)
    }

    fn close(&self) {
        sqlite::SqliteSource::close(self);
    }

    fn status(&self) -> SourceStatus {
        sqlite::SqliteSource::status(self)
    }
}

impl Source for postgres::PostgresSource {
    fn add_tables(&self, names: &[String]) -> ciuf_engine::Result<()> {
        postgres::PostgresSource::add_tables(self, names).map_err(Into::into)
    }

    fn close(&self) {
        postgres::PostgresSource::close(self);
    }

    fn status(&self) -> SourceStatus {
        postgres::PostgresSource::status(self)
    }
}
