//! The memory budget: a view whose computation would take the process past it is
//! refused (being registered) or failed (being maintained) with a reason that names
//! the budget, and the process, the other views and the tables go on.
//!
//! One test in its own binary: the budget is process-wide.

use ciuf::{Change, Engine, Error, Value};

fn rows(table: &str, from: i64, n: i64) -> Vec<Change> {
    (from..from + n).map(|i| Change::insert(table, vec![Value::Int(i), Value::Int(i % 7)])).collect()
}

#[test]
fn a_view_past_the_budget_fails_alone_and_the_process_goes_on() {
    let default = ciuf::memory_budget();
    assert!(default >= 256 << 20, "a sane default: {default}");
    // Far below the 400 million rows of the cross join below (gigabytes), far above
    // what the rest of this test holds.
    ciuf::set_memory_budget(400 << 20);
    let e = Engine::in_memory();
    e.execute("CREATE TABLE a (id INTEGER PRIMARY KEY, g INTEGER); CREATE TABLE b (id INTEGER PRIMARY KEY, g INTEGER)")
        .unwrap();
    e.apply(rows("a", 0, 20_000)).unwrap();
    e.apply(rows("b", 0, 20_000)).unwrap();
    let counts = e.from_sql("SELECT g, COUNT(*) FROM a GROUP BY g").unwrap();

    // Registered over loaded tables: refused, and nothing of it stays.
    let before = (e.database().stats().nodes, e.database().stats().arrangements);
    let err = e.from_sql("SELECT a.id, b.id FROM a, b").map(|_| ()).unwrap_err();
    assert!(matches!(err, Error::Evaluation { .. }), "{err:?}");
    assert!(err.to_string().contains("memory budget of 400 MB"), "{err}");
    assert_eq!((e.database().stats().nodes, e.database().stats().arrangements), before);

    // Registered while small, then the rows arrive: that view fails with the reason,
    // the transaction and every other view go on.
    let e2 = Engine::in_memory();
    e2.execute(
        "CREATE TABLE a (id INTEGER PRIMARY KEY, g INTEGER); CREATE TABLE b (id INTEGER PRIMARY KEY, g INTEGER)",
    )
    .unwrap();
    let cross = e2.from_sql("SELECT COUNT(*) FROM a, b WHERE a.g <= b.g + 10").unwrap();
    let per_group = e2.from_sql("SELECT g, COUNT(*) FROM b GROUP BY g").unwrap();
    e2.apply(rows("a", 0, 20_000)).unwrap();
    e2.apply(rows("b", 0, 20_000)).unwrap();
    let err = cross.rows().unwrap_err();
    assert!(err.to_string().contains("memory budget"), "{err}");
    assert_eq!(per_group.rows().unwrap().len(), 7);
    e2.on_insert("b", vec![Value::Int(99_999), Value::Int(1)]).unwrap();
    let total: i64 = per_group.rows().unwrap().iter().map(|r| r.get(1).as_i64().unwrap()).sum();
    assert_eq!(total, 20_001);

    // A larger budget, and the first engine still takes changes and views.
    ciuf::set_memory_budget(default);
    e.on_insert("a", vec![Value::Int(-1), Value::Int(3)]).unwrap();
    let total: i64 = counts.rows().unwrap().iter().map(|r| r.get(1).as_i64().unwrap()).sum();
    assert_eq!(total, 20_001);
    let small = e.from_sql("SELECT a.id, b.id FROM a JOIN b ON a.id = b.id").unwrap();
    assert_eq!(small.rows().unwrap().len(), 20_000);
}
