"""docker-compose.yml, Prometheus' scrape list, deploy/platform and deploy/topics.txt must
agree with the ports, topics and topic configs the code uses (src/python/alerting/common)."""

import json
import re
from pathlib import Path
from typing import Any

import yaml

from alerting.common import ports, topics

APP_SERVICES = set(ports.METRICS_PORTS) - {"alert-producer"}


def load_compose() -> dict[str, Any]:
    return yaml.safe_load(Path("docker-compose.yml").read_text())


def published_ports(service: dict[str, Any]) -> set[int]:
    """The host ports a service publishes ("127.0.0.1:<host>:<container>")."""
    return {int(str(mapping).split(":")[-2]) for mapping in service.get("ports", [])}


def pex_of(name: str) -> str:
    """Where the image keeps a binary's PEX: the pex_binary <name> of package alerting.<name>."""
    return f"/app/dist/src.python.alerting.{name.replace('-', '_')}/{name}.pex"


def test_every_service_runs_its_pex_from_the_one_image_with_its_ports() -> None:
    services = load_compose()["services"]
    assert APP_SERVICES <= set(services)
    for name in APP_SERVICES:
        service = services[name]
        assert ports.METRICS_PORTS[name] in published_ports(service), name
        assert service["image"] == "alerting-platform:local", name
        assert service["build"] == {"context": ".", "dockerfile": "deploy/docker/Dockerfile"}, name
        assert service["command"][0] == pex_of(name), name
        assert service["healthcheck"]["test"] == ["CMD", "/app/healthcheck", str(ports.METRICS_PORTS[name])], name
    assert ports.RULE_SERVICE_GRPC_PORT in published_ports(services["rule-service"])
    assert ports.SMTP_SINK_PORT in published_ports(services["smtp-sink"])
    assert ports.KAFKA_PORT in published_ports(services["kafka"])
    assert ports.POSTGRES_PORT in published_ports(services["postgres"])
    assert ports.REDIS_PORT in published_ports(services["redis"])
    assert services["migrate"]["command"] == [pex_of("migrate"), "up"]


def test_the_tools_run_on_demand_from_the_same_image() -> None:
    services = load_compose()["services"]
    for name, pex in (("demo", "demo"), ("alertctl", "cli"), ("alert-producer", "producer")):
        assert services[name]["profiles"] == ["tools"], name
        assert services[name]["image"] == "alerting-platform:local", name
        assert services[name]["entrypoint"] == [f"/app/dist/src.python.alerting.{pex}/{name}.pex"], name


def test_services_reach_each_other_by_compose_names_and_ports() -> None:
    services = load_compose()["services"]
    environment = services["evaluator"]["environment"]
    assert environment["ALERTING_KAFKA_BOOTSTRAP"] == f"kafka:{ports.KAFKA_PORT}"
    assert environment["ALERTING_RULE_SERVICE_ADDRESS"] == f"rule-service:{ports.RULE_SERVICE_GRPC_PORT}"
    assert environment["ALERTING_LISTEN_HOST"] == "0.0.0.0"
    dependencies = {name for service in services.values() for name in service.get("depends_on", {})}
    assert dependencies <= set(services)


def test_kafka_has_a_listener_for_containers_and_one_for_the_host() -> None:
    services = load_compose()["services"]
    kafka = services["kafka"]["environment"]
    advertised = dict(listener.split("://") for listener in kafka["KAFKA_ADVERTISED_LISTENERS"].split(","))
    listening = dict(listener.split("://") for listener in kafka["KAFKA_LISTENERS"].split(","))
    assert advertised["INTERNAL"] == services["evaluator"]["environment"]["ALERTING_KAFKA_BOOTSTRAP"]
    assert advertised["HOST"] == f"127.0.0.1:{ports.KAFKA_PORT}"
    # The host's port is published from the HOST listener's port in the container.
    assert f"127.0.0.1:{ports.KAFKA_PORT}:{listening['HOST'].lstrip(':')}" in services["kafka"]["ports"]


def test_mail_goes_to_mailpit_and_state_lives_in_named_volumes() -> None:
    compose = load_compose()
    services = compose["services"]
    environment = services["sender"]["environment"]
    assert (environment["ALERTING_SMTP_HOST"], environment["ALERTING_SMTP_PORT"]) == ("mailpit", "1025")
    assert {1025, 8025} <= published_ports(services["mailpit"])
    for name, mount in (("kafka", "/var/lib/kafka/data"), ("postgres", "/var/lib/postgresql/data"),
                        ("redis", "/data"), ("mailpit", "/data")):
        volume = services[name]["volumes"][0].split(":")
        assert volume[0] in compose["volumes"] and volume[1] == mount, name


def test_postgres_is_ready_over_tcp_and_the_image_runs_as_a_user() -> None:
    services = load_compose()["services"]
    assert "-h 127.0.0.1" in services["postgres"]["healthcheck"]["test"][1]
    dockerfile = Path("deploy/docker/Dockerfile").read_text()
    final_stage = dockerfile.rsplit("FROM ", 1)[1]
    users = re.findall(r"^USER (\S+)$", final_stage, flags=re.M)
    assert users and users[-1] not in ("root", "0")
    assert "./pants --no-pantsd package src/python/alerting::" in dockerfile  # built inside, not on the host


def test_prometheus_scrapes_every_service_on_its_metrics_port() -> None:
    config = yaml.safe_load(Path("deploy/prometheus/prometheus.yml").read_text())
    groups = [group for job in config["scrape_configs"] for group in job["static_configs"]]
    targets = {target for group in groups for target in group["targets"]}
    assert targets == {f"{name}:{ports.METRICS_PORTS[name]}" for name in APP_SERVICES}


def test_grafana_dashboard_queries_metrics_the_services_export() -> None:
    dashboard = json.loads(Path("deploy/grafana/dashboards/alerting.json").read_text())
    expressions = " ".join(target["expr"] for panel in dashboard["panels"] for target in panel["targets"])
    for metric in ("alerting_messages_processed_total", "alerting_messages_dead_lettered_total",
                   "alerting_batch_seconds_bucket", "alerting_consumer_lag"):
        assert metric in expressions


def test_local_platform_script_uses_the_same_services_and_ports() -> None:
    script = Path("deploy/platform").read_text()
    entries = dict(re.findall(r'^\s+"([a-z-]+)\|[^|]+\|(\d+)"$', script, flags=re.M))
    assert {name: int(port) for name, port in entries.items()} == {
        name: ports.METRICS_PORTS[name] for name in APP_SERVICES
    }


def topic_list() -> dict[str, list[str]]:
    """deploy/topics.txt: topic -> its other fields (partitions, then configs if any)."""
    lines = [line.split() for line in Path("deploy/topics.txt").read_text().splitlines()]
    return {fields[0]: fields[1:] for fields in lines if fields and not fields[0].startswith("#")}


def test_topic_list_creates_every_topic_and_dead_letter_topic() -> None:
    created = {name: int(fields[0]) for name, fields in topic_list().items()}
    for name in topics.INPUT_TOPICS:
        assert created[name] >= 1
        assert topics.dead_letter(name) in created
    # Rule changes apply in commit order: one partition.
    assert created[topics.RULE_CHANGED] == 1


def test_topic_list_carries_the_topic_configs_of_the_code() -> None:
    configured = {
        name: dict(pair.split("=", 1) for pair in fields[1].split(",")) if len(fields) > 1 else {}
        for name, fields in topic_list().items()
    }
    assert set(topics.TOPIC_CONFIGS) <= set(configured)
    assert configured == {name: topics.TOPIC_CONFIGS.get(name, {}) for name in configured}


def test_compose_runs_the_kafka_version_the_local_stack_fetches() -> None:
    pom = Path("deploy/kafka/pom.xml").read_text()
    found = re.search(r"<kafka.version>(.+?)</kafka.version>", pom)
    assert found is not None, "no <kafka.version> in deploy/kafka/pom.xml"
    version = found.group(1)
    images = {service["image"] for service in load_compose()["services"].values()
              if service.get("image", "").startswith("apache/kafka:")}
    assert images == {f"apache/kafka:{version}"}


def test_the_rule_service_serves_tls_and_its_clients_trust_the_ca_and_bring_the_admin_key() -> None:
    services = load_compose()["services"]
    credentials = services["credentials"]
    assert credentials["volumes"] == ["credentials:/credentials"]
    assert "local-stack certificates /credentials/tls" in credentials["command"][0]
    assert "new_key" in credentials["command"][0] and "/credentials/admin.key" in credentials["command"][0]
    server = services["rule-service"]["environment"]
    tls_and_key = ("ALERTING_TLS_CERT_FILE", "ALERTING_TLS_KEY_FILE", "ALERTING_BOOTSTRAP_ADMIN_KEY_FILE")
    assert tuple(server[name] for name in tls_and_key) == (
        "/credentials/tls/server.pem", "/credentials/tls/server.key", "/credentials/admin.key")
    for name in ("demo", "alertctl"):
        environment = services[name]["environment"]
        assert (environment["ALERTING_TLS_CA_FILE"], environment["ALERTING_API_KEY_FILE"]) == (
            "/credentials/tls/ca.pem", "/credentials/admin.key")
        assert services[name]["volumes"] == ["credentials:/credentials:ro"]
    assert "ALERTING_RULE_SERVICE_TLS" not in server  # TLS unless told otherwise


def test_redis_asks_for_the_password_the_services_give() -> None:
    services = load_compose()["services"]
    command = services["redis"]["command"]
    password = command[command.index("--requirepass") + 1]
    assert services["evaluator"]["environment"]["ALERTING_REDIS_PASSWORD"] == password
    assert services["redis"]["healthcheck"]["test"][1:4] == ["redis-cli", "-a", password]
