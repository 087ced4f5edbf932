"""The reference workload through the Python API.

    python3 ../shared/bench/gen_workload.py /tmp/ciuf-wl --scale 1
    pip install ./python-bindings pyarrow          # a release build
    python benches/python/reference.py --data /tmp/ciuf-wl

Measures what the Python package adds on top of the engine, and sets it beside SQLite
re-running the five queries (Python's sqlite3, same data, same run):

- load: the three tables read with pyarrow and inserted as Arrow tables, five views
  registered (rows/s);
- an Arrow batch of 100,000 orders applied in one call, to a table without views and
  to the table with the five views (rows/s);
- on_insert: one dict per call, one transaction each, into a table without views
  (µs per call: the binding's whole cost over the engine's);
- the change stream applied with engine.apply in batches of 10,000 and 1 events, all
  views fresh after each batch (events/s, p50/p99), beside SQLite re-running the five
  queries after a bounded number of batches;
- query() of an unchanged view, and of V3 after a change, as a Frame and as pyarrow.

Prints one `RESULT {...}` JSON line per measurement.
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import statistics
import time
from itertools import groupby
from pathlib import Path
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.csv as pacsv

import ciuf

TABLES = {
    "customers": "CREATE TABLE customers (id BIGINT PRIMARY KEY, name TEXT, region TEXT)",
    "products": "CREATE TABLE products (id BIGINT PRIMARY KEY, name TEXT, category TEXT, price DOUBLE)",
    "orders": "CREATE TABLE orders (id BIGINT PRIMARY KEY, customer_id BIGINT, product_id BIGINT,"
    " amount DOUBLE, status TEXT)",
}
VIEWS = {
    "V1": "SELECT id, customer_id, amount FROM orders WHERE status = 'paid' AND amount > 500",
    "V2": "SELECT o.id, o.amount, p.name, p.category FROM orders o JOIN products p ON o.product_id = p.id"
    " WHERE p.category = 'cat_3'",
    "V3": "SELECT customer_id, COUNT(*) AS n, SUM(amount) AS total FROM orders WHERE status <> 'refunded'"
    " GROUP BY customer_id",
    "V4": "SELECT c.region, p.category, COUNT(*) AS n, SUM(o.amount) AS revenue FROM orders o"
    " JOIN customers c ON o.customer_id = c.id JOIN products p ON o.product_id = p.id GROUP BY c.region, p.category",
    "V5": "SELECT id, customer_id, amount FROM orders WHERE status = 'paid' ORDER BY amount DESC, id LIMIT 100",
}


def result(**fields: Any) -> None:
    print("RESULT " + json.dumps(fields), flush=True)


def read_tables(data: Path) -> dict[str, pa.Table]:
    return {name: pacsv.read_csv(data / f"{name}.csv") for name in TABLES}


def new_engine(views: bool) -> ciuf.Engine:
    e = ciuf.Engine()
    for ddl in TABLES.values():
        e.execute(ddl)
    if views:
        for sql in VIEWS.values():
            e.from_sql(sql)
    return e


def transactions(data: Path) -> list[list[tuple[Any, ...]]]:
    """The change stream as engine.apply changes, grouped by source transaction."""
    def events() -> Iterator[dict[str, Any]]:
        with open(data / "changes.jsonl") as f:
            for line in f:
                yield json.loads(line)

    out = []
    for _, group in groupby(events(), key=lambda e: e["txn"]):
        txn = []
        for e in group:
            if e["op"] == "update":
                txn.append(("update", e["table"], e["new"], e["old"]))
            else:
                txn.append((e["op"], e["table"], e["row"]))
        out.append(txn)
    return out


def batches(txns: list[list[tuple[Any, ...]]], size: int) -> list[list[tuple[Any, ...]]]:
    """Source transactions grouped into batches of about `size` events, ending on a
    transaction boundary."""
    out: list[list[tuple[Any, ...]]] = []
    current: list[tuple[Any, ...]] = []
    for t in txns:
        current.extend(t)
        if len(current) >= size:
            out.append(current)
            current = []
    if current:
        out.append(current)
    return out


def percentile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


class Sqlite:
    """SQLite holding the same rows, re-running the five queries: the baseline."""

    def __init__(self, tables: dict[str, pa.Table]) -> None:
        self.db = sqlite3.connect(":memory:")
        for name, ddl in TABLES.items():
            self.db.execute(ddl)
            cols = tables[name].column_names
            rows = zip(*(tables[name].column(c).to_pylist() for c in cols))
            self.db.executemany(f"INSERT INTO {name} VALUES ({','.join('?' * len(cols))})", rows)
        self.db.execute("CREATE INDEX orders_customer ON orders(customer_id)")
        self.db.execute("CREATE INDEX orders_product ON orders(product_id)")
        self.db.commit()

    def apply(self, changes: list[tuple[Any, ...]]) -> None:
        for c in changes:
            op, table = c[0], c[1]
            if op == "insert":
                row = c[2]
                self.db.execute(f"INSERT INTO {table} ({','.join(row)}) VALUES ({','.join('?' * len(row))})",
                                list(row.values()))
            elif op == "delete":
                self.db.execute(f"DELETE FROM {table} WHERE id = ?", (c[2]["id"],))
            else:
                new = c[2]
                sets = ",".join(f"{k} = ?" for k in new if k != "id")
                self.db.execute(f"UPDATE {table} SET {sets} WHERE id = ?",
                                [v for k, v in new.items() if k != "id"] + [new["id"]])

    def rerun(self) -> list[list[Any]]:
        return [self.db.execute(sql).fetchall() for sql in VIEWS.values()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="a folder made by gen_workload.py")
    ap.add_argument("--sqlite-batches", type=int, default=10, help="batches SQLite re-runs per batch size")
    ap.add_argument("--one-event-calls", type=int, default=100_000)
    args = ap.parse_args()

    tables = read_tables(args.data)
    base_rows = sum(t.num_rows for t in tables.values())

    # Load: Arrow tables into an engine with the five views.
    engine = new_engine(views=True)
    t0 = time.perf_counter()
    for name in TABLES:
        engine.insert_many(name, tables[name])
    load_s = time.perf_counter() - t0
    result(system="ciuf-python", measure="load", rows=base_rows, rows_per_s=round(base_rows / load_s))

    # One Arrow batch of 100,000 orders, into a table alone and with the five views.
    batch = tables["orders"].slice(0, 100_000)
    for with_views in (False, True):
        e = new_engine(views=with_views)
        if with_views:
            e.insert_many("customers", tables["customers"])
            e.insert_many("products", tables["products"])
        t0 = time.perf_counter()
        e.insert_many("orders", batch)
        s = time.perf_counter() - t0
        result(system="ciuf-python", measure="arrow_batch_100k", views=5 if with_views else 0,
               rows_per_s=round(batch.num_rows / s))

    # on_insert: one dict per call (one transaction each), into a table without views.
    e = new_engine(views=False)
    rows = tables["orders"].slice(0, args.one_event_calls).to_pylist()
    t0 = time.perf_counter()
    for r in rows:
        e.on_insert("orders", r)
    per_call = (time.perf_counter() - t0) / len(rows)
    # The same rows in one insert_many call: the per-row cost of converting dicts.
    e = new_engine(views=False)
    t0 = time.perf_counter()
    e.insert_many("orders", rows)
    per_row = (time.perf_counter() - t0) / len(rows)
    result(system="ciuf-python", measure="on_insert", us_per_call=round(per_call * 1e6, 2),
           insert_many_dicts_us_per_row=round(per_row * 1e6, 2))

    # The change stream, all five views fresh after every batch, beside SQLite.
    txns = transactions(args.data)
    sqlite = Sqlite(tables)
    stream_engine = engine
    half = len(txns) // 2
    # The first half of the stream in batches of 10,000 events, the rest one source
    # transaction (1-10 events) at a time.
    for size, part in ((10_000, txns[:half]), (1, txns[half:])):
        bs = batches(part, size)
        times = []
        events = 0
        for b in bs:
            t0 = time.perf_counter()
            stream_engine.apply(b)
            times.append(time.perf_counter() - t0)
            events += len(b)
        result(system="ciuf-python", batch=size, events_per_s=round(events / sum(times)),
               p50_us=round(percentile(times, 0.5) * 1e6, 1), p99_us=round(percentile(times, 0.99) * 1e6, 1))
        # SQLite: the same batches, re-running the five queries after each of the first
        # --sqlite-batches (a full re-run reads every table), then only applying.
        s_times = []
        s_events = 0
        for b in bs[: args.sqlite_batches]:
            t0 = time.perf_counter()
            sqlite.apply(b)
            sqlite.rerun()
            s_times.append(time.perf_counter() - t0)
            s_events += len(b)
        for b in bs[args.sqlite_batches:]:
            sqlite.apply(b)
        sqlite_rate = s_events / sum(s_times)
        result(system="sqlite-python", batch=size, events_per_s=round(sqlite_rate),
               p50_us=round(percentile(s_times, 0.5) * 1e6, 1), batches=len(s_times),
               ciuf_ratio=round(events / sum(times) / sqlite_rate, 1))
    # Both sides saw every change: the views must equal SQLite's answers.
    for (name, sql), want in zip(VIEWS.items(), sqlite.rerun()):
        got = stream_engine.from_sql(sql).query().rows()
        norm = lambda rows: sorted(tuple(round(v, 4) if isinstance(v, float) else v for v in r) for r in rows)  # noqa: E731
        assert norm(got) == norm(want), f"{name} differs from SQLite"
    result(system="ciuf-python", measure="check", views_equal_sqlite=True)

    # query(): unchanged (the cached batch) and V3 after a change.
    v3 = stream_engine.from_sql(VIEWS["V3"])
    v3.query()
    n = 10_000
    t0 = time.perf_counter()
    for _ in range(n):
        v3.query()
    unchanged = (time.perf_counter() - t0) / n
    pa.table(v3.query())  # the first call imports pyarrow's pandas shim (~0.2 s)
    t0 = time.perf_counter()
    for _ in range(100):
        pa.table(v3.query())
    unchanged_arrow = (time.perf_counter() - t0) / 100
    changed = []
    for i in range(20):
        stream_engine.on_insert("orders", {"id": 10_000_000 + i, "customer_id": i, "product_id": 1,
                                           "amount": 1.0, "status": "paid"})
        t0 = time.perf_counter()
        v3.query()
        changed.append(time.perf_counter() - t0)
    result(system="ciuf-python", measure="query_v3", rows=len(v3), unchanged_us=round(unchanged * 1e6, 2),
           unchanged_to_pyarrow_us=round(unchanged_arrow * 1e6, 1),
           changed_ms=round(statistics.median(changed) * 1e3, 2))

    # Per-request reads: V3 keyed by customer, read by key from Python (10,000
    # customers requested in a Zipf pattern), full and partial.
    rng = random.Random(3)
    n_customers = tables["customers"].num_rows
    ranked = [rng.randrange(n_customers) for _ in range(10_000)]
    weights = [1 / (k + 1) for k in range(10_000)]
    requests = rng.choices(ranked, weights=weights, k=100_000)
    keyed_sql = ("SELECT customer_id, COUNT(*) AS n, SUM(amount) AS total FROM orders"
                 " WHERE status <> 'refunded' AND customer_id = $1 GROUP BY customer_id")
    for partial in (False, True):
        keyed = stream_engine.from_sql(keyed_sql, partial=partial)
        lat = []
        for c in requests:
            t0 = time.perf_counter()
            keyed.query(c)
            lat.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        for c in requests[:20_000]:
            keyed.query(c).to_dicts()
        dicts_us = (time.perf_counter() - t0) / 20_000 * 1e6
        result(system="ciuf-python", measure="keyed_lookup_v3", materialization="partial" if partial else "full",
               lookups=len(lat), p50_us=round(percentile(lat, 0.5) * 1e6, 2),
               p99_us=round(percentile(lat, 0.99) * 1e6, 2), with_to_dicts_us=round(dicts_us, 2))


if __name__ == "__main__":
    main()
