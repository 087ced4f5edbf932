//! Rows to Arrow: the one place where the engine meets Arrow.
//!
//! A view's rows become one `RecordBatch` whose schema is the view's visible columns
//! with their Arrow types (see [`crate::types::DataType::arrow_type`]). A row stored
//! with multiplicity n appears n times.
//!
//! One exception: under SQLite's rules an integer computation that overflows 64 bits
//! gives a real, as SQLite's does. An integer column holding such a value reads as
//! Float64 in that batch (its field says so), rather than as a wrong integer.

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
/// value `positions[i]` of each row, of type `types[i]`. Rows are read once each, all
/// columns together (a row is one allocation; visiting it once is one cache miss).
pub fn rows_to_batch<'a, I>(
    schema: &SchemaRef,
    types: &[DataType],
    positions: &[usize],
    rows: I,
    n_rows: usize,
) -> RecordBatch
where
    I: Iterator<Item = (&'a Row, usize)>,
{
    let mut builders: Vec<ColumnBuilder> = types.iter().map(|t| ColumnBuilder::new(*t, n_rows)).collect();
    let rows: Vec<(&Row, usize)> = rows.collect();
    for &(row, n) in crate::row::prefetched(&rows, |(r, _)| r) {
        for _ in 0..n {
            for (b, &p) in builders.iter_mut().zip(positions) {
                b.append(&row.get(p));
            }
        }
    }
    let widened = builders.iter().any(|b| b.widened);
    let columns: Vec<ArrayRef> = builders.into_iter().map(ColumnBuilder::finish).collect();
    let schema = if widened {
        // Integer columns that met an overflowed value read as doubles.
        let fields: Vec<Field> = schema
            .fields()
            .iter()
            .zip(&columns)
            .map(|(f, c)| f.as_ref().clone().with_data_type(c.data_type().clone()))
            .collect();
        Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
    } else {
        Arc::clone(schema)
    };
    RecordBatch::try_new_with_options(schema, columns, &RecordBatchOptions::new().with_row_count(Some(n_rows)))
        .expect("columns built to the schema")
}

/// The value as type `t`, converting if an expression produced another representation
/// (an integer overflow that became a DOUBLE, say).
fn as_type(v: &Value, t: DataType) -> std::borrow::Cow<'_, Value> {
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

/// An Arrow array under construction for a column of type `ty`.
struct ColumnBuilder {
    ty: DataType,
    builder: Builder,
    /// An integer column turned into doubles by a value that overflowed into a real.
    widened: bool,
}

/// The Arrow builder, by column type.
enum Builder {
    Bool(BooleanBuilder),
    SmallInt(Int16Builder),
    Int(Int32Builder),
    BigInt(Int64Builder),
    Double(Float64Builder),
    Decimal(Decimal128Builder, u8),
    Text(StringBuilder),
    Date(Date32Builder),
    Timestamp(TimestampMicrosecondBuilder),
    Null(NullBuilder),
}

impl ColumnBuilder {
    fn new(t: DataType, n: usize) -> ColumnBuilder {
        // A column whose values decide their own class is read as the one Arrow type
        // that holds them all: numbers as doubles, anything as its text.
        let t = match t {
            DataType::Number => DataType::Double,
            DataType::Any => DataType::Text,
            t => t,
        };
        let builder = match t {
            DataType::Bool => Builder::Bool(BooleanBuilder::with_capacity(n)),
            DataType::SmallInt => Builder::SmallInt(Int16Builder::with_capacity(n)),
            DataType::Int => Builder::Int(Int32Builder::with_capacity(n)),
            DataType::BigInt => Builder::BigInt(Int64Builder::with_capacity(n)),
            DataType::Double => Builder::Double(Float64Builder::with_capacity(n)),
            DataType::Decimal { precision, scale } => Builder::Decimal(
                Decimal128Builder::with_capacity(n)
                    .with_precision_and_scale(precision, scale as i8)
                    .expect("precision and scale checked at planning"),
                scale,
            ),
            DataType::Text => Builder::Text(StringBuilder::with_capacity(n, n * 8)),
            DataType::Date => Builder::Date(Date32Builder::with_capacity(n)),
            DataType::Timestamp => Builder::Timestamp(TimestampMicrosecondBuilder::with_capacity(n)),
            DataType::Null => Builder::Null(NullBuilder::new()),
            DataType::Number | DataType::Any => unreachable!("mapped above"),
        };
        ColumnBuilder { ty: t, builder, widened: false }
    }

    /// Turns an integer column into doubles, with the values appended so far.
    #[cold]
    fn widen(&mut self) {
        let Builder::BigInt(ints) = &mut self.builder else { return };
        let ints = ints.finish();
        let mut doubles = Float64Builder::with_capacity(ints.len());
        doubles.extend(ints.iter().map(|i| i.map(|i| i as f64)));
        self.builder = Builder::Double(doubles);
        self.ty = DataType::Double;
        self.widened = true;
    }

    #[inline]
    fn append(&mut self, v: &Value) {
        if let (Value::Float(_), Builder::BigInt(_)) = (v, &self.builder) {
            self.widen();
        }
        let v = as_type(v, self.ty);
        match (&mut self.builder, &*v) {
            (Builder::Bool(b), Value::Bool(x)) => b.append_value(*x),
            (Builder::SmallInt(b), Value::Int(x)) => b.append_value(*x as i16),
            (Builder::Int(b), Value::Int(x)) => b.append_value(*x as i32),
            (Builder::BigInt(b), Value::Int(x)) => b.append_value(*x),
            (Builder::Double(b), Value::Float(x)) => b.append_value(*x),
            (Builder::Decimal(b, scale), Value::Decimal(d)) => match d.rescale(*scale) {
                Some(d) => b.append_value(d.mantissa()),
                None => b.append_null(),
            },
            (Builder::Text(b), Value::Text(s)) => b.append_value(s.as_str()),
            (Builder::Date(b), Value::Date(x)) => b.append_value(*x),
            (Builder::Timestamp(b), Value::Timestamp(x)) => b.append_value(*x),
            (Builder::Bool(b), _) => b.append_null(),
            (Builder::SmallInt(b), _) => b.append_null(),
            (Builder::Int(b), _) => b.append_null(),
            (Builder::BigInt(b), _) => b.append_null(),
            (Builder::Double(b), _) => b.append_null(),
            (Builder::Decimal(b, _), _) => b.append_null(),
            (Builder::Text(b), _) => b.append_null(),
            (Builder::Date(b), _) => b.append_null(),
            (Builder::Timestamp(b), _) => b.append_null(),
            (Builder::Null(b), _) => b.append_null(),
        }
    }

    fn finish(self) -> ArrayRef {
        match self.builder {
            Builder::Bool(mut b) => Arc::new(b.finish()),
            Builder::SmallInt(mut b) => Arc::new(b.finish()),
            Builder::Int(mut b) => Arc::new(b.finish()),
            Builder::BigInt(mut b) => Arc::new(b.finish()),
            Builder::Double(mut b) => Arc::new(b.finish()),
            Builder::Decimal(mut b, _) => Arc::new(b.finish()),
            Builder::Text(mut b) => Arc::new(b.finish()),
            Builder::Date(mut b) => Arc::new(b.finish()),
            Builder::Timestamp(mut b) => Arc::new(b.finish()),
            Builder::Null(mut b) => Arc::new(b.finish()),
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
    fn columns_whose_values_keep_their_class_read_as_one_arrow_type() {
        use arrow_array::types::Float64Type;
        let cols = vec![Column::new("n", DataType::Number), Column::new("a", DataType::Any)];
        let schema = arrow_schema(&cols);
        let rows = [row![3, 2.5], row![2.5, "x"], row![None::<i64>, 7]];
        let batch = rows_to_batch(&schema, &[DataType::Number, DataType::Any], &[0, 1], rows.iter().zip([1, 1, 1]), 3);
        let n = batch.column(0).as_primitive::<Float64Type>();
        assert_eq!((n.value(0), n.value(1), n.is_null(2)), (3.0, 2.5, true));
        let a = batch.column(1).as_string::<i32>();
        assert_eq!((a.value(0), a.value(1), a.value(2)), ("2.5", "x", "7"));
    }

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
