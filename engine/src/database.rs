//! The database: tables, views, the dataflow that keeps the views up to date (see
//! [`crate::dataflow`]), and the transactions between them. A [`Database`] is what the
//! `ciuf` crate's engine and the source connectors hold.
//!
//! One writer at a time (a mutex) stages a transaction's changes against the base
//! tables, runs the dataflow, and publishes the views' deltas under a short write lock;
//! readers of views only ever take the read lock (see [`crate::view`]). A transaction
//! is all or nothing: every change is checked and applied to its table with an undo
//! record, and the first change that fails puts every table back and reports why,
//! before any operator has seen the transaction. A checked transaction always
//! completes: an operator that meets a value its view's SQL cannot compute (or fails
//! for a bug) fails only the views downstream of it, which report why from then on
//! (see [`crate::dataflow`]); should anything else panic, the engine refuses all further
//! work instead of serving views it can no longer vouch for.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use petgraph::stable_graph::NodeIndex;

use crate::arrow_out::arrow_schema;
use crate::catalog::{Catalog, Dialect};
use crate::change::{Change, RowData, TableRef};
use crate::dataflow::{Dataflow, SavedStates};
use crate::drop_later::Dropper;
use crate::error::{Error, Result, SchemaError, SqlError, SqlErrorKind, nearest_name};
use crate::journal::{Committed, Journal, SavedState, TableContents, is_internal};
use crate::partial::PartialKeys;
use crate::plan::{Plan, TableId, ViewDef};
use crate::profile::{Profile, Stopwatch};
use crate::row::{PREFETCH_AHEAD, Row};
use crate::sort::OrderSpec;
use crate::table::{Table, Undo};
use crate::types::{MAX_DECIMAL_PRECISION, TableSchema};
use crate::view::{KeyRequests, Keyed, PartialLimits, Published, View, ViewId, ViewInfo, ViewState};
use crate::zset::ZSet;

/// Consecutive inserts into one table from this many on go in as one run (see
/// [`Table::insert_many`]); fewer go one by one, as every other change does.
const INSERT_RUN_FROM: usize = 64;
/// The longest run of inserts taken as one.
const MAX_INSERT_RUN: usize = 1 << 20;
/// The largest undo log (in entries) kept for the next transaction.
const KEPT_UNDO: usize = 1 << 16;

/// A transaction's changes, read ahead of where they are staged so that what each
/// will read is in cache by then, in three steps so that no load waits on another:
/// the values a change carries, twice [`PREFETCH_AHEAD`] changes before it is staged;
/// the table slot its key looks up ([`Table::prefetch_key`], which needs the values),
/// [`PREFETCH_AHEAD`] before; and, half that before, the stored row that slot points
/// to, for an update or a delete ([`Table::prefetch_stored`]). A batch's lookups in a
/// large table then wait on memory together instead of one after the other.
struct Ahead<I> {
    changes: I,
    /// The changes read, each with its key's hash once its slot has been fetched.
    window: Window,
}

impl<I: Iterator<Item = Change>> Ahead<I> {
    /// Reads `changes` ahead into `window` (empty; its room is reused).
    fn new(changes: I, window: Window) -> Ahead<I> {
        debug_assert!(window.is_empty());
        Ahead { changes, window }
    }

    /// The window, emptied (the changes not staged dropped), to be kept.
    fn into_window(self) -> Window {
        let mut window = self.window;
        window.clear();
        window
    }

    /// The next change, with those after it read (and prefetched for) up to the window.
    fn next(&mut self, db: &Writer) -> Option<Change> {
        while self.window.len() <= 2 * PREFETCH_AHEAD {
            let Some(change) = self.changes.next() else { break };
            change.prefetch_values();
            // The first changes of a transaction start nearer than the distance.
            let hash = if self.window.len() < PREFETCH_AHEAD { db.prefetch(&change) } else { None };
            self.window.push_back((change, hash));
        }
        if let Some((change, hash)) = self.window.get_mut(PREFETCH_AHEAD) {
            *hash = db.prefetch(change);
        }
        if let Some((change, Some(hash))) = self.window.get(PREFETCH_AHEAD / 2) {
            db.prefetch_stored(change, *hash);
        }
        self.window.pop_front().map(|(change, _)| change)
    }

    /// The change [`Ahead::next`] returns next, if read already.
    fn peek(&self) -> Option<&Change> {
        self.window.front().map(|(change, _)| change)
    }

    /// The next change if it inserts into `table`, read without prefetching: inside a
    /// long run of inserts, whose rows are built later in one pass that prefetches
    /// for itself (see `Table::insert_many`), what reading ahead fetches would be
    /// evicted before it is used. A change that does not continue the run is kept,
    /// to be staged next.
    fn next_insert_into(&mut self, table: &TableRef) -> Option<RowData> {
        if !self.window.is_empty() {
            return match self.window.front() {
                Some((Change::Insert { table: next, .. }, _)) if next == table => match self.window.pop_front() {
                    Some((Change::Insert { row, .. }, _)) => Some(row),
                    _ => unreachable!("looked at"),
                },
                _ => None,
            };
        }
        match self.changes.next()? {
            Change::Insert { table: next, row } if next == *table => Some(row),
            other => {
                self.window.push_back((other, None));
                None
            }
        }
    }

    /// At least how many changes are left.
    fn left(&self) -> usize {
        self.window.len() + self.changes.size_hint().0
    }
}

/// State shared by an engine and its view handles.
#[derive(Debug)]
pub(crate) struct Shared {
    writer: Mutex<Writer>,
    /// What readers see (view handles hold it too).
    pub published: Arc<RwLock<Published>>,
}

#[derive(Debug)]
struct ViewEntry {
    info: Arc<ViewInfo>,
    def: ViewDef,
    root: NodeIndex,
    key: Option<String>,
}

#[derive(Debug)]
struct Writer {
    dialect: Dialect,
    tables: Vec<Option<Table>>,
    table_names: HashMap<String, TableId>,
    dataflow: Dataflow,
    views: Vec<Option<ViewEntry>>,
    /// Unnamed views by definition, so that registering the same query twice shares.
    view_keys: HashMap<String, ViewId>,
    named_views: HashMap<String, ViewId>,
    /// Views by the graph node they read.
    views_by_root: HashMap<NodeIndex, Vec<ViewId>>,
    /// Per table, the delta of the transaction being staged.
    pending: Vec<ZSet>,
    pending_tables: Vec<TableId>,
    poisoned: Option<String>,
    /// Tables no longer kept up to date, and why (see [`Database::fail_table`]).
    failed_tables: HashMap<TableId, Error>,
    /// While profiling: transactions, table stage and publish totals (the nodes'
    /// times are the graph's).
    profile: Option<Profile>,
    /// Where a durable engine records what it commits (see [`crate::journal`]).
    journal: Option<Arc<dyn Journal>>,
    /// Operator states offered for the views a restart registers again (see
    /// [`Database::offer_states`]).
    offered: SavedStates,
    /// A run of inserts into one table being gathered (see [`Writer::stage_all`]),
    /// kept between transactions: a source's transactions are mostly short runs, and
    /// growing a new vector for each cost more than storing the rows.
    run: Vec<RowData>,
    /// The undo log of the transaction being staged, kept between transactions for
    /// the same reason: a big transaction's log grown from nothing each time went
    /// through `realloc` (and glibc's `malloc_consolidate`) a dozen times.
    undo: Vec<Undo>,
    /// The window of changes read ahead ([`Ahead`]), empty between transactions and
    /// kept for the same reason.
    window: Window,
    /// What a large transaction leaves is dropped on the worker threads.
    dropper: Dropper,
}

/// Changes read ahead of the one being staged, each with its key's hash once its
/// slot has been fetched.
type Window = std::collections::VecDeque<(Change, Option<u64>)>;

/// Sizes of what the engine holds, for memory reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Rows stored in base tables.
    pub base_rows: usize,
    /// Dataflow nodes.
    pub nodes: usize,
    /// Join indexes (arrangements), each shared by every join that probes it.
    pub arrangements: usize,
    /// Of those, the ones over a table that held rows when they were made and that no
    /// join has needed since: not built yet (built from the table when first probed).
    pub deferred_arrangements: usize,
    /// Approximate heap bytes of the tables' row indexes (not counting the rows).
    pub table_index_bytes: usize,
    /// Approximate heap bytes of operator state (not counting shared rows).
    pub operator_state_bytes: usize,
    /// Approximate heap bytes of the views' published rows (not counting shared rows).
    pub view_state_bytes: usize,
    /// Dataflow nodes whose state a restart took from a checkpoint instead of
    /// computing it (see [`Database::offer_states`]).
    pub restored_nodes: usize,
}

/// An incremental view-maintenance engine over in-memory tables.
///
/// `Database` knows no SQL: tables arrive as [`TableSchema`]s and views as [`ViewDef`]s
/// (the `ciuf` crate's `Engine` adds the SQL front end). It is cheap to clone, and
/// `Send + Sync`: any thread may apply changes (one at a time) and read views.
#[derive(Debug, Clone)]
pub struct Database {
    pub(crate) shared: Arc<Shared>,
}

impl Default for Database {
    fn default() -> Self {
        Database::new(Dialect::default())
    }
}

impl Database {
    /// An empty engine following `dialect` where SQL dialects differ.
    pub fn new(dialect: Dialect) -> Database {
        let writer = Writer {
            dialect,
            tables: Vec::new(),
            table_names: HashMap::new(),
            dataflow: Dataflow::default(),
            views: Vec::new(),
            view_keys: HashMap::new(),
            named_views: HashMap::new(),
            views_by_root: HashMap::new(),
            pending: Vec::new(),
            pending_tables: Vec::new(),
            poisoned: None,
            failed_tables: HashMap::new(),
            profile: None,
            journal: None,
            offered: SavedStates::default(),
            run: Vec::new(),
            undo: Vec::new(),
            window: Window::new(),
            dropper: Dropper::default(),
        };
        Database { shared: Arc::new(Shared { writer: Mutex::new(writer), published: Arc::default() }) }
    }

    /// The engine a view handle belongs to.
    pub(crate) fn from_shared(shared: Arc<Shared>) -> Database {
        Database { shared }
    }

    /// The dialect.
    pub fn dialect(&self) -> Dialect {
        self.shared.writer.lock().dialect
    }

    /// Creates a table.
    pub fn create_table(&self, schema: TableSchema) -> Result<TableId> {
        let mut w = self.writer()?;
        validate_schema(&schema)?;
        let lower = schema.name.to_ascii_lowercase();
        if w.table_names.contains_key(&lower) || w.named_views.contains_key(&lower) {
            return Err(SchemaError::TableExists(crate::error::shown(&schema.name).into_owned()).into());
        }
        if let Some(j) = &w.journal
            && !is_internal(&schema.name)
        {
            j.table_created(&schema)?;
        }
        let id = TableId(w.tables.len() as u32);
        w.tables.push(Some(Table::new(id, schema)));
        w.pending.push(ZSet::new());
        w.table_names.insert(lower, id);
        Ok(id)
    }

    /// Drops the table `name` and its rows. Refused while a view reads it (drop the
    /// views first): a view must never lose its input.
    pub fn drop_table(&self, name: &str) -> Result<()> {
        let mut w = self.writer()?;
        let id = w.resolve(&TableRef::Name(name.to_string()))?;
        let readers: Vec<String> = w
            .views
            .iter()
            .flatten()
            .filter(|v| v.def.plan.reads(id))
            .map(|v| v.info.name.clone().unwrap_or_else(|| v.info.sql.clone()))
            .collect();
        if !readers.is_empty() {
            return Err(SqlError::new(
                SqlErrorKind::Catalog,
                format!("cannot drop table {name}: views read it (drop them first): {}", readers.join("; ")),
            )
            .into());
        }
        let declared = w.table(id).schema().name.clone();
        if let Some(j) = &w.journal
            && !is_internal(&declared)
        {
            j.table_dropped(&declared)?;
        }
        let table_name = declared.to_ascii_lowercase();
        w.table_names.remove(&table_name);
        w.tables[id.0 as usize] = None;
        w.failed_tables.remove(&id);
        Ok(())
    }

    /// The views that read the table called `name` (empty if there is no such table).
    pub fn readers_of(&self, name: &str) -> Vec<ViewId> {
        let w = self.shared.writer.lock();
        let Ok(id) = w.resolve(&TableRef::Name(name.to_string())) else { return Vec::new() };
        w.views.iter().flatten().filter(|v| v.def.plan.reads(id)).map(|v| v.info.id).collect()
    }

    /// The id the next view registered will have: views with ids below it exist or
    /// existed.
    pub fn next_view_id(&self) -> ViewId {
        ViewId(self.shared.writer.lock().views.len() as u32)
    }

    /// Whether `view` reads the table called `name` (false if either is gone).
    pub fn view_reads(&self, view: &View, name: &str) -> bool {
        let w = self.shared.writer.lock();
        let Ok(id) = w.resolve(&TableRef::Name(name.to_string())) else { return false };
        w.views.get(view.id().0 as usize).and_then(Option::as_ref).is_some_and(|v| v.def.plan.reads(id))
    }

    /// The id of the table called `name`.
    pub fn table_id(&self, name: &str) -> Result<TableId> {
        let w = self.shared.writer.lock();
        w.resolve(&TableRef::Name(name.to_string()))
    }

    /// The schema of the table called `name`.
    pub fn table_schema(&self, name: &str) -> Result<Arc<TableSchema>> {
        let w = self.shared.writer.lock();
        let id = w.resolve(&TableRef::Name(name.to_string()))?;
        Ok(Arc::clone(w.table(id).schema()))
    }

    /// Marks table `table` as no longer kept up to date (its source changed under it:
    /// altered, dropped): every view reading it reports `reason` from then on, and
    /// changes to it are refused; the other views go on.
    pub fn fail_table(&self, table: TableId, reason: &str) -> Result<()> {
        let mut w = self.shared.writer.lock();
        let id = w.resolve(&TableRef::Id(table))?;
        let name = w.table(id).schema().name.clone();
        let error =
            Error::Source { message: format!("table {name} is no longer followed: {reason}"), retryable: false };
        w.failed_tables.insert(id, error.clone());
        let readers: Vec<ViewId> =
            w.views.iter().flatten().filter(|v| v.def.plan.reads(id)).map(|v| v.info.id).collect();
        let mut p = self.shared.published.write();
        for v in readers {
            if let Some(state) = p.views.get_mut(v.0 as usize).and_then(Option::as_mut) {
                state.broken = Some(error.clone());
            }
        }
        Ok(())
    }

    /// The name of table `id`.
    pub fn table_name(&self, id: TableId) -> Result<String> {
        let w = self.shared.writer.lock();
        let id = w.resolve(&TableRef::Id(id))?;
        Ok(w.table(id).schema().name.clone())
    }

    /// The names of all tables, in creation order.
    pub fn table_names(&self) -> Vec<String> {
        let w = self.shared.writer.lock();
        w.tables.iter().flatten().map(|t| t.schema().name.clone()).collect()
    }

    /// Every row of the table called `name` (for inspection and tests).
    pub fn table_rows(&self, name: &str) -> Result<Vec<Row>> {
        let w = self.shared.writer.lock();
        let id = w.resolve(&TableRef::Name(name.to_string()))?;
        let mut rows = Vec::new();
        for (r, n) in w.table(id).contents() {
            rows.extend(std::iter::repeat_n(r, n as usize));
        }
        Ok(rows)
    }

    /// Makes room in `table` for `rows` more rows: a hint for a load that knows its
    /// size (a snapshot's row estimate), which then grows the table once. Changes
    /// nothing a reader sees.
    pub fn reserve_rows(&self, table: TableId, rows: usize) -> Result<()> {
        let mut w = self.writer()?;
        let id = w.resolve(&TableRef::Id(table))?;
        w.tables[id.0 as usize].as_mut().expect("resolved ids exist").reserve(rows);
        Ok(())
    }

    /// Registers a view. `define` plans it against the catalog, under the same lock
    /// that registers it, so the catalog cannot change in between. An unnamed view
    /// equal to one already registered is that view.
    pub fn define_view(
        &self,
        name: Option<&str>,
        define: impl FnOnce(&dyn Catalog) -> Result<ViewDef>,
    ) -> Result<View> {
        self.define_view_with(name, PartialLimits::default(), define)
    }

    /// [`Database::define_view`], with the limits a partial parameterized view keeps
    /// its keys within.
    pub fn define_view_with(
        &self,
        name: Option<&str>,
        limits: PartialLimits,
        define: impl FnOnce(&dyn Catalog) -> Result<ViewDef>,
    ) -> Result<View> {
        let mut w = self.writer()?;
        if let Some(n) = name {
            let lower = n.to_ascii_lowercase();
            if w.table_names.contains_key(&lower) || w.named_views.contains_key(&lower) {
                return Err(
                    SqlError::new(SqlErrorKind::Catalog, format!("a table or view named {n} already exists")).into()
                );
            }
        }
        let def = define(&*w)?;
        validate_plan(&w, &def.plan)?;
        let key = name.is_none().then(|| def.key());
        if let Some(&id) = key.as_ref().and_then(|k| w.view_keys.get(k)) {
            // The same query is the same view, unless that one failed computing: then
            // this one is computed afresh.
            let failed = w.dataflow.failure(w.views[id.0 as usize].as_ref().expect("registered").root).is_some();
            if !failed {
                let info = Arc::clone(&w.views[id.0 as usize].as_ref().expect("registered").info);
                return Ok(View { published: Arc::clone(&self.shared.published), info, bound: None });
            }
        }
        let id = ViewId(w.views.len() as u32);
        // A view ending in a projection of plain columns over rows shared with a table
        // stores those rows and projects when read: no copy per row.
        let (stored_plan, positions) = match &def.plan {
            Plan::Project { input, exprs } if input.passes_base_rows() => match Plan::column_projection(exprs) {
                Some(cols) => (input.as_ref().clone(), cols),
                None => (def.plan.clone(), (0..def.columns.len()).collect()),
            },
            _ => (def.plan.clone(), (0..def.columns.len()).collect::<Vec<usize>>()),
        };
        let order = (!def.order.is_empty()).then(|| {
            Arc::new(OrderSpec::new(
                def.order.iter().map(|k| crate::plan::SortKey { column: positions[k.column], ..*k }).collect(),
            ))
        });
        let info = Arc::new(ViewInfo {
            id,
            name: name.map(str::to_string),
            sql: def.sql.clone(),
            schema: arrow_schema(&def.columns[..def.visible]),
            columns: def.columns.clone(),
            visible: def.visible,
            params: def.params.as_ref().map(|spec| Keyed {
                positions: spec.key_columns.iter().map(|c| positions[*c]).collect(),
                partial: spec.keys_table.map(|table| {
                    let keys = PartialKeys::new(Arc::downgrade(&self.shared), id, table, def.columns.len(), limits);
                    Arc::new(keys) as Arc<dyn KeyRequests>
                }),
                spec: spec.clone(),
            }),
            positions,
            order: order.clone(),
        });
        let w = &mut *w;
        let built = catch_unwind(AssertUnwindSafe(|| {
            let mut created = Vec::new();
            let root = w.dataflow.build(&stored_plan, &mut created);
            (root, created)
        }));
        let (root, created) = match built {
            Ok(x) => x,
            Err(panic) => return Err(w.poison(panic)),
        };
        let initial = match w.dataflow.initialize(&created, root, &w.tables, &mut w.offered) {
            Ok(initial) => initial,
            Err(why) => {
                w.dataflow.release(root);
                return Err(Error::Evaluation { message: format!("cannot compute the view: {why}") });
            }
        };
        let mut state = ViewState::new(order.as_ref(), info.params.as_ref().map(|k| k.positions.clone()));
        state.apply_owned(initial, order.as_ref());
        state.broken = w.failed_tables.iter().find(|(t, _)| stored_plan.reads(**t)).map(|(_, e)| e.clone());
        {
            let mut p = self.shared.published.write();
            p.views.resize_with(id.0 as usize + 1, || None);
            p.views[id.0 as usize] = Some(state);
        }
        if let Some(n) = name {
            w.named_views.insert(n.to_ascii_lowercase(), id);
        }
        if let Some(k) = &key {
            w.view_keys.insert(k.clone(), id);
        }
        w.views_by_root.entry(root).or_default().push(id);
        w.views.push(Some(ViewEntry { info: Arc::clone(&info), def, root, key }));
        Ok(View { published: Arc::clone(&self.shared.published), info, bound: None })
    }

    /// Runs `f` on the catalog (for planning without registering, as EXPLAIN does).
    pub fn with_catalog<T>(&self, f: impl FnOnce(&dyn Catalog) -> T) -> T {
        let w = self.shared.writer.lock();
        f(&*w)
    }

    /// The named view `name`.
    pub fn view(&self, name: &str) -> Option<View> {
        let w = self.shared.writer.lock();
        let id = w.named_views.get(&name.to_ascii_lowercase())?;
        let info = Arc::clone(&w.views[id.0 as usize].as_ref()?.info);
        Some(View { published: Arc::clone(&self.shared.published), info, bound: None })
    }

    /// Drops the named view `name`. Views defined on it keep working: they hold their
    /// own copy of its plan.
    pub fn drop_view(&self, name: &str) -> Result<()> {
        let mut w = self.writer()?;
        let Some(id) = w.named_views.remove(&name.to_ascii_lowercase()) else {
            let known: Vec<String> = w.named_views.keys().cloned().collect();
            return Err(SqlError::new(SqlErrorKind::UnknownTable, format!("no view named {name}"))
                .suggest(nearest_name(name, known.iter().map(String::as_str)))
                .into());
        };
        w.remove_view(id);
        self.shared.published.write().views[id.0 as usize] = None;
        Ok(())
    }

    /// Stops maintaining `view`; later reads of it fail. Other handles on the same
    /// (shared) view stop too.
    pub fn drop_view_handle(&self, view: &View) -> Result<()> {
        let mut w = self.writer()?;
        if w.views.get(view.info.id.0 as usize).is_none_or(Option::is_none) {
            return Ok(());
        }
        if let Some(n) = &view.info.name {
            w.named_views.remove(&n.to_ascii_lowercase());
        }
        w.remove_view(view.info.id);
        self.shared.published.write().views[view.info.id.0 as usize] = None;
        Ok(())
    }

    /// Applies `changes` as one atomic transaction: either all of them, with every view
    /// updated, or (on the first change that fails) none, with the error.
    pub fn apply<I: IntoIterator<Item = Change>>(&self, changes: I) -> Result<()> {
        self.apply_at(changes, None)
    }

    /// [`Database::apply`] for a transaction of a source, which brings the engine to
    /// `position` (recorded with the transaction by a durable engine's journal).
    pub fn apply_at<I: IntoIterator<Item = Change>>(&self, changes: I, position: Option<&str>) -> Result<()> {
        let mut w = self.writer()?;
        w.end_restore();
        let mut undo = std::mem::take(&mut w.undo);
        let watch = Stopwatch::start(w.profile.is_some());
        if let Err(e) = w.stage_all(changes, &mut undo) {
            w.rollback(undo);
            return Err(e);
        }
        if let Some(p) = &mut w.profile {
            p.transactions += 1;
            watch.add_to(&mut p.tables);
        }
        if let Err(e) = w.journal_transaction(position) {
            w.rollback(undo);
            return Err(e);
        }
        w.keep_undo(undo);
        let w = &mut *w;
        let deltas = match catch_unwind(AssertUnwindSafe(|| w.propagate())) {
            Ok(d) => d,
            Err(panic) => return Err(w.poison(panic)),
        };
        if w.dataflow.any_failed() {
            self.publish_failures(w);
        }
        if !deltas.is_empty() {
            let watch = Stopwatch::start(w.profile.is_some());
            let pool = w.dataflow.pool_for(deltas.iter().map(|(_, d)| d.len()).sum());
            let mut p = self.shared.published.write();
            // Each view's rows are its own: with many changed rows, views apply theirs
            // on the worker threads at once.
            let mut of_view: Vec<Option<&ZSet>> = vec![None; p.views.len()];
            for (id, delta) in &deltas {
                of_view[id.0 as usize] = Some(delta);
            }
            let views = &w.views;
            let work = p.views.iter_mut().zip(of_view).enumerate().filter_map(|(i, (state, delta))| {
                let order = views[i].as_ref().and_then(|v| v.info.order.as_ref());
                Some((state.as_mut()?, delta?, order))
            });
            match &pool {
                Some(pool) if deltas.len() > 1 => pool.install(|| {
                    rayon_core::scope(|s| {
                        for (state, delta, order) in work {
                            s.spawn(move |_| state.apply(delta, order));
                        }
                    })
                }),
                _ => work.for_each(|(state, delta, order)| state.apply(delta, order)),
            }
            drop(p);
            w.dropper.drop_later(pool.as_deref(), deltas);
            if let Some(p) = &mut w.profile {
                watch.add_to(&mut p.publish);
            }
        }
        if let Some(j) = &w.journal
            && j.wants_checkpoint()
        {
            // The transaction is in (the journal has it); a checkpoint that fails
            // leaves the log as it was, and is asked for again.
            let _ = j.checkpoint(w.journaled_contents(), w.saved_states());
        }
        Ok(())
    }

    /// Gives the engine a journal (see [`crate::journal`]): from now on every table
    /// made or dropped and every transaction is recorded there before it takes effect.
    /// Rows already held are not sent; a journal is set on an empty engine, or after
    /// restoring what it recorded.
    pub fn set_journal(&self, journal: Option<Arc<dyn Journal>>) {
        self.shared.writer.lock().journal = journal;
    }

    /// Gives the journal every table's contents now, whether or not it asked (a
    /// checkpoint on demand: before a backup, or to make the next restart short).
    /// Does nothing without a journal.
    pub fn checkpoint(&self) -> Result<()> {
        let w = self.shared.writer.lock();
        match &w.journal {
            Some(j) => j.checkpoint(w.journaled_contents(), w.saved_states()),
            None => Ok(()),
        }
    }

    /// Every journaled table's schema and rows (for a checkpoint, or a report).
    pub fn journaled_contents(&self) -> Vec<TableContents> {
        self.shared.writer.lock().journaled_contents()
    }

    /// Offers operator states a checkpoint saved (see [`Journal::checkpoint`]) to the
    /// views registered next: a node that computes what a saved state's node computed
    /// takes that state instead of computing it from its inputs. For a restart only:
    /// the tables must hold exactly the rows they held when the states were saved, and
    /// the views are registered before any other change. [`Database::end_restore`]
    /// drops the states no view took.
    pub fn offer_states(&self, states: Vec<SavedState>) {
        let mut w = self.shared.writer.lock();
        w.offered = states.into_iter().collect();
    }

    /// Drops the offered states that no view took.
    pub fn end_restore(&self) {
        self.shared.writer.lock().end_restore();
    }

    /// Stores rows that were checked when first applied (a restart's rows) in `table`,
    /// which no view reads yet, without a transaction: no delta, no journal.
    pub fn restore_rows(&self, table: TableId, rows: Vec<(Row, i64)>) -> Result<()> {
        let mut w = self.writer()?;
        if w.dataflow.source(table).is_some() {
            return Err(Error::Internal("restored rows go in before any view reads their table".into()));
        }
        let t = w.tables.get_mut(table.0 as usize).and_then(Option::as_mut);
        let t =
            t.ok_or_else(|| Error::Internal(format!("restored rows for a table that does not exist ({table:?})")))?;
        t.restore(rows)
    }

    /// Marks the views whose computation failed (see [`crate::dataflow`]) as broken.
    fn publish_failures(&self, w: &Writer) {
        let mut p = self.shared.published.write();
        for entry in w.views.iter().flatten() {
            let Some(why) = w.dataflow.failure(entry.root) else { continue };
            if let Some(state) = p.views[entry.info.id.0 as usize].as_mut()
                && state.broken.is_none()
            {
                let label = entry.info.name.as_deref().unwrap_or(&entry.info.sql);
                state.broken =
                    Some(Error::Evaluation { message: format!("view {label} is no longer kept up to date: {why}") });
            }
        }
    }

    /// Inserts the rows of Arrow record batches into one table as one transaction;
    /// columns are matched by name (see [`crate::arrow_in`]).
    pub fn insert_batches(&self, table: &str, batches: &[arrow_array::RecordBatch]) -> Result<()> {
        let schema = self.table_schema(table)?;
        let id = self.table_id(table)?;
        let mut rows = Vec::with_capacity(batches.iter().map(|b| b.num_rows()).sum());
        for batch in batches {
            rows.extend(crate::arrow_in::batch_rows(&schema, batch)?);
        }
        self.apply(rows.into_iter().map(|r| Change::insert(id, RowData::Values(r))))
    }

    /// Inserts one row (a transaction of one change).
    pub fn insert(&self, table: impl Into<TableRef>, row: impl Into<RowData>) -> Result<()> {
        self.apply([Change::insert(table, row)])
    }

    /// Updates one row (a transaction of one change); `old` may be `None` where the
    /// table has a primary key.
    pub fn update(&self, table: impl Into<TableRef>, old: Option<RowData>, new: impl Into<RowData>) -> Result<()> {
        self.apply([Change::Update { table: table.into(), old, new: new.into() }])
    }

    /// Deletes one row (a transaction of one change).
    pub fn delete(&self, table: impl Into<TableRef>, row: impl Into<RowData>) -> Result<()> {
        self.apply([Change::delete(table, row)])
    }

    /// Runs large transactions on `threads` worker threads from now on (1: all on the
    /// applying thread, as small transactions always are); see [`crate::workers`].
    /// Results are the same for any number. The default is [`crate::workers::default_threads`].
    pub fn set_threads(&self, threads: usize) {
        self.shared.writer.lock().dataflow.set_threads(threads);
    }

    /// Runs transactions of `rows` changed rows and more on the worker threads (the
    /// default is [`crate::workers::parallel_from`]); for tests that want their small
    /// transactions on the parallel path.
    #[doc(hidden)]
    pub fn set_parallel_from(&self, rows: usize) {
        self.shared.writer.lock().dataflow.set_parallel_from(rows.max(1));
    }

    /// The number of worker threads large transactions run on.
    pub fn threads(&self) -> usize {
        self.shared.writer.lock().dataflow.threads()
    }

    /// Starts timing transactions (from zero) or stops; see [`crate::profile`].
    pub fn set_profiling(&self, on: bool) {
        let mut w = self.shared.writer.lock();
        w.profile = on.then(Profile::default);
        w.dataflow.set_profiling(on);
    }

    /// Where the time of transactions went since profiling started (empty when off).
    pub fn profile(&self) -> Profile {
        let w = self.shared.writer.lock();
        Profile { nodes: w.dataflow.profile(), ..w.profile.clone().unwrap_or_default() }
    }

    /// Returns once what finished transactions left to be dropped on the worker
    /// threads is freed, so that the memory the rows hold is counted exactly
    /// ([`crate::row_memory::live_bytes`]); [`Database::stats`] waits for it too.
    pub fn settle(&self) {
        let dropper = self.shared.writer.lock().dropper.clone();
        dropper.settle();
    }

    /// Sizes of what the engine holds.
    pub fn stats(&self) -> Stats {
        self.settle();
        let w = self.shared.writer.lock();
        let p = self.shared.published.read();
        Stats {
            base_rows: w.tables.iter().flatten().map(Table::len).sum(),
            nodes: w.dataflow.node_count(),
            arrangements: w.dataflow.arrangement_count(),
            deferred_arrangements: w.dataflow.deferred_count(),
            table_index_bytes: w.tables.iter().flatten().map(Table::index_bytes).sum(),
            operator_state_bytes: w.dataflow.state_bytes(),
            view_state_bytes: p.views.iter().flatten().map(ViewState::state_bytes).sum(),
            restored_nodes: w.dataflow.restored_nodes(),
        }
    }

    fn writer(&self) -> Result<parking_lot::MutexGuard<'_, Writer>> {
        let w = self.shared.writer.lock();
        match &w.poisoned {
            Some(why) => Err(Error::Internal(format!(
                "the engine stopped after an internal error ({why}); its views can no longer be trusted"
            ))),
            None => Ok(w),
        }
    }
}

impl Writer {
    fn table(&self, id: TableId) -> &Table {
        self.tables[id.0 as usize].as_ref().expect("resolved ids exist")
    }

    fn resolve(&self, table: &TableRef) -> Result<TableId> {
        match table {
            TableRef::Id(id) => match self.tables.get(id.0 as usize) {
                Some(Some(_)) => Ok(*id),
                _ => Err(SchemaError::UnknownTable { name: format!("#{}", id.0), suggestion: None }.into()),
            },
            TableRef::Name(name) => self
                .table_names
                .get(name.as_str())
                .or_else(|| self.table_names.get(&name.to_ascii_lowercase()))
                .copied()
                .ok_or_else(|| {
                    SchemaError::UnknownTable {
                        name: crate::error::shown(name).into_owned(),
                        suggestion: nearest_name(name, self.tables.iter().flatten().map(|t| t.schema().name.as_str())),
                    }
                    .into()
                }),
        }
    }

    /// Checks `changes` in order and applies each to its table, recording how to undo
    /// them; stops at the first that fails. A run of inserts into one table goes in
    /// as one ([`Table::insert_many`]: a load's rows in the order of the table's slots).
    fn stage_all(&mut self, changes: impl IntoIterator<Item = Change>, undo: &mut Vec<Undo>) -> Result<()> {
        let mut changes = Ahead::new(changes.into_iter(), std::mem::take(&mut self.window));
        let staged = self.stage_ahead(&mut changes, undo);
        self.window = changes.into_window();
        staged
    }

    /// [`Writer::stage_all`] on changes read ahead.
    fn stage_ahead<I: Iterator<Item = Change>>(&mut self, changes: &mut Ahead<I>, undo: &mut Vec<Undo>) -> Result<()> {
        while let Some(change) = changes.next(self) {
            let run_follows = matches!(
                (&change, changes.peek()),
                (Change::Insert { table, .. }, Some(Change::Insert { table: next, .. })) if next == table
            );
            // A lone change (most of a source's transactions) goes in without a run.
            if !run_follows {
                self.stage(change, undo)?;
                continue;
            }
            let Change::Insert { table, row } = change else { unreachable!("a run starts with an insert") };
            let mut run = std::mem::take(&mut self.run);
            run.push(row);
            while run.len() < MAX_INSERT_RUN
                && let Some(row) = changes.next_insert_into(&table)
            {
                if run.len() == INSERT_RUN_FROM {
                    // A long run (a load's hundred thousand rows) is sized once from
                    // what the source says is left, not copied as it doubles.
                    run.reserve(changes.left().min(MAX_INSERT_RUN));
                }
                run.push(row);
            }
            // A long run (a load) builds its rows on the worker threads.
            let pool = if run.len() < INSERT_RUN_FROM { None } else { self.dataflow.pool_for(run.len()) };
            let (table, delta) = self.staging(&table)?;
            if run.len() < INSERT_RUN_FROM {
                let staged = run.drain(..).try_for_each(|row| table.insert(row, undo, delta));
                self.run = run;
                staged?;
            } else if let Some(pool) = pool {
                pool.install(|| table.insert_many(run, undo, delta))?;
            } else {
                table.insert_many(run, undo, delta)?;
            }
        }
        Ok(())
    }

    /// Asks the processor to start loading the table slot `change` will look up by its
    /// key (an insert's place, an update's or a delete's stored row), and returns the
    /// key's hash if it did.
    fn prefetch(&self, change: &Change) -> Option<u64> {
        let data = match change {
            Change::Update { old, new, .. } => old.as_ref().unwrap_or(new),
            Change::Delete { row, .. } | Change::Insert { row, .. } => row,
            Change::Replace { .. } => return None,
        };
        self.table_of(change)?.prefetch_key(data)
    }

    /// Asks the processor to start loading the stored row an update or a delete will
    /// find by the key hashed `hash` (whose slot [`Writer::prefetch`] has fetched).
    fn prefetch_stored(&self, change: &Change, hash: u64) {
        if matches!(change, Change::Update { .. } | Change::Delete { .. })
            && let Some(table) = self.table_of(change)
        {
            table.prefetch_stored(hash);
        }
    }

    /// The table a change names, if it exists.
    fn table_of(&self, change: &Change) -> Option<&Table> {
        let id = match change.table() {
            TableRef::Id(id) => *id,
            TableRef::Name(name) => *self.table_names.get(name.as_str())?,
        };
        self.tables.get(id.0 as usize)?.as_ref()
    }

    /// The table `table` names, ready to take changes, and its transaction's delta.
    fn staging(&mut self, table: &TableRef) -> Result<(&mut Table, &mut ZSet)> {
        let id = self.resolve(table)?;
        if !self.failed_tables.is_empty()
            && let Some(e) = self.failed_tables.get(&id)
        {
            return Err(e.clone());
        }
        let i = id.0 as usize;
        if self.pending[i].is_empty() {
            self.pending_tables.push(id);
        }
        Ok((self.tables[i].as_mut().expect("resolved"), &mut self.pending[i]))
    }

    /// Checks one change and applies it to its table, recording how to undo it.
    fn stage(&mut self, change: Change, undo: &mut Vec<Undo>) -> Result<()> {
        let (table, delta) = self.staging(change.table())?;
        match change {
            Change::Insert { row, .. } => table.insert(row, undo, delta),
            Change::Update { old, new, .. } => table.update(old, new, undo, delta),
            Change::Delete { row, .. } => table.delete(row, undo, delta),
            Change::Replace { old, new, .. } => table.replace(old, new, undo, delta),
        }
    }

    /// Records the staged transaction in the journal, if there is one and it changed
    /// a journaled table (or came from a source, whose position must move on).
    fn journal_transaction(&mut self, position: Option<&str>) -> Result<()> {
        let Some(journal) = &self.journal else { return Ok(()) };
        let mut tables = Vec::new();
        for t in &self.pending_tables {
            let name = self.tables[t.0 as usize].as_ref().expect("staged").schema().name.as_str();
            if !is_internal(name) {
                tables.push((name, &self.pending[t.0 as usize]));
            }
        }
        match (tables.is_empty(), position) {
            (false, _) => journal.committed(&Committed { tables, position }),
            (true, Some(p)) => journal.passed(p),
            (true, None) => Ok(()),
        }
    }

    /// Ends what [`Database::offer_states`] began: valid only while the tables are
    /// as they were.
    fn end_restore(&mut self) {
        if !self.offered.is_empty() {
            self.offered = SavedStates::default();
        }
    }

    /// The states of the operators that save theirs, computed from the journaled
    /// tables only.
    fn saved_states(&self) -> Vec<SavedState> {
        let journaled = |t: TableId| {
            self.tables.get(t.0 as usize).and_then(Option::as_ref).is_some_and(|t| !is_internal(&t.schema().name))
        };
        self.dataflow.saved_states(journaled)
    }

    fn journaled_contents(&self) -> Vec<TableContents> {
        self.tables
            .iter()
            .flatten()
            .filter(|t| !is_internal(&t.schema().name))
            .map(|t| (t.schema().clone(), t.contents().into_iter().collect()))
            .collect()
    }

    /// Puts every table back as before the transaction.
    fn rollback(&mut self, mut undo: Vec<Undo>) {
        for u in undo.drain(..).rev() {
            match u {
                Undo::Inserted(t, row) => self.tables[t.0 as usize].as_mut().expect("exists").unstore(&row),
                Undo::InsertedRun(t, rows) => {
                    let table = self.tables[t.0 as usize].as_mut().expect("exists");
                    for (row, _) in &self.pending[t.0 as usize].as_slice()[rows] {
                        table.unstore(row);
                    }
                }
                Undo::Removed(t, row) => self.tables[t.0 as usize].as_mut().expect("exists").store(row),
            }
        }
        for t in self.pending_tables.drain(..) {
            self.pending[t.0 as usize].clear();
        }
        self.keep_undo(undo);
    }

    /// Keeps an emptied undo log for the next transaction, unless a huge transaction
    /// grew it (its memory is not held for ever).
    fn keep_undo(&mut self, mut undo: Vec<Undo>) {
        // A large transaction's old rows are let go of on the worker threads.
        if let Some(pool) = self.dataflow.pool_for(undo.len()) {
            // Moved out, the log keeping its room.
            let mut entries = Vec::with_capacity(undo.len());
            entries.append(&mut undo);
            self.dropper.drop_later(Some(&pool), entries);
        }
        if undo.capacity() <= KEPT_UNDO {
            undo.clear();
            self.undo = undo;
        }
    }

    /// Runs the staged transaction through the graph; returns each changed view's delta.
    fn propagate(&mut self) -> Vec<(ViewId, ZSet)> {
        let mut table_deltas: Vec<(TableId, ZSet)> =
            self.pending_tables.drain(..).map(|t| (t, std::mem::take(&mut self.pending[t.0 as usize]))).collect();
        self.dataflow.run(&mut table_deltas, &self.tables);
        let mut out = Vec::new();
        for (root, views) in &self.views_by_root {
            if self.dataflow.delta(*root).is_empty() {
                continue;
            }
            // The last view of a root takes its delta; others get copies.
            for v in &views[1..] {
                out.push((*v, self.dataflow.delta(*root).clone()));
            }
            out.push((views[0], self.dataflow.take_delta(*root)));
        }
        // A large transaction's rows are let go of on the worker threads.
        let held = self.dataflow.delta_rows() + table_deltas.iter().map(|(_, d)| d.len()).sum::<usize>();
        let pool = self.dataflow.pool_for(held);
        let mut dropped = pool.as_ref().map(|_| Vec::with_capacity(held));
        self.dataflow.clear(dropped.as_mut());
        // Give the tables their (now empty) delta buffers back.
        for (t, mut d) in table_deltas {
            match &mut dropped {
                Some(rows) => d.move_into(rows),
                None => d.clear_for_reuse(),
            }
            if self.pending[t.0 as usize].is_empty() {
                self.pending[t.0 as usize] = d;
            }
        }
        if let Some(rows) = dropped {
            self.dropper.drop_later(pool.as_deref(), rows);
        }
        out
    }

    fn remove_view(&mut self, id: ViewId) {
        let Some(entry) = self.views[id.0 as usize].take() else {
            return;
        };
        if let Some(k) = &entry.key {
            self.view_keys.remove(k);
        }
        if let Some(vs) = self.views_by_root.get_mut(&entry.root) {
            vs.retain(|v| *v != id);
            if vs.is_empty() {
                self.views_by_root.remove(&entry.root);
            }
        }
        self.dataflow.release(entry.root);
    }

    fn poison(&mut self, panic: Box<dyn std::any::Any + Send>) -> Error {
        let why = crate::dataflow::panic_message(&*panic);
        self.poisoned = Some(why.clone());
        Error::Internal(why)
    }
}

impl Catalog for Writer {
    fn dialect(&self) -> Dialect {
        self.dialect
    }

    fn table(&self, name: &str) -> Option<(TableId, Arc<TableSchema>)> {
        let id = *self.table_names.get(&name.to_ascii_lowercase())?;
        Some((id, Arc::clone(Writer::table(self, id).schema())))
    }

    fn view(&self, name: &str) -> Option<&ViewDef> {
        let id = self.named_views.get(&name.to_ascii_lowercase())?;
        Some(&self.views[id.0 as usize].as_ref()?.def)
    }

    fn relation_names(&self) -> Vec<String> {
        let tables = self.tables.iter().flatten().map(|t| t.schema().name.clone());
        let views = self.views.iter().flatten().filter_map(|v| v.info.name.clone());
        tables.chain(views).collect()
    }
}

fn validate_schema(schema: &TableSchema) -> Result<()> {
    let invalid = |detail: String| -> Error { SchemaError::InvalidTable { table: schema.name.clone(), detail }.into() };
    if schema.name.is_empty() {
        return Err(invalid("the name is empty".into()));
    }
    if schema.columns.is_empty() {
        return Err(invalid("a table needs at least one column".into()));
    }
    for (i, c) in schema.columns.iter().enumerate() {
        if schema.columns[..i].iter().any(|d| d.name.eq_ignore_ascii_case(&c.name)) {
            return Err(invalid(format!("column {} is declared twice", c.name)));
        }
        if let crate::types::DataType::Decimal { precision, scale } = c.data_type
            && (precision == 0 || precision > MAX_DECIMAL_PRECISION || scale > precision)
        {
            return Err(invalid(format!(
                "column {}: DECIMAL({precision},{scale}) needs 1 <= precision <= {MAX_DECIMAL_PRECISION} and scale <= precision",
                c.name
            )));
        }
    }
    if let Some(key) = &schema.primary_key {
        if key.is_empty() || key.iter().any(|&k| k >= schema.columns.len()) {
            return Err(invalid("the primary key names no valid column".into()));
        }
        if key.iter().any(|&k| schema.columns[k].nullable) {
            return Err(invalid("primary-key columns must be NOT NULL".into()));
        }
    }
    Ok(())
}

fn validate_plan(w: &Writer, plan: &Plan) -> Result<()> {
    if let Plan::Scan { table, .. } = plan
        && w.tables.get(table.0 as usize).is_none_or(Option::is_none)
    {
        return Err(Error::Internal(format!("plan reads table #{} which does not exist", table.0)));
    }
    plan.inputs().into_iter().try_for_each(|p| validate_plan(w, p))
}
