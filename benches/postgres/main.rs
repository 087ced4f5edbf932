//! The reference workload through the PostgreSQL source.
//!
//!     python3 ../shared/bench/gen_workload.py /tmp/ciuf-wl --scale 1
//!     cargo bench --bench postgres -- --data /tmp/ciuf-wl
//!
//! Starts a PostgreSQL server of its own (as the tests do), loads the three tables into
//! it, then measures, in one run:
//!
//! - snapshot: `Engine::open` and the five views registered — the tables copied from a
//!   consistent snapshot and the views built (rows/s);
//! - replicated events/s: the first half of the change stream written to PostgreSQL as
//!   transactions of about 10,000 events, the second half as the workload's own source
//!   transactions (1–10 events), from the first write until every view has it;
//! - commit-to-view latency: a one-row transaction committed, then waited for until the
//!   view shows it (p50/p99);
//! - the comparison: PostgreSQL running the five queries (ms for all five, after the
//!   stream), i.e. what a full recomputation costs per batch;
//! - the check: every view equals PostgreSQL's answer at the end.
//!
//! Prints one `RESULT {...}` line per measurement. `--snapshot-only` stops after the
//! snapshot and the views (to profile them).

#[path = "../../tests/common/pg.rs"]
mod pg;
#[path = "../reference/workload.rs"]
#[allow(dead_code)] // shared with the reference benchmark, which uses all of it
mod workload;

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ciuf::{Engine, Value, View};
use workload::{Event, TABLES, VIEWS, read_changes};

struct Args {
    data: PathBuf,
    latency_samples: usize,
    /// Stop after the snapshot and the views (for profiling them).
    snapshot_only: bool,
}

fn parse_args() -> Args {
    let mut data = None;
    let mut latency_samples = 2000;
    let mut snapshot_only = false;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--data" => data = it.next().map(PathBuf::from),
            "--latency-samples" => latency_samples = it.next().and_then(|v| v.parse().ok()).expect("a number"),
            "--snapshot-only" => snapshot_only = true,
            "--bench" => {}
            other => {
                panic!("unknown argument {other}; usage: --data <workload dir> [--latency-samples N] [--snapshot-only]")
            }
        }
    }
    Args { data: data.expect("--data <dir made by gen_workload.py>"), latency_samples, snapshot_only }
}

const PG_TABLES: [&str; 3] = [
    "CREATE TABLE customers (id bigint PRIMARY KEY, name text, region text)",
    "CREATE TABLE products (id bigint PRIMARY KEY, name text, category text, price double precision)",
    "CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint, product_id bigint, amount double precision, status text)",
];

fn sql_value(v: &Value) -> String {
    match v {
        Value::Null => "NULL".into(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => format!("{f:?}"),
        Value::Text(s) => format!("'{}'", s.replace('\'', "''")),
        other => other.to_string(),
    }
}

const COLUMNS: [&[&str]; 3] = [
    &["id", "name", "region"],
    &["id", "name", "category", "price"],
    &["id", "customer_id", "product_id", "amount", "status"],
];

fn event_sql(e: &Event, out: &mut String) {
    match e {
        Event::Insert { table, row } => {
            let values: Vec<String> = row.iter().map(sql_value).collect();
            out.push_str(&format!("INSERT INTO {} VALUES ({});", TABLES[*table].0, values.join(",")));
        }
        Event::Update { table, old, new } => {
            let sets: Vec<String> =
                COLUMNS[*table].iter().zip(new).skip(1).map(|(c, v)| format!("{c} = {}", sql_value(v))).collect();
            out.push_str(&format!(
                "UPDATE {} SET {} WHERE id = {};",
                TABLES[*table].0,
                sets.join(","),
                sql_value(&old[0])
            ));
        }
        Event::Delete { table, row } => {
            out.push_str(&format!("DELETE FROM {} WHERE id = {};", TABLES[*table].0, sql_value(&row[0])));
        }
    }
}

fn result(fields: &str) {
    println!("RESULT {{{fields}}}");
    let _ = std::io::stdout().flush();
}

fn wait_marker(marker: &View, id: i64) {
    let deadline = Instant::now() + Duration::from_secs(600);
    while marker.rows().expect("marker").first().is_none_or(|r| *r.get(0) != Value::Int(id)) {
        assert!(Instant::now() < deadline, "the engine did not catch up");
        std::hint::spin_loop();
    }
}

fn percentile(xs: &mut [Duration], q: f64) -> f64 {
    xs.sort();
    xs[((xs.len() as f64 * q) as usize).min(xs.len() - 1)].as_secs_f64() * 1e6
}

fn norm(text: Option<&str>) -> String {
    match text {
        None => "NULL".into(),
        Some(t) => t.parse::<f64>().map_or_else(|_| t.to_string(), |f| format!("{f:.2}")),
    }
}

fn main() {
    let args = parse_args();
    let txns = read_changes(&args.data).expect("changes.jsonl");
    let server = pg::PgServer::start();
    let mut client = server.client();
    for ddl in PG_TABLES {
        client.batch_execute(ddl).expect("create");
    }
    client
        .batch_execute("CREATE TABLE marker (id bigint PRIMARY KEY); INSERT INTO marker VALUES (0);")
        .expect("marker");
    let mut base_rows = 0u64;
    for (name, _) in TABLES {
        let bytes = std::fs::read(args.data.join(format!("{name}.csv"))).expect("csv");
        let mut w = client.copy_in(&format!("COPY {name} FROM STDIN WITH (FORMAT csv, HEADER true)")).expect("copy");
        w.write_all(&bytes).expect("copy data");
        base_rows += w.finish().expect("copy end");
    }
    // A checkpoint after the bulk load, so that it is not written out while the
    // snapshot is measured.
    client.batch_execute("VACUUM ANALYZE").expect("analyze");
    server.psql("postgres", "CHECKPOINT");
    println!(
        "# PostgreSQL {} on 127.0.0.1:{}, {base_rows} base rows",
        server.psql("postgres", "SHOW server_version"),
        server.port
    );

    // Snapshot: open, then the five views (each names its tables: copied on first use).
    let start = Instant::now();
    let engine = Engine::open(&server.url()).expect("open");
    println!("# opened (replication slot and snapshot) in {:.2} s", start.elapsed().as_secs_f64());
    engine.load_tables(&["customers", "products", "orders"]).expect("load");
    let loaded = start.elapsed();
    result(&format!(
        "\"system\":\"ciuf-postgres\",\"measure\":\"snapshot_tables\",\"rows\":{base_rows},\"seconds\":{:.2},\"rows_per_s\":{:.0}",
        loaded.as_secs_f64(),
        base_rows as f64 / loaded.as_secs_f64()
    ));
    let views: Vec<View> = VIEWS
        .iter()
        .map(|(name, sql)| {
            let t = Instant::now();
            let v = engine.from_sql(sql).expect("view");
            println!("# {name} registered in {:.2} s", t.elapsed().as_secs_f64());
            v
        })
        .collect();
    let snapshot = start.elapsed();
    result(&format!(
        "\"system\":\"ciuf-postgres\",\"measure\":\"build_five_views\",\"seconds\":{:.2}",
        (snapshot - loaded).as_secs_f64()
    ));
    let marker = engine.from_sql("SELECT id FROM marker").expect("marker view");
    result(&format!(
        "\"system\":\"ciuf-postgres\",\"measure\":\"snapshot_and_views\",\"rows\":{base_rows},\"seconds\":{:.2},\"rows_per_s\":{:.0}",
        snapshot.as_secs_f64(),
        base_rows as f64 / snapshot.as_secs_f64()
    ));
    if args.snapshot_only {
        return;
    }

    // The stream: first half as ~10,000-event transactions, second half as written.
    let half = txns.len() / 2;
    let mut m = 0i64;
    for (label, parts) in [
        ("10000", batches_of(&txns[..half], 10_000)),
        ("source", txns[half..].iter().map(|t| t.iter().collect()).collect()),
    ] {
        let events: usize = parts.iter().map(Vec::len).sum();
        let start = Instant::now();
        for part in &parts {
            let mut sql = String::from("BEGIN;");
            for e in part {
                event_sql(e, &mut sql);
            }
            m += 1;
            sql.push_str(&format!("UPDATE marker SET id = {m};COMMIT;"));
            client.batch_execute(&sql).expect("write");
        }
        let written = start.elapsed();
        wait_marker(&marker, m);
        let caught_up = start.elapsed();
        result(&format!(
            "\"system\":\"ciuf-postgres\",\"measure\":\"replicated\",\"source_txn_events\":\"{label}\",\"events\":{events},\
             \"events_per_s\":{:.0},\"postgres_write_events_per_s\":{:.0},\"lag_after_last_write_ms\":{:.1}",
            events as f64 / caught_up.as_secs_f64(),
            events as f64 / written.as_secs_f64(),
            (caught_up - written).as_secs_f64() * 1e3
        ));
    }

    // Commit-to-view latency.
    let mut lat = Vec::with_capacity(args.latency_samples);
    for _ in 0..args.latency_samples {
        m += 1;
        let t = Instant::now();
        client.batch_execute(&format!("UPDATE marker SET id = {m}")).expect("write");
        wait_marker(&marker, m);
        lat.push(t.elapsed());
    }
    result(&format!(
        "\"system\":\"ciuf-postgres\",\"measure\":\"commit_to_view\",\"samples\":{},\"p50_us\":{:.0},\"p99_us\":{:.0}",
        lat.len(),
        percentile(&mut lat, 0.5),
        percentile(&mut lat, 0.99)
    ));

    // PostgreSQL running the five queries: the full recomputation per batch.
    let mut runs = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        for (_, sql) in VIEWS {
            client.simple_query(sql).expect("query");
        }
        runs.push(t.elapsed());
    }
    runs.sort();
    let pg_ms = runs[2].as_secs_f64() * 1e3;
    let read = Instant::now();
    for v in &views {
        v.query().expect("read");
    }
    result(&format!(
        "\"system\":\"postgres\",\"measure\":\"five_queries\",\"ms\":{pg_ms:.1},\"ciuf_read_five_views_ms\":{:.2}",
        read.elapsed().as_secs_f64() * 1e3
    ));

    // The check.
    for (v, (name, sql)) in views.iter().zip(VIEWS) {
        let mut got: Vec<Vec<String>> = v
            .rows()
            .expect("rows")
            .iter()
            .map(|r| {
                r.iter()
                    .map(|x| match &*x {
                        Value::Null => "NULL".into(),
                        Value::Text(s) => s.to_string(),
                        other => norm(Some(&other.to_string())),
                    })
                    .collect()
            })
            .collect();
        let mut want: Vec<Vec<String>> = client
            .simple_query(sql)
            .expect("query")
            .into_iter()
            .filter_map(|m| match m {
                postgres::SimpleQueryMessage::Row(r) => Some((0..r.len()).map(|i| norm(r.get(i))).collect()),
                _ => None,
            })
            .collect();
        if !sql.contains("ORDER BY") {
            got.sort();
            want.sort();
        }
        assert_eq!(got.len(), want.len(), "{name}: row count differs from PostgreSQL");
        assert!(got == want, "{name} differs from PostgreSQL");
    }
    result("\"system\":\"ciuf-postgres\",\"measure\":\"check\",\"views_equal_postgres\":true");
    engine.close();
}

fn batches_of(txns: &[Vec<Event>], size: usize) -> Vec<Vec<&Event>> {
    workload::batches(txns, size)
}
