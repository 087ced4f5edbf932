//! The state directory: what a durable engine keeps on disk so that it comes back
//! where it was — its tables' rows, its views' definitions and its source's position.
//!
//! An append-only log plus checkpoint files, written by ciuf itself (see
//! `benches/durable.rs` and the README for why not an embedded key-value store: the
//! engine already holds every row in memory and never reads the disk except at
//! start-up, so what it needs is the cheapest durable append and the fastest bulk
//! read, which a log and a flat file give without a store's indexes, compaction and
//! write amplification).
//!
//! ```text
//! <dir>/FORMAT                 "ciuf state directory, format 2"
//! <dir>/LOCK                   held (flock) by the process using the directory
//! <dir>/checkpoint-<n>.ciuf    every table's rows, the views, the position, as of log n's start,
//!                              and the state of the operators that save theirs
//! <dir>/log-<n>.ciuf           every record since: tables made and dropped, commits, views
//! ```
//!
//! - A commit is one record (see [`records`]): each changed table's rows with signed
//!   weights, the transaction's number and the source position after it — one write,
//!   so the rows and the position never disagree. [`Durability::Sync`] makes it
//!   durable (fsync) before the engine goes on; [`Durability::Grouped`] has a
//!   background thread make the records written so far durable every few
//!   milliseconds, and [`StateDir::durable_position`] says how far that got (what a
//!   source may acknowledge).
//! - When the log has grown past the last checkpoint's size (and a floor), the engine
//!   hands over every table's rows under its writer lock; the log is rotated there and
//!   then, and a background thread writes the checkpoint (to a temporary name, fsync,
//!   rename, fsync the directory) and deletes what it replaces.
//! - A checkpoint also holds the state of the operators that save theirs (grouped
//!   aggregates: one row per group), computed from the tables as it holds them. A
//!   restart gives them back to the views it registers again instead of computing
//!   them from the rows, and then applies what the log changed after the checkpoint
//!   as one transaction (see [`Recovered::states`]).
//! - Start-up reads the newest checkpoint and the logs from its number on. A record a
//!   crash cut short at the end of the newest log was never acknowledged: it is cut
//!   off. Anything else that does not check out is damage, refused with the file's name
//!   and how to start over.

mod codec;
mod records;
mod recover;

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ciuf_engine::TableSchema;
use ciuf_engine::journal::{Committed, Journal, STATE_LAYOUT, SavedState, TableContents};
use parking_lot::{Condvar, Mutex};

pub(crate) use codec::SharedTexts;
pub use records::ViewRecord;
pub use recover::{Recovered, RecoveredTable};

use codec::Out;
use records::Record;

/// The first line of `<dir>/FORMAT`: what this ciuf reads and writes.
pub const FORMAT: &str = "ciuf state directory, format 2";
/// The format before operator states were saved: read, and marked as [`FORMAT`] once
/// opened (this ciuf writes checkpoints that hold states).
const FORMAT_1: &str = "ciuf state directory, format 1";
const LOG_MAGIC: &[u8] = b"CIUFLOG1";
const CHECKPOINT_MAGIC: &[u8] = b"CIUFCKP1";
/// Why a closed state directory takes no more writes.
const CLOSED: &str = "the engine using it was closed";
/// Rows per record in a checkpoint.
const ROWS_PER_RECORD: usize = 16_384;

/// When a commit is durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Before the engine goes on: `apply` returns, and a source's position is
    /// acknowledged, only once the commit is on disk (one fsync per commit).
    #[default]
    Sync,
    /// Within this interval: commits are written at once and made durable together by a
    /// background thread; a source acknowledges only what is durable. A crash loses
    /// at most the last interval's commits of the application's own events (a
    /// source's are sent again).
    Grouped(Duration),
}

/// How a state directory is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreOptions {
    /// When commits are durable.
    pub durability: Durability,
    /// The log is checkpointed once it is larger than this and than the last
    /// checkpoint.
    pub checkpoint_floor: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions { durability: Durability::Sync, checkpoint_floor: 64 << 20 }
    }
}

/// What went wrong with a state directory.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file does not read as ciuf wrote it.
    #[error(
        "the state directory {dir} is damaged: {file} — {what}. ciuf will not guess at what it held: to start \
         over, delete the directory (`ciuf state drop {dir}`), and the engine loads its tables afresh"
    )]
    Damaged {
        /// The directory.
        dir: String,
        /// The damaged file.
        file: String,
        /// What does not check out.
        what: String,
    },
    /// The directory was written by another version of ciuf's format.
    #[error("the state directory {dir} holds {found:?}, which this ciuf cannot read (it reads {FORMAT:?})")]
    Format {
        /// The directory.
        dir: String,
        /// Its format line.
        found: String,
    },
    /// Another process (or engine) uses the directory.
    #[error("the state directory {0} is in use by another engine (one process at a time holds it)")]
    InUse(String),
    /// Reading or writing failed.
    #[error("{doing} {path}: {source}")]
    Io {
        /// The file or directory.
        path: String,
        /// What was being done.
        doing: &'static str,
        /// The system's error.
        source: std::io::Error,
    },
    /// The directory's files no longer agree with what the engine holds (a write
    /// failed and could not be taken back): nothing more is written.
    #[error("the state directory {dir} can no longer be written ({why}); restart the engine to recover from it")]
    Broken {
        /// The directory.
        dir: String,
        /// The first failure.
        why: String,
    },
}

impl StoreError {
    fn io(path: &Path, doing: &'static str, source: std::io::Error) -> StoreError {
        StoreError::Io { path: path.display().to_string(), doing, source }
    }

    fn damaged(file: &Path, what: String) -> StoreError {
        let dir = file.parent().map(|d| d.display().to_string()).unwrap_or_default();
        StoreError::Damaged { dir, file: file.display().to_string(), what }
    }
}

impl From<StoreError> for ciuf_engine::Error {
    fn from(e: StoreError) -> Self {
        let retryable = matches!(&e, StoreError::Io { source, .. }
            if matches!(source.kind(), std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded | std::io::ErrorKind::Interrupted));
        ciuf_engine::Error::State { message: e.to_string(), retryable }
    }
}

/// An open state directory: the journal of one engine.
#[derive(Debug)]
pub struct StateDir {
    dir: PathBuf,
    options: StoreOptions,
    inner: Mutex<Inner>,
    /// What is durable, for [`Durability::Grouped`]: guarded apart from `inner` so that
    /// an fsync never holds up a commit.
    durable: Arc<(Mutex<Synced>, Condvar)>,
    flusher: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Bytes the log may still grow by (a test's full disk; `u64::MAX`: no limit).
    space: std::sync::atomic::AtomicU64,
    _lock: File,
}

#[derive(Debug)]
struct Inner {
    log: Arc<File>,
    log_number: u64,
    /// Bytes in the current log.
    log_bytes: u64,
    /// Bytes of the last checkpoint (the log is checkpointed when it outgrows it).
    checkpoint_bytes: u64,
    /// A checkpoint being written in the background.
    checkpointing: Option<std::thread::JoinHandle<Result<u64, StoreError>>>,
    txn: u64,
    position: Option<String>,
    meta: BTreeMap<String, String>,
    views: Vec<ViewRecord>,
    /// Set when a write failed and could not be taken back.
    broken: Option<String>,
    /// The record being built (its buffer reused).
    out: Out,
}

#[derive(Debug, Default)]
struct Synced {
    /// The log and offset written so far (the flusher makes them durable).
    written: (u64, u64, u64, Option<String>),
    /// (log number, offset, transaction, position) made durable.
    durable: (u64, u64, u64, Option<String>),
    log: Option<Arc<File>>,
    stop: bool,
    error: Option<String>,
}

impl StateDir {
    /// Opens (or makes) the state directory `dir`, and reads back what it holds.
    pub fn open(dir: &Path, options: StoreOptions) -> Result<(Arc<StateDir>, Recovered), StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, "making the state directory", e))?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("LOCK"))
            .map_err(|e| StoreError::io(dir, "opening the lock of", e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Err(StoreError::InUse(dir.display().to_string())),
            Err(std::fs::TryLockError::Error(e)) => return Err(StoreError::io(dir, "locking", e)),
        }
        let format = dir.join("FORMAT");
        match std::fs::read_to_string(&format) {
            Ok(text) => {
                let line = text.lines().next().unwrap_or("").trim().to_string();
                if line == FORMAT_1 {
                    write_durably(&format, format!("{FORMAT}\n").as_bytes())?;
                    sync_dir(dir)?;
                } else if line != FORMAT {
                    return Err(StoreError::Format { dir: dir.display().to_string(), found: line });
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let busy = numbered(dir, "log-")?.len() + numbered(dir, "checkpoint-")?.len();
                if busy > 0 {
                    return Err(StoreError::damaged(&format, "it is missing beside the state files".into()));
                }
                write_durably(&format, format!("{FORMAT}\n").as_bytes())?;
                sync_dir(dir)?;
            }
            Err(e) => return Err(StoreError::io(&format, "reading", e)),
        }
        // Leftovers of a checkpoint a crash interrupted.
        for entry in std::fs::read_dir(dir).map_err(|e| StoreError::io(dir, "listing", e))?.flatten() {
            if entry.file_name().to_str().is_some_and(|n| n.ends_with(".tmp")) {
                let _ = std::fs::remove_file(entry.path());
            }
        }

        let mut recovered = Recovered::default();
        let checkpoints = numbered(dir, "checkpoint-")?;
        let mut checkpoint_bytes = 0;
        let base = match checkpoints.last() {
            Some((n, path)) => {
                let mut ended = false;
                recover::read_file(path, CHECKPOINT_MAGIC, &mut recovered, true, |r| {
                    ended |= matches!(r, Record::End { .. })
                })?;
                if !ended {
                    return Err(StoreError::damaged(path, "it ends before its last record".into()));
                }
                checkpoint_bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
                *n
            }
            None => 0,
        };
        let logs: Vec<(u64, PathBuf)> = numbered(dir, "log-")?.into_iter().filter(|(n, _)| *n >= base).collect();
        if let Some((first, path)) = logs.first()
            && *first != base
            && base != 0
        {
            return Err(StoreError::damaged(path, format!("the log that follows checkpoint {base} is missing")));
        }
        for pair in logs.windows(2) {
            if pair[1].0 != pair[0].0 + 1 {
                return Err(StoreError::damaged(&pair[1].1, "a log before it is missing".into()));
            }
        }
        let mut end = (base, 0u64);
        for (i, (n, path)) in logs.iter().enumerate() {
            let written = recover::read_file(path, LOG_MAGIC, &mut recovered, false, |_| {})?;
            let len = std::fs::metadata(path).map_err(|e| StoreError::io(path, "reading", e))?.len();
            if (written as u64) < len {
                if i + 1 != logs.len() {
                    return Err(StoreError::damaged(
                        path,
                        "it ends in a partial record, yet a later log follows".into(),
                    ));
                }
                // The commit a crash cut short: never acknowledged, taken off.
                let f = OpenOptions::new().write(true).open(path).map_err(|e| StoreError::io(path, "opening", e))?;
                f.set_len(written as u64).map_err(|e| StoreError::io(path, "cutting a partial record off", e))?;
                f.sync_all().map_err(|e| StoreError::io(path, "syncing", e))?;
            }
            end = (*n, written as u64);
        }
        recovered.finish();
        let (log_number, log) = if logs.is_empty() || end.1 < LOG_MAGIC.len() as u64 {
            let n = end.0.max(base);
            (n, new_log(dir, n)?)
        } else {
            let path = log_path(dir, end.0);
            let f = OpenOptions::new().append(true).open(&path).map_err(|e| StoreError::io(&path, "opening", e))?;
            (end.0, f)
        };
        let log_bytes = log.metadata().map(|m| m.len()).unwrap_or(0);
        let log = Arc::new(log);
        let position = recovered.position.clone();
        let synced = Synced {
            written: (log_number, log_bytes, recovered.txn, position.clone()),
            durable: (log_number, log_bytes, recovered.txn, position.clone()),
            log: Some(log.clone()),
            stop: false,
            error: None,
        };
        let state = Arc::new(StateDir {
            dir: dir.to_path_buf(),
            options,
            inner: Mutex::new(Inner {
                log,
                log_number,
                log_bytes,
                checkpoint_bytes,
                checkpointing: None,
                txn: recovered.txn,
                position,
                meta: recovered.meta.clone(),
                views: recovered.views.clone(),
                broken: None,
                out: Out::default(),
            }),
            durable: Arc::new((Mutex::new(synced), Condvar::new())),
            flusher: Mutex::new(None),
            space: std::sync::atomic::AtomicU64::new(u64::MAX),
            _lock: lock,
        });
        if let Durability::Grouped(every) = options.durability {
            let durable = state.durable.clone();
            let handle = std::thread::Builder::new()
                .name("ciuf-state-flush".into())
                .spawn(move || flush_loop(&durable, every))
                .map_err(|e| StoreError::io(dir, "starting the flusher of", e))?;
            *state.flusher.lock() = Some(handle);
        }
        Ok((state, recovered))
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A fact about the directory, as recorded.
    pub fn meta(&self, key: &str) -> Option<String> {
        self.inner.lock().meta.get(key).cloned()
    }

    /// Records a fact about the directory (its dialect, its source, the source's ids).
    pub fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        let mut inner = self.inner.lock();
        if inner.meta.get(key).map(String::as_str) == Some(value) {
            return Ok(());
        }
        self.append(&mut inner, |out| records::encode(out, &Record::Meta { key: key.into(), value: value.into() }))?;
        inner.meta.insert(key.to_string(), value.to_string());
        Ok(())
    }

    /// Records a registered view.
    pub fn view_added(&self, view: ViewRecord) -> Result<(), StoreError> {
        let mut inner = self.inner.lock();
        if inner.views.contains(&view) {
            return Ok(());
        }
        self.append(&mut inner, |out| records::encode(out, &Record::ViewAdded(view.clone())))?;
        inner.views.push(view);
        Ok(())
    }

    /// Records a dropped view (by its name, or its SQL if it has none).
    pub fn view_dropped(&self, name: Option<&str>, sql: &str) -> Result<(), StoreError> {
        let mut inner = self.inner.lock();
        let gone = |v: &ViewRecord| match name {
            Some(n) => v.name.as_deref().is_some_and(|m| m.eq_ignore_ascii_case(n)),
            None => v.name.is_none() && v.sql == sql,
        };
        let dropped: Vec<ViewRecord> = inner.views.iter().filter(|v| gone(v)).cloned().collect();
        for v in dropped {
            self.append(&mut inner, |out| records::encode(out, &Record::ViewDropped(v.clone())))?;
            inner.views.retain(|x| *x != v);
        }
        Ok(())
    }

    /// The views recorded, in the order they were registered.
    pub fn views(&self) -> Vec<ViewRecord> {
        self.inner.lock().views.clone()
    }

    /// The transaction number and source position that are durable: all a source may
    /// acknowledge.
    pub fn durable_position(&self) -> (u64, Option<String>) {
        let d = &self.durable.0.lock().durable;
        (d.2, d.3.clone())
    }

    /// Bytes of log written since the last checkpoint.
    pub fn log_bytes(&self) -> u64 {
        self.inner.lock().log_bytes.saturating_sub(LOG_MAGIC.len() as u64)
    }

    /// The number of the last transaction recorded (durable or not).
    pub fn last_txn(&self) -> u64 {
        self.inner.lock().txn
    }

    /// Makes everything written durable now, and waits for a checkpoint being written.
    pub fn sync(&self) -> Result<(), StoreError> {
        let pending = self.inner.lock().checkpointing.take();
        if let Some(h) = pending {
            let bytes = h.join().unwrap_or_else(|_| Err(self.broken("the checkpoint writer panicked")))?;
            self.inner.lock().checkpoint_bytes = bytes;
        }
        let inner = self.inner.lock();
        inner.log.sync_data().map_err(|e| StoreError::io(&log_path(&self.dir, inner.log_number), "syncing", e))?;
        let mut s = self.durable.0.lock();
        s.durable = s.written.clone();
        Ok(())
    }

    /// Makes everything durable, stops the background thread and lets the directory
    /// go (another engine may open it): nothing more is written.
    pub fn close(&self) -> Result<(), StoreError> {
        if self.inner.lock().broken.as_deref() == Some(CLOSED) {
            return Ok(());
        }
        let result = self.sync();
        self.durable.0.lock().stop = true;
        self.durable.1.notify_all();
        if let Some(h) = self.flusher.lock().take() {
            let _ = h.join();
        }
        self.inner.lock().broken = Some(CLOSED.to_string());
        // Released explicitly: a child process forked meanwhile may still share the
        // lock's file description until it execs, and would hold the lock that long.
        let _ = self._lock.unlock();
        result
    }

    fn broken(&self, why: &str) -> StoreError {
        StoreError::Broken { dir: self.dir.display().to_string(), why: why.to_string() }
    }

    /// Appends one record (built by `build`) to the log, durably if so configured. A
    /// failed write is cut back off the file, so that the log never holds a record the
    /// engine did not keep; if that fails too, the directory takes no more writes.
    fn append(&self, inner: &mut Inner, build: impl FnOnce(&mut Out)) -> Result<(), StoreError> {
        if let Some(why) = &inner.broken {
            return Err(self.broken(why));
        }
        if let Some(why) = &self.durable.0.lock().error {
            return Err(self.broken(why));
        }
        inner.out.bytes.clear();
        build(&mut inner.out);
        let path = || log_path(&self.dir, inner.log_number);
        let file: &File = &inner.log;
        if let Err(e) = self.write_within_space(file, &inner.out.bytes) {
            // Out of space, say: the part written is cut off, and the next commit may
            // find space again.
            let err = StoreError::io(&path(), "writing", e);
            if let Err(cut) = inner.log.set_len(inner.log_bytes) {
                inner.broken = Some(format!("{err}; then cutting the failed write off: {cut}"));
            }
            return Err(err);
        }
        if self.options.durability == Durability::Sync
            && let Err(e) = file.sync_data()
        {
            // After a failed fsync the system may have dropped the pages it could not
            // write, and a second fsync may wrongly succeed: nothing more is trusted.
            let err = StoreError::io(&path(), "making durable", e);
            inner.broken = Some(err.to_string());
            return Err(err);
        }
        inner.log_bytes += inner.out.bytes.len() as u64;
        let mut s = self.durable.0.lock();
        s.written = (inner.log_number, inner.log_bytes, inner.txn, inner.position.clone());
        if self.options.durability == Durability::Sync {
            s.durable = s.written.clone();
        } else {
            drop(s);
            self.durable.1.notify_one();
        }
        Ok(())
    }

    /// Writes `bytes` to the log, within the space a test left (see
    /// [`StateDir::limit_space`]).
    fn write_within_space(&self, mut file: &File, bytes: &[u8]) -> std::io::Result<()> {
        let space = self.space.load(std::sync::atomic::Ordering::Relaxed);
        if (bytes.len() as u64) <= space {
            file.write_all(bytes)?;
            if space != u64::MAX {
                self.space.store(space - bytes.len() as u64, std::sync::atomic::Ordering::Relaxed);
            }
            return Ok(());
        }
        file.write_all(&bytes[..space as usize])?;
        self.space.store(0, std::sync::atomic::Ordering::Relaxed);
        Err(std::io::Error::new(std::io::ErrorKind::StorageFull, "No space left on device (injected)"))
    }

    /// Makes the log's writes fail, as on a full disk, once `bytes` more were written
    /// (`None`: no limit). For tests of a full disk.
    #[doc(hidden)]
    pub fn limit_space(&self, bytes: Option<u64>) {
        self.space.store(bytes.unwrap_or(u64::MAX), std::sync::atomic::Ordering::Relaxed);
    }

    /// Starts log `n + 1` (the current one made durable first: a later log must never
    /// follow a hole).
    fn rotate(&self, inner: &mut Inner) -> Result<(), StoreError> {
        let old = log_path(&self.dir, inner.log_number);
        inner.log.sync_data().map_err(|e| StoreError::io(&old, "syncing", e))?;
        let next = inner.log_number + 1;
        let file = Arc::new(new_log(&self.dir, next)?);
        inner.log = file.clone();
        inner.log_number = next;
        inner.log_bytes = LOG_MAGIC.len() as u64;
        let mut s = self.durable.0.lock();
        s.durable = (next, inner.log_bytes, inner.txn, inner.position.clone());
        s.written = s.durable.clone();
        s.log = Some(file);
        Ok(())
    }
}

impl Journal for StateDir {
    fn table_created(&self, schema: &TableSchema) -> ciuf_engine::Result<()> {
        let mut inner = self.inner.lock();
        Ok(self.append(&mut inner, |out| records::encode(out, &Record::CreateTable(schema.clone())))?)
    }

    fn table_dropped(&self, name: &str) -> ciuf_engine::Result<()> {
        let mut inner = self.inner.lock();
        Ok(self.append(&mut inner, |out| records::encode(out, &Record::DropTable(name.to_string())))?)
    }

    fn committed(&self, tx: &Committed<'_>) -> ciuf_engine::Result<()> {
        let mut inner = self.inner.lock();
        let txn = inner.txn + 1;
        let (before_txn, before_pos) = (inner.txn, inner.position.clone());
        inner.txn = txn;
        if let Some(p) = tx.position {
            inner.position = Some(p.to_string());
        }
        let result = self.append(&mut inner, |out| {
            records::encode_commit(out, txn, tx.position, tx.tables.iter().map(|(name, z)| (*name, z.as_slice())))
        });
        if result.is_err() {
            (inner.txn, inner.position) = (before_txn, before_pos);
        }
        Ok(result?)
    }

    fn passed(&self, position: &str) -> ciuf_engine::Result<()> {
        let mut inner = self.inner.lock();
        if inner.position.as_deref() == Some(position) {
            return Ok(());
        }
        let before = inner.position.replace(position.to_string());
        let result =
            self.append(&mut inner, |out| records::encode(out, &Record::Passed { position: position.to_string() }));
        if result.is_err() {
            inner.position = before;
        }
        Ok(result?)
    }

    fn wants_checkpoint(&self) -> bool {
        let inner = self.inner.lock();
        let finished = inner.checkpointing.as_ref().is_none_or(std::thread::JoinHandle::is_finished);
        finished && inner.log_bytes > self.options.checkpoint_floor.max(inner.checkpoint_bytes)
    }

    fn checkpoint(&self, tables: Vec<TableContents>, states: Vec<SavedState>) -> ciuf_engine::Result<()> {
        let mut inner = self.inner.lock();
        if let Some(h) = inner.checkpointing.take() {
            // The previous one is finished (wants_checkpoint said so).
            match h.join() {
                Ok(Ok(bytes)) => inner.checkpoint_bytes = bytes,
                Ok(Err(e)) => return Err(e.into()),
                Err(_) => return Err(self.broken("the checkpoint writer panicked").into()),
            }
        }
        self.rotate(&mut inner)?;
        let number = inner.log_number;
        let snapshot = Snapshot {
            meta: inner.meta.clone(),
            views: inner.views.clone(),
            txn: inner.txn,
            position: inner.position.clone(),
            tables,
            states,
        };
        let dir = self.dir.clone();
        let handle = std::thread::Builder::new()
            .name("ciuf-checkpoint".into())
            .spawn(move || write_checkpoint(&dir, number, snapshot))
            .map_err(|e| StoreError::io(&self.dir, "starting the checkpoint writer of", e))?;
        inner.checkpointing = Some(handle);
        Ok(())
    }
}

impl Drop for StateDir {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

/// What a checkpoint holds.
struct Snapshot {
    meta: BTreeMap<String, String>,
    views: Vec<ViewRecord>,
    txn: u64,
    position: Option<String>,
    tables: Vec<TableContents>,
    states: Vec<SavedState>,
}

/// Writes checkpoint `number` and deletes the checkpoints and logs it replaces;
/// returns its size.
fn write_checkpoint(dir: &Path, number: u64, snapshot: Snapshot) -> Result<u64, StoreError> {
    let path = dir.join(format!("checkpoint-{number:08}.ciuf"));
    let tmp = dir.join(format!("checkpoint-{number:08}.ciuf.tmp"));
    let file = File::create(&tmp).map_err(|e| StoreError::io(&tmp, "creating", e))?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
    let mut out = Out::default();
    let put = |out: &mut Out, w: &mut std::io::BufWriter<File>| {
        let r = w.write_all(&out.bytes).map_err(|e| StoreError::io(&tmp, "writing", e));
        out.bytes.clear();
        r
    };
    out.bytes.extend_from_slice(CHECKPOINT_MAGIC);
    for (key, value) in &snapshot.meta {
        records::encode(&mut out, &Record::Meta { key: key.clone(), value: value.clone() });
    }
    put(&mut out, &mut w)?;
    for (schema, rows) in &snapshot.tables {
        records::encode(&mut out, &Record::CreateTable(TableSchema::clone(schema)));
        for chunk in rows.chunks(ROWS_PER_RECORD) {
            records::encode_rows(&mut out, &schema.name, chunk);
            put(&mut out, &mut w)?;
        }
        put(&mut out, &mut w)?;
    }
    for (node, rows) in &snapshot.states {
        for chunk in rows.chunks(ROWS_PER_RECORD) {
            records::encode_state(&mut out, STATE_LAYOUT, node, chunk);
            put(&mut out, &mut w)?;
        }
    }
    for v in &snapshot.views {
        records::encode(&mut out, &Record::ViewAdded(v.clone()));
    }
    records::encode(&mut out, &Record::End { txn: snapshot.txn, position: snapshot.position.clone() });
    put(&mut out, &mut w)?;
    let file = w.into_inner().map_err(|e| StoreError::io(&tmp, "writing", e.into_error()))?;
    file.sync_all().map_err(|e| StoreError::io(&tmp, "syncing", e))?;
    let bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
    drop(file);
    std::fs::rename(&tmp, &path).map_err(|e| StoreError::io(&path, "renaming into place", e))?;
    sync_dir(dir)?;
    // What it replaces: older checkpoints, and the logs before its own.
    for (n, p) in numbered(dir, "checkpoint-")? {
        if n < number {
            let _ = std::fs::remove_file(p);
        }
    }
    for (n, p) in numbered(dir, "log-")? {
        if n < number {
            let _ = std::fs::remove_file(p);
        }
    }
    Ok(bytes)
}

/// The grouped-durability thread: makes what was written durable every `every`.
fn flush_loop(durable: &(Mutex<Synced>, Condvar), every: Duration) {
    loop {
        let (log, written) = {
            let mut s = durable.0.lock();
            while !s.stop && s.written == s.durable {
                durable.1.wait(&mut s);
            }
            if s.stop {
                return;
            }
            (s.log.clone(), s.written.clone())
        };
        std::thread::sleep(every);
        let Some(log) = log else { continue };
        // Everything written to this log up to `written` (and perhaps more) is durable
        // after this; a rotation in between synced the old log itself.
        let result = log.sync_data();
        let mut s = durable.0.lock();
        match result {
            Ok(()) => {
                if s.written.0 == written.0 && s.durable.1 <= written.1 {
                    s.durable = written;
                }
            }
            Err(e) => s.error = Some(format!("making the log durable: {e}")),
        }
    }
}

fn log_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("log-{n:08}.ciuf"))
}

fn new_log(dir: &Path, n: u64) -> Result<File, StoreError> {
    let path = log_path(dir, n);
    let mut f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)
        .map_err(|e| StoreError::io(&path, "creating", e))?;
    f.write_all(LOG_MAGIC).and_then(|()| f.sync_all()).map_err(|e| StoreError::io(&path, "writing", e))?;
    sync_dir(dir)?;
    OpenOptions::new().append(true).open(&path).map_err(|e| StoreError::io(&path, "opening", e))
}

fn write_durably(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let mut f = File::create(path).map_err(|e| StoreError::io(path, "creating", e))?;
    f.write_all(bytes).and_then(|()| f.sync_all()).map_err(|e| StoreError::io(path, "writing", e))
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| StoreError::io(dir, "syncing", e))
}

use recover::numbered;

/// Removes a state directory: its files (a running engine must not hold it).
pub fn drop_state(dir: &Path) -> Result<(), StoreError> {
    if !dir.join("FORMAT").exists() {
        return Err(StoreError::Format { dir: dir.display().to_string(), found: "no FORMAT file".into() });
    }
    let lock = File::open(dir.join("LOCK")).map_err(|e| StoreError::io(dir, "opening the lock of", e))?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => return Err(StoreError::InUse(dir.display().to_string())),
        Err(std::fs::TryLockError::Error(e)) => return Err(StoreError::io(dir, "locking", e)),
    }
    std::fs::remove_dir_all(dir).map_err(|e| StoreError::io(dir, "removing", e))
}
