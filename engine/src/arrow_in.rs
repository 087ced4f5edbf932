//! Arrow to rows: record batches given as input (an Arrow table, a polars or pandas
//! frame handed over through the Arrow C interfaces) become a table's rows.
//!
//! Columns are matched to the table's columns by name; a table column the batch does
//! not have is NULL, a batch column the table does not have is an error (it is more
//! likely a typo than data to drop). Each column is converted in one pass over its
//! array, with the array's type resolved once, not per value. The values are then
//! checked and coerced by the table like any other row, so a batch is refused whole,
//! with the same errors, where a row of it would be.

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Date64Type, Decimal128Type, Float16Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type,
    Int64Type, TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType,
    UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use arrow_array::{Array, ArrowPrimitiveType, RecordBatch};
use arrow_schema::{DataType as ArrowType, TimeUnit};

use crate::decimal::Decimal;
use crate::error::{Result, SchemaError, nearest_name};
use crate::types::TableSchema;
use crate::value::Value;

/// The rows of `batch` as rows of the table `schema`, in the table's column order.
pub fn batch_rows(schema: &TableSchema, batch: &RecordBatch) -> Result<Vec<Vec<Value>>> {
    let width = schema.columns.len();
    let n = batch.num_rows();
    let mut targets = Vec::with_capacity(batch.num_columns());
    for field in batch.schema_ref().fields() {
        let Some(c) = schema.column_index(field.name()) else {
            return Err(SchemaError::UnknownColumn {
                table: schema.name.clone(),
                column: crate::error::shown(field.name()).into_owned(),
                suggestion: nearest_name(field.name(), schema.columns.iter().map(|c| c.name.as_str())),
            }
            .into());
        };
        if targets.contains(&c) {
            return Err(SchemaError::InvalidTable {
                table: schema.name.clone(),
                detail: format!("the batch has column {} twice", schema.columns[c].name),
            }
            .into());
        }
        targets.push(c);
    }
    let mut rows: Vec<Vec<Value>> = (0..n).map(|_| vec![Value::Null; width]).collect();
    for (array, &c) in batch.columns().iter().zip(&targets) {
        let values = column_values(array.as_ref()).map_err(|detail| SchemaError::Type {
            table: schema.name.clone(),
            column: schema.columns[c].name.clone(),
            expected: schema.columns[c].data_type.to_string(),
            detail,
        })?;
        for (row, v) in rows.iter_mut().zip(values) {
            row[c] = v;
        }
    }
    Ok(rows)
}

/// Every value of `array`, NULLs included, or why the array's type is not readable.
fn column_values(array: &dyn Array) -> std::result::Result<Vec<Value>, String> {
    let values = match array.data_type() {
        ArrowType::Null => vec![Value::Null; array.len()],
        ArrowType::Boolean => array.as_boolean().iter().map(|v| v.map_or(Value::Null, Value::Bool)).collect(),
        ArrowType::Int8 => ints::<Int8Type>(array, i64::from),
        ArrowType::Int16 => ints::<Int16Type>(array, i64::from),
        ArrowType::Int32 => ints::<Int32Type>(array, i64::from),
        ArrowType::Int64 => ints::<Int64Type>(array, |v| v),
        ArrowType::UInt8 => ints::<UInt8Type>(array, i64::from),
        ArrowType::UInt16 => ints::<UInt16Type>(array, i64::from),
        ArrowType::UInt32 => ints::<UInt32Type>(array, i64::from),
        ArrowType::UInt64 => {
            return array
                .as_primitive::<UInt64Type>()
                .iter()
                .map(|v| match v {
                    None => Ok(Value::Null),
                    Some(v) => {
                        i64::try_from(v).map(Value::Int).map_err(|_| format!("got unsigned {v}, beyond BIGINT's range"))
                    }
                })
                .collect();
        }
        ArrowType::Float16 => floats::<Float16Type>(array, f64::from),
        ArrowType::Float32 => floats::<Float32Type>(array, f64::from),
        ArrowType::Float64 => floats::<Float64Type>(array, |v| v),
        ArrowType::Utf8 => texts(array.as_string::<i32>().iter()),
        ArrowType::LargeUtf8 => texts(array.as_string::<i64>().iter()),
        ArrowType::Utf8View => texts(array.as_string_view().iter()),
        ArrowType::Decimal128(_, scale) => {
            let scale = u8::try_from(*scale).map_err(|_| format!("got a decimal of negative scale {scale}"))?;
            return array
                .as_primitive::<Decimal128Type>()
                .iter()
                .map(|v| match v {
                    None => Ok(Value::Null),
                    Some(m) => Decimal::new(m, scale).map(Value::from).ok_or_else(|| {
                        format!("got a decimal beyond ciuf's {} digits", crate::types::MAX_DECIMAL_PRECISION)
                    }),
                })
                .collect();
        }
        ArrowType::Date32 => {
            array.as_primitive::<Date32Type>().iter().map(|v| v.map_or(Value::Null, Value::Date)).collect()
        }
        ArrowType::Date64 => {
            let ms_per_day = 86_400_000;
            return array
                .as_primitive::<Date64Type>()
                .iter()
                .map(|v| match v {
                    None => Ok(Value::Null),
                    Some(ms) => i32::try_from(ms.div_euclid(ms_per_day))
                        .map(Value::Date)
                        .map_err(|_| format!("got a date {ms} ms from 1970, out of range")),
                })
                .collect();
        }
        ArrowType::Timestamp(unit, _) => match unit {
            TimeUnit::Second => timestamps::<TimestampSecondType>(array, |v| v.checked_mul(1_000_000))?,
            TimeUnit::Millisecond => timestamps::<TimestampMillisecondType>(array, |v| v.checked_mul(1_000))?,
            TimeUnit::Microsecond => timestamps::<TimestampMicrosecondType>(array, Some)?,
            TimeUnit::Nanosecond => timestamps::<TimestampNanosecondType>(array, |v| Some(v.div_euclid(1_000)))?,
        },
        ArrowType::Dictionary(_, _) => {
            // Categorical columns (pandas, polars): the dictionary's values, looked up.
            let dict = array.as_any_dictionary();
            let values = column_values(dict.values().as_ref())?;
            let keys = dict.normalized_keys();
            let nulls = array.logical_nulls();
            return Ok(keys
                .iter()
                .enumerate()
                .map(|(i, &k)| match &nulls {
                    Some(n) if n.is_null(i) => Value::Null,
                    _ => values.get(k).cloned().unwrap_or(Value::Null),
                })
                .collect());
        }
        other => return Err(format!("got Arrow type {other}, which ciuf does not read")),
    };
    Ok(values)
}

fn ints<T: ArrowPrimitiveType>(array: &dyn Array, to_i64: impl Fn(T::Native) -> i64) -> Vec<Value> {
    array.as_primitive::<T>().iter().map(|v| v.map_or(Value::Null, |v| Value::Int(to_i64(v)))).collect()
}

fn floats<T: ArrowPrimitiveType>(array: &dyn Array, to_f64: impl Fn(T::Native) -> f64) -> Vec<Value> {
    array.as_primitive::<T>().iter().map(|v| v.map_or(Value::Null, |v| Value::Float(to_f64(v)))).collect()
}

fn texts<'a>(values: impl Iterator<Item = Option<&'a str>>) -> Vec<Value> {
    values.map(|v| v.map_or(Value::Null, Value::text)).collect()
}

fn timestamps<T: ArrowPrimitiveType<Native = i64>>(
    array: &dyn Array,
    to_micros: impl Fn(i64) -> Option<i64>,
) -> std::result::Result<Vec<Value>, String> {
    array
        .as_primitive::<T>()
        .iter()
        .map(|v| match v {
            None => Ok(Value::Null),
            Some(v) => to_micros(v).map(Value::Timestamp).ok_or_else(|| format!("got a timestamp {v} out of range")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{
        ArrayRef, DictionaryArray, Float32Array, Int32Array, StringArray, StringViewArray, TimestampMillisecondArray,
    };

    use super::*;
    use crate::types::{Column, DataType};

    fn orders() -> TableSchema {
        TableSchema::new(
            "orders",
            vec![
                Column::new("id", DataType::BigInt),
                Column::new("status", DataType::Text),
                Column::new("amount", DataType::Double),
                Column::new("at", DataType::Timestamp),
            ],
        )
    }

    fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
        RecordBatch::try_from_iter(columns).unwrap()
    }

    #[test]
    fn columns_match_by_name_and_missing_ones_are_null() {
        let b = batch(vec![
            ("AMOUNT", Arc::new(Float32Array::from(vec![Some(1.5), None])) as ArrayRef),
            ("id", Arc::new(Int32Array::from(vec![1, 2]))),
            ("status", Arc::new(StringViewArray::from(vec![Some("paid"), Some("x")]))),
        ]);
        let rows = batch_rows(&orders(), &b).unwrap();
        assert_eq!(rows[0], vec![Value::Int(1), Value::text("paid"), Value::Float(1.5), Value::Null]);
        assert_eq!(rows[1], vec![Value::Int(2), Value::text("x"), Value::Null, Value::Null]);
    }

    #[test]
    fn timestamps_and_dictionaries_are_read() {
        let dict: DictionaryArray<Int32Type> = vec![Some("paid"), None, Some("paid")].into_iter().collect();
        let b = batch(vec![
            ("status", Arc::new(dict) as ArrayRef),
            ("at", Arc::new(TimestampMillisecondArray::from(vec![1_000, -1, 2]))),
        ]);
        let rows = batch_rows(&orders(), &b).unwrap();
        assert_eq!(rows[0][1], Value::text("paid"));
        assert_eq!(rows[1][1], Value::Null);
        assert_eq!(rows[0][3], Value::Timestamp(1_000_000));
        assert_eq!(rows[1][3], Value::Timestamp(-1_000));
    }

    #[test]
    fn an_unknown_column_is_named_with_a_suggestion() {
        let b = batch(vec![("amout", Arc::new(StringArray::from(vec!["1"])) as ArrayRef)]);
        let err = batch_rows(&orders(), &b).unwrap_err().to_string();
        assert!(err.contains("no column amout") && err.contains("did you mean amount"), "{err}");
    }
}
