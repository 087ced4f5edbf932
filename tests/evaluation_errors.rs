//! Values a view's SQL cannot compute fail that view alone, with the reason, and never
//! the engine: integer overflow as each dialect has it, and no value of any function
//! panicking (tests/function_fuzz.rs calls them all with extreme arguments).

use ciuf::{Dialect, Engine, Error, Value};

fn int(i: i64) -> Value {
    Value::Int(i)
}

/// SQLite's integer arithmetic gives a real where it overflows; its sum() and abs()
/// report "integer overflow".
#[test]
fn integer_overflow_follows_sqlite() {
    let e = Engine::in_memory();
    e.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, a INTEGER); CREATE TABLE u (id INTEGER PRIMARY KEY)").unwrap();
    let arithmetic = e.from_sql("SELECT id, a + 1 AS up, a * 2 AS twice, -a AS neg, a / -1 AS q FROM t").unwrap();
    let sum = e.from_sql("SELECT SUM(a) FROM t").unwrap();
    let abs = e.from_sql("SELECT id, abs(a) FROM t").unwrap();
    let count = e.from_sql("SELECT COUNT(*) FROM t").unwrap();
    let other = e.from_sql("SELECT COUNT(*) FROM u").unwrap();
    e.on_insert("t", vec![int(1), int(i64::MAX)]).unwrap();
    e.on_insert("t", vec![int(2), int(i64::MIN)]).unwrap();
    e.on_insert("t", vec![int(3), int(-1)]).unwrap();

    let rows = arithmetic.rows().unwrap();
    let max = rows.iter().find(|r| *r.get(0) == int(1)).unwrap().to_vec();
    assert_eq!(
        max,
        [
            int(1),
            Value::Float(9.223372036854776e18),
            Value::Float(1.8446744073709552e19),
            int(-i64::MAX),
            int(-i64::MAX)
        ]
    );
    let min = rows.iter().find(|r| *r.get(0) == int(2)).unwrap().to_vec();
    assert_eq!(min[3], Value::Float(9.223372036854776e18), "-(least integer) is a real");
    assert_eq!(min[4], Value::Float(9.223372036854776e18), "least integer / -1 is a real");
    // Arrow: a column that met a real reads as Float64, exact, never a saturated integer.
    let batch = arithmetic.query().unwrap();
    let up = batch.column_by_name("up").unwrap();
    assert_eq!(up.data_type(), &arrow_schema::DataType::Float64);
    assert_eq!(batch.column_by_name("id").unwrap().data_type(), &arrow_schema::DataType::Int64);

    // sum() beyond 64 bits (MAX + MIN - 1 fits; add one more and it does not).
    assert_eq!(sum.rows().unwrap()[0].to_vec(), [int(-2)]);
    e.on_insert("t", vec![int(4), int(i64::MIN)]).unwrap();
    let err = sum.rows().unwrap_err();
    assert!(matches!(&err, Error::Evaluation { message } if message.contains("integer overflow")), "{err:?}");
    let err = abs.rows().unwrap_err();
    assert!(matches!(&err, Error::Evaluation { message } if message.contains("integer overflow in abs()")), "{err:?}");
    // Registered again over rows that still overflow, it is refused with the reason.
    let again = e.from_sql("SELECT SUM(a) FROM t").unwrap_err();
    assert!(matches!(&again, Error::Evaluation { message } if message.contains("integer overflow")), "{again:?}");
    // The engine and every other view go on.
    e.on_insert("u", vec![int(1)]).unwrap();
    e.on_insert("t", vec![int(5), int(7)]).unwrap();
    assert_eq!(count.rows().unwrap()[0].to_vec(), [int(5)]);
    assert_eq!(other.rows().unwrap()[0].to_vec(), [int(1)]);
    assert_eq!(arithmetic.len().unwrap(), 5);
    // A failed view stays failed; registered again once the rows allow, it is
    // computed afresh.
    e.on_delete("t", vec![int(4), int(i64::MIN)]).unwrap();
    assert!(sum.rows().is_err(), "stays failed");
    let fresh = e.from_sql("SELECT SUM(a) FROM t").unwrap();
    assert_eq!(fresh.rows().unwrap()[0].to_vec(), [int(5)]);
}

/// PostgreSQL's integer arithmetic is an error where it overflows its type; sum() of
/// bigints is numeric, exact beyond 64 bits.
#[test]
fn integer_overflow_follows_postgresql() {
    let e = Engine::with_dialect(Dialect::Postgres);
    e.execute("CREATE TABLE t (id BIGINT PRIMARY KEY, a BIGINT, b INTEGER)").unwrap();
    let big = e.from_sql("SELECT id, a + 1 FROM t").unwrap();
    let int4 = e.from_sql("SELECT id, b * 2 FROM t").unwrap();
    let sums = e.from_sql("SELECT SUM(a), SUM(b) FROM t").unwrap();
    e.on_insert("t", vec![int(1), int(i64::MAX), int(i32::MAX as i64)]).unwrap();
    e.on_insert("t", vec![int(2), int(i64::MAX), int(1)]).unwrap();
    let err = big.rows().unwrap_err();
    assert!(matches!(&err, Error::Evaluation { message } if message.contains("bigint out of range")), "{err:?}");
    let err = int4.rows().unwrap_err();
    assert!(matches!(&err, Error::Evaluation { message } if message.contains("integer out of range")), "{err:?}");
    let row = sums.rows().unwrap()[0].to_vec();
    assert_eq!(row[0].to_string(), "18446744073709551614");
    assert_eq!(row[1], int(2147483648));
    // A constant that overflows cannot be computed at all.
    let err = e.from_sql("SELECT 9223372036854775807 + 1").unwrap_err();
    assert!(err.to_string().contains("bigint out of range"), "{err}");
}

/// Functions with extreme arguments give SQLite's answer and never panic.
#[test]
fn extreme_function_arguments_never_panic() {
    let e = Engine::in_memory();
    e.execute("CREATE TABLE s (id INTEGER PRIMARY KEY, x TEXT, n INTEGER)").unwrap();
    let v =
        e.from_sql("SELECT id, substr(x, 2, n), substr(x, n), substr(x, -n, 3), round(2.5, n), x || n FROM s").unwrap();
    for (id, n) in [(1, i64::MAX), (2, i64::MIN), (3, 1 << 32), (4, -1)] {
        e.on_insert("s", vec![int(id), Value::text("hello"), int(n)]).unwrap();
    }
    let sqlite = rusqlite::Connection::open_in_memory().unwrap();
    let mut ours: Vec<String> = v.rows().unwrap().iter().map(|r| format!("{:?}", r.to_vec())).collect();
    ours.sort();
    let mut theirs: Vec<String> = [(1, i64::MAX), (2, i64::MIN), (3, 1 << 32), (4, -1)]
        .iter()
        .map(|&(id, n)| {
            sqlite
                .query_row(
                    "SELECT substr('hello', 2, ?1), substr('hello', ?1), substr('hello', -?1, 3), round(2.5, ?1), 'hello' || ?1",
                    [n],
                    |r| {
                        Ok(format!(
                            "{:?}",
                            [
                                int(id),
                                Value::text(r.get::<_, String>(0)?),
                                Value::text(r.get::<_, String>(1)?),
                                Value::text(r.get::<_, String>(2)?),
                                Value::Float(r.get(3)?),
                                Value::text(r.get::<_, String>(4)?)
                            ]
                        ))
                    },
                )
                .unwrap()
        })
        .collect();
    theirs.sort();
    assert_eq!(ours, theirs);
}
