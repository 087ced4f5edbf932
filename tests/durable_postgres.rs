//! A durable engine following PostgreSQL: restarted, it resumes on its kept slot from
//! its kept position — no COPY — and killed with SIGKILL at any moment (during the
//! first snapshot, mid-stream, mid-checkpoint; with `sync` and with `grouped`
//! durability), restarted, its views equal PostgreSQL's answers with
//! nothing lost and nothing applied twice, a transfer never seen half done. `ciuf
//! state drop` takes the slot and publication away with the directory.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ciuf::{Engine, OpenOptions, Value, View};
use common::crash::{
    TempDir, checkpoints, child_options, keep_checkpointing, kill_at_random, report_versions, rounds, with_durability,
};
use common::pg::PgServer;

const ACCOUNTS: i64 = 20_000;

fn bank() -> PgServer {
    let server = PgServer::start();
    server
        .client()
        .batch_execute(&format!(
            "CREATE TABLE acct (id bigint PRIMARY KEY, branch int NOT NULL, balance bigint NOT NULL);
             INSERT INTO acct SELECT g, g % 13, 100 FROM generate_series(0, {}) g;
             CREATE TABLE moves (id bigserial PRIMARY KEY, src bigint NOT NULL, dst bigint NOT NULL, amount bigint NOT NULL);",
            ACCOUNTS - 1
        ))
        .unwrap();
    server
}

fn transfer(c: &mut postgres::Client, n: i64) {
    let (src, dst) = ((n * 7919) % ACCOUNTS, (n * 104_729 + 13) % ACCOUNTS);
    let amount = n % 9 + 1;
    let sql = format!(
        "BEGIN; UPDATE acct SET balance = balance - {amount} WHERE id = {src};
         UPDATE acct SET balance = balance + {amount} WHERE id = {dst};
         INSERT INTO moves (src, dst, amount) VALUES ({src}, {dst}, {amount}); COMMIT;"
    );
    for attempt in 0.. {
        match c.batch_execute(&sql) {
            Ok(()) => return,
            Err(e) if attempt < 100 => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("{e}"),
        }
    }
}

const TOTAL: &str = "SELECT SUM(balance)::bigint AS total, COUNT(*) AS n FROM acct";
const PER_BRANCH: &str = "SELECT branch, SUM(balance)::bigint AS b, COUNT(*) AS n FROM acct GROUP BY branch";
const MOVES: &str = "SELECT a.branch, COUNT(*) AS n, SUM(m.amount)::bigint AS s FROM moves m JOIN acct a ON a.id = m.src GROUP BY a.branch";

fn options(state: &Path) -> OpenOptions {
    OpenOptions { state_dir: Some(state.to_path_buf()), ..OpenOptions::default() }
}

/// Registers the views a follower keeps (each one that a killed follower did not get
/// to register; a restart brings back those it did).
fn register(e: &Engine) {
    for (name, sql) in [("total", TOTAL), ("per_branch", PER_BRANCH)] {
        if e.view(name).is_none() {
            e.create_view(name, sql).unwrap();
        }
    }
    e.from_sql(MOVES).unwrap();
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "NULL".into(),
        other => other.to_text().unwrap(),
    }
}

fn rows(v: &View) -> Vec<Vec<String>> {
    let mut rows: Vec<Vec<String>> = v.rows().unwrap().iter().map(|r| r.iter().map(|x| text(&x)).collect()).collect();
    rows.sort();
    rows
}

fn on_server(c: &mut postgres::Client, sql: &str) -> Vec<Vec<String>> {
    let mut rows: Vec<Vec<String>> = c
        .simple_query(sql)
        .unwrap()
        .into_iter()
        .filter_map(|m| match m {
            postgres::SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).unwrap_or("NULL").to_string()).collect())
            }
            _ => None,
        })
        .collect();
    rows.sort();
    rows
}

/// Waits until the engine has every committed transfer, checking on the way that no
/// state read shows a transfer half done; then compares every view with PostgreSQL.
fn check(e: &Engine, c: &mut postgres::Client) {
    let total = e.view("total").unwrap();
    let expected = vec![vec![(ACCOUNTS * 100).to_string(), ACCOUNTS.to_string()]];
    let count = e.from_sql("SELECT COUNT(*) FROM moves").unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert_eq!(rows(&total), expected, "a reader saw a transfer half done");
        let want = on_server(c, "SELECT COUNT(*) FROM moves");
        if rows(&count) == want {
            break;
        }
        assert!(Instant::now() < deadline, "not caught up: {:?} of {want:?}; {:?}", rows(&count), e.source_status());
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(rows(&e.view("per_branch").unwrap()), on_server(c, PER_BRANCH));
    assert_eq!(rows(&e.from_sql(MOVES).unwrap()), on_server(c, MOVES));
}

fn slots(c: &mut postgres::Client) -> Vec<(String, bool)> {
    c.query("SELECT slot_name::text, temporary FROM pg_replication_slots", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

#[test]
fn a_restart_resumes_on_the_kept_slot_without_a_copy() {
    let server = bank();
    let dir = TempDir::new("durable-pg-restart");
    let mut c = server.client();
    {
        let e = Engine::open_with(&server.url(), options(&dir.0)).unwrap();
        register(&e);
        for n in 0..100 {
            transfer(&mut c, n);
        }
        check(&e, &mut c);
        assert!(e.source_status().unwrap().rows_read >= ACCOUNTS as u64);
        e.close();
    }
    // The slot stays (permanent) while the engine is away, and keeps what it missed.
    let kept = slots(&mut c);
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert!(!kept[0].1, "a durable engine's slot is permanent");
    for n in 100..300 {
        transfer(&mut c, n);
    }
    let e = Engine::open_with(&server.url(), options(&dir.0)).unwrap();
    assert!(e.view("total").is_some(), "views come back without registering them");
    check(&e, &mut c);
    for n in 300..350 {
        transfer(&mut c, n);
    }
    check(&e, &mut c);
    let status = e.source_status().unwrap();
    assert_eq!((status.rows_read, status.resyncs), (0, 0), "no COPY on restart: {status:?}");
    e.close();
    drop(e);

    // Dropping the state takes the slot and ciuf's publication with it.
    let err = ciuf::drop_state(&dir.0).unwrap_err().to_string();
    assert!(err.contains("replication slot") && err.contains("URL"), "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_ciuf"))
        .args(["state", "drop", dir.0.to_str().unwrap(), &server.url()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(slots(&mut c).is_empty());
    let pubs: i64 = c.query_one("SELECT count(*) FROM pg_publication", &[]).unwrap().get(0);
    assert_eq!(pubs, 0);
    assert!(!dir.0.exists());
}

/// Starts a follower on `dir`, registers its views, makes `transfers` and checks the
/// views against the server.
fn start_and_check(server: &PgServer, dir: &Path, c: &mut postgres::Client, transfers: std::ops::Range<i64>) {
    let e = Engine::open_with(&server.url(), options(dir)).unwrap();
    register(&e);
    for n in transfers {
        transfer(c, n);
    }
    check(&e, c);
}

/// The state directory `dir`, opened as an engine would (none may have it open).
fn state_dir(dir: &Path) -> Arc<ciuf::connectors::store::StateDir> {
    ciuf::connectors::store::StateDir::open(dir, ciuf::connectors::store::StoreOptions::default()).unwrap().0
}

/// A first start that died after putting a table in its publication and before loading
/// it leaves the table published: the next start loads it all the same.
#[test]
fn a_table_left_in_the_publication_by_a_start_that_died_is_loaded() {
    let server = bank();
    let dir = TempDir::new("durable-pg-published");
    let mut c = server.client();
    Engine::open_with(&server.url(), options(&dir.0)).unwrap().close();
    let publication =
        state_dir(&dir.0).meta(ciuf::connectors::postgres::PUBLICATION_KEY).expect("the publication's name is kept");
    c.batch_execute(&format!("CREATE PUBLICATION \"{publication}\" FOR TABLE acct")).unwrap();
    start_and_check(&server, &dir.0, &mut c, 0..20);
}

/// Tables a state directory kept without a source position (a first start that died
/// after its copies and before their position was recorded) are loaded again: nothing
/// could follow them from where they are.
#[test]
fn tables_kept_without_a_position_are_loaded_again() {
    use ciuf::core::{Journal, Row, ZSet, journal::Committed};
    let server = bank();
    let dir = TempDir::new("durable-pg-no-position");
    let mut c = server.client();
    // acct's schema as the source makes it.
    let schema = {
        let e = Engine::open(&server.url()).unwrap();
        e.from_sql("SELECT COUNT(*) FROM acct").unwrap();
        let schema = e.database().table_schema("acct").unwrap();
        e.close();
        schema
    };
    Engine::open_with(&server.url(), options(&dir.0)).unwrap().close();
    {
        // A copy of acct journaled with no position after it, every balance 0.
        let state = state_dir(&dir.0);
        state.table_created(&schema).unwrap();
        let mut rows = ZSet::new();
        for id in 0..ACCOUNTS {
            rows.push(Row::new(vec![Value::Int(id), Value::Int(id % 13), Value::Int(0)]), 1);
        }
        state.committed(&Committed { tables: vec![("acct", &rows)], position: None }).unwrap();
        state.close().unwrap();
    }
    for n in 0..20 {
        transfer(&mut c, n);
    }
    start_and_check(&server, &dir.0, &mut c, 20..40);
}

/// The follower a crash test kills (see `a_follower_killed_at_any_moment_comes_back_exact`).
#[test]
#[ignore = "the child process of a_follower_killed_at_any_moment_comes_back_exact"]
fn crash_follower() {
    let url = std::env::var("CIUF_CRASH_URL").expect("run by the crash test, with CIUF_CRASH_URL set");
    let state = std::env::var("CIUF_CRASH_STATE").expect("and CIUF_CRASH_STATE");
    let e = Engine::open_with(&url, child_options(Path::new(&state))).unwrap();
    register(&e);
    keep_checkpointing(&e);
    report_versions(&e.from_sql("SELECT COUNT(*) FROM moves").unwrap())
}

#[test]
fn a_follower_killed_at_any_moment_comes_back_exact() {
    let server = bank();
    let dir = TempDir::new("durable-pg-crash");
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, mut c) = (stop.clone(), server.client());
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                transfer(&mut c, n);
                n += 1;
                std::thread::sleep(Duration::from_millis(1));
            }
            n
        })
    };
    let exe = std::env::current_exe().unwrap();
    let mut seed = 0x9E37_79B9_7F4A_7C15u64 ^ u64::from(std::process::id());
    for round in 0..rounds() {
        let child = with_durability(&mut Command::new(&exe), round)
            .args(["--exact", "crash_follower", "--ignored", "--nocapture", "--test-threads=1"])
            .env("CIUF_CRASH_URL", server.url())
            .env("CIUF_CRASH_STATE", &dir.0)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        kill_at_random(child, round, &mut seed);
    }
    stop.store(true, Ordering::Relaxed);
    assert!(writer.join().unwrap() > 0);

    let mut c = server.client();
    let e = Engine::open_with(&server.url(), options(&dir.0)).unwrap();
    // Round 1 followed until ready: both tables were copied and kept.
    let mut tables = e.database().table_names();
    tables.sort();
    assert_eq!(tables, vec!["acct", "moves"]);
    register(&e);
    check(&e, &mut c);
    assert!(checkpoints(&dir.0) > 0, "the followers wrote no checkpoint");
    let s = e.source_status().unwrap();
    assert_eq!((s.rows_read, s.resyncs), (0, 0), "a restored table was copied again: {s:?}");
    assert_eq!(slots(&mut c).len(), 1, "one slot, the directory's own");
    e.close();
    drop(e);
    ciuf::drop_state_with(&dir.0, Some(&server.url())).unwrap();
    assert!(slots(&mut c).is_empty());
}
