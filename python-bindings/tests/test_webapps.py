"""Web apps: FastAPI and Litestar apps with SQLAlchemy models, ORM writes in request
handlers (some committed, some rolled back), and endpoints that read views. After
every request each view equals the same query run on the app's SQLite database."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path
from typing import Any, Iterator, Optional

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session, sessionmaker

from ciuf import Engine, View

from .conftest import VIEWS, bag
from .models import Base, Customer, Order, Product

NAMED_VIEWS = {"paid": VIEWS[0], "cat1": VIEWS[1], "totals": VIEWS[2], "regions": VIEWS[3]}

# A per-request view: one parameterized view, read by key in the handler.
MINE = "SELECT o.id, o.amount, p.name FROM orders o JOIN products p ON o.product_id = p.id WHERE o.customer_id = $1"


class Database:
    """The app's SQLite file, seeded with customers and products before the app starts."""

    def __init__(self, path: Path) -> None:
        self.sa = create_engine(f"sqlite:///{path}", connect_args={"check_same_thread": False})
        Base.metadata.create_all(self.sa)
        self.Session = sessionmaker(self.sa)
        with self.Session() as s:
            s.add_all([Customer(id=i, name=f"c{i}", region=f"r{i % 3}") for i in range(10)])
            s.add_all([Product(id=i, name=f"p{i}", category=f"c{i % 3}", price=float(i)) for i in range(10)])
            s.add_all([Order(customer_id=i, product_id=i, amount=60.0 + i, status="paid") for i in range(10)])
            s.commit()
        self.oracle = sqlite3.connect(path)

    def write(self, body: dict[str, Any]) -> Optional[int]:
        """The handlers' work: ORM writes, committed unless the body says fail."""
        with self.Session() as s:
            if body["op"] == "insert":
                o = Order(customer_id=body["customer_id"], product_id=body["product_id"],
                          amount=body["amount"], status=body["status"])
                s.add(o)
            else:
                o = s.get(Order, body["id"])  # type: ignore[assignment]
                if o is None:
                    return None
                if body["op"] == "delete":
                    s.delete(o)
                else:
                    o.amount = body["amount"]
                    o.status = body["status"]
            s.flush()
            if body.get("fail"):
                raise RuntimeError("the request failed after its writes were flushed")
            s.commit()
            return o.id


def requests(db: Database, n: int, seed: int) -> Iterator[dict[str, Any]]:
    rng = random.Random(seed)
    for _ in range(n):
        ids = [r[0] for r in db.oracle.execute("SELECT id FROM orders").fetchall()]
        op = rng.choice(["insert", "insert", "update", "delete"]) if ids else "insert"
        yield {
            "op": op,
            "id": rng.choice(ids) if ids else 0,
            "customer_id": rng.randrange(10),
            "product_id": rng.randrange(10),
            "amount": float(rng.randrange(120)),
            "status": rng.choice(["paid", "pending", "refunded"]),
            "fail": rng.random() < 0.3,
        }


def check(client: Any, db: Database) -> None:
    for name, sql in NAMED_VIEWS.items():
        r = client.get(f"/views/{name}")
        assert r.status_code == 200, r.text
        got = bag(tuple(row.values()) for row in r.json())
        want = bag(db.oracle.execute(sql).fetchall())
        assert got == want, f"{name}: ciuf only {got - want}, sqlite only {want - got}"
    for customer in (0, 3, 7, 42):  # 42 never orders
        r = client.get(f"/customers/{customer}/orders")
        assert r.status_code == 200, r.text
        got = bag(tuple(row.values()) for row in r.json())
        want = bag(db.oracle.execute(MINE.replace("$1", "?"), (customer,)).fetchall())
        assert got == want, f"customer {customer}: ciuf only {got - want}, sqlite only {want - got}"


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    d = Database(tmp_path / "app.db")
    yield d
    d.oracle.close()
    d.sa.dispose()


def test_fastapi_app(db: Database) -> None:
    from fastapi import Depends, FastAPI, HTTPException
    from fastapi.testclient import TestClient

    import ciuf
    from ciuf.contrib.fastapi import Ciuf

    glue = Ciuf(metadata=Base.metadata, bind=db.sa, track=[db.Session], views=NAMED_VIEWS)
    app = FastAPI(lifespan=glue.lifespan)

    @app.post("/orders")
    def write(body: dict[str, Any]) -> dict[str, Any]:
        try:
            return {"id": db.write(body)}
        except RuntimeError as err:
            raise HTTPException(status_code=500, detail=str(err)) from err

    @app.get("/views/{name}")
    def read(name: str, engine: ciuf.Engine = Depends(glue.get_engine)) -> list[dict[str, Any]]:
        view = engine.view(name)
        if view is None:
            raise HTTPException(status_code=404)
        return view.query().to_dicts()

    @app.get("/totals")
    def totals(view: ciuf.View = Depends(glue.view("totals"))) -> list[dict[str, Any]]:
        return view.query().to_dict(orient="records")

    @app.get("/customers/{customer_id}/orders")
    def mine(customer_id: int, engine: ciuf.Engine = Depends(glue.get_engine)) -> list[dict[str, Any]]:
        return engine.from_sql(MINE).query(customer_id=customer_id).to_dicts()

    with TestClient(app) as client:
        check(client, db)  # the rows already in the database were loaded at start-up
        for body in requests(db, 80, seed=1):
            r = client.post("/orders", json=body)
            assert r.status_code == (500 if body["fail"] else 200), r.text
            check(client, db)
        assert len(client.get("/totals").json()) == len(db.oracle.execute(VIEWS[2]).fetchall())
        assert isinstance(app.state.ciuf, ciuf.Engine)
    assert glue._engine is None  # closed at shutdown


def test_litestar_app(db: Database) -> None:
    from litestar import Litestar, get, post
    from litestar.exceptions import HTTPException, NotFoundException
    from litestar.testing import TestClient

    from ciuf.contrib.litestar import CiufConfig, CiufPlugin

    config = CiufConfig(metadata=Base.metadata, bind=db.sa, track=[db.Session], views=NAMED_VIEWS)

    @post("/orders", sync_to_thread=True)
    def write(data: dict[str, Any]) -> dict[str, Any]:
        try:
            return {"id": db.write(data)}
        except RuntimeError as err:
            raise HTTPException(status_code=500, detail=str(err)) from err

    @get("/views/{name:str}", sync_to_thread=False)
    def read(name: str, ciuf: Engine) -> list[dict[str, Any]]:
        view = ciuf.view(name)
        if view is None:
            raise NotFoundException()
        return view.query().to_dicts()

    @get("/totals", sync_to_thread=False)
    def totals(totals: View) -> list[dict[str, Any]]:
        return totals.query().to_dict(orient="records")

    @get("/customers/{customer_id:int}/orders", sync_to_thread=False)
    def mine(customer_id: int, ciuf: Engine) -> list[dict[str, Any]]:
        return ciuf.from_sql(MINE).query(customer_id).to_dicts()

    plugin = CiufPlugin(config)
    app = Litestar([write, read, totals, mine], plugins=[plugin])
    with TestClient(app=app) as client:
        check(client, db)
        for body in requests(db, 80, seed=2):
            r = client.post("/orders", json=body)
            assert r.status_code == (500 if body["fail"] else 201), r.text
            check(client, db)
        assert len(client.get("/totals").json()) == len(db.oracle.execute(VIEWS[2]).fetchall())
    assert plugin._engine is None


def test_a_durable_app_restarts_with_its_tables_and_views(tmp_path: Path) -> None:
    from ciuf.contrib.app import CiufApp, CiufConfig

    config = CiufConfig(
        ddl=["CREATE TABLE hits (path TEXT NOT NULL, n INTEGER NOT NULL)"],
        views={"by_path": "SELECT path, SUM(n) AS n FROM hits GROUP BY path"},
        state_dir=tmp_path / "state",
    )
    app = CiufApp(config)
    engine = app.start()
    for i in range(30):
        engine.on_insert("hits", {"path": f"/p{i % 3}", "n": 1})
    app.stop()
    # The next deploy: the same config, nothing created or loaded twice.
    again = CiufApp(config)
    again.start()
    rows = {r["path"]: r["n"] for r in again.view("by_path").query().to_dicts()}
    assert rows == {"/p0": 10, "/p1": 10, "/p2": 10}
    again.engine.on_insert("hits", {"path": "/p0", "n": 5})
    assert {r["path"]: r["n"] for r in again.view("by_path").query().to_dicts()}["/p0"] == 15
    again.stop()
