//! Scalar functions.
//!
//! Each [`Func`] has an SQL name, an arity range checked by the front end, and an
//! evaluation that follows SQLite (which PostgreSQL shares for these functions unless
//! noted): NULL in gives NULL out, except for `coalesce`/`ifnull`.

use crate::row::{Columns, Ref};
use crate::value::Value;

use super::{Expr, ops};

/// A scalar function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Func {
    /// `coalesce(a, b, …)` / `ifnull(a, b)`: the first argument that is not NULL.
    Coalesce,
    /// `nullif(a, b)`: NULL if `a = b`, else `a`.
    NullIf,
    /// `abs(x)`.
    Abs,
    /// `lower(s)` (ASCII letters, as SQLite).
    Lower,
    /// `upper(s)` (ASCII letters, as SQLite).
    Upper,
    /// `length(s)`: characters.
    Length,
    /// `round(x [, digits])`: half away from zero, a DOUBLE.
    Round,
    /// `substr(s, start [, len])`, 1-based; a negative start counts from the end.
    Substr,
    /// `trim(s [, chars])`.
    Trim,
    /// `ltrim(s [, chars])`.
    LTrim,
    /// `rtrim(s [, chars])`.
    RTrim,
    /// `replace(s, from, to)`.
    Replace,
    /// `instr(s, needle)`: 1-based position, 0 if absent.
    Instr,
    /// Multi-argument `min(a, b, …)`: NULL if any is NULL (SQLite).
    Least,
    /// Multi-argument `max(a, b, …)`: NULL if any is NULL (SQLite).
    Greatest,
    /// The value as a key in which 3 and 3.0 meet ([`Value::number_key`]); planned
    /// under keys whose values decide their own class, never written in SQL.
    NumberKey,
    /// SQLite's NUMERIC affinity applied to a comparison operand
    /// ([`super::cast::numeric_affinity`]); planned, never written in SQL.
    NumericAffinity,
    /// SQLite's TEXT affinity applied to a comparison operand
    /// ([`super::cast::text_affinity`]); planned, never written in SQL.
    TextAffinity,
    /// `in_range(x, bits)`: x where it is an integer of `bits` bits, else an error (as
    /// PostgreSQL's integer arithmetic has it: "integer out of range"); planned under
    /// PostgreSQL's rules over integer arithmetic, never written in SQL.
    InRange,
}

impl Func {
    /// Looks a function up by its SQL name (case-insensitive), with its argument count.
    /// `min`/`max` are scalar only with two or more arguments.
    pub fn from_name(name: &str, n_args: usize) -> Option<Func> {
        Some(match name.to_ascii_lowercase().as_str() {
            "coalesce" | "ifnull" => Func::Coalesce,
            "nullif" => Func::NullIf,
            "abs" => Func::Abs,
            "lower" => Func::Lower,
            "upper" => Func::Upper,
            "length" | "char_length" | "character_length" => Func::Length,
            "round" => Func::Round,
            "substr" | "substring" => Func::Substr,
            "trim" => Func::Trim,
            "ltrim" => Func::LTrim,
            "rtrim" => Func::RTrim,
            "replace" => Func::Replace,
            "instr" => Func::Instr,
            "min" | "least" if n_args >= 2 => Func::Least,
            "max" | "greatest" if n_args >= 2 => Func::Greatest,
            _ => return None,
        })
    }

    /// The SQL name.
    pub fn name(self) -> &'static str {
        match self {
            Func::Coalesce => "coalesce",
            Func::NullIf => "nullif",
            Func::Abs => "abs",
            Func::Lower => "lower",
            Func::Upper => "upper",
            Func::Length => "length",
            Func::Round => "round",
            Func::Substr => "substr",
            Func::Trim => "trim",
            Func::LTrim => "ltrim",
            Func::RTrim => "rtrim",
            Func::Replace => "replace",
            Func::Instr => "instr",
            Func::Least => "min",
            Func::Greatest => "max",
            Func::NumberKey => "number_key",
            Func::NumericAffinity => "numeric_affinity",
            Func::TextAffinity => "text_affinity",
            Func::InRange => "in_range",
        }
    }

    /// The allowed number of arguments: (min, max).
    pub fn arity(self) -> (usize, usize) {
        match self {
            Func::Coalesce => (1, usize::MAX),
            Func::Least | Func::Greatest => (2, usize::MAX),
            Func::NullIf | Func::Instr | Func::InRange => (2, 2),
            Func::Abs | Func::Lower | Func::Upper | Func::Length => (1, 1),
            Func::NumberKey | Func::NumericAffinity | Func::TextAffinity => (1, 1),
            Func::Round | Func::Trim | Func::LTrim | Func::RTrim => (1, 2),
            Func::Substr => (2, 3),
            Func::Replace => (3, 3),
        }
    }

    /// The function applied to `args` evaluated on `row`.
    pub fn eval<R: Columns + ?Sized>(self, args: &[Expr], row: &R) -> Value {
        let arg = |i: usize| args[i].eval_cow(row);
        match self {
            Func::Coalesce => {
                for a in args {
                    let v = a.eval(row);
                    if !v.is_null() {
                        return v;
                    }
                }
                Value::Null
            }
            Func::NullIf => {
                let (a, b) = (arg(0), arg(1));
                if a.sql_cmp(&b) == Some(std::cmp::Ordering::Equal) { Value::Null } else { a.into_owned() }
            }
            Func::Abs => match &*arg(0) {
                Value::Int(i) => i.checked_abs().map_or_else(
                    || {
                        // SQLite: abs() of the least integer is an error.
                        super::fault::raise("integer overflow in abs()");
                        Value::Null
                    },
                    Value::Int,
                ),
                Value::Float(f) => Value::Float(f.abs()),
                Value::Decimal(d) => Value::from(d.abs()),
                Value::Null => Value::Null,
                Value::Bool(b) => Value::Int(*b as i64),
                // SQLite: anything else is read as a double (0.0 if it is no number).
                Value::Text(s) => Value::Float(super::cast::text_to_f64_prefix(s).abs()),
                other => match ops::negate(other) {
                    Value::Null => Value::Null,
                    n => Func::Abs.eval(&[Expr::Literal(n)], row),
                },
            },
            Func::Lower => map_text(&arg(0), |s| s.to_ascii_lowercase()),
            Func::Upper => map_text(&arg(0), |s| s.to_ascii_uppercase()),
            Func::Length => arg(0).to_text().map_or(Value::Null, |s| Value::Int(s.chars().count() as i64)),
            Func::Round => round(&arg(0), args.get(1).map(|d| d.eval_cow(row))),
            Func::Substr => substr(&arg(0), &arg(1), args.get(2).map(|e| e.eval_cow(row))),
            Func::Trim | Func::LTrim | Func::RTrim => {
                let Some(s) = arg(0).to_text() else {
                    return Value::Null;
                };
                let set: Vec<char> = match args.get(1) {
                    Some(e) => match e.eval_cow(row).to_text() {
                        Some(t) => t.chars().collect(),
                        None => return Value::Null,
                    },
                    None => vec![' '],
                };
                let p = |c: char| set.contains(&c);
                Value::text(match self {
                    Func::Trim => s.trim_matches(p),
                    Func::LTrim => s.trim_start_matches(p),
                    _ => s.trim_end_matches(p),
                })
            }
            // SQLite: an empty pattern gives the text back even when the replacement
            // is NULL.
            Func::Replace => match (arg(0).to_text(), arg(1).to_text()) {
                (Some(s), Some(from)) if from.is_empty() => Value::text(s),
                (Some(s), Some(from)) => arg(2).to_text().map_or(Value::Null, |to| Value::text(s.replace(&from, &to))),
                _ => Value::Null,
            },
            Func::Instr => match (arg(0).to_text(), arg(1).to_text()) {
                (Some(s), Some(n)) => Value::Int(s.find(&n).map_or(0, |byte| s[..byte].chars().count() as i64 + 1)),
                _ => Value::Null,
            },
            Func::Least | Func::Greatest => {
                let mut best: Option<Value> = None;
                for a in args {
                    let v = a.eval(row);
                    if v.is_null() {
                        return Value::Null;
                    }
                    // SQLite's ties: max keeps the first of equal values, min takes the
                    // last (max(3, 3.0) is 3, min(3, 3.0) is 3.0).
                    let better = match &best {
                        None => true,
                        Some(b) => {
                            let o = v.sql_cmp(b).expect("not null");
                            if self == Func::Least { o.is_le() } else { o.is_gt() }
                        }
                    };
                    if better {
                        best = Some(v);
                    }
                }
                best.unwrap_or(Value::Null)
            }
            Func::NumberKey => arg(0).number_key(),
            Func::NumericAffinity => super::cast::numeric_affinity(&arg(0)),
            Func::TextAffinity => super::cast::text_affinity(&arg(0)),
            Func::InRange => {
                let bits = arg(1).as_i64().unwrap_or(64);
                match arg(0).into_owned() {
                    Value::Int(i) if bits >= 64 || (i >> (bits - 1)) == 0 || (i >> (bits - 1)) == -1 => Value::Int(i),
                    Value::Int(_) | Value::Float(_) => {
                        let name = match bits {
                            16 => "smallint",
                            32 => "integer",
                            _ => "bigint",
                        };
                        super::fault::raise(format!("{name} out of range"));
                        Value::Null
                    }
                    other => other,
                }
            }
        }
    }
}

fn map_text(v: &Value, f: impl Fn(&str) -> String) -> Value {
    v.to_text().map_or(Value::Null, |s| Value::text(f(&s)))
}

/// A value's integer value as SQLite's functions take it (`sqlite3_value_int64`): an
/// integer as it is, a real truncated (saturating), text by its leading integer,
/// `None` for NULL.
fn int_value(v: &Value) -> Option<i64> {
    Some(match v {
        Value::Null => return None,
        Value::Text(s) => super::cast::text_to_i64_prefix(s),
        other => match super::cast::cast(other, crate::types::DataType::BigInt) {
            Value::Int(i) => i,
            _ => 0,
        },
    })
}

/// A value's 32-bit integer value (`sqlite3_value_int`, which SQLite's substr and round
/// take their counts by): the integer value's low 32 bits, as C converts.
fn int32_value(v: &Value) -> Option<i64> {
    int_value(v).map(|i| i as i32 as i64)
}

/// A value's real value (`sqlite3_value_double`): text by its leading number.
fn real_value(v: &Value) -> Option<f64> {
    match v {
        Value::Null => None,
        Value::Text(s) => Some(super::cast::text_to_f64_prefix(s)),
        Value::Bool(b) => Some(*b as i64 as f64),
        other => Some(other.as_f64().unwrap_or(0.0)),
    }
}

/// SQLite's `round(x, n)`: n (its low 32 bits) clamped to 0..=30; a value beyond 2^52
/// has nothing to round; n = 0 rounds half away from zero through an integer;
/// otherwise the value is printed to n decimals (rounding its decimal digits half up)
/// and read back.
fn round(x: &Value, digits: Option<Ref<'_>>) -> Value {
    let n = match digits.as_deref() {
        None => 0,
        Some(d) => match int32_value(d) {
            None => return Value::Null,
            Some(n) => n.clamp(0, 30) as usize,
        },
    };
    let Some(r) = real_value(x) else {
        return Value::Null;
    };
    const LIMIT: f64 = 4503599627370496.0;
    if !(-LIMIT..=LIMIT).contains(&r) {
        return Value::Float(r);
    }
    if n == 0 {
        return Value::Float((r + if r < 0.0 { -0.5 } else { 0.5 }) as i64 as f64);
    }
    Value::Float(round_decimal(r, n))
}

/// `r` rounded to `n` decimals as SQLite's printf does it: from the first 19
/// significant decimal digits of `r`, half up.
fn round_decimal(r: f64, n: usize) -> f64 {
    if r == 0.0 {
        return r;
    }
    // d.ddd…e±x, exact to far more digits than 19.
    let sci = format!("{:.40e}", r.abs());
    let (mantissa, exp) = sci.split_once('e').expect("an exponent");
    let exp: i64 = exp.parse().expect("an integer exponent");
    let mut digits: Vec<u8> = mantissa.bytes().filter(u8::is_ascii_digit).take(19).map(|b| b - b'0').collect();
    // The digit position after which n decimals end: digits before the point are exp+1.
    let keep = exp + 1 + n as i64;
    if keep < 0 || keep >= digits.len() as i64 {
        return if keep < 0 { 0.0 * r.signum() } else { r };
    }
    let keep = keep as usize;
    let mut point = exp + 1;
    let round_up = digits[keep] >= 5;
    digits.truncate(keep);
    if round_up {
        let mut j = keep;
        loop {
            if j == 0 {
                digits.insert(0, 1);
                point += 1;
                break;
            }
            j -= 1;
            if digits[j] == 9 {
                digits[j] = 0;
            } else {
                digits[j] += 1;
                break;
            }
        }
    }
    let text: String = digits.iter().map(|d| char::from(b'0' + d)).collect();
    let value: f64 = if text.is_empty() { 0.0 } else { format!("0.{text}e{point}").parse().unwrap_or(0.0) };
    if r < 0.0 { -value } else { value }
}

/// SQLite's `substr(x, p1[, p2])`: 1-based; 0 is before the first character; a
/// negative p1 counts from the end; a negative p2 takes the characters before p1. The
/// positions are taken by their low 32 bits, as SQLite takes them, so no value can
/// overflow the arithmetic.
fn substr(s: &Value, start: &Value, len: Option<Ref<'_>>) -> Value {
    let Some(mut p1) = int32_value(start) else {
        return Value::Null;
    };
    let (mut p2, negative) = match len.as_deref() {
        None => (1_000_000_000, false),
        Some(l) => match int32_value(l) {
            None => return Value::Null,
            Some(l) => (l.abs(), l < 0),
        },
    };
    let Some(s) = s.to_text() else {
        return Value::Null;
    };
    let n = if p1 < 0 { s.chars().count() as i64 } else { 0 };
    if p1 < 0 {
        p1 += n;
        if p1 < 0 {
            p2 = (p2 + p1).max(0);
            p1 = 0;
        }
    } else if p1 > 0 {
        p1 -= 1;
    } else if p2 > 0 {
        p2 -= 1;
    }
    if negative {
        p1 -= p2;
        if p1 < 0 {
            p2 += p1;
            p1 = 0;
        }
    }
    Value::text(s.chars().skip(p1 as usize).take(p2.max(0) as usize).collect::<String>())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(f: Func, args: Vec<Value>) -> Value {
        let args: Vec<Expr> = args.into_iter().map(Expr::Literal).collect();
        f.eval(&args, &[][..] as &[Value])
    }

    #[test]
    fn null_handling() {
        assert_eq!(call(Func::Coalesce, vec![Value::Null, Value::Int(2), Value::Int(3)]), Value::Int(2));
        assert_eq!(call(Func::NullIf, vec![Value::Int(2), Value::Int(2)]), Value::Null);
        assert_eq!(call(Func::NullIf, vec![Value::Int(2), Value::Null]), Value::Int(2));
        assert_eq!(call(Func::Abs, vec![Value::Null]), Value::Null);
        assert_eq!(call(Func::Least, vec![Value::Int(2), Value::Null]), Value::Null);
    }

    #[test]
    fn text_functions() {
        assert_eq!(call(Func::Abs, vec![Value::Int(-4)]), Value::Int(4));
        assert_eq!(call(Func::Upper, vec![Value::text("abc")]), Value::text("ABC"));
        assert_eq!(call(Func::Length, vec![Value::text("héllo")]), Value::Int(5));
        assert_eq!(call(Func::Substr, vec![Value::text("hello"), Value::Int(2), Value::Int(3)]), Value::text("ell"));
        assert_eq!(call(Func::Substr, vec![Value::text("hello"), Value::Int(-3)]), Value::text("llo"));
        assert_eq!(call(Func::Substr, vec![Value::text("hello"), Value::Int(0), Value::Int(2)]), Value::text("h"));
        assert_eq!(call(Func::Round, vec![Value::Float(2.5)]), Value::Float(3.0));
        assert_eq!(call(Func::Round, vec![Value::Float(-2.345), Value::Int(2)]), Value::Float(-2.35));
        assert_eq!(call(Func::Instr, vec![Value::text("hello"), Value::text("l")]), Value::Int(3));
        assert_eq!(call(Func::Greatest, vec![Value::Int(2), Value::Float(2.5)]), Value::Float(2.5));
    }
}
