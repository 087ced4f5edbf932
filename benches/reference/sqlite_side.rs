//! The baseline: SQLite holding the same data, applying each batch and re-running the
//! five queries from scratch.

use std::path::Path;

use rusqlite::{Connection, params_from_iter};

use crate::workload::{Event, TABLES, VIEWS, read_table};

pub struct Sqlite {
    pub conn: Connection,
}

fn to_sql(v: &ciuf::Value) -> rusqlite::types::Value {
    use rusqlite::types::Value as S;
    match v {
        ciuf::Value::Null => S::Null,
        ciuf::Value::Int(i) => S::Integer(*i),
        ciuf::Value::Float(f) => S::Real(*f),
        other => S::Text(other.to_text().expect("not null")),
    }
}

impl Sqlite {
    /// An in-memory SQLite with the workload's tables loaded (INTEGER PRIMARY KEY, so
    /// that key lookups and the joins' probes use the rowid index).
    pub fn load(dir: &Path) -> Sqlite {
        Sqlite::load_into(Connection::open_in_memory().expect("sqlite"), dir)
    }

    /// The workload's tables made and loaded through `conn` (a file, say).
    pub fn load_into(conn: Connection, dir: &Path) -> Sqlite {
        for (name, ddl) in TABLES {
            conn.execute_batch(&ddl.replace("BIGINT PRIMARY KEY", "INTEGER PRIMARY KEY")).expect("ddl");
            let tx = conn.unchecked_transaction().expect("tx");
            {
                let n = ddl.matches(',').count() + 1;
                let mut stmt =
                    tx.prepare(&format!("INSERT INTO {name} VALUES ({})", vec!["?"; n].join(","))).expect("insert");
                read_table(dir, name, |row| {
                    stmt.execute(params_from_iter(row.iter().map(to_sql))).expect("insert row");
                })
                .expect("read table");
            }
            tx.commit().expect("commit");
        }
        Sqlite { conn }
    }

    /// Applies a batch in one transaction.
    pub fn apply(&self, batch: &[&Event]) {
        self.apply_then(batch, |_| {});
    }

    /// Applies a batch, then `then`, in one transaction.
    pub fn apply_then(&self, batch: &[&Event], then: impl FnOnce(&rusqlite::Transaction<'_>)) {
        let tx = self.conn.unchecked_transaction().expect("tx");
        for e in batch {
            match e {
                Event::Insert { table, row } => {
                    let sql = format!("INSERT INTO {} VALUES ({})", TABLES[*table].0, vec!["?"; row.len()].join(","));
                    tx.prepare_cached(&sql)
                        .expect("prepare")
                        .execute(params_from_iter(row.iter().map(to_sql)))
                        .expect("insert");
                }
                Event::Delete { table, row } => {
                    let sql = format!("DELETE FROM {} WHERE id = ?", TABLES[*table].0);
                    tx.prepare_cached(&sql).expect("prepare").execute([to_sql(&row[0])]).expect("delete");
                }
                Event::Update { table, new, .. } => {
                    let cols: &[&str] = match table {
                        0 => &["name", "region"],
                        1 => &["name", "category", "price"],
                        _ => &["customer_id", "product_id", "amount", "status"],
                    };
                    let set = cols.iter().map(|c| format!("{c} = ?")).collect::<Vec<_>>().join(", ");
                    let sql = format!("UPDATE {} SET {set} WHERE id = ?", TABLES[*table].0);
                    let params = new[1..].iter().chain(std::iter::once(&new[0])).map(to_sql);
                    tx.prepare_cached(&sql).expect("prepare").execute(params_from_iter(params)).expect("update");
                }
            }
        }
        then(&tx);
        tx.commit().expect("commit");
    }

    /// Runs the five queries to completion; returns the total number of rows.
    pub fn rerun_views(&self) -> usize {
        let mut n = 0;
        for (_, sql) in VIEWS {
            let mut stmt = self.conn.prepare_cached(sql).expect("prepare view");
            let cols = stmt.column_count();
            let mut rows = stmt.query([]).expect("query");
            while let Some(r) = rows.next().expect("row") {
                for i in 0..cols {
                    let _ = r.get_ref(i).expect("value");
                }
                n += 1;
            }
        }
        n
    }

    /// The rows of one query, as text lines (for the correctness check).
    pub fn rows(&self, sql: &str) -> Vec<Vec<rusqlite::types::Value>> {
        let mut stmt = self.conn.prepare(sql).expect("prepare");
        let cols = stmt.column_count();
        let mut out = Vec::new();
        let mut rows = stmt.query([]).expect("query");
        while let Some(r) = rows.next().expect("row") {
            out.push((0..cols).map(|i| r.get::<_, rusqlite::types::Value>(i).expect("value")).collect());
        }
        out
    }
}
