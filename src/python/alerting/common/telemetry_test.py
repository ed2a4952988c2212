import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from alerting.common.service import Lifecycle
from alerting.common.settings import tracing_settings
from alerting.common.telemetry import MESSAGES_PROCESSED, serve_metrics_and_health, tracer_provider
from alerting.testsupport.services import free_port, http_get
from alerting.testsupport.stack import StackSettings


async def test_readiness_liveness_and_metrics_are_served_apart() -> None:
    lifecycle = Lifecycle()
    port = free_port()
    server = await serve_metrics_and_health("127.0.0.1", port, lifecycle.is_ready, lifecycle.is_alive)
    try:
        # Starting (waiting for a dependency): alive, not ready; /healthz is /readyz.
        assert await http_get(port, "/livez") == (200, "ok\n")
        assert await http_get(port, "/readyz") == (503, "not ready\n")
        assert await http_get(port, "/healthz") == (503, "not ready\n")
        lifecycle.ready = lambda: True
        assert await http_get(port, "/readyz") == (200, "ok\n")
        assert await http_get(port, "/healthz?verbose") == (200, "ok\n")
        # A task the service needs has ended: dead, and not ready either (as the services wire it).
        lifecycle.alive = lambda: False
        assert await http_get(port, "/livez") == (503, "not alive\n")
        # A probe that raises answers no rather than breaking the endpoint.
        lifecycle.ready = lambda: 1 / 0 > 0
        assert await http_get(port, "/readyz") == (503, "not ready\n")
        # Asked to stop: no longer ready, whatever the service says.
        lifecycle.ready, lifecycle.alive = (lambda: True), (lambda: True)
        lifecycle.stop.set()
        assert await http_get(port, "/readyz") == (503, "not ready\n")
        assert await http_get(port, "/livez") == (200, "ok\n")

        MESSAGES_PROCESSED.labels("test-service", "some.topic").inc(3)
        status, body = await http_get(port, "/metrics")
        assert status == 200
        assert 'alerting_messages_processed_total{service="test-service",topic="some.topic"} 3.0' in body
        assert (await http_get(port, "/nothing"))[0] == 404
        assert (await http_get(port, "/livezz"))[0] == 404
    finally:
        server.close()


def test_the_tracer_provider_follows_the_resolved_otel_settings() -> None:
    environ = {
        "OTEL_SERVICE_NAME": "rules-eu",
        "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=prod,service.name=ignored",
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": "0.25",
    }
    provider = tracer_provider(tracing_settings("rule-service", StackSettings(otel_sample_ratio=1.0), environ))
    assert isinstance(provider, TracerProvider)
    assert provider.resource.attributes["service.name"] == "rules-eu"
    assert provider.resource.attributes["deployment.environment"] == "prod"
    assert provider.sampler.get_description() == (
        "ParentBased{root:TraceIdRatioBased{0.25},remoteParentSampled:AlwaysOnSampler,"
        "remoteParentNotSampled:AlwaysOffSampler,localParentSampled:AlwaysOnSampler,"
        "localParentNotSampled:AlwaysOffSampler}"
    )
    always = tracer_provider(tracing_settings("x", StackSettings(), {"OTEL_TRACES_SAMPLER": "always_off"}))
    assert always.sampler.get_description() == "AlwaysOffSampler"


@pytest.fixture
def span_intake() -> Iterator[tuple[str, list[tuple[str, object]]]]:
    """An HTTP endpoint on loopback that keeps what is POSTed to it: (path, decoded JSON body)."""
    received: list[tuple[str, object]] = []

    class Intake(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.path, json.loads(body)))
            self.send_response(202)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Intake)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/api/v2/spans", received
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(("settings", "environ"), [
    (StackSettings(otel_exporter="none"), {"OTEL_TRACES_EXPORTER": "zipkin"}),
    (StackSettings(otel_exporter="zipkin"), {}),
], ids=["OTEL_TRACES_EXPORTER", "ALERTING_OTEL_EXPORTER"])
def test_the_zipkin_exporter_posts_zipkin_v2_json_to_its_endpoint(
    settings: StackSettings, environ: dict[str, str], span_intake: tuple[str, list[tuple[str, object]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    endpoint, received = span_intake
    monkeypatch.setenv("OTEL_EXPORTER_ZIPKIN_ENDPOINT", endpoint)
    provider = tracer_provider(tracing_settings("sender", settings, environ))
    with provider.get_tracer("test").start_as_current_span("smtp send", kind=trace.SpanKind.CLIENT) as span:
        span.set_attribute("alerting.notification_id", "n-1")
        trace_id = format(span.get_span_context().trace_id, "032x")
    provider.shutdown()  # exports what the batch processor holds

    assert len(received) == 1
    path, spans = received[0]
    assert path == "/api/v2/spans"
    assert isinstance(spans, list) and len(spans) == 1
    assert {key: spans[0][key] for key in ("traceId", "name", "kind", "localEndpoint")} == {
        "traceId": trace_id, "name": "smtp send", "kind": "CLIENT", "localEndpoint": {"serviceName": "sender"}}
    assert spans[0]["tags"]["alerting.notification_id"] == "n-1"
