//! SQL text of several statements, run all or nothing.
//!
//! `execute("INSERT INTO n VALUES (5); DROP TABLE ev")` must not leave the INSERT
//! behind when the DROP is refused. Each statement that ran records how to take it
//! back — a created table or view dropped, inserted rows deleted, a dropped table or
//! view made again — and the first statement that fails takes back those before it,
//! latest first, then reports its error.

use ciuf_engine::{Change, Result, Row, RowData, TableSchema, Value, View};
use ciuf_sql::Statement;

use crate::engine::{Engine, Outcome};

/// How to take back one statement that ran.
enum Undo {
    DropTable(String),
    DropView(String),
    DropViewHandle(View),
    /// Rows inserted into a table: delete them (by key where the table has one).
    Delete(String, Vec<RowData>),
    /// A table dropped: make it again, with its rows.
    Restore(TableSchema, Vec<Row>),
    /// A named view dropped: register its SQL again.
    Redefine(String),
}

impl Engine {
    /// Runs `statements` in order; on the first error, takes back the ones that ran.
    pub(crate) fn run_all(&self, statements: Vec<Statement>) -> Result<Outcome> {
        let mut undo: Vec<Undo> = Vec::new();
        let mut outcome = Outcome::Done;
        let single = statements.len() == 1;
        for statement in statements {
            let before = self.database().next_view_id();
            let pending = if single { Vec::new() } else { self.undo_of(&statement) };
            match self.run(statement) {
                Ok(done) => {
                    if let Outcome::View(v) = &done
                        && v.id() >= before
                        && pending.is_empty()
                    {
                        undo.push(Undo::DropViewHandle(v.clone()));
                    }
                    undo.extend(pending);
                    outcome = done;
                }
                Err(e) => {
                    for u in undo.into_iter().rev() {
                        self.take_back(u);
                    }
                    return Err(e);
                }
            }
        }
        Ok(outcome)
    }

    /// How to take back `statement` once it ran (for a query, decided after).
    fn undo_of(&self, statement: &Statement) -> Vec<Undo> {
        match statement {
            Statement::CreateTable(schema) => vec![Undo::DropTable(schema.name.clone())],
            Statement::CreateView { name, if_not_exists, .. } => {
                if *if_not_exists && self.view(name).is_some() {
                    Vec::new()
                } else {
                    vec![Undo::DropView(name.clone())]
                }
            }
            Statement::Insert { table, columns, rows } => {
                let Ok(schema) = self.database().table_schema(table) else { return Vec::new() };
                let keys: Option<Vec<usize>> = schema.primary_key.clone();
                let position = |name: &str| schema.column_index(name);
                let deletes = rows
                    .iter()
                    .map(|values| {
                        // The row as stored: named columns in place, the rest NULL.
                        let full: Vec<Value> = if columns.is_empty() {
                            values.clone()
                        } else {
                            let mut full = vec![Value::Null; schema.columns.len()];
                            for (c, v) in columns.iter().zip(values) {
                                if let Some(i) = position(c) {
                                    full[i] = v.clone();
                                }
                            }
                            full
                        };
                        match &keys {
                            Some(k) => RowData::Named(
                                k.iter().map(|&i| (schema.columns[i].name.clone(), full[i].clone())).collect(),
                            ),
                            None => RowData::Values(full),
                        }
                    })
                    .collect();
                vec![Undo::Delete(table.clone(), deletes)]
            }
            Statement::DropTable { names, .. } => names
                .iter()
                .filter_map(|n| {
                    let schema = self.database().table_schema(n).ok()?;
                    let rows = self.database().table_rows(n).ok()?;
                    Some(Undo::Restore((*schema).clone(), rows))
                })
                .collect(),
            Statement::DropView { names, .. } => {
                names.iter().filter_map(|n| self.view(n).map(|v| Undo::Redefine(v.sql().to_string()))).collect()
            }
            Statement::Query { .. } | Statement::Explain(_) | Statement::NoOp(_) => Vec::new(),
        }
    }

    /// Takes back one statement. What cannot be taken back (it cannot fail but for a
    /// bug) is left: the error reported is the statement's own.
    fn take_back(&self, undo: Undo) {
        let _ = match undo {
            Undo::DropTable(name) => self.database().drop_table(&name),
            Undo::DropView(name) => match self.view(&name) {
                Some(v) => self.drop_view(&v),
                None => Ok(()),
            },
            Undo::DropViewHandle(view) => self.drop_view(&view),
            Undo::Delete(table, rows) => {
                self.database().apply(rows.into_iter().map(|r| Change::delete(table.as_str(), r)))
            }
            Undo::Restore(schema, rows) => {
                let name = schema.name.clone();
                self.database().create_table(schema).and_then(|_| {
                    self.database().apply(rows.into_iter().map(|r| Change::insert(name.as_str(), RowData::from(r))))
                })
            }
            Undo::Redefine(sql) => self.execute(&sql).map(|_| ()),
        };
    }
}
