//! `ciuf-slt`: SQLite's sqllogictest corpus, run incrementally.
//!
//!     python3 ../shared/slt/slt_ivm.py --root ../shared/slt/public --dump DIR ../shared/slt/public
//!     cargo run --release --bin ciuf-slt -- DIR
//!
//! Reads the replay plans `slt_ivm.py --dump` writes (one JSON object per line: the
//! file's views, DDL, typed row events, and the expected answers at each check) and
//! drives the engine through them as ../shared/slt/README.md describes: every query is
//! a view registered before its rows exist (stream files) or just after the schema it
//! reads (checkpoint files); rows arrive as change events in small transactions; after
//! each phase every view, rendered, sorted and hashed by the corpus's rules, must equal
//! the expected answer. A wrong answer fails the run (exit status 1).

mod render;

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use ciuf::{Change, Engine, RowData, Value, View};
use serde_json::Value as Json;

/// Events applied per engine transaction.
const EVENTS_PER_TRANSACTION: usize = 8;

/// Records ../shared/slt/README.md scores as excluded: an expected error the format
/// cannot express, and two answers that depend on the SQLite version's rounding.
const EXCLUDED: &[(&str, &str)] = &[
    ("evidence/slt_lang_aggfunc.test", "v480"),
    ("evidence/slt_lang_aggfunc.test", "v484"),
    ("evidence/slt_lang_aggfunc.test", "v496"),
];

/// Records whose group_concat order depends on the scan order: compared as multisets
/// of their comma-separated items.
const ORDER_FREE: &[(&str, &str)] = &[
    ("evidence/slt_lang_aggfunc.test", "v125"),
    ("evidence/slt_lang_aggfunc.test", "v239"),
    ("evidence/slt_lang_aggfunc.test", "v253"),
    ("evidence/slt_lang_aggfunc.test", "v266"),
];

/// Each value's comma-separated items, sorted.
fn items_sorted(values: Vec<String>) -> Vec<String> {
    values
        .into_iter()
        .map(|v| {
            let mut items: Vec<&str> = v.split(',').collect();
            items.sort_unstable();
            items.join(",")
        })
        .collect()
}

/// A query record of the file.
struct Spec {
    sql: String,
    types: Vec<u8>,
    sort: String,
    expected: Vec<String>,
}

/// Counts for a file, a phase, or the run.
#[derive(Default, Clone)]
struct Tally {
    checks: usize,
    passed: usize,
    wrong: usize,
    errors: usize,
    unsupported: usize,
}

impl Tally {
    fn add(&mut self, o: &Tally) {
        self.checks += o.checks;
        self.passed += o.passed;
        self.wrong += o.wrong;
        self.errors += o.errors;
        self.unsupported += o.unsupported;
    }

    fn failed(&self) -> usize {
        self.checks - self.passed
    }
}

/// Everything one file's replay produced.
#[derive(Default)]
struct Report {
    total: Tally,
    by_phase: BTreeMap<String, Tally>,
    /// Unsupported constructs, with the number of checks they cost.
    constructs: BTreeMap<String, usize>,
    /// Other errors, by message, with the number of checks they cost.
    refusals: BTreeMap<String, usize>,
    /// The first few wrong answers and errors, for the log.
    samples: Vec<String>,
    event_errors: usize,
}

enum Registered {
    View(View),
    Unsupported(String),
    Error(String),
}

struct Replay<'a> {
    engine: Engine,
    specs: &'a HashMap<String, Spec>,
    views: HashMap<String, Registered>,
    report: Report,
    checkpoint: bool,
    /// The file's path in the corpus.
    name: String,
}

impl Replay<'_> {
    fn register(&mut self, vid: &str) {
        let spec = &self.specs[vid];
        let r = match self.engine.from_sql(&spec.sql) {
            Ok(v) => Registered::View(v),
            Err(ciuf::Error::Sql(e)) if e.kind == ciuf::SqlErrorKind::Unsupported => {
                Registered::Unsupported(construct_of(&e.message))
            }
            Err(e) => Registered::Error(e.to_string()),
        };
        self.views.insert(vid.to_string(), r);
    }

    fn unregister(&mut self, vid: &str) {
        if let Some(Registered::View(v)) = self.views.remove(vid) {
            let shared = self.views.values().any(|o| matches!(o, Registered::View(w) if w.id() == v.id()));
            if !shared {
                let _ = self.engine.drop_view(&v);
            }
        }
    }

    fn apply(&mut self, events: &[Json]) {
        let changes: Vec<Change> = events.iter().filter_map(to_change).collect();
        for chunk in changes.chunks(EVENTS_PER_TRANSACTION) {
            if self.engine.apply(chunk.to_vec()).is_err() {
                // Find the events the engine refuses; the rest still go in.
                for c in chunk {
                    if let Err(e) = self.engine.apply([c.clone()]) {
                        self.report.event_errors += 1;
                        if self.report.samples.len() < 8 {
                            self.report.samples.push(format!("event refused: {e}"));
                        }
                    }
                }
            }
        }
    }

    fn check(&mut self, phase: &str, expect: &serde_json::Map<String, Json>) {
        let phase = if self.checkpoint { "checkpoint".to_string() } else { phase.to_string() };
        for (vid, how) in expect {
            if EXCLUDED.contains(&(self.name.as_str(), vid.as_str())) {
                continue;
            }
            let order_free = ORDER_FREE.contains(&(self.name.as_str(), vid.as_str()));
            let mut t = Tally { checks: 1, ..Tally::default() };
            let spec = &self.specs[vid];
            let outcome = match self.views.get(vid) {
                Some(Registered::View(v)) => match read(v, spec) {
                    Ok(values) if order_free => {
                        let want = items_sorted(spec.expected.clone());
                        (items_sorted(values) != want).then(|| (false, "differs (as multisets of items)".to_string()))
                    }
                    Ok(values) => match (how[0].as_str(), &how[1]) {
                        (Some("file"), th) => {
                            render::compare_file(&spec.expected, &values, th.as_u64().unwrap_or(8) as usize)
                                .map(|why| (false, why))
                        }
                        (Some("values"), Json::Array(want)) => {
                            let want: Vec<String> =
                                want.iter().map(|w| w.as_str().unwrap_or_default().to_string()).collect();
                            let got = render::canonical_b(&spec.sql, &spec.sort, spec.types.len(), values);
                            (got != want).then(|| {
                                (
                                    false,
                                    format!(
                                        "differs from SQLite on the final data ({} vs {} values)",
                                        got.len(),
                                        want.len()
                                    ),
                                )
                            })
                        }
                        _ => Some((true, format!("unknown expectation {how}"))),
                    },
                    Err(e) => Some((true, e)),
                },
                Some(Registered::Unsupported(c)) => {
                    *self.report.constructs.entry(c.clone()).or_default() += 1;
                    t.unsupported = 1;
                    Some((true, String::new()))
                }
                Some(Registered::Error(e)) => Some((true, format!("refused: {e}"))),
                None => Some((true, "not registered".to_string())),
            };
            match outcome {
                None => t.passed = 1,
                Some(_) if t.unsupported == 1 => {}
                Some((is_error, why)) => {
                    if is_error {
                        t.errors = 1;
                        *self.report.refusals.entry(reason_of(&why)).or_default() += 1;
                    } else {
                        t.wrong = 1;
                    }
                    if self.report.samples.len() < 8 || !is_error {
                        let kind = if is_error { "error" } else { "WRONG" };
                        self.report
                            .samples
                            .push(format!("{kind} {phase} {vid}: {why}\n    {}", spec.sql.replace('\n', " ")));
                    }
                }
            }
            self.report.total.add(&t);
            self.report.by_phase.entry(phase.clone()).or_default().add(&t);
        }
    }
}

/// A view's current rows, rendered and sorted by the record's rules.
fn read(view: &View, spec: &Spec) -> Result<Vec<String>, String> {
    let rows = view.rows().map_err(|e| e.to_string())?;
    let width = spec.types.len();
    if view.columns().len() != width {
        return Err(format!("{} columns, the record expects {width}", view.columns().len()));
    }
    let mut values = Vec::with_capacity(rows.len() * width);
    for r in &rows {
        for (i, &t) in spec.types.iter().enumerate() {
            values.push(render::render(&r.get(i), t));
        }
    }
    Ok(render::sort_values(values, width, &spec.sort))
}

/// An error message without its position, digits as `N` (so `col1` and `col2` group).
fn reason_of(message: &str) -> String {
    let m = message.split(" at line ").next().unwrap_or(message);
    let mut out = String::new();
    for c in m.chars().take(80) {
        if c.is_ascii_digit() {
            if !out.ends_with('N') {
                out.push('N');
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// "unsupported: X: detail at line …" → X.
fn construct_of(message: &str) -> String {
    let m = message.strip_prefix("unsupported: ").unwrap_or(message);
    let m = m.split(" at line ").next().unwrap_or(m);
    let m = m.split(": ").next().unwrap_or(m);
    m.chars().take(60).collect()
}

fn json_value(v: &Json) -> Value {
    match v {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Json::String(s) => Value::text(s.as_str()),
        other => Value::text(other.to_string()),
    }
}

fn json_row(v: &Json) -> RowData {
    RowData::Values(v.as_array().map(|a| a.iter().map(json_value).collect()).unwrap_or_default())
}

fn to_change(e: &Json) -> Option<Change> {
    let table = e["table"].as_str()?;
    Some(match e["op"].as_str()? {
        "insert" => Change::insert(table, json_row(&e["new"])),
        "delete" => Change::delete(table, json_row(&e["old"])),
        "update" => Change::update(table, json_row(&e["old"]), json_row(&e["new"])),
        _ => return None,
    })
}

fn run_file(path: &Path) -> std::io::Result<(String, Report)> {
    let file = BufReader::new(std::fs::File::open(path)?);
    let mut specs: HashMap<String, Spec> = HashMap::new();
    let mut order: Vec<String> = Vec::new();
    let mut name = path.display().to_string();
    let mut steps = Vec::new();
    for line in file.lines() {
        let o: Json = serde_json::from_str(&line?).map_err(std::io::Error::other)?;
        match o["step"].as_str() {
            Some("header") => {
                name = o["path"].as_str().unwrap_or(&name).to_string();
                steps.push(o);
            }
            Some("view") => {
                let vid = o["view"].as_str().unwrap_or_default().to_string();
                let spec = Spec {
                    sql: o["sql"].as_str().unwrap_or_default().to_string(),
                    types: o["types"].as_str().unwrap_or_default().bytes().collect(),
                    sort: o["sort"].as_str().unwrap_or("nosort").to_string(),
                    expected: o["expected"]
                        .as_array()
                        .map(|a| a.iter().map(|s| s.as_str().unwrap_or_default().to_string()).collect())
                        .unwrap_or_default(),
                };
                order.push(vid.clone());
                specs.insert(vid, spec);
            }
            _ => steps.push(o),
        }
    }
    let mut r = Replay {
        engine: Engine::in_memory(),
        specs: &specs,
        views: HashMap::new(),
        report: Report::default(),
        checkpoint: false,
        name: String::new(),
    };
    for s in &steps {
        match s["step"].as_str() {
            Some("header") => {
                r.checkpoint = s["mode"].as_str() == Some("checkpoint");
                r.name = name.clone();
            }
            Some("ddl") => {
                if s["kind"].as_str() == Some("ddl")
                    && let Err(e) = r.engine.execute(s["sql"].as_str().unwrap_or_default())
                    && r.report.samples.len() < 8
                {
                    r.report.samples.push(format!("DDL refused: {e}"));
                }
            }
            Some("register_all") => {
                for vid in &order {
                    r.register(vid);
                }
            }
            Some("register") => r.register(s["view"].as_str().unwrap_or_default()),
            Some("unregister") => r.unregister(s["view"].as_str().unwrap_or_default()),
            Some("events") => r.apply(s["events"].as_array().map(Vec::as_slice).unwrap_or_default()),
            Some("check") => {
                if let Some(expect) = s["expect"].as_object() {
                    r.check(s["phase"].as_str().unwrap_or("?"), expect);
                }
            }
            _ => {}
        }
    }
    Ok((name, r.report))
}

fn collect(path: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    if path.is_dir() {
        let mut entries: Vec<PathBuf> =
            std::fs::read_dir(path)?.map(|e| e.map(|e| e.path())).collect::<Result<_, _>>()?;
        entries.sort();
        for e in entries {
            collect(&e, out)?;
        }
    } else if path.extension().is_some_and(|e| e == "jsonl") {
        out.push(path.to_path_buf());
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let verbose = args.iter().any(|a| a == "-v" || a == "--verbose");
    let paths: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    if paths.is_empty() {
        eprintln!(
            "usage: ciuf-slt [-v] PATH…  (plan files or folders of them, written by\n  \
             python3 ../shared/slt/slt_ivm.py --root ../shared/slt/public --dump DIR ../shared/slt/public)"
        );
        return ExitCode::from(2);
    }
    let mut files = Vec::new();
    for p in paths {
        if let Err(e) = collect(Path::new(p), &mut files) {
            eprintln!("ciuf-slt: {p}: {e}");
            return ExitCode::from(2);
        }
    }
    let mut total = Tally::default();
    let mut phases: BTreeMap<String, Tally> = BTreeMap::new();
    let mut constructs: BTreeMap<String, usize> = BTreeMap::new();
    let mut refusals: BTreeMap<String, usize> = BTreeMap::new();
    let mut event_errors = 0;
    for f in &files {
        let start = std::time::Instant::now();
        let (name, report) = match run_file(f) {
            Ok(x) => x,
            Err(e) => {
                eprintln!("ciuf-slt: {}: {e}", f.display());
                return ExitCode::from(2);
            }
        };
        let t = &report.total;
        println!(
            "{name}: {} checks, {} passed, {} wrong answers, {} errors, {} unsupported ({:.1} s)",
            t.checks,
            t.passed,
            t.wrong,
            t.errors,
            t.unsupported,
            start.elapsed().as_secs_f64()
        );
        if verbose || t.wrong > 0 {
            for s in &report.samples {
                println!("  {s}");
            }
        }
        total.add(t);
        for (p, pt) in &report.by_phase {
            phases.entry(p.clone()).or_default().add(pt);
        }
        for (c, n) in report.constructs {
            *constructs.entry(c).or_default() += n;
        }
        for (c, n) in report.refusals {
            *refusals.entry(c).or_default() += n;
        }
        event_errors += report.event_errors;
    }
    println!();
    for (p, t) in &phases {
        println!(
            "phase {p}: {} checks, {} passed, {} wrong, {} errors, {} unsupported",
            t.checks, t.passed, t.wrong, t.errors, t.unsupported
        );
    }
    let mut by_cost: Vec<(String, usize)> = constructs.into_iter().collect();
    by_cost.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    if !by_cost.is_empty() {
        println!("unsupported, by construct (checks):");
        for (c, n) in by_cost.iter().take(25) {
            println!("  {n:>7}  {c}");
        }
    }
    let mut by_cost: Vec<(String, usize)> = refusals.into_iter().collect();
    by_cost.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    if verbose && !by_cost.is_empty() {
        println!("errors, by message (checks):");
        for (c, n) in by_cost.iter().take(25) {
            println!("  {n:>7}  {c}");
        }
    }
    if event_errors > 0 {
        println!("events the engine refused: {event_errors}");
    }
    println!(
        "total: {} checks, {} passed, {} errors, {} unsupported",
        total.checks, total.passed, total.errors, total.unsupported
    );
    println!("wrong answers: {}", total.wrong);
    println!("{} passed, {} failed", total.passed, total.failed());
    if total.wrong > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}
