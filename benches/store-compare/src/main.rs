//! redb doing the state directory's job, for the choice of store (see the README's
//! "Durable state"): the rows of the reference workload's size kept by key, loaded in
//! transactions of 100,000, then one-row commits made durable one by one, then
//! commits of 10,000; the file's size; and a restart's full read.
//!
//!     cargo run --release --manifest-path benches/store-compare/Cargo.toml -- <dir>

use std::time::Instant;

use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};

const ROWS: TableDefinition<u64, &[u8]> = TableDefinition::new("rows");
const N: u64 = 1_110_000;

/// A row's bytes: about what ciuf's encoding of a reference-workload row takes.
fn row(k: u64, version: u64) -> Vec<u8> {
    let mut v = vec![0u8; 30];
    v[..8].copy_from_slice(&k.to_le_bytes());
    v[8..16].copy_from_slice(&version.to_le_bytes());
    v
}

fn main() {
    let dir = std::env::args().nth(1).unwrap_or_else(|| std::env::temp_dir().display().to_string());
    let path = std::path::Path::new(&dir).join("store-compare.redb");
    let _ = std::fs::remove_file(&path);
    let db = Database::create(&path).expect("create");

    let start = Instant::now();
    for from in (0..N).step_by(100_000) {
        let txn = db.begin_write().expect("write");
        {
            let mut t = txn.open_table(ROWS).expect("table");
            for k in from..(from + 100_000).min(N) {
                t.insert(k, row(k, 0).as_slice()).expect("insert");
            }
        }
        txn.commit().expect("commit");
    }
    let load = start.elapsed().as_secs_f64();
    let loaded = std::fs::metadata(&path).expect("size").len();

    let mut latencies = Vec::new();
    for j in 0..5_000u64 {
        let s = Instant::now();
        let mut txn = db.begin_write().expect("write");
        txn.set_durability(Durability::Immediate).expect("durability");
        {
            let mut t = txn.open_table(ROWS).expect("table");
            let k = (j * 7919) % N;
            t.insert(k, row(k, 1).as_slice()).expect("insert");
        }
        txn.commit().expect("commit");
        latencies.push(s.elapsed());
    }
    latencies.sort();
    let us = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e6;

    let s = Instant::now();
    for b in 0..10u64 {
        let txn = db.begin_write().expect("write");
        {
            let mut t = txn.open_table(ROWS).expect("table");
            for j in 0..10_000u64 {
                let k = (b * 10_000 + j) * 104_729 % N;
                t.insert(k, row(k, 2).as_slice()).expect("insert");
            }
        }
        txn.commit().expect("commit");
    }
    let batch = 100_000.0 / s.elapsed().as_secs_f64();
    let after = std::fs::metadata(&path).expect("size").len();
    drop(db);

    let s = Instant::now();
    let db = Database::open(&path).expect("open");
    let read = db.begin_read().expect("read");
    let t = read.open_table(ROWS).expect("table");
    let mut n = 0u64;
    for entry in t.iter().expect("iter") {
        let (_, v) = entry.expect("entry");
        n += u64::from(v.value()[0] > 0) + 1;
    }
    let scan = s.elapsed().as_secs_f64();
    println!(
        "RESULT {{\"store\":\"redb\",\"load_s\":{load:.3},\"bytes_per_row\":{:.1},\"batch1_p50_us\":{:.1},\"batch1_p99_us\":{:.1},\"batch10000_rows_per_s\":{batch:.0},\"bytes_per_row_after\":{:.1},\"restart_read_s\":{scan:.3},\"read\":{n}}}",
        loaded as f64 / N as f64,
        us(0.5),
        us(0.99),
        after as f64 / N as f64
    );
    let _ = std::fs::remove_file(&path);
}
