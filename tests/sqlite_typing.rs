//! SQLite's per-value typing, checked by generated expressions against SQLite itself.
//!
//! In SQLite a value carries its own storage class: a CASE, COALESCE, IFNULL, NULLIF,
//! IIF or multi-argument MIN/MAX gives the value it picks with that value's class, so
//! `100 / CASE … END` divides as an integer on the rows where the CASE gave one. Text
//! is read as a number where arithmetic needs one, comparisons apply the operands'
//! affinities, and 3 = 3.0 where groups, DISTINCT and set operations meet.
//!
//! Each round makes a table with INTEGER, REAL, TEXT and NUMERIC columns, registers
//! random views whose expressions mix those operands with literals of every class
//! through all of the above, arithmetic, comparison, CAST, ORDER BY and GROUP BY, and
//! after every transaction of inserts, updates and deletes compares each view with
//! SQLite running its query on the same rows: every value with its class (an integer
//! is not a real), except where SQLite itself may show either (a group that holds both
//! 3 and 3.0 shows one of them, by its plan). Quick by default; `CIUF_LONG=1` runs many
//! more rounds, `CIUF_SEED=n` one.

mod common;

use std::collections::HashSet;

use ciuf::{Change, Engine, Row, Value, View};
use common::{Rng, Typed, number_key, to_sqlite};
use rusqlite::Connection;
use rusqlite::types::ValueRef;

const DDL: &str =
    "CREATE TABLE v (id INTEGER PRIMARY KEY, i INTEGER, j INTEGER, r REAL, s REAL, t TEXT, u TEXT, n NUMERIC)";
const COLUMNS: [&str; 8] = ["id", "i", "j", "r", "s", "t", "u", "n"];

/// How a view's rows are compared with SQLite's.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Shape {
    /// Row by row, every value with its class.
    Exact,
    /// In order (the query has ORDER BY … LIMIT).
    Ordered,
    /// The first column is a group, DISTINCT or set-operation key: where SQLite's rows
    /// of that key hold both an integer and a real of one value, either may show.
    KeyFirst,
}

/// A view and how SQLite checks it.
struct Checked {
    sql: String,
    /// SQLite's query: the view's columns, then one flag column for each of `flags`.
    oracle: String,
    /// Columns where SQLite may show an integer or a real of one value, each relaxed
    /// on the rows where the oracle's flag column (after the view's columns, in this
    /// order) says the value it picked from occurs with both classes.
    flags: Vec<usize>,
    /// For [`Shape::KeyFirst`]: SQLite's query for the key values that occur with both
    /// classes (where no flag column can say it).
    mixed_keys: Option<String>,
    shape: Shape,
    view: View,
}

/// What [`Gen::view`] makes.
struct Planned {
    sql: String,
    oracle: String,
    flags: Vec<usize>,
    mixed_keys: Option<String>,
    shape: Shape,
}

impl Planned {
    fn same(sql: String, shape: Shape) -> Planned {
        Planned { oracle: sql.clone(), sql, flags: Vec::new(), mixed_keys: None, shape }
    }
}

/// Random SQL over the table `v`, in SQLite's dialect.
struct Gen<'a> {
    rng: &'a mut Rng,
}

impl Gen<'_> {
    fn column(&mut self) -> String {
        self.rng.pick(&["i", "j", "r", "s", "t", "u", "n"]).to_string()
    }

    fn literal(&mut self) -> String {
        match self.rng.below(5) {
            0 => (self.rng.below(13) as i64 - 3).to_string(),
            1 => self.rng.pick(&["2.5", "3.0", "-1.5", "0.0", "7.25", "1e2"]).to_string(),
            2 => self.rng.pick(&["'3'", "'2.5'", "'abc'", "' 4 '", "'3x'", "''", "'-0'", "'1e2'"]).to_string(),
            3 => "NULL".into(),
            _ => self.rng.pick(&["0", "1", "2", "3"]).to_string(),
        }
    }

    fn expr(&mut self, depth: u32) -> String {
        if depth == 0 || self.rng.chance(0.25) {
            return if self.rng.chance(0.7) { self.column() } else { self.literal() };
        }
        let d = depth - 1;
        match self.rng.below(17) {
            0..=2 => {
                let op = *self.rng.pick(&["+", "-", "*", "/", "%", "/"]);
                format!("({} {op} {})", self.expr(d), self.expr(d))
            }
            3 => format!("(- {})", self.expr(d)),
            4 | 5 => {
                let mut out = String::from("CASE");
                for _ in 0..1 + self.rng.below(2) {
                    out += &format!(" WHEN {} THEN {}", self.cond(d), self.expr(d));
                }
                if self.rng.chance(0.7) {
                    out += &format!(" ELSE {}", self.expr(d));
                }
                out + " END"
            }
            6 => {
                let mut out = format!("CASE {}", self.expr(d));
                for _ in 0..1 + self.rng.below(2) {
                    out += &format!(" WHEN {} THEN {}", self.expr(d), self.expr(d));
                }
                if self.rng.chance(0.5) {
                    out += &format!(" ELSE {}", self.expr(d));
                }
                out + " END"
            }
            7 => format!("COALESCE({}, {}, {})", self.expr(d), self.expr(d), self.expr(d)),
            8 => format!("IFNULL({}, {})", self.expr(d), self.expr(d)),
            9 => format!("NULLIF({}, {})", self.expr(d), self.expr(d)),
            10 => format!("IIF({}, {}, {})", self.cond(d), self.expr(d), self.expr(d)),
            11 | 12 => {
                let f = *self.rng.pick(&["MIN", "MAX"]);
                let n = 2 + self.rng.below(2);
                let args: Vec<String> = (0..n).map(|_| self.expr(d)).collect();
                format!("{f}({})", args.join(", "))
            }
            13 => {
                let t = *self.rng.pick(&["INTEGER", "REAL", "TEXT", "NUMERIC"]);
                format!("CAST({} AS {t})", self.expr(d))
            }
            14 => format!("abs({})", self.expr(d)),
            15 => format!("({} || {})", self.expr(d), self.expr(d)),
            _ => format!("(+ {})", self.expr(d)),
        }
    }

    fn cond(&mut self, depth: u32) -> String {
        let d = depth.saturating_sub(1);
        match self.rng.below(10) {
            0..=4 => {
                let op = *self.rng.pick(&["=", "<>", "<", "<=", ">", ">=", "IS NOT DISTINCT FROM", "IS DISTINCT FROM"]);
                format!("{} {op} {}", self.expr(d), self.expr(d))
            }
            5 => format!("{} IS NULL", self.expr(d)),
            6 => format!("{} BETWEEN {} AND {}", self.expr(d), self.expr(d), self.expr(d)),
            7 => format!("{} IN ({}, {})", self.expr(d), self.expr(d), self.literal()),
            8 => format!("NOT ({})", self.cond(d)),
            _ => {
                let op = *self.rng.pick(&["AND", "OR"]);
                format!("({}) {op} ({})", self.cond(d), self.cond(d))
            }
        }
    }

    /// A view over `v`, with how SQLite checks it.
    fn view(&mut self) -> Planned {
        let e = self.expr(3);
        let f = self.expr(2);
        match self.rng.below(11) {
            0 | 1 => Planned::same(format!("SELECT id, {e}, {f}, {} FROM v", self.cond(2)), Shape::Exact),
            // A compound read as a subquery: SQLite gives its column an affinity.
            9 => {
                let g = self.column();
                let sql = format!(
                    "SELECT k, k / 2, k = '3' FROM (SELECT {e} AS k FROM v UNION ALL SELECT {f} FROM v UNION ALL SELECT {g} FROM v)"
                );
                Planned::same(sql, Shape::Exact)
            }
            // (Not in WHERE: SQLite pushes a WHERE condition into each operand of a
            // UNION ALL, where it meets that operand's affinity rather than the
            // column's.)
            10 => {
                let g = self.column();
                let sql = format!(
                    "WITH c AS (SELECT {g} AS k FROM v UNION ALL SELECT {e} FROM v) SELECT k % 3, k || '', k > 1 FROM c"
                );
                Planned::same(sql, Shape::Exact)
            }
            2 => Planned::same(format!("SELECT id FROM v WHERE {}", self.cond(3)), Shape::Exact),
            3 | 4 => {
                let calls = "COUNT(*), SUM(x), MIN(x), MAX(x), AVG(x), TOTAL(x), COUNT(DISTINCT x)";
                let sql = format!("SELECT k, {calls} FROM (SELECT {e} AS k, {f} AS x FROM v) GROUP BY k");
                // The group's key, its MIN and its MAX come from one of the group's rows,
                // which SQLite's plan picks: either class may show where the group holds
                // that value in both.
                let tie = |f: &str| {
                    format!(
                        "(SELECT min(typeof(h.x)) <> max(typeof(h.x)) FROM g AS h WHERE h.k IS g.k AND h.x IS {f}(g.x))"
                    )
                };
                let oracle = format!(
                    "WITH g AS (SELECT {e} AS k, {f} AS x FROM v) SELECT k, {calls}, \
                     min(typeof(k)) <> max(typeof(k)), {}, {} FROM g GROUP BY k",
                    tie("MIN"),
                    tie("MAX")
                );
                Planned { sql, oracle, flags: vec![0, 3, 4], mixed_keys: None, shape: Shape::KeyFirst }
            }
            5 => Planned {
                sql: format!("SELECT DISTINCT {e} FROM v"),
                oracle: format!("SELECT k, min(typeof(k)) <> max(typeof(k)) FROM (SELECT {e} AS k FROM v) GROUP BY k"),
                flags: vec![0],
                mixed_keys: None,
                shape: Shape::KeyFirst,
            },
            6 => Planned::same(format!("SELECT id, {e} FROM v ORDER BY 2, id LIMIT 5"), Shape::Ordered),
            7 => {
                let op = *self.rng.pick(&["UNION", "EXCEPT", "INTERSECT", "UNION ALL"]);
                let sql = format!("SELECT {e} FROM v {op} SELECT {f} FROM v");
                if op == "UNION ALL" {
                    return Planned::same(sql, Shape::Exact);
                }
                // Each value's class taken in its own operand: read through the
                // compound, SQLite would make the integers reals (REAL affinity).
                let mixed = format!(
                    "SELECT k FROM (SELECT {e} AS k, typeof({e}) AS c FROM v UNION ALL SELECT {f}, typeof({f}) FROM v) \
                     GROUP BY k HAVING min(c) <> max(c)"
                );
                Planned { oracle: sql.clone(), sql, flags: Vec::new(), mixed_keys: Some(mixed), shape: Shape::KeyFirst }
            }
            _ => {
                let (a, b) = (self.column(), self.column());
                Planned::same(format!("SELECT x.id, y.id FROM v AS x JOIN v AS y ON x.{a} = y.{b}"), Shape::Exact)
            }
        }
    }
}

struct Round {
    rng: Rng,
    engine: Engine,
    sqlite: Connection,
    views: Vec<Checked>,
    rows: Vec<Row>,
    next_id: i64,
    txn: usize,
}

impl Round {
    fn new(seed: u64) -> Round {
        let engine = Engine::in_memory();
        let sqlite = Connection::open_in_memory().expect("sqlite");
        engine.execute(DDL).expect("ciuf DDL");
        sqlite.execute_batch(DDL).expect("sqlite DDL");
        Round { rng: Rng::new(seed), engine, sqlite, views: Vec::new(), rows: Vec::new(), next_id: 1, txn: 0 }
    }

    fn register(&mut self, n: usize) {
        // A named view over a compound, and a view reading it.
        let name = format!("w{}", self.views.len());
        let (e, f) = (Gen { rng: &mut self.rng }.expr(2), Gen { rng: &mut self.rng }.column());
        let ddl = format!("CREATE VIEW {name} AS SELECT {f} AS k FROM v UNION ALL SELECT {e} FROM v");
        self.engine.execute(&ddl).unwrap_or_else(|e| panic!("ciuf refuses {ddl}: {e}"));
        self.sqlite.execute_batch(&ddl).expect("SQLite view");
        let sql = format!("SELECT k, k / 2, k = '3' FROM {name}");
        let view = self.engine.from_sql(&sql).unwrap_or_else(|e| panic!("ciuf refuses {sql}: {e}"));
        self.views.push(Checked {
            oracle: format!("{sql} -- {ddl}"),
            sql,
            flags: Vec::new(),
            mixed_keys: None,
            shape: Shape::Exact,
            view,
        });
        for _ in 0..n {
            let Planned { sql, oracle, flags, mixed_keys, shape } = Gen { rng: &mut self.rng }.view();
            let view = self.engine.from_sql(&sql).unwrap_or_else(|e| panic!("ciuf refuses {sql}: {e}"));
            self.views.push(Checked { sql, oracle, flags, mixed_keys, shape, view });
        }
    }

    fn random_value(&mut self, column: usize) -> Value {
        let r = &mut self.rng;
        if r.chance(0.15) {
            return Value::Null;
        }
        match column {
            1 | 2 => Value::Int(r.below(11) as i64 - 4),
            3 | 4 => Value::Float((r.below(13) as f64 - 4.0) * 0.5),
            5 | 6 => Value::text(*r.pick(&["3", "2.5", "abc", " 4 ", "3x", "", "-0", "1e2", "0", "3.0", "x"])),
            _ => {
                if r.chance(0.5) {
                    Value::Int(r.below(9) as i64 - 3)
                } else {
                    Value::Float((r.below(9) as f64 - 3.0) * 0.5)
                }
            }
        }
    }

    fn random_row(&mut self, id: i64) -> Row {
        let mut v = vec![Value::Int(id)];
        for c in 1..COLUMNS.len() {
            v.push(self.random_value(c));
        }
        Row::new(v)
    }

    /// One transaction of 1 to 4 inserts, updates and deletes, applied to both.
    fn transaction(&mut self) {
        self.txn += 1;
        let mut changes = Vec::new();
        let mut statements: Vec<(String, Vec<Value>)> = Vec::new();
        let placeholders = vec!["?"; COLUMNS.len()].join(", ");
        for _ in 0..1 + self.rng.below(4) {
            let op = if self.rows.len() < 4 { 0 } else { self.rng.below(10) };
            match op {
                0..=4 => {
                    let id = self.next_id;
                    self.next_id += 1;
                    let row = self.random_row(id);
                    self.rows.push(row.clone());
                    changes.push(Change::insert("v", row.to_vec()));
                    statements.push((format!("INSERT INTO v VALUES ({placeholders})"), row.to_vec()));
                }
                5..=7 => {
                    let at = self.rng.below(self.rows.len() as u64) as usize;
                    let old = self.rows[at].clone();
                    let mut new = old.to_vec();
                    let c = 1 + self.rng.below(COLUMNS.len() as u64 - 1) as usize;
                    new[c] = self.random_value(c);
                    self.rows[at] = Row::new(new.clone());
                    changes.push(Change::update("v", old.to_vec(), new.clone()));
                    let mut params = vec![new[c].clone()];
                    params.push(old.get(0).into_owned());
                    statements.push((format!("UPDATE v SET {} = ? WHERE id = ?", COLUMNS[c]), params));
                }
                _ => {
                    let at = self.rng.below(self.rows.len() as u64) as usize;
                    let old = self.rows.swap_remove(at);
                    changes.push(Change::delete("v", vec![("id", old.get(0).into_owned())]));
                    statements.push(("DELETE FROM v WHERE id = ?".into(), vec![old.get(0).into_owned()]));
                }
            }
        }
        let tx = self.sqlite.unchecked_transaction().expect("begin");
        for (sql, params) in &statements {
            let params: Vec<rusqlite::types::Value> = params.iter().map(to_sqlite).collect();
            tx.execute(sql, rusqlite::params_from_iter(params)).unwrap_or_else(|e| panic!("SQLite: {sql}: {e}"));
        }
        tx.commit().expect("commit");
        self.engine.apply(changes).unwrap_or_else(|e| panic!("txn {}: the engine refused: {e}", self.txn));
    }

    fn sqlite_rows(&self, sql: &str) -> Vec<Vec<Typed>> {
        let mut stmt = self.sqlite.prepare(sql).unwrap_or_else(|e| panic!("SQLite rejects {sql}: {e}"));
        let n = stmt.column_count();
        let mut out = Vec::new();
        let mut rows = stmt.query([]).expect("query runs");
        while let Some(row) = rows.next().expect("row") {
            out.push((0..n).map(|i| Typed::of_sqlite(row.get_ref(i).expect("column"))).collect());
        }
        out
    }

    /// Compares every view with SQLite; returns how many values were compared.
    fn check(&self, seed: u64) -> usize {
        let mut compared = 0;
        for v in &self.views {
            let mut ours: Vec<Vec<Typed>> = v
                .view
                .rows()
                .unwrap_or_else(|e| panic!("{}: {e}", v.sql))
                .iter()
                .map(|r| r.iter().map(|x| Typed::of_engine(&x)).collect())
                .collect();
            // SQLite's rows, each with the columns where either class may show.
            let mut theirs: Vec<(Vec<Typed>, Vec<usize>)> = self
                .sqlite_rows(&v.oracle)
                .into_iter()
                .map(|mut r| {
                    let flags = r.split_off(r.len() - v.flags.len());
                    let relaxed = v.flags.iter().zip(flags).filter(|(_, f)| *f == Typed::Int(1)).map(|(c, _)| *c);
                    (r, relaxed.collect())
                })
                .collect();
            let mixed: HashSet<String> = v
                .mixed_keys
                .as_ref()
                .map(|q| self.sqlite_rows(q).into_iter().map(|r| number_key(&r[0])).collect())
                .unwrap_or_default();
            if v.shape != Shape::Ordered {
                ours.sort_by_cached_key(|r| r.iter().map(Typed::sort_key).collect::<Vec<_>>());
                theirs.sort_by_cached_key(|(r, _)| r.iter().map(Typed::sort_key).collect::<Vec<_>>());
            }
            let same = ours.len() == theirs.len()
                && ours.iter().zip(&theirs).all(|(a, (b, relaxed))| {
                    a.len() == b.len()
                        && a.iter().zip(b).enumerate().all(|(c, (x, y))| {
                            let mixed_key = v.shape == Shape::KeyFirst && c == 0 && mixed.contains(&number_key(x));
                            x.matches(y, mixed_key || relaxed.contains(&c))
                        })
                });
            let theirs: Vec<Vec<Typed>> = theirs.into_iter().map(|(r, _)| r).collect();
            assert!(
                same,
                "seed {seed}, after transaction {}: {}\n  ciuf:   {ours:?}\n  sqlite: {theirs:?}\n  mixed: {mixed:?}\n  rows: {:?}",
                self.txn,
                v.sql,
                self.sqlite_rows("SELECT * FROM v ORDER BY id")
            );
            compared += ours.iter().map(Vec::len).sum::<usize>();
        }
        compared
    }
}

fn settings() -> (Vec<u64>, usize) {
    if let Ok(s) = std::env::var("CIUF_SEED") {
        return (vec![s.parse().expect("CIUF_SEED is a number")], 60);
    }
    if std::env::var("CIUF_LONG").is_ok_and(|v| v != "0") { ((0..200).collect(), 60) } else { ((0..25).collect(), 30) }
}

#[test]
fn generated_expressions_type_each_value_as_sqlite_does() {
    let (seeds, transactions) = settings();
    let (mut expressions, mut compared) = (0, 0);
    for seed in seeds {
        let mut round = Round::new(seed);
        // Some views see the rows arrive; others are built from rows already there.
        round.register(30);
        for k in 0..transactions {
            if k == transactions / 3 {
                round.register(30);
            }
            round.transaction();
            compared += round.check(seed);
        }
        expressions += round.views.len();
    }
    assert!(expressions >= 1_000, "{expressions} views");
    assert!(compared > 100_000, "{compared} values compared");
}

/// The queries of the report that found the typing defect, on the rows it used.
#[test]
fn the_reported_queries_divide_as_sqlite_does() {
    let engine = Engine::in_memory();
    let sqlite = Connection::open_in_memory().unwrap();
    let ddl = "CREATE TABLE emp (id INTEGER PRIMARY KEY, dept INTEGER, salary INTEGER, bonus REAL)";
    engine.execute(ddl).unwrap();
    sqlite.execute_batch(ddl).unwrap();
    let queries = [
        "SELECT id, 100 / CASE WHEN salary > 50 THEN dept + 1 ELSE bonus END AS q FROM emp",
        "SELECT id, 7 / COALESCE(NULLIF(dept, 2), bonus, 1) AS q FROM emp",
        "SELECT id, MAX(dept, bonus) / 2 AS m, MIN(salary, bonus) / 3 AS n FROM emp",
        "SELECT dept, 1000 / CASE WHEN COUNT(*) > 3 THEN COUNT(*) ELSE AVG(salary) END AS q FROM emp GROUP BY dept",
    ];
    let views: Vec<View> = queries.iter().map(|q| engine.from_sql(q).unwrap()).collect();
    let rows = [(1, 2, 60, 1.5), (2, 2, 40, 3.0), (3, 3, 70, 2.0), (4, 2, 10, 3.0), (5, 1, 55, 0.5), (6, 2, 80, 4.0)];
    for (id, dept, salary, bonus) in rows {
        engine
            .on_insert("emp", vec![Value::Int(id), Value::Int(dept), Value::Int(salary), Value::Float(bonus)])
            .unwrap();
        sqlite.execute("INSERT INTO emp VALUES (?1, ?2, ?3, ?4)", rusqlite::params![id, dept, salary, bonus]).unwrap();
    }
    for (q, view) in queries.iter().zip(&views) {
        let mut ours: Vec<String> = view.rows().unwrap().iter().map(|r| format!("{:?}", r.to_vec())).collect();
        let mut stmt = sqlite.prepare(q).unwrap();
        let n = stmt.column_count();
        let mut theirs: Vec<String> = stmt
            .query_map([], |r| {
                let vals: Vec<Value> = (0..n)
                    .map(|i| match r.get_ref(i).unwrap() {
                        ValueRef::Integer(x) => Value::Int(x),
                        ValueRef::Real(x) => Value::Float(x),
                        ValueRef::Null => Value::Null,
                        other => panic!("{other:?}"),
                    })
                    .collect();
                Ok(format!("{vals:?}"))
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        ours.sort();
        theirs.sort();
        assert_eq!(ours, theirs, "{q}");
    }
    // Row 1 takes the integer branch: 100 / 3 is 33, not 33.33.
    let q = views[0].rows().unwrap();
    assert!(q.iter().any(|r| r.to_vec() == [Value::Int(1), Value::Int(33)]), "{q:?}");
}
