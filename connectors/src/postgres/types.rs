//! PostgreSQL types as engine types, and values in PostgreSQL's text form (what COPY
//! and pgoutput send) as engine values.
//!
//! Sessions are opened with `DateStyle=ISO`, `TimeZone=UTC` and `extra_float_digits=3`,
//! so dates, timestamps and floats arrive in one unambiguous, exact form.

use ciuf_engine::datetime::{parse_date, parse_timestamp};
use ciuf_engine::types::MAX_DECIMAL_PRECISION;
use ciuf_engine::{DataType, Decimal, Value};

/// The scale given to `numeric` columns declared without one.
pub const UNCONSTRAINED_NUMERIC_SCALE: u8 = 6;

/// The engine type of a PostgreSQL type (by oid, with its type modifier), or None.
pub fn engine_type(oid: u32, typmod: i32) -> Option<DataType> {
    Some(match oid {
        16 => DataType::Bool,
        21 => DataType::SmallInt,
        23 => DataType::Int,
        20 => DataType::BigInt,
        700 | 701 => DataType::Double,
        1700 => {
            if typmod >= 4 {
                let t = typmod - 4;
                let precision = ((t >> 16) & 0xFFFF) as u8;
                let scale = (t & 0xFFFF) as u8;
                if precision <= MAX_DECIMAL_PRECISION {
                    DataType::Decimal { precision, scale }
                } else {
                    return None;
                }
            } else {
                DataType::Decimal { precision: MAX_DECIMAL_PRECISION, scale: UNCONSTRAINED_NUMERIC_SCALE }
            }
        }
        // text, varchar, bpchar, name, uuid, json, jsonb, bytea (as its hex text), citext-like
        25 | 1043 | 1042 | 19 | 2950 | 114 | 3802 | 17 | 18 => DataType::Text,
        1082 => DataType::Date,
        1114 | 1184 => DataType::Timestamp,
        _ => return None,
    })
}

/// A value in PostgreSQL's text form as a value of `t`, or why not.
pub fn parse_text(text: &str, t: DataType) -> Result<Value, String> {
    let bad = || format!("cannot read {text:?} as {t}");
    Ok(match t {
        DataType::Bool => match text {
            "t" | "true" => Value::Bool(true),
            "f" | "false" => Value::Bool(false),
            _ => return Err(bad()),
        },
        DataType::SmallInt | DataType::Int | DataType::BigInt => Value::Int(text.parse().map_err(|_| bad())?),
        DataType::Double => Value::Float(match text {
            "NaN" => f64::NAN,
            "Infinity" => f64::INFINITY,
            "-Infinity" => f64::NEG_INFINITY,
            _ => text.parse().map_err(|_| bad())?,
        }),
        DataType::Decimal { scale, .. } => {
            let d = Decimal::parse(text).ok_or_else(bad)?;
            Value::from(d.rescale(scale).ok_or_else(bad)?)
        }
        DataType::Text => Value::text(text),
        DataType::Date => Value::Date(parse_date(text).ok_or_else(bad)?),
        DataType::Timestamp => Value::Timestamp(parse_timestamptz(text).ok_or_else(bad)?),
        DataType::Null => Value::Null,
        // PostgreSQL's columns each have one type; these are SQLite's.
        DataType::Number | DataType::Any => return Err(format!("no PostgreSQL column has type {t}")),
    })
}

/// A `timestamp` or `timestamptz` (with a `+HH[:MM]` / `-HH[:MM]` offset, as a UTC
/// session writes it) in microseconds since 1970, in UTC.
fn parse_timestamptz(text: &str) -> Option<i64> {
    // The offset follows the time part: find a sign after the date's hyphens.
    let time_start = text.find(' ').or_else(|| text.find('T'))?;
    let (local, offset_us) = match text[time_start..].rfind(['+', '-']) {
        Some(i) => {
            let at = time_start + i;
            let (sign, hm) = (if &text[at..=at] == "-" { -1 } else { 1 }, &text[at + 1..]);
            let mut parts = hm.split(':');
            let h: i64 = parts.next()?.parse().ok()?;
            let m: i64 = parts.next().map_or(Some(0), |m| m.parse().ok())?;
            let s: i64 = parts.next().map_or(Some(0), |s| s.parse().ok())?;
            (&text[..at], sign * ((h * 60 + m) * 60 + s) * 1_000_000)
        }
        None => (text, 0),
    };
    parse_timestamp(local).map(|t| t - offset_us)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_map_by_oid_and_modifier() {
        assert_eq!(engine_type(20, -1), Some(DataType::BigInt));
        assert_eq!(engine_type(1700, ((12 << 16) | 2) + 4), Some(DataType::Decimal { precision: 12, scale: 2 }));
        assert_eq!(engine_type(1700, -1), Some(DataType::Decimal { precision: 35, scale: 6 }));
        assert_eq!(engine_type(2950, -1), Some(DataType::Text));
        assert_eq!(engine_type(600, -1), None); // point
    }

    #[test]
    fn text_values() {
        assert_eq!(parse_text("t", DataType::Bool), Ok(Value::Bool(true)));
        assert_eq!(parse_text("-12", DataType::BigInt), Ok(Value::Int(-12)));
        assert_eq!(parse_text("0.1", DataType::Double), Ok(Value::Float(0.1)));
        assert!(matches!(parse_text("NaN", DataType::Double), Ok(Value::Float(f)) if f.is_nan()));
        let d = DataType::Decimal { precision: 10, scale: 2 };
        assert_eq!(parse_text("12.5", d).unwrap().to_string(), "12.50");
        assert_eq!(parse_text("2024-02-29", DataType::Date).unwrap().to_string(), "DATE '2024-02-29'");
        let ts = parse_text("2024-01-01 12:00:00.5+02", DataType::Timestamp).unwrap();
        assert_eq!(ts, parse_text("2024-01-01 10:00:00.5", DataType::Timestamp).unwrap());
        let ts = parse_text("2024-01-01 12:00:00-03:30", DataType::Timestamp).unwrap();
        assert_eq!(ts, parse_text("2024-01-01 15:30:00", DataType::Timestamp).unwrap());
        assert!(parse_text("x", DataType::Int).is_err());
    }
}
