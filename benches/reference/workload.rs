//! Reading the reference workload (../shared/bench/WORKLOAD.md): the three CSV tables
//! and the change stream, grouped into source transactions.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use ciuf::{Change, RowData, TableRef, Value};

/// The tables, their DDL (the same text for ciuf and SQLite) and column counts.
pub const TABLES: [(&str, &str); 3] = [
    ("customers", "CREATE TABLE customers (id BIGINT PRIMARY KEY, name TEXT, region TEXT)"),
    ("products", "CREATE TABLE products (id BIGINT PRIMARY KEY, name TEXT, category TEXT, price DOUBLE)"),
    (
        "orders",
        "CREATE TABLE orders (id BIGINT PRIMARY KEY, customer_id BIGINT, product_id BIGINT, amount DOUBLE, status TEXT)",
    ),
];

/// The five views.
pub const VIEWS: [(&str, &str); 5] = [
    ("V1", "SELECT id, customer_id, amount FROM orders WHERE status = 'paid' AND amount > 500"),
    (
        "V2",
        "SELECT o.id, o.amount, p.name, p.category FROM orders o JOIN products p ON o.product_id = p.id WHERE p.category = 'cat_3'",
    ),
    (
        "V3",
        "SELECT customer_id, COUNT(*) AS n, SUM(amount) AS total FROM orders WHERE status <> 'refunded' GROUP BY customer_id",
    ),
    (
        "V4",
        "SELECT c.region, p.category, COUNT(*) AS n, SUM(o.amount) AS revenue FROM orders o JOIN customers c ON o.customer_id = c.id JOIN products p ON o.product_id = p.id GROUP BY c.region, p.category",
    ),
    ("V5", "SELECT id, customer_id, amount FROM orders WHERE status = 'paid' ORDER BY amount DESC, id LIMIT 100"),
];

/// Column types, by table, for parsing: 'i' integer, 'f' double, 't' text.
fn kinds(table: &str) -> &'static [u8] {
    match table {
        "customers" => b"itt",
        "products" => b"ittf",
        _ => b"iiift",
    }
}

/// Calls `f` with each row of `table`'s CSV file, as values in column order.
pub fn read_table(dir: &Path, table: &str, mut f: impl FnMut(Vec<Value>)) -> std::io::Result<usize> {
    let file = BufReader::with_capacity(1 << 20, File::open(dir.join(format!("{table}.csv")))?);
    let kinds = kinds(table);
    let mut n = 0;
    for (i, line) in file.lines().enumerate() {
        let line = line?;
        if i == 0 {
            continue;
        }
        assert!(!line.contains('"'), "{table}.csv: quoted fields are not expected: {line}");
        let fields: Vec<&str> = line.trim_end().split(',').collect();
        assert_eq!(fields.len(), kinds.len(), "{table}.csv line {}: {line}", i + 1);
        f(fields.iter().zip(kinds).map(|(s, k)| parse(s, *k)).collect());
        n += 1;
    }
    Ok(n)
}

fn parse(s: &str, kind: u8) -> Value {
    match kind {
        b'i' => Value::Int(s.parse().expect("integer")),
        b'f' => Value::Float(s.parse().expect("double")),
        _ => Value::text(s),
    }
}

/// One event of the change stream.
#[derive(Debug, Clone)]
pub enum Event {
    Insert { table: usize, row: Vec<Value> },
    Update { table: usize, old: Vec<Value>, new: Vec<Value> },
    Delete { table: usize, row: Vec<Value> },
}

fn json_row(table: usize, v: &serde_json::Value) -> Vec<Value> {
    let names: &[&str] = match table {
        0 => &["id", "name", "region"],
        1 => &["id", "name", "category", "price"],
        _ => &["id", "customer_id", "product_id", "amount", "status"],
    };
    let kinds = kinds(TABLES[table].0);
    names
        .iter()
        .zip(kinds)
        .map(|(n, k)| {
            let x = &v[*n];
            match k {
                b'i' => Value::Int(x.as_i64().expect("integer")),
                b'f' => Value::Float(x.as_f64().expect("number")),
                _ => Value::text(x.as_str().expect("text")),
            }
        })
        .collect()
}

/// The change stream as source transactions, in order.
pub fn read_changes(dir: &Path) -> std::io::Result<Vec<Vec<Event>>> {
    let file = BufReader::new(File::open(dir.join("changes.jsonl"))?);
    let mut txns: Vec<Vec<Event>> = Vec::new();
    let mut current = None;
    for line in file.lines() {
        let v: serde_json::Value = serde_json::from_str(&line?).expect("JSON line");
        let txn = v["txn"].as_i64().expect("txn");
        if current != Some(txn) {
            txns.push(Vec::new());
            current = Some(txn);
        }
        let table = TABLES.iter().position(|(n, _)| *n == v["table"].as_str().expect("table")).expect("known table");
        let event = match v["op"].as_str().expect("op") {
            "insert" => Event::Insert { table, row: json_row(table, &v["row"]) },
            "delete" => Event::Delete { table, row: json_row(table, &v["row"]) },
            "update" => Event::Update { table, old: json_row(table, &v["old"]), new: json_row(table, &v["new"]) },
            other => panic!("unknown op {other}"),
        };
        txns.last_mut().expect("txn").push(event);
    }
    Ok(txns)
}

/// Source transactions grouped into batches of at least `size` events, each ending on
/// a transaction boundary.
pub fn batches(txns: &[Vec<Event>], size: usize) -> Vec<Vec<&Event>> {
    let mut out = Vec::new();
    let mut cur: Vec<&Event> = Vec::new();
    for t in txns {
        cur.extend(t.iter());
        if cur.len() >= size {
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Bytes of the raw values: 8 per number, the length of each text.
pub fn raw_bytes(row: &[Value]) -> usize {
    row.iter()
        .map(|v| match v {
            Value::Text(s) => s.len(),
            _ => 8,
        })
        .sum()
}

/// An event as a change of the engine's table of the same position.
pub fn to_change(e: &Event) -> Change {
    let t = |i: usize| TableRef::Id(ciuf::core::TableId(i as u32));
    match e {
        Event::Insert { table, row } => Change::Insert { table: t(*table), row: RowData::Values(row.clone()) },
        Event::Delete { table, row } => Change::Delete { table: t(*table), row: RowData::Values(row.clone()) },
        Event::Update { table, old, new } => Change::Update {
            table: t(*table),
            old: Some(RowData::Values(old.clone())),
            new: RowData::Values(new.clone()),
        },
    }
}
