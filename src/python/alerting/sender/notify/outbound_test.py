"""Outbound requests against real HTTP servers on loopback: each kind of answer read into its
outcome, redirects checked, answers bounded, and a host that hangs holding up only itself."""

import asyncio
import socket
import time
from datetime import UTC, datetime, timedelta

import pytest
from opentelemetry.sdk.trace import TracerProvider

from alerting.rules.receivers import OutboundPolicy
from alerting.sender.notify.outbound import Outbound, OutboundLimits, retry_at
from alerting.sender.outcomes import RecipientStatus
from alerting.testsupport.http_endpoints import Answer, serving

LOOPBACK = OutboundPolicy.of(True, ["127.0.0.1/32"])
QUICK = OutboundLimits(timeout_seconds=1.0, connect_timeout_seconds=1.0, per_host=2, host_wait_seconds=0.5,
                       max_response_bytes=1024)


async def post(outbound: Outbound, url: str) -> tuple[RecipientStatus, str, datetime | None]:
    outcome = await outbound.post(url, b'{"x":1}', {"content-type": "application/json"}, "receiver:r")
    assert outcome.email == "receiver:r"
    return outcome.status, outcome.response, outcome.retry_at


async def test_each_answer_becomes_its_outcome() -> None:
    scripts = {
        "/ok": [Answer(204)],
        "/gone": [Answer(410, body=b"this hook was deleted")],
        "/slow-down": [Answer(429, {"retry-after": "120"})],
        "/flaky": [Answer(503, body=b"maintenance"), Answer(200)],
        "/moved": [Answer(301, {"location": "/ok"})],
    }
    outbound = Outbound(LOOPBACK, QUICK)
    try:
        with serving(scripts) as server:
            assert await post(outbound, server.url("/ok")) == (RecipientStatus.SENT, "HTTP 204", None)
            assert await post(outbound, server.url("/gone")) == (
                RecipientStatus.FAILED, "HTTP 410: this hook was deleted", None)
            before = datetime.now(UTC)
            status, response, when = await post(outbound, server.url("/slow-down"))
            assert (status, response) == (RecipientStatus.DEFERRED, "HTTP 429")
            assert when is not None and before + timedelta(seconds=120) <= when <= datetime.now(UTC) + timedelta(
                seconds=120)
            assert await post(outbound, server.url("/flaky")) == (RecipientStatus.DEFERRED, "HTTP 503: maintenance",
                                                                  None)
            assert await post(outbound, server.url("/flaky")) == (RecipientStatus.SENT, "HTTP 200", None)
            status, response, _ = await post(outbound, server.url("/moved"))
            assert status == RecipientStatus.FAILED and response.startswith("HTTP 301: a redirect that does not keep")
            assert [len(server.requests_to(path)) for path in scripts] == [1, 1, 1, 2, 1]
            assert server.requests_to("/ok")[0].body == b'{"x":1}'
    finally:
        await outbound.aclose()


async def test_redirects_are_followed_only_to_allowed_addresses() -> None:
    outbound = Outbound(LOOPBACK, QUICK)
    try:
        with serving({"/ok": [Answer(200)]}) as server:
            private = server.url("/ok", host="127.0.0.2")  # loopback, but not the allowed address
            server.scripts["/to-ok"] = [Answer(307, {"location": "/ok"})]
            server.scripts["/to-private"] = [Answer(308, {"location": private})]
            server.scripts["/to-metadata"] = [Answer(307, {"location": "http://169.254.169.254/latest/meta-data/"})]
            server.scripts["/loop"] = [Answer(307, {"location": "/loop"})]
            assert await post(outbound, server.url("/to-ok")) == (RecipientStatus.SENT, "HTTP 200", None)
            assert await post(outbound, server.url("/to-private")) == (
                RecipientStatus.FAILED, "url: 127.0.0.2 is a loopback address; requests may not go there", None)
            assert await post(outbound, server.url("/to-metadata")) == (
                RecipientStatus.FAILED, "url: 169.254.169.254 is the cloud metadata address; requests may not go there",
                None)
            assert await post(outbound, server.url("/loop")) == (RecipientStatus.FAILED, "more than 3 redirects", None)
            assert len(server.requests_to("/ok")) == 1 and len(server.requests_to("/loop")) == 4
    finally:
        await outbound.aclose()


async def test_names_are_checked_by_every_address_they_resolve_to() -> None:
    outbound = Outbound(OutboundPolicy.of(True, []), QUICK)
    only_ipv4 = Outbound(LOOPBACK, QUICK)
    try:
        with serving({"/ok": [Answer(200)]}) as server:
            status, response, _ = await post(outbound, server.url("/ok", host="localhost"))
            assert status == RecipientStatus.FAILED
            assert response.startswith("localhost resolves to ") and " is a loopback address; requests may" in response
            status, response, _ = await post(outbound, server.url("/ok", host="127.0.0.1"))
            assert (status, response) == (
                RecipientStatus.FAILED, "url: 127.0.0.1 is a loopback address; requests may not go there")
            status, response, _ = await post(only_ipv4, server.url("/ok", host="localhost"))
            resolved = {info[4][0] for info in socket.getaddrinfo("localhost", server.port, type=socket.SOCK_STREAM)}
            assert (status == RecipientStatus.SENT) == (resolved == {"127.0.0.1"})
            assert len(server.requests_to("/ok")) == (1 if resolved == {"127.0.0.1"} else 0)
    finally:
        await outbound.aclose()
        await only_ipv4.aclose()


async def test_an_oversized_answer_is_read_only_up_to_the_bound() -> None:
    outbound = Outbound(LOOPBACK, QUICK)
    try:
        with serving({"/big": [Answer(400, body=b"e" * 5_000_000)]}) as server:
            status, response, _ = await post(outbound, server.url("/big"))
            assert status == RecipientStatus.FAILED and response == "HTTP 400: " + "e" * 300
    finally:
        await outbound.aclose()


async def test_a_host_that_hangs_defers_its_own_requests_and_delays_no_other_host() -> None:
    outbound = Outbound(LOOPBACK, QUICK)
    try:
        with serving({"/hang": [Answer(200, delay_seconds=3.0)]}) as slow, serving({"/ok": [Answer(200)]}) as fast:
            started = time.monotonic()
            hanging = [asyncio.create_task(post(outbound, slow.url("/hang"))) for _ in range(4)]
            await asyncio.sleep(0.1)
            assert await post(outbound, fast.url("/ok")) == (RecipientStatus.SENT, "HTTP 200", None)
            assert time.monotonic() - started < 0.5
            outcomes = await asyncio.gather(*hanging)
            # Two in flight (the host's bound) time out; two never got their turn.
            assert sorted(response for _, response, _ in outcomes) == sorted(
                [f"no answer from 127.0.0.1:{slow.port} in time"] * 2
                + [f"2 requests to 127.0.0.1:{slow.port} already in flight"] * 2)
            assert {status for status, _, _ in outcomes} == {RecipientStatus.DEFERRED}
            assert len(slow.requests_to("/hang")) == 2
    finally:
        await outbound.aclose()


async def test_a_refused_connection_is_tried_again() -> None:
    outbound = Outbound(LOOPBACK, QUICK)
    try:
        with serving({}) as server:
            url = server.url("/")
        status, response, _ = await post(outbound, url)
        assert status == RecipientStatus.DEFERRED and "ConnectError" in response
    finally:
        await outbound.aclose()


@pytest.mark.parametrize(("value", "seconds"), [("30", 30), ("0", 0), (None, None), ("soon", None),
                                                ("Sat, 05 Dec 2026 12:01:00 GMT", 60)])
def test_retry_after_is_seconds_or_an_http_date(value: str | None, seconds: int | None) -> None:
    now = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
    assert retry_at(value, now) == (None if seconds is None else now + timedelta(seconds=seconds))


async def test_a_request_carries_the_trace_it_is_part_of() -> None:
    provider = TracerProvider()
    outbound = Outbound(LOOPBACK, QUICK)
    try:
        with (serving({"/ok": [Answer(200)]}) as server,
              provider.get_tracer("test").start_as_current_span("send") as span):
            await post(outbound, server.url("/ok"))
            [request] = server.requests_to("/ok")
        trace_id = format(span.get_span_context().trace_id, "032x")
        assert request.headers["traceparent"].split("-")[1] == trace_id
    finally:
        await outbound.aclose()
