//! What the SQL front end may look up while it plans a query.

use std::sync::Arc;

use crate::plan::{TableId, ViewDef};
use crate::types::TableSchema;

/// Whose rules decide where SQL dialects differ.
///
/// ciuf follows the database the data comes from: SQLite for in-memory engines and
/// SQLite sources, PostgreSQL for PostgreSQL sources. The differences it knows of:
/// where NULLs sort (SQLite: first in ascending order; PostgreSQL: last), and whether
/// LIKE ignores the case of ASCII letters (SQLite: yes; PostgreSQL: no).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Dialect {
    /// SQLite's rules.
    #[default]
    Sqlite,
    /// PostgreSQL's rules.
    Postgres,
}

impl Dialect {
    /// Whether NULLs sort before other values in ascending order.
    pub fn nulls_first_when_ascending(self) -> bool {
        self == Dialect::Sqlite
    }

    /// Whether LIKE ignores the case of ASCII letters.
    pub fn like_is_case_insensitive(self) -> bool {
        self == Dialect::Sqlite
    }
}

/// Tables and named views, by name.
pub trait Catalog {
    /// The dialect queries are planned in.
    fn dialect(&self) -> Dialect;

    /// The table called `name` (ASCII case-insensitive).
    fn table(&self, name: &str) -> Option<(TableId, Arc<TableSchema>)>;

    /// The definition of the named view `name` (ASCII case-insensitive).
    fn view(&self, name: &str) -> Option<&ViewDef>;

    /// Every table and view name, for "did you mean" suggestions.
    fn relation_names(&self) -> Vec<String>;
}
