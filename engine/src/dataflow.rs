//! The dataflow graph: operators connected in a DAG (petgraph), shared between views.
//!
//! Each plan node becomes a graph node identified by its label and its inputs' nodes,
//! so two views (or two parts of one view) that compute the same thing from the same
//! inputs share one node and its state; every table has at most one source node. An
//! aggregate over a delta join is one node over the join's inputs, which never builds
//! the joined rows ([`crate::operator::join_aggregate`]); another view reading the same
//! join itself gets a join node of its own.
//!
//! A transaction runs in one pass in topological order: source nodes receive their
//! table's delta, and every node whose inputs changed steps once. Nodes whose inputs
//! did not change are skipped, so a transaction costs work in the part of the graph it
//! touches. Deltas live in a scratch vector indexed by node and are cleared after the
//! views have taken theirs.
//!
//! A large transaction (see [`crate::workers`]) runs on the worker threads instead: each
//! node steps as soon as the last of its inputs is done (`ParallelRun`), with the same
//! input deltas, so independent views and branches step at once and the outputs are
//! those of the pass in order. Operators sit behind a lock only the worker threads take;
//! a node's inputs and the arrangements it probes are finished before it starts.
//!
//! Joins do not index their inputs themselves: the graph keeps one arrangement per
//! (node, key) that some join probes (see [`crate::operator::arrangement`]), shared by
//! every join that needs it, and applies a node's delta to its arrangements as soon as
//! the node has produced it, before any consumer steps.
//!
//! An arrangement of a table that already holds rows when the arrangement is made is
//! deferred, and built from the table when first needed: in a transaction, before any
//! operator steps, when a source changes from which another input of a join holding
//! it is computed (that join's delta rule then probes it); when a new join node is
//! filled (its inputs but the first); and when a join's whole output is read. An
//! arrangement a starvable operator's refill would read through a join is never
//! deferred, so that no arrangement is built while operators run on the worker threads.
//!
//! New nodes (a view registered after data arrived) are filled by stepping them once
//! with their inputs' whole current outputs, as if every existing row had just been
//! inserted; new arrangements are filled with their node's output first.
//!
//! A durable engine's checkpoint also keeps the state of the operators that save
//! theirs ([`Operator::save`]: grouped aggregates), each under its node's identity —
//! its label and its inputs' identities, the same in any process that registers the
//! same views over the same tables. At a restart, with the tables as the checkpoint
//! holds them, a new node that a saved state names takes it instead of being computed
//! ([`Dataflow::initialize`]); what it would have read is then computed only if
//! something else reads it (an arrangement a join probes, another view). An
//! aggregate over a million-row join is restored without computing the join.
//!
//! A node whose step fails — a value its expressions cannot compute
//! ([`crate::expr::fault`]), or a panic — *fails*: it and every node downstream stop
//! stepping, keep the reason, and are no longer shared with views registered later
//! (those build fresh nodes). The views reading them report the reason; the others
//! never notice.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parking_lot::Mutex;
use petgraph::stable_graph::{NodeIndex, StableDiGraph};
use petgraph::visit::NodeIndexable;

use crate::expr::Expr;
use crate::operator::Operator;
use crate::operator::aggregate::Aggregate;
use crate::operator::arrangement::{Arrangement, Shared};
use crate::operator::distinct::Distinct;
use crate::operator::filter::Filter;
use crate::operator::in_set::InSet;
use crate::operator::join::{Emit, Join};
use crate::operator::join_aggregate::JoinAggregate;
use crate::operator::multi_join::MultiJoin;
use crate::operator::outer_join::{OuterJoin, Preserve};
use crate::operator::project::Project;
use crate::operator::set_op::SetOp;
use crate::operator::top_k::TopK;
use crate::operator::union::Union;
use crate::operator::values::Values;
use crate::plan::{JoinKind, Plan, TableId};
use crate::profile::{NodeProfile, Stopwatch};
use crate::row::Row;
use crate::table::Table;
use crate::workers::Workers;
use crate::zset::{Borrowed, Weight, ZSet};

/// The nodes and, per edge, the input port it feeds.
type Graph = StableDiGraph<Node, usize>;

/// An empty delta, for inputs that did not change.
static EMPTY: ZSet = ZSet::new();

/// A node's identity: its plan label and its inputs.
type NodeKey = (String, Vec<NodeIndex>);

#[derive(Debug)]
enum NodeKind {
    /// A base table's changes.
    Source(TableId),
    /// An operator over the inputs (behind a lock that only the worker threads take:
    /// the writer's own pass reaches it through `&mut`).
    Op(Mutex<Box<dyn Operator>>),
}

#[derive(Debug)]
struct Node {
    kind: NodeKind,
    inputs: Vec<NodeIndex>,
    key: NodeKey,
    /// Parents plus views that use this node.
    refs: usize,
    /// Arrangements of its inputs this node's operator probes.
    probes: Vec<Probed>,
    /// What it computes, whole: its label and its inputs' identities (the same in
    /// every process that registers the same views over the same tables), naming its
    /// saved state in a checkpoint; `None` past [`MAX_IDENTITY`] bytes.
    identity: Option<Arc<str>>,
}

/// The longest node identity kept (a node beyond it is never saved or restored).
const MAX_IDENTITY: usize = 64 * 1024;

/// Operator states saved for a checkpoint, by node identity (see [`Dataflow::saved_states`]).
pub type SavedStates = HashMap<Arc<str>, Vec<crate::row::Row>>;

/// An arrangement's identity: the node arranged and its key expressions.
type ArrangementKey = (NodeIndex, String);

/// An arrangement a node's operator probes.
#[derive(Debug, Clone)]
struct Probed {
    /// The input port it arranges.
    port: usize,
    key: ArrangementKey,
    arrangement: Shared,
}

/// The arrangements joins share, with how many operators hold each.
#[derive(Debug, Default)]
struct Arrangements {
    by_key: HashMap<ArrangementKey, (Shared, usize)>,
    /// Per arranged node, its arrangements (to apply its deltas to).
    by_node: HashMap<NodeIndex, Vec<Shared>>,
    /// Created since the last [`Dataflow::initialize`]: still empty.
    unfilled: Vec<(NodeIndex, Shared)>,
}

impl Arrangements {
    /// The arrangement of `node` by `keys`, created empty if missing; one more holder.
    fn acquire(&mut self, node: NodeIndex, keys: &[Expr]) -> (ArrangementKey, Shared) {
        let key = (node, format!("{keys:?}"));
        let (a, holders) = self.by_key.entry(key.clone()).or_insert_with(|| {
            let a = Arrangement::shared(keys.to_vec());
            self.unfilled.push((node, Arc::clone(&a)));
            self.by_node.entry(node).or_default().push(Arc::clone(&a));
            (a, 0)
        });
        *holders += 1;
        let a = Arc::clone(a);
        (key, a)
    }

    /// Drops one holder of `key`, and the arrangement with its last.
    fn release(&mut self, key: &ArrangementKey) {
        let (a, holders) = self.by_key.get_mut(key).expect("held arrangements are registered");
        *holders -= 1;
        if *holders > 0 {
            return;
        }
        let a = Arc::clone(a);
        self.by_key.remove(key);
        if let Some(list) = self.by_node.get_mut(&key.0) {
            list.retain(|b| !Arc::ptr_eq(&a, b));
            if list.is_empty() {
                self.by_node.remove(&key.0);
            }
        }
    }

    /// Applies a delta of `node` to its arrangements.
    fn apply(&self, node: NodeIndex, delta: &ZSet) {
        for a in self.by_node.get(&node).into_iter().flatten() {
            a.write().apply(delta);
        }
    }
}

/// When deferred arrangements are built (see the module docs), worked out again after
/// the graph changes.
#[derive(Debug, Default)]
struct Demand {
    /// Per source node, the table arrangements (with the node each arranges) that some
    /// join probes when that source changes.
    by_source: HashMap<NodeIndex, Vec<(NodeIndex, Shared)>>,
    /// Arrangements (with the node each arranges) never deferred: a starvable
    /// operator's refill computes its inputs' whole output from them.
    eager: Vec<(NodeIndex, Shared)>,
    /// The graph changed since this was worked out.
    stale: bool,
}

/// The operator graph and the deltas of the transaction in flight.
#[derive(Debug, Default)]
pub(crate) struct Dataflow {
    graph: Graph,
    by_key: HashMap<NodeKey, NodeIndex>,
    sources: HashMap<TableId, NodeIndex>,
    topo: Vec<NodeIndex>,
    deltas: Vec<ZSet>,
    touched: Vec<NodeIndex>,
    arrangements: Arrangements,
    demand: Demand,
    /// Per node index, while profiling: (steps, rows out, step time, arrangement time).
    timing: Option<Vec<NodeTiming>>,
    /// Nodes that failed, and why (see the module docs).
    failed: HashMap<NodeIndex, String>,
    /// The threads large transactions run on.
    workers: Workers,
    /// Operator nodes without inputs.
    constants: Vec<NodeIndex>,
    /// Nodes filled from a saved state rather than computed (see [`Dataflow::initialize`]).
    restored: usize,
}

/// A node's whole output while new nodes are filled: computed, or a table's rows
/// borrowed (see [`Borrowed`]) — all of them, or those a filter over the table keeps
/// (see [`Operator::kept`]).
enum Output<'t> {
    Computed(ZSet),
    Table(Borrowed<'t>),
}

impl std::ops::Deref for Output<'_> {
    type Target = ZSet;

    fn deref(&self) -> &ZSet {
        match self {
            Output::Computed(z) => z,
            Output::Table(b) => b,
        }
    }
}

impl Output<'_> {
    /// The output as a Z-set of its own (a table's rows counted).
    fn into_owned(self) -> ZSet {
        match self {
            Output::Computed(z) => z,
            Output::Table(b) => ZSet::clone(&b),
        }
    }
}

/// A node's totals while profiling.
#[derive(Debug, Clone, Copy, Default)]
struct NodeTiming {
    steps: u64,
    rows_out: u64,
    step: Duration,
    arrangements: Duration,
}

impl Dataflow {
    /// The node computing `plan`, creating missing nodes (appended to `created`). The
    /// returned node has one more reference, held by the caller.
    pub fn build(&mut self, plan: &Plan, created: &mut Vec<NodeIndex>) -> NodeIndex {
        // An aggregate over a delta join is one node over the join's inputs (see
        // [`JoinAggregate`]).
        let fused = match plan {
            Plan::Aggregate { input, .. } if matches!(**input, Plan::MultiJoin { .. }) => Some(&**input),
            _ => None,
        };
        let input_plans = fused.map_or_else(|| plan.inputs(), Plan::inputs);
        let inputs: Vec<NodeIndex> = input_plans.into_iter().map(|p| self.build(p, created)).collect();
        let label = match fused {
            Some(join) => format!("{} over {}", plan.label(), join.label()),
            None => plan.label(),
        };
        let key = (label, inputs.clone());
        if let Some(&n) = self.by_key.get(&key) {
            // The inputs' references taken above belong to this node already.
            for &i in &inputs {
                self.graph[i].refs -= 1;
            }
            self.graph[n].refs += 1;
            return n;
        }
        let mut probes = Vec::new();
        let mut arrange = |port: usize, keys: &[Expr]| {
            let (key, arrangement) = self.arrangements.acquire(inputs[port], keys);
            probes.push(Probed { port, key, arrangement: Arc::clone(&arrangement) });
            arrangement
        };
        let kind = match (plan, fused) {
            (Plan::Scan { table, .. }, _) => NodeKind::Source(*table),
            (Plan::Aggregate { group_by, aggregates, .. }, Some(Plan::MultiJoin { inputs: joined, edges, output })) => {
                NodeKind::Op(Mutex::new(Box::new(JoinAggregate::new(
                    joined.iter().map(Plan::width).collect(),
                    edges,
                    output.clone(),
                    group_by,
                    aggregates,
                    &mut arrange,
                ))))
            }
            _ => NodeKind::Op(Mutex::new(make_operator(plan, &mut arrange))),
        };
        let identity = self.identity_of(&key);
        let n = self.graph.add_node(Node { kind, inputs: inputs.clone(), key: key.clone(), refs: 1, probes, identity });
        for (port, &i) in inputs.iter().enumerate() {
            self.graph.add_edge(i, n, port);
        }
        if let Plan::Scan { table, .. } = plan {
            self.sources.insert(*table, n);
        }
        self.by_key.insert(key, n);
        created.push(n);
        self.refresh_order();
        n
    }

    /// The identity of a node with this key (see [`Node::identity`]).
    fn identity_of(&self, (label, inputs): &NodeKey) -> Option<Arc<str>> {
        let mut id = String::with_capacity(label.len() + 2);
        id.push_str(label);
        id.push('(');
        for (i, input) in inputs.iter().enumerate() {
            if i > 0 {
                id.push_str(", ");
            }
            id.push_str(self.graph[*input].identity.as_deref()?);
        }
        id.push(')');
        (id.len() <= MAX_IDENTITY).then(|| Arc::from(id))
    }

    /// The state of every operator node that saves one (see [`Operator::save`]), by
    /// identity, for a checkpoint taken after the last transaction; none while any node
    /// has failed. `journaled(table)` says whether a table's rows are in the
    /// checkpoint: nodes computed from other tables are left out.
    pub fn saved_states(&self, journaled: impl Fn(TableId) -> bool) -> Vec<(Arc<str>, Vec<crate::row::Row>)> {
        if !self.failed.is_empty() {
            return Vec::new();
        }
        let mut from_journaled: HashMap<NodeIndex, bool> = HashMap::new();
        let mut states = Vec::new();
        for &n in &self.topo {
            let node = &self.graph[n];
            let ok = match &node.kind {
                NodeKind::Source(t) => journaled(*t),
                NodeKind::Op(_) => node.inputs.iter().all(|i| from_journaled[i]),
            };
            from_journaled.insert(n, ok);
            if let (true, NodeKind::Op(op), Some(id)) = (ok, &node.kind, &node.identity)
                && let Some(rows) = op.lock().save()
            {
                states.push((Arc::clone(id), rows));
            }
        }
        states
    }

    /// How many nodes were filled from a saved state.
    pub fn restored_nodes(&self) -> usize {
        self.restored
    }

    /// Drops one reference to `node`, removing it (and, recursively, inputs nobody
    /// else uses) when none is left.
    pub fn release(&mut self, node: NodeIndex) {
        let n = &mut self.graph[node];
        n.refs -= 1;
        if n.refs > 0 {
            return;
        }
        let removed = self.graph.remove_node(node).expect("node exists");
        self.failed.remove(&node);
        if self.by_key.get(&removed.key) == Some(&node) {
            self.by_key.remove(&removed.key);
        }
        for p in &removed.probes {
            self.arrangements.release(&p.key);
        }
        if let NodeKind::Source(t) = removed.kind {
            self.sources.remove(&t);
        }
        for i in removed.inputs {
            self.release(i);
        }
        self.refresh_order();
    }

    fn refresh_order(&mut self) {
        self.topo = petgraph::algo::toposort(&self.graph, None).expect("plans build acyclic graphs");
        self.constants = self
            .topo
            .iter()
            .copied()
            .filter(|&n| matches!(self.graph[n].kind, NodeKind::Op(_)) && self.graph[n].inputs.is_empty())
            .collect();
        if self.deltas.len() < self.graph.node_bound() {
            self.deltas.resize_with(self.graph.node_bound(), ZSet::new);
        }
        self.demand.stale = true;
    }

    /// Works out [`Demand`] again if the graph changed, and builds the deferred
    /// arrangements that may no longer wait.
    fn refresh_demand(&mut self, tables: &[Option<Table>]) {
        if !std::mem::take(&mut self.demand.stale) {
            return;
        }
        let is_table = |graph: &Graph, n: NodeIndex| matches!(graph[n].kind, NodeKind::Source(_));
        // The source nodes each node is computed from.
        let mut upstream: HashMap<NodeIndex, Vec<NodeIndex>> = HashMap::new();
        for &n in &self.topo {
            let node = &self.graph[n];
            let mut from: Vec<NodeIndex> = match node.kind {
                NodeKind::Source(_) => vec![n],
                NodeKind::Op(_) => node.inputs.iter().flat_map(|i| upstream[i].iter().copied()).collect(),
            };
            from.sort_unstable();
            from.dedup();
            upstream.insert(n, from);
        }
        let mut by_source: HashMap<NodeIndex, Vec<(NodeIndex, Shared)>> = HashMap::new();
        let mut eager: Vec<(NodeIndex, Shared)> = Vec::new();
        for &n in &self.topo {
            let node = &self.graph[n];
            for p in &node.probes {
                let arranged = node.inputs[p.port];
                if !is_table(&self.graph, arranged) {
                    continue;
                }
                // The inputs whose changes make the node probe the arrangement.
                let by = match &node.kind {
                    NodeKind::Op(op) => op.lock().probed_by(&p.arrangement),
                    NodeKind::Source(_) => None,
                };
                let probing = |q: usize| by.as_ref().map_or(q != p.port, |ports| ports.contains(&q));
                let others = node.inputs.iter().enumerate().filter(|(q, _)| probing(*q));
                for source in others.flat_map(|(_, i)| &upstream[i]) {
                    let list = by_source.entry(*source).or_default();
                    if !list.iter().any(|(_, b)| Arc::ptr_eq(&p.arrangement, b)) {
                        list.push((arranged, Arc::clone(&p.arrangement)));
                    }
                }
            }
            let NodeKind::Op(op) = &node.kind else { continue };
            if !op.lock().may_starve() {
                continue;
            }
            // Its refill reads its inputs' whole output: through stateless operators
            // down to the joins that compute theirs from their arrangements.
            let mut stack = node.inputs.clone();
            while let Some(i) = stack.pop() {
                let NodeKind::Op(op) = &self.graph[i].kind else { continue };
                let op = op.lock();
                if op.output_from_arrangements() {
                    let join = &self.graph[i];
                    eager.extend(join.probes.iter().map(|p| (join.inputs[p.port], Arc::clone(&p.arrangement))));
                } else if !op.keeps_state() {
                    stack.extend(self.graph[i].inputs.iter().copied());
                }
            }
        }
        for (arranged, a) in &eager {
            self.build_deferred(*arranged, a, tables);
        }
        self.demand.by_source = by_source;
        self.demand.eager = eager;
    }

    /// Builds `a`, an arrangement of `arranged`, if it is deferred and not built.
    fn build_deferred(&mut self, arranged: NodeIndex, a: &Shared, tables: &[Option<Table>]) {
        if !a.read().is_deferred() {
            return;
        }
        let watch = Stopwatch::start(self.timing.is_some());
        build_from_table(&self.graph, arranged, a, tables);
        if let Some(t) = self.timing_of(arranged) {
            watch.add_to(&mut t.arrangements);
        }
    }

    /// Builds the deferred arrangements the changed sources' joins are about to probe.
    fn build_demanded(&mut self, tables: &[Option<Table>]) {
        let mut wanted: Vec<(NodeIndex, Shared)> = Vec::new();
        for n in &self.touched {
            for (arranged, a) in self.demand.by_source.get(n).into_iter().flatten() {
                if a.read().is_deferred() {
                    wanted.push((*arranged, Arc::clone(a)));
                }
            }
        }
        for (arranged, a) in wanted {
            self.build_deferred(arranged, &a, tables);
        }
    }

    /// Whether a new arrangement of `node` is deferred rather than filled: `node` is a
    /// table with rows, and no refill reads the arrangement.
    fn defers(&self, node: NodeIndex, a: &Shared, tables: &[Option<Table>]) -> bool {
        let NodeKind::Source(t) = self.graph[node].kind else { return false };
        tables[t.0 as usize].as_ref().is_some_and(|t| t.len() > 0)
            && !self.demand.eager.iter().any(|(_, b)| Arc::ptr_eq(a, b))
    }

    /// The source node of `table`, if a view reads it.
    pub fn source(&self, table: TableId) -> Option<NodeIndex> {
        self.sources.get(&table).copied()
    }

    /// Why `node` failed, if it did.
    pub fn failure(&self, node: NodeIndex) -> Option<&str> {
        self.failed.get(&node).map(String::as_str)
    }

    /// Whether any node has failed.
    pub fn any_failed(&self) -> bool {
        !self.failed.is_empty()
    }

    /// Fails `node` and everything downstream of it with `why`.
    fn fail(&mut self, node: NodeIndex, why: &str) {
        let mut stack = vec![node];
        while let Some(n) = stack.pop() {
            if self.failed.contains_key(&n) {
                continue;
            }
            self.failed.insert(n, why.to_string());
            // A later view builds its own node for this part of its plan.
            if self.by_key.get(&self.graph[n].key) == Some(&n) {
                self.by_key.remove(&self.graph[n].key);
            }
            self.deltas[n.index()].clear();
            stack.extend(self.graph.neighbors_directed(n, petgraph::Direction::Outgoing));
        }
    }

    /// Runs one transaction: `table_deltas` into the sources, then every touched node
    /// in order. Afterwards [`Dataflow::delta`] gives each node's output delta until
    /// [`Dataflow::clear`]. A node whose step fails fails with its downstream (see the
    /// module docs); [`Dataflow::failure`] tells.
    pub fn run(&mut self, table_deltas: &mut [(TableId, ZSet)], tables: &[Option<Table>]) {
        crate::expr::fault::take();
        let mut rows = 0;
        for (table, delta) in table_deltas.iter_mut() {
            if let Some(n) = self.source(*table)
                && !delta.is_empty()
            {
                rows += delta.len();
                // The node's buffer (emptied by the last `clear`) goes back to the
                // table in exchange, so that neither grows from nothing again.
                std::mem::swap(&mut self.deltas[n.index()], delta);
                self.touched.push(n);
            }
        }
        if rows == 0 {
            return;
        }
        if let Some(pool) = self.workers.pool_for(rows) {
            pool.install(|| {
                self.refresh_demand(tables);
                self.run_parallel(tables)
            });
            return;
        }
        self.refresh_demand(tables);
        for i in 0..self.touched.len() {
            let n = self.touched[i];
            let watch = Stopwatch::start(self.timing.is_some());
            self.arrangements.apply(n, &self.deltas[n.index()]);
            let len = self.deltas[n.index()].len() as u64;
            if let Some(t) = self.timing_of(n) {
                t.steps += 1;
                t.rows_out += len;
                watch.add_to(&mut t.arrangements);
            }
        }
        self.build_demanded(tables);
        for i in 0..self.topo.len() {
            let n = self.topo[i];
            let node = &self.graph[n];
            let NodeKind::Op(_) = &node.kind else {
                continue;
            };
            if node.inputs.iter().all(|i| self.deltas[i.index()].is_empty()) || self.failed.contains_key(&n) {
                continue;
            }
            // Operators have one or two inputs but for unions: no allocation for those.
            let mut few: [&ZSet; 4] = [&EMPTY; 4];
            let many: Vec<&ZSet>;
            let inputs: &[&ZSet] = if node.inputs.len() <= few.len() {
                for (slot, i) in few.iter_mut().zip(&node.inputs) {
                    *slot = &self.deltas[i.index()];
                }
                &few[..node.inputs.len()]
            } else {
                many = node.inputs.iter().map(|i| &self.deltas[i.index()]).collect();
                &many
            };
            let node = self.graph.node_weight_mut(n).expect("node exists");
            let NodeKind::Op(op) = &mut node.kind else { unreachable!() };
            let op = op.get_mut();
            let watch = Stopwatch::start(self.timing.is_some());
            let stepped = catch_unwind(AssertUnwindSafe(|| crate::budget::in_step(|| op.step(inputs))));
            let starved = stepped.is_ok() && op.starved();
            let stepped = match stepped {
                Ok(_) if starved => {
                    catch_unwind(AssertUnwindSafe(|| crate::budget::in_step(|| self.refill(n, tables))))
                }
                other => other,
            };
            let out = match step_outcome(stepped) {
                Ok(out) => out,
                Err(why) => {
                    self.fail(n, &why);
                    continue;
                }
            };
            let rows_out = out.len() as u64;
            if let Some(t) = self.timing_of(n) {
                t.steps += 1;
                t.rows_out += rows_out;
                watch.add_to(&mut t.step);
            }
            if !out.is_empty() {
                let watch = Stopwatch::start(self.timing.is_some() && self.arrangements.by_node.contains_key(&n));
                self.arrangements.apply(n, &out);
                if let Some(t) = self.timing_of(n) {
                    watch.add_to(&mut t.arrangements);
                }
                self.deltas[n.index()] = out;
                self.touched.push(n);
            }
        }
    }

    /// [`Dataflow::run`] on the worker threads (see [`crate::workers`]), once the
    /// sources hold their deltas: each node steps as soon as its inputs are done.
    fn run_parallel(&mut self, tables: &[Option<Table>]) {
        let timed = self.timing.is_some();
        let sources: Vec<NodeIndex> = self.sources.values().copied().collect();
        // The sources' arrangements first, all at once: every consumer reads them.
        let timings = Mutex::new(Vec::new());
        rayon_core::scope(|s| {
            for &n in &sources {
                let delta = &self.deltas[n.index()];
                if delta.is_empty() {
                    continue;
                }
                for a in self.arrangements.by_node.get(&n).into_iter().flatten() {
                    let timings = &timings;
                    s.spawn(move |_| {
                        let watch = Stopwatch::start(timed);
                        a.write().apply(delta);
                        let mut t = NodeTiming::default();
                        watch.add_to(&mut t.arrangements);
                        timings.lock().push((n, t));
                    });
                }
            }
        });
        self.build_demanded(tables);
        let bound = self.graph.node_bound();
        let run = ParallelRun {
            graph: &self.graph,
            arrangements: &self.arrangements,
            failed: &self.failed,
            tables,
            timed,
            outputs: (0..bound).map(|_| OnceLock::new()).collect(),
            waiting: (0..bound)
                .map(|i| {
                    let n = NodeIndex::new(i);
                    AtomicUsize::new(self.graph.node_weight(n).map_or(0, |node| node.inputs.len()))
                })
                .collect(),
            poisoned: (0..bound).map(|_| AtomicBool::new(false)).collect(),
            failures: Mutex::new(Vec::new()),
            timings,
        };
        for &n in &sources {
            let delta = std::mem::take(&mut self.deltas[n.index()]);
            if run.timed && !delta.is_empty() {
                run.timings
                    .lock()
                    .push((n, NodeTiming { steps: 1, rows_out: delta.len() as u64, ..Default::default() }));
            }
            run.outputs[n.index()].set(delta).expect("a source's delta is set once");
        }
        // Operators without inputs (constant rows) never step in a transaction.
        for &n in &self.constants {
            run.outputs[n.index()].set(ZSet::new()).expect("a node is done once");
        }
        rayon_core::scope(|s| {
            for &n in sources.iter().chain(&self.constants) {
                run.done(n, s);
            }
        });
        let ParallelRun { outputs, failures, timings, .. } = run;
        for (i, out) in outputs.into_iter().enumerate() {
            if let Some(out) = out.into_inner()
                && !out.is_empty()
            {
                let n = NodeIndex::new(i);
                if !self.sources.values().any(|&s| s == n) {
                    self.touched.push(n);
                }
                self.deltas[i] = out;
            }
        }
        for (n, t) in timings.into_inner() {
            if let Some(total) = self.timing_of(n) {
                total.steps += t.steps;
                total.rows_out += t.rows_out;
                total.step += t.step;
                total.arrangements += t.arrangements;
            }
        }
        // Upstream first, so that a node's own reason wins over its input's.
        let mut failures = failures.into_inner();
        let order: HashMap<NodeIndex, usize> = self.topo.iter().enumerate().map(|(i, &n)| (n, i)).collect();
        failures.sort_by_key(|(n, _)| order[n]);
        for (n, why) in failures {
            self.fail(n, &why);
        }
    }

    /// Runs large transactions on `threads` threads from now on.
    pub fn set_threads(&mut self, threads: usize) {
        self.workers.set_threads(threads);
    }

    /// The worker threads, if there are several and `rows` changed rows are enough
    /// to use them.
    pub fn pool_for(&self, rows: usize) -> Option<Arc<rayon_core::ThreadPool>> {
        self.workers.pool_for(rows)
    }

    /// Runs transactions of `rows` changed rows and more on the worker threads.
    pub fn set_parallel_from(&mut self, rows: usize) {
        self.workers.set_parallel_from(rows);
    }

    /// The number of threads large transactions run on.
    pub fn threads(&self) -> usize {
        self.workers.threads()
    }

    /// Starts (with zero totals) or stops timing the nodes.
    pub fn set_profiling(&mut self, on: bool) {
        self.timing = on.then(Vec::new);
    }

    /// The totals of `node`, while profiling.
    #[inline]
    fn timing_of(&mut self, node: NodeIndex) -> Option<&mut NodeTiming> {
        let timing = self.timing.as_mut()?;
        if timing.len() <= node.index() {
            timing.resize(node.index() + 1, NodeTiming::default());
        }
        Some(&mut timing[node.index()])
    }

    /// What each node that did work took since profiling started, in the graph's
    /// order.
    pub fn profile(&self) -> Vec<NodeProfile> {
        let Some(timing) = &self.timing else { return Vec::new() };
        self.topo
            .iter()
            .filter_map(|&n| {
                let t = timing.get(n.index()).filter(|t| t.steps > 0 || !(t.step + t.arrangements).is_zero())?;
                Some(NodeProfile {
                    label: self.graph[n].key.0.clone(),
                    steps: t.steps,
                    rows_out: t.rows_out,
                    step: t.step,
                    arrangements: t.arrangements,
                })
            })
            .collect()
    }

    /// Finishes the starved step of `node` from its inputs' current contents.
    fn refill(&mut self, node: NodeIndex, tables: &[Option<Table>]) -> ZSet {
        let inputs: Vec<ZSet> = self.graph[node].inputs.iter().map(|&i| self.current_output(i, tables)).collect();
        let refs: Vec<&ZSet> = inputs.iter().collect();
        let NodeKind::Op(op) = &mut self.graph[node].kind else { unreachable!("sources do not starve") };
        op.get_mut().refill(&refs)
    }

    /// The output delta of `node` in the transaction just run.
    pub fn delta(&self, node: NodeIndex) -> &ZSet {
        &self.deltas[node.index()]
    }

    /// Takes the output delta of `node` in the transaction just run.
    pub fn take_delta(&mut self, node: NodeIndex) -> ZSet {
        std::mem::take(&mut self.deltas[node.index()])
    }

    /// The rows the transaction's deltas hold.
    pub fn delta_rows(&self) -> usize {
        self.touched.iter().map(|n| self.deltas[n.index()].len()).sum()
    }

    /// Forgets the transaction's deltas, their entries moved to `rows` if given.
    pub fn clear(&mut self, mut rows: Option<&mut Vec<(Row, Weight)>>) {
        for n in self.touched.drain(..) {
            match rows.as_deref_mut() {
                Some(rows) => self.deltas[n.index()].move_into(rows),
                None => self.deltas[n.index()].clear_for_reuse(),
            }
        }
    }

    /// The whole current output of `node`.
    pub fn current_output(&self, node: NodeIndex, tables: &[Option<Table>]) -> ZSet {
        output_of(&self.graph, node, tables)
    }

    /// Fills the nodes in `created` from their inputs' current outputs and returns the
    /// output of `root`, or why a node could not be computed (the caller releases
    /// `root`).
    ///
    /// A node whose identity `saved` names takes that state instead (a restart, with
    /// tables as they were when the states were saved); the state is taken out of
    /// `saved`. Its inputs are then computed only if something else reads them.
    pub fn initialize(
        &mut self,
        created: &[NodeIndex],
        root: NodeIndex,
        tables: &[Option<Table>],
        saved: &mut SavedStates,
    ) -> Result<ZSet, String> {
        // Caught on the thread that ran it: faults are raised per thread.
        let fill = |dataflow: &mut Dataflow, saved: &mut SavedStates| {
            crate::expr::fault::take();
            let filled = catch_unwind(AssertUnwindSafe(|| {
                crate::budget::in_step(|| dataflow.fill(created, root, tables, saved))
            }));
            step_outcome(filled)
        };
        match self.workers.pool() {
            Some(pool) => pool.install(|| fill(self, saved)),
            None => fill(self, saved),
        }
    }

    fn fill<'t>(
        &mut self,
        created: &[NodeIndex],
        root: NodeIndex,
        tables: &'t [Option<Table>],
        saved: &mut SavedStates,
    ) -> ZSet {
        // Each node's whole output, computed once however many nodes read it (a
        // table's, borrowed).
        let mut outputs: HashMap<NodeIndex, Output<'t>> = HashMap::new();
        let order: Vec<NodeIndex> = self.topo.iter().copied().filter(|n| created.contains(n)).collect();
        // New arrangements of nodes that existed already hold their current output;
        // those of new nodes are filled as each node is, before its consumers step.
        self.refresh_demand(tables);
        let mut unfilled = std::mem::take(&mut self.arrangements.unfilled);
        // A loaded table's new arrangements wait until needed (see the module docs).
        unfilled.retain(|(n, a)| {
            let defers = self.defers(*n, a, tables);
            if defers {
                a.write().defer();
            }
            !defers
        });
        let timed = self.timing.is_some();
        let existing: Vec<&(NodeIndex, Shared)> = unfilled.iter().filter(|(n, _)| !created.contains(n)).collect();
        for (node, _) in &existing {
            self.keep_output(*node, tables, &mut outputs);
        }
        let took = fill_arrangements(existing.iter().map(|(n, a)| (a, &*outputs[n])), timed);
        for ((node, _), took) in existing.iter().zip(took) {
            if let Some(t) = self.timing_of(*node) {
                t.arrangements += took;
            }
        }
        let restored = self.restore(&order, saved);
        // What to compute, from the root down: a node whose output is read (by the
        // view, an arrangement, or a node computed from it), or that keeps state of
        // its own — unless its state was restored.
        let mut read: std::collections::HashSet<NodeIndex> = unfilled.iter().map(|(n, _)| *n).collect();
        read.insert(root);
        let mut compute = Vec::new();
        for &n in order.iter().rev() {
            let keeps = match &mut self.graph[n].kind {
                NodeKind::Source(_) => false,
                NodeKind::Op(op) => op.get_mut().keeps_state(),
            };
            if !restored.contains(&n) && (keeps || read.contains(&n)) {
                compute.push(n);
                read.extend(self.graph[n].inputs.iter().copied());
            }
        }
        // How many nodes still to fill read each output: it is let go after the last.
        let mut readers: HashMap<NodeIndex, usize> = HashMap::new();
        for n in &compute {
            for i in &self.graph[*n].inputs {
                *readers.entry(*i).or_default() += 1;
            }
        }
        for n in order {
            let out = if compute.contains(&n) {
                let inputs = self.graph[n].inputs.clone();
                for i in &inputs {
                    self.keep_output(*i, tables, &mut outputs);
                }
                // The arrangements its inputs but the first are probed by (see
                // `Operator::initial`), deferred ones built.
                for p in self.graph[n].probes.clone() {
                    if p.port > 0 {
                        self.build_deferred(inputs[p.port], &p.arrangement, tables);
                    }
                }
                let refs: Vec<&ZSet> = inputs.iter().map(|i| &*outputs[i]).collect();
                let watch = Stopwatch::start(timed);
                let out = match &mut self.graph[n].kind {
                    NodeKind::Source(t) => table_output(tables, *t),
                    NodeKind::Op(op) => {
                        let op = op.get_mut();
                        // A filter over a table's rows borrows the rows it keeps:
                        // counting each (and letting each go after the fill) touched
                        // a million rows twice more where a view is built over a
                        // loaded table.
                        let kept = match inputs.as_slice() {
                            [input] => match &outputs[input] {
                                Output::Table(rows) => op.kept(rows).map(|at| Output::Table(rows.pick(&at))),
                                Output::Computed(_) => None,
                            },
                            _ => None,
                        };
                        kept.unwrap_or_else(|| Output::Computed(op.initial(&refs)))
                    }
                };
                if let Some(t) = self.timing_of(n) {
                    t.steps += 1;
                    t.rows_out += out.len() as u64;
                    watch.add_to(&mut t.step);
                }
                for i in &inputs {
                    let left = readers.get_mut(i).expect("counted");
                    *left -= 1;
                    if *left == 0 && *i != root {
                        outputs.remove(i);
                    }
                }
                out
            } else if restored.contains(&n) && read.contains(&n) {
                let NodeKind::Op(op) = &mut self.graph[n].kind else { unreachable!("sources are not restored") };
                Output::Computed(op.get_mut().current_output().expect("an operator that saves state knows its output"))
            } else {
                // Restored, or computing nothing anyone reads.
                continue;
            };
            let took =
                fill_arrangements(unfilled.iter().filter(|(node, _)| *node == n).map(|(_, a)| (a, &*out)), timed);
            if let Some(t) = self.timing_of(n) {
                t.arrangements += took.into_iter().sum::<Duration>();
            }
            outputs.insert(n, out);
        }
        outputs.remove(&root).map_or_else(|| self.current_output(root, tables), Output::into_owned)
    }

    /// Gives the operators of the new nodes in `order` the states `saved` holds for
    /// them; returns the nodes that took one.
    fn restore(&mut self, order: &[NodeIndex], saved: &mut SavedStates) -> std::collections::HashSet<NodeIndex> {
        let mut restored = std::collections::HashSet::new();
        if saved.is_empty() {
            return restored;
        }
        for &n in order {
            let node = &mut self.graph[n];
            let (NodeKind::Op(op), Some(id)) = (&mut node.kind, &node.identity) else { continue };
            if let Some(rows) = saved.remove(id)
                && op.get_mut().restore(&rows)
            {
                restored.insert(n);
                self.restored += 1;
            }
        }
        restored
    }

    /// Puts `node`'s current output in `outputs` unless it is there (timed as the
    /// node's step while profiling).
    fn keep_output<'t>(
        &mut self,
        node: NodeIndex,
        tables: &'t [Option<Table>],
        outputs: &mut HashMap<NodeIndex, Output<'t>>,
    ) {
        if outputs.contains_key(&node) {
            return;
        }
        let watch = Stopwatch::start(self.timing.is_some());
        let out = match self.graph[node].kind {
            NodeKind::Source(t) => table_output(tables, t),
            NodeKind::Op(_) => Output::Computed(self.current_output(node, tables)),
        };
        if let Some(t) = self.timing_of(node) {
            watch.add_to(&mut t.step);
        }
        outputs.insert(node, out);
    }

    /// Approximate heap bytes of all operator state, arrangements included.
    pub fn state_bytes(&self) -> usize {
        self.arrangements.by_key.values().map(|(a, _)| a.read().state_bytes()).sum::<usize>()
            + self
                .graph
                .node_weights()
                .map(|n| match &n.kind {
                    NodeKind::Op(op) => op.lock().state_bytes(),
                    NodeKind::Source(_) => 0,
                })
                .sum::<usize>()
    }

    /// The number of arrangements.
    pub fn arrangement_count(&self) -> usize {
        self.arrangements.by_key.len()
    }

    /// The number of arrangements deferred and not built yet (see the module docs).
    pub fn deferred_count(&self) -> usize {
        self.arrangements.by_key.values().filter(|(a, _)| a.read().is_deferred()).count()
    }

    /// The number of nodes.
    pub fn node_count(&self) -> usize {
        self.graph.node_count()
    }
}

/// Fills each arrangement with its rows, all at once on the worker threads when
/// there are several; returns the time each took (zero unless `timed`).
fn fill_arrangements<'a>(work: impl Iterator<Item = (&'a Shared, &'a ZSet)>, timed: bool) -> Vec<Duration> {
    let work: Vec<(&Shared, &ZSet)> = work.collect();
    let fill = |(a, rows): &(&Shared, &ZSet)| {
        let watch = Stopwatch::start(timed);
        a.write().apply(rows);
        let mut took = Duration::ZERO;
        watch.add_to(&mut took);
        took
    };
    if work.len() < 2 || !crate::workers::in_parallel() {
        return work.iter().map(fill).collect();
    }
    let mut took = vec![Duration::ZERO; work.len()];
    rayon_core::scope(|s| {
        for (item, took) in work.iter().zip(took.iter_mut()) {
            s.spawn(move |_| *took = fill(item));
        }
    });
    took
}

/// The outcome of a node's step, caught: its output, or why it failed.
fn step_outcome(stepped: std::thread::Result<ZSet>) -> Result<ZSet, String> {
    match (stepped, crate::expr::fault::take()) {
        (Ok(out), None) => Ok(out),
        (Ok(_), Some(why)) => Err(why),
        (Err(panic), _) => {
            Err(crate::budget::reason(&*panic).unwrap_or_else(|| format!("internal error: {}", panic_message(&*panic))))
        }
    }
}

/// One transaction on the worker threads: what the nodes' tasks share.
struct ParallelRun<'a> {
    graph: &'a Graph,
    arrangements: &'a Arrangements,
    failed: &'a HashMap<NodeIndex, String>,
    tables: &'a [Option<Table>],
    timed: bool,
    /// Per node index: its output delta, once it is done (empty if it did not step).
    outputs: Vec<OnceLock<ZSet>>,
    /// Per node index: inputs (edges) not done yet.
    waiting: Vec<AtomicUsize>,
    /// Per node index: it or a node upstream failed in this run.
    poisoned: Vec<AtomicBool>,
    failures: Mutex<Vec<(NodeIndex, String)>>,
    timings: Mutex<Vec<(NodeIndex, NodeTiming)>>,
}

impl<'a> ParallelRun<'a> {
    /// `node` is done: its consumers whose last input it was go.
    fn done<'s>(&'s self, node: NodeIndex, s: &rayon_core::Scope<'s>) {
        let mut ready = Vec::new();
        let mut stack = vec![node];
        while let Some(n) = stack.pop() {
            for c in self.graph.neighbors_directed(n, petgraph::Direction::Outgoing) {
                if self.waiting[c.index()].fetch_sub(1, Ordering::AcqRel) != 1 {
                    continue;
                }
                let inputs = &self.graph[c].inputs;
                if inputs.iter().any(|i| self.poisoned[i.index()].load(Ordering::Acquire)) {
                    self.poisoned[c.index()].store(true, Ordering::Release);
                }
                let steps = !self.poisoned[c.index()].load(Ordering::Acquire)
                    && !self.failed.contains_key(&c)
                    && inputs.iter().any(|i| !self.output(*i).is_empty());
                if steps {
                    ready.push(c);
                } else {
                    // Decided here and now: nothing to step.
                    self.outputs[c.index()].set(ZSet::new()).expect("a node is done once");
                    stack.push(c);
                }
            }
        }
        for c in ready {
            s.spawn(move |s| self.step(c, s));
        }
    }

    /// The output of a node that is done.
    fn output(&self, node: NodeIndex) -> &ZSet {
        self.outputs[node.index()].get().expect("inputs are done before their consumers")
    }

    /// Steps `node`, applies its output to its arrangements, and lets it go.
    fn step<'s>(&'s self, node: NodeIndex, s: &rayon_core::Scope<'s>) {
        let NodeKind::Op(op) = &self.graph[node].kind else { unreachable!("sources are done before the run") };
        let inputs: Vec<&ZSet> = self.graph[node].inputs.iter().map(|&i| self.output(i)).collect();
        crate::expr::fault::take();
        let watch = Stopwatch::start(self.timed);
        let mut op = op.lock();
        let stepped = catch_unwind(AssertUnwindSafe(|| {
            crate::budget::in_step(|| {
                let out = op.step(&inputs);
                if !op.starved() {
                    return out;
                }
                let whole: Vec<ZSet> =
                    self.graph[node].inputs.iter().map(|&i| output_of(self.graph, i, self.tables)).collect();
                op.refill(&whole.iter().collect::<Vec<_>>())
            })
        }));
        drop(op);
        let mut timing = NodeTiming::default();
        let out = match step_outcome(stepped) {
            Ok(out) => out,
            Err(why) => {
                self.failures.lock().push((node, why));
                self.poisoned[node.index()].store(true, Ordering::Release);
                ZSet::new()
            }
        };
        timing.steps = 1;
        timing.rows_out = out.len() as u64;
        watch.add_to(&mut timing.step);
        if !out.is_empty()
            && let Some(list) = self.arrangements.by_node.get(&node)
        {
            let watch = Stopwatch::start(self.timed);
            if let [first, rest @ ..] = list.as_slice() {
                rayon_core::scope(|s| {
                    for a in rest {
                        let out = &out;
                        s.spawn(move |_| a.write().apply(out));
                    }
                    first.write().apply(&out);
                });
            }
            watch.add_to(&mut timing.arrangements);
        }
        if self.timed {
            self.timings.lock().push((node, timing));
        }
        self.outputs[node.index()].set(out).expect("a node is done once");
        self.done(node, s);
    }
}

/// The whole current output of `node` in `graph`.
fn output_of(graph: &Graph, node: NodeIndex, tables: &[Option<Table>]) -> ZSet {
    match &graph[node].kind {
        NodeKind::Source(t) => tables[t.0 as usize].as_ref().map(Table::contents).unwrap_or_default(),
        NodeKind::Op(op) => {
            let op = op.lock();
            if op.output_from_arrangements() {
                for p in &graph[node].probes {
                    build_from_table(graph, graph[node].inputs[p.port], &p.arrangement, tables);
                }
            }
            op.current_output().unwrap_or_else(|| {
                // A stateless operator: its output is its rule applied to its inputs'.
                let inputs: Vec<ZSet> = graph[node].inputs.iter().map(|&i| output_of(graph, i, tables)).collect();
                let refs: Vec<&ZSet> = inputs.iter().collect();
                op.evaluate(&refs).expect("an operator without current output is stateless")
            })
        }
    }
}

/// Builds `a`, an arrangement of `arranged`, from the table's rows if it is deferred
/// and not built (only a table's arrangement is ever deferred).
fn build_from_table(graph: &Graph, arranged: NodeIndex, a: &Shared, tables: &[Option<Table>]) {
    if !a.read().is_deferred() {
        return;
    }
    let NodeKind::Source(t) = graph[arranged].kind else { unreachable!("only a table's arrangements are deferred") };
    let mut a = a.write();
    match &tables[t.0 as usize] {
        Some(table) => a.build(&table.borrowed()),
        None => a.build(&ZSet::new()),
    }
}

/// The rows of table `t`, borrowed, as a source node's output.
fn table_output(tables: &[Option<Table>], t: TableId) -> Output<'_> {
    match &tables[t.0 as usize] {
        Some(table) => Output::Table(table.borrowed()),
        None => Output::Computed(ZSet::new()),
    }
}

/// The text a panic carried.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "panic".into())
}

/// The operator computing `plan`'s node; `arrange(input, keys)` gives the shared
/// arrangement of one of its inputs.
fn make_operator(plan: &Plan, arrange: &mut dyn FnMut(usize, &[Expr]) -> Shared) -> Box<dyn Operator> {
    match plan {
        Plan::Scan { .. } => unreachable!("scans are sources"),
        Plan::Values { rows, .. } => Box::new(Values::new(rows.clone())),
        Plan::Filter { predicate, .. } => Box::new(Filter::new(predicate.clone())),
        Plan::Project { exprs, .. } => Box::new(Project::new(exprs.clone())),
        Plan::Join { left, right, kind, left_keys, right_keys, residual, output } => {
            let emit = Emit::new(output.clone(), left.width(), right.width());
            match kind {
                JoinKind::Inner => {
                    debug_assert!(residual.is_none(), "an inner join's residual is a filter above it");
                    Box::new(Join::new(left_keys.clone(), right_keys.clone(), emit, arrange))
                }
                _ => Box::new(OuterJoin::new(
                    left_keys.clone(),
                    right_keys.clone(),
                    residual.clone(),
                    Preserve {
                        left: matches!(kind, JoinKind::Left | JoinKind::Full),
                        right: matches!(kind, JoinKind::Right | JoinKind::Full),
                    },
                    emit,
                )),
            }
        }
        Plan::MultiJoin { inputs, edges, output } => {
            Box::new(MultiJoin::new(inputs.iter().map(Plan::width).collect(), edges, output.clone(), arrange))
        }
        Plan::Aggregate { group_by, aggregates, .. } => Box::new(Aggregate::new(group_by.clone(), aggregates.clone())),
        Plan::Distinct { .. } => Box::new(Distinct::default()),
        Plan::InSet { key, .. } => Box::new(InSet::new(key.clone())),
        Plan::Union { .. } => Box::new(Union),
        Plan::SetOp { kind, all, .. } => Box::new(SetOp::new(*kind, *all)),
        Plan::TopK { order, limit, offset, .. } => Box::new(TopK::new(order.clone(), *limit, *offset)),
    }
}
