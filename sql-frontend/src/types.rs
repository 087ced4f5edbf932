//! Type rules: SQL type names, common types, and the result types of operators.
//!
//! Integers of any width share one representation (`i64`), so mixing them needs no
//! cast; the wider declared width wins. Mixing an integer with a DECIMAL gives a
//! DECIMAL, and anything with a DOUBLE gives a DOUBLE. Text meets dates and timestamps
//! by being read as one.

use ciuf_engine::types::MAX_DECIMAL_PRECISION;
use ciuf_engine::{DataType, Error};
use sqlparser::ast::{self, ExactNumberInfo};

use crate::error::{type_error, unsupported};

/// The engine type for an SQL type name.
pub(crate) fn sql_type(t: &ast::DataType, span: sqlparser::tokenizer::Span) -> Result<DataType, Error> {
    use ast::DataType as T;
    Ok(match t {
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
        (x, y) if x.is_integer() && y.is_integer() => BigInt,
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
    fn arithmetic_types() {
        let d = DataType::Decimal { precision: 10, scale: 2 };
        assert_eq!(arithmetic_type(BinaryOp::Div, DataType::Int, DataType::Int), Some(DataType::BigInt));
        assert_eq!(arithmetic_type(BinaryOp::Mul, d, d), Some(DataType::Decimal { precision: 20, scale: 4 }));
        assert_eq!(arithmetic_type(BinaryOp::Add, d, DataType::Double), Some(DataType::Double));
        assert_eq!(arithmetic_type(BinaryOp::Add, DataType::Text, DataType::Int), None);
    }
}
