//! The bytes of what the state directory holds: values, rows, schemas and view
//! definitions, little-endian with LEB128 lengths and zigzag integers — compact for
//! the small integers and short texts most rows hold, and read back without copying
//! more than the values themselves.

use std::time::Duration;

use ciuf_engine::view::PartialLimits;
use ciuf_engine::{Column, DataType, Decimal, Row, TableSchema, TextInterner, Value};

/// Bytes being written.
#[derive(Debug, Default)]
pub struct Out {
    pub bytes: Vec<u8>,
}

impl Out {
    pub fn u8(&mut self, v: u8) {
        self.bytes.push(v);
    }

    pub fn u64(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.bytes.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.bytes.push(v as u8);
    }

    pub fn i64(&mut self, v: i64) {
        self.u64(((v << 1) ^ (v >> 63)) as u64);
    }

    pub fn str(&mut self, s: &str) {
        self.u64(s.len() as u64);
        self.bytes.extend_from_slice(s.as_bytes());
    }

    pub fn opt_str(&mut self, s: Option<&str>) {
        match s {
            None => self.u8(0),
            Some(s) => {
                self.u8(1);
                self.str(s);
            }
        }
    }

    pub fn opt_u64(&mut self, v: Option<u64>) {
        match v {
            None => self.u8(0),
            Some(v) => {
                self.u8(1);
                self.u64(v);
            }
        }
    }

    pub fn value(&mut self, v: &Value) {
        match v {
            Value::Null => self.u8(0),
            Value::Bool(false) => self.u8(1),
            Value::Bool(true) => self.u8(2),
            Value::Int(i) => {
                self.u8(3);
                self.i64(*i);
            }
            Value::Float(f) => {
                self.u8(4);
                self.bytes.extend_from_slice(&f.to_bits().to_le_bytes());
            }
            Value::Decimal(d) => {
                self.u8(5);
                self.bytes.extend_from_slice(&d.mantissa().to_le_bytes());
                self.u8(d.scale());
            }
            Value::Text(s) => {
                self.u8(6);
                self.str(s.as_str());
            }
            Value::Date(d) => {
                self.u8(7);
                self.i64(i64::from(*d));
            }
            Value::Timestamp(t) => {
                self.u8(8);
                self.i64(*t);
            }
        }
    }

    pub fn row(&mut self, row: &Row) {
        self.u64(row.len() as u64);
        for v in row.iter() {
            self.value(&v);
        }
    }

    pub fn data_type(&mut self, t: DataType) {
        match t {
            DataType::Bool => self.u8(0),
            DataType::SmallInt => self.u8(1),
            DataType::Int => self.u8(2),
            DataType::BigInt => self.u8(3),
            DataType::Double => self.u8(4),
            DataType::Decimal { precision, scale } => {
                self.u8(5);
                self.u8(precision);
                self.u8(scale);
            }
            DataType::Text => self.u8(6),
            DataType::Date => self.u8(7),
            DataType::Timestamp => self.u8(8),
            DataType::Null => self.u8(9),
            DataType::Number => self.u8(10),
            DataType::Any => self.u8(11),
        }
    }

    pub fn schema(&mut self, s: &TableSchema) {
        self.str(&s.name);
        self.u64(s.columns.len() as u64);
        for c in &s.columns {
            self.str(&c.name);
            self.data_type(c.data_type);
            self.u8(u8::from(c.nullable));
        }
        match &s.primary_key {
            None => self.u8(0),
            Some(key) => {
                self.u8(1);
                self.u64(key.len() as u64);
                for &k in key {
                    self.u64(k as u64);
                }
            }
        }
    }

    pub fn limits(&mut self, l: Option<&PartialLimits>) {
        match l {
            None => self.u8(0),
            Some(l) => {
                self.u8(1);
                self.opt_u64(l.idle.map(|d| d.as_millis() as u64));
                self.opt_u64(l.max_keys.map(|n| n as u64));
                self.opt_u64(l.max_bytes.map(|n| n as u64));
            }
        }
    }
}

/// Bytes being read; every read fails (with what was expected) rather than panics
/// on bytes that end early or hold what no writer wrote.
#[derive(Debug)]
pub struct In<'a> {
    bytes: &'a [u8],
}

/// Bytes that do not decode: the record they belong to is damaged.
#[derive(Debug)]
pub struct Malformed(pub &'static str);

type Read<T> = Result<T, Malformed>;

impl<'a> In<'a> {
    pub fn new(bytes: &'a [u8]) -> In<'a> {
        In { bytes }
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    fn take(&mut self, n: usize, what: &'static str) -> Read<&'a [u8]> {
        if self.bytes.len() < n {
            return Err(Malformed(what));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    pub fn u8(&mut self) -> Read<u8> {
        Ok(self.take(1, "a byte")?[0])
    }

    pub fn u64(&mut self) -> Read<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(Malformed("a number"))
    }

    pub fn i64(&mut self) -> Read<i64> {
        let v = self.u64()?;
        Ok(((v >> 1) as i64) ^ -((v & 1) as i64))
    }

    /// A count of things each at least one byte long (so a damaged count cannot ask
    /// for more memory than the record has bytes).
    pub fn count(&mut self) -> Read<usize> {
        let n = self.u64()?;
        if n > self.bytes.len() as u64 {
            return Err(Malformed("a count"));
        }
        Ok(n as usize)
    }

    pub fn str(&mut self) -> Read<&'a str> {
        let n = self.count()?;
        std::str::from_utf8(self.take(n, "text")?).map_err(|_| Malformed("UTF-8 text"))
    }

    pub fn opt_str(&mut self) -> Read<Option<&'a str>> {
        match self.u8()? {
            0 => Ok(None),
            1 => self.str().map(Some),
            _ => Err(Malformed("an optional text")),
        }
    }

    pub fn opt_u64(&mut self) -> Read<Option<u64>> {
        match self.u8()? {
            0 => Ok(None),
            1 => self.u64().map(Some),
            _ => Err(Malformed("an optional number")),
        }
    }

    pub fn value(&mut self) -> Read<Value> {
        Ok(match self.u8()? {
            0 => Value::Null,
            1 => Value::Bool(false),
            2 => Value::Bool(true),
            3 => Value::Int(self.i64()?),
            4 => {
                Value::Float(f64::from_bits(u64::from_le_bytes(self.take(8, "a double")?.try_into().expect("8 bytes"))))
            }
            5 => {
                let m = i128::from_le_bytes(self.take(16, "a decimal")?.try_into().expect("16 bytes"));
                let scale = self.u8()?;
                Value::Decimal(std::sync::Arc::new(Decimal::new(m, scale).ok_or(Malformed("a decimal"))?))
            }
            6 => Value::text(self.str()?),
            7 => Value::Date(i32::try_from(self.i64()?).map_err(|_| Malformed("a date"))?),
            8 => Value::Timestamp(self.i64()?),
            _ => return Err(Malformed("a value")),
        })
    }

    pub fn row(&mut self) -> Read<Row> {
        let n = self.count()?;
        let mut values = Vec::with_capacity(n);
        for _ in 0..n {
            values.push(self.value()?);
        }
        Ok(Row::new(values))
    }

    /// A row of a table whose repeated short text `texts` shares.
    pub fn table_row(&mut self, texts: &mut SharedTexts) -> Read<Row> {
        let n = self.count()?;
        let mut values = Vec::with_capacity(n);
        for column in 0..n {
            values.push(match self.bytes.first() {
                Some(6) => {
                    self.u8()?;
                    texts.text(column, self.str()?)
                }
                _ => self.value()?,
            });
        }
        Ok(Row::new(values))
    }

    pub fn data_type(&mut self) -> Read<DataType> {
        Ok(match self.u8()? {
            0 => DataType::Bool,
            1 => DataType::SmallInt,
            2 => DataType::Int,
            3 => DataType::BigInt,
            4 => DataType::Double,
            5 => DataType::Decimal { precision: self.u8()?, scale: self.u8()? },
            6 => DataType::Text,
            7 => DataType::Date,
            8 => DataType::Timestamp,
            9 => DataType::Null,
            10 => DataType::Number,
            11 => DataType::Any,
            _ => return Err(Malformed("a column type")),
        })
    }

    pub fn schema(&mut self) -> Read<TableSchema> {
        let name = self.str()?.to_string();
        let n = self.count()?;
        let mut columns = Vec::with_capacity(n);
        for _ in 0..n {
            let name = self.str()?.to_string();
            let data_type = self.data_type()?;
            let nullable = self.u8()? != 0;
            columns.push(Column { name, data_type, nullable });
        }
        let primary_key = match self.u8()? {
            0 => None,
            1 => {
                let k = self.count()?;
                let mut key = Vec::with_capacity(k);
                for _ in 0..k {
                    let i = self.u64()? as usize;
                    if i >= columns.len() {
                        return Err(Malformed("a primary key column"));
                    }
                    key.push(i);
                }
                Some(key)
            }
            _ => return Err(Malformed("a primary key")),
        };
        Ok(TableSchema { name, columns, primary_key })
    }

    pub fn limits(&mut self) -> Read<Option<PartialLimits>> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(PartialLimits {
                idle: self.opt_u64()?.map(Duration::from_millis),
                max_keys: self.opt_u64()?.map(|n| n as usize),
                max_bytes: self.opt_u64()?.map(|n| n as usize),
            })),
            _ => Err(Malformed("view options")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_rows_and_schemas_read_back_as_written() {
        let values = vec![
            Value::Null,
            Value::Bool(true),
            Value::Bool(false),
            Value::Int(i64::MIN),
            Value::Int(-1),
            Value::Int(300),
            Value::Int(i64::MAX),
            Value::Float(-0.0),
            Value::Float(f64::NAN),
            Value::Float(1.5e300),
            Value::Decimal(std::sync::Arc::new(Decimal::new(-123_456_789_012_345_678_901_234_567, 9).unwrap())),
            Value::text(""),
            Value::text("é💥"),
            Value::Date(-719_162),
            Value::Timestamp(253_402_300_799_999_999),
        ];
        let row = Row::new(values.clone());
        let schema = TableSchema {
            name: "t".into(),
            columns: vec![
                Column::new("a", DataType::Decimal { precision: 35, scale: 3 }),
                Column::new("b", DataType::Any).not_null(),
            ],
            primary_key: Some(vec![1]),
        };
        let mut out = Out::default();
        out.row(&row);
        out.schema(&schema);
        out.limits(Some(&PartialLimits { idle: Some(Duration::from_secs(5)), max_keys: None, max_bytes: Some(9) }));
        let mut inp = In::new(&out.bytes);
        let back = inp.row().unwrap();
        for (a, b) in back.iter().zip(&values) {
            match (&*a, b) {
                (Value::Float(x), Value::Float(y)) => assert_eq!(x.to_bits(), y.to_bits()),
                (x, y) => assert_eq!(x, y),
            }
        }
        assert_eq!(inp.schema().unwrap(), schema);
        let l = inp.limits().unwrap().unwrap();
        assert_eq!((l.idle, l.max_keys, l.max_bytes), (Some(Duration::from_secs(5)), None, Some(9)));
        assert!(inp.is_empty());
    }

    #[test]
    fn damaged_bytes_are_an_error_not_a_panic() {
        let mut out = Out::default();
        out.row(&Row::new(vec![Value::text("hello"), Value::Int(7)]));
        for cut in 0..out.bytes.len() {
            assert!(In::new(&out.bytes[..cut]).row().is_err());
        }
        let mut state = 1u64;
        for _ in 0..2000 {
            let mut bytes = out.bytes.clone();
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
            let at = (state >> 33) as usize % bytes.len();
            bytes[at] ^= (state >> 20) as u8 | 1;
            let _ = In::new(&bytes).row();
            let _ = In::new(&bytes).schema();
        }
    }
}

/// The text values of one table's columns, shared while its rows are read (as the
/// engine's tables share them on insert: [`TextInterner`]), instead of one allocation
/// per row.
#[derive(Debug, Default)]
pub struct SharedTexts {
    /// Per column: its interner, until it shows too many distinct values.
    columns: Vec<Option<TextInterner>>,
}

impl SharedTexts {
    /// `s` in column `column` as a value, shared while the column has few values.
    pub(crate) fn text(&mut self, column: usize, s: &str) -> Value {
        if self.columns.len() <= column {
            self.columns.resize_with(column + 1, || Some(TextInterner::default()));
        }
        let Some(interner) = &mut self.columns[column] else { return Value::text(s) };
        let v = interner.text(s);
        if interner.is_full() {
            self.columns[column] = None;
        }
        v
    }
}
