//! Column types, columns and table schemas.
//!
//! Every column and every expression has one [`DataType`]. Integers are stored as `i64`
//! whatever their declared width; the width is kept so that inserts are range-checked
//! and Arrow output uses the declared type. Floats are `f64`. Decimals are exact with a
//! fixed scale per column (see [`crate::decimal`]).
//!
//! Two types stand for SQLite's typing, where each *value* carries its storage class
//! and an expression may give an integer on one row and a real on the next:
//! [`DataType::Number`] (integers and doubles, as a NUMERIC column or a CASE over mixed
//! INTEGER and REAL results holds them) and [`DataType::Any`] (numbers and text mixed).
//! Arrow has one type per column, so they read as Float64 and as text respectively.

use std::fmt;

use arrow_schema::{DataType as ArrowType, TimeUnit};

/// The largest DECIMAL precision ciuf stores exactly (a 120-bit mantissa).
pub const MAX_DECIMAL_PRECISION: u8 = 35;

/// The type of a column or expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataType {
    /// BOOLEAN.
    Bool,
    /// SMALLINT: 16-bit range, stored as i64.
    SmallInt,
    /// INTEGER: 32-bit range, stored as i64.
    Int,
    /// BIGINT: i64.
    BigInt,
    /// DOUBLE / REAL / FLOAT: f64.
    Double,
    /// DECIMAL(precision, scale): exact.
    Decimal {
        /// Total digits, at most [`MAX_DECIMAL_PRECISION`].
        precision: u8,
        /// Digits after the point.
        scale: u8,
    },
    /// TEXT / VARCHAR / CHAR.
    Text,
    /// DATE: days since 1970-01-01.
    Date,
    /// TIMESTAMP (without time zone): microseconds since 1970-01-01 00:00:00.
    Timestamp,
    /// The type of a bare NULL literal, before it meets another type.
    Null,
    /// A number whose storage class each value decides: an integer or a double, as
    /// SQLite holds them in a NUMERIC column and gives them from CASE, COALESCE, MIN/MAX
    /// and the like over mixed INTEGER and REAL results. Each value computes as what it
    /// is (an integer divides as an integer); Arrow reads the column as Float64.
    Number,
    /// A value of any storage class, decided per value (SQLite's expressions that mix
    /// text with numbers; the ANY of its STRICT tables). Arrow reads the column as text,
    /// each value rendered as SQLite renders it.
    Any,
}

impl DataType {
    /// Whether the type is one of the integer types.
    pub fn is_integer(self) -> bool {
        matches!(self, DataType::SmallInt | DataType::Int | DataType::BigInt)
    }

    /// Whether the type is numeric (integer, double, decimal, or a number of either
    /// class).
    pub fn is_numeric(self) -> bool {
        self.is_integer() || matches!(self, DataType::Double | DataType::Decimal { .. } | DataType::Number)
    }

    /// Whether values of this type decide their storage class one by one
    /// ([`DataType::Number`], [`DataType::Any`]): equal numbers of two classes (3 and
    /// 3.0) must then meet as keys.
    pub fn is_per_value(self) -> bool {
        matches!(self, DataType::Number | DataType::Any)
    }

    /// The Arrow type a column of this type is read as.
    pub fn arrow_type(self) -> ArrowType {
        match self {
            DataType::Bool => ArrowType::Boolean,
            DataType::SmallInt => ArrowType::Int16,
            DataType::Int => ArrowType::Int32,
            DataType::BigInt => ArrowType::Int64,
            DataType::Double => ArrowType::Float64,
            DataType::Decimal { precision, scale } => ArrowType::Decimal128(precision, scale as i8),
            DataType::Text => ArrowType::Utf8,
            DataType::Date => ArrowType::Date32,
            DataType::Timestamp => ArrowType::Timestamp(TimeUnit::Microsecond, None),
            DataType::Null => ArrowType::Null,
            DataType::Number => ArrowType::Float64,
            DataType::Any => ArrowType::Utf8,
        }
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataType::Bool => f.write_str("BOOLEAN"),
            DataType::SmallInt => f.write_str("SMALLINT"),
            DataType::Int => f.write_str("INTEGER"),
            DataType::BigInt => f.write_str("BIGINT"),
            DataType::Double => f.write_str("DOUBLE"),
            DataType::Decimal { precision, scale } => write!(f, "DECIMAL({precision},{scale})"),
            DataType::Text => f.write_str("TEXT"),
            DataType::Date => f.write_str("DATE"),
            DataType::Timestamp => f.write_str("TIMESTAMP"),
            DataType::Null => f.write_str("NULL"),
            DataType::Number => f.write_str("NUMERIC"),
            DataType::Any => f.write_str("ANY"),
        }
    }
}

/// A named, typed column of a table or view.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Column {
    /// The name as declared.
    pub name: String,
    /// The type.
    pub data_type: DataType,
    /// Whether NULL is allowed.
    pub nullable: bool,
}

impl Column {
    /// A nullable column.
    pub fn new(name: impl Into<String>, data_type: DataType) -> Self {
        Column { name: name.into(), data_type, nullable: true }
    }

    /// The same column, NOT NULL.
    pub fn not_null(mut self) -> Self {
        self.nullable = false;
        self
    }
}

/// A base table's schema: columns and optional primary key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSchema {
    /// The table's name as declared.
    pub name: String,
    /// Columns in declaration order.
    pub columns: Vec<Column>,
    /// Positions of the primary-key columns, if the table has a key.
    pub primary_key: Option<Vec<usize>>,
}

impl TableSchema {
    /// A schema without a primary key.
    pub fn new(name: impl Into<String>, columns: Vec<Column>) -> Self {
        TableSchema { name: name.into(), columns, primary_key: None }
    }

    /// Sets the primary key by column names.
    ///
    /// # Panics
    /// If a name is not a column: this is a builder for schemas known in code.
    pub fn with_primary_key(mut self, names: &[&str]) -> Self {
        let key = names
            .iter()
            .map(|n| self.column_index(n).unwrap_or_else(|| panic!("no column {n} in {}", self.name)))
            .collect();
        self.primary_key = Some(key);
        for &i in self.primary_key.as_ref().into_iter().flatten() {
            self.columns[i].nullable = false;
        }
        self
    }

    /// The position of the column called `name` (ASCII case-insensitive).
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns
            .iter()
            .position(|c| c.name == name)
            .or_else(|| self.columns.iter().position(|c| c.name.eq_ignore_ascii_case(name)))
    }
}
