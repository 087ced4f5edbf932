//! Scalar expressions over a row, with SQL's NULL rules.
//!
//! An [`Expr`] refers to input columns by position: names and types were resolved by
//! the SQL front end, which also inserted the casts that give every operand a single
//! type. Evaluation gives a value for nearly anything: following SQLite, division by
//! zero and impossible casts give NULL (or the SQLite value). What the dialect makes an
//! error is raised through [`fault`], and fails only the views that compute it.
//!
//! Booleans are three-valued: `Value::Null` is *unknown*. A filter keeps a row only
//! when its predicate is true ([`Expr::eval_truth`] gives `Some(true)`).

pub mod cast;
pub mod fault;
pub mod functions;
pub mod like;
pub mod ops;

use std::fmt;

use crate::row::{Columns, Ref};
use crate::types::DataType;
use crate::value::Value;

pub use functions::Func;
pub use ops::BinaryOp;

/// A scalar expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// The input column at this position.
    Column(usize),
    /// A constant.
    Literal(Value),
    /// `NOT e` (three-valued).
    Not(Box<Expr>),
    /// `-e`.
    Negate(Box<Expr>),
    /// `e IS NULL` / `e IS NOT NULL`.
    IsNull {
        /// The operand.
        expr: Box<Expr>,
        /// `IS NOT NULL`.
        negated: bool,
    },
    /// `left op right`.
    Binary {
        /// The operator.
        op: BinaryOp,
        /// Left operand.
        left: Box<Expr>,
        /// Right operand.
        right: Box<Expr>,
    },
    /// `e [NOT] IN (list)`.
    InList {
        /// The tested value.
        expr: Box<Expr>,
        /// The candidates.
        list: Vec<Expr>,
        /// `NOT IN`.
        negated: bool,
    },
    /// `e [NOT] BETWEEN low AND high`.
    Between {
        /// The tested value.
        expr: Box<Expr>,
        /// Lower bound, inclusive.
        low: Box<Expr>,
        /// Upper bound, inclusive.
        high: Box<Expr>,
        /// `NOT BETWEEN`.
        negated: bool,
    },
    /// `e [NOT] LIKE pattern [ESCAPE c]`.
    Like {
        /// The tested text.
        expr: Box<Expr>,
        /// The pattern (`%`, `_`).
        pattern: Box<Expr>,
        /// The escape character.
        escape: Option<char>,
        /// `NOT LIKE`.
        negated: bool,
        /// Whether ASCII letters match regardless of case (SQLite's LIKE, ILIKE).
        case_insensitive: bool,
    },
    /// `CASE [operand] WHEN … THEN … [ELSE …] END`.
    Case {
        /// The operand of the simple form, compared with each WHEN by `=`.
        operand: Option<Box<Expr>>,
        /// (WHEN, THEN) pairs, tried in order.
        branches: Vec<(Expr, Expr)>,
        /// The ELSE result (NULL when absent).
        otherwise: Option<Box<Expr>>,
    },
    /// `CAST(e AS type)`.
    Cast {
        /// The operand.
        expr: Box<Expr>,
        /// The target type.
        to: DataType,
    },
    /// A scalar function call.
    Call {
        /// The function.
        func: Func,
        /// Its arguments.
        args: Vec<Expr>,
    },
}

impl Expr {
    /// `Expr::Column(i)`.
    pub fn col(i: usize) -> Expr {
        Expr::Column(i)
    }

    /// `Expr::Literal(v)`.
    pub fn lit(v: impl Into<Value>) -> Expr {
        Expr::Literal(v.into())
    }

    /// `left op right`.
    pub fn binary(op: BinaryOp, left: Expr, right: Expr) -> Expr {
        Expr::Binary { op, left: Box::new(left), right: Box::new(right) }
    }

    /// `CAST(self AS to)`.
    pub fn cast(self, to: DataType) -> Expr {
        Expr::Cast { expr: Box::new(self), to }
    }

    /// The value of the expression on `row`.
    pub fn eval<R: Columns + ?Sized>(&self, row: &R) -> Value {
        match self {
            Expr::Column(i) => row.column(*i).into_owned(),
            Expr::Literal(v) => v.clone(),
            _ => self.eval_computed(row),
        }
    }

    /// Like [`Expr::eval`], borrowing columns and literals instead of cloning them.
    pub(crate) fn eval_cow<'a, R: Columns + ?Sized>(&'a self, row: &'a R) -> Ref<'a> {
        match self {
            Expr::Column(i) => row.column(*i),
            Expr::Literal(v) => Ref::borrowed(v),
            _ => Ref::owned(self.eval_computed(row)),
        }
    }

    /// The truth value of the expression on `row`: `None` is unknown.
    pub fn eval_truth<R: Columns + ?Sized>(&self, row: &R) -> Option<bool> {
        match self {
            Expr::Binary { op: BinaryOp::And, left, right } => match left.eval_truth(row) {
                Some(false) => Some(false),
                l => match right.eval_truth(row) {
                    Some(false) => Some(false),
                    Some(true) => l,
                    None => None,
                },
            },
            Expr::Binary { op: BinaryOp::Or, left, right } => match left.eval_truth(row) {
                Some(true) => Some(true),
                l => match right.eval_truth(row) {
                    Some(true) => Some(true),
                    Some(false) => l,
                    None => None,
                },
            },
            Expr::Binary { op, left, right } if op.is_comparison() => {
                ops::compare(*op, &left.eval_cow(row), &right.eval_cow(row)).truth()
            }
            Expr::Not(e) => e.eval_truth(row).map(|b| !b),
            Expr::IsNull { expr, negated } => Some(expr.eval_cow(row).is_null() != *negated),
            _ => self.eval_cow(row).truth(),
        }
    }

    fn eval_computed<R: Columns + ?Sized>(&self, row: &R) -> Value {
        match self {
            Expr::Column(_) | Expr::Literal(_) => self.eval(row),
            Expr::Not(_) | Expr::IsNull { .. } => truth_value(self.eval_truth(row)),
            Expr::Binary { op, left, right } => match op {
                BinaryOp::And | BinaryOp::Or => truth_value(self.eval_truth(row)),
                _ => ops::binary(*op, &left.eval_cow(row), &right.eval_cow(row)),
            },
            Expr::Negate(e) => ops::negate(&e.eval_cow(row)),
            Expr::InList { expr, list, negated } => {
                let v = expr.eval_cow(row);
                let found = in_list(&v, list.iter().map(|e| e.eval_cow(row)));
                truth_value(found.map(|b| b != *negated))
            }
            Expr::Between { expr, low, high, negated } => {
                let v = expr.eval_cow(row);
                let ge = ops::compare(BinaryOp::GtEq, &v, &low.eval_cow(row)).truth();
                let le = ops::compare(BinaryOp::LtEq, &v, &high.eval_cow(row)).truth();
                let both = match (ge, le) {
                    (Some(false), _) | (_, Some(false)) => Some(false),
                    (Some(true), Some(true)) => Some(true),
                    _ => None,
                };
                truth_value(both.map(|b| b != *negated))
            }
            Expr::Like { expr, pattern, escape, negated, case_insensitive } => {
                let (v, p) = (expr.eval_cow(row), pattern.eval_cow(row));
                match (v.to_text(), p.to_text()) {
                    (Some(v), Some(p)) => Value::Bool(like::like(&v, &p, *escape, *case_insensitive) != *negated),
                    _ => Value::Null,
                }
            }
            Expr::Case { operand, branches, otherwise } => {
                let subject = operand.as_ref().map(|o| o.eval_cow(row));
                for (when, then) in branches {
                    let hit = match &subject {
                        Some(s) => ops::compare(BinaryOp::Eq, s, &when.eval_cow(row)).truth(),
                        None => when.eval_truth(row),
                    };
                    if hit == Some(true) {
                        return then.eval(row);
                    }
                }
                otherwise.as_ref().map_or(Value::Null, |e| e.eval(row))
            }
            Expr::Cast { expr, to } => cast::cast(&expr.eval_cow(row), *to),
            Expr::Call { func, args } => func.eval(args, row),
        }
    }

    /// The columns the expression reads, in ascending order without repeats.
    pub fn columns(&self) -> Vec<usize> {
        let mut out = Vec::new();
        self.visit(&mut |e| {
            if let Expr::Column(i) = e {
                out.push(*i);
            }
        });
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Calls `f` on this expression and every sub-expression, parents first.
    pub fn visit(&self, f: &mut impl FnMut(&Expr)) {
        f(self);
        match self {
            Expr::Column(_) | Expr::Literal(_) => {}
            Expr::Not(e) | Expr::Negate(e) | Expr::IsNull { expr: e, .. } | Expr::Cast { expr: e, .. } => e.visit(f),
            Expr::Binary { left, right, .. } => {
                left.visit(f);
                right.visit(f);
            }
            Expr::InList { expr, list, .. } => {
                expr.visit(f);
                list.iter().for_each(|e| e.visit(f));
            }
            Expr::Between { expr, low, high, .. } => {
                expr.visit(f);
                low.visit(f);
                high.visit(f);
            }
            Expr::Like { expr, pattern, .. } => {
                expr.visit(f);
                pattern.visit(f);
            }
            Expr::Case { operand, branches, otherwise } => {
                if let Some(o) = operand {
                    o.visit(f);
                }
                for (w, t) in branches {
                    w.visit(f);
                    t.visit(f);
                }
                if let Some(o) = otherwise {
                    o.visit(f);
                }
            }
            Expr::Call { args, .. } => args.iter().for_each(|e| e.visit(f)),
        }
    }

    /// The same expression with every column reference `i` replaced by `map(i)`.
    pub fn remap_columns(&self, map: &impl Fn(usize) -> usize) -> Expr {
        self.transform(&mut |e| match e {
            Expr::Column(i) => Some(Expr::Column(map(*i))),
            _ => None,
        })
    }

    /// Rebuilds the expression top-down: where `f` returns `Some`, that replaces the
    /// node (and its children are not visited); elsewhere the node is kept and its
    /// children are transformed.
    pub fn transform(&self, f: &mut impl FnMut(&Expr) -> Option<Expr>) -> Expr {
        if let Some(e) = f(self) {
            return e;
        }
        let mut t = |e: &Expr| Box::new(e.transform(f));
        match self {
            Expr::Column(_) | Expr::Literal(_) => self.clone(),
            Expr::Not(e) => Expr::Not(t(e)),
            Expr::Negate(e) => Expr::Negate(t(e)),
            Expr::IsNull { expr, negated } => Expr::IsNull { expr: t(expr), negated: *negated },
            Expr::Cast { expr, to } => Expr::Cast { expr: t(expr), to: *to },
            Expr::Binary { op, left, right } => Expr::Binary { op: *op, left: t(left), right: t(right) },
            Expr::InList { expr, list, negated } => {
                Expr::InList { expr: t(expr), list: list.iter().map(|e| *t(e)).collect(), negated: *negated }
            }
            Expr::Between { expr, low, high, negated } => {
                Expr::Between { expr: t(expr), low: t(low), high: t(high), negated: *negated }
            }
            Expr::Like { expr, pattern, escape, negated, case_insensitive } => Expr::Like {
                expr: t(expr),
                pattern: t(pattern),
                escape: *escape,
                negated: *negated,
                case_insensitive: *case_insensitive,
            },
            Expr::Case { operand, branches, otherwise } => Expr::Case {
                operand: operand.as_ref().map(|o| t(o)),
                branches: branches.iter().map(|(w, th)| (*t(w), *t(th))).collect(),
                otherwise: otherwise.as_ref().map(|o| t(o)),
            },
            Expr::Call { func, args } => Expr::Call { func: *func, args: args.iter().map(|e| *t(e)).collect() },
        }
    }

    /// Whether the expression is a constant (reads no column).
    pub fn is_constant(&self) -> bool {
        let mut constant = true;
        self.visit(&mut |e| constant &= !matches!(e, Expr::Column(_)));
        constant
    }
}

/// `v IN (list)` with SQL's rules: true if some item equals `v`; otherwise unknown if
/// `v` or some item is NULL; otherwise false. An empty list is false even for NULL.
pub fn in_list<'a>(v: &Value, list: impl IntoIterator<Item = Ref<'a>>) -> Option<bool> {
    let mut unknown = false;
    let mut any = false;
    for item in list {
        any = true;
        match v.sql_cmp(&item) {
            Some(std::cmp::Ordering::Equal) => return Some(true),
            Some(_) => {}
            None => unknown = true,
        }
    }
    if !any {
        return Some(false);
    }
    if unknown { None } else { Some(false) }
}

/// A three-valued truth as a value: TRUE, FALSE or NULL.
pub fn truth_value(t: Option<bool>) -> Value {
    t.map_or(Value::Null, Value::Bool)
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Column(i) => write!(f, "#{i}"),
            Expr::Literal(Value::Decimal(d)) => write!(f, "DECIMAL '{d}'"),
            Expr::Literal(v) => write!(f, "{v}"),
            Expr::Not(e) => write!(f, "(NOT {e})"),
            Expr::Negate(e) => write!(f, "(- {e})"),
            Expr::IsNull { expr, negated } => {
                write!(f, "({expr} IS {}NULL)", if *negated { "NOT " } else { "" })
            }
            Expr::Binary { op, left, right } => write!(f, "({left} {op} {right})"),
            Expr::InList { expr, list, negated } => {
                write!(f, "({expr} {}IN (", if *negated { "NOT " } else { "" })?;
                write_list(f, list)?;
                f.write_str("))")
            }
            Expr::Between { expr, low, high, negated } => {
                write!(f, "({expr} {}BETWEEN {low} AND {high})", if *negated { "NOT " } else { "" })
            }
            Expr::Like { expr, pattern, escape, negated, case_insensitive } => {
                let not = if *negated { "NOT " } else { "" };
                let op = if *case_insensitive { "ILIKE" } else { "LIKE" };
                write!(f, "({expr} {not}{op} {pattern}")?;
                if let Some(c) = escape {
                    write!(f, " ESCAPE '{c}'")?;
                }
                f.write_str(")")
            }
            Expr::Case { operand, branches, otherwise } => {
                f.write_str("CASE")?;
                if let Some(o) = operand {
                    write!(f, " {o}")?;
                }
                for (w, t) in branches {
                    write!(f, " WHEN {w} THEN {t}")?;
                }
                if let Some(o) = otherwise {
                    write!(f, " ELSE {o}")?;
                }
                f.write_str(" END")
            }
            Expr::Cast { expr, to } => write!(f, "CAST({expr} AS {to})"),
            Expr::Call { func, args } => {
                write!(f, "{}(", func.name())?;
                write_list(f, args)?;
                f.write_str(")")
            }
        }
    }
}

fn write_list(f: &mut fmt::Formatter<'_>, list: &[Expr]) -> fmt::Result {
    for (i, e) in list.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{e}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use BinaryOp::*;

    fn row() -> Vec<Value> {
        vec![Value::Int(7), Value::Null, Value::text("Hello"), Value::Float(2.5)]
    }

    #[test]
    fn three_valued_logic() {
        let r = row();
        let t = Expr::binary(Eq, Expr::col(0), Expr::lit(7));
        let u = Expr::binary(Eq, Expr::col(1), Expr::lit(7));
        let fl = Expr::binary(Eq, Expr::col(0), Expr::lit(8));
        assert_eq!(Expr::binary(And, u.clone(), fl.clone()).eval_truth(&r), Some(false));
        assert_eq!(Expr::binary(And, u.clone(), t.clone()).eval_truth(&r), None);
        assert_eq!(Expr::binary(Or, u.clone(), t.clone()).eval_truth(&r), Some(true));
        assert_eq!(Expr::binary(Or, u.clone(), fl).eval_truth(&r), None);
        assert_eq!(Expr::Not(Box::new(u)).eval(&r), Value::Null);
    }

    #[test]
    fn in_list_with_nulls() {
        let r = row();
        let list = |items: Vec<Expr>, negated| Expr::InList { expr: Box::new(Expr::col(0)), list: items, negated };
        assert_eq!(list(vec![Expr::lit(1), Expr::lit(7)], false).eval(&r), Value::Bool(true));
        assert_eq!(list(vec![Expr::lit(1), Expr::lit(Value::Null)], false).eval(&r), Value::Null);
        assert_eq!(list(vec![Expr::lit(1), Expr::lit(Value::Null)], true).eval(&r), Value::Null);
        assert_eq!(list(vec![Expr::lit(1)], true).eval(&r), Value::Bool(true));
        let null_in_empty = Expr::InList { expr: Box::new(Expr::col(1)), list: vec![], negated: false };
        assert_eq!(null_in_empty.eval(&r), Value::Bool(false));
    }

    #[test]
    fn case_between_like() {
        let r = row();
        let case = Expr::Case {
            operand: None,
            branches: vec![(Expr::binary(Gt, Expr::col(0), Expr::lit(10)), Expr::lit("big"))],
            otherwise: Some(Box::new(Expr::lit("small"))),
        };
        assert_eq!(case.eval(&r), Value::text("small"));
        let between = Expr::Between {
            expr: Box::new(Expr::col(3)),
            low: Box::new(Expr::lit(2)),
            high: Box::new(Expr::lit(3)),
            negated: false,
        };
        assert_eq!(between.eval(&r), Value::Bool(true));
        let like = Expr::Like {
            expr: Box::new(Expr::col(2)),
            pattern: Box::new(Expr::lit("he%")),
            escape: None,
            negated: false,
            case_insensitive: true,
        };
        assert_eq!(like.eval(&r), Value::Bool(true));
    }
}
