"""One engine shared by threads: readers always see the state between two whole
transactions while a writer applies them."""

from __future__ import annotations

import threading

from ciuf import Engine


def test_readers_never_see_half_a_transaction() -> None:
    e = Engine()
    e.execute("CREATE TABLE accounts (id BIGINT PRIMARY KEY, balance BIGINT)")
    e.insert_many("accounts", [{"id": i, "balance": 100} for i in range(50)])
    total = e.from_sql("SELECT SUM(balance) AS s, COUNT(*) AS n FROM accounts")
    rich = e.from_sql("SELECT id, balance FROM accounts WHERE balance > 100")
    stop = threading.Event()
    seen: list[object] = []
    errors: list[BaseException] = []

    def read() -> None:
        try:
            while not stop.is_set():
                row = total.query().to_dicts()[0]
                if row != {"s": 5000, "n": 50}:
                    seen.append(row)
                rows = rich.query().rows()
                if sum(b for _, b in rows) - 100 * len(rows) > 5000:
                    seen.append(rows)
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    readers = [threading.Thread(target=read) for _ in range(4)]
    for t in readers:
        t.start()
    balances = {i: 100 for i in range(50)}
    for step in range(2000):
        a, b = step % 50, (step * 7 + 3) % 50
        if a == b:
            continue
        amount = step % 13
        e.apply(
            [
                ("update", "accounts", {"id": a, "balance": balances[a] - amount}),
                ("update", "accounts", {"id": b, "balance": balances[b] + amount}),
            ]
        )
        balances[a] -= amount
        balances[b] += amount
    stop.set()
    for t in readers:
        t.join()
    assert not errors and not seen
    assert total.query().to_dicts() == [{"s": 5000, "n": 50}]
