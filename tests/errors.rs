//! Bad input gets a clear error that names the problem, and changes nothing.

use ciuf::{Change, ConstraintError, Engine, Error, SchemaError, SqlErrorKind, Value};

fn engine() -> Engine {
    with_tables(Engine::in_memory())
}

fn with_tables(e: Engine) -> Engine {
    e.execute(
        "CREATE TABLE orders (id BIGINT PRIMARY KEY, customer_id BIGINT NOT NULL, amount DOUBLE, status TEXT);
         CREATE TABLE tags (name TEXT, n INTEGER)",
    )
    .unwrap();
    e
}

fn sql_error(e: Error) -> ciuf::SqlError {
    match e {
        Error::Sql(s) => s,
        other => panic!("expected an SQL error, got {other:?}"),
    }
}

#[test]
fn unsupported_constructs_are_named_with_their_position() {
    let e = engine();
    let cases = [
        (
            "SELECT id FROM orders o WHERE EXISTS (SELECT n FROM tags WHERE n = o.customer_id GROUP BY n)",
            "EXISTS (subquery) with GROUP BY",
            (1, 39),
        ),
        (
            "SELECT id, (SELECT n FROM tags WHERE n = o.id) FROM orders o",
            "scalar subquery that is neither an aggregate nor a lookup by primary key",
            (1, 13),
        ),
        ("SELECT id,\n  row_number() OVER (ORDER BY id) FROM orders", "window function", (2, 3)),
        ("SELECT id FROM orders\nMINUS SELECT n FROM tags", "MINUS", (1, 1)),
        ("WITH RECURSIVE r AS (SELECT 1) SELECT * FROM r", "WITH RECURSIVE", (1, 1)),
        ("SELECT id FROM orders WHERE amount + $1 > 3", "parameter $1", (1, 38)),
        ("SELECT random() FROM orders", "function random()", (1, 8)),
    ];
    for (sql, construct, (line, column)) in cases {
        let err = sql_error(e.from_sql(sql).unwrap_err());
        assert_eq!(err.kind, SqlErrorKind::Unsupported, "{sql}: {err}");
        assert!(err.message.contains(construct), "{sql}: {err}");
        let p = err.position.unwrap_or_else(|| panic!("{sql}: no position in {err}"));
        assert_eq!((p.line, p.column), (line, column), "{sql}: {err}");
    }
}

#[test]
fn unknown_names_suggest_the_nearest() {
    let e = engine();
    let err = sql_error(e.from_sql("SELECT id FROM order").unwrap_err());
    assert_eq!(err.kind, SqlErrorKind::UnknownTable);
    assert_eq!(err.suggestion.as_deref(), Some("orders"));
    assert_eq!(err.to_string(), "unknown table order at line 1, column 16 (did you mean orders?)");

    let err = sql_error(e.from_sql("SELECT amout FROM orders").unwrap_err());
    assert_eq!(err.kind, SqlErrorKind::UnknownColumn);
    assert_eq!(err.to_string(), "unknown column amout at line 1, column 8 (did you mean amount?)");

    let err = sql_error(e.from_sql("SELECT o.id FROM orders AS o JOIN tags t ON t.nme = o.status").unwrap_err());
    assert_eq!(err.to_string(), "unknown column t.nme at line 1, column 47 (did you mean name?)");

    let err = sql_error(e.from_sql("SELECT x.id FROM orders o").unwrap_err());
    assert_eq!(err.kind, SqlErrorKind::UnknownTable);

    let err = e.on_insert("ordrs", vec![Value::Int(1)]).unwrap_err();
    assert_eq!(err.to_string(), "unknown table ordrs (did you mean orders?)");
    let err = e.on_insert("orders", [("id", Value::Int(1)), ("statuss", Value::text("x"))]).unwrap_err();
    assert_eq!(err.to_string(), "table orders has no column statuss (did you mean status?)");
}

/// A qualified name names a table in that schema; ciuf's in-memory tables are all in
/// SQLite's `main`.
#[test]
fn qualified_names_must_name_a_schema_ciuf_has() {
    let e = engine();
    e.on_insert("tags", vec![Value::text("a"), Value::Int(1)]).unwrap();
    assert_eq!(e.from_sql("SELECT n FROM main.tags").unwrap().len().unwrap(), 1);
    for sql in ["SELECT n FROM archive.tags", "SELECT n FROM a.b.c.d.tags", "SELECT n FROM tags WHERE n IN x.tags"] {
        let err = sql_error(e.from_sql(sql).unwrap_err());
        assert_eq!(err.kind, SqlErrorKind::UnknownTable, "{sql}: {err}");
    }
    let err = e.execute("CREATE TABLE other.t (a INTEGER)").unwrap_err();
    assert!(err.to_string().contains("unknown schema other"), "{err}");
}

/// SQL text of several statements runs all or nothing: a statement that fails takes
/// back the ones before it.
#[test]
fn several_statements_run_all_or_nothing() {
    let e = engine();
    let reader = e.from_sql("SELECT COUNT(*) FROM orders").unwrap();
    let tags = e.from_sql("SELECT name, n FROM tags").unwrap();
    let err = e.execute("INSERT INTO tags VALUES ('x', 5); DROP TABLE orders").unwrap_err();
    assert!(err.to_string().contains("cannot drop table orders"), "{err}");
    assert_eq!(tags.len().unwrap(), 0, "the INSERT before the refused DROP was taken back");
    assert!(reader.rows().is_ok());

    let err = e.execute("CREATE TABLE n (a INTEGER); INSERT INTO n VALUES (1); CREATE VIEW v AS SELECT nope FROM n");
    assert!(err.unwrap_err().to_string().contains("unknown column nope"));
    assert!(e.from_sql("SELECT a FROM n").is_err(), "the table made before the error is gone");

    e.execute("CREATE TABLE keep (a INTEGER PRIMARY KEY, b TEXT); INSERT INTO keep VALUES (1, 'one'), (2, 'two');")
        .unwrap();
    e.execute("CREATE VIEW w AS SELECT a FROM keep WHERE a > 1").unwrap();
    let err = e.execute("DROP VIEW w; INSERT INTO keep (a) VALUES (3); SELECT bogus FROM keep").unwrap_err();
    assert!(err.to_string().contains("unknown column bogus"), "{err}");
    let w = e.view("w").expect("the dropped view is back");
    assert_eq!(w.rows().unwrap().len(), 1, "and the INSERT taken back");
    let err = e.execute("DROP VIEW w; DROP TABLE keep; SELECT bogus FROM tags").unwrap_err();
    assert!(err.to_string().contains("unknown column bogus"), "{err}");
    assert_eq!(e.from_sql("SELECT a, b FROM keep").unwrap().len().unwrap(), 2, "the dropped table is back");
    assert!(e.view("w").is_some());
}

#[test]
fn type_and_meaning_errors_are_clear() {
    // PostgreSQL gives every expression one type and refuses what does not fit it;
    // SQLite types each value and reads text as a number where it must.
    let pg = with_tables(Engine::with_dialect(ciuf::Dialect::Postgres));
    let sqlite = engine();
    let typed = [
        ("SELECT status + 1 FROM orders", "cannot apply + to TEXT and INTEGER"),
        ("SELECT id FROM orders WHERE status", "expected a condition, got TEXT"),
        (
            "SELECT id FROM orders JOIN tags ON name = status WHERE id = n AND id = name",
            "cannot compare BIGINT with TEXT at line 1, column 67",
        ),
    ];
    for (sql, text) in typed {
        let err = pg.from_sql(sql).unwrap_err();
        assert!(err.to_string().contains(text), "{sql}: got {err}");
        sqlite.from_sql(sql).unwrap_or_else(|e| panic!("SQLite's typing takes {sql}: {e}"));
    }
    let e = engine();
    let cases = [
        ("SELECT id FROM orders WHERE created_at > 1", "unknown column created_at"),
        (
            "SELECT customer_id, amount FROM orders GROUP BY customer_id",
            "column amount must appear in the GROUP BY clause",
        ),
        ("SELECT id FROM orders WHERE SUM(amount) > 1", "aggregate function sum() is not allowed here"),
        ("SELECT id FROM orders ORDER BY 3", "position 3 is not in the select list"),
        ("SELECT name FROM tags UNION SELECT id, status FROM orders", "UNION of 1 and 2 columns"),
        ("SELEC id FROM orders", "syntax error"),
    ];
    for (sql, text) in cases {
        let err = e.from_sql(sql).unwrap_err();
        assert!(err.to_string().contains(text), "{sql}: got {err}");
    }
}

#[test]
fn bad_changes_are_refused_with_the_reason() {
    let e = engine();
    e.on_insert("orders", vec![Value::Int(1), Value::Int(7), Value::Float(10.0), Value::text("paid")]).unwrap();
    let check = |r: ciuf::Result<()>, expected: &str| {
        let err = r.unwrap_err();
        assert_eq!(err.to_string(), expected);
    };
    check(
        e.on_insert("orders", vec![Value::Int(1), Value::Int(7), Value::Float(1.0), Value::Null]),
        "duplicate primary key in orders: id = 1 already exists",
    );
    check(
        e.on_insert("orders", vec![Value::Int(2), Value::Int(7), Value::text("ten"), Value::Null]),
        "column orders.amount is DOUBLE: got TEXT 'ten'",
    );
    check(
        e.on_insert("orders", vec![Value::Int(2), Value::Int(7)]),
        "table orders has 4 columns but the row has 2 values",
    );
    check(
        e.on_insert("orders", [("id", Value::Int(3)), ("amount", Value::Float(1.0))]),
        "column orders.customer_id is NOT NULL but the row has NULL",
    );
    // Under PostgreSQL's rules INTEGER is 32 bits (SQLite's keeps any 64-bit integer).
    let pg = Engine::with_dialect(ciuf::Dialect::Postgres);
    pg.execute("CREATE TABLE tags (name TEXT, n INTEGER)").unwrap();
    check(
        pg.on_insert("tags", vec![Value::text("a"), Value::Int(1 << 40)]),
        "column tags.n is INTEGER: 1099511627776 is out of range for INTEGER",
    );
    e.on_insert("tags", vec![Value::text("big"), Value::Int(1 << 40)]).unwrap();
    e.on_delete("tags", vec![Value::text("big"), Value::Int(1 << 40)]).unwrap();
    check(e.on_delete("orders", [("id", 9)]), "delete on orders: no row with id = 9");
    check(
        e.on_update_by_key("orders", [("id", Value::Int(9)), ("amount", Value::Float(2.0))]),
        "update on orders: no row with id = 9",
    );
    check(e.on_delete("tags", vec![Value::text("zz"), Value::Int(1)]), "delete on tags: no row ('zz', 1)");
    check(
        e.on_update_by_key("tags", vec![Value::text("zz"), Value::Int(1)]),
        "table tags has no primary key: update needs the whole old row",
    );
    check(e.on_delete("orders", [("amount", 10.0)]), "delete on orders needs column id");
    assert!(matches!(
        e.on_delete("orders", [("id", 9)]).unwrap_err(),
        Error::Constraint(ConstraintError::RowNotFound { .. })
    ));
    assert!(matches!(
        e.on_insert("orders", vec![Value::Int(2)]).unwrap_err(),
        Error::Schema(SchemaError::Arity { .. })
    ));
    // Nothing of the above landed.
    assert_eq!(e.database().table_rows("orders").unwrap().len(), 1);
    assert_eq!(e.database().table_rows("tags").unwrap().len(), 0);
}

#[test]
fn a_refused_transaction_leaves_every_table_and_view_as_before() {
    let e = engine();
    let totals = e.from_sql("SELECT customer_id, COUNT(*), SUM(amount) FROM orders GROUP BY customer_id").unwrap();
    let joined = e.from_sql("SELECT o.id, t.name FROM orders o LEFT JOIN tags t ON t.n = o.customer_id").unwrap();
    let top = e.from_sql("SELECT id, amount FROM orders ORDER BY amount DESC, id LIMIT 2").unwrap();
    e.apply([
        Change::insert("orders", vec![Value::Int(1), Value::Int(7), Value::Float(10.0), Value::text("paid")]),
        Change::insert("orders", vec![Value::Int(2), Value::Int(8), Value::Float(20.0), Value::text("paid")]),
        Change::insert("tags", vec![Value::text("vip"), Value::Int(7)]),
    ])
    .unwrap();
    let snapshot = |e: &Engine| {
        (
            e.database().table_rows("orders").unwrap(),
            e.database().table_rows("tags").unwrap(),
            totals.rows().unwrap(),
            joined.rows().unwrap(),
            top.rows().unwrap(),
            (totals.version().unwrap(), joined.version().unwrap(), top.version().unwrap()),
        )
    };
    let before = snapshot(&e);
    // Valid changes to every table first (an update, a delete, inserts), then one bad
    // change: all of it must be undone.
    let bad_changes = [
        Change::insert("orders", vec![Value::Int(3), Value::Int(1), Value::Float(1.0), Value::Null]),
        Change::delete("tags", vec![Value::text("nope"), Value::Int(0)]),
        Change::insert("orders", vec![Value::Int(5), Value::text("x"), Value::Float(1.0), Value::Null]),
        Change::update(
            "orders",
            vec![Value::Int(77), Value::Int(1), Value::Float(1.0), Value::Null],
            vec![Value::Int(77), Value::Int(1), Value::Float(2.0), Value::Null],
        ),
    ];
    for bad in bad_changes {
        let err = e.apply([
            Change::update_by_key("orders", [("id", Value::Int(1)), ("amount", Value::Float(99.0))]),
            Change::delete("orders", [("id", 2)]),
            Change::insert("orders", vec![Value::Int(3), Value::Int(7), Value::Float(30.0), Value::Null]),
            Change::insert("tags", vec![Value::text("new"), Value::Int(8)]),
            Change::delete("tags", vec![Value::text("vip"), Value::Int(7)]),
            bad.clone(),
        ]);
        assert!(err.is_err(), "{bad:?} was accepted");
        assert_eq!(snapshot(&e), before, "after refusing {bad:?}");
    }
    // And the engine still works.
    e.on_delete("orders", [("id", 1)]).unwrap();
    assert_eq!(totals.rows().unwrap().len(), 1);
}

#[test]
fn a_run_of_inserts_refused_midway_leaves_nothing_for_the_next_transaction() {
    let e = engine();
    let count = e.from_sql("SELECT COUNT(*), SUM(amount) FROM orders").unwrap();
    let order = |id: i64| Change::insert("orders", vec![Value::Int(id), Value::Int(1), Value::Float(1.0), Value::Null]);
    e.apply([order(1)]).unwrap();
    // A run of inserts into one table (gathered before it is stored) with a duplicate
    // key in the middle, then the same again shorter and longer than a bulk run.
    for len in [10, 200] {
        let mut run: Vec<Change> = (100..100 + len).map(order).collect();
        run.insert(len as usize / 2, order(1));
        assert!(matches!(e.apply(run), Err(Error::Constraint(ConstraintError::DuplicateKey { .. }))));
        assert_eq!(e.database().table_rows("orders").unwrap().len(), 1);
        // The next transaction's run holds its own rows and nothing else.
        e.apply((1_000..1_003).map(order)).unwrap();
        e.apply((1_000..1_003).map(|id| Change::delete("orders", [("id", id)]))).unwrap();
        assert_eq!(e.database().table_rows("orders").unwrap().len(), 1);
    }
    assert_eq!(count.rows().unwrap(), vec![ciuf::row![1, 1.0]]);
}

#[test]
fn bad_statements_change_nothing() {
    let e = engine();
    assert!(e.execute("CREATE TABLE orders (id BIGINT)").is_err());
    assert!(e.execute("CREATE TABLE t (a DECIMAL(40, 2))").is_err());
    assert!(e.execute("CREATE TABLE t (a BIGINT, a TEXT)").is_err());
    assert!(e.execute("CREATE TABLE t (a BIGINT, PRIMARY KEY (b))").is_err());
    assert!(e.execute("CREATE VIEW orders AS SELECT 1").is_err());
    assert_eq!(e.database().table_names(), vec!["orders", "tags"]);
    let err = e.execute("INSERT INTO orders VALUES (1, 2, 3.0, 'a'), (1, 2, 3.0, 'b')").unwrap_err();
    assert!(err.to_string().contains("duplicate primary key"));
    assert!(e.database().table_rows("orders").unwrap().is_empty());
}

#[test]
fn deep_nesting_is_planned_up_to_a_limit_then_refused_clearly() {
    let e = engine();
    // 45 levels of unary minus and parentheses (90 for the parser): planned and
    // maintained on a test thread's stack.
    let deep = format!("SELECT {}amount{} FROM orders", "-(".repeat(45), ")".repeat(45));
    let view = e.from_sql(&deep).unwrap();
    e.on_insert("orders", vec![Value::Int(1), Value::Int(7), Value::Float(2.5), Value::Null]).unwrap();
    assert_eq!(view.rows().unwrap()[0].get(0).clone(), Value::Float(-2.5));
    // Far deeper: a syntax error that says why, not a stack overflow.
    let deeper = format!("SELECT {}1{} FROM orders", "(".repeat(500), ")".repeat(500));
    let err = sql_error(e.from_sql(&deeper).unwrap_err());
    assert_eq!(err.kind, SqlErrorKind::Syntax);
    assert!(err.message.contains("recursion limit"), "{err}");
}

#[test]
fn small_wrong_acceptances_are_refused() {
    let e = engine();
    let refused = [
        ("SELECT FROM orders", "a query needs a select list"),
        ("WITH a AS (SELECT id FROM orders), A AS (SELECT n FROM tags) SELECT * FROM a", "WITH names A twice"),
        ("SELECT id FROM orders TABLESAMPLE SYSTEM (10)", "TABLESAMPLE on orders"),
    ];
    for (sql, text) in refused {
        let err = e.from_sql(sql).map(|_| ()).unwrap_err();
        assert!(err.to_string().contains(text), "{sql}: got {err}");
    }
    // A date with a year of more than four digits is no date: NULL from a cast (as
    // every malformed date is), refused in a row.
    e.execute("CREATE TABLE days (d DATE)").unwrap();
    e.on_insert("tags", vec![Value::text("a"), Value::Int(1)]).unwrap();
    let cast = e.from_sql("SELECT CAST('99999-01-01' AS DATE), CAST('2020-02-03' AS DATE) FROM tags").unwrap();
    let row = cast.rows().unwrap()[0].clone();
    assert_eq!((row.get(0).clone(), row.get(1).is_null()), (Value::Null, false));
    assert!(e.on_insert("days", vec![Value::text("99999-01-01")]).is_err());
    // A refused long identifier is not echoed whole.
    let long = "x".repeat(100_000);
    for sql in [
        format!("SELECT {long} FROM orders"),
        format!("SELECT id FROM {long}"),
        format!("SELECT {long}.id FROM orders"),
        format!("SELECT id FROM orders WHERE {long} {long}"),
    ] {
        let err = e.from_sql(&sql).map(|_| ()).unwrap_err().to_string();
        assert!(err.len() < 400, "{} characters: {}", err.len(), &err[..200]);
        assert!(err.contains("characters)"), "{err}");
    }
    let err = e.on_insert("orders", [(long.as_str(), Value::Int(1))]).unwrap_err().to_string();
    assert!(err.len() < 400, "{err}");
    // One row naming a column twice (names match ignoring case) is ambiguous.
    let err = e
        .on_insert("orders", [("id", Value::Int(1)), ("customer_id", Value::Int(2)), ("ID", Value::Int(3))])
        .unwrap_err();
    assert!(matches!(err, Error::Schema(SchemaError::DuplicateColumn { .. })), "{err}");
    assert!(err.to_string().contains("names column id twice"), "{err}");
    assert!(e.database().table_rows("orders").unwrap().is_empty());
}

/// A long run of inserts (stored in bulk) followed by a change that fails: the whole
/// transaction is taken back, the run's rows with it, in both kinds of table.
#[test]
fn a_run_of_inserts_before_a_failing_change_is_taken_back() {
    let e = engine();
    let count = e.from_sql("SELECT COUNT(*), SUM(amount) FROM orders").unwrap();
    let tags = e.from_sql("SELECT name, n FROM tags").unwrap();
    e.apply([Change::insert("orders", vec![Value::Int(-1), Value::Int(1), Value::Float(1.0), Value::Null])]).unwrap();
    let orders = (0..500)
        .map(|i| Change::insert("orders", vec![Value::Int(i), Value::Int(i % 7), Value::Float(2.0), Value::Null]));
    let bag = (0..500).map(|i| Change::insert("tags", vec![Value::text("t"), Value::Int(i % 3)]));
    for failing in [
        Change::insert("orders", vec![Value::Int(-1), Value::Int(2), Value::Null, Value::Null]),
        Change::insert("nope", vec![Value::Int(1)]),
    ] {
        let err = e.apply(orders.clone().chain(bag.clone()).chain([failing])).unwrap_err();
        assert!(matches!(err, Error::Constraint(_) | Error::Schema(_)), "{err}");
        assert_eq!(e.database().table_rows("orders").unwrap().len(), 1, "the run's rows were taken out again");
        assert!(e.database().table_rows("tags").unwrap().is_empty());
        assert_eq!(count.rows().unwrap()[0].to_vec(), vec![Value::Int(1), Value::Float(1.0)]);
        assert!(tags.rows().unwrap().is_empty());
    }
    // Nothing of them left behind: the same rows go in now.
    e.apply(orders.chain(bag)).unwrap();
    assert_eq!(count.rows().unwrap()[0].to_vec(), vec![Value::Int(501), Value::Float(1001.0)]);
    assert_eq!(tags.len().unwrap(), 500);
}
