//! The SQLite source against real SQLite files: writes from other connections and from
//! another process (inserts, updates, key changes, deletes, multi-statement
//! transactions, rollbacks) reach the views, and after every commit every view equals
//! the same query run on the file. Also: a restart mid-stream, capture installed and
//! removed, and the errors a user meets.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ciuf::connectors::sqlite::{SqliteOptions, install_capture, remove_capture};
use ciuf::{Engine, Error, View};
use common::{Rng, Typed, compare, norm_rows_engine, sqlite_rows};
use rusqlite::Connection;

const SCHEMA: &str = "
    CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, region TEXT);
    CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER, amount REAL, status VARCHAR(10),
                         price DECIMAL(10,2), day DATE, paid BOOLEAN);
    CREATE TABLE events (kind TEXT, n INTEGER);
    CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL);
    WITH RECURSIVE k(id) AS (SELECT 1 UNION ALL SELECT id + 1 FROM k WHERE id < 10)
    INSERT INTO accounts SELECT id, 100 FROM k;
";

const VIEWS: &[&str] = &[
    "SELECT id, customer_id, amount FROM orders WHERE status = 'paid' AND amount > 50",
    "SELECT c.region, COUNT(*) AS n, SUM(o.amount) AS total FROM orders o JOIN customers c ON o.customer_id = c.id GROUP BY c.region",
    "SELECT c.name, o.id FROM customers c LEFT JOIN orders o ON o.customer_id = c.id",
    "SELECT id, amount FROM orders ORDER BY amount DESC, id LIMIT 5",
    "SELECT kind, COUNT(*), SUM(n) FROM events GROUP BY kind",
    "SELECT day, SUM(price), COUNT(*) FROM orders WHERE paid GROUP BY day",
    "SELECT c.id FROM customers c WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.id)",
];

/// A fresh database file in its own temporary folder.
struct Db {
    dir: PathBuf,
}

impl Db {
    fn new(tag: &str) -> Db {
        let dir = std::env::temp_dir().join(format!("ciuf-sqlite-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Db { dir }
    }

    fn path(&self) -> PathBuf {
        self.dir.join("app.db")
    }

    fn url(&self) -> String {
        format!("sqlite://{}", self.path().display())
    }

    fn connect(&self) -> Connection {
        let c = Connection::open(self.path()).unwrap();
        c.busy_timeout(Duration::from_secs(10)).unwrap();
        c
    }

    fn create(&self, wal: bool) -> Connection {
        let c = self.connect();
        if wal {
            c.pragma_update(None, "journal_mode", "WAL").unwrap();
        }
        c.execute_batch(SCHEMA).unwrap();
        for i in 0..8 {
            c.execute(
                "INSERT INTO customers VALUES (?1, ?2, ?3)",
                rusqlite::params![i, format!("c{i}"), ["north", "south", "east"][i as usize % 3]],
            )
            .unwrap();
        }
        for i in 0..40 {
            c.execute(
                "INSERT INTO orders VALUES (?1, ?2, ?3, ?4, ?5, date('2024-01-01', ?6), ?7)",
                rusqlite::params![
                    i,
                    i % 10,
                    (i * 7 % 100) as f64 + 0.5,
                    ["paid", "pending"][i as usize % 2],
                    (i * 13 % 500) as f64 / 4.0,
                    format!("+{} days", i % 5),
                    i % 3 == 0
                ],
            )
            .unwrap();
        }
        c
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The log position the file has reached (what a follower must apply).
fn log_position(c: &Connection) -> i64 {
    c.query_row("SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = '_ciuf_log'), 0)", [], |r| r.get(0))
        .unwrap()
}

/// Waits until `engine` has applied the log up to `pos`.
fn wait_for(engine: &Engine, pos: i64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = engine.source_status().expect("a source");
        if status.position.parse::<i64>().unwrap_or(0) >= pos {
            return;
        }
        assert!(status.error.is_none(), "the source failed: {status:?}");
        assert!(Instant::now() < deadline, "the engine did not reach log position {pos}: {status:?}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn check(views: &[(&str, View)], file: &Connection, what: &str) {
    for (sql, view) in views {
        let ours = norm_rows_engine(&view.rows().unwrap_or_else(|e| panic!("{what}: {sql}: {e}")));
        let theirs = sqlite_rows(file, sql);
        if let Err(diff) = compare(ours, theirs, false) {
            panic!("{what}: {sql}\n{diff}");
        }
    }
}

/// One random transaction on `c`; committed or rolled back. Returns whether it committed.
fn random_transaction(c: &Connection, rng: &mut Rng, next_id: &mut i64) -> bool {
    c.execute_batch("BEGIN").unwrap();
    for _ in 0..1 + rng.below(4) {
        let id = rng.below((*next_id).max(1) as u64) as i64;
        match rng.below(10) {
            0..=2 => {
                *next_id += 1;
                c.execute(
                    "INSERT INTO orders VALUES (?1, ?2, ?3, ?4, ?5, date('2024-01-01', ?6), ?7)",
                    rusqlite::params![
                        *next_id,
                        rng.below(11) as i64,
                        rng.below(10_000) as f64 / 100.0,
                        ["paid", "pending", "refunded"][rng.below(3) as usize],
                        rng.below(100_000) as f64 / 100.0,
                        format!("+{} days", rng.below(6)),
                        rng.chance(0.5)
                    ],
                )
                .unwrap();
            }
            3 => {
                c.execute(
                    "UPDATE orders SET amount = ?1, status = ?2 WHERE id = ?3",
                    rusqlite::params![rng.below(100) as f64, ["paid", "pending"][rng.below(2) as usize], id],
                )
                .unwrap();
            }
            4 => {
                // A key change, when the new key is free.
                *next_id += 1;
                c.execute("UPDATE orders SET id = ?1 WHERE id = ?2", rusqlite::params![*next_id, id]).unwrap();
            }
            5 => {
                c.execute("DELETE FROM orders WHERE id = ?1", [id]).unwrap();
            }
            6 => {
                // Many rows in one statement.
                c.execute("UPDATE orders SET price = price + 1 WHERE customer_id = ?1", [rng.below(10) as i64])
                    .unwrap();
            }
            7 => {
                c.execute(
                    "INSERT INTO events VALUES (?1, ?2)",
                    rusqlite::params![format!("k{}", rng.below(3)), rng.below(10) as i64],
                )
                .unwrap();
            }
            8 => {
                // A duplicate row of a table without a key, one copy deleted.
                c.execute(
                    "DELETE FROM events WHERE rowid = (SELECT min(rowid) FROM events WHERE kind = ?1)",
                    [format!("k{}", rng.below(3))],
                )
                .unwrap();
            }
            _ => {
                c.execute(
                    "UPDATE customers SET region = ?1 WHERE id = ?2",
                    rusqlite::params![["north", "south", "west"][rng.below(3) as usize], rng.below(8) as i64],
                )
                .unwrap();
            }
        }
    }
    if rng.chance(0.2) {
        c.execute_batch("ROLLBACK").unwrap();
        false
    } else {
        c.execute_batch("COMMIT").unwrap();
        true
    }
}

fn register(engine: &Engine) -> Vec<(&'static str, View)> {
    VIEWS.iter().map(|q| (*q, engine.from_sql(q).unwrap_or_else(|e| panic!("{q}: {e}")))).collect()
}

#[test]
fn writes_from_another_connection_reach_every_view_after_every_commit() {
    for wal in [false, true] {
        let db = Db::new(if wal { "wal" } else { "journal" });
        let writer = db.create(wal);
        let engine = Engine::open(&db.url()).unwrap();
        let views = register(&engine);
        check(&views, &writer, "after the load");
        let mut rng = Rng::new(7 + wal as u64);
        let mut next_id = 40;
        let mut committed = 0;
        for t in 0..150 {
            if random_transaction(&writer, &mut rng, &mut next_id) {
                committed += 1;
            }
            wait_for(&engine, log_position(&writer));
            check(&views, &writer, &format!("journal mode WAL={wal}, after transaction {t}"));
        }
        assert!(committed > 90, "most transactions commit: {committed}");
        // The log is trimmed once applied.
        std::thread::sleep(Duration::from_millis(1300));
        wait_for(&engine, log_position(&writer));
        let deadline = Instant::now() + Duration::from_secs(5);
        while writer.query_row("SELECT count(*) FROM _ciuf_log", [], |r| r.get::<_, i64>(0)).unwrap() > 0 {
            assert!(Instant::now() < deadline, "the applied log rows are deleted");
            std::thread::sleep(Duration::from_millis(50));
        }
        engine.close();
    }
}

/// Views over a file whose NUMERIC and DECIMAL columns hold integers and reals side by
/// side (SQLite's NUMERIC affinity) type each value as SQLite does: `q / 2` divides an
/// integer as an integer, a CASE gives each row's own class, sums are integers until a
/// real joins them. Compared with SQLite on the file, value by value with its class,
/// after every commit of another connection.
#[test]
fn views_over_the_file_type_each_value_as_sqlite_does() {
    let db = Db::new("typing");
    let writer = db.connect();
    writer
        .execute_batch(
            "CREATE TABLE m (id INTEGER PRIMARY KEY, q NUMERIC, p DECIMAL(10,2), r REAL, t TEXT, i INTEGER);
             INSERT INTO m VALUES (1, 3, 10, 2.5, '3', 1), (2, 7.5, 2.25, 4.0, 'x', 5), (3, 4, 3.0, NULL, ' 4 ', 2);",
        )
        .unwrap();
    let engine = Engine::open(&db.url()).unwrap();
    let queries = [
        "SELECT id, q / 2, p / 2, q % 2, CASE WHEN i > 2 THEN q ELSE r END / 2 FROM m",
        "SELECT id, COALESCE(q, r) / 2, IFNULL(r, i) / 2, MAX(q, r) / 2, MIN(i, r) / 3, q || '', t + 0 FROM m",
        "SELECT SUM(q), SUM(p), AVG(q), TOTAL(i), MIN(q), MAX(q), SUM(t) FROM m",
        "SELECT id FROM m WHERE q = '3' OR t = 3 OR i = t OR t > 2",
        "SELECT q % 3, COUNT(*) FROM m GROUP BY q % 3",
    ];
    let views: Vec<(&str, View)> = queries.iter().map(|q| (*q, engine.from_sql(q).unwrap())).collect();
    let mut rng = Rng::new(11);
    for step in 0..80 {
        let id = 1 + rng.below(8) as i64;
        let number = |rng: &mut Rng| -> rusqlite::types::Value {
            match rng.below(4) {
                0 => rusqlite::types::Value::Integer(rng.below(9) as i64 - 2),
                1 => rusqlite::types::Value::Real((rng.below(9) as f64 - 2.0) * 0.5),
                2 => rusqlite::types::Value::Real(rng.below(5) as f64),
                _ => rusqlite::types::Value::Null,
            }
        };
        let (q, p, r) = (number(&mut rng), number(&mut rng), number(&mut rng));
        let t = ["3", "x", " 4 ", "2.5", "1e1"][rng.below(5) as usize];
        let i = rng.below(6) as i64;
        writer
            .execute(
                "INSERT INTO m VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (id) DO UPDATE \
                 SET q = excluded.q, p = excluded.p, r = excluded.r, t = excluded.t, i = excluded.i",
                rusqlite::params![id, q, p, r, t, i],
            )
            .unwrap();
        if rng.chance(0.2) {
            writer.execute("DELETE FROM m WHERE id = ?1", [1 + rng.below(8) as i64]).unwrap();
        }
        wait_for(&engine, log_position(&writer));
        for (sql, view) in &views {
            let mut ours: Vec<Vec<Typed>> =
                view.rows().unwrap().iter().map(|r| r.iter().map(|v| Typed::of_engine(&v)).collect()).collect();
            let mut stmt = writer.prepare(sql).unwrap();
            let n = stmt.column_count();
            let mut theirs: Vec<Vec<Typed>> = stmt
                .query_map([], |r| Ok((0..n).map(|c| Typed::of_sqlite(r.get_ref(c).unwrap())).collect()))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            ours.sort_by_cached_key(|r| r.iter().map(Typed::sort_key).collect::<Vec<_>>());
            theirs.sort_by_cached_key(|r| r.iter().map(Typed::sort_key).collect::<Vec<_>>());
            // A group holding 1 and 1.0 shows either, by SQLite's plan.
            let key_either_class = sql.contains("GROUP BY");
            let same = ours.len() == theirs.len()
                && ours.iter().zip(&theirs).all(|(a, b)| {
                    a.iter().zip(b).enumerate().all(|(c, (x, y))| x.matches(y, key_either_class && c == 0))
                });
            assert!(same, "step {step}: {sql}\n  ciuf:   {ours:?}\n  sqlite: {theirs:?}");
        }
    }
    engine.close();
}

/// A Python script that writes `n` random transactions (a fifth rolled back).
const PYTHON_WRITER: &str = r#"
import random, sqlite3, sys
path, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
random.seed(seed)
c = sqlite3.connect(path, timeout=10, isolation_level=None)
next_id = c.execute("SELECT max(id) FROM orders").fetchone()[0] + 1
for t in range(n):
    c.execute("BEGIN")
    a, b, x = random.randint(1, 10), random.randint(1, 10), random.randint(1, 50)
    c.execute("UPDATE accounts SET balance = balance - ? WHERE id = ?", (x, a))
    c.execute("UPDATE accounts SET balance = balance + ? WHERE id = ?", (x, b))
    for _ in range(random.randint(1, 4)):
        r = random.random()
        if r < 0.4:
            c.execute("INSERT INTO orders VALUES (?, ?, ?, 'paid', ?, '2024-01-02', 1)",
                      (next_id, random.randint(0, 9), random.randint(0, 9999) / 100, random.randint(0, 500) / 4))
            next_id += 1
        elif r < 0.7:
            c.execute("UPDATE orders SET amount = amount + 1 WHERE id = ?", (random.randint(0, next_id),))
        elif r < 0.9:
            c.execute("DELETE FROM orders WHERE id = ?", (random.randint(0, next_id),))
        else:
            c.execute("INSERT INTO events VALUES ('py', ?)", (random.randint(0, 9),))
    c.execute("ROLLBACK" if random.random() < 0.2 else "COMMIT")
"#;

fn python_writes(db: &Path, n: u32, seed: u32) {
    let status = std::process::Command::new("python3")
        .arg("-c")
        .arg(PYTHON_WRITER)
        .arg(db)
        .arg(n.to_string())
        .arg(seed.to_string())
        .status()
        .expect("python3 runs (the tests need it, as CI installs it)");
    assert!(status.success(), "the Python writer failed");
}

#[test]
fn writes_from_another_process_reach_the_views() {
    let db = Db::new("process");
    let file = db.create(true);
    let engine = Engine::open(&db.url()).unwrap();
    let views = register(&engine);
    // Each transaction moves money between accounts: a reader that sees whole source
    // transactions only always sees the same total.
    let total = engine.from_sql("SELECT SUM(balance) FROM accounts").unwrap();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = std::thread::spawn({
        let (total, done) = (total.clone(), done.clone());
        move || {
            let mut seen = 0u64;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let rows = total.rows().unwrap();
                assert_eq!(*rows[0].get(0), ciuf::Value::Int(1000), "a half-applied source transaction");
                seen += 1;
            }
            seen
        }
    });
    let writer = std::thread::spawn({
        let path = db.path();
        move || python_writes(&path, 300, 1)
    });
    writer.join().unwrap();
    wait_for(&engine, log_position(&file));
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(reader.join().unwrap() > 100, "the reader read while the writer wrote");
    wait_for(&engine, log_position(&file));
    check(&views, &file, "after 300 transactions from another process");
    assert!(engine.source_status().unwrap().transactions > 0);
}

#[test]
fn a_restart_resumes_from_the_file_without_loss() {
    let db = Db::new("restart");
    let file = db.create(true);
    let first = Engine::open(&db.url()).unwrap();
    let views = register(&first);
    python_writes(&db.path(), 50, 2);
    wait_for(&first, log_position(&file));
    check(&views, &file, "before the restart");
    // Stopped mid-stream: more writes land while no follower runs.
    let writing = std::thread::spawn({
        let path = db.path();
        move || python_writes(&path, 100, 3)
    });
    std::thread::sleep(Duration::from_millis(30));
    drop(views);
    first.close();
    drop(first);
    writing.join().unwrap();
    python_writes(&db.path(), 20, 4);
    let second = Engine::open(&db.url()).unwrap();
    let views = register(&second);
    check(&views, &file, "after the restart");
    python_writes(&db.path(), 50, 5);
    wait_for(&second, log_position(&file));
    check(&views, &file, "after the restart and more writes");
}

#[test]
fn capture_is_installed_and_removed_explicitly_and_never_alters_the_tables() {
    let db = Db::new("capture");
    let file = db.create(false);
    let tables_sql = |c: &Connection| -> Vec<String> {
        let mut s = c
            .prepare(
                "SELECT sql FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE '\\_ciuf%' ESCAPE '\\' \
                 AND name NOT LIKE 'sqlite%' ORDER BY name",
            )
            .unwrap();
        s.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
    };
    let before = tables_sql(&file);
    // With capture off, a table without it is refused with the command that fixes it.
    let manual = SqliteOptions { capture: false, ..SqliteOptions::default() };
    let engine = Engine::open_sqlite(&db.url(), manual.clone()).unwrap();
    let err = engine.from_sql("SELECT COUNT(*) FROM orders").unwrap_err().to_string();
    assert!(err.contains("no change capture installed") && err.contains("ciuf capture install"), "{err}");
    engine.close();
    let captured = install_capture(&db.url(), &[], Duration::from_secs(5)).unwrap();
    assert_eq!(captured, ["accounts", "customers", "events", "orders"]);
    let engine = Engine::open_sqlite(&db.url(), manual).unwrap();
    let n = engine.from_sql("SELECT COUNT(*) FROM orders").unwrap();
    file.execute("INSERT INTO orders (id) VALUES (1000)", []).unwrap();
    wait_for(&engine, log_position(&file));
    assert_eq!(norm_rows_engine(&n.rows().unwrap()), sqlite_rows(&file, "SELECT COUNT(*) FROM orders"));
    engine.close();
    assert_eq!(tables_sql(&file), before, "the user's tables are unchanged");
    let removed = remove_capture(&db.url(), Duration::from_secs(5)).unwrap();
    assert_eq!(removed, ["accounts", "customers", "events", "orders"]);
    let left: i64 = file
        .query_row("SELECT count(*) FROM sqlite_schema WHERE name LIKE '\\_ciuf%' ESCAPE '\\'", [], |r| r.get(0))
        .unwrap();
    assert_eq!(left, 0, "no trigger or table of ciuf is left");
    assert_eq!(tables_sql(&file), before);
}

#[test]
fn clear_errors() {
    let db = Db::new("errors");
    // A missing file.
    let err = Engine::open(&db.url()).unwrap_err().to_string();
    assert!(err.contains("does not exist"), "{err}");
    // Not a database.
    std::fs::write(db.path(), b"hello, this is not a database file at all.............................").unwrap();
    let err = Engine::open(&db.url()).unwrap_err().to_string();
    assert!(err.contains("not a SQLite database"), "{err}");
    std::fs::remove_file(db.path()).unwrap();
    let file = db.create(false);
    file.execute_batch("CREATE TABLE blobs (id INTEGER PRIMARY KEY, data BLOB); CREATE VIEW v AS SELECT 1;").unwrap();
    let engine = Engine::open(&db.url()).unwrap();
    // An unsupported column type, named.
    let err = engine.from_sql("SELECT id FROM blobs").unwrap_err().to_string();
    assert!(err.contains("blobs.data") && err.contains("BLOB"), "{err}");
    // A view of the file.
    let err = engine.from_sql("SELECT * FROM v").unwrap_err().to_string();
    assert!(err.contains("is a view"), "{err}");
    // A locked database: retried, then said.
    let locker = db.connect();
    locker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let patient = SqliteOptions { lock_patience: Duration::from_millis(300), ..SqliteOptions::default() };
    let locked = Engine::open_sqlite(&db.url(), patient);
    let err = match locked.and_then(|e| e.from_sql("SELECT COUNT(*) FROM customers")) {
        Err(e) => e,
        Ok(_) => panic!("a locked database cannot be captured"),
    };
    assert!(matches!(err, Error::Source { retryable: true, .. }), "{err:?}");
    assert!(err.to_string().contains("locked"), "{err}");
    locker.execute_batch("COMMIT").unwrap();
    // A value SQLite accepts but the declared type cannot hold fails only its table.
    let orders = engine.from_sql("SELECT id, amount FROM orders").unwrap();
    let customers = engine.from_sql("SELECT COUNT(*) FROM customers").unwrap();
    file.execute("INSERT INTO orders (id, amount) VALUES (500, 'lots')", []).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let err = loop {
        if let Err(e) = orders.rows() {
            break e.to_string();
        }
        assert!(Instant::now() < deadline, "the bad value fails the view");
        std::thread::sleep(Duration::from_millis(5));
    };
    assert!(err.contains("orders.amount") && err.contains("'lots'"), "{err}");
    assert!(customers.rows().is_ok());
    // A dropped table fails its views with the reason.
    file.execute_batch("DROP TABLE customers").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let err = loop {
        if let Err(e) = customers.rows() {
            break e.to_string();
        }
        assert!(Instant::now() < deadline, "the dropped table fails the view");
        std::thread::sleep(Duration::from_millis(5));
    };
    assert!(err.contains("dropped"), "{err}");
}
