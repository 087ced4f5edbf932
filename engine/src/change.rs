//! Row changes as callers give them: which table, and rows by position or by name.

use crate::plan::TableId;
use crate::value::Value;

/// A table, by name or by id (ids skip the name lookup on hot paths).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TableRef {
    /// By name (ASCII case-insensitive).
    Name(String),
    /// By id.
    Id(TableId),
}

impl From<&str> for TableRef {
    fn from(s: &str) -> Self {
        TableRef::Name(s.to_string())
    }
}
impl From<String> for TableRef {
    fn from(s: String) -> Self {
        TableRef::Name(s)
    }
}
impl From<&String> for TableRef {
    fn from(s: &String) -> Self {
        TableRef::Name(s.clone())
    }
}
impl From<TableId> for TableRef {
    fn from(id: TableId) -> Self {
        TableRef::Id(id)
    }
}

/// A row as given by a caller.
#[derive(Debug, Clone, PartialEq)]
pub enum RowData {
    /// Every column's value, in column order.
    Values(Vec<Value>),
    /// Values by column name. Columns left out are NULL in an insert, keep their old
    /// value in an update, and are not compared in a delete.
    Named(Vec<(String, Value)>),
}

impl RowData {
    /// Asks the processor to start loading the values (wherever the caller allocated
    /// them).
    pub(crate) fn prefetch_values(&self) {
        if let RowData::Values(values) = self
            && !values.is_empty()
        {
            // From the allocator's header before the values (read when they are
            // freed) to the last value, line by line.
            let start = values.as_ptr().cast::<u8>().wrapping_sub(16);
            let end = values.as_ptr_range().end.cast::<u8>();
            let mut at = start;
            while at < end {
                crate::row::prefetch_address(at);
                at = at.wrapping_add(64);
            }
            crate::row::prefetch_address(end.wrapping_sub(1));
        }
    }

    /// Asks the processor to start loading the texts the values point to; the values
    /// themselves should have been fetched by then ([`RowData::prefetch_values`]).
    pub(crate) fn prefetch_texts(&self) {
        if let RowData::Values(values) = self {
            for v in values {
                if let Value::Text(t) = v {
                    crate::row::prefetch_address(t.as_str().as_ptr());
                }
            }
        }
    }
}

impl From<Vec<Value>> for RowData {
    fn from(v: Vec<Value>) -> Self {
        RowData::Values(v)
    }
}
impl From<crate::row::Row> for RowData {
    fn from(r: crate::row::Row) -> Self {
        RowData::Values(r.to_vec())
    }
}
impl<K: Into<String>, V: Into<Value>> From<Vec<(K, V)>> for RowData {
    fn from(v: Vec<(K, V)>) -> Self {
        RowData::Named(v.into_iter().map(|(k, v)| (k.into(), v.into())).collect())
    }
}
impl<K: Into<String>, V: Into<Value>, const N: usize> From<[(K, V); N]> for RowData {
    fn from(v: [(K, V); N]) -> Self {
        RowData::Named(v.into_iter().map(|(k, v)| (k.into(), v.into())).collect())
    }
}
impl<K: Into<String>, V: Into<Value>> From<std::collections::HashMap<K, V>> for RowData {
    fn from(v: std::collections::HashMap<K, V>) -> Self {
        RowData::Named(v.into_iter().map(|(k, v)| (k.into(), v.into())).collect())
    }
}
impl<K: Into<String>, V: Into<Value>> From<std::collections::BTreeMap<K, V>> for RowData {
    fn from(v: std::collections::BTreeMap<K, V>) -> Self {
        RowData::Named(v.into_iter().map(|(k, v)| (k.into(), v.into())).collect())
    }
}

/// One change to one table.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Adds a row.
    Insert {
        /// The table.
        table: TableRef,
        /// The new row.
        row: RowData,
    },
    /// Replaces a row. Without `old`, the row is found by `new`'s primary key.
    Update {
        /// The table.
        table: TableRef,
        /// The row as it was (needed for tables without a primary key, and when the
        /// key itself changes).
        old: Option<RowData>,
        /// The row as it becomes.
        new: RowData,
    },
    /// Removes a row: by primary key where the table has one, else the equal row.
    Delete {
        /// The table.
        table: TableRef,
        /// The row (or, by name, just its key columns).
        row: RowData,
    },
    /// An insert (without `old`) or an update that first removes any other row holding
    /// `new`'s primary key: SQLite's REPLACE conflict resolution (`INSERT OR REPLACE`,
    /// `REPLACE INTO`, `UPDATE OR REPLACE`), which deletes that row without a trace a
    /// follower could see.
    Replace {
        /// The table.
        table: TableRef,
        /// For an update, the row as it was.
        old: Option<RowData>,
        /// The row as it becomes, every column in order.
        new: RowData,
    },
}

impl Change {
    /// An insert.
    pub fn insert(table: impl Into<TableRef>, row: impl Into<RowData>) -> Change {
        Change::Insert { table: table.into(), row: row.into() }
    }

    /// An update from `old` to `new`.
    pub fn update(table: impl Into<TableRef>, old: impl Into<RowData>, new: impl Into<RowData>) -> Change {
        Change::Update { table: table.into(), old: Some(old.into()), new: new.into() }
    }

    /// An update of the row with `new`'s primary key.
    pub fn update_by_key(table: impl Into<TableRef>, new: impl Into<RowData>) -> Change {
        Change::Update { table: table.into(), old: None, new: new.into() }
    }

    /// A delete.
    pub fn delete(table: impl Into<TableRef>, row: impl Into<RowData>) -> Change {
        Change::Delete { table: table.into(), row: row.into() }
    }

    /// Asks the processor to start loading the values the change carries (a
    /// transaction built ahead of time holds each row's values wherever they were
    /// allocated: reading them is a cache miss each).
    pub(crate) fn prefetch_values(&self) {
        let (first, second) = match self {
            Change::Insert { row, .. } | Change::Delete { row, .. } => (Some(row), None),
            Change::Update { old, new, .. } | Change::Replace { old, new, .. } => (old.as_ref(), Some(new)),
        };
        for data in [first, second].into_iter().flatten() {
            data.prefetch_values();
        }
    }

    /// The table the change is for.
    pub fn table(&self) -> &TableRef {
        match self {
            Change::Insert { table, .. }
            | Change::Update { table, .. }
            | Change::Delete { table, .. }
            | Change::Replace { table, .. } => table,
        }
    }
}
