"""What the user sees of a run: counts, progress, summary, rejected records, request log.

Shared by every sink (they drain in parallel threads), so each writer holds a lock.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from singer_sdk.singerlib.json import serialize_json

from target_ortto.errors import ConfigError, InvalidRecordError, key_pattern

# Counter name -> how the summary says it, in the order it says them.
SUMMARY_COUNTS = {
    "created": "created",
    "merged": "merged",
    "unchanged": "unchanged",
    "accepted": "accepted",
    "subscribed": "subscribed",
    "unsubscribed": "unsubscribed",
    "rejected": "rejected",
    "linked": "linked to an account",
    "moved": "moved to another account",
    "unlinked": "unlinked",
    "links_failed": "links failed",
    "accounts_created": "accounts created for links",
    "phones_dropped": "phones_dropped",
    "cleared": "cleared",
    "archived": "archived",
    "deleted": "deleted",
    "kept": "kept (deleted at source; delete_behavior none, or baseline)",
    "baselined": "recorded as already in Ortto (baseline; nothing sent)",
    "planned": "would send",
    "planned_deletes": "would remove",
    "planned_links": "would link",
    "baselined_links": "links recorded as already in Ortto (baseline)",
}
# Counters that are not outcomes, so not shown among them in the summary.
PROGRESS_COUNTS = frozenset({"read", "sent", "folded"})
PROGRESS_EVERY = 10.0


class JsonLinesFile:
    """Append-only JSON Lines file, opened on first write, safe across threads.

    `check()` at run start: the first write may come after Ortto applied a request, too
    late to find the path unwritable."""

    def __init__(self, path: str, redact: str | None = None, setting: str = "") -> None:
        self.path = Path(path)
        self._redact = key_pattern(redact) if redact else None
        self._setting = setting
        self._file: Any = None
        self._lock = threading.Lock()

    def write(self, entry: Mapping[str, Any]) -> None:
        line = serialize_json(entry)
        if self._redact:
            line = self._redact.sub("[REDACTED]", line)
        with self._lock:
            if self._file is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._file = self.path.open("a", encoding="utf-8")
            self._file.write(line + "\n")
            self._file.flush()

    def check(self) -> None:
        """Raise `ConfigError` naming the setting if the file cannot be appended to; a file
        (or folder) made only to find out is removed again."""
        made = [p for p in (self.path, *self.path.parents) if not p.exists()]
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8"):
                pass
        except OSError as exc:
            raise ConfigError(
                f"Setting '{self._setting}' ({self.path}) cannot be written: "
                f"{exc.strerror or exc}. Choose a file path in a writable folder; nothing was "
                "sent to Ortto."
            ) from None
        finally:
            for path in made:  # the file first, then its new folders, innermost first
                if path.is_dir():
                    path.rmdir()
                elif path.exists():
                    path.unlink()

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


class RunReport:
    """Counts per stream and outcome; progress lines; the end-of-run summary; rejects."""

    def __init__(
        self,
        logger: logging.Logger,
        *,
        on_invalid_record: str = "fail",
        rejected: JsonLinesFile | None = None,
        max_rejected: int = 1000,
    ) -> None:
        self.logger = logger
        self.on_invalid_record = on_invalid_record
        self.rejected = rejected
        self.max_rejected = max_rejected
        self.counts: dict[str, Counter[str]] = defaultdict(Counter)
        self._lock = threading.Lock()
        self._started = time.monotonic()
        self._stop = threading.Event()
        self._progress: threading.Thread | None = None
        self.client_stats: Mapping[str, int] = {}  # the HTTP client's retries, 429s

    def count(self, stream: str, outcome: str, n: int = 1) -> None:
        with self._lock:
            self.counts[stream][outcome] += n

    def unusual(self, stream: str, status: str) -> None:
        """A record Ortto took with a status nobody recorded (or `unconfirmed`: not
        itemised): counted under its own name, warned about once per stream and status.
        The ledger does not remember it, so the next run sends it again."""
        with self._lock:
            first = not self.counts[stream][status]
            self.counts[stream][status] += 1
        if first:
            self.logger.warning(
                "Stream '%s': Ortto answered '%s' for a record it took: counted as '%s' and "
                "sent again next run, since it is unknown whether Ortto wrote it.",
                stream,
                status,
                status,
            )

    def phones_dropped(self, stream: str, key: str, reasons: list[str]) -> None:
        """Phones left out of a record that is still written (invalid_phones: drop):
        counted, and warned about once per stream with the first as an example."""
        with self._lock:
            first = not self.counts[stream]["phones_dropped"]
            self.counts[stream]["phones_dropped"] += len(reasons)
        if first:
            self.logger.warning(
                "Stream '%s': phone numbers that cannot be read are left out and the people "
                "written without them (invalid_phones: drop), counted as phones_dropped in the "
                "summary. First: record %s, %s",
                stream,
                key,
                reasons[0],
            )

    def total(self, outcome: str) -> int:
        with self._lock:
            return sum(c[outcome] for c in self.counts.values())

    def invalid(self, stream: str, key: str, reason: str, record: Mapping[str, Any]) -> None:
        """A record that cannot be written: fail the run, or reject it and go on."""
        message = f"Stream '{stream}', record {key}: {reason}"
        if self.on_invalid_record == "fail" or self.rejected is None:
            raise InvalidRecordError(
                f"{message}. Nothing after the last emitted STATE was confirmed. Fix the "
                "source data, or set on_invalid_record: reject to set such records aside in "
                "rejected_records_path and load the rest."
            )
        self.rejected.write({"stream": stream, "key": key, "reason": reason, "record": record})
        self.count(stream, "rejected")
        self.logger.warning("Rejected: %s", message)
        if self.total("rejected") > self.max_rejected:
            raise InvalidRecordError(
                f"More than max_rejected_records={self.max_rejected} records were rejected "
                f"(see {self.rejected.path}); stopping. The last: {message}."
            )

    def start_progress(self) -> None:
        """Log a progress line every 10 s until `finish`, so long runs show they are alive."""
        if self._progress is None:
            self._progress = threading.Thread(target=self._progress_loop, daemon=True)
            self._progress.start()

    def _progress_loop(self) -> None:
        while not self._stop.wait(PROGRESS_EVERY):
            self.logger.info("Progress: %s", self.progress_line())

    def progress_line(self) -> str:
        with self._lock:
            totals = sum(self.counts.values(), Counter())
        elapsed = max(time.monotonic() - self._started, 1e-9)
        read = totals["read"]
        parts = [f"{read} records read ({read / elapsed:.0f}/s)", f"{totals['sent']} sent"]
        parts += [f"{totals['rejected']} rejected"] if totals["rejected"] else []
        parts += [f"{n} {k}" for k, n in self.client_stats.items() if k != "requests" and n]
        return ", ".join(parts)

    def finish(self) -> list[str]:
        """Stop progress lines and log one summary line per stream; returns the lines."""
        self._stop.set()
        lines = []
        with self._lock:
            for stream, counts in sorted(self.counts.items()):
                unusual = set(counts) - set(SUMMARY_COUNTS) - PROGRESS_COUNTS
                labels = {**SUMMARY_COUNTS, **{k: k for k in sorted(unusual)}}
                shown = ", ".join(
                    f"{label} {counts[key]}" for key, label in labels.items() if counts[key]
                )
                lines.append(f"Stream '{stream}': {counts['read']} read; {shown or 'nothing sent'}")
        for line in lines:
            self.logger.info("Summary: %s", line)
        if self.rejected is not None:
            self.rejected.close()
        return lines
