//! Tables as the engine has them: columns typed by SQLite's affinity rules, and values
//! converted from what SQLite stores.
//!
//! SQLite types a column by the words of its declared type (the affinity rules of
//! <https://www.sqlite.org/datatype3.html>): INT → 64-bit integers; CHAR, CLOB, TEXT →
//! text; REAL, FLOA, DOUB → doubles. What is left has NUMERIC affinity, where the
//! declared name says more: BOOL → booleans, DATE → dates, DATETIME/TIMESTAMP →
//! timestamps; anything else (NUMERIC, DECIMAL(p,s), MONEY, …) holds integers and reals,
//! each value as SQLite stored it ([`DataType::Number`]), so that views compute with
//! them exactly as SQLite would (`price / 2` divides an integer price as an integer).
//! A column declared BLOB, or with no type at all (which holds anything), is refused
//! with its name: a view could not type it.

use ciuf_engine::expr::cast::cast;
use ciuf_engine::{Column, DataType, TableSchema, Value};
use rusqlite::Connection;
use rusqlite::types::ValueRef;

use super::error::SqliteError;

/// A table of the file, as the engine will hold it.
#[derive(Debug, Clone)]
pub struct SqliteTable {
    /// The schema (name as the file spells it).
    pub schema: TableSchema,
}

/// The table `name` (any case), `Ok(None)` if the file has no such table.
pub fn discover(conn: &Connection, name: &str) -> Result<Option<SqliteTable>, SqliteError> {
    let found: Option<(String, String)> = conn
        .query_row(
            "SELECT name, type FROM sqlite_schema WHERE lower(name) = lower(?1) AND type IN ('table', 'view')",
            [name],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .map(Some)
        .or_else(|e| if matches!(e, rusqlite::Error::QueryReturnedNoRows) { Ok(None) } else { Err(e) })?;
    let Some((name, kind)) = found else { return Ok(None) };
    if kind == "view" {
        return Err(SqliteError::Schema(format!(
            "{name} is a view in the SQLite file; ciuf follows tables (define the view in ciuf over its tables)"
        )));
    }
    if name.starts_with("_ciuf_") || name.starts_with("sqlite_") {
        return Ok(None);
    }
    let mut stmt = conn.prepare(&format!("PRAGMA table_info({})", quote(&name)))?;
    let mut columns = Vec::new();
    let mut key: Vec<(i64, usize)> = Vec::new();
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let col: String = r.get(1)?;
        let declared: String = r.get(2)?;
        let not_null: bool = r.get::<_, i64>(3)? != 0;
        let pk: i64 = r.get(5)?;
        let data_type = column_type(&declared).map_err(|why| {
            SqliteError::Schema(format!("column {name}.{col} has {why}, which ciuf cannot type; declare it INTEGER, REAL, TEXT, NUMERIC, DECIMAL(p,s), BOOLEAN, DATE or TIMESTAMP"))
        })?;
        if pk > 0 {
            key.push((pk, columns.len()));
        }
        columns.push(Column { name: col, data_type, nullable: !not_null });
    }
    key.sort_unstable();
    let primary_key = (!key.is_empty()).then(|| key.into_iter().map(|(_, i)| i).collect::<Vec<_>>());
    if let Some(k) = &primary_key {
        for &i in k {
            // The engine's keys are never NULL (SQLite lets a key that is not an
            // INTEGER PRIMARY KEY hold one; such a row is then refused, with its table).
            columns[i].nullable = false;
        }
    }
    Ok(Some(SqliteTable { schema: TableSchema { name, columns, primary_key } }))
}

/// The engine type of a column declared `declared`, or why there is none.
pub fn column_type(declared: &str) -> Result<DataType, String> {
    let t = declared.trim().to_ascii_uppercase();
    if t.is_empty() {
        return Err("no declared type".into());
    }
    if t.contains("INT") {
        return Ok(DataType::BigInt);
    }
    if t.contains("CHAR") || t.contains("CLOB") || t.contains("TEXT") {
        return Ok(DataType::Text);
    }
    if t.contains("BLOB") {
        return Err(format!("type {declared}"));
    }
    if t.contains("REAL") || t.contains("FLOA") || t.contains("DOUB") {
        return Ok(DataType::Double);
    }
    if t.contains("BOOL") {
        return Ok(DataType::Bool);
    }
    if t.contains("DATETIME") || t.contains("TIMESTAMP") {
        return Ok(DataType::Timestamp);
    }
    if t.contains("DATE") {
        return Ok(DataType::Date);
    }
    Ok(DataType::Number)
}

/// A value SQLite stores, as the engine's value of type `ty`; `Err` with the value
/// shown when it does not fit (SQLite lets any column hold any value).
pub fn convert(v: ValueRef<'_>, ty: DataType) -> Result<Value, String> {
    let out = match (v, ty) {
        (ValueRef::Null, _) => return Ok(Value::Null),
        (ValueRef::Integer(i), DataType::BigInt | DataType::Int | DataType::SmallInt) => Value::Int(i),
        (ValueRef::Integer(i), DataType::Double) => Value::Float(i as f64),
        (ValueRef::Real(f), DataType::Double) => Value::Float(f),
        (ValueRef::Integer(i), DataType::Bool) => Value::Bool(i != 0),
        (ValueRef::Integer(i), DataType::Number) => Value::Int(i),
        (ValueRef::Real(f), DataType::Number) => Value::Float(f),
        (ValueRef::Text(t), DataType::Text) => Value::text(String::from_utf8_lossy(t).as_ref()),
        (ValueRef::Integer(i), DataType::Text) => Value::text(i.to_string().as_str()),
        (ValueRef::Real(f), DataType::Text) => Value::text(Value::Float(f).to_text().unwrap_or_default().as_str()),
        (ValueRef::Text(t), DataType::Bool) => match String::from_utf8_lossy(t).to_ascii_lowercase().as_str() {
            "1" | "true" | "t" => Value::Bool(true),
            "0" | "false" | "f" => Value::Bool(false),
            _ => Value::Null,
        },
        (ValueRef::Text(t), DataType::Date | DataType::Timestamp) => {
            cast(&Value::text(String::from_utf8_lossy(t).as_ref()), ty)
        }
        _ => Value::Null,
    };
    if out.is_null() {
        return Err(match v {
            ValueRef::Integer(i) => format!("the integer {i}"),
            ValueRef::Real(f) => format!("the real {f}"),
            ValueRef::Text(t) => format!("the text '{}'", String::from_utf8_lossy(t)),
            ValueRef::Blob(b) => format!("a blob of {} bytes", b.len()),
            ValueRef::Null => unreachable!("handled first"),
        });
    }
    Ok(out)
}

/// `name` as a quoted SQL identifier.
pub fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `s` as a quoted SQL string literal.
pub fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn affinity_rules() {
        assert_eq!(column_type("INTEGER"), Ok(DataType::BigInt));
        assert_eq!(column_type("unsigned big int"), Ok(DataType::BigInt));
        assert_eq!(column_type("VARCHAR(20)"), Ok(DataType::Text));
        assert_eq!(column_type("double precision"), Ok(DataType::Double));
        assert_eq!(column_type("DECIMAL(10,2)"), Ok(DataType::Number));
        assert_eq!(column_type("NUMERIC"), Ok(DataType::Number));
        assert_eq!(column_type("MONEY"), Ok(DataType::Number));
        assert_eq!(column_type("BOOLEAN"), Ok(DataType::Bool));
        assert_eq!(column_type("DATE"), Ok(DataType::Date));
        assert_eq!(column_type("DATETIME"), Ok(DataType::Timestamp));
        assert!(column_type("BLOB").is_err());
        assert!(column_type("").is_err());
    }

    #[test]
    fn values_convert_or_say_why_not() {
        assert_eq!(convert(ValueRef::Integer(3), DataType::Double), Ok(Value::Float(3.0)));
        assert_eq!(convert(ValueRef::Integer(1), DataType::Bool), Ok(Value::Bool(true)));
        assert_eq!(convert(ValueRef::Integer(3), DataType::Number), Ok(Value::Int(3)));
        assert_eq!(convert(ValueRef::Real(2.5), DataType::Number), Ok(Value::Float(2.5)));
        assert_eq!(convert(ValueRef::Text(b"2024-02-29"), DataType::Date).unwrap().to_text().unwrap(), "2024-02-29");
        assert_eq!(convert(ValueRef::Null, DataType::BigInt), Ok(Value::Null));
        assert_eq!(convert(ValueRef::Text(b"abc"), DataType::BigInt), Err("the text 'abc'".to_string()));
        assert_eq!(convert(ValueRef::Real(1.5), DataType::BigInt), Err("the real 1.5".to_string()));
    }
}
