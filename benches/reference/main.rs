//! The reference benchmark (../shared/bench/WORKLOAD.md): ciuf maintaining V1–V5 under
//! the change stream, beside SQLite re-running the five queries from scratch, in one
//! run on the same data.
//!
//!     cargo bench --bench reference -- --data <workload dir> [--sqlite-batches N]
//!
//! 1. Check: ciuf and SQLite load the tables and apply the whole stream; every view must
//!    equal SQLite's answer on the final tables (else the run stops).
//! 2. For batch sizes 10,000, 100 and 1 (a batch ends on a source-transaction boundary,
//!    so "1" is one source transaction of 1–10 events): a fresh engine loads the tables
//!    and applies the stream batch by batch, all five views fresh after each batch;
//!    then SQLite applies the same batches and re-runs the five queries after each. At
//!    10,000 SQLite runs every batch; at 100 and 1 it runs the first N batches
//!    (`--sqlite-batches`, default 30), since each re-run reads all the tables.
//! 3. Reading V3 (about 100k rows at scale 1) as Arrow, right after a change and
//!    unchanged; memory after load and after the stream.
//! 4. Each view registered over tables already loaded (built in bulk from them, as
//!    for a source's snapshot or a view added to a running application), timed, and
//!    checked equal to the same view maintained through the load.
//!
//! 5. Steps 1–4 for ciuf are repeated per number of worker threads (`--threads 1,2`;
//!    default 1 and the machine's cores), each count in a fresh process, and a
//!    `scaling` line gives each count's speed-up over the first, measured in this run.
//!    SQLite runs once.
//!
//! Lines starting with `RESULT` are the measurements, one JSON object each. With
//! `--profile`, lines starting with `PROFILE` say where the maintained runs spent their
//! time, per graph node (see `ciuf::core::profile`); timing the nodes costs a little, so
//! take throughput and latency from a run without it.

#[global_allocator]
static GLOBAL: heap::Counting = heap::Counting;

mod heap;
mod sqlite_side;
mod workload;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ciuf::{Change, Engine, RowData, TableRef, Value, View};
use sqlite_side::Sqlite;
use workload::{Event, TABLES, VIEWS, batches, raw_bytes, read_changes, read_table, to_change};

struct Args {
    data: PathBuf,
    sqlite_batches: usize,
    sizes: Vec<usize>,
    /// For profiling ciuf alone: no check, no SQLite.
    ciuf_only: bool,
    /// For profiling: register only these views (1-based).
    only_views: Option<Vec<usize>>,
    /// Time every graph node during the maintained runs and print where time went.
    profile: bool,
    /// The worker thread counts to measure ciuf with, in order (`--threads 1,2`).
    threads: Vec<usize>,
    /// For comparing changes on a noisy machine: the load is timed this many times,
    /// each in a fresh engine (`--loads N`).
    loads: usize,
    /// For comparing changes to view building: each view is built over the loaded
    /// tables this many times in one process (`--builds N`); the fastest and the
    /// median are reported.
    builds: usize,
    /// For comparing changes to the stream: each batch size's stream is applied this
    /// many times, each to a fresh engine (`--streams N`); the fastest and the median
    /// are reported.
    streams: usize,
}

/// The worker threads of the engines being measured (see `Args::threads`).
static THREADS: AtomicUsize = AtomicUsize::new(1);

fn threads() -> usize {
    THREADS.load(Ordering::Relaxed)
}

fn parse_args() -> Args {
    let mut data = None;
    let mut sqlite_batches = 30;
    let mut sizes = vec![10_000, 100, 1];
    let mut ciuf_only = false;
    let mut only_views = None;
    let mut profile = false;
    let mut loads = 1;
    let mut builds = 1;
    let mut streams = 1;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut threads = if cores > 1 { vec![1, cores] } else { vec![1] };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--data" => data = it.next().map(PathBuf::from),
            "--sqlite-batches" => sqlite_batches = it.next().and_then(|n| n.parse().ok()).expect("--sqlite-batches N"),
            "--sizes" => {
                sizes = it
                    .next()
                    .expect("--sizes 10000,100,1")
                    .split(',')
                    .filter(|n| !n.is_empty())
                    .map(|n| n.parse().expect("a batch size"))
                    .collect()
            }
            "--threads" => {
                threads = it
                    .next()
                    .expect("--threads 1,2")
                    .split(',')
                    .map(|n| n.parse().ok().filter(|&n| n > 0).expect("a number of threads"))
                    .collect()
            }
            "--ciuf-only" => ciuf_only = true,
            "--loads" => loads = it.next().and_then(|n| n.parse().ok()).filter(|&n| n > 0).expect("--loads N"),
            "--builds" => builds = it.next().and_then(|n| n.parse().ok()).filter(|&n| n > 0).expect("--builds N"),
            "--streams" => streams = it.next().and_then(|n| n.parse().ok()).filter(|&n| n > 0).expect("--streams N"),
            "--profile" => profile = true,
            "--views" => {
                only_views = Some(
                    it.next().expect("--views 1,3").split(',').map(|n| n.parse().expect("a view number")).collect(),
                )
            }
            "--bench" => {} // added by `cargo bench`
            other => {
                eprintln!("unknown argument {other}");
                usage();
            }
        }
    }
    let Some(data) = data else { usage() };
    if !data.join("changes.jsonl").exists() {
        eprintln!("{} holds no workload (run ../shared/bench/gen_workload.py)", data.display());
        std::process::exit(2);
    }
    if only_views.is_some() && !ciuf_only {
        eprintln!("--views is for profiling and needs --ciuf-only");
        std::process::exit(2);
    }
    Args { data, sqlite_batches, sizes, ciuf_only, only_views, profile, threads, loads, builds, streams }
}

fn usage() -> ! {
    eprintln!(
        "usage: cargo bench --bench reference -- --data <dir> [--sqlite-batches N] [--sizes 10000,100,1] [--ciuf-only]\n\
         \x20      [--views 1,3 (with --ciuf-only)] [--profile] [--threads 1,2 (default: 1 and the cores)]\n\
         \x20      [--loads N (time the load N times; with --sizes \"\" nothing else is streamed)]\n\
         \x20      [--builds N (build each view over the loaded tables N times: fastest and median)]\n\
         \x20      [--streams N (apply each batch size's stream N times, each to a fresh engine: fastest and median)]\n\
         make <dir> with: python3 ../shared/bench/gen_workload.py <dir> --scale 1"
    );
    std::process::exit(2)
}

/// Resident and peak resident memory of this process, in bytes.
fn memory() -> (usize, usize) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<usize>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

struct Loaded {
    engine: Engine,
    views: Vec<View>,
    rows: usize,
    raw: usize,
    seconds: f64,
    rss_before: usize,
    rss_after: usize,
    heap_before: usize,
    heap_after: usize,
}

/// The views the run measures (`--views`, else all five), with their names.
fn chosen_views(args: &Args) -> impl Iterator<Item = &'static (&'static str, &'static str)> + '_ {
    VIEWS
        .iter()
        .enumerate()
        .filter(|(i, _)| args.only_views.as_ref().is_none_or(|only| only.contains(&(i + 1))))
        .map(|(_, v)| v)
}

/// A fresh engine with the five views registered and the tables loaded.
fn load_engine(args: &Args) -> Loaded {
    load_tables(args, true)
}

/// A fresh engine with the tables loaded, the views registered first if `views`.
fn load_tables(args: &Args, views: bool) -> Loaded {
    let engine = Engine::in_memory();
    engine.set_threads(threads());
    for (_, ddl) in TABLES {
        engine.execute(ddl).expect("ddl");
    }
    let views: Vec<View> = if views {
        chosen_views(args).map(|(_, sql)| engine.from_sql(sql).expect("view")).collect()
    } else {
        Vec::new()
    };
    let (rss_before, heap_before) = (memory().0, heap::live());
    engine.database().set_profiling(args.profile && !views.is_empty());
    let start = Instant::now();
    let (mut rows, mut raw) = (0, 0);
    for (i, (name, _)) in TABLES.iter().enumerate() {
        let id = engine.database().table_id(name).expect("table");
        debug_assert_eq!(id.0 as usize, i);
        let mut buf = Vec::with_capacity(100_000);
        rows += read_table(&args.data, name, |row| {
            raw += raw_bytes(&row);
            buf.push(Change::Insert { table: TableRef::Id(id), row: RowData::Values(row) });
            if buf.len() == 100_000 {
                engine.apply(buf.drain(..)).expect("load");
            }
        })
        .expect("read table");
        engine.apply(buf.drain(..)).expect("load");
    }
    // What the last transactions left to drop on the worker threads is freed, inside
    // the load's time, before memory is read.
    engine.database().settle();
    let seconds = start.elapsed().as_secs_f64();
    if args.profile && !views.is_empty() {
        for line in engine.database().profile().to_string().lines() {
            println!("PROFILE load: {line}");
        }
        engine.database().set_profiling(false);
    }
    Loaded {
        engine,
        views,
        rows,
        raw,
        seconds,
        rss_before,
        rss_after: memory().0,
        heap_before,
        heap_after: heap::live(),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e6
}

fn result(system: &str, batch: &str, events: usize, latencies: &mut [Duration]) -> f64 {
    latencies.sort();
    let total: f64 = latencies.iter().map(Duration::as_secs_f64).sum();
    let eps = events as f64 / total;
    println!(
        "RESULT {{\"system\":\"{system}\",\"threads\":{},\"batch\":{batch},\"batches\":{},\"events\":{events},\"events_per_s\":{eps:.0},\"p50_us\":{:.1},\"p99_us\":{:.1}}}",
        if system == "ciuf" { threads() } else { 1 },
        latencies.len(),
        percentile(latencies, 0.5),
        percentile(latencies, 0.99)
    );
    eps
}

/// Values as comparable text, numbers rounded to survive summation order.
fn norm_ciuf(v: &Value) -> String {
    match v {
        Value::Float(f) => format!("{:.6}", f),
        Value::Null => "NULL".into(),
        other => other.to_text().expect("not null"),
    }
}

fn norm_sqlite(v: &rusqlite::types::Value) -> String {
    use rusqlite::types::Value as S;
    match v {
        S::Null => "NULL".into(),
        S::Integer(i) => i.to_string(),
        S::Real(f) => format!("{:.6}", f),
        S::Text(t) => t.clone(),
        S::Blob(_) => "blob".into(),
    }
}

/// Applies the whole stream to `loaded` and to SQLite, and compares the five views.
fn check(args: &Args, txns: &[Vec<Event>], loaded: &Loaded) {
    let sqlite = Sqlite::load(&args.data);
    for batch in batches(txns, 10_000) {
        loaded.engine.apply(batch.iter().map(|e| to_change(e))).expect("stream");
        sqlite.apply(&batch);
    }
    for ((name, sql), view) in VIEWS.iter().zip(&loaded.views) {
        let mut ours: Vec<Vec<String>> =
            view.rows().expect("rows").iter().map(|r| r.iter().map(|v| norm_ciuf(&v)).collect()).collect();
        let mut theirs: Vec<Vec<String>> =
            sqlite.rows(sql).iter().map(|r| r.iter().map(norm_sqlite).collect()).collect();
        if !sql.contains("ORDER BY") {
            ours.sort();
            theirs.sort();
        }
        if ours != theirs {
            let first = ours.iter().zip(&theirs).position(|(a, b)| a != b);
            eprintln!(
                "CHECK FAILED for {name}: ciuf {} rows, SQLite {} rows; first difference at {first:?}",
                ours.len(),
                theirs.len()
            );
            std::process::exit(1);
        }
        println!("check {name}: {} rows equal SQLite's", ours.len());
    }
}

fn main() {
    let args = parse_args();
    let txns = read_changes(&args.data).expect("changes.jsonl");
    let n_events: usize = txns.iter().map(Vec::len).sum();
    println!("# workload {}: {} source transactions, {n_events} events", args.data.display(), txns.len());

    // One thread count: measured here. Several: each in a fresh process (this program
    // again, with one count), so that none inherits another's heap, and compared.
    if args.threads.len() == 1 {
        let n = args.threads[0];
        THREADS.store(n, Ordering::Relaxed);
        println!("# ciuf on {n} worker thread(s)");
        let with_sqlite = std::env::var(CHILD_ROUND).map_or(true, |r| r == "0");
        measure_ciuf(&args, &txns, with_sqlite);
        return;
    }
    // Per thread count: (threads, load seconds, build seconds, events/s per batch size).
    let mut scaling: Vec<(usize, f64, f64, Vec<f64>)> = Vec::new();
    for (round, &n) in args.threads.iter().enumerate() {
        scaling.push(measure_in_child(&args, round, n));
    }
    if let Some((_, load_1, build_1, eps_1)) = scaling.first().cloned() {
        for (n, load, build, eps) in &scaling[1..] {
            let batches: Vec<String> = args
                .sizes
                .iter()
                .zip(eps.iter().zip(&eps_1))
                .map(|(s, (e, e1))| format!("\"batch_{s}\":{:.2}", e / e1))
                .collect();
            println!(
                "RESULT {{\"system\":\"ciuf\",\"measure\":\"scaling\",\"threads\":{n},\"over_threads\":{},\"load\":{:.2},\"build_over_loaded\":{:.2},{}}}",
                args.threads[0],
                load_1 / load,
                build_1 / build,
                batches.join(",")
            );
        }
    }
}

/// The environment variable telling a child run which round it is (SQLite's side runs
/// in round 0 only).
const CHILD_ROUND: &str = "CIUF_BENCH_ROUND";

/// Runs this program again with `--threads n`, passes its output on, and reads back
/// (threads, load seconds, build-over-loaded seconds, events/s per batch size).
fn measure_in_child(args: &Args, round: usize, n: usize) -> (usize, f64, f64, Vec<f64>) {
    let mut argv: Vec<String> = Vec::new();
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        if a == "--threads" {
            it.next();
        } else {
            argv.push(a);
        }
    }
    argv.extend(["--threads".into(), n.to_string()]);
    let out = std::process::Command::new(std::env::current_exe().expect("this program"))
        .args(&argv)
        .env(CHILD_ROUND, round.to_string())
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("the measuring run starts");
    assert!(out.status.success(), "the run on {n} threads failed");
    let text = String::from_utf8_lossy(&out.stdout);
    let (mut load, mut build, mut eps) = (f64::NAN, f64::NAN, vec![f64::NAN; args.sizes.len()]);
    for line in text.lines() {
        if !line.starts_with("# workload") {
            println!("{line}");
        }
        let Some(json) = line.strip_prefix("RESULT ") else { continue };
        let v: serde_json::Value = serde_json::from_str(json).expect("RESULT lines are JSON");
        let number = |k: &str| v.get(k).and_then(serde_json::Value::as_f64);
        if v.get("system").and_then(|s| s.as_str()) != Some("ciuf") {
            continue;
        }
        match (v.get("measure").and_then(|m| m.as_str()), v.get("view").and_then(|m| m.as_str())) {
            (Some("load"), _) => load = number("seconds").unwrap_or(f64::NAN),
            (Some("build_over_loaded"), Some("all")) => build = number("seconds").unwrap_or(f64::NAN),
            (None, _) => {
                if let Some(i) =
                    v.get("batch").and_then(|b| b.as_u64()).and_then(|b| args.sizes.iter().position(|&s| s as u64 == b))
                {
                    eps[i] = number("events_per_s").unwrap_or(f64::NAN);
                }
            }
            _ => {}
        }
    }
    (n, load, build, eps)
}

/// One round of ciuf's measurements on the current number of threads (SQLite's side
/// beside it too when `with_sqlite`): returns (threads, load seconds, build-over-loaded
/// seconds, events/s per batch size).
fn measure_ciuf(args: &Args, txns: &[Vec<Event>], with_sqlite: bool) -> (usize, f64, f64, Vec<f64>) {
    // The first engine loads in a fresh process: its load time and memory are reported,
    // and it then applies the whole stream for the check against SQLite.
    let first = load_engine(args);
    report_load(&first);
    let load_seconds = first.seconds;
    for _ in 1..args.loads {
        let again = load_engine(args);
        println!("RESULT {{\"system\":\"ciuf\",\"measure\":\"load_again\",\"seconds\":{:.3}}}", again.seconds);
    }
    let build_seconds = build_over_loaded(args, &first);
    if !args.ciuf_only {
        check(args, txns, &first);
    }
    drop(first);

    let mut eps = Vec::new();
    for &size in &args.sizes {
        let batch_list = batches(txns, size);
        let (loaded, mut latencies, mut one_event) = stream(args, &batch_list, args.profile);
        if args.profile {
            // Timing each node slows the run a little: its figures are for the split.
            for line in loaded.engine.database().profile().to_string().lines() {
                println!("PROFILE batch {size}: {line}");
            }
            loaded.engine.database().set_profiling(false);
        }
        let events = batch_list.iter().map(Vec::len).sum();
        let ours = result("ciuf", &size.to_string(), events, &mut latencies);
        eps.push(ours);
        if size == 1 {
            result("ciuf", "\"1-event\"", one_event.len(), &mut one_event);
        }
        if args.streams > 1 {
            // The same stream again, each time in a fresh engine: on a noisy machine
            // one run cannot tell a change of a tenth from the noise.
            let mut all = vec![ours];
            for _ in 1..args.streams {
                let (again, latencies, _) = stream(args, &batch_list, false);
                drop(again);
                let total: f64 = latencies.iter().map(Duration::as_secs_f64).sum();
                all.push(events as f64 / total);
            }
            all.sort_by(f64::total_cmp);
            println!(
                "RESULT {{\"system\":\"ciuf\",\"threads\":{},\"batch\":{size},\"measure\":\"streams\",\"streams\":{},\"fastest_events_per_s\":{:.0},\"median_events_per_s\":{:.0}}}",
                threads(),
                all.len(),
                all[all.len() - 1],
                all[all.len() / 2]
            );
        }
        if size == 10_000 && args.only_views.is_none() {
            read_v3(&loaded);
            let (rss, peak) = memory();
            let heap = heap::live().saturating_sub(loaded.heap_before);
            println!(
                "RESULT {{\"system\":\"ciuf\",\"measure\":\"memory_after_stream\",\"heap_bytes\":{heap},\"rss_bytes\":{rss},\"peak_rss_bytes\":{peak},\"base_rows\":{}}}",
                loaded.engine.stats().base_rows
            );
        }
        drop(loaded);
        if args.ciuf_only || !with_sqlite {
            continue;
        }

        let sqlite = Sqlite::load(&args.data);
        let limit = if size == 10_000 { usize::MAX } else { args.sqlite_batches };
        let mut latencies = Vec::new();
        let mut events = 0;
        for batch in batch_list.iter().take(limit) {
            let start = Instant::now();
            sqlite.apply(batch);
            sqlite.rerun_views();
            latencies.push(start.elapsed());
            events += batch.len();
        }
        let theirs = result("sqlite", &size.to_string(), events, &mut latencies);
        println!(
            "RESULT {{\"measure\":\"ratio\",\"batch\":{size},\"ciuf_over_sqlite_events_per_s\":{:.0}}}",
            ours / theirs
        );
    }
    (threads(), load_seconds, build_seconds, eps)
}

/// The stream in `batch_list` applied to a freshly loaded engine, one transaction per
/// batch (profiled if `profile`): the engine, each transaction's time, and the times
/// of the one-event transactions.
fn stream(args: &Args, batch_list: &[Vec<&Event>], profile: bool) -> (Loaded, Vec<Duration>, Vec<Duration>) {
    let loaded = load_engine(args);
    let prepared: Vec<Vec<Change>> = batch_list.iter().map(|b| b.iter().map(|e| to_change(e)).collect()).collect();
    let mut latencies = Vec::with_capacity(prepared.len());
    let mut one_event = Vec::new();
    loaded.engine.database().set_profiling(profile);
    for batch in prepared {
        let n = batch.len();
        let start = Instant::now();
        loaded.engine.apply(batch).expect("stream");
        let took = start.elapsed();
        latencies.push(took);
        if n == 1 {
            one_event.push(took);
        }
    }
    // The last transaction's rows, dropped on the worker threads, count in its time
    // (each earlier one's are dropped while the next one runs).
    let start = Instant::now();
    loaded.engine.database().settle();
    if let Some(last) = latencies.last_mut() {
        *last += start.elapsed();
    }
    (loaded, latencies, one_event)
}

/// Load speed and memory of a freshly loaded engine.
/// Views registered over tables already loaded (what a source's snapshot, or a view
/// added to a running application, costs): each built in bulk from the tables, timed,
/// and checked equal to the same view maintained through the load.
fn build_over_loaded(args: &Args, first: &Loaded) -> f64 {
    let loaded = load_tables(args, false);
    loaded.engine.database().set_profiling(args.profile);
    let mut total = 0.0;
    for ((name, sql), maintained) in chosen_views(args).zip(&first.views) {
        // Each build after the first starts from the tables alone: the view before it
        // is dropped, and its nodes with it.
        let mut times = Vec::with_capacity(args.builds);
        let mut built = None;
        for _ in 0..args.builds {
            if let Some((view, _)) = built.take() {
                loaded.engine.drop_view(&view).expect("drop the view");
            }
            let start = Instant::now();
            let view = loaded.engine.from_sql(sql).expect("view");
            let rows = view.rows().expect("rows").len();
            times.push(start.elapsed().as_secs_f64());
            built = Some((view, rows));
        }
        let (view, rows) = built.expect("at least one build");
        let seconds = times[0];
        total += seconds;
        let sorted = |v: &View| {
            let mut rows: Vec<String> = v.rows().expect("rows").iter().map(|r| format!("{r:?}")).collect();
            rows.sort();
            rows
        };
        assert_eq!(sorted(&view), sorted(maintained), "{name} built over the loaded tables");
        times.sort_by(f64::total_cmp);
        let repeated = if args.builds > 1 {
            format!(",\"builds\":{},\"fastest\":{:.3},\"median\":{:.3}", args.builds, times[0], times[times.len() / 2])
        } else {
            String::new()
        };
        println!(
            "RESULT {{\"system\":\"ciuf\",\"measure\":\"build_over_loaded\",\"view\":\"{name}\",\"rows\":{rows},\"seconds\":{seconds:.3}{repeated}}}"
        );
    }
    if args.profile {
        for line in loaded.engine.database().profile().to_string().lines() {
            println!("PROFILE build over loaded: {line}");
        }
    }
    println!(
        "RESULT {{\"system\":\"ciuf\",\"threads\":{},\"measure\":\"build_over_loaded\",\"view\":\"all\",\"tables_load_s\":{:.3},\"seconds\":{total:.3}}}",
        threads(),
        loaded.seconds
    );
    total
}

fn report_load(loaded: &Loaded) {
    let rows_per_s = loaded.rows as f64 / loaded.seconds;
    println!(
        "RESULT {{\"system\":\"ciuf\",\"threads\":{},\"allocator\":\"{}\",\"measure\":\"load\",\"rows\":{},\"seconds\":{:.2},\"rows_per_s\":{rows_per_s:.0}}}",
        threads(),
        heap::NAME,
        loaded.rows,
        loaded.seconds
    );
    // Heap: what the engine's data holds (allocated, not freed). Resident: what the
    // process grew by, allocator reserves included.
    let heap_bytes = loaded.heap_after.saturating_sub(loaded.heap_before);
    let beyond = heap_bytes.saturating_sub(loaded.raw) as f64 / loaded.rows as f64;
    let rss_bytes = loaded.rss_after.saturating_sub(loaded.rss_before);
    let rss_beyond = rss_bytes.saturating_sub(loaded.raw) as f64 / loaded.rows as f64;
    let stats = loaded.engine.stats();
    println!(
        "RESULT {{\"system\":\"ciuf\",\"measure\":\"memory_after_load\",\"heap_bytes\":{heap_bytes},\"raw_bytes\":{},\"base_rows\":{},\"bytes_per_row\":{:.0},\"bytes_per_row_beyond_raw\":{beyond:.0},\"rss_bytes\":{rss_bytes},\"rss_bytes_per_row_beyond_raw\":{rss_beyond:.0},\"table_index_bytes\":{},\"operator_state_bytes\":{},\"view_state_bytes\":{}}}",
        loaded.raw,
        loaded.rows,
        heap_bytes as f64 / loaded.rows as f64,
        stats.table_index_bytes,
        stats.operator_state_bytes,
        stats.view_state_bytes
    );
}

/// Time to read V3 as Arrow right after a change to it, and unchanged.
fn read_v3(loaded: &Loaded) {
    let v3 = &loaded.views[2];
    let orders = TableRef::Id(ciuf::core::TableId(2));
    let mut changed = Vec::new();
    let mut unchanged = Vec::new();
    let mut rows = 0;
    for i in 0..40 {
        let row = vec![Value::Int(-1 - i), Value::Int(1), Value::Int(1), Value::Float(1.0), Value::text("paid")];
        loaded.engine.apply([Change::Insert { table: orders.clone(), row: RowData::Values(row) }]).expect("insert");
        let start = Instant::now();
        let batch = v3.query().expect("V3");
        changed.push(start.elapsed());
        rows = batch.num_rows();
        let start = Instant::now();
        let again = v3.query().expect("V3");
        unchanged.push(start.elapsed());
        assert_eq!(again.num_rows(), rows);
    }
    changed.sort();
    unchanged.sort();
    println!(
        "RESULT {{\"system\":\"ciuf\",\"measure\":\"read_v3\",\"rows\":{rows},\"changed_p50_us\":{:.1},\"unchanged_p50_us\":{:.2}}}",
        percentile(&changed, 0.5),
        percentile(&unchanged, 0.5)
    );
}
