//! Type rules: SQL type names, common types, and the result types of operators.
//!
//! Integers of any width share one representation (`i64`), so mixing them needs no
//! cast; the wider declared width wins. Mixing an integer with a DECIMAL gives a
//! DECIMAL, and anything with a DOUBLE gives a DOUBLE. Text meets dates and timestamps
//! by being read as one.
//!
//! That is PostgreSQL's way: one type per expression, operands cast to it. Under
//! SQLite a value keeps its own class wherever it goes: a CASE with an INTEGER and a
//! REAL branch gives an integer on some rows and a real on others, and `100 /` that
//! divides as an integer where it is one. [`sqlite_result_type`] and
//! [`sqlite_arithmetic_type`] give such expressions [`DataType::Number`] or
//! [`DataType::Any`] instead of a common type, and nothing is cast. [`Affinity`] is
//! the other half of SQLite's typing: what a comparison converts its operands to.

use ciuf_engine::types::MAX_DECIMAL_PRECISION;
use ciuf_engine::{DataType, Dialect, Error};
use sqlparser::ast::{self, ExactNumberInfo};

use crate::error::{type_error, unsupported};

/// The engine type for an SQL type name. Under SQLite a NUMERIC or DECIMAL without a
/// precision is SQLite's NUMERIC: integers and reals, each value its own class.
pub(crate) fn sql_type(
    t: &ast::DataType,
    span: sqlparser::tokenizer::Span,
    dialect: Dialect,
) -> Result<DataType, Error> {
    use ast::DataType as T;
    Ok(match t {
        T::Numeric(ExactNumberInfo::None) | T::Decimal(ExactNumberInfo::None) if dialect == Dialect::Sqlite => {
            DataType::Number
        }
        T::Bool | T::Boolean => DataType::Bool,
        T::SmallInt(_) | T::Int2(_) | T::TinyInt(_) => DataType::SmallInt,
        T::Int(_) | T::Integer(_) | T::Int4(_) | T::MediumInt(_) => DataType::Int,
        T::BigInt(_) | T::Int8(_) | T::Int64 | T::Signed | T::SignedInteger => DataType::BigInt,
        T::Float(_) | T::Real | T::Double(_) | T::DoublePrecision | T::Float4 | T::Float8 | T::Float64 => {
            DataType::Double
        }
        T::Numeric(info) | T::Decimal(info) | T::Dec(info) => decimal_type(info, span)?,
        T::Text
        | T::Varchar(_)
        | T::Char(_)
        | T::Character(_)
        | T::CharacterVarying(_)
        | T::CharVarying(_)
        | T::Nvarchar(_)
        | T::String(_)
        | T::Clob(_)
        | T::TinyText
        | T::MediumText
        | T::LongText => DataType::Text,
        T::Date => DataType::Date,
        T::Timestamp(_, tz) if !matches!(tz, ast::TimezoneInfo::WithTimeZone | ast::TimezoneInfo::Tz) => {
            DataType::Timestamp
        }
        T::Datetime(_) => DataType::Timestamp,
        T::Custom(name, _) => match name.to_string().to_ascii_lowercase().as_str() {
            "string" => DataType::Text,
            "int64" | "long" => DataType::BigInt,
            // The ANY of SQLite's STRICT tables: each value as it is given.
            "any" if dialect == Dialect::Sqlite => DataType::Any,
            _ => return Err(unsupported(format!("type {t}"), span)),
        },
        other => return Err(unsupported(format!("type {other}"), span)),
    })
}

/// DECIMAL(p, s). A bare DECIMAL is DECIMAL(18, 3), as in DuckDB.
fn decimal_type(info: &ExactNumberInfo, span: sqlparser::tokenizer::Span) -> Result<DataType, Error> {
    let (p, s) = match info {
        ExactNumberInfo::None => (18, 3),
        ExactNumberInfo::Precision(p) => (*p, 0),
        ExactNumberInfo::PrecisionAndScale(p, s) => (*p, (*s).max(0) as u64),
    };
    if p == 0 || p > MAX_DECIMAL_PRECISION as u64 || s > p {
        return Err(type_error(
            format!("DECIMAL({p},{s}): precision must be 1 to {MAX_DECIMAL_PRECISION} and scale at most the precision"),
            span,
        ));
    }
    Ok(DataType::Decimal { precision: p as u8, scale: s as u8 })
}

/// Whether values of `a` and `b` share a representation (so equal values are equal
/// keys without a cast).
pub(crate) fn same_representation(a: DataType, b: DataType) -> bool {
    a == b || (a.is_integer() && b.is_integer())
}

fn widest_integer(a: DataType, b: DataType) -> DataType {
    let rank = |t| match t {
        DataType::SmallInt => 0,
        DataType::Int => 1,
        _ => 2,
    };
    if rank(a) >= rank(b) { a } else { b }
}

fn decimal_parts(t: DataType) -> Option<(u8, u8)> {
    match t {
        DataType::Decimal { precision, scale } => Some((precision, scale)),
        t if t.is_integer() => Some((19, 0)),
        _ => None,
    }
}

fn decimal(int_digits: u32, scale: u32) -> DataType {
    let scale = scale.min(MAX_DECIMAL_PRECISION as u32);
    let precision = (int_digits + scale).clamp(1, MAX_DECIMAL_PRECISION as u32);
    DataType::Decimal { precision: precision as u8, scale: scale.min(precision) as u8 }
}

/// The type both `a` and `b` convert to, if any.
pub(crate) fn common_type(a: DataType, b: DataType) -> Option<DataType> {
    use DataType::*;
    Some(match (a, b) {
        _ if a == b => a,
        (Null, t) | (t, Null) => t,
        (x, y) if x.is_integer() && y.is_integer() => widest_integer(x, y),
        (Double, y) | (y, Double) if y.is_numeric() => Double,
        (Decimal { .. }, _) | (_, Decimal { .. }) if a.is_numeric() && b.is_numeric() => {
            let (pa, sa) = decimal_parts(a)?;
            let (pb, sb) = decimal_parts(b)?;
            let int = (pa - sa).max(pb - sb) as u32;
            decimal(int, sa.max(sb) as u32)
        }
        (Bool, y) | (y, Bool) if y.is_integer() => BigInt,
        (Text, Date) | (Date, Text) => Date,
        (Text, Timestamp) | (Timestamp, Text) | (Date, Timestamp) | (Timestamp, Date) => Timestamp,
        _ => return None,
    })
}

/// Whether `t` is a number or a boolean (which SQLite has as 0 and 1).
fn numberish(t: DataType) -> bool {
    t.is_numeric() || t == DataType::Bool
}

/// Under SQLite, the type of an expression whose value is one of several operands,
/// each keeping its class (CASE results, COALESCE, IFNULL, IIF, multi-argument MIN and
/// MAX, a column of UNION or VALUES): the common type where the classes agree
/// (integers of any width, doubles, decimals), else [`DataType::Number`] for numbers of
/// two classes, else [`DataType::Any`] for text meeting numbers.
pub(crate) fn sqlite_result_type(a: DataType, b: DataType) -> Option<DataType> {
    use DataType::*;
    let both = |p: fn(DataType) -> bool| p(a) && p(b);
    Some(match (a, b) {
        _ if a == b => a,
        (Null, t) | (t, Null) => t,
        _ if both(DataType::is_integer) => widest_integer(a, b),
        (Bool, y) | (y, Bool) if y.is_integer() => BigInt,
        (Decimal { .. }, y) | (y, Decimal { .. }) if y.is_integer() || matches!(y, Decimal { .. }) => {
            common_type(a, b)?
        }
        _ if both(numberish) => Number,
        (Any, y) | (y, Any) if y != Date && y != Timestamp => Any,
        (Text, y) | (y, Text) if numberish(y) => Any,
        _ => common_type(a, b)?,
    })
}

/// Under SQLite, the result type of `a op b` for an arithmetic operator: integers of
/// any width give a 64-bit integer (a real where it overflows, as in SQLite); a DOUBLE
/// operand makes every result a double; an operand whose class varies per value (text
/// is read as the number it spells, an integer or a real) makes the result
/// [`DataType::Number`]; otherwise as [`arithmetic_type`].
pub(crate) fn sqlite_arithmetic_type(op: ciuf_engine::expr::BinaryOp, a: DataType, b: DataType) -> Option<DataType> {
    use DataType::*;
    let varies = |t: DataType| matches!(t, Number | Any | Text);
    let operand = |t: DataType| numberish(t) || varies(t) || t == Null;
    if !(operand(a) && operand(b)) {
        return None;
    }
    if varies(a) || varies(b) {
        return Some(if a == Double || b == Double { Double } else { Number });
    }
    match arithmetic_type(op, a, b)? {
        t if t.is_integer() => Some(BigInt),
        t => Some(t),
    }
}

/// SQLite's affinity of an operand: a column has its column's; a CAST has its type's;
/// any other expression has none. A comparison applies one operand's affinity to the
/// other ([`crate::expr::ExprCtx::comparable`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Affinity {
    /// An expression: compared as it is.
    #[default]
    None,
    /// INTEGER or NUMERIC: text that is a number is read as that number.
    Numeric,
    /// REAL: as NUMERIC in a comparison; a compound SELECT's column of REAL affinity
    /// also gives its integers as reals to a query that reads it as a subquery.
    Real,
    /// TEXT: a number is compared as its text.
    Text,
}

impl Affinity {
    /// The affinity of a column (or a CAST) of type `ty`.
    pub fn of_type(ty: DataType) -> Affinity {
        match ty {
            DataType::Text => Affinity::Text,
            DataType::Double => Affinity::Real,
            t if numberish(t) => Affinity::Numeric,
            _ => Affinity::None,
        }
    }

    /// INTEGER, REAL or NUMERIC.
    pub fn is_numeric(self) -> bool {
        matches!(self, Affinity::Numeric | Affinity::Real)
    }

    /// The classes a column of this affinity may hold, as [`Origin::classes`] has them.
    pub fn classes(self) -> u8 {
        match self {
            Affinity::Numeric | Affinity::Real => NUMBERS | OTHER,
            Affinity::Text => TEXT | OTHER,
            Affinity::None => NUMBERS | TEXT | OTHER,
        }
    }
}

/// [`Origin::classes`]: numbers may occur.
pub(crate) const NUMBERS: u8 = 0x01;
/// [`Origin::classes`]: text may occur.
pub(crate) const TEXT: u8 = 0x02;
/// [`Origin::classes`]: anything else (SQLite's blobs; here, nothing).
pub(crate) const OTHER: u8 = 0x04;

/// What SQLite knows of the expression behind an output column, which decides the
/// affinity of a compound SELECT's column: which classes its values may have (SQLite's
/// rough rule: a string literal text, a number or arithmetic numbers, a column or CAST
/// what its affinity holds, a function or `||` anything), whether it is a CAST, and for
/// a compound's column, its operands so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Origin {
    pub classes: u8,
    pub cast: bool,
    pub arms: Option<Arms>,
}

impl Default for Origin {
    fn default() -> Origin {
        Origin { classes: NUMBERS | TEXT | OTHER, cast: false, arms: None }
    }
}

/// A compound SELECT's column, folded over its operands left to right: the affinity
/// of the first operand that has one, the classes of all the others, and whether the
/// leftmost operand is a CAST.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Arms {
    first: Affinity,
    others: u8,
    leftmost_cast: bool,
}

impl Arms {
    /// The column of one operand with `affinity` and `origin`.
    pub fn new(affinity: Affinity, origin: &Origin) -> Arms {
        match origin.arms {
            Some(arms) => arms,
            None => Arms {
                first: affinity,
                others: if affinity == Affinity::None { origin.classes } else { 0 },
                leftmost_cast: origin.cast,
            },
        }
    }

    /// The column with one more operand on the right.
    pub fn then(mut self, affinity: Affinity, origin: &Origin) -> Arms {
        if self.first == Affinity::None && affinity != Affinity::None {
            self.first = affinity;
        } else {
            self.others |= origin.classes;
        }
        self
    }

    /// The column's affinity, as SQLite (3.46) gives it: the first operand's that has
    /// one, unless another operand may hold what that affinity would convert (text
    /// beside a numeric affinity, numbers beside TEXT); a numeric affinity whose
    /// leftmost operand is a CAST only reads text as numbers.
    pub fn affinity(&self) -> Affinity {
        match self.first {
            Affinity::Text if self.others & NUMBERS != 0 => Affinity::None,
            a if a.is_numeric() && self.others & TEXT != 0 => Affinity::None,
            a if a.is_numeric() && self.leftmost_cast => Affinity::Numeric,
            a => a,
        }
    }
}

/// The result type of `a op b` for an arithmetic operator.
pub(crate) fn arithmetic_type(op: ciuf_engine::expr::BinaryOp, a: DataType, b: DataType) -> Option<DataType> {
    use DataType::*;
    use ciuf_engine::expr::BinaryOp::*;
    let num = |t: DataType| match t {
        Bool | Null => Some(BigInt),
        t if t.is_numeric() => Some(t),
        _ => None,
    };
    let (a, b) = (num(a)?, num(b)?);
    Some(match (a, b) {
        // PostgreSQL: the wider operand's type (int4 + int4 is int4, checked).
        (x, y) if x.is_integer() && y.is_integer() => widest_integer(x, y),
        (Double, _) | (_, Double) => Double,
        _ => match op {
            Div | Mod => Double,
            Add | Sub => {
                let (pa, sa) = decimal_parts(a)?;
                let (pb, sb) = decimal_parts(b)?;
                decimal((pa - sa).max(pb - sb) as u32 + 1, sa.max(sb) as u32)
            }
            Mul => {
                let (pa, sa) = decimal_parts(a)?;
                let (pb, sb) = decimal_parts(b)?;
                decimal((pa - sa) as u32 + (pb - sb) as u32, sa as u32 + sb as u32)
            }
            _ => return None,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ciuf_engine::expr::BinaryOp;

    #[test]
    fn common_types() {
        assert_eq!(common_type(DataType::Int, DataType::BigInt), Some(DataType::BigInt));
        assert_eq!(common_type(DataType::Int, DataType::Double), Some(DataType::Double));
        assert_eq!(
            common_type(DataType::Decimal { precision: 10, scale: 2 }, DataType::Int),
            Some(DataType::Decimal { precision: 21, scale: 2 })
        );
        assert_eq!(common_type(DataType::Text, DataType::BigInt), None);
        assert_eq!(common_type(DataType::Null, DataType::Text), Some(DataType::Text));
    }

    #[test]
    fn sqlite_keeps_each_values_class() {
        use DataType::*;
        assert_eq!(sqlite_result_type(BigInt, Double), Some(Number));
        assert_eq!(sqlite_result_type(Int, BigInt), Some(BigInt));
        assert_eq!(sqlite_result_type(Double, Double), Some(Double));
        assert_eq!(sqlite_result_type(Text, BigInt), Some(Any));
        assert_eq!(sqlite_result_type(Null, Number), Some(Number));
        assert_eq!(sqlite_result_type(Date, BigInt), None);
        assert_eq!(sqlite_arithmetic_type(BinaryOp::Div, Text, BigInt), Some(Number));
        assert_eq!(sqlite_arithmetic_type(BinaryOp::Div, Number, Double), Some(Double));
        assert_eq!(sqlite_arithmetic_type(BinaryOp::Div, BigInt, BigInt), Some(BigInt));
    }

    #[test]
    fn a_compounds_column_takes_the_first_affinity_unless_another_operand_contradicts_it() {
        let column = |affinity: Affinity| (affinity, Origin { classes: affinity.classes(), ..Origin::default() });
        let expr = (Affinity::None, Origin { classes: NUMBERS, ..Origin::default() });
        let text = column(Affinity::Text);
        let real = column(Affinity::Real);
        // An expression, then a REAL column: REAL.
        assert_eq!(Arms::new(expr.0, &expr.1).then(real.0, &real.1).affinity(), Affinity::Real);
        // A REAL column, then a TEXT column: none.
        assert_eq!(Arms::new(real.0, &real.1).then(text.0, &text.1).affinity(), Affinity::None);
        // A CAST … AS REAL first: it only reads text as numbers.
        let cast = (Affinity::Real, Origin { classes: NUMBERS | OTHER, cast: true, arms: None });
        assert_eq!(Arms::new(cast.0, &cast.1).then(expr.0, &expr.1).affinity(), Affinity::Numeric);
    }

    #[test]
    fn arithmetic_types() {
        let d = DataType::Decimal { precision: 10, scale: 2 };
        assert_eq!(arithmetic_type(BinaryOp::Div, DataType::Int, DataType::Int), Some(DataType::Int));
        assert_eq!(arithmetic_type(BinaryOp::Add, DataType::SmallInt, DataType::BigInt), Some(DataType::BigInt));
        assert_eq!(arithmetic_type(BinaryOp::Mul, d, d), Some(DataType::Decimal { precision: 20, scale: 4 }));
        assert_eq!(arithmetic_type(BinaryOp::Add, d, DataType::Double), Some(DataType::Double));
        assert_eq!(arithmetic_type(BinaryOp::Add, DataType::Text, DataType::Int), None);
    }
}
