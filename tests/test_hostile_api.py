"""A hostile Ortto: answers that echo the key, ask for hour-long waits, trickle in, refuse
everything, drop the connection after acting, or speak plain http to https. Every run
ends quickly with a message saying what to do, never the key, never a traceback."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import API_KEY, PEOPLE_SCHEMA, record_messages, run_cli, schema_message
from test_client import FakeClock, ScriptedOrtto, rate_limited

from target_ortto import api
from target_ortto.api import BISECT_BAD_REQUESTS, MergeOptions
from target_ortto.client import MAX_RETRY_AFTER, OrttoClient
from target_ortto.errors import ApiError
from target_ortto.objects import MERGE_OBJECTS

Script = Callable[["Handler", str, Any], None]
PEOPLE = {key: PEOPLE_SCHEMA[key] for key in ("email", "first_name")}  # no custom fields
MERGE = "/v1/person/merge"


class Handler(BaseHTTPRequestHandler):
    """Hands every request to the server's script, which answers (or does not)."""

    server: Misbehaving

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        path = self.path.split("?")[0]
        self.server.seen.append(path)
        self.server.script(self, path, json.loads(raw) if raw else None)

    do_PUT = do_DELETE = do_POST

    def reply(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        content = json.dumps(body).encode()
        self.send_response(status)
        for name, value in {"Content-Type": "application/json", **(headers or {})}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)

    def drop(self) -> None:
        """Close the connection without an answer, as a dropped connection does."""
        self.close_connection = True

    def log_message(self, *args: Any) -> None:
        pass


class Misbehaving(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, script: Script) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.script = script
        self.seen: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@contextmanager
def misbehaving(script: Script) -> Iterator[Misbehaving]:
    server = Misbehaving(script)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def hostile_config(url: str, tmp_path: Path, **settings: Any) -> dict[str, Any]:
    return {
        "api_key": API_KEY,
        "api_url": url,
        "max_retries": 0,
        "requests_per_second": 200,
        "ledger_path": str(tmp_path / "ledger.sqlite"),
        **settings,
    }


def people(count: int) -> list[dict[str, Any]]:
    records = [{"email": f"p{i}@example.com", "first_name": "P"} for i in range(count)]
    return [schema_message("people", PEOPLE, ["email"]), *record_messages("people", records)]


def error_line(done: Any) -> str:
    assert done.returncode == 1, done.stderr[-2000:]
    return [line for line in done.stderr.splitlines() if "| ERROR" in line][-1]


# ----- Ortto's words are quoted without the key -----


@pytest.mark.parametrize("status", [400, 401, 403, 409, 422, 500, 503])
def test_an_error_body_echoing_the_key_is_quoted_with_the_key_redacted(tmp_path, status):
    def script(handler: Handler, path: str, body: Any) -> None:
        handler.reply(status, {"code": status, "error": f"key {API_KEY} is not valid here"})

    with misbehaving(script) as ortto:
        done = run_cli(hostile_config(ortto.url, tmp_path), people(1), tmp_path)  # checks the key

    line = error_line(done)
    assert "key [REDACTED] is not valid here" in line


def test_per_record_reasons_echoing_the_key_are_redacted_too():
    details = [{"status": "invalid", "error": f"key {API_KEY} may not merge"}]
    client, _ = scripted(
        lambda people: httpx.Response(400, json={"error": "x", "details": details * len(people)})
    )

    outcomes = api.merge(client, PERSON, bodies(2), OPTIONS)

    assert [o.error for o in outcomes] == ["key [REDACTED] may not merge"] * 2


# ----- 429 waits -----


def waiting(seconds: str) -> httpx.Response:
    """A 429 whose `try-in-seconds` is written as is (JSON numbers Python reads as inf/nan)."""
    content = f'{{"error": {{"code": "rate-limit", "try-in-seconds": {seconds}}}}}'
    return httpx.Response(429, content=content.encode())


@pytest.mark.parametrize(
    "answer",
    [
        rate_limited(3600),
        rate_limited(MAX_RETRY_AFTER + 1),
        waiting("Infinity"),
        waiting("NaN"),
        waiting("1e999"),
        rate_limited("1e999"),
        rate_limited(None, headers={"Retry-After": "86400"}),
        rate_limited(None, headers={"Retry-After": "inf"}),
    ],
    ids=[
        "an-hour",
        "past-the-cap",
        "infinite",
        "nan",
        "overflowing",
        "overflowing-text",
        "a-day-header",
        "inf-header",
    ],
)
def test_a_429_asking_for_a_wait_past_ten_minutes_or_not_finite_fails_at_once(answer):
    clock = FakeClock()
    ortto = ScriptedOrtto(clock, answer)

    with pytest.raises(ApiError, match=r"asked to wait .* seconds, more than target-ortto waits"):
        ortto.client().request("POST", MERGE, {"people": []})
    assert len(ortto.requests) == 1
    assert sum(clock.sleeps) < 1


def test_a_429_asking_for_exactly_the_cap_is_waited_out():
    clock = FakeClock()
    ortto = ScriptedOrtto(clock, rate_limited(MAX_RETRY_AFTER), httpx.Response(200, json={}))

    assert ortto.client().request("POST", MERGE, {"people": []}) == {}
    assert ortto.gaps() == [pytest.approx(MAX_RETRY_AFTER, abs=1e-6)]


def test_a_run_told_to_wait_an_hour_stops_in_seconds_saying_why(tmp_path):
    def script(handler: Handler, path: str, body: Any) -> None:
        error = {"code": "rate-limit", "message": "quota", "try-in-seconds": 3600}
        handler.reply(429, {"error": error})

    with misbehaving(script) as ortto:
        started = time.monotonic()
        done = run_cli(hostile_config(ortto.url, tmp_path), people(1), tmp_path)

    assert "asked to wait 3600.0 seconds" in error_line(done)
    assert time.monotonic() - started < 30


# ----- a body that trickles -----


def test_an_answer_trickling_in_hits_request_timeout_as_a_whole_request_deadline(tmp_path):
    def script(handler: Handler, path: str, body: Any) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", "1000")
        handler.end_headers()
        try:
            for _ in range(1000):  # a byte every 0.2 s: no single read ever times out
                handler.wfile.write(b" ")
                handler.wfile.flush()
                time.sleep(0.2)
        except OSError:
            pass  # the client hung up, as it should

    with misbehaving(script) as ortto:
        started = time.monotonic()
        config = hostile_config(ortto.url, tmp_path, request_timeout=1)
        done = run_cli(config, people(1), tmp_path)

    assert "(last: ReadTimeout)" in error_line(done)
    assert time.monotonic() - started < 30


def test_the_deadline_counts_from_the_request_not_from_each_read():
    clock = FakeClock()

    def trickle(request: httpx.Request) -> httpx.Response:
        def chunks() -> Iterator[bytes]:
            for chunk in (b'{"people"', b": [", b"]}"):
                clock.now += 4  # each read well inside the 10 s timeout
                yield chunk

        return httpx.Response(200, content=chunks())

    client = OrttoClient(
        "https://api.test",
        API_KEY,
        timeout=10,
        max_retries=0,
        transport=httpx.MockTransport(trickle),
        clock=clock,
    )

    with pytest.raises(ApiError, match=r"\(last: ReadTimeout\)"):
        client.request("POST", MERGE, {"people": []})


# ----- a storm of 400s -----

PERSON = MERGE_OBJECTS["person"]
OPTIONS = MergeOptions(("str::email",), 1, 1, skip_non_existing=False, async_merge=False)


def bodies(count: int) -> list[dict[str, Any]]:
    return [{"fields": {"str::email": f"p{i}@example.com"}} for i in range(count)]


def scripted(answer: Callable[[list[dict[str, Any]]], httpx.Response]) -> tuple[OrttoClient, list]:
    """A client over a transport answering each merge by `answer(people)`, in virtual time."""
    sent: list[list[dict[str, Any]]] = []

    def transport(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content)["people"])
        return answer(sent[-1])

    client = OrttoClient(
        "https://api.test",
        API_KEY,
        max_retries=0,
        requests_per_second=1e9,
        transport=httpx.MockTransport(transport),
        clock=FakeClock(),
    )
    return client, sent


def test_a_400_that_every_half_repeats_stops_after_three_requests():
    client, sent = scripted(lambda _: httpx.Response(400, json={"error": "unknown merge_by"}))

    with pytest.raises(ApiError, match="both halves of it were refused the same way"):
        api.merge(client, PERSON, bodies(100), OPTIONS)
    assert len(sent) == 3


def test_400s_that_differ_every_time_stop_once_the_bisection_budget_is_spent():
    count = iter(range(10**6))
    client, sent = scripted(lambda _: httpx.Response(400, json={"error": f"error {next(count)}"}))

    with pytest.raises(ApiError, match=f"more than {BISECT_BAD_REQUESTS} of its parts"):
        api.merge(client, PERSON, bodies(100), OPTIONS)
    assert len(sent) <= 1 + BISECT_BAD_REQUESTS + 2


@pytest.mark.parametrize("bad", [{7}, {0, 99}, {3, 40, 77}])
def test_records_at_fault_are_still_isolated_within_the_budget(bad):
    emails = {f"p{i}@example.com" for i in bad}

    def answer(people: list[dict[str, Any]]) -> httpx.Response:
        found = [p["fields"]["str::email"] for p in people if p["fields"]["str::email"] in emails]
        if found:
            return httpx.Response(400, json={"error": f"invalid email {found[0]}"})
        return httpx.Response(200, json={"people": [{"status": "created"}] * len(people)})

    client, _ = scripted(answer)

    outcomes = api.merge(client, PERSON, bodies(100), OPTIONS)

    assert {i for i, o in enumerate(outcomes) if o.error} == bad
    assert all(o.status == "created" for i, o in enumerate(outcomes) if i not in bad)


def test_a_run_met_by_a_storm_of_400s_fails_in_seconds(tmp_path):
    def script(handler: Handler, path: str, body: Any) -> None:
        if path.endswith("/custom-field/get"):
            return handler.reply(200, {"fields": []})
        return handler.reply(400, {"code": 400, "error": "merge_by field not found"})

    with misbehaving(script) as ortto:
        started = time.monotonic()
        done = run_cli(hostile_config(ortto.url, tmp_path), people(300), tmp_path)

    assert "both halves of it were refused the same way" in error_line(done)
    assert time.monotonic() - started < 30
    merges = [path for path in ortto.seen if path == MERGE]
    assert 3 <= len(merges) <= 3 * 3  # three batches, three requests each at most


# ----- a create whose answer was lost -----


def field_store(first_create: str, then: str = "ok") -> Script:
    """Ortto's person custom fields; the first create is answered by `first_create`:
    `drop-after` (made, answer lost), `drop-before` (not made), retries by `then`."""
    fields: dict[str, str] = {}
    creates = []

    def script(handler: Handler, path: str, body: Any) -> None:
        if path.endswith("/custom-field/get"):
            entries = [{"field": {"id": i, "display_type": t}} for i, t in fields.items()]
            return handler.reply(200, {"fields": entries})
        if path.endswith("/custom-field/create"):
            creates.append(body)
            action = first_create if len(creates) == 1 else then
            if action != "drop-before" and "int:cm:score" not in fields:
                fields["int:cm:score"] = body["type"]
            if action.startswith("drop"):
                return handler.drop()
            if action == "refuse":
                return handler.reply(400, {"code": 400, "error": "invalid field"})
            return handler.reply(200, {"field_id": "int:cm:score"})
        return handler.reply(500, {"error": "not scripted"})

    return script


SCORED = [schema_message("people", {**PEOPLE, "score": {"type": ["integer", "null"]}}, ["email"])]


@pytest.mark.parametrize(
    ("first", "then", "retries"),
    [("drop-after", "ok", 0), ("drop-after", "refuse", 1), ("drop-after", "drop-after", 2)],
)
def test_a_custom_field_made_though_its_answer_was_lost_is_used(tmp_path, first, then, retries):
    with misbehaving(field_store(first, then)) as ortto:
        config = hostile_config(ortto.url, tmp_path, create_custom_fields=True, max_retries=retries)
        done = run_cli(config, SCORED, tmp_path)

    assert done.returncode == 0, done.stderr[-2000:]


def test_a_custom_field_create_never_answered_is_not_called_a_plan_limit(tmp_path):
    with misbehaving(field_store("drop-before", "drop-before")) as ortto:
        config = hostile_config(ortto.url, tmp_path, create_custom_fields=True)
        done = run_cli(config, SCORED, tmp_path)

    line = error_line(done)
    assert "Ortto did not answer" in line and "RemoteProtocolError" in line
    assert "limits custom fields" not in line


# ----- https to a plain http port -----


def test_https_to_a_plain_http_port_says_so_at_once(tmp_path):
    def script(handler: Handler, path: str, body: Any) -> None:
        handler.reply(200, {})

    with misbehaving(script) as ortto:
        url = ortto.url.replace("http://", "https://")
        started = time.monotonic()
        done = run_cli(hostile_config(url, tmp_path, max_retries=8), people(1), tmp_path)

    assert "does not speak TLS" in error_line(done)
    assert "the port answers plain http" in error_line(done)
    assert time.monotonic() - started < 30
