"""Engine("sqlite:///…"): a SQLite file followed, whoever writes to it — the sqlite3
module, SQLAlchemy — with every view equal to the file's own answer after each commit."""

from __future__ import annotations

import random
import sqlite3
import time
from pathlib import Path

import pytest
import sqlalchemy

import ciuf

from .conftest import SCHEMA, VIEWS, assert_same


def make_file(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None)
    for ddl in SCHEMA:
        db.execute(ddl)
    db.execute("BEGIN")
    for i in range(20):
        db.execute("INSERT INTO customers VALUES (?, ?, ?)", (i, f"c{i}", f"r{i % 3}"))
        db.execute("INSERT INTO products VALUES (?, ?, ?, ?)", (i, f"p{i}", f"c{i % 4}", i * 1.5))
    for i in range(200):
        db.execute(
            "INSERT INTO orders VALUES (?, ?, ?, ?, ?)",
            (i, i % 20, i % 20, (i * 37 % 1000) / 10, ("paid", "pending", "refunded")[i % 3]),
        )
    db.execute("COMMIT")
    return db


def wait_applied(engine: ciuf.Engine, db: sqlite3.Connection) -> None:
    """Until the engine has applied everything the file's change log holds."""
    want = db.execute("SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = '_ciuf_log'), 0)").fetchone()[0]
    deadline = time.monotonic() + 20
    while True:
        status = engine.source_status()
        assert status is not None and status["error"] is None, status
        if int(status["position"] or 0) >= want:
            return
        assert time.monotonic() < deadline, f"not applied up to {want}: {status}"
        time.sleep(0.001)


def random_transaction(db: sqlite3.Connection, rng: random.Random, next_id: list[int]) -> None:
    db.execute("BEGIN")
    for _ in range(rng.randint(1, 4)):
        r = rng.random()
        if r < 0.4:
            next_id[0] += 1
            db.execute(
                "INSERT INTO orders VALUES (?, ?, ?, ?, ?)",
                (next_id[0], rng.randrange(20), rng.randrange(20), rng.randrange(10000) / 100, rng.choice(["paid", "pending"])),
            )
        elif r < 0.7:
            db.execute("UPDATE orders SET amount = ?, status = ? WHERE id = ?",
                       (rng.randrange(100), rng.choice(["paid", "refunded"]), rng.randrange(next_id[0])))
        elif r < 0.9:
            db.execute("DELETE FROM orders WHERE id = ?", (rng.randrange(next_id[0]),))
        else:
            db.execute("UPDATE customers SET region = ? WHERE id = ?", (rng.choice(["r0", "r9"]), rng.randrange(20)))
    db.execute("ROLLBACK" if rng.random() < 0.2 else "COMMIT")


def test_a_file_written_by_the_sqlite3_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = make_file(tmp_path / "app.db")
    monkeypatch.chdir(tmp_path)
    engine = ciuf.Engine("sqlite:///./app.db")  # SQLAlchemy's relative form
    views = [engine.from_sql(q) for q in VIEWS]
    for v in views:
        assert_same(v, db)
    rng, next_id = random.Random(3), [200]
    for _ in range(60):
        random_transaction(db, rng, next_id)
        wait_applied(engine, db)
        for v in views:
            assert_same(v, db)
    engine.close()


def test_a_file_written_through_sqlalchemy(tmp_path: Path) -> None:
    path = tmp_path / "shop.db"
    db = make_file(path)
    engine = ciuf.Engine(f"sqlite:///{path}")  # an absolute path: SQLAlchemy's sqlite:////…
    totals = engine.from_sql(VIEWS[2])
    sa = sqlalchemy.create_engine(f"sqlite:///{path}")
    with sa.begin() as conn:
        conn.execute(sqlalchemy.text("UPDATE orders SET status = 'paid' WHERE customer_id = 3"))
        conn.execute(sqlalchemy.text("INSERT INTO orders VALUES (1000, 3, 1, 99.5, 'paid')"))
    try:
        with sa.begin() as conn:
            conn.execute(sqlalchemy.text("DELETE FROM orders"))
            raise RuntimeError("roll back")
    except RuntimeError:
        pass
    wait_applied(engine, db)
    assert_same(totals, db)
    sa.dispose()
    engine.close()


def test_sqlite_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ciuf.ConnectionError, match="does not exist"):
        ciuf.Engine(f"sqlite:///{tmp_path}/missing.db")
    db = make_file(tmp_path / "app.db")
    engine = ciuf.Engine(f"sqlite:///{tmp_path}/app.db", capture=False)
    with pytest.raises(ciuf.ConnectionError, match="ciuf capture install"):
        engine.from_sql("SELECT COUNT(*) FROM orders")
    engine.close()
    db.close()
