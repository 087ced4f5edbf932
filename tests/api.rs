//! The Rust contract: registration and sharing, Arrow output, rows by position or
//! name, ordered views, named views and views on views, EXPLAIN.

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type};
use arrow_schema::{DataType as Arrow, TimeUnit};
use ciuf::{Change, Engine, Outcome, Value, from_sql};

fn shop() -> Engine {
    let e = Engine::in_memory();
    e.execute(
        "CREATE TABLE orders (id BIGINT PRIMARY KEY, customer_id BIGINT, product_id BIGINT, amount DOUBLE, status TEXT);
         CREATE TABLE products (id BIGINT PRIMARY KEY, name TEXT, category TEXT, price DOUBLE)",
    )
    .unwrap();
    e
}

fn order(id: i64, customer: i64, product: i64, amount: f64, status: &str) -> Vec<Value> {
    vec![Value::Int(id), Value::Int(customer), Value::Int(product), Value::Float(amount), Value::text(status)]
}

#[test]
fn the_same_query_is_one_view_and_views_share_nodes() {
    let e = shop();
    let a = e.from_sql("SELECT id, amount FROM orders WHERE status = 'paid'").unwrap();
    let b = from_sql(&e, "SELECT id, amount FROM orders WHERE status = 'paid'").unwrap();
    let c = e.from_sql("select id,  amount\nfrom orders where status = 'paid'").unwrap();
    assert_eq!(a.id(), b.id());
    assert_eq!(a.id(), c.id(), "the same plan is the same view whatever the spelling");
    let nodes = e.stats().nodes;
    // Scan + Filter; the view stores the filter's rows and projects when read.
    assert_eq!(nodes, 2);
    // A second view over the same filter shares its scan and filter.
    e.from_sql("SELECT id, customer_id FROM orders WHERE status = 'paid' ORDER BY amount DESC, id LIMIT 10").unwrap();
    assert_eq!(e.stats().nodes, nodes + 1, "only the TopK is new; Scan and Filter are shared");
    e.from_sql("SELECT o.id, p.name FROM orders o JOIN products p ON o.product_id = p.id").unwrap();
    assert_eq!(e.stats().nodes, nodes + 1 + 2, "one more scan, and a join that emits the two columns");
}

#[test]
fn query_returns_arrow_with_the_view_types() {
    let e = Engine::in_memory();
    e.execute(
        "CREATE TABLE t (a BIGINT, b INTEGER, c SMALLINT, d DOUBLE, e DECIMAL(10,2), f TEXT, g BOOLEAN, h DATE, i TIMESTAMP)",
    )
    .unwrap();
    let v = e.from_sql("SELECT a, b, c, d, e, f, g, h, i, a + b AS s FROM t").unwrap();
    e.on_insert(
        "t",
        vec![
            Value::Int(1),
            Value::Int(2),
            Value::Int(3),
            Value::Float(1.5),
            Value::Float(2.25),
            Value::text("x"),
            Value::Bool(true),
            Value::text("2024-02-29"),
            Value::text("2024-02-29 12:30:00"),
        ],
    )
    .unwrap();
    let batch = v.query().unwrap();
    let types: Vec<Arrow> = batch.schema().fields().iter().map(|f| f.data_type().clone()).collect();
    assert_eq!(
        types,
        vec![
            // SQLite's INTEGER and SMALLINT hold any 64-bit integer (the dialect of an
            // in-memory engine); under PostgreSQL's rules they are 32 and 16 bits.
            Arrow::Int64,
            Arrow::Int64,
            Arrow::Int64,
            Arrow::Float64,
            Arrow::Decimal128(10, 2),
            Arrow::Utf8,
            Arrow::Boolean,
            Arrow::Date32,
            Arrow::Timestamp(TimeUnit::Microsecond, None),
            Arrow::Int64,
        ]
    );
    let schema = batch.schema();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, ["a", "b", "c", "d", "e", "f", "g", "h", "i", "s"]);
    assert_eq!(batch.column(4).as_primitive::<arrow_array::types::Decimal128Type>().value(0), 225);
    assert_eq!(batch.column(7).as_primitive::<arrow_array::types::Date32Type>().value(0), 19782);
    assert_eq!(v.schema(), batch.schema());
    assert_eq!(v.columns().len(), 10);
    // Unchanged: the same batch, not a rebuilt one.
    let again = v.query().unwrap();
    assert!(std::sync::Arc::ptr_eq(batch.column(0), again.column(0)));
}

#[test]
fn rows_by_position_or_by_name() {
    let e = shop();
    let v = e.from_sql("SELECT id, status, amount FROM orders").unwrap();
    e.on_insert("orders", order(1, 10, 100, 5.0, "paid")).unwrap();
    e.on_insert("orders", [("id", Value::Int(2)), ("amount", Value::Float(7.0)), ("status", Value::text("new"))])
        .unwrap();
    e.on_update("orders", order(1, 10, 100, 5.0, "paid"), order(1, 10, 100, 6.0, "paid")).unwrap();
    e.on_update_by_key("orders", [("id", Value::Int(2)), ("status", Value::text("paid"))]).unwrap();
    let mut rows = v.rows().unwrap();
    rows.sort();
    assert_eq!(rows, vec![ciuf::row![1, "paid", 6.0], ciuf::row![2, "paid", 7.0]]);
    e.on_delete("orders", [("id", 1)]).unwrap();
    e.on_delete("orders", vec![Value::Int(2), Value::Null, Value::Null, Value::Float(7.0), Value::text("paid")])
        .unwrap();
    assert!(v.is_empty().unwrap());
}

#[test]
fn top_k_views_hold_the_window_in_order() {
    let e = shop();
    let top =
        e.from_sql("SELECT id, amount FROM orders WHERE status = 'paid' ORDER BY amount DESC, id LIMIT 3").unwrap();
    e.apply((1..=10).map(|i| Change::insert("orders", order(i, 1, 1, (i % 4) as f64, "paid")))).unwrap();
    let ids = |v: &ciuf::View| -> Vec<i64> {
        let b = v.query().unwrap();
        b.column(0).as_primitive::<Int64Type>().values().to_vec()
    };
    assert_eq!(ids(&top), vec![3, 7, 2]);
    assert_eq!(top.len().unwrap(), 3);
    e.on_delete("orders", [("id", 3)]).unwrap();
    assert_eq!(ids(&top), vec![7, 2, 6]);
    e.on_update_by_key("orders", [("id", Value::Int(10)), ("amount", Value::Float(9.0))]).unwrap();
    assert_eq!(ids(&top), vec![10, 7, 2]);
    // ORDER BY without LIMIT orders the whole view, on a column not selected.
    let by_amount = e.from_sql("SELECT id FROM orders ORDER BY amount, id DESC").unwrap();
    assert_eq!(ids(&by_amount), vec![8, 4, 9, 5, 1, 6, 2, 7, 10]);
}

#[test]
fn groups_disappear_and_return_and_global_aggregates_always_have_a_row() {
    let e = shop();
    let per =
        e.from_sql("SELECT customer_id, COUNT(*) AS n, SUM(amount) AS total FROM orders GROUP BY customer_id").unwrap();
    let all = e.from_sql("SELECT COUNT(*) AS n, SUM(amount) AS total FROM orders").unwrap();
    let b = all.query().unwrap();
    assert_eq!((b.num_rows(), b.column(0).as_primitive::<Int64Type>().value(0), b.column(1).is_null(0)), (1, 0, true));
    e.on_insert("orders", order(1, 7, 1, 2.5, "paid")).unwrap();
    assert_eq!(per.rows().unwrap(), vec![ciuf::row![7, 1, 2.5]]);
    e.on_delete("orders", [("id", 1)]).unwrap();
    assert!(per.rows().unwrap().is_empty());
    assert_eq!(all.rows().unwrap(), vec![ciuf::row![0, None::<f64>]]);
    e.on_insert("orders", order(2, 7, 1, 4.0, "paid")).unwrap();
    assert_eq!(per.rows().unwrap(), vec![ciuf::row![7, 1, 4.0]]);
    let b = all.query().unwrap();
    assert_eq!(b.column(1).as_primitive::<Float64Type>().value(0), 4.0);
}

#[test]
fn named_views_and_views_on_views() {
    let e = shop();
    e.apply((1..=6).map(|i| Change::insert("orders", order(i, i % 2, 1, i as f64, "paid")))).unwrap();
    let Outcome::View(paid) =
        e.execute("CREATE VIEW big AS SELECT id, customer_id, amount FROM orders WHERE amount > 2").unwrap()
    else {
        panic!("CREATE VIEW makes a view")
    };
    assert_eq!(paid.name(), Some("big"));
    // Registered after the data: filled from existing state.
    let per = e.from_sql("SELECT customer_id, SUM(amount) FROM big GROUP BY customer_id").unwrap();
    let mut rows = per.rows().unwrap();
    rows.sort();
    assert_eq!(rows, vec![ciuf::row![0, 10.0], ciuf::row![1, 8.0]]);
    e.on_delete("orders", [("id", 6)]).unwrap();
    let mut rows = per.rows().unwrap();
    rows.sort();
    assert_eq!(rows, vec![ciuf::row![0, 4.0], ciuf::row![1, 8.0]]);
    let v2 = e.create_view("bigger", "SELECT id FROM big WHERE amount > 4").unwrap();
    assert_eq!(v2.rows().unwrap(), vec![ciuf::row![5]]);
    e.execute("DROP VIEW big").unwrap();
    assert!(paid.query().is_err());
    // Views defined on it keep working.
    e.on_insert("orders", order(9, 1, 1, 50.0, "paid")).unwrap();
    assert_eq!(v2.len().unwrap(), 2);
    assert!(e.from_sql("SELECT * FROM big").is_err());
}

#[test]
fn explain_prints_the_operator_graph() {
    let e = shop();
    let text = e
        .explain("SELECT p.category, COUNT(*) AS n FROM orders o JOIN products p ON o.product_id = p.id WHERE o.status = 'paid' GROUP BY p.category")
        .unwrap();
    let expected = "\
View [category TEXT, n BIGINT]
  Aggregate group=[#0] aggs=[count(*)]
    Join Inner on [#2 = #0] output [#7]
      Filter (#4 = 'paid')
        Scan orders (table 0)
      Scan products (table 1)
";
    assert_eq!(text, expected);
    let Outcome::Explain(same) = e.execute("EXPLAIN SELECT id FROM orders ORDER BY amount LIMIT 2").unwrap() else {
        panic!("EXPLAIN explains")
    };
    assert!(same.contains("Project [#0, #3]\n    TopK order=[#3 NULLS FIRST] limit=2 offset=0"), "{same}");
}

#[test]
fn joins_share_one_index_per_input_and_key() {
    let e = shop();
    e.apply((1..=6).map(|i| Change::insert("orders", order(i, i % 2, i % 3, i as f64, "paid")))).unwrap();
    e.apply((0..3).map(|p| {
        Change::insert(
            "products",
            vec![
                Value::Int(p),
                Value::text(format!("p{p}")),
                Value::text(format!("c{}", p % 2)),
                Value::Float(p as f64),
            ],
        )
    }))
    .unwrap();
    let names = e.from_sql("SELECT o.id, p.name FROM orders o JOIN products p ON o.product_id = p.id").unwrap();
    assert_eq!(e.stats().arrangements, 2, "orders by product_id, products by id");
    // Registered after the data: its join probes the same index of orders.
    let cheap = e
        .from_sql("SELECT o.id, p.category FROM orders o JOIN products p ON o.product_id = p.id WHERE p.price < 2")
        .unwrap();
    assert_eq!(e.stats().arrangements, 3, "orders by product_id is shared; filtered products are new");
    let mut rows = cheap.rows().unwrap();
    rows.sort();
    let expected = |rows: &[(i64, i64)]| -> Vec<ciuf::Row> {
        rows.iter().map(|&(id, c)| ciuf::row![id, format!("c{c}")]).collect()
    };
    assert_eq!(rows, expected(&[(1, 1), (3, 0), (4, 1), (6, 0)]));
    // Dropping the first view keeps the shared index alive and exact for the second.
    e.drop_view(&names).unwrap();
    assert_eq!(e.stats().arrangements, 2);
    e.on_delete("orders", order(4, 0, 1, 4.0, "paid")).unwrap();
    e.on_insert("orders", order(7, 1, 0, 7.0, "paid")).unwrap();
    let mut rows = cheap.rows().unwrap();
    rows.sort();
    assert_eq!(rows, expected(&[(1, 1), (3, 0), (6, 0), (7, 0)]));
    e.drop_view(&cheap).unwrap();
    let stats = e.stats();
    assert_eq!((stats.nodes, stats.arrangements, stats.operator_state_bytes), (0, 0, 0), "nothing left but tables");
}

/// A join registered over loaded tables does not build the index of its first input
/// (orders by product) until a change to the other input (products) needs it: the view
/// stays exact while only orders change, and after products change it too — on one
/// thread, and on two with every transaction on the worker threads.
#[test]
fn a_loaded_tables_index_is_built_when_a_join_first_needs_it() {
    for threads in [1, 2] {
        let e = shop();
        e.set_threads(threads);
        e.database().set_parallel_from(1);
        let product = |p: i64, name: &str| {
            vec![Value::Int(p), Value::text(name), Value::text(format!("c{}", p % 2)), Value::Float(p as f64)]
        };
        let mut orders: Vec<Vec<Value>> = (1..=40).map(|i| order(i, i % 5, i % 4, i as f64, "paid")).collect();
        let mut products: Vec<Vec<Value>> = (0..4).map(|p| product(p, &format!("p{p}"))).collect();
        e.apply(orders.iter().map(|o| Change::insert("orders", o.clone()))).unwrap();
        e.apply(products.iter().map(|p| Change::insert("products", p.clone()))).unwrap();
        let view = e.from_sql("SELECT o.id, p.name FROM orders o JOIN products p ON o.product_id = p.id").unwrap();
        let expected = |orders: &[Vec<Value>], products: &[Vec<Value>]| {
            let mut rows: Vec<ciuf::Row> = orders
                .iter()
                .flat_map(|o| {
                    products.iter().filter(|p| p[0] == o[2]).map(|p| ciuf::Row::new(vec![o[0].clone(), p[1].clone()]))
                })
                .collect();
            rows.sort();
            rows
        };
        let exact = |orders: &[Vec<Value>], products: &[Vec<Value>], when: &str| {
            let mut rows = view.rows().unwrap();
            rows.sort();
            assert_eq!(rows, expected(orders, products), "{when}, {threads} threads");
        };
        exact(&orders, &products, "registered");
        let stats = e.stats();
        assert_eq!((stats.arrangements, stats.deferred_arrangements), (2, 1), "orders by product_id waits");
        // Orders change: the join probes products by id, never orders by product_id.
        for round in 0..3i64 {
            let gone = orders.remove(round as usize * 3);
            let new = order(100 + round, round, round % 4, 1.5, "paid");
            let changed = orders[0].clone();
            let mut moved = changed.clone();
            moved[2] = Value::Int((round + 1) % 4);
            orders[0] = moved.clone();
            orders.push(new.clone());
            e.apply([
                Change::delete("orders", gone),
                Change::insert("orders", new),
                Change::update("orders", changed, moved),
            ])
            .unwrap();
            exact(&orders, &products, "orders changed");
            assert_eq!(e.stats().deferred_arrangements, 1, "still waiting");
        }
        // A product changes: its orders are found through the index, built now.
        let old = products[2].clone();
        products[2] = product(2, "renamed");
        e.apply([Change::update("products", old, products[2].clone())]).unwrap();
        exact(&orders, &products, "a product renamed");
        assert_eq!(e.stats().deferred_arrangements, 0, "built");
        // And kept up to date from then on.
        let gone = orders.pop().unwrap();
        e.apply([Change::delete("orders", gone), Change::delete("products", products.remove(1))]).unwrap();
        exact(&orders, &products, "an order and a product deleted");
    }
}

/// A join of three loaded tables builds a deferred index of orders only when an input
/// that probes it changes: a product change builds orders by product, never orders by
/// customer (which only a customer change probes), and the view stays exact throughout
/// (on one thread, and on two with every transaction on the worker threads).
#[test]
fn a_three_way_join_builds_only_the_indexes_a_change_probes() {
    for threads in [1, 2] {
        let e = shop();
        e.execute("CREATE TABLE customers (id BIGINT PRIMARY KEY, name TEXT, region TEXT)").unwrap();
        e.set_threads(threads);
        e.database().set_parallel_from(1);
        let product = |p: i64, category: &str| {
            vec![Value::Int(p), Value::text(format!("p{p}")), Value::text(category), Value::Float(1.0)]
        };
        let customer = |c: i64, region: &str| vec![Value::Int(c), Value::text(format!("c{c}")), Value::text(region)];
        let mut orders: Vec<Vec<Value>> = (1..=60).map(|i| order(i, i % 6, i % 4, i as f64, "paid")).collect();
        let mut products: Vec<Vec<Value>> =
            (0..4).map(|p| product(p, if p % 2 == 0 { "even" } else { "odd" })).collect();
        let mut customers: Vec<Vec<Value>> =
            (0..6).map(|c| customer(c, if c < 3 { "north" } else { "south" })).collect();
        e.apply(orders.iter().map(|o| Change::insert("orders", o.clone()))).unwrap();
        e.apply(products.iter().map(|p| Change::insert("products", p.clone()))).unwrap();
        e.apply(customers.iter().map(|c| Change::insert("customers", c.clone()))).unwrap();
        let view = e
            .from_sql(
                "SELECT c.region, p.category, COUNT(*) AS n, SUM(o.amount) AS revenue FROM orders o \
                 JOIN customers c ON o.customer_id = c.id JOIN products p ON o.product_id = p.id \
                 GROUP BY c.region, p.category",
            )
            .unwrap();
        let exact = |orders: &[Vec<Value>], products: &[Vec<Value>], customers: &[Vec<Value>], when: &str| {
            let mut groups: std::collections::BTreeMap<(String, String), (i64, f64)> = Default::default();
            for o in orders {
                let (Some(c), Some(p)) =
                    (customers.iter().find(|c| c[0] == o[1]), products.iter().find(|p| p[0] == o[2]))
                else {
                    continue;
                };
                let g = groups.entry((format!("{:?}", c[2]), format!("{:?}", p[2]))).or_default();
                g.0 += 1;
                let Value::Float(amount) = o[3] else { unreachable!("amounts are floats") };
                g.1 += amount;
            }
            let mut rows: Vec<((String, String), (i64, f64))> = view
                .rows()
                .unwrap()
                .iter()
                .map(|r| {
                    let (Value::Int(n), Value::Float(sum)) = (r.get(2).into_owned(), r.get(3).into_owned()) else {
                        panic!("count and sum: {r:?}")
                    };
                    ((format!("{:?}", r.get(0).into_owned()), format!("{:?}", r.get(1).into_owned())), (n, sum))
                })
                .collect();
            rows.sort_by(|a, b| a.0.cmp(&b.0));
            let expected: Vec<((String, String), (i64, f64))> = groups.into_iter().collect();
            assert_eq!(rows, expected, "{when}, {threads} threads");
        };
        exact(&orders, &products, &customers, "registered");
        // Orders by customer and by product wait; customers and products by id are
        // probed by the first fill and built.
        assert_eq!((e.stats().arrangements, e.stats().deferred_arrangements), (4, 2), "{threads} threads");
        // Orders change: they probe customers and products, never orders.
        let gone = orders.remove(5);
        let new = order(100, 2, 3, 2.5, "paid");
        orders.push(new.clone());
        e.apply([Change::delete("orders", gone), Change::insert("orders", new)]).unwrap();
        exact(&orders, &products, &customers, "orders changed");
        assert_eq!(e.stats().deferred_arrangements, 2, "both wait, {threads} threads");
        // A product changes category: its orders are found by product; orders by
        // customer still wait.
        let old = products[1].clone();
        products[1] = product(1, "even");
        e.apply([Change::update("products", old, products[1].clone())]).unwrap();
        exact(&orders, &products, &customers, "a product moved");
        assert_eq!(e.stats().deferred_arrangements, 1, "orders by customer waits, {threads} threads");
        // A customer moves: now orders by customer is built, and kept up from then on.
        let old = customers[0].clone();
        customers[0] = customer(0, "south");
        e.apply([Change::update("customers", old, customers[0].clone())]).unwrap();
        exact(&orders, &products, &customers, "a customer moved");
        assert_eq!(e.stats().deferred_arrangements, 0, "{threads} threads");
        let gone = orders.pop().unwrap();
        e.apply([Change::delete("orders", gone), Change::delete("customers", customers.remove(4))]).unwrap();
        exact(&orders, &products, &customers, "an order and a customer deleted");
    }
}

/// A top-k over a join refills from the join's whole output when deletions eat into
/// what it keeps: the join's indexes are then built when the view is registered, never
/// deferred, and the refill finds every row (on two threads, every transaction on the
/// worker threads).
#[test]
fn a_top_k_over_a_join_keeps_the_join_indexes_built() {
    let e = shop();
    e.set_threads(2);
    e.database().set_parallel_from(1);
    e.apply((1..=30).map(|i| Change::insert("orders", order(i, i % 3, i % 2, i as f64, "paid")))).unwrap();
    e.apply((0..2).map(|p| {
        Change::insert(
            "products",
            vec![Value::Int(p), Value::text(format!("p{p}")), Value::text("c"), Value::Float(1.0)],
        )
    }))
    .unwrap();
    let top = e
        .from_sql("SELECT o.id, p.name FROM orders o JOIN products p ON o.product_id = p.id ORDER BY o.amount DESC, o.id LIMIT 3")
        .unwrap();
    assert_eq!(e.stats().deferred_arrangements, 0, "a refill reads the join's whole output");
    for gone in (20..=30).rev() {
        e.on_delete("orders", order(gone, gone % 3, gone % 2, gone as f64, "paid")).unwrap();
        let ids: Vec<i64> = (gone - 3..gone).rev().collect();
        let expected: Vec<ciuf::Row> = ids.iter().map(|&i| ciuf::row![i, format!("p{}", i % 2)]).collect();
        assert_eq!(top.rows().unwrap(), expected, "after deleting order {gone}");
    }
}

#[test]
fn profiling_times_each_node_only_while_on() {
    let e = shop();
    e.from_sql("SELECT o.id, p.name FROM orders o JOIN products p ON o.product_id = p.id WHERE o.amount > 10").unwrap();
    e.on_insert("products", vec![Value::Int(1), Value::text("pen"), Value::text("office"), Value::Float(2.0)]).unwrap();
    assert_eq!(e.database().profile().transactions, 0, "off by default");
    e.database().set_profiling(true);
    for id in 0..3 {
        e.on_insert("orders", order(id, 1, 1, 20.0, "paid")).unwrap();
    }
    let p = e.database().profile();
    assert_eq!(p.transactions, 3);
    let labels: Vec<&str> = p.nodes.iter().map(|n| n.label.as_str()).collect();
    assert!(labels.iter().any(|l| l.starts_with("Scan orders")), "{labels:?}");
    assert!(labels.iter().any(|l| l.starts_with("Join")), "{labels:?}");
    assert!(!labels.iter().any(|l| l.starts_with("Scan products")), "products did not change: {labels:?}");
    let join = p.nodes.iter().find(|n| n.label.starts_with("Join")).unwrap();
    assert_eq!((join.steps, join.rows_out), (3, 3));
    assert!(p.total() >= join.total());
    assert!(p.to_string().starts_with("3 transactions"), "{p}");
    e.database().set_profiling(false);
    e.on_insert("orders", order(9, 1, 1, 20.0, "paid")).unwrap();
    assert_eq!(e.database().profile(), ciuf::core::Profile::default());

    // A view built over the rows already there: its new nodes' fill is timed too.
    e.database().set_profiling(true);
    e.from_sql("SELECT product_id, COUNT(*) FROM orders GROUP BY product_id").unwrap();
    let p = e.database().profile();
    assert_eq!(p.transactions, 0);
    let aggregate = p.nodes.iter().find(|n| n.label.starts_with("Aggregate")).expect("the new aggregate");
    assert_eq!((aggregate.steps, aggregate.rows_out), (1, 1), "filled once, one group: {p}");
}
