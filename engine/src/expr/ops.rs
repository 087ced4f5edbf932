//! Binary operators and negation: arithmetic, comparison, logic, concatenation.
//!
//! Arithmetic follows SQLite where engines differ: integer `/` truncates toward zero,
//! `x / 0` and `x % 0` are NULL, an integer overflow gives a DOUBLE, and `%` on
//! non-integers works on their integer parts. Decimals stay exact under `+ - *` (and
//! `/` gives a DOUBLE). Text in arithmetic is read as its leading number, as SQLite
//! does; booleans count as 0 and 1.

use std::fmt;

use crate::decimal::Decimal;
use crate::value::Value;

use super::cast::text_to_number;

/// A binary operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `%`
    Mod,
    /// `=`
    Eq,
    /// `<>`
    NotEq,
    /// `<`
    Lt,
    /// `<=`
    LtEq,
    /// `>`
    Gt,
    /// `>=`
    GtEq,
    /// `IS NOT DISTINCT FROM` (SQLite's `IS`): NULL-safe equality.
    IsNotDistinctFrom,
    /// `IS DISTINCT FROM` (SQLite's `IS NOT`).
    IsDistinctFrom,
    /// `AND`
    And,
    /// `OR`
    Or,
    /// `||`
    Concat,
}

impl BinaryOp {
    /// Whether the operator compares its operands and gives a truth value.
    pub fn is_comparison(self) -> bool {
        use BinaryOp::*;
        matches!(self, Eq | NotEq | Lt | LtEq | Gt | GtEq | IsNotDistinctFrom | IsDistinctFrom)
    }

    /// Whether the operator is `+ - * / %`.
    pub fn is_arithmetic(self) -> bool {
        use BinaryOp::*;
        matches!(self, Add | Sub | Mul | Div | Mod)
    }

    /// The operator with its operands swapped (`a < b` is `b > a`), for comparisons.
    pub fn swapped(self) -> BinaryOp {
        use BinaryOp::*;
        match self {
            Lt => Gt,
            LtEq => GtEq,
            Gt => Lt,
            GtEq => LtEq,
            other => other,
        }
    }
}

impl fmt::Display for BinaryOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use BinaryOp::*;
        f.write_str(match self {
            Add => "+",
            Sub => "-",
            Mul => "*",
            Div => "/",
            Mod => "%",
            Eq => "=",
            NotEq => "<>",
            Lt => "<",
            LtEq => "<=",
            Gt => ">",
            GtEq => ">=",
            IsNotDistinctFrom => "IS NOT DISTINCT FROM",
            IsDistinctFrom => "IS DISTINCT FROM",
            And => "AND",
            Or => "OR",
            Concat => "||",
        })
    }
}

/// `a op b` for a comparison operator: TRUE, FALSE or NULL.
pub fn compare(op: BinaryOp, a: &Value, b: &Value) -> Value {
    use BinaryOp::*;
    use std::cmp::Ordering::*;
    match op {
        IsNotDistinctFrom => return Value::Bool(is_not_distinct(a, b)),
        IsDistinctFrom => return Value::Bool(!is_not_distinct(a, b)),
        _ => {}
    }
    let Some(o) = a.sql_cmp(b) else {
        return Value::Null;
    };
    Value::Bool(match op {
        Eq => o == Equal,
        NotEq => o != Equal,
        Lt => o == Less,
        LtEq => o != Greater,
        Gt => o == Greater,
        GtEq => o != Less,
        _ => unreachable!("{op} is not a comparison"),
    })
}

fn is_not_distinct(a: &Value, b: &Value) -> bool {
    match (a.is_null(), b.is_null()) {
        (true, true) => true,
        (false, false) => a.sql_cmp(b) == Some(std::cmp::Ordering::Equal),
        _ => false,
    }
}

/// `a op b` for any operator but AND and OR (which [`super::Expr`] evaluates lazily).
pub fn binary(op: BinaryOp, a: &Value, b: &Value) -> Value {
    use BinaryOp::*;
    match op {
        Add | Sub | Mul | Div | Mod => arithmetic(op, a, b),
        Concat => match (a.to_text(), b.to_text()) {
            (Some(x), Some(y)) => Value::text(x + &y),
            _ => Value::Null,
        },
        And | Or => {
            let (x, y) = (a.truth(), b.truth());
            let r = if op == And {
                match (x, y) {
                    (Some(false), _) | (_, Some(false)) => Some(false),
                    (Some(true), Some(true)) => Some(true),
                    _ => None,
                }
            } else {
                match (x, y) {
                    (Some(true), _) | (_, Some(true)) => Some(true),
                    (Some(false), Some(false)) => Some(false),
                    _ => None,
                }
            };
            super::truth_value(r)
        }
        _ => compare(op, a, b),
    }
}

/// A number for arithmetic: booleans as 0/1, text by its leading number.
fn numeric(v: &Value) -> Value {
    match v {
        Value::Bool(b) => Value::Int(*b as i64),
        Value::Text(s) => text_to_number(s),
        Value::Date(d) => Value::Int(*d as i64),
        Value::Timestamp(t) => Value::Int(*t),
        other => other.clone(),
    }
}

fn arithmetic(op: BinaryOp, a: &Value, b: &Value) -> Value {
    match (a, b) {
        (Value::Null, _) | (_, Value::Null) => Value::Null,
        (Value::Int(x), Value::Int(y)) => int_arith(op, *x, *y),
        _ if op == BinaryOp::Mod => remainder(a, b),
        (Value::Float(_) | Value::Int(_) | Value::Decimal(_), Value::Float(_) | Value::Int(_) | Value::Decimal(_)) => {
            match (a, b) {
                (Value::Float(_), _) | (_, Value::Float(_)) => {
                    float_arith(op, a.as_f64().expect("number"), b.as_f64().expect("number"))
                }
                _ => decimal_arith(op, to_decimal(a), to_decimal(b)),
            }
        }
        _ => {
            let (x, y) = (numeric(a), numeric(b));
            if matches!(x, Value::Text(_)) || matches!(y, Value::Text(_)) {
                return Value::Null;
            }
            arithmetic(op, &x, &y)
        }
    }
}

/// `a % b` where not both are integers. Where both read as integers (text that spells
/// one) it is the integers' remainder; otherwise SQLite's remainder of reals: each
/// operand's integer value (a real truncated, text's leading integer: '61e2' % 7 is
/// 61 % 7), as a real.
fn remainder(a: &Value, b: &Value) -> Value {
    if let (Value::Int(x), Value::Int(y)) = (numeric(a), numeric(b)) {
        return int_arith(BinaryOp::Mod, x, y);
    }
    let (xi, yi) = (integer_value(a), integer_value(b));
    if yi == 0 {
        return Value::Null;
    }
    Value::Float((if yi == -1 { 0 } else { xi % yi }) as f64)
}

/// A value's integer value as SQLite takes it for `%`: text's leading integer, a real
/// truncated (saturating), a boolean's 0 or 1.
fn integer_value(v: &Value) -> i64 {
    match v {
        Value::Text(s) => super::cast::text_to_i64_prefix(s),
        other => match super::cast::cast(other, crate::types::DataType::BigInt) {
            Value::Int(i) => i,
            _ => 0,
        },
    }
}

fn to_decimal(v: &Value) -> Decimal {
    match v {
        Value::Int(i) => Decimal::from_i64(*i),
        Value::Decimal(d) => **d,
        _ => unreachable!("not an exact number: {v}"),
    }
}

fn int_arith(op: BinaryOp, x: i64, y: i64) -> Value {
    use BinaryOp::*;
    let exact = match op {
        Add => x.checked_add(y),
        Sub => x.checked_sub(y),
        Mul => x.checked_mul(y),
        Div => {
            if y == 0 {
                return Value::Null;
            }
            x.checked_div(y)
        }
        Mod => {
            if y == 0 {
                return Value::Null;
            }
            // i64::MIN % -1 overflows in Rust; the answer is 0.
            Some(if y == -1 { 0 } else { x % y })
        }
        _ => unreachable!(),
    };
    exact.map_or_else(|| float_arith(op, x as f64, y as f64), Value::Int)
}

fn float_arith(op: BinaryOp, x: f64, y: f64) -> Value {
    use BinaryOp::*;
    let r = match op {
        Add => x + y,
        Sub => x - y,
        Mul => x * y,
        Div => {
            if y == 0.0 {
                return Value::Null;
            }
            x / y
        }
        Mod => {
            // SQLite: the remainder of the integer parts, as a DOUBLE.
            let (xi, yi) = (x as i64, y as i64);
            if yi == 0 {
                return Value::Null;
            }
            (if yi == -1 { 0 } else { xi % yi }) as f64
        }
        _ => unreachable!(),
    };
    if r.is_nan() { Value::Null } else { Value::Float(r) }
}

fn decimal_arith(op: BinaryOp, x: Decimal, y: Decimal) -> Value {
    use BinaryOp::*;
    let exact = match op {
        Add => x.checked_add(y),
        Sub => x.checked_sub(y),
        Mul => x.checked_mul(y),
        Div | Mod => return float_arith(op, x.to_f64(), y.to_f64()),
        _ => unreachable!(),
    };
    exact.map_or_else(|| float_arith(op, x.to_f64(), y.to_f64()), Value::from)
}

/// `-v`.
pub fn negate(v: &Value) -> Value {
    match v {
        Value::Null => Value::Null,
        Value::Int(i) => i.checked_neg().map_or(Value::Float(-(*i as f64)), Value::Int),
        Value::Float(f) => Value::Float(-f),
        Value::Decimal(d) => d.checked_neg().map_or(Value::Null, Value::from),
        other => match numeric(other) {
            Value::Text(_) => Value::Null,
            n => negate(&n),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use BinaryOp::*;

    #[test]
    fn integer_division_and_zero() {
        assert_eq!(binary(Div, &Value::Int(7), &Value::Int(2)), Value::Int(3));
        assert_eq!(binary(Div, &Value::Int(-7), &Value::Int(2)), Value::Int(-3));
        assert_eq!(binary(Div, &Value::Int(7), &Value::Int(0)), Value::Null);
        assert_eq!(binary(Mod, &Value::Int(7), &Value::Int(0)), Value::Null);
        assert_eq!(binary(Mod, &Value::Int(-7), &Value::Int(3)), Value::Int(-1));
        assert_eq!(binary(Div, &Value::Float(1.0), &Value::Int(0)), Value::Null);
        assert_eq!(binary(Add, &Value::Int(i64::MAX), &Value::Int(1)), Value::Float(i64::MAX as f64 + 1.0));
    }

    #[test]
    fn mixed_numbers() {
        assert_eq!(binary(Add, &Value::Int(1), &Value::Float(0.5)), Value::Float(1.5));
        let d = Value::from(Decimal::parse("1.25").unwrap());
        assert_eq!(binary(Mul, &d, &Value::Int(2)), Value::from(Decimal::parse("2.50").unwrap()));
        assert_eq!(binary(Add, &Value::text("3"), &Value::Int(4)), Value::Int(7));
        assert_eq!(binary(Concat, &Value::Int(3), &Value::text("x")), Value::text("3x"));
        assert_eq!(binary(Concat, &Value::Null, &Value::text("x")), Value::Null);
    }

    #[test]
    fn null_safe_comparison() {
        assert_eq!(compare(IsNotDistinctFrom, &Value::Null, &Value::Null), Value::Bool(true));
        assert_eq!(compare(IsDistinctFrom, &Value::Int(1), &Value::Null), Value::Bool(true));
        assert_eq!(compare(Eq, &Value::Int(1), &Value::Null), Value::Null);
    }
}
