"""ciuf: embedded incremental view maintenance.

Register SQL queries as views once, feed row changes, and read every view -- always
exactly up to date -- in microseconds, as Arrow-backed frames::

    from ciuf import Engine, from_sql

    engine = Engine()
    engine.execute("CREATE TABLE orders (id BIGINT PRIMARY KEY, customer_id BIGINT, amount DOUBLE)")
    totals = from_sql(engine, "SELECT customer_id, SUM(amount) AS total FROM orders GROUP BY customer_id")
    engine.on_insert("orders", {"id": 1, "customer_id": 42, "amount": 99.0})
    totals.query().to_dict(orient="records")   # [{'customer_id': 42, 'total': 99.0}]
"""

from ._ciuf import (
    ConnectionError,
    ConstraintError,
    Engine,
    Error,
    EvaluationError,
    Frame,
    InternalError,
    SchemaError,
    SqlError,
    StateError,
    View,
    __version__,
    drop_state,
    from_sql,
    memory_budget,
    set_memory_budget,
)

__all__ = [
    "ConnectionError",
    "ConstraintError",
    "Engine",
    "Error",
    "EvaluationError",
    "Frame",
    "InternalError",
    "SchemaError",
    "SqlError",
    "StateError",
    "View",
    "__version__",
    "drop_state",
    "from_sql",
    "memory_budget",
    "set_memory_budget",
]
