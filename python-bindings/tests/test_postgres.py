"""Engine("postgresql://...") from Python: the PostgreSQL source, with its errors as
Python exceptions. Every view is compared with the same query run on PostgreSQL."""

from __future__ import annotations

import time
from collections import Counter
from decimal import Decimal
from typing import Any

import pytest

import ciuf
from ciuf import Engine

from .pg import PASSWORD, Server, pg  # noqa: F401 - pg is a fixture


def rows_of_pg(server: Server, sql: str) -> Counter[tuple[str, ...]]:
    out = server.sql_as_app(f"COPY ({sql}) TO STDOUT")
    return Counter(tuple(line.split("\t")) for line in out.splitlines() if line)


def as_text(v: Any) -> str:
    if v is None:
        return "\\N"
    if isinstance(v, Decimal):
        return str(v)
    return str(v)


def wait_until(cond: Any, what: str) -> None:
    deadline = time.monotonic() + 20
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def test_views_follow_postgres(pg: Server) -> None:  # noqa: F811
    pg.sql_as_app(
        "CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint, amount numeric(10,2), status text);"
        "CREATE TABLE marker (id bigint PRIMARY KEY); INSERT INTO marker VALUES (0);"
        "INSERT INTO orders SELECT g, g % 7, g * 1.5, CASE WHEN g % 3 = 0 THEN 'paid' ELSE 'open' END"
        " FROM generate_series(1, 200) g;"
    )
    for url in [pg.url, pg.url.replace("postgresql://", "postgresql+psycopg://")]:
        with Engine(url) as engine:
            marker = engine.from_sql("SELECT id FROM marker")
            views = [
                engine.from_sql("SELECT customer_id, COUNT(*) AS n, SUM(amount) AS total FROM orders"
                                " WHERE status = 'paid' GROUP BY customer_id"),
                engine.from_sql("SELECT id, amount FROM orders WHERE amount > 250"),
            ]
            for k in range(1, 6):
                m = int(pg.sql_as_app("SELECT id FROM marker")) + 1
                pg.sql_as_app(
                    f"BEGIN; INSERT INTO orders VALUES ({1000 * k + m}, {k}, {k * 100}, 'paid');"
                    f"UPDATE orders SET amount = amount + 1 WHERE id = {k};"
                    f"DELETE FROM orders WHERE id = {10 + k}; UPDATE marker SET id = {m}; COMMIT;"
                )
                wait_until(lambda: marker.query().to_dicts() == [{"id": m}], f"marker {m}")
                for v in views:
                    got = Counter(tuple(as_text(x) for x in r) for r in v.query().rows())
                    assert got == rows_of_pg(pg, v.sql), v.sql
            status = engine.source_status()
            assert status is not None and status["streaming"] and status["transactions"] >= 5
        # Closed: ciuf's slot and publication are gone.
        assert pg.psql("SELECT count(*) FROM pg_replication_slots") == "0"


def test_postgres_errors_are_python_exceptions(pg: Server) -> None:  # noqa: F811
    bad = pg.url.replace(PASSWORD, "hunter2")
    with pytest.raises(ciuf.ConnectionError) as e:
        Engine(bad)
    assert "password authentication failed" in str(e.value) and "hunter2" not in str(e.value)
    with pytest.raises(ciuf.ConnectionError, match="cannot reach PostgreSQL"):
        Engine("postgresql://app:x@127.0.0.1:1/shop")
    pg.sql_as_app("CREATE TABLE nokey (a int)")
    with Engine(pg.url) as engine:
        with pytest.raises(ciuf.ConnectionError, match="REPLICA IDENTITY FULL"):
            engine.from_sql("SELECT a FROM nokey")
        with pytest.raises(ciuf.SqlError, match="unknown table nothere"):
            engine.from_sql("SELECT * FROM nothere")


def test_given_slot_and_publication_names(pg: Server) -> None:  # noqa: F811
    pg.sql_as_app("CREATE TABLE items (id bigint PRIMARY KEY, name text); INSERT INTO items VALUES (1, 'a');")
    pg.psql("CREATE PUBLICATION mine FOR TABLE items", db="shop")
    with Engine(pg.url, slot="my_slot", publication="mine") as engine:
        engine.load_tables(["items"])
        assert pg.psql("SELECT slot_name FROM pg_replication_slots") == "my_slot"
        assert engine.from_sql("SELECT name FROM items").query().to_dicts() == [{"name": "a"}]
    # A publication given by the user is the user's: it stays.
    assert pg.psql("SELECT count(*) FROM pg_publication WHERE pubname = 'mine'", db="shop") == "1"
    # The slot ciuf made under that name was dropped at close; a slot that exists
    # already is not taken over.
    assert pg.psql("SELECT count(*) FROM pg_replication_slots") == "0"
    pg.psql("SELECT pg_create_logical_replication_slot('taken', 'pgoutput')", db="shop")
    with Engine(pg.url, slot="taken", publication="mine") as engine:
        with pytest.raises(ciuf.ConnectionError, match="already exists"):
            engine.load_tables(["items"])
    pg.psql("SELECT pg_drop_replication_slot('taken')", db="shop")
