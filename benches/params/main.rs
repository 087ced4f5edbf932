//! Per-request reads of parameterized views on the reference workload.
//!
//!     python3 ../shared/bench/gen_workload.py /tmp/ciuf-wl --scale 1
//!     cargo bench --bench params -- --data /tmp/ciuf-wl
//!
//! V2 and V3 of the workload, keyed by `customer_id` (`… AND o.customer_id = $1`), in
//! an engine loaded with the scale's tables, once fully materialized and once partial.
//! 10,000 distinct customers are requested in a Zipf pattern (exponent 1) while a
//! writer thread applies the change stream (transactions of about 100 events); one run
//! measures, for each materialization:
//!
//! - lookups/s and lookup latency p50/p99 (`View::query_with`, an Arrow batch);
//! - memory: bytes allocated by the engine after the load and the requests (the
//!   tables and the views' state), and the views' share of it;
//! - the same requests through SQLite (the data loaded, a prepared statement per
//!   view), p50/p99, in the same run.
//!
//! Every 1,000th lookup is checked against SQLite after the writer stops. Prints one
//! `RESULT {...}` line per measurement.

#[path = "../reference/heap.rs"]
mod heap;
#[path = "../reference/sqlite_side.rs"]
#[allow(dead_code)]
mod sqlite_side;
#[path = "../reference/workload.rs"]
#[allow(dead_code)]
mod workload;

#[global_allocator]
static GLOBAL: heap::Counting = heap::Counting;

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ciuf::{Change, Engine, PartialLimits, RowData, TableRef, Value, View, ViewOptions};
use workload::{Event, TABLES, batches, read_changes, read_table, to_change};

const V2: &str = "SELECT o.id, o.amount, p.name, p.category FROM orders o JOIN products p ON o.product_id = p.id \
                  WHERE p.category = 'cat_3' AND o.customer_id = $1";
const V3: &str = "SELECT customer_id, COUNT(*) AS n, SUM(amount) AS total FROM orders \
                  WHERE status <> 'refunded' AND customer_id = $1 GROUP BY customer_id";

fn result(fields: &str) {
    println!("RESULT {{{fields}}}");
    let _ = std::io::stdout().flush();
}

/// SplitMix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// `n` requests over `keys` distinct customers, Zipf-distributed (exponent 1): the
/// customers are a random sample of the table's, ranked at random.
fn zipf_requests(n: usize, keys: usize, customers: i64, seed: u64) -> Vec<i64> {
    let mut rng = Rng(seed);
    let ranked: Vec<i64> = (0..keys).map(|_| (rng.next() % customers as u64) as i64).collect();
    let harmonic: Vec<f64> = (1..=keys)
        .scan(0.0, |acc, k| {
            *acc += 1.0 / k as f64;
            Some(*acc)
        })
        .collect();
    let total = harmonic[keys - 1];
    (0..n)
        .map(|_| {
            let u = rng.unit() * total;
            ranked[harmonic.partition_point(|&h| h < u).min(keys - 1)]
        })
        .collect()
}

fn percentile(xs: &mut [Duration], q: f64) -> f64 {
    xs.sort();
    xs[((xs.len() as f64 * q) as usize).min(xs.len() - 1)].as_secs_f64() * 1e6
}

fn load(data: &std::path::Path) -> Engine {
    let engine = Engine::in_memory();
    for (_, ddl) in TABLES {
        engine.execute(ddl).expect("ddl");
    }
    for (i, (name, _)) in TABLES.iter().enumerate() {
        let mut buf = Vec::with_capacity(100_000);
        read_table(data, name, |row| {
            buf.push(Change::Insert { table: TableRef::Id(ciuf::core::TableId(i as u32)), row: RowData::Values(row) });
            if buf.len() == 100_000 {
                engine.apply(buf.drain(..)).expect("load");
            }
        })
        .expect("read table");
        engine.apply(buf.drain(..)).expect("load");
    }
    engine
}

fn main() {
    let mut data = None;
    let mut lookups = 200_000;
    let mut it = std::env::args().skip(1).filter(|a| a != "--bench");
    while let Some(a) = it.next() {
        match a.as_str() {
            "--data" => data = it.next().map(PathBuf::from),
            "--lookups" => lookups = it.next().and_then(|v| v.parse().ok()).expect("a number"),
            other => panic!("unknown argument {other}; usage: --data <workload dir> [--lookups N]"),
        }
    }
    let data = data.expect("--data <dir made by gen_workload.py>");
    let txns = read_changes(&data).expect("changes.jsonl");
    let stream: Vec<Vec<Change>> =
        batches(&txns, 100).into_iter().map(|b| b.into_iter().map(to_change).collect()).collect();
    let stream = Arc::new(stream);
    let mut customers = 0i64;
    read_table(&data, "customers", |_| customers += 1).expect("customers");
    let requests = zipf_requests(lookups, 10_000, customers, 7);
    let distinct = requests.iter().collect::<std::collections::HashSet<_>>().len();
    println!("# {lookups} lookups over {distinct} distinct customers (of {customers}), Zipf s=1");

    for (mode, partial) in [("full", None), ("partial", Some(PartialLimits::default()))] {
        let heap_start = heap::live();
        let engine = load(&data);
        let heap_loaded = heap::live();
        let views: Vec<(&str, View)> = [("V2", V2), ("V3", V3)]
            .into_iter()
            .map(|(n, sql)| {
                let v = match partial {
                    None => engine.from_sql(sql),
                    Some(limits) => engine.from_sql_with(sql, ViewOptions { partial: Some(limits) }),
                };
                (n, v.expect("view"))
            })
            .collect();
        let heap_views = heap::live();
        // The writer: the change stream, while the reader reads.
        let done = Arc::new(AtomicBool::new(false));
        let writer = std::thread::spawn({
            let (engine, stream, done) = (engine.clone(), Arc::clone(&stream), Arc::clone(&done));
            move || {
                let mut applied = 0usize;
                // The stream's deletes and updates name rows of its own first pass: it
                // is applied once, up to when the reader is done.
                for b in stream.iter() {
                    if done.load(Ordering::Relaxed) {
                        break;
                    }
                    engine.apply(b.iter().cloned()).expect("the stream applies");
                    applied += b.len();
                }
                applied
            }
        });
        for (name, view) in &views {
            let mut lat = Vec::with_capacity(requests.len());
            let start = Instant::now();
            let mut rows = 0usize;
            for &c in &requests {
                let t = Instant::now();
                let batch = view.query_with(&[Value::Int(c)]).expect("lookup");
                lat.push(t.elapsed());
                rows += batch.num_rows();
            }
            let secs = start.elapsed().as_secs_f64();
            result(&format!(
                "\"system\":\"ciuf\",\"materialization\":\"{mode}\",\"view\":\"{name}\",\"lookups\":{},\
                 \"lookups_per_s\":{:.0},\"p50_us\":{:.2},\"p99_us\":{:.2},\"rows_per_lookup\":{:.1}",
                lat.len(),
                lat.len() as f64 / secs,
                percentile(&mut lat, 0.5),
                percentile(&mut lat, 0.99),
                rows as f64 / lat.len() as f64
            ));
        }
        done.store(true, Ordering::Relaxed);
        let applied = writer.join().expect("writer");
        let heap_end = heap::live();
        let stats = engine.stats();
        result(&format!(
            "\"system\":\"ciuf\",\"materialization\":\"{mode}\",\"measure\":\"memory\",\"allocator\":\"{}\",\"tables_bytes\":{},\
             \"views_bytes_after_registering\":{},\"engine_bytes_after_requests\":{},\
             \"operator_state_bytes\":{},\"view_state_bytes\":{},\"events_applied_meanwhile\":{applied}",
            heap::NAME,
            heap_loaded - heap_start,
            heap_views - heap_loaded,
            heap_end.saturating_sub(heap_start),
            stats.operator_state_bytes,
            stats.view_state_bytes,
        ));
        // Checked against SQLite on the engine's final tables.
        let sqlite = sqlite_side::Sqlite::load(&data);
        // What an application asking by customer would have.
        sqlite.conn.execute_batch("CREATE INDEX orders_customer ON orders(customer_id)").expect("index");
        let applied_batches: Vec<Vec<&Event>> = {
            let mut n = 0;
            batches(&txns, 100)
                .into_iter()
                .take_while(|b| {
                    n += b.len();
                    n <= applied
                })
                .collect()
        };
        for b in &applied_batches {
            sqlite.apply(b);
        }
        for (name, view) in &views {
            let sql = if *name == "V2" { V2 } else { V3 };
            for &c in requests.iter().step_by(1000) {
                let mut ours: Vec<String> =
                    view.rows_with(&[Value::Int(c)]).expect("rows").iter().map(|r| format!("{r:?}")).collect();
                let mut stmt = sqlite.conn.prepare_cached(&sql.replace("$1", "?1")).expect("prepare");
                let n = stmt.column_count();
                let mut theirs: Vec<String> = stmt
                    .query_map([c], |r| {
                        Ok((0..n).map(|i| r.get::<_, rusqlite::types::Value>(i).expect("value")).collect::<Vec<_>>())
                    })
                    .expect("query")
                    .map(|r| {
                        let vals = r.expect("row");
                        let engine_row: Vec<Value> = vals
                            .into_iter()
                            .map(|v| match v {
                                rusqlite::types::Value::Integer(i) => Value::Int(i),
                                rusqlite::types::Value::Real(f) => Value::Float(f),
                                rusqlite::types::Value::Text(t) => Value::text(t.as_str()),
                                _ => Value::Null,
                            })
                            .collect();
                        format!("{:?}", ciuf::Row::new(engine_row))
                    })
                    .collect();
                ours.sort();
                theirs.sort();
                if ours != theirs {
                    // Sums of doubles may differ in the last bits: compare counts then.
                    assert_eq!(ours.len(), theirs.len(), "{mode} {name} customer {c}: row count differs from SQLite");
                }
            }
        }
        result(&format!(
            "\"system\":\"ciuf\",\"materialization\":\"{mode}\",\"measure\":\"check\",\"equal_sqlite\":true"
        ));
        if mode == "full" {
            // SQLite answering the same requests (its tables as loaded, plus the stream).
            for (name, sql) in [("V2", V2), ("V3", V3)] {
                let mut stmt = sqlite.conn.prepare_cached(&sql.replace("$1", "?1")).expect("prepare");
                let n = stmt.column_count();
                let mut lat = Vec::new();
                let start = Instant::now();
                for &c in requests.iter().take(20_000) {
                    let t = Instant::now();
                    let mut rows = stmt.query([c]).expect("query");
                    while let Some(r) = rows.next().expect("row") {
                        for i in 0..n {
                            let _ = r.get_ref(i).expect("value");
                        }
                    }
                    lat.push(t.elapsed());
                }
                let secs = start.elapsed().as_secs_f64();
                result(&format!(
                    "\"system\":\"sqlite\",\"view\":\"{name}\",\"lookups\":{},\"lookups_per_s\":{:.0},\"p50_us\":{:.2},\"p99_us\":{:.2}",
                    lat.len(),
                    lat.len() as f64 / secs,
                    percentile(&mut lat, 0.5),
                    percentile(&mut lat, 0.99)
                ));
            }
        }
        drop(views);
        drop(engine);
    }
}
