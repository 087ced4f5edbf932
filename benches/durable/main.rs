//! Durable state on the reference workload (../shared/bench/WORKLOAD.md), in one run:
//!
//!     cargo bench --bench durable -- --data <workload dir> [--state <dir>]
//!
//! 1. Start-up: a fresh in-memory engine (five views, 1.11M rows loaded) beside a
//!    durable engine doing the same into a state directory, then that engine closed
//!    and opened again — restart to all five views readable — with the store's size
//!    per base row. The restarted views are checked equal to the fresh engine's.
//! 2. The change stream at batch 10,000: events/s in memory, durable with `sync` and
//!    with `grouped`; at batch 1 (one source transaction): p50 and p99 per commit for
//!    `sync` (an fsync each) and `grouped`; bytes written per event.
//!
//! `--restart-only --state <dir>` only restarts from that directory (made and loaded
//! first if it does not exist, and kept), for profiling a restart alone; with its
//! resident memory after, as `--fresh-only` gives it after a fresh start, each in a
//! process of its own.
//!
//! The state directory goes in `--state` (default: the system's temporary directory),
//! which should be on the disk a deployment would use: fsync costs what that disk
//! makes it cost. Lines starting with `RESULT` are the measurements.

#[path = "../reference/workload.rs"]
#[allow(dead_code)] // shared with the reference benchmark, which uses all of it
mod workload;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ciuf::{Change, Durability, Engine, OpenOptions, RowData, TableRef, View};
use workload::{TABLES, VIEWS, batches, read_changes, read_table, to_change};

struct Args {
    data: PathBuf,
    state: PathBuf,
    /// Only restart from `state` as an earlier run left it (for profiling a restart).
    restart_only: bool,
    /// Only load an in-memory engine (the fresh start, in a process of its own).
    fresh_only: bool,
}

fn parse_args() -> Args {
    let mut data = None;
    let mut state = std::env::temp_dir().join(format!("ciuf-bench-durable-{}", std::process::id()));
    let mut restart_only = false;
    let mut fresh_only = false;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--data" => data = it.next().map(PathBuf::from),
            "--restart-only" => restart_only = true,
            "--fresh-only" => fresh_only = true,
            "--state" => state = it.next().map(PathBuf::from).expect("--state <dir>"),
            "--bench" => {}
            other => {
                eprintln!(
                    "unknown argument {other}\nusage: cargo bench --bench durable -- --data <dir> [--state <dir>]"
                );
                std::process::exit(2);
            }
        }
    }
    let Some(data) = data else {
        eprintln!("usage: cargo bench --bench durable -- --data <dir> [--state <dir>]");
        std::process::exit(2)
    };
    Args { data, state, restart_only, fresh_only }
}

/// A `/proc/self/status` figure in KiB (resident memory now, or at its peak).
fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l[field.len()..].trim().split(' ').next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// Bytes this process has written through system calls so far.
fn written() -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("wchar:")).and_then(|l| l[6..].trim().parse().ok()))
        .unwrap_or(0)
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir).map_or(0, |d| d.flatten().filter_map(|f| f.metadata().ok()).map(|m| m.len()).sum())
}

fn options(state: &Path, durability: Durability) -> OpenOptions {
    OpenOptions { state_dir: Some(state.to_path_buf()), durability, ..OpenOptions::default() }
}

/// Tables made, views registered, rows loaded in batches of 100,000: seconds to all
/// five views readable.
fn load(engine: &Engine, data: &Path) -> (Vec<View>, usize, f64) {
    let start = Instant::now();
    for (_, ddl) in TABLES {
        engine.execute(ddl).expect("ddl");
    }
    let views: Vec<View> = VIEWS.iter().map(|(_, sql)| engine.from_sql(sql).expect("view")).collect();
    let mut rows = 0;
    for (name, _) in TABLES {
        let id = engine.database().table_id(name).expect("table");
        let mut buf = Vec::with_capacity(100_000);
        rows += read_table(data, name, |row| {
            buf.push(Change::Insert { table: TableRef::Id(id), row: RowData::Values(row) });
            if buf.len() == 100_000 {
                engine.apply(buf.drain(..)).expect("load");
            }
        })
        .expect("read table");
        engine.apply(buf.drain(..)).expect("load");
    }
    for v in &views {
        v.rows().expect("readable");
    }
    (views, rows, start.elapsed().as_secs_f64())
}

fn sorted_rows(v: &View) -> Vec<String> {
    let mut rows: Vec<String> = v.rows().expect("rows").iter().map(|r| format!("{r:?}")).collect();
    rows.sort();
    rows
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e6
}

/// Applies `txns` in batches of `size` to `engine`; events/s, p50 and p99 per batch (µs).
fn stream(engine: &Engine, txns: &[Vec<workload::Event>], size: usize, limit: usize) -> (f64, f64, f64, usize) {
    let list = batches(txns, size);
    let mut lat = Vec::with_capacity(list.len().min(limit));
    let mut events = 0;
    for batch in list.iter().take(limit) {
        let start = Instant::now();
        engine.apply(batch.iter().map(|e| to_change(e))).expect("stream");
        lat.push(start.elapsed());
        events += batch.len();
    }
    let total: f64 = lat.iter().map(Duration::as_secs_f64).sum();
    lat.sort();
    (events as f64 / total, percentile(&lat, 0.5), percentile(&lat, 0.99), events)
}

/// Opens the state directory and reads every view: seconds to all five readable.
fn restart(state: &Path) -> (Engine, Vec<View>, f64) {
    let start = Instant::now();
    let restarted = Engine::open_with("memory:", options(state, Durability::Sync)).expect("restart");
    let views: Vec<View> = VIEWS.iter().map(|(_, sql)| restarted.from_sql(sql).expect("view")).collect();
    for v in &views {
        v.rows().expect("readable");
    }
    (restarted, views, start.elapsed().as_secs_f64())
}

fn main() {
    let args = parse_args();
    if args.restart_only {
        if !args.state.exists() {
            let durable = Engine::open_with("memory:", options(&args.state, Durability::Sync)).expect("state dir");
            load(&durable, &args.data);
            durable.close();
        }
        let (_engine, _views, restart_s) = restart(&args.state);
        let (rss, peak) = (status_kib("VmRSS:"), status_kib("VmHWM:"));
        println!(
            "RESULT {{\"what\":\"restart\",\"restart_s\":{restart_s:.3},\"rss_kib\":{rss},\"peak_rss_kib\":{peak}}}"
        );
        return;
    }
    if args.fresh_only {
        let fresh = Engine::in_memory();
        let (_views, _, fresh_s) = load(&fresh, &args.data);
        let (rss, peak) = (status_kib("VmRSS:"), status_kib("VmHWM:"));
        println!("RESULT {{\"what\":\"fresh\",\"fresh_s\":{fresh_s:.3},\"rss_kib\":{rss},\"peak_rss_kib\":{peak}}}");
        return;
    }
    let txns = read_changes(&args.data).expect("changes.jsonl");
    let n_events: usize = txns.iter().map(Vec::len).sum();
    println!("# workload {}: {} source transactions, {n_events} events", args.data.display(), txns.len());
    println!("# state directory {}", args.state.display());
    let _ = std::fs::remove_dir_all(&args.state);

    // 1. Start-up.
    let fresh = Engine::in_memory();
    let (fresh_views, rows, fresh_s) = load(&fresh, &args.data);
    let expected: Vec<Vec<String>> = fresh_views.iter().map(sorted_rows).collect();
    drop((fresh, fresh_views));

    let before = written();
    let durable = Engine::open_with("memory:", options(&args.state, Durability::Sync)).expect("state dir");
    let (_, _, durable_s) = load(&durable, &args.data);
    durable.close();
    drop(durable);
    let load_written = written() - before;
    let store = dir_bytes(&args.state);

    let (restarted, views, restart_s) = restart(&args.state);
    for (i, v) in views.iter().enumerate() {
        assert_eq!(sorted_rows(v), expected[i], "{} after the restart", VIEWS[i].0);
    }
    println!(
        "RESULT {{\"what\":\"start\",\"rows\":{rows},\"fresh_s\":{fresh_s:.3},\"durable_load_s\":{durable_s:.3},\"restart_s\":{restart_s:.3},\"restart_vs_fresh\":{:.2},\"store_bytes\":{store},\"store_bytes_per_row\":{:.1},\"load_bytes_written\":{load_written}}}",
        restart_s / fresh_s,
        store as f64 / rows as f64
    );
    drop((restarted, views));

    // 2. The change stream: each run on an engine loaded afresh (its own directory).
    let runs: [(&str, Option<Durability>); 3] = [
        ("memory", None),
        ("sync", Some(Durability::Sync)),
        ("grouped", Some(Durability::Grouped(Duration::from_millis(5)))),
    ];
    for (size, limit) in [(10_000usize, usize::MAX), (1, 5_000)] {
        for (name, durability) in runs {
            let _ = std::fs::remove_dir_all(&args.state);
            let engine = match durability {
                None => Engine::in_memory(),
                Some(d) => Engine::open_with("memory:", options(&args.state, d)).expect("state dir"),
            };
            let _views = load(&engine, &args.data).0;
            engine.sync().expect("sync");
            let before = written();
            let (eps, p50, p99, events) = stream(&engine, &txns, size, limit);
            engine.sync().expect("sync");
            let per_event = (written() - before) as f64 / events as f64;
            println!(
                "RESULT {{\"what\":\"stream\",\"durability\":\"{name}\",\"batch\":{size},\"events\":{events},\"events_per_s\":{eps:.0},\"p50_us\":{p50:.1},\"p99_us\":{p99:.1},\"bytes_written_per_event\":{per_event:.1}}}"
            );
            engine.close();
        }
    }
    let _ = std::fs::remove_dir_all(&args.state);
}
