"""A PostgreSQL server of the tests' own (as the Rust tests start one): initdb into a
temporary folder, logical replication on, a free port, the `app` role with REPLICATION.
As root it runs as the unprivileged `postgres` user. Missing binaries fail the test."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from typing import Iterator

import pytest

USER, PASSWORD, DB = "app", "secret", "shop"


def _bin() -> str:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise RuntimeError("PostgreSQL server binaries not found: apt-get install -y postgresql")
    return os.path.dirname(found[-1])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self) -> None:
        self.bin = _bin()
        self.dir = tempfile.mkdtemp(prefix="ciuf-pg-py-")
        self.port = _free_port()
        self.root = os.geteuid() == 0
        if self.root:
            shutil.chown(self.dir, "postgres", "postgres")
        with open(os.path.join(self.dir, "pw"), "w") as f:
            f.write("postgres\n")
        if self.root:
            shutil.chown(os.path.join(self.dir, "pw"), "postgres", "postgres")
        self._run("initdb", "-D", "data", "-U", "postgres", "--auth-local=trust", "--auth-host=scram-sha-256",
                  "--pwfile=pw", "-E", "UTF8", "--locale=C")
        opts = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c wal_level=logical "
                "-c max_wal_senders=10 -c max_replication_slots=10 -c fsync=off")
        self._run("pg_ctl", "-D", "data", "-l", "log", "-w", "start", "-o", opts)
        self.psql(f"CREATE ROLE {USER} LOGIN REPLICATION PASSWORD '{PASSWORD}'")
        self.psql(f"CREATE DATABASE {DB} OWNER {USER}")

    @property
    def url(self) -> str:
        return f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{self.port}/{DB}"

    def _run(self, exe: str, *args: str) -> str:
        path = exe if exe == "psql" else os.path.join(self.bin, exe)
        cmd = (["runuser", "-u", "postgres", "--"] if self.root else []) + [path, *args]
        out = subprocess.run(cmd, cwd=self.dir, capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"{cmd} failed: {out.stdout}{out.stderr}")
        return out.stdout.strip()

    def psql(self, sql: str, db: str = "postgres") -> str:
        return self._run("psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", self.dir, "-p", str(self.port),
                         "-U", "postgres", "-d", db, "-tA", "-c", sql)

    def sql_as_app(self, sql: str) -> str:
        """Runs SQL as `app` in `shop` over TCP (password auth), as an application would."""
        env = dict(os.environ, PGPASSWORD=PASSWORD)
        out = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", str(self.port),
                              "-U", USER, "-d", DB, "-tA", "-c", sql], capture_output=True, text=True, env=env)
        if out.returncode != 0:
            raise RuntimeError(out.stderr)
        return out.stdout.strip()

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", "data", "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def pg() -> Iterator[Server]:
    server = Server()
    yield server
    server.stop()
