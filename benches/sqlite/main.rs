//! The reference workload through the SQLite source, written by another process.
//!
//!     python3 ../shared/bench/gen_workload.py /tmp/ciuf-wl --scale 1
//!     cargo bench --bench sqlite -- --data /tmp/ciuf-wl
//!
//! Makes a SQLite file (WAL) holding the three tables, then measures, in one run:
//!
//! - load: `Engine::open`, the tables loaded (change capture installed on the way) and
//!   the five views built (rows/s);
//! - capture events/s: a second process (this binary, re-run as a writer) writes the
//!   change stream into the file — its first half as transactions of about 10,000
//!   events, its second half as the workload's own source transactions (1–10 events),
//!   each ending with a marker update — timed from the writer's start until every view
//!   has the last transaction; beside it, how fast the writer itself went, and how
//!   fast it goes into a copy of the file without capture (the triggers' cost);
//! - write-to-view latency: a one-row transaction committed, then waited for until the
//!   view shows it (p50/p99);
//! - the comparison: SQLite re-running the five queries on the file (ms for all five),
//!   i.e. what a full recomputation costs after each batch;
//! - the check: every view equals SQLite's answer on the file at the end.
//!
//! Prints one `RESULT {...}` line per measurement.

#[path = "../reference/sqlite_side.rs"]
#[allow(dead_code)] // shared with the reference benchmark, which uses all of it
mod sqlite_side;
#[path = "../reference/workload.rs"]
#[allow(dead_code)] // shared with the reference benchmark, which uses all of it
mod workload;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use ciuf::{Engine, Value, View};
use rusqlite::Connection;
use workload::{Event, TABLES, VIEWS, batches, read_changes};

fn result(fields: &str) {
    println!("RESULT {{{fields}}}");
    let _ = std::io::stdout().flush();
}

fn to_sql(v: &Value) -> rusqlite::types::Value {
    use rusqlite::types::Value as S;
    match v {
        Value::Null => S::Null,
        Value::Int(i) => S::Integer(*i),
        Value::Float(f) => S::Real(*f),
        other => S::Text(other.to_text().expect("not null")),
    }
}

fn connect(db: &Path) -> Connection {
    let c = Connection::open(db).expect("open the benchmark's file");
    c.busy_timeout(Duration::from_secs(60)).expect("busy timeout");
    c
}

/// The workload's tables in a new WAL file at `db`, with a marker table; returns the
/// number of rows.
fn make_file(db: &Path, data: &Path) -> u64 {
    let c = connect(db);
    c.pragma_update(None, "journal_mode", "WAL").expect("wal");
    let file = sqlite_side::Sqlite::load_into(c, data);
    file.conn
        .execute_batch(
            "CREATE TABLE marker (id INTEGER PRIMARY KEY, m INTEGER NOT NULL); INSERT INTO marker VALUES (0, 0);",
        )
        .expect("marker");
    TABLES
        .iter()
        .map(|(name, _)| file.conn.query_row(&format!("SELECT count(*) FROM {name}"), [], |r| r.get::<_, i64>(0)))
        .sum::<Result<i64, _>>()
        .expect("row counts") as u64
}

/// Writes `parts` to the file, each in one transaction that ends by setting the marker
/// to its number (counting on from `first`).
fn write_parts(file: &sqlite_side::Sqlite, parts: &[Vec<&Event>], first: i64) {
    for (m, part) in (first + 1..).zip(parts) {
        file.apply_then(part, |tx| {
            tx.execute("UPDATE marker SET m = ?1 WHERE id = 0", [m]).expect("marker");
        });
    }
}

/// The stream's parts for `label`: "10000" (the first half, ~10,000 events a
/// transaction) or "source" (the second half, as the workload's transactions).
fn parts<'a>(txns: &'a [Vec<Event>], label: &str) -> Vec<Vec<&'a Event>> {
    let half = txns.len() / 2;
    match label {
        "10000" => batches(&txns[..half], 10_000),
        _ => txns[half..].iter().map(|t| t.iter().collect()).collect(),
    }
}

/// The writer process: `--writer <db> <data> <label> <first marker>`; prints the
/// seconds it took.
fn writer(args: &[String]) {
    let [db, data, label, first] = args else { panic!("--writer <db> <data> <label> <first marker>") };
    let txns = read_changes(Path::new(data)).expect("changes.jsonl");
    let parts = parts(&txns, label);
    let file = sqlite_side::Sqlite { conn: connect(Path::new(db)) };
    let t = Instant::now();
    write_parts(&file, &parts, first.parse().expect("a number"));
    println!("{:.6}", t.elapsed().as_secs_f64());
}

fn wait_marker(marker: &View, m: i64) {
    let deadline = Instant::now() + Duration::from_secs(600);
    while marker.rows().expect("marker").first().is_none_or(|r| *r.get(0) != Value::Int(m)) {
        assert!(Instant::now() < deadline, "the engine did not catch up");
        std::hint::spin_loop();
    }
}

fn percentile(xs: &mut [Duration], q: f64) -> f64 {
    xs.sort();
    xs[((xs.len() as f64 * q) as usize).min(xs.len() - 1)].as_secs_f64() * 1e6
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    if args.first().is_some_and(|a| a == "--writer") {
        return writer(&args[1..]);
    }
    let mut data = None;
    let mut latency_samples = 2000;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--data" => data = it.next().map(PathBuf::from),
            "--latency-samples" => latency_samples = it.next().and_then(|v| v.parse().ok()).expect("a number"),
            other => panic!("unknown argument {other}; usage: --data <workload dir> [--latency-samples N]"),
        }
    }
    let data = data.expect("--data <dir made by gen_workload.py>");
    let txns = read_changes(&data).expect("changes.jsonl");
    let dir = std::env::temp_dir().join(format!("ciuf-bench-sqlite-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let db = dir.join("shop.db");
    let plain = dir.join("plain.db");
    let base_rows = make_file(&db, &data);
    std::fs::copy(&db, &plain).expect("a copy without capture");
    println!("# SQLite {} file {}, {base_rows} base rows", rusqlite::version(), db.display());

    // Load: capture installed, tables loaded, views built.
    let start = Instant::now();
    let engine = Engine::open(&format!("sqlite://{}", db.display())).expect("open");
    engine.load_tables(&["customers", "products", "orders", "marker"]).expect("load");
    let loaded = start.elapsed();
    result(&format!(
        "\"system\":\"ciuf-sqlite\",\"measure\":\"load_tables\",\"rows\":{base_rows},\"seconds\":{:.2},\"rows_per_s\":{:.0}",
        loaded.as_secs_f64(),
        base_rows as f64 / loaded.as_secs_f64()
    ));
    let views: Vec<View> = VIEWS.iter().map(|(_, sql)| engine.from_sql(sql).expect("view")).collect();
    let marker = engine.from_sql("SELECT m FROM marker").expect("marker view");
    result(&format!(
        "\"system\":\"ciuf-sqlite\",\"measure\":\"build_five_views\",\"seconds\":{:.2}",
        (start.elapsed() - loaded).as_secs_f64()
    ));

    // The stream, from another process.
    let exe = std::env::current_exe().expect("this binary");
    let mut m = 0i64;
    for label in ["10000", "source"] {
        let events: usize = parts(&txns, label).iter().map(Vec::len).sum();
        let n_parts = parts(&txns, label).len() as i64;
        // The same writes into the copy without capture: what the triggers cost the writer.
        let out = Command::new(&exe)
            .args(["--writer", &plain.display().to_string(), &data.display().to_string(), label, &m.to_string()])
            .output()
            .expect("the writer runs");
        assert!(out.status.success(), "writer: {}", String::from_utf8_lossy(&out.stderr));
        let plain_secs: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().expect("seconds");
        let start = Instant::now();
        let out = Command::new(&exe)
            .args(["--writer", &db.display().to_string(), &data.display().to_string(), label, &m.to_string()])
            .output()
            .expect("the writer runs");
        assert!(out.status.success(), "writer: {}", String::from_utf8_lossy(&out.stderr));
        let write_secs: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().expect("seconds");
        m += n_parts;
        wait_marker(&marker, m);
        let caught_up = start.elapsed();
        result(&format!(
            "\"system\":\"ciuf-sqlite\",\"measure\":\"captured\",\"source_txn_events\":\"{label}\",\"events\":{events},\
             \"events_per_s\":{:.0},\"writer_events_per_s\":{:.0},\"writer_events_per_s_without_capture\":{:.0},\
             \"lag_after_last_write_ms\":{:.1}",
            events as f64 / caught_up.as_secs_f64(),
            events as f64 / write_secs,
            events as f64 / plain_secs,
            (caught_up.as_secs_f64() - write_secs).max(0.0) * 1e3
        ));
    }

    // Write-to-view latency.
    let c = connect(&db);
    let mut lat = Vec::with_capacity(latency_samples);
    for _ in 0..latency_samples {
        m += 1;
        let t = Instant::now();
        c.execute("UPDATE marker SET m = ?1 WHERE id = 0", [m]).expect("write");
        wait_marker(&marker, m);
        lat.push(t.elapsed());
    }
    result(&format!(
        "\"system\":\"ciuf-sqlite\",\"measure\":\"write_to_view\",\"samples\":{},\"p50_us\":{:.0},\"p99_us\":{:.0}",
        lat.len(),
        percentile(&mut lat, 0.5),
        percentile(&mut lat, 0.99)
    ));

    // SQLite re-running the five queries on the file: the full recomputation.
    let mut runs = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        for (_, sql) in VIEWS {
            let mut stmt = c.prepare_cached(sql).expect("prepare");
            let cols = stmt.column_count();
            let mut rows = stmt.query([]).expect("query");
            while let Some(r) = rows.next().expect("row") {
                for i in 0..cols {
                    let _ = r.get_ref(i).expect("value");
                }
            }
        }
        runs.push(t.elapsed());
    }
    runs.sort();
    let read = Instant::now();
    for v in &views {
        v.query().expect("read");
    }
    result(&format!(
        "\"system\":\"sqlite\",\"measure\":\"five_queries\",\"ms\":{:.1},\"ciuf_read_five_views_ms\":{:.2}",
        runs[2].as_secs_f64() * 1e3,
        read.elapsed().as_secs_f64() * 1e3
    ));

    // The check.
    for (v, (name, sql)) in views.iter().zip(VIEWS) {
        let norm = |x: &rusqlite::types::Value| match x {
            rusqlite::types::Value::Integer(i) => format!("{i}"),
            rusqlite::types::Value::Real(f) => format!("{f:.3}"),
            rusqlite::types::Value::Text(t) => t.clone(),
            other => format!("{other:?}"),
        };
        let mut got: Vec<Vec<String>> =
            v.rows().expect("rows").iter().map(|r| r.iter().map(|x| norm(&to_sql(&x))).collect()).collect();
        let mut stmt = c.prepare(sql).expect("prepare");
        let cols = stmt.column_count();
        let mut want: Vec<Vec<String>> = Vec::new();
        let mut rows = stmt.query([]).expect("query");
        while let Some(r) = rows.next().expect("row") {
            want.push((0..cols).map(|i| norm(&r.get::<_, rusqlite::types::Value>(i).expect("value"))).collect());
        }
        if !sql.contains("ORDER BY") {
            got.sort();
            want.sort();
        }
        assert_eq!(got.len(), want.len(), "{name}: row count differs from SQLite");
        assert!(got == want, "{name} differs from SQLite");
    }
    result("\"system\":\"ciuf-sqlite\",\"measure\":\"check\",\"views_equal_sqlite\":true");
    engine.close();
    let _ = std::fs::remove_dir_all(&dir);
}
