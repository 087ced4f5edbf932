//! Reading a state directory back: the newest checkpoint, then every log record after
//! it, folded into the tables, views and position they describe.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use ciuf_engine::journal::{STATE_LAYOUT, SavedState};
use ciuf_engine::{Row, TableSchema};

use super::StoreError;
use super::records::{Framing, Record, TableTexts, ViewRecord, decode, frame};

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
    /// While [`Recovered::states`] holds states: `rows` is the table as the checkpoint
    /// holds it, and this the net change the log made to it after (rows with nonzero
    /// weights, once reading is done).
    pub after: Vec<(Row, i64)>,
    /// The net change being summed, while the log is read.
    after_sum: HashMap<Row, i64>,
}

impl RecoveredTable {
    fn new(schema: TableSchema) -> RecoveredTable {
        RecoveredTable { schema, rows: Vec::new(), index: None, after: Vec::new(), after_sum: HashMap::new() }
    }

    /// Folds the log's change after the checkpoint into the rows.
    fn merge_after(&mut self) {
        for (row, w) in std::mem::take(&mut self.after_sum) {
            if w != 0 {
                self.add(row, w);
            }
        }
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
        self.after = std::mem::take(&mut self.after_sum).into_iter().filter(|(_, w)| *w != 0).collect();
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
    /// The operator states the checkpoint saved, for the tables as the checkpoint
    /// holds them (each table's `rows`; its `after` is what the log changed since).
    /// Empty if the checkpoint saved none, or if a table was made or dropped after it:
    /// each table's `rows` is then everything, and its `after` empty.
    pub states: Vec<SavedState>,
    /// Whether the checkpoint has been read (records now come from the log).
    past_checkpoint: bool,
}

impl Recovered {
    /// Settles every table once all records are read.
    pub(crate) fn finish(&mut self) {
        for t in &mut self.tables {
            t.finish();
        }
    }

    /// Drops the saved states, folding what the log changed after the checkpoint into
    /// every table's rows: the tables are then everything, to compute the views from.
    pub fn forget_states(&mut self) {
        self.states.clear();
        for t in &mut self.tables {
            t.merge_after();
            t.after.clear();
            t.rows.retain(|(_, w)| *w > 0);
            t.index = None;
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
            Record::CreateTable(_) | Record::DropTable(_) if self.past_checkpoint && !self.states.is_empty() => {
                // The states are of the tables the checkpoint holds.
                self.forget_states();
                return self.apply(record, file);
            }
            Record::CreateTable(schema) => {
                self.tables.retain(|t| !t.schema.name.eq_ignore_ascii_case(&schema.name));
                self.tables.push(RecoveredTable::new(schema));
            }
            Record::DropTable(name) => self.tables.retain(|t| t.schema.name != name),
            Record::Commit { txn, position, tables } => {
                let apart = !self.states.is_empty();
                for (name, rows) in tables {
                    let table = self.table(&name, file)?;
                    for (row, w) in rows {
                        if apart {
                            *table.after_sum.entry(row).or_insert(0) += w;
                        } else {
                            table.add(row, w);
                        }
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
                self.past_checkpoint = true;
            }
            Record::State { layout, node, rows } => {
                // States of another layout are computed again instead.
                if layout == STATE_LAYOUT {
                    match self.states.last_mut() {
                        Some((n, kept)) if **n == *node => kept.extend(rows),
                        _ => self.states.push((node.into(), rows)),
                    }
                }
            }
            Record::Passed { position } => self.position = Some(position),
        }
        Ok(())
    }
}

/// The records of the file at `path` (after its `magic`), each folded into `into`.
/// Returns the offset where what was written ends (a record a crash cut short
/// starts there); damage is an error naming the file.
///
/// The records are framed first (their lengths and checksums), then decoded and
/// folded in their order — with `in_parallel` (a checkpoint, whose rows are all kept)
/// decoded on a few threads first when the file is large; otherwise one at a time, so
/// that a long log of updates is never held decoded all at once.
pub(crate) fn read_file(
    path: &Path,
    magic: &[u8],
    into: &mut Recovered,
    in_parallel: bool,
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
    let mut payloads: Vec<(usize, &[u8])> = Vec::new();
    let mut at = magic.len();
    let end = loop {
        match frame(&bytes, at) {
            Framing::Record(payload, next) => {
                payloads.push((at, payload));
                at = next;
            }
            Framing::End(end) => break end,
            Framing::Damaged(at, what) => {
                return Err(StoreError::damaged(path, format!("{what} at byte {at} does not check out")));
            }
        }
    };
    let decode_one = |(at, payload): &(usize, &[u8]), texts: &mut TableTexts| {
        decode(payload, texts).map_err(|m| format!("a record at byte {at} holds {} that does not read", m.0))
    };
    let threads = if !in_parallel || bytes.len() < PARALLEL_FROM_BYTES {
        1
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get()).min(MAX_DECODE_THREADS)
    };
    let mut fold = |record: Result<Record, String>| {
        let record = record.map_err(|what| StoreError::damaged(path, what))?;
        each(&record);
        into.apply(record, path)
    };
    if threads > 1 && payloads.len() > 1 {
        let per = payloads.len().div_ceil(threads);
        let decoded: Vec<Result<Record, String>> = std::thread::scope(|s| {
            let parts: Vec<_> = payloads
                .chunks(per)
                .map(|part| {
                    s.spawn(move || {
                        // Each part shares its tables' text on its own.
                        let mut texts = TableTexts::new();
                        part.iter().map(|p| decode_one(p, &mut texts)).collect::<Vec<_>>()
                    })
                })
                .collect();
            parts.into_iter().flat_map(|p| p.join().expect("decoding does not panic")).collect()
        });
        decoded.into_iter().try_for_each(&mut fold)?;
    } else {
        let mut texts = TableTexts::new();
        for p in &payloads {
            fold(decode_one(p, &mut texts))?;
        }
    }
    Ok(end)
}

/// Files from this size on are decoded on several threads.
const PARALLEL_FROM_BYTES: usize = 4 << 20;
/// The most threads decoding one file.
const MAX_DECODE_THREADS: usize = 4;

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
