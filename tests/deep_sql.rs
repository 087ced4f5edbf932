//! Deeply nested SQL never overflows the stack: long chains of AND and OR work at any
//! length, other expressions and compound SELECTs are refused past SQLite's own limits
//! with an error that says so, and nothing crashes — called from threads with the
//! default stack and with a small one, as applications and Python call.

use ciuf::{Engine, Value};

fn engine() -> Engine {
    let e = Engine::in_memory();
    e.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, a INTEGER)").unwrap();
    for i in 0..50 {
        e.on_insert("t", vec![Value::Int(i), Value::Int(i * 7 % 40)]).unwrap();
    }
    e
}

/// Runs `f` on a thread with `stack` bytes of stack (None: Rust's default).
fn on_thread<T: Send + 'static>(stack: Option<usize>, f: impl FnOnce() -> T + Send + 'static) -> T {
    let mut b = std::thread::Builder::new();
    if let Some(s) = stack {
        b = b.stack_size(s);
    }
    b.spawn(f).unwrap().join().expect("the thread did not crash")
}

fn ids(view: &ciuf::View) -> Vec<i64> {
    let mut ids: Vec<i64> = view.rows().unwrap().iter().map(|r| r.get(0).as_i64().unwrap()).collect();
    ids.sort_unstable();
    ids
}

fn check_all(stack: Option<usize>) {
    on_thread(stack, || {
        let e = engine();
        // 3,500 ORs (about 35 KB): planned as a balanced tree.
        let terms: Vec<String> = (0..3500).map(|i| format!("a = {}", i * 3)).collect();
        let or = e.from_sql(&format!("SELECT id FROM t WHERE {}", terms.join(" OR "))).unwrap();
        let expected: Vec<i64> = (0..50).filter(|i| (i * 7 % 40) % 3 == 0).collect();
        assert_eq!(ids(&or), expected);
        // 20,000 ANDs.
        let terms: Vec<String> = (0..20_000).map(|i| format!("a >= {}", i % 5)).collect();
        let and = e.from_sql(&format!("SELECT id FROM t WHERE {}", terms.join(" AND "))).unwrap();
        let expected: Vec<i64> = (0..50).filter(|i| i * 7 % 40 >= 4).collect();
        assert_eq!(ids(&and), expected);
        // The views stay maintained.
        e.on_insert("t", vec![Value::Int(100), Value::Int(39)]).unwrap();
        assert!(ids(&and).contains(&100) && ids(&or).contains(&100));
        // 3,000 SELECTs in one UNION: one union, however long.
        let selects: Vec<String> = (0..3000).map(|i| format!("SELECT id FROM t WHERE a = {}", i % 40)).collect();
        let union = e.from_sql(&selects.join(" UNION ")).unwrap();
        assert_eq!(union.len().unwrap(), 51);
        let union_all = e.from_sql(&selects[..600].join(" UNION ALL ")).unwrap();
        assert_eq!(union_all.len().unwrap(), 51 * 15);
        // 5,000 additions nest 5,000 deep: refused past SQLite's depth of 1,000.
        let err = e.from_sql(&format!("SELECT {} FROM t", vec!["1"; 5000].join(" + "))).unwrap_err();
        assert!(err.to_string().contains("expression nested more than 1000 deep"), "{err}");
        // 600 EXCEPTs nest one level each: refused past SQLite's 500.
        let err = e.from_sql(&selects[..600].join(" EXCEPT ")).unwrap_err();
        assert!(err.to_string().contains("too many EXCEPT and INTERSECT terms"), "{err}");
        // 5,000 parentheses: refused by the parser's own bound.
        let err = e.from_sql(&format!("SELECT {}1{} FROM t", "(".repeat(5000), ")".repeat(5000))).unwrap_err();
        assert!(matches!(err, ciuf::Error::Sql(_)), "{err}");
        // SQL beyond SQLite's length limit.
        let err = e.from_sql(&format!("SELECT 1 FROM t WHERE {}", vec!["a = 1"; 200_000].join(" OR "))).unwrap_err();
        assert!(err.to_string().contains("the limit is 1000000"), "{err}");
        // A statement through execute() too.
        let err = e.execute(&format!("CREATE VIEW deep AS SELECT {} FROM t", vec!["a"; 3000].join(" * "))).unwrap_err();
        assert!(err.to_string().contains("nested more than 1000 deep"), "{err}");
    });
}

#[test]
fn deep_sql_on_a_default_thread() {
    check_all(None);
}

#[test]
fn deep_sql_on_a_small_stack() {
    check_all(Some(256 * 1024));
}
