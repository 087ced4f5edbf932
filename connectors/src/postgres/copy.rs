//! The snapshot: a table's rows read with `COPY … TO STDOUT` (text format) inside the
//! transaction that imported the replication slot's snapshot, and inserted into the
//! engine in chunks.

use std::borrow::Cow;

use ciuf_engine::{Change, DataType, RowData, TableId, TextInterner, Value};
use futures_util::StreamExt;
use tokio_postgres::Transaction;

use super::catalog::{PgTable, query_error};
use super::error::PgError;
use super::types::parse_text;
use crate::feed::Feed;

/// Rows per engine transaction while loading.
const CHUNK: usize = 65_536;

/// The most rows a table is grown for ahead of its copy: a stale estimate costs at
/// most this much room.
const RESERVE_MAX: i64 = 1 << 26;

/// Copies `table` (in the snapshot `txn` has imported) into the engine's table `id`.
/// Calls `progress` with the rows loaded so far. Returns the number of rows.
pub async fn copy_table(
    txn: &Transaction<'_>,
    table: &PgTable,
    feed: &Feed,
    id: TableId,
    mut progress: impl FnMut(u64),
) -> Result<u64, PgError> {
    // The planner's row estimate (up to date after a VACUUM or ANALYZE; -1 before
    // either): the table is grown once for it instead of doubling as it fills.
    let estimate: i64 = txn
        .query_one("SELECT reltuples::int8 FROM pg_class WHERE oid = $1::int8::oid", &[&i64::from(table.oid)])
        .await
        .map_err(query_error)?
        .get(0);
    if estimate > 0 {
        feed.reserve(id, estimate.min(RESERVE_MAX) as usize)
            .map_err(|e| PgError::Schema(format!("loading {}: {e}", table.qualified)))?;
    }
    let mut rows: Vec<Change> = Vec::with_capacity(CHUNK);
    let mut total = 0u64;
    let mut flush = |rows: &mut Vec<Change>, total: &mut u64| -> Result<(), PgError> {
        *total += rows.len() as u64;
        feed.load(rows.drain(..)).map_err(|e| PgError::Schema(format!("loading {}: {e}", table.qualified)))?;
        progress(*total);
        Ok(())
    };
    read_rows(txn, table, |values| {
        rows.push(Change::insert(id, RowData::Values(values)));
        if rows.len() == CHUNK { flush(&mut rows, &mut total) } else { Ok(()) }
    })
    .await?;
    flush(&mut rows, &mut total)?;
    Ok(total)
}

/// Reads every row of `table` (in the snapshot `txn` has imported), each as values in
/// the engine's column order. Returns the number of rows.
pub async fn read_rows(
    txn: &Transaction<'_>,
    table: &PgTable,
    mut each: impl FnMut(Vec<Value>) -> Result<(), PgError>,
) -> Result<u64, PgError> {
    let columns: Vec<String> =
        table.schema.columns.iter().map(|c| format!("\"{}\"", c.name.replace('"', "\"\""))).collect();
    let sql = format!("COPY (SELECT {} FROM ONLY {}) TO STDOUT", columns.join(", "), table.qualified);
    let stream = txn.copy_out(&sql).await.map_err(query_error)?;
    futures_util::pin_mut!(stream);
    let types: Vec<_> = table.schema.columns.iter().map(|c| c.data_type).collect();
    let mut texts = Texts::new(&types);
    let mut line = |bytes: &[u8]| -> Result<(), PgError> {
        let values =
            parse_line(bytes, &types, &mut texts).map_err(|e| PgError::Schema(format!("{}: {e}", table.qualified)))?;
        each(values)
    };
    // PostgreSQL sends a row per message, but a message may hold any part of the
    // data: a line split between messages is put together in `partial`.
    let mut partial: Vec<u8> = Vec::new();
    let mut n = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(query_error)?;
        let mut data: &[u8] = &chunk;
        if !partial.is_empty() {
            let Some(end) = memchr::memchr(b'\n', data) else {
                partial.extend_from_slice(data);
                continue;
            };
            partial.extend_from_slice(&data[..end]);
            line(&partial)?;
            n += 1;
            partial.clear();
            data = &data[end + 1..];
        }
        while let Some(end) = memchr::memchr(b'\n', data) {
            line(&data[..end])?;
            n += 1;
            data = &data[end + 1..];
        }
        partial.extend_from_slice(data);
    }
    if !partial.is_empty() {
        return Err(PgError::Protocol(format!("COPY of {} ended inside a row", table.qualified)));
    }
    Ok(n)
}

/// Per text column, its values shared while the copy reads them (as the engine's
/// tables share them on insert, see [`TextInterner`]): a column of a few distinct
/// values (a status, a region) costs no allocation per row.
struct Texts(Vec<Option<TextInterner>>);

impl Texts {
    fn new(types: &[DataType]) -> Texts {
        Texts(types.iter().map(|&t| (t == DataType::Text).then(TextInterner::default)).collect())
    }

    /// `text` in column `i` (a text column) as a value, shared if the column's
    /// interner has it.
    fn text(&mut self, i: usize, text: &str) -> Value {
        let Some(Some(interner)) = self.0.get_mut(i) else { return Value::text(text) };
        let v = interner.text(text);
        if interner.is_full() {
            self.0[i] = None;
        }
        v
    }
}

/// One line of COPY's text format as values.
fn parse_line(line: &[u8], types: &[DataType], texts: &mut Texts) -> Result<Vec<Value>, String> {
    // The line is checked as UTF-8 once, and searched for escapes once: most lines
    // have none, and their fields are then read as they are.
    let line = std::str::from_utf8(line).map_err(|_| NOT_UTF8.to_string())?;
    let escaped = memchr::memchr(b'\\', line.as_bytes()).is_some();
    let mut values = Vec::with_capacity(types.len());
    for (i, field) in line.split('\t').enumerate() {
        let t = *types.get(i).ok_or_else(|| format!("a row with more than {} fields", types.len()))?;
        if field == "\\N" {
            values.push(Value::Null);
            continue;
        }
        let text = if escaped { unescape(field)? } else { Cow::Borrowed(field) };
        values.push(if t == DataType::Text { texts.text(i, &text) } else { parse_text(&text, t)? });
    }
    if values.len() != types.len() {
        return Err(format!("a row with {} fields, expected {}", values.len(), types.len()));
    }
    Ok(values)
}

/// A field of COPY's text format with its backslash escapes undone: borrowed when it
/// has none, so that reading a million rows does not allocate a string for every
/// field.
fn unescape(field: &str) -> Result<Cow<'_, str>, String> {
    if !field.contains('\\') {
        return Ok(Cow::Borrowed(field));
    }
    let field = field.as_bytes();
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        let b = field[i];
        i += 1;
        if b != b'\\' || i == field.len() {
            out.push(b);
            continue;
        }
        let e = field[i];
        i += 1;
        match e {
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(11),
            b'0'..=b'7' => {
                let mut v = u32::from(e - b'0');
                for _ in 0..2 {
                    if i < field.len() && (b'0'..=b'7').contains(&field[i]) {
                        v = v * 8 + u32::from(field[i] - b'0');
                        i += 1;
                    }
                }
                out.push(v as u8);
            }
            b'x' => {
                let mut v = 0u32;
                let mut n = 0;
                while n < 2 && i < field.len() && field[i].is_ascii_hexdigit() {
                    v = v * 16 + (field[i] as char).to_digit(16).unwrap_or(0);
                    i += 1;
                    n += 1;
                }
                out.push(v as u8);
            }
            other => out.push(other),
        }
    }
    String::from_utf8(out).map(Cow::Owned).map_err(|_| NOT_UTF8.to_string())
}

const NOT_UTF8: &str = "a field that is not UTF-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_text_lines() {
        let types = [DataType::BigInt, DataType::Text, DataType::Double];
        let mut texts = Texts::new(&types);
        let v = parse_line(b"1\ta\\tb\\\\c\\nd\t\\N", &types, &mut texts).unwrap();
        assert_eq!(v, vec![Value::Int(1), Value::text("a\tb\\c\nd"), Value::Null]);
        let again = parse_line(b"2\ta\\tb\\\\c\\nd\t1.5", &types, &mut texts).unwrap();
        assert_eq!(again, vec![Value::Int(2), Value::text("a\tb\\c\nd"), Value::Float(1.5)]);
        assert!(parse_line(b"1\tx", &types, &mut texts).is_err());
        assert_eq!(unescape("\\101\\x42").unwrap(), "AB");
        assert!(parse_line(b"1\ta\\377\t\\N", &types, &mut texts).is_err(), "an escape that makes a field not UTF-8");
    }
}
