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
//!   when a value appears or disappears;
//! - over values that decide their own class (SQLite's typing: [`DataType::Number`],
//!   [`DataType::Any`], text), SUM is an integer while every value is one and a double
//!   once any is not, as SQLite's is, and DISTINCT treats 3 and 3.0 as one value,
//!   represented by the least of the copies present (the integer).

use std::collections::BTreeMap;

use hashbrown::HashMap;

use crate::decimal::Decimal;
use crate::expr::cast::{text_to_f64_prefix, well_formed_number};
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
    /// SUM/AVG/TOTAL of values that decide their own class (boxed: rare).
    SumMixed(Box<MixedSum>),
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
    /// Whether equal numbers of two classes (3 and 3.0) are one value: the inner
    /// accumulator then sees one representative per number, the least copy present.
    by_number: bool,
}

impl Distinct {
    /// The copy of the number whose key is `key` that stands for it: the least present
    /// (an integer before a double), if any is.
    fn representative(&self, key: &Value) -> Option<Value> {
        let int_as_float = match key {
            Value::Int(i) => Some(Value::Float(*i as f64)).filter(|f| f.sql_cmp(key).is_some_and(|o| o.is_eq())),
            _ => None,
        };
        std::iter::once(key.clone()).chain(int_as_float).filter(|v| self.counts.get(v).is_some_and(|&c| c > 0)).min()
    }

    fn update(&mut self, value: &Value, weight: Weight) {
        let key = self.by_number.then(|| value.number_key());
        let before = key.as_ref().and_then(|k| self.representative(k));
        let c = self.counts.entry_ref(value).or_insert(0);
        let was = *c;
        *c += weight;
        let now = *c;
        if now == 0 {
            self.counts.remove(value);
        }
        match key {
            Some(k) => {
                let after = self.representative(&k);
                if before != after {
                    if let Some(b) = before {
                        self.inner.update(&b, -1);
                    }
                    if let Some(a) = after {
                        self.inner.update(&a, 1);
                    }
                }
            }
            None => match (was > 0, now > 0) {
                (false, true) => self.inner.update(value, 1),
                (true, false) => self.inner.update(value, -1),
                _ => {}
            },
        }
    }
}

/// SUM/AVG/TOTAL over values that decide their own class, as SQLite sums them: the
/// integers exactly, and the rest (doubles; text, read as a number) compensated beside
/// them; the sum is an integer while no value of the rest is present.
#[derive(Debug, Clone, Default)]
pub(crate) struct MixedSum {
    ints: Wide,
    floats: f64,
    compensation: f64,
    n: Weight,
    /// How many values of the rest are present.
    approx: Weight,
    /// How many of them are +∞ and −∞: kept out of the compensated sum, which they
    /// would leave NaN once removed.
    infinities: [Weight; 2],
}

impl MixedSum {
    fn update(&mut self, value: &Value, weight: Weight) {
        let int = |s: &mut MixedSum, i: i64| s.ints.add(i as i128 * weight as i128);
        match value {
            Value::Int(i) => int(self, *i),
            Value::Bool(b) => int(self, *b as i64),
            Value::Date(d) => int(self, *d as i64),
            Value::Timestamp(t) => int(self, *t),
            // SQLite: text that is an integer literal adds as one; any other text as
            // the double its leading characters spell.
            Value::Text(s) => match well_formed_number(s) {
                Some(Value::Int(i)) => int(self, i),
                _ => self.add_float(text_to_f64_prefix(s), weight),
            },
            other => self.add_float(other.as_f64().unwrap_or(0.0), weight),
        }
        self.n += weight;
    }

    fn add_float(&mut self, f: f64, weight: Weight) {
        if f.is_infinite() {
            self.infinities[usize::from(f < 0.0)] += weight;
        } else {
            neumaier(&mut self.floats, &mut self.compensation, f * weight as f64);
        }
        self.approx += weight;
    }

    /// The sum as a double: ±∞ if infinities of one sign are present, NaN if of both.
    fn total(&self) -> f64 {
        match self.infinities {
            [p, m] if p > 0 && m > 0 => f64::NAN,
            [p, _] if p > 0 => f64::INFINITY,
            [_, m] if m > 0 => f64::NEG_INFINITY,
            _ => self.ints.get() as f64 + (self.floats + self.compensation),
        }
    }
}

/// A sum of integers as SUM gives it: an error beyond 64 bits (SQLite's "integer
/// overflow"; PostgreSQL's sums that can overflow are of 16- and 32-bit integers, whose
/// bigint sum overflows likewise), raised for the view (see [`crate::expr::fault`]).
fn integer_sum(sum: i128) -> Value {
    match i64::try_from(sum) {
        Ok(i) => Value::Int(i),
        Err(_) => {
            crate::expr::fault::raise(format!("integer overflow in sum(): {sum} does not fit in 64 bits"));
            Value::Null
        }
    }
}

/// Neumaier's step: adds `v` to `sum`, keeping the low-order bits lost in `compensation`.
fn neumaier(sum: &mut f64, compensation: &mut f64, v: f64) {
    let t = *sum + v;
    *compensation += if sum.abs() >= v.abs() { (*sum - t) + v } else { (v - t) + *sum };
    *sum = t;
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
            AggFunc::Sum | AggFunc::Avg | AggFunc::Total => match call.arg_type {
                t if t.is_per_value() || t == DataType::Text => Accumulator::SumMixed(Box::default()),
                _ if call.func == AggFunc::Total => Accumulator::SumFloat { sum: 0.0, compensation: 0.0, n: 0 },
                t if t.is_integer() || t == DataType::Bool => Accumulator::SumInt { sum: Wide::default(), n: 0 },
                DataType::Decimal { scale, .. } => Accumulator::SumDecimal { sum: Wide::default(), scale, n: 0 },
                _ => Accumulator::SumFloat { sum: 0.0, compensation: 0.0, n: 0 },
            },
        };
        if call.distinct && !matches!(call.func, AggFunc::Min | AggFunc::Max) {
            Accumulator::Distinct(Box::new(Distinct {
                counts: HashMap::new(),
                inner: base,
                by_number: call.arg_type.is_per_value(),
            }))
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
            Accumulator::SumMixed(m) if m.approx == 0 => {
                m.floats = 0.0;
                m.compensation = 0.0;
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
                let v = match value {
                    Value::Text(s) => text_to_f64_prefix(s),
                    Value::Bool(b) => *b as i64 as f64,
                    other => other.as_f64().unwrap_or(0.0),
                };
                if v.is_infinite() {
                    // Rare: the sum that can take an infinity away again.
                    let mixed =
                        MixedSum { floats: *sum, compensation: *compensation, n: *n, approx: *n, ..Default::default() };
                    *self = Accumulator::SumMixed(Box::new(mixed));
                    return self.update(value, weight);
                }
                neumaier(sum, compensation, v * weight as f64);
                *n += weight;
            }
            Accumulator::SumMixed(m) => m.update(value, weight),
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
            Accumulator::Distinct(d) => d.update(value, weight),
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
                _ => integer_sum(sum.get()),
            },
            Accumulator::SumFloat { sum, compensation, n } => match func {
                AggFunc::Total => Value::Float(sum + compensation),
                _ if *n == 0 => Value::Null,
                AggFunc::Avg => Value::Float((sum + compensation) / *n as f64),
                _ => Value::Float(sum + compensation),
            },
            Accumulator::SumMixed(m) => {
                let float = |f: f64| if f.is_nan() { Value::Null } else { Value::Float(f) };
                match func {
                    AggFunc::Total => float(m.total()),
                    _ if m.n == 0 => Value::Null,
                    AggFunc::Avg => float(m.total() / m.n as f64),
                    _ if m.approx > 0 => float(m.total()),
                    _ => integer_sum(m.ints.get()),
                }
            }
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

    /// Appends the accumulator's state to `out` as values (a tag, then its fields; see
    /// [`Accumulator::load`]) for a checkpoint; `false`, with `out` as it was, for the
    /// kinds that are not saved (DISTINCT, GROUP_CONCAT: their groups are computed
    /// again from the rows instead).
    pub fn save(&self, out: &mut Vec<Value>) -> bool {
        let int = |i: i64| Value::Int(i);
        let wide = |w: &Wide| [Value::Int(w.0[0] as i64), Value::Int(w.0[1] as i64)];
        match self {
            Accumulator::Count(n) => out.extend([int(0), int(*n)]),
            Accumulator::SumInt { sum, n } => {
                out.push(int(1));
                out.extend(wide(sum));
                out.push(int(*n));
            }
            Accumulator::SumFloat { sum, compensation, n } => {
                out.extend([int(2), Value::Float(*sum), Value::Float(*compensation), int(*n)]);
            }
            Accumulator::SumDecimal { sum, scale, n } => {
                out.push(int(3));
                out.extend(wide(sum));
                out.extend([int(i64::from(*scale)), int(*n)]);
            }
            Accumulator::SumMixed(m) => {
                out.push(int(4));
                out.extend(wide(&m.ints));
                out.extend([Value::Float(m.floats), Value::Float(m.compensation), int(m.n), int(m.approx)]);
                out.extend([int(m.infinities[0]), int(m.infinities[1])]);
            }
            Accumulator::Extreme(values) => {
                out.extend([int(5), int(values.len() as i64)]);
                for (v, w) in values {
                    out.extend([v.clone(), int(*w)]);
                }
            }
            Accumulator::Distinct(_) | Accumulator::Concat(_) => return false,
        }
        true
    }

    /// An accumulator as [`Accumulator::save`] wrote it, taking its values from
    /// `values`; `None` if they do not spell one.
    pub fn load(values: &mut impl Iterator<Item = Value>) -> Option<Accumulator> {
        let int = |values: &mut dyn Iterator<Item = Value>| match values.next()? {
            Value::Int(i) => Some(i),
            _ => None,
        };
        let float = |values: &mut dyn Iterator<Item = Value>| match values.next()? {
            Value::Float(f) => Some(f),
            _ => None,
        };
        let values: &mut dyn Iterator<Item = Value> = values;
        let wide = |values: &mut dyn Iterator<Item = Value>| Some(Wide([int(values)? as u64, int(values)? as u64]));
        Some(match int(values)? {
            0 => Accumulator::Count(int(values)?),
            1 => Accumulator::SumInt { sum: wide(values)?, n: int(values)? },
            2 => Accumulator::SumFloat { sum: float(values)?, compensation: float(values)?, n: int(values)? },
            3 => {
                Accumulator::SumDecimal { sum: wide(values)?, scale: u8::try_from(int(values)?).ok()?, n: int(values)? }
            }
            4 => Accumulator::SumMixed(Box::new(MixedSum {
                ints: wide(values)?,
                floats: float(values)?,
                compensation: float(values)?,
                n: int(values)?,
                approx: int(values)?,
                infinities: [int(values)?, int(values)?],
            })),
            5 => {
                let len = usize::try_from(int(values)?).ok()?;
                let mut map = BTreeMap::new();
                for _ in 0..len {
                    let v = values.next()?;
                    let w = int(values)?;
                    if w == 0 || map.insert(v, w).is_some() {
                        return None;
                    }
                }
                Accumulator::Extreme(map)
            }
            _ => return None,
        })
    }

    /// Approximate heap bytes.
    pub fn state_bytes(&self) -> usize {
        match self {
            Accumulator::Extreme(values) => values.len() * 48,
            Accumulator::Concat(c) => 96 + c.separator.len() + c.by_arrival.len() * 88,
            Accumulator::Distinct(d) => 8 + d.counts.capacity() * 33 + d.inner.state_bytes(),
            Accumulator::SumMixed(_) => std::mem::size_of::<MixedSum>(),
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
    fn sums_over_values_of_either_class_follow_sqlite() {
        let mut s = Accumulator::new(&call(AggFunc::Sum, DataType::Number, false));
        s.update(&Value::Int(3), 2);
        assert_eq!(s.result(AggFunc::Sum), Value::Int(6));
        s.update(&Value::Float(0.5), 1);
        assert_eq!(s.result(AggFunc::Sum), Value::Float(6.5));
        assert_eq!(s.result(AggFunc::Avg), Value::Float(6.5 / 3.0));
        s.update(&Value::Float(0.5), -1);
        s.settle();
        assert_eq!(s.result(AggFunc::Sum), Value::Int(6), "an integer again once no double is left");
        let mut t = Accumulator::new(&call(AggFunc::Sum, DataType::Text, false));
        t.update(&Value::text(" 3 "), 1);
        assert_eq!(t.result(AggFunc::Sum), Value::Int(3));
        t.update(&Value::text("1e2"), 1);
        t.update(&Value::text("abc"), 1);
        assert_eq!(t.result(AggFunc::Sum), Value::Float(103.0));
        assert_eq!(t.result(AggFunc::Total), Value::Float(103.0));
    }

    #[test]
    fn distinct_over_numbers_of_either_class_counts_3_and_3_0_once() {
        let mut c = Accumulator::new(&call(AggFunc::Count, DataType::Number, true));
        c.update(&Value::Int(3), 1);
        c.update(&Value::Float(3.0), 2);
        c.update(&Value::Float(3.5), 1);
        assert_eq!(c.result(AggFunc::Count), Value::Int(2));
        let mut s = Accumulator::new(&call(AggFunc::Sum, DataType::Number, true));
        s.update(&Value::Float(3.0), 1);
        assert_eq!(s.result(AggFunc::Sum), Value::Float(3.0));
        s.update(&Value::Int(3), 1);
        assert_eq!(s.result(AggFunc::Sum), Value::Int(3), "the integer stands for 3 and 3.0");
        s.update(&Value::Int(3), -1);
        assert_eq!(s.result(AggFunc::Sum), Value::Float(3.0));
        s.update(&Value::Float(3.0), -1);
        assert_eq!(s.result(AggFunc::Sum), Value::Null);
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
