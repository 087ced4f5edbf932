//! From pgoutput messages to engine transactions.
//!
//! A source transaction's changes are collected from its Begin to its Commit and
//! handed over whole at the Commit, with the LSN after it ([`Step::Committed`]); the
//! source's driver applies them as one engine transaction (see [`crate::feed`]), so
//! readers never see half of one. The decoder writes nothing itself: it only reads
//! the engine's rows of a table a TRUNCATE empties.
//! Rows come as text tuples in the relation's column order; they are matched to the
//! engine table's columns by name.
//!
//! Replica identity: with DEFAULT (or INDEX), an update carries no old row unless its
//! key changed, and then only the key; a delete carries only the key. The engine's copy
//! of the row supplies the rest: an update is applied by key with the columns the
//! server sent (an unchanged TOASTed value, marked `u`, is not sent and keeps the
//! stored value), a delete by key. A key-only old tuple's other columns are marked
//! null but are not NULL, so they are never compared.

use std::collections::HashMap;

use ciuf_engine::{Change, DataType, RowData, TableId, Value};

use super::error::PgError;
use super::pgoutput::{Datum, Message, OldTuple, Relation, Tuple};
use super::types::{engine_type, parse_text};

/// A table the source follows.
#[derive(Debug, Clone)]
pub struct Followed {
    /// The engine table.
    pub id: TableId,
    /// Its name.
    pub name: String,
    /// Its columns' names and types, in engine order.
    pub columns: Vec<(String, DataType)>,
    /// Whether it has a key (else updates and deletes need the whole old row).
    pub keyed: bool,
    /// Changes of transactions committed before this LSN are in the table's snapshot
    /// already and are skipped.
    pub skip_before: u64,
}

/// How one relation's tuples map to an engine table.
#[derive(Debug)]
struct Mapping {
    table: TableId,
    name: String,
    /// For each tuple position: the engine column and its type.
    columns: Vec<(String, DataType)>,
}

/// What a message meant.
#[derive(Debug, PartialEq)]
pub enum Step {
    /// Nothing to do yet.
    Continue,
    /// A transaction committed: its changes for the engine (none when it touched no
    /// followed table), to apply as one transaction, and the LSN after its commit, up
    /// to which the slot may be acknowledged once they are applied.
    Committed { changes: Vec<Change>, lsn: u64 },
    /// A followed table can no longer be followed (its columns changed under the
    /// views): its views report why; the other tables go on.
    Failed { table: TableId, why: String },
}

/// The decoding state of one replication stream.
#[derive(Debug, Default)]
pub struct Follower {
    /// Followed tables by relation oid.
    tables: HashMap<u32, Followed>,
    relations: HashMap<u32, Mapping>,
    /// The open transaction: its commit LSN and its changes so far.
    txn: Option<(u64, Vec<Change>)>,
}

impl Follower {
    /// Follows `table` (relation `oid`) from now on.
    pub fn follow(&mut self, oid: u32, table: Followed) {
        self.relations.remove(&oid);
        self.tables.insert(oid, table);
    }

    /// Whether a transaction is being received.
    pub fn in_transaction(&self) -> bool {
        self.txn.is_some()
    }

    /// Forgets a half-received transaction (the connection dropped; the server sends it
    /// again from its Begin).
    pub fn reset(&mut self) {
        self.txn = None;
    }

    /// Handles one message. A TRUNCATE of a followed table becomes deletions of the
    /// rows `held` says the engine has.
    pub fn handle(
        &mut self,
        message: Message,
        held: &mut dyn FnMut(TableId) -> Result<Vec<Change>, PgError>,
    ) -> Result<Step, PgError> {
        match message {
            Message::Begin { final_lsn, .. } => {
                self.txn = Some((final_lsn, Vec::new()));
            }
            Message::Commit { end_lsn, .. } => {
                let (_, changes) = self.txn.take().ok_or_else(|| PgError::Protocol("Commit without Begin".into()))?;
                return Ok(Step::Committed { changes, lsn: end_lsn });
            }
            Message::Relation(r) => {
                if let Err(e) = self.relation(&r) {
                    // The table changed under the views: they report it; the rest goes on.
                    self.relations.remove(&r.oid);
                    if let Some(t) = self.tables.remove(&r.oid) {
                        return Ok(Step::Failed { table: t.id, why: e.to_string() });
                    }
                }
            }
            Message::Insert { relation, new } => {
                if let Some((m, _)) = self.target(relation)? {
                    let row = m.row(&new, false)?;
                    let table = m.table;
                    self.push(Change::insert(table, row))?;
                }
            }
            Message::Update { relation, old, new } => {
                if let Some((m, keyed)) = self.target(relation)? {
                    let table = m.table;
                    let new_row = m.row(&new, true)?;
                    let change = match old {
                        Some(OldTuple::Full(old)) => Change::update(table, m.row(&old, true)?, new_row),
                        Some(OldTuple::Key(key)) => Change::update(table, m.key_row(&key)?, new_row),
                        None if keyed => Change::update_by_key(table, new_row),
                        None => {
                            return Err(PgError::Schema(format!(
                                "an update of {} came without its old row: set REPLICA IDENTITY FULL on it",
                                m.name()
                            )));
                        }
                    };
                    self.push(change)?;
                }
            }
            Message::Delete { relation, old } => {
                if let Some((m, _)) = self.target(relation)? {
                    let table = m.table;
                    let row = match old {
                        OldTuple::Full(old) => m.row(&old, true)?,
                        OldTuple::Key(key) => m.key_row(&key)?,
                    };
                    self.push(Change::delete(table, row))?;
                }
            }
            Message::Truncate { relations, .. } => {
                for oid in relations {
                    if let Some((m, _)) = self.target(oid)? {
                        let deletes = held(m.table)?;
                        for d in deletes {
                            self.push(d)?;
                        }
                    }
                }
            }
            Message::Origin { .. } | Message::Type { .. } | Message::LogicalMessage { .. } => {}
        }
        Ok(Step::Continue)
    }

    fn push(&mut self, change: Change) -> Result<(), PgError> {
        match &mut self.txn {
            Some((_, changes)) => {
                changes.push(change);
                Ok(())
            }
            None => Err(PgError::Protocol("a change outside a transaction".into())),
        }
    }

    /// The mapping of a followed relation whose change is not in its snapshot already,
    /// and whether its table has a key.
    fn target(&self, oid: u32) -> Result<Option<(&Mapping, bool)>, PgError> {
        let Some(table) = self.tables.get(&oid) else { return Ok(None) };
        let final_lsn = self.txn.as_ref().map_or(0, |(lsn, _)| *lsn);
        if final_lsn < table.skip_before {
            return Ok(None);
        }
        let m = self
            .relations
            .get(&oid)
            .ok_or_else(|| PgError::Protocol(format!("a change of {} before its Relation message", table.name)))?;
        Ok(Some((m, table.keyed)))
    }

    /// Stops following relation `oid` (dropped at the source); returns its table.
    pub fn unfollow(&mut self, oid: u32) -> Option<TableId> {
        self.relations.remove(&oid);
        self.tables.remove(&oid).map(|t| t.id)
    }

    /// The relation oids followed.
    pub fn oids(&self) -> Vec<u32> {
        self.tables.keys().copied().collect()
    }

    fn relation(&mut self, r: &Relation) -> Result<(), PgError> {
        let Some(table) = self.tables.get(&r.oid) else { return Ok(()) };
        let mut columns = Vec::with_capacity(r.columns.len());
        if r.columns.len() < table.columns.len() {
            let missing: Vec<&str> = table
                .columns
                .iter()
                .filter(|(n, _)| !r.columns.iter().any(|c| c.name == *n))
                .map(|(n, _)| n.as_str())
                .collect();
            return Err(PgError::Schema(format!(
                "{} lost column(s) {} (the table was altered under a running view)",
                table.name,
                missing.join(", ")
            )));
        }
        for c in &r.columns {
            let Some((name, t)) = table.columns.iter().find(|(n, _)| *n == c.name) else {
                return Err(PgError::Schema(format!(
                    "{}.{} appeared after the view started (the table was altered under a running view)",
                    table.name, c.name
                )));
            };
            if engine_type(c.type_oid, c.type_modifier) != Some(*t) {
                return Err(PgError::Schema(format!(
                    "the type of {}.{} changed under a running view (it was {t})",
                    table.name, c.name
                )));
            }
            columns.push((name.clone(), *t));
        }
        self.relations.insert(r.oid, Mapping { table: table.id, name: table.name.clone(), columns });
        Ok(())
    }
}

impl Mapping {
    fn name(&self) -> &str {
        &self.name
    }

    /// A tuple as a row: positional when complete, by name when some values are
    /// unchanged TOAST (`partial_ok`; those columns keep their stored values).
    fn row(&self, tuple: &Tuple, partial_ok: bool) -> Result<RowData, PgError> {
        if tuple.len() != self.columns.len() {
            return Err(PgError::Protocol(format!(
                "a tuple of {} values for {} columns",
                tuple.len(),
                self.columns.len()
            )));
        }
        if tuple.iter().any(|d| matches!(d, Datum::UnchangedToast)) {
            if !partial_ok {
                return Err(PgError::Protocol("an unchanged TOAST value in an inserted row".into()));
            }
            let mut named = Vec::with_capacity(tuple.len());
            for (d, (name, t)) in tuple.iter().zip(&self.columns) {
                if !matches!(d, Datum::UnchangedToast) {
                    named.push((name.clone(), value(d, *t, name)?));
                }
            }
            return Ok(RowData::Named(named));
        }
        let values =
            tuple.iter().zip(&self.columns).map(|(d, (name, t))| value(d, *t, name)).collect::<Result<_, _>>()?;
        Ok(RowData::Values(values))
    }

    /// A key-only tuple as the key columns by name (the others are not NULL, only
    /// absent).
    fn key_row(&self, tuple: &Tuple) -> Result<RowData, PgError> {
        let mut named = Vec::new();
        for (d, (name, t)) in tuple.iter().zip(&self.columns) {
            if let Datum::Text(_) | Datum::Binary(_) = d {
                named.push((name.clone(), value(d, *t, name)?));
            }
        }
        Ok(RowData::Named(named))
    }
}

fn value(d: &Datum, t: DataType, column: &str) -> Result<Value, PgError> {
    match d {
        Datum::Null => Ok(Value::Null),
        Datum::Text(bytes) => {
            let text =
                std::str::from_utf8(bytes).map_err(|_| PgError::Protocol(format!("column {column}: not UTF-8")))?;
            parse_text(text, t).map_err(|e| PgError::Schema(format!("column {column}: {e}")))
        }
        Datum::Binary(_) => Err(PgError::Protocol(format!("column {column}: binary values were not asked for"))),
        Datum::UnchangedToast => Err(PgError::Protocol(format!("column {column}: an unchanged TOAST value here"))),
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::super::pgoutput::RelationColumn;
    use super::*;

    fn follower() -> Follower {
        let mut f = Follower::default();
        f.follow(
            7,
            Followed {
                id: TableId(0),
                name: "orders".into(),
                columns: vec![("id".into(), DataType::BigInt), ("note".into(), DataType::Text)],
                keyed: true,
                skip_before: 100,
            },
        );
        f.relation(&Relation {
            oid: 7,
            namespace: "public".into(),
            name: "orders".into(),
            replica_identity: b'd',
            columns: vec![
                RelationColumn { key: true, name: "id".into(), type_oid: 20, type_modifier: -1 },
                RelationColumn { key: false, name: "note".into(), type_oid: 25, type_modifier: -1 },
            ],
        })
        .unwrap();
        f
    }

    fn t(s: &str) -> Datum {
        Datum::Text(Bytes::copy_from_slice(s.as_bytes()))
    }

    #[test]
    fn a_transaction_is_handed_over_whole_at_its_commit_and_old_ones_are_skipped() {
        let mut f = follower();
        let mut none = |_| Ok(Vec::new());
        let mut handle = |m: Message| f.handle(m, &mut none).unwrap();
        // Committed before the table's snapshot: skipped, but acknowledged.
        assert_eq!(handle(Message::Begin { final_lsn: 50, timestamp: 0, xid: 1 }), Step::Continue);
        assert_eq!(handle(Message::Insert { relation: 7, new: vec![t("1"), t("a")] }), Step::Continue);
        let step = handle(Message::Commit { commit_lsn: 50, end_lsn: 58, timestamp: 0 });
        assert_eq!(step, Step::Committed { changes: Vec::new(), lsn: 58 });
        handle(Message::Begin { final_lsn: 150, timestamp: 0, xid: 2 });
        handle(Message::Insert { relation: 7, new: vec![t("2"), t("b")] });
        handle(Message::Update { relation: 7, old: None, new: vec![t("2"), Datum::UnchangedToast] });
        handle(Message::Delete { relation: 7, old: OldTuple::Key(vec![t("2"), Datum::Null]) });
        assert_eq!(handle(Message::Insert { relation: 99, new: vec![t("x")] }), Step::Continue); // not followed
        let step = handle(Message::Commit { commit_lsn: 150, end_lsn: 158, timestamp: 0 });
        assert_eq!(
            step,
            Step::Committed {
                changes: vec![
                    Change::insert(TableId(0), vec![Value::Int(2), Value::text("b")]),
                    Change::update_by_key(TableId(0), RowData::Named(vec![("id".into(), Value::Int(2))])),
                    Change::delete(TableId(0), RowData::Named(vec![("id".into(), Value::Int(2))])),
                ],
                lsn: 158
            }
        );
    }

    #[test]
    fn an_altered_table_fails_alone() {
        let mut f = follower();
        let mut none = |_| Ok(Vec::new());
        let relation = Message::Relation(Relation {
            oid: 7,
            namespace: "public".into(),
            name: "orders".into(),
            replica_identity: b'd',
            columns: vec![RelationColumn { key: true, name: "id".into(), type_oid: 25, type_modifier: -1 }],
        });
        let Step::Failed { table, why } = f.handle(relation, &mut none).unwrap() else { panic!("the table fails") };
        assert_eq!(table, TableId(0));
        assert!(why.contains("lost column(s) note"), "{why}");
        // Its later changes are ignored, not errors.
        f.handle(Message::Begin { final_lsn: 500, timestamp: 0, xid: 3 }, &mut none).unwrap();
        f.handle(Message::Insert { relation: 7, new: vec![t("9")] }, &mut none).unwrap();
        let step = f.handle(Message::Commit { commit_lsn: 500, end_lsn: 508, timestamp: 0 }, &mut none).unwrap();
        assert_eq!(step, Step::Committed { changes: Vec::new(), lsn: 508 });
    }
}
