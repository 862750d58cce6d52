"""The sync ledger: what Ortto last acknowledged for each record, in an embedded SQLite file.

It lets a run skip records whose payload is unchanged, and find the keys that left a
full snapshot. It is written only after Ortto acknowledged a batch, in one transaction,
so it never gets ahead of Ortto; losing it (or killing the process at any point) costs a
resend at worst. One connection guarded by a lock: sinks drain in parallel threads.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import msgspec

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    stream TEXT NOT NULL,
    key TEXT NOT NULL,
    hash TEXT NOT NULL,
    ortto_id TEXT,
    run_id TEXT NOT NULL,
    PRIMARY KEY (stream, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS deletions (
    stream TEXT NOT NULL,
    key TEXT NOT NULL,
    ortto_id TEXT,
    PRIMARY KEY (stream, key)
) WITHOUT ROWID;
"""
_CHUNK = 500  # SQLite host parameters per statement, with room to spare


# Ledger keys are stored, so they keep exactly the text `json.dumps(key, separators=(",",
# ":"), sort_keys=True, default=str)` gives; built once (`json.dumps` builds one per call).
_STABLE_JSON = json.JSONEncoder(separators=(",", ":"), sort_keys=True, default=str)
# Payload hashes only need some stable text: msgspec's, several times faster to make.
_SORTED_JSON = msgspec.json.Encoder(order="sorted", enc_hook=str)


def ledger_key(key: Any) -> str:
    """A merge or subscription key as stable text (tuples become JSON arrays)."""
    return _STABLE_JSON.encode(key)


def payload_hash(payload: Any) -> str:
    """A short, stable digest of what would be sent for a record."""
    try:
        data = _SORTED_JSON.encode(payload)
    except TypeError:  # a mapping with keys that are not strings
        data = _STABLE_JSON.encode(payload).encode()
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _chunks(items: list[Any]) -> Iterator[list[Any]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


class Ledger:
    """Per stream and key: the last acknowledged payload hash, Ortto ID and run that saw it."""

    def __init__(self, path: str, run_id: str | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.run_id = run_id or uuid.uuid4().hex
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def unchanged(self, stream: str, hashes: dict[str, str], mark_seen: bool = True) -> set[str]:
        """Keys (of `hashes`: key -> payload hash) whose last acknowledged payload matches.

        Those keys are marked as seen by this run (they will not be sent, but are present).
        """
        same: set[str] = set()
        with self._transaction() as db:
            for chunk in _chunks(list(hashes)):
                marks = ",".join("?" * len(chunk))
                rows = db.execute(
                    f"SELECT key, hash FROM records WHERE stream = ? AND key IN ({marks})",
                    [stream, *chunk],
                )
                same.update(key for key, digest in rows if hashes[key] == digest)
            if mark_seen:
                self._seen(db, stream, same)
        return same

    def known(self, stream: str, keys: list[str]) -> set[str]:
        """Keys of `keys` whose record Ortto acknowledged in an earlier request."""
        found: set[str] = set()
        with self._lock:
            for chunk in _chunks(keys):
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(
                    f"SELECT key FROM records WHERE stream = ? AND key IN ({marks})",
                    [stream, *chunk],
                )
                found.update(key for (key,) in rows)
        return found

    def mark_seen(self, stream: str, keys: Iterable[str]) -> None:
        """Keys present in this run's source, even if not sent (unchanged, or rejected)."""
        with self._transaction() as db:
            self._seen(db, stream, keys)

    def _seen(self, db: sqlite3.Connection, stream: str, keys: Iterable[str]) -> None:
        rows = [(stream, key) for key in keys]
        db.executemany(
            "UPDATE records SET run_id = ? WHERE stream = ? AND key = ?",
            [(self.run_id, *row) for row in rows],
        )
        # A record seen again is not deleted, whatever an earlier drain queued.
        db.executemany("DELETE FROM deletions WHERE stream = ? AND key = ?", rows)

    def acknowledge(self, stream: str, entries: Iterable[tuple[str, str, str | None]]) -> None:
        """Record (key, payload hash, Ortto ID) for records Ortto acknowledged."""
        with self._transaction() as db:
            db.executemany(
                """INSERT INTO records (stream, key, hash, ortto_id, run_id)
                   VALUES (?, ?, ?, ?, ?)
                   ON CONFLICT (stream, key) DO UPDATE SET hash = excluded.hash,
                       ortto_id = COALESCE(excluded.ortto_id, records.ortto_id),
                       run_id = excluded.run_id""",
                [(stream, key, digest, oid, self.run_id) for key, digest, oid in entries],
            )
            db.executemany(
                "DELETE FROM deletions WHERE stream = ? AND key = ?",
                [(stream, key) for key, _, _ in entries],
            )

    def ortto_id(self, stream: str, key: str) -> str | None:
        with self._lock:
            row = self._db.execute(
                "SELECT ortto_id FROM records WHERE stream = ? AND key = ?", (stream, key)
            ).fetchone()
        return row[0] if row else None

    def not_seen(self, stream: str) -> list[tuple[str, str | None]]:
        """(key, Ortto ID) of records this run did not see: they left a full snapshot.

        A key not seen whose Ortto record was seen under another key (its email was filled
        in, say) has not left.
        """
        with self._lock:
            return self._db.execute(
                """SELECT key, ortto_id FROM records
                   WHERE stream = ? AND run_id != ? AND (ortto_id IS NULL OR ortto_id NOT IN (
                       SELECT ortto_id FROM records
                       WHERE stream = ? AND run_id = ? AND ortto_id IS NOT NULL))""",
                (stream, self.run_id, stream, self.run_id),
            ).fetchall()

    def queue_deletions(self, stream: str, entries: Iterable[tuple[str, str | None]]) -> None:
        """Remember (key, Ortto ID) of records deleted at the source until they are applied."""
        with self._transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO deletions (stream, key, ortto_id) VALUES (?, ?, ?)",
                [(stream, key, oid) for key, oid in entries],
            )

    def queued_deletions(self, stream: str) -> list[tuple[str, str | None]]:
        with self._lock:
            return self._db.execute(
                "SELECT key, ortto_id FROM deletions WHERE stream = ?", (stream,)
            ).fetchall()

    def forget(self, stream: str, keys: Iterable[str]) -> None:
        """Drop records that were removed from Ortto (and their queued deletions)."""
        keys = list(keys)
        with self._transaction() as db:
            for table in ("records", "deletions"):
                db.executemany(
                    f"DELETE FROM {table} WHERE stream = ? AND key = ?",
                    [(stream, key) for key in keys],
                )
