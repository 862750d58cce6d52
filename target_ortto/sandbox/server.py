"""The sandbox's API side: a real local server speaking Ortto's API, with injectable faults.

`Sandbox` puts a `Store` behind a `Listener` (the HTTP socket server), checks the API key
like Ortto, injects the failures a robust client must survive (latency, rate limits, 5xx
before or after applying, dropped connections, forced statuses, Ortto's bad-request ban) and
records every request so tests can assert on traffic.
"""

from __future__ import annotations

import hmac
import json
import threading
import time
import traceback
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, replace
from functools import partial
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from . import links
from .body import ApiError
from .faults import FAULT_SETTINGS, MERGE_ANSWERS, Faults, RequestRecord
from .listener import Answer, Listener
from .store import Store

# Answers that count towards Ortto's ban: "15 bad requests in 15 s ban the IP for 15 s".
BAD_STATUSES = frozenset({400, 401, 403, 404, 405})
SERVER_ERRORS = (500, 502, 503)
# Ortto: "payload ≤ 2 MB" (10^6 or 2^20 not said); its refusal is unrecorded: 413 here.
MAX_PAYLOAD = 2_000_000
_RECORD_KEYS = ("people", "accounts", "organizations", "inclusion_ids", "activities")
_KIND_PATHS = {"person": "/v1/person", "account": "/v1/accounts"}

Handler = Callable[[dict[str, Any]], Any]


def _error(status: int, message: str, details: list[dict[str, Any]] | None = None) -> Any:
    body: dict[str, Any] = {"request_id": str(uuid.uuid4()), "code": status, "error": message}
    return body if details is None else {**body, "details": details}


def _rate_limited(message: str, seconds: float) -> dict[str, Any]:
    return {"error": {"code": "rate-limit", "message": message, "try-in-seconds": seconds}}


def _forced_body(status: int, try_in_seconds: float) -> Any:
    if status == 429:
        return _rate_limited("rate limit", try_in_seconds)
    return _error(status, "injected fault")


def _parse(raw: bytes) -> tuple[Any, str | None]:
    """The JSON object body (empty means {}), or an error message."""
    if not raw.strip():
        return {}, None
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        return None, f"invalid JSON body: {error}"
    return (body, None) if isinstance(body, dict) else (body, "body must be a JSON object")


def _record_count(body: Any) -> int:
    if isinstance(body, dict):
        for key in _RECORD_KEYS:
            if isinstance(body.get(key), list):
                return len(body[key])
    return 0


def _api_routes(store: Store) -> dict[str, tuple[str, Handler]]:
    """Path -> (method, handler) for every Ortto endpoint the sandbox implements."""
    routes: dict[str, tuple[str, Handler]] = {
        "/v1/organizations/merge": ("POST", partial(store.merge, "organization")),
        "/v1/audiences/get": ("POST", store.get_audiences),
        "/v1/audience/subscribe": ("PUT", store.subscribe),
        "/v1/instance-schema/get": ("POST", store.instance_schema),
        "/v1/definitions/activity/create": ("POST", store.create_activity_definition),
        "/v1/activities/create": ("POST", store.create_activities),
    }
    for path, keys in links.FORMS.items():
        for action in links.ACTIONS:
            handler = partial(store.contacts, keys, action)
            routes[path.format(action=action)] = ("PUT", handler)
    for kind, prefix in _KIND_PATHS.items():
        routes |= {
            f"{prefix}/merge": ("POST", partial(store.merge, kind)),
            f"{prefix}/get": ("POST", partial(store.get_records, kind)),
            f"{prefix}/custom-field/get": ("POST", partial(store.get_custom_fields, kind)),
            f"{prefix}/custom-field/create": ("POST", partial(store.create_custom_field, kind)),
            f"{prefix}/archive": ("PUT", partial(store.bulk, kind, "archive")),
            f"{prefix}/restore": ("PUT", partial(store.bulk, kind, "restore")),
            f"{prefix}/delete": ("DELETE", partial(store.bulk, kind, "delete")),
        }
    return routes


class Sandbox:
    """A local Ortto: start it, point a client at `.url`, read `.store` and `.requests`."""

    def __init__(
        self,
        api_key: str = "sandbox-key",
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        faults: Faults | None = None,
        **store_options: int,
    ) -> None:
        self.api_key = api_key
        self.host = host
        self.port = port
        self.store = Store(**store_options)
        self._initial_faults = faults or Faults()
        self._lock = threading.Lock()
        self._routes = _api_routes(self.store)
        self._admin_routes: dict[str, tuple[str, Handler]] = {
            "/_sandbox/state": ("GET", self._state),
            "/_sandbox/reset": ("POST", self._reset),
            "/_sandbox/faults": ("POST", self._set_faults),
            "/_sandbox/custom-fields": ("POST", self._add_custom_field),
            "/_sandbox/audiences": ("POST", self._add_audience),
            "/_sandbox/activities": ("POST", self._person_activities),
        }
        self._server: Listener | None = None
        self._thread: threading.Thread | None = None
        self._restart_traffic()

    def _restart_traffic(self) -> None:
        self.faults = replace(self._initial_faults)
        self._requests: list[RequestRecord] = []
        self._in_flight = 0
        self.max_in_flight = 0
        self.bans = 0
        self._banned_until = 0.0
        self._bad_answers: deque[float] = deque()
        self._admitted: deque[float] = deque()
        self._forced: deque[int] = deque()

    # ----- lifecycle -----

    def start(self) -> Sandbox:
        """Bind and serve in a background thread (port 0 picks a free port)."""
        if self._server is None:
            self._server = Listener((self.host, self.port), self.answer)
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name="ortto-sandbox",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close open connections and join every thread."""
        server, thread, self._server, self._thread = self._server, self._thread, None, None
        if server is None or thread is None:
            return
        server.shutdown()
        server.close_connections()
        server.server_close()
        thread.join()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the sandbox is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # ----- state for tests -----

    @property
    def requests(self) -> list[RequestRecord]:
        """Every API request so far, oldest first (a copy)."""
        with self._lock:
            return list(self._requests)

    def reset(self) -> None:
        """Empty the store, forget traffic and bans, and restore the faults it started with."""
        with self._lock:
            self.store.reset()
            self._restart_traffic()

    def set_faults(self, **changes: Any) -> Faults:
        """Change fault settings; the random sequence restarts from `seed`."""
        with self._lock:
            self.faults = replace(self.faults, **changes)
            return self.faults

    def fail_next(self, count: int, status: int = 500) -> None:
        """Answer the next `count` API requests with `status`, changing nothing."""
        with self._lock:
            self._forced.extend([status] * count)

    # ----- answering -----

    def answer(self, method: str, target: str, headers: Any, raw: bytes) -> Answer:
        """Answer one request: admin paths directly, everything else as the Ortto API."""
        path = urlsplit(target).path
        body, parse_error = _parse(raw)
        if path.startswith("/_sandbox/"):
            return self._admin(method, path, body, parse_error)
        started = time.monotonic()
        with self._lock:
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            if len(raw) > MAX_PAYLOAD:
                status, reply, fault = 413, _error(413, "request payload exceeds 2 MB"), None
            else:
                status, reply, fault = self._api(method, path, headers, body, parse_error)
        finally:
            with self._lock:
                self._in_flight -= 1
        with self._lock:
            if status in BAD_STATUSES:
                self._note_bad_answer()
            entry = RequestRecord(
                method,
                path,
                status,
                _record_count(body),
                body,
                time.monotonic() - started,
                fault,
            )
            self._requests.append(entry)
        return None if status is None else (status, reply)

    def _api(
        self, method: str, path: str, headers: Any, body: Any, parse_error: str | None
    ) -> tuple[int | None, Any, str | None]:
        faults = self.faults
        if faults.latency > 0:
            time.sleep(faults.latency)
        gated = self._gate(faults)
        if gated is not None:
            return gated
        key = headers.get("X-Api-Key") or ""
        if path.startswith("/v1/") and not hmac.compare_digest(key.encode(), self.api_key.encode()):
            return 401, _error(401, "Invalid API key"), None
        if path not in self._routes:
            return 404, {"code": 404, "error": "not found"}, None
        allowed, handler = self._routes[path]
        if method != allowed:
            return 405, _error(405, f"method {method} not allowed, use {allowed}"), None
        if parse_error is not None:
            return 400, _error(400, parse_error), None
        if faults.roll(faults.error_rate):
            status = faults.rng.choice(SERVER_ERRORS)
            return status, _error(status, "injected server error, nothing applied"), "error"
        try:
            reply = handler(body)
        except ApiError as refused:
            return refused.status, _error(refused.status, refused.message, refused.details), None
        except Exception:
            traceback.print_exc()
            return 500, _error(500, "sandbox bug: see the sandbox's stderr"), None
        if faults.roll(faults.error_after_apply_rate):
            return 500, _error(500, "injected server error after applying"), "error_after_apply"
        if path.endswith("/merge") and faults.merge_answer != "documented":
            return 200, MERGE_ANSWERS[faults.merge_answer](reply), faults.merge_answer
        return 200, reply, None

    def _gate(self, faults: Faults) -> tuple[int | None, Any, str | None] | None:
        """Faults decided before the request is looked at: ban, drop, forced status, 429."""
        with self._lock:
            now = time.monotonic()
            if now < self._banned_until:
                remaining = round(self._banned_until - now, 3)
                message = "IP banned for too many bad requests"
                return 429, _rate_limited(message, remaining), "ban"
            if faults.roll(faults.drop_rate):
                return None, None, "drop"
            if self._forced:
                status = self._forced.popleft()
                return status, _forced_body(status, faults.try_in_seconds), "fail_next"
            if faults.rate_limit:
                while self._admitted and now - self._admitted[0] >= 1.0:
                    self._admitted.popleft()
                if len(self._admitted) >= faults.rate_limit:
                    reply = _rate_limited("rate limit", faults.try_in_seconds)
                    return 429, reply, "rate_limit"
                self._admitted.append(now)
        return None

    def _note_bad_answer(self) -> None:
        """Count a 4xx; past the threshold within the window, ban every request for a while."""
        threshold = self.faults.ban_threshold
        if threshold is None:
            return
        now = time.monotonic()
        self._bad_answers.append(now)
        while now - self._bad_answers[0] > self.faults.ban_window:
            self._bad_answers.popleft()
        if len(self._bad_answers) > threshold:
            self._banned_until = now + self.faults.ban_seconds
            self.bans += 1
            self._bad_answers.clear()

    # ----- admin endpoints (no auth, no faults, not recorded) -----

    def _admin(self, method: str, path: str, body: Any, parse_error: str | None) -> Answer:
        if path not in self._admin_routes:
            return 404, {"code": 404, "error": "not found"}
        allowed, handler = self._admin_routes[path]
        if method != allowed:
            return 405, {"code": 405, "error": f"method {method} not allowed, use {allowed}"}
        if parse_error is not None:
            return 400, {"code": 400, "error": parse_error}
        try:
            return 200, handler(body)
        except (ApiError, KeyError, TypeError, ValueError) as error:
            message = error.message if isinstance(error, ApiError) else f"bad request: {error!r}"
            return 400, {"code": 400, "error": message}

    def _state(self, body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            traffic = {"requests": len(self._requests), "bans": self.bans}
            faults = {name: getattr(self.faults, name) for name in FAULT_SETTINGS}
        return {**self.store.snapshot(), **traffic, "faults": faults}

    def _reset(self, body: dict[str, Any]) -> dict[str, Any]:
        self.reset()
        return {"reset": True}

    def _set_faults(self, body: dict[str, Any]) -> dict[str, Any]:
        for name, value in body.items():
            if name not in FAULT_SETTINGS:
                raise ValueError(f"unknown fault {name}; known: {', '.join(FAULT_SETTINGS)}")
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float)
            ):
                raise ValueError(f"fault {name} must be a number or null")
        faults = self.set_faults(**body)
        return {name: getattr(faults, name) for name in FAULT_SETTINGS}

    def _add_custom_field(self, body: dict[str, Any]) -> dict[str, Any]:
        custom = self.store.add_custom_field(
            body["kind"],
            body["field_id"],
            body["name"],
            body.get("display_type", "text"),
            values=body.get("values"),
        )
        return asdict(custom)

    def _person_activities(self, body: dict[str, Any]) -> dict[str, Any]:
        """A person's activities: {"person_id": "00…"} (Ortto's own read is unrecorded)."""
        return {"activities": self.store.activities_of(body["person_id"])}

    def _add_audience(self, body: dict[str, Any]) -> dict[str, Any]:
        return {"id": self.store.add_audience(body["name"], body.get("member_emails"))}
