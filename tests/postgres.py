"""A real PostgreSQL server for the tests, started from the machine's own binaries.

`.ci/run` installs Debian's `postgresql` package when it is missing. `initdb` refuses to run
as root, so as root the server runs as the unprivileged `postgres` user the package creates.
The cluster lives in a temporary directory and listens on 127.0.0.1 only, with trust
authentication: nothing of it outlives the test session.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


def _bin_dir() -> Path:
    """Where initdb and pg_ctl are: on PATH, else Debian's newest /usr/lib/postgresql/N/bin."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    versions = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parent.parent.name),
    )
    if not versions:
        raise RuntimeError(
            "PostgreSQL's server binaries are not installed: `apt-get install postgresql` "
            "(.ci/run does this when they are missing)"
        )
    return Path(versions[-1]).parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class PostgresServer:
    port: int
    user: str = "postgres"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run SQL through psql; its output, unaligned and without headers."""
        done = subprocess.run(
            ["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", self.url(database)],
            input=sql,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if done.returncode != 0:
            raise RuntimeError(f"psql failed: {done.stderr}")
        return done.stdout

    def new_database(self) -> str:
        """A fresh, empty database's name: tests that share the server share nothing else."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        self.psql(f"CREATE DATABASE {name}")
        return name


@contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    bin_dir = _bin_dir()
    as_root = os.geteuid() == 0
    prefix = ["runuser", "-u", "postgres", "--"] if as_root else []
    base = Path(tempfile.mkdtemp(prefix="target-ortto-pg-"))
    data, sockets = base / "data", base / "sockets"
    sockets.mkdir()
    if as_root:
        shutil.chown(base, "postgres")
        shutil.chown(sockets, "postgres")
    port = _free_port()
    subprocess.run(
        [*prefix, str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {sockets} -c fsync=off"
    log = str(base / "server.log")
    subprocess.run(
        [*prefix, str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-wl", log, "start"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    server = PostgresServer(port)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                server.psql("SELECT 1")
                break
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield server
    finally:
        subprocess.run(
            [*prefix, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(base, ignore_errors=True)
