//! A durable engine: one opened with a state directory comes back where it was.
//!
//! The engine's journal (see `ciuf_engine::journal`) is the state directory
//! (`ciuf_connectors::store`): every table made or dropped and every transaction goes
//! there, with the source position, before any view sees it. What the journal cannot
//! see — the views, which are SQL — is recorded here, as the application registers and
//! drops them. On start-up the directory is read back: the tables are made and filled
//! in bulk, the views registered again in their order, and only then is the journal
//! connected, so that nothing restored is written twice.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ciuf_connectors::postgres::PostgresOptions;
use ciuf_connectors::sqlite::{SqliteOptions, SqliteSource, SqliteTarget};
use ciuf_connectors::store::{Durability, Recovered, StateDir, StoreOptions, ViewRecord};
use ciuf_engine::{Change, Dialect, Error, Result, RowData, View, ViewId};
use parking_lot::Mutex;

use crate::engine::{Engine, ViewOptions};

/// How [`Engine::open_with`] opens an engine.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// Where the engine keeps its state so that it restarts where it was, without a
    /// new snapshot of its source. `None`: nothing is kept (as [`Engine::open`]).
    pub state_dir: Option<PathBuf>,
    /// When a commit is durable (with a state directory).
    pub durability: Durability,
    /// The log is checkpointed once it is larger than this many bytes and than the
    /// last checkpoint (0: the default, 64 MiB).
    pub checkpoint_floor: u64,
    /// How a SQLite file is followed.
    pub sqlite: SqliteOptions,
    /// The slot and publication of a PostgreSQL source.
    pub postgres: PostgresOptions,
    /// The worker threads large transactions (loads, snapshots, catch-up batches) run
    /// on; `None`: the default (`CIUF_THREADS`, else the machine's cores up to 8). See
    /// [`Engine::set_threads`].
    pub threads: Option<usize>,
}

/// The durable side of an engine: its state directory and the views recorded there.
#[derive(Debug)]
pub(crate) struct Durable {
    pub(crate) state: Arc<StateDir>,
    /// The views recorded, with the view each registered.
    recorded: Mutex<Vec<(ViewId, ViewRecord)>>,
    /// Views recorded that could not be registered again at start-up, and why.
    unrestored: Vec<(ViewRecord, Error)>,
}

impl Engine {
    /// An engine for the database at `url` (as [`Engine::open`]), durable if
    /// `options.state_dir` is set: its tables, views and source position are kept
    /// there, and a later `open_with` of the same directory comes back where this one
    /// was — without a new snapshot of the source.
    pub fn open_with(url: &str, options: OpenOptions) -> Result<Engine> {
        let threads = options.threads;
        let Some(dir) = options.state_dir.clone() else {
            let engine = match scheme_of(url).as_str() {
                "sqlite" => Engine::open_sqlite(url, options.sqlite),
                "postgres" => Engine::open_postgres(url, options.postgres),
                _ => Engine::open(url),
            }?;
            return Ok(engine.with_threads(threads));
        };
        let store = StoreOptions {
            durability: options.durability,
            checkpoint_floor: if options.checkpoint_floor == 0 {
                StoreOptions::default().checkpoint_floor
            } else {
                options.checkpoint_floor
            },
        };
        match scheme_of(url).as_str() {
            "memory" => {
                let (state, recovered) = StateDir::open(&dir, store)?;
                check_source(&state, "memory:", &recovered)?;
                let dialect = dialect_of(&recovered).unwrap_or(Dialect::Sqlite);
                state.set_meta("dialect", dialect_name(dialect))?;
                Engine::restore(Engine::with_dialect(dialect).with_threads(threads), state, recovered)
            }
            "sqlite" => match ciuf_connectors::sqlite::parse_url(url)? {
                SqliteTarget::Memory => Engine::open_with("memory:", options),
                SqliteTarget::File(path) => Engine::restore_sqlite(&path, &dir, store, options.sqlite, threads),
            },
            "postgres" => Engine::restore_postgres(url, &dir, store, options.postgres, threads),
            other => Err(Error::Source { message: format!("unknown database URL scheme {other:?}"), retryable: false }),
        }
    }

    /// An engine fed by the application's own events (as [`Engine::in_memory`]) that
    /// keeps its tables and views in `dir`, each transaction durable before `apply`
    /// returns: reopened after a restart or a crash, it holds every transaction whose
    /// `apply` returned.
    pub fn in_memory_durable(dir: impl AsRef<Path>) -> Result<Engine> {
        Engine::open_with(
            "memory:",
            OpenOptions { state_dir: Some(dir.as_ref().to_path_buf()), ..OpenOptions::default() },
        )
    }

    /// The engine's state directory, if it is durable.
    pub fn state_dir(&self) -> Option<&Path> {
        self.durable.as_ref().map(|d| d.state.dir())
    }

    /// Makes every transaction applied so far durable now (with
    /// [`Durability::Grouped`], they are within a few milliseconds anyway).
    pub fn sync(&self) -> Result<()> {
        match &self.durable {
            Some(d) => Ok(d.state.sync()?),
            None => Ok(()),
        }
    }

    /// Writes a checkpoint of every table now and waits until it is durable, so that
    /// the next restart reads it instead of the log written since the last one
    /// (checkpoints are also written on their own as the log grows). Does nothing
    /// without a state directory.
    pub fn checkpoint(&self) -> Result<()> {
        let Some(d) = &self.durable else { return Ok(()) };
        self.database().checkpoint()?;
        Ok(d.state.sync()?)
    }

    /// The state directory itself (for tests that damage it or fill its disk).
    #[doc(hidden)]
    pub fn state_handle(&self) -> Option<Arc<StateDir>> {
        self.durable.as_ref().map(|d| d.state.clone())
    }

    /// The number of the last transaction the state directory holds, and of the last
    /// that is durable (both 0 without a state directory).
    pub fn durable_txn(&self) -> (u64, u64) {
        match &self.durable {
            Some(d) => (d.state.last_txn(), d.state.durable_position().0),
            None => (0, 0),
        }
    }

    /// The views a durable engine recorded but could not register again when it
    /// started (their SQL, and why); they stay recorded and are tried at the next start.
    pub fn unrestored_views(&self) -> Vec<(String, Error)> {
        match &self.durable {
            Some(d) => {
                d.unrestored.iter().map(|(v, e)| (v.name.clone().unwrap_or_else(|| v.sql.clone()), e.clone())).collect()
            }
            None => Vec::new(),
        }
    }

    /// A durable engine following the SQLite file at `path`: its tables restored from
    /// `dir` and followed on from the position kept there.
    fn restore_sqlite(
        path: &Path,
        dir: &Path,
        store: StoreOptions,
        options: SqliteOptions,
        threads: Option<usize>,
    ) -> Result<Engine> {
        let canonical = path.canonicalize().map_err(|e| Error::Source {
            message: format!("cannot open the SQLite file {}: {e}", path.display()),
            retryable: false,
        })?;
        let (state, mut recovered) = StateDir::open(dir, store)?;
        check_source(&state, &format!("sqlite://{}", canonical.display()), &recovered)?;
        state.set_meta("dialect", "sqlite")?;
        let partial = drop_interrupted(&mut recovered, ciuf_connectors::sqlite::LOADING_KEY);
        let mut engine = Engine::with_dialect(Dialect::Sqlite).with_threads(threads);
        let (restored, unrestored) = engine.restore_state(&state, recovered)?;
        for name in &partial {
            ciuf_engine::Journal::table_dropped(&*state, name)?;
        }
        state.set_meta(ciuf_connectors::sqlite::LOADING_KEY, "")?;
        let source = SqliteSource::open_durable(&canonical, options, engine.database().clone(), Some(state.clone()))?;
        engine.source = Some(Arc::new(source));
        Ok(engine.finish_restore(state, restored, unrestored))
    }

    /// A durable engine following the PostgreSQL database at `url`: its tables
    /// restored from `dir`, the stream resumed on the kept slot from the kept position.
    fn restore_postgres(
        url: &str,
        dir: &Path,
        store: StoreOptions,
        options: PostgresOptions,
        threads: Option<usize>,
    ) -> Result<Engine> {
        let identity = ciuf_connectors::postgres::identity(url)?;
        let (state, mut recovered) = StateDir::open(dir, store)?;
        check_source(&state, &identity, &recovered)?;
        state.set_meta("dialect", "postgres")?;
        if recovered.position.is_none() {
            // Tables kept without a position (a first start died between its copies
            // and their position, before that was recorded with them): nothing can
            // follow them from where they are, so they are loaded again.
            let names: Vec<String> = recovered.tables.iter().map(|t| t.schema.name.clone()).collect();
            recovered.meta.insert(ciuf_connectors::postgres::LOADING_KEY.to_string(), names.join("\n"));
        }
        let partial = drop_interrupted(&mut recovered, ciuf_connectors::postgres::LOADING_KEY);
        let mut engine = Engine::with_dialect(Dialect::Postgres).with_threads(threads);
        let (restored, unrestored) = engine.restore_state(&state, recovered)?;
        for name in &partial {
            ciuf_engine::Journal::table_dropped(&*state, name)?;
        }
        state.set_meta(ciuf_connectors::postgres::LOADING_KEY, "")?;
        let source = ciuf_connectors::postgres::PostgresSource::open_durable(
            url,
            options,
            engine.database().clone(),
            Some(state.clone()),
        )?;
        engine.source = Some(Arc::new(source));
        Ok(engine.finish_restore(state, restored, unrestored))
    }

    /// Registers the views that could not be before the source ran (their tables were
    /// not kept), then makes the engine durable.
    fn finish_restore(
        mut self,
        state: Arc<StateDir>,
        mut recorded: Vec<(ViewId, ViewRecord)>,
        unrestored: Vec<(ViewRecord, Error)>,
    ) -> Engine {
        let mut still = Vec::new();
        for (record, _) in unrestored {
            match self.register_recorded(&record) {
                Ok(view) => recorded.push((view.id(), record)),
                Err(e) => still.push((record, e)),
            }
        }
        self.durable = Some(Arc::new(Durable { state, recorded: Mutex::new(recorded), unrestored: still }));
        self
    }

    /// Builds the engine `fresh` back from what a state directory holds.
    fn restore(mut fresh: Engine, state: Arc<StateDir>, recovered: Recovered) -> Result<Engine> {
        let (recorded, unrestored) = fresh.restore_state(&state, recovered)?;
        fresh.durable = Some(Arc::new(Durable { state, recorded: Mutex::new(recorded), unrestored }));
        Ok(fresh)
    }

    /// Makes the tables a state directory holds and registers its views again, then
    /// connects the directory as the journal. Returns the views registered and those
    /// that could not be, with why.
    ///
    /// With operator states saved in the checkpoint, the tables are filled as the
    /// checkpoint holds them, the views registered over them take those states instead
    /// of computing them, and what the log changed after the checkpoint is applied as
    /// one transaction. Without, the views are registered over the empty tables and
    /// the rows loaded in bulk (the views follow, as they would a load).
    #[allow(clippy::type_complexity)]
    fn restore_state(
        &self,
        state: &Arc<StateDir>,
        recovered: Recovered,
    ) -> Result<(Vec<(ViewId, ViewRecord)>, Vec<(ViewRecord, Error)>)> {
        let db = self.database().clone();
        let with_states = !recovered.states.is_empty();
        let mut contents = Vec::with_capacity(recovered.tables.len());
        let mut after = Vec::new();
        for table in recovered.tables {
            let id = db.create_table(table.schema)?;
            if with_states {
                db.restore_rows(id, table.rows).map_err(|e| not_loading(state, e))?;
                after.push((id, table.after));
            } else {
                contents.push((id, table.rows));
            }
        }
        db.offer_states(recovered.states);
        let mut recorded = Vec::new();
        let mut unrestored = Vec::new();
        for record in recovered.views {
            match self.register_recorded(&record) {
                Ok(view) => recorded.push((view.id(), record)),
                Err(e) => unrestored.push((record, e)),
            }
        }
        db.end_restore();
        if with_states {
            // Deletions first: an update's new row may hold the key its old row held.
            let mut changes = Vec::new();
            for deletions in [true, false] {
                for (id, rows) in &after {
                    for (row, w) in rows.iter().filter(|(_, w)| (*w < 0) == deletions) {
                        for _ in 0..w.unsigned_abs() {
                            let data = RowData::from(row.clone());
                            changes.push(if deletions { Change::delete(*id, data) } else { Change::insert(*id, data) });
                        }
                    }
                }
            }
            load(&db, state, changes)?;
        }
        for (id, rows) in contents {
            let mut batch = Vec::with_capacity(LOAD_BATCH.min(rows.len()));
            for (row, weight) in rows {
                for _ in 0..weight {
                    batch.push(Change::insert(id, RowData::from(row.clone())));
                }
                if batch.len() >= LOAD_BATCH {
                    load(&db, state, std::mem::take(&mut batch))?;
                }
            }
            load(&db, state, batch)?;
        }
        db.set_journal(Some(state.clone()));
        Ok((recorded, unrestored))
    }

    /// Registers a recorded view as it was first registered.
    fn register_recorded(&self, record: &ViewRecord) -> Result<View> {
        match (&record.name, &record.partial) {
            (Some(name), _) => match ciuf_sql::parse(&record.sql)?.as_slice() {
                [ciuf_sql::Statement::CreateView { .. }] => match self.execute(&record.sql)? {
                    crate::Outcome::View(v) => Ok(v),
                    _ => Err(Error::Internal(format!("CREATE VIEW {name} registered no view"))),
                },
                _ => self.create_view(name, &record.sql),
            },
            (None, Some(limits)) => self.from_sql_with(&record.sql, ViewOptions { partial: Some(*limits) }),
            (None, None) => self.from_sql(&record.sql),
        }
    }

    /// Records a view just registered (a durable engine registers it again on
    /// restart). If the record cannot be written, the view is dropped and the error
    /// returned: the engine never holds a view its state directory lacks.
    pub(crate) fn record_view(&self, view: &View, name: Option<&str>, sql: &str, options: &ViewOptions) -> Result<()> {
        let Some(d) = &self.durable else { return Ok(()) };
        let record = ViewRecord { name: name.map(str::to_string), sql: sql.to_string(), partial: options.partial };
        if let Err(e) = d.state.view_added(record.clone()) {
            let _ = self.database().drop_view_handle(view);
            return Err(e.into());
        }
        d.recorded.lock().push((view.id(), record));
        Ok(())
    }

    /// Records that a view was dropped (every record that registered it).
    pub(crate) fn record_drop(&self, id: ViewId) -> Result<()> {
        let Some(d) = &self.durable else { return Ok(()) };
        let gone: Vec<ViewRecord> = {
            let mut recorded = d.recorded.lock();
            let gone = recorded.iter().filter(|(v, _)| *v == id).map(|(_, r)| r.clone()).collect();
            recorded.retain(|(v, _)| *v != id);
            gone
        };
        for r in gone {
            d.state.view_dropped(r.name.as_deref(), &r.sql)?;
        }
        Ok(())
    }

    /// Makes the state directory durable and lets it go (at `close`), writing a
    /// checkpoint first if the log has grown past [`CLOSE_CHECKPOINT_FROM`]: the next
    /// start then takes the views' state from it instead of computing it again.
    pub(crate) fn close_state(&self) {
        if let Some(d) = &self.durable {
            if d.state.log_bytes() >= CLOSE_CHECKPOINT_FROM {
                let _ = self.database().checkpoint();
            }
            let _ = d.state.close();
        }
    }
}

/// Takes out of `recovered` the tables whose load a crash interrupted (named in the
/// meta record `key`): what was journaled of them is not kept, and a view that names
/// them loads them again. Returns their names.
fn drop_interrupted(recovered: &mut Recovered, key: &str) -> Vec<String> {
    let interrupted: Vec<String> = recovered
        .meta
        .get(key)
        .map(|names| names.lines().filter(|n| !n.is_empty()).map(str::to_string).collect())
        .unwrap_or_default();
    let partial: Vec<String> =
        recovered.tables.iter().map(|t| t.schema.name.clone()).filter(|n| interrupted.contains(n)).collect();
    if !partial.is_empty() {
        // The states were computed from those tables too.
        recovered.forget_states();
    }
    recovered.tables.retain(|t| !partial.contains(&t.schema.name));
    partial
}

/// Bytes of log from which closing a durable engine writes a checkpoint (about
/// 100,000 events of the reference workload: replaying fewer at the next start costs
/// less than writing every table again now).
const CLOSE_CHECKPOINT_FROM: u64 = 4 << 20;

/// Rows per engine transaction while a restart fills the tables.
const LOAD_BATCH: usize = 100_000;

/// Applies one batch of restored rows.
fn load(db: &ciuf_engine::Database, state: &StateDir, batch: Vec<Change>) -> Result<()> {
    db.apply(batch).map_err(|e| not_loading(state, e))
}

/// The error of rows kept in `state` that do not load.
fn not_loading(state: &StateDir, e: ciuf_engine::Error) -> Error {
    Error::State { message: format!("the rows kept in {} do not load: {e}", state.dir().display()), retryable: false }
}

/// `memory`, `sqlite` or `postgres` for a URL (as [`Engine::open`] reads it).
fn scheme_of(url: &str) -> String {
    let scheme = url.split_once(':').map_or(url, |(s, _)| s).to_ascii_lowercase();
    match scheme.as_str() {
        "" | "memory" => "memory".into(),
        "postgres" | "postgresql" => "postgres".into(),
        s if s.starts_with("postgresql+") || s.starts_with("postgres+") => "postgres".into(),
        s if s == "sqlite" || s.starts_with("sqlite+") => "sqlite".into(),
        other => other.into(),
    }
}

fn dialect_name(d: Dialect) -> &'static str {
    match d {
        Dialect::Sqlite => "sqlite",
        Dialect::Postgres => "postgres",
    }
}

fn dialect_of(recovered: &Recovered) -> Option<Dialect> {
    match recovered.meta.get("dialect").map(String::as_str) {
        Some("postgres") => Some(Dialect::Postgres),
        Some("sqlite") => Some(Dialect::Sqlite),
        _ => None,
    }
}

/// Refuses a state directory kept for another source; records the source in a new one.
fn check_source(state: &StateDir, source: &str, recovered: &Recovered) -> Result<()> {
    match recovered.meta.get("source") {
        Some(s) if s != source => Err(Error::State {
            message: format!(
                "the state directory {} holds the state of {s}, not of {source}: open it with that, or use another \
                 directory",
                state.dir().display()
            ),
            retryable: false,
        }),
        Some(_) => Ok(()),
        None => Ok(state.set_meta("source", source)?),
    }
}
