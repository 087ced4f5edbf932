"""query() results: handed to pyarrow, polars and pandas through the Arrow PyCapsule
interface without copying, and plain Python rows without any of them."""

from __future__ import annotations

import datetime
import decimal
import subprocess
import sys
import textwrap

import pandas as pd  # noqa: F401 - to_pandas needs it
import polars as pl
import pyarrow as pa
import pytest

from ciuf import Engine, Frame


@pytest.fixture
def frame() -> Frame:
    e = Engine()
    e.execute("CREATE TABLE t (id BIGINT PRIMARY KEY, x DOUBLE, s TEXT, d DECIMAL(8,3), day DATE, ok BOOLEAN)")
    e.insert_many(
        "t",
        [
            {"id": i, "x": i / 2, "s": f"s{i}" if i % 3 else None, "d": decimal.Decimal(i) / 8,
             "day": datetime.date(2020, 1, 1) + datetime.timedelta(days=i), "ok": i % 2 == 0}
            for i in range(1000)
        ],
    )
    return e.from_sql("SELECT * FROM t ORDER BY id LIMIT 1000").query()


def test_pyarrow_reads_the_buffers_in_place(frame: Frame) -> None:
    a, b = pa.table(frame), pa.table(frame)
    assert a.num_rows == 1000 and a.column_names == ["id", "x", "s", "d", "day", "ok"]
    assert a.schema.field("d").type == pa.decimal128(8, 3) and a.schema.field("day").type == pa.date32()
    # Two imports of one frame share the frame's buffers: nothing was copied.
    for name in ["id", "x", "s"]:
        assert a.column(name).chunk(0).buffers()[1].address == b.column(name).chunk(0).buffers()[1].address
    assert frame.to_arrow().equals(a)
    assert pa.record_batch(frame).num_rows == 1000  # through __arrow_c_array__
    assert pa.schema(frame) == a.schema  # through __arrow_c_schema__


def test_polars_and_pandas(frame: Frame) -> None:
    df = pl.DataFrame(frame)
    assert df.shape == (1000, 6) and df["x"].sum() == sum(i / 2 for i in range(1000))
    assert frame.to_polars().equals(df)
    assert pl.from_arrow(frame.to_arrow()).shape == (1000, 6)
    pdf = frame.to_pandas()
    assert list(pdf.columns) == frame.columns and pdf["id"].tolist() == list(range(1000))
    assert pdf.to_dict(orient="records")[1:3] == frame.to_dict(orient="records")[1:3]


def test_duckdb_queries_a_frame_in_place(frame: Frame) -> None:
    import duckdb
    assert duckdb.sql("SELECT COUNT(*), SUM(x), COUNT(s) FROM frame").fetchall() == [(1000, 249750.0, 666)]
    assert duckdb.from_arrow(frame).aggregate("max(id)").fetchall() == [(999,)]


def test_plain_rows_follow_pandas_spelling(frame: Frame) -> None:
    records = frame.to_dict(orient="records")
    assert records[4] == {"id": 4, "x": 2.0, "s": "s4", "d": decimal.Decimal("0.500"),
                          "day": datetime.date(2020, 1, 5), "ok": True}
    assert records[3]["s"] is None
    assert records == frame.to_dicts()
    lists = frame.to_dict(orient="list")
    assert lists["id"] == list(range(1000)) and lists["s"][0] is None
    by_index = frame.to_dict()
    assert by_index["x"][4] == 2.0
    assert len(frame) == frame.num_rows == 1000
    with pytest.raises(ValueError, match="orient"):
        frame.to_dict(orient="split")  # type: ignore[call-overload]


def test_to_dicts_needs_neither_pyarrow_nor_pandas() -> None:
    code = textwrap.dedent(
        """
        import sys
        for m in ("pyarrow", "polars", "pandas"):
            sys.modules[m] = None  # any import of them fails
        import ciuf
        e = ciuf.Engine()
        e.execute("CREATE TABLE t (a BIGINT, b TEXT)")
        e.on_insert("t", {"a": 1, "b": "x"})
        f = e.from_sql("SELECT a, b FROM t").query()
        assert f.to_dicts() == [{"a": 1, "b": "x"}]
        try:
            f.to_arrow()
        except ImportError as err:
            assert "pip install pyarrow" in str(err)
        else:
            raise AssertionError("to_arrow without pyarrow must raise ImportError")
        print("ok")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_a_frame_is_a_snapshot(frame: Frame) -> None:
    e = Engine()
    e.execute("CREATE TABLE t (a BIGINT)")
    v = e.from_sql("SELECT a FROM t")
    e.on_insert("t", [1])
    before = v.query()
    e.on_insert("t", [2])
    assert before.rows() == [(1,)] and sorted(v.query().rows()) == [(1,), (2,)]
