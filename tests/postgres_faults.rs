//! The PostgreSQL source under faults: the replication connection killed by the server
//! in the middle of a large transaction, every connection cut on the client's side, and
//! the server restarted while streaming. Writers move money between accounts, so the
//! total never changes: a reader checks that invariant on every state the view shows
//! (a half-applied transaction would break it), and after each fault the views equal
//! PostgreSQL's answers again.

mod common;

use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ciuf::{Engine, Value, View};
use common::Rng;
use common::pg::PgServer;

const ACCOUNTS: i64 = 50;
const START_BALANCE: i64 = 1000;

/// A TCP proxy in front of the server whose connections can all be cut at once.
struct Proxy {
    port: u16,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    fn start(to_port: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let open: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let list = Arc::clone(&open);
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(("127.0.0.1", to_port)) else { continue };
                let mut l = list.lock().unwrap();
                l.push(client.try_clone().unwrap());
                l.push(server.try_clone().unwrap());
                drop(l);
                for (mut from, mut to) in [(client.try_clone().unwrap(), server.try_clone().unwrap()), (server, client)]
                {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(Shutdown::Both);
                        let _ = from.shutdown(Shutdown::Both);
                    });
                }
            }
        });
        Proxy { port, open }
    }

    /// Cuts every connection made so far.
    fn cut(&self) {
        for s in self.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

fn total_of(view: &View) -> Option<(i64, i64)> {
    let rows = view.rows().ok()?;
    let r = rows.first()?;
    // PostgreSQL sums bigints as numeric.
    match (&*r.get(0), &*r.get(1)) {
        (Value::Decimal(t), Value::Int(n)) => Some((t.trunc_i64()?, *n)),
        _ => None,
    }
}

fn wait_for_marker(marker: &View, id: i64, server: &PgServer, engine: &Engine) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if marker.rows().unwrap().first().is_some_and(|r| *r.get(0) == Value::Int(id)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "marker {id} not applied within 60 s; source: {:?}\n{}",
            engine.source_status(),
            server.log()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn pg_balances(client: &mut postgres::Client) -> Vec<(i64, i64)> {
    client
        .query("SELECT id, balance FROM accounts ORDER BY id", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

fn view_balances(view: &View) -> Vec<(i64, i64)> {
    let mut out: Vec<(i64, i64)> = view
        .rows()
        .unwrap()
        .iter()
        .map(|r| match (&*r.get(0), &*r.get(1)) {
            (Value::Int(a), Value::Int(b)) => (*a, *b),
            other => panic!("unexpected row {other:?}"),
        })
        .collect();
    out.sort();
    out
}

/// Transfers between accounts, in transactions of `transfers` transfers each, then a
/// marker; returns the marker.
fn transfer(client: &mut postgres::Client, rng: &mut Rng, transfers: usize, marker: &mut i64) -> i64 {
    let mut sql = String::from("BEGIN;");
    for _ in 0..transfers {
        let (a, b) = (rng.below(ACCOUNTS as u64) as i64, rng.below(ACCOUNTS as u64) as i64);
        let amount = rng.below(50) as i64;
        sql += &format!(
            "UPDATE accounts SET balance = balance - {amount} WHERE id = {a};\
             UPDATE accounts SET balance = balance + {amount} WHERE id = {b};"
        );
    }
    *marker += 1;
    sql += &format!("UPDATE marker SET id = {marker}; COMMIT;");
    // The server may be restarting: retry until the transaction commits.
    for attempt in 0.. {
        match client.batch_execute(&sql) {
            Ok(()) => return *marker,
            Err(e) if attempt < 200 => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => panic!("the writer cannot commit: {e}"),
        }
    }
    unreachable!()
}

/// A server with the accounts (each holding START_BALANCE) and the marker.
fn bank() -> PgServer {
    let server = PgServer::start();
    server
        .client()
        .batch_execute(&format!(
            "CREATE TABLE accounts (id bigint PRIMARY KEY, balance bigint NOT NULL);\
             INSERT INTO accounts SELECT g, {START_BALANCE} FROM generate_series(0, {}) g;\
             CREATE TABLE marker (id bigint PRIMARY KEY); INSERT INTO marker VALUES (0);",
            ACCOUNTS - 1
        ))
        .unwrap();
    server
}

#[test]
fn faults_lose_nothing_and_apply_nothing_twice() {
    let server = bank();
    let proxy = Proxy::start(server.port);
    let url = server.url().replace(&format!(":{}/", server.port), &format!(":{}/", proxy.port));
    let engine = Engine::open(&url).unwrap();
    let marker = engine.from_sql("SELECT id FROM marker").unwrap();
    let total = engine.from_sql("SELECT SUM(balance) AS total, COUNT(*) AS n FROM accounts").unwrap();
    let balances = engine.from_sql("SELECT id, balance FROM accounts").unwrap();
    let expected = (START_BALANCE * ACCOUNTS, ACCOUNTS);
    assert_eq!(total_of(&total), Some(expected));

    // A reader checks the invariant on every state it sees.
    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicUsize::new(0));
    let reader = {
        let (stop, reads, total) = (Arc::clone(&stop), Arc::clone(&reads), total.clone());
        std::thread::spawn(move || {
            let mut broken = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                if let Some(t) = total_of(&total)
                    && t != expected
                {
                    broken.push(t);
                }
                reads.fetch_add(1, Ordering::Relaxed);
            }
            broken
        })
    };

    let mut writer = server.client();
    let mut rng = Rng::new(5);
    let mut m = 0;
    let check = |what: &str, writer: &mut postgres::Client, rng: &mut Rng, m: &mut i64| {
        let id = transfer(writer, rng, 3, m);
        wait_for_marker(&marker, id, &server, &engine);
        assert_eq!(view_balances(&balances), pg_balances(&mut server.client()), "after {what}");
    };
    for _ in 0..20 {
        check("warm-up", &mut writer, &mut rng, &mut m);
    }

    // 1. The server kills the walsender while a large transaction streams: the
    // transaction commits, and the walsender is terminated while it decodes and sends
    // its 40,000 changes.
    transfer(&mut writer, &mut rng, 20_000, &mut m);
    server.psql("postgres", "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE backend_type = 'walsender'");
    wait_for_marker(&marker, m, &server, &engine);
    let reconnects = |e: &Engine| e.source_status().map_or(0, |s| s.reconnects);
    let deadline = Instant::now() + Duration::from_secs(20);
    while reconnects(&engine) < 1 {
        assert!(Instant::now() < deadline, "the stream was not cut: {:?}", engine.source_status());
        std::thread::sleep(Duration::from_millis(10));
    }
    for _ in 0..10 {
        check("the walsender was terminated", &mut writer, &mut rng, &mut m);
    }

    // 2. Every connection cut on the client's side, in the middle of a stream of
    // transactions.
    for round in 0..3 {
        for _ in 0..5 {
            transfer(&mut writer, &mut rng, 10, &mut m);
        }
        proxy.cut();
        for _ in 0..5 {
            transfer(&mut writer, &mut rng, 10, &mut m);
        }
        wait_for_marker(&marker, m, &server, &engine);
        check(&format!("client-side cut {round}"), &mut writer, &mut rng, &mut m);
        let deadline = Instant::now() + Duration::from_secs(20);
        while reconnects(&engine) < 2 + round as u64 {
            assert!(Instant::now() < deadline, "the cut was not seen: {:?}", engine.source_status());
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    // 3. The server restarts while streaming.
    for _ in 0..5 {
        transfer(&mut writer, &mut rng, 10, &mut m);
    }
    server.restart_with("restart");
    let mut writer = server.client();
    for _ in 0..5 {
        transfer(&mut writer, &mut rng, 10, &mut m);
    }
    wait_for_marker(&marker, m, &server, &engine);
    for _ in 0..10 {
        check("a server restart", &mut writer, &mut rng, &mut m);
    }
    let status = engine.source_status().unwrap();
    assert!(status.reconnects >= 5 && status.error.is_none(), "{status:?}");
    // Without a state directory the slot is temporary, gone with each lost
    // connection: every reconnect read the tables again under a new slot's snapshot.
    assert!(status.resyncs >= 5, "{status:?}");

    stop.store(true, Ordering::Relaxed);
    let broken = reader.join().unwrap();
    assert!(broken.is_empty(), "the reader saw a half-applied transaction: {:?}", &broken[..broken.len().min(5)]);
    assert!(reads.load(Ordering::Relaxed) > 100);
    engine.close();
}

#[test]
fn concurrent_writers_keep_the_invariant_in_every_state_read() {
    let server = bank();
    let engine = Engine::open(&server.url()).unwrap();
    let marker = engine.from_sql("SELECT id FROM marker").unwrap();
    let total = engine.from_sql("SELECT SUM(balance) AS total, COUNT(*) AS n FROM accounts").unwrap();
    let balances = engine.from_sql("SELECT id, balance FROM accounts").unwrap();
    let expected = (START_BALANCE * ACCOUNTS, ACCOUNTS);
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (stop, total) = (Arc::clone(&stop), total.clone());
        std::thread::spawn(move || {
            let mut seen = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let t = total_of(&total);
                assert_eq!(t, Some(expected), "a reader saw half a transaction");
                seen += 1;
            }
            seen
        })
    };
    let writers: Vec<_> = (0..4u64)
        .map(|w| {
            let mut client = server.client();
            std::thread::spawn(move || {
                let mut rng = Rng::new(100 + w);
                for _ in 0..150 {
                    let (a, b) = (rng.below(ACCOUNTS as u64), rng.below(ACCOUNTS as u64));
                    let amount = rng.below(20);
                    // Concurrent transfers may deadlock; PostgreSQL aborts one, which retries.
                    loop {
                        let sql = format!(
                            "BEGIN; UPDATE accounts SET balance = balance - {amount} WHERE id = {a};\
                             UPDATE accounts SET balance = balance + {amount} WHERE id = {b}; COMMIT;"
                        );
                        match client.batch_execute(&sql) {
                            Ok(()) => break,
                            Err(_) => {
                                let _ = client.batch_execute("ROLLBACK");
                            }
                        }
                    }
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    server.client().batch_execute("UPDATE marker SET id = 1").unwrap();
    wait_for_marker(&marker, 1, &server, &engine);
    stop.store(true, Ordering::Relaxed);
    assert!(reader.join().unwrap() > 100);
    assert_eq!(view_balances(&balances), pg_balances(&mut server.client()));
    engine.close();
}
