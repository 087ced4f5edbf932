//! A durable engine fed by the application: what it held comes back after a restart
//! and after a SIGKILL at any moment — every transaction whose `apply` returned, none
//! twice, the views registered again — and a damaged, foreign or busy state
//! directory is refused with what to do.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ciuf::{Change, Durability, Engine, OpenOptions, Row, RowData, Value, View};
use common::crash::TempDir;

fn sorted(mut rows: Vec<Row>) -> Vec<Vec<Value>> {
    rows.sort();
    rows.into_iter().map(|r| r.to_vec()).collect()
}

fn view_rows(v: &View) -> Vec<Vec<Value>> {
    sorted(v.rows().unwrap())
}

const SCHEMA: &str = "CREATE TABLE acct (id INTEGER PRIMARY KEY, owner TEXT NOT NULL, balance INTEGER NOT NULL);
     CREATE TABLE transfer (id INTEGER PRIMARY KEY, src INTEGER, dst INTEGER, amount INTEGER);
     CREATE TABLE note (body TEXT)";

const TOTAL: &str = "SELECT SUM(balance), COUNT(*) FROM acct";
const PER_OWNER: &str = "SELECT owner, SUM(balance) AS b FROM acct GROUP BY owner";
const MOVED: &str = "SELECT a.owner, COUNT(t.id) FROM acct a LEFT JOIN transfer t ON t.src = a.id GROUP BY a.owner";

/// Moves `amount` from one account to another, with the transfer's record: one
/// transaction that keeps the total.
fn transfer(e: &Engine, id: i64, src: i64, dst: i64, amount: i64) -> ciuf::Result<()> {
    let balance = |acct: i64| -> i64 {
        e.database()
            .table_rows("acct")
            .unwrap()
            .into_iter()
            .find(|r| r.get(0).as_i64() == Some(acct))
            .and_then(|r| r.get(2).as_i64())
            .unwrap()
    };
    let (s, d) = (balance(src), balance(dst));
    e.apply([
        Change::update_by_key("acct", [("id", Value::Int(src)), ("balance", Value::Int(s - amount))]),
        Change::update_by_key("acct", [("id", Value::Int(dst)), ("balance", Value::Int(d + amount))]),
        Change::insert("transfer", vec![Value::Int(id), Value::Int(src), Value::Int(dst), Value::Int(amount)]),
    ])
}

fn setup(e: &Engine, accounts: i64) {
    e.execute(SCHEMA).unwrap();
    e.apply(
        (0..accounts)
            .map(|i| Change::insert("acct", vec![Value::Int(i), Value::text(format!("o{}", i % 5)), Value::Int(1000)])),
    )
    .unwrap();
    e.execute(&format!("CREATE VIEW total AS {TOTAL}")).unwrap();
    e.create_view("per_owner", PER_OWNER).unwrap();
    e.from_sql(MOVED).unwrap();
}

/// Every table and view of `e`, for comparing two engines.
fn everything(e: &Engine) -> Vec<Vec<Vec<Value>>> {
    let mut out: Vec<Vec<Vec<Value>>> =
        e.database().table_names().iter().map(|t| sorted(e.database().table_rows(t).unwrap())).collect();
    out.push(view_rows(&e.view("total").unwrap()));
    out.push(view_rows(&e.view("per_owner").unwrap()));
    out.push(view_rows(&e.from_sql(MOVED).unwrap()));
    out
}

#[test]
fn tables_views_and_transactions_come_back_after_a_restart() {
    let dir = TempDir::new("durable-restart");
    let expected = {
        let e = Engine::in_memory_durable(&dir.0).unwrap();
        setup(&e, 20);
        for i in 0..200 {
            transfer(&e, i, i % 20, (i * 7 + 3) % 20, i % 13).unwrap();
        }
        e.on_insert("note", vec![Value::text("twice")]).unwrap();
        e.on_insert("note", vec![Value::text("twice")]).unwrap();
        e.execute("CREATE TABLE gone (x INTEGER); INSERT INTO gone VALUES (1); DROP TABLE gone").unwrap();
        let temp = e.create_view("temporary", "SELECT COUNT(*) FROM note").unwrap();
        e.drop_view(&temp).unwrap();
        // A refused transaction leaves nothing in the state either.
        assert!(transfer(&e, 5, 1, 2, 1).is_err());
        assert_eq!(e.durable_txn().0, e.durable_txn().1, "sync: every transaction durable");
        let all = everything(&e);
        e.close();
        all
    };
    let e = Engine::in_memory_durable(&dir.0).unwrap();
    assert!(e.unrestored_views().is_empty(), "{:?}", e.unrestored_views());
    assert_eq!(e.database().table_names(), vec!["acct", "transfer", "note"]);
    assert!(e.view("temporary").is_none());
    assert_eq!(everything(&e), expected);
    // And it carries on, durably.
    transfer(&e, 1000, 0, 1, 5).unwrap();
    drop(e);
    let e = Engine::in_memory_durable(&dir.0).unwrap();
    let total = e.view("total").unwrap();
    assert_eq!(view_rows(&total), vec![vec![Value::Int(20_000), Value::Int(20)]]);
    assert_eq!(e.database().table_rows("transfer").unwrap().len(), 201);
}

#[test]
fn checkpoints_replace_the_log_and_restarts_read_them() {
    let dir = TempDir::new("durable-checkpoint");
    let options = || OpenOptions {
        state_dir: Some(dir.0.clone()),
        durability: Durability::Grouped(Duration::from_millis(2)),
        checkpoint_floor: 16 << 10,
        ..OpenOptions::default()
    };
    let expected = {
        let e = Engine::open_with("memory:", options()).unwrap();
        setup(&e, 50);
        for i in 0..3000 {
            transfer(&e, i, i % 50, (i * 7 + 3) % 50, i % 13).unwrap();
        }
        e.sync().unwrap();
        let (last, durable) = e.durable_txn();
        assert_eq!(last, durable);
        let all = everything(&e);
        e.close();
        all
    };
    let files: Vec<String> =
        std::fs::read_dir(&dir.0).unwrap().map(|f| f.unwrap().file_name().into_string().unwrap()).collect();
    let checkpoints = files.iter().filter(|f| f.starts_with("checkpoint-")).count();
    let logs = files.iter().filter(|f| f.starts_with("log-")).count();
    assert_eq!(checkpoints, 1, "{files:?}");
    assert!(logs <= 2, "the logs a checkpoint replaces are deleted: {files:?}");
    let e = Engine::open_with("memory:", options()).unwrap();
    assert_eq!(everything(&e), expected);
}

/// Per owner, the aggregates whose state is saved besides COUNT and SUM.
const EXTREMES: &str =
    "SELECT owner, MIN(balance), MAX(balance), AVG(balance), TOTAL(balance) FROM acct GROUP BY owner";
/// An aggregate over a join of new nodes (filters): restored, the join it no longer
/// computes still has its inputs arranged for the changes to come.
const RECEIVED: &str = "SELECT a.owner, COUNT(*), SUM(t.amount) FROM transfer t JOIN acct a ON t.dst = a.id
     WHERE t.amount > 2 AND a.balance > 0 GROUP BY a.owner";
/// A join that probes an aggregate's output: restored, it is arranged from its state.
const SENT: &str = "SELECT a.owner, s.total FROM acct a
     JOIN (SELECT src, SUM(amount) AS total FROM transfer GROUP BY src) s ON s.src = a.id";

/// Transfers `ids` on both engines.
fn transfers(engines: [&Engine; 2], ids: std::ops::Range<i64>) {
    for i in ids {
        for e in engines {
            transfer(e, i, i % 30, (i * 7 + 3) % 30, i % 13).unwrap();
        }
    }
}

/// The durable engine `e` against `reference`, which computed everything from the rows.
fn same_as(e: &Engine, reference: &Engine) {
    assert_eq!(everything(e), everything(reference));
    for sql in [EXTREMES, SENT, RECEIVED] {
        assert_eq!(view_rows(&e.from_sql(sql).unwrap()), view_rows(&reference.from_sql(sql).unwrap()), "{sql}");
    }
}

/// A durable engine in `dir` and an in-memory one, set up alike with every view.
fn twins(dir: &Path) -> (Engine, Engine) {
    let pair = (Engine::in_memory_durable(dir).unwrap(), Engine::in_memory());
    for x in [&pair.0, &pair.1] {
        setup(x, 30);
        for sql in [EXTREMES, SENT, RECEIVED] {
            x.from_sql(sql).unwrap();
        }
    }
    pair
}

/// [`twins`] after transfers `0..checkpointed`, a checkpoint, then transfers up to
/// `then`.
fn checkpointed_twins(dir: &Path, checkpointed: i64, then: i64) -> (Engine, Engine) {
    let (e, reference) = twins(dir);
    transfers([&e, &reference], 0..checkpointed);
    e.checkpoint().unwrap();
    transfers([&e, &reference], checkpointed..then);
    (e, reference)
}

#[test]
fn a_restart_takes_the_views_state_from_the_checkpoint_then_the_log_after_it() {
    let dir = TempDir::new("durable-states");
    let reference = {
        // After the checkpoint: updates, inserts and deletions, copies in a bag.
        let (e, reference) = checkpointed_twins(&dir.0, 300, 450);
        for x in [&e, &reference] {
            x.execute(
                "INSERT INTO note VALUES ('a'); INSERT INTO note VALUES ('a'); INSERT INTO note VALUES ('b');
                 INSERT INTO acct VALUES (100, 'o9', 7)",
            )
            .unwrap();
            let gone = (0..40).map(|i| Change::delete("transfer", RowData::Named(vec![("id".into(), Value::Int(i))])));
            x.apply(gone.chain([Change::delete("note", vec![Value::text("b")])])).unwrap();
        }
        same_as(&e, &reference);
        // Dropped, not closed: no checkpoint at the end (closing writes one only past
        // megabytes of log anyway).
        drop(e);
        reference
    };
    for round in 0..2 {
        let e = Engine::in_memory_durable(&dir.0).unwrap();
        // The aggregates of TOTAL, PER_OWNER, MOVED, EXTREMES, SENT and RECEIVED:
        // from the checkpoint.
        assert_eq!(e.stats().restored_nodes, 6, "round {round}");
        same_as(&e, &reference);
        // It goes on from there, and the log it replayed is not recorded twice.
        transfers([&e, &reference], 1000 + 100 * round..1100 + 100 * round);
        same_as(&e, &reference);
        e.close();
    }
}

#[test]
fn a_table_made_after_the_checkpoint_makes_the_restart_compute_the_views() {
    let dir = TempDir::new("durable-states-made");
    let reference = {
        let (e, reference) = checkpointed_twins(&dir.0, 100, 150);
        for x in [&e, &reference] {
            x.execute("CREATE TABLE later (x INTEGER); INSERT INTO later VALUES (1)").unwrap();
        }
        e.close();
        reference
    };
    let e = Engine::in_memory_durable(&dir.0).unwrap();
    assert_eq!(e.stats().restored_nodes, 0, "the states were of the tables the checkpoint held");
    same_as(&e, &reference);
    assert_eq!(e.database().table_rows("later").unwrap().len(), 1);
}

fn last_log(dir: &Path) -> PathBuf {
    let mut logs: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|f| f.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with("log-"))
        .collect();
    logs.sort();
    logs.pop().unwrap()
}

#[test]
fn a_record_cut_short_is_dropped_and_damage_is_refused_by_name() {
    let dir = TempDir::new("durable-damage");
    let expected = {
        let e = Engine::in_memory_durable(&dir.0).unwrap();
        setup(&e, 10);
        for i in 0..20 {
            transfer(&e, i, i % 10, (i + 1) % 10, 1).unwrap();
        }
        let all = everything(&e);
        e.close();
        all
    };
    // A crash in the middle of writing the next commit: bytes of a record, cut short.
    let log = last_log(&dir.0);
    let good = std::fs::read(&log).unwrap();
    let mut torn = good.clone();
    let len: u32 = 500;
    torn.extend_from_slice(&len.to_le_bytes());
    torn.extend_from_slice(&(!len).to_le_bytes());
    torn.extend_from_slice(&[0xAB; 40]);
    std::fs::write(&log, &torn).unwrap();
    {
        let e = Engine::in_memory_durable(&dir.0).unwrap();
        assert_eq!(everything(&e), expected);
        e.close();
    }
    assert_eq!(std::fs::read(&log).unwrap(), good, "the partial record is cut off");

    // A flipped byte in the middle of the log: refused, naming the file.
    let mut damaged = good.clone();
    let at = damaged.len() / 2;
    damaged[at] ^= 0x55;
    std::fs::write(&log, &damaged).unwrap();
    let err = Engine::in_memory_durable(&dir.0).unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, ciuf::Error::State { .. }), "{err:?}");
    assert!(message.contains("is damaged") && message.contains(&log.display().to_string()), "{message}");
    assert!(message.contains("delete the directory"), "{message}");
    assert_eq!(std::fs::read(&log).unwrap(), damaged, "a damaged log is left as it is");

    // Another format version: refused.
    std::fs::write(&log, &good).unwrap();
    std::fs::write(dir.0.join("FORMAT"), "ciuf state directory, format 99\n").unwrap();
    let err = Engine::in_memory_durable(&dir.0).unwrap_err().to_string();
    assert!(err.contains("format 99") && err.contains("cannot read"), "{err}");
    std::fs::write(dir.0.join("FORMAT"), format!("{}\n", ciuf::connectors::store::FORMAT)).unwrap();

    // In use by another engine: refused; free again once it is dropped.
    let first = Engine::in_memory_durable(&dir.0).unwrap();
    let err = Engine::in_memory_durable(&dir.0).unwrap_err().to_string();
    assert!(err.contains("in use"), "{err}");
    assert!(ciuf::drop_state(&dir.0).unwrap_err().to_string().contains("in use"));
    first.close();
    drop(first);
    ciuf::drop_state(&dir.0).unwrap();
    assert!(!dir.0.exists());
}

/// How many kill-and-restart rounds the crash test runs (`CIUF_LONG=1`: 50).
fn rounds() -> usize {
    if std::env::var_os("CIUF_LONG").is_some() { 50 } else { 5 }
}

/// The writer a crash test kills: opens the engine in `CIUF_CRASH_DIR`, carries on the
/// transfers from the last one it holds, and prints each transfer's id once `apply`
/// returned (once it is durable).
#[test]
#[ignore = "the child process of a_writer_killed_at_any_moment_loses_nothing_acknowledged"]
fn crash_writer() {
    let dir = std::env::var("CIUF_CRASH_DIR").expect("run by the crash test, with CIUF_CRASH_DIR set");
    let grouped = std::env::var_os("CIUF_CRASH_GROUPED").is_some();
    let options = OpenOptions {
        state_dir: Some(dir.into()),
        durability: if grouped { Durability::Grouped(Duration::from_millis(3)) } else { Durability::Sync },
        // A checkpoint every hundred transfers or so: kills land during them, and
        // restarts take the views' state from them.
        checkpoint_floor: 8 << 10,
        ..OpenOptions::default()
    };
    let e = Engine::open_with("memory:", options).unwrap();
    if e.database().table_names().is_empty() {
        setup(&e, 30);
    }
    let mut next = e
        .database()
        .table_rows("transfer")
        .unwrap()
        .iter()
        .filter_map(|r| r.get(0).as_i64())
        .max()
        .map_or(0, |m| m + 1);
    let out = std::io::stdout();
    loop {
        transfer(&e, next, next % 30, (next * 11 + 5) % 30, next % 17 + 1).unwrap();
        if grouped && next % 50 == 0 {
            e.sync().unwrap();
        }
        use std::io::Write;
        let mut lock = out.lock();
        writeln!(lock, "ack {}", if grouped { e.durable_txn().1 as i64 } else { next }).unwrap();
        lock.flush().unwrap();
        next += 1;
    }
}

/// The number an `ack N` line of the writer acknowledges.
fn ack(line: &str) -> Option<i64> {
    // The test harness may print its "test crash_writer ... " before the first.
    line[line.rfind("ack ")? + 4..].trim().parse().ok()
}

fn crash_rounds(tag: &str, grouped: bool) {
    let dir = TempDir::new(&format!("durable-{tag}"));
    let exe = std::env::current_exe().unwrap();
    let mut seed = 0x9E37_79B9_7F4A_7C15u64 ^ u64::from(std::process::id());
    let mut acknowledged: i64 = -1;
    let mut restored = 0;
    let mut from_states = 0;
    for round in 0..rounds() {
        let mut child = Command::new(&exe)
            .args(["--exact", "crash_writer", "--ignored", "--nocapture", "--test-threads=1"])
            .env("CIUF_CRASH_DIR", &dir.0)
            .env_remove("CIUF_CRASH_GROUPED")
            .envs(grouped.then_some(("CIUF_CRASH_GROUPED", "1")))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Kill it after a random number of acknowledged transfers (some rounds
        // during start-up, before the first).
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let wait = (seed >> 40) % 400;
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let started = Instant::now();
        let mut seen = 0;
        while seen < wait && started.elapsed() < Duration::from_secs(60) {
            match lines.next() {
                Some(Ok(l)) => {
                    if let Some(n) = ack(&l) {
                        acknowledged = acknowledged.max(n);
                        seen += 1;
                    }
                }
                _ => break,
            }
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        // Lines printed before the kill landed are acknowledged too.
        for l in lines.map_while(Result::ok) {
            acknowledged = acknowledged.max(ack(&l).unwrap_or(-1));
        }

        let e = Engine::open_with("memory:", OpenOptions { state_dir: Some(dir.0.clone()), ..OpenOptions::default() });
        let e = e.unwrap_or_else(|err| panic!("round {round}: {err}"));
        if e.database().table_names().is_empty() {
            assert_eq!(acknowledged, -1, "round {round}: the schema was acknowledged, then lost");
            continue;
        }
        let ids: Vec<i64> =
            sorted(e.database().table_rows("transfer").unwrap()).iter().map(|r| r[0].as_i64().unwrap()).collect();
        // Nothing applied twice, nothing skipped: the transfers are 0..n.
        assert_eq!(ids, (0..ids.len() as i64).collect::<Vec<_>>(), "round {round}");
        if grouped {
            assert!(e.durable_txn().0 as i64 >= acknowledged, "round {round}: durable transaction lost");
        } else {
            assert!(
                ids.len() as i64 > acknowledged,
                "round {round}: transfer {acknowledged} was acknowledged, then lost"
            );
        }
        // The invariant, and every view equal to its query over the restored tables.
        let total = view_rows(&e.view("total").unwrap());
        assert_eq!(total, vec![vec![Value::Int(30_000), Value::Int(30)]], "round {round}");
        let fresh = Engine::in_memory();
        fresh.execute(SCHEMA).unwrap();
        for t in ["acct", "transfer", "note"] {
            fresh.apply(e.database().table_rows(t).unwrap().into_iter().map(|r| Change::insert(t, r))).unwrap();
        }
        for (sql, view) in [(PER_OWNER, e.view("per_owner").unwrap()), (MOVED, e.from_sql(MOVED).unwrap())] {
            assert_eq!(view_rows(&view), view_rows(&fresh.from_sql(sql).unwrap()), "round {round}: {sql}");
        }
        from_states += usize::from(e.stats().restored_nodes > 0);
        e.close();
        restored += 1;
    }
    assert!(restored >= rounds() - 1 && acknowledged > 0, "the writer ran: {restored} restarts, {acknowledged}");
    if acknowledged >= 400 {
        assert!(from_states > 0, "no restart of {restored} took the views' state from a checkpoint");
    }
}

#[test]
fn a_writer_killed_at_any_moment_loses_nothing_acknowledged() {
    crash_rounds("crash-sync", false);
}

#[test]
fn a_grouped_writer_killed_at_any_moment_loses_nothing_durable() {
    crash_rounds("crash-grouped", true);
}

#[test]
fn a_full_disk_refuses_the_transaction_and_writing_resumes_when_space_returns() {
    let dir = TempDir::new("durable-full");
    let e = Engine::in_memory_durable(&dir.0).unwrap();
    setup(&e, 10);
    let total = e.view("total").unwrap();
    let before = everything(&e);
    let state = e.state_handle().unwrap();
    // The disk fills up in the middle of the next commit's record.
    state.limit_space(Some(20));
    let err = transfer(&e, 0, 1, 2, 5).unwrap_err();
    assert!(matches!(err, ciuf::Error::State { retryable: true, .. }), "{err:?}");
    assert!(err.to_string().contains("No space left"), "{err}");
    assert_eq!(everything(&e), before, "the refused transaction changed nothing");
    assert!(e.create_view("more", "SELECT COUNT(*) FROM note").is_err(), "nor can a view be recorded");
    assert!(e.view("more").is_none());
    // Space again: the engine carries on, and a restart holds exactly what was kept.
    state.limit_space(None);
    transfer(&e, 0, 1, 2, 5).unwrap();
    assert_eq!(view_rows(&total), vec![vec![Value::Int(10_000), Value::Int(10)]]);
    let expected = everything(&e);
    e.close();
    drop((e, total, state));
    let e = Engine::in_memory_durable(&dir.0).unwrap();
    assert_eq!(everything(&e), expected);
    assert!(e.view("more").is_none());
}

#[test]
fn a_damaged_or_cut_checkpoint_is_refused() {
    let dir = TempDir::new("durable-ckpt");
    let options =
        || OpenOptions { state_dir: Some(dir.0.clone()), checkpoint_floor: 4 << 10, ..OpenOptions::default() };
    {
        let e = Engine::open_with("memory:", options()).unwrap();
        setup(&e, 40);
        for i in 0..400 {
            transfer(&e, i, i % 40, (i + 3) % 40, 1).unwrap();
        }
        e.close();
    }
    let checkpoint = std::fs::read_dir(&dir.0)
        .unwrap()
        .map(|f| f.unwrap().path())
        .find(|p| p.file_name().unwrap().to_str().unwrap().starts_with("checkpoint-"))
        .expect("a checkpoint was written");
    let good = std::fs::read(&checkpoint).unwrap();
    for (what, bytes) in [
        ("cut", good[..good.len() * 2 / 3].to_vec()),
        ("flipped", {
            let mut b = good.clone();
            let at = b.len() / 3;
            b[at] ^= 0x01;
            b
        }),
    ] {
        std::fs::write(&checkpoint, &bytes).unwrap();
        let err = Engine::open_with("memory:", options()).unwrap_err().to_string();
        assert!(err.contains("is damaged") && err.contains(&checkpoint.display().to_string()), "{what}: {err}");
    }
    std::fs::write(&checkpoint, &good).unwrap();
    Engine::open_with("memory:", options()).unwrap();
}
