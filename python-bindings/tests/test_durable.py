"""A durable engine in Python: an app restarted (here, a subprocess killed with
SIGKILL) comes back with its tables and views, nothing acknowledged lost."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import ciuf

APP = textwrap.dedent(
    """
    import sys
    import ciuf

    engine = ciuf.Engine(state_dir=sys.argv[1], durability=sys.argv[2])
    if not engine.tables():
        engine.execute(
            "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer TEXT NOT NULL, amount REAL NOT NULL)"
        )
        engine.create_view("totals", "SELECT customer, COUNT(*) AS n, SUM(amount) AS total FROM orders GROUP BY customer")
    start = len(engine.from_sql("SELECT id FROM orders").query().to_dicts())
    for i in range(start, start + 100_000):
        engine.on_insert("orders", {"id": i, "customer": f"c{i % 7}", "amount": 1.5})
        # sync: durable once on_insert returns; grouped: once sync() returns.
        if sys.argv[2] == "grouped" and i % 100 == 99:
            engine.sync()
        if sys.argv[2] == "sync" or i % 100 == 99:
            print(i, flush=True)
    """
)


def test_a_restart_after_a_checkpoint_takes_the_views_state_from_it(tmp_path: Path) -> None:
    state = tmp_path / "state"
    engine = ciuf.Engine(state_dir=state)
    engine.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, customer TEXT NOT NULL, amount REAL NOT NULL)")
    totals = engine.create_view(
        "totals", "SELECT customer, COUNT(*) AS n, SUM(amount) AS total FROM orders GROUP BY customer"
    )
    engine.insert_many("orders", [{"id": i, "customer": f"c{i % 7}", "amount": i / 3} for i in range(5_000)])
    engine.checkpoint()
    # After the checkpoint, in the log: an insert and a delete.
    engine.on_insert("orders", {"id": 5_000, "customer": "c9", "amount": 2.5})
    engine.on_delete("orders", {"id": 3, "customer": "c3", "amount": 1.0})
    expected = sorted(totals.query().to_dicts(), key=lambda r: r["customer"])
    engine.close()

    engine = ciuf.Engine(state_dir=state)
    assert engine.stats()["restored_nodes"] == 1, "the aggregate's state came from the checkpoint"
    totals = engine.view("totals")
    assert totals is not None
    assert sorted(totals.query().to_dicts(), key=lambda r: r["customer"]) == expected
    engine.close()


@pytest.mark.parametrize("durability", ["sync", "grouped"])
def test_an_app_killed_and_restarted_keeps_its_tables_and_views(tmp_path: Path, durability: str) -> None:
    state = tmp_path / "state"
    acknowledged = -1
    for round_ in range(3):
        app = subprocess.Popen(
            [sys.executable, "-c", APP, str(state), durability], stdout=subprocess.PIPE, text=True
        )
        assert app.stdout is not None
        for _ in range(300 + 200 * round_):
            line = app.stdout.readline()
            if not line:
                break
            acknowledged = max(acknowledged, int(line))
        os.kill(app.pid, signal.SIGKILL)
        app.wait()
        acknowledged = max([acknowledged, *(int(x) for x in app.stdout.read().split())])

        engine = ciuf.Engine(state_dir=state)
        assert engine.state_dir == state
        totals = engine.view("totals")
        assert totals is not None, "the named view is back without registering it"
        ids = sorted(r["id"] for r in engine.from_sql("SELECT id FROM orders").query().to_dicts())
        assert ids == list(range(len(ids))), "nothing twice, nothing skipped"
        assert len(ids) > acknowledged, f"order {acknowledged} was acknowledged, then lost"
        rows = {r["customer"]: (r["n"], r["total"]) for r in totals.query().to_dicts()}
        expected: dict[str, tuple[int, float]] = {}
        for i in ids:
            n, t = expected.get(f"c{i % 7}", (0, 0.0))
            expected[f"c{i % 7}"] = (n + 1, t + 1.5)
        assert rows == expected
        engine.close()
    assert acknowledged > 0


def test_state_errors_are_clear(tmp_path: Path) -> None:
    state = tmp_path / "s"
    with pytest.raises(ValueError, match="durability"):
        ciuf.Engine(state_dir=state, durability="sometimes")  # type: ignore[arg-type]
    engine = ciuf.Engine(state_dir=state)
    with pytest.raises(ciuf.StateError, match="in use"):
        ciuf.Engine(state_dir=state)
    with pytest.raises(ciuf.StateError, match="in use"):
        ciuf.drop_state(state)
    engine.execute("CREATE TABLE t (a INTEGER)")
    engine.on_insert("t", {"a": 1})
    engine.close()
    (state / "FORMAT").write_text("ciuf state directory, format 0\n")
    with pytest.raises(ciuf.StateError, match="format 0"):
        ciuf.Engine(state_dir=state)


def test_a_checkpoint_on_demand_is_what_the_next_start_reads(tmp_path: Path) -> None:
    state = tmp_path / "s"
    engine = ciuf.Engine(state_dir=state)
    engine.execute("CREATE TABLE t (a INTEGER PRIMARY KEY, b TEXT)")
    engine.create_view("bs", "SELECT b, COUNT(*) AS n FROM t GROUP BY b")
    engine.insert_many("t", [{"a": i, "b": f"b{i % 3}"} for i in range(1000)])
    assert not list(state.glob("checkpoint-*.ciuf"))
    engine.checkpoint()
    assert len(list(state.glob("checkpoint-*.ciuf"))) == 1
    engine.on_delete("t", {"a": 0, "b": "b0"})
    engine.close()
    engine = ciuf.Engine(state_dir=state)
    view = engine.view("bs")
    assert view is not None
    assert sorted((r["b"], r["n"]) for r in view.query().to_dicts()) == [("b0", 333), ("b1", 333), ("b2", 333)]
    ciuf.Engine().checkpoint()  # nothing to do without a state directory
    engine.close()


FOLLOWER = textwrap.dedent(
    """
    import sys, time
    import ciuf

    engine = ciuf.Engine("sqlite:///" + sys.argv[1], state_dir=sys.argv[2])
    if engine.view("by_status") is None:
        engine.create_view("by_status", "SELECT status, COUNT(*) AS n, SUM(amount) AS total FROM orders GROUP BY status")
    print("ready", flush=True)
    time.sleep(60)
    """
)


def test_a_sqlite_follower_restarts_without_reading_its_tables_again(tmp_path: Path) -> None:
    db, state = tmp_path / "app.db", tmp_path / "state"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, status TEXT NOT NULL, amount INTEGER NOT NULL)")
    conn.executemany("INSERT INTO orders VALUES (?, ?, ?)", [(i, f"s{i % 3}", i) for i in range(5000)])
    conn.commit()
    app = subprocess.Popen([sys.executable, "-c", FOLLOWER, str(db), str(state)], stdout=subprocess.PIPE, text=True)
    assert app.stdout is not None and app.stdout.readline().strip() == "ready"
    conn.execute("UPDATE orders SET status = 'done' WHERE id < 100")
    conn.commit()
    os.kill(app.pid, signal.SIGKILL)
    app.wait()
    # Written while nothing follows.
    conn.execute("DELETE FROM orders WHERE id >= 4900")
    conn.commit()

    engine = ciuf.Engine(f"sqlite:///{db}", state_dir=state)
    view = engine.view("by_status")
    assert view is not None
    expected = {
        s: (n, t) for s, n, t in conn.execute("SELECT status, COUNT(*), SUM(amount) FROM orders GROUP BY status")
    }
    for _ in range(500):
        if {r["status"]: (r["n"], r["total"]) for r in view.query().to_dicts()} == expected:
            break
        time.sleep(0.01)
    assert {r["status"]: (r["n"], r["total"]) for r in view.query().to_dicts()} == expected
    status = engine.source_status()
    assert status is not None and status["rows_read"] == 0 and status["resyncs"] == 0, status
    engine.close()
