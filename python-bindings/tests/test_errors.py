"""Errors: the exception tree, messages that name the problem, and bad input that
changes nothing."""

from __future__ import annotations

import pytest

import ciuf
from ciuf import Engine


def test_the_exception_tree() -> None:
    for cls in [ciuf.SqlError, ciuf.SchemaError, ciuf.ConstraintError, ciuf.ConnectionError, ciuf.InternalError]:
        assert issubclass(cls, ciuf.Error) and issubclass(cls, Exception)


def test_sql_errors_carry_kind_position_and_suggestion(engine: Engine) -> None:
    with pytest.raises(ciuf.SqlError) as e:
        engine.from_sql("SELECT id FROM ordrs")
    assert e.value.kind == "unknown_table" and e.value.suggestion == "orders"
    assert "did you mean orders" in str(e.value)
    with pytest.raises(ciuf.SqlError) as e:
        engine.from_sql("SELECT id,\n  amount FROM orders WINDOW w AS (PARTITION BY id)")
    assert e.value.kind == "unsupported" and e.value.line is not None
    with pytest.raises(ciuf.SqlError) as e:
        engine.from_sql("SELEC 1")
    assert e.value.kind == "syntax"


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda e: e.on_insert("ordrs", {"id": 1}), ciuf.SchemaError, "unknown table ordrs.*did you mean orders"),
        (lambda e: e.on_insert("orders", {"idd": 1}), ciuf.SchemaError, "no column idd.*did you mean id"),
        (lambda e: e.on_insert("orders", [1, 2]), ciuf.SchemaError, "has 5 columns but the row has 2 values"),
        (lambda e: e.on_insert("orders", {"id": "x"}), ciuf.SchemaError, "orders.id is BIGINT"),
        (lambda e: e.on_insert("orders", {"id": 1, "amount": [1]}), ciuf.SchemaError, "column amount: a Python list"),
        (lambda e: e.on_insert("orders", {"id": 2**70}), ciuf.SchemaError, "beyond BIGINT"),
        (lambda e: e.on_insert("orders", {"id": 1}), ciuf.ConstraintError, "duplicate primary key"),
        (lambda e: e.on_delete("orders", {"id": 99}), ciuf.ConstraintError, "no row"),
        (lambda e: e.on_update("orders", {"id": 99, "amount": 1.0}), ciuf.ConstraintError, "no row"),
        (lambda e: e.on_insert("orders", 5), ciuf.SchemaError, "a row is a dict"),
        (lambda e: e.apply([("upsert", "orders", {"id": 3})]), ciuf.SchemaError, "unknown change"),
        (lambda e: e.apply([("insert", "orders")]), ciuf.SchemaError, "a change is"),
    ],
)
def test_bad_input_is_refused_with_a_clear_error_and_changes_nothing(engine: Engine, call, error, message) -> None:  # type: ignore[no-untyped-def]
    v = engine.from_sql("SELECT id, amount FROM orders")
    engine.on_insert("orders", {"id": 1, "amount": 5.0})
    before = v.query().rows()
    with pytest.raises(error, match=message):
        call(engine)
    assert v.query().rows() == before


def test_a_refused_apply_leaves_every_table_and_view_as_before(engine: Engine) -> None:
    totals = engine.from_sql("SELECT COUNT(*) AS n, SUM(amount) AS s FROM orders")
    engine.insert_many("orders", [{"id": i, "amount": 1.0} for i in range(5)])
    with pytest.raises(ciuf.ConstraintError):
        engine.apply(
            [
                ("insert", "orders", {"id": 10, "amount": 100.0}),
                ("delete", "orders", {"id": 0}),
                ("update", "orders", {"id": 1, "amount": 50.0}),
                ("insert", "orders", {"id": 2, "amount": 1.0}),  # duplicate key: the whole batch goes
            ]
        )
    assert totals.query().to_dicts() == [{"n": 5, "s": 5.0}]
    engine.on_insert("orders", {"id": 10, "amount": 1.0})  # the refused insert left no trace
    assert totals.query().to_dicts() == [{"n": 6, "s": 6.0}]


def test_a_database_url_that_cannot_be_opened_says_why() -> None:
    with pytest.raises(ciuf.ConnectionError, match="does not exist"):
        Engine("sqlite:///./no-such-dir/local.db")
    with pytest.raises(ciuf.ConnectionError, match="unknown database URL scheme"):
        Engine("mysql://localhost/db")
