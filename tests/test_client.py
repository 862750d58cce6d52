"""Sending at Ortto's limit: concurrency, rate limit, retries and failures, no data lost."""

from __future__ import annotations

import threading
import time

import pytest
from conftest import API_KEY, record_messages, run_target, schema_message, state_message

from target_ortto.client import BadRequestGuard, OrttoClient, RateLimiter
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


def test_429_waits_try_in_seconds_then_retries(sandbox, config):
    sandbox.set_faults(rate_limit=5, try_in_seconds=0.2)
    config.update(requests_per_second=100, batch_size=10)

    result = run_target(config, messages(people(300)))

    assert result.error is None
    assert len(sandbox.store.people) == 300
    assert any(r.status == 429 for r in sandbox.requests)
    assert result.target.run.client.stats["rate_limited"] > 0


def test_the_rate_limit_setting_prevents_429s(sandbox, config):
    sandbox.set_faults(rate_limit=20)
    config.update(requests_per_second=15, batch_size=10)

    result = run_target(config, messages(people(400)))

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


def test_403_is_an_auth_error_and_is_not_retried(sandbox):
    sandbox.fail_next(1, status=403)
    client = OrttoClient(sandbox.url, API_KEY, region="eu")

    with pytest.raises(AuthError, match="region 'eu'"):
        client.request("POST", "/v1/person/custom-field/get", {})
    assert len(sandbox.requests) == 1


def test_bad_requests_never_reach_the_ban_threshold_even_concurrently(sandbox):
    client = OrttoClient(sandbox.url, API_KEY, max_concurrency=8, requests_per_second=500)
    client.guard = BadRequestGuard(budget=4, window=0.5)
    sandbox.set_faults(ban_threshold=4, ban_window=0.5)

    def bad() -> str:
        with pytest.raises(ApiError) as refused:
            client.request("POST", "/v1/person/merge", {"people": []})
        return str(refused.value)

    messages = Dispatcher(8).run_all([bad] * 24)

    assert all("HTTP 400" in m for m in messages)
    assert sandbox.bans == 0


def test_rate_limiter_spaces_requests_across_threads():
    limiter = RateLimiter(per_second=50)
    times: list[float] = []

    def take() -> None:
        for _ in range(10):
            limiter.acquire()
            times.append(time.monotonic())

    threads = [threading.Thread(target=take) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    times.sort()
    assert times[-1] - times[0] >= 39 / 50 * 0.95


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
