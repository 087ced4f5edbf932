//! [`Engine`]: the engine with its SQL front end, as users hold it.

use std::collections::HashMap;
use std::sync::Arc;

use std::cell::RefCell;

use ciuf_connectors::Source;
use ciuf_connectors::postgres::{PostgresOptions, PostgresSource};
use ciuf_connectors::sqlite::{SqliteOptions, SqliteSource, SqliteTarget};
use ciuf_engine::{
    Catalog, Change, Dataflow, Dialect, Error, RecordBatch, Result, RowData, SqlError, SqlErrorKind, Stats, TableId,
    TableRef, TableSchema, View, ViewDef,
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
    dataflow: Dataflow,
    /// Views by SQL text, so that repeating a query costs a lookup, not a parse.
    by_sql: Arc<Mutex<HashMap<String, View>>>,
    /// The database the tables come from, if any.
    source: Option<Arc<dyn Source>>,
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
        Engine { dataflow: Dataflow::new(dialect), by_sql: Arc::new(Mutex::new(HashMap::new())), source: None }
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
                let dataflow = Dataflow::new(Dialect::Sqlite);
                let source = SqliteSource::open(&path, options, dataflow.clone())?;
                Ok(Engine { dataflow, by_sql: Arc::new(Mutex::new(HashMap::new())), source: Some(Arc::new(source)) })
            }
        }
    }

    /// An engine fed by the PostgreSQL database at `url`, with the slot and publication
    /// names of `options` (see [`Engine::open`]).
    pub fn open_postgres(url: &str, options: PostgresOptions) -> Result<Engine> {
        let dataflow = Dataflow::new(Dialect::Postgres);
        let source = PostgresSource::open(url, options, dataflow.clone())?;
        Ok(Engine { dataflow, by_sql: Arc::new(Mutex::new(HashMap::new())), source: Some(Arc::new(source)) })
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
            if self.dataflow.table_id(name).is_err() {
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
    }

    /// What the source database's follower is doing (None for in-memory engines).
    pub fn source_status(&self) -> Option<ciuf_connectors::SourceStatus> {
        self.source.as_ref().map(|s| s.status())
    }

    /// The engine without SQL.
    pub fn dataflow(&self) -> &Dataflow {
        &self.dataflow
    }

    /// Runs SQL statements: CREATE TABLE, CREATE VIEW, DROP VIEW, INSERT … VALUES,
    /// EXPLAIN, and queries (registered as views). Returns the last statement's outcome.
    pub fn execute(&self, sql: &str) -> Result<Outcome> {
        let mut outcome = Outcome::Done;
        for statement in ciuf_sql::parse(sql)? {
            outcome = self.run(statement)?;
        }
        Ok(outcome)
    }

    fn run(&self, statement: Statement) -> Result<Outcome> {
        Ok(match statement {
            Statement::CreateTable(mut schema) => {
                if self.dataflow.dialect() == Dialect::Sqlite {
                    // SQLite keeps any 64-bit integer in a column declared INTEGER or
                    // SMALLINT (the declared width is only a name): so does ciuf.
                    for c in &mut schema.columns {
                        if c.data_type.is_integer() {
                            c.data_type = ciuf_engine::DataType::BigInt;
                        }
                    }
                }
                self.dataflow.create_table(schema)?;
                Outcome::Done
            }
            Statement::CreateView { name, query, sql, if_not_exists } => {
                if if_not_exists && let Some(v) = self.dataflow.view(&name) {
                    return Ok(Outcome::View(v));
                }
                Outcome::View(self.define(Some(&name), &query, &sql)?)
            }
            Statement::DropView { names, if_exists } => {
                for n in names {
                    match self.dataflow.drop_view(&n) {
                        Err(_) if if_exists => {}
                        other => other?,
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
                for n in names {
                    match self.dataflow.drop_table(&n) {
                        Err(Error::Schema(ciuf_engine::SchemaError::UnknownTable { .. })) if if_exists => {}
                        other => other?,
                    }
                }
                self.by_sql.lock().clear();
                Outcome::Done
            }
            Statement::Query { query, sql } => Outcome::View(self.register(&query, &sql)?),
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
                self.dataflow.apply(changes)?;
                Outcome::Done
            }
            Statement::Explain(query) => {
                Outcome::Explain(self.dataflow.with_catalog(|cat| ciuf_sql::explain(&query, cat))?)
            }
            Statement::NoOp(_) => Outcome::Done,
        })
    }

    /// Registers a query as a view (or returns the view already registered for it).
    pub fn from_sql(&self, sql: &str) -> Result<View> {
        if let Some(v) = self.by_sql.lock().get(sql) {
            return Ok(v.clone());
        }
        let (query, text) = ciuf_sql::parse_query(sql)?;
        let view = self.register(&query, &text)?;
        self.by_sql.lock().insert(sql.to_string(), view.clone());
        Ok(view)
    }

    fn register(&self, query: &ciuf_sql::Query, sql: &str) -> Result<View> {
        self.define(None, query, sql)
    }

    /// Plans and registers a view. With a source, tables the query names that the
    /// engine does not have yet are asked of the source (discovered, loaded, followed)
    /// and the planning tried again.
    fn define(&self, name: Option<&str>, query: &ciuf_sql::Query, sql: &str) -> Result<View> {
        let mut asked: Vec<String> = Vec::new();
        loop {
            let missing = RefCell::new(Vec::new());
            let result = self.dataflow.define_view(name, |cat| {
                ciuf_sql::plan_query(query, sql, &RecordingCatalog { inner: cat, missing: &missing })
            });
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
        let (query, text) = ciuf_sql::parse_query(sql)?;
        self.define(Some(name), &query, &text)
    }

    /// The named view `name`.
    pub fn view(&self, name: &str) -> Option<View> {
        self.dataflow.view(name)
    }

    /// Stops maintaining `view` (and every handle on it).
    pub fn drop_view(&self, view: &View) -> Result<()> {
        self.by_sql.lock().retain(|_, v| v.id() != view.id());
        self.dataflow.drop_view_handle(view)
    }

    /// The operator plan of a query, as text.
    pub fn explain(&self, sql: &str) -> Result<String> {
        let (query, _) = ciuf_sql::parse_query(sql)?;
        match self.run(Statement::Explain(query))? {
            Outcome::Explain(text) => Ok(text),
            _ => unreachable!("EXPLAIN explains"),
        }
    }

    /// Inserts a row (values in column order, or by name) as one transaction.
    pub fn on_insert(&self, table: impl Into<TableRef>, row: impl Into<RowData>) -> Result<()> {
        self.dataflow.apply([Change::insert(table, row)])
    }

    /// Replaces the row `old` by `new`, as one transaction.
    pub fn on_update(
        &self,
        table: impl Into<TableRef>,
        old: impl Into<RowData>,
        new: impl Into<RowData>,
    ) -> Result<()> {
        self.dataflow.apply([Change::update(table, old, new)])
    }

    /// Replaces the row with `new`'s primary key (columns `new` leaves out keep their
    /// values), as one transaction.
    pub fn on_update_by_key(&self, table: impl Into<TableRef>, new: impl Into<RowData>) -> Result<()> {
        self.dataflow.apply([Change::update_by_key(table, new)])
    }

    /// Deletes a row (by primary key where the table has one), as one transaction.
    pub fn on_delete(&self, table: impl Into<TableRef>, row: impl Into<RowData>) -> Result<()> {
        self.dataflow.apply([Change::delete(table, row)])
    }

    /// Applies `changes` as one atomic transaction: all of them, or none and the error.
    pub fn apply<I: IntoIterator<Item = Change>>(&self, changes: I) -> Result<()> {
        self.dataflow.apply(changes)
    }

    /// Inserts many rows into one table as one transaction.
    pub fn insert_many<R: Into<RowData>>(&self, table: &str, rows: impl IntoIterator<Item = R>) -> Result<()> {
        let id = self.dataflow.table_id(table)?;
        self.dataflow.apply(rows.into_iter().map(|r| Change::insert(id, r)))
    }

    /// Inserts the rows of an Arrow record batch into one table as one transaction.
    /// Batch columns are matched to table columns by name; table columns the batch
    /// lacks are NULL; a batch column the table lacks is an error.
    pub fn insert_arrow(&self, table: &str, batch: &RecordBatch) -> Result<()> {
        self.dataflow.insert_batches(table, std::slice::from_ref(batch))
    }

    /// Inserts the rows of several Arrow record batches into one table as one
    /// transaction (see [`Engine::insert_arrow`]).
    pub fn insert_arrow_batches(&self, table: &str, batches: &[RecordBatch]) -> Result<()> {
        self.dataflow.insert_batches(table, batches)
    }

    /// The schema of table `name`.
    pub fn table_schema(&self, name: &str) -> Result<Arc<TableSchema>> {
        self.dataflow.table_schema(name)
    }

    /// Sizes of what the engine holds.
    pub fn stats(&self) -> Stats {
        self.dataflow.stats()
    }
}

/// Registers `sql` as a view of `engine` (the free-function spelling of
/// [`Engine::from_sql`]).
pub fn from_sql(engine: &Engine, sql: &str) -> Result<View> {
    engine.from_sql(sql)
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
