//! Records: the unit of every file in a state directory, framed so that a crash can
//! be told from damage.
//!
//! ```text
//! record = length u32 | !length u32 | crc32(payload) u32 | payload
//! ```
//!
//! The length is written twice (the second time inverted), so that a damaged length
//! is seen as such instead of sending the reader to a wrong place; the CRC covers the
//! payload. Reading a file, a record cut short at its end — the write a crash
//! interrupted, never acknowledged — marks the end of what was written (the file is
//! cut back to it); anything else that does not check out is damage, and the state
//! directory is refused rather than read past it.

use ciuf_engine::view::PartialLimits;
use ciuf_engine::{Row, TableSchema};

use super::codec::{In, Malformed, Out, SharedTexts};

const HEADER: usize = 12;

/// A record's payload, decoded.
#[derive(Debug)]
pub enum Record {
    /// A fact about the state directory (its dialect, its source, the source's ids).
    Meta { key: String, value: String },
    /// A table was created.
    CreateTable(TableSchema),
    /// A table was dropped.
    DropTable(String),
    /// A committed transaction: its number, the source position after it, and each
    /// changed table's rows with signed weights.
    Commit { txn: u64, position: Option<String>, tables: Vec<(String, Vec<(Row, i64)>)> },
    /// A view was registered.
    ViewAdded(ViewRecord),
    /// A view was dropped.
    ViewDropped(ViewRecord),
    /// A checkpoint's rows of one table (a table has as many of these as it needs).
    Rows { table: String, rows: Vec<(Row, i64)> },
    /// A checkpoint's last record: the transaction and position it reflects.
    End { txn: u64, position: Option<String> },
    /// A source position passed without a change to any table.
    Passed { position: String },
    /// A checkpoint's saved state of one operator, or part of it (a state has as many
    /// of these as it needs): the layout it is in
    /// (`ciuf_engine::journal::STATE_LAYOUT`), its graph node's identity, its rows.
    State { layout: u32, node: String, rows: Vec<Row> },
}

/// Per table, the text its rows share while a file is read (see [`SharedTexts`]).
pub type TableTexts = std::collections::HashMap<String, SharedTexts>;

/// A registered view, as ciuf registers it again on restart.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewRecord {
    /// The name of a named view (`CREATE VIEW`); `None` for a query registered with
    /// `from_sql`.
    pub name: Option<String>,
    /// The SQL, as given.
    pub sql: String,
    /// A partial parameterized view's limits.
    pub partial: Option<PartialLimits>,
}

mod kind {
    pub const META: u8 = 1;
    pub const CREATE_TABLE: u8 = 2;
    pub const DROP_TABLE: u8 = 3;
    pub const COMMIT: u8 = 4;
    pub const VIEW_ADDED: u8 = 5;
    pub const VIEW_DROPPED: u8 = 6;
    pub const ROWS: u8 = 7;
    pub const END: u8 = 8;
    pub const PASSED: u8 = 9;
    pub const STATE: u8 = 10;
}

/// Starts a framed record in `out` (its header filled in by [`finish`]).
pub fn begin(out: &mut Out) -> usize {
    let at = out.bytes.len();
    out.bytes.extend_from_slice(&[0u8; HEADER]);
    at
}

/// Fills in the header of the record begun at `at`.
pub fn finish(out: &mut Out, at: usize) {
    let payload = &out.bytes[at + HEADER..];
    let len = u32::try_from(payload.len()).expect("a record under 4 GiB");
    let crc = crc32fast::hash(payload);
    out.bytes[at..at + 4].copy_from_slice(&len.to_le_bytes());
    out.bytes[at + 4..at + 8].copy_from_slice(&(!len).to_le_bytes());
    out.bytes[at + 8..at + 12].copy_from_slice(&crc.to_le_bytes());
}

/// Appends `record`, framed, to `out`.
pub fn encode(out: &mut Out, record: &Record) {
    let at = begin(out);
    body(out, record);
    finish(out, at);
}

/// Appends a commit record without building a [`Record`] (the rows stay borrowed).
pub fn encode_commit<'a>(
    out: &mut Out,
    txn: u64,
    position: Option<&str>,
    tables: impl ExactSizeIterator<Item = (&'a str, &'a [(Row, i64)])>,
) {
    let at = begin(out);
    out.u8(kind::COMMIT);
    out.u64(txn);
    out.opt_str(position);
    out.u64(tables.len() as u64);
    for (name, rows) in tables {
        out.str(name);
        weighted_rows(out, rows);
    }
    finish(out, at);
}

/// Appends a checkpoint's record of `rows` of `table`.
pub fn encode_rows(out: &mut Out, table: &str, rows: &[(Row, i64)]) {
    let at = begin(out);
    out.u8(kind::ROWS);
    out.str(table);
    weighted_rows(out, rows);
    finish(out, at);
}

/// Appends a checkpoint's record of `rows` of the state of the operator `node`.
pub fn encode_state(out: &mut Out, layout: u32, node: &str, rows: &[Row]) {
    let at = begin(out);
    out.u8(kind::STATE);
    out.u64(u64::from(layout));
    out.str(node);
    out.u64(rows.len() as u64);
    for row in rows {
        out.row(row);
    }
    finish(out, at);
}

fn weighted_rows(out: &mut Out, rows: &[(Row, i64)]) {
    out.u64(rows.len() as u64);
    for (row, w) in rows {
        out.i64(*w);
        out.row(row);
    }
}

fn view(out: &mut Out, v: &ViewRecord) {
    out.opt_str(v.name.as_deref());
    out.str(&v.sql);
    out.limits(v.partial.as_ref());
}

fn body(out: &mut Out, record: &Record) {
    match record {
        Record::Meta { key, value } => {
            out.u8(kind::META);
            out.str(key);
            out.str(value);
        }
        Record::CreateTable(schema) => {
            out.u8(kind::CREATE_TABLE);
            out.schema(schema);
        }
        Record::DropTable(name) => {
            out.u8(kind::DROP_TABLE);
            out.str(name);
        }
        Record::Commit { txn, position, tables } => {
            out.u8(kind::COMMIT);
            out.u64(*txn);
            out.opt_str(position.as_deref());
            out.u64(tables.len() as u64);
            for (name, rows) in tables {
                out.str(name);
                weighted_rows(out, rows);
            }
        }
        Record::ViewAdded(v) => {
            out.u8(kind::VIEW_ADDED);
            view(out, v);
        }
        Record::ViewDropped(v) => {
            out.u8(kind::VIEW_DROPPED);
            view(out, v);
        }
        Record::Rows { table, rows } => {
            out.u8(kind::ROWS);
            out.str(table);
            weighted_rows(out, rows);
        }
        Record::End { txn, position } => {
            out.u8(kind::END);
            out.u64(*txn);
            out.opt_str(position.as_deref());
        }
        Record::Passed { position } => {
            out.u8(kind::PASSED);
            out.str(position);
        }
        Record::State { layout, node, rows } => {
            out.u8(kind::STATE);
            out.u64(u64::from(*layout));
            out.str(node);
            out.u64(rows.len() as u64);
            for row in rows {
                out.row(row);
            }
        }
    }
}

/// The weighted rows of `table`, sharing its repeated text through `texts`.
fn read_rows(inp: &mut In<'_>, table: &str, texts: &mut TableTexts) -> Result<Vec<(Row, i64)>, Malformed> {
    let texts = match texts.get_mut(table) {
        Some(t) => t,
        None => texts.entry(table.to_string()).or_default(),
    };
    let n = inp.count()?;
    let mut rows = Vec::with_capacity(n);
    for _ in 0..n {
        let w = inp.i64()?;
        rows.push((inp.table_row(texts)?, w));
    }
    Ok(rows)
}

fn read_view(inp: &mut In<'_>) -> Result<ViewRecord, Malformed> {
    Ok(ViewRecord { name: inp.opt_str()?.map(str::to_string), sql: inp.str()?.to_string(), partial: inp.limits()? })
}

/// Decodes one record's payload; tables' rows share their repeated text through
/// `texts`.
pub fn decode(payload: &[u8], texts: &mut TableTexts) -> Result<Record, Malformed> {
    let mut inp = In::new(payload);
    let record = match inp.u8()? {
        kind::META => Record::Meta { key: inp.str()?.to_string(), value: inp.str()?.to_string() },
        kind::CREATE_TABLE => Record::CreateTable(inp.schema()?),
        kind::DROP_TABLE => Record::DropTable(inp.str()?.to_string()),
        kind::COMMIT => {
            let txn = inp.u64()?;
            let position = inp.opt_str()?.map(str::to_string);
            let n = inp.count()?;
            let mut tables = Vec::with_capacity(n);
            for _ in 0..n {
                let name = inp.str()?.to_string();
                let rows = read_rows(&mut inp, &name, texts)?;
                tables.push((name, rows));
            }
            Record::Commit { txn, position, tables }
        }
        kind::VIEW_ADDED => Record::ViewAdded(read_view(&mut inp)?),
        kind::VIEW_DROPPED => Record::ViewDropped(read_view(&mut inp)?),
        kind::ROWS => {
            let table = inp.str()?.to_string();
            let rows = read_rows(&mut inp, &table, texts)?;
            Record::Rows { table, rows }
        }
        kind::END => Record::End { txn: inp.u64()?, position: inp.opt_str()?.map(str::to_string) },
        kind::PASSED => Record::Passed { position: inp.str()?.to_string() },
        kind::STATE => {
            let layout = u32::try_from(inp.u64()?).map_err(|_| Malformed("a state's layout"))?;
            let node = inp.str()?.to_string();
            let n = inp.count()?;
            let mut rows = Vec::with_capacity(n);
            for _ in 0..n {
                rows.push(inp.row()?);
            }
            Record::State { layout, node, rows }
        }
        _ => return Err(Malformed("a record kind")),
    };
    if !inp.is_empty() {
        return Err(Malformed("the end of a record"));
    }
    Ok(record)
}

/// What reading a file's records found.
#[derive(Debug)]
pub enum Framing<'a> {
    /// A whole record's payload, and the offset after it.
    Record(&'a [u8], usize),
    /// The end of what was written: nothing more, or a record a crash cut short (to be
    /// cut off at this offset).
    End(usize),
    /// Damage at this offset.
    Damaged(usize, &'static str),
}

/// The record at `at` in `bytes`.
pub fn frame(bytes: &[u8], at: usize) -> Framing<'_> {
    let rest = &bytes[at..];
    if rest.is_empty() {
        return Framing::End(at);
    }
    let all_zero = || rest.iter().all(|&b| b == 0);
    if rest.len() < HEADER {
        return Framing::End(at);
    }
    let word = |i: usize| u32::from_le_bytes(rest[i..i + 4].try_into().expect("4 bytes"));
    let (len, check, crc) = (word(0), word(4), word(8));
    if len != !check {
        // Zeros where a header should be: space a crash left allocated but unwritten.
        return if all_zero() { Framing::End(at) } else { Framing::Damaged(at, "a record's length") };
    }
    let end = HEADER + len as usize;
    if end > rest.len() {
        return Framing::End(at);
    }
    let payload = &rest[HEADER..end];
    if crc32fast::hash(payload) != crc {
        // The last record, half written when the process died; or damage.
        return if end == rest.len() { Framing::End(at) } else { Framing::Damaged(at, "a record's checksum") };
    }
    Framing::Record(payload, at + end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ciuf_engine::Value;

    fn two_records() -> Vec<u8> {
        let mut out = Out::default();
        encode(&mut out, &Record::Meta { key: "k".into(), value: "v".into() });
        encode_commit(
            &mut out,
            7,
            Some("0/16B3748"),
            [("t", &[(Row::new(vec![Value::Int(1), Value::text("x")]), -1)][..])].into_iter(),
        );
        out.bytes
    }

    #[test]
    fn records_frame_and_decode() {
        let bytes = two_records();
        let Framing::Record(p, next) = frame(&bytes, 0) else { panic!() };
        assert!(matches!(decode(p, &mut TableTexts::new()).unwrap(), Record::Meta { .. }));
        let Framing::Record(p, end) = frame(&bytes, next) else { panic!() };
        let Record::Commit { txn, position, tables } = decode(p, &mut TableTexts::new()).unwrap() else { panic!() };
        assert_eq!((txn, position.as_deref(), tables[0].1[0].1), (7, Some("0/16B3748"), -1));
        assert!(matches!(frame(&bytes, end), Framing::End(e) if e == end));
    }

    #[test]
    fn a_cut_tail_ends_the_file_and_damage_is_damage() {
        let bytes = two_records();
        let Framing::Record(_, second) = frame(&bytes, 0) else { panic!() };
        // Every cut inside the second record: the end of what was written.
        for cut in second..bytes.len() {
            assert!(matches!(frame(&bytes[..cut], second), Framing::End(e) if e == second), "cut at {cut}");
        }
        // Trailing zeros (allocated, unwritten): the end too.
        let mut zeros = bytes.clone();
        zeros.extend_from_slice(&[0u8; 40]);
        let Framing::Record(_, end) = frame(&zeros, second) else { panic!() };
        assert!(matches!(frame(&zeros, end), Framing::End(_)));
        // A flipped bit in the first record, followed by the second: damage.
        for i in 0..second {
            let mut bad = bytes.clone();
            bad[i] ^= 0x10;
            assert!(matches!(frame(&bad, 0), Framing::Damaged(..)), "flip at {i}");
        }
    }
}
