//! The snapshot: a table's rows read with `COPY … TO STDOUT` (text format) inside the
//! transaction that imported the replication slot's snapshot, and inserted into the
//! engine in chunks.

use std::borrow::Cow;

use bytes::{Buf, BytesMut};
use ciuf_engine::{Change, RowData, TableId, Value};
use futures_util::StreamExt;
use tokio_postgres::Transaction;

use super::catalog::{PgTable, query_error};
use super::error::PgError;
use super::types::parse_text;
use crate::feed::Feed;

/// Rows per engine transaction while loading.
const CHUNK: usize = 65_536;

/// Copies `table` (in the snapshot `txn` has imported) into the engine's table `id`.
/// Calls `progress` with the rows loaded so far. Returns the number of rows.
pub async fn copy_table(
    txn: &Transaction<'_>,
    table: &PgTable,
    feed: &Feed,
    id: TableId,
    mut progress: impl FnMut(u64),
) -> Result<u64, PgError> {
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
    let mut buf = BytesMut::new();
    let mut n = 0u64;
    while let Some(chunk) = stream.next().await {
        buf.extend_from_slice(&chunk.map_err(query_error)?);
        while let Some(end) = buf.iter().position(|&b| b == b'\n') {
            let line = buf.split_to(end + 1);
            let values =
                parse_line(&line[..end], &types).map_err(|e| PgError::Schema(format!("{}: {e}", table.qualified)))?;
            each(values)?;
            n += 1;
        }
    }
    if buf.has_remaining() {
        return Err(PgError::Protocol(format!("COPY of {} ended inside a row", table.qualified)));
    }
    Ok(n)
}

/// One line of COPY's text format as values.
fn parse_line(line: &[u8], types: &[ciuf_engine::DataType]) -> Result<Vec<Value>, String> {
    let mut values = Vec::with_capacity(types.len());
    for (i, field) in line.split(|&b| b == b'\t').enumerate() {
        let t = *types.get(i).ok_or_else(|| format!("a row with more than {} fields", types.len()))?;
        if field == b"\\N" {
            values.push(Value::Null);
            continue;
        }
        let text = unescape(field)?;
        values.push(parse_text(&text, t)?);
    }
    if values.len() != types.len() {
        return Err(format!("a row with {} fields, expected {}", values.len(), types.len()));
    }
    Ok(values)
}

/// A field of COPY's text format with its backslash escapes undone: borrowed when it
/// has none (a number, most text), so that reading a million rows does not allocate a
/// string for every field.
fn unescape(field: &[u8]) -> Result<Cow<'_, str>, String> {
    if !field.contains(&b'\\') {
        return std::str::from_utf8(field).map(Cow::Borrowed).map_err(|_| NOT_UTF8.to_string());
    }
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
    use ciuf_engine::DataType;

    use super::*;

    #[test]
    fn copy_text_lines() {
        let types = [DataType::BigInt, DataType::Text, DataType::Double];
        let v = parse_line(b"1\ta\\tb\\\\c\\nd\t\\N", &types).unwrap();
        assert_eq!(v, vec![Value::Int(1), Value::text("a\tb\\c\nd"), Value::Null]);
        assert!(parse_line(b"1\tx", &types).is_err());
        assert_eq!(unescape(b"\\101\\x42").unwrap(), "AB");
    }
}
