"""Random bad input — SQL text and rows, mutated and generated — never crashes the
process, never raises anything but a `ciuf.Error` (or a `TypeError` for an argument of
the wrong Python type), and a call that raises changes nothing."""

from __future__ import annotations

import math
import random
from typing import Any, Callable

import pytest

import ciuf
from ciuf import Engine

SCHEMA = (
    "CREATE TABLE t (id INTEGER PRIMARY KEY, a INTEGER, b REAL, c TEXT, d NUMERIC);"
    "CREATE TABLE u (k TEXT PRIMARY KEY, v INTEGER NOT NULL);"
)

GOOD_SQL = [
    "SELECT id, a + b, c || 'x' FROM t WHERE a > 1",
    "SELECT c, COUNT(*), SUM(b) FROM t GROUP BY c HAVING COUNT(*) > 1",
    "SELECT t.id, u.v FROM t JOIN u ON t.c = u.k",
    "SELECT id FROM t WHERE a IN (SELECT v FROM u) ORDER BY id LIMIT 3",
    "WITH w AS (SELECT a FROM t) SELECT a FROM w UNION SELECT v FROM u",
    "INSERT INTO t VALUES (100, 1, 2.5, 'x', 3)",
    "CREATE VIEW vv AS SELECT k FROM u",
    "DROP VIEW vv",
]

NOISE = [
    "", " ", ";", "(", ")", "((((", "'", '"', "`", "\\", "\x00", "\ud800", "é", "💥", "--", "/*", "*/",
    "SELECT", "FROM", "WHERE", "NULL", "1e999", "-9223372036854775809", "9" * 400, "x" * 5000,
    " OR a = 1" * 50, "CAST(", "AS DATE", "'99999-01-01'", "$1", "?", ":p", "TABLESAMPLE", "main.", "a.b.c.",
    "UNION", "EXCEPT", "ALL", "DISTINCT", "GROUP BY", "ORDER BY", "LIMIT -1", "OFFSET", "JOIN", "ON",
]


def mutate(rng: random.Random, sql: str) -> str:
    s = sql
    for _ in range(rng.randint(1, 4)):
        at = rng.randint(0, len(s))
        choice = rng.random()
        if choice < 0.4:
            s = s[:at] + rng.choice(NOISE) + s[at:]
        elif choice < 0.7 and s:
            end = min(len(s), at + rng.randint(1, 12))
            s = s[:at] + s[end:]
        else:
            s = s[:at] + chr(rng.randint(1, 0x2FF)) + s[at:]
    return s


VALUES: list[Any] = [
    None, 0, 1, -1, 2**63 - 1, -(2**63), 2**64, 1.5, math.nan, math.inf, -0.0, "", "x", "\ud800", "é" * 300,
    b"bytes", [1, 2], {"a": 1}, object(), True, 10**100, "1e400", "99999-01-01",
]


def good_row(rng: random.Random, table: str) -> Any:
    if table == "u":
        return {"k": rng.choice(["x", "y", "z"]), "v": rng.randint(-5, 5)}
    return {
        "id": rng.randint(1, 20),
        "a": rng.choice([None, rng.randint(-9, 9)]),
        "b": rng.choice([None, rng.random()]),
        "c": rng.choice([None, "x", "y"]),
        "d": rng.choice([None, 1, 2.5]),
    }


def random_row(rng: random.Random) -> Any:
    columns = ["id", "a", "b", "c", "d", "k", "v", "ID", "Id", "nope", "\ud800"]
    if rng.random() < 0.5:
        return {rng.choice(columns): rng.choice(VALUES) for _ in range(rng.randint(0, 6))}
    return tuple(rng.choice(VALUES) for _ in range(rng.randint(0, 6)))


def state(engine: Engine, views: list[ciuf.View]) -> tuple[Any, ...]:
    def key(rows: list[dict[str, Any]]) -> list[str]:
        return sorted(repr(sorted(r.items())) for r in rows)

    return (
        tuple(engine.tables()),
        tuple(tuple(key(v.query().to_dicts())) for v in views),
        engine.view("vv") is not None,
    )


def attempt(engine: Engine, views: list[ciuf.View], call: Callable[[], Any], what: str) -> bool:
    """Runs `call`; returns whether it succeeded. A failure must be a ciuf.Error (or a
    TypeError for a Python object of the wrong kind) and must change nothing."""
    before = state(engine, views)
    try:
        call()
        return True
    except (ciuf.Error, TypeError):
        after = state(engine, views)
        assert after == before, f"{what} failed and changed the state"
        return False


def test_random_bad_input_raises_ciuf_errors_and_changes_nothing() -> None:
    rng = random.Random(20261205)
    engine = Engine()
    engine.execute(SCHEMA)
    engine.on_insert("t", {"id": 1, "a": 2, "b": 0.5, "c": "x", "d": 4})
    engine.on_insert("u", {"k": "x", "v": 2})
    views = [engine.from_sql("SELECT * FROM t"), engine.from_sql("SELECT * FROM u")]
    ok = failed = 0
    for i in range(1500):
        sql = rng.choice(GOOD_SQL)
        if rng.random() < 0.8:
            sql = mutate(rng, sql)
        call: Callable[[], Any] = rng.choice([
            lambda: engine.from_sql(sql),
            lambda: engine.execute(sql),
            lambda: engine.explain(sql),
        ])
        if attempt(engine, views, call, f"SQL {sql!r}"):
            ok += 1
        else:
            failed += 1
        table = rng.choice(["t", "u", "nope", "\ud800", "T"])
        row = good_row(rng, table) if rng.random() < 0.4 else random_row(rng)
        op = rng.choice(["insert", "update", "delete", "apply"])
        if op == "insert":
            change: Callable[[], Any] = lambda: engine.on_insert(table, row)
        elif op == "update":
            change = lambda: engine.on_update(table, row, random_row(rng) if rng.random() < 0.5 else None)
        elif op == "delete":
            change = lambda: engine.on_delete(table, row)
        else:
            batch = [(rng.choice(["insert", "delete", "update", "upsert"]), table, random_row(rng)) for _ in range(3)]
            change = lambda: engine.apply(batch)
        if attempt(engine, views, change, f"{op} {table!r} {row!r}"):
            ok += 1
        else:
            failed += 1
    assert ok > 200 and failed > 1000, (ok, failed)
    # The engine still works.
    engine.on_insert("u", {"k": "fresh", "v": 1})
    assert any(r["k"] == "fresh" for r in views[1].query().to_dicts())


def test_each_small_wrong_acceptance_is_a_clear_ciuf_error() -> None:
    engine = Engine()
    engine.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, s TEXT, d DATE)")
    engine.on_insert("t", {"id": 1, "s": "a", "d": "2024-02-29"})
    with pytest.raises(ciuf.SqlError, match="lone surrogate"):
        engine.from_sql("SELECT '\ud800' FROM t")
    with pytest.raises(ciuf.SchemaError, match="the value for column s .*lone surrogate"):
        engine.on_insert("t", {"id": 2, "s": "\udcff"})
    with pytest.raises(ciuf.SchemaError, match="names column id twice"):
        engine.on_insert("t", {"id": 3, "ID": 4})
    with pytest.raises(ciuf.SqlError, match="select list"):
        engine.from_sql("SELECT FROM t")
    with pytest.raises(ciuf.SqlError, match="WITH names w twice"):
        engine.from_sql("WITH w AS (SELECT 1), w AS (SELECT 2) SELECT * FROM w")
    with pytest.raises(ciuf.SqlError, match="TABLESAMPLE"):
        engine.from_sql("SELECT id FROM t TABLESAMPLE BERNOULLI (50)")
    with pytest.raises(ciuf.SchemaError):
        engine.on_insert("t", {"id": 5, "d": "99999-01-01"})
    # A date no Python date can hold is no date: NULL, never a ValueError on reading.
    assert engine.from_sql("SELECT CAST('99999-01-01' AS DATE) AS d FROM t").query().to_dicts() == [{"d": None}]
    with pytest.raises(ciuf.SqlError) as refused:
        engine.from_sql("SELECT " + "q" * 100_000 + " FROM t")
    assert len(str(refused.value)) < 400
    assert [r["id"] for r in engine.from_sql("SELECT id FROM t").query().to_dicts()] == [1]
