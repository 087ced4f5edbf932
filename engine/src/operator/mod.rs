//! Incremental operators.
//!
//! Every operator obeys one contract, [`Operator::step`]: it receives, for one
//! transaction, the delta of each of its inputs (an empty Z-set where an input did not
//! change), updates whatever state it keeps, and returns the delta of its output. If
//! `out` is the operator applied to the inputs' current contents, then after every
//! step `out_before + output_delta == out_after`. The delta rules are the textbook ones
//! (DBSP, differential dataflow); each module states its own.
//!
//! Stateless operators (filter, project, union) are pure functions of their input
//! deltas, so the graph can also run them on whole relations. Stateful ones (join,
//! aggregate, distinct, EXCEPT/INTERSECT, top-k) keep exactly the state their rule needs, and can
//! report their whole current output ([`Operator::current_output`]), which is how a
//! view registered later is filled from state that already exists.

mod accumulator;
pub mod aggregate;
pub mod arrangement;
pub mod distinct;
pub mod filter;
pub mod in_set;
mod index;
pub mod join;
pub mod join_aggregate;
pub mod multi_join;
pub mod outer_join;
pub mod project;
pub mod set_op;
pub mod top_k;
pub mod union;
pub mod values;

use std::fmt::Debug;

use crate::row::Row;
use crate::zset::ZSet;

/// An incremental relational operator.
pub trait Operator: Send + Debug {
    /// Consumes one transaction's input deltas (one per input, in input order), updates
    /// the state, and returns the output delta.
    fn step(&mut self, input_deltas: &[&ZSet]) -> ZSet;

    /// The whole current output, for operators whose state holds it; `None` for
    /// stateless operators.
    fn current_output(&self) -> Option<ZSet> {
        None
    }

    /// For stateless operators, the output for whole `inputs` (the rule of `step`,
    /// which for them changes nothing); `None` for stateful operators.
    fn evaluate(&self, _inputs: &[&ZSet]) -> Option<ZSet> {
        None
    }

    /// Whether the last step left the operator unable to finish without its inputs'
    /// whole current contents (an operator that keeps only part of its input, like
    /// top-k, after deletions ate into that part). The graph then calls
    /// [`Operator::refill`], whose output replaces the step's.
    fn starved(&self) -> bool {
        false
    }

    /// Whether a step can starve (see [`Operator::starved`]): the graph then keeps
    /// every arrangement its inputs' whole contents are computed from built.
    fn may_starve(&self) -> bool {
        false
    }

    /// Whether [`Operator::current_output`] is computed from the arrangements the
    /// operator probes (a join's output is their join), which must then be built.
    fn output_from_arrangements(&self) -> bool {
        false
    }

    /// Finishes a starved step from the inputs' whole current contents (after the
    /// step's deltas), returning the step's output delta.
    fn refill(&mut self, _inputs: &[&ZSet]) -> ZSet {
        unreachable!("only operators that can starve are refilled")
    }

    /// The output for whole `inputs`, when the operator is new in a graph whose inputs
    /// already hold data (a view registered over loaded tables): by default the step
    /// rule with the contents as deltas. Operators with a cheaper way override it. The
    /// arrangements of inputs 1 and on are built; input 0's may be deferred (see
    /// [`arrangement`]), its rows are in `inputs[0]`.
    fn initial(&mut self, inputs: &[&ZSet]) -> ZSet {
        let out = self.step(inputs);
        if self.starved() { self.refill(inputs) } else { out }
    }

    /// For an operator whose output is some of its single input's rows, unchanged and
    /// with their weights (a filter): the places in `input` of the rows it keeps, in
    /// order; `None` for every other operator. Its output over a table's rows is then
    /// those rows borrowed from the table (see [`crate::zset::Borrowed`]) rather than
    /// counted handles on them. A stateless operator's only.
    fn kept(&self, _input: &ZSet) -> Option<Vec<u32>> {
        None
    }

    /// The input ports whose deltas make a step probe `arrangement` (one the operator
    /// was built with), for an operator that knows better than the default, every
    /// input but the arranged one: a delta join of three inputs probes orders by
    /// customer only when customers change, never when products do. The graph builds
    /// a deferred arrangement when such a port's input changes ([`arrangement`]).
    fn probed_by(&self, _arrangement: &arrangement::Shared) -> Option<Vec<usize>> {
        None
    }

    /// Approximate heap bytes held as state.
    fn state_bytes(&self) -> usize {
        0
    }

    /// Whether the operator keeps state of its own: not a filter, a projection or a
    /// union, nor a join, whose state is the graph's arrangements of its inputs. A new
    /// node whose operator keeps none is not filled when nothing reads its output.
    fn keeps_state(&self) -> bool {
        true
    }

    /// The operator's state as rows, for a checkpoint (see [`crate::dataflow`]): a
    /// restart takes it back instead of computing it again from the inputs. `None`
    /// where the state is not saved (it is then computed again).
    fn save(&self) -> Option<Vec<Row>> {
        None
    }

    /// Takes, in place of a new operator's empty state, the state
    /// [`Operator::save`] gave; `false`, with nothing changed, if `saved` is not one.
    fn restore(&mut self, _saved: &[Row]) -> bool {
        false
    }
}

/// Approximate heap bytes of one stored row handle plus its weight in a container.
pub(crate) const ENTRY_BYTES: usize = std::mem::size_of::<crate::row::Row>() + std::mem::size_of::<i64>();

/// The mask that picks the slot of a hash in a hashbrown table of `entries` entries
/// (its buckets are a power of two, at most 7/8 full). Work sorted by `hash & mask`
/// walks the table from one end to the other; a table grown or shrunk since only
/// costs some of that locality, never correctness.
///
/// Deltas shorter than [`SLOT_ORDER_FROM`] are applied as they come: for a few rows
/// the sort's allocation costs more than the locality saves.
pub(crate) fn slot_mask(entries: usize) -> u64 {
    (entries * 8 / 7).next_power_of_two() as u64 - 1
}

/// The delta length from which deltas are applied in slot order (see [`slot_mask`]).
pub(crate) const SLOT_ORDER_FROM: usize = 16;

/// For operator tests: a seeded xorshift generator; `next(n)` is in `0..n`.
#[cfg(test)]
pub(crate) fn xorshift(mut seed: u64) -> impl FnMut(u64) -> u64 {
    move |n| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    }
}
