"""The sync ledger: what Ortto last acknowledged for each record, in an embedded SQLite file.

It lets a run skip records whose payload is unchanged, and find the keys that left a
full snapshot. It is written only after Ortto acknowledged a batch, in one transaction,
so it never gets ahead of Ortto; losing it (or killing the process at any point) costs a
resend at worst. One connection guarded by a lock: sinks drain in parallel threads.

Rows belong to one Ortto instance (`instance_id`): the same file used with another account,
region or sandbox sees none of them. A run claims the streams it syncs (`claims`).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import msgspec

from target_ortto.ledger import claims
from target_ortto.ledger.store import LedgerError, failure, open_ledger

__all__ = ["Ledger", "LedgerError", "instance_id", "ledger_key", "payload_hash"]

# Keys the API-key fingerprint: a stored fingerprint tells instances apart, and is no
# plain hash of the key that a table of leaked keys could be matched against.
_FINGERPRINT_KEY = b"target-ortto ledger instance"
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


def instance_id(base_url: str, api_key: str) -> str:
    """The Ortto instance a run writes to: its API's URL (region, or `api_url`) and a
    fingerprint of its key — 64 bits of a keyed hash, which cannot give the key back."""
    fingerprint = hashlib.blake2b(api_key.encode(), key=_FINGERPRINT_KEY, digest_size=8).hexdigest()
    return f"{base_url.rstrip('/')} {fingerprint}"


def _chunks(items: list[Any]) -> Iterator[list[Any]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


class Ledger:
    """Per instance, stream and key: the last acknowledged payload hash, Ortto ID and run
    that saw it. `instance` (see `instance_id`) scopes every row this ledger reads or writes.
    """

    def __init__(self, path: str, instance: str, run_id: str | None = None) -> None:
        self.path = Path(path)
        self.instance = instance
        self.run_id = run_id or uuid.uuid4().hex
        self._db = open_ledger(self.path, instance)
        self._lock = threading.Lock()
        self._claimed: set[str] = set()
        self._closing = threading.Event()
        self._heartbeat: threading.Thread | None = None

    def close(self) -> None:
        """Release this run's claims and close the file."""
        self._closing.set()
        if self._heartbeat is not None:
            self._heartbeat.join()
        try:
            with self._transaction() as db:
                claims.release(db, self.instance, self.run_id)
        finally:
            with self._lock:
                self._db.close()

    def claim(self, stream: str) -> None:
        """Hold `stream` until `close`, waiting up to `claims.WAIT_SECONDS` for another run
        that holds it; then stop. See `claims` for why."""
        if stream in self._claimed:
            return
        deadline = time.monotonic() + claims.WAIT_SECONDS
        while True:
            with self._transaction() as db:
                holder = claims.take(db, self.instance, stream, self.run_id)
            if holder is None:
                break
            if time.monotonic() >= deadline:
                raise claims.busy(stream, self.path, holder)
            time.sleep(claims.POLL_SECONDS)
        self._claimed.add(stream)
        if self._heartbeat is None:
            self._heartbeat = threading.Thread(
                target=self._beat, name="ledger-heartbeat", daemon=True
            )
            self._heartbeat.start()

    def _beat(self) -> None:
        """Refresh this run's claims while it lasts, so other runs do not take them as stale."""
        while not self._closing.wait(claims.HEARTBEAT_SECONDS):
            # A failed refresh is tried again at the next beat; the run's own writes report
            # a ledger that stays unusable.
            with suppress(LedgerError), self._transaction() as db:
                claims.refresh(db, self.instance, self.run_id)

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                yield self._db
            except sqlite3.Error as exc:
                raise failure(self.path, exc) from None

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._reading() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def unchanged(self, stream: str, hashes: dict[str, str], mark_seen: bool = True) -> set[str]:
        """Keys (of `hashes`: key -> payload hash) whose last acknowledged payload matches.

        Those keys are marked as seen by this run (they will not be sent, but are present).
        """
        same: set[str] = set()
        with self._transaction() as db:
            for chunk in _chunks(list(hashes)):
                marks = ",".join("?" * len(chunk))
                rows = db.execute(
                    f"""SELECT key, hash FROM records
                        WHERE instance = ? AND stream = ? AND key IN ({marks})""",
                    [self.instance, stream, *chunk],
                )
                same.update(key for key, digest in rows if hashes[key] == digest)
            if mark_seen:
                self._seen(db, stream, same)
        return same

    def known(self, stream: str, keys: list[str]) -> set[str]:
        """Keys of `keys` whose record Ortto acknowledged with its ID in an earlier request.

        Without an ID (a `baseline` row, an async merge) it is not known that Ortto has the
        record: a merge for it may create the person, so it counts as unknown."""
        found: set[str] = set()
        with self._reading() as db:
            for chunk in _chunks(keys):
                marks = ",".join("?" * len(chunk))
                rows = db.execute(
                    f"""SELECT key FROM records WHERE instance = ? AND stream = ?
                        AND ortto_id IS NOT NULL AND key IN ({marks})""",
                    [self.instance, stream, *chunk],
                )
                found.update(key for (key,) in rows)
        return found

    def mark_seen(self, stream: str, keys: Iterable[str]) -> None:
        """Keys present in this run's source, even if not sent (unchanged, or rejected)."""
        with self._transaction() as db:
            self._seen(db, stream, keys)

    def _seen(self, db: sqlite3.Connection, stream: str, keys: Iterable[str]) -> None:
        rows = [(self.instance, stream, key) for key in keys]
        db.executemany(
            "UPDATE records SET run_id = ? WHERE instance = ? AND stream = ? AND key = ?",
            [(self.run_id, *row) for row in rows],
        )
        # A record seen again is not deleted, whatever an earlier drain queued.
        db.executemany("DELETE FROM deletions WHERE instance = ? AND stream = ? AND key = ?", rows)

    def acknowledge(self, stream: str, entries: Iterable[tuple[str, str, str | None]]) -> None:
        """Record (key, payload hash, Ortto ID) for records Ortto acknowledged."""
        entries = list(entries)
        with self._transaction() as db:
            db.executemany(
                """INSERT INTO records (instance, stream, key, hash, ortto_id, run_id)
                   VALUES (?, ?, ?, ?, ?, ?)
                   ON CONFLICT (instance, stream, key) DO UPDATE SET hash = excluded.hash,
                       ortto_id = COALESCE(excluded.ortto_id, records.ortto_id),
                       run_id = excluded.run_id""",
                [
                    (self.instance, stream, key, digest, oid, self.run_id)
                    for key, digest, oid in entries
                ],
            )
            db.executemany(
                "DELETE FROM deletions WHERE instance = ? AND stream = ? AND key = ?",
                [(self.instance, stream, key) for key, _, _ in entries],
            )

    def ortto_id(self, stream: str, key: str) -> str | None:
        with self._reading() as db:
            row = db.execute(
                "SELECT ortto_id FROM records WHERE instance = ? AND stream = ? AND key = ?",
                (self.instance, stream, key),
            ).fetchone()
        return row[0] if row else None

    def not_seen(self, stream: str) -> list[tuple[str, str | None]]:
        """(key, Ortto ID) of records this run did not see: they left a full snapshot.

        A key not seen whose Ortto record was seen under another key (its email was filled
        in, say) has not left.
        """
        with self._reading() as db:
            return db.execute(
                """SELECT key, ortto_id FROM records
                   WHERE instance = :instance AND stream = :stream AND run_id != :run
                   AND (ortto_id IS NULL OR ortto_id NOT IN (
                       SELECT ortto_id FROM records
                       WHERE instance = :instance AND stream = :stream AND run_id = :run
                       AND ortto_id IS NOT NULL))""",
                {"instance": self.instance, "stream": stream, "run": self.run_id},
            ).fetchall()

    def queue_deletions(self, stream: str, entries: Iterable[tuple[str, str | None]]) -> None:
        """Remember (key, Ortto ID) of records deleted at the source until they are applied."""
        with self._transaction() as db:
            db.executemany(
                """INSERT OR REPLACE INTO deletions (instance, stream, key, ortto_id)
                   VALUES (?, ?, ?, ?)""",
                [(self.instance, stream, key, oid) for key, oid in entries],
            )

    def queued_deletions(self, stream: str) -> list[tuple[str, str | None]]:
        with self._reading() as db:
            return db.execute(
                "SELECT key, ortto_id FROM deletions WHERE instance = ? AND stream = ?",
                (self.instance, stream),
            ).fetchall()

    def forget(self, stream: str, keys: Iterable[str]) -> None:
        """Drop records that were removed from Ortto (and their queued deletions)."""
        rows = [(self.instance, stream, key) for key in keys]
        with self._transaction() as db:
            for table in ("records", "deletions"):
                db.executemany(
                    f"DELETE FROM {table} WHERE instance = ? AND stream = ? AND key = ?", rows
                )
