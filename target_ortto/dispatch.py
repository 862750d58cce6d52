"""Requests of every stream run on one bounded thread pool; the first failure ends the run.

Ortto's limits apply per instance, not per stream, so one pool of `max_concurrency`
threads serves all sinks. Once a request failed, nothing after the last emitted STATE can
be confirmed, so requests still queued are not sent at all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from target_ortto.errors import ApiError

T = TypeVar("T")


class Dispatcher:
    """A thread pool that stops sending after the first failure (or `stop()`)."""

    def __init__(self, max_concurrency: int) -> None:
        self._pool = ThreadPoolExecutor(max_concurrency, thread_name_prefix="ortto")
        self.failed = False

    def submit_all(self, tasks: Iterable[Callable[[], T]]) -> list[Future[T]]:
        """Start tasks, at most `max_concurrency` running at a time across the run."""
        return [self._pool.submit(self._unless_failed, task) for task in tasks]

    def run_all(self, tasks: Iterable[Callable[[], T]]) -> list[T]:
        """Run tasks (see `submit_all`) and return their results when all have finished."""
        return wait_all(self.submit_all(tasks))

    def stop(self) -> None:
        """Send nothing more (a signal, or a failure elsewhere)."""
        self.failed = True

    def close(self) -> None:
        """Wait for requests in flight; after a failure, drop the queued ones unsent."""
        self._pool.shutdown(wait=True, cancel_futures=self.failed)

    def _unless_failed(self, task: Callable[[], T]) -> T:
        if self.failed:
            raise ApiError("Not sent: an earlier request of this run failed.")
        try:
            return task()
        except BaseException:
            self.failed = True
            raise


def wait_all(futures: list[Future[T]]) -> list[T]:
    """Wait for every task even when one fails, so nothing is left in flight, then raise
    the first failure, or return the results in order."""
    errors = [f.exception() for f in futures]
    for error in errors:
        if error is not None:
            raise error
    return [f.result() for f in futures]
