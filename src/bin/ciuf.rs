//! `ciuf`: the command line.
//!
//!     ciuf watch [<url> "<sql>"] [--format table|json] [--for <seconds>]
//!     ciuf capture install <url> [<table>…]
//!     ciuf capture remove <url>
//!     ciuf state drop <dir> [<url>]
//!
//! `watch` prints the view as a table, then each change as its source transaction
//! commits: `+` rows added, `-` rows removed (`--format json`: one JSON object per
//! line). While the source loads the tables the view names, a progress line goes to
//! stderr. Without a URL and query it runs the demo: a SQLite database made for it, a
//! writer changing it, and a view over it changing live.
//!
//! `capture install` puts SQLite change capture (triggers and a log table, never a
//! change to the tables themselves) on the named tables, or all; `capture remove`
//! takes all of it away.
//!
//! `state drop` deletes a durable engine's state directory; for one that followed
//! PostgreSQL, give the database's URL: its replication slot (and the publication ciuf
//! made) are dropped on the server first.
//!
//! Ctrl-C, SIGTERM and SIGHUP stop `watch` cleanly: the engine is closed (for
//! PostgreSQL, its replication slot and publication dropped) before the process
//! exits with 128 + the signal's number, as a shell reports a process the signal
//! ended.

use std::collections::HashMap;
use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ciuf::{Engine, Value, View};

const USAGE: &str = "usage: ciuf watch [<url> \"<sql>\"] [--format table|json] [--for <seconds>]\n\
    \x20      ciuf capture install <url> [<table>...]\n\
    \x20      ciuf capture remove <url>\n\
    \x20      ciuf state drop <dir> [<url>]\n\
    \n  <url>   sqlite://./app.db, or postgresql://user:password@host:port/db (the database to follow)\n\
    \nwatch prints the view, then its changes as they commit (stop with Ctrl-C, or after --for\n\
    seconds). Without <url> and <sql> it runs a demo: a SQLite database with a writer.\n\
    capture install/remove put or take away the triggers that let ciuf follow writes to a\n\
    SQLite file from any connection (ciuf installs them itself when it opens a file).\n\
    state drop deletes a durable engine's state directory (and, given the PostgreSQL URL,\n\
    the replication slot it keeps on the server).";

/// How long `capture` waits for a locked database.
const PATIENCE: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, PartialEq)]
enum Format {
    Table,
    Json,
}

/// The signal that asked `watch` to stop (0: none yet).
static STOP: std::sync::OnceLock<Arc<AtomicUsize>> = std::sync::OnceLock::new();

/// The stopping signal received, if any.
fn stop_requested() -> Option<i32> {
    STOP.get().map(|s| s.load(Ordering::Relaxed) as i32).filter(|&s| s != 0)
}

fn main() -> ExitCode {
    let stop = Arc::new(AtomicUsize::new(0));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM, signal_hook::consts::SIGHUP] {
        // A signal that cannot be hooked keeps its default action.
        let _ = signal_hook::flag::register_usize(sig, Arc::clone(&stop), sig as usize);
    }
    let _ = STOP.set(stop);
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("watch") => watch_command(&args[1..]),
        Some("capture") => capture_command(&args[1..]),
        Some("state") => state_command(&args[1..]),
        Some("-h" | "--help") | None => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Some(other) => Err(Failure::Usage(format!("unknown command {other:?}"))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(why)) => {
            eprintln!("ciuf: {why}\n{USAGE}");
            ExitCode::from(2)
        }
        Err(Failure::Failed(e)) => {
            eprintln!("ciuf: {e}");
            ExitCode::FAILURE
        }
        Err(Failure::Stopped(sig)) => ExitCode::from((128 + sig) as u8),
    }
}

/// Why a command did not succeed: it was called wrongly (exit status 2), it failed
/// (status 1), or a signal stopped it (128 + the signal).
enum Failure {
    Usage(String),
    Failed(ciuf::Error),
    Stopped(i32),
}

impl From<ciuf::Error> for Failure {
    fn from(e: ciuf::Error) -> Self {
        Failure::Failed(e)
    }
}

fn watch_command(args: &[String]) -> Result<(), Failure> {
    let mut positional = Vec::new();
    let mut format = Format::Table;
    let mut until = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--format" => match it.next().map(String::as_str) {
                Some("table") => format = Format::Table,
                Some("json") => format = Format::Json,
                other => return Err(Failure::Usage(format!("--format takes table or json, not {other:?}"))),
            },
            "--for" => match it.next().and_then(|s| s.parse::<f64>().ok()) {
                Some(secs) if secs >= 0.0 => until = Some(Instant::now() + Duration::from_secs_f64(secs)),
                _ => return Err(Failure::Usage("--for takes a number of seconds".into())),
            },
            _ => positional.push(a.clone()),
        }
    }
    let ended = match positional.as_slice() {
        [] => demo(format, until)?,
        [url, sql] => watch(url, sql, format, until)?,
        _ => return Err(Failure::Usage("watch takes a URL and a query (or nothing, for the demo)".into())),
    };
    match ended {
        Some(sig) => Err(Failure::Stopped(sig)),
        None => Ok(()),
    }
}

fn capture_command(args: &[String]) -> Result<(), Failure> {
    use ciuf::connectors::sqlite::{install_capture, remove_capture};
    match args {
        [verb, url, tables @ ..] if verb == "install" => {
            let tables: Vec<&str> = tables.iter().map(String::as_str).collect();
            let done = install_capture(url, &tables, PATIENCE).map_err(ciuf::Error::from)?;
            println!("change capture installed on {}: {}", url, done.join(", "));
            Ok(())
        }
        [verb, url] if verb == "remove" => {
            let done = remove_capture(url, PATIENCE).map_err(ciuf::Error::from)?;
            if done.is_empty() {
                println!("no change capture was installed in {url}");
            } else {
                println!("change capture removed from {url} (it was on {})", done.join(", "));
            }
            Ok(())
        }
        _ => Err(Failure::Usage("capture takes install <url> [<table>...] or remove <url>".into())),
    }
}

fn state_command(args: &[String]) -> Result<(), Failure> {
    match args {
        [verb, dir, rest @ ..] if verb == "drop" && rest.len() <= 1 => {
            ciuf::drop_state_with(dir, rest.first().map(String::as_str))?;
            println!("state directory {dir} dropped");
            Ok(())
        }
        _ => Err(Failure::Usage("state takes drop <dir> [<url>]".into())),
    }
}

/// The demo: a SQLite database of customers and orders, a writer that keeps changing
/// it from its own connection, and a view of paid revenue by region.
fn demo(format: Format, until: Option<Instant>) -> ciuf::Result<Option<i32>> {
    let dir = std::env::temp_dir().join(format!("ciuf-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| ciuf::Error::Internal(format!("cannot make {}: {e}", dir.display())))?;
    let path = dir.join("shop.db");
    let sqlite = |e: rusqlite::Error| ciuf::Error::Internal(format!("demo database: {e}"));
    let conn = rusqlite::Connection::open(&path).map_err(sqlite)?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, region TEXT NOT NULL);
         CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL, amount REAL NOT NULL,
                              status TEXT NOT NULL);",
    )
    .map_err(sqlite)?;
    let regions = ["north", "south", "east", "west"];
    let mut rng = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    conn.execute_batch("BEGIN").map_err(sqlite)?;
    for i in 0..40 {
        conn.execute(
            "INSERT INTO customers VALUES (?1, ?2, ?3)",
            rusqlite::params![i as i64, format!("customer {i}"), regions[i % 4]],
        )
        .map_err(sqlite)?;
    }
    for i in 0..500 {
        conn.execute(
            "INSERT INTO orders VALUES (?1, ?2, ?3, ?4)",
            rusqlite::params![i, next(40) as i64, (next(20_000) as f64) / 100.0, ["paid", "pending"][next(2) as usize]],
        )
        .map_err(sqlite)?;
    }
    conn.execute_batch("COMMIT").map_err(sqlite)?;
    let url = format!("sqlite://{}", path.display());
    eprintln!(
        "demo database: {} (write to it from anywhere, e.g. sqlite3 {} \"UPDATE orders SET status = 'paid'\")",
        path.display(),
        path.display()
    );
    eprintln!("a writer changes it every 0.4 s; stop with Ctrl-C\n");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = std::thread::spawn({
        let stop = stop.clone();
        move || {
            let mut id = 500;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(400));
                let _ = conn.execute_batch("BEGIN");
                let _ = match next(3) {
                    0 => {
                        id += 1;
                        conn.execute(
                            "INSERT INTO orders VALUES (?1, ?2, ?3, 'paid')",
                            rusqlite::params![id, next(40) as i64, (next(20_000) as f64) / 100.0],
                        )
                    }
                    1 => conn.execute(
                        "UPDATE orders SET status = CASE status WHEN 'paid' THEN 'pending' ELSE 'paid' END \
                         WHERE id = (SELECT id FROM orders ORDER BY random() LIMIT 1)",
                        [],
                    ),
                    _ => conn
                        .execute("DELETE FROM orders WHERE id = (SELECT id FROM orders ORDER BY random() LIMIT 1)", []),
                };
                let _ = conn.execute_batch("COMMIT");
            }
        }
    });
    let sql = "SELECT c.region, COUNT(*) AS paid_orders, ROUND(SUM(o.amount), 2) AS revenue \
               FROM orders o JOIN customers c ON o.customer_id = c.id WHERE o.status = 'paid' GROUP BY c.region";
    eprintln!("{sql}\n");
    let result = watch(&url, sql, format, until);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = writer.join();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// Prints the view, then its changes, until `until` or a stopping signal (returned).
fn watch(url: &str, sql: &str, format: Format, until: Option<Instant>) -> ciuf::Result<Option<i32>> {
    let engine = Engine::open(url)?;
    let view = match register_with_progress(&engine, sql) {
        Ok(Some(view)) => view,
        Ok(None) => {
            engine.close();
            return Ok(stop_requested());
        }
        Err(e) => {
            engine.close();
            return Err(e);
        }
    };
    let columns: Vec<String> = view.columns().iter().map(|c| c.name.clone()).collect();
    // The version before the rows: a change landing in between is then seen again
    // (and diffs to nothing), never missed.
    let mut version = view.version()?;
    let mut shown = rows_of(&view)?;
    let mut out = std::io::stdout().lock();
    match format {
        Format::Table => print_table(&mut out, &columns, &shown),
        Format::Json => {
            for r in &shown {
                print_json(&mut out, "row", &columns, r);
            }
        }
    }
    let _ = out.flush();
    loop {
        std::thread::sleep(Duration::from_millis(5));
        if let Some(sig) = stop_requested() {
            engine.close();
            return Ok(Some(sig));
        }
        if until.is_some_and(|t| Instant::now() >= t) {
            engine.close();
            return Ok(None);
        }
        let now = view.version()?;
        if now == version {
            if let Some(e) = engine.source_status().and_then(|s| s.error) {
                return Err(ciuf::Error::Source { message: e, retryable: false });
            }
            continue;
        }
        version = now;
        let rows = rows_of(&view)?;
        let (added, removed) = diff(&shown, &rows);
        for r in &removed {
            match format {
                Format::Table => {
                    let _ = writeln!(out, "- {}", cells(r).join(" | "));
                }
                Format::Json => print_json(&mut out, "-", &columns, r),
            }
        }
        for r in &added {
            match format {
                Format::Table => {
                    let _ = writeln!(out, "+ {}", cells(r).join(" | "));
                }
                Format::Json => print_json(&mut out, "+", &columns, r),
            }
        }
        let _ = out.flush();
        shown = rows;
    }
}

/// Registers the view on another thread, printing the source's loading progress;
/// `None` if a stopping signal came first.
fn register_with_progress(engine: &Engine, sql: &str) -> ciuf::Result<Option<View>> {
    let (tx, rx) = std::sync::mpsc::channel();
    let e = engine.clone();
    let sql = sql.to_string();
    std::thread::spawn(move || {
        let _ = tx.send(e.from_sql(&sql));
    });
    let mut printed = false;
    loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(result) => {
                if printed {
                    eprintln!();
                }
                return result.map(Some);
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) if stop_requested().is_some() => return Ok(None),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                if let Some((table, rows)) = engine.source_status().and_then(|s| s.loading) {
                    eprint!("\rloading {table}: {rows} rows   ");
                    printed = true;
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                return Err(ciuf::Error::Internal("the view's registration ended without a result".into()));
            }
        }
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "NULL".into(),
        Value::Text(s) => s.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Date(d) => ciuf::core::datetime::format_date(*d),
        Value::Timestamp(t) => ciuf::core::datetime::format_timestamp(*t),
        other => other.to_string(),
    }
}

fn rows_of(view: &View) -> ciuf::Result<Vec<Vec<Value>>> {
    Ok(view.rows()?.iter().map(|r| r.to_vec()).collect())
}

fn cells(row: &[Value]) -> Vec<String> {
    row.iter().map(text).collect()
}

/// Rows in `new` and not in `old`, and the other way round, as bags.
fn diff(old: &[Vec<Value>], new: &[Vec<Value>]) -> (Vec<Vec<Value>>, Vec<Vec<Value>>) {
    let mut counts: HashMap<&Vec<Value>, i64> = HashMap::new();
    for r in new {
        *counts.entry(r).or_default() += 1;
    }
    for r in old {
        *counts.entry(r).or_default() -= 1;
    }
    let mut added = Vec::new();
    let mut removed = Vec::new();
    for (r, n) in counts {
        for _ in 0..n.max(0) {
            added.push(r.clone());
        }
        for _ in 0..(-n).max(0) {
            removed.push(r.clone());
        }
    }
    added.sort();
    removed.sort();
    (added, removed)
}

fn print_table(out: &mut impl Write, columns: &[String], rows: &[Vec<Value>]) {
    let rows: Vec<Vec<String>> = rows.iter().map(|r| cells(r)).collect();
    let mut widths: Vec<usize> = columns.iter().map(|c| c.chars().count()).collect();
    for r in &rows {
        for (w, v) in widths.iter_mut().zip(r) {
            *w = (*w).max(v.chars().count());
        }
    }
    let line = |cells: &[String]| -> String {
        cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect::<Vec<_>>().join(" | ")
    };
    let _ = writeln!(out, "{}", line(columns));
    let _ = writeln!(out, "{}", widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>().join("-+-"));
    for r in &rows {
        let _ = writeln!(out, "{}", line(r));
    }
    let _ = writeln!(out, "({} rows; watching for changes)", rows.len());
}

fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn print_json(out: &mut impl Write, op: &str, columns: &[String], row: &[Value]) {
    let fields: Vec<String> = columns
        .iter()
        .zip(row)
        .map(|(c, v)| {
            let value = match v {
                Value::Null => "null".to_string(),
                Value::Bool(b) => b.to_string(),
                Value::Int(i) => i.to_string(),
                Value::Float(f) if f.is_finite() => format!("{f:?}"),
                Value::Decimal(d) => d.to_string(),
                other => json_string(&text(other)),
            };
            format!("{}:{value}", json_string(c))
        })
        .collect();
    let _ = writeln!(out, "{{\"op\":{},\"row\":{{{}}}}}", json_string(op), fields.join(","));
}
