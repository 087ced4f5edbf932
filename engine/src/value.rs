//! Scalar values.
//!
//! A [`Value`] is 16 bytes: a tag and at most 8 bytes of payload (text is a shared
//! thin pointer, so cloning a row never copies strings; decimals are boxed).
//!
//! Two orders live here, for two purposes:
//!
//! - `Eq`/`Hash`/`Ord` are *structural and total*: NULL equals NULL, NaN equals NaN,
//!   `-0.0` equals `0.0`. They make values usable as group, join and distinct keys and
//!   in ordered state. Numbers of different variants order by numeric value and then
//!   by variant, so `Ord` agrees with `Eq`. Planning gives every column a single type,
//!   so keys never mix variants in practice.
//! - [`Value::sql_cmp`] is *SQL's comparison*: `None` when either side is NULL, and
//!   numbers compared by value across variants (`1 = 1.0`). Expressions use it.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use triomphe::ThinArc;

use crate::datetime;
use crate::decimal::Decimal;

/// Shared, immutable text behind a thin pointer (8 bytes; the length lives in the
/// allocation), so that a [`Value`] stays 16 bytes.
#[derive(Clone)]
pub struct Str(ThinArc<(), u8>);

impl Str {
    /// The text.
    #[inline]
    pub fn as_str(&self) -> &str {
        // SAFETY: a `Str` is only ever built from a `&str` (see the `From` impls), so
        // its bytes are valid UTF-8.
        unsafe { std::str::from_utf8_unchecked(&self.0.slice) }
    }

    fn ptr_eq(&self, other: &Str) -> bool {
        std::ptr::eq(&self.0.slice, &other.0.slice)
    }
}

impl PartialEq for Str {
    #[inline]
    fn eq(&self, other: &Str) -> bool {
        self.ptr_eq(other) || self.0.slice == other.0.slice
    }
}

impl Eq for Str {}

impl Hash for Str {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl PartialOrd for Str {
    fn partial_cmp(&self, other: &Str) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Str {
    fn cmp(&self, other: &Str) -> Ordering {
        self.0.slice.cmp(&other.0.slice)
    }
}

impl std::borrow::Borrow<str> for Str {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl std::ops::Deref for Str {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl From<&str> for Str {
    fn from(s: &str) -> Self {
        Str(ThinArc::from_header_and_slice((), s.as_bytes()))
    }
}

impl From<String> for Str {
    fn from(s: String) -> Self {
        Str::from(s.as_str())
    }
}

/// Text values of a column with few distinct values (statuses, categories, regions)
/// share one allocation each, so repeated text costs a pointer rather than a copy: a
/// table's rows as they are inserted, a state directory's as they are read back. A
/// column that shows many distinct values stops being interned.
#[derive(Debug, Default, Clone)]
pub struct TextInterner {
    values: hashbrown::HashSet<Str>,
    full: bool,
}

/// Distinct values past which a column stops being interned.
const INTERN_MAX_DISTINCT: usize = 1024;
/// Longer text is never interned.
const INTERN_MAX_LEN: usize = 48;

impl TextInterner {
    /// The shared copy of `s` (`make` gives it when it is new), unless `s` is too long
    /// or the column has too many distinct values.
    fn shared(&mut self, s: &str, make: impl FnOnce() -> Str) -> Option<Str> {
        if s.len() > INTERN_MAX_LEN {
            return None;
        }
        if let Some(shared) = self.values.get(s) {
            return Some(shared.clone());
        }
        if self.values.len() >= INTERN_MAX_DISTINCT {
            self.full = true;
            return None;
        }
        let new = make();
        self.values.insert(new.clone());
        Some(new)
    }

    /// Replaces `v` by the shared copy of its text; `false` once the column has too many
    /// distinct values to be worth interning.
    pub fn intern(&mut self, v: &mut Value) -> bool {
        if let Value::Text(s) = v
            && let Some(shared) = self.shared(s.as_str(), || s.clone())
        {
            *s = shared;
        }
        !self.full
    }

    /// `s` as a text value, shared if it is interned.
    pub fn text(&mut self, s: &str) -> Value {
        self.shared(s, || Str::from(s)).map_or_else(|| Value::text(s), Value::Text)
    }

    /// Takes the texts `other` (a copy of this interner that went on alone) holds and
    /// this one does not, up to the limit.
    pub fn absorb(&mut self, other: TextInterner) {
        for s in other.values {
            if self.values.len() >= INTERN_MAX_DISTINCT {
                self.full = true;
                break;
            }
            self.values.insert(s);
        }
        self.full |= other.full;
    }

    /// Whether the column has shown too many distinct values to be worth interning.
    pub fn is_full(&self) -> bool {
        self.full
    }
}

impl fmt::Debug for Str {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// One SQL value.
#[derive(Clone, Default)]
pub enum Value {
    /// SQL NULL.
    #[default]
    Null,
    /// BOOLEAN.
    Bool(bool),
    /// Any integer type.
    Int(i64),
    /// DOUBLE.
    Float(f64),
    /// DECIMAL (behind a shared pointer, so that a value stays 16 bytes and fits a
    /// row's 8-byte slot).
    Decimal(Arc<Decimal>),
    /// TEXT.
    Text(Str),
    /// DATE: days since 1970-01-01.
    Date(i32),
    /// TIMESTAMP: microseconds since 1970-01-01 00:00:00.
    Timestamp(i64),
}

/// The tag of a value in a row's slot (see `row.rs`); `NULL` is zero, so that zeroed
/// memory reads as NULLs.
pub(crate) mod tag {
    pub const NULL: u8 = 0;
    pub const BOOL: u8 = 1;
    pub const INT: u8 = 2;
    pub const FLOAT: u8 = 3;
    pub const DECIMAL: u8 = 4;
    pub const TEXT: u8 = 5;
    pub const DATE: u8 = 6;
    pub const TIMESTAMP: u8 = 7;

    /// Whether a slot with this tag owns a pointer (a reference count to give back).
    #[inline]
    pub fn owns_pointer(tag: u8) -> bool {
        tag == DECIMAL || tag == TEXT
    }
}

impl Value {
    /// The value as a tag and 8 bytes of payload; the payload of text and decimals is
    /// the pointer, whose reference it now holds (give it back with
    /// [`Value::from_slot`]).
    #[inline]
    pub(crate) fn into_slot(self) -> (u8, u64) {
        match self {
            Value::Null => (tag::NULL, 0),
            Value::Bool(b) => (tag::BOOL, b as u64),
            Value::Int(i) => (tag::INT, i as u64),
            Value::Float(f) => (tag::FLOAT, f.to_bits()),
            Value::Decimal(d) => (tag::DECIMAL, Arc::into_raw(d) as usize as u64),
            Value::Text(s) => (tag::TEXT, ThinArc::into_raw(s.0) as usize as u64),
            Value::Date(d) => (tag::DATE, d as u32 as u64),
            Value::Timestamp(t) => (tag::TIMESTAMP, t as u64),
        }
    }

    /// The value a slot holds, taking over the slot's reference.
    ///
    /// # Safety
    ///
    /// `(tag, bits)` must come from [`Value::into_slot`], and the reference the slot
    /// holds must not be given back twice: either the slot is read this way once, or
    /// the result is never dropped (wrapped in `ManuallyDrop`, as a borrowed view).
    #[inline]
    pub(crate) unsafe fn from_slot(tag: u8, bits: u64) -> Value {
        match tag {
            tag::NULL => Value::Null,
            tag::BOOL => Value::Bool(bits != 0),
            tag::INT => Value::Int(bits as i64),
            tag::FLOAT => Value::Float(f64::from_bits(bits)),
            // SAFETY: the pointer came from `Arc::into_raw` (caller's contract).
            tag::DECIMAL => Value::Decimal(unsafe { Arc::from_raw(bits as usize as *const Decimal) }),
            // SAFETY: the pointer came from `ThinArc::into_raw` (caller's contract).
            tag::TEXT => Value::Text(Str(unsafe { ThinArc::from_raw(bits as usize as *const std::ffi::c_void) })),
            tag::DATE => Value::Date(bits as u32 as i32),
            _ => Value::Timestamp(bits as i64),
        }
    }

    /// A text value.
    pub fn text(s: impl Into<Str>) -> Value {
        Value::Text(s.into())
    }

    /// Whether this is NULL.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The integer, if this is one.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The number as f64, if this is a number.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            Value::Decimal(d) => Some(d.to_f64()),
            _ => None,
        }
    }

    /// The value as a key in which equal numbers of two classes meet: a double or a
    /// decimal that is a whole number within the i64 range becomes that integer, another
    /// decimal its double (3.0 and 3 are one key, as they are one value to SQL's `=`).
    /// Every other value is unchanged. Grouping, DISTINCT, set operations and join keys
    /// over [`crate::DataType::Number`] and [`crate::DataType::Any`] hash this.
    pub fn number_key(&self) -> Value {
        let f = match self {
            Value::Float(f) => *f,
            Value::Decimal(d) => match d.trunc_i64() {
                Some(i) if Decimal::from_i64(i) == **d => return Value::Int(i),
                _ => d.to_f64(),
            },
            other => return other.clone(),
        };
        if f.fract() == 0.0 && (-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&f) {
            Value::Int(f as i64)
        } else {
            Value::Float(canonical(f))
        }
    }

    /// The text, if this is text.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Text(s) => Some(s.as_str()),
            _ => None,
        }
    }

    /// A short name of the value's kind, for error messages.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Value::Null => "NULL",
            Value::Bool(_) => "BOOLEAN",
            Value::Int(_) => "integer",
            Value::Float(_) => "DOUBLE",
            Value::Decimal(_) => "DECIMAL",
            Value::Text(_) => "TEXT",
            Value::Date(_) => "DATE",
            Value::Timestamp(_) => "TIMESTAMP",
        }
    }

    /// Rank of the value's class in the total order: NULL < BOOLEAN < numbers < TEXT <
    /// DATE < TIMESTAMP.
    fn class(&self) -> u8 {
        match self {
            Value::Null => 0,
            Value::Bool(_) => 1,
            Value::Int(_) | Value::Float(_) | Value::Decimal(_) => 2,
            Value::Text(_) => 3,
            Value::Date(_) => 4,
            Value::Timestamp(_) => 5,
        }
    }

    /// Variant rank among numbers, to break ties between equal numbers of different
    /// variants.
    fn numeric_variant(&self) -> u8 {
        match self {
            Value::Int(_) => 0,
            Value::Decimal(_) => 1,
            _ => 2,
        }
    }

    /// SQL comparison: `None` if either side is NULL. Numbers compare by value across
    /// integer, decimal and double; a BOOLEAN compares with numbers as 0 or 1; values of
    /// unrelated kinds order by kind (numbers before text), as SQLite does.
    pub fn sql_cmp(&self, other: &Value) -> Option<Ordering> {
        match (self, other) {
            (Value::Null, _) | (_, Value::Null) => None,
            (Value::Bool(a), Value::Bool(b)) => Some(a.cmp(b)),
            (Value::Bool(a), b) if b.class() == 2 => Value::Int(*a as i64).sql_cmp(b),
            (a, Value::Bool(b)) if a.class() == 2 => a.sql_cmp(&Value::Int(*b as i64)),
            _ => Some(self.cmp_same_class(other).unwrap_or_else(|| self.class().cmp(&other.class()))),
        }
    }

    /// ORDER BY's comparison of two non-NULL values: by value, numbers of any class
    /// together (3 and 3.0 tie, and the next sort key decides), then by class (numbers
    /// before text, as in SQLite). [`Ord`] refines it by breaking those ties.
    pub fn sort_cmp(&self, other: &Value) -> Ordering {
        self.cmp_same_class(other).unwrap_or_else(|| self.class().cmp(&other.class()))
    }

    /// Compares two values of the same class by value; `None` if the classes differ.
    fn cmp_same_class(&self, other: &Value) -> Option<Ordering> {
        Some(match (self, other) {
            (Value::Null, Value::Null) => Ordering::Equal,
            (Value::Bool(a), Value::Bool(b)) => a.cmp(b),
            (Value::Int(a), Value::Int(b)) => a.cmp(b),
            (Value::Float(a), Value::Float(b)) => canonical(*a).total_cmp(&canonical(*b)),
            (Value::Decimal(a), Value::Decimal(b)) => a.cmp(b),
            (Value::Int(a), Value::Float(b)) => cmp_i64_f64(*a, *b),
            (Value::Float(a), Value::Int(b)) => cmp_i64_f64(*b, *a).reverse(),
            (Value::Int(a), Value::Decimal(b)) => Decimal::from_i64(*a).cmp(b),
            (Value::Decimal(a), Value::Int(b)) => (**a).cmp(&Decimal::from_i64(*b)),
            (Value::Float(a), Value::Decimal(b)) => canonical(*a).total_cmp(&b.to_f64()),
            (Value::Decimal(a), Value::Float(b)) => a.to_f64().total_cmp(&canonical(*b)),
            (Value::Text(a), Value::Text(b)) => a.as_bytes().cmp(b.as_bytes()),
            (Value::Date(a), Value::Date(b)) => a.cmp(b),
            (Value::Timestamp(a), Value::Timestamp(b)) => a.cmp(b),
            _ => return None,
        })
    }

    /// SQL truth value: NULL is unknown; numbers are true when non-zero (SQLite); text
    /// is read as a number.
    pub fn truth(&self) -> Option<bool> {
        match self {
            Value::Null => None,
            Value::Bool(b) => Some(*b),
            Value::Int(i) => Some(*i != 0),
            Value::Float(f) => Some(*f != 0.0),
            Value::Decimal(d) => Some(!d.is_zero()),
            Value::Text(s) => Some(crate::expr::cast::text_to_f64_prefix(s) != 0.0),
            Value::Date(_) | Value::Timestamp(_) => Some(true),
        }
    }

    /// The value as SQL text would show it in a result: numbers plainly, text unquoted.
    pub fn to_text(&self) -> Option<String> {
        Some(match self {
            Value::Null => return None,
            Value::Bool(b) => (if *b { "1" } else { "0" }).to_string(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => format_float(*f),
            Value::Decimal(d) => d.to_string(),
            Value::Text(s) => s.to_string(),
            Value::Date(d) => datetime::format_date(*d),
            Value::Timestamp(t) => datetime::format_timestamp(*t),
        })
    }
}

/// `-0.0` as `0.0` and every NaN as one NaN, so that equal floats hash equally.
pub(crate) fn canonical(f: f64) -> f64 {
    if f == 0.0 {
        0.0
    } else if f.is_nan() {
        f64::NAN
    } else {
        f
    }
}

/// Exact comparison of an integer with a float.
fn cmp_i64_f64(i: i64, f: f64) -> Ordering {
    if f.is_nan() {
        return Ordering::Greater;
    }
    // i64 -> f64 may round; compare in f64 first, then exactly when they look equal.
    match (i as f64).partial_cmp(&f).expect("not NaN") {
        Ordering::Equal => {
            if f >= 9.223_372_036_854_776e18 {
                Ordering::Less
            } else if f < -9.223_372_036_854_776e18 {
                Ordering::Greater
            } else {
                i.cmp(&(f as i64)).then_with(|| {
                    let frac = f - (f as i64) as f64;
                    0.0f64.partial_cmp(&frac).expect("finite")
                })
            }
        }
        o => o,
    }
}

/// A double as SQLite renders it as text (`%!.15g`): 15 significant digits, a `.0`
/// on whole numbers, an exponent outside 1e-4..1e15.
pub fn format_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Inf".into() } else { "-Inf".into() };
    }
    if f == 0.0 {
        return "0.0".into();
    }
    let sci = format!("{f:.14e}");
    let (mant, exp) = sci.split_once('e').expect("exponent");
    let exp: i32 = exp.parse().expect("integer exponent");
    let neg = mant.starts_with('-');
    let digits: String = mant.chars().filter(char::is_ascii_digit).collect();
    let digits = digits.trim_end_matches('0');
    let digits = if digits.is_empty() { "0" } else { digits };
    let sign = if neg { "-" } else { "" };
    if !(-4..15).contains(&exp) {
        let (first, rest) = digits.split_at(1);
        let rest = if rest.is_empty() { "0" } else { rest };
        let esign = if exp < 0 { '-' } else { '+' };
        format!("{sign}{first}.{rest}e{esign}{:02}", exp.abs())
    } else if exp >= 0 {
        let int_len = exp as usize + 1;
        if digits.len() <= int_len {
            format!("{sign}{}{}.0", digits, "0".repeat(int_len - digits.len()))
        } else {
            format!("{sign}{}.{}", &digits[..int_len], &digits[int_len..])
        }
    } else {
        format!("{sign}0.{}{}", "0".repeat((-exp - 1) as usize), digits)
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Null, Value::Null) => true,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Int(a), Value::Int(b)) => a == b,
            (Value::Float(a), Value::Float(b)) => canonical(*a).to_bits() == canonical(*b).to_bits(),
            (Value::Decimal(a), Value::Decimal(b)) => a == b,
            (Value::Text(a), Value::Text(b)) => a == b,
            (Value::Date(a), Value::Date(b)) => a == b,
            (Value::Timestamp(a), Value::Timestamp(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for Value {}

impl Hash for Value {
    fn hash<H: Hasher>(&self, state: &mut H) {
        match self {
            Value::Null => state.write_u8(0),
            Value::Bool(b) => state.write_u8(2 + *b as u8),
            Value::Int(i) => state.write_i64(*i),
            Value::Float(f) => state.write_u64(canonical(*f).to_bits()),
            Value::Decimal(d) => d.hash(state),
            Value::Text(s) => s.hash(state),
            Value::Date(d) => state.write_i32(*d),
            Value::Timestamp(t) => state.write_i64(*t),
        }
    }
}

impl Ord for Value {
    fn cmp(&self, other: &Value) -> Ordering {
        match self.cmp_same_class(other) {
            Some(Ordering::Equal) if self.class() == 2 => self.numeric_variant().cmp(&other.numeric_variant()),
            Some(o) => o,
            None => self.class().cmp(&other.class()),
        }
    }
}

impl PartialOrd for Value {
    fn partial_cmp(&self, other: &Value) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// SQL literal form: `NULL`, `TRUE`, `42`, `1.5`, `'text'`, `DATE '2024-01-31'`.
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("NULL"),
            Value::Bool(b) => f.write_str(if *b { "TRUE" } else { "FALSE" }),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x:?}"),
            Value::Decimal(d) => write!(f, "{d}"),
            Value::Text(s) => write!(f, "'{}'", s.replace('\'', "''")),
            Value::Date(d) => write!(f, "DATE '{}'", datetime::format_date(*d)),
            Value::Timestamp(t) => write!(f, "TIMESTAMP '{}'", datetime::format_timestamp(*t)),
        }
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}
impl From<i32> for Value {
    fn from(v: i32) -> Self {
        Value::Int(v as i64)
    }
}
impl From<i16> for Value {
    fn from(v: i16) -> Self {
        Value::Int(v as i64)
    }
}
impl From<u32> for Value {
    fn from(v: u32) -> Self {
        Value::Int(v as i64)
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}
impl From<f32> for Value {
    fn from(v: f32) -> Self {
        Value::Float(v as f64)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.into())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v.into())
    }
}
impl From<Str> for Value {
    fn from(v: Str) -> Self {
        Value::Text(v)
    }
}
impl From<Decimal> for Value {
    fn from(v: Decimal) -> Self {
        Value::Decimal(Arc::new(v))
    }
}
impl From<&Value> for Value {
    fn from(v: &Value) -> Self {
        v.clone()
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_is_16_bytes() {
        assert_eq!(std::mem::size_of::<Value>(), 16);
    }

    #[test]
    fn sql_cmp_follows_sql() {
        assert_eq!(Value::Int(1).sql_cmp(&Value::Float(1.0)), Some(Ordering::Equal));
        assert_eq!(Value::Int(2).sql_cmp(&Value::Float(1.5)), Some(Ordering::Greater));
        assert_eq!(Value::Null.sql_cmp(&Value::Null), None);
        assert_eq!(Value::Int(5).sql_cmp(&Value::text("a")), Some(Ordering::Less));
        assert_eq!(Value::Int(i64::MAX).sql_cmp(&Value::Float(9.223_372_036_854_776e18)), Some(Ordering::Less));
        assert_eq!(Value::Int(3).sql_cmp(&Value::Float(3.5)), Some(Ordering::Less));
        assert_eq!(Value::Int(-3).sql_cmp(&Value::Float(-3.5)), Some(Ordering::Greater));
    }

    #[test]
    fn total_order_agrees_with_eq() {
        let vals = [
            Value::Null,
            Value::Bool(false),
            Value::Int(1),
            Value::Float(1.0),
            Value::Float(-0.0),
            Value::Float(0.0),
            Value::text("a"),
            Value::Date(3),
        ];
        for a in &vals {
            for b in &vals {
                assert_eq!(a == b, a.cmp(b) == Ordering::Equal, "{a:?} vs {b:?}");
            }
        }
        assert!(Value::Null < Value::Int(i64::MIN));
        assert!(Value::Int(1) < Value::Float(1.5));
    }

    #[test]
    fn floats_render_as_sqlite_does() {
        assert_eq!(format_float(1.0), "1.0");
        assert_eq!(format_float(0.1), "0.1");
        assert_eq!(format_float(-12.5), "-12.5");
        assert_eq!(format_float(1e20), "1.0e+20");
        assert_eq!(format_float(123456789.125), "123456789.125");
        assert_eq!(format_float(1.0 / 3.0), "0.333333333333333");
        assert_eq!(format_float(0.00001), "1.0e-05");
    }
}
