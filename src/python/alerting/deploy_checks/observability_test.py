"""deploy/observability (Jaeger, Mailpit, Prometheus under deploy/platform) and deploy/platform
agree on the tools' ports, and every server the script starts listens on loopback only."""

import re
from pathlib import Path

SCRIPT = Path("deploy/observability").read_text
PLATFORM = Path("deploy/platform").read_text


def tool_ports() -> dict[str, int]:
    """The script's `<tool>_<what>_port=N` assignments."""
    return {name: int(port) for name, port in re.findall(r"\b(\w+_port)=(\d+)", SCRIPT())}


def test_the_platform_points_services_and_demo_at_the_ports_the_tools_listen_on() -> None:
    ports = tool_ports()
    assert ports == {"jaeger_ui_port": 16686, "jaeger_otlp_port": 4317, "mailpit_ui_port": 8025,
                     "mailpit_smtp_port": 1025, "prometheus_port": 9090}
    platform = PLATFORM()
    assert f"ALERTING_OTEL_ENDPOINT=http://127.0.0.1:{ports['jaeger_otlp_port']}" in platform
    assert f"ALERTING_JAEGER_API=http://127.0.0.1:{ports['jaeger_ui_port']}/api" in platform
    assert f"ALERTING_JAEGER_UI=http://127.0.0.1:{ports['jaeger_ui_port']}" in platform
    assert f"sender ALERTING_SMTP_PORT={ports['mailpit_smtp_port']}" in platform
    assert f"ALERTING_MAILPIT_UI=http://127.0.0.1:{ports['mailpit_ui_port']}" in platform


def test_every_tool_listens_on_loopback_only() -> None:
    script = SCRIPT()
    # Jaeger: its all-in-one configuration binds ${JAEGER_LISTEN_HOST}, the query service is set apart.
    assert "JAEGER_LISTEN_HOST=127.0.0.1 launch jaeger" in script
    assert "--set=extensions.jaeger_query.http.endpoint=127.0.0.1:" in script
    assert "--set=extensions.jaeger_query.grpc.endpoint=127.0.0.1:" in script
    assert '--listen "127.0.0.1:$mailpit_ui_port" --smtp "127.0.0.1:$mailpit_smtp_port"' in script
    assert '--web.listen-address="127.0.0.1:$prometheus_port"' in script
    assert '--config.file="$repo_root/deploy/prometheus/local.yml"' in script


def test_the_platform_runs_and_stops_the_tools() -> None:
    platform = PLATFORM()
    assert "deploy/observability up" in platform
    assert "deploy/observability status" in platform
    assert "deploy/observability stop" in platform
