//! The SQLite source: a thread that owns a connection to the file, loads tables when
//! views need them, and follows the change log.
//!
//! ```text
//!  new tables   write txn: capture installed (or checked), this follower registered
//!               read txn (one snapshot): the log's position P; the followed tables'
//!               log rows up to P applied; the new tables' rows loaded — so the load
//!               and the log agree: rows up to P are in the load, rows after it follow
//!  following    PRAGMA data_version polled; when it moves, the log rows after the
//!               position read (one statement: one snapshot of whole transactions) and
//!               applied as one engine transaction
//!  trimming     every second: this follower's position recorded, log rows every live
//!               follower has applied deleted, and how far they were deleted recorded
//!  schema       PRAGMA schema_version polled: a followed table dropped or altered, or
//!               its capture removed, fails that table's views with the reason
//!  resync       a follower that finds the log deleted past its position (it was
//!               paused so long the others presumed it gone) reads its tables again,
//!               in one snapshot, and applies the difference: never a log with a hole
//!  the file     checked every second: deleted, it is reported; replaced by another
//!               file, the new one is opened, captured and resynced
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ciuf_engine::{Change, DataType, Database, RowData, TableId, TableSchema, Value};
use parking_lot::Mutex;
use rusqlite::Connection;

use super::capture::{captured_columns, ensure_tables, install, log_width, open_file, trimmed_upto, with_write};
use super::error::SqliteError;
use super::schema::{SqliteTable, convert, discover, quote};
use crate::SourceStatus as Status;
use crate::feed::{Batch, Feed};
use crate::store::StateDir;

/// Rows per engine transaction while loading.
const CHUNK: usize = 65_536;

/// How often this follower's position is recorded and the log trimmed.
const TRIM_EVERY: Duration = Duration::from_secs(1);

/// A follower that has not recorded its position for this long is presumed gone.
const READER_TIMEOUT_SECS: i64 = 60;

/// How often an idle follower records that it is still there.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(15);

/// The state directory's record of this follower's id in `_ciuf_readers`.
pub const READER_KEY: &str = "sqlite.reader";
/// The state directory's record of the tables being loaded.
pub const LOADING_KEY: &str = "sqlite.loading";

/// How a SQLite file is followed.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// Install change capture (triggers and the log table) on the tables views name,
    /// if it is not there yet. When false, a table without capture is refused with
    /// the command that installs it (`ciuf capture install <url>`).
    pub capture: bool,
    /// How often the file is checked for new commits.
    pub poll: Duration,
    /// How long to retry while another connection holds the database locked.
    pub lock_patience: Duration,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions { capture: true, poll: Duration::from_millis(1), lock_patience: Duration::from_secs(10) }
    }
}

enum Command {
    Add(Vec<String>, mpsc::SyncSender<Result<(), SqliteError>>),
    Stop(mpsc::SyncSender<()>),
}

/// A running SQLite source feeding one database.
#[derive(Debug)]
pub struct SqliteSource {
    commands: Mutex<mpsc::Sender<Command>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    status: Arc<Mutex<Status>>,
}

impl SqliteSource {
    /// Opens the database file at `path` (which must exist). Tables are added when
    /// views need them ([`Self::add_tables`]).
    pub fn open(path: &Path, options: SqliteOptions, db: Database) -> Result<SqliteSource, SqliteError> {
        SqliteSource::open_durable(path, options, db, None)
    }

    /// [`SqliteSource::open`] for a durable engine, whose database journals into
    /// `state` (see `crate::store`). A state directory that followed this file before
    /// names this follower and its log position: the tables the database holds
    /// (restored from the directory) are followed on from there — no table read again
    /// — unless the log was trimmed past that position meanwhile (then they are
    /// resynced). The follower records in the file only positions that are durable.
    pub fn open_durable(
        path: &Path,
        options: SqliteOptions,
        db: Database,
        state: Option<Arc<StateDir>>,
    ) -> Result<SqliteSource, SqliteError> {
        let conn = open_file(path, options.lock_patience)?;
        // SQLite finds the journal beside the path it was given: an absolute path keeps
        // working if the application changes its working directory later.
        let path = &path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        drop(conn);
        let conn = open_file(path, options.lock_patience)?;
        let status = Arc::new(Mutex::new(Status::default()));
        let (tx, rx) = mpsc::channel();
        let stored = |key: &str| state.as_ref().and_then(|s| s.meta(key)).filter(|v| !v.is_empty());
        let reader = stored(READER_KEY).unwrap_or_else(reader_id);
        let pos = state.as_ref().and_then(|s| s.durable_position().1).and_then(|p| p.parse::<i64>().ok());
        let mut follower = Follower {
            conn,
            path: path.to_path_buf(),
            options,
            feed: Feed::new(db),
            status: Arc::clone(&status),
            reader,
            pos: None,
            followed: HashMap::new(),
            data_version: None,
            schema_version: None,
            width: 0,
            last_trim: Instant::now(),
            recorded: None,
            identity: file_identity(path),
            state,
        };
        if let Some(state) = &follower.state {
            state.set_meta(READER_KEY, &follower.reader).map_err(|e| SqliteError::Config(e.to_string()))?;
            if let Some(pos) = pos {
                follower.resume(pos)?;
            }
        }
        let thread = std::thread::Builder::new()
            .name("ciuf-sqlite".into())
            .spawn(move || follower.run(rx))
            .map_err(|e| SqliteError::Config(format!("cannot start the source's thread: {e}")))?;
        Ok(SqliteSource { commands: Mutex::new(tx), thread: Mutex::new(Some(thread)), status })
    }

    /// Makes the tables `names` (as views name them) tables of the database: read from
    /// the file, captured, loaded and followed. Names that are not tables of the file
    /// are left out (the view then reports them unknown).
    pub fn add_tables(&self, names: &[String]) -> Result<(), SqliteError> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.commands.lock().send(Command::Add(names.to_vec(), tx)).map_err(|_| self.stopped())?;
        rx.recv().map_err(|_| self.stopped())?
    }

    /// What the source is doing.
    pub fn status(&self) -> Status {
        self.status.lock().clone()
    }

    /// Stops following, and withdraws this follower from the file (the log rows only
    /// it still needed can go). Capture stays installed (`remove_capture` removes it).
    pub fn close(&self) {
        let (tx, rx) = mpsc::sync_channel(1);
        if self.commands.lock().send(Command::Stop(tx)).is_ok() {
            let _ = rx.recv_timeout(Duration::from_secs(30));
        }
        if let Some(t) = self.thread.lock().take() {
            let _ = t.join();
        }
    }

    fn stopped(&self) -> SqliteError {
        let why = self.status.lock().error.clone().unwrap_or_else(|| "it was closed".into());
        SqliteError::Config(format!("the SQLite source has stopped: {why}"))
    }
}

impl Drop for SqliteSource {
    fn drop(&mut self) {
        self.close();
    }
}

/// A table being followed.
struct Followed {
    id: TableId,
    schema: TableSchema,
}

/// What the change log says happened after a position.
struct LogRead {
    /// The followed tables' changes, in log order.
    changes: Vec<Change>,
    /// The position after them.
    last: i64,
    /// Tables whose rows no longer fit their columns (their changes left out), and why.
    failed: Vec<(TableId, String)>,
}

struct Follower {
    conn: Connection,
    path: PathBuf,
    options: SqliteOptions,
    feed: Feed,
    status: Arc<Mutex<Status>>,
    /// This follower's row in `_ciuf_readers`.
    reader: String,
    /// The log position applied (None until the first table is loaded).
    pos: Option<i64>,
    /// By the table's name as the file spells it (the log's `tbl`).
    followed: HashMap<String, Followed>,
    data_version: Option<i64>,
    schema_version: Option<i64>,
    /// Column pairs in the log.
    width: usize,
    last_trim: Instant,
    /// The position and time of the last recorded position.
    recorded: Option<(i64, Instant)>,
    /// The file followed (device and inode), to notice it deleted or replaced.
    identity: Option<(u64, u64)>,
    /// A durable engine's state directory: positions are recorded in the file only
    /// once durable there, and the reader's id and loads in progress are kept there.
    state: Option<Arc<StateDir>>,
}

impl Follower {
    fn run(&mut self, commands: mpsc::Receiver<Command>) {
        loop {
            // While a poll fails, the next waits longer: an error is retried, not spun on.
            let wait =
                if self.status.lock().error.is_some() { self.options.poll.max(RETRY_EVERY) } else { self.options.poll };
            match commands.recv_timeout(wait) {
                Ok(Command::Add(names, reply)) => {
                    let _ = reply.send(self.add(&names));
                }
                Ok(Command::Stop(reply)) => {
                    self.withdraw();
                    let _ = reply.send(());
                    return;
                }
                Err(RecvTimeoutError::Disconnected) => {
                    self.withdraw();
                    return;
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
            match self.poll() {
                // A busy database is retried at the next poll; anything else is said,
                // and the status no longer claims to stream until a poll succeeds.
                Err(e) if !matches!(e, SqliteError::Locked { .. }) && !e.to_string().contains("locked") => {
                    let mut status = self.status.lock();
                    status.error = Some(e.to_string());
                    status.streaming = false;
                }
                Ok(true) if self.pos.is_some() => {
                    let mut status = self.status.lock();
                    if status.error.is_some() && !status.streaming {
                        status.error = None;
                        status.streaming = true;
                    }
                }
                _ => {}
            }
        }
    }

    /// Follows on from `pos`, a durable engine's restored position, with the tables
    /// the database holds (restored with it): registered again as this follower at
    /// that position, nothing read but the log after it.
    fn resume(&mut self, pos: i64) -> Result<(), SqliteError> {
        for name in self.feed.table_names() {
            if ciuf_engine::journal::is_internal(&name) {
                continue;
            }
            let id = self.feed.table_id(&name).map_err(|e| SqliteError::Schema(e.to_string()))?;
            let schema = (*self.feed.table_schema(&name).map_err(|e| SqliteError::Schema(e.to_string()))?).clone();
            self.followed.insert(name, Followed { id, schema });
        }
        if self.followed.is_empty() {
            return Ok(());
        }
        let (path, reader) = (self.path.clone(), self.reader.clone());
        with_write(&mut self.conn, &path, self.options.lock_patience, |tx| {
            ensure_tables(tx)?;
            tx.execute(
                "INSERT OR REPLACE INTO _ciuf_readers (id, pos, beat) VALUES (?1, ?2, ?3)",
                rusqlite::params![reader, pos, unix_now()],
            )?;
            Ok(())
        })?;
        self.width = log_width(&self.conn)?;
        self.pos = Some(pos);
        let mut status = self.status.lock();
        status.streaming = true;
        status.position = pos.to_string();
        Ok(())
    }

    /// The position this follower may record in the file as applied: with a state
    /// directory, only what is durable there.
    fn acknowledged(&self) -> Option<i64> {
        let pos = self.pos?;
        match &self.state {
            None => Some(pos),
            Some(state) => match state.durable_position().1.and_then(|p| p.parse::<i64>().ok()) {
                Some(durable) => Some(durable.min(pos)),
                // Nothing durable yet: the position the follower registered with.
                None => self.recorded.map(|(at, _)| at).or(Some(0)).map(|p| p.min(pos)),
            },
        }
    }

    /// One round of following; whether the file could be followed in it.
    fn poll(&mut self) -> Result<bool, SqliteError> {
        if self.followed.is_empty() {
            return Ok(false);
        }
        // A step that fails is tried again at the next poll (its version is not taken
        // as seen), so an error stays reported for as long as its cause lasts.
        let schema: i64 = self.conn.query_row("PRAGMA schema_version", [], |r| r.get(0))?;
        if self.schema_version != Some(schema) {
            self.check_schema()?;
            self.schema_version = Some(schema);
        }
        let version: i64 = self.conn.query_row("PRAGMA data_version", [], |r| r.get(0))?;
        if self.data_version != Some(version) {
            self.in_snapshot(|f| f.catch_up(None))?;
            self.data_version = Some(version);
        }
        if self.last_trim.elapsed() >= TRIM_EVERY {
            self.last_trim = Instant::now();
            if !self.check_file()? {
                return Ok(false);
            }
            self.trim();
        }
        Ok(true)
    }

    /// Runs `f` in one read transaction: one snapshot of the file.
    fn in_snapshot<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T, SqliteError>) -> Result<T, SqliteError> {
        self.conn.execute_batch("BEGIN")?;
        let out = f(self);
        let end = if out.is_ok() { self.conn.execute_batch("COMMIT") } else { self.conn.execute_batch("ROLLBACK") };
        let out = out?;
        end?;
        Ok(out)
    }

    /// Whether the file followed is still the one at the path. Deleted, it is reported
    /// (the views keep what they last saw); replaced by another file, the new one is
    /// opened, captured and resynced.
    fn check_file(&mut self) -> Result<bool, SqliteError> {
        let now = file_identity(&self.path);
        if now == self.identity && now.is_some() {
            return Ok(true);
        }
        let Some(now) = now else {
            let mut status = self.status.lock();
            status.streaming = false;
            status.error = Some(format!(
                "the SQLite file {} was deleted: the views keep what they last saw, and follow again if a \
                 database appears at that path",
                self.path.display()
            ));
            return Ok(false);
        };
        // Another file at the path: follow it from a fresh read of the tables.
        self.conn = open_file(&self.path, self.options.lock_patience)?;
        self.identity = Some(now);
        (self.data_version, self.schema_version) = (None, None);
        let (path, reader, capture) = (self.path.clone(), self.reader.clone(), self.options.capture);
        let tables: Vec<String> = self.followed.keys().cloned().collect();
        let mut missing = Vec::new();
        for name in &tables {
            match discover(&self.conn, name)? {
                Some(t) if t.schema.columns == self.followed[name].schema.columns => {}
                _ => missing.push(name.clone()),
            }
        }
        for name in missing {
            let id = self.followed[&name].id;
            self.stop_following(id, &format!("table {name} is not in the file that replaced {}", path.display()));
        }
        let followed: Vec<SqliteTable> =
            self.followed.values().map(|f| SqliteTable { schema: f.schema.clone() }).collect();
        with_write(&mut self.conn, &path, self.options.lock_patience, |tx| {
            ensure_tables(tx)?;
            for t in &followed {
                let want: Vec<&str> = t.schema.columns.iter().map(|c| c.name.as_str()).collect();
                if captured_columns(tx, &t.schema.name)?.is_none_or(|c| c != want) {
                    if !capture {
                        return Err(SqliteError::Schema(format!(
                            "the file that replaced {} has no change capture on {}",
                            path.display(),
                            t.schema.name
                        )));
                    }
                    install(tx, t)?;
                }
            }
            tx.execute(
                "INSERT OR REPLACE INTO _ciuf_readers (id, pos, beat) VALUES (?1, ?2, ?3)",
                rusqlite::params![reader, sequence(tx)?, unix_now()],
            )?;
            Ok(())
        })?;
        self.width = log_width(&self.conn)?;
        self.in_snapshot(|f| f.resync())?;
        let mut status = self.status.lock();
        status.streaming = true;
        status.error = None;
        Ok(true)
    }

    /// Inside a read snapshot: brings every followed table to the file as it is — each
    /// read whole, the difference from what the engine holds applied as one
    /// transaction — and takes the log's position at the snapshot. What a follower
    /// does when the log it would read has a hole, so that nothing is lost.
    fn resync(&mut self) -> Result<(), SqliteError> {
        let at = sequence(&self.conn)?;
        let mut deletes = Vec::new();
        let mut inserts = Vec::new();
        let mut failed: Vec<(TableId, String)> = Vec::new();
        for f in self.followed.values() {
            let mut count: HashMap<ciuf_engine::Row, i64> = HashMap::new();
            for row in self.feed.table_rows(&f.schema.name).map_err(|e| SqliteError::Schema(e.to_string()))? {
                *count.entry(row).or_default() -= 1;
            }
            let cols: Vec<String> = f.schema.columns.iter().map(|c| quote(&c.name)).collect();
            let mut stmt = self.conn.prepare(&format!("SELECT {} FROM {}", cols.join(", "), quote(&f.schema.name)))?;
            let mut rows = stmt.query([])?;
            'rows: while let Some(r) = rows.next()? {
                let mut values = Vec::with_capacity(cols.len());
                for (i, c) in f.schema.columns.iter().enumerate() {
                    match convert(r.get_ref(i)?, c.data_type) {
                        Ok(v) => values.push(v),
                        Err(v) => {
                            failed.push((f.id, misfit(&f.schema, i, &v).to_string()));
                            break 'rows;
                        }
                    }
                }
                *count.entry(ciuf_engine::Row::new(values)).or_default() += 1;
                self.status.lock().rows_read += 1;
            }
            for (row, n) in count {
                for _ in 0..n.unsigned_abs() {
                    let change = RowData::Values(row.to_vec());
                    if n < 0 {
                        deletes.push(Change::delete(f.id, change))
                    } else {
                        inserts.push(Change::insert(f.id, change))
                    }
                }
            }
        }
        for (id, why) in &failed {
            self.stop_following(*id, why);
        }
        let keep =
            |c: &Change| !failed.iter().any(|(id, _)| matches!(c.table(), ciuf_engine::TableRef::Id(t) if t == id));
        let changes: Vec<Change> = deletes.into_iter().chain(inserts).filter(keep).collect();
        if let Err(e) = self.feed.apply(Batch { changes, position: at.to_string() }) {
            let why = format!("reading the tables again after the change log was trimmed past this follower: {e}");
            let ids: Vec<TableId> = self.followed.values().map(|f| f.id).collect();
            for id in ids {
                self.stop_following(id, &why);
            }
        }
        self.pos = Some(at);
        let mut status = self.status.lock();
        status.resyncs += 1;
        status.position = at.to_string();
        Ok(())
    }

    /// Adds the tables `names` that the file has and the database does not.
    fn add(&mut self, names: &[String]) -> Result<(), SqliteError> {
        let mut new: Vec<SqliteTable> = Vec::new();
        for n in names {
            if self.feed.table_id(n).is_ok() || new.iter().any(|t| t.schema.name.eq_ignore_ascii_case(n)) {
                continue;
            }
            if let Some(t) = discover(&self.conn, n)? {
                new.push(t);
            }
        }
        if new.is_empty() {
            return Ok(());
        }
        // Capture installed (or checked), and this follower registered.
        let (capture, path, reader, pos) = (self.options.capture, self.path.clone(), self.reader.clone(), self.pos);
        let url = format!("sqlite:///{}", self.path.display());
        with_write(&mut self.conn, &path, self.options.lock_patience, |tx| {
            for t in &new {
                let want: Vec<&str> = t.schema.columns.iter().map(|c| c.name.as_str()).collect();
                match captured_columns(tx, &t.schema.name)? {
                    Some(cols) if cols == want => {}
                    _ if capture => install(tx, t)?,
                    Some(_) => {
                        return Err(SqliteError::Schema(format!(
                            "the change capture of table {} was made for other columns (the table has changed \
                             since): run `ciuf capture install {url} {}` again",
                            t.schema.name, t.schema.name
                        )));
                    }
                    None => {
                        return Err(SqliteError::Schema(format!(
                            "table {} has no change capture installed, so writes to it cannot be followed: run \
                             `ciuf capture install {url}` (or open the database with capture on)",
                            t.schema.name
                        )));
                    }
                }
            }
            ensure_tables(tx)?;
            let at = pos.unwrap_or(sequence(tx)?);
            tx.execute(
                "INSERT OR REPLACE INTO _ciuf_readers (id, pos, beat) VALUES (?1, ?2, ?3)",
                rusqlite::params![reader, at, unix_now()],
            )?;
            Ok(())
        })?;
        self.width = log_width(&self.conn)?;
        // One snapshot: the log's position, the followed tables brought to it, the new
        // tables loaded as of it.
        let loaded = self.in_snapshot(|f| f.load_at_snapshot(&new))?;
        self.pos = Some(loaded);
        let mut status = self.status.lock();
        status.loading = None;
        status.streaming = true;
        status.position = loaded.to_string();
        Ok(())
    }

    /// Inside the read transaction of [`Self::add`]: returns the position loaded at.
    fn load_at_snapshot(&mut self, new: &[SqliteTable]) -> Result<i64, SqliteError> {
        let at = sequence(&self.conn)?;
        if self.pos.is_some() {
            self.catch_up(Some(at))?;
        }
        // A load is several engine transactions: a durable engine that dies in the
        // middle of one must not take the part it journaled for the table.
        let names: Vec<&str> = new.iter().map(|t| t.schema.name.as_str()).collect();
        self.note_loading(&names.join("\n"))?;
        for t in new {
            let id = self.feed.create_table(t.schema.clone()).map_err(|e| SqliteError::Schema(e.to_string()))?;
            if let Err(e) = self.load(t, id) {
                let _ = self.feed.drop_table(&t.schema.name);
                return Err(e);
            }
            self.followed.insert(t.schema.name.clone(), Followed { id, schema: t.schema.clone() });
        }
        // The position the loads reflect, journaled with the last of them.
        self.feed.pass(&at.to_string()).map_err(|e| SqliteError::Schema(e.to_string()))?;
        self.note_loading("")?;
        Ok(at)
    }

    /// Notes in the state directory the tables being loaded ("" once loaded).
    fn note_loading(&self, names: &str) -> Result<(), SqliteError> {
        match &self.state {
            Some(state) => state.set_meta(LOADING_KEY, names).map_err(|e| SqliteError::Config(e.to_string())),
            None => Ok(()),
        }
    }

    fn load(&self, t: &SqliteTable, id: TableId) -> Result<(), SqliteError> {
        let name = &t.schema.name;
        let cols: Vec<String> = t.schema.columns.iter().map(|c| quote(&c.name)).collect();
        let types: Vec<DataType> = t.schema.columns.iter().map(|c| c.data_type).collect();
        let mut stmt = self.conn.prepare(&format!("SELECT {} FROM {}", cols.join(", "), quote(name)))?;
        let mut rows = stmt.query([])?;
        let mut batch: Vec<Change> = Vec::with_capacity(CHUNK);
        let mut total = 0u64;
        self.status.lock().loading = Some((name.clone(), 0));
        while let Some(r) = rows.next()? {
            let mut values = Vec::with_capacity(types.len());
            for (i, ty) in types.iter().enumerate() {
                values.push(convert(r.get_ref(i)?, *ty).map_err(|v| misfit(&t.schema, i, &v))?);
            }
            batch.push(Change::insert(id, RowData::Values(values)));
            if batch.len() == CHUNK {
                total += batch.len() as u64;
                self.feed.load(batch.drain(..)).map_err(|e| SqliteError::Schema(format!("loading {name}: {e}")))?;
                self.status.lock().loading = Some((name.clone(), total));
            }
        }
        total += batch.len() as u64;
        self.feed.load(batch).map_err(|e| SqliteError::Schema(format!("loading {name}: {e}")))?;
        self.status.lock().rows_read += total;
        Ok(())
    }

    /// Inside a read snapshot: applies the log rows after the position (up to `upto`)
    /// as one transaction — or, where rows after the position were deleted (this
    /// follower was presumed gone while paused), reads the tables again instead.
    fn catch_up(&mut self, upto: Option<i64>) -> Result<(), SqliteError> {
        let Some(pos) = self.pos else { return Ok(()) };
        // Rows trimmed past this follower, or a log made anew (its sequence restarted
        // below this follower's position): the log cannot say what changed.
        if trimmed_upto(&self.conn)? > pos || sequence(&self.conn)? < pos {
            return self.resync();
        }
        let LogRead { changes, last, failed } = self.read_log(pos, upto)?;
        for (id, why) in &failed {
            self.stop_following(*id, why);
        }
        if changes.is_empty() {
            if last != pos {
                // Log rows of tables not followed: the position moves on all the same.
                let _ = self.feed.pass(&last.to_string());
            }
        } else {
            if let Err(e) = self.feed.apply(Batch { changes, position: last.to_string() }) {
                // The engine refused what SQLite committed (a key SQLite allows NULL in,
                // say): the tables of this batch can no longer be followed exactly.
                let why = format!("a change from the SQLite file was refused: {e}");
                let ids: Vec<TableId> = self.followed.values().map(|f| f.id).collect();
                for id in ids {
                    self.stop_following(id, &why);
                }
            }
            let mut status = self.status.lock();
            status.transactions += 1;
        }
        self.pos = Some(last);
        self.status.lock().position = last.to_string();
        Ok(())
    }

    /// Reads the log rows after `pos` (up to `upto`): the followed tables' changes, the
    /// position after them, and the tables whose rows no longer fit their columns
    /// (their changes left out), with why. Writes nothing.
    fn read_log(&self, pos: i64, upto: Option<i64>) -> Result<LogRead, SqliteError> {
        let mut cols = vec!["seq".to_string(), "tbl".into(), "op".into()];
        for k in 0..self.width {
            cols.push(format!("o{k}"));
            cols.push(format!("n{k}"));
        }
        let sql = format!("SELECT {} FROM _ciuf_log WHERE seq > ?1 AND seq <= ?2 ORDER BY seq", cols.join(", "));
        let mut changes: Vec<Change> = Vec::new();
        let mut failed: Vec<(TableId, String)> = Vec::new();
        let mut last = pos;
        {
            let mut stmt = self.conn.prepare_cached(&sql)?;
            let mut rows = stmt.query(rusqlite::params![pos, upto.unwrap_or(i64::MAX)])?;
            while let Some(r) = rows.next()? {
                last = r.get(0)?;
                let tbl: String = r.get(1)?;
                let Some(f) = self.followed.get(&tbl) else { continue };
                if failed.iter().any(|(id, _)| *id == f.id) {
                    continue;
                }
                let op: i64 = r.get(2)?;
                let row = |new: bool| -> Result<Vec<Value>, String> {
                    let mut values = Vec::with_capacity(f.schema.columns.len());
                    for (k, c) in f.schema.columns.iter().enumerate() {
                        let at = 3 + 2 * k + usize::from(new);
                        let v = r.get_ref(at).map_err(|e| e.to_string())?;
                        values.push(convert(v, c.data_type).map_err(|v| misfit(&f.schema, k, &v).to_string())?);
                    }
                    Ok(values)
                };
                // An insert or update as a replace: a row it displaces by primary key
                // was deleted by SQLite's REPLACE, which fires no delete trigger.
                let change = match op {
                    1 => row(true).map(|n| Change::Replace { table: f.id.into(), old: None, new: RowData::Values(n) }),
                    2 => row(false).and_then(|o| {
                        row(true).map(|n| Change::Replace {
                            table: f.id.into(),
                            old: Some(RowData::Values(o)),
                            new: RowData::Values(n),
                        })
                    }),
                    3 => row(false).map(|o| Change::delete(f.id, RowData::Values(o))),
                    other => Err(format!("unknown log operation {other}")),
                };
                match change {
                    Ok(c) => changes.push(c),
                    Err(why) => failed.push((f.id, why)),
                }
            }
        }
        changes.retain(|c| !failed.iter().any(|(id, _)| matches!(c.table(), ciuf_engine::TableRef::Id(t) if t == id)));
        Ok(LogRead { changes, last, failed })
    }

    /// Fails `id`'s views with `why` and stops following it.
    fn stop_following(&mut self, id: TableId, why: &str) {
        self.feed.fail_table(id, why);
        self.followed.retain(|_, f| f.id != id);
    }

    /// After a schema change: a followed table dropped, altered, or no longer captured.
    fn check_schema(&mut self) -> Result<(), SqliteError> {
        self.width = log_width(&self.conn)?;
        let mut gone: Vec<(TableId, String)> = Vec::new();
        for (name, f) in &self.followed {
            let why = match discover(&self.conn, name) {
                Ok(None) => Some("it was dropped from the SQLite file".to_string()),
                Ok(Some(t)) if t.schema.columns != f.schema.columns => {
                    Some("its columns changed in the SQLite file (ALTER TABLE)".to_string())
                }
                Err(e) => Some(e.to_string()),
                Ok(Some(_)) => match captured_columns(&self.conn, name)? {
                    None => Some("its change capture was removed from the SQLite file".to_string()),
                    Some(_) => None,
                },
            };
            if let Some(why) = why {
                gone.push((f.id, format!("table {name} can no longer be followed: {why}")));
            }
        }
        for (id, why) in gone {
            self.stop_following(id, &why);
        }
        Ok(())
    }

    /// Records this follower's position and deletes the log rows every live follower
    /// has applied: when the position moved, or as a heartbeat. Skipped (until the next
    /// second) if the database is busy.
    fn trim(&mut self) {
        let Some(pos) = self.acknowledged() else { return };
        if self.recorded.is_some_and(|(at, when)| at == pos && when.elapsed() < HEARTBEAT_EVERY) {
            return;
        }
        let (path, reader) = (self.path.clone(), self.reader.clone());
        let result = with_write(&mut self.conn, &path, Duration::ZERO, |tx| {
            let now = unix_now();
            tx.execute(
                "INSERT OR REPLACE INTO _ciuf_readers (id, pos, beat) VALUES (?1, ?2, ?3)",
                rusqlite::params![reader, pos, now],
            )?;
            tx.execute("DELETE FROM _ciuf_readers WHERE beat < ?1", [now - READER_TIMEOUT_SECS])?;
            let upto: i64 = tx.query_row("SELECT min(pos) FROM _ciuf_readers", [], |r| r.get(0))?;
            tx.execute("DELETE FROM _ciuf_log WHERE seq <= ?1", [upto])?;
            // A follower behind this (presumed gone) must know it lost these rows.
            tx.execute("UPDATE _ciuf_trimmed SET upto = max(upto, ?1)", [upto])?;
            Ok(())
        });
        match result {
            Ok(()) => self.recorded = Some((pos, Instant::now())),
            Err(SqliteError::Locked { .. }) => {}
            Err(e) => {
                let mut status = self.status.lock();
                status.error = Some(format!("trimming the change log: {e}"));
                status.streaming = false;
            }
        }
    }

    /// Removes this follower's row, so that the log rows it alone needed can go. A
    /// durable follower keeps it, with its durable position: it follows on from there
    /// when it starts again (unless it stays away longer than `READER_TIMEOUT_SECS`
    /// while other followers trim, and must read its tables again).
    fn withdraw(&mut self) {
        if self.pos.is_none() {
            return;
        }
        if self.state.is_some() {
            self.recorded = None;
            self.last_trim = Instant::now() - TRIM_EVERY;
            self.trim();
            self.status.lock().streaming = false;
            return;
        }
        let (path, reader) = (self.path.clone(), self.reader.clone());
        let _ = with_write(&mut self.conn, &path, Duration::from_secs(1), |tx| {
            tx.execute("DELETE FROM _ciuf_readers WHERE id = ?1", [&reader])?;
            Ok(())
        });
        self.status.lock().streaming = false;
    }
}

/// How long a follower whose last poll failed waits before trying again.
const RETRY_EVERY: Duration = Duration::from_millis(100);

/// The log's position: the last sequence number ever given (0 before any).
fn sequence(conn: &Connection) -> Result<i64, SqliteError> {
    let has: i64 =
        conn.query_row("SELECT count(*) FROM sqlite_schema WHERE name = 'sqlite_sequence'", [], |r| r.get(0))?;
    if has == 0 {
        return Ok(0);
    }
    Ok(conn
        .query_row("SELECT seq FROM sqlite_sequence WHERE name = '_ciuf_log'", [], |r| r.get(0))
        .or_else(|e| if matches!(e, rusqlite::Error::QueryReturnedNoRows) { Ok(0) } else { Err(e) })?)
}

/// A value of column `i` that does not fit its type.
fn misfit(schema: &TableSchema, i: usize, value: &str) -> SqliteError {
    let c = &schema.columns[i];
    SqliteError::Schema(format!(
        "column {}.{} ({}) holds {value}, which is not a {} (SQLite lets a column hold any value; ciuf needs the declared type)",
        schema.name, c.name, c.data_type, c.data_type
    ))
}

/// The device and inode of the file at `path` (None if there is none): what tells
/// the file followed from another put at its path.
fn file_identity(path: &Path) -> Option<(u64, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        Some((meta.dev(), meta.ino()))
    }
    #[cfg(not(unix))]
    {
        let created = meta.created().ok()?.duration_since(UNIX_EPOCH).ok()?;
        Some((created.as_secs(), created.subsec_nanos() as u64))
    }
}

fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// A name for this follower that no other has: process, time, and an address.
fn reader_id() -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let local = 0u8;
    format!("{}-{nanos:x}-{:x}", std::process::id(), std::ptr::from_ref(&local) as usize)
}
