"""One run's shared parts: settings, HTTP client, dispatcher, ledger, report, pre-flight,
and the registry of streams. Everything here is opened once and closed on every exit path.
"""

from __future__ import annotations

import logging
import threading
from contextlib import ExitStack
from typing import Protocol

from target_ortto.client import OrttoClient
from target_ortto.definitions import Definitions
from target_ortto.dispatch import Dispatcher
from target_ortto.ledger import Ledger, instance_id
from target_ortto.preflight import Preflight
from target_ortto.report import JsonLinesFile, RunReport
from target_ortto.settings import Settings


class StreamSink(Protocol):
    """What the run needs of a sink: its stream, when it drains, and a way to drain it."""

    stream_name: str
    drain_order: int  # drains of lower order reach Ortto first (people before audiences)

    def drain_now(self) -> None: ...


class Streams:
    """Per stream: its current sink (a schema change replaces it), and what it did this run.

    Sinks come and go with SCHEMA messages; what a stream did must outlive them.
    """

    def __init__(self) -> None:
        self._current: dict[str, StreamSink] = {}
        self._snapshots: set[str] = set()
        self._incremental: set[str] = set()
        self._sending: set[str] = set()
        self._finished: set[str] = set()
        self._dry_run_seen: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    def register(self, sink: StreamSink) -> None:
        """`sink` is now its stream's current sink."""
        with self._lock:
            self._current[sink.stream_name] = sink

    def current(self, stream: str) -> StreamSink | None:
        with self._lock:
            return self._current.get(stream)

    def draining_before(self, order: int) -> list[StreamSink]:
        """Current sinks whose records must reach Ortto before those of `order`."""
        with self._lock:
            return [s for s in self._current.values() if s.drain_order < order]

    def mark_snapshot(self, stream: str) -> None:
        """The stream sends its whole set (full_snapshot, or ACTIVATE_VERSION seen)."""
        with self._lock:
            self._snapshots.add(stream)

    def mark_incremental(self, stream: str) -> None:
        """A SCHEMA of the stream had `bookmark_properties`: the tap sends only what
        changed, so rows it did not send have not left (even if ACTIVATE_VERSION says so)."""
        with self._lock:
            self._incremental.add(stream)

    def is_snapshot(self, stream: str) -> bool:
        with self._lock:
            return stream in self._snapshots and stream not in self._incremental

    def snapshot_ignored(self, stream: str) -> bool:
        """ACTIVATE_VERSION came for a stream replicated incrementally."""
        with self._lock:
            return stream in self._snapshots and stream in self._incremental

    def mark_sending(self, stream: str) -> None:
        """Records of the stream went to Ortto in this run."""
        with self._lock:
            self._sending.add(stream)

    def sending(self) -> list[str]:
        """Streams whose records went to Ortto in this run, by name."""
        with self._lock:
            return sorted(self._sending)

    def finish_once(self, stream: str) -> bool:
        """True the first time a stream is finished: its removals are applied once."""
        with self._lock:
            first = stream not in self._finished
            self._finished.add(stream)
            return first

    def dry_run_seen(self, stream: str) -> set[str]:
        """Keys a dry run saw in a stream (it writes no ledger to remember them in)."""
        with self._lock:
            return self._dry_run_seen.setdefault(stream, set())


class Run:
    """What every sink of one run shares. `close()` is safe to call more than once."""

    def __init__(
        self,
        settings: Settings,
        logger: logging.Logger,
    ) -> None:
        self.settings = settings
        self.streams = Streams()
        with ExitStack() as opened:  # a part failing to open closes those before it
            self.request_log = (
                JsonLinesFile(settings.request_log_path, settings.api_key, "request_log_path")
                if settings.request_log_path
                else None
            )
            rejected = (
                JsonLinesFile(settings.rejected_records_path, setting="rejected_records_path")
                if settings.on_invalid_record == "reject"
                else None
            )
            for output in (self.request_log, rejected):
                if output is not None:
                    output.check()
            if self.request_log is not None:
                opened.callback(self.request_log.close)
            self.client = OrttoClient(
                settings.base_url,
                settings.api_key,
                region=settings.region,
                timeout=settings.request_timeout,
                max_retries=settings.max_retries,
                requests_per_second=settings.requests_per_second,
                max_concurrency=settings.max_concurrency,
                request_log=self.request_log.write if self.request_log else None,
            )
            opened.callback(self.client.close)
            self.ledger = Ledger(
                settings.ledger_path, instance_id(settings.base_url, settings.api_key)
            )
            opened.callback(self.ledger.close)
            self.report = RunReport(
                logger,
                on_invalid_record=settings.on_invalid_record,
                rejected=rejected,
                max_rejected=settings.max_rejected_records,
            )
            opened.callback(self.report.finish)
            self.dispatcher = Dispatcher(settings.max_concurrency)
            opened.callback(self.dispatcher.close)  # first: answers still update the rest
            self.preflight = Preflight(
                self.client,
                logger,
                create=settings.create_custom_fields,
                dry_run=settings.dry_run or settings.baseline,  # both write nothing to Ortto
            )
            self.definitions = Definitions(  # custom activities (activity streams)
                self.client,
                logger,
                create=settings.create_custom_fields,
                dry_run=settings.dry_run or settings.baseline,
            )
            self._closing = opened.pop_all()
        self.report.client_stats = self.client.stats
        self.report.start_progress()

    def claim(self, stream: str) -> None:
        """At a stream's first SCHEMA, before anything of it is sent: no other run may sync
        it with this ledger until this run closes. A dry run writes nothing, so claims
        nothing."""
        if not self.settings.dry_run:
            self.ledger.claim(stream)

    def close(self) -> None:
        """Wait for requests in flight, log the summary, close files and connections."""
        self._closing.close()
