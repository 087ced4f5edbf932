//! The PostgreSQL source: a thread that owns the connections, loads tables from a
//! consistent snapshot, and streams every committed transaction into the engine.
//!
//! ```text
//!  first tables   CREATE PUBLICATION … FOR TABLE …; CREATE_REPLICATION_SLOT … EXPORT_SNAPSHOT
//!                 COPY each table under that snapshot; START_REPLICATION at the slot's
//!                 consistent point: no gap, no duplicate
//!  later tables   ALTER PUBLICATION … ADD TABLE; a temporary slot's snapshot for the COPY;
//!                 the stream skips that table's changes committed before the temporary
//!                 slot's consistent point (they are in the copy)
//!  streaming      each transaction applied at its Commit; the slot acknowledged up to the
//!                 last applied commit only; keepalives answered
//!  dropped link   reconnect with backoff; START_REPLICATION from the last applied commit
//! ```

use std::sync::Arc;
use std::sync::mpsc as sync_mpsc;
use std::time::Duration;

use ciuf_engine::{Change, Database, RowData, TableId};
use parking_lot::Mutex;
use tokio::sync::mpsc;
use tokio_postgres::{Client, NoTls};

use super::catalog::{PgTable, discover, query_error};
use super::config::{PostgresOptions, Url};
use super::copy::{copy_table, read_rows};
use super::error::PgError;
use super::pgoutput::decode;
use super::stream::{Followed, Follower, Step};
use super::wire::{Replication, WireConnection, format_lsn, parse_lsn};
use crate::SourceStatus as Status;
use crate::feed::{Batch, Feed};
use crate::store::StateDir;

/// Session settings under which every value arrives in one exact text form.
const SESSION: [(&str, &str); 4] =
    [("client_encoding", "UTF8"), ("DateStyle", "ISO, MDY"), ("TimeZone", "UTC"), ("extra_float_digits", "3")];

/// How often the slot is acknowledged while transactions arrive.
const STATUS_EVERY: Duration = Duration::from_millis(200);

/// Every how many status ticks the followed tables are checked for a DROP TABLE
/// (which the stream does not announce).
const DROP_CHECK_EVERY: u64 = 10;

/// How long a clean shutdown may take (ending the stream, dropping ciuf's slot and
/// publication) before the source gives up on it and lets the process go.
const SHUTDOWN_PATIENCE: Duration = Duration::from_secs(15);

enum Command {
    Add(Vec<String>, sync_mpsc::SyncSender<Result<(), PgError>>),
    Stop(sync_mpsc::SyncSender<()>),
}

/// A running PostgreSQL source feeding one database.
#[derive(Debug)]
pub struct PostgresSource {
    commands: mpsc::UnboundedSender<Command>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    status: Arc<Mutex<Status>>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Add(names, _) => write!(f, "Add({names:?})"),
            Command::Stop(_) => f.write_str("Stop"),
        }
    }
}

impl PostgresSource {
    /// Connects to the database at `url` and checks that it can replicate (wal_level,
    /// the role's rights). Tables are added when views need them ([`Self::add_tables`]).
    pub fn open(url: &str, options: PostgresOptions, db: Database) -> Result<PostgresSource, PgError> {
        PostgresSource::open_durable(url, options, db, None)
    }

    /// [`PostgresSource::open`] for a durable engine, whose database journals into
    /// `state`. The slot is then permanent, named in the state directory and kept
    /// across restarts; a directory that followed this database before resumes the
    /// stream from the position it holds (the tables restored into the database are
    /// followed on, not copied), and the slot is acknowledged only up to what the
    /// directory has made durable.
    pub fn open_durable(
        url: &str,
        options: PostgresOptions,
        db: Database,
        state: Option<Arc<StateDir>>,
    ) -> Result<PostgresSource, PgError> {
        let url = Url::parse(url)?;
        let status = Arc::new(Mutex::new(Status::default()));
        let (tx, rx) = mpsc::unbounded_channel();
        let (ready_tx, ready_rx) = sync_mpsc::sync_channel(1);
        let task_status = Arc::clone(&status);
        let thread = std::thread::Builder::new()
            .name("ciuf-postgres".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = ready_tx.send(Err(PgError::Config(format!("cannot start the source's runtime: {e}"))));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let task = match Task::connect(url, options, db, task_status, state).await {
                        Ok(t) => {
                            let _ = ready_tx.send(Ok(()));
                            t
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    task.run(rx).await;
                });
            })
            .map_err(|e| PgError::Config(format!("cannot start the source's thread: {e}")))?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(PostgresSource { commands: tx, thread: Mutex::new(Some(thread)), status }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => Err(PgError::Config("the source's thread ended before connecting".into())),
        }
    }

    /// Makes the tables `names` (as views name them) tables of the database: discovered
    /// in the catalog, copied from a consistent snapshot, then followed. Names that are
    /// not tables of the database are left out (the view then reports them unknown).
    pub fn add_tables(&self, names: &[String]) -> Result<(), PgError> {
        let (tx, rx) = sync_mpsc::sync_channel(1);
        self.commands.send(Command::Add(names.to_vec(), tx)).map_err(|_| self.stopped())?;
        rx.recv().map_err(|_| self.stopped())?
    }

    /// What the source is doing.
    pub fn status(&self) -> Status {
        self.status.lock().clone()
    }

    /// Stops following: ends the stream and drops the slot and publication ciuf made.
    pub fn close(&self) {
        let (tx, rx) = sync_mpsc::sync_channel(1);
        let stopped = match self.commands.send(Command::Stop(tx)) {
            Ok(()) => rx.recv_timeout(SHUTDOWN_PATIENCE + Duration::from_secs(5)).is_ok(),
            Err(_) => true, // The task has ended already.
        };
        let thread = self.thread.lock().take();
        match thread {
            Some(t) if stopped => {
                let _ = t.join();
            }
            // Never hang the caller (often a process on its way out): the thread is
            // left to end on its own.
            Some(_) => eprintln!(
                "ciuf: the PostgreSQL source did not stop within {} s; its slot and publication may be left on the server",
                SHUTDOWN_PATIENCE.as_secs()
            ),
            None => {}
        }
    }

    fn stopped(&self) -> PgError {
        let why = self.status.lock().error.clone().unwrap_or_else(|| "it was closed".into());
        PgError::Config(format!("the PostgreSQL source has stopped: {why}"))
    }
}

impl Drop for PostgresSource {
    fn drop(&mut self) {
        self.close();
    }
}

/// The source's state, owned by its thread.
struct Task {
    url: Url,
    feed: Feed,
    status: Arc<Mutex<Status>>,
    control: Client,
    /// The slot streamed from. Without a state directory it is TEMPORARY: the server
    /// drops it when the stream's connection ends, however the process ends (even
    /// SIGKILL), so nothing holds WAL after ciuf is gone; a lost connection then costs
    /// a new snapshot (`resnapshot`), whose difference is applied in one transaction.
    slot: String,
    /// Whether the slot is temporary (no state directory).
    temporary: bool,
    /// The slot's name as configured; a temporary slot made again after a lost
    /// connection gets this with a generation number.
    slot_base: String,
    generations: u64,
    /// The tables followed, by relation oid, as discovered (for a new snapshot).
    loaded: std::collections::HashMap<u32, (TableId, PgTable)>,
    publication: String,
    own_publication: bool,
    /// The stream, once the first tables are loaded.
    stream: Option<WireConnection>,
    started: bool,
    follower: Follower,
    /// The end LSN of the last applied commit (what the slot is acknowledged up to).
    applied: u64,
    /// The last acknowledged LSN.
    acked: u64,
    /// Temporary slots made to add tables while streaming, so far (each gets its own
    /// name: the server drops one only after its session has ended).
    additions: u64,
    /// A durable engine's state directory (see `PostgresSource::open_durable`).
    state: Option<Arc<StateDir>>,
}

impl Task {
    async fn connect(
        url: Url,
        options: PostgresOptions,
        db: Database,
        status: Arc<Mutex<Status>>,
        state: Option<Arc<StateDir>>,
    ) -> Result<Task, PgError> {
        let control = control_client(&url).await?;
        let wal_level: String = control.query_one("SHOW wal_level", &[]).await.map_err(query_error)?.get(0);
        if wal_level != "logical" {
            return Err(PgError::Config(format!(
                "PostgreSQL has wal_level = {wal_level}; logical replication needs wal_level = logical: \
                 ALTER SYSTEM SET wal_level = logical (or set it in postgresql.conf) and restart PostgreSQL"
            )));
        }
        let row = control
            .query_one("SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user", &[])
            .await
            .map_err(query_error)?;
        if !row.get::<_, bool>(0) {
            return Err(PgError::Config(format!(
                "role {} may not replicate: ALTER ROLE {} REPLICATION (run as a superuser)",
                url.target.user, url.target.user
            )));
        }
        let suffix = format!(
            "{}_{}",
            std::process::id(),
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos())
        );
        let mut slot = options.slot.clone().unwrap_or_else(|| format!("ciuf_{suffix}"));
        let (mut publication, mut own_publication) = match options.publication.clone() {
            Some(p) => (p, false),
            None => (format!("ciuf_{suffix}"), true),
        };
        let mut resume_at = None;
        if let Some(state) = &state {
            // The names this directory's slot and publication were given, kept.
            let kept = |key: &str| state.meta(key).filter(|v| !v.is_empty());
            let stored = |e: crate::store::StoreError| PgError::Config(e.to_string());
            match kept(SLOT_KEY) {
                Some(kept) if options.slot.as_ref().is_some_and(|s| *s != kept) => {
                    return Err(PgError::Config(format!(
                        "the state directory {} follows with slot {kept}, not {}",
                        state.dir().display(),
                        options.slot.unwrap_or_default()
                    )));
                }
                Some(kept) => {
                    slot = kept;
                    publication = kept_or(kept_publication(state), publication);
                    own_publication = state.meta(OWN_PUBLICATION_KEY).as_deref() == Some("1");
                    resume_at = state.durable_position().1.as_deref().and_then(parse_lsn);
                }
                None => {
                    state.set_meta(SLOT_KEY, &slot).map_err(stored)?;
                    state.set_meta(PUBLICATION_KEY, &publication).map_err(stored)?;
                    state.set_meta(OWN_PUBLICATION_KEY, if own_publication { "1" } else { "0" }).map_err(stored)?;
                }
            }
        }
        let mut task = Task {
            url,
            feed: Feed::new(db),
            status,
            control,
            slot_base: slot.clone(),
            slot,
            generations: 0,
            loaded: std::collections::HashMap::new(),
            publication,
            own_publication,
            stream: None,
            started: false,
            follower: Follower::default(),
            applied: 0,
            acked: 0,
            additions: 0,
            temporary: state.is_none(),
            state,
        };
        if let Some(lsn) = resume_at {
            task.restore(lsn).await?;
        }
        Ok(task)
    }

    /// A durable engine restarted at `lsn`: the tables restored into the database are
    /// found in the catalog again (a table dropped or altered meanwhile fails its
    /// views) and followed, and the stream resumes from `lsn` at the first turn of the
    /// run loop.
    async fn restore(&mut self, lsn: u64) -> Result<(), PgError> {
        for name in self.feed.table_names() {
            if ciuf_engine::journal::is_internal(&name) {
                continue;
            }
            let id = self.feed.table_id(&name).map_err(|e| PgError::Schema(e.to_string()))?;
            let held = self.feed.table_schema(&name).map_err(|e| PgError::Schema(e.to_string()))?;
            match discover(&self.control, &name).await? {
                Some(t) if t.schema.columns == held.columns => {
                    let skip_before = self
                        .state
                        .as_ref()
                        .and_then(|s| s.meta(&skip_key(&name)))
                        .and_then(|v| parse_lsn(&v))
                        .unwrap_or(0);
                    self.follow(&t, id, skip_before);
                }
                Some(_) => {
                    self.feed.fail_table(id, "its columns changed in PostgreSQL while ciuf was stopped");
                }
                None => {
                    self.feed.fail_table(id, "it was dropped in PostgreSQL while ciuf was stopped");
                }
            }
        }
        self.started = true;
        self.applied = lsn;
        self.status.lock().position = format_lsn(lsn);
        Ok(())
    }

    fn follow(&mut self, t: &PgTable, id: TableId, skip_before: u64) {
        self.loaded.insert(t.oid, (id, t.clone()));
        self.follower.follow(
            t.oid,
            Followed {
                id,
                name: t.schema.name.clone(),
                columns: t.schema.columns.iter().map(|c| (c.name.clone(), c.data_type)).collect(),
                keyed: t.schema.primary_key.is_some(),
                skip_before,
            },
        );
    }

    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        let mut ticker = tokio::time::interval(STATUS_EVERY);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut backoff = Duration::from_millis(50);
        let mut ticks = 0u64;
        loop {
            if self.started && self.stream.is_none() {
                // Reconnect, with backoff, while still answering commands.
                tokio::select! {
                    cmd = commands.recv() => if self.command(cmd).await { break },
                    _ = tokio::time::sleep(backoff) => {
                        match self.resume().await {
                            Ok(()) => backoff = Duration::from_millis(50),
                            Err(e) if e.retryable() || is_slot_busy(&e) => {
                                backoff = (backoff * 2).min(Duration::from_secs(5));
                            }
                            Err(e) => self.fail(e),
                        }
                    }
                }
                continue;
            }
            let Some(stream) = self.stream.as_mut() else {
                let cmd = commands.recv().await;
                if self.command(cmd).await {
                    break;
                }
                continue;
            };
            tokio::select! {
                cmd = commands.recv() => if self.command(cmd).await { break },
                msg = stream.next_replication() => {
                    if let Err(e) = self.message(msg).await {
                        if e.retryable() {
                            self.disconnected();
                        } else {
                            self.fail(e);
                        }
                    }
                }
                _ = ticker.tick() => {
                    if self.acknowledge(false).await.is_err() {
                        self.disconnected();
                    }
                    ticks += 1;
                    if ticks.is_multiple_of(DROP_CHECK_EVERY) {
                        self.check_dropped().await;
                    }
                }
            }
        }
    }

    /// Handles a command; true when the task should end.
    async fn command(&mut self, cmd: Option<Command>) -> bool {
        match cmd {
            Some(Command::Add(names, reply)) => {
                let stopped = self.status.lock().error.clone();
                let result = match stopped {
                    Some(e) => Err(PgError::Config(format!("the PostgreSQL source has stopped: {e}"))),
                    None => self.add(&names).await,
                };
                let _ = reply.send(result);
                false
            }
            Some(Command::Stop(reply)) => {
                let _ = tokio::time::timeout(SHUTDOWN_PATIENCE, self.shutdown()).await;
                let _ = reply.send(());
                true
            }
            None => {
                let _ = tokio::time::timeout(SHUTDOWN_PATIENCE, self.shutdown()).await;
                true
            }
        }
    }

    async fn message(&mut self, msg: Result<Replication, PgError>) -> Result<(), PgError> {
        match msg? {
            Replication::XLogData { data, .. } => {
                let message = decode(data).map_err(|e| PgError::Protocol(e.to_string()))?;
                let feed = &self.feed;
                match self.follower.handle(message, &mut |table| truncate_changes(feed, table))? {
                    Step::Continue => {}
                    Step::Failed { table, why } => feed.fail_table(table, &why),
                    Step::Committed { changes, lsn } => {
                        if !changes.is_empty() {
                            feed.apply(Batch { changes, position: format_lsn(lsn) }).map_err(|e| {
                                PgError::Schema(format!("a replicated transaction does not apply to the views: {e}"))
                            })?;
                        }
                        self.applied = lsn;
                        let mut s = self.status.lock();
                        s.position = format_lsn(lsn);
                        s.transactions += 1;
                    }
                }
            }
            Replication::Keepalive { wal_end, reply } => {
                // Everything before wal_end has been sent; with no transaction open,
                // all of it that concerns the views is applied.
                if !self.follower.in_transaction() && wal_end > self.applied {
                    self.applied = wal_end;
                    self.status.lock().position = format_lsn(wal_end);
                }
                if reply {
                    self.acknowledge(true).await?;
                }
            }
            Replication::Done => {
                return Err(PgError::Connect {
                    target: self.url.target.host.clone(),
                    reason: "the server ended the stream".into(),
                });
            }
        }
        Ok(())
    }

    /// Sends a standby status update if there is news (or `force`).
    async fn acknowledge(&mut self, force: bool) -> Result<(), PgError> {
        let ack = self.acknowledgeable();
        if let Some(stream) = self.stream.as_mut()
            && (force || ack != self.acked)
        {
            stream.standby_status(ack, ack, ack, false).await?;
            self.acked = ack;
        }
        Ok(())
    }

    /// The position the slot may be acknowledged up to: what is applied, or with a
    /// state directory what is durable there (a position passed without a change,
    /// by transactions of other tables or keepalives, is recorded first, so that the
    /// slot does not hold WAL through a quiet spell).
    fn acknowledgeable(&self) -> u64 {
        let Some(state) = &self.state else { return self.applied };
        let durable = || state.durable_position().1.as_deref().and_then(parse_lsn).unwrap_or(0);
        if self.applied > durable() && !self.follower.in_transaction() {
            let _ = self.feed.pass(&format_lsn(self.applied));
        }
        durable().min(self.applied)
    }

    fn disconnected(&mut self) {
        self.stream = None;
        self.follower.reset();
        let mut s = self.status.lock();
        s.streaming = false;
        s.reconnects += 1;
    }

    fn fail(&mut self, e: PgError) {
        self.stream = None;
        self.started = false;
        let mut s = self.status.lock();
        s.streaming = false;
        s.error = Some(e.to_string());
    }

    /// Reconnects the stream from the last applied commit (a temporary slot is gone
    /// with the connection: a new one is made, from a new snapshot).
    async fn resume(&mut self) -> Result<(), PgError> {
        if self.temporary {
            return self.resnapshot().await;
        }
        let mut stream = WireConnection::connect(&self.url.target, true, &SESSION).await?;
        match stream.start_replication(&self.start_command(self.applied)).await {
            // The slot is gone (dropped by hand, or by max_slot_wal_keep_size): the
            // tables are read again under a new one.
            Err(PgError::Server(e)) if e.code == "42704" => {
                stream.terminate().await;
                return self.resnapshot().await;
            }
            other => other?,
        }
        self.stream = Some(stream);
        self.acked = 0;
        self.status.lock().streaming = true;
        Ok(())
    }

    /// A new temporary slot and its snapshot: every followed table read again under
    /// it and the difference from what the engine holds applied as one transaction,
    /// then the stream started at the slot's consistent point. Nothing lost (the
    /// snapshot has every commit before that point), nothing twice (the stream has
    /// only those after it).
    async fn resnapshot(&mut self) -> Result<(), PgError> {
        if self.control.is_closed() {
            self.control = control_client(&self.url).await?;
        }
        let mut stream = WireConnection::connect(&self.url.target, true, &SESSION).await?;
        let (slot, temporary) = if self.temporary {
            self.generations += 1;
            (format!("{}_r{}", self.slot_base, self.generations), "TEMPORARY ")
        } else {
            self.drop_slot(&self.slot.clone()).await;
            (self.slot.clone(), "")
        };
        let rows = stream
            .simple_query(&format!("CREATE_REPLICATION_SLOT \"{slot}\" {temporary}LOGICAL pgoutput EXPORT_SNAPSHOT"))
            .await?;
        let (lsn, snapshot) = slot_result(&rows)?;
        let txn = self.control.transaction().await.map_err(query_error)?;
        txn.batch_execute(&format!(
            "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT '{snapshot}'; \
             SET LOCAL DateStyle = 'ISO, MDY'; SET LOCAL TimeZone = 'UTC'; SET LOCAL extra_float_digits = 3"
        ))
        .await
        .map_err(query_error)?;
        let mut deletes = Vec::new();
        let mut inserts = Vec::new();
        let mut read = 0;
        let followed: std::collections::HashSet<u32> = self.follower.oids().into_iter().collect();
        for (oid, (id, table)) in &self.loaded {
            if !followed.contains(oid) {
                continue;
            }
            let mut count: std::collections::HashMap<ciuf_engine::Row, i64> = std::collections::HashMap::new();
            let held = self.feed.table_rows(&table.schema.name).map_err(|e| PgError::Schema(e.to_string()))?;
            for row in held {
                *count.entry(row).or_default() -= 1;
            }
            read += read_rows(&txn, table, |values| {
                *count.entry(ciuf_engine::Row::new(values)).or_default() += 1;
                Ok(())
            })
            .await?;
            for (row, n) in count {
                for _ in 0..n.unsigned_abs() {
                    let values = RowData::Values(row.to_vec());
                    if n < 0 {
                        deletes.push(Change::delete(*id, values));
                    } else {
                        inserts.push(Change::insert(*id, values));
                    }
                }
            }
        }
        txn.commit().await.map_err(query_error)?;
        let changes: Vec<Change> = deletes.into_iter().chain(inserts).collect();
        self.feed
            .apply(Batch { changes, position: format_lsn(lsn) })
            .map_err(|e| PgError::Schema(format!("the tables read again after a lost connection do not apply: {e}")))?;
        stream.start_replication(&self.start_command_for(&slot, lsn)).await?;
        self.slot = slot;
        self.stream = Some(stream);
        self.applied = lsn;
        self.acked = 0;
        let mut s = self.status.lock();
        s.rows_read += read;
        s.resyncs += 1;
        s.position = format_lsn(lsn);
        s.streaming = true;
        Ok(())
    }

    fn start_command(&self, lsn: u64) -> String {
        self.start_command_for(&self.slot, lsn)
    }

    fn start_command_for(&self, slot: &str, lsn: u64) -> String {
        format!(
            "START_REPLICATION SLOT \"{}\" LOGICAL {} (\"proto_version\" '1', \"publication_names\" '{}')",
            slot,
            format_lsn(lsn),
            self.publication.replace('\'', "''")
        )
    }

    /// Adds the tables among `names` that are not tables of the database yet.
    async fn add(&mut self, names: &[String]) -> Result<(), PgError> {
        if self.control.is_closed() {
            self.control = control_client(&self.url).await?;
        }
        let mut tables = Vec::new();
        for name in names {
            if self.feed.table_id(name).is_ok()
                || tables.iter().any(|t: &PgTable| t.schema.name.eq_ignore_ascii_case(name))
            {
                continue;
            }
            if let Some(t) = discover(&self.control, name).await? {
                tables.push(t);
            }
        }
        if tables.is_empty() {
            return Ok(());
        }
        self.publish(&tables).await?;
        if self.started { self.add_while_streaming(tables).await } else { self.start(tables).await }
    }

    /// Puts `tables` in the publication (ciuf's own), or checks they are in it.
    async fn publish(&mut self, tables: &[PgTable]) -> Result<(), PgError> {
        let list = tables.iter().map(|t| t.qualified.as_str()).collect::<Vec<_>>().join(", ");
        let quoted = format!("\"{}\"", self.publication.replace('"', "\"\""));
        if self.own_publication {
            let exists = !self
                .control
                .query("SELECT 1 FROM pg_publication WHERE pubname = $1", &[&self.publication])
                .await
                .map_err(query_error)?
                .is_empty();
            let sql = if exists {
                // A start that died after publishing a table and before loading it
                // left the table in the publication: only the others are added.
                let mut missing = Vec::new();
                for t in tables {
                    if !self.published(&t.qualified).await? {
                        missing.push(t.qualified.as_str());
                    }
                }
                if missing.is_empty() {
                    return Ok(());
                }
                format!("ALTER PUBLICATION {quoted} ADD TABLE {}", missing.join(", "))
            } else {
                format!("CREATE PUBLICATION {quoted} FOR TABLE {list}")
            };
            self.control.batch_execute(&sql).await.map_err(query_error)?;
        } else {
            for t in tables {
                if !self.published(&t.qualified).await? {
                    return Err(PgError::Schema(format!(
                        "publication {} does not publish {}: ALTER PUBLICATION {quoted} ADD TABLE {}",
                        self.publication, t.qualified, t.qualified
                    )));
                }
            }
        }
        Ok(())
    }

    /// Whether the publication publishes the table `qualified` (quoted schema and name).
    async fn published(&self, qualified: &str) -> Result<bool, PgError> {
        let found = self
            .control
            .query(
                "SELECT 1 FROM pg_publication_tables WHERE pubname = $1 AND \
                 (quote_ident(schemaname) || '.' || quote_ident(tablename)) = $2",
                &[&self.publication, &qualified],
            )
            .await
            .map_err(query_error)?;
        Ok(!found.is_empty())
    }

    /// The first tables: the slot, the snapshot, the stream.
    async fn start(&mut self, tables: Vec<PgTable>) -> Result<(), PgError> {
        let mut stream = WireConnection::connect(&self.url.target, true, &SESSION).await?;
        let temporary = if self.temporary { "TEMPORARY " } else { "" };
        if !self.temporary {
            // A durable engine's slot left by a first start that died before it
            // recorded a position: it is this directory's own, and starts over.
            self.drop_slot(&self.slot.clone()).await;
        }
        let rows = stream
            .simple_query(&format!(
                "CREATE_REPLICATION_SLOT \"{}\" {temporary}LOGICAL pgoutput EXPORT_SNAPSHOT",
                self.slot
            ))
            .await
            .map_err(|e| match e {
                PgError::Server(s) if s.code == "42710" => PgError::Config(format!(
                    "replication slot {} already exists; ciuf keeps nothing between runs, so it starts from a new \
                     snapshot with a new slot: drop it (SELECT pg_drop_replication_slot('{}')) or name another",
                    self.slot, self.slot
                )),
                other => other,
            })?;
        let (lsn, snapshot) = slot_result(&rows)?;
        // The position the copies reflect is journaled after them and before the
        // load is marked done.
        self.load(&tables, &snapshot, 0, Some(lsn)).await?;
        stream.start_replication(&self.start_command(lsn)).await?;
        self.stream = Some(stream);
        self.started = true;
        self.applied = lsn;
        let mut s = self.status.lock();
        s.position = format_lsn(lsn);
        s.streaming = true;
        Ok(())
    }

    /// Tables added while the stream runs: copied from a temporary slot's snapshot; the
    /// stream skips their changes committed before that snapshot.
    async fn add_while_streaming(&mut self, tables: Vec<PgTable>) -> Result<(), PgError> {
        let mut side = WireConnection::connect(&self.url.target, true, &SESSION).await?;
        self.additions += 1;
        let temp = format!("{}_add{}", self.slot, self.additions);
        let rows = side
            .simple_query(&format!("CREATE_REPLICATION_SLOT \"{temp}\" TEMPORARY LOGICAL pgoutput EXPORT_SNAPSHOT"))
            .await?;
        let (lsn, snapshot) = slot_result(&rows)?;
        let result = self.load(&tables, &snapshot, lsn, None).await;
        side.terminate().await;
        result
    }

    /// Creates the engine tables and copies `tables` under `snapshot`, keeping the
    /// stream's slot acknowledged meanwhile; then follows them. A first start gives
    /// its snapshot's `position`, recorded once the copies are in.
    async fn load(
        &mut self,
        tables: &[PgTable],
        snapshot: &str,
        skip_before: u64,
        position: Option<u64>,
    ) -> Result<(), PgError> {
        // A load is several engine transactions: a durable engine that dies in the
        // middle of one must not take the part it journaled for the table. Nor one
        // that dies after a first start's copies and before their position is
        // recorded: tables without a position could be followed from nowhere (the
        // stream would start at a later snapshot, and the commits between the two
        // would never reach them). So the load is marked done only after that.
        let names: Vec<&str> = tables.iter().map(|t| t.schema.name.as_str()).collect();
        self.note(LOADING_KEY, &names.join("\n"))?;
        self.copy_in(tables, snapshot, skip_before).await?;
        if let Some(lsn) = position {
            self.feed
                .pass(&format_lsn(lsn))
                .map_err(|e| PgError::Config(format!("recording the snapshot's position: {e}")))?;
        }
        self.note(LOADING_KEY, "")
    }

    async fn copy_in(&mut self, tables: &[PgTable], snapshot: &str, skip_before: u64) -> Result<(), PgError> {
        let mut ids = Vec::new();
        for t in tables {
            let id = self.feed.create_table(t.schema.clone()).map_err(|e| PgError::Schema(e.to_string()))?;
            ids.push(id);
        }
        let status = Arc::clone(&self.status);
        let feed = self.feed.clone();
        let applied = self.acknowledgeable();
        let control = &mut self.control;
        let stream = &mut self.stream;
        let ids_ref = &ids;
        let result = {
            let copy = async move {
                let txn = control.transaction().await.map_err(query_error)?;
                txn.batch_execute(&format!(
                    "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT '{snapshot}'; \
                 SET LOCAL DateStyle = 'ISO, MDY'; SET LOCAL TimeZone = 'UTC'; SET LOCAL extra_float_digits = 3"
                ))
                .await
                .map_err(query_error)?;
                for (t, &id) in tables.iter().zip(ids_ref) {
                    let name = t.schema.name.clone();
                    status.lock().loading = Some((name.clone(), 0));
                    let n = copy_table(&txn, t, &feed, id, |n| status.lock().loading = Some((name.clone(), n))).await?;
                    status.lock().rows_read += n;
                }
                status.lock().loading = None;
                txn.commit().await.map_err(query_error)
            };
            tokio::pin!(copy);
            let mut ticker = tokio::time::interval(Duration::from_secs(5));
            loop {
                tokio::select! {
                    r = &mut copy => break r,
                    _ = ticker.tick() => {
                        if let Some(stream) = stream.as_mut() {
                            let _ = stream.standby_status(applied, applied, applied, false).await;
                        }
                    }
                }
            }
        };
        if let Err(e) = result {
            self.status.lock().loading = None;
            return Err(e);
        }
        for (t, &id) in tables.iter().zip(&ids) {
            if skip_before > 0 {
                self.note(&skip_key(&t.schema.name), &format_lsn(skip_before))?;
            }
            self.follow(t, id, skip_before);
        }
        Ok(())
    }

    /// Records a fact in the state directory, if there is one.
    fn note(&self, key: &str, value: &str) -> Result<(), PgError> {
        match &self.state {
            Some(state) => state.set_meta(key, value).map_err(|e| PgError::Config(e.to_string())),
            None => Ok(()),
        }
    }

    /// Fails the views of followed tables that were dropped at the source.
    async fn check_dropped(&mut self) {
        let oids: Vec<i64> = self.follower.oids().into_iter().map(i64::from).collect();
        if oids.is_empty() || self.control.is_closed() {
            return;
        }
        let Ok(rows) = self
            .control
            .query(
                "SELECT o FROM unnest($1::int8[]) o WHERE NOT EXISTS (SELECT 1 FROM pg_class WHERE oid = o::oid)",
                &[&oids],
            )
            .await
        else {
            return;
        };
        for r in rows {
            let oid = r.get::<_, i64>(0) as u32;
            if let Some(table) = self.follower.unfollow(oid) {
                self.feed.fail_table(table, "it was dropped in PostgreSQL");
            }
        }
    }

    /// A clean shutdown: the stream ends, ciuf's slot and publication are dropped —
    /// unless the engine is durable: they are kept for its next start.
    async fn shutdown(&mut self) {
        let _ = self.acknowledge(true).await;
        if let Some(stream) = self.stream.take() {
            stream.terminate().await;
        }
        if self.state.is_some() {
            return;
        }
        if self.control.is_closed() {
            match control_client(&self.url).await {
                Ok(c) => self.control = c,
                Err(_) => return,
            }
        }
        if self.started {
            self.drop_slot(&self.slot.clone()).await;
        }
        if self.own_publication {
            let _ = self
                .control
                .batch_execute(&format!("DROP PUBLICATION IF EXISTS \"{}\"", self.publication.replace('"', "\"\"")))
                .await;
        }
    }
}

impl Task {
    /// Drops the slot `name` if it exists (the walsender may take a moment to let go
    /// of it).
    async fn drop_slot(&mut self, name: &str) {
        if self.control.is_closed() {
            match control_client(&self.url).await {
                Ok(c) => self.control = c,
                Err(_) => return,
            }
        }
        for _ in 0..50 {
            match self
                .control
                .execute(
                    "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1",
                    &[&name],
                )
                .await
            {
                Ok(_) => break,
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
}

/// How long dropping a durable engine's slot waits for the server to let go of it.
const SLOT_RELEASE_PATIENCE: Duration = Duration::from_secs(5);

/// Drops a durable engine's slot and (if it made it) publication on the server at
/// `url`: what `ciuf state drop` does besides deleting the state directory.
pub fn drop_replication(url: &str, slot: &str, publication: Option<&str>) -> Result<(), PgError> {
    let url = Url::parse(url)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| PgError::Config(format!("cannot start a runtime: {e}")))?;
    runtime.block_on(async {
        let client = control_client(&url).await?;
        // The server lets go of a slot a moment after its engine disconnects: an
        // engine closed just before is waited for, a running one is refused.
        let deadline = tokio::time::Instant::now() + SLOT_RELEASE_PATIENCE;
        loop {
            let active: Option<bool> = client
                .query_opt("SELECT active FROM pg_replication_slots WHERE slot_name = $1", &[&slot])
                .await
                .map_err(query_error)?
                .map(|r| r.get(0));
            if active != Some(true) {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(PgError::Config(format!(
                    "replication slot {slot} is in use by a running engine: close it first"
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        client
            .execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1",
                &[&slot],
            )
            .await
            .map_err(query_error)?;
        if let Some(p) = publication {
            client
                .batch_execute(&format!("DROP PUBLICATION IF EXISTS \"{}\"", p.replace('"', "\"\"")))
                .await
                .map_err(query_error)?;
        }
        Ok(())
    })
}

/// The state directory's record of the slot's name.
pub const SLOT_KEY: &str = "pg.slot";
/// The state directory's record of the publication's name.
pub const PUBLICATION_KEY: &str = "pg.publication";
/// "1" when the publication is ciuf's own (dropped with the state).
pub const OWN_PUBLICATION_KEY: &str = "pg.own_publication";
/// The state directory's record of the tables being loaded.
pub const LOADING_KEY: &str = "pg.loading";

/// The state directory's record of the LSN before which a table's changes are in its
/// copy (a table added while streaming).
fn skip_key(table: &str) -> String {
    format!("pg.skip.{table}")
}

fn kept_publication(state: &StateDir) -> Option<String> {
    state.meta(PUBLICATION_KEY).filter(|v| !v.is_empty())
}

fn kept_or(kept: Option<String>, default: String) -> String {
    kept.unwrap_or(default)
}

fn is_slot_busy(e: &PgError) -> bool {
    // 55006: the slot is still active for the previous walsender.
    matches!(e, PgError::Server(s) if s.code == "55006")
}

/// The consistent point and exported snapshot of CREATE_REPLICATION_SLOT's answer.
fn slot_result(rows: &[Vec<Option<String>>]) -> Result<(u64, String), PgError> {
    let row = rows.first().ok_or_else(|| PgError::Protocol("CREATE_REPLICATION_SLOT returned no row".into()))?;
    let lsn = row
        .get(1)
        .and_then(|v| v.as_deref())
        .and_then(parse_lsn)
        .ok_or_else(|| PgError::Protocol("CREATE_REPLICATION_SLOT returned no consistent point".into()))?;
    let snapshot = row
        .get(2)
        .and_then(Clone::clone)
        .ok_or_else(|| PgError::Protocol("CREATE_REPLICATION_SLOT exported no snapshot".into()))?;
    Ok((lsn, snapshot))
}

/// Deletes of every row a table holds (a TRUNCATE).
fn truncate_changes(feed: &Feed, table: TableId) -> Result<Vec<Change>, PgError> {
    let name = feed.table_name(table).map_err(|e| PgError::Schema(e.to_string()))?;
    let rows = feed.table_rows(&name).map_err(|e| PgError::Schema(e.to_string()))?;
    Ok(rows.into_iter().map(|r| Change::delete(table, RowData::Values(r.to_vec()))).collect())
}

async fn control_client(url: &Url) -> Result<Client, PgError> {
    let address = format!("{}:{}", url.target.host, url.target.port);
    let error = |e: tokio_postgres::Error| {
        if e.as_db_error().is_some() {
            return query_error(e);
        }
        let chain = error_chain(&e);
        if chain.contains("does not support TLS") {
            PgError::Config(format!(
                "the server at {address} does not accept TLS connections, and the URL's sslmode requires TLS"
            ))
        } else {
            PgError::Connect { target: address.clone(), reason: chain }
        }
    };
    match &url.target.tls {
        None => {
            let (client, connection) = url.config.connect(NoTls).await.map_err(error)?;
            tokio::spawn(async move {
                let _ = connection.await;
            });
            Ok(client)
        }
        Some(config) => {
            let tls = tokio_postgres_rustls::MakeRustlsConnect::new(config.as_ref().clone());
            let (client, connection) = url.config.connect(tls).await.map_err(error)?;
            tokio::spawn(async move {
                let _ = connection.await;
            });
            Ok(client)
        }
    }
}

/// An error with its sources, which carry the useful part (a TLS or I/O cause).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
