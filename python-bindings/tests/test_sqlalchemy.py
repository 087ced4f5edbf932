"""ciuf.sqlalchemy.track: ORM writes reach the views when they commit, never when they
roll back. After every transaction each view equals the same query run on the app's
SQLite database."""

from __future__ import annotations

import asyncio
import random
import sqlite3
from pathlib import Path
from typing import Any, Iterator

import pytest
from sqlalchemy import create_engine, delete, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

import ciuf
from ciuf.sqlalchemy import track

from .conftest import SCHEMA, VIEWS, assert_same
from .models import Base, Customer, Order, Product


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "app.db"


@pytest.fixture
def setup(db_path: Path) -> Iterator[tuple[ciuf.Engine, sessionmaker[Session], sqlite3.Connection]]:
    sa = create_engine(f"sqlite:///{db_path}")
    Base.metadata.create_all(sa)
    engine = ciuf.Engine()
    for ddl in SCHEMA:
        engine.execute(ddl)
    maker = sessionmaker(sa)
    oracle = sqlite3.connect(db_path)
    yield engine, maker, oracle
    oracle.close()
    sa.dispose()


def check(engine: ciuf.Engine, oracle: sqlite3.Connection) -> None:
    for sql in VIEWS:
        assert_same(engine.from_sql(sql), oracle)


def seed(s: Session) -> None:
    s.add_all([Customer(id=i, name=f"c{i}", region=f"r{i % 3}") for i in range(10)])
    s.add_all([Product(id=i, name=f"p{i}", category=f"c{i % 3}", price=float(i)) for i in range(10)])


def test_commits_are_applied_and_rollbacks_are_not(setup: Any) -> None:
    engine, maker, oracle = setup
    tracker = track(engine, maker)
    with maker() as s:
        seed(s)
        s.add_all([Order(customer_id=i % 10, product_id=i % 7, amount=10.0 * i, status="paid") for i in range(30)])
        s.commit()
    check(engine, oracle)
    assert len(engine.from_sql(VIEWS[0])) > 0
    with maker() as s:  # flushed, then rolled back: never seen
        s.add(Order(id=1000, customer_id=1, product_id=1, amount=999.0, status="paid"))
        s.flush()
        o = s.get(Order, 5)
        assert o is not None
        o.amount = 1.0
        s.flush()
        s.delete(s.get(Order, 6))
        s.flush()
        assert [c[0] for c in tracker.pending(s)] == ["insert", "update", "delete"]
        s.rollback()
    check(engine, oracle)
    with maker() as s:  # updates (from history), a server default, deletes, several flushes
        o = s.get(Order, 7)
        assert o is not None
        o.amount = 77.0
        o.customer_id = 3
        s.flush()
        o.status = "refunded"
        s.delete(s.get(Order, 8))
        s.add(Order(customer_id=2, product_id=1, amount=55.0))  # status from the server default
        s.commit()
    check(engine, oracle)


def test_savepoints_drop_only_their_own_changes(setup: Any) -> None:
    engine, maker, oracle = setup
    track(engine, maker)
    with maker() as s:
        seed(s)
        s.add(Order(id=1, customer_id=1, product_id=1, amount=60.0, status="paid"))
        with s.begin_nested() as sp:
            s.add(Order(id=2, customer_id=2, product_id=1, amount=70.0, status="paid"))
            s.flush()
            sp.rollback()
        with s.begin_nested():
            s.add(Order(id=3, customer_id=3, product_id=1, amount=80.0, status="paid"))
            with s.begin_nested() as inner:
                s.add(Order(id=4, customer_id=4, product_id=1, amount=90.0, status="paid"))
                s.flush()
                inner.rollback()
        s.commit()
    assert sorted(r[0] for r in engine.from_sql(VIEWS[0]).query().rows()) == [1, 3]
    check(engine, oracle)


def test_core_statements_with_returning_are_fed_through_the_tracker(setup: Any) -> None:
    engine, maker, oracle = setup
    tracker = track(engine, maker)
    with maker() as s:
        seed(s)
        s.commit()
    cols = [Order.id, Order.customer_id, Order.product_id, Order.amount, Order.status]
    with maker() as s:
        rows = s.execute(
            insert(Order).returning(*cols),
            [{"customer_id": i, "product_id": 1, "amount": 100.0 + i, "status": "paid"} for i in range(5)],
        ).mappings().all()
        tracker.inserted(s, "orders", rows)
        rows = s.execute(update(Order).where(Order.customer_id < 2).values(amount=5.0).returning(*cols)).mappings().all()
        tracker.updated(s, "orders", rows)
        rows = s.execute(delete(Order).where(Order.customer_id == 4).returning(*cols)).mappings().all()
        tracker.deleted(s, "orders", rows)
        assert len(tracker.pending(s)) == 5 + 2 + 1
        s.commit()
    check(engine, oracle)
    with maker() as s:
        rows = s.execute(delete(Order).returning(*cols)).mappings().all()
        tracker.deleted(s, "orders", rows)
        s.rollback()
    check(engine, oracle)


def test_close_stops_tracking(setup: Any) -> None:
    engine, maker, oracle = setup
    tracker = track(engine, maker)
    tracker.close()
    with maker() as s:
        seed(s)
        s.commit()
    assert engine.from_sql("SELECT COUNT(*) AS n FROM customers").query().to_dicts() == [{"n": 0}]


def test_async_sessions(db_path: Path) -> None:
    from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

    async def run() -> None:
        sa = create_async_engine(f"sqlite+aiosqlite:///{db_path}")
        async with sa.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        engine = ciuf.Engine()
        for ddl in SCHEMA:
            engine.execute(ddl)
        maker = async_sessionmaker(sa, expire_on_commit=False)
        track(engine, maker)
        async with maker() as s:
            seed(s.sync_session)
            s.add_all([Order(id=i, customer_id=i, product_id=1, amount=60.0 + i, status="paid") for i in range(5)])
            await s.commit()
        async with maker() as s:
            o = await s.get(Order, 1)
            assert o is not None
            o.amount = 1.0
            await s.flush()
            await s.rollback()
        async with maker() as s:
            await s.delete(await s.get(Order, 2))
            await s.commit()
        # A session made elsewhere is not tracked: the maker's sessions only.
        other = async_sessionmaker(sa)
        async with other() as s:
            s.add(Order(id=99, customer_id=1, product_id=1, amount=99.0, status="paid"))
            await s.commit()
        await sa.dispose()
        ids = sorted(r[0] for r in engine.from_sql(VIEWS[0]).query().rows())
        assert ids == [0, 1, 3, 4]

    asyncio.run(run())


def test_random_requests_commit_or_roll_back(setup: Any) -> None:
    engine, maker, oracle = setup
    track(engine, maker)
    with maker() as s:
        seed(s)
        s.commit()
    rng = random.Random(3)
    for _ in range(60):
        with maker() as s:
            for _ in range(rng.randrange(1, 5)):
                ids = s.scalars(select(Order.id)).all()
                action = rng.random()
                if action < 0.5 or not ids:
                    s.add(Order(customer_id=rng.randrange(10), product_id=rng.randrange(10),
                                amount=float(rng.randrange(100)), status=rng.choice(["paid", "pending", "refunded"])))
                elif action < 0.8:
                    o = s.get(Order, rng.choice(ids))
                    assert o is not None
                    o.amount = float(rng.randrange(100))
                    if rng.random() < 0.3:
                        o.product_id = rng.randrange(10)
                else:
                    s.delete(s.get(Order, rng.choice(ids)))
                if rng.random() < 0.5:
                    s.flush()
            if rng.random() < 0.7:
                s.commit()
            else:
                s.rollback()
        check(engine, oracle)
