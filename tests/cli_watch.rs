//! `ciuf watch`: the view printed, then its changes as they commit, against a
//! PostgreSQL server the test starts and against a SQLite file written by another
//! process; the demo; `ciuf capture`.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::pg::PgServer;

#[test]
fn watch_prints_the_view_then_each_committed_change() {
    let server = PgServer::start();
    let mut client = server.client();
    client
        .batch_execute(
            "CREATE TABLE orders (id bigint PRIMARY KEY, customer text, amount numeric(8,2)); \
             INSERT INTO orders VALUES (1, 'ann', 10.50), (2, 'bob', 3.00);",
        )
        .unwrap();
    // PostgreSQL sums numeric(8,2) exactly, at its scale.
    let (mut child, rx) = watch_totals(&server.url(), ["10.50", "3.00"]);
    let next =
        |what: &str| rx.recv_timeout(Duration::from_secs(30)).unwrap_or_else(|_| panic!("no output line for {what}"));
    client
        .batch_execute(
            "BEGIN; INSERT INTO orders VALUES (3, 'ann', 1.25); UPDATE orders SET amount = 4 WHERE id = 2; COMMIT;",
        )
        .unwrap();
    let mut changes = vec![next("change 1"), next("change 2"), next("change 3"), next("change 4")];
    changes.sort();
    assert_eq!(
        changes,
        [
            r#"{"op":"+","row":{"customer":"ann","total":11.75}}"#,
            r#"{"op":"+","row":{"customer":"bob","total":4.00}}"#,
            r#"{"op":"-","row":{"customer":"ann","total":10.50}}"#,
            r#"{"op":"-","row":{"customer":"bob","total":3.00}}"#,
        ]
    );
    client
        .batch_execute("BEGIN; DELETE FROM orders WHERE customer = 'bob'; ROLLBACK; DELETE FROM orders WHERE id = 2;")
        .unwrap();
    assert_eq!(next("the delete"), r#"{"op":"-","row":{"customer":"bob","total":4.00}}"#);
    assert!(rx.recv_timeout(Duration::from_millis(300)).is_err(), "the rolled-back delete printed nothing");
    child.kill().unwrap();
    let _ = child.wait();
}

/// Ctrl-C, SIGTERM (docker, systemd) and SIGHUP stop `ciuf watch` cleanly: its slot
/// and publication are dropped before it exits with 128 + the signal.
#[test]
fn watch_stopped_by_a_signal_leaves_nothing_on_the_server() {
    let server = PgServer::start();
    let mut client = server.client();
    client.batch_execute("CREATE TABLE items (id bigint PRIMARY KEY); INSERT INTO items VALUES (1);").unwrap();
    for (sig, name) in [(15, "-TERM"), (2, "-INT"), (1, "-HUP")] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ciuf"))
            .args(["watch", &server.url(), "SELECT count(*) AS n FROM items", "--format", "json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let rx = lines_of(&mut child);
        rx.recv_timeout(Duration::from_secs(30)).expect("the view printed");
        let held: i64 = client.query_one("SELECT count(*) FROM pg_replication_slots", &[]).unwrap().get(0);
        assert_eq!(held, 1, "a slot while watching");
        let ok = Command::new("kill").args([name, &child.id().to_string()]).status().unwrap().success();
        assert!(ok);
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(128 + sig), "kill {name}");
        let slots: i64 = client.query_one("SELECT count(*) FROM pg_replication_slots", &[]).unwrap().get(0);
        let pubs: i64 = client.query_one("SELECT count(*) FROM pg_publication", &[]).unwrap().get(0);
        assert_eq!((slots, pubs), (0, 0), "after kill {name}: slots and publications left");
    }
}

#[test]
fn a_killed_follower_leaves_no_slot_holding_wal() {
    // Without a state directory the slot is temporary: the server drops it when the
    // follower's connection ends, even if no code of ciuf's runs (SIGKILL).
    let server = PgServer::start();
    let mut client = server.client();
    client.batch_execute("CREATE TABLE items (id bigint PRIMARY KEY); INSERT INTO items VALUES (1);").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ciuf"))
        .args(["watch", &server.url(), "SELECT count(*) AS n FROM items", "--format", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let rx = lines_of(&mut child);
    rx.recv_timeout(Duration::from_secs(30)).expect("the view printed");
    let temporary: bool = client
        .query_one("SELECT bool_and(temporary) FROM pg_replication_slots", &[])
        .unwrap()
        .get::<_, Option<bool>>(0)
        .expect("a slot while watching");
    assert!(temporary);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let slots: i64 = client.query_one("SELECT count(*) FROM pg_replication_slots", &[]).unwrap().get(0);
        if slots == 0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "a killed follower's slot is still there");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn watch_explains_its_usage_and_bad_urls() {
    let out = Command::new(env!("CARGO_BIN_EXE_ciuf")).args(["watch", "sqlite://x.db"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("usage: ciuf watch"));
    let out = Command::new(env!("CARGO_BIN_EXE_ciuf"))
        .args(["watch", "postgresql://app:pw@127.0.0.1:1/db", "SELECT 1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot reach PostgreSQL at 127.0.0.1:1") && !err.contains(":pw@"), "{err}");
}

/// `ciuf watch <url>` of the total by customer of a table `orders` holding (1, ann,
/// 10.50) and (2, bob, 3.00), as JSON lines; checks that the view comes first, as
/// `totals` (ann's, bob's) as the source's SQL gives them.
fn watch_totals(url: &str, totals: [&str; 2]) -> (std::process::Child, mpsc::Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ciuf"))
        .args(["watch", url, "SELECT customer, SUM(amount) AS total FROM orders GROUP BY customer", "--format", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let rx = lines_of(&mut child);
    let next =
        |what: &str| rx.recv_timeout(Duration::from_secs(30)).unwrap_or_else(|_| panic!("no output line for {what}"));
    let mut first = vec![next("the first row"), next("the second row")];
    first.sort();
    assert_eq!(
        first,
        [
            format!(r#"{{"op":"row","row":{{"customer":"ann","total":{}}}}}"#, totals[0]),
            format!(r#"{{"op":"row","row":{{"customer":"bob","total":{}}}}}"#, totals[1]),
        ]
    );
    (child, rx)
}

/// Lines of a child's stdout, as they come.
fn lines_of(child: &mut std::process::Child) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    rx
}

#[test]
fn watch_follows_a_sqlite_file_written_by_another_process() {
    let dir = std::env::temp_dir().join(format!("ciuf-cli-sqlite-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("app.db");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer TEXT, amount DECIMAL(8,2));
         INSERT INTO orders VALUES (1, 'ann', 10.5), (2, 'bob', 3);",
    )
    .unwrap();
    let url = format!("sqlite://{}", path.display());
    // SQLite holds a DECIMAL column's values as reals and integers, and sums them so.
    let (mut child, rx) = watch_totals(&url, ["10.5", "3"]);
    let next =
        |what: &str| rx.recv_timeout(Duration::from_secs(30)).unwrap_or_else(|_| panic!("no output line for {what}"));
    // Another process: a committed transaction, then a rolled-back one.
    let status = Command::new("python3")
        .arg("-c")
        .arg(
            "import sqlite3, sys\n\
             c = sqlite3.connect(sys.argv[1], isolation_level=None)\n\
             c.execute('BEGIN'); c.execute(\"UPDATE orders SET amount = 4 WHERE id = 2\"); c.execute('COMMIT')\n\
             c.execute('BEGIN'); c.execute(\"DELETE FROM orders\"); c.execute('ROLLBACK')\n",
        )
        .arg(&path)
        .status()
        .unwrap();
    assert!(status.success());
    let mut changes = vec![next("change 1"), next("change 2")];
    changes.sort();
    assert_eq!(
        changes,
        [r#"{"op":"+","row":{"customer":"bob","total":4}}"#, r#"{"op":"-","row":{"customer":"bob","total":3}}"#]
    );
    assert!(rx.recv_timeout(Duration::from_millis(300)).is_err(), "the rolled-back delete printed nothing");
    child.kill().unwrap();
    let _ = child.wait();
    // The capture stays until removed.
    let out = Command::new(env!("CARGO_BIN_EXE_ciuf")).args(["capture", "remove", &url]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("removed"), "{}", String::from_utf8_lossy(&out.stdout));
    let out = Command::new(env!("CARGO_BIN_EXE_ciuf")).args(["capture", "install", &url, "orders"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("change capture installed on {url}: orders"));
    let out = Command::new(env!("CARGO_BIN_EXE_ciuf")).args(["capture", "install", &url, "nothere"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no table nothere"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_demo_shows_a_view_changing_live() {
    let out =
        Command::new(env!("CARGO_BIN_EXE_ciuf")).args(["watch", "--for", "4", "--format", "json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let rows = stdout.lines().filter(|l| l.starts_with(r#"{"op":"row""#)).count();
    let changes = stdout.lines().filter(|l| l.starts_with(r#"{"op":"+""#)).count();
    assert_eq!(rows, 4, "one row per region first:\n{stdout}");
    assert!(changes >= 1, "the writer's changes show:\n{stdout}");
}
