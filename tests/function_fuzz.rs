//! Every scalar function and operator, called with extreme arguments, against SQLite.
//!
//! Rows of a table whose columns hold any value (SQLite's STRICT `ANY`) take their
//! values from a set of edge cases — the least and greatest integers and their
//! neighbours, 2^31 and 2^53 boundaries, the largest and smallest reals, infinities,
//! -0.0, text that is a number, text that almost is, empty and non-ASCII text, NULL —
//! and a view per function or operator computes it over every row. After the rows
//! arrive, and after every later transaction of random updates, each view must equal
//! SQLite's answer value by value with its class; where SQLite reports an error (its
//! `abs()` of the least integer overflows), the view must have stopped with an error
//! too, and no value may panic or stop anything but its own view. Quick by default;
//! `CIUF_LONG=1` runs many more rounds, `CIUF_SEED=n` one.

mod common;

use ciuf::{Change, Engine, Value, View};
use common::{Rng, Typed, to_sqlite};
use rusqlite::Connection;

/// The calls, over the columns a, b and c.
const CALLS: &[&str] = &[
    "abs(a)",
    "lower(a)",
    "upper(a)",
    "length(a)",
    "round(a)",
    "round(a, b)",
    "substr(a, b)",
    "substr(a, b, c)",
    "trim(a)",
    "trim(a, b)",
    "ltrim(a, b)",
    "rtrim(a, b)",
    "replace(a, b, c)",
    "instr(a, b)",
    "coalesce(a, b, c)",
    "ifnull(a, b)",
    "nullif(a, b)",
    "iif(a, b, c)",
    "min(a, b)",
    "max(a, b, c)",
    "CAST(a AS INTEGER)",
    "CAST(a AS REAL)",
    "CAST(a AS TEXT)",
    "CAST(a AS NUMERIC)",
    "a + b",
    "a - b",
    "a * b",
    "a / b",
    "a % b",
    "- a",
    "+ a",
    "a || b",
    "a = b",
    "a < b",
    "a >= b",
    "a IS NOT DISTINCT FROM b",
    "a BETWEEN b AND c",
    "a IN (b, c)",
    "a LIKE b",
    "NOT a",
    "a AND b",
    "a OR b",
    "CASE a WHEN b THEN c END",
    "CASE WHEN a THEN b ELSE c END",
];

/// The values arguments take.
fn edge_values() -> Vec<Value> {
    let ints = [
        0,
        1,
        -1,
        2,
        3,
        -7,
        30,
        31,
        100,
        i32::MAX as i64,
        i32::MAX as i64 + 1,
        i32::MIN as i64,
        1 << 32,
        (1 << 53) + 1,
        i64::MAX,
        i64::MAX - 1,
        i64::MIN,
        i64::MIN + 1,
    ];
    let reals = [
        0.0,
        -0.0,
        0.5,
        -0.5,
        2.5,
        2.675,
        1.005,
        0.1,
        1e15,
        1e16,
        4503599627370497.0,
        9.223372036854776e18,
        -9.223372036854776e18,
        f64::MAX,
        -f64::MAX,
        5e-324,
        1.5e-5,
        f64::INFINITY,
        f64::NEG_INFINITY,
    ];
    let texts = [
        "",
        "a",
        "abc",
        "héllo wörld",
        "  x  ",
        "12",
        " 12 ",
        "-3",
        "1e2",
        "0x1F",
        "9223372036854775808",
        "-9223372036854775809",
        "1e400",
        "3.5",
        "NaN",
        "inf",
        "%",
        "_b%",
        "a%c",
        "ABC",
    ];
    let mut v = vec![Value::Null];
    v.extend(ints.into_iter().map(Value::Int));
    v.extend(reals.into_iter().map(Value::Float));
    v.extend(texts.into_iter().map(Value::text));
    v
}

struct Call {
    sql: String,
    view: Option<View>,
}

fn sqlite_answer(conn: &Connection, sql: &str) -> Result<Vec<Vec<Typed>>, String> {
    let mut stmt = conn.prepare(sql).map_err(|e| e.to_string())?;
    let n = stmt.column_count();
    let mut rows = stmt.query([]).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(|e| e.to_string())? {
        out.push((0..n).map(|i| Typed::of_sqlite(row.get_ref(i).expect("column"))).collect());
    }
    Ok(out)
}

/// Compares every live view with SQLite; a view that stopped must match an error of
/// SQLite's, and then leaves the round. Returns the values compared.
fn check(calls: &mut [Call], conn: &Connection, seed: u64, step: usize) -> usize {
    let mut compared = 0;
    for call in calls.iter_mut() {
        let Some(view) = &call.view else { continue };
        let theirs = sqlite_answer(conn, &call.sql);
        let ours = view.rows();
        match (ours, theirs) {
            (Ok(ours), Ok(mut theirs)) => {
                let mut ours: Vec<Vec<Typed>> =
                    ours.iter().map(|r| r.iter().map(|v| Typed::of_engine(&v)).collect()).collect();
                ours.sort_by_cached_key(|r| r.iter().map(Typed::sort_key).collect::<Vec<_>>());
                theirs.sort_by_cached_key(|r| r.iter().map(Typed::sort_key).collect::<Vec<_>>());
                let same = ours.len() == theirs.len()
                    && ours.iter().zip(&theirs).all(|(a, b)| a.iter().zip(b).all(|(x, y)| x.matches(y, false)));
                assert!(
                    same,
                    "seed {seed}, step {step}: {}\n  ciuf:   {ours:?}\n  sqlite: {theirs:?}\n  rows: {:?}",
                    call.sql,
                    sqlite_answer(conn, "SELECT * FROM f ORDER BY id")
                );
                compared += ours.len();
            }
            (Err(ours), Err(_)) => {
                assert!(matches!(ours, ciuf::Error::Evaluation { .. }), "{}: {ours:?}", call.sql);
                call.view = None;
            }
            (Ok(ours), Err(theirs)) => {
                panic!("seed {seed}, step {step}: {}\n  SQLite fails ({theirs}), ciuf gives {ours:?}", call.sql)
            }
            (Err(ours), Ok(theirs)) => {
                panic!("seed {seed}, step {step}: {}\n  ciuf fails ({ours}), SQLite gives {theirs:?}", call.sql)
            }
        }
    }
    compared
}

fn round(seed: u64, values: &[Value]) -> usize {
    let mut rng = Rng::new(seed);
    let engine = Engine::in_memory();
    let conn = Connection::open_in_memory().unwrap();
    engine.execute("CREATE TABLE f (id INTEGER PRIMARY KEY, a ANY, b ANY, c ANY)").unwrap();
    conn.execute_batch("CREATE TABLE f (id INTEGER PRIMARY KEY, a ANY, b ANY, c ANY) STRICT").unwrap();
    let pick = |rng: &mut Rng| rng.pick(values).clone();
    // Half the views see the rows arrive; the other half are built over them.
    let mut calls: Vec<Call> = Vec::new();
    let register = |calls: &mut Vec<Call>, range: std::ops::Range<usize>, conn: &Connection| {
        for call in &CALLS[range] {
            let sql = format!("SELECT id, {call} FROM f");
            let view = match engine.from_sql(&sql) {
                Ok(v) => Some(v),
                // Built over rows that hold a value it cannot compute: so must SQLite fail.
                Err(ciuf::Error::Evaluation { message }) => {
                    assert!(sqlite_answer(conn, &sql).is_err(), "seed {seed}: {sql}: ciuf fails ({message})");
                    None
                }
                Err(e) => panic!("ciuf refuses {sql}: {e}"),
            };
            calls.push(Call { sql, view });
        }
    };
    register(&mut calls, 0..CALLS.len() / 2, &conn);
    let mut rows = Vec::new();
    let mut changes = Vec::new();
    for id in 0..6 {
        let row = vec![Value::Int(id), pick(&mut rng), pick(&mut rng), pick(&mut rng)];
        let params: Vec<rusqlite::types::Value> = row.iter().map(to_sqlite).collect();
        conn.execute("INSERT INTO f VALUES (?1, ?2, ?3, ?4)", rusqlite::params_from_iter(params)).unwrap();
        changes.push(Change::insert("f", row.clone()));
        rows.push(row);
    }
    engine.apply(changes).expect("the rows are accepted");
    register(&mut calls, CALLS.len() / 2..CALLS.len(), &conn);
    let mut compared = check(&mut calls, &conn, seed, 0);
    for step in 1..4 {
        let at = rng.below(rows.len() as u64) as usize;
        let column = 1 + rng.below(3) as usize;
        let old = rows[at].clone();
        rows[at][column] = pick(&mut rng);
        let sql = format!("UPDATE f SET {} = ?1 WHERE id = ?2", ["a", "b", "c"][column - 1]);
        conn.execute(&sql, rusqlite::params![to_sqlite(&rows[at][column]), at as i64]).unwrap();
        engine.apply([Change::update("f", old, rows[at].clone())]).expect("the update is accepted");
        compared += check(&mut calls, &conn, seed, step);
    }
    compared
}

#[test]
fn every_function_meets_extreme_arguments_as_sqlite_does() {
    let rounds: Vec<u64> = match std::env::var("CIUF_SEED") {
        Ok(s) => vec![s.parse().expect("CIUF_SEED is a number")],
        Err(_) if std::env::var("CIUF_LONG").is_ok_and(|v| v != "0") => (0..2000).collect(),
        Err(_) => (0..150).collect(),
    };
    let values = edge_values();
    let compared: usize = rounds.into_iter().map(|seed| round(seed, &values)).sum();
    assert!(compared > 20_000, "{compared} values compared");
}
