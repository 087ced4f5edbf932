//! Change capture: the log table, the triggers that fill it, and their removal.
//!
//! ```text
//! _ciuf_log      seq INTEGER PRIMARY KEY AUTOINCREMENT (never reused, so positions
//!                only grow), tbl, op (1 insert, 2 update, 3 delete), then o0, n0, o1,
//!                n1, …: the old and new value of each column, stored as SQLite has
//!                them (the columns have no type, so nothing is converted)
//! _ciuf_capture  tbl, columns: the column list each table's triggers were made for
//! _ciuf_readers  id, pos, beat: each follower's position, so that log rows are
//!                deleted only once every live follower has applied them
//! _ciuf_trimmed  upto: the log rows up to this position are deleted; a follower
//!                behind it (one presumed gone while paused) knows the log it would
//!                read has a hole, and reads the tables again instead
//! ```
//!
//! A trigger `_ciuf_i_<table>` / `_ciuf_u_<table>` / `_ciuf_d_<table>` per table and
//! operation writes one log row. The user's tables themselves are never altered.

use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};

use super::error::{SqliteError, is_busy};
use super::schema::{SqliteTable, discover, literal, quote};
use super::url::{SqliteTarget, parse_url};

/// The separator of `_ciuf_capture.columns`.
const SEP: char = '\u{1f}';

/// Creates the log, capture and reader tables if they are missing.
pub(crate) fn ensure_tables(tx: &Transaction<'_>) -> Result<(), SqliteError> {
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS _ciuf_log (seq INTEGER PRIMARY KEY AUTOINCREMENT, tbl TEXT NOT NULL, op INTEGER NOT NULL);
         CREATE TABLE IF NOT EXISTS _ciuf_capture (tbl TEXT PRIMARY KEY, columns TEXT NOT NULL);
         CREATE TABLE IF NOT EXISTS _ciuf_readers (id TEXT PRIMARY KEY, pos INTEGER NOT NULL, beat INTEGER NOT NULL);
         CREATE TABLE IF NOT EXISTS _ciuf_trimmed (upto INTEGER NOT NULL);
         INSERT INTO _ciuf_trimmed SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM _ciuf_trimmed);",
    )?;
    Ok(())
}

/// The position up to which log rows have been deleted (0 if none ever were, or the
/// file predates the record).
pub(crate) fn trimmed_upto(conn: &Connection) -> Result<i64, SqliteError> {
    let exists: i64 =
        conn.query_row("SELECT count(*) FROM sqlite_schema WHERE name = '_ciuf_trimmed'", [], |r| r.get(0))?;
    if exists == 0 {
        return Ok(0);
    }
    Ok(conn.query_row("SELECT coalesce(max(upto), 0) FROM _ciuf_trimmed", [], |r| r.get(0))?)
}

/// How many (old, new) column pairs the log holds.
pub(crate) fn log_width(conn: &Connection) -> Result<usize, SqliteError> {
    let n: i64 =
        conn.query_row("SELECT count(*) FROM pragma_table_info('_ciuf_log') WHERE name GLOB 'o[0-9]*'", [], |r| {
            r.get(0)
        })?;
    Ok(n as usize)
}

/// The columns `table`'s triggers were made for, if it is captured.
pub(crate) fn captured_columns(conn: &Connection, table: &str) -> Result<Option<Vec<String>>, SqliteError> {
    let exists: i64 =
        conn.query_row("SELECT count(*) FROM sqlite_schema WHERE name = '_ciuf_capture'", [], |r| r.get(0))?;
    if exists == 0 {
        return Ok(None);
    }
    let cols: Option<String> = conn
        .query_row("SELECT columns FROM _ciuf_capture WHERE tbl = ?1", [table], |r| r.get(0))
        .map(Some)
        .or_else(|e| if matches!(e, rusqlite::Error::QueryReturnedNoRows) { Ok(None) } else { Err(e) })?;
    let Some(cols) = cols else { return Ok(None) };
    // The triggers must still be there (a partial removal leaves none of them working).
    let triggers: i64 = conn.query_row(
        "SELECT count(*) FROM sqlite_schema WHERE type = 'trigger' AND name IN (?1, ?2, ?3)",
        [trigger_name('i', table), trigger_name('u', table), trigger_name('d', table)],
        |r| r.get(0),
    )?;
    let cols: Vec<String> = cols.split(SEP).map(str::to_string).collect();
    // And the log must hold a pair of columns for each (a log dropped and made anew
    // has none).
    Ok((triggers == 3 && log_width(conn)? >= cols.len()).then_some(cols))
}

fn trigger_name(op: char, table: &str) -> String {
    format!("_ciuf_{op}_{table}")
}

/// Installs (or re-makes, if its columns changed) the capture of `table`.
pub(crate) fn install(tx: &Transaction<'_>, table: &SqliteTable) -> Result<(), SqliteError> {
    let columns: Vec<&str> = table.schema.columns.iter().map(|c| c.name.as_str()).collect();
    if captured_columns(tx, &table.schema.name)?.is_some_and(|c| c == columns) {
        return Ok(());
    }
    ensure_tables(tx)?;
    for k in log_width(tx)?..columns.len() {
        tx.execute_batch(&format!("ALTER TABLE _ciuf_log ADD COLUMN o{k}; ALTER TABLE _ciuf_log ADD COLUMN n{k};"))?;
    }
    drop_triggers(tx, &table.schema.name)?;
    let name = &table.schema.name;
    let list = |prefix: &str| columns.iter().enumerate().map(|(k, _)| format!("{prefix}{k}")).collect::<Vec<_>>();
    let values = |row: &str| columns.iter().map(|c| format!("{row}.{}", quote(c))).collect::<Vec<_>>();
    let (olds, news) = (list("o"), list("n"));
    let (old_values, new_values) = (values("OLD"), values("NEW"));
    let tbl = literal(name);
    let on = quote(name);
    tx.execute_batch(&format!(
        "CREATE TRIGGER {} AFTER INSERT ON {on} BEGIN
           INSERT INTO _ciuf_log (tbl, op, {}) VALUES ({tbl}, 1, {});
         END;
         CREATE TRIGGER {} AFTER UPDATE ON {on} BEGIN
           INSERT INTO _ciuf_log (tbl, op, {}, {}) VALUES ({tbl}, 2, {}, {});
         END;
         CREATE TRIGGER {} AFTER DELETE ON {on} BEGIN
           INSERT INTO _ciuf_log (tbl, op, {}) VALUES ({tbl}, 3, {});
         END;",
        quote(&trigger_name('i', name)),
        news.join(", "),
        new_values.join(", "),
        quote(&trigger_name('u', name)),
        olds.join(", "),
        news.join(", "),
        old_values.join(", "),
        new_values.join(", "),
        quote(&trigger_name('d', name)),
        olds.join(", "),
        old_values.join(", "),
    ))?;
    let joined: String = columns.join(&SEP.to_string());
    tx.execute("INSERT OR REPLACE INTO _ciuf_capture (tbl, columns) VALUES (?1, ?2)", [name.as_str(), &joined])?;
    Ok(())
}

fn drop_triggers(tx: &Transaction<'_>, table: &str) -> Result<(), SqliteError> {
    for op in ['i', 'u', 'd'] {
        tx.execute_batch(&format!("DROP TRIGGER IF EXISTS {};", quote(&trigger_name(op, table))))?;
    }
    Ok(())
}

/// Opens the database file at `path` for reading and writing (never creating it),
/// retrying for up to `patience` while another connection holds it locked.
pub(crate) fn open_file(path: &Path, patience: Duration) -> Result<Connection, SqliteError> {
    if !path.exists() {
        return Err(SqliteError::Open(format!(
            "no SQLite database at {} (the file does not exist; ciuf follows an existing database)",
            path.display()
        )));
    }
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .map_err(|e| SqliteError::Open(format!("cannot open {} as a SQLite database: {e}", path.display())))?;
    conn.busy_timeout(Duration::from_millis(100))?;
    // Reading the schema tells a SQLite file from any other file.
    let start = Instant::now();
    let mut pause = Duration::from_millis(10);
    loop {
        match conn.query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get::<_, i64>(0)) {
            Ok(_) => return Ok(conn),
            Err(e) if is_busy(&e) && start.elapsed() < patience => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(500));
            }
            Err(e) if is_busy(&e) => {
                return Err(SqliteError::Locked {
                    path: path.display().to_string(),
                    waited_secs: start.elapsed().as_secs(),
                });
            }
            Err(e) => {
                return Err(SqliteError::Open(format!("{} is not a SQLite database: {e}", path.display())));
            }
        }
    }
}

/// Runs `f` in a write transaction (BEGIN IMMEDIATE), retrying with backoff while
/// another connection holds the database locked, for at most `patience`.
pub(crate) fn with_write<T>(
    conn: &mut Connection,
    path: &Path,
    patience: Duration,
    mut f: impl FnMut(&Transaction<'_>) -> Result<T, SqliteError>,
) -> Result<T, SqliteError> {
    let start = Instant::now();
    let mut pause = Duration::from_millis(10);
    loop {
        let attempt = (|| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(Busy::from)?;
            let out = f(&tx).map_err(Busy::Other)?;
            tx.commit().map_err(Busy::from)?;
            Ok::<T, Busy>(out)
        })();
        match attempt {
            Ok(out) => return Ok(out),
            Err(Busy::Locked) if start.elapsed() < patience => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(500));
            }
            Err(Busy::Locked) => {
                return Err(SqliteError::Locked {
                    path: path.display().to_string(),
                    waited_secs: start.elapsed().as_secs(),
                });
            }
            Err(Busy::Other(e)) => return Err(e),
        }
    }
}

enum Busy {
    Locked,
    Other(SqliteError),
}

impl From<rusqlite::Error> for Busy {
    fn from(e: rusqlite::Error) -> Self {
        if is_busy(&e) { Busy::Locked } else { Busy::Other(e.into()) }
    }
}

fn file_of(url: &str) -> Result<std::path::PathBuf, SqliteError> {
    match parse_url(url)? {
        SqliteTarget::File(p) => Ok(p),
        SqliteTarget::Memory => {
            Err(SqliteError::Config("an in-memory SQLite database has no other writers to capture".into()))
        }
    }
}

/// Installs change capture on the tables `tables` of the database at `url` (all its
/// tables if empty), waiting up to `patience` for a lock. Returns the tables captured.
pub fn install_capture(url: &str, tables: &[&str], patience: Duration) -> Result<Vec<String>, SqliteError> {
    let path = file_of(url)?;
    let mut conn = open_file(&path, patience)?;
    let names: Vec<String> = if tables.is_empty() {
        let mut stmt = conn.prepare(
            "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' \
             AND name NOT LIKE '\\_ciuf\\_%' ESCAPE '\\' ORDER BY name",
        )?;
        stmt.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?
    } else {
        tables.iter().map(|t| t.to_string()).collect()
    };
    let mut found = Vec::new();
    for n in &names {
        match discover(&conn, n)? {
            Some(t) => found.push(t),
            None => return Err(SqliteError::Schema(format!("no table {n} in {}", path.display()))),
        }
    }
    with_write(&mut conn, &path, patience, |tx| {
        ensure_tables(tx)?;
        for t in &found {
            install(tx, t)?;
        }
        Ok(())
    })?;
    Ok(found.into_iter().map(|t| t.schema.name).collect())
}

/// Removes every trigger and table of ciuf's capture from the database at `url`,
/// waiting up to `patience` for a lock. Returns the tables that were captured.
pub fn remove_capture(url: &str, patience: Duration) -> Result<Vec<String>, SqliteError> {
    let path = file_of(url)?;
    let mut conn = open_file(&path, patience)?;
    with_write(&mut conn, &path, patience, |tx| {
        let mut names: Vec<String> = Vec::new();
        let has: i64 =
            tx.query_row("SELECT count(*) FROM sqlite_schema WHERE name = '_ciuf_capture'", [], |r| r.get(0))?;
        if has > 0 {
            let mut stmt = tx.prepare("SELECT tbl FROM _ciuf_capture ORDER BY tbl")?;
            names = stmt.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
        }
        // Triggers of tables no longer listed, too.
        let mut stmt = tx
            .prepare("SELECT name FROM sqlite_schema WHERE type = 'trigger' AND name LIKE '\\_ciuf\\_%' ESCAPE '\\'")?;
        let triggers: Vec<String> = stmt.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
        drop(stmt);
        for t in triggers {
            tx.execute_batch(&format!("DROP TRIGGER IF EXISTS {};", quote(&t)))?;
        }
        tx.execute_batch(
            "DROP TABLE IF EXISTS _ciuf_log; DROP TABLE IF EXISTS _ciuf_capture; DROP TABLE IF EXISTS _ciuf_readers;
             DROP TABLE IF EXISTS _ciuf_trimmed;",
        )?;
        let seq: i64 =
            tx.query_row("SELECT count(*) FROM sqlite_schema WHERE name = 'sqlite_sequence'", [], |r| r.get(0))?;
        if seq > 0 {
            tx.execute("DELETE FROM sqlite_sequence WHERE name = '_ciuf_log'", [])?;
        }
        Ok(names.clone())
    })
}
