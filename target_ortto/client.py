"""HTTP to Ortto: one connection pool, one rate limiter, retries, errors that say what to do.

One `OrttoClient` is shared by every stream of a run (requests run on the dispatcher's
threads), so everything here is thread-safe.
"""

from __future__ import annotations

import json
import logging
import math
import random
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

import httpx
import msgspec

from target_ortto.errors import ApiError, AuthError, key_bytes_pattern, shown_url
from target_ortto.settings import REGION_URLS

# httpx logs every request at INFO; our request log and progress lines say what matters.
logging.getLogger("httpx").setLevel(logging.WARNING)

# Request bodies as compact UTF-8 JSON, several times faster than `json.dumps`.
_JSON = msgspec.json.Encoder()
RETRYABLE_STATUS = frozenset({500, 502, 503, 504})
BAD_REQUEST_WINDOW = 15.0  # Ortto bans an IP after 15 bad requests in 15 s ...
BAD_REQUEST_BUDGET = 14  # ... so bad answers plus requests in flight stay below 15.
MAX_RATE_LIMITED = 30  # 429s one request may meet; they cost time, never data.
BACKOFF_CAP = 30.0
MAX_RETRY_AFTER = 600.0  # a longer (or non-finite) wait Ortto asks for is a failure, not a sleep


class Clock(Protocol):
    """Where the client reads time and waits: the `time` module, or a fake one in tests."""

    def monotonic(self) -> float: ...

    def sleep(self, seconds: float, /) -> None: ...


class BadRequest(ApiError):
    """HTTP 400 (or 413): Ortto refused the request's content. `body` holds its answer."""

    def __init__(self, message: str, body: Any, status: int = 400) -> None:
        super().__init__(message, status)
        self.body = body


class RateLimiter:
    """Spaces requests evenly at `per_second`, shared by all threads; 429s pause everyone.

    The spacing keeps a hair (2%) under the limit: network jitter bunches requests, and a
    429 costs Ortto's whole `try-in-seconds`.
    """

    def __init__(self, per_second: float, clock: Clock = time) -> None:
        self._interval = 1.02 / per_second
        self._clock = clock
        self._next = clock.monotonic()
        self._lock = threading.Lock()

    def acquire(self) -> None:
        with self._lock:
            now = self._clock.monotonic()
            slot = max(now, self._next)
            self._next = slot + self._interval
        if slot > now:
            self._clock.sleep(slot - now)

    def pause(self, seconds: float) -> None:
        """Hold every sender back, e.g. for Ortto's `try-in-seconds`."""
        with self._lock:
            self._next = max(self._next, self._clock.monotonic() + seconds)


class BadRequestGuard:
    """Keeps 4xx answers under Ortto's ban threshold (15 in 15 s).

    Requests in flight count against the budget too, since each may come back bad: a new
    request waits while recent bad answers plus requests in flight would reach it.
    """

    def __init__(
        self,
        budget: int = BAD_REQUEST_BUDGET,
        window: float = BAD_REQUEST_WINDOW,
        clock: Clock = time,
    ) -> None:
        self._budget = budget
        self._window = window
        self._clock = clock
        self._bad: deque[float] = deque()
        self._in_flight = 0
        self._lock = threading.Lock()

    def enter(self) -> None:
        while True:
            with self._lock:
                now = self._clock.monotonic()
                while self._bad and self._bad[0] <= now - self._window:
                    self._bad.popleft()
                if len(self._bad) + self._in_flight < self._budget:
                    self._in_flight += 1
                    return
                delay = self._bad[0] + self._window - now if self._bad else 0.01
            self._clock.sleep(delay)

    def leave(self, bad: bool) -> None:
        with self._lock:
            self._in_flight -= 1
            if bad:
                self._bad.append(self._clock.monotonic())


class OrttoClient:
    """Sends requests to one Ortto region (or sandbox) with the key, limit and retries.

    `transport`, `limiter`, `guard` and `clock` are there for tests: by default the client
    talks to the network, spaced at `requests_per_second`, waiting in real time.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        region: str = "default",
        timeout: float = 30.0,
        max_retries: int = 8,
        requests_per_second: float = 10.0,
        max_concurrency: int = 8,
        backoff_base: float = 0.5,
        request_log: Callable[[dict[str, Any]], None] | None = None,
        transport: httpx.BaseTransport | None = None,
        limiter: RateLimiter | None = None,
        guard: BadRequestGuard | None = None,
        clock: Clock = time,
    ) -> None:
        self.base_url = base_url
        self.shown_url = shown_url(base_url)  # for messages: no `user:password@`
        self.region = region
        self.timeout = timeout
        self._key = key_bytes_pattern(api_key) if api_key else None
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.limiter = RateLimiter(requests_per_second, clock) if limiter is None else limiter
        self.guard = BadRequestGuard(clock=clock) if guard is None else guard
        self._clock = clock
        self.request_log = request_log
        self.stats = {"requests": 0, "retries": 0, "rate_limited": 0}
        # Whether anything at base_url has answered in this run: until then a refused
        # connection or an unknown host is a wrong api_url/region, not a blip to retry.
        self.answered = False
        self._stats_lock = threading.Lock()
        self._http = httpx.Client(
            base_url=base_url,
            headers={"X-Api-Key": api_key, "Content-Type": "application/json"},
            timeout=timeout,
            limits=httpx.Limits(
                max_connections=max_concurrency, max_keepalive_connections=max_concurrency
            ),
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    def request(self, method: str, path: str, body: Any) -> Any:
        """Send one request until Ortto answers it; return the parsed JSON answer."""
        payload = _JSON.encode(body)
        failures = rate_limited = 0
        while True:
            self.limiter.acquire()
            self.guard.enter()
            started = self._clock.monotonic()
            bad = False
            try:
                response, content = self._send(method, path, payload, started + self.timeout)
                bad = 400 <= response.status_code < 500 and response.status_code != 429
            except httpx.LocalProtocolError:
                raise ApiError(
                    f"{method} {path}: the request could not be formed (often: the api_key "
                    "has characters a header cannot carry). Check api_key."
                ) from None
            except httpx.TransportError as exc:
                self._log(method, path, body, None, started, error=type(exc).__name__)
                _refuse_tls_mismatch(exc, self.shown_url)
                if isinstance(exc, httpx.ConnectError) and not self.answered:
                    raise ApiError(self._unreachable(method, path, exc)) from None
                failures += 1
                self._retry_or_raise(method, path, failures, type(exc).__name__)
                continue
            finally:
                self.guard.leave(bad=bad)
            self.answered = True
            # Ortto may echo the key (in a 401 body, say): no quote of its words carries it.
            answer = _parse(self._key.sub(b"[REDACTED]", content) if self._key else content)
            self._log(method, path, body, response.status_code, started, answer=answer)
            status = response.status_code
            if status < 300:
                return answer
            if status == 429:
                rate_limited += 1
                if rate_limited > MAX_RATE_LIMITED:
                    raise ApiError(
                        f"{method} {path}: Ortto kept answering 429 (rate limit) after "
                        f"{MAX_RATE_LIMITED} waits. Lower requests_per_second to your plan's "
                        "limit (Professional 10/s, Business 30/s). No STATE was emitted past "
                        "the data not yet written."
                    )
                self._count("rate_limited")
                self.limiter.pause(self._retry_after(method, path, response, answer))
                continue
            if status in RETRYABLE_STATUS:
                failures += 1
                self._retry_or_raise(method, path, failures, f"HTTP {status} {_message(answer)}")
                continue
            raise self._error(method, path, status, answer)

    def _send(
        self, method: str, path: str, payload: bytes, deadline: float
    ) -> tuple[httpx.Response, bytes]:
        """The answer and its body, read by `deadline`: httpx's timeout is per read, so a
        body that trickles in would otherwise hold a request (and a thread) for ever."""
        request = self._http.build_request(method, path, content=payload)
        response = self._http.send(request, stream=True)
        try:
            chunks = []
            for chunk in response.iter_bytes():
                chunks.append(chunk)
                if self._clock.monotonic() > deadline:
                    raise httpx.ReadTimeout(
                        f"the answer took over request_timeout={self.timeout}s", request=request
                    )
            return response, b"".join(chunks)
        finally:
            response.close()

    def _unreachable(self, method: str, path: str, exc: httpx.ConnectError) -> str:
        """Nothing has answered yet in this run: say which setting points where."""
        if self.base_url.rstrip("/") == REGION_URLS.get(self.region, "").rstrip("/"):
            where = f"region={self.region} ({self.shown_url})"
        else:
            where = f"api_url={self.shown_url}"
        return (
            f"{method} {self.shown_url}{path}: nothing answers at {where} "
            f"({str(exc) or type(exc).__name__}). Check api_url (unset it to use the "
            "region's Ortto URL) and region (default, au or eu), and that this machine can "
            "reach it. Nothing was sent; not retried because nothing at this address has "
            "answered in this run."
        )

    def _retry_after(self, method: str, path: str, response: httpx.Response, answer: Any) -> float:
        """The wait a 429 asks for; one over `MAX_RETRY_AFTER`, or not finite, stops the run
        rather than sleeping for an hour (or for ever)."""
        wait = _retry_after(response, answer)
        if not math.isfinite(wait) or wait > MAX_RETRY_AFTER:
            raise ApiError(
                f"{method} {self.shown_url}{path}: Ortto answered 429 (rate limit) and asked to "
                f"wait {wait} seconds, more than target-ortto waits ({MAX_RETRY_AFTER:.0f} s): "
                "a daily or monthly quota may be used up, or the IP banned. Rerun later (it "
                "resumes from the last STATE), and check the account's API usage in Ortto."
            )
        return wait

    def _retry_or_raise(self, method: str, path: str, failures: int, what: str) -> None:
        if failures > self.max_retries:
            raise ApiError(
                f"{method} {self.shown_url}{path} failed {failures} times (last: {what}); gave "
                f"up after max_retries={self.max_retries}. Nothing after the last emitted STATE "
                "is confirmed as written: rerun to resume from it."
            )
        self._count("retries")
        delay = min(BACKOFF_CAP, self.backoff_base * 2 ** (failures - 1))
        self._clock.sleep(delay * random.uniform(0.5, 1.0))

    def _error(self, method: str, path: str, status: int, answer: Any) -> ApiError:
        where = f"{method} {self.shown_url}{path}"
        # Ortto's error-responses page: 401 is a wrong key (or a key of another region's
        # instance); 403 is a key that authenticated but may not use the resource.
        if status == 401:
            return AuthError(
                f"Ortto refused the API key (HTTP 401 at {where}: {_message(answer)}). "
                f"Check api_key, and that region '{self.region}' ({self.shown_url}) is your "
                "Ortto instance's region: a key works only in its own region (default, au "
                "or eu).",
                status,
            )
        if status == 403:
            return AuthError(
                f"Ortto accepted the API key but refused access (HTTP 403 at {where}: "
                f"{_message(answer)}). Ortto answers this when the account has expired, or "
                "when the person who created the key's data source has left the Ortto "
                "account: check the account in Ortto, and create a new Custom API data source "
                "(Data sources > Custom API) for a new key if needed.",
                status,
            )
        if status == 404:
            return ApiError(
                f"Ortto answered 404 Not Found for {where}: check api_url / region.", status
            )
        if status in {400, 413}:  # 413: a payload over 2 MB (unrecorded), split like a 400
            return BadRequest(
                f"Ortto refused {where} (HTTP {status}): {_message(answer)}", answer, status
            )
        return ApiError(f"Ortto refused {where} (HTTP {status}): {_message(answer)}", status)

    def _count(self, name: str) -> None:
        with self._stats_lock:
            self.stats[name] += 1

    def _log(
        self,
        method: str,
        path: str,
        body: Any,
        status: int | None,
        started: float,
        answer: Any = None,
        error: str | None = None,
    ) -> None:
        self._count("requests")
        if self.request_log is not None:
            self.request_log(
                {
                    "method": method,
                    "path": path,
                    "status": status,
                    "duration_ms": round((self._clock.monotonic() - started) * 1000, 1),
                    "request": body,
                    "response": answer,
                    "error": error,
                }
            )


def _parse(content: bytes) -> Any:
    try:
        return json.loads(content)
    except ValueError:
        return {"error": content[:500].decode("utf-8", "replace")}


def _refuse_tls_mismatch(exc: httpx.TransportError, url: str) -> None:
    """A TLS failure is no passing fault: retrying it only delays the message."""
    cause: BaseException | None = exc
    while cause is not None and not isinstance(cause, ssl.SSLError):
        cause = cause.__cause__ or cause.__context__
    if cause is None:
        return
    reason = getattr(cause, "reason", None) or str(cause)
    if reason in {"WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "HTTP_REQUEST"}:
        raise ApiError(
            f"{url} does not speak TLS ({reason}): the api_url says https:// but the port "
            "answers plain http. Fix api_url (the port, or http:// for a local sandbox)."
        ) from None
    raise ApiError(
        f"The TLS connection to {url} failed ({reason}): check api_url, and any proxy or "
        "certificate in the way."
    ) from None


def _message(answer: Any) -> str:
    """Ortto's own words from an error body (`error` is a string, or an object for 429)."""
    if isinstance(answer, dict):
        error = answer.get("error")
        if isinstance(error, dict):
            return str(error.get("message") or error)
        if error:
            return str(error)
    return json.dumps(answer)[:300]


def _retry_after(response: httpx.Response, answer: Any) -> float:
    """Ortto's `error.try-in-seconds`, else a `Retry-After` header, else one second (NaN and
    infinity kept, for the caller to refuse)."""
    error = answer.get("error") if isinstance(answer, dict) else None
    if isinstance(error, dict) and error.get("try-in-seconds") is not None:
        try:
            return _not_negative(float(error["try-in-seconds"]))
        except (TypeError, ValueError, OverflowError):
            pass
    try:
        return _not_negative(float(response.headers.get("Retry-After", "1")))
    except ValueError:
        return 1.0


def _not_negative(seconds: float) -> float:
    return 0.0 if seconds < 0 else seconds
