//! `ciuf`: the command line.
//!
//!     ciuf watch <url> "<sql>" [--format table|json]
//!
//! Prints the view as a table, then each change as its source transaction commits:
//! `+` rows added, `-` rows removed (`--format json`: one JSON object per line). While
//! the source loads the tables the view names, a progress line goes to stderr.

use std::collections::HashMap;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use ciuf::{Engine, Value, View};

const USAGE: &str = "usage: ciuf watch <url> \"<sql>\" [--format table|json]\n\
    \n  <url>   postgresql://user:password@host:port/db (the database to follow)\n\
    \nPrints the view, then its changes as they commit. Stop with Ctrl-C.";

#[derive(Clone, Copy, PartialEq)]
enum Format {
    Table,
    Json,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("watch") => {}
        Some("-h" | "--help") | None => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Some(other) => {
            eprintln!("ciuf: unknown command {other:?}\n{USAGE}");
            return ExitCode::from(2);
        }
    }
    let mut positional = Vec::new();
    let mut format = Format::Table;
    let mut it = args[1..].iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--format" => match it.next().map(String::as_str) {
                Some("table") => format = Format::Table,
                Some("json") => format = Format::Json,
                other => {
                    eprintln!("ciuf: --format takes table or json, not {other:?}");
                    return ExitCode::from(2);
                }
            },
            _ => positional.push(a.clone()),
        }
    }
    let [url, sql] = positional.as_slice() else {
        eprintln!("ciuf watch: expected a URL and a query\n{USAGE}");
        return ExitCode::from(2);
    };
    match watch(url, sql, format) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ciuf: {e}");
            ExitCode::FAILURE
        }
    }
}

fn watch(url: &str, sql: &str, format: Format) -> ciuf::Result<()> {
    let engine = Engine::open(url)?;
    let view = register_with_progress(&engine, sql)?;
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

/// Registers the view on another thread, printing the source's loading progress.
fn register_with_progress(engine: &Engine, sql: &str) -> ciuf::Result<View> {
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
                return result;
            }
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
