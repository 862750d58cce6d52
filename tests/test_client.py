"""Sending at Ortto's limit: concurrency, rate limit, retries and failures, no data lost.

Whole runs go to the sandbox over real sockets, as do dropped connections, timeouts and
refused connections. The client's own rules (retries, 429s, error messages, the bad-request
guard, the request log) are specified against `httpx.MockTransport` in virtual time.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import httpx
import pytest
from conftest import API_KEY, record_messages, run_target, schema_message, state_message

from target_ortto.client import (
    BACKOFF_CAP,
    MAX_RATE_LIMITED,
    BadRequest,
    BadRequestGuard,
    OrttoClient,
    RateLimiter,
)
from target_ortto.dispatch import Dispatcher
from target_ortto.errors import ApiError, AuthError

PEOPLE = {"email": {"type": "string"}, "first_name": {"type": ["string", "null"]}}


def people(count: int, name: str = "P") -> list[dict]:
    return [{"email": f"p{i}@example.com", "first_name": f"{name}{i}"} for i in range(count)]


def messages(records: list[dict], state: dict | None = None) -> list[dict]:
    return [
        schema_message("people", PEOPLE),
        *record_messages("people", records),
        state_message(state or {"done": len(records)}),
    ]


def landed(sandbox) -> dict[str, str]:
    return {
        p.fields["str::email"]: p.fields.get("str::first") for p in sandbox.store.people.values()
    }


def test_3000_people_land_through_5xx_answers_and_a_rate_limit(sandbox, config):
    sandbox.set_faults(error_rate=0.25, rate_limit=15, seed=3)
    config.update(requests_per_second=15, max_retries=8)

    result = run_target(config, messages(people(3000)))

    assert result.error is None
    assert landed(sandbox) == {r["email"]: r["first_name"] for r in people(3000)}
    assert any(r.fault == "error" for r in sandbox.requests)
    assert result.states == [{"done": 3000}]


def test_retries_after_dropped_connections_and_late_errors_never_duplicate(sandbox, config):
    sandbox.set_faults(drop_rate=0.15, error_after_apply_rate=0.15, seed=7)
    config.update(max_retries=8)

    result = run_target(config, messages(people(1000)))

    assert result.error is None
    faults = {r.fault for r in sandbox.requests}
    assert {"drop", "error_after_apply"} <= faults
    assert len(sandbox.store.people) == 1000


def test_a_server_that_always_fails_exits_with_no_state(sandbox, config):
    sandbox.set_faults(error_rate=1.0)
    config.update(max_retries=2)

    result = run_target(config, messages(people(10)))

    assert isinstance(result.error, ApiError)
    assert "failed 3 times" in str(result.error) and "max_retries=2" in str(result.error)
    assert result.states == []
    assert not sandbox.store.people


def test_merges_failing_past_max_retries_stop_the_run_before_its_state(sandbox, config):
    config.update(max_retries=2)

    result = run_target(
        config, messages(people(10)), after_first_schema=lambda: sandbox.set_faults(error_rate=1)
    )

    message = str(result.error)
    assert "POST" in message and "/v1/person/merge" in message and "max_retries=2" in message
    assert "Nothing after the last emitted STATE is confirmed" in message
    assert result.states == []
    assert len([r for r in sandbox.requests if r.path == "/v1/person/merge"]) == 3


def test_429_answers_are_waited_out_and_every_person_lands(sandbox, config):
    sandbox.set_faults(try_in_seconds=0.05)
    config.update(batch_size=10)

    result = run_target(
        config, messages(people(300)), after_first_schema=lambda: sandbox.fail_next(3, 429)
    )

    assert result.error is None
    assert len(sandbox.store.people) == 300
    assert any(r.status == 429 for r in sandbox.requests)
    assert result.target.run.client.stats["rate_limited"] > 0


def test_the_rate_limit_setting_prevents_429s(sandbox, config):
    sandbox.set_faults(rate_limit=40)
    config.update(requests_per_second=30, batch_size=10)

    result = run_target(config, messages(people(450)))  # 45 merges: 40 would fit in a second

    assert result.error is None
    assert not [r for r in sandbox.requests if r.status == 429]


def test_requests_go_out_concurrently_up_to_max_concurrency(sandbox, config):
    sandbox.set_faults(latency=0.2)
    config.update(max_concurrency=4, batch_size=10)

    started = time.monotonic()
    result = run_target(config, messages(people(160)))
    elapsed = time.monotonic() - started

    assert result.error is None
    assert sandbox.max_in_flight == 4
    assert elapsed < 16 * 0.2  # 16 requests, but never one at a time


def test_same_key_records_are_folded_into_one_request_in_input_order(sandbox, config):
    records = [
        {"email": f"p{i}@example.com", "first_name": f"v{round_}"}
        for round_ in range(3)
        for i in range(50)
    ]
    config.update(batch_size=10)  # one drain of 150 records, fanned out in 5 requests

    run_target(config, messages(records))

    merges = [r for r in sandbox.requests if r.path == "/v1/person/merge"]
    sent = [p["fields"]["str::email"] for r in merges for p in r.body["people"]]
    assert len(merges) == 5
    assert sorted(sent) == sorted({r["email"] for r in records})
    assert set(landed(sandbox).values()) == {"v2"}


def test_later_records_win_across_drains(sandbox, config):
    records = [
        {"email": f"p{i}@example.com", "first_name": f"v{round_}"}
        for round_ in range(20)
        for i in range(50)
    ]
    config.update(batch_size=10)  # drains of 160 records: each person is sent many times

    run_target(config, messages(records))

    assert set(landed(sandbox).values()) == {"v19"}


def test_a_whole_batch_400_is_split_to_send_the_rest(sandbox, config):
    result = run_target(
        config, messages(people(100)), after_first_schema=lambda: sandbox.fail_next(1, 400)
    )

    assert result.error is None
    assert len(sandbox.store.people) == 100
    sizes = [r.records for r in sandbox.requests if r.path == "/v1/person/merge"]
    assert sizes == [100, 50, 50]


def test_404_stops_naming_the_url(sandbox, config):
    config["api_url"] = sandbox.url + "/wrong-prefix"

    result = run_target(config, messages(people(3)))

    assert isinstance(result.error, ApiError)
    assert "404" in str(result.error) and "/wrong-prefix/v1/" in str(result.error)


def test_a_failure_in_an_early_drain_fails_the_run_with_no_state(sandbox, config):
    config.update(batch_size=10, max_concurrency=2, max_retries=0)  # drains of 40 records
    records = people(400)
    stream = [
        schema_message("people", PEOPLE),
        *record_messages("people", records[:200]),
        state_message({"half": True}),
        *record_messages("people", records[200:]),
        state_message({"done": True}),
    ]

    result = run_target(config, stream, after_first_schema=lambda: sandbox.fail_next(1, 503))

    assert isinstance(result.error, ApiError) and "503" in str(result.error)
    assert result.states == []
    assert len(sandbox.store.people) < 400


# ----- the client alone: virtual time, a scripted Ortto -----

BASE_URL = "https://api.test"
MERGE = "/v1/person/merge"
BODY = {"people": [{"fields": {"str::email": "ann@example.com"}}], "merge_by": ["str::email"]}
CREATED = {"people": [{"person_id": "006913c5b70abf827f703c00", "status": "created"}]}


class FakeClock:
    """Virtual time: `sleep` returns at once, having moved the time on (unless `frozen`)."""

    def __init__(self, frozen: bool = False) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []
        self._frozen = frozen
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            if not self._frozen:
                self.now += seconds
        time.sleep(0)  # let other threads run, as a real sleep would


@dataclass(frozen=True)
class Seen:
    """One request as the scripted Ortto received it, at the virtual time it arrived."""

    method: str
    path: str
    headers: httpx.Headers
    body: Any
    at: float


class ScriptedOrtto:
    """Ortto behind `httpx.MockTransport`: gives `answers` in turn, repeating the last one.

    `latency` (real seconds) keeps requests in flight long enough to overlap.
    """

    def __init__(
        self,
        clock: FakeClock,
        *answers: httpx.Response | httpx.TransportError,
        latency: float = 0.0,
    ) -> None:
        self.clock = clock
        self.requests: list[Seen] = []
        self._answers = answers
        self._latency = latency
        self._lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            seen = Seen(
                request.method,
                request.url.path,
                request.headers,
                json.loads(request.content),
                self.clock.monotonic(),
            )
            self.requests.append(seen)
            answer = self._answers[min(len(self.requests), len(self._answers)) - 1]
        time.sleep(self._latency)
        if isinstance(answer, httpx.TransportError):
            raise answer
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)

    def client(self, **options: Any) -> OrttoClient:
        options = {"requests_per_second": 1e9, "clock": self.clock, **options}
        return OrttoClient(BASE_URL, API_KEY, transport=httpx.MockTransport(self), **options)

    def gaps(self) -> list[float]:
        """Virtual seconds between one request and the next."""
        times = [r.at for r in self.requests]
        return [later - earlier for earlier, later in pairwise(times)]


def ok() -> httpx.Response:
    return httpx.Response(200, json=CREATED)


def refused(status: int, message: str = "refused") -> httpx.Response:
    return httpx.Response(status, json={"request_id": "r-1", "code": status, "error": message})


def rate_limited(try_in_seconds: Any = 10, headers: dict[str, str] | None = None) -> httpx.Response:
    error = {"code": "rate-limit", "message": "rate limit"}
    if try_in_seconds is not None:
        error["try-in-seconds"] = try_in_seconds
    return httpx.Response(429, json={"error": error}, headers=headers)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


# ----- real sockets without the sandbox -----


def test_a_refused_first_connection_stops_at_once_naming_api_url():
    with socket.socket() as probe:  # a port nobody listens on once the probe is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    client = OrttoClient(url, API_KEY, max_retries=8)  # real clock: backoff would take a minute

    started = time.monotonic()
    with pytest.raises(ApiError, match=rf"nothing answers at api_url={url}") as failed:
        client.request("POST", "/v1/person/merge", {"people": []})
    assert time.monotonic() - started < 5
    assert "region" in str(failed.value)
    assert client.stats == {"requests": 1, "retries": 0, "rate_limited": 0}


def test_an_unknown_host_on_the_first_call_names_the_region(clock):
    ortto = ScriptedOrtto(clock, httpx.ConnectError("[Errno -2] Name or service not known"))
    client = OrttoClient(
        "https://api.eu.ap3api.com",
        API_KEY,
        region="eu",
        clock=clock,
        transport=httpx.MockTransport(ortto),
    )

    with pytest.raises(ApiError, match=r"nothing answers at region=eu \(https://api.eu"):
        client.request("POST", MERGE, BODY)
    assert len(ortto.requests) == 1 and clock.sleeps == []


def test_a_refused_connection_after_an_answer_is_retried_then_reported_by_name(clock):
    ortto = ScriptedOrtto(clock, ok(), httpx.ConnectError("refused"))
    client = ortto.client(max_retries=1)
    client.request("POST", MERGE, BODY)

    with pytest.raises(ApiError, match=r"failed 2 times \(last: ConnectError\)"):
        client.request("POST", MERGE, BODY)
    assert client.stats == {"requests": 3, "retries": 1, "rate_limited": 0}


def test_a_server_that_never_answers_times_out_and_is_retried(clock):
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never answers
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        client = OrttoClient(url, API_KEY, timeout=0.1, max_retries=1, clock=clock)

        with pytest.raises(ApiError, match=r"failed 2 times \(last: ReadTimeout\)"):
            client.request("POST", "/v1/person/merge", {"people": []})


def test_an_api_key_a_header_cannot_carry_is_a_clear_error_and_is_never_retried(sandbox, clock):
    client = OrttoClient(sandbox.url, "key\nwith-a-newline", clock=clock)

    with pytest.raises(ApiError, match=r"request could not be formed.*Check api_key"):
        client.request("POST", "/v1/person/merge", {"people": []})
    assert client.stats["retries"] == 0
    assert not sandbox.requests


# ----- the client's rules, against a scripted Ortto -----


def test_a_request_carries_the_key_and_its_json_body_and_returns_ortto_s_answer(clock):
    ortto = ScriptedOrtto(clock, ok())

    assert ortto.client().request("POST", MERGE, BODY) == CREATED
    [seen] = ortto.requests
    assert (seen.method, seen.path, seen.body) == ("POST", MERGE, BODY)
    assert seen.headers["X-Api-Key"] == API_KEY
    assert seen.headers["Content-Type"] == "application/json"


# retries


def test_5xx_answers_are_retried_after_doubling_jittered_waits_until_one_succeeds(clock):
    ortto = ScriptedOrtto(clock, refused(503), refused(502), refused(500), refused(504), ok())
    client = ortto.client(backoff_base=0.5)

    assert client.request("POST", MERGE, BODY) == CREATED
    assert all(r.body == BODY for r in ortto.requests)
    for gap, full in zip(ortto.gaps(), [0.5, 1, 2, 4], strict=True):
        assert full / 2 <= gap <= full
    assert client.stats == {"requests": 5, "retries": 4, "rate_limited": 0}


def test_backoff_waits_never_exceed_the_cap(clock):
    ortto = ScriptedOrtto(clock, *[refused(503)] * 5, ok())

    ortto.client(backoff_base=8).request("POST", MERGE, BODY)

    assert [gap <= BACKOFF_CAP for gap in ortto.gaps()] == [True] * 5
    assert min(ortto.gaps()[2:]) >= BACKOFF_CAP / 2  # 8, 16, then capped: 30, 30, 30


def test_a_dropped_connection_is_retried_like_a_5xx(clock):
    ortto = ScriptedOrtto(clock, httpx.RemoteProtocolError("closed without answer"), ok())
    client = ortto.client()

    assert client.request("POST", MERGE, BODY) == CREATED
    assert client.stats == {"requests": 2, "retries": 1, "rate_limited": 0}


def test_a_request_failing_past_max_retries_gives_up_naming_its_attempts_and_last_error(clock):
    ortto = ScriptedOrtto(clock, refused(503, "upstream busy"))

    with pytest.raises(ApiError) as failed:
        ortto.client(max_retries=2).request("POST", MERGE, BODY)

    message = str(failed.value)
    assert f"POST {BASE_URL}{MERGE} failed 3 times (last: HTTP 503 upstream busy)" in message
    assert "gave up after max_retries=2" in message
    assert "Nothing after the last emitted STATE is confirmed as written" in message
    assert len(ortto.requests) == 3


# 429: rate limited


@pytest.mark.parametrize(
    ("answer", "waited"),
    [
        (rate_limited(10), 10),
        (rate_limited(10, headers={"Retry-After": "3"}), 10),
        (rate_limited(None, headers={"Retry-After": "7"}), 7),
        (rate_limited("soon", headers={"Retry-After": "4"}), 4),
        (httpx.Response(429, text="Too Many Requests", headers={"Retry-After": "5"}), 5),
        (rate_limited(None, headers={"Retry-After": "Wed, 21 Oct 2026 07:28:00 GMT"}), 1),
        (rate_limited(None), 1),
        (rate_limited(-3), 0),
    ],
    ids=[
        "try-in-seconds",
        "try-in-seconds-over-retry-after",
        "retry-after-without-try-in-seconds",
        "retry-after-when-try-in-seconds-is-not-a-number",
        "retry-after-with-a-text-body",
        "one-second-for-a-retry-after-date",
        "one-second-without-either",
        "never-negative",
    ],
)
def test_a_429_waits_try_in_seconds_else_retry_after_else_one_second_then_resends(
    clock, answer, waited
):
    ortto = ScriptedOrtto(clock, answer, ok())
    client = ortto.client()

    assert client.request("POST", MERGE, BODY) == CREATED
    assert ortto.gaps() == [pytest.approx(waited, abs=1e-6)]
    assert ortto.requests[1].body == BODY
    assert client.stats == {"requests": 2, "retries": 0, "rate_limited": 1}


def test_429s_never_use_up_max_retries(clock):
    ortto = ScriptedOrtto(clock, rate_limited(1), rate_limited(1), refused(503), ok())

    assert ortto.client(max_retries=1).request("POST", MERGE, BODY) == CREATED


def test_a_request_still_rate_limited_after_30_waits_gives_up_asking_for_a_lower_rate(clock):
    ortto = ScriptedOrtto(clock, rate_limited(1))
    client = ortto.client()

    with pytest.raises(ApiError) as failed:
        client.request("POST", MERGE, BODY)

    message = str(failed.value)
    assert f"kept answering 429 (rate limit) after {MAX_RATE_LIMITED} waits" in message
    assert "Lower requests_per_second to your plan's limit" in message
    assert len(ortto.requests) == MAX_RATE_LIMITED + 1
    assert client.stats["rate_limited"] == MAX_RATE_LIMITED


def test_a_pause_holds_back_every_sender_not_only_the_one_refused(clock):
    limiter = RateLimiter(per_second=10, clock=clock)
    limiter.acquire()

    limiter.pause(10)
    limiter.acquire()  # another sender

    assert clock.sleeps == [pytest.approx(10)]


def test_the_rate_limiter_gives_concurrent_senders_slots_2_percent_under_the_limit():
    clock = FakeClock(frozen=True)  # every sleep is then the sender's distance to its slot
    limiter = RateLimiter(per_second=50, clock=clock)

    def take() -> None:
        for _ in range(10):
            limiter.acquire()

    threads = [threading.Thread(target=take) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    interval = 1.02 / 50
    assert sorted(clock.sleeps) == pytest.approx([k * interval for k in range(1, 40)])


# error answers


def test_401_is_an_auth_error_naming_key_and_region_and_is_not_retried(clock):
    ortto = ScriptedOrtto(clock, refused(401, "Invalid API key"))

    with pytest.raises(AuthError) as failed:
        ortto.client(region="eu").request("POST", MERGE, BODY)

    message = str(failed.value)
    assert f"Ortto refused the API key (HTTP 401 at POST {BASE_URL}{MERGE}" in message
    assert "Invalid API key" in message
    assert f"region 'eu' ({BASE_URL})" in message
    assert len(ortto.requests) == 1


def test_403_is_an_auth_error_about_access_not_the_key_and_is_not_retried(clock):
    ortto = ScriptedOrtto(clock, refused(403, "Forbidden"))

    with pytest.raises(AuthError) as failed:
        ortto.client(region="eu").request("POST", MERGE, BODY)

    message = str(failed.value)
    assert f"accepted the API key but refused access (HTTP 403 at POST {BASE_URL}{MERGE}" in message
    assert "expired" in message and "left the Ortto account" in message
    assert "region" not in message
    assert len(ortto.requests) == 1


def test_404_names_the_url_to_check_and_is_not_retried(clock):
    ortto = ScriptedOrtto(clock, refused(404, "not found"))

    with pytest.raises(ApiError) as failed:
        ortto.client().request("POST", MERGE, BODY)

    assert not isinstance(failed.value, AuthError)
    assert str(failed.value) == (
        f"Ortto answered 404 Not Found for POST {BASE_URL}{MERGE}: check api_url / region."
    )
    assert len(ortto.requests) == 1


def test_400_is_a_bad_request_carrying_ortto_s_answer_and_is_not_retried(clock):
    answer = {
        "request_id": "r-1",
        "code": 400,
        "error": "No valid contacts provided",
        "details": [{"status": "invalid", "error": "failed to validate field str::x"}],
    }
    ortto = ScriptedOrtto(clock, httpx.Response(400, json=answer))

    with pytest.raises(BadRequest) as failed:
        ortto.client().request("POST", MERGE, BODY)

    assert str(failed.value) == (
        f"Ortto refused POST {BASE_URL}{MERGE} (HTTP 400): No valid contacts provided"
    )
    assert failed.value.body == answer
    assert len(ortto.requests) == 1


@pytest.mark.parametrize("status", [405, 409, 423])
def test_other_4xx_answers_are_errors_in_ortto_s_words_and_are_not_retried(clock, status):
    ortto = ScriptedOrtto(clock, refused(status, "field already exists"))

    with pytest.raises(ApiError) as failed:
        ortto.client().request("POST", MERGE, BODY)

    assert not isinstance(failed.value, BadRequest | AuthError)
    assert str(failed.value) == (
        f"Ortto refused POST {BASE_URL}{MERGE} (HTTP {status}): field already exists"
    )
    assert len(ortto.requests) == 1


# malformed answers


def test_an_error_answer_that_is_not_json_is_quoted_as_its_first_500_characters(clock):
    page = "<html>" + "Bad gateway " * 100 + "</html>"
    ortto = ScriptedOrtto(clock, httpx.Response(502, text=page))

    with pytest.raises(ApiError) as failed:
        ortto.client(max_retries=0).request("POST", MERGE, BODY)

    assert f"(last: HTTP 502 {page[:500]})" in str(failed.value)
    assert page[:501] not in str(failed.value)


def test_a_400_that_is_not_json_is_a_bad_request_holding_its_text(clock):
    ortto = ScriptedOrtto(clock, httpx.Response(400, text="bad request"))

    with pytest.raises(BadRequest) as failed:
        ortto.client().request("POST", MERGE, BODY)

    assert str(failed.value).endswith("(HTTP 400): bad request")
    assert failed.value.body == {"error": "bad request"}


def test_an_error_answer_without_a_message_is_quoted_as_json(clock):
    ortto = ScriptedOrtto(clock, httpx.Response(422, json={"code": 422, "details": ["x" * 400]}))

    with pytest.raises(ApiError) as failed:
        ortto.client().request("POST", MERGE, BODY)

    quoted = json.dumps({"code": 422, "details": ["x" * 400]})[:300]
    assert str(failed.value).endswith(f"(HTTP 422): {quoted}")


def test_a_success_that_is_not_json_comes_back_as_its_text_under_error(clock):
    ortto = ScriptedOrtto(clock, httpx.Response(200, text="OK"))

    assert ortto.client().request("POST", MERGE, BODY) == {"error": "OK"}


# the bad-request guard: Ortto bans an IP for 15 bad requests in 15 s


def test_bad_answers_hold_new_requests_back_until_the_oldest_leaves_the_window(clock):
    guard = BadRequestGuard(budget=2, window=15, clock=clock)
    for _ in range(5):  # good answers never count
        guard.enter()
        guard.leave(bad=False)
    guard.enter()
    guard.leave(bad=True)
    clock.now += 5
    guard.enter()
    guard.leave(bad=True)

    guard.enter()

    assert clock.sleeps == [pytest.approx(10)]


def test_requests_in_flight_count_against_the_bad_request_budget(clock):
    guard = BadRequestGuard(budget=2, window=15, clock=clock)
    guard.enter()
    guard.enter()
    entered = threading.Event()
    third = threading.Thread(target=lambda: (guard.enter(), entered.set()))

    third.start()
    deadline = time.monotonic() + 5
    while not clock.sleeps and time.monotonic() < deadline:
        time.sleep(0.001)
    assert clock.sleeps and not entered.is_set()  # waiting
    guard.leave(bad=False)
    third.join(timeout=5)

    assert entered.is_set()


def test_a_429_is_not_a_bad_request(clock):
    ortto = ScriptedOrtto(clock, rate_limited(0), ok())
    client = ortto.client(guard=BadRequestGuard(budget=1, window=15, clock=clock))

    client.request("POST", MERGE, BODY)

    assert ortto.gaps() == [pytest.approx(0, abs=1e-6)]  # not held back for 15 s


def test_bad_requests_never_reach_the_ban_threshold_even_concurrently(clock):
    budget, window = 4, 0.5
    ortto = ScriptedOrtto(clock, refused(400, "No valid contacts provided"), latency=0.005)
    client = ortto.client(
        max_concurrency=8, guard=BadRequestGuard(budget=budget, window=window, clock=clock)
    )

    def bad() -> str:
        with pytest.raises(ApiError) as failed:
            client.request("POST", MERGE, {"people": []})
        return str(failed.value)

    messages = Dispatcher(8).run_all([bad] * 24)
    client.close()

    assert all("HTTP 400" in m for m in messages)
    times = sorted(r.at for r in ortto.requests)
    assert max(sum(t <= u < t + window for u in times) for t in times) <= budget


# the request log


def test_the_request_log_gets_every_attempt_with_its_answer_and_never_the_key(clock):
    failed = {"request_id": "r-1", "code": 503, "error": "busy"}
    ortto = ScriptedOrtto(clock, httpx.ReadTimeout("slow"), httpx.Response(503, json=failed), ok())
    entries: list[dict[str, Any]] = []

    ortto.client(request_log=entries.append).request("POST", MERGE, BODY)

    assert [(e["status"], e["response"], e["error"]) for e in entries] == [
        (None, None, "ReadTimeout"),
        (503, failed, None),
        (200, CREATED, None),
    ]
    assert all(e["method"] == "POST" and e["path"] == MERGE for e in entries)
    assert all(e["request"] == BODY and e["duration_ms"] >= 0 for e in entries)
    assert API_KEY not in json.dumps(entries)


def test_a_one_letter_key_is_redacted_from_answers_without_breaking_their_words(clock):
    echo = {"request_id": "r-1", "code": 401, "error": "key e is not valid"}
    ortto = ScriptedOrtto(clock, ok(), httpx.Response(401, json=echo))

    def client() -> OrttoClient:
        return OrttoClient(BASE_URL, "e", clock=clock, transport=httpx.MockTransport(ortto))

    assert client().request("POST", MERGE, BODY) == CREATED
    with pytest.raises(AuthError) as failed:
        client().request("POST", MERGE, BODY)
    assert "key [REDACTED] is not valid" in str(failed.value)
