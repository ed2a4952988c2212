"""deploy/observability (Zipkin, Mailpit, Prometheus under deploy/platform), deploy/platform and
the demo agree on the tools' ports and links, every server the script starts listens on loopback
only, and the pinned versions are the approved ones."""

import re
from pathlib import Path

import pytest
import yaml

from alerting.demo.main import trace_link

SCRIPT = Path("deploy/observability").read_text
PLATFORM = Path("deploy/platform").read_text
# Jaeger v1.76.0 is not an approved release; v1.75.0 is.
JAEGER_VERSION = "1.75.0"


def tool_ports() -> dict[str, int]:
    """The script's `<tool>_<what>_port=N` assignments."""
    return {name: int(port) for name, port in re.findall(r"\b(\w+_port)=(\d+)", SCRIPT())}


def test_the_platform_points_services_and_demo_at_the_ports_the_tools_listen_on() -> None:
    ports = tool_ports()
    assert ports == {"zipkin_port": 9411, "mailpit_ui_port": 8025, "mailpit_smtp_port": 1025, "prometheus_port": 9090}
    platform = PLATFORM()
    assert f"OTEL_EXPORTER_ZIPKIN_ENDPOINT=http://127.0.0.1:{ports['zipkin_port']}/api/v2/spans" in platform
    assert f"ALERTING_ZIPKIN_UI=http://127.0.0.1:{ports['zipkin_port']}/zipkin" in platform
    assert f"sender ALERTING_SMTP_PORT={ports['mailpit_smtp_port']}" in platform
    assert f"ALERTING_MAILPIT_UI=http://127.0.0.1:{ports['mailpit_ui_port']}" in platform


def test_the_demo_links_a_trace_to_the_page_of_the_ui_the_platform_names(monkeypatch: pytest.MonkeyPatch) -> None:
    zipkin_ui = re.search(r"ALERTING_ZIPKIN_UI=(\S+)\"", PLATFORM())
    assert zipkin_ui is not None
    monkeypatch.setenv("ALERTING_ZIPKIN_UI", zipkin_ui.group(1))
    # Zipkin's UI (Lens) shows one trace at <base>/traces/<trace id>.
    assert trace_link("ab" * 16) == f"trace in Zipkin: http://127.0.0.1:9411/zipkin/traces/{'ab' * 16}"
    monkeypatch.delenv("ALERTING_ZIPKIN_UI")
    compose_demo = yaml.safe_load(Path("docker-compose.yml").read_text())["services"]["demo"]["environment"]
    monkeypatch.setenv("ALERTING_JAEGER_UI", compose_demo["ALERTING_JAEGER_UI"])
    assert trace_link("ab" * 16) == f"trace in Jaeger: http://127.0.0.1:16686/trace/{'ab' * 16}"


def test_every_tool_listens_on_loopback_only() -> None:
    script = SCRIPT()
    assert '"--armeria.ports[0].ip=127.0.0.1" "--armeria.ports[0].port=$zipkin_port"' in script
    assert '--listen "127.0.0.1:$mailpit_ui_port" --smtp "127.0.0.1:$mailpit_smtp_port"' in script
    assert '--web.listen-address="127.0.0.1:$prometheus_port"' in script
    assert '--config.file="$repo_root/deploy/prometheus/local.yml"' in script


def test_mailpit_is_built_with_its_web_ui() -> None:
    # `go build` embeds server/ui/dist, which `npm run package` writes: without it the page is blank.
    script = SCRIPT()
    assert re.search(r"^mailpit_version=v1\.27\.11$", script, re.MULTILINE)
    assert script.index("npm ci --ignore-scripts") < script.index("npm run package") < script.index('"go build"')


def test_jaeger_is_the_approved_release_wherever_it_is_referenced() -> None:
    compose = yaml.safe_load(Path("docker-compose.yml").read_text())
    assert compose["services"]["jaeger"]["image"] == f"jaegertracing/all-in-one:{JAEGER_VERSION}"
    for path in ("docker-compose.yml", "deploy/observability", "deploy/platform", "deploy/local-stack"):
        text = Path(path).read_text()
        versions = set(re.findall(r"jaeger\S*?[:@=]v?(\d+\.\d+(?:\.\d+)?)(?![.\d])", text, re.IGNORECASE))
        assert versions <= {JAEGER_VERSION}, path


def test_the_platform_runs_and_stops_the_tools() -> None:
    platform = PLATFORM()
    assert "deploy/observability up" in platform
    assert "deploy/observability status" in platform
    assert "deploy/observability stop" in platform
