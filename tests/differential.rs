//! Differential tests: every view, after every transaction, equals SQLite running the
//! same query on the same data.
//!
//! Seeded random tables (with NULLs, duplicate rows in a table without a key, decimals,
//! dates and booleans), 99 queries covering every construct the engine maintains, and
//! random transactions of inserts, updates (by old row and by key, key changes
//! included), deletes, and rows deleted and re-inserted. Some views are registered
//! before any data, some after the initial load (so they are filled from existing
//! state). One transaction in eight ends with a change that must be refused: the
//! engine must report it and change nothing, which the next comparison checks. A third
//! of the way through, every other view is dropped (the rest must stay exact while the
//! nodes and join indexes they shared lose holders), and two thirds through those views
//! are registered again.
//!
//! Each runs with the engine's default threads (`CIUF_THREADS`, else the machine's
//! cores), and again on four worker threads with every transaction on the parallel
//! path. Quick by default; `CIUF_LONG=1` runs many more seeds and transactions, and
//! `CIUF_SEED=n` runs one seed.

mod common;

use ciuf::{Change, Decimal, Engine, Row, RowData, Value, View};
use common::{Norm, Rng, compare, norm_rows_engine, sqlite_rows, to_sqlite};
use rusqlite::Connection;

const DDL: &[&str] = &[
    "CREATE TABLE t1 (id BIGINT PRIMARY KEY, a BIGINT, b DOUBLE, c TEXT, d INTEGER, dt DATE)",
    "CREATE TABLE t2 (id BIGINT PRIMARY KEY, a BIGINT, e VARCHAR(10), f REAL, m DECIMAL(10,2), flag BOOLEAN)",
    "CREATE TABLE t3 (x BIGINT, y TEXT, z SMALLINT)",
];

const NAMED_VIEW: &str = "CREATE VIEW big_t1 AS SELECT id, a, b FROM t1 WHERE a > 1";

/// Registered before the initial load.
const EARLY: &[&str] = &[
    "SELECT * FROM t1",
    "SELECT id, a FROM t1 WHERE a IN (SELECT a FROM t2 WHERE f > 1)",
    "SELECT id, a FROM t1 WHERE a NOT IN (SELECT x FROM t3)",
    "SELECT id FROM t1 WHERE d > 2 OR NOT (a IN (SELECT z FROM t3 WHERE y = 'x'))",
    "SELECT t1.id, t2.e FROM t1, t2 WHERE t1.a = t2.a AND t2.id IN (SELECT x FROM t3) AND t1.b IN (SELECT f FROM t2)",
    "SELECT id, a + d, a * 2 - d, b / 2, a / 3, a % 3 FROM t1",
    "SELECT id, a / d, a % d, b * d FROM t1",
    "SELECT id, c || '-' || a, -a, abs(d - 2), c || b FROM t1",
    "SELECT id FROM t1 WHERE a > 2 AND (c = 'x' OR d IS NULL)",
    "SELECT id, a FROM t1 WHERE NOT (a > 2)",
    "SELECT id, a IS NULL, c IS NOT NULL, a > d, a = d OR c = 'y' FROM t1",
    "SELECT id FROM t1 WHERE a IN (1, 3, NULL)",
    "SELECT id FROM t1 WHERE a NOT IN (1, 2)",
    "SELECT id FROM t1 WHERE d NOT IN (1, NULL)",
    "SELECT id, b FROM t1 WHERE b BETWEEN 1.5 AND 4.5 OR b NOT BETWEEN -1 AND 5",
    "SELECT id, c FROM t1 WHERE c LIKE 'x%' OR c LIKE '_a' OR c NOT LIKE '%y%'",
    "SELECT id, CASE WHEN a > 3 THEN 'big' WHEN a > 1 THEN 'mid' ELSE 'small' END FROM t1",
    "SELECT id, CASE a WHEN 1 THEN 'one' WHEN 2 THEN 'two' END, CASE WHEN d = 0 THEN b END FROM t1",
    "SELECT id, CAST(b AS INTEGER), CAST(a AS DOUBLE), CAST(a AS TEXT), CAST(c AS INTEGER) FROM t1",
    "SELECT id, COALESCE(a, d, -1), NULLIF(a, 2), ifnull(c, 'none') FROM t1",
    "SELECT t1.*, t2.e FROM t1 JOIN t2 ON t1.a = t2.a",
    "SELECT t1.id, t2.id FROM t1, t2 WHERE t1.a = t2.a AND t1.b < t2.f",
    "SELECT t1.id, t2.id, t3.y FROM t1 JOIN t2 ON t1.a = t2.a JOIN t3 ON t3.x = t2.a",
    "SELECT t1.id, t3.y FROM t1 CROSS JOIN t3 WHERE t3.z > 2",
    "SELECT t1.id, t2.e FROM t1 LEFT JOIN t2 ON t1.a = t2.a",
    "SELECT t1.id, t2.e FROM t1 LEFT JOIN t2 ON t1.a = t2.a AND t2.f > t1.b",
    "SELECT t1.id, t2.e, t3.y FROM t1 LEFT JOIN t2 ON t1.a = t2.a LEFT OUTER JOIN t3 ON t3.x = t1.d",
    "SELECT a, COUNT(*), COUNT(d), SUM(d), MIN(c), MAX(b), AVG(b) FROM t1 GROUP BY a",
    "SELECT c, COUNT(DISTINCT a), SUM(DISTINCT d) FROM t1 GROUP BY c",
    "SELECT a, SUM(b) FROM t1 GROUP BY a HAVING COUNT(*) > 1",
    "SELECT COUNT(*), SUM(a), MIN(b), MAX(c), AVG(d) FROM t1",
    "SELECT COUNT(*), SUM(a), MAX(c) FROM t1 WHERE a > 100",
    "SELECT DISTINCT a, c FROM t1",
    "SELECT a FROM t1 UNION ALL SELECT a FROM t2",
];

/// Registered after the initial load: filled from existing state.
const LATE: &[&str] = &[
    "SELECT id FROM t2 WHERE NOT EXISTS (SELECT 1 FROM t1 WHERE t1.a = t2.a)",
    "SELECT id, a FROM t1 WHERE a NOT IN (SELECT x FROM t3 WHERE t3.z = t1.d)",
    "SELECT id, (SELECT SUM(z) FROM t3 WHERE t3.x = t1.a AND t3.y = t1.c), (SELECT MAX(f) FROM t2 WHERE t2.a > t1.d) FROM t1",
    "SELECT id FROM t1 WHERE b > (SELECT AVG(f) FROM t2 WHERE t2.a = t1.a)",
    "SELECT id, a IN (SELECT a FROM t2 WHERE t2.id <> t1.id) FROM t1",
    "SELECT c, (SELECT COUNT(*) FROM t2 WHERE t2.e = t1.c) FROM t1 WHERE EXISTS (SELECT 1 FROM t3 WHERE t3.y = t1.c)",
    "SELECT x FROM t3 INTERSECT ALL SELECT a FROM t1",
    "SELECT id, (SELECT e FROM t2 WHERE t2.id = t1.d), (SELECT c FROM t1 AS k WHERE k.id = 3) FROM t1",
    "SELECT x, (SELECT b FROM t1 WHERE t1.id = t3.z AND t1.a > 1) FROM t3",
    "SELECT x FROM t3 UNION SELECT a FROM t2 EXCEPT SELECT d FROM t1",
    "SELECT a, SUM(b) FROM t1 GROUP BY a HAVING SUM(b) > (SELECT AVG(f) FROM t2)",
    "SELECT a, group_concat(c), group_concat(DISTINCT c), group_concat(d, ' | '), group_concat(b) FROM t1 GROUP BY a",
    "SELECT c, COUNT(*), (SELECT COUNT(*) FROM t2 WHERE t2.e = t1.c) FROM t1 GROUP BY c HAVING EXISTS (SELECT 1 FROM t3 WHERE t3.y = t1.c)",
    "SELECT a, COUNT(*), a IN (SELECT x FROM t3) FROM t1 GROUP BY a HAVING COUNT(*) NOT IN (SELECT z FROM t3)",
    "SELECT a FROM t1 UNION SELECT x FROM t3",
    "SELECT c, COUNT(*) FROM t1 WHERE a IN (SELECT x FROM t3) GROUP BY c",
    "SELECT id FROM t2 WHERE NOT a IN (SELECT d FROM t1 WHERE d IS NOT NULL)",
    "SELECT id, a - (SELECT AVG(a) FROM t2), a IN (SELECT x FROM t3) FROM t1",
    "SELECT id FROM t1 WHERE b > (SELECT MIN(f) FROM t2) OR d = (SELECT COUNT(*) FROM t3)",
    "SELECT id, CASE WHEN d > (SELECT COUNT(*) FROM t3 WHERE z > 1) THEN 'many' ELSE 'few' END FROM t1 ORDER BY id LIMIT 6",
    "SELECT id, b FROM t1 ORDER BY b DESC, id LIMIT 5",
    "SELECT id, a FROM t1 ORDER BY a, id LIMIT 4 OFFSET 2",
    "SELECT x, y, z FROM t3 ORDER BY z DESC, x, y LIMIT 3",
    "SELECT s.a, s.n FROM (SELECT a, COUNT(*) AS n FROM t1 GROUP BY a) AS s WHERE s.n > 1",
    "SELECT v.a, COUNT(*), SUM(v.b) FROM big_t1 v GROUP BY v.a",
    "SELECT t2.e, SUM(t1.b), COUNT(*) FROM t1 JOIN t2 ON t1.a = t2.a GROUP BY t2.e",
    "SELECT t1.a, MAX(t2.f), COUNT(t2.id) FROM t1 LEFT JOIN t2 ON t1.a = t2.a GROUP BY t1.a",
    "SELECT y, SUM(z), COUNT(*) FROM t3 GROUP BY y",
    "SELECT DISTINCT y FROM t3 WHERE z IS NOT NULL",
    "SELECT id, m, m * 2, m + a, m - f FROM t2",
    "SELECT SUM(m), AVG(m), MIN(m), COUNT(m) FROM t2",
    "SELECT id, dt FROM t1 WHERE dt >= '2024-01-03'",
    "SELECT dt, COUNT(*) FROM t1 GROUP BY dt",
    "SELECT id, flag FROM t2 WHERE flag",
    "SELECT e, COUNT(*) FROM t2 WHERE NOT flag GROUP BY e",
    "SELECT t1.id, t1b.id FROM t1, t1 AS t1b WHERE t1.a = t1b.d",
    "SELECT upper(c), lower(e), length(c) FROM t1, t2 WHERE t1.id = t2.id",
    "SELECT id, round(b, 1), round(f) FROM t1 JOIN t2 USING (id)",
    "SELECT a, COUNT(*) FROM t1 GROUP BY a ORDER BY COUNT(*) DESC, a LIMIT 2",
    "SELECT id, c FROM t1 WHERE a = 1 OR a IS NULL ORDER BY id",
    "SELECT c, COUNT(*) FROM t1 GROUP BY c HAVING c IS NOT NULL",
    "SELECT a % 2, COUNT(*), SUM(b) FROM t1 GROUP BY a % 2",
    "SELECT a + 1 AS k, SUM(d) FROM t1 GROUP BY k",
    "SELECT a FROM t1 UNION SELECT a FROM t2 ORDER BY 1 LIMIT 3",
    "SELECT COUNT(*) FROM t1 LEFT JOIN t2 ON t1.a = t2.a WHERE t2.id IS NULL",
    "SELECT id, c FROM t1 WHERE c <> 'x'",
    "SELECT t1.id, t2.id FROM t1 RIGHT JOIN t2 ON t1.a = t2.a",
    "SELECT t1.id, t2.id, t1.a, t2.a FROM t1 FULL OUTER JOIN t2 ON t1.a = t2.a AND t1.d < 3",
    "SELECT x, COUNT(*) FROM (SELECT x, y FROM t3 UNION ALL SELECT a, c FROM t1) AS u GROUP BY x",
    "SELECT k, MIN(b), MAX(b) FROM (SELECT a AS k, b FROM t1 WHERE b IS NOT NULL) AS q GROUP BY k",
    "WITH w AS (SELECT a, SUM(d) AS s FROM t1 GROUP BY a) SELECT w.a, w.s, t2.e FROM w JOIN t2 ON w.a = t2.a",
    "SELECT id, b FROM t1 ORDER BY b, id",
    "SELECT t1.id, t2.id, t3.x FROM t1, t2, t3 WHERE t1.a = t2.a AND t2.a = t3.x AND t3.z = t1.d",
    "SELECT t2.e, COUNT(*), SUM(t3.z) FROM t1 JOIN t2 ON t1.a = t2.a AND t1.d = t2.id JOIN t3 ON t3.x = t1.d GROUP BY t2.e",
    // Aggregates over a three-way join (one fused node): global, keyed by an
    // expression over two inputs, DISTINCT, and HAVING (group_concat over a join
    // depends on the order SQLite scans the join in).
    "SELECT COUNT(*), SUM(t1.b), MIN(t3.y), MAX(t2.f) FROM t1 JOIN t2 ON t1.a = t2.a JOIN t3 ON t3.x = t2.a",
    "SELECT t2.e || '-' || t3.y, COUNT(DISTINCT t1.c), AVG(t1.b * 2), SUM(t1.d) FROM t1 JOIN t2 ON t1.a = t2.a JOIN t3 ON t3.x = t2.a GROUP BY t2.e || '-' || t3.y",
    "SELECT t3.y, t1.c, COUNT(*) FROM t1 JOIN t2 ON t1.a = t2.a JOIN t3 ON t3.x = t1.d GROUP BY t3.y, t1.c HAVING COUNT(*) > 1",
    "SELECT t1.id, t1b.id, t2.e FROM t1 JOIN t1 AS t1b ON t1.a = t1b.d JOIN t2 ON t2.a = t1b.a WHERE t1.b > 0",
    "SELECT a.x, b.y, c.id, d.e FROM t3 a JOIN t1 c ON c.id = a.z JOIN t2 d ON d.id = c.d JOIN t3 b ON b.x = d.a WHERE b.z = a.z",
    "SELECT id FROM t1 WHERE EXISTS (SELECT 1 FROM t2 WHERE t2.a = t1.a AND t2.f > t1.b)",
    "SELECT id, (SELECT COUNT(*) FROM t3 WHERE t3.x < t1.a) FROM t1",
    "SELECT a FROM t1 EXCEPT SELECT a FROM t2",
    "SELECT a, c FROM t1 INTERSECT SELECT x, y FROM t3",
    "SELECT a FROM t1 EXCEPT ALL SELECT a FROM t2",
    // SQLite's per-value typing: the report's four queries over emp (dept, salary,
    // bonus) are these over t1 (a BIGINT, d INTEGER, b DOUBLE). An integer branch
    // divides as an integer (100 / 3 is 33) where another branch is a real.
    "SELECT id, 100 / CASE WHEN d > 2 THEN a + 1 ELSE b END AS q FROM t1",
    "SELECT id, 7 / COALESCE(NULLIF(a, 2), b, 1) AS q FROM t1",
    "SELECT id, MAX(a, b) / 2 AS m, MIN(d, b) / 3 AS n FROM t1",
    "SELECT a, 1000 / CASE WHEN COUNT(*) > 3 THEN COUNT(*) ELSE AVG(d) END AS q FROM t1 GROUP BY a",
];

/// Queries SQLite cannot run as written (it has no EXCEPT ALL or INTERSECT ALL), with
/// the SQLite query that gives the same bag: numbering each copy of a row makes the
/// copies distinct, so the plain set operation on numbered rows is the ALL form.
const ORACLE: &[(&str, &str)] = &[
    (
        "SELECT a FROM t1 EXCEPT ALL SELECT a FROM t2",
        "SELECT a FROM (SELECT a, row_number() OVER (PARTITION BY a) FROM t1 \
         EXCEPT SELECT a, row_number() OVER (PARTITION BY a) FROM t2)",
    ),
    (
        "SELECT x FROM t3 INTERSECT ALL SELECT a FROM t1",
        "SELECT x FROM (SELECT x, row_number() OVER (PARTITION BY x) FROM t3 \
         INTERSECT SELECT a, row_number() OVER (PARTITION BY a) FROM t1)",
    ),
];

/// A group_concat query: neither SQLite nor ciuf promise the order of the joined
/// values after updates and deletes (SQLite's is its scan order), so its text values
/// are compared as sorted lists of items.
const CONCAT: &str =
    "SELECT a, group_concat(c), group_concat(DISTINCT c), group_concat(d, ' | '), group_concat(b) FROM t1 GROUP BY a";

/// `rows` with every text value's `,`- or ` | `-separated items sorted.
fn items_sorted(rows: Vec<Vec<Norm>>) -> Vec<Vec<Norm>> {
    let sort = |v: Norm| match v {
        Norm::Text(t) => {
            let mut items: Vec<&str> = t.split([',', '|']).map(str::trim).collect();
            items.sort_unstable();
            Norm::Text(items.join(","))
        }
        other => other,
    };
    rows.into_iter().map(|r| r.into_iter().map(sort).collect()).collect()
}

const T1: usize = 0;
const T2: usize = 1;
const T3: usize = 2;
const TABLES: [&str; 3] = ["t1", "t2", "t3"];
const COLUMNS: [&[&str]; 3] =
    [&["id", "a", "b", "c", "d", "dt"], &["id", "a", "e", "f", "m", "flag"], &["x", "y", "z"]];

struct Harness {
    rng: Rng,
    engine: Engine,
    sqlite: Connection,
    views: Vec<(&'static str, View)>,
    /// The rows each table holds (t3 may hold duplicates).
    model: [Vec<Row>; 3],
    next_id: i64,
    txn: usize,
}

fn maybe_null(rng: &mut Rng, p: f64, v: impl FnOnce(&mut Rng) -> Value) -> Value {
    if rng.chance(p) { Value::Null } else { v(rng) }
}

impl Harness {
    /// With `threads`, every transaction runs on that many worker threads, however
    /// small; without, the engine's defaults.
    fn new(seed: u64, threads: Option<usize>) -> Harness {
        let engine = Engine::in_memory();
        if let Some(n) = threads {
            engine.set_threads(n);
            engine.database().set_parallel_from(1);
        }
        let sqlite = Connection::open_in_memory().expect("sqlite");
        for ddl in DDL.iter().chain([&NAMED_VIEW]) {
            engine.execute(ddl).expect("ciuf DDL");
            sqlite.execute_batch(ddl).expect("sqlite DDL");
        }
        Harness {
            rng: Rng::new(seed),
            engine,
            sqlite,
            views: Vec::new(),
            model: Default::default(),
            next_id: 1,
            txn: 0,
        }
    }

    fn register(&mut self, queries: &[&'static str]) {
        for q in queries {
            let view = self.engine.from_sql(q).unwrap_or_else(|e| panic!("ciuf refuses {q}: {e}"));
            self.views.push((q, view));
        }
    }

    /// Drops every other view: its nodes and join indexes go unless another view
    /// shares them, and the views left must stay exact. Returns the dropped queries.
    fn drop_every_other_view(&mut self) -> Vec<&'static str> {
        let mut dropped = Vec::new();
        for (i, (q, view)) in std::mem::take(&mut self.views).into_iter().enumerate() {
            if i % 2 == 1 {
                self.engine.drop_view(&view).unwrap_or_else(|e| panic!("drop {q}: {e}"));
                assert!(view.rows().is_err(), "a dropped view is not read: {q}");
                dropped.push(q);
            } else {
                self.views.push((q, view));
            }
        }
        dropped
    }

    fn random_row(&mut self, t: usize, id: i64) -> Row {
        let r = &mut self.rng;
        let v = match t {
            T1 => vec![
                Value::Int(id),
                maybe_null(r, 0.15, |r| Value::Int(r.below(6) as i64)),
                maybe_null(r, 0.15, |r| Value::Float((r.below(17) as f64 - 4.0) * 0.5)),
                maybe_null(r, 0.15, |r| Value::text(*r.pick(&["x", "y", "z", "xy", "Xa", "ya"]))),
                maybe_null(r, 0.2, |r| Value::Int(r.below(5) as i64)),
                maybe_null(r, 0.2, |r| Value::Date(19723 + r.below(6) as i32)),
            ],
            T2 => vec![
                Value::Int(id),
                maybe_null(r, 0.15, |r| Value::Int(r.below(6) as i64)),
                maybe_null(r, 0.15, |r| Value::text(*r.pick(&["p", "q", "r"]))),
                maybe_null(r, 0.1, |r| Value::Float(r.below(40) as f64 * 0.25)),
                maybe_null(r, 0.1, |r| Value::from(Decimal::new(r.below(400) as i128 * 5 - 500, 2).expect("fits"))),
                maybe_null(r, 0.2, |r| Value::Bool(r.chance(0.5))),
            ],
            _ => vec![
                maybe_null(r, 0.15, |r| Value::Int(r.below(5) as i64)),
                maybe_null(r, 0.15, |r| Value::text(*r.pick(&["a", "b", "c"]))),
                maybe_null(r, 0.15, |r| Value::Int(r.below(6) as i64)),
            ],
        };
        Row::new(v)
    }

    /// One random change against `model`: the engine's change and the SQLite statement.
    fn random_change(&mut self, model: &mut [Vec<Row>; 3], out: &mut Vec<(Change, String, Vec<Value>)>) {
        let t = match self.rng.below(10) {
            0..=3 => T1,
            4..=6 => T2,
            _ => T3,
        };
        let name = TABLES[t];
        let cols = COLUMNS[t];
        let placeholders = vec!["?"; cols.len()].join(", ");
        let op = if model[t].len() < 3 { 0 } else { self.rng.below(20) };
        match op {
            // Insert (a duplicate row now and then where the table has no key).
            0..=8 => {
                let row = if t == T3 && !model[t].is_empty() && self.rng.chance(0.25) {
                    self.rng.pick(&model[t]).clone()
                } else {
                    let id = self.next_id;
                    self.next_id += 1;
                    self.random_row(t, id)
                };
                model[t].push(row.clone());
                out.push((
                    Change::insert(name, row.to_vec()),
                    format!("INSERT INTO {name} VALUES ({placeholders})"),
                    row.to_vec(),
                ));
            }
            // Update.
            9..=14 => {
                let i = self.rng.below(model[t].len() as u64) as usize;
                let old = model[t][i].clone();
                let fresh = self.random_row(t, old.get(0).as_i64().unwrap_or(0));
                let mut new = old.to_vec();
                let k = 1 + self.rng.below(cols.len() as u64 - 1) as usize;
                new[k] = fresh.get(k).into_owned();
                if t != T3 && self.rng.chance(0.1) {
                    new[0] = Value::Int(self.next_id);
                    self.next_id += 1;
                }
                let new = Row::new(new);
                model[t][i] = new.clone();
                let set = cols.iter().map(|c| format!("{c} = ?")).collect::<Vec<_>>().join(", ");
                let mut params = new.to_vec();
                let (change, sql) = if t == T3 {
                    params.extend(old.to_vec());
                    (
                        Change::update(name, old.to_vec(), new.to_vec()),
                        format!(
                            "UPDATE t3 SET {set} WHERE rowid = (SELECT rowid FROM t3 WHERE x IS ? AND y IS ? AND z IS ? LIMIT 1)"
                        ),
                    )
                } else {
                    params.push(old.get(0).into_owned());
                    let change = if *new.get(0) == *old.get(0) && self.rng.chance(0.5) {
                        // By key, naming only what changed.
                        Change::update_by_key(
                            name,
                            vec![(cols[0], new.get(0).into_owned()), (cols[k], new.get(k).into_owned())],
                        )
                    } else {
                        Change::update(name, old.to_vec(), new.to_vec())
                    };
                    (change, format!("UPDATE {name} SET {set} WHERE id = ?"))
                };
                out.push((change, sql, params));
            }
            // Delete, sometimes followed by re-inserting the same row.
            _ => {
                let i = self.rng.below(model[t].len() as u64) as usize;
                let old = model[t].swap_remove(i);
                let (change, sql, params) = if t == T3 {
                    (
                        Change::delete(name, old.to_vec()),
                        "DELETE FROM t3 WHERE rowid = (SELECT rowid FROM t3 WHERE x IS ? AND y IS ? AND z IS ? LIMIT 1)".to_string(),
                        old.to_vec(),
                    )
                } else {
                    (
                        Change::delete(name, vec![("id", old.get(0).into_owned())]),
                        format!("DELETE FROM {name} WHERE id = ?"),
                        vec![old.get(0).into_owned()],
                    )
                };
                out.push((change, sql, params));
                if op == 19 {
                    model[t].push(old.clone());
                    out.push((
                        Change::insert(name, RowData::Values(old.to_vec())),
                        format!("INSERT INTO {name} VALUES ({placeholders})"),
                        old.to_vec(),
                    ));
                }
            }
        }
    }

    /// A change the engine must refuse, given the model.
    fn bad_change(&mut self, model: &[Vec<Row>; 3]) -> Change {
        match self.rng.below(6) {
            0 if !model[T1].is_empty() => Change::insert("t1", self.rng.pick(&model[T1]).to_vec()),
            1 => Change::delete("t2", vec![("id", Value::Int(-7))]),
            2 => Change::insert(
                "t1",
                vec![Value::Int(-1), Value::text("not a number"), Value::Null, Value::Null, Value::Null, Value::Null],
            ),
            3 => Change::insert("t3", vec![Value::Int(1)]),
            4 => Change::insert("nope", vec![Value::Int(1)]),
            _ => Change::update(
                "t3",
                vec![Value::Int(99), Value::text("zz"), Value::Int(99)],
                vec![Value::Int(1), Value::Null, Value::Null],
            ),
        }
    }

    fn transaction(&mut self, allow_bad: bool) {
        self.txn += 1;
        let mut model = self.model.clone();
        let mut changes = Vec::new();
        for _ in 0..1 + self.rng.below(4) {
            self.random_change(&mut model, &mut changes);
        }
        if allow_bad && self.rng.chance(0.125) {
            let bad = self.bad_change(&model);
            let mut all: Vec<Change> = changes.into_iter().map(|(c, _, _)| c).collect();
            all.push(bad.clone());
            let before: Vec<usize> = self.views.iter().map(|(_, v)| v.version().unwrap()).map(|v| v as usize).collect();
            let err = self.engine.apply(all);
            assert!(err.is_err(), "txn {}: the engine accepted {bad:?}", self.txn);
            let after: Vec<usize> = self.views.iter().map(|(_, v)| v.version().unwrap()).map(|v| v as usize).collect();
            assert_eq!(before, after, "txn {}: a refused transaction changed a view", self.txn);
            return;
        }
        let tx = self.sqlite.unchecked_transaction().expect("begin");
        for (_, sql, params) in &changes {
            let params: Vec<rusqlite::types::Value> = params.iter().map(to_sqlite).collect();
            tx.execute(sql, rusqlite::params_from_iter(params)).unwrap_or_else(|e| panic!("SQLite: {sql}: {e}"));
        }
        tx.commit().expect("commit");
        self.engine
            .apply(changes.into_iter().map(|(c, _, _)| c))
            .unwrap_or_else(|e| panic!("txn {}: the engine refused a valid transaction: {e}", self.txn));
        self.model = model;
    }

    fn check(&self, seed: u64) {
        for (q, view) in &self.views {
            let ours = norm_rows_engine(&view.rows().expect("readable"));
            let oracle = ORACLE.iter().find(|(ours, _)| ours == q).map_or(*q, |(_, theirs)| *theirs);
            let mut theirs = sqlite_rows(&self.sqlite, oracle);
            let mut ours = ours;
            if *q == CONCAT {
                (ours, theirs) = (items_sorted(ours), items_sorted(theirs));
            }
            if let Err(diff) = compare(ours, theirs, q.contains("ORDER BY")) {
                panic!("seed {seed}, after transaction {}: {q}\n{diff}", self.txn);
            }
            if self.txn.is_multiple_of(16) {
                let batch = view.query().expect("arrow");
                assert_eq!(batch.num_rows(), view.len().unwrap(), "{q}: Arrow row count");
                assert_eq!(batch.num_columns(), view.columns().len(), "{q}: Arrow column count");
            }
        }
    }
}

fn run(seed: u64, transactions: usize, threads: Option<usize>) {
    let mut h = Harness::new(seed, threads);
    h.register(EARLY);
    h.check(seed);
    // The initial load: valid transactions only.
    for _ in 0..12 {
        h.transaction(false);
    }
    h.check(seed);
    h.register(LATE);
    h.check(seed);
    let mut dropped = Vec::new();
    for k in 0..transactions {
        if k == transactions / 3 {
            dropped = h.drop_every_other_view();
            h.check(seed);
        }
        if k == 2 * transactions / 3 {
            // Registered again: filled from the state the remaining views kept up.
            h.register(&dropped);
            h.check(seed);
        }
        h.transaction(true);
        h.check(seed);
    }
    // Delete everything: groups disappear, global aggregates stay.
    let mut changes = Vec::new();
    let mut stmts = Vec::new();
    for t in [T1, T2, T3] {
        for row in std::mem::take(&mut h.model[t]) {
            changes.push(Change::delete(TABLES[t], row.to_vec()));
        }
        stmts.push(format!("DELETE FROM {}", TABLES[t]));
    }
    h.engine.apply(changes).expect("delete all");
    h.sqlite.execute_batch(&stmts.join(";")).expect("sqlite delete all");
    h.check(seed);
}

fn settings() -> (Vec<u64>, usize) {
    if let Ok(s) = std::env::var("CIUF_SEED") {
        return (vec![s.parse().expect("CIUF_SEED is a number")], 400);
    }
    if std::env::var("CIUF_LONG").is_ok_and(|v| v != "0") { ((0..40).collect(), 500) } else { ((0..3).collect(), 60) }
}

#[test]
fn views_equal_sqlite_after_every_transaction() {
    assert!(EARLY.len() + LATE.len() >= 40);
    let (seeds, transactions) = settings();
    for seed in seeds {
        run(seed, transactions, None);
    }
}

/// The same on four worker threads, every transaction taking the parallel path
/// (see ciuf_engine::workers): results must not depend on the number of threads.
#[test]
fn views_equal_sqlite_on_worker_threads() {
    let (seeds, transactions) = settings();
    for seed in seeds {
        run(seed, transactions, Some(4));
    }
}
