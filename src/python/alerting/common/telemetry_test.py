from opentelemetry.sdk.trace import TracerProvider

from alerting.common.service import Lifecycle
from alerting.common.settings import Settings, tracing_settings
from alerting.common.telemetry import MESSAGES_PROCESSED, serve_metrics_and_health, tracer_provider
from alerting.testsupport.services import free_port, http_get


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
    provider = tracer_provider(tracing_settings("rule-service", Settings(otel_sample_ratio=1.0), environ))
    assert isinstance(provider, TracerProvider)
    assert provider.resource.attributes["service.name"] == "rules-eu"
    assert provider.resource.attributes["deployment.environment"] == "prod"
    assert provider.sampler.get_description() == (
        "ParentBased{root:TraceIdRatioBased{0.25},remoteParentSampled:AlwaysOnSampler,"
        "remoteParentNotSampled:AlwaysOffSampler,localParentSampled:AlwaysOnSampler,"
        "localParentNotSampled:AlwaysOffSampler}"
    )
    always = tracer_provider(tracing_settings("x", Settings(), {"OTEL_TRACES_SAMPLER": "always_off"}))
    assert always.sampler.get_description() == "AlwaysOffSampler"
