//! [`Engine`]: the engine with its SQL front end, as users hold it.

use std::collections::HashMap;
use std::sync::Arc;

use std::cell::RefCell;

use ciuf_connectors::Source;
use ciuf_connectors::postgres::{PostgresOptions, PostgresSource};
use ciuf_connectors::sqlite::{SqliteOptions, SqliteSource, SqliteTarget};
use ciuf_engine::{
    Catalog, Change, Column, Database, Dialect, Error, PartialLimits, RecordBatch, Result, RowData, SqlError,
    SqlErrorKind, Stats, TableId, TableRef, TableSchema, Value, View, ViewDef,
};
use ciuf_sql::Statement;
use parking_lot::Mutex;

/// What [`Engine::execute`] did.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// A statement that returns nothing (CREATE TABLE, INSERT, DROP VIEW, …).
    Done,
    /// A view was registered (CREATE VIEW, or a query).
    View(View),
    /// EXPLAIN's text.
    Explain(String),
}

/// An incremental view-maintenance engine with SQL.
///
/// Cheap to clone (clones share one engine) and `Send + Sync`: any thread may apply
/// changes — transactions run one at a time — while any number of threads read views.
#[derive(Debug, Clone)]
pub struct Engine {
    db: Database,
    /// Views by SQL text, so that repeating a query costs a lookup, not a parse.
    by_sql: Arc<Mutex<HashMap<String, View>>>,
    /// Parameterized views by the shape of their query (see `shape_of`), so that SQL
    /// with literals in their parameters' places is served from them.
    shapes: Arc<Mutex<HashMap<String, Shape>>>,
    /// The database the tables come from, if any.
    pub(crate) source: Option<Arc<dyn Source>>,
    /// The state directory of a durable engine (see `src/durable.rs`).
    pub(crate) durable: Option<Arc<crate::durable::Durable>>,
}

impl Default for Engine {
    fn default() -> Self {
        Engine::in_memory()
    }
}

impl Engine {
    /// An engine whose tables are declared with [`Engine::execute`] and fed by the
    /// application's own change events, following SQLite's rules where SQL dialects
    /// differ.
    pub fn in_memory() -> Engine {
        Engine::with_dialect(Dialect::Sqlite)
    }

    /// An in-memory engine following `dialect` where SQL dialects differ.
    pub fn with_dialect(dialect: Dialect) -> Engine {
        Engine {
            db: Database::new(dialect),
            by_sql: Default::default(),
            shapes: Default::default(),
            source: None,
            durable: None,
        }
    }

    /// Runs large transactions — loads, snapshots, a source catching up, views built
    /// over loaded tables — on `threads` worker threads from now on (1: everything on
    /// the applying thread). Transactions of fewer than about 2,000 changed rows always
    /// run on the applying thread. Results do not depend on the number. The default is
    /// `CIUF_THREADS` if set, else the machine's cores up to 8; worker threads are
    /// shared by every engine of the process with the same number.
    pub fn set_threads(&self, threads: usize) {
        self.db.set_threads(threads);
    }

    /// The number of worker threads (see [`Engine::set_threads`]).
    pub fn threads(&self) -> usize {
        self.db.threads()
    }

    /// This engine with `threads` worker threads, if given.
    pub(crate) fn with_threads(self, threads: Option<usize>) -> Engine {
        if let Some(n) = threads {
            self.set_threads(n);
        }
        self
    }

    /// An engine for the database at `url`:
    ///
    /// - `postgresql://user:password@host:port/db` (also `postgres://` and SQLAlchemy's
    ///   `postgresql+psycopg://`): tables are read from PostgreSQL when a view first
    ///   names them — copied from a consistent snapshot, then kept up to date by logical
    ///   replication, each source transaction applied atomically. The server needs
    ///   `wal_level = logical` and a role with REPLICATION and SELECT on the tables.
    /// - `memory:` (or an empty URL): an in-memory engine, as [`Engine::in_memory`].
    ///
    /// - `sqlite://./app.db` (also SQLAlchemy's `sqlite:///app.db`, `sqlite:////abs.db`):
    ///   tables are read from the SQLite file when a view first names them, loaded, and
    ///   followed: change capture (triggers writing to a log table, in the writer's own
    ///   transaction) is installed on them, so writes from any connection or process
    ///   reach the views, each committed transaction whole. `sqlite:///:memory:` is an
    ///   in-memory engine (nobody else can write to a private in-memory database).
    pub fn open(url: &str) -> Result<Engine> {
        let scheme = url.split_once(':').map_or(url, |(s, _)| s).to_ascii_lowercase();
        match scheme.as_str() {
            "" | "memory" => Ok(Engine::in_memory()),
            "postgres" | "postgresql" => Engine::open_postgres(url, PostgresOptions::default()),
            s if s.starts_with("postgresql+") || s.starts_with("postgres+") => {
                Engine::open_postgres(url, PostgresOptions::default())
            }
            s if s == "sqlite" || s.starts_with("sqlite+") => Engine::open_sqlite(url, SqliteOptions::default()),
            _ => Err(Error::Source {
                message: format!("unknown database URL scheme {scheme:?} (use postgresql://, sqlite:// or memory:)"),
                retryable: false,
            }),
        }
    }

    /// An engine fed by the SQLite database at `url`, followed as `options` say (see
    /// [`Engine::open`]; [`SqliteOptions::capture`] off requires capture installed
    /// beforehand with `ciuf capture install <url>` or [`ciuf_connectors::sqlite::install_capture`]).
    pub fn open_sqlite(url: &str, options: SqliteOptions) -> Result<Engine> {
        match ciuf_connectors::sqlite::parse_url(url)? {
            SqliteTarget::Memory => Ok(Engine::with_dialect(Dialect::Sqlite)),
            SqliteTarget::File(path) => {
                let db = Database::new(Dialect::Sqlite);
                let source = SqliteSource::open(&path, options, db.clone())?;
                Ok(Engine {
                    db,
                    by_sql: Default::default(),
                    shapes: Default::default(),
                    source: Some(Arc::new(source)),
                    durable: None,
                })
            }
        }
    }

    /// An engine fed by the PostgreSQL database at `url`, with the slot and publication
    /// names of `options` (see [`Engine::open`]).
    pub fn open_postgres(url: &str, options: PostgresOptions) -> Result<Engine> {
        let db = Database::new(Dialect::Postgres);
        let source = PostgresSource::open(url, options, db.clone())?;
        Ok(Engine {
            db,
            by_sql: Default::default(),
            shapes: Default::default(),
            source: Some(Arc::new(source)),
            durable: None,
        })
    }

    /// Loads the tables `names` from the source database now, in one consistent
    /// snapshot, instead of when a view first names them (useful at start-up: one
    /// snapshot for all tables, and views registered later build at once). Every name
    /// must be a table of the source; for in-memory engines, a table already declared.
    pub fn load_tables(&self, names: &[&str]) -> Result<()> {
        let wanted: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        if let Some(source) = &self.source {
            source.add_tables(&wanted)?;
        }
        for name in names {
            if self.db.table_id(name).is_err() {
                let where_ = if self.source.is_some() { "in the source database" } else { "declared" };
                return Err(SqlError::new(
                    SqlErrorKind::UnknownTable,
                    format!("unknown table {name} (no such table {where_})"),
                )
                .into());
            }
        }
        Ok(())
    }

    /// Stops following the source database (a no-op for in-memory engines): the stream
    /// ends, and the replication slot and publication ciuf created are dropped (for
    /// SQLite, this follower leaves the change log; the capture stays installed). Views
    /// stay readable, frozen at their last state. Dropping the last clone of an engine
    /// does the same.
    pub fn close(&self) {
        if let Some(s) = &self.source {
            s.close();
        }
        self.close_state();
    }

    /// What the source database's follower is doing (None for in-memory engines).
    pub fn source_status(&self) -> Option<ciuf_connectors::SourceStatus> {
        self.source.as_ref().map(|s| s.status())
    }

    /// The engine without SQL.
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// The engine without SQL, under its former name.
    #[deprecated(since = "0.1.0", note = "renamed Engine::database (the operator graph is the dataflow now)")]
    pub fn dataflow(&self) -> &Database {
        &self.db
    }

    /// Runs SQL statements: CREATE TABLE, CREATE VIEW, DROP VIEW, INSERT … VALUES,
    /// EXPLAIN, and queries (registered as views). Returns the last statement's outcome.
    ///
    /// Several statements run all or nothing: if one fails, those before it are taken
    /// back (see `src/script.rs`) and its error is reported.
    pub fn execute(&self, sql: &str) -> Result<Outcome> {
        ciuf_sql::on_deep_stack(sql, || self.run_all(ciuf_sql::parse(sql)?))
    }

    pub(crate) fn run(&self, statement: Statement) -> Result<Outcome> {
        Ok(match statement {
            Statement::CreateTable(mut schema) => {
                if self.db.dialect() == Dialect::Sqlite {
                    // SQLite keeps any 64-bit integer in a column declared INTEGER or
                    // SMALLINT (the declared width is only a name): so does ciuf.
                    for c in &mut schema.columns {
                        if c.data_type.is_integer() {
                            c.data_type = ciuf_engine::DataType::BigInt;
                        }
                    }
                } else {
                    // A NUMERIC without a precision is SQLite's per-value NUMERIC only
                    // under SQLite; elsewhere it is a decimal, as it always was.
                    for c in &mut schema.columns {
                        if c.data_type == ciuf_engine::DataType::Number {
                            c.data_type = ciuf_engine::DataType::Decimal { precision: 18, scale: 3 };
                        }
                    }
                }
                self.db.create_table(schema)?;
                Outcome::Done
            }
            Statement::CreateView { name, query, sql, if_not_exists } => {
                if if_not_exists && let Some(v) = self.db.view(&name) {
                    return Ok(Outcome::View(v));
                }
                let view = self.define(Some(&name), &query, &sql)?;
                self.record_view(&view, Some(&name), &sql, &ViewOptions::default())?;
                Outcome::View(view)
            }
            Statement::DropView { names, if_exists } => {
                for n in names {
                    let id = self.db.view(&n).map(|v| v.id());
                    match self.db.drop_view(&n) {
                        Err(_) if if_exists => {}
                        other => other?,
                    }
                    if let Some(id) = id {
                        self.record_drop(id)?;
                    }
                }
                self.by_sql.lock().clear();
                Outcome::Done
            }
            Statement::DropTable { names, if_exists } => {
                if self.source.is_some() {
                    return Err(SqlError::new(
                        SqlErrorKind::Catalog,
                        "the tables of a database source are dropped in the database, not in ciuf",
                    )
                    .into());
                }
                // Refused before anything is dropped when a view of the user's reads
                // a table (the views ciuf made for SQL with literals go with it).
                let auto: Vec<ciuf_engine::ViewId> = self
                    .shapes
                    .lock()
                    .values()
                    .filter(|s| s.auto.is_some())
                    .filter_map(|s| s.view.as_ref().map(View::id))
                    .collect();
                for n in &names {
                    if self.db.readers_of(n).iter().any(|v| !auto.contains(v)) {
                        // drop_table names the views in its refusal.
                        self.db.drop_table(n)?;
                    }
                }
                for n in names {
                    self.drop_auto_views_reading(&n);
                    match self.db.drop_table(&n) {
                        Err(Error::Schema(ciuf_engine::SchemaError::UnknownTable { .. })) if if_exists => {}
                        other => other?,
                    }
                }
                self.by_sql.lock().clear();
                self.shapes.lock().retain(|_, s| s.view.as_ref().is_none_or(|v| v.version().is_ok()));
                Outcome::Done
            }
            Statement::Query { query, sql } => {
                let view = self.register(&query, &sql)?;
                self.record_view(&view, None, &sql, &ViewOptions::default())?;
                Outcome::View(view)
            }
            Statement::Insert { table, columns, rows } => {
                let changes: Vec<Change> = rows
                    .into_iter()
                    .map(|values| {
                        let row = if columns.is_empty() {
                            RowData::Values(values)
                        } else {
                            RowData::Named(columns.iter().cloned().zip(values).collect())
                        };
                        Change::insert(table.as_str(), row)
                    })
                    .collect();
                self.db.apply(changes)?;
                Outcome::Done
            }
            Statement::Explain(query) => Outcome::Explain(self.db.with_catalog(|cat| ciuf_sql::explain(&query, cat))?),
            Statement::NoOp(_) => Outcome::Done,
        })
    }

    /// Registers a query as a view (or returns the view already registered for it).
    ///
    /// A query with parameters in its WHERE clause (`… WHERE o.customer_id = $1`, also
    /// `?`, `:name` and `x IN ($1, $2)`) is a parameterized view: it holds every key's
    /// answer, and `view.query_with(&[42.into()])` reads one key. SQL that differs from
    /// a parameterized view's only in literals where its parameters are
    /// (`… WHERE o.customer_id = 42`) is served from that view, bound to those values;
    /// and the first time the same shape comes with other literals, ciuf makes a
    /// partial parameterized view for it, so that string-built queries cost a lookup,
    /// not a view each. Repeated SQL text is not parsed again.
    pub fn from_sql(&self, sql: &str) -> Result<View> {
        // A view that failed computing, or was dropped through the database beneath,
        // is registered afresh.
        if let Some(v) = self.by_sql.lock().get(sql)
            && v.version().is_ok()
        {
            return Ok(v.clone());
        }
        let view = ciuf_sql::on_deep_stack(sql, || {
            let (query, text) = ciuf_sql::parse_query(sql)?;
            self.register(&query, &text)
        })?;
        self.record_view(&view, None, sql, &ViewOptions::default())?;
        self.by_sql.lock().insert(sql.to_string(), view.clone());
        Ok(view)
    }

    /// [`Engine::from_sql`] with options: a parameterized view may be partial.
    pub fn from_sql_with(&self, sql: &str, options: ViewOptions) -> Result<View> {
        let Some(limits) = options.partial else { return self.from_sql(sql) };
        ciuf_sql::on_deep_stack(sql, || {
            let (query, text) = ciuf_sql::parse_query(sql)?;
            let Some(extracted) = ciuf_sql::params::extract(&query)? else {
                return Err(SqlError::new(
                    SqlErrorKind::Invalid,
                    "a partial view needs parameters (WHERE column = $1): it holds the keys read",
                )
                .into());
            };
            let view = self.define_partial(&extracted, &text, limits)?;
            self.record_view(&view, None, sql, &ViewOptions { partial: Some(limits) })?;
            self.shapes.lock().insert(shape_of(&extracted), Shape::of(&extracted, view.clone()));
            Ok(view)
        })
    }

    fn register(&self, query: &ciuf_sql::Query, sql: &str) -> Result<View> {
        if let Some(extracted) = ciuf_sql::params::extract(query)? {
            let view = self.define(None, query, sql)?;
            self.shapes.lock().entry(shape_of(&extracted)).or_insert_with(|| Shape::of(&extracted, view.clone()));
            return Ok(view);
        }
        if let Some((shaped, values)) = ciuf_sql::params::literals(query)
            && let Some(extracted) = ciuf_sql::params::extract(&shaped)?
        {
            let key = shape_of(&extracted);
            let known = {
                let mut shapes = self.shapes.lock();
                let shape = shapes.entry(key.clone()).or_default();
                if shape.view.as_ref().is_some_and(|v| v.version().is_err()) {
                    // Its view was dropped (or its table): the shape starts again.
                    *shape = Shape::default();
                }
                // Other literals than the first time: the shape repeats.
                let repeated = shape.first.get_or_insert_with(|| values.clone()) != &values;
                shape.view.clone().map(|v| (v, shape.components.clone())).ok_or(repeated)
            };
            let found = match known {
                Ok(found) => Some(found),
                Err(true) => {
                    let view = self.define_partial(&extracted, &shaped.to_string(), AUTO_LIMITS)?;
                    let mut shape = Shape::of(&extracted, view.clone());
                    shape.auto = view.keys_table();
                    let components = shape.components.clone();
                    self.shapes.lock().insert(key, shape);
                    Some((view, components))
                }
                Err(false) => None,
            };
            if let Some((view, components)) = found {
                let args: Vec<Value> = components.iter().map(|&c| values[c].clone()).collect();
                // A literal the key's type cannot take (1.5 for an integer column) keeps
                // the query a view of its own.
                if let Ok(bound) = view.bind(args) {
                    return Ok(bound);
                }
            }
        }
        self.define(None, query, sql)
    }

    /// Registers a partial parameterized view: a table of requested keys is made and
    /// joined, so that the view holds only the keys read.
    fn define_partial(
        &self,
        extracted: &ciuf_sql::params::Extracted,
        sql: &str,
        limits: PartialLimits,
    ) -> Result<View> {
        // The key's types, from the plan for every key (loading tables from a source).
        let full = self.plan_with_source(|cat| ciuf_sql::plan_parameterized(extracted, sql, cat, None))?;
        let spec = full.params.as_ref().expect("a parameterized plan");
        let columns: Vec<Column> = spec
            .key_columns
            .iter()
            .enumerate()
            .map(|(i, &c)| Column::new(format!("{}{i}", ciuf_sql::KEYS_ALIAS), full.columns[c].data_type).not_null())
            .collect();
        let n = KEYS_TABLES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("__ciuf_keys_{n}");
        let width = columns.len();
        let table = self.db.create_table(TableSchema {
            name: name.clone(),
            columns,
            primary_key: Some((0..width).collect()),
        })?;
        let defined = self.db.define_view_with(None, limits, |cat| {
            ciuf_sql::plan_parameterized(extracted, sql, cat, Some((table, &name)))
        });
        if defined.is_err() {
            let _ = self.db.drop_table(&name);
        }
        defined
    }

    /// Drops the parameterized views ciuf made for SQL with literals that read `table`
    /// (and their tables of keys), so that the table can be dropped.
    fn drop_auto_views_reading(&self, table: &str) {
        let mut shapes = self.shapes.lock();
        shapes.retain(|_, s| {
            let (Some(view), Some(keys)) = (&s.view, &s.auto) else { return true };
            if !self.db.view_reads(view, table) {
                return true;
            }
            let _ = self.db.drop_view_handle(view);
            let _ = self.db.drop_table(keys);
            false
        });
    }

    /// Runs `plan` over the catalog, asking the source for missing tables (see
    /// [`Engine::with_source_tables`]).
    fn plan_with_source<T>(&self, plan: impl Fn(&dyn Catalog) -> Result<T>) -> Result<T> {
        self.with_source_tables(|missing| self.db.with_catalog(|cat| plan(&RecordingCatalog { inner: cat, missing })))
    }

    /// Plans and registers a view, asking the source for missing tables.
    fn define(&self, name: Option<&str>, query: &ciuf_sql::Query, sql: &str) -> Result<View> {
        self.with_source_tables(|missing| {
            self.db.define_view(name, |cat| ciuf_sql::plan_query(query, sql, &RecordingCatalog { inner: cat, missing }))
        })
    }

    /// Runs `attempt`, which plans over a catalog that notes the tables it lacks; with
    /// a source, those tables are asked of it (discovered, loaded, followed) and the
    /// attempt made again, until it needs no table the source has not been asked for.
    fn with_source_tables<T>(&self, attempt: impl Fn(&RefCell<Vec<String>>) -> Result<T>) -> Result<T> {
        let mut asked: Vec<String> = Vec::new();
        loop {
            let missing = RefCell::new(Vec::new());
            let result = attempt(&missing);
            let Some(source) = &self.source else { return result };
            match &result {
                Err(Error::Sql(e)) if e.kind == SqlErrorKind::UnknownTable => {
                    let new: Vec<String> = missing
                        .into_inner()
                        .into_iter()
                        .filter(|n| !asked.iter().any(|a| a.eq_ignore_ascii_case(n)))
                        .collect();
                    if new.is_empty() {
                        return result;
                    }
                    source.add_tables(&new)?;
                    asked.extend(new);
                }
                _ => return result,
            }
        }
    }

    /// Registers `sql` as a named view, which later queries can read like a table.
    pub fn create_view(&self, name: &str, sql: &str) -> Result<View> {
        let view = ciuf_sql::on_deep_stack(sql, || {
            let (query, text) = ciuf_sql::parse_query(sql)?;
            self.define(Some(name), &query, &text)
        })?;
        self.record_view(&view, Some(name), sql, &ViewOptions::default())?;
        Ok(view)
    }

    /// The named view `name`.
    pub fn view(&self, name: &str) -> Option<View> {
        self.db.view(name)
    }

    /// Stops maintaining `view` (and every handle on it).
    pub fn drop_view(&self, view: &View) -> Result<()> {
        if let Some(args) = view.bound() {
            // A handle on one key of a shared parameterized view: only the handle goes.
            self.by_sql.lock().retain(|_, v| v.id() != view.id() || v.bound() != Some(args));
            return Ok(());
        }
        self.by_sql.lock().retain(|_, v| v.id() != view.id());
        self.shapes.lock().retain(|_, s| s.view.as_ref().is_none_or(|v| v.id() != view.id()));
        self.db.drop_view_handle(view)?;
        self.record_drop(view.id())
    }

    /// The operator plan of a query, as text.
    pub fn explain(&self, sql: &str) -> Result<String> {
        ciuf_sql::on_deep_stack(sql, || {
            let (query, _) = ciuf_sql::parse_query(sql)?;
            match self.run(Statement::Explain(query))? {
                Outcome::Explain(text) => Ok(text),
                _ => unreachable!("EXPLAIN explains"),
            }
        })
    }

    /// Inserts a row (values in column order, or by name) as one transaction.
    pub fn on_insert(&self, table: impl Into<TableRef>, row: impl Into<RowData>) -> Result<()> {
        self.db.apply([Change::insert(table, row)])
    }

    /// Replaces the row `old` by `new`, as one transaction.
    pub fn on_update(
        &self,
        table: impl Into<TableRef>,
        old: impl Into<RowData>,
        new: impl Into<RowData>,
    ) -> Result<()> {
        self.db.apply([Change::update(table, old, new)])
    }

    /// Replaces the row with `new`'s primary key (columns `new` leaves out keep their
    /// values), as one transaction.
    pub fn on_update_by_key(&self, table: impl Into<TableRef>, new: impl Into<RowData>) -> Result<()> {
        self.db.apply([Change::update_by_key(table, new)])
    }

    /// Deletes a row (by primary key where the table has one), as one transaction.
    pub fn on_delete(&self, table: impl Into<TableRef>, row: impl Into<RowData>) -> Result<()> {
        self.db.apply([Change::delete(table, row)])
    }

    /// Applies `changes` as one atomic transaction: all of them, or none and the error.
    pub fn apply<I: IntoIterator<Item = Change>>(&self, changes: I) -> Result<()> {
        self.db.apply(changes)
    }

    /// Inserts many rows into one table as one transaction.
    pub fn insert_many<R: Into<RowData>>(&self, table: &str, rows: impl IntoIterator<Item = R>) -> Result<()> {
        let id = self.db.table_id(table)?;
        self.db.apply(rows.into_iter().map(|r| Change::insert(id, r)))
    }

    /// Inserts the rows of an Arrow record batch into one table as one transaction.
    /// Batch columns are matched to table columns by name; table columns the batch
    /// lacks are NULL; a batch column the table lacks is an error.
    pub fn insert_arrow(&self, table: &str, batch: &RecordBatch) -> Result<()> {
        self.db.insert_batches(table, std::slice::from_ref(batch))
    }

    /// Inserts the rows of several Arrow record batches into one table as one
    /// transaction (see [`Engine::insert_arrow`]).
    pub fn insert_arrow_batches(&self, table: &str, batches: &[RecordBatch]) -> Result<()> {
        self.db.insert_batches(table, batches)
    }

    /// The schema of table `name`.
    pub fn table_schema(&self, name: &str) -> Result<Arc<TableSchema>> {
        self.db.table_schema(name)
    }

    /// Sizes of what the engine holds.
    pub fn stats(&self) -> Stats {
        self.db.stats()
    }
}

/// Registers `sql` as a view of `engine` (the free-function spelling of
/// [`Engine::from_sql`]).
pub fn from_sql(engine: &Engine, sql: &str) -> Result<View> {
    engine.from_sql(sql)
}

/// How a view is kept (see [`Engine::from_sql_with`]).
#[derive(Debug, Clone, Default)]
pub struct ViewOptions {
    /// For a parameterized view: hold only the keys read — each filled on its first
    /// read from the state upstream, then kept up to date — and let keys go as these
    /// limits say (they come back, correct, on their next read). `None`: every key.
    pub partial: Option<PartialLimits>,
}

/// The limits of the partial views ciuf makes for SQL with literals.
const AUTO_LIMITS: PartialLimits = PartialLimits { idle: None, max_keys: Some(100_000), max_bytes: None };

/// Numbers the tables of requested keys.
static KEYS_TABLES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A query shape and the parameterized view registered for it.
#[derive(Debug, Default)]
struct Shape {
    view: Option<View>,
    /// Made by ciuf for SQL with literals (so ciuf drops it with its tables), with the
    /// table of its requested keys.
    auto: Option<String>,
    /// For each of the view's parameters, the key component it gives.
    components: Vec<usize>,
    /// The literals SQL of this shape first came with.
    first: Option<Vec<Value>>,
}

impl Shape {
    fn of(extracted: &ciuf_sql::params::Extracted, view: View) -> Shape {
        Shape {
            view: Some(view),
            auto: None,
            components: extracted.params.iter().map(|(_, c, _)| *c).collect(),
            first: None,
        }
    }
}

/// What identifies a parameterized query's shape: the query without its parameter
/// conditions, and the compared expressions with how many parameters each takes.
fn shape_of(extracted: &ciuf_sql::params::Extracted) -> String {
    let parts: Vec<String> = extracted.parts.iter().map(|p| format!("{} x{}", p.expr, p.placeholders.len())).collect();
    format!("{} | {}", extracted.query, parts.join(" | "))
}

/// A catalog that notes the tables a query asks for and the engine does not have.
struct RecordingCatalog<'a> {
    inner: &'a dyn Catalog,
    missing: &'a RefCell<Vec<String>>,
}

impl Catalog for RecordingCatalog<'_> {
    fn dialect(&self) -> Dialect {
        self.inner.dialect()
    }

    fn table(&self, name: &str) -> Option<(TableId, Arc<TableSchema>)> {
        let found = self.inner.table(name);
        if found.is_none() && self.inner.view(name).is_none() {
            self.missing.borrow_mut().push(name.to_string());
        }
        found
    }

    fn view(&self, name: &str) -> Option<&ViewDef> {
        self.inner.view(name)
    }

    fn relation_names(&self) -> Vec<String> {
        self.inner.relation_names()
    }
}
