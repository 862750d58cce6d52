"""Opening the ledger's SQLite file: its schema version, the upgrade of older ledgers, and a
message saying what to do for every way the file can be unusable.

Everything here runs before the first request, so a bad ledger stops a run that sent nothing.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from target_ortto.errors import OrttoError

SCHEMA_VERSION = 2  # 1: the unversioned ledger of target-ortto 0.2 (no instances, no claims)
BUSY_SECONDS = 10.0  # how long a statement waits for another process's write transaction

_TABLES = (
    "CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
    """CREATE TABLE records (
        instance TEXT NOT NULL,
        stream TEXT NOT NULL,
        key TEXT NOT NULL,
        hash TEXT NOT NULL,
        ortto_id TEXT,
        run_id TEXT NOT NULL,
        PRIMARY KEY (instance, stream, key)
    ) WITHOUT ROWID""",
    """CREATE TABLE deletions (
        instance TEXT NOT NULL,
        stream TEXT NOT NULL,
        key TEXT NOT NULL,
        ortto_id TEXT,
        PRIMARY KEY (instance, stream, key)
    ) WITHOUT ROWID""",
    """CREATE TABLE claims (
        instance TEXT NOT NULL,
        stream TEXT NOT NULL,
        run_id TEXT NOT NULL,
        host TEXT NOT NULL,
        pid INTEGER NOT NULL,
        heartbeat REAL NOT NULL,
        PRIMARY KEY (instance, stream)
    ) WITHOUT ROWID""",
)
_VERSION_1 = {
    "records": ["stream", "key", "hash", "ortto_id", "run_id"],
    "deletions": ["stream", "key", "ortto_id"],
}
# SQLite's message (stable across versions) -> what it means for a ledger, and what to do.
_PROBLEMS = {
    "database is locked": (
        "stayed locked by another process for {busy:g} s: let the process that has it open "
        "(another target-ortto run, or a tool browsing the file) finish, then rerun"
    ),
    "file is not a database": (
        "is not a SQLite database (damaged, or another kind of file): move it away and rerun "
        "(the next run sends every record once more, and cannot tell which rows left a full "
        "snapshot before), or set ledger_path to the right file"
    ),
    "malformed": "is damaged: move it away and rerun (the next run sends every record once more)",
    "readonly database": (
        "is not writable: give this user write access to the file and its directory (SQLite "
        "writes -wal and -shm files beside it), or set ledger_path to a writable place"
    ),
    "unable to open database file": (
        "cannot be opened or created: set ledger_path to a file in a directory this user can "
        "write to"
    ),
}


class LedgerError(OrttoError):
    """The ledger file cannot be used as it is, or a stream is claimed by another run."""


def failure(path: Path, exc: sqlite3.Error | OSError) -> LedgerError:
    """The message for an error SQLite (or the file system) raised about the ledger."""
    said = str(exc) if isinstance(exc, sqlite3.Error) else "unable to open database file"
    problem = next((p.format(busy=BUSY_SECONDS) for t, p in _PROBLEMS.items() if t in said), None)
    if problem is None:
        problem = f"cannot be used ({exc}): check the file, or set ledger_path to another file"
    return LedgerError(f"The ledger {str(path)!r} {problem}.")


def open_ledger(path: Path, instance: str) -> sqlite3.Connection:
    """A connection to the ledger at `path`, created or upgraded to `SCHEMA_VERSION`.

    An unversioned ledger's rows are given to `instance`: the run that first opens it after
    the upgrade is the one that wrote them, in all likelihood.
    """
    if path.is_dir():
        raise LedgerError(
            f"The ledger {str(path)!r} is a directory: set ledger_path to a file, such as "
            f"{str(path / 'ledger.sqlite')!r}."
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise failure(path, exc) from None
    try:
        db = sqlite3.connect(
            path, timeout=BUSY_SECONDS, check_same_thread=False, isolation_level=None
        )
    except sqlite3.Error as exc:
        raise failure(path, exc) from None
    try:
        _prepare(db, path, instance)
    except BaseException:
        db.close()
        raise
    return db


def _prepare(db: sqlite3.Connection, path: Path, instance: str) -> None:
    """Write-ahead logging (runs read while another writes); the tables created or
    upgraded in one transaction, by one run while the others wait."""
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("BEGIN IMMEDIATE")
        try:
            _create_or_upgrade(db, path, instance)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
    except sqlite3.Error as exc:
        raise failure(path, exc) from None


def _create_or_upgrade(db: sqlite3.Connection, path: Path, instance: str) -> None:
    tables = {
        name: [column for _, column, *_ in db.execute(f"PRAGMA table_info({name})")]
        for (name,) in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        ).fetchall()
    }
    if "meta" in tables:
        row = db.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone()
        version = int(row[0]) if row else 0
        if version > SCHEMA_VERSION:
            raise LedgerError(
                f"The ledger {str(path)!r} was written by a newer target-ortto (ledger schema "
                f"{version}; this version reads up to {SCHEMA_VERSION}): upgrade target-ortto, "
                "or set ledger_path to another file."
            )
        return
    if tables == _VERSION_1:
        _upgrade_from_version_1(db, instance)
    elif tables:
        raise LedgerError(
            f"The ledger {str(path)!r} is a SQLite database of something else (tables "
            f"{', '.join(sorted(tables))}): set ledger_path to another file."
        )
    else:
        for statement in _TABLES:
            db.execute(statement)
    db.execute(
        "INSERT INTO meta (name, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
    )


def _upgrade_from_version_1(db: sqlite3.Connection, instance: str) -> None:
    """Rebuild the tables with the instance in their keys (SQLite cannot alter a key)."""
    for table in _VERSION_1:
        db.execute(f"ALTER TABLE {table} RENAME TO {table}_v1")
    for statement in _TABLES:
        db.execute(statement)
    for table, columns in _VERSION_1.items():
        listed = ", ".join(columns)
        db.execute(
            f"INSERT INTO {table} (instance, {listed}) SELECT ?, {listed} FROM {table}_v1",
            (instance,),
        )
        db.execute(f"DROP TABLE {table}_v1")
