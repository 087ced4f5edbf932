//! The SQLite source where a follower could lose rows: a follower paused long enough
//! for the others to presume it gone and delete the log past it; SQLite's REPLACE,
//! which deletes rows without firing a delete trigger; the file replaced or deleted
//! under a follower. In each, the views must end equal to the file: nothing lost,
//! nothing applied twice, and what cannot be followed said plainly.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ciuf::{Engine, View};
use common::crash::TempDir;
use rusqlite::Connection;

fn connect(path: &std::path::Path) -> Connection {
    let c = Connection::open(path).unwrap();
    c.busy_timeout(Duration::from_secs(10)).unwrap();
    c
}

/// (count, sum) of `ev` as SQLite has it.
fn file_totals(c: &Connection) -> (i64, i64) {
    c.query_row("SELECT count(*), coalesce(sum(v), 0) FROM ev", [], |r| Ok((r.get(0)?, r.get(1)?))).unwrap()
}

fn view_totals(v: &View) -> Option<(i64, i64)> {
    let rows = v.rows().ok()?;
    let r = rows.first()?;
    Some((r.get(0).as_i64()?, r.get(1).as_i64().unwrap_or(0)))
}

/// Waits until `f` holds, or fails with `what`.
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill").args([sig, &pid.to_string()]).status().unwrap().success();
    assert!(ok, "kill {sig} {pid}");
}

/// A follower in another process (`ciuf watch`) is stopped (SIGSTOP) while the writer
/// goes on; meanwhile its position is aged as if it had been gone a minute, so the
/// live follower drops it and deletes the log past it. Resumed, it must notice the
/// hole and read the table again: its view ends equal to the file.
#[test]
fn a_follower_paused_past_the_trimmed_log_resyncs_instead_of_losing_rows() {
    let dir = TempDir::new("sqlite-faults-paused");
    let path = dir.0.join("app.db");
    let writer = connect(&path);
    writer
        .execute_batch(
            "PRAGMA journal_mode = WAL; CREATE TABLE ev (id INTEGER PRIMARY KEY, v INTEGER NOT NULL);
             INSERT INTO ev VALUES (1, 10), (2, 20);",
        )
        .unwrap();
    let url = format!("sqlite://{}", path.display());
    let mut child = Command::new(env!("CARGO_BIN_EXE_ciuf"))
        .args(["watch", &url, "SELECT count(*) AS n, sum(v) AS s FROM ev", "--format", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, lines) = mpsc::channel::<String>();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // The watch's latest (n, s), from its JSON lines ("row" first, then "+" rows).
    let mut latest: Option<(i64, i64)> = None;
    let read_lines = |latest: &mut Option<(i64, i64)>, wait: Duration| {
        while let Ok(line) = lines.recv_timeout(wait) {
            if line.contains(r#""op":"row""#) || line.contains(r#""op":"+""#) {
                let num = |key: &str| {
                    let at = line.find(key).unwrap() + key.len();
                    line[at..].split([',', '}']).next().unwrap().parse::<i64>().unwrap_or(0)
                };
                *latest = Some((num(r#""n":"#), num(r#""s":"#)));
            }
        }
    };
    let engine = Engine::open(&url).unwrap();
    let ours = engine.from_sql("SELECT count(*), sum(v) FROM ev").unwrap();
    eventually("the watch's first rows", || {
        read_lines(&mut latest, Duration::from_millis(50));
        latest == Some((2, 30))
    });
    eventually("two followers registered", || {
        writer.query_row("SELECT count(*) FROM _ciuf_readers", [], |r| r.get::<_, i64>(0)).unwrap() == 2
    });

    signal(child.id(), "-STOP");
    // Inserts and updates while it is stopped; its position aged past the timeout.
    for i in 3..200 {
        writer.execute("INSERT INTO ev VALUES (?1, ?2)", [i, i % 7]).unwrap();
        if i % 5 == 0 {
            writer.execute("UPDATE ev SET v = v + 1 WHERE id = ?1", [i / 5]).unwrap();
        }
    }
    let ours_pos = || engine.source_status().unwrap().position.parse::<i64>().unwrap();
    writer.execute("UPDATE _ciuf_readers SET beat = 0 WHERE pos < ?1", [ours_pos()]).unwrap();
    eventually("the live follower to drop the stopped one and trim past it", || {
        let readers: i64 = writer.query_row("SELECT count(*) FROM _ciuf_readers", [], |r| r.get(0)).unwrap();
        let left: i64 = writer.query_row("SELECT count(*) FROM _ciuf_log", [], |r| r.get(0)).unwrap();
        readers == 1 && left == 0
    });
    assert_eq!(view_totals(&ours), Some(file_totals(&writer)));
    signal(child.id(), "-CONT");
    writer.execute("INSERT INTO ev VALUES (1000, 1)", []).unwrap();
    let expected = file_totals(&writer);
    eventually("the resumed follower to equal the file", || {
        read_lines(&mut latest, Duration::from_millis(50));
        latest == Some(expected)
    });
    eventually("the live one too", || view_totals(&ours) == Some(expected));
    let _ = child.kill();
    let _ = child.wait();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(!err.contains("error"), "the watch reported: {err}");
    engine.close();
}

/// SQLite's REPLACE deletes the row it displaces without a delete trigger: the
/// follower takes an insert (or update) that meets an existing key as that deletion.
#[test]
fn replace_is_followed_as_the_deletion_it_makes() {
    let dir = TempDir::new("sqlite-faults-replace");
    let path = dir.0.join("app.db");
    let writer = connect(&path);
    writer
        .execute_batch(
            "CREATE TABLE ev (id INTEGER PRIMARY KEY, v INTEGER NOT NULL); INSERT INTO ev VALUES (1, 10), (2, 20), (3, 30);",
        )
        .unwrap();
    let engine = Engine::open(&format!("sqlite://{}", path.display())).unwrap();
    let totals = engine.from_sql("SELECT count(*), sum(v) FROM ev").unwrap();
    let rows = engine.from_sql("SELECT id, v FROM ev").unwrap();
    for sql in [
        "INSERT OR REPLACE INTO ev VALUES (1, 11)",
        "REPLACE INTO ev VALUES (2, 22), (4, 40)",
        "UPDATE OR REPLACE ev SET id = 3 WHERE id = 4",
        "BEGIN; INSERT OR REPLACE INTO ev VALUES (5, 5); INSERT OR REPLACE INTO ev VALUES (5, 6); COMMIT",
        "INSERT OR IGNORE INTO ev VALUES (1, 99)",
    ] {
        writer.execute_batch(sql).unwrap();
        let expected = file_totals(&writer);
        eventually(sql, || view_totals(&totals) == Some(expected));
        let mut ours: Vec<(i64, i64)> =
            rows.rows().unwrap().iter().map(|r| (r.get(0).as_i64().unwrap(), r.get(1).as_i64().unwrap())).collect();
        ours.sort_unstable();
        let mut stmt = writer.prepare("SELECT id, v FROM ev ORDER BY id").unwrap();
        let theirs: Vec<(i64, i64)> =
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(Result::unwrap).collect();
        assert_eq!(ours, theirs, "after {sql}");
    }
    assert!(engine.source_status().unwrap().error.is_none());
    engine.close();
}

/// Another file moved to the path is followed from a fresh read; the file deleted is
/// reported, and the views keep what they saw.
#[test]
fn a_replaced_file_is_followed_anew_and_a_deleted_one_is_reported() {
    let dir = TempDir::new("sqlite-faults-replaced");
    let path = dir.0.join("app.db");
    let writer = connect(&path);
    writer
        .execute_batch("CREATE TABLE ev (id INTEGER PRIMARY KEY, v INTEGER NOT NULL); INSERT INTO ev VALUES (1, 10);")
        .unwrap();
    let engine = Engine::open(&format!("sqlite://{}", path.display())).unwrap();
    let totals = engine.from_sql("SELECT count(*), sum(v) FROM ev").unwrap();
    assert_eq!(view_totals(&totals), Some((1, 10)));
    drop(writer);

    // A restored backup, say: other rows, no capture yet.
    let other = dir.0.join("restored.db");
    let c = connect(&other);
    c.execute_batch(
        "CREATE TABLE ev (id INTEGER PRIMARY KEY, v INTEGER NOT NULL); INSERT INTO ev VALUES (7, 1), (8, 2);",
    )
    .unwrap();
    drop(c);
    std::fs::rename(&other, &path).unwrap();
    eventually("the replacing file's rows", || view_totals(&totals) == Some((2, 3)));
    let status = engine.source_status().unwrap();
    assert!(status.streaming && status.error.is_none() && status.resyncs >= 1, "{status:?}");
    let writer = connect(&path);
    writer.execute("INSERT INTO ev VALUES (9, 3)", []).unwrap();
    eventually("a write to the new file", || view_totals(&totals) == Some((3, 6)));
    drop(writer);

    std::fs::remove_file(&path).unwrap();
    eventually("the deletion reported", || {
        let s = engine.source_status().unwrap();
        !s.streaming && s.error.as_deref().is_some_and(|e| e.contains("was deleted"))
    });
    assert_eq!(view_totals(&totals), Some((3, 6)), "the views keep what they saw");
    engine.close();
}

#[test]
fn an_error_while_following_is_never_reported_beside_streaming() {
    let dir = TempDir::new("sqlite-faults-error");
    let path = dir.0.join("app.db");
    let writer = connect(&path);
    writer
        .execute_batch("CREATE TABLE ev (id INTEGER PRIMARY KEY, v INTEGER NOT NULL); INSERT INTO ev VALUES (1, 10);")
        .unwrap();
    let engine = Engine::open(&format!("sqlite://{}", path.display())).unwrap();
    let totals = engine.from_sql("SELECT count(*), sum(v) FROM ev").unwrap();
    assert!(engine.source_status().unwrap().streaming);
    writer.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();

    // The file's header overwritten in place (same file, now unreadable): reported,
    // and for as long as it lasts.
    let header = {
        use std::io::{Read, Seek, Write};
        let mut f = std::fs::OpenOptions::new().read(true).write(true).open(&path).unwrap();
        let mut header = [0u8; 100];
        f.read_exact(&mut header).unwrap();
        f.seek(std::io::SeekFrom::Start(0)).unwrap();
        f.write_all(&[0u8; 100]).unwrap();
        f.sync_all().unwrap();
        header
    };
    eventually("the error reported", || engine.source_status().unwrap().error.is_some());
    std::thread::sleep(Duration::from_millis(500));
    let s = engine.source_status().unwrap();
    assert!(!s.streaming && s.error.is_some(), "{s:?}");
    assert_eq!(view_totals(&totals), Some((1, 10)), "the views keep what they saw");

    // Put back: streaming again, and what is written next arrives.
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.write_all(&header).unwrap();
        f.sync_all().unwrap();
    }
    writer.execute_batch("INSERT INTO ev VALUES (2, 5)").unwrap();
    eventually("the follower back", || {
        let s = engine.source_status().unwrap();
        s.streaming && s.error.is_none() && view_totals(&totals) == Some((2, 15))
    });

    // The change log dropped: its tables can no longer be followed, and their views
    // say so (rather than showing rows the file no longer has a record of changing).
    writer.execute_batch("DROP TABLE _ciuf_log").unwrap();
    eventually("the view failed", || totals.rows().is_err());
    let err = totals.rows().unwrap_err().to_string();
    assert!(err.contains("change capture was removed"), "{err}");
    engine.close();
}
