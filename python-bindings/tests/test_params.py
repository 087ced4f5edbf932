"""Parameterized views from Python: view.query(42) and view.query(customer_id=42),
full and partial, and string-built SQL served by one view — each read compared with
SQLite running the query with the same values."""

from __future__ import annotations

import random
import sqlite3

import pytest

import ciuf

from .conftest import bag


def setup() -> tuple[ciuf.Engine, sqlite3.Connection]:
    engine = ciuf.Engine()
    db = sqlite3.connect(":memory:")
    for ddl in [
        "CREATE TABLE orders (id BIGINT PRIMARY KEY, customer_id BIGINT, amount DOUBLE, status TEXT)",
    ]:
        engine.execute(ddl)
        db.execute(ddl)
    return engine, db


def test_query_by_position_and_by_name_equals_sqlite() -> None:
    engine, db = setup()
    rng = random.Random(5)
    by_pos = engine.from_sql("SELECT status, COUNT(*), SUM(amount) FROM orders WHERE customer_id = $1 GROUP BY status")
    by_name = engine.from_sql("SELECT id, amount FROM orders WHERE customer_id = :customer AND status = :status")
    partial = engine.from_sql(
        "SELECT COUNT(*), MAX(amount) FROM orders WHERE customer_id = ?", partial=True, max_keys=3
    )
    assert by_pos.params == ["customer_id"]
    assert by_name.params == ["customer", "status"]
    next_id = 0
    for _ in range(60):
        rows = []
        for _ in range(rng.randint(1, 4)):
            next_id += 1
            row = {"id": next_id, "customer_id": rng.randrange(8), "amount": rng.randrange(100) / 4,
                   "status": rng.choice(["paid", "pending"])}
            rows.append(("insert", "orders", row))
            db.execute("INSERT INTO orders VALUES (:id, :customer_id, :amount, :status)", row)
        if next_id > 5 and rng.random() < 0.5:
            gone = rng.randrange(1, next_id)
            if db.execute("SELECT 1 FROM orders WHERE id = ?", (gone,)).fetchone():
                rows.append(("delete", "orders", {"id": gone}))
                db.execute("DELETE FROM orders WHERE id = ?", (gone,))
        engine.apply(rows)
        for _ in range(3):
            c, s = rng.randrange(10), rng.choice(["paid", "pending"])
            assert bag(by_pos.query(c).rows()) == bag(db.execute(by_pos.sql, (c,)).fetchall())
            got = bag(by_name.query(customer=c, status=s).rows())
            assert got == bag(db.execute(by_name.sql, {"customer": c, "status": s}).fetchall())
            assert bag(partial.query(c).rows()) == bag(db.execute(partial.sql, (c,)).fetchall())


def test_string_built_sql_is_a_lookup_in_one_view() -> None:
    engine, db = setup()
    for i in range(50):
        row = (i, i % 5, float(i), "paid" if i % 2 else "pending")
        engine.on_insert("orders", row)
        db.execute("INSERT INTO orders VALUES (?, ?, ?, ?)", row)
    before = engine.stats()["nodes"]
    for customer in [1, 2, 3, 4, 2, 1, 0, 7]:
        sql = f"SELECT id, amount FROM orders WHERE customer_id = {customer}"
        assert bag(ciuf.from_sql(engine, sql).query().rows()) == bag(db.execute(sql).fetchall())
    assert engine.stats()["nodes"] - before < 8, "one view for the shape, not one per customer"


def test_parameter_errors() -> None:
    engine, _ = setup()
    view = engine.from_sql("SELECT id FROM orders WHERE customer_id = $1")
    with pytest.raises(ciuf.SqlError, match="takes parameters"):
        view.query()
    with pytest.raises(ciuf.SqlError, match="is a BIGINT"):
        view.query("x")
    with pytest.raises(ciuf.SqlError, match="no value for parameter customer_id"):
        view.query(customer=1)
    with pytest.raises(TypeError, match="not both"):
        view.query(1, customer_id=1)
    with pytest.raises(ValueError, match="partial=True"):
        engine.from_sql("SELECT id FROM orders WHERE customer_id = $1", max_keys=3)
