"""The Python API as applications call it: the seed example as written, each change
form, batches, views and their metadata."""

from __future__ import annotations

import datetime
import decimal
import sqlite3

import pytest

import ciuf
from ciuf import Engine, from_sql

from .conftest import VIEWS, assert_same


def test_the_seed_example_works_as_written(engine: Engine) -> None:
    engine.on_insert("products", {"id": 7, "name": "lamp", "category": "home", "price": 20.0})
    engine.on_insert("orders", {"id": 1, "amount": 99.0, "customer_id": 42, "product_id": 7})
    result = from_sql(
        engine,
        "SELECT orders.id, orders.amount, products.name FROM orders JOIN products"
        " ON orders.product_id = products.id WHERE orders.customer_id = 42",
    )
    assert result.query().to_dict(orient="records") == [{"id": 1, "amount": 99.0, "name": "lamp"}]
    engine.on_update(
        "orders",
        new={"id": 1, "amount": 50.0, "customer_id": 42, "product_id": 7},
        old={"id": 1, "amount": 99.0, "customer_id": 42, "product_id": 7},
    )
    assert result.query().to_dicts() == [{"id": 1, "amount": 50.0, "name": "lamp"}]
    engine.on_update("orders", new={"id": 1, "customer_id": 43})  # by key; other columns kept
    assert result.query().to_dicts() == []
    engine.on_update("orders", {"id": 1, "customer_id": 42})
    engine.on_delete("orders", {"id": 1})
    assert len(result) == 0


def test_rows_in_column_order_and_by_name_are_the_same(engine: Engine) -> None:
    v = engine.from_sql("SELECT id, name, region FROM customers")
    engine.on_insert("customers", (1, "ann", "north"))
    engine.on_insert("customers", [2, "bob", None])
    engine.on_insert("customers", {"id": 3, "name": "cy"})
    assert sorted(v.query().rows()) == [(1, "ann", "north"), (2, "bob", None), (3, "cy", None)]
    engine.on_delete("customers", (2, "bob", None))
    assert sorted(v.query().rows()) == [(1, "ann", "north"), (3, "cy", None)]


def test_apply_is_one_transaction_of_mixed_changes(engine: Engine) -> None:
    v = engine.from_sql("SELECT customer_id, COUNT(*) AS n, SUM(amount) AS total FROM orders GROUP BY customer_id")
    engine.insert_many("orders", [{"id": i, "customer_id": i % 3, "amount": float(i)} for i in range(10)])
    engine.apply(
        [
            ("insert", "orders", {"id": 100, "customer_id": 0, "amount": 1.5}),
            ("update", "orders", {"id": 1, "amount": 10.0}),
            ("update", "orders", {"id": 2, "customer_id": 2, "amount": 2.0}, {"id": 2, "customer_id": 2, "amount": 2.0}),
            {"op": "delete", "table": "orders", "row": {"id": 3}},
            {"op": "update", "table": "orders", "new": {"id": 4, "customer_id": 0}},
            ["delete", "orders", {"id": 5}],
        ]
    )
    got = {r["customer_id"]: (r["n"], r["total"]) for r in v.query().to_dicts()}
    assert got == {0: (5, 0.0 + 6.0 + 9.0 + 1.5 + 4.0), 1: (2, 10.0 + 7.0), 2: (2, 2.0 + 8.0)}


def test_the_same_sql_is_one_shared_view(engine: Engine) -> None:
    sql = "SELECT id FROM orders WHERE amount > 10"
    a, b = from_sql(engine, sql), engine.from_sql(sql)
    assert a == b and hash(a) == hash(b)
    assert a != engine.from_sql("SELECT id FROM orders WHERE amount > 11")


def test_view_metadata(engine: Engine) -> None:
    v = engine.from_sql("SELECT o.id, o.amount AS amt, o.status FROM orders o")
    assert v.columns == ["id", "amt", "status"]
    assert v.schema == {"id": "BIGINT", "amt": "DOUBLE", "status": "TEXT"}
    assert v.sql == "SELECT o.id, o.amount AS amt, o.status FROM orders o"
    assert v.name is None and len(v) == 0
    before = v.version
    engine.on_insert("orders", {"id": 1, "amount": 2.0})
    assert v.version != before and len(v) == 1
    named = engine.create_view("big", "SELECT id FROM orders WHERE amount > 1")
    assert named.name == "big" and engine.view("big") == named and engine.view("nope") is None
    engine.drop_view(named)
    assert engine.view("big") is None


def test_execute_returns_views_and_explain_text(engine: Engine) -> None:
    assert engine.execute("INSERT INTO orders (id, amount) VALUES (1, 5.0), (2, 6.0)") is None
    v = engine.execute("SELECT SUM(amount) AS s FROM orders")
    assert isinstance(v, ciuf.View) and v.query().to_dicts() == [{"s": 11.0}]
    text = engine.execute("EXPLAIN SELECT id FROM orders WHERE amount > 1")
    assert isinstance(text, str) and "orders" in text
    assert "orders" in engine.explain("SELECT id FROM orders")
    assert engine.tables() == ["customers", "products", "orders"]


def test_every_column_type_goes_in_and_comes_back() -> None:
    e = Engine()
    e.execute(
        "CREATE TABLE t (i BIGINT PRIMARY KEY, s SMALLINT, n INTEGER, f DOUBLE, d DECIMAL(10,2),"
        " x TEXT, b BOOLEAN, day DATE, at TIMESTAMP)"
    )
    v = e.from_sql("SELECT * FROM t")
    row = {
        "i": 2**62,
        "s": -3,
        "n": 70000,
        "f": 1.25,
        "d": decimal.Decimal("12.34"),
        "x": "héllo ☃",
        "b": True,
        "day": datetime.date(1969, 12, 31),
        "at": datetime.datetime(2024, 2, 29, 23, 59, 58, 123456),
    }
    e.on_insert("t", row)
    e.on_insert("t", {"i": 1})
    rows = sorted(v.query().to_dicts(), key=lambda r: r["i"])
    assert rows[1] == row
    assert rows[0] == {k: (1 if k == "i" else None) for k in row}
    aware = datetime.datetime(2024, 1, 1, 12, 0, tzinfo=datetime.timezone(datetime.timedelta(hours=2)))
    e.on_update("t", {"i": 1, "at": aware, "d": 3, "f": 2})
    got = [r for r in v.query().to_dicts() if r["i"] == 1][0]
    assert got["at"] == datetime.datetime(2024, 1, 1, 10, 0)
    assert got["d"] == decimal.Decimal("3.00") and got["f"] == 2.0


def test_numpy_scalars_are_numbers() -> None:
    import numpy as np  # comes with pandas and pyarrow in the test extras
    e = Engine()
    e.execute("CREATE TABLE t (i BIGINT, f DOUBLE)")
    e.on_insert("t", {"i": np.int64(5), "f": np.float32(0.5)})
    assert e.from_sql("SELECT i, f FROM t").query().rows() == [(5, 0.5)]


def test_engine_urls() -> None:
    assert Engine("memory:").tables() == []
    with pytest.raises(ciuf.ConnectionError) as e:
        Engine("mysql://localhost/db")
    assert "mysql" in str(e.value) and e.value.retryable is False


def test_a_random_stream_matches_sqlite(engine: Engine, oracle: sqlite3.Connection) -> None:
    """Random changes through every Python entry point; after each, every view equals
    SQLite's answer on the same data."""
    import random

    rng = random.Random(7)
    views = [
        engine.from_sql(sql)
        for sql in [*VIEWS, "SELECT c.name, o.id FROM customers c LEFT JOIN orders o ON o.customer_id = c.id"]
    ]
    for i in range(20):
        c = {"id": i, "name": f"c{i}", "region": f"r{i % 3}"}
        p = {"id": i, "name": f"p{i}", "category": f"c{i % 4}", "price": float(i)}
        engine.on_insert("customers", c)
        engine.on_insert("products", p)
        oracle.execute("INSERT INTO customers VALUES (:id, :name, :region)", c)
        oracle.execute("INSERT INTO products VALUES (:id, :name, :category, :price)", p)
    live: dict[int, dict[str, object]] = {}
    next_id = 0

    def order() -> dict[str, object]:
        return {
            "customer_id": rng.randrange(22),
            "product_id": rng.randrange(22),
            "amount": float(rng.randrange(100)),
            "status": rng.choice(["paid", "pending", "refunded", None]),
        }

    for step in range(150):
        kind = rng.random()
        if kind < 0.5 or not live:
            rows = []
            for _ in range(rng.randrange(1, 4)):
                r = {"id": next_id, **order()}
                next_id += 1
                rows.append(r)
            if len(rows) == 1:
                engine.on_insert("orders", rows[0])
            else:
                engine.insert_many("orders", rows)
            for r in rows:
                live[r["id"]] = r  # type: ignore[index]
                oracle.execute("INSERT INTO orders VALUES (:id, :customer_id, :product_id, :amount, :status)", r)
        elif kind < 0.8:
            oid = rng.choice(list(live))
            new = {"id": oid, **order()}
            if rng.random() < 0.5:
                engine.on_update("orders", new=new, old=live[oid])
            else:
                engine.apply([("update", "orders", new)])
            live[oid] = new
            oracle.execute(
                "UPDATE orders SET customer_id=:customer_id, product_id=:product_id, amount=:amount,"
                " status=:status WHERE id=:id",
                new,
            )
        else:
            oid = rng.choice(list(live))
            engine.on_delete("orders", live.pop(oid) if rng.random() < 0.5 else {"id": live.pop(oid)["id"]})
            oracle.execute("DELETE FROM orders WHERE id = ?", (oid,))
        for v in views:
            assert_same(v, oracle)


def test_a_closed_engine_refuses_work_and_its_views_stay_readable() -> None:
    with Engine() as e:
        e.execute("CREATE TABLE t (a BIGINT)")
        v = e.from_sql("SELECT a FROM t")
        e.on_insert("t", [1])
        assert not e.closed
    assert e.closed and "closed" in repr(e)
    with pytest.raises(ciuf.Error, match="closed"):
        e.on_insert("t", [2])
    with pytest.raises(ciuf.Error, match="closed"):
        e.from_sql("SELECT a FROM t")
    assert v.query().rows() == [(1,)]
    e.close()
