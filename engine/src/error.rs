//! Errors, by category.
//!
//! Every error says what was wrong and where: the SQL construct and its position, the
//! unknown name and the nearest known one, the table, column and value that did not fit.
//! The categories are what a caller acts on (the Python package maps each to an
//! exception class):
//!
//! - [`SqlError`]: the SQL text cannot become a view (syntax, unsupported construct,
//!   unknown name, type error). Fix the query.
//! - [`SchemaError`]: a change does not fit the table (unknown table or column, wrong
//!   number of values, wrong type). Fix the event.
//! - [`ConstraintError`]: a change breaks the data's rules (duplicate primary key, NULL
//!   in a NOT NULL column, update or delete of a row that is not there).
//! - [`Error::Evaluation`]: a view met a value its SQL cannot compute; that view
//!   stops, the others go on.
//! - [`Error::Internal`]: a bug in ciuf outside any one view's computation. After one
//!   the engine refuses further work rather than serve views it can no longer vouch
//!   for.
//!
//! A failed call changes nothing: not a table, not a view.

use std::fmt;

/// The result type of every fallible ciuf call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Any error ciuf reports.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// The SQL text cannot become a view or a statement.
    #[error(transparent)]
    Sql(#[from] SqlError),
    /// A change does not fit its table's schema.
    #[error(transparent)]
    Schema(#[from] SchemaError),
    /// A change breaks a constraint of its table.
    #[error(transparent)]
    Constraint(#[from] ConstraintError),
    /// A change source (database connection, file) failed.
    #[error("{message}")]
    Source {
        /// What failed and why, never with a password.
        message: String,
        /// Whether trying again later may succeed.
        retryable: bool,
    },
    /// A view could not be kept up to date: its SQL meets a value it cannot compute
    /// (SQLite's integer overflow in `sum()`, say), or ciuf failed computing it. That
    /// view (and those sharing the failed step) report this from then on; the rest of
    /// the engine goes on. Registering the view again computes it afresh.
    #[error("{message}")]
    Evaluation {
        /// What could not be computed, and in which view.
        message: String,
    },
    /// A durable engine's state directory cannot be read or written: damaged, of
    /// another format, in use by another process, or out of space.
    #[error("{message}")]
    State {
        /// What failed, naming the file, and what to do.
        message: String,
        /// Whether trying again later may succeed (a full disk, say).
        retryable: bool,
    },
    /// A bug in ciuf; the engine refuses further work after one.
    #[error("internal error: {0}")]
    Internal(String),
}

/// A name (or any text a caller gave) as an error message shows it: whole up to 64
/// characters; longer, its start and end around how many characters were left out, so
/// that a refused 100,000-character identifier is not echoed whole.
pub fn shown(name: &str) -> std::borrow::Cow<'_, str> {
    const KEEP: usize = 64;
    let n = name.chars().count();
    if n <= KEEP {
        return std::borrow::Cow::Borrowed(name);
    }
    let head: String = name.chars().take(KEEP / 2).collect();
    let tail: String = name.chars().skip(n - KEEP / 4).collect();
    std::borrow::Cow::Owned(format!("{head}…({} characters)…{tail}", n - KEEP / 2 - KEEP / 4))
}

/// A place in SQL text: 1-based line and column, as sqlparser counts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Position {
    /// 1-based line.
    pub line: u64,
    /// 1-based column.
    pub column: u64,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

/// What kind of problem a [`SqlError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SqlErrorKind {
    /// The text does not parse.
    Syntax,
    /// Valid SQL that ciuf does not maintain (yet).
    Unsupported,
    /// A table or view name that the catalog does not have.
    UnknownTable,
    /// A column name that no table in scope has.
    UnknownColumn,
    /// A column name that more than one table in scope has.
    AmbiguousColumn,
    /// Operands whose types do not fit the operator or function.
    Type,
    /// A name defined twice, or a statement that contradicts the catalog.
    Catalog,
    /// Anything else wrong with the query's meaning.
    Invalid,
}

/// The SQL text cannot become a view or a statement.
#[derive(Debug, Clone, PartialEq)]
pub struct SqlError {
    /// The kind of problem.
    pub kind: SqlErrorKind,
    /// What is wrong, in words.
    pub message: String,
    /// Where in the SQL text, when known.
    pub position: Option<Position>,
    /// The nearest known name, for unknown names.
    pub suggestion: Option<String>,
}

impl SqlError {
    /// An error of `kind` with `message` and no position.
    pub fn new(kind: SqlErrorKind, message: impl Into<String>) -> Self {
        SqlError { kind, message: message.into(), position: None, suggestion: None }
    }

    /// A construct ciuf does not support.
    pub fn unsupported(construct: impl fmt::Display) -> Self {
        Self::new(SqlErrorKind::Unsupported, format!("unsupported: {construct}"))
    }

    /// Sets the position if none is set yet (the innermost position wins).
    pub fn at(mut self, position: Option<Position>) -> Self {
        if self.position.is_none() {
            self.position = position;
        }
        self
    }

    /// Adds the nearest known name.
    pub fn suggest(mut self, suggestion: Option<String>) -> Self {
        self.suggestion = suggestion;
        self
    }
}

impl fmt::Display for SqlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(p) = self.position {
            write!(f, " at {p}")?;
        }
        if let Some(s) = &self.suggestion {
            write!(f, " (did you mean {s}?)")?;
        }
        Ok(())
    }
}

impl std::error::Error for SqlError {}

/// A change does not fit its table's schema.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SchemaError {
    /// The change names a table the engine does not have.
    #[error("unknown table {name}{}", did_you_mean(suggestion))]
    UnknownTable {
        /// The name given.
        name: String,
        /// The nearest known table.
        suggestion: Option<String>,
    },
    /// A named row has a column its table does not have.
    #[error("table {table} has no column {column}{}", did_you_mean(suggestion))]
    UnknownColumn {
        /// The table.
        table: String,
        /// The column name given.
        column: String,
        /// The nearest known column.
        suggestion: Option<String>,
    },
    /// A positional row has the wrong number of values.
    #[error("table {table} has {expected} columns but the row has {got} values")]
    Arity {
        /// The table.
        table: String,
        /// Its number of columns.
        expected: usize,
        /// The number of values given.
        got: usize,
    },
    /// A value does not fit its column's type.
    #[error("column {table}.{column} is {expected}: {detail}")]
    Type {
        /// The table.
        table: String,
        /// The column.
        column: String,
        /// The column's type.
        expected: String,
        /// What was given and why it does not fit.
        detail: String,
    },
    /// A row given by name leaves out a column the operation needs.
    #[error("{operation} on {table} needs column {column}")]
    MissingColumn {
        /// The table.
        table: String,
        /// The missing column.
        column: String,
        /// insert, update or delete.
        operation: &'static str,
    },
    /// A named row gives one column twice (names match ignoring ASCII case).
    #[error("the row for table {table} names column {column} twice (column names match ignoring case)")]
    DuplicateColumn {
        /// The table.
        table: String,
        /// The column.
        column: String,
    },
    /// A table is created twice.
    #[error("table {0} already exists")]
    TableExists(String),
    /// A table definition is not valid.
    #[error("invalid table {table}: {detail}")]
    InvalidTable {
        /// The table.
        table: String,
        /// What is wrong.
        detail: String,
    },
    /// The table has no primary key, so the operation needs the whole old row.
    #[error("table {table} has no primary key: {operation} needs the whole old row")]
    NeedsOldRow {
        /// The table.
        table: String,
        /// update or delete.
        operation: &'static str,
    },
}

/// A change breaks a constraint of its table.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConstraintError {
    /// An insert (or an update's new key) collides with a stored row's primary key.
    #[error("duplicate primary key in {table}: {key} already exists")]
    DuplicateKey {
        /// The table.
        table: String,
        /// The key, rendered.
        key: String,
    },
    /// NULL in a NOT NULL column.
    #[error("column {table}.{column} is NOT NULL but the row has NULL")]
    NotNull {
        /// The table.
        table: String,
        /// The column.
        column: String,
    },
    /// An update or delete of a row the table does not hold.
    #[error("{operation} on {table}: no row {row}")]
    RowNotFound {
        /// The table.
        table: String,
        /// update or delete.
        operation: &'static str,
        /// The row (or key) looked for, rendered.
        row: String,
    },
    /// An update or delete named a key whose stored row differs from the old row given.
    #[error("{operation} on {table}: the stored row {stored} differs from the old row given {given}")]
    RowMismatch {
        /// The table.
        table: String,
        /// update or delete.
        operation: &'static str,
        /// The stored row, rendered.
        stored: String,
        /// The row given, rendered.
        given: String,
    },
}

fn did_you_mean(suggestion: &Option<String>) -> String {
    match suggestion {
        Some(s) => format!(" (did you mean {s}?)"),
        None => String::new(),
    }
}

/// The known name nearest to `name` (edit distance, case-insensitive), if near enough
/// to be a plausible typo.
pub fn nearest_name<'a>(name: &str, known: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let target = name.to_ascii_lowercase();
    let mut best: Option<(usize, &str)> = None;
    for k in known {
        let d = edit_distance(&target, &k.to_ascii_lowercase());
        if best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, k));
        }
    }
    let (d, k) = best?;
    let limit = (target.chars().count() / 3).max(2);
    (d <= limit).then(|| k.to_string())
}

/// Levenshtein distance over chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_name_finds_typos_only() {
        let known = ["orders", "products", "customers"];
        assert_eq!(nearest_name("order", known).as_deref(), Some("orders"));
        assert_eq!(nearest_name("PRODUCT", known).as_deref(), Some("products"));
        assert_eq!(nearest_name("zzz", known), None);
    }

    #[test]
    fn sql_error_display_has_position_and_suggestion() {
        let e = SqlError::new(SqlErrorKind::UnknownColumn, "unknown column amout")
            .at(Some(Position { line: 1, column: 8 }))
            .suggest(Some("amount".into()));
        assert_eq!(e.to_string(), "unknown column amout at line 1, column 8 (did you mean amount?)");
    }
}
