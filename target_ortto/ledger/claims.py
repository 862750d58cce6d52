"""Claims: which run syncs a stream of an instance right now.

Two runs of one stream sharing a ledger would corrupt each other: each marks the rows it sees
with its own run ID, so to the other they look "not seen" — left the source, to be archived.
So a run claims each stream it syncs, and a claim whose process is gone (on this host) or
which was not refreshed for `STALE_SECONDS` (a process on another host, or frozen) is free.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from target_ortto.ledger.store import LedgerError

WAIT_SECONDS = 5.0  # how long a run waits for another run's claim before it stops
POLL_SECONDS = 0.2
HEARTBEAT_SECONDS = 30.0  # how often a run refreshes its claims
STALE_SECONDS = 300.0  # a claim not refreshed for this long is free
HOST = socket.gethostname()


@dataclass(frozen=True)
class Holder:
    """The run that holds a claim: its ID, host, process and last refresh (Unix time)."""

    run_id: str
    host: str
    pid: int
    heartbeat: float

    def is_gone(self, now: float) -> bool:
        """Its process ended, or it stopped refreshing the claim."""
        if now - self.heartbeat > STALE_SECONDS:
            return True
        return self.host == HOST and not _alive(self.pid)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def take(db: sqlite3.Connection, instance: str, stream: str, run_id: str) -> Holder | None:
    """Claim `stream` for `run_id`, unless a live other run holds it: then that run."""
    now = time.time()
    row = db.execute(
        "SELECT run_id, host, pid, heartbeat FROM claims WHERE instance = ? AND stream = ?",
        (instance, stream),
    ).fetchone()
    if row is not None:
        holder = Holder(*row)
        if holder.run_id != run_id and not holder.is_gone(now):
            return holder
    db.execute(
        """INSERT OR REPLACE INTO claims (instance, stream, run_id, host, pid, heartbeat)
           VALUES (?, ?, ?, ?, ?, ?)""",
        (instance, stream, run_id, HOST, os.getpid(), now),
    )
    return None


def refresh(db: sqlite3.Connection, instance: str, run_id: str) -> None:
    db.execute(
        "UPDATE claims SET heartbeat = ? WHERE instance = ? AND run_id = ?",
        (time.time(), instance, run_id),
    )


def release(db: sqlite3.Connection, instance: str, run_id: str) -> None:
    db.execute("DELETE FROM claims WHERE instance = ? AND run_id = ?", (instance, run_id))


def busy(stream: str, path: Path, holder: Holder) -> LedgerError:
    """Why a run stops when another run kept a stream it syncs."""
    return LedgerError(
        f"Stream '{stream}' is being synced by another run (process {holder.pid} on "
        f"{holder.host}) that shares the ledger {str(path)!r}; it did not finish within "
        f"{WAIT_SECONDS:g} s. Two runs of one stream would corrupt each other's ledger rows "
        "(and could archive live records), so this run stops before sending any of it: "
        "rerun once the other run has finished (it resumes from its last STATE), or give "
        "each pipeline its own ledger_path."
    )
