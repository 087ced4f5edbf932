"""Batch inserts from Arrow tables and polars/pandas frames, read through the Arrow
PyCapsule interface."""

from __future__ import annotations

import datetime

import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

import ciuf
from ciuf import Engine


@pytest.fixture
def e() -> Engine:
    e = Engine()
    e.execute("CREATE TABLE t (id BIGINT PRIMARY KEY, x DOUBLE, s TEXT, n INTEGER, at TIMESTAMP, day DATE)")
    return e


def rows(e: Engine) -> list[tuple[object, ...]]:
    return sorted(e.from_sql("SELECT id, x, s, n, at, day FROM t").query().rows())


def test_from_pyarrow_table_with_several_chunks(e: Engine) -> None:
    a = pa.table({"id": [1, 2], "x": [0.5, None], "s": ["a", "b"]})
    b = pa.table({"id": [3], "x": [1.5], "s": pa.array([None], pa.string())})
    e.insert_many("t", pa.concat_tables([a, b]))
    assert rows(e) == [(1, 0.5, "a", None, None, None), (2, None, "b", None, None, None), (3, 1.5, None, None, None, None)]


def test_from_polars_with_string_views_dates_and_narrow_ints(e: Engine) -> None:
    df = pl.DataFrame(
        {
            "id": [1, 2],
            "s": ["x", None],
            "n": pl.Series([7, -7], dtype=pl.Int16),
            "at": [datetime.datetime(2024, 5, 1, 8, 30), None],
            "day": [datetime.date(2024, 5, 1), datetime.date(1960, 1, 1)],
            "x": pl.Series([1.0, 2.0], dtype=pl.Float32),
        }
    )
    e.insert_many("t", df)
    assert rows(e) == [
        (1, 1.0, "x", 7, datetime.datetime(2024, 5, 1, 8, 30), datetime.date(2024, 5, 1)),
        (2, 2.0, None, -7, None, datetime.date(1960, 1, 1)),
    ]


def test_from_pandas_with_a_categorical(e: Engine) -> None:
    df = pd.DataFrame({"id": [1, 2, 3], "s": pd.Categorical(["a", "b", "a"]), "x": [1.0, float("nan"), 2.0]})
    e.insert_many("t", df)
    got = rows(e)
    assert [r[2] for r in got] == ["a", "b", "a"] and got[0][1] == 1.0


def test_a_bad_batch_changes_nothing(e: Engine) -> None:
    e.insert_many("t", pa.table({"id": [1]}))
    with pytest.raises(ciuf.SchemaError, match="no column ss.*did you mean s"):
        e.insert_many("t", pa.table({"id": [2], "ss": ["a"]}))
    with pytest.raises(ciuf.ConstraintError, match="duplicate primary key"):
        e.insert_many("t", pa.table({"id": [2, 3, 1]}))
    with pytest.raises(ciuf.SchemaError, match="DOUBLE"):
        e.insert_many("t", pa.table({"id": [4], "x": ["not a number"]}))
    with pytest.raises(ciuf.SchemaError, match="does not read"):
        e.insert_many("t", pa.table({"id": [5], "s": pa.array([b"x"], pa.binary())}))
    assert rows(e) == [(1, None, None, None, None, None)]
