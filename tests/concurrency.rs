//! Readers on other threads always see whole transactions.
//!
//! A writer moves money between accounts, one transfer per transaction (two updates),
//! and inserts pairs of rows; readers on other threads read the views continuously and
//! check invariants that hold only between whole transactions: the total never
//! changes, and the number of ledger rows is always even.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type};
use ciuf::{Change, Engine, Value, View};

fn assert_send_sync<T: Send + Sync>() {}

#[test]
fn engine_and_views_are_send_and_sync() {
    assert_send_sync::<Engine>();
    assert_send_sync::<View>();
    assert_send_sync::<ciuf::core::Database>();
}

#[test]
fn readers_see_whole_transactions_while_a_writer_runs() {
    let engine = Engine::in_memory();
    engine
        .execute(
            "CREATE TABLE accounts (id BIGINT PRIMARY KEY, balance DOUBLE);
             CREATE TABLE ledger (id BIGINT PRIMARY KEY, account BIGINT, delta DOUBLE)",
        )
        .unwrap();
    const ACCOUNTS: i64 = 50;
    engine.insert_many("accounts", (0..ACCOUNTS).map(|i| vec![Value::Int(i), Value::Float(100.0)])).unwrap();
    let total = engine.from_sql("SELECT SUM(balance) AS total, COUNT(*) AS n FROM accounts").unwrap();
    let ledger = engine.from_sql("SELECT COUNT(*) AS n, SUM(delta) AS s FROM ledger").unwrap();
    let rich = engine.from_sql("SELECT id, balance FROM accounts ORDER BY balance DESC, id LIMIT 5").unwrap();

    let done = Arc::new(AtomicBool::new(false));
    let mut readers = Vec::new();
    for _ in 0..3 {
        let (total, ledger, rich, done) = (total.clone(), ledger.clone(), rich.clone(), Arc::clone(&done));
        readers.push(thread::spawn(move || {
            let mut reads = 0u64;
            while !done.load(Ordering::Relaxed) || reads < 100 {
                let t = total.query().unwrap();
                let sum = t.column(0).as_primitive::<Float64Type>().value(0);
                assert!((sum - 100.0 * ACCOUNTS as f64).abs() < 1e-6, "a reader saw half a transfer: {sum}");
                let l = ledger.query().unwrap();
                let n = l.column(0).as_primitive::<Int64Type>().value(0);
                assert_eq!(n % 2, 0, "a reader saw half of a pair of ledger rows");
                if n > 0 {
                    let s = l.column(1).as_primitive::<Float64Type>().value(0);
                    assert!(s.abs() < 1e-6, "ledger deltas come in opposite pairs: {s}");
                }
                assert_eq!(rich.len().unwrap(), 5);
                reads += 1;
            }
            reads
        }));
    }
    let writer = {
        let engine = engine.clone();
        thread::spawn(move || {
            let mut balances = vec![100.0f64; ACCOUNTS as usize];
            for i in 0..3000i64 {
                let (from, to) = ((i * 7) % ACCOUNTS, (i * 13 + 1) % ACCOUNTS);
                if from == to {
                    continue;
                }
                let amount = ((i % 17) + 1) as f64;
                let (f, t) = (balances[from as usize], balances[to as usize]);
                balances[from as usize] -= amount;
                balances[to as usize] += amount;
                engine
                    .apply([
                        Change::update(
                            "accounts",
                            vec![Value::Int(from), Value::Float(f)],
                            vec![Value::Int(from), Value::Float(f - amount)],
                        ),
                        Change::update(
                            "accounts",
                            vec![Value::Int(to), Value::Float(t)],
                            vec![Value::Int(to), Value::Float(t + amount)],
                        ),
                        Change::insert("ledger", vec![Value::Int(2 * i), Value::Int(from), Value::Float(-amount)]),
                        Change::insert("ledger", vec![Value::Int(2 * i + 1), Value::Int(to), Value::Float(amount)]),
                    ])
                    .unwrap();
            }
        })
    };
    writer.join().unwrap();
    done.store(true, Ordering::Relaxed);
    for r in readers {
        assert!(r.join().unwrap() >= 100);
    }
    let l = ledger.query().unwrap();
    assert!(l.column(0).as_primitive::<Int64Type>().value(0) > 5000);
}
