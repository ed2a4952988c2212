import asyncio

from alerting.common.service import Lifecycle
from alerting.common.telemetry import MESSAGES_PROCESSED, serve_metrics_and_health
from alerting.testsupport.services import free_port


async def get(port: int, path: str) -> tuple[int, str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await writer.drain()
    response = (await reader.read()).decode()
    writer.close()
    status_line, _, body = response.partition("\r\n\r\n")
    return int(status_line.split()[1]), body


async def test_health_is_503_until_the_service_says_it_started_and_metrics_are_served() -> None:
    lifecycle = Lifecycle()
    port = free_port()
    server = await serve_metrics_and_health("127.0.0.1", port, lambda: lifecycle.healthy())
    try:
        assert await get(port, "/healthz") == (503, "unhealthy\n")
        lifecycle.healthy = lambda: True
        assert await get(port, "/healthz") == (200, "ok\n")
        MESSAGES_PROCESSED.labels("test-service", "some.topic").inc(3)
        status, body = await get(port, "/metrics")
        assert status == 200
        assert 'alerting_messages_processed_total{service="test-service",topic="some.topic"} 3.0' in body
        assert (await get(port, "/nothing"))[0] == 404
    finally:
        server.close()
