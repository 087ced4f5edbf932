//! The snapshot: a table's rows read with `COPY … TO STDOUT` (text format) inside the
//! transaction that imported the replication slot's snapshot, and inserted into the
//! engine in chunks.

use ciuf_engine::{Change, DataType, RowData, TableId, Value};
use futures_util::StreamExt;
use tokio_postgres::Transaction;

use super::catalog::{PgTable, query_error};
use super::error::PgError;
use super::types::parse_text;
use crate::feed::Feed;
use crate::store::SharedTexts;

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
///
/// The copy is in COPY's binary format: integers, `double precision` and booleans
/// arrive as their bytes (no number printed by the server and parsed here again),
/// every other column as its text form (as sent, or cast with `::text`: the output
/// function pgoutput's text also comes from), read as [`parse_text`] reads the
/// stream's values.
pub async fn read_rows(
    txn: &Transaction<'_>,
    table: &PgTable,
    mut each: impl FnMut(Vec<Value>) -> Result<(), PgError>,
) -> Result<u64, PgError> {
    let fields: Vec<Field> =
        table.schema.columns.iter().zip(&table.pg_types).map(|(c, &oid)| Field::of(oid, c.data_type)).collect();
    let columns: Vec<String> = table
        .schema
        .columns
        .iter()
        .zip(fields.iter().zip(&table.pg_types))
        .map(|(c, (f, &oid))| {
            let name = format!("\"{}\"", c.name.replace('"', "\"\""));
            if matches!(f, Field::Text(_)) && !SENT_AS_TEXT.contains(&oid) { format!("{name}::text") } else { name }
        })
        .collect();
    let sql = format!("COPY (SELECT {} FROM ONLY {}) TO STDOUT (FORMAT binary)", columns.join(", "), table.qualified);
    let stream = txn.copy_out(&sql).await.map_err(query_error)?;
    futures_util::pin_mut!(stream);
    let mut reader = Reader { fields, texts: SharedTexts::default(), header: false, ended: false };
    let protocol = |e: String| PgError::Protocol(format!("COPY of {}: {e}", table.qualified));
    // PostgreSQL sends a row per message, but a message may hold any part of the
    // data: a row split between messages is put together in `partial`.
    let mut partial: Vec<u8> = Vec::new();
    let mut n = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(query_error)?;
        let data: &[u8] = if partial.is_empty() {
            &chunk
        } else {
            partial.extend_from_slice(&chunk);
            &partial
        };
        let mut at = 0;
        while let Some((item, used)) = reader.next(&data[at..]).map_err(protocol)? {
            at += used;
            if let Item::Row(values) = item {
                each(values)?;
                n += 1;
            }
        }
        let rest = data[at..].to_vec();
        partial = rest;
    }
    if !partial.is_empty() || !reader.ended {
        return Err(protocol("the data ended inside a row".to_string()));
    }
    Ok(n)
}

/// The types whose binary form is their text (text, varchar, char(n) with its
/// padding, name, json): copied as they are. Other types read as text are cast
/// (`::text` calls their output function; for char(n) it would drop the padding).
const SENT_AS_TEXT: [u32; 5] = [25, 1043, 1042, 19, 114];

/// How a column arrives in a binary copy.
#[derive(Debug, Clone, Copy)]
enum Field {
    Bool,
    /// A big-endian integer of this many bytes.
    Int(usize),
    Double,
    /// Its text form, read as a value of this type.
    Text(DataType),
}

impl Field {
    /// The form of a column of PostgreSQL type `oid` (engine type `t`). `real` comes
    /// as text: its digits (`extra_float_digits=3`) make the double the stream gives.
    fn of(oid: u32, t: DataType) -> Field {
        match oid {
            16 => Field::Bool,
            21 => Field::Int(2),
            23 => Field::Int(4),
            20 => Field::Int(8),
            701 => Field::Double,
            _ => Field::Text(t),
        }
    }
}

/// The signature that starts COPY's binary format.
const SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";

/// One item of a binary copy.
enum Item {
    Row(Vec<Value>),
    /// The header or the trailer.
    Framing,
}

/// Reads COPY's binary format: a header, then rows, then a trailer.
struct Reader {
    fields: Vec<Field>,
    texts: SharedTexts,
    header: bool,
    ended: bool,
}

impl Reader {
    /// The next item of `data` and the bytes it took; `None` when `data` does not
    /// hold a whole item.
    fn next(&mut self, data: &[u8]) -> Result<Option<(Item, usize)>, String> {
        if self.ended {
            return if data.is_empty() { Ok(None) } else { Err("data after its end".to_string()) };
        }
        if !self.header {
            let Some(fixed) = data.get(..SIGNATURE.len() + 8) else { return Ok(None) };
            if &fixed[..SIGNATURE.len()] != SIGNATURE {
                return Err("no binary COPY signature".to_string());
            }
            let extension = be_u32(&fixed[SIGNATURE.len() + 4..]) as usize;
            if data.len() < fixed.len() + extension {
                return Ok(None);
            }
            self.header = true;
            return Ok(Some((Item::Framing, fixed.len() + extension)));
        }
        let Some(count) = data.get(..2) else { return Ok(None) };
        let count = i16::from_be_bytes([count[0], count[1]]);
        if count == -1 {
            self.ended = true;
            return Ok(Some((Item::Framing, 2)));
        }
        if count as usize != self.fields.len() {
            return Err(format!("a row with {count} fields, expected {}", self.fields.len()));
        }
        let mut at = 2;
        let mut values = Vec::with_capacity(self.fields.len());
        for (i, &field) in self.fields.iter().enumerate() {
            let Some(len) = data.get(at..at + 4) else { return Ok(None) };
            let len = be_u32(len) as i32;
            at += 4;
            if len == -1 {
                values.push(Value::Null);
                continue;
            }
            let Some(bytes) = data.get(at..at + len.max(0) as usize) else { return Ok(None) };
            at += bytes.len();
            values.push(value(&mut self.texts, i, field, bytes)?);
        }
        Ok(Some((Item::Row(values), at)))
    }
}

/// Field `i`'s value from its bytes.
fn value(texts: &mut SharedTexts, i: usize, field: Field, bytes: &[u8]) -> Result<Value, String> {
    let wrong = || format!("a field of {} bytes for {field:?}", bytes.len());
    Ok(match field {
        Field::Bool => match bytes {
            [b] => Value::Bool(*b != 0),
            _ => return Err(wrong()),
        },
        Field::Int(width) if bytes.len() == width => {
            let mut be = [0u8; 8];
            be[8 - width..].copy_from_slice(bytes);
            // Sign-extended from its width.
            let shift = 64 - 8 * width as u32;
            Value::Int((i64::from_be_bytes(be) << shift) >> shift)
        }
        Field::Double => Value::Float(f64::from_be_bytes(bytes.try_into().map_err(|_| wrong())?)),
        Field::Int(_) => return Err(wrong()),
        Field::Text(t) => {
            let text = std::str::from_utf8(bytes).map_err(|_| NOT_UTF8.to_string())?;
            if t == DataType::Text { texts.text(i, text) } else { parse_text(text, t)? }
        }
    })
}

fn be_u32(bytes: &[u8]) -> u32 {
    u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

const NOT_UTF8: &str = "a field that is not UTF-8";

#[cfg(test)]
mod tests {
    use super::*;

    /// A binary copy as PostgreSQL writes it: the header, `rows`, the trailer.
    fn copy(rows: &[Vec<Option<Vec<u8>>>]) -> Vec<u8> {
        let mut out = SIGNATURE.to_vec();
        out.extend(0u32.to_be_bytes());
        out.extend(3u32.to_be_bytes());
        out.extend(b"ext");
        for row in rows {
            out.extend((row.len() as i16).to_be_bytes());
            for f in row {
                match f {
                    None => out.extend((-1i32).to_be_bytes()),
                    Some(b) => {
                        out.extend((b.len() as i32).to_be_bytes());
                        out.extend(b);
                    }
                }
            }
        }
        out.extend((-1i16).to_be_bytes());
        out
    }

    fn read_all(reader: &mut Reader, data: &[u8], split: usize) -> Result<Vec<Vec<Value>>, String> {
        // Given in pieces of `split` bytes, as messages may cut it.
        let (mut rows, mut partial) = (Vec::new(), Vec::new());
        for piece in data.chunks(split) {
            partial.extend_from_slice(piece);
            let mut at = 0;
            while let Some((item, used)) = reader.next(&partial[at..])? {
                at += used;
                if let Item::Row(values) = item {
                    rows.push(values);
                }
            }
            partial.drain(..at);
        }
        assert!(partial.is_empty() && reader.ended);
        Ok(rows)
    }

    #[test]
    fn binary_copy_rows() {
        let types = [
            DataType::BigInt,
            DataType::SmallInt,
            DataType::Double,
            DataType::Bool,
            DataType::Text,
            DataType::Decimal { precision: 10, scale: 2 },
        ];
        let oids = [20, 21, 701, 16, 25, 1700];
        let data = copy(&[
            vec![
                Some((-5i64).to_be_bytes().to_vec()),
                Some((-2i16).to_be_bytes().to_vec()),
                Some(0.1f64.to_be_bytes().to_vec()),
                Some(vec![1]),
                Some("paid".as_bytes().to_vec()),
                Some(b"12.50".to_vec()),
            ],
            vec![Some(7i64.to_be_bytes().to_vec()), None, None, Some(vec![0]), Some("paid".as_bytes().to_vec()), None],
        ]);
        let expected = vec![
            vec![
                Value::Int(-5),
                Value::Int(-2),
                Value::Float(0.1),
                Value::Bool(true),
                Value::text("paid"),
                parse_text("12.50", types[5]).unwrap(),
            ],
            vec![Value::Int(7), Value::Null, Value::Null, Value::Bool(false), Value::text("paid"), Value::Null],
        ];
        for split in [1, 3, 7, data.len()] {
            let mut reader = Reader {
                fields: oids.iter().zip(types).map(|(&o, t)| Field::of(o, t)).collect(),
                texts: SharedTexts::default(),
                header: false,
                ended: false,
            };
            assert_eq!(read_all(&mut reader, &data, split).unwrap(), expected, "in pieces of {split}");
        }
        let reader =
            || Reader { fields: vec![Field::Int(8)], texts: SharedTexts::default(), header: false, ended: false };
        // A field of the wrong width, a row of the wrong arity, a missing signature.
        assert!(read_all(&mut reader(), &copy(&[vec![Some(vec![1, 2])]]), 64).is_err());
        assert!(read_all(&mut reader(), &copy(&[vec![None, None]]), 64).is_err());
        assert!(reader().next(b"PGCOPX\n\xff\r\n\0\0\0\0\0\0\0\0\0").is_err());
    }
}
