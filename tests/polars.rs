//! `View::query_polars()` (cargo feature `polars`): the view as a DataFrame, numbers
//! shared with the Arrow batch.

#![cfg(feature = "polars")]

use ciuf::{Engine, Value};

#[test]
fn views_convert_to_polars_dataframes() {
    let e = Engine::in_memory();
    e.execute("CREATE TABLE t (id BIGINT PRIMARY KEY, name TEXT, amount DOUBLE, price DECIMAL(10,2), day DATE)")
        .unwrap();
    for i in 0..100i64 {
        e.on_insert(
            "t",
            vec![
                Value::Int(i),
                if i % 10 == 0 { Value::Null } else { Value::text(format!("n{i}")) },
                Value::Float(i as f64 / 2.0),
                Value::Float(i as f64 * 1.25),
                Value::text("2024-05-01"),
            ],
        )
        .unwrap();
    }
    let v = e.from_sql("SELECT id, name, amount, price, day FROM t WHERE id < 50 ORDER BY id").unwrap();
    let df = v.query_polars().unwrap();
    assert_eq!(df.shape(), (50, 5));
    let names: Vec<String> = df.get_column_names().iter().map(|n| n.to_string()).collect();
    assert_eq!(names, ["id", "name", "amount", "price", "day"]);
    let ids = df.column("id").unwrap().i64().unwrap();
    assert_eq!(ids.get(49), Some(49));
    let names = df.column("name").unwrap().str().unwrap();
    assert_eq!((names.get(0), names.get(3)), (None, Some("n3")));
    assert_eq!(df.column("amount").unwrap().f64().unwrap().get(7), Some(3.5));
    assert_eq!(df.column("price").unwrap().null_count(), 0);
}
