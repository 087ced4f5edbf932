"""Worker threads: large transactions (bulk inserts, big batches of changes) spread
over several threads give the same views as one thread, and as SQLite."""

from __future__ import annotations

import random
import sqlite3

import pyarrow as pa
import pytest

from ciuf import Engine

DDL = [
    "CREATE TABLE c (id BIGINT PRIMARY KEY, region TEXT)",
    "CREATE TABLE o (id BIGINT PRIMARY KEY, cid BIGINT, amount DOUBLE, status TEXT)",
]
VIEWS = [
    "SELECT c.region, COUNT(*), SUM(o.amount) FROM o JOIN c ON o.cid = c.id WHERE o.status = 'paid' GROUP BY c.region",
    "SELECT cid, COUNT(*), MAX(amount) FROM o GROUP BY cid",
    "SELECT DISTINCT status, cid % 7 FROM o",
    "SELECT id, amount FROM o ORDER BY amount DESC, id LIMIT 25",
    "SELECT o.id, c.region FROM o JOIN c ON o.cid = c.id WHERE o.amount > 900",
]


def canon(rows: list[tuple[object, ...]]) -> list[tuple[object, ...]]:
    return sorted(tuple(round(v, 6) if isinstance(v, float) else v for v in r) for r in rows)


def engine(threads: int) -> Engine:
    e = Engine(threads=threads)
    for ddl in DDL:
        e.execute(ddl)
    return e


def test_threads_is_an_engine_setting() -> None:
    e = Engine(threads=3)
    assert e.threads == 3
    e.threads = 1
    assert e.threads == 1
    with pytest.raises(ValueError, match="at least 1"):
        Engine(threads=0)
    with pytest.raises(ValueError, match="at least 1"):
        e.threads = 0


def test_bulk_transactions_give_the_same_views_on_any_number_of_threads() -> None:
    rng = random.Random(7)
    customers = [(i, f"r{i % 13}") for i in range(3000)]
    orders = [(i, rng.randrange(3000), float(rng.randrange(1000)), rng.choice(["paid", "open", "refunded"])) for i in range(20000)]
    # Half the views before the load (maintained through it), half after (built over it).
    engines = [engine(t) for t in (1, 2, 4)]
    early = [[e.from_sql(v) for v in VIEWS[::2]] for e in engines]
    for e in engines:
        e.insert_many("c", pa.table({"id": [c[0] for c in customers], "region": [c[1] for c in customers]}))
        e.insert_many("o", pa.table({k: [o[i] for o in orders] for i, k in enumerate(["id", "cid", "amount", "status"])}))
    late = [[e.from_sql(v) for v in VIEWS[1::2]] for e in engines]
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE c (id INTEGER PRIMARY KEY, region TEXT)")
    db.execute("CREATE TABLE o (id INTEGER PRIMARY KEY, cid INTEGER, amount REAL, status TEXT)")
    db.executemany("INSERT INTO c VALUES (?, ?)", customers)
    db.executemany("INSERT INTO o VALUES (?, ?, ?, ?)", orders)
    for round_ in range(3):
        # A batch of 6,000 changes: updates (customers moving region, orders changing
        # status and amount), deletes and inserts, in one transaction.
        changes: list[tuple[object, ...]] = []
        sql: list[tuple[str, tuple[object, ...]]] = []
        live = [o for o in orders if o is not None]
        for _ in range(2000):
            o = rng.choice(live)
            new = (o[0], o[1], float(rng.randrange(1000)), rng.choice(["paid", "open"]))
            changes.append(("update", "o", new, o))
            sql.append(("UPDATE o SET amount = ?, status = ? WHERE id = ?", (new[2], new[3], o[0])))
            orders[o[0]] = new
            live.remove(o)
        for _ in range(1000):
            o = rng.choice(live)
            changes.append(("delete", "o", o))
            sql.append(("DELETE FROM o WHERE id = ?", (o[0],)))
            orders[o[0]] = None  # type: ignore[call-overload]
            live.remove(o)
        for i in range(2000):
            cid = rng.randrange(3000)
            new_c = (cid, f"r{rng.randrange(13)}")
            changes.append(("update", "c", new_c, customers[cid]))
            sql.append(("UPDATE c SET region = ? WHERE id = ?", (new_c[1], cid)))
            customers[cid] = new_c
        for i in range(1000):
            oid = len(orders)
            o = (oid, rng.randrange(3000), float(rng.randrange(1000)), "paid")
            orders.append(o)
            changes.append(("insert", "o", o))
            sql.append(("INSERT INTO o VALUES (?, ?, ?, ?)", o))
        for e in engines:
            e.apply(changes)
        for stmt, params in sql:
            db.execute(stmt, params)
        for i, query in enumerate(VIEWS):
            expected = canon(db.execute(query).fetchall())
            for t, (e_early, e_late) in zip((1, 2, 4), zip(early, late)):
                view = (e_early if i % 2 == 0 else e_late)[i // 2]
                assert canon(view.query().rows()) == expected, f"round {round_}, {t} threads: {query}"


def test_a_forked_process_runs_large_transactions_on_threads_of_its_own() -> None:
    # A pre-forking server (gunicorn --preload) makes the engine, and its worker
    # threads, in the parent: the child has none of those threads and must not wait
    # for them.
    import os
    import time
    import warnings

    e = engine(2)
    v = e.from_sql("SELECT COUNT(*), SUM(amount) FROM o")
    rows = lambda lo, hi: pa.table(  # noqa: E731
        {"id": list(range(lo, hi)), "cid": [i % 10 for i in range(lo, hi)], "amount": [1.0] * (hi - lo), "status": ["paid"] * (hi - lo)}
    )
    e.insert_many("o", rows(0, 5000))
    assert v.query().rows() == [(5000, 5000.0)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork() of a process with threads
        pid = os.fork()
    if pid == 0:
        code = 2
        try:
            e.insert_many("o", rows(5000, 10000))
            code = 0 if v.query().rows() == [(10000, 10000.0)] else 1
        finally:
            os._exit(code)
    deadline = time.monotonic() + 60
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            raise AssertionError("the forked child hung on a large transaction")
        time.sleep(0.05)
    assert os.waitstatus_to_exitcode(status) == 0
    # The parent's engine and threads are as they were.
    e.insert_many("o", rows(20000, 25000))
    assert v.query().rows() == [(10000, 10000.0)]
