//! Shared test helpers: a seeded generator, and comparison of engine rows with SQLite
//! rows as bags (or ordered lists) of normalized values.

#![allow(dead_code)]

pub mod crash;
pub mod pg;

use ciuf::{Row, Value};
use rusqlite::types::ValueRef;

/// SplitMix64: small, fast, and the same sequence on every platform and version.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// A value as both sides can be compared: numbers as numbers, booleans as 0/1,
/// decimals as doubles, dates and timestamps as their text.
#[derive(Debug, Clone, PartialEq)]
pub enum Norm {
    Null,
    Int(i64),
    Float(f64),
    Text(String),
}

impl Norm {
    pub fn from_engine(v: &Value) -> Norm {
        match v {
            Value::Null => Norm::Null,
            Value::Bool(b) => Norm::Int(*b as i64),
            Value::Int(i) => Norm::Int(*i),
            Value::Float(f) => Norm::Float(*f),
            Value::Decimal(d) => Norm::Float(d.to_f64()),
            other => Norm::Text(other.to_text().expect("not null")),
        }
    }

    pub fn from_sqlite(v: rusqlite::types::ValueRef<'_>) -> Norm {
        use rusqlite::types::ValueRef;
        match v {
            ValueRef::Null => Norm::Null,
            ValueRef::Integer(i) => Norm::Int(i),
            ValueRef::Real(f) => Norm::Float(f),
            ValueRef::Text(t) => Norm::Text(String::from_utf8_lossy(t).into_owned()),
            ValueRef::Blob(b) => Norm::Text(format!("{b:?}")),
        }
    }

    fn as_f64(&self) -> Option<f64> {
        match self {
            Norm::Int(i) => Some(*i as f64),
            Norm::Float(f) => Some(*f),
            _ => None,
        }
    }

    /// Equal, with numbers compared by value to a relative tolerance (sums of
    /// doubles differ in the last bits with the order of addition).
    pub fn close(&self, other: &Norm) -> bool {
        match (self.as_f64(), other.as_f64()) {
            (Some(a), Some(b)) => a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0),
            _ => self == other,
        }
    }

    /// A sort key in which nearly equal numbers sort alike.
    fn sort_key(&self) -> (u8, String) {
        match self {
            Norm::Null => (0, String::new()),
            Norm::Int(_) | Norm::Float(_) => {
                let f = self.as_f64().expect("number");
                (1, format!("{:+024.6e}", (f * 1e6).round() / 1e6))
            }
            Norm::Text(s) => (2, s.clone()),
        }
    }
}

pub fn norm_rows_engine(rows: &[Row]) -> Vec<Vec<Norm>> {
    rows.iter().map(|r| r.iter().map(|v| Norm::from_engine(&v)).collect()).collect()
}

/// Runs `sql` on SQLite and normalizes the rows.
pub fn sqlite_rows(conn: &rusqlite::Connection, sql: &str) -> Vec<Vec<Norm>> {
    let mut stmt = conn.prepare(sql).unwrap_or_else(|e| panic!("SQLite rejects {sql}: {e}"));
    let n = stmt.column_count();
    let mut out = Vec::new();
    let mut rows = stmt.query([]).expect("query runs");
    while let Some(row) = rows.next().expect("row") {
        out.push((0..n).map(|i| Norm::from_sqlite(row.get_ref(i).expect("column"))).collect());
    }
    out
}

fn sort_rows(rows: &mut [Vec<Norm>]) {
    rows.sort_by_cached_key(|r| r.iter().map(Norm::sort_key).collect::<Vec<_>>());
}

/// Compares two results: as bags, or as lists when `ordered`. Returns a description of
/// the first difference.
pub fn compare(mut ours: Vec<Vec<Norm>>, mut theirs: Vec<Vec<Norm>>, ordered: bool) -> Result<(), String> {
    if !ordered {
        sort_rows(&mut ours);
        sort_rows(&mut theirs);
    }
    if ours.len() != theirs.len() {
        return Err(format!(
            "{} rows from ciuf, {} from SQLite\n  ciuf:   {:?}\n  sqlite: {:?}",
            ours.len(),
            theirs.len(),
            preview(&ours),
            preview(&theirs)
        ));
    }
    for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
        if a.len() != b.len() || a.iter().zip(b).any(|(x, y)| !x.close(y)) {
            return Err(format!(
                "row {i} differs\n  ciuf:   {a:?}\n  sqlite: {b:?}\n  all ciuf:   {:?}\n  all sqlite: {:?}",
                preview(&ours),
                preview(&theirs)
            ));
        }
    }
    Ok(())
}

fn preview(rows: &[Vec<Norm>]) -> &[Vec<Norm>] {
    &rows[..rows.len().min(12)]
}

/// A value as a SQLite parameter.
pub fn to_sqlite(v: &Value) -> rusqlite::types::Value {
    use rusqlite::types::Value as S;
    match v {
        Value::Null => S::Null,
        Value::Bool(b) => S::Integer(*b as i64),
        Value::Int(i) => S::Integer(*i),
        Value::Float(f) => S::Real(*f),
        Value::Decimal(d) => S::Real(d.to_f64()),
        other => S::Text(other.to_text().expect("not null")),
    }
}

/// A value as both sides give it, its class kept: stricter than [`Norm`], for SQLite's
/// per-value typing.
#[derive(Debug, Clone, PartialEq)]
pub enum Typed {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
}

impl Typed {
    pub fn of_engine(v: &Value) -> Typed {
        match v {
            Value::Null => Typed::Null,
            Value::Int(i) => Typed::Int(*i),
            Value::Bool(b) => Typed::Int(*b as i64),
            Value::Float(f) => Typed::Real(*f),
            other => Typed::Text(other.to_text().expect("not null")),
        }
    }

    pub fn of_sqlite(v: ValueRef<'_>) -> Typed {
        match v {
            ValueRef::Null => Typed::Null,
            ValueRef::Integer(i) => Typed::Int(i),
            ValueRef::Real(f) => Typed::Real(f),
            ValueRef::Text(t) => Typed::Text(String::from_utf8_lossy(t).into_owned()),
            ValueRef::Blob(_) => panic!("no blobs here"),
        }
    }

    pub fn number(&self) -> Option<f64> {
        match self {
            Typed::Int(i) => Some(*i as f64),
            Typed::Real(f) => Some(*f),
            _ => None,
        }
    }

    /// Equal with its class; reals to a relative 1e-9, as tests/differential.rs has it
    /// (sums of reals differ in their last bits with the order of addition, and a sum
    /// kept up under deletions carries the rounding of values that passed through it).
    /// Where `either_class`, an integer and a real of one value are equal too.
    pub fn matches(&self, other: &Typed, either_class: bool) -> bool {
        match (self, other) {
            (Typed::Real(a), Typed::Real(b)) => close(*a, *b),
            (Typed::Int(a), Typed::Real(b)) | (Typed::Real(b), Typed::Int(a)) if either_class => *a as f64 == *b,
            _ => self == other,
        }
    }

    /// A sort key for comparing bags: numbers by value, then text.
    pub fn sort_key(&self) -> (u8, String) {
        match self {
            Typed::Null => (0, String::new()),
            // -0.0 sorts as 0.0: they are equal. An integer before a real of one value.
            Typed::Int(_) | Typed::Real(_) => {
                let class = if matches!(self, Typed::Int(_)) { 'i' } else { 'r' };
                (1, format!("{:+024.9e}{class}", self.number().expect("number") + 0.0))
            }
            Typed::Text(s) => (2, s.clone()),
        }
    }
}

/// A value's key in which an integer and a real of one value meet.
pub fn number_key(v: &Typed) -> String {
    match v.number() {
        Some(f) => format!("{:+024.9e}", f + 0.0),
        None => format!("{v:?}"),
    }
}

fn close(a: f64, b: f64) -> bool {
    a == b || (a.is_nan() && b.is_nan()) || (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}
