"""ciuf from Python in one screen: tables, a view, changes, and the view read as rows.

Run: python python-bindings/examples/quickstart.py  (after pip install ./python-bindings).
Type-checked in CI with mypy --strict, as an application using the package would be.
"""

from __future__ import annotations

from typing import Any

import ciuf
from ciuf import Engine, from_sql


def revenue_by_region(engine: Engine) -> list[dict[str, Any]]:
    view = from_sql(
        engine,
        "SELECT c.region, COUNT(*) AS orders, SUM(o.amount) AS revenue"
        " FROM orders o JOIN customers c ON o.customer_id = c.id GROUP BY c.region",
    )
    return view.query().to_dict(orient="records")


def main() -> None:
    engine = Engine()
    engine.execute("CREATE TABLE customers (id BIGINT PRIMARY KEY, name TEXT, region TEXT)")
    engine.execute("CREATE TABLE orders (id BIGINT PRIMARY KEY, customer_id BIGINT, amount DOUBLE)")
    engine.insert_many(
        "customers",
        [{"id": 1, "name": "Ada", "region": "north"}, {"id": 2, "name": "Bo", "region": "south"}],
    )
    engine.apply(
        [
            ("insert", "orders", {"id": 10, "customer_id": 1, "amount": 25.0}),
            ("insert", "orders", {"id": 11, "customer_id": 2, "amount": 40.0}),
        ]
    )
    print(sorted(revenue_by_region(engine), key=lambda r: str(r["region"])))
    engine.on_update("orders", new={"id": 11, "customer_id": 1})
    engine.on_delete("orders", {"id": 10})
    print(revenue_by_region(engine))
    try:
        engine.on_insert("orders", {"id": 11, "customer_id": 2, "amount": 1.0})
    except ciuf.ConstraintError as err:
        print("refused:", err)


if __name__ == "__main__":
    main()
