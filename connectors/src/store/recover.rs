//! Reading a state directory back: the newest checkpoint, then every log record after
//! it, folded into the tables, views and position they describe.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use ciuf_engine::{Row, TableSchema};

use super::StoreError;
use super::records::{Framing, Record, ViewRecord, decode, frame};

/// A table as the state directory holds it.
#[derive(Debug)]
pub struct RecoveredTable {
    /// Its schema.
    pub schema: TableSchema,
    /// Its rows, each with its multiplicity (a row may appear in several entries;
    /// none has a weight below 1 once reading is done).
    pub rows: Vec<(Row, i64)>,
    /// Where each row's entry is, once a deletion needed it: built on the first
    /// negative weight, so that a checkpoint or a log of inserts is read without one.
    index: Option<HashMap<Row, usize>>,
}

impl RecoveredTable {
    fn new(schema: TableSchema) -> RecoveredTable {
        RecoveredTable { schema, rows: Vec::new(), index: None }
    }

    /// Adds `weight` of `row`.
    fn add(&mut self, row: Row, weight: i64) {
        if weight < 0 && self.index.is_none() {
            self.build_index();
        }
        match &mut self.index {
            None => self.rows.push((row, weight)),
            Some(index) => match index.entry(row) {
                Entry::Occupied(o) => self.rows[*o.get()].1 += weight,
                Entry::Vacant(v) => {
                    let at = self.rows.len();
                    self.rows.push((v.key().clone(), weight));
                    v.insert(at);
                }
            },
        }
    }

    /// One entry per row, found by the row.
    fn build_index(&mut self) {
        let mut index: HashMap<Row, usize> = HashMap::with_capacity(self.rows.len());
        for i in 0..self.rows.len() {
            match index.entry(self.rows[i].0.clone()) {
                Entry::Occupied(o) => {
                    let w = std::mem::take(&mut self.rows[i].1);
                    self.rows[*o.get()].1 += w;
                }
                Entry::Vacant(v) => {
                    v.insert(i);
                }
            }
        }
        self.index = Some(index);
    }

    /// Drops the entries whose weights came to nothing.
    fn finish(&mut self) {
        self.index = None;
        self.rows.retain(|(_, w)| *w > 0);
    }
}

/// What a state directory holds.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Facts about the directory: its dialect, its source, the source's ids.
    pub meta: BTreeMap<String, String>,
    /// The tables, in the order they were made.
    pub tables: Vec<RecoveredTable>,
    /// The registered views, in the order they were registered.
    pub views: Vec<ViewRecord>,
    /// The number of the last transaction recorded.
    pub txn: u64,
    /// The source position after it.
    pub position: Option<String>,
}

impl Recovered {
    /// Settles every table once all records are read.
    pub(crate) fn finish(&mut self) {
        for t in &mut self.tables {
            t.finish();
        }
    }

    fn table(&mut self, name: &str, file: &Path) -> Result<&mut RecoveredTable, StoreError> {
        match self.tables.iter().position(|t| t.schema.name == name) {
            Some(i) => Ok(&mut self.tables[i]),
            None => Err(StoreError::damaged(file, format!("rows for table {name}, which it does not create"))),
        }
    }

    /// Folds one record in.
    pub(crate) fn apply(&mut self, record: Record, file: &Path) -> Result<(), StoreError> {
        match record {
            Record::Meta { key, value } => {
                self.meta.insert(key, value);
            }
            Record::CreateTable(schema) => {
                self.tables.retain(|t| !t.schema.name.eq_ignore_ascii_case(&schema.name));
                self.tables.push(RecoveredTable::new(schema));
            }
            Record::DropTable(name) => self.tables.retain(|t| t.schema.name != name),
            Record::Commit { txn, position, tables } => {
                for (name, rows) in tables {
                    let table = self.table(&name, file)?;
                    for (row, w) in rows {
                        table.add(row, w);
                    }
                }
                self.txn = txn;
                if position.is_some() {
                    self.position = position;
                }
            }
            Record::ViewAdded(v) => {
                if !self.views.contains(&v) {
                    self.views.push(v);
                }
            }
            Record::ViewDropped(v) => self.views.retain(|x| x.name != v.name || x.sql != v.sql),
            Record::Rows { table, rows } => {
                let table = self.table(&table, file)?;
                table.rows.reserve(rows.len());
                for (row, w) in rows {
                    table.add(row, w);
                }
            }
            Record::End { txn, position } => {
                self.txn = txn;
                self.position = position;
            }
            Record::Passed { position } => self.position = Some(position),
        }
        Ok(())
    }
}

/// The records of the file at `path` (after its `magic`), each folded into `into`.
/// Returns the offset where what was written ends (a record a crash cut short
/// starts there); damage is an error naming the file.
pub(crate) fn read_file(
    path: &Path,
    magic: &[u8],
    into: &mut Recovered,
    mut each: impl FnMut(&Record),
) -> Result<usize, StoreError> {
    let bytes = std::fs::read(path).map_err(|e| StoreError::io(path, "reading", e))?;
    if bytes.len() < magic.len() {
        // Made, and the process died before its first bytes were written.
        return Ok(0);
    }
    if &bytes[..magic.len()] != magic {
        return Err(StoreError::damaged(path, "it does not start as a ciuf state file of this format".to_string()));
    }
    let mut at = magic.len();
    loop {
        match frame(&bytes, at) {
            Framing::Record(payload, next) => {
                let record = decode(payload).map_err(|m| {
                    StoreError::damaged(path, format!("a record at byte {at} holds {} that does not read", m.0))
                })?;
                each(&record);
                into.apply(record, path)?;
                at = next;
            }
            Framing::End(end) => return Ok(end),
            Framing::Damaged(at, what) => {
                return Err(StoreError::damaged(path, format!("{what} at byte {at} does not check out")));
            }
        }
    }
}

/// The numbered files `prefix-<n>.ciuf` in `dir`, by number.
pub(crate) fn numbered(dir: &Path, prefix: &str) -> Result<Vec<(u64, PathBuf)>, StoreError> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| StoreError::io(dir, "listing", e))? {
        let entry = entry.map_err(|e| StoreError::io(dir, "listing", e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(n) = name.strip_prefix(prefix).and_then(|r| r.strip_suffix(".ciuf")).and_then(|n| n.parse().ok()) {
            out.push((n, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}
