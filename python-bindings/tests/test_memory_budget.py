"""The memory budget: a view past it is refused with an EvaluationError naming the
budget, and the process, its tables and its other views go on."""

from __future__ import annotations

import resource

import pytest

import ciuf


def test_a_cross_join_past_the_budget_is_refused_and_the_process_lives() -> None:
    default = ciuf.memory_budget()
    assert default >= 256 << 20
    with pytest.raises(ValueError):
        ciuf.set_memory_budget(0)
    resident = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss << 10
    ciuf.set_memory_budget(resident + (300 << 20))
    try:
        engine = ciuf.Engine()
        engine.execute("CREATE TABLE a (id INTEGER PRIMARY KEY, g INTEGER); CREATE TABLE b (id INTEGER PRIMARY KEY, g INTEGER)")
        engine.apply([("insert", "a", {"id": i, "g": i % 7}) for i in range(20_000)])
        engine.apply([("insert", "b", {"id": i, "g": i % 7}) for i in range(20_000)])
        with pytest.raises(ciuf.EvaluationError, match="memory budget of"):
            engine.from_sql("SELECT a.id AS x, b.id AS y FROM a, b")
        counts = engine.from_sql("SELECT COUNT(*) AS n FROM a JOIN b ON a.id = b.id")
        engine.on_insert("a", {"id": 20_000, "g": 1})
        engine.on_insert("b", {"id": 20_000, "g": 1})
        assert counts.query().to_dicts() == [{"n": 20_001}]
    finally:
        ciuf.set_memory_budget(default)
    assert ciuf.memory_budget() == default
