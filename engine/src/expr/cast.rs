//! CAST between types, and reading numbers out of text.
//!
//! Casts never fail: as in SQLite, text that is not a number casts to the number its
//! leading characters spell (`'12ab'` is 12, `'abc'` is 0), a DOUBLE casts to an integer
//! by truncation toward zero (saturating at the i64 range), and text that is not a date
//! casts to NULL.
//!
//! SQLite's *affinities* live here too: the conversions it applies to one side of a
//! comparison ([`numeric_affinity`], [`text_affinity`]) and to a value stored in a
//! NUMERIC column ([`numeric_column_value`]).

use crate::datetime;
use crate::decimal::Decimal;
use crate::types::DataType;
use crate::value::Value;

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// `CAST(v AS to)`.
pub fn cast(v: &Value, to: DataType) -> Value {
    if v.is_null() {
        return Value::Null;
    }
    match to {
        DataType::Null => Value::Null,
        DataType::Bool => match v {
            Value::Bool(b) => Value::Bool(*b),
            Value::Text(s) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "t" | "yes" | "y" | "on" => Value::Bool(true),
                "false" | "f" | "no" | "n" | "off" => Value::Bool(false),
                _ => Value::Bool(text_to_f64_prefix(s) != 0.0),
            },
            other => super::truth_value(other.truth()),
        },
        DataType::SmallInt | DataType::Int | DataType::BigInt => Value::Int(match v {
            Value::Bool(b) => *b as i64,
            Value::Int(i) => *i,
            Value::Float(f) => f64_to_i64(*f),
            Value::Decimal(d) => d.trunc_i64().unwrap_or(if d.mantissa() < 0 { i64::MIN } else { i64::MAX }),
            Value::Text(s) => text_to_i64_prefix(s),
            Value::Date(d) => *d as i64,
            Value::Timestamp(t) => *t,
            Value::Null => unreachable!(),
        }),
        DataType::Double => Value::Float(match v {
            Value::Bool(b) => *b as i64 as f64,
            Value::Text(s) => text_to_f64_prefix(s),
            Value::Date(d) => *d as f64,
            Value::Timestamp(t) => *t as f64,
            other => other.as_f64().expect("number"),
        }),
        DataType::Decimal { scale, .. } => {
            let d = match v {
                Value::Bool(b) => Some(Decimal::from_i64(*b as i64)),
                Value::Int(i) => Some(Decimal::from_i64(*i)),
                Value::Float(f) => Decimal::from_f64(*f, scale),
                Value::Decimal(d) => Some(**d),
                Value::Text(s) => Decimal::parse(number_prefix(s)).or(Some(Decimal::from_i64(0))),
                Value::Date(_) | Value::Timestamp(_) => None,
                Value::Null => unreachable!(),
            };
            d.and_then(|d| d.rescale(scale)).map_or(Value::Null, Value::from)
        }
        DataType::Text => Value::text(v.to_text().expect("not null")),
        DataType::Date => match v {
            Value::Date(d) => Value::Date(*d),
            Value::Timestamp(t) => Value::Date(t.div_euclid(MICROS_PER_DAY) as i32),
            Value::Text(s) => datetime::parse_date(s)
                .or_else(|| datetime::parse_timestamp(s).map(|t| t.div_euclid(MICROS_PER_DAY) as i32))
                .map_or(Value::Null, Value::Date),
            _ => Value::Null,
        },
        DataType::Timestamp => match v {
            Value::Timestamp(t) => Value::Timestamp(*t),
            Value::Date(d) => Value::Timestamp(*d as i64 * MICROS_PER_DAY),
            Value::Text(s) => datetime::parse_timestamp(s).map_or(Value::Null, Value::Timestamp),
            _ => Value::Null,
        },
        // SQLite's CAST(… AS NUMERIC): numbers keep their class; text becomes the number
        // its leading characters spell, an integer where that number is one.
        DataType::Number => match v {
            Value::Int(_) | Value::Float(_) => v.clone(),
            Value::Bool(b) => Value::Int(*b as i64),
            Value::Decimal(d) => Value::Float(d.to_f64()),
            // An integer too large for 64 bits stays a real; a real that is a whole
            // number ('3.0', '1e2') becomes the integer.
            Value::Text(s) => match text_to_number(s) {
                Value::Float(f) if !number_prefix(s).contains(['.', 'e', 'E']) => Value::Float(f),
                n => integral_as_int(n),
            },
            Value::Date(d) => Value::Int(*d as i64),
            Value::Timestamp(t) => Value::Int(*t),
            Value::Null => unreachable!(),
        },
        DataType::Any => v.clone(),
    }
}

/// A double that is a whole number within the i64 range, as that integer; anything
/// else unchanged (SQLite's lossless REAL to INTEGER conversion).
fn integral_as_int(v: Value) -> Value {
    match v {
        Value::Float(f) if f.fract() == 0.0 && (-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&f) => {
            Value::Int(f as i64)
        }
        other => other,
    }
}

/// The number `s` is, if the whole of it (spaces aside) is a well-formed integer or
/// real literal: an integer where it is one that fits, else a double. Hexadecimal is
/// not a number here, as in SQLite's affinities.
pub fn well_formed_number(s: &str) -> Option<Value> {
    let t = s.trim_matches(|c: char| c.is_ascii_whitespace());
    let p = number_prefix(t);
    if p.is_empty() || p.len() != t.len() {
        return None;
    }
    if !p.contains(['.', 'e', 'E'])
        && let Ok(i) = p.parse::<i64>()
    {
        return Some(Value::Int(i));
    }
    let f: f64 = p.parse().ok()?;
    Some(Value::Float(f))
}

/// SQLite's NUMERIC affinity applied to one side of a comparison: text that is a
/// well-formed number becomes that number; every other value is unchanged.
pub fn numeric_affinity(v: &Value) -> Value {
    match v {
        Value::Text(s) => well_formed_number(s).unwrap_or_else(|| v.clone()),
        other => other.clone(),
    }
}

/// SQLite's TEXT affinity applied to one side of a comparison: a number becomes its
/// text; every other value is unchanged.
pub fn text_affinity(v: &Value) -> Value {
    match v {
        Value::Int(_) | Value::Float(_) | Value::Decimal(_) | Value::Bool(_) => {
            Value::text(v.to_text().expect("not null"))
        }
        other => other.clone(),
    }
}

/// A value as a NUMERIC column stores it (SQLite's column affinity): a number, with a
/// double that is exactly an integer stored as that integer; text that is a
/// well-formed number as that number. `None` for text that is not a number (SQLite
/// would store the text; ciuf's NUMERIC columns hold numbers only).
pub fn numeric_column_value(v: &Value) -> Option<Value> {
    Some(match v {
        Value::Null => Value::Null,
        Value::Int(_) => v.clone(),
        Value::Bool(b) => Value::Int(*b as i64),
        Value::Float(_) => integral_as_int(v.clone()),
        Value::Decimal(d) => integral_as_int(Value::Float(d.to_f64())),
        Value::Text(s) => integral_as_int(well_formed_number(s)?),
        Value::Date(_) | Value::Timestamp(_) => return None,
    })
}

/// Truncation toward zero, saturating; NaN is 0.
fn f64_to_i64(f: f64) -> i64 {
    // `as` saturates and maps NaN to 0.
    f as i64
}

/// The longest prefix of `s` (after leading spaces) that reads as a number:
/// `[+-]digits[.digits][e[+-]digits]`.
fn number_prefix(s: &str) -> &str {
    let t = s.trim_start();
    let b = t.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        i += 1;
    }
    let digits_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let mut had_digits = i > digits_start;
    if i < b.len() && b[i] == b'.' {
        let mut j = i + 1;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        if j > i + 1 || had_digits {
            had_digits |= j > i + 1;
            i = j;
        }
    }
    if !had_digits {
        return "";
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        let mut j = i + 1;
        if j < b.len() && (b[j] == b'+' || b[j] == b'-') {
            j += 1;
        }
        let exp_start = j;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        if j > exp_start {
            i = j;
        }
    }
    &t[..i]
}

/// The number `s`'s leading characters spell, as a DOUBLE (0 if none).
pub fn text_to_f64_prefix(s: &str) -> f64 {
    number_prefix(s).parse().unwrap_or(0.0)
}

/// The integer `s`'s leading characters spell (digits only, saturating; 0 if none).
pub fn text_to_i64_prefix(s: &str) -> i64 {
    let t = s.trim_start();
    let b = t.as_bytes();
    let (neg, start) = match b.first() {
        Some(b'-') => (true, 1),
        Some(b'+') => (false, 1),
        _ => (false, 0),
    };
    let mut acc: i128 = 0;
    for &c in &b[start..] {
        if !c.is_ascii_digit() {
            break;
        }
        acc = (acc * 10 + (c - b'0') as i128).min(i64::MAX as i128 + 1);
    }
    let v = if neg { -acc } else { acc };
    v.clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

/// Text read as a number the way SQLite's numeric affinity does: an integer when the
/// leading number is an integer that fits, a DOUBLE otherwise (0 if no number).
pub fn text_to_number(s: &str) -> Value {
    let p = number_prefix(s);
    if p.is_empty() {
        return Value::Int(0);
    }
    if !p.contains(['.', 'e', 'E'])
        && let Ok(i) = p.parse::<i64>()
    {
        return Value::Int(i);
    }
    Value::Float(p.parse().unwrap_or(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_to_numbers_like_sqlite() {
        assert_eq!(text_to_i64_prefix("12ab"), 12);
        assert_eq!(text_to_i64_prefix("abc"), 0);
        assert_eq!(text_to_i64_prefix("  -3.9"), -3);
        assert_eq!(text_to_f64_prefix("1.5e2x"), 150.0);
        assert_eq!(text_to_f64_prefix(".5"), 0.5);
        assert_eq!(text_to_f64_prefix("-"), 0.0);
        assert_eq!(text_to_number("42"), Value::Int(42));
        assert_eq!(text_to_number("4.0"), Value::Float(4.0));
    }

    #[test]
    fn casts() {
        assert_eq!(cast(&Value::Float(-2.7), DataType::BigInt), Value::Int(-2));
        assert_eq!(cast(&Value::Float(1e30), DataType::BigInt), Value::Int(i64::MAX));
        assert_eq!(cast(&Value::Int(3), DataType::Text), Value::text("3"));
        assert_eq!(cast(&Value::Float(3.0), DataType::Text), Value::text("3.0"));
        assert_eq!(cast(&Value::text("2024-02-03"), DataType::Date), Value::Date(19756));
        assert_eq!(cast(&Value::text("x"), DataType::Date), Value::Null);
        assert_eq!(
            cast(&Value::Float(1.005), DataType::Decimal { precision: 10, scale: 2 }),
            Value::from(Decimal::parse("1.01").unwrap())
        );
        assert_eq!(cast(&Value::Null, DataType::BigInt), Value::Null);
    }
}
