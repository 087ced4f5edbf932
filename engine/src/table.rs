//! Base tables: the rows every view is computed from, and the checks on each change.
//!
//! A table with a primary key stores its rows in a hash table addressed by the key
//! columns (no separate key copies); a table without one stores a bag (row →
//! multiplicity). Every change is checked here before it reaches any operator: the
//! table exists, each value fits its column (with the lossless conversions callers
//! expect, such as an integer into a DOUBLE column), NOT NULL holds, a key is not
//! inserted twice, and the row an update or delete names is really there. A checked
//! change is applied at once and written to an undo log, so that a later change of the
//! same transaction sees it, and a failed transaction can put every table back.

use std::hash::{BuildHasher, Hash, Hasher};
use std::ops::Deref;
use std::sync::Arc;

use hashbrown::{DefaultHashBuilder, HashMap};

use crate::change::RowData;
use crate::datetime;
use crate::decimal::{Decimal, pow10};
use crate::error::{ConstraintError, Error, Result, SchemaError, nearest_name};
use crate::plan::TableId;
use crate::row::{Columns, Row};
use crate::types::{Column, DataType, TableSchema};
use crate::value::{TextInterner, Value};
use crate::workers::Cost;
use crate::zset::{Borrowed, Weight, ZSet};

mod keyed;

use keyed::KeyedRows;

/// What to do to put a table back after a failed transaction.
#[derive(Debug)]
pub(crate) enum Undo {
    /// The row was inserted: remove it.
    Inserted(TableId, Row),
    /// The rows at these places of the table's transaction delta were inserted (a run
    /// of inserts): remove them. The delta only grows while a transaction is staged,
    /// so they are still there; a run's rows are not cloned into the undo log (a
    /// load's million rows would each be cloned, and dropped again cold).
    InsertedRun(TableId, std::ops::Range<usize>),
    /// The row was removed: insert it again.
    Removed(TableId, Row),
}

#[derive(Debug)]
enum Rows {
    Keyed { key: Vec<usize>, rows: KeyedRows },
    Bag { rows: HashMap<Row, Weight>, len: usize },
}

/// A base table and its rows.
#[derive(Debug)]
pub(crate) struct Table {
    id: TableId,
    schema: Arc<TableSchema>,
    rows: Rows,
    hasher: DefaultHashBuilder,
    /// Per column: the interner of its short text values, while it has few of them.
    interners: Vec<Option<TextInterner>>,
}

impl Table {
    /// An empty table.
    pub fn new(id: TableId, schema: TableSchema) -> Table {
        let rows = match &schema.primary_key {
            Some(key) => Rows::Keyed { key: key.clone(), rows: KeyedRows::new() },
            None => Rows::Bag { rows: HashMap::new(), len: 0 },
        };
        let interners =
            schema.columns.iter().map(|c| (c.data_type == DataType::Text).then(TextInterner::default)).collect();
        Table { id, schema: Arc::new(schema), rows, hasher: DefaultHashBuilder::default(), interners }
    }

    /// The schema.
    pub fn schema(&self) -> &Arc<TableSchema> {
        &self.schema
    }

    /// The number of rows.
    pub fn len(&self) -> usize {
        match &self.rows {
            Rows::Keyed { rows, .. } => rows.len(),
            Rows::Bag { len, .. } => *len,
        }
    }

    /// Every row, as a relation.
    pub fn contents(&self) -> ZSet {
        match &self.rows {
            Rows::Keyed { rows, .. } => {
                // Taking a handle writes each row's count: prefetched a few rows ahead,
                // those cache misses overlap.
                // In chunks on the worker threads when there are many (a view built
                // over a loaded table).
                let all: Vec<&Row> = rows.iter().collect();
                crate::workers::concat(all.len(), Cost::Row, |range| {
                    crate::row::prefetched(&all[range], |r| r).map(|r| ((*r).clone(), 1)).collect::<ZSet>()
                })
            }
            Rows::Bag { rows, .. } => rows.iter().map(|(r, w)| (r.clone(), *w)).collect(),
        }
    }

    /// Every row, borrowed (see [`Borrowed`]): only the index is read.
    pub fn borrowed(&self) -> Borrowed<'_> {
        match &self.rows {
            Rows::Keyed { rows, .. } => Borrowed::new(rows.iter().map(|r| (r, 1))),
            Rows::Bag { rows, .. } => Borrowed::new(rows.iter().map(|(r, w)| (r, *w))),
        }
    }

    /// Approximate heap bytes of the row store (not the rows themselves).
    pub fn index_bytes(&self) -> usize {
        match &self.rows {
            Rows::Keyed { rows, .. } => rows.capacity() * (std::mem::size_of::<Row>() + 1),
            Rows::Bag { rows, .. } => rows.capacity() * (std::mem::size_of::<(Row, Weight)>() + 1),
        }
    }

    fn key_hash<V: Deref<Target = Value>>(&self, key_values: impl Iterator<Item = V>) -> u64 {
        let mut h = self.hasher.build_hasher();
        for v in key_values {
            v.hash(&mut h);
        }
        h.finish()
    }

    /// Asks the processor to start loading the slot a lookup of the row `data` keys
    /// reads first (see [`crate::probe_ahead`]); nothing if the table has no key or
    /// the key's values need converting first (the lookup then finds out why).
    /// Returns the key's hash, for [`Table::prefetch_stored`].
    pub fn prefetch_key(&self, data: &RowData) -> Option<u64> {
        let (Rows::Keyed { key, rows }, RowData::Values(values)) = (&self.rows, data) else { return None };
        let columns = &self.schema.columns;
        if values.len() != columns.len() || !key.iter().all(|&c| fits_exactly(&values[c], columns[c].data_type)) {
            return None;
        }
        let hash = self.key_hash(key.iter().map(|&c| &values[c]));
        crate::probe_ahead::prefetch_probe(rows.shard(hash), hash);
        Some(hash)
    }

    /// Asks the processor to start loading the stored rows whose key hashes like
    /// `hash` (a [`Table::prefetch_key`] some changes earlier has fetched the slots
    /// that point to them): an update or a delete then compares the row it locates
    /// without waiting for it.
    pub fn prefetch_stored(&self, hash: u64) {
        if let Rows::Keyed { rows, .. } = &self.rows {
            // Every slot whose tag matches is a candidate; none is taken.
            rows.shard(hash).find(hash, |r| {
                r.prefetch();
                false
            });
        }
    }

    /// The stored row whose key columns equal `value(c)` for each key column `c`.
    fn find_hashed<V: Deref<Target = Value>>(&self, hash: u64, value: impl Fn(usize) -> V) -> Option<&Row> {
        let Rows::Keyed { key, rows } = &self.rows else { return None };
        rows.shard(hash).find(hash, |r| key.iter().all(|&c| *r.get(c) == *value(c)))
    }

    /// Stores `row` (already checked). Used by changes and by rollback.
    pub fn store(&mut self, row: Row) {
        match &mut self.rows {
            Rows::Keyed { key, rows } => {
                let hasher = &self.hasher;
                let key = &*key;
                let hash = hash_key(hasher, key, &row);
                let shard = rows.shard_mut(hash);
                keyed::reserve(shard, 1, hasher, key);
                shard.insert_unique(hash, row, |r| hash_key(hasher, key, r));
            }
            Rows::Bag { rows, len } => {
                *rows.entry(row).or_insert(0) += 1;
                *len += 1;
            }
        }
    }

    /// Removes one copy of `row`, which must be stored. Used by changes and by rollback.
    pub fn unstore(&mut self, row: &Row) {
        match &mut self.rows {
            Rows::Keyed { key, rows } => {
                let hash = hash_key(&self.hasher, key, row);
                if let Ok(e) = rows.shard_mut(hash).find_entry(hash, |r| key.iter().all(|&c| *r.get(c) == *row.get(c)))
                {
                    e.remove();
                }
            }
            Rows::Bag { rows, len } => {
                if let Some(c) = rows.get_mut(row) {
                    *c -= 1;
                    *len -= 1;
                    if *c == 0 {
                        rows.remove(row);
                    }
                }
            }
        }
    }

    /// Checks and applies an insert.
    pub fn insert(&mut self, data: RowData, undo: &mut Vec<Undo>, delta: &mut ZSet) -> Result<()> {
        let row = self.full_row(data, None)?;
        self.insert_row(row, undo, delta)
    }

    /// Makes room for `additional` more rows, so that a load told its size in advance
    /// (a snapshot's row estimate) grows the table once instead of rehashing every row
    /// at each doubling.
    pub fn reserve(&mut self, additional: usize) {
        match &mut self.rows {
            Rows::Keyed { key, rows } => rows.reserve(additional, &self.hasher, key),
            Rows::Bag { rows, .. } => rows.reserve(additional),
        }
    }

    /// Checks and applies many inserts, with the outcome of [`Table::insert`] on each
    /// in turn (the same rows stored, the same delta in the same order, the same first
    /// error). A keyed table takes the rows in the order of their slots, so that a
    /// long run of inserts (a load, a snapshot) walks its hash table from one end to
    /// the other instead of missing the cache on every row; the table is grown once.
    pub fn insert_many(&mut self, data: Vec<RowData>, undo: &mut Vec<Undo>, delta: &mut ZSet) -> Result<()> {
        // On a failure, the rows before it go in one by one (one may be a duplicate,
        // which is then the first error), then this error.
        let (rows, failed) = self.full_rows(data);
        if failed.is_some() || !self.insert_in_slot_order(&rows) {
            for row in rows {
                self.insert_row(row, undo, delta)?;
            }
            return failed.map_or(Ok(()), Err);
        }
        let from = delta.len();
        delta.reserve(rows.len());
        for row in rows {
            delta.push(row, 1);
        }
        undo.push(Undo::InsertedRun(self.id, from..delta.len()));
        Ok(())
    }

    /// The full rows of `data` ([`Table::full_row`]) in order, up to the first that
    /// fails, and its error. On worker threads a long run is built in chunks at once,
    /// each chunk interning its texts with a copy of the table's interners, whose new
    /// texts then join the table's (a text new to two chunks is held twice: interning
    /// only saves memory, rows compare texts by content).
    fn full_rows(&mut self, mut data: Vec<RowData>) -> (Vec<Row>, Option<Error>) {
        let parts = crate::workers::parts_for(data.len(), Cost::Row);
        if parts <= 1 {
            let mut interners = std::mem::take(&mut self.interners);
            let built = self.rows_interned(data, &mut interners);
            self.interners = interners;
            return built;
        }
        let len = data.len();
        let mut chunks: Vec<Vec<RowData>> = (0..parts).rev().map(|i| data.split_off(len * i / parts)).collect();
        chunks.reverse();
        let built = crate::workers::each(chunks, |chunk| {
            let mut interners = self.interners.clone();
            let (rows, failed) = self.rows_interned(chunk, &mut interners);
            (rows, failed, interners)
        });
        let mut all = Vec::with_capacity(len);
        for (rows, failed, interners) in built {
            for (mine, theirs) in self.interners.iter_mut().zip(interners) {
                // A column that shows too many texts stops being interned, as
                // `full_row` decides.
                match (mine.as_mut(), theirs) {
                    (Some(m), Some(t)) => {
                        m.absorb(t);
                        if m.is_full() {
                            *mine = None;
                        }
                    }
                    (Some(_), None) => *mine = None,
                    (None, _) => {}
                }
            }
            all.extend(rows);
            if failed.is_some() {
                return (all, failed);
            }
        }
        (all, None)
    }

    /// The full rows of `data` up to the first that fails, and its error, interned by
    /// `interners`.
    fn rows_interned(&self, data: Vec<RowData>, interners: &mut [Option<TextInterner>]) -> (Vec<Row>, Option<Error>) {
        let mut rows = Vec::with_capacity(data.len());
        // A run's values were allocated as it was read, long enough ago to have left
        // the cache: each row's values are asked for twice `PREFETCH_AHEAD` rows before
        // it is built, and the texts they point to (read to intern them) half as far.
        let ahead = crate::row::PREFETCH_AHEAD;
        for (i, d) in data.iter().take(2 * ahead).enumerate() {
            d.prefetch_values();
            if i < ahead {
                d.prefetch_texts();
            }
        }
        let mut data = data.into_iter();
        while let Some(d) = data.next() {
            let left = data.as_slice();
            if let Some(later) = left.get(2 * ahead - 1) {
                later.prefetch_values();
            }
            if let Some(later) = left.get(ahead - 1) {
                later.prefetch_texts();
            }
            match self.full_row_interned(d, None, interners) {
                Ok(row) => rows.push(row),
                Err(e) => return (rows, Some(e)),
            }
        }
        (rows, None)
    }

    /// Stores rows that were checked when first applied (a restart's), each with its
    /// multiplicity, without a delta or an undo log; checks only their width and that
    /// a keyed table's keys are unique (nothing is stored if not).
    pub fn restore(&mut self, rows: Vec<(Row, Weight)>) -> Result<()> {
        let name = self.schema.name.clone();
        let width = self.schema.columns.len();
        let bad = |what: String| Error::Internal(format!("the rows restored to table {name} {what}"));
        if let Some((row, _)) = rows.iter().find(|(r, _)| r.len() != width) {
            return Err(bad(format!("include {row}, which does not have its {width} columns")));
        }
        for (row, _) in &rows {
            // Hashed now, as a change's rows are (see `full_row`).
            row.hash_value();
        }
        if let Rows::Bag { rows: bag, len } = &mut self.rows {
            for (row, w) in rows {
                if w < 1 {
                    return Err(bad(format!("include {row} {w} times")));
                }
                *bag.entry(row).or_insert(0) += w;
                *len += w as usize;
            }
            return Ok(());
        }
        if let Some((row, w)) = rows.iter().find(|(_, w)| *w != 1) {
            return Err(bad(format!("include {row} {w} times, in a table with a primary key")));
        }
        let rows: Vec<Row> = rows.into_iter().map(|(r, _)| r).collect();
        if !self.insert_in_slot_order(&rows) {
            return Err(bad("hold a primary key twice".to_string()));
        }
        Ok(())
    }

    /// Stores `rows` in slot order if the table is keyed and none of their keys is
    /// held or repeated; otherwise stores nothing and returns `false`.
    fn insert_in_slot_order(&mut self, rows: &[Row]) -> bool {
        let Rows::Keyed { key, rows: table } = &mut self.rows else { return false };
        table.insert_run(rows, &self.hasher, key)
    }

    /// Checks and applies the insert of a full row.
    fn insert_row(&mut self, row: Row, undo: &mut Vec<Undo>, delta: &mut ZSet) -> Result<()> {
        if let Rows::Keyed { key, rows } = &mut self.rows {
            // One probe finds a duplicate key or the place for the row.
            let (hasher, key) = (&self.hasher, &*key);
            let hash = hash_key(hasher, key, &row);
            let shard = rows.shard_mut(hash);
            keyed::reserve(shard, 1, hasher, key);
            let same_key = |r: &Row| key.iter().all(|&c| *r.get(c) == *row.get(c));
            match shard.entry(hash, same_key, |r| hash_key(hasher, key, r)) {
                hashbrown::hash_table::Entry::Occupied(_) => {
                    let key_values: Vec<Value> = key.iter().map(|&c| row.get(c).into_owned()).collect();
                    return Err(self.duplicate(&key_values));
                }
                hashbrown::hash_table::Entry::Vacant(v) => {
                    v.insert(row.clone());
                }
            }
        } else {
            self.store(row.clone());
        }
        undo.push(Undo::Inserted(self.id, row.clone()));
        delta.push(row, 1);
        Ok(())
    }

    /// Checks and applies an insert (without `old`) or an update that first removes
    /// any other row holding `new`'s primary key (SQLite's REPLACE).
    pub fn replace(
        &mut self,
        old: Option<RowData>,
        new: RowData,
        undo: &mut Vec<Undo>,
        delta: &mut ZSet,
    ) -> Result<()> {
        if let Rows::Keyed { key, .. } = &self.rows {
            let values = self.full_values(new.clone(), None)?;
            let hash = hash_key(&self.hasher, key, &values[..]);
            let displaced = self.find_hashed(hash, |c| &values[c]).cloned();
            let updated = match &old {
                Some(old) => Some(self.locate(old, "update", true)?),
                None => None,
            };
            if let Some(row) = displaced
                && updated.as_ref() != Some(&row)
            {
                self.unstore(&row);
                undo.push(Undo::Removed(self.id, row.clone()));
                delta.push(row, -1);
            }
        }
        match old {
            Some(old) => self.update(Some(old), new, undo, delta),
            None => self.insert(new, undo, delta),
        }
    }

    /// Checks and applies a delete.
    pub fn delete(&mut self, data: RowData, undo: &mut Vec<Undo>, delta: &mut ZSet) -> Result<()> {
        let stored = self.locate(&data, "delete", true)?;
        self.unstore(&stored);
        undo.push(Undo::Removed(self.id, stored.clone()));
        delta.push(stored, -1);
        Ok(())
    }

    /// Checks and applies an update.
    pub fn update(&mut self, old: Option<RowData>, new: RowData, undo: &mut Vec<Undo>, delta: &mut ZSet) -> Result<()> {
        let stored = match &old {
            Some(old) => self.locate(old, "update", true)?,
            None => {
                if !matches!(self.rows, Rows::Keyed { .. }) {
                    return Err(
                        SchemaError::NeedsOldRow { table: self.schema.name.clone(), operation: "update" }.into()
                    );
                }
                self.locate(&new, "update", false)?
            }
        };
        let row = self.full_row(new, Some(&stored))?;
        if row == stored {
            return Ok(());
        }
        let key_changed = match &self.rows {
            Rows::Keyed { key, .. } => key.iter().any(|&c| *stored.get(c) != *row.get(c)),
            Rows::Bag { .. } => true,
        };
        if key_changed && let Rows::Keyed { key, .. } = &self.rows {
            let hash = hash_key(&self.hasher, key, &row);
            if self.find_hashed(hash, |c| row.get(c)).is_some() {
                let new_key: Vec<Value> = key.iter().map(|&c| row.get(c).into_owned()).collect();
                return Err(self.duplicate(&new_key));
            }
        }
        match &mut self.rows {
            // The same key: the new row takes the stored row's slot.
            Rows::Keyed { key, rows } if !key_changed => {
                let hash = hash_key(&self.hasher, key, &stored);
                let mut slot =
                    rows.shard_mut(hash).find_entry(hash, |r| r.ptr_eq(&stored)).expect("a located row is stored");
                *slot.get_mut() = row.clone();
            }
            _ => {
                self.unstore(&stored);
                self.store(row.clone());
            }
        }
        undo.push(Undo::Removed(self.id, stored.clone()));
        undo.push(Undo::Inserted(self.id, row.clone()));
        delta.push(stored, -1);
        delta.push(row, 1);
        Ok(())
    }

    fn duplicate(&self, key_values: &[Value]) -> Error {
        ConstraintError::DuplicateKey { table: self.schema.name.clone(), key: self.key_text(key_values) }.into()
    }

    fn key_text(&self, key_values: &[Value]) -> String {
        let Rows::Keyed { key, .. } = &self.rows else {
            return Row::new(key_values.to_vec()).to_string();
        };
        let names: Vec<&str> = key.iter().map(|&c| self.schema.columns[c].name.as_str()).collect();
        if names.len() == 1 {
            format!("{} = {}", names[0], key_values[0])
        } else {
            format!("({}) = {}", names.join(", "), Row::new(key_values.to_vec()))
        }
    }

    /// The stored row `data` designates: by key where the table has one (checking any
    /// other values given against the stored row if `check_values`), else the equal row.
    fn locate(&self, data: &RowData, operation: &'static str, check_values: bool) -> Result<Row> {
        let given = self.given_values(data)?;
        match &self.rows {
            Rows::Keyed { key, .. } => {
                for &c in key {
                    if given.get(c).is_none() {
                        return Err(SchemaError::MissingColumn {
                            table: self.schema.name.clone(),
                            column: self.schema.columns[c].name.clone(),
                            operation,
                        }
                        .into());
                    }
                }
                let value = |c: usize| given.get(c).expect("key columns are given");
                let hash = self.key_hash(key.iter().map(|&c| value(c)));
                let Some(stored) = self.find_hashed(hash, value) else {
                    let key_values: Vec<Value> = key.iter().map(|&c| value(c).clone()).collect();
                    return Err(ConstraintError::RowNotFound {
                        table: self.schema.name.clone(),
                        operation,
                        row: format!("with {}", self.key_text(&key_values)),
                    }
                    .into());
                };
                if check_values && (0..stored.len()).any(|c| given.get(c).is_some_and(|g| *g != *stored.get(c))) {
                    return Err(ConstraintError::RowMismatch {
                        table: self.schema.name.clone(),
                        operation,
                        stored: stored.to_string(),
                        given: given.shown(),
                    }
                    .into());
                }
                Ok(stored.clone())
            }
            Rows::Bag { rows, .. } => {
                let Given::Full(values) = given else {
                    let missing = (0..self.schema.columns.len()).find(|&c| given.get(c).is_none()).unwrap_or(0);
                    return Err(SchemaError::MissingColumn {
                        table: self.schema.name.clone(),
                        column: self.schema.columns[missing].name.clone(),
                        operation,
                    }
                    .into());
                };
                let row = Row::new(values.into_owned());
                match rows.get_key_value(&row) {
                    Some((stored, _)) => Ok(stored.clone()),
                    None => Err(ConstraintError::RowNotFound {
                        table: self.schema.name.clone(),
                        operation,
                        row: row.to_string(),
                    }
                    .into()),
                }
            }
        }
    }

    /// Every column's value: positional rows must be complete; a named row's missing
    /// columns come from `base` (an update's old row) or are NULL.
    fn full_row(&mut self, data: RowData, base: Option<&Row>) -> Result<Row> {
        let mut interners = std::mem::take(&mut self.interners);
        let row = self.full_row_interned(data, base, &mut interners);
        self.interners = interners;
        row
    }

    /// [`Table::full_row`] with the columns' texts interned by `interners`.
    fn full_row_interned(
        &self,
        data: RowData,
        base: Option<&Row>,
        interners: &mut [Option<TextInterner>],
    ) -> Result<Row> {
        let mut values = self.full_values(data, base)?;
        for (v, interner) in values.iter_mut().zip(interners.iter_mut()) {
            if let Some(i) = interner
                && !i.intern(v)
            {
                *interner = None;
            }
        }
        let row = Row::new(values);
        // Hashed now, while it is in cache: nearly every consumer of a table's rows (a
        // view's rows, an arrangement's larger keys) hashes them later, when reaching
        // the row (and its text) costs a cache miss each.
        row.hash_value();
        Ok(row)
    }

    fn full_values(&self, data: RowData, base: Option<&Row>) -> Result<Vec<Value>> {
        let n = self.schema.columns.len();
        let values = match data {
            RowData::Values(mut values) => {
                if values.len() != n {
                    return Err(
                        SchemaError::Arity { table: self.schema.name.clone(), expected: n, got: values.len() }.into()
                    );
                }
                for (v, col) in values.iter_mut().zip(&self.schema.columns) {
                    if !fits_exactly(v, col.data_type) {
                        *v = self.coerce(std::mem::take(v), col)?;
                    }
                }
                values
            }
            RowData::Named(pairs) => {
                let mut values: Vec<Option<Value>> = match base {
                    Some(b) => b.iter().map(|v| Some(v.into_owned())).collect(),
                    None => vec![None; n],
                };
                let mut named = vec![false; n];
                for (name, v) in pairs {
                    let c = self.column_index(&name)?;
                    self.named_once(&mut named, c)?;
                    values[c] = Some(self.coerce(v, &self.schema.columns[c])?);
                }
                values.into_iter().map(Option::unwrap_or_default).collect()
            }
        };
        for (v, col) in values.iter().zip(&self.schema.columns) {
            if v.is_null() && !col.nullable {
                return Err(
                    ConstraintError::NotNull { table: self.schema.name.clone(), column: col.name.clone() }.into()
                );
            }
        }
        Ok(values)
    }

    /// The values `data` gives, by column, checked and converted (borrowed when they
    /// already have their column's representation).
    fn given_values<'d>(&self, data: &'d RowData) -> Result<Given<'d>> {
        let n = self.schema.columns.len();
        match data {
            RowData::Values(values) => {
                if values.len() != n {
                    return Err(
                        SchemaError::Arity { table: self.schema.name.clone(), expected: n, got: values.len() }.into()
                    );
                }
                if values.iter().zip(&self.schema.columns).all(|(v, c)| fits_exactly(v, c.data_type)) {
                    return Ok(Given::Full(std::borrow::Cow::Borrowed(values)));
                }
                let converted = values
                    .iter()
                    .zip(&self.schema.columns)
                    .map(|(v, col)| self.coerce(v.clone(), col))
                    .collect::<Result<Vec<_>>>()?;
                Ok(Given::Full(std::borrow::Cow::Owned(converted)))
            }
            RowData::Named(pairs) => {
                let mut out = vec![None; n];
                let mut named = vec![false; n];
                for (name, v) in pairs {
                    let c = self.column_index(name)?;
                    self.named_once(&mut named, c)?;
                    out[c] = Some(self.coerce(v.clone(), &self.schema.columns[c])?);
                }
                if out.iter().all(Option::is_some) {
                    return Ok(Given::Full(std::borrow::Cow::Owned(
                        out.into_iter().map(Option::unwrap_or_default).collect(),
                    )));
                }
                Ok(Given::Partial(out))
            }
        }
    }

    /// Notes that a named row gives column `c`; an error if it already did (`Id` and
    /// `id` are one column: a row naming both is ambiguous, not last-wins).
    fn named_once(&self, named: &mut [bool], c: usize) -> Result<()> {
        if std::mem::replace(&mut named[c], true) {
            return Err(SchemaError::DuplicateColumn {
                table: self.schema.name.clone(),
                column: self.schema.columns[c].name.clone(),
            }
            .into());
        }
        Ok(())
    }

    fn column_index(&self, name: &str) -> Result<usize> {
        self.schema.column_index(name).ok_or_else(|| {
            SchemaError::UnknownColumn {
                table: self.schema.name.clone(),
                column: crate::error::shown(name).into_owned(),
                suggestion: nearest_name(name, self.schema.columns.iter().map(|c| c.name.as_str())),
            }
            .into()
        })
    }

    /// `v` as a value of `col`'s type, or the error saying why it does not fit.
    fn coerce(&self, v: Value, col: &Column) -> Result<Value> {
        coerce(v, col.data_type).map_err(|detail| {
            SchemaError::Type {
                table: self.schema.name.clone(),
                column: col.name.clone(),
                expected: col.data_type.to_string(),
                detail,
            }
            .into()
        })
    }
}

/// The hash of `row`'s key columns (the same as [`Table::key_hash`] of their values).
fn hash_key<R: Columns + ?Sized>(hasher: &DefaultHashBuilder, key: &[usize], row: &R) -> u64 {
    let mut h = hasher.build_hasher();
    key.iter().for_each(|&c| row.column(c).hash(&mut h));
    h.finish()
}

/// Values a caller gave for a row: all of them, or some by name.
enum Given<'d> {
    Full(std::borrow::Cow<'d, [Value]>),
    Partial(Vec<Option<Value>>),
}

impl Given<'_> {
    fn get(&self, c: usize) -> Option<&Value> {
        match self {
            Given::Full(v) => v.get(c),
            Given::Partial(v) => v.get(c).and_then(Option::as_ref),
        }
    }

    fn shown(&self) -> String {
        match self {
            Given::Full(v) => Row::new(v.to_vec()).to_string(),
            Given::Partial(v) => v.iter().map(|g| g.clone().unwrap_or(Value::Null)).collect::<Row>().to_string(),
        }
    }
}

/// Whether `v` already has the representation `t` stores (the fast path of inserts).
fn fits_exactly(v: &Value, t: DataType) -> bool {
    matches!(
        (v, t),
        (Value::Null, _)
            | (Value::Int(_), DataType::BigInt)
            | (Value::Float(_), DataType::Double)
            | (Value::Text(_), DataType::Text)
            | (Value::Bool(_), DataType::Bool)
            | (Value::Date(_), DataType::Date)
            | (Value::Timestamp(_), DataType::Timestamp)
            | (Value::Int(_), DataType::Number)
            | (_, DataType::Any)
    )
}

/// `v` converted to type `t` where no information is lost, else a description of the
/// mismatch. NULL fits every type (NOT NULL is checked separately).
pub fn coerce(v: Value, t: DataType) -> std::result::Result<Value, String> {
    let mismatch = |v: &Value| format!("got {} {v}", v.kind_name());
    match (&v, t) {
        (Value::Null, _) => Ok(v),
        (Value::Bool(_), DataType::Bool) => Ok(v),
        (Value::Int(i), DataType::Bool) if *i == 0 || *i == 1 => Ok(Value::Bool(*i == 1)),
        (Value::Int(i), DataType::SmallInt) => {
            if i16::try_from(*i).is_ok() {
                Ok(v)
            } else {
                Err(format!("{i} is out of range for SMALLINT"))
            }
        }
        (Value::Int(i), DataType::Int) => {
            if i32::try_from(*i).is_ok() {
                Ok(v)
            } else {
                Err(format!("{i} is out of range for INTEGER"))
            }
        }
        (Value::Int(_), DataType::BigInt) => Ok(v),
        (Value::Int(i), DataType::Double) => Ok(Value::Float(*i as f64)),
        (Value::Float(_), DataType::Double) => Ok(v),
        (Value::Decimal(d), DataType::Double) => Ok(Value::Float(d.to_f64())),
        (Value::Int(_) | Value::Float(_) | Value::Decimal(_), DataType::Decimal { precision, scale }) => {
            let d = match &v {
                Value::Int(i) => Decimal::from_i64(*i).rescale(scale),
                Value::Float(f) => Decimal::from_f64(*f, scale),
                Value::Decimal(d) => d.rescale(scale),
                _ => unreachable!(),
            };
            match d {
                Some(d) if pow10(precision).is_some_and(|limit| d.mantissa().abs() < limit) => Ok(Value::from(d)),
                _ => Err(format!("{v} does not fit in {t}")),
            }
        }
        (Value::Text(_), DataType::Text) => Ok(v),
        (Value::Date(_), DataType::Date) | (Value::Timestamp(_), DataType::Timestamp) => Ok(v),
        (Value::Date(d), DataType::Timestamp) => Ok(Value::Timestamp(*d as i64 * 86_400_000_000)),
        (Value::Text(s), DataType::Date) => datetime::parse_date(s)
            .map(Value::Date)
            .ok_or_else(|| format!("'{}' is not a date (YYYY-MM-DD)", s.as_str())),
        (Value::Text(s), DataType::Timestamp) => datetime::parse_timestamp(s)
            .map(Value::Timestamp)
            .ok_or_else(|| format!("'{}' is not a timestamp (YYYY-MM-DD HH:MM:SS)", s.as_str())),
        // SQLite's NUMERIC affinity: a whole double is stored as the integer it is.
        (_, DataType::Number) => crate::expr::cast::numeric_column_value(&v)
            .ok_or_else(|| format!("got {} {v}, which is not a number", v.kind_name())),
        (_, DataType::Any) => Ok(v),
        _ => Err(mismatch(&v)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::row;

    fn orders() -> Table {
        let schema = TableSchema::new(
            "orders",
            vec![
                Column::new("id", DataType::BigInt),
                Column::new("amount", DataType::Double),
                Column::new("note", DataType::Text),
            ],
        )
        .with_primary_key(&["id"]);
        Table::new(TableId(0), schema)
    }

    /// The rows an undo log takes out again (`delta`: the transaction's delta it refers
    /// to), sorted.
    fn inserted(undo: &[Undo], delta: &ZSet) -> Vec<Row> {
        let mut rows: Vec<Row> = undo
            .iter()
            .flat_map(|u| match u {
                Undo::Inserted(_, row) => vec![row.clone()],
                Undo::InsertedRun(_, at) => delta.as_slice()[at.clone()].iter().map(|(r, _)| r.clone()).collect(),
                Undo::Removed(..) => vec![],
            })
            .collect();
        rows.sort();
        rows
    }

    /// Runs of inserts given to `insert_many` end as the same inserts one by one do:
    /// the same rows stored, the same delta in the same order, the same first error.
    #[test]
    fn many_inserts_equal_inserts_one_by_one() {
        let mut next = crate::operator::xorshift(0x9E37_79B9_7F4A_7C15);
        for round in 0..200 {
            let (mut one, mut many) = (orders(), orders());
            let (mut undo_one, mut undo_many) = (Vec::new(), Vec::new());
            let (mut delta_one, mut delta_many) = (ZSet::new(), ZSet::new());
            // Rows held before the run, so that a key of the run may be held already.
            for id in 0..20 {
                let row = RowData::Values(vec![(id * 7).into(), 1.into(), Value::Null]);
                one.insert(row.clone(), &mut undo_one, &mut delta_one).unwrap();
                many.insert(row, &mut undo_many, &mut delta_many).unwrap();
            }
            let len = 1 + next(300) as usize;
            let run: Vec<RowData> = (0..len)
                .map(|i| {
                    // Mostly new keys; in some rounds a held or repeated key, or a
                    // value that does not fit its column.
                    let id = match next(if round % 3 == 0 { 400 } else { 1_000_000 }) {
                        0 => next(20) as i64 * 7,
                        1 => 1_000_000,
                        _ => 1_000 + i as i64,
                    };
                    let amount: Value = if next(2_000) == 0 { "x".into() } else { (i as i64).into() };
                    RowData::Values(vec![id.into(), amount, "n".into()])
                })
                .collect();
            if round % 2 == 1 {
                // A size hint, right or wrong, changes nothing but the room.
                many.reserve(next(2 * len as u64) as usize);
            }
            let mut first_error = None;
            for row in run.clone() {
                if let Err(e) = one.insert(row, &mut undo_one, &mut delta_one) {
                    first_error = Some(e.to_string());
                    break;
                }
            }
            let got = many.insert_many(run, &mut undo_many, &mut delta_many).err().map(|e| e.to_string());
            assert_eq!(got, first_error, "round {round}");
            if got.is_none() {
                assert_eq!(delta_many, delta_one, "round {round}: the delta, in order");
                assert_eq!(inserted(&undo_many, &delta_many), inserted(&undo_one, &delta_one), "round {round}");
                assert_eq!(many.contents().consolidated(), one.contents().consolidated());
            }
        }
    }

    /// A long run built in chunks on worker threads (see `full_rows`) stores the same
    /// rows, makes the same delta in the same order, and fails with the same first
    /// error as the run inserted one by one; texts new to several chunks are interned
    /// once they meet in the table's interner.
    #[test]
    fn a_run_built_on_worker_threads_equals_inserts_one_by_one() {
        let pool = rayon_core::ThreadPoolBuilder::new().num_threads(3).build().expect("pool");
        let mut next = crate::operator::xorshift(0x2545_F491_4F6C_DD1D);
        for round in 0..12 {
            let (mut one, mut many) = (orders(), orders());
            let (mut undo_one, mut undo_many) = (Vec::new(), Vec::new());
            let (mut delta_one, mut delta_many) = (ZSet::new(), ZSet::new());
            let len = 5_000 + next(5_000) as usize;
            // A key held before the run, which some rounds' run repeats.
            let held = len as i64 + 5;
            for t in [&mut one, &mut many] {
                t.insert(RowData::Values(vec![held.into(), 1.into(), "h".into()]), &mut Vec::new(), &mut ZSet::new())
                    .expect("a first row");
            }
            // Round 1 on: a duplicate key (of a row of the run, or of the row held) or
            // a bad value somewhere in a later chunk.
            let bad_at = (round % 3 != 0).then(|| len / 2 + next(len as u64 / 2) as usize);
            let duplicate = if round % 2 == 0 { 7 } else { held };
            let run: Vec<RowData> = (0..len)
                .map(|i| {
                    let id = if Some(i) == bad_at && round % 3 == 1 { duplicate } else { i as i64 };
                    let amount: Value = if Some(i) == bad_at && round % 3 == 2 { "x".into() } else { 1.into() };
                    // Few distinct texts in most rounds; past the interning limit in some.
                    let note = format!("n{}", next(if round % 4 == 3 { 5_000 } else { 30 }));
                    RowData::Values(vec![id.into(), amount, note.into()])
                })
                .collect();
            let mut first_error = None;
            for row in run.clone() {
                if let Err(e) = one.insert(row, &mut undo_one, &mut delta_one) {
                    first_error = Some(e.to_string());
                    break;
                }
            }
            let got = pool.install(|| many.insert_many(run, &mut undo_many, &mut delta_many));
            let got = got.err().map(|e| e.to_string());
            assert_eq!(got, first_error, "round {round}");
            assert_eq!(got.is_some(), bad_at.is_some(), "round {round}");
            // A failed run leaves what the inserts before the failure left (the
            // transaction's rollback then takes those out too).
            assert_eq!(delta_many, delta_one, "round {round}: the delta, in order");
            assert_eq!(many.contents().consolidated(), one.contents().consolidated(), "round {round}");
            assert_eq!(many.len(), one.len(), "round {round}");
            if got.is_none() {
                let (texts, full) = (many.interners[2].as_ref().map(|i| i.is_full()), round % 4 == 3);
                assert_eq!(texts, (!full).then_some(false), "round {round}: interned, and not full");
            }
        }
    }

    /// Growing moves every row to a larger table (see `keyed::reserve`): through many
    /// growths, by single inserts and by runs, every row is still found by its key,
    /// and a key already held is still refused.
    #[test]
    fn rows_are_found_by_key_through_every_growth() {
        let mut t = orders();
        let (mut undo, mut delta) = (Vec::new(), ZSet::new());
        let row = |id: i64| RowData::Values(vec![id.into(), 1.into(), "n".into()]);
        let mut id = 0;
        for round in 0..12 {
            for _ in 0..(1 << round) {
                t.insert(row(id), &mut undo, &mut delta).unwrap();
                id += 1;
            }
            let run: Vec<RowData> = (id..id + 100 * (round + 1)).map(row).collect();
            id += run.len() as i64;
            t.insert_many(run, &mut undo, &mut delta).unwrap();
        }
        assert_eq!(t.len() as i64, id);
        for k in [0, 1, id / 3, id / 2, id - 1] {
            let dup = t.insert(row(k), &mut undo, &mut delta).unwrap_err();
            assert_eq!(dup.to_string(), format!("duplicate primary key in orders: id = {k} already exists"));
        }
        for k in 0..id {
            t.delete(vec![("id", Value::Int(k))].into(), &mut undo, &mut delta).unwrap();
        }
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn borrowed_rows_are_read_without_counting_them() {
        let mut t = orders();
        let (mut undo, mut delta) = (Vec::new(), ZSet::new());
        let run = (0..100).map(|i| RowData::Values(vec![i.into(), 1.into(), "n".into()])).collect();
        t.insert_many(run, &mut undo, &mut delta).unwrap();
        drop((undo, delta));
        let counts = |t: &Table| t.contents().iter().map(|(r, _)| r.handles() - 1).collect::<Vec<_>>();
        assert!(counts(&t).iter().all(|&c| c == 1), "the table's own handle only");
        let taken: Vec<Row> = {
            let b = t.borrowed();
            assert_eq!(b.len(), 100);
            assert!(b.iter().all(|(r, w)| r.handles() == 1 && *w == 1), "nothing counted");
            assert_eq!(ZSet::clone(&b).consolidated(), t.contents().consolidated());
            b.iter().take(10).map(|(r, _)| r.clone()).collect()
        };
        // The set is gone, the rows taken from it are counted, the table's are intact.
        assert!(taken.iter().all(|r| r.handles() == 2));
        drop(taken);
        assert!(counts(&t).iter().all(|&c| c == 1));

        // Some of them picked (a filter's output over the table) are borrowed alike.
        let taken: Vec<Row> = {
            let all = t.borrowed();
            let at: Vec<u32> = (0..all.len() as u32).filter(|i| i % 3 == 0).collect();
            let picked = all.pick(&at);
            assert_eq!(picked.len(), at.len());
            assert!(picked.iter().zip(&at).all(|((r, w), &i)| r.ptr_eq(&all.as_slice()[i as usize].0) && *w == 1));
            assert!(picked.iter().all(|(r, _)| r.handles() == 1), "nothing counted");
            drop(all);
            picked.iter().map(|(r, _)| r.clone()).collect()
        };
        assert!(taken.iter().all(|r| r.handles() == 2));
        drop(taken);
        assert!(counts(&t).iter().all(|&c| c == 1));
    }

    #[test]
    fn keyed_changes_and_their_errors() {
        let mut t = orders();
        let (mut undo, mut delta) = (Vec::new(), ZSet::new());
        t.insert(RowData::Values(vec![1.into(), 10.into(), "a".into()]), &mut undo, &mut delta).unwrap();
        assert_eq!(delta, crate::zset! { row![1, 10.0, "a"] => 1 });
        let dup = t.insert(RowData::Values(vec![1.into(), 1.into(), "b".into()]), &mut undo, &mut delta);
        assert_eq!(dup.unwrap_err().to_string(), "duplicate primary key in orders: id = 1 already exists");
        let bad = t.insert(RowData::Values(vec![2.into(), "x".into(), Value::Null]), &mut undo, &mut delta);
        assert_eq!(bad.unwrap_err().to_string(), "column orders.amount is DOUBLE: got TEXT 'x'");
        let arity = t.insert(RowData::Values(vec![2.into()]), &mut undo, &mut delta);
        assert_eq!(arity.unwrap_err().to_string(), "table orders has 3 columns but the row has 1 values");
        let unknown = t.insert(vec![("id", Value::Int(2)), ("amout", Value::Int(2))].into(), &mut undo, &mut delta);
        assert_eq!(unknown.unwrap_err().to_string(), "table orders has no column amout (did you mean amount?)");
        // Update by key with a partial named row keeps the other columns.
        delta.clear();
        t.update(None, vec![("id", Value::Int(1)), ("amount", Value::Float(5.5))].into(), &mut undo, &mut delta)
            .unwrap();
        assert_eq!(delta.clone().consolidated(), crate::zset! { row![1, 10.0, "a"] => -1, row![1, 5.5, "a"] => 1 });
        let missing = t.delete(vec![("id", Value::Int(9))].into(), &mut undo, &mut delta);
        assert_eq!(missing.unwrap_err().to_string(), "delete on orders: no row with id = 9");
        let mismatch = t.delete(vec![("id", Value::Int(1)), ("note", Value::text("zz"))].into(), &mut undo, &mut delta);
        assert!(mismatch.unwrap_err().to_string().contains("differs from the old row given"));
        t.delete(vec![("id", Value::Int(1))].into(), &mut undo, &mut delta).unwrap();
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn bags_hold_duplicates() {
        let schema = TableSchema::new("t", vec![Column::new("x", DataType::Int)]);
        let mut t = Table::new(TableId(1), schema);
        let (mut undo, mut delta) = (Vec::new(), ZSet::new());
        for _ in 0..2 {
            t.insert(RowData::Values(vec![7.into()]), &mut undo, &mut delta).unwrap();
        }
        assert_eq!(t.len(), 2);
        t.delete(RowData::Values(vec![7.into()]), &mut undo, &mut delta).unwrap();
        assert_eq!(t.contents(), crate::zset! { row![7] => 1 });
        let e = t.update(None, RowData::Values(vec![8.into()]), &mut undo, &mut delta).unwrap_err();
        assert_eq!(e.to_string(), "table t has no primary key: update needs the whole old row");
        let e = t.insert(RowData::Values(vec![Value::Int(1 << 40)]), &mut undo, &mut delta).unwrap_err();
        assert!(e.to_string().contains("out of range for INTEGER"));
    }
}
