"""A process following PostgreSQL that is told to stop — SIGTERM (docker, systemd,
Kubernetes), SIGHUP (a closed terminal), SIGINT (Ctrl-C) — drops its replication slot
and publication on the way out, and an application's own handler still runs."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time

import pytest

from .pg import Server, pg  # noqa: F401 - pg is a fixture

FOLLOWER = textwrap.dedent(
    """
    import signal, sys, time
    from ciuf import Engine
    # As a service starts: SIGHUP does what it does by default (a test run under
    # nohup would otherwise hand the child an ignored SIGHUP, which ciuf respects).
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    engine = Engine(sys.argv[1])
    view = engine.from_sql("SELECT count(*) FROM items")
    if sys.argv[2] == "own-handler":
        def handler(signum, frame):
            print("own handler ran", flush=True)
            sys.exit(3)
        signal.signal(signal.SIGTERM, handler)
    print("ready", flush=True)
    while True:
        time.sleep(0.05)
    """
)


def leftovers(server: Server) -> tuple[str, str]:
    slots = server.sql_as_app("SELECT string_agg(slot_name, ',') FROM pg_replication_slots")
    pubs = server.sql_as_app("SELECT string_agg(pubname, ',') FROM pg_publication")
    return slots.strip(), pubs.strip()


@pytest.mark.parametrize(
    "sig, mode",
    [(signal.SIGTERM, "plain"), (signal.SIGHUP, "plain"), (signal.SIGINT, "plain"), (signal.SIGTERM, "own-handler")],
)
def test_a_stopped_follower_leaves_nothing_on_the_server(pg: Server, sig: int, mode: str) -> None:  # noqa: F811
    pg.sql_as_app("CREATE TABLE IF NOT EXISTS items (id bigint PRIMARY KEY); INSERT INTO items VALUES (1) ON CONFLICT DO NOTHING;")
    child = subprocess.Popen(
        [sys.executable, "-c", FOLLOWER, pg.url, mode], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "ready"
    assert leftovers(pg) != ("", ""), "the follower made a slot and a publication"
    child.send_signal(sig)
    try:
        out, err = child.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        child.kill()
        out, err = child.communicate()
        pytest.fail(f"the follower did not stop within 60 s of signal {sig}; stdout: {out!r}; stderr: {err!r}")
    if mode == "own-handler":
        assert "own handler ran" in out and child.returncode == 3, (out, err)
    else:
        assert child.returncode != 0, "the process still ended as the signal ends it"
    deadline = time.monotonic() + 10
    while leftovers(pg) != ("", "") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert leftovers(pg) == ("", ""), f"left on the server: {leftovers(pg)}; stderr: {err}"
