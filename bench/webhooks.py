"""Webhook requests from one sender process: the platform's path to a receiver (the signed
alerting.webhook/v1 document, the URL checked again and its host resolved and pinned, the
per-host bound, a span per request, httpx with keep-alive) against plain httpx posting the
same bytes to the same endpoint, in the same run, with as many requests in flight (the
per-host bound). The endpoint is a server in a process of its own, so the sender's CPU per
request is its own.

    ./pants run bench/webhooks.py            (about a minute)
    ./pants run bench/webhooks.py -- --smoke (seconds: that it runs)
"""

from __future__ import annotations

import asyncio
import multiprocessing
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
from opentelemetry import context as otel_context
from workloads import full_or_smoke

from alerting.common import telemetry
from alerting.common.settings import SenderSettings
from alerting.producer.alerts import build_alert
from alerting.rules.receivers import endpoint, new_secret
from alerting.sender.delivery import EmailSender, Outgoing
from alerting.sender.notify.documents import Delivered, webhook_body
from alerting.sender.notify.targets import Target
from alerting.sender.outcomes import RecipientStatus
from alerting.sender.smtp_pool import SmtpConnections
from alerting.testsupport.http_endpoints import Answer, serving

RECEIVER_ID = "6d1f5c1e-0000-4000-8000-00000000b001"
CLIENT_ID = "6d1f5c1e-0000-4000-8000-00000000c001"


@dataclass(frozen=True)
class Sizes:
    requests: int
    repetitions: int


FULL = Sizes(requests=4_000, repetitions=3)
SMOKE = Sizes(requests=40, repetitions=1)


def serve(port: multiprocessing.Queue) -> None:
    """The receiving endpoint, until the benchmark ends this process."""
    with serving({"/hook": [Answer(204)]}) as endpoints:
        port.put(endpoints.port)
        while True:
            time.sleep(3600)


async def timed(requests: int, in_flight: int, post: Callable[[int], Awaitable[bool]]) -> tuple[float, float, int]:
    """Requests per second, CPU µs per request of this process, and how many were accepted."""
    numbers = iter(range(requests))
    accepted = 0

    async def one_at_a_time() -> None:
        nonlocal accepted
        for number in numbers:
            taken = await post(number)
            accepted += taken

    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(one_at_a_time() for _ in range(in_flight)))
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    return requests / wall, cpu / requests * 1e6, accepted


async def run(sizes: Sizes, url: str) -> None:
    settings = SenderSettings(outbound_allow_http=True, outbound_allowed_networks=("127.0.0.1/32",))
    telemetry.setup_tracing("sender", settings)
    sender = EmailSender(settings, SmtpConnections(host="127.0.0.1", port=0, timeout=1, start_tls=False,
                                                   username="", password=""))
    target = Target(RECEIVER_ID, CLIENT_ID, "webhook", url, new_secret())
    alert = build_alert("HIGH", "db", "disk_full", context={"host": "db-1"})

    def outgoing(number: int) -> Outgoing[None]:
        notification_id = f"6d1f5c1e-0000-4000-8000-{number:012d}"
        return Outgoing(None, "notification", notification_id, (endpoint(RECEIVER_ID),), {}, 1, datetime.now(UTC),
                        lambda _: b"", otel_context.Context(), client_id=CLIENT_ID,
                        delivered=lambda: [Delivered(notification_id, alert, ("rule-1",))],
                        targets={RECEIVER_ID: target})

    async def platform(number: int) -> bool:
        [outcome] = await sender.request(outgoing(number), endpoint(RECEIVER_ID))
        return outcome.status == RecipientStatus.SENT

    body = webhook_body("notification", "id", CLIENT_ID, [Delivered("id", alert, ("rule-1",))])
    plain_client = httpx.AsyncClient(limits=httpx.Limits(max_keepalive_connections=64))

    async def plain(number: int) -> bool:
        response = await plain_client.post(url, content=body, headers={"content-type": "application/json"})
        return response.is_success

    in_flight = settings.webhook_requests_per_host
    runs: dict[str, list[tuple[float, float, int]]] = {"plain httpx (baseline)": [], "the platform's": []}
    try:
        for _ in range(sizes.repetitions):  # interleaved, so that noise falls on both
            runs["plain httpx (baseline)"].append(await timed(sizes.requests, in_flight, plain))
            runs["the platform's"].append(await timed(sizes.requests, in_flight, platform))
    finally:
        await plain_client.aclose()
        await sender.aclose()
    baseline_cpu = statistics.median(cpu for _, cpu, _ in runs["plain httpx (baseline)"])
    print(f"{sizes.requests:,} requests × {sizes.repetitions}, {in_flight} in flight, medians:")
    print("| requests | accepted (2xx) | requests/s | sender CPU µs per request | CPU ratio to the baseline |")
    print("|---|---:|---:|---:|---:|")
    for label, measured in runs.items():
        cpu = statistics.median(cpu for _, cpu, _ in measured)
        print(f"| {label} | {min(accepted for _, _, accepted in measured):,} of {sizes.requests:,} | "
              f"{statistics.median(rate for rate, _, _ in measured):,.0f} | {cpu:,.0f} | {cpu / baseline_cpu:.2f} |")


def main(sizes: Sizes) -> None:
    # Forked before any event loop or thread of this process starts.
    forking = multiprocessing.get_context("fork")
    ports = forking.Queue()
    server = forking.Process(target=serve, args=(ports,), daemon=True)
    server.start()
    try:
        asyncio.run(run(sizes, f"http://127.0.0.1:{ports.get(timeout=30)}/hook"))
    finally:
        server.kill()
        server.join()


if __name__ == "__main__":
    main(full_or_smoke(__doc__, FULL, SMOKE))
