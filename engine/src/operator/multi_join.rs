//! Delta join: an inner join of three or more inputs on equalities between pairs of
//! them, maintained without storing any intermediate result.
//!
//! State: none of its own; it probes each input's arrangements by every key another
//! input probes it with (the graph keeps them, shared with other joins). Rule (the
//! product rule over n inputs, taken in order): `Δ(R1 ⋈ … ⋈ Rn) = Σi R1' ⋈ … ⋈ R(i-1)'
//! ⋈ ΔRi ⋈ R(i+1) ⋈ … ⋈ Rn`, where primed inputs are after the transaction and the
//! others before it. Input i's delta rows are extended by probing the other inputs'
//! arrangements along a fixed plan (a spanning tree of the join graph rooted at i;
//! equalities outside the tree are checked once both sides are bound). Arrangements
//! hold the inputs after the transaction, so a probe of a later input also walks that
//! input's delta under the key, with the opposite sign.
//!
//! Compared with a tree of binary joins, nothing is stored but the inputs' arrangements
//! (which hold the input rows themselves, shared by pointer), so a three-way join over
//! a large table does not keep a second copy of every intermediate row.

use crate::expr::Expr;
use crate::plan::JoinEdge;
use crate::row::{Columns, PREFETCH_AHEAD, Ref, Row};
use crate::workers::{self, Cost};
use crate::zset::{Weight, ZSet};

use parking_lot::RwLockReadGuard;

use super::Operator;
use super::arrangement::{Arrangement, DeltaIndex, Shared};
use super::index::{Key, join_key, key_hash};

/// One probe: from a bound input's row, through an index of the next input.
#[derive(Debug)]
struct Step {
    from: usize,
    from_keys: Vec<Expr>,
    to: usize,
    index: usize,
}

/// An equality checked once both its inputs are bound.
#[derive(Debug)]
struct Check {
    left: usize,
    left_keys: Vec<Expr>,
    right: usize,
    right_keys: Vec<Expr>,
}

impl Check {
    /// Whether the bound rows of its two inputs agree on the equality.
    fn holds(&self, bound: &[Option<&Row>]) -> bool {
        let l = join_key(&self.left_keys, bound[self.left].expect("bound"));
        let r = join_key(&self.right_keys, bound[self.right].expect("bound"));
        matches!((l, r), (Some(l), Some(r)) if l == r)
    }
}

/// The probe plan from one input.
#[derive(Debug)]
struct Plan {
    steps: Vec<Step>,
    checks: Vec<Check>,
    /// Whether only the first step reads the starting input's row: then delta rows
    /// with one key share every probe (a changed product row, old and new, walks its
    /// orders and their customers once).
    shared_probes: bool,
}

/// A delta join.
#[derive(Debug)]
pub struct MultiJoin {
    /// Where each input's columns start in the joined row.
    offsets: Vec<usize>,
    /// Per emitted column: the input and its column there.
    sources: Vec<(usize, usize)>,
    /// Per input: the arrangements of it that probes use.
    indexes: Vec<Vec<Shared>>,
    /// Per input: how to extend its delta rows.
    plans: Vec<Plan>,
}

impl MultiJoin {
    /// A join of inputs `widths.len()` inputs of those widths on `edges`, which must
    /// connect them all, emitting `output` of the joined row; `arrange(input, keys)`
    /// gives the arrangement of an input by a key.
    pub fn new(
        widths: Vec<usize>,
        edges: &[JoinEdge],
        output: Option<Vec<usize>>,
        arrange: &mut dyn FnMut(usize, &[Expr]) -> Shared,
    ) -> MultiJoin {
        let n = widths.len();
        let mut offsets = Vec::with_capacity(n);
        let mut width = 0;
        for w in &widths {
            offsets.push(width);
            width += w;
        }
        let mut indexes: Vec<Vec<Shared>> = (0..n).map(|_| Vec::new()).collect();
        let mut plans = Vec::with_capacity(n);
        for start in 0..n {
            let mut bound = vec![false; n];
            bound[start] = true;
            let mut used = vec![false; edges.len()];
            let mut steps = Vec::new();
            while bound.iter().any(|b| !b) {
                // The first edge (in order) from a bound input to an unbound one.
                let (e, from_left) = edges
                    .iter()
                    .enumerate()
                    .find_map(|(i, e)| {
                        if bound[e.left] && !bound[e.right] {
                            Some((i, true))
                        } else if bound[e.right] && !bound[e.left] {
                            Some((i, false))
                        } else {
                            None
                        }
                    })
                    .expect("the join graph is connected");
                used[e] = true;
                let edge = &edges[e];
                let (from, from_keys, to, to_keys) = if from_left {
                    (edge.left, &edge.left_keys, edge.right, &edge.right_keys)
                } else {
                    (edge.right, &edge.right_keys, edge.left, &edge.left_keys)
                };
                let index = match indexes[to].iter().position(|a| a.read().keys() == to_keys.as_slice()) {
                    Some(i) => i,
                    None => {
                        indexes[to].push(arrange(to, to_keys));
                        indexes[to].len() - 1
                    }
                };
                steps.push(Step { from, from_keys: from_keys.clone(), to, index });
                bound[to] = true;
            }
            let checks: Vec<Check> = edges
                .iter()
                .zip(&used)
                .filter(|(_, u)| !**u)
                .map(|(e, _)| Check {
                    left: e.left,
                    left_keys: e.left_keys.clone(),
                    right: e.right,
                    right_keys: e.right_keys.clone(),
                })
                .collect();
            let shared_probes = steps[1..].iter().all(|s| s.from != start)
                && checks.iter().all(|c| c.left != start && c.right != start);
            plans.push(Plan { steps, checks, shared_probes });
        }
        let column = |c: usize| {
            let input = offsets.partition_point(|&o| o <= c) - 1;
            (input, c - offsets[input])
        };
        let sources = match &output {
            Some(cols) => cols.iter().map(|&c| column(c)).collect(),
            None => (0..width).map(column).collect(),
        };
        MultiJoin { offsets, sources, indexes, plans }
    }

    /// Extends the combinations of `from` by the plan's steps from `k` on and emits
    /// each complete one once per row of its group (the starting input's rows, which
    /// all agree on what the steps read), with its weight times theirs.
    ///
    /// Breadth first: a step probes for every combination of the level before the
    /// next step begins, so the rows the next step reads are prefetched a few
    /// combinations ahead and their cache misses overlap, where extending one
    /// combination to the end before the next waits for each miss in turn (an order
    /// row, then its customer, then the next order row). A level holds at most
    /// [`FRONTIER`] combinations before those go on (a fanning-out step does not hold
    /// its whole output), and combinations are extended in order, so the output is
    /// the same, in the same order, as extending each one to the end in turn.
    #[allow(clippy::too_many_arguments)]
    fn extend<'a, S: Sink>(
        &'a self,
        probes: &'a Probes<'a>,
        plan: &'a Plan,
        k: usize,
        from: &Frontier<'a>,
        groups: &Groups<'a, '_>,
        sink: &S,
        out: &mut S::Out,
    ) {
        let Some(step) = plan.steps.get(k) else {
            self.emit(plan, from, groups, sink, out);
            return;
        };
        let index = &probes.after[step.to][step.index];
        // An input later in the rule is seen as before the transaction.
        let added = (step.to > groups.start).then(|| probes.added[step.to][step.index].as_ref()).flatten();
        // Each combination finds at least one row where the join follows a foreign key.
        let mut next = Frontier::with_capacity(from.width, from.len());
        // Each key (and its hash) is computed once, when its slot is prefetched, and
        // kept here until its probe.
        let mut keys: [Option<(Key, u64)>; KEYS_AHEAD] = Default::default();
        let hashed = |b: usize| {
            let key = join_key(&step.from_keys, from.row(b, step.from).expect("bound before its probe"))?;
            let hash = key_hash(&key);
            index.prefetch_hash(hash);
            Some((key, hash))
        };
        for (b, slot) in keys.iter_mut().enumerate().take(PREFETCH_AHEAD.min(from.len())) {
            *slot = hashed(b);
        }
        for b in 0..from.len() {
            // The row a key is read from is asked for twice as far ahead as the slot
            // that key's probe reads first: each waits on the one before it.
            if let Some(ahead) = from.row(b + 2 * PREFETCH_AHEAD, step.from) {
                ahead.prefetch();
            }
            if b + PREFETCH_AHEAD < from.len() {
                keys[(b + PREFETCH_AHEAD) % KEYS_AHEAD] = hashed(b + PREFETCH_AHEAD);
            }
            let Some((key, hash)) = keys[b % KEYS_AHEAD].take() else { continue };
            let bound = from.bound(b);
            let (w, g) = (from.weights[b], from.groups[b]);
            index.for_each_hashed(&key, hash, |r, rw| next.push(bound, step.to, r, w * rw, g));
            if let Some(added) = added {
                added.for_each(&key, |r, rw| next.push(bound, step.to, r, -w * rw, g));
            }
            if next.len() >= FRONTIER {
                self.extend(probes, plan, k + 1, &next, groups, sink, out);
                next.clear();
            }
        }
        if !next.is_empty() {
            self.extend(probes, plan, k + 1, &next, groups, sink, out);
        }
    }

    /// Extends the bound rows by the plan's steps from `k` on, depth first, emitting
    /// each complete combination once per row of `group` (the starting input's rows,
    /// which all agree on what the steps from `k` on read) with its weight times theirs.
    #[allow(clippy::too_many_arguments)]
    fn extend_one<'a, S: Sink>(
        &'a self,
        probes: &'a Probes<'a>,
        plan: &'a Plan,
        k: usize,
        bound: &mut [Option<&'a Row>],
        w: Weight,
        group: (usize, &[(&'a Row, Weight)]),
        sink: &S,
        out: &mut S::Out,
    ) {
        let Some(step) = plan.steps.get(k) else {
            if plan.checks.iter().all(|c| c.holds(bound)) {
                let (start, rows) = group;
                for (row, gw) in rows {
                    let joined = Joined { sources: &self.sources, bound, start, row };
                    sink.emit(out, &joined, w * *gw);
                }
            }
            return;
        };
        let Some(key) = join_key(&step.from_keys, bound[step.from].expect("bound before its probe")) else { return };
        // The rows the probe finds, the transaction's own negated after the rest. A
        // few go on depth first from here; more (a changed product's hundred orders,
        // each with a customer to find) go on breadth first, where the next steps'
        // probes and rows are fetched ahead instead of waited for one after another.
        // Either way the combinations come out in the same order.
        let (start, members) = group;
        // One group of every member, made only if the breadth-first path is taken.
        let groups = std::cell::OnceCell::new();
        let groups = || groups.get_or_init(|| Groups::one(start, members));
        let mut few = [None; FANOUT_DEPTH_FIRST];
        let mut found = 0;
        let mut wide: Option<Frontier<'a>> = None;
        let mut take = |r: &'a Row, rw: Weight| {
            if found < FANOUT_DEPTH_FIRST {
                few[found] = Some((r, rw));
                found += 1;
                return;
            }
            let next = wide.get_or_insert_with(|| {
                let mut next = Frontier::with_capacity(bound.len(), WIDE_PROBE);
                for (fr, fw) in few.iter().flatten() {
                    next.push(bound, step.to, fr, *fw, 0);
                }
                next
            });
            next.push(bound, step.to, r, rw, 0);
            if next.len() >= FRONTIER {
                self.extend(probes, plan, k + 1, next, groups(), sink, out);
                next.clear();
            }
        };
        probes.after[step.to][step.index].for_each(&key, |r, rw| take(r, w * rw));
        // An input later in the rule is seen as before the transaction.
        if step.to > start
            && let Some(added) = &probes.added[step.to][step.index]
        {
            added.for_each(&key, |r, rw| take(r, -w * rw));
        }
        match wide {
            Some(next) if !next.is_empty() => self.extend(probes, plan, k + 1, &next, groups(), sink, out),
            Some(_) => {}
            None => {
                for (r, rw) in few.into_iter().flatten() {
                    bound[step.to] = Some(r);
                    self.extend_one(probes, plan, k + 1, bound, rw, group, sink, out);
                }
            }
        }
        bound[step.to] = None;
    }

    /// Emits the complete combinations of `from` that pass the plan's checks, each
    /// once per row of its group.
    fn emit<'a, S: Sink>(&self, plan: &Plan, from: &Frontier<'a>, groups: &Groups<'a, '_>, sink: &S, out: &mut S::Out) {
        let start = groups.start;
        for b in 0..from.len() {
            for i in 0..from.width {
                if let Some(ahead) = from.row(b + PREFETCH_AHEAD, i) {
                    ahead.prefetch();
                }
            }
            let bound = from.bound(b);
            if !plan.checks.iter().all(|c| c.holds(bound)) {
                continue;
            }
            for &(row, gw) in groups.rows(from.groups[b]) {
                let joined = Joined { sources: &self.sources, bound, start, row };
                sink.emit(out, &joined, from.weights[b] * gw);
            }
        }
    }

    /// Extends every group of `groups` from its first row: a few (a transaction of a
    /// few events) one combination at a time, to the end ([`MultiJoin::extend_one`]:
    /// nothing to allocate, and little to overlap); more breadth first
    /// ([`MultiJoin::extend`], a slice of groups at a time). Both emit the same rows
    /// in the same order.
    fn extend_groups<'a, S: Sink>(
        &'a self,
        probes: &'a Probes<'a>,
        plan: &'a Plan,
        groups: &Groups<'a, '_>,
        sink: &S,
        out: &mut S::Out,
    ) {
        if groups.len() <= DEPTH_FIRST_UP_TO {
            let (mut stack, mut heap) = ([None; ON_STACK], Vec::new());
            let bound = unbound(self.offsets.len(), &mut stack, &mut heap);
            for g in 0..groups.len() as u32 {
                let rows = groups.rows(g);
                bound[groups.start] = Some(rows[0].0);
                self.extend_one(probes, plan, 0, bound, 1, (groups.start, rows), sink, out);
            }
            return;
        }
        let mut level = Frontier::with_capacity(self.offsets.len(), groups.len());
        let (mut stack, mut heap) = ([None; ON_STACK], Vec::new());
        let none = unbound(self.offsets.len(), &mut stack, &mut heap);
        for g in 0..groups.len() as u32 {
            level.push(none, groups.start, groups.rows(g)[0].0, 1, g);
            if level.len() >= FRONTIER {
                self.extend(probes, plan, 0, &level, groups, sink, out);
                level.clear();
            }
        }
        if !level.is_empty() {
            self.extend(probes, plan, 0, &level, groups, sink, out);
        }
    }

    /// Joins input `i`'s delta rows with the other inputs' current contents, in
    /// chunks on the worker threads when there are many (see [`crate::workers`]).
    fn extend_delta<'a, S: Sink>(
        &'a self,
        probes: &'a Probes<'a>,
        i: usize,
        delta: &'a ZSet,
        sink: &S,
        out: &mut S::Out,
    ) {
        let plan = &self.plans[i];
        if delta.len() <= DEPTH_FIRST_UP_TO {
            // A few rows (most transactions): each extended to the end in turn, but
            // where only the first step reads the starting row, rows next to each
            // other with one key (a changed row's old and new versions) share the walk,
            // as the groups of a longer delta do below.
            let rows = delta.as_slice();
            let first = &plan.steps[0].from_keys;
            if rows.len() > 1 {
                // Every row's first probe asked for before any is made: the rows'
                // keys lie far apart in the index, and their misses then overlap.
                let index = &probes.after[plan.steps[0].to][plan.steps[0].index];
                for (row, _) in rows {
                    if let Some(key) = join_key(first, row) {
                        index.prefetch_hash(key_hash(&key));
                    }
                }
            }
            let (mut stack, mut heap) = ([None; ON_STACK], Vec::new());
            let bound = unbound(self.offsets.len(), &mut stack, &mut heap);
            let mut at = 0;
            while at < rows.len() {
                let (row, w) = &rows[at];
                let mut end = at + 1;
                if plan.shared_probes
                    && end < rows.len()
                    && let Some(key) = join_key(first, row)
                {
                    while end < rows.len() && join_key(first, &rows[end].0).as_ref() == Some(&key) {
                        end += 1;
                    }
                }
                let mut members = [(row, *w); DEPTH_FIRST_UP_TO];
                for (m, (r, w)) in members.iter_mut().zip(&rows[at..end]) {
                    *m = (r, *w);
                }
                bound[i] = Some(row);
                self.extend_one(probes, plan, 0, bound, 1, (i, &members[..end - at]), sink, out);
                at = end;
            }
            return;
        }
        if !plan.shared_probes {
            let rows: Vec<(&Row, Weight)> = delta.iter().map(|(r, w)| (r, *w)).collect();
            let parts = workers::chunks_of(rows.len(), Cost::Probe, |range| {
                let mut out = sink.start(0);
                self.extend_groups(probes, plan, &Groups::single(i, &rows[range]), sink, &mut out);
                out
            });
            sink.append_all(out, parts);
            return;
        }
        // Rows with equal first keys next to each other; each run probes once.
        assert!(u32::try_from(delta.len()).is_ok(), "fewer than 2^32 rows at once");
        let first = &plan.steps[0].from_keys;
        let mut keyed: Vec<(Option<Key>, &(Row, Weight))> = delta.iter().map(|e| (join_key(first, &e.0), e)).collect();
        keyed.sort_unstable_by(|a, b| a.0.as_ref().map(Key::values).cmp(&b.0.as_ref().map(Key::values)));
        let members: Vec<(&Row, Weight)> = keyed.iter().map(|(_, (r, w))| (r, *w)).collect();
        // Where the run holding `at` ends: chunks are cut between runs.
        let run_end = |mut at: usize| {
            while at > 0 && at < keyed.len() && keyed[at].0 == keyed[at - 1].0 {
                at += 1;
            }
            at
        };
        let parts = workers::chunks_of(keyed.len(), Cost::Probe, |range| {
            let mut out = sink.start(0);
            let mut bounds = Vec::new();
            let (mut at, end) = (run_end(range.start), run_end(range.end));
            while at < end {
                let next = at + keyed[at..end].iter().take_while(|(k, _)| *k == keyed[at].0).count();
                if keyed[at].0.is_some() {
                    bounds.push((at as u32, next as u32));
                }
                at = next;
            }
            let groups = Groups { start: i, members: &members, bounds: Some(bounds) };
            self.extend_groups(probes, plan, &groups, sink, &mut out);
            out
        });
        sink.append_all(out, parts);
    }

    /// The inputs whose delta rows probe `arrangement`: those whose plan has a step
    /// through it (see [`Operator::probed_by`]).
    pub(crate) fn probed_by(&self, arrangement: &Shared) -> Vec<usize> {
        let through = |step: &Step| std::sync::Arc::ptr_eq(&self.indexes[step.to][step.index], arrangement);
        (0..self.plans.len()).filter(|&i| self.plans[i].steps.iter().any(through)).collect()
    }

    /// [`Operator::step`] with the output going to `sink`.
    pub(crate) fn step_into<S: Sink>(&mut self, input_deltas: &[&ZSet], sink: &S, out: &mut S::Out) {
        let probes = Probes::new(&self.indexes, input_deltas);
        for (i, delta) in input_deltas.iter().enumerate() {
            if !delta.is_empty() {
                self.extend_delta(&probes, i, delta, sink, out);
            }
        }
    }

    /// [`Operator::current_output`] with the output going to `sink`.
    pub(crate) fn current_output_into<S: Sink>(&self, sink: &S, out: &mut S::Out) {
        let probes = Probes::new(&self.indexes, &[]);
        // Every row of input 0 that can match is in each of its arrangements (borrowed
        // from it: a million rows' counts are not touched twice over).
        let mut rows: Vec<(&Row, Weight)> = Vec::new();
        if let Some(a) = probes.after[0].first() {
            a.for_each_row(|r, w| rows.push((r, w)));
        }
        self.output_from(&probes, &rows, sink, out);
    }

    /// The output for whole inputs, the rows of input 0 being `first` (the other
    /// inputs' arrangements are built; input 0's need not be).
    pub(crate) fn initial_into<S: Sink>(&self, first: &[(Row, Weight)], sink: &S, out: &mut S::Out) {
        let probes = Probes::new(&self.indexes, &[]);
        let rows: Vec<(&Row, Weight)> = first.iter().map(|(r, w)| (r, *w)).collect();
        self.output_from(&probes, &rows, sink, out);
    }

    /// Every combination that starts from `rows` of input 0, to `sink`.
    fn output_from<'a, S: Sink>(
        &'a self,
        probes: &'a Probes<'a>,
        rows: &[(&'a Row, Weight)],
        sink: &S,
        out: &mut S::Out,
    ) {
        let parts = workers::chunks_of(rows.len(), Cost::Probe, |range| {
            // Sized for one combination per row (a join along foreign keys): a
            // million-row output is not copied as it doubles.
            let mut out = sink.start(range.len());
            self.extend_groups(probes, &self.plans[0], &Groups::single(0, &rows[range]), sink, &mut out);
            out
        });
        sink.append_all(out, parts);
    }
}

/// Where a join's combinations go, each as a [`Joined`] with its weight: rows of a
/// delta ([`JoinedRows`]), or, for a join fused with the aggregate above it, only the
/// values the aggregate reads (see [`super::join_aggregate`]). Chunks of a long
/// delta, probed on the worker threads, fill outputs of their own, joined in order.
pub(crate) trait Sink: Sync {
    type Out: Send;
    /// An empty output, with room for `expected` combinations.
    fn start(&self, expected: usize) -> Self::Out;
    /// Adds a combination with its weight.
    fn emit(&self, out: &mut Self::Out, joined: &Joined<'_, '_>, w: Weight);
    /// Appends `part` (a later chunk's output) to `out`.
    fn append(&self, out: &mut Self::Out, part: Self::Out);
    /// Appends the chunks' outputs `parts` to `out`, in order.
    fn append_all(&self, out: &mut Self::Out, parts: Vec<Self::Out>) {
        parts.into_iter().for_each(|part| self.append(out, part));
    }
}

/// Joined rows, built of the output columns.
pub(crate) struct JoinedRows;

impl Sink for JoinedRows {
    type Out = ZSet;

    fn start(&self, expected: usize) -> ZSet {
        ZSet::with_capacity(expected)
    }

    #[inline]
    fn emit(&self, out: &mut ZSet, joined: &Joined<'_, '_>, w: Weight) {
        out.push((0..joined.width()).map(|c| joined.column(c).into_owned()).collect(), w);
    }

    fn append(&self, out: &mut ZSet, part: ZSet) {
        out.append(part);
    }
}

/// A complete combination, read as the joined row the join emits (its output
/// columns) without building it.
pub(crate) struct Joined<'r, 'a> {
    sources: &'r [(usize, usize)],
    bound: &'r [Option<&'a Row>],
    /// The starting input, whose row is `row` (the group member being emitted).
    start: usize,
    row: &'a Row,
}

impl Columns for Joined<'_, '_> {
    #[inline]
    fn column(&self, i: usize) -> Ref<'_> {
        let (input, c) = self.sources[i];
        let row = if input == self.start { self.row } else { self.bound[input].expect("every input is bound") };
        row.get(c)
    }

    #[inline]
    fn width(&self) -> usize {
        self.sources.len()
    }
}

/// How many partial combinations a level of [`MultiJoin::extend`] holds before they
/// go on to the next step.
const FRONTIER: usize = 4096;

/// How many computed keys [`MultiJoin::extend`] keeps between a key's prefetch and its
/// probe: more than [`PREFETCH_AHEAD`].
const KEYS_AHEAD: usize = 16;
const _: () = assert!(KEYS_AHEAD > PREFETCH_AHEAD);

/// Up to how many groups of starting rows are extended depth first.
const DEPTH_FIRST_UP_TO: usize = 8;

/// Up to how many rows one probe of the depth-first path finds go on depth first;
/// more go on breadth first (see [`MultiJoin::extend_one`]).
const FANOUT_DEPTH_FIRST: usize = 4;

/// The room a probe that goes on breadth first starts with (a product's orders).
const WIDE_PROBE: usize = 64;

/// Up to how many inputs a combination being extended depth first is kept on the
/// stack (most joins have two to four): a step of a few rows allocates nothing for it.
const ON_STACK: usize = 8;

/// `n` unbound inputs: in `stack` if they fit, else in `heap`.
fn unbound<'s, 'a>(
    n: usize,
    stack: &'s mut [Option<&'a Row>; ON_STACK],
    heap: &'s mut Vec<Option<&'a Row>>,
) -> &'s mut [Option<&'a Row>] {
    if n <= ON_STACK {
        &mut stack[..n]
    } else {
        heap.resize(n, None);
        heap
    }
}

/// Partial combinations of the inputs' rows being extended together: per combination
/// a row (or none yet) per input, its weight, and its group (see [`Groups`]).
struct Frontier<'a> {
    width: usize,
    bound: Vec<Option<&'a Row>>,
    weights: Vec<Weight>,
    groups: Vec<u32>,
}

impl<'a> Frontier<'a> {
    /// Room for `n` combinations: sized once from what a level is known to hold at
    /// least, rather than grown from nothing by doubling (a changed product's hundred
    /// orders reallocated each of the three vectors half a dozen times).
    fn with_capacity(width: usize, n: usize) -> Frontier<'a> {
        let n = n.min(FRONTIER);
        Frontier {
            width,
            bound: Vec::with_capacity(n * width),
            weights: Vec::with_capacity(n),
            groups: Vec::with_capacity(n),
        }
    }

    fn len(&self) -> usize {
        self.weights.len()
    }

    fn is_empty(&self) -> bool {
        self.weights.is_empty()
    }

    fn clear(&mut self) {
        self.bound.clear();
        self.weights.clear();
        self.groups.clear();
    }

    /// Combination `b`'s row per input.
    fn bound(&self, b: usize) -> &[Option<&'a Row>] {
        &self.bound[b * self.width..(b + 1) * self.width]
    }

    /// Combination `b`'s row of input `i`, if there is such a combination and row.
    #[inline]
    fn row(&self, b: usize, i: usize) -> Option<&'a Row> {
        self.bound.get(b * self.width + i).copied().flatten()
    }

    /// Adds `bound` with input `to` bound to `row`.
    #[inline]
    fn push(&mut self, bound: &[Option<&'a Row>], to: usize, row: &'a Row, w: Weight, g: u32) {
        let at = self.bound.len();
        self.bound.extend_from_slice(bound);
        self.bound[at + to] = Some(row);
        self.weights.push(w);
        self.groups.push(g);
    }
}

/// The starting input's rows, in groups that share every probe (one row each unless
/// the plan's probes from the starting input read only its first key): a group is a
/// range of `members`.
struct Groups<'a, 'm> {
    start: usize,
    members: &'m [(&'a Row, Weight)],
    /// Per group, its range of `members`; `None`: every member is a group.
    bounds: Option<Vec<(u32, u32)>>,
}

impl<'a, 'm> Groups<'a, 'm> {
    /// Every one of `members` a group of its own.
    fn single(start: usize, members: &'m [(&'a Row, Weight)]) -> Groups<'a, 'm> {
        assert!(u32::try_from(members.len()).is_ok(), "fewer than 2^32 rows at once");
        Groups { start, members, bounds: None }
    }

    /// Every one of `members` in one group.
    fn one(start: usize, members: &'m [(&'a Row, Weight)]) -> Groups<'a, 'm> {
        let end = u32::try_from(members.len()).expect("fewer than 2^32 rows at once");
        // One member is a group of its own: nothing to allocate.
        let bounds = (end > 1).then(|| vec![(0, end)]);
        Groups { start, members, bounds }
    }

    fn len(&self) -> usize {
        self.bounds.as_ref().map_or(self.members.len(), Vec::len)
    }

    fn rows(&self, g: u32) -> &'m [(&'a Row, Weight)] {
        match &self.bounds {
            Some(bounds) => {
                let (s, e) = bounds[g as usize];
                &self.members[s as usize..e as usize]
            }
            None => std::slice::from_ref(&self.members[g as usize]),
        }
    }
}

/// What a step probes: every arrangement (the inputs after the transaction), and the
/// transaction's delta of each input a probe may need to see as before it.
struct Probes<'a> {
    after: Vec<Vec<RwLockReadGuard<'a, Arrangement>>>,
    added: Vec<Vec<Option<DeltaIndex<'a>>>>,
}

impl<'a> Probes<'a> {
    fn new(indexes: &'a [Vec<Shared>], deltas: &[&'a ZSet]) -> Probes<'a> {
        let after: Vec<Vec<RwLockReadGuard<'a, Arrangement>>> =
            indexes.iter().map(|ix| ix.iter().map(|a| a.read()).collect()).collect();
        // Input j is probed as before the transaction from the deltas of inputs before it.
        let first_changed = deltas.iter().position(|d| !d.is_empty()).unwrap_or(usize::MAX);
        let added = after
            .iter()
            .enumerate()
            .map(|(j, ix)| {
                ix.iter()
                    .map(|a| (j > first_changed && !deltas[j].is_empty()).then(|| DeltaIndex::new(a.keys(), deltas[j])))
                    .collect()
            })
            .collect();
        Probes { after, added }
    }
}

impl Operator for MultiJoin {
    fn keeps_state(&self) -> bool {
        false
    }

    fn step(&mut self, input_deltas: &[&ZSet]) -> ZSet {
        let mut out = ZSet::new();
        self.step_into(input_deltas, &JoinedRows, &mut out);
        out
    }

    fn output_from_arrangements(&self) -> bool {
        true
    }

    /// The join is computed once from input 0's rows probing the other inputs'
    /// arrangements, not as the sum of one delta term per input (which would build
    /// each joined row several times over, to cancel most of them).
    fn initial(&mut self, inputs: &[&ZSet]) -> ZSet {
        let mut out = ZSet::new();
        self.initial_into(inputs[0].as_slice(), &JoinedRows, &mut out);
        out
    }

    fn current_output(&self) -> Option<ZSet> {
        let mut out = ZSet::new();
        self.current_output_into(&JoinedRows, &mut out);
        Some(out)
    }

    fn probed_by(&self, arrangement: &Shared) -> Option<Vec<usize>> {
        Some(self.probed_by(arrangement))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operator::arrangement::TestArrangements;
    use crate::row;
    use crate::value::Value;

    fn multi_join(edges: &[JoinEdge], output: Option<Vec<usize>>) -> (MultiJoin, TestArrangements) {
        let mut arrangements = TestArrangements::default();
        let j = MultiJoin::new(vec![2, 2, 2], edges, output, &mut |i, k| arrangements.arrange(i, k));
        (j, arrangements)
    }

    /// Steps `j` as the graph does: arrangements first.
    fn step(j: &mut MultiJoin, arrangements: &TestArrangements, deltas: &[&ZSet]) -> ZSet {
        arrangements.apply(deltas);
        j.step(deltas)
    }

    /// a(x, y) ⋈ b(y, z) ⋈ c(z, w) on a.y = b.y and b.z = c.z, from scratch.
    fn reference(a: &ZSet, b: &ZSet, c: &ZSet) -> ZSet {
        let mut out = ZSet::new();
        for (ra, wa) in a {
            for (rb, wb) in b {
                for (rc, wc) in c {
                    let ok = !ra.get(1).is_null()
                        && *ra.get(1) == *rb.get(0)
                        && !rb.get(1).is_null()
                        && *rb.get(1) == *rc.get(0);
                    if ok {
                        out.push(ra.concat(rb).concat(rc), wa * wb * wc);
                    }
                }
            }
        }
        out.consolidated()
    }

    fn edges() -> Vec<JoinEdge> {
        vec![
            JoinEdge { left: 0, left_keys: vec![Expr::col(1)], right: 1, right_keys: vec![Expr::col(0)] },
            JoinEdge { left: 1, left_keys: vec![Expr::col(1)], right: 2, right_keys: vec![Expr::col(0)] },
        ]
    }

    #[test]
    fn deltas_sum_to_the_join_of_the_totals() {
        let (mut j, arrangements) = multi_join(&edges(), None);
        let null = Value::Null;
        let steps: Vec<[ZSet; 3]> = vec![
            [
                crate::zset! { row![1, 10] => 1 },
                crate::zset! { row![10, 100] => 1 },
                crate::zset! { row![100, "a"] => 1 },
            ],
            [crate::zset! { row![2, 10] => 2 }, ZSet::new(), crate::zset! { row![100, "b"] => 1 }],
            [
                ZSet::new(),
                crate::zset! { row![10, 100] => 1, row![10, 200] => 1 },
                crate::zset! { row![200, "c"] => 1 },
            ],
            [
                crate::zset! { row![1, 10] => -1, row![3, null.clone()] => 1 },
                crate::zset! { row![10, 100] => -2 },
                ZSet::new(),
            ],
            [
                crate::zset! { row![4, 10] => 1 },
                crate::zset! { row![null, 200] => 1 },
                crate::zset! { row![200, "c"] => -1 },
            ],
            // Old and new rows under one key (an update), which share their probes.
            [
                crate::zset! { row![5, 10] => 1 },
                crate::zset! { row![10, 100] => 1 },
                crate::zset! { row![100, "a"] => -1, row![100, "z"] => 1, row![200, "c"] => 2 },
            ],
            [
                crate::zset! { row![4, 10] => -1, row![4, 10] => -1, row![6, 10] => 1 },
                crate::zset! { row![10, 100] => -1, row![10, 200] => 1 },
                ZSet::new(),
            ],
            // Runs of one key among others, and a key coming back after another.
            [
                ZSet::new(),
                ZSet::new(),
                crate::zset! {
                    row![100, "z"] => -1, row![100, "y"] => 1, row![200, "c"] => -1,
                    row![100, "q"] => 1, row![Value::Null, "n"] => 1, row![Value::Null, "m"] => 1,
                },
            ],
            // Few delta rows whose probes find many rows (past FANOUT_DEPTH_FIRST),
            // those of the transaction itself among them, and runs of one key.
            [(20..30).map(|x| (row![x, 30], 1)).collect(), ZSet::new(), ZSet::new()],
            [
                crate::zset! { row![40, 30] => 1 },
                crate::zset! { row![30, 300] => 1, row![30, 301] => 1 },
                crate::zset! { row![300, "p"] => 1 },
            ],
            [
                ZSet::new(),
                crate::zset! { row![30, 300] => 1 },
                crate::zset! { row![300, "p"] => -1, row![300, "s"] => 1, row![301, "t"] => 2 },
            ],
            [
                crate::zset! { row![41, 30] => 1, row![20, 30] => -1 },
                ZSet::new(),
                crate::zset! { row![300, "s"] => -1, row![300, "u"] => 1 },
            ],
        ];
        let (mut a, mut b, mut c, mut out) = (ZSet::new(), ZSet::new(), ZSet::new(), ZSet::new());
        for [da, db, dc] in &steps {
            out.extend_from(&step(&mut j, &arrangements, &[da, db, dc]));
            a.extend_from(da);
            b.extend_from(db);
            c.extend_from(dc);
            let expected = reference(&a.clone().consolidated(), &b.clone().consolidated(), &c.clone().consolidated());
            assert_eq!(out.clone().consolidated(), expected);
            assert_eq!(j.current_output().unwrap().consolidated(), expected);
        }
    }

    #[test]
    fn a_level_past_the_frontier_goes_on_in_parts_and_loses_nothing() {
        // 30 a rows (one key each) × 150 b rows each × 1 c row each: levels of 4,500
        // combinations, past FRONTIER; then every input changing at once (the later
        // inputs' deltas probed with the opposite sign).
        let (mut j, arrangements) = multi_join(&edges(), None);
        let a: ZSet = (0..30i64).map(|x| (row![x, x], 1)).collect();
        let b: ZSet = (0..30i64).flat_map(|y| (0..150i64).map(move |z| (row![y, z], 1))).collect();
        let c: ZSet = (0..150i64).map(|z| (row![z, z % 3], 1)).collect();
        const { assert!(30 * 150 > FRONTIER) };
        let none = ZSet::new();
        assert!(step(&mut j, &arrangements, &[&none, &b, &c]).is_empty());
        let out = step(&mut j, &arrangements, &[&a, &none, &none]);
        assert_eq!(out.clone().consolidated(), reference(&a, &b, &c));
        // Then some of each go and come back changed.
        let da: ZSet = (0..10i64).flat_map(|x| [(row![x, x], -1), (row![x + 100, x], 1)]).collect();
        let db: ZSet = (0..2i64).map(|y| (row![y, 3], -1)).chain((0..2).map(|y| (row![y, 500], 1))).collect();
        let dc: ZSet = crate::zset! { row![3, 0] => -1, row![500, 5] => 1 };
        let mut total = out;
        total.extend_from(&step(&mut j, &arrangements, &[&da, &db, &dc]));
        let (mut a2, mut b2, mut c2) = (a, b, c);
        a2.extend_from(&da);
        b2.extend_from(&db);
        c2.extend_from(&dc);
        let expected = reference(&a2.consolidated(), &b2.consolidated(), &c2.consolidated());
        assert_eq!(total.consolidated(), expected);
        assert_eq!(j.current_output().unwrap().consolidated(), expected);
    }

    #[test]
    fn a_cycle_is_checked_after_binding() {
        // a.y = b.y, b.z = c.z, and c.w = a.x closes a cycle.
        let mut e = edges();
        e.push(JoinEdge { left: 2, left_keys: vec![Expr::col(1)], right: 0, right_keys: vec![Expr::col(0)] });
        let (mut j, arrangements) = multi_join(&e, Some(vec![0, 5]));
        let out = step(
            &mut j,
            &arrangements,
            &[
                &crate::zset! { row![1, 10] => 1, row![2, 10] => 1 },
                &crate::zset! { row![10, 100] => 1 },
                &crate::zset! { row![100, 1] => 1 },
            ],
        );
        assert_eq!(out.consolidated(), crate::zset! { row![1, 1] => 1 });
    }
}
