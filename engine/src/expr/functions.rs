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
        }
    }

    /// The allowed number of arguments: (min, max).
    pub fn arity(self) -> (usize, usize) {
        match self {
            Func::Coalesce => (1, usize::MAX),
            Func::Least | Func::Greatest => (2, usize::MAX),
            Func::NullIf | Func::Instr => (2, 2),
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
                Value::Int(i) => i.checked_abs().map_or(Value::Float((*i as f64).abs()), Value::Int),
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
            Func::Replace => match (arg(0).to_text(), arg(1).to_text(), arg(2).to_text()) {
                (Some(s), Some(from), Some(to)) => Value::text(if from.is_empty() { s } else { s.replace(&from, &to) }),
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
        }
    }
}

fn map_text(v: &Value, f: impl Fn(&str) -> String) -> Value {
    v.to_text().map_or(Value::Null, |s| Value::text(f(&s)))
}

fn round(x: &Value, digits: Option<Ref<'_>>) -> Value {
    let Some(f) = (match x {
        Value::Text(s) => Some(super::cast::text_to_f64_prefix(s)),
        Value::Bool(b) => Some(*b as i64 as f64),
        other => other.as_f64(),
    }) else {
        return Value::Null;
    };
    let n = match digits.as_deref() {
        None => 0,
        Some(Value::Null) => return Value::Null,
        Some(d) => d.as_f64().unwrap_or(0.0) as i64,
    }
    .clamp(0, 30) as i32;
    let scale = 10f64.powi(n);
    let r = (f * scale).round() / scale;
    // Large values have no fractional part to round; keep them exact.
    Value::Float(if (f * scale).abs() >= 4.5e15 { f } else { r })
}

fn substr(s: &Value, start: &Value, len: Option<Ref<'_>>) -> Value {
    let Some(s) = s.to_text() else {
        return Value::Null;
    };
    let Some(mut p1) = start.as_f64().map(|f| f as i64) else {
        return Value::Null;
    };
    let chars: Vec<char> = s.chars().collect();
    let n = chars.len() as i64;
    // SQLite's rules: p1 is 1-based, 0 is "before the first character", a negative p1
    // counts from the end, and a negative length takes the characters before p1.
    let (mut p2, negative_len) = match len.as_deref() {
        None => (n, false),
        Some(Value::Null) => return Value::Null,
        Some(l) => {
            let l = l.as_f64().unwrap_or(0.0) as i64;
            (l.abs(), l < 0)
        }
    };
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
    if negative_len {
        p1 -= p2;
        if p1 < 0 {
            p2 += p1;
            p1 = 0;
        }
    }
    let from = p1.min(n) as usize;
    let to = (p1 + p2.max(0)).min(n) as usize;
    Value::text(chars[from..to.max(from)].iter().collect::<String>())
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
