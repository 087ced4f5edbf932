//! What can go wrong with a SQLite source, said plainly.

/// A SQLite source failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SqliteError {
    /// The URL or options are not usable.
    #[error("{0}")]
    Config(String),
    /// The file is missing or is not a SQLite database.
    #[error("{0}")]
    Open(String),
    /// Another connection held the database locked for longer than ciuf waits.
    #[error(
        "the SQLite database {path} is locked by another connection (ciuf retried for {waited_secs} s); \
         try again when its write transaction ends"
    )]
    Locked {
        /// The file.
        path: String,
        /// How long ciuf retried.
        waited_secs: u64,
    },
    /// A table cannot be followed as it is (column type, capture not installed, a view).
    #[error("{0}")]
    Schema(String),
    /// SQLite refused a statement.
    #[error("SQLite: {0}")]
    Sqlite(String),
}

impl SqliteError {
    /// Whether trying again later may succeed.
    pub fn retryable(&self) -> bool {
        matches!(self, SqliteError::Locked { .. })
    }
}

impl From<rusqlite::Error> for SqliteError {
    fn from(e: rusqlite::Error) -> Self {
        SqliteError::Sqlite(e.to_string())
    }
}

impl From<SqliteError> for ciuf_engine::Error {
    fn from(e: SqliteError) -> Self {
        let retryable = e.retryable();
        ciuf_engine::Error::Source { message: e.to_string(), retryable }
    }
}

/// Whether `e` is SQLite saying the database is busy or locked.
pub(crate) fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e,
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(f.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}
