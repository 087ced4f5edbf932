//! Per-group aggregate state that supports removal as well as addition.
//!
//! Every accumulator takes a value with a signed weight and can give its current
//! result at any time, so deletions are exact:
//!
//! - counts and integer sums are exact integers (sums in i128, so no intermediate
//!   overflow);
//! - decimal sums are exact at the argument's scale;
//! - floating-point sums are compensated (Neumaier), and start again from exactly zero
//!   whenever the group has no values left, so error never accumulates across a
//!   group's lifetimes;
//! - MIN and MAX keep an ordered multiset of the values, so removing the current
//!   minimum reveals the next one;
//! - GROUP_CONCAT keeps its values in arrival order (SQLite's order for rows only
//!   inserted), and joins them on demand;
//! - DISTINCT keeps a count per distinct value and feeds the inner accumulator only
//!   when a value appears or disappears.

use std::collections::BTreeMap;

use hashbrown::HashMap;

use crate::decimal::Decimal;
use crate::plan::{AggFunc, AggregateCall};
use crate::types::DataType;
use crate::value::Value;
use crate::zset::Weight;

/// The running state of one aggregate in one group.
#[derive(Debug, Clone)]
pub(crate) enum Accumulator {
    /// COUNT(*) and COUNT(x): rows (or non-NULL values) counted.
    Count(Weight),
    /// SUM/AVG of integers.
    SumInt { sum: Wide, n: Weight },
    /// SUM/AVG/TOTAL of doubles: Neumaier's compensated sum.
    SumFloat { sum: f64, compensation: f64, n: Weight },
    /// SUM/AVG of decimals: exact mantissa at `scale`.
    SumDecimal { sum: Wide, scale: u8, n: Weight },
    /// MIN/MAX: every value with its multiplicity.
    Extreme(BTreeMap<Value, Weight>),
    /// `f(DISTINCT x)`: each value's multiplicity, and the inner accumulator that sees
    /// each distinct value once.
    Distinct(Box<Distinct>),
    /// GROUP_CONCAT: the values in the order they arrived (boxed, like DISTINCT).
    Concat(Box<Concat>),
}

/// GROUP_CONCAT's state. SQLite joins the values in the order it scans the rows, which
/// for a table only ever inserted into is the order they were inserted; keeping the
/// values in arrival order reproduces that. A removed value takes its most recent copy
/// with it (the rows behind equal values are not known here).
#[derive(Debug, Clone)]
pub(crate) struct Concat {
    separator: String,
    /// Arrival number of the next value.
    next: u64,
    /// The values present, by arrival number.
    by_arrival: BTreeMap<u64, Value>,
    /// For each value: the arrival numbers of its copies, and copies removed before
    /// they arrived (a delta may remove a row before it adds it back).
    copies: HashMap<Value, (Vec<u64>, Weight)>,
}

impl Concat {
    fn update(&mut self, value: &Value, weight: Weight) {
        let entry = self.copies.entry_ref(value).or_insert_with(|| (Vec::new(), 0));
        for _ in 0..weight.abs() {
            if weight > 0 {
                if entry.1 > 0 {
                    entry.1 -= 1;
                } else {
                    entry.0.push(self.next);
                    self.by_arrival.insert(self.next, value.clone());
                    self.next += 1;
                }
            } else if let Some(seq) = entry.0.pop() {
                self.by_arrival.remove(&seq);
            } else {
                entry.1 += 1;
            }
        }
        if entry.0.is_empty() && entry.1 == 0 {
            self.copies.remove(value);
        }
    }

    fn result(&self) -> Value {
        if self.by_arrival.is_empty() {
            return Value::Null;
        }
        let parts: Vec<String> = self.by_arrival.values().map(|v| v.to_text().unwrap_or_default()).collect();
        Value::text(parts.join(&self.separator).as_str())
    }
}

/// `f(DISTINCT x)`: each value's multiplicity, and the inner accumulator that sees
/// each distinct value once (boxed: rare, and it would double every accumulator).
#[derive(Debug, Clone)]
pub(crate) struct Distinct {
    counts: HashMap<Value, Weight>,
    inner: Accumulator,
}

/// A 128-bit sum as two 64-bit halves: 8-aligned, unlike `i128`, so that an
/// accumulator stays 32 bytes.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Wide([u64; 2]);

impl Wide {
    #[inline]
    fn get(self) -> i128 {
        (((self.0[1] as u128) << 64) | self.0[0] as u128) as i128
    }

    #[inline]
    fn add(&mut self, v: i128) {
        let sum = self.get().wrapping_add(v) as u128;
        self.0 = [sum as u64, (sum >> 64) as u64];
    }
}

impl Accumulator {
    /// A fresh accumulator for `call`.
    pub fn new(call: &AggregateCall) -> Accumulator {
        let base = match call.func {
            AggFunc::CountStar | AggFunc::Count => Accumulator::Count(0),
            AggFunc::Min | AggFunc::Max => Accumulator::Extreme(BTreeMap::new()),
            AggFunc::GroupConcat => Accumulator::Concat(Box::new(Concat {
                separator: call.separator.clone().unwrap_or_else(|| ",".to_string()),
                next: 0,
                by_arrival: BTreeMap::new(),
                copies: HashMap::new(),
            })),
            AggFunc::Total => Accumulator::SumFloat { sum: 0.0, compensation: 0.0, n: 0 },
            AggFunc::Sum | AggFunc::Avg => match call.arg_type {
                t if t.is_integer() || t == DataType::Bool => Accumulator::SumInt { sum: Wide::default(), n: 0 },
                DataType::Decimal { scale, .. } => Accumulator::SumDecimal { sum: Wide::default(), scale, n: 0 },
                _ => Accumulator::SumFloat { sum: 0.0, compensation: 0.0, n: 0 },
            },
        };
        if call.distinct && !matches!(call.func, AggFunc::Min | AggFunc::Max) {
            Accumulator::Distinct(Box::new(Distinct { counts: HashMap::new(), inner: base }))
        } else {
            base
        }
    }

    /// Called once a group has taken all its rows of a delta, when its contents are a
    /// bag again (inside a delta a count may pass through zero while rows are still to
    /// come): a float sum of no values drops the rounding residue its additions and
    /// removals left.
    pub fn settle(&mut self) {
        match self {
            Accumulator::SumFloat { sum, compensation, n: 0 } => {
                *sum = 0.0;
                *compensation = 0.0;
            }
            Accumulator::Distinct(d) => d.inner.settle(),
            _ => {}
        }
    }

    /// Adds `weight` copies of `value` (removes them if negative). `COUNT(*)` is called
    /// with a non-NULL placeholder; other aggregates ignore NULLs.
    pub fn update(&mut self, value: &Value, weight: Weight) {
        if value.is_null() {
            return;
        }
        match self {
            Accumulator::Count(n) => *n += weight,
            Accumulator::SumInt { sum, n } => {
                let v = match value {
                    Value::Int(i) => *i as i128,
                    Value::Bool(b) => *b as i128,
                    other => other.as_f64().unwrap_or(0.0) as i128,
                };
                sum.add(v * weight as i128);
                *n += weight;
            }
            Accumulator::SumFloat { sum, compensation, n } => {
                let v = value.as_f64().unwrap_or(0.0) * weight as f64;
                // Neumaier: keep the low-order bits lost by each addition.
                let t = *sum + v;
                *compensation += if sum.abs() >= v.abs() { (*sum - t) + v } else { (v - t) + *sum };
                *sum = t;
                *n += weight;
            }
            Accumulator::SumDecimal { sum, scale, n } => {
                let d = match value {
                    Value::Decimal(d) => d.rescale(*scale),
                    Value::Int(i) => Decimal::from_i64(*i).rescale(*scale),
                    other => other.as_f64().and_then(|f| Decimal::from_f64(f, *scale)),
                };
                sum.add(d.map_or(0, Decimal::mantissa) * weight as i128);
                *n += weight;
            }
            Accumulator::Extreme(values) => {
                let c = values.entry(value.clone()).or_insert(0);
                *c += weight;
                if *c == 0 {
                    values.remove(value);
                }
            }
            Accumulator::Concat(c) => c.update(value, weight),
            Accumulator::Distinct(d) => {
                let Distinct { counts, inner } = &mut **d;
                let c = counts.entry_ref(value).or_insert(0);
                let before = *c;
                *c += weight;
                let after = *c;
                if after == 0 {
                    counts.remove(value);
                }
                match (before > 0, after > 0) {
                    (false, true) => inner.update(value, 1),
                    (true, false) => inner.update(value, -1),
                    _ => {}
                }
            }
        }
    }

    /// The aggregate's current result.
    pub fn result(&self, func: AggFunc) -> Value {
        match self {
            Accumulator::Distinct(d) => d.inner.result(func),
            Accumulator::Count(n) => Value::Int(*n),
            Accumulator::SumInt { sum, n } => match func {
                _ if *n == 0 && func != AggFunc::Total => Value::Null,
                AggFunc::Avg => Value::Float(sum.get() as f64 / *n as f64),
                AggFunc::Total => Value::Float(sum.get() as f64),
                // SQLite reports an error on overflow; ciuf saturates rather than
                // stall the view.
                _ => Value::Int(sum.get().clamp(i64::MIN as i128, i64::MAX as i128) as i64),
            },
            Accumulator::SumFloat { sum, compensation, n } => match func {
                AggFunc::Total => Value::Float(sum + compensation),
                _ if *n == 0 => Value::Null,
                AggFunc::Avg => Value::Float((sum + compensation) / *n as f64),
                _ => Value::Float(sum + compensation),
            },
            Accumulator::SumDecimal { sum, scale, n } => {
                let d = Decimal::new(sum.get(), *scale);
                match func {
                    _ if *n == 0 && func != AggFunc::Total => Value::Null,
                    AggFunc::Avg => Value::Float(d.map_or(f64::NAN, Decimal::to_f64) / *n as f64),
                    AggFunc::Total => Value::Float(d.map_or(0.0, Decimal::to_f64)),
                    _ => d.map_or(Value::Null, Value::from),
                }
            }
            Accumulator::Extreme(values) => {
                let v = if func == AggFunc::Min { values.keys().next() } else { values.keys().next_back() };
                v.cloned().unwrap_or(Value::Null)
            }
            Accumulator::Concat(c) => c.result(),
        }
    }

    /// Approximate heap bytes.
    pub fn state_bytes(&self) -> usize {
        match self {
            Accumulator::Extreme(values) => values.len() * 48,
            Accumulator::Concat(c) => 96 + c.separator.len() + c.by_arrival.len() * 88,
            Accumulator::Distinct(d) => 8 + d.counts.capacity() * 33 + d.inner.state_bytes(),
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_accumulator_is_32_bytes() {
        assert_eq!(std::mem::size_of::<Accumulator>(), 32);
    }
    use crate::expr::Expr;

    fn call(func: AggFunc, arg_type: DataType, distinct: bool) -> AggregateCall {
        AggregateCall { func, arg: Some(Expr::col(0)), distinct, arg_type, separator: None }
    }

    #[test]
    fn min_max_survive_deleting_the_extreme() {
        let c = call(AggFunc::Min, DataType::BigInt, false);
        let mut a = Accumulator::new(&c);
        for v in [5, 3, 3, 9] {
            a.update(&Value::Int(v), 1);
        }
        assert_eq!(a.result(AggFunc::Min), Value::Int(3));
        a.update(&Value::Int(3), -1);
        assert_eq!(a.result(AggFunc::Min), Value::Int(3));
        a.update(&Value::Int(3), -1);
        assert_eq!(a.result(AggFunc::Min), Value::Int(5));
        assert_eq!(a.result(AggFunc::Max), Value::Int(9));
    }

    #[test]
    fn sums_and_averages() {
        let mut s = Accumulator::new(&call(AggFunc::Sum, DataType::BigInt, false));
        assert_eq!(s.result(AggFunc::Sum), Value::Null);
        s.update(&Value::Int(4), 2);
        s.update(&Value::Null, 1);
        s.update(&Value::Int(1), 1);
        assert_eq!(s.result(AggFunc::Sum), Value::Int(9));
        assert_eq!(s.result(AggFunc::Avg), Value::Float(3.0));
        let mut f = Accumulator::new(&call(AggFunc::Sum, DataType::Double, false));
        for _ in 0..10 {
            f.update(&Value::Float(0.1), 1);
        }
        f.update(&Value::Float(1e20), 1);
        f.update(&Value::Float(1e20), -1);
        assert_eq!(f.result(AggFunc::Sum), Value::Float(1.0));
        let mut t = Accumulator::new(&call(AggFunc::Total, DataType::BigInt, false));
        assert_eq!(t.result(AggFunc::Total), Value::Float(0.0));
        t.update(&Value::Int(2), 1);
        assert_eq!(t.result(AggFunc::Total), Value::Float(2.0));
    }

    #[test]
    fn group_concat_joins_what_is_left() {
        let mut c = call(AggFunc::GroupConcat, DataType::Text, false);
        c.separator = Some("; ".into());
        let mut g = Accumulator::new(&c);
        assert_eq!(g.result(AggFunc::GroupConcat), Value::Null);
        g.update(&Value::text("b"), 2);
        g.update(&Value::text("a"), 1);
        g.update(&Value::Null, 1);
        assert_eq!(g.result(AggFunc::GroupConcat), Value::text("b; b; a"));
        g.update(&Value::text("b"), -2);
        assert_eq!(g.result(AggFunc::GroupConcat), Value::text("a"));
        // Removed, then added back: it arrives again, last. Removed before it was
        // added (inside one delta): no change.
        g.update(&Value::text("c"), 1);
        g.update(&Value::text("a"), -1);
        g.update(&Value::text("a"), 1);
        assert_eq!(g.result(AggFunc::GroupConcat), Value::text("c; a"));
        g.update(&Value::text("z"), -1);
        g.update(&Value::text("z"), 1);
        assert_eq!(g.result(AggFunc::GroupConcat), Value::text("c; a"));
        let mut d =
            Accumulator::new(&AggregateCall { distinct: true, ..call(AggFunc::GroupConcat, DataType::BigInt, false) });
        d.update(&Value::Int(2), 3);
        d.update(&Value::Int(1), 1);
        assert_eq!(d.result(AggFunc::GroupConcat), Value::text("2,1"));
    }

    #[test]
    fn distinct_counts_values_once() {
        let mut c = Accumulator::new(&call(AggFunc::Count, DataType::BigInt, true));
        c.update(&Value::Int(1), 2);
        c.update(&Value::Int(2), 1);
        c.update(&Value::Null, 1);
        assert_eq!(c.result(AggFunc::Count), Value::Int(2));
        c.update(&Value::Int(1), -1);
        assert_eq!(c.result(AggFunc::Count), Value::Int(2));
        c.update(&Value::Int(1), -1);
        assert_eq!(c.result(AggFunc::Count), Value::Int(1));
        let mut s = Accumulator::new(&call(AggFunc::Sum, DataType::BigInt, true));
        s.update(&Value::Int(5), 3);
        s.update(&Value::Int(7), 1);
        assert_eq!(s.result(AggFunc::Sum), Value::Int(12));
    }
}
