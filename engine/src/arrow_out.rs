//! Rows to Arrow: the one place where the engine meets Arrow.
//!
//! A view's rows become one `RecordBatch` whose schema is the view's visible columns
//! with their Arrow types (see [`crate::types::DataType::arrow_type`]). A row stored
//! with multiplicity n appears n times.

use std::sync::Arc;

use arrow_array::builder::{
    BooleanBuilder, Date32Builder, Decimal128Builder, Float64Builder, Int16Builder, Int32Builder, Int64Builder,
    NullBuilder, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch, RecordBatchOptions};
use arrow_schema::{Field, Schema, SchemaRef};

use crate::expr::cast::cast;
use crate::row::Row;
use crate::types::{Column, DataType};
use crate::value::Value;

/// The Arrow schema of `columns`. Every field is nullable: what SQL can prove never
/// NULL is narrower than what a row can hold after a cast or an outer join, and a
/// reader must never be refused a batch over it.
pub fn arrow_schema(columns: &[Column]) -> SchemaRef {
    Arc::new(Schema::new(
        columns.iter().map(|c| Field::new(&c.name, c.data_type.arrow_type(), true)).collect::<Vec<_>>(),
    ))
}

/// Builds a batch of `schema` from `rows` (row, multiplicity): column `i` of the batch is
/// value `positions[i]` of each row, of type `types[i]`.
pub fn rows_to_batch<'a, I>(
    schema: &SchemaRef,
    types: &[DataType],
    positions: &[usize],
    rows: I,
    n_rows: usize,
) -> RecordBatch
where
    I: Iterator<Item = (&'a Row, usize)> + Clone,
{
    let columns: Vec<ArrayRef> = types
        .iter()
        .zip(positions)
        .map(|(t, &p)| build_column(*t, rows.clone().flat_map(move |(r, n)| std::iter::repeat_n(&r[p], n)), n_rows))
        .collect();
    RecordBatch::try_new_with_options(
        Arc::clone(schema),
        columns,
        &RecordBatchOptions::new().with_row_count(Some(n_rows)),
    )
    .expect("columns built to the schema")
}

/// The value as type `t`, converting if an expression produced another representation
/// (an integer overflow that became a DOUBLE, say).
fn as_type<'v>(v: &'v Value, t: DataType) -> std::borrow::Cow<'v, Value> {
    let fits = matches!(
        (v, t),
        (Value::Null, _)
            | (Value::Bool(_), DataType::Bool)
            | (Value::Int(_), DataType::SmallInt | DataType::Int | DataType::BigInt)
            | (Value::Float(_), DataType::Double)
            | (Value::Decimal(_), DataType::Decimal { .. })
            | (Value::Text(_), DataType::Text)
            | (Value::Date(_), DataType::Date)
            | (Value::Timestamp(_), DataType::Timestamp)
    );
    if fits { std::borrow::Cow::Borrowed(v) } else { std::borrow::Cow::Owned(cast(v, t)) }
}

fn build_column<'a>(t: DataType, values: impl Iterator<Item = &'a Value>, n: usize) -> ArrayRef {
    macro_rules! build {
        ($builder:expr, $pat:pat => $val:expr) => {{
            let mut b = $builder;
            for v in values {
                match &*as_type(v, t) {
                    $pat => b.append_value($val),
                    _ => b.append_null(),
                }
            }
            Arc::new(b.finish()) as ArrayRef
        }};
    }
    match t {
        DataType::Bool => build!(BooleanBuilder::with_capacity(n), Value::Bool(x) => *x),
        DataType::SmallInt => build!(Int16Builder::with_capacity(n), Value::Int(x) => *x as i16),
        DataType::Int => build!(Int32Builder::with_capacity(n), Value::Int(x) => *x as i32),
        DataType::BigInt => build!(Int64Builder::with_capacity(n), Value::Int(x) => *x),
        DataType::Double => build!(Float64Builder::with_capacity(n), Value::Float(x) => *x),
        DataType::Decimal { precision, scale } => {
            let mut b = Decimal128Builder::with_capacity(n)
                .with_precision_and_scale(precision, scale as i8)
                .expect("precision and scale checked at planning");
            for v in values {
                match &*as_type(v, t) {
                    Value::Decimal(d) => match d.rescale(scale) {
                        Some(d) => b.append_value(d.mantissa()),
                        None => b.append_null(),
                    },
                    _ => b.append_null(),
                }
            }
            Arc::new(b.finish())
        }
        DataType::Text => {
            let mut b = StringBuilder::with_capacity(n, n * 8);
            for v in values {
                match &*as_type(v, t) {
                    Value::Text(s) => b.append_value(s.as_str()),
                    _ => b.append_null(),
                }
            }
            Arc::new(b.finish())
        }
        DataType::Date => build!(Date32Builder::with_capacity(n), Value::Date(x) => *x),
        DataType::Timestamp => {
            build!(TimestampMicrosecondBuilder::with_capacity(n), Value::Timestamp(x) => *x)
        }
        DataType::Null => {
            let mut b = NullBuilder::new();
            b.append_nulls(n);
            Arc::new(b.finish())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::row;
    use arrow_array::Array;
    use arrow_array::cast::AsArray;
    use arrow_array::types::Int64Type;

    #[test]
    fn multiplicities_repeat_rows() {
        let cols = vec![Column::new("a", DataType::BigInt), Column::new("b", DataType::Text)];
        let schema = arrow_schema(&cols);
        let rows = [row![1, "x"], row![None::<i64>, "y"]];
        let batch = rows_to_batch(&schema, &[DataType::BigInt, DataType::Text], &[0, 1], rows.iter().zip([2, 1]), 3);
        assert_eq!(batch.num_rows(), 3);
        let a = batch.column(0).as_primitive::<Int64Type>();
        assert_eq!((a.value(0), a.value(1), a.is_null(2)), (1, 1, true));
        assert_eq!(batch.column(1).as_string::<i32>().value(2), "y");
    }
}
