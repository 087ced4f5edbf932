"""Shared fixtures: an engine with the reference workload's three tables, and a SQLite
connection holding the same rows, the oracle every view is compared with."""

from __future__ import annotations

import sqlite3
from collections import Counter
from typing import Any, Iterable

import pytest

import ciuf

SCHEMA = [
    "CREATE TABLE customers (id BIGINT PRIMARY KEY, name TEXT, region TEXT)",
    "CREATE TABLE products (id BIGINT PRIMARY KEY, name TEXT, category TEXT, price DOUBLE)",
    "CREATE TABLE orders (id BIGINT PRIMARY KEY, customer_id BIGINT, product_id BIGINT,"
    " amount DOUBLE, status TEXT)",
]


VIEWS = [
    "SELECT id, customer_id, amount FROM orders WHERE status = 'paid' AND amount > 50",
    "SELECT o.id, o.amount, p.name, p.category FROM orders o JOIN products p ON o.product_id = p.id"
    " WHERE p.category = 'c1'",
    "SELECT customer_id, COUNT(*) AS n, SUM(amount) AS total FROM orders WHERE status <> 'refunded'"
    " GROUP BY customer_id",
    "SELECT c.region, p.category, COUNT(*) AS n, SUM(o.amount) AS revenue FROM orders o"
    " JOIN customers c ON o.customer_id = c.id JOIN products p ON o.product_id = p.id"
    " GROUP BY c.region, p.category",
]
"""The reference workload's views, small: compared with SQLite after every change."""


@pytest.fixture
def engine() -> ciuf.Engine:
    e = ciuf.Engine()
    for ddl in SCHEMA:
        e.execute(ddl)
    return e


@pytest.fixture
def oracle() -> Iterable[sqlite3.Connection]:
    db = sqlite3.connect(":memory:")
    for ddl in SCHEMA:
        db.execute(ddl)
    yield db
    db.close()


def normalize(value: Any) -> Any:
    """Values as SQLite returns them: floats rounded so sums compare, bools as ints."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float):
        return round(value, 6)
    return value


def bag(rows: Iterable[Iterable[Any]]) -> Counter[tuple[Any, ...]]:
    return Counter(tuple(normalize(v) for v in row) for row in rows)


def assert_same(view: ciuf.View, db: sqlite3.Connection) -> None:
    """The view holds exactly the rows SQLite's answer to the same query holds."""
    got = bag(view.query().rows())
    want = bag(db.execute(view.sql).fetchall())
    assert got == want, f"{view.sql}\nciuf only: {got - want}\nsqlite only: {want - got}"
