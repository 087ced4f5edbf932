//! Parameterized views, compared with SQLite running the same query with the same
//! parameter values, after every transaction: full and partial views (a partial one
//! with eviction forced by tiny limits), random keys including ones never seen and
//! ones whose rows were all deleted, and SQL with literals served by auto-
//! parameterization.

mod common;

use ciuf::{Change, Engine, PartialLimits, Value, View, ViewOptions};
use common::{Rng, compare, norm_rows_engine, to_sqlite};
use rusqlite::Connection;

const DDL: &[&str] = &[
    "CREATE TABLE orders (id BIGINT PRIMARY KEY, customer_id BIGINT, product_id BIGINT, amount DOUBLE, status TEXT)",
    "CREATE TABLE products (id BIGINT PRIMARY KEY, category TEXT, price DOUBLE)",
];

/// Parameterized queries, with how many parameters each takes.
const QUERIES: &[(&str, usize)] = &[
    ("SELECT id, amount FROM orders WHERE customer_id = $1", 1),
    ("SELECT id, amount FROM orders WHERE customer_id = ?1 AND status = ?2", 2),
    (
        "SELECT o.id, p.category, o.amount FROM orders o JOIN products p ON o.product_id = p.id WHERE o.customer_id = :cust",
        1,
    ),
    ("SELECT status, COUNT(*), SUM(amount) FROM orders WHERE customer_id = $1 GROUP BY status", 1),
    ("SELECT COUNT(*), SUM(amount), MAX(amount) FROM orders WHERE customer_id = $1", 1),
    ("SELECT COUNT(*) FROM orders WHERE customer_id = $1 HAVING COUNT(*) > 1", 1),
    ("SELECT id, status FROM orders WHERE customer_id IN ($1, $2) AND amount < 30", 2),
    (
        "SELECT p.category, COUNT(o.id) FROM products p LEFT JOIN orders o ON o.product_id = p.id WHERE p.category = $1 GROUP BY p.category",
        1,
    ),
    ("SELECT id, amount FROM orders WHERE product_id = $1 AND amount > 20 ORDER BY amount DESC, id", 1),
    // Ranges: a scan of the keys in the range (full views only).
    ("SELECT id, amount FROM orders WHERE customer_id = $1 AND amount > $2", 2),
    ("SELECT id FROM orders WHERE amount BETWEEN $1 AND $2", 2),
    ("SELECT id, customer_id FROM orders WHERE $1 >= customer_id", 1),
];

fn value(rng: &mut Rng, q: &str, i: usize) -> Value {
    if q.contains("amount > $2") && i == 1 || q.contains("BETWEEN") {
        return if rng.chance(0.05) { Value::Null } else { Value::Float(rng.below(5000) as f64 / 100.0) };
    }
    // Keys 0..12 exist at times; 50 and up never do.
    let text = q.contains("status = ?2") && i == 1 || q.contains("p.category = $1");
    if text {
        return Value::text(["paid", "pending", "c1", "c2", "none"][rng.below(5) as usize]);
    }
    if rng.chance(0.1) { Value::Int(50 + rng.below(5) as i64) } else { Value::Int(rng.below(12) as i64) }
}

fn sqlite_answer(db: &Connection, sql: &str, args: &[Value]) -> Vec<Vec<common::Norm>> {
    let mut stmt = db.prepare(sql).unwrap_or_else(|e| panic!("SQLite rejects {sql}: {e}"));
    let n = stmt.column_count();
    let params: Vec<rusqlite::types::Value> = args.iter().map(to_sqlite).collect();
    let mut rows = stmt.query(rusqlite::params_from_iter(params)).unwrap();
    let mut out = Vec::new();
    while let Some(r) = rows.next().unwrap() {
        out.push((0..n).map(|i| common::Norm::from_sqlite(r.get_ref(i).unwrap())).collect());
    }
    out
}

struct Harness {
    rng: Rng,
    engine: Engine,
    db: Connection,
    next_id: i64,
    ids: Vec<i64>,
    rows: std::collections::HashMap<i64, Vec<Value>>,
}

impl Harness {
    fn new(seed: u64) -> Harness {
        let engine = Engine::in_memory();
        let db = Connection::open_in_memory().unwrap();
        for ddl in DDL {
            engine.execute(ddl).unwrap();
            db.execute_batch(ddl).unwrap();
        }
        let mut h = Harness { rng: Rng::new(seed), engine, db, next_id: 0, ids: Vec::new(), rows: Default::default() };
        for p in 0..6 {
            h.apply(vec![Change::insert(
                "products",
                vec![Value::Int(p), Value::text(["c1", "c2", "c3"][p as usize % 3]), Value::Float(p as f64 * 2.5)],
            )]);
        }
        h
    }

    fn apply(&mut self, changes: Vec<Change>) {
        let tx = self.db.unchecked_transaction().unwrap();
        for c in &changes {
            let (sql, params): (String, Vec<Value>) = match c {
                Change::Insert { table, row } => {
                    let vals = row_values(row);
                    (format!("INSERT INTO {} VALUES ({})", table_name(table), vec!["?"; vals.len()].join(",")), vals)
                }
                Change::Delete { table, row } => {
                    (format!("DELETE FROM {} WHERE id = ?", table_name(table)), vec![row_values(row)[0].clone()])
                }
                Change::Update { table, new, .. } => {
                    let v = row_values(new);
                    (
                        format!(
                            "UPDATE {} SET customer_id = ?, product_id = ?, amount = ?, status = ? WHERE id = ?",
                            table_name(table)
                        ),
                        vec![v[1].clone(), v[2].clone(), v[3].clone(), v[4].clone(), v[0].clone()],
                    )
                }
                Change::Replace { .. } => unreachable!("the workload has no replaces"),
            };
            let params: Vec<rusqlite::types::Value> = params.iter().map(to_sqlite).collect();
            tx.execute(&sql, rusqlite::params_from_iter(params)).unwrap();
        }
        tx.commit().unwrap();
        self.engine.apply(changes).unwrap();
    }

    fn order(&mut self, id: i64) -> Vec<Value> {
        let customer = if self.rng.chance(0.05) { Value::Null } else { Value::Int(self.rng.below(12) as i64) };
        vec![
            Value::Int(id),
            customer,
            Value::Int(self.rng.below(6) as i64),
            Value::Float(self.rng.below(5000) as f64 / 100.0),
            Value::text(["paid", "pending"][self.rng.below(2) as usize]),
        ]
    }

    fn transaction(&mut self) {
        let mut changes = Vec::new();
        // Updates and deletes touch rows that existed before the transaction, each once.
        let mut existing = self.ids.clone();
        let mut inserted = Vec::new();
        for _ in 0..1 + self.rng.below(5) {
            match self.rng.below(10) {
                0..=4 => {
                    self.next_id += 1;
                    let row = self.order(self.next_id);
                    inserted.push(self.next_id);
                    self.rows.insert(self.next_id, row.clone());
                    changes.push(Change::insert("orders", row));
                }
                5..=7 if !existing.is_empty() => {
                    let id = existing.swap_remove(self.rng.below(existing.len() as u64) as usize);
                    let row = self.order(id);
                    self.rows.insert(id, row.clone());
                    changes.push(Change::update_by_key("orders", row));
                }
                _ if !existing.is_empty() => {
                    let id = existing.swap_remove(self.rng.below(existing.len() as u64) as usize);
                    self.ids.retain(|x| *x != id);
                    let row = self.rows.remove(&id).expect("a row");
                    changes.push(Change::delete("orders", row));
                }
                _ => {}
            }
        }
        self.ids.extend(inserted);
        self.apply(changes);
    }
}

fn row_values(r: &ciuf::RowData) -> Vec<Value> {
    match r {
        ciuf::RowData::Values(v) => v.clone(),
        other => panic!("rows by position here: {other:?}"),
    }
}

fn table_name(t: &ciuf::TableRef) -> String {
    match t {
        ciuf::TableRef::Name(n) => n.clone(),
        other => panic!("tables by name here: {other:?}"),
    }
}

fn check(h: &mut Harness, views: &[(&str, usize, View)], what: &str) {
    for (sql, n, view) in views {
        for _ in 0..4 {
            let args: Vec<Value> = (0..*n).map(|i| value(&mut h.rng, sql, i)).collect();
            let ours = norm_rows_engine(&view.rows_with(&args).unwrap_or_else(|e| panic!("{sql} {args:?}: {e}")));
            let theirs = sqlite_answer(&h.db, sql, &args);
            if let Err(diff) = compare(ours, theirs, sql.contains("ORDER BY")) {
                panic!("{what}: {sql} with {args:?}\n{diff}");
            }
        }
    }
}

#[test]
fn parameterized_views_equal_sqlite_for_any_key_after_every_transaction() {
    for seed in 0..3 {
        let mut h = Harness::new(seed);
        let full: Vec<(&str, usize, View)> = QUERIES
            .iter()
            .map(|(q, n)| (*q, *n, h.engine.from_sql(q).unwrap_or_else(|e| panic!("{q}: {e}"))))
            .collect();
        // Partial, with eviction forced: two keys, a few hundred bytes.
        let tiny = PartialLimits { max_keys: Some(2), max_bytes: Some(400), idle: None };
        let mut partial: Vec<(&str, usize, View)> = Vec::new();
        for (q, n) in QUERIES {
            match h.engine.from_sql_with(q, ViewOptions { partial: Some(tiny) }) {
                Ok(v) => partial.push((q, *n, v)),
                Err(e) => {
                    assert!((q.contains(">") || q.contains("BETWEEN")) && e.to_string().contains("range"), "{q}: {e}")
                }
            }
        }
        for t in 0..80 {
            h.transaction();
            check(&mut h, &full, &format!("seed {seed}, full, after transaction {t}"));
            check(&mut h, &partial, &format!("seed {seed}, partial, after transaction {t}"));
        }
        for (q, _, v) in &partial {
            assert!(v.held_keys().unwrap() <= 2, "{q}: the limit holds");
        }
        // Keys whose rows are all deleted.
        let all: Vec<Change> =
            h.ids.drain(..).map(|id| Change::delete("orders", h.rows.remove(&id).expect("a row"))).collect();
        h.apply(all);
        check(&mut h, &full, "after deleting every order");
        check(&mut h, &partial, "after deleting every order (partial)");
    }
}

#[test]
fn sql_with_literals_is_served_by_one_parameterized_view() {
    let mut h = Harness::new(9);
    for _ in 0..40 {
        h.transaction();
    }
    let before = h.engine.stats().nodes;
    let mut bound = 0;
    let mut first: Option<String> = None;
    for t in 0..60 {
        let customer = h.rng.below(14);
        let status = ["paid", "pending"][h.rng.below(2) as usize];
        let sql = format!(
            "SELECT o.id, o.amount, p.category FROM orders o JOIN products p ON o.product_id = p.id \
             WHERE o.customer_id = {customer} AND o.status = '{status}'"
        );
        let view = h.engine.from_sql(&sql).unwrap();
        // The first text of the shape is a view of its own (and comes back from the
        // cache when repeated); every other is the shape's parameterized view, bound.
        let first = first.get_or_insert_with(|| sql.clone());
        if view.bound().is_some() || sql == *first {
            bound += 1;
        }
        let ours = norm_rows_engine(&view.rows().unwrap());
        let theirs = common::sqlite_rows(&h.db, &sql);
        if let Err(diff) = compare(ours, theirs, false) {
            panic!("request {t}: {sql}\n{diff}");
        }
        h.transaction();
    }
    assert_eq!(bound, 60, "every request but the shape's first text is a lookup");
    // One view for the shape (plus the first request's own): the graph stopped growing.
    let grown = h.engine.stats().nodes - before;
    assert!(grown < 20, "the graph grew by {grown} nodes for 60 requests");
    // A parameterized view registered explicitly serves the same shape at once.
    let explicit = h.engine.from_sql("SELECT id FROM orders WHERE status = $1").unwrap();
    let literal = h.engine.from_sql("SELECT id FROM orders WHERE status = 'paid'").unwrap();
    assert_eq!(literal.bound(), Some(&[Value::text("paid")][..]));
    assert_eq!(literal.rows().unwrap().len(), explicit.rows_with(&[Value::text("paid")]).unwrap().len());
}

#[test]
fn parameter_errors_are_clear() {
    let h = Harness::new(1);
    let v = h.engine.from_sql("SELECT id FROM orders WHERE customer_id = $1 AND status = $2").unwrap();
    assert_eq!(v.params(), ["customer_id", "status"]);
    let err = v.query().unwrap_err().to_string();
    assert!(err.contains("takes parameters (customer_id, status)"), "{err}");
    let err = v.rows_with(&[Value::Int(1)]).unwrap_err().to_string();
    assert!(err.contains("takes 2 parameters"), "{err}");
    let err = v.rows_with(&[Value::text("x"), Value::text("paid")]).unwrap_err().to_string();
    assert!(err.contains("parameter customer_id is a BIGINT"), "{err}");
    let err = v.query_named(&[("customer_id", Value::Int(1)), ("colour", Value::Int(2))]).unwrap_err().to_string();
    assert!(err.contains("no value for parameter status"), "{err}");
    let ok = v.query_named(&[("status", Value::text("paid")), ("customer_id", Value::Int(1))]).unwrap();
    assert_eq!(ok.num_rows(), 0);
    let err = h.engine.from_sql("SELECT id FROM orders WHERE amount + $1 > 3").unwrap_err().to_string();
    assert!(err.contains("parameter $1"), "{err}");
    let err = h.engine.from_sql("SELECT COUNT(*) FROM orders WHERE amount > $1").unwrap_err().to_string();
    assert!(err.contains("range of parameters"), "{err}");
    let err = h
        .engine
        .from_sql("SELECT status, COUNT(*) FROM orders WHERE customer_id IN ($1, $2) GROUP BY status")
        .unwrap_err()
        .to_string();
    assert!(err.contains("IN list or a range of parameters"), "{err}");
    let err = h.engine.from_sql("SELECT id FROM orders WHERE customer_id = $1 LIMIT 3").unwrap_err().to_string();
    assert!(err.contains("LIMIT"), "{err}");
    let err = h
        .engine
        .from_sql_with("SELECT id FROM orders", ViewOptions { partial: Some(PartialLimits::default()) })
        .unwrap_err()
        .to_string();
    assert!(err.contains("needs parameters"), "{err}");
}

#[test]
fn a_partial_view_outliving_its_engine_reads_what_it_holds_and_says_why_not_more() {
    let e = Engine::in_memory();
    e.execute("CREATE TABLE t (k INTEGER, v INTEGER)").unwrap();
    e.apply((0..10).map(|i| Change::insert("t", vec![Value::Int(i % 3), Value::Int(i)]))).unwrap();
    let v = e
        .from_sql_with(
            "SELECT k, SUM(v) AS s FROM t WHERE k = $1 GROUP BY k",
            ViewOptions { partial: Some(PartialLimits::default()) },
        )
        .unwrap();
    assert_eq!(v.held_keys(), Some(0));
    assert_eq!(v.query_with(&[Value::Int(1)]).unwrap().num_rows(), 1);
    assert_eq!(v.held_keys(), Some(1));
    drop(e);
    assert_eq!(v.query_with(&[Value::Int(1)]).unwrap().num_rows(), 1, "a key held still reads");
    let err = v.query_with(&[Value::Int(2)]).unwrap_err().to_string();
    assert!(err.contains("engine of this partial view was dropped"), "{err}");
}
