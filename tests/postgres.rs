//! The PostgreSQL source end to end, against a server the test starts: a consistent
//! snapshot, then transactions from a second connection streamed in; after every commit
//! every view equals the same query run on PostgreSQL.

mod common;

use std::time::{Duration, Instant};

use ciuf::{Engine, Value, View};
use common::Rng;
use common::pg::PgServer;

const SCHEMA: &str = "
    CREATE TABLE customers (id bigint PRIMARY KEY, name text, region text);
    CREATE TABLE products (id bigint PRIMARY KEY, name text, category text, price double precision);
    CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint, product_id bigint,
                         amount numeric(12,2), status varchar(10), note text, day date);
    CREATE TABLE events (kind text, n integer);
    ALTER TABLE events REPLICA IDENTITY FULL;
    CREATE TABLE marker (id bigint PRIMARY KEY);
    INSERT INTO marker VALUES (0);
";

const VIEWS: &[&str] = &[
    "SELECT id, customer_id, amount FROM orders WHERE status = 'paid' AND amount > 50",
    "SELECT o.id, o.amount, p.name, p.category FROM orders o JOIN products p ON o.product_id = p.id WHERE p.category = 'c1'",
    "SELECT customer_id, COUNT(*) AS n, SUM(amount) AS total FROM orders WHERE status <> 'refunded' GROUP BY customer_id",
    "SELECT c.region, p.category, COUNT(*) AS n, SUM(o.amount) AS revenue FROM orders o \
     JOIN customers c ON o.customer_id = c.id JOIN products p ON o.product_id = p.id GROUP BY c.region, p.category",
    "SELECT id, customer_id, amount FROM orders WHERE status = 'paid' ORDER BY amount DESC, id LIMIT 10",
    "SELECT c.name, o.id, LENGTH(o.note) AS note_len FROM customers c LEFT JOIN orders o ON o.customer_id = c.id",
    "SELECT kind, COUNT(*) AS n, SUM(n) AS total FROM events GROUP BY kind",
    "SELECT id, day, note IS NULL AS no_note FROM orders WHERE day >= DATE '2024-01-10'",
    "SELECT c.id, c.name FROM customers c \
     WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.id AND o.status = 'refunded' AND o.amount > 150)",
    "SELECT o.id, (SELECT p.name FROM products p WHERE p.id = o.product_id), \
     (SELECT COUNT(*) FROM orders o2 WHERE o2.customer_id = o.customer_id AND o2.amount > o.amount) FROM orders o",
    "SELECT customer_id FROM orders EXCEPT ALL SELECT id FROM customers WHERE region = 'r1'",
    "SELECT customer_id FROM orders INTERSECT ALL SELECT product_id FROM orders WHERE amount > 100",
    "SELECT kind FROM events UNION SELECT name FROM products INTERSECT SELECT category FROM products",
];

/// A value as text that compares equal across the two systems: numbers rounded.
fn norm(text: Option<&str>) -> String {
    match text {
        None => "NULL".into(),
        Some(t) => match t.parse::<f64>() {
            Ok(f) if !t.is_empty() => format!("{:.4}", f),
            _ => match t {
                "t" | "true" => "true".into(),
                "f" | "false" => "false".into(),
                _ => t.to_string(),
            },
        },
    }
}

fn engine_text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::Text(s) => Some(s.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Date(d) => Some(ciuf::core::datetime::format_date(*d)),
        Value::Timestamp(t) => Some(ciuf::core::datetime::format_timestamp(*t)),
        other => Some(other.to_string()),
    }
}

fn view_rows(view: &View) -> Vec<Vec<String>> {
    view.rows().unwrap().iter().map(|r| r.iter().map(|v| norm(engine_text(&v).as_deref())).collect()).collect()
}

fn pg_rows(client: &mut postgres::Client, sql: &str) -> Vec<Vec<String>> {
    client
        .simple_query(sql)
        .unwrap()
        .into_iter()
        .filter_map(|m| match m {
            postgres::SimpleQueryMessage::Row(r) => Some((0..r.len()).map(|i| norm(r.get(i))).collect()),
            _ => None,
        })
        .collect()
}

fn assert_views_match(views: &[View], client: &mut postgres::Client, context: &str) {
    for v in views {
        let mut got = view_rows(v);
        let mut want = pg_rows(client, v.sql());
        if !v.sql().contains("ORDER BY") {
            got.sort();
            want.sort();
        }
        assert_eq!(got, want, "{context}: view differs from PostgreSQL: {}", v.sql());
    }
}

/// Waits until the engine has applied the transaction that wrote marker `id`.
fn wait_for_marker(marker: &View, id: i64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let rows = marker.rows().unwrap();
        if rows.first().is_some_and(|r| *r.get(0) == Value::Int(id)) {
            return;
        }
        assert!(Instant::now() < deadline, "the engine did not apply marker {id} within 20 s");
        std::thread::sleep(Duration::from_millis(1));
    }
}

struct Writer {
    client: postgres::Client,
    rng: Rng,
    next_order: i64,
    marker: i64,
    big: String,
}

impl Writer {
    /// One random transaction; returns the marker it wrote if it committed.
    fn transaction(&mut self) -> Option<i64> {
        let mut sql = String::from("BEGIN;");
        let statements = 1 + self.rng.below(4);
        for _ in 0..statements {
            let r = self.rng.below(100);
            let id = 1 + self.rng.below(self.next_order as u64) as i64;
            match r {
                0..=34 => {
                    self.next_order += 1;
                    let note = match self.rng.below(4) {
                        0 => "NULL".to_string(),
                        1 => format!("'{}'", self.big), // TOASTed
                        _ => format!("'note {}'", self.rng.below(100)),
                    };
                    sql += &format!(
                        "INSERT INTO orders VALUES ({}, {}, {}, {}.{:02}, '{}', {note}, DATE '2024-01-01' + {});",
                        self.next_order,
                        self.rng.below(12),
                        self.rng.below(12),
                        self.rng.below(200),
                        self.rng.below(100),
                        ["paid", "pending", "refunded"][self.rng.below(3) as usize],
                        self.rng.below(30)
                    );
                }
                35..=59 => {
                    // A non-key update: the TOASTed note, if any, is not sent (u).
                    sql += &format!(
                        "UPDATE orders SET amount = {}, status = '{}' WHERE id = {id};",
                        self.rng.below(200),
                        ["paid", "pending", "refunded"][self.rng.below(3) as usize]
                    );
                }
                60..=64 => {
                    // A key update: the old key is sent.
                    self.next_order += 1;
                    sql += &format!("UPDATE orders SET id = {} WHERE id = {id};", self.next_order);
                }
                65..=79 => sql += &format!("DELETE FROM orders WHERE id = {id};"),
                80..=89 => {
                    sql += &format!("INSERT INTO events VALUES ('k{}', {});", self.rng.below(3), self.rng.below(10))
                }
                90..=94 => {
                    sql += &format!(
                        "DELETE FROM events WHERE ctid IN (SELECT ctid FROM events WHERE kind = 'k{}' LIMIT 1);",
                        self.rng.below(3)
                    )
                }
                95..=96 => sql += "TRUNCATE events;",
                _ => {
                    sql += &format!(
                        "UPDATE products SET category = 'c{}' WHERE id = {};",
                        self.rng.below(3),
                        self.rng.below(12)
                    )
                }
            }
        }
        if self.rng.below(5) == 0 {
            sql += "ROLLBACK;";
            self.client.batch_execute(&sql).unwrap();
            return None;
        }
        self.marker += 1;
        sql += &format!("UPDATE marker SET id = {};COMMIT;", self.marker);
        self.client.batch_execute(&sql).unwrap();
        Some(self.marker)
    }
}

fn seed(client: &mut postgres::Client) {
    client.batch_execute(SCHEMA).unwrap();
    let mut sql = String::new();
    for i in 0..12 {
        sql += &format!("INSERT INTO customers VALUES ({i}, 'c{i}', 'r{}');", i % 3);
        sql += &format!("INSERT INTO products VALUES ({i}, 'p{i}', 'c{}', {}.5);", i % 3, i);
    }
    for i in 1..=40 {
        sql += &format!(
            "INSERT INTO orders VALUES ({i}, {}, {}, {}.25, '{}', NULL, DATE '2024-01-01' + {});",
            i % 12,
            (i * 7) % 12,
            i * 3,
            ["paid", "pending", "refunded"][i % 3],
            i % 30
        );
    }
    client.batch_execute(&sql).unwrap();
}

#[test]
fn snapshot_then_stream_matches_postgres_after_every_commit() {
    let server = PgServer::start();
    let mut client = server.client();
    seed(&mut client);
    let engine = Engine::open(&server.url()).unwrap_or_else(|e| panic!("{e}\n{}", server.log()));
    let marker = engine.from_sql("SELECT id FROM marker").unwrap();
    let views: Vec<View> = VIEWS.iter().map(|sql| engine.from_sql(sql).unwrap()).collect();
    assert_views_match(&views, &mut client, "after the snapshot");
    let mut writer =
        Writer { client: server.client(), rng: Rng::new(11), next_order: 40, marker: 0, big: "x".repeat(9000) };
    let mut committed = 0;
    for t in 0..150 {
        if let Some(m) = writer.transaction() {
            wait_for_marker(&marker, m);
            assert_views_match(&views, &mut client, &format!("after transaction {t}"));
            committed += 1;
        }
    }
    assert!(committed > 100);
    let sizes: Vec<usize> = views.iter().map(|v| v.len().unwrap()).collect();
    assert!(sizes.iter().all(|&n| n > 0), "every view has rows to compare: {sizes:?}");
    eprintln!("view sizes after the stream: {sizes:?}");
    // A view over a table first named now: snapshotted while the stream runs.
    client
        .batch_execute("CREATE TABLE late (id bigint PRIMARY KEY, v text); INSERT INTO late VALUES (1, 'a'), (2, 'b');")
        .unwrap();
    let late = engine
        .from_sql("SELECT l.v, COUNT(o.id) AS n FROM late l LEFT JOIN orders o ON o.customer_id = l.id GROUP BY l.v")
        .unwrap();
    for _ in 0..20 {
        writer.client.batch_execute("INSERT INTO late VALUES ((SELECT max(id) + 1 FROM late), 'c')").unwrap();
        if let Some(m) = writer.transaction() {
            wait_for_marker(&marker, m);
            assert_views_match(&views, &mut client, "after a late table");
            assert_views_match(std::slice::from_ref(&late), &mut client, "the late table's view");
        }
    }
    // A clean shutdown drops ciuf's slot and publication.
    engine.close();
    let slots = server.psql("shop", "SELECT count(*) FROM pg_replication_slots");
    let pubs = server.psql("shop", "SELECT count(*) FROM pg_publication");
    assert_eq!((slots.as_str(), pubs.as_str()), ("0", "0"), "left behind after close");
}

#[test]
fn clear_errors_for_what_cannot_be_replicated() {
    let server = PgServer::start();
    let mut client = server.client();
    client
        .batch_execute(
            "CREATE TABLE nokey (a int, b text); CREATE TABLE pts (id int PRIMARY KEY, p point); \
             CREATE TABLE secret (id int PRIMARY KEY); REVOKE ALL ON secret FROM app;",
        )
        .unwrap();
    let engine = Engine::open(&server.url()).unwrap();
    let err = engine.from_sql("SELECT a FROM nokey").unwrap_err().to_string();
    assert!(err.contains("no primary key") && err.contains("REPLICA IDENTITY FULL"), "{err}");
    let err = engine.from_sql("SELECT id FROM pts").unwrap_err().to_string();
    assert!(err.contains("pts.p") && err.contains("point"), "{err}");
    let err = engine.from_sql("SELECT id FROM nothere").unwrap_err().to_string();
    assert!(err.contains("unknown table nothere"), "{err}");
    // A wrong password is refused and never printed.
    let bad = server.url().replace(common::pg::PASSWORD, "hunter2");
    let err = Engine::open(&bad).unwrap_err().to_string();
    assert!(err.contains("password authentication failed") && !err.contains("hunter2"), "{err}");
    // A role without REPLICATION.
    server.psql("postgres", "CREATE ROLE plain LOGIN PASSWORD 'pw'");
    let err = Engine::open(&format!("postgresql://plain:pw@127.0.0.1:{}/shop", server.port)).unwrap_err().to_string();
    assert!(err.contains("REPLICATION"), "{err}");
    // Nobody listening.
    let err = Engine::open("postgresql://app:secret@127.0.0.1:1/shop").unwrap_err();
    assert!(err.to_string().contains("cannot reach PostgreSQL at 127.0.0.1:1"), "{err}");
    let err = engine.from_sql("SELECT id FROM secret").unwrap_err().to_string();
    assert!(err.contains("GRANT SELECT"), "{err}");
}

/// Tables named by views while the stream runs are added one after another, each from
/// a temporary slot of its own (the server drops one only after its session ends, so a
/// reused name could still exist).
#[test]
fn tables_added_in_quick_succession_each_get_their_snapshot() {
    let server = PgServer::start();
    let mut client = server.client();
    let mut ddl = String::from("CREATE TABLE marker (id bigint PRIMARY KEY); INSERT INTO marker VALUES (0);");
    for i in 0..8 {
        ddl += &format!("CREATE TABLE t{i} (id bigint PRIMARY KEY, v bigint); INSERT INTO t{i} VALUES (1, {i});");
    }
    client.batch_execute(&ddl).unwrap();
    let engine = Engine::open(&server.url()).unwrap();
    let marker = engine.from_sql("SELECT id FROM marker").unwrap();
    let joined =
        engine.from_sql("SELECT t0.v, t1.v, t2.v FROM t0 JOIN t1 ON t0.id = t1.id JOIN t2 ON t1.id = t2.id").unwrap();
    let views: Vec<View> = (3..8).map(|i| engine.from_sql(&format!("SELECT v FROM t{i}")).unwrap()).collect();
    client.batch_execute("UPDATE t7 SET v = 70; UPDATE marker SET id = 1;").unwrap();
    wait_for_marker(&marker, 1);
    assert_views_match(&[joined], &mut client, "three tables added for one view");
    assert_views_match(&views, &mut client, "tables added one by one");
}

/// A schema-qualified name reads that schema's table, discovered and replicated as any
/// other; a schema that does not exist is an unknown table.
#[test]
fn schema_qualified_tables_are_the_tables_they_name() {
    let server = PgServer::start();
    let mut client = server.client();
    client
        .batch_execute(
            "CREATE TABLE acct (id bigint PRIMARY KEY, balance bigint); INSERT INTO acct VALUES (1, 10), (2, 20);
             CREATE SCHEMA archive; CREATE TABLE archive.acct (id bigint PRIMARY KEY, balance bigint);
             INSERT INTO archive.acct VALUES (1, 1000); GRANT USAGE ON SCHEMA archive TO app;
             GRANT SELECT ON archive.acct TO app; ALTER TABLE archive.acct OWNER TO app;
             CREATE TABLE marker (id bigint PRIMARY KEY); INSERT INTO marker VALUES (0);",
        )
        .unwrap();
    let engine = Engine::open(&server.url()).unwrap();
    let views: Vec<View> = [
        "SELECT SUM(balance) AS total FROM archive.acct",
        "SELECT SUM(balance) AS total FROM acct",
        "SELECT SUM(balance) AS total FROM public.acct",
        "SELECT a.id, a.balance, p.balance FROM archive.acct a JOIN acct p ON a.id = p.id",
        "SELECT acct.id FROM archive.acct",
    ]
    .iter()
    .map(|q| engine.from_sql(q).unwrap_or_else(|e| panic!("{q}: {e}")))
    .collect();
    let marker = engine.from_sql("SELECT id FROM marker").unwrap();
    assert_views_match(&views, &mut client, "after the snapshot");
    client
        .batch_execute(
            "INSERT INTO archive.acct VALUES (2, 2000); UPDATE acct SET balance = 11 WHERE id = 1;
             UPDATE marker SET id = 1;",
        )
        .unwrap();
    wait_for_marker(&marker, 1);
    assert_views_match(&views, &mut client, "after changes to both tables");
    let err = engine.from_sql("SELECT SUM(balance) FROM nosuchschema.acct").unwrap_err().to_string();
    assert!(err.contains("unknown table nosuchschema.acct"), "{err}");
    let err = engine.from_sql("SELECT 1 FROM otherdb.public.acct").unwrap_err().to_string();
    assert!(err.contains("another database"), "{err}");
}

#[test]
fn an_altered_or_dropped_table_fails_its_views_and_the_others_go_on() {
    let server = PgServer::start();
    let mut client = server.client();
    client
        .batch_execute(
            "CREATE TABLE a (id bigint PRIMARY KEY, v text); CREATE TABLE b (id bigint PRIMARY KEY, w text); \
             CREATE TABLE marker (id bigint PRIMARY KEY); INSERT INTO marker VALUES (0); \
             INSERT INTO a VALUES (1, 'x'); INSERT INTO b VALUES (1, 'y');",
        )
        .unwrap();
    let engine = Engine::open(&server.url()).unwrap();
    let marker = engine.from_sql("SELECT id FROM marker").unwrap();
    let on_a = engine.from_sql("SELECT id, v FROM a").unwrap();
    let on_b = engine.from_sql("SELECT id, w FROM b").unwrap();
    let both = engine.from_sql("SELECT a.v, b.w FROM a JOIN b ON a.id = b.id").unwrap();
    client
        .batch_execute("ALTER TABLE a ADD COLUMN extra int; INSERT INTO a VALUES (2, 'z', 5); UPDATE marker SET id = 1")
        .unwrap();
    wait_for_marker(&marker, 1);
    for v in [&on_a, &both] {
        let err = v.query().unwrap_err().to_string();
        assert!(err.contains("table a is no longer followed") && err.contains("extra"), "{err}");
    }
    client.batch_execute("INSERT INTO b VALUES (2, 'q'); UPDATE marker SET id = 2").unwrap();
    wait_for_marker(&marker, 2);
    assert_eq!(on_b.len().unwrap(), 2);
    // A view registered later over the failed table reports it too.
    let err = engine.from_sql("SELECT COUNT(*) FROM a").unwrap().query().unwrap_err().to_string();
    assert!(err.contains("no longer followed"), "{err}");
    // DROP TABLE is not in the stream: the source notices it within seconds.
    client.batch_execute("DROP TABLE b").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match on_b.query() {
            Err(e) if e.to_string().contains("dropped") => break,
            _ => assert!(Instant::now() < deadline, "the dropped table was not noticed"),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    client.batch_execute("UPDATE marker SET id = 3").unwrap();
    wait_for_marker(&marker, 3);
}

#[test]
fn settings_that_prevent_replication_are_named_with_their_fix() {
    let server = PgServer::start_with(&["wal_level=replica"]);
    let err = Engine::open(&server.url()).unwrap_err().to_string();
    assert!(
        err.contains("wal_level = replica") && err.contains("wal_level = logical") && err.contains("restart"),
        "{err}"
    );
    drop(server);
    let server = PgServer::start_with(&["max_replication_slots=1"]);
    server.psql("shop", "SELECT pg_create_logical_replication_slot('taken', 'pgoutput')");
    server.client().batch_execute("CREATE TABLE t (id int PRIMARY KEY)").unwrap();
    let engine = Engine::open(&server.url()).unwrap();
    let err = engine.from_sql("SELECT id FROM t").unwrap_err().to_string();
    assert!(err.contains("replication slot") && err.contains("max_replication_slots"), "{err}");
    assert!(err.contains("NOT active AND slot_name LIKE 'ciuf"), "only ciuf's own slots are named: {err}");
}

/// A role that may replicate and read, but does not own the tables (or may not create
/// in the database), is told what is missing: ownership, or a publication made for it.
#[test]
fn missing_rights_are_named_as_they_are() {
    let server = PgServer::start();
    server.psql(
        "postgres",
        "CREATE ROLE reader LOGIN REPLICATION PASSWORD 'pw'; CREATE ROLE maker LOGIN REPLICATION PASSWORD 'pw'",
    );
    server
        .client()
        .batch_execute(
            "CREATE TABLE owned (id bigint PRIMARY KEY); GRANT SELECT ON owned TO reader;
             CREATE TABLE mine (id bigint PRIMARY KEY);",
        )
        .unwrap();
    server.psql("shop", "ALTER TABLE mine OWNER TO maker");
    let url = |role: &str| format!("postgresql://{role}:pw@127.0.0.1:{}/shop", server.port);
    for (role, table) in [("reader", "owned"), ("maker", "mine")] {
        let engine = Engine::open(&url(role)).unwrap();
        let err = engine.from_sql(&format!("SELECT id FROM {table}")).unwrap_err().to_string();
        assert!(err.contains("CREATE on the database") && err.contains("publication='ciuf'"), "{role}: {err}");
        assert!(!err.contains("grant the role SELECT"), "{err}");
        engine.close();
    }
    server.psql("postgres", "GRANT CREATE ON DATABASE shop TO reader");
    let engine = Engine::open(&url("reader")).unwrap();
    let err = engine.from_sql("SELECT id FROM owned").unwrap_err().to_string();
    assert!(err.contains("owner") && err.contains("publication='ciuf'"), "{err}");
    engine.close();
    // With a publication made for it, the role that may only read follows the table.
    server.client().batch_execute("CREATE PUBLICATION ciuf FOR TABLE owned; INSERT INTO owned VALUES (1);").unwrap();
    let engine = Engine::open_postgres(
        &url("reader"),
        ciuf::connectors::postgres::PostgresOptions { slot: None, publication: Some("ciuf".into()) },
    )
    .unwrap();
    assert_eq!(engine.from_sql("SELECT id FROM owned").unwrap().len().unwrap(), 1);
}

/// Every column type the source replicates reads as the same value from the snapshot
/// (COPY, binary where the type allows) as from the stream (pgoutput's text): the
/// same rows, copied before the engine opens and inserted after, must agree exactly,
/// and equal PostgreSQL's own answer.
#[test]
fn every_replicated_type_reads_the_same_from_the_snapshot_and_the_stream() {
    let server = PgServer::start();
    let mut client = server.client();
    client
        .batch_execute(
            "CREATE TABLE marker (id bigint PRIMARY KEY); INSERT INTO marker VALUES (0);
             CREATE TABLE typed (id bigint PRIMARY KEY, b boolean, i2 smallint, i4 integer, i8 bigint, r real,
               d double precision, n numeric(12,3), nu numeric, t text, vc varchar(20), c char(4), nm name, u uuid,
               j json, jb jsonb, by bytea, ch \"char\", dt date, ts timestamp, tz timestamptz);",
        )
        .unwrap();
    const ROWS: [&str; 4] = [
        "true, -32768, -2147483648, -9223372036854775808, 1.1, 0.1, -12345.678, 3.14159265358979, \
         E'a\\tb\\\\c\\nd', 'x', 'ab', 'nm', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{\"k\": [1, 2]}', \
         '{\"k\": [1,   2]}', '\\x00ff5c', 'z', '2024-02-29', '2024-02-29 12:34:56.789', '2024-02-29 12:34:56.789+02'",
        "false, 32767, 2147483647, 9223372036854775807, 'NaN', 'Infinity', 999999999.999, -0.000001, \
         'é€😀', '', 'abcd', '', '00000000-0000-0000-0000-000000000000', 'null', '[]', '', '\\\\', \
         '1970-01-01', '1969-12-31 23:59:59.999999', '2000-01-01 00:00:00+00'",
        "NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, \
         NULL, NULL, NULL",
        "true, 0, 0, 0, '-Infinity', -0.0, 0, 1e-20, '\\N', 'tab\there', ' ', 'x', \
         'ffffffff-ffff-ffff-ffff-ffffffffffff', '\"s\"', '{\"a\": {\"b\": null}}', '\\x', 'A', '2099-12-31', \
         '2099-12-31 23:59:59', '1999-06-15 08:00:00-07:30'",
    ];
    let insert = |client: &mut postgres::Client, offset: i64, marker: i64| {
        let mut sql = String::from("BEGIN;");
        for (i, row) in ROWS.iter().enumerate() {
            sql += &format!("INSERT INTO typed VALUES ({}, {row});", offset + i as i64);
        }
        sql += &format!("UPDATE marker SET id = {marker}; COMMIT;");
        client.batch_execute(&sql).unwrap();
    };
    insert(&mut client, 1, 0);
    let engine = Engine::open(&server.url()).unwrap();
    let marker = engine.from_sql("SELECT id FROM marker").unwrap();
    let columns = "b, i2, i4, i8, r, d, n, nu, t, vc, c, nm, u, j, jb, by, ch, dt, ts, tz";
    let copied = engine.from_sql(&format!("SELECT id, {columns} FROM typed WHERE id < 100")).unwrap();
    let streamed = engine.from_sql(&format!("SELECT id - 100, {columns} FROM typed WHERE id >= 100")).unwrap();
    assert_eq!(copied.rows().unwrap().len(), ROWS.len(), "the snapshot holds every row");
    insert(&mut client, 101, 1);
    wait_for_marker(&marker, 1);
    let exact = |v: &View| {
        let mut rows: Vec<String> = v.rows().unwrap().iter().map(|r| format!("{:?}", r.to_vec())).collect();
        rows.sort();
        rows
    };
    assert_eq!(exact(&copied), exact(&streamed), "a value read from the snapshot differs from the stream's");
    // And both are PostgreSQL's values (the columns whose text is the same in both
    // systems; the others are compared between snapshot and stream above).
    let plain = engine.from_sql("SELECT id, b, i2, i4, i8, d, n, t, vc, u, by, dt FROM typed").unwrap();
    assert_views_match(&[plain], &mut client, "every type");
}
