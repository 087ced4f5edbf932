//! `Engine` and `View` for Python: the Rust facade with Python values.
//!
//! Python objects are converted to rows while the GIL is held; the engine then runs
//! (applies the transaction, builds a view's batch) with the GIL released, so other
//! Python threads run meanwhile. Every call either succeeds or raises and changes
//! nothing, as in Rust.

use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};

use arrow_array::RecordBatch;
use arrow_array::ffi_stream::{FFI_ArrowArrayStream, RecordBatchStreamReader};
use ciuf::{Change, Outcome};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyCapsule, PyDict, PyList, PyString, PyTuple};

use crate::errors::{IntoPy, SchemaError};
use crate::frame::Frame;
use crate::values::{Text, to_row};

/// An incremental view-maintenance engine.
#[derive(Debug)]
#[pyclass(module = "ciuf", frozen)]
pub struct Engine {
    /// None once closed.
    inner: Arc<RwLock<Option<ciuf::Engine>>>,
}

/// The engines that follow a database, so that they can be closed — their replication
/// slot and publication dropped — when the process is told to stop (see
/// `ciuf/_signals.py`), before the interpreter would die without running anything.
static SOURCES: Mutex<Vec<Weak<RwLock<Option<ciuf::Engine>>>>> = Mutex::new(Vec::new());

/// Closes every engine that follows a database (what a stopping process must do first).
#[pyfunction]
pub fn _close_sources(py: Python<'_>) {
    let live: Vec<Arc<RwLock<Option<ciuf::Engine>>>> =
        SOURCES.lock().unwrap_or_else(PoisonError::into_inner).drain(..).filter_map(|w| w.upgrade()).collect();
    for inner in live {
        let engine = inner.write().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(e) = engine {
            py.detach(|| e.close());
        }
    }
}

/// A view: a query whose answer the engine keeps up to date.
#[derive(Debug)]
#[pyclass(module = "ciuf", frozen)]
pub struct View {
    inner: ciuf::View,
}

#[pymethods]
impl Engine {
    /// An engine: in memory with no URL (or `"memory:"`); database URLs name a source.
    /// For PostgreSQL, `slot` and `publication` name the replication slot and
    /// publication to use instead of ciuf's own. For SQLite, `capture=False` follows
    /// only tables whose change capture is already installed (`ciuf capture install`).
    /// `threads`: the worker threads large transactions run on (default: `CIUF_THREADS`,
    /// else the machine's cores up to 8).
    #[new]
    #[pyo3(signature = (url=None, *, slot=None, publication=None, capture=None, state_dir=None, durability="sync", threads=None))]
    #[allow(clippy::too_many_arguments)] // the Python constructor's keywords
    fn new(
        py: Python<'_>,
        url: Option<&str>,
        slot: Option<String>,
        publication: Option<String>,
        capture: Option<bool>,
        state_dir: Option<std::path::PathBuf>,
        durability: &str,
        threads: Option<usize>,
    ) -> PyResult<Engine> {
        if threads == Some(0) {
            return Err(pyo3::exceptions::PyValueError::new_err("threads must be at least 1"));
        }
        let durability = match durability {
            "sync" => ciuf::Durability::Sync,
            "grouped" => ciuf::Durability::Grouped(std::time::Duration::from_millis(5)),
            other => {
                return Err(pyo3::exceptions::PyValueError::new_err(format!(
                    "durability must be 'sync' or 'grouped', not {other:?}"
                )));
            }
        };
        let sqlite = ciuf::connectors::sqlite::SqliteOptions { capture: capture.unwrap_or(true), ..Default::default() };
        let postgres = ciuf::connectors::postgres::PostgresOptions { slot, publication };
        let durable = state_dir.is_some();
        let options = ciuf::OpenOptions { state_dir, durability, sqlite, postgres, threads, ..Default::default() };
        let url = url.unwrap_or("memory:");
        let inner = py.detach(|| ciuf::Engine::open_with(url, options)).py_err(py)?;
        // A follower's slot and a durable engine's last commits are seen to at exit.
        let follows = inner.source_status().is_some() || durable;
        let inner = Arc::new(RwLock::new(Some(inner)));
        if follows {
            let mut sources = SOURCES.lock().unwrap_or_else(PoisonError::into_inner);
            sources.retain(|w| w.strong_count() > 0);
            sources.push(Arc::downgrade(&inner));
            drop(sources);
            // Close on SIGTERM, SIGHUP and at exit, chaining to the application's own
            // handlers.
            py.import("ciuf._signals")?.call_method0("install")?;
        }
        Ok(Engine { inner })
    }

    /// Loads these tables from the source database now, in one snapshot.
    fn load_tables(&self, py: Python<'_>, tables: Vec<String>) -> PyResult<()> {
        let engine = self.engine()?;
        let names: Vec<&str> = tables.iter().map(String::as_str).collect();
        py.detach(|| engine.load_tables(&names)).py_err(py)
    }

    /// Runs SQL statements (CREATE TABLE, CREATE VIEW, DROP VIEW, INSERT … VALUES,
    /// EXPLAIN, queries). Returns the last statement's view, EXPLAIN text, or None.
    fn execute<'py>(&self, py: Python<'py>, sql: Text) -> PyResult<Option<Bound<'py, PyAny>>> {
        let engine = self.engine()?;
        Ok(match py.detach(|| engine.execute(&sql)).py_err(py)? {
            Outcome::Done => None,
            Outcome::View(v) => Some(Bound::new(py, View { inner: v })?.into_any()),
            Outcome::Explain(text) => Some(PyString::new(py, &text).into_any()),
        })
    }

    /// Registers `sql` as a view, or returns the view already registered for it. A
    /// query with parameters (`WHERE customer_id = $1`, `?`, `:name`) is read by key:
    /// `view.query(42)` or `view.query(customer_id=42)`. `partial=True` holds only the
    /// keys read, within `max_keys`, `idle_seconds` and `memory_budget` (bytes).
    #[allow(clippy::wrong_self_convention)] // the name is the Python API's
    #[pyo3(signature = (sql, *, partial=false, max_keys=None, idle_seconds=None, memory_budget=None))]
    fn from_sql(
        &self,
        py: Python<'_>,
        sql: Text,
        partial: bool,
        max_keys: Option<usize>,
        idle_seconds: Option<f64>,
        memory_budget: Option<usize>,
    ) -> PyResult<View> {
        let engine = self.engine()?;
        if !partial && (max_keys.is_some() || idle_seconds.is_some() || memory_budget.is_some()) {
            return Err(pyo3::exceptions::PyValueError::new_err(
                "max_keys, idle_seconds and memory_budget are limits of a partial view: pass partial=True",
            ));
        }
        if !partial {
            return py.detach(|| engine.from_sql(&sql)).py_err(py).map(|inner| View { inner });
        }
        let limits = ciuf::PartialLimits {
            max_keys,
            idle: idle_seconds.map(std::time::Duration::from_secs_f64),
            max_bytes: memory_budget,
        };
        py.detach(|| engine.from_sql_with(&sql, ciuf::ViewOptions { partial: Some(limits) }))
            .py_err(py)
            .map(|inner| View { inner })
    }

    /// Registers `sql` as the view `name`, which later queries can read like a table.
    fn create_view(&self, py: Python<'_>, name: Text, sql: Text) -> PyResult<View> {
        let engine = self.engine()?;
        py.detach(|| engine.create_view(&name, &sql)).py_err(py).map(|inner| View { inner })
    }

    /// The named view `name`, or None.
    fn view(&self, name: Text) -> PyResult<Option<View>> {
        Ok(self.engine()?.view(&name).map(|inner| View { inner }))
    }

    /// Stops maintaining `view`.
    fn drop_view(&self, py: Python<'_>, view: &View) -> PyResult<()> {
        self.engine()?.drop_view(&view.inner).py_err(py)
    }

    /// The operator plan of a query, as text.
    fn explain(&self, py: Python<'_>, sql: Text) -> PyResult<String> {
        self.engine()?.explain(&sql).py_err(py)
    }

    /// The names of the tables.
    fn tables(&self) -> PyResult<Vec<String>> {
        // Not the tables of requested keys partial views keep for themselves.
        Ok(self.engine()?.database().table_names().into_iter().filter(|t| !t.starts_with("__ciuf_")).collect())
    }

    /// The columns of `table` and their SQL types, in column order.
    fn columns<'py>(&self, py: Python<'py>, table: Text) -> PyResult<Bound<'py, PyDict>> {
        let schema = self.engine()?.table_schema(&table).py_err(py)?;
        let d = PyDict::new(py);
        for c in &schema.columns {
            d.set_item(&c.name, c.data_type.to_string())?;
        }
        Ok(d)
    }

    /// The primary-key columns of `table` (empty if it has none).
    fn primary_key(&self, py: Python<'_>, table: Text) -> PyResult<Vec<String>> {
        let schema = self.engine()?.table_schema(&table).py_err(py)?;
        Ok(schema.primary_key.iter().flatten().map(|&i| schema.columns[i].name.clone()).collect())
    }

    /// Inserts `row` (a dict by column name, or a sequence in column order).
    fn on_insert(&self, py: Python<'_>, table: Text, row: &Bound<'_, PyAny>) -> PyResult<()> {
        let change = Change::insert(&*table, to_row(row)?);
        self.run(py, vec![change])
    }

    /// Replaces the row `old` by `new`. Without `old`, the row with `new`'s primary key
    /// is replaced, and columns `new` leaves out keep their values.
    #[pyo3(signature = (table, new, old=None))]
    fn on_update(
        &self,
        py: Python<'_>,
        table: Text,
        new: &Bound<'_, PyAny>,
        old: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let change = match old {
            Some(old) => Change::update(&*table, to_row(old)?, to_row(new)?),
            None => Change::update_by_key(&*table, to_row(new)?),
        };
        self.run(py, vec![change])
    }

    /// Deletes `row` (found by primary key where the table has one).
    fn on_delete(&self, py: Python<'_>, table: Text, row: &Bound<'_, PyAny>) -> PyResult<()> {
        let change = Change::delete(&*table, to_row(row)?);
        self.run(py, vec![change])
    }

    /// Applies many changes as one atomic transaction. A change is a tuple —
    /// `("insert", table, row)`, `("delete", table, row)`, `("update", table, new)` or
    /// `("update", table, new, old)` — or a dict with keys `op`, `table` and `row`
    /// (insert, delete) or `new` and optionally `old` (update).
    fn apply(&self, py: Python<'_>, changes: &Bound<'_, PyAny>) -> PyResult<()> {
        let changes = changes.try_iter()?.map(|c| to_change(&c?)).collect::<PyResult<Vec<_>>>()?;
        self.run(py, changes)
    }

    /// Inserts many rows into `table` as one transaction: a list of dicts (or of
    /// sequences), or any Arrow-compatible table (pyarrow, polars, pandas: read through
    /// the Arrow PyCapsule interface, with no per-row Python work).
    fn insert_many(&self, py: Python<'_>, table: Text, rows: &Bound<'_, PyAny>) -> PyResult<()> {
        if let Some(batches) = arrow_batches(rows)? {
            let engine = self.engine()?;
            return py.detach(|| engine.insert_arrow_batches(&table, &batches)).py_err(py);
        }
        if rows.cast::<PyDict>().is_ok() || rows.cast::<PyString>().is_ok() {
            return Err(PyTypeError::new_err(
                "insert_many takes a list of rows (dicts or sequences) or an Arrow-compatible table",
            ));
        }
        let changes =
            rows.try_iter()?.map(|r| Ok(Change::insert(&*table, to_row(&r?)?))).collect::<PyResult<Vec<_>>>()?;
        self.run(py, changes)
    }

    /// Sizes of what the engine holds: tables, rows, views, arrangements, bytes; and
    /// how many view nodes a restart took from a checkpoint instead of computing them.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.engine()?.stats();
        let d = PyDict::new(py);
        d.set_item("base_rows", s.base_rows)?;
        d.set_item("nodes", s.nodes)?;
        d.set_item("arrangements", s.arrangements)?;
        d.set_item("deferred_arrangements", s.deferred_arrangements)?;
        d.set_item("table_index_bytes", s.table_index_bytes)?;
        d.set_item("operator_state_bytes", s.operator_state_bytes)?;
        d.set_item("view_state_bytes", s.view_state_bytes)?;
        d.set_item("restored_nodes", s.restored_nodes)?;
        Ok(d)
    }

    /// Stops the engine: later calls raise `ciuf.Error`. Views already obtained stay
    /// readable, frozen at their last state. Closing twice is harmless.
    fn close(&self, py: Python<'_>) {
        let engine = self.inner.write().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(e) = engine {
            py.detach(|| e.close());
        }
    }

    /// Makes every transaction applied so far durable now (a durable engine with
    /// durability="grouped" does so within milliseconds anyway).
    fn sync(&self, py: Python<'_>) -> PyResult<()> {
        let engine = self.engine()?;
        py.detach(|| engine.sync()).py_err(py)
    }

    /// Writes a checkpoint of every table now and waits until it is durable, so that
    /// the next start reads it rather than the log since the last one (a durable
    /// engine also writes them on its own as its log grows).
    fn checkpoint(&self, py: Python<'_>) -> PyResult<()> {
        let engine = self.engine()?;
        py.detach(|| engine.checkpoint()).py_err(py)
    }

    /// The worker threads large transactions (loads, snapshots, catch-up batches, views
    /// built over loaded tables) run on; 1 runs everything on the applying thread.
    #[getter]
    fn threads(&self) -> PyResult<usize> {
        Ok(self.engine()?.threads())
    }

    #[setter]
    fn set_threads(&self, py: Python<'_>, threads: usize) -> PyResult<()> {
        if threads == 0 {
            return Err(pyo3::exceptions::PyValueError::new_err("threads must be at least 1"));
        }
        let engine = self.engine()?;
        py.detach(|| engine.set_threads(threads));
        Ok(())
    }

    /// The state directory of a durable engine, or None.
    #[getter]
    fn state_dir(&self) -> PyResult<Option<std::path::PathBuf>> {
        Ok(self.engine()?.state_dir().map(std::path::Path::to_path_buf))
    }

    /// What the source database's follower is doing (None for in-memory engines):
    /// position, transactions, loading, streaming, reconnects, resyncs, rows_read, error.
    fn source_status<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        let Some(s) = self.engine()?.source_status() else { return Ok(None) };
        let d = PyDict::new(py);
        d.set_item("position", s.position)?;
        d.set_item("transactions", s.transactions)?;
        d.set_item("loading", s.loading)?;
        d.set_item("streaming", s.streaming)?;
        d.set_item("reconnects", s.reconnects)?;
        d.set_item("resyncs", s.resyncs)?;
        d.set_item("rows_read", s.rows_read)?;
        d.set_item("error", s.error)?;
        Ok(Some(d))
    }

    /// Whether `close()` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.inner.read().unwrap_or_else(PoisonError::into_inner).is_none()
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, PyTuple>) -> bool {
        self.close(py);
        false
    }

    fn __repr__(&self) -> String {
        match self.engine() {
            Ok(e) => format!("<ciuf.Engine tables={:?}>", e.database().table_names()),
            Err(_) => "<ciuf.Engine closed>".to_string(),
        }
    }
}

impl Engine {
    /// Applies `changes` as one transaction with the GIL released.
    fn run(&self, py: Python<'_>, changes: Vec<Change>) -> PyResult<()> {
        let engine = self.engine()?;
        py.detach(|| engine.apply(changes)).py_err(py)
    }

    /// The engine (a cheap handle), or an error once closed.
    fn engine(&self) -> PyResult<ciuf::Engine> {
        self.inner
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or_else(|| crate::errors::Error::new_err("the engine is closed"))
    }
}

/// Registers `sql` as a view of `engine` (the same as `engine.from_sql(sql)`).
/// Sets the memory budget of every engine in the process, in bytes: a view whose
/// computation would take the process past it fails (being registered: is refused)
/// with an `EvaluationError` naming the budget. Default: half of the machine's memory.
#[pyfunction]
pub fn set_memory_budget(bytes: u64) -> PyResult<()> {
    if bytes == 0 {
        return Err(pyo3::exceptions::PyValueError::new_err("the memory budget must be more than 0 bytes"));
    }
    ciuf::set_memory_budget(usize::try_from(bytes).unwrap_or(usize::MAX));
    Ok(())
}

/// Removes the state directory of a durable engine (refused while an engine holds it).
/// For one that followed PostgreSQL, `url` names the database, whose replication slot
/// (and the publication ciuf made) are dropped first.
#[pyfunction]
#[pyo3(signature = (state_dir, url=None))]
pub fn drop_state(py: Python<'_>, state_dir: std::path::PathBuf, url: Option<Text>) -> PyResult<()> {
    py.detach(|| ciuf::drop_state_with(&state_dir, url.as_deref())).py_err(py)
}

/// The memory budget of the process, in bytes.
#[pyfunction]
pub fn memory_budget() -> u64 {
    ciuf::memory_budget() as u64
}

#[pyfunction]
pub fn from_sql(py: Python<'_>, engine: &Engine, sql: Text) -> PyResult<View> {
    engine.from_sql(py, sql, false, None, None, None)
}

#[pymethods]
impl View {
    /// The view's rows now, as an Arrow-backed frame; for a parameterized view, the
    /// rows of the key given by position (`query(42)`) or by name
    /// (`query(customer_id=42)`).
    #[pyo3(signature = (*args, **kwargs))]
    fn query(
        &self,
        py: Python<'_>,
        args: &Bound<'_, pyo3::types::PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Frame> {
        let kwargs = kwargs.filter(|k| !k.is_empty());
        if args.is_empty() && kwargs.is_none() {
            return py.detach(|| self.inner.query()).py_err(py).map(|batch| Frame { batch });
        }
        if !args.is_empty() && kwargs.is_some() {
            return Err(pyo3::exceptions::PyTypeError::new_err("give the parameters by position or by name, not both"));
        }
        let batch = match kwargs {
            None => {
                let names = self.inner.params();
                let values: Vec<ciuf::Value> = args
                    .iter()
                    .enumerate()
                    .map(|(i, a)| crate::values::to_value(&a, &names.get(i).copied().unwrap_or("parameter")))
                    .collect::<PyResult<_>>()?;
                py.detach(|| self.inner.query_with(&values)).py_err(py)?
            }
            Some(kw) => {
                let mut named: Vec<(String, ciuf::Value)> = Vec::with_capacity(kw.len());
                for (k, v) in kw.iter() {
                    let name: String = k.extract()?;
                    let value = crate::values::to_value(&v, &name)?;
                    named.push((name, value));
                }
                let pairs: Vec<(&str, ciuf::Value)> = named.iter().map(|(n, v)| (n.as_str(), v.clone())).collect();
                py.detach(|| self.inner.query_named(&pairs)).py_err(py)?
            }
        };
        Ok(Frame { batch })
    }

    /// The parameters' names, in positional order (empty for a plain view).
    #[getter]
    fn params(&self) -> Vec<String> {
        self.inner.params().into_iter().map(str::to_string).collect()
    }

    /// The column names.
    #[getter]
    fn columns(&self) -> Vec<String> {
        self.inner.columns().iter().map(|c| c.name.clone()).collect()
    }

    /// The columns' SQL types, by column name.
    #[getter]
    fn schema<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for c in self.inner.columns() {
            d.set_item(&c.name, c.data_type.to_string())?;
        }
        Ok(d)
    }

    /// The number of rows.
    fn __len__(&self, py: Python<'_>) -> PyResult<usize> {
        self.inner.len().py_err(py)
    }

    /// The SQL text the view was registered with.
    #[getter]
    fn sql(&self) -> &str {
        self.inner.sql()
    }

    /// The view's name, if it was created with one.
    #[getter]
    fn name(&self) -> Option<&str> {
        self.inner.name()
    }

    /// A number that changes whenever the view's rows change.
    #[getter]
    fn version(&self, py: Python<'_>) -> PyResult<u64> {
        self.inner.version().py_err(py)
    }

    /// Handles on the same view are equal (the same SQL registered twice is one view).
    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other.cast::<View>().is_ok_and(|o| o.get().inner.id() == self.inner.id())
    }

    fn __hash__(&self) -> u64 {
        u64::from(self.inner.id().0)
    }

    fn __repr__(&self) -> String {
        format!("<ciuf.View {:?} columns={:?}>", self.inner.name().unwrap_or(self.inner.sql()), self.columns())
    }
}

/// One element of `Engine.apply`'s list as a change.
fn to_change(obj: &Bound<'_, PyAny>) -> PyResult<Change> {
    let bad = || {
        SchemaError::new_err(
            "a change is ('insert'|'delete', table, row), ('update', table, new[, old]) \
             or a dict with 'op', 'table' and 'row' (or 'new' and 'old')",
        )
    };
    let (Text(op), Text(table), first, second): (Text, Text, Bound<'_, PyAny>, Option<Bound<'_, PyAny>>) =
        if let Ok(t) = obj.cast::<PyTuple>() {
            match t.len() {
                3 => (t.get_item(0)?.extract()?, t.get_item(1)?.extract()?, t.get_item(2)?, None),
                4 => (t.get_item(0)?.extract()?, t.get_item(1)?.extract()?, t.get_item(2)?, Some(t.get_item(3)?)),
                _ => return Err(bad()),
            }
        } else if let Ok(d) = obj.cast::<PyDict>() {
            let get = |k: &str| d.get_item(k);
            let op: Text = get("op")?.ok_or_else(bad)?.extract()?;
            let table: Text = get("table")?.ok_or_else(bad)?.extract()?;
            if op.0 == "update" {
                (op, table, get("new")?.ok_or_else(bad)?, get("old")?.filter(|o| !o.is_none()))
            } else {
                (op, table, get("row")?.ok_or_else(bad)?, None)
            }
        } else if obj.cast::<PyList>().is_ok() {
            return to_change(&PyTuple::new(obj.py(), obj.cast::<PyList>()?.iter())?.into_any());
        } else {
            return Err(bad());
        };
    match (op.as_str(), second) {
        ("insert", None) => Ok(Change::insert(table, to_row(&first)?)),
        ("delete", None) => Ok(Change::delete(table, to_row(&first)?)),
        ("update", None) => Ok(Change::update_by_key(table, to_row(&first)?)),
        ("update", Some(old)) => Ok(Change::update(table, to_row(&old)?, to_row(&first)?)),
        _ => Err(SchemaError::new_err(format!("unknown change {op:?}: use 'insert', 'update' or 'delete'"))),
    }
}

/// The record batches of an object that offers an Arrow C stream, or None.
fn arrow_batches(obj: &Bound<'_, PyAny>) -> PyResult<Option<Vec<RecordBatch>>> {
    if !obj.hasattr("__arrow_c_stream__")? {
        return Ok(None);
    }
    let capsule = obj.call_method0("__arrow_c_stream__")?.cast_into::<PyCapsule>()?;
    let pointer = capsule.pointer_checked(Some(c"arrow_array_stream"))?;
    // SAFETY: a capsule named `arrow_array_stream` holds an ArrowArrayStream (the Arrow
    // PyCapsule interface); `from_raw` moves the stream out and marks the original
    // released, as the interface asks of a consumer.
    let stream = unsafe { FFI_ArrowArrayStream::from_raw(pointer.cast::<FFI_ArrowArrayStream>().as_ptr()) };
    let reader = RecordBatchStreamReader::try_new(stream)
        .map_err(|e| SchemaError::new_err(format!("cannot read the Arrow stream: {e}")))?;
    reader
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
        .map_err(|e| SchemaError::new_err(format!("cannot read the Arrow stream: {e}")))
}
