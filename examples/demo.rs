//! The main job on the embedded default: an in-memory shop, five live views, and a
//! stream of orders arriving, changing and going away. Each round prints what changed
//! in the views and what the round cost.
//!
//!     cargo run --release --example demo [-- --orders 200000 --rounds 8]

use std::time::Instant;

use ciuf::{Change, Engine, Value, View};

/// A small deterministic generator, so every run shows the same shop.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const STATUSES: [&str; 3] = ["paid", "pending", "refunded"];

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn order(rng: &mut Rng, id: i64, customers: i64, products: i64) -> Vec<Value> {
    vec![
        Value::Int(id),
        Value::Int(1 + rng.below(customers as u64) as i64),
        Value::Int(1 + rng.below(products as u64) as i64),
        Value::Float((100 + rng.below(99_900)) as f64 / 100.0),
        Value::text(STATUSES[[0, 0, 0, 1, 1, 2][rng.below(6) as usize]]),
    ]
}

fn show(title: &str, view: &View, limit: usize) -> ciuf::Result<()> {
    let batch = view.query()?;
    let names: Vec<&str> = view.columns().iter().map(|c| c.name.as_str()).collect();
    println!("  {title} — {} rows [{}]", batch.num_rows(), names.join(", "));
    for row in view.rows()?.iter().take(limit) {
        println!("    {row}");
    }
    Ok(())
}

fn main() -> ciuf::Result<()> {
    let n_orders = arg("--orders", 200_000) as i64;
    let rounds = arg("--rounds", 6);
    let (customers, products) = ((n_orders / 10).max(10), (n_orders / 100).max(10));
    let mut rng = Rng(7);

    let engine = Engine::in_memory();
    engine.execute(
        "CREATE TABLE customers (id BIGINT PRIMARY KEY, name TEXT NOT NULL, region TEXT);
         CREATE TABLE products (id BIGINT PRIMARY KEY, name TEXT, category TEXT, price DOUBLE);
         CREATE TABLE orders (id BIGINT PRIMARY KEY, customer_id BIGINT, product_id BIGINT, amount DOUBLE, status TEXT)",
    )?;

    // Views registered before any data: they fill as rows arrive.
    let revenue = engine.from_sql(
        "SELECT c.region, COUNT(*) AS orders, SUM(o.amount) AS revenue
         FROM orders o JOIN customers c ON o.customer_id = c.id
         WHERE o.status = 'paid' GROUP BY c.region ORDER BY revenue DESC",
    )?;
    let top = engine.from_sql(
        "SELECT o.id, c.name, o.amount FROM orders o JOIN customers c ON o.customer_id = c.id
         WHERE o.status = 'paid' ORDER BY o.amount DESC, o.id LIMIT 5",
    )?;

    let start = Instant::now();
    engine.insert_many(
        "customers",
        (1..=customers).map(|i| {
            vec![Value::Int(i), Value::text(format!("customer_{i}")), Value::text(format!("region_{}", i % 7))]
        }),
    )?;
    engine.insert_many(
        "products",
        (1..=products).map(|i| {
            vec![
                Value::Int(i),
                Value::text(format!("product_{i}")),
                Value::text(format!("cat_{}", i % 12)),
                Value::Float((i % 500) as f64 + 0.99),
            ]
        }),
    )?;
    let mut orders: Vec<Vec<Value>> = (1..=n_orders).map(|i| order(&mut rng, i, customers, products)).collect();
    engine.insert_many("orders", orders.clone())?;
    println!(
        "loaded {customers} customers, {products} products, {n_orders} orders in {:.2}s",
        start.elapsed().as_secs_f64()
    );

    // Views registered after the data: filled from what the engine already holds.
    let categories = engine.from_sql(
        "SELECT p.category, COUNT(DISTINCT o.customer_id) AS buyers, AVG(o.amount) AS avg_amount
         FROM orders o JOIN products p ON o.product_id = p.id GROUP BY p.category ORDER BY p.category",
    )?;
    let pending =
        engine.from_sql("SELECT COUNT(*) AS pending, SUM(amount) AS value FROM orders WHERE status = 'pending'")?;
    let quiet = engine.from_sql(
        "SELECT c.region, COUNT(*) AS customers_without_orders
         FROM customers c LEFT JOIN orders o ON o.customer_id = c.id
         WHERE o.id IS NULL GROUP BY c.region ORDER BY c.region",
    )?;

    println!("\nthe views now:");
    show("revenue by region", &revenue, 7)?;
    show("top paid orders", &top, 5)?;
    show("categories", &categories, 3)?;
    show("pending", &pending, 1)?;
    show("regions' customers without orders", &quiet, 3)?;

    let mut next_id = n_orders + 1;
    for round in 1..=rounds {
        // A round: 2,000 transactions of 1–5 changes each.
        let mut latencies = Vec::new();
        let mut events = 0;
        let started = Instant::now();
        for _ in 0..2_000 {
            let mut txn = Vec::new();
            for _ in 0..1 + rng.below(5) {
                let pick = rng.below(orders.len() as u64) as usize;
                match rng.below(10) {
                    0..=4 => {
                        let row = order(&mut rng, next_id, customers, products);
                        next_id += 1;
                        orders.push(row.clone());
                        txn.push(Change::insert("orders", row));
                    }
                    5..=7 => {
                        let old = orders[pick].clone();
                        let mut new = old.clone();
                        new[4] = Value::text(STATUSES[rng.below(3) as usize]);
                        new[3] = Value::Float((100 + rng.below(99_900)) as f64 / 100.0);
                        orders[pick] = new.clone();
                        txn.push(Change::update("orders", old, new));
                    }
                    _ => {
                        let old = orders.swap_remove(pick);
                        txn.push(Change::delete("orders", old));
                    }
                }
            }
            events += txn.len();
            let t = Instant::now();
            engine.apply(txn)?;
            latencies.push(t.elapsed());
        }
        latencies.sort();
        let total = started.elapsed().as_secs_f64();
        println!(
            "\nround {round}: {events} changes in 2,000 transactions, {:.0} changes/s, latency p50 {:.1} µs, p99 {:.1} µs",
            events as f64 / total,
            latencies[latencies.len() / 2].as_secs_f64() * 1e6,
            latencies[latencies.len() * 99 / 100].as_secs_f64() * 1e6
        );
        let t = Instant::now();
        let batch = revenue.query()?;
        println!(
            "  (read 'revenue by region' as Arrow: {} rows in {:.1} µs)",
            batch.num_rows(),
            t.elapsed().as_secs_f64() * 1e6
        );
        show("revenue by region", &revenue, 3)?;
        show("top paid orders", &top, 3)?;
        show("pending", &pending, 1)?;
    }
    let stats = engine.stats();
    println!("\n{} base rows, {} operators in the graph", stats.base_rows, stats.nodes);
    Ok(())
}
