"""docker-compose.yml, Prometheus' scrape list, deploy/platform, deploy/local-stack and deploy/topics.txt
must agree with the ports, topics and topic configs the code uses (src/python/alerting/common);
and compose must hold the controls of docs/security.md: each container only its own
secrets (deploy/compose/credentials.txt), the CA's key in none that runs, Kafka SASL_SSL only
with the local stack's principals, ACLs and authorizer, no owner login in a service, Redis
TLS with ACL users, Grafana behind a generated password."""

import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from alerting.common import ports, topics
from alerting.testsupport.stack import StackSettings

APP_SERVICES = set(ports.METRICS_PORTS) - {"alert-producer"}
CREDENTIALS = Path("deploy/compose/credentials.txt")


def load_compose() -> dict[str, Any]:
    return yaml.safe_load(Path("docker-compose.yml").read_text())


def published_ports(service: dict[str, Any]) -> set[int]:
    """The host ports a service publishes ("127.0.0.1:<host>:<container>")."""
    return {int(str(mapping).split(":")[-2]) for mapping in service.get("ports", [])}


def default_port(setting: str) -> int:
    """The port of a setting's default address (the local stack's, which compose publishes too)."""
    address = str(StackSettings.model_fields[setting].default)
    port = urlsplit(address if "://" in address else f"//{address}").port
    assert port is not None, setting
    return port


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
    # The host reaches the stores where the settings' defaults (the local stack's) point.
    assert published_ports(services["kafka"]) == {ports.KAFKA_PORT} == {default_port("kafka_bootstrap")}
    assert published_ports(services["postgres"]) == {ports.POSTGRES_PORT} == {default_port("database_url")}
    assert published_ports(services["redis"]) == {ports.REDIS_PORT} == {default_port("redis_url")}
    assert services["migrate"]["command"] == [pex_of("migrate"), "up"]


def test_the_tools_run_on_demand_from_the_same_image() -> None:
    services = load_compose()["services"]
    for name, pex in (("demo", "demo"), ("alertctl", "cli"), ("alert-producer", "producer")):
        assert services[name]["profiles"] == ["tools"], name
        assert services[name]["image"] == "alerting-platform:local", name
        assert services[name]["entrypoint"] == [f"/app/dist/src.python.alerting.{pex}/{name}.pex"], name


def test_services_reach_each_other_by_compose_names_and_ports() -> None:
    services = load_compose()["services"]
    assert services["evaluator"]["environment"]["ALERTING_KAFKA_BOOTSTRAP"] == f"kafka:{ports.COMPOSE_KAFKA_PORT}"
    assert services["evaluator"]["environment"]["ALERTING_LISTEN_HOST"] == "0.0.0.0"
    for name in ("demo", "alertctl"):
        address = services[name]["environment"]["ALERTING_RULE_SERVICE_ADDRESS"]
        assert address == f"rule-service:{ports.RULE_SERVICE_GRPC_PORT}", name
    dependencies = {name for service in services.values() for name in service.get("depends_on", {})}
    assert dependencies <= set(services)


def test_kafka_has_a_listener_for_containers_and_one_for_the_host() -> None:
    services = load_compose()["services"]
    kafka = services["kafka"]["environment"]
    advertised = dict(listener.split("://") for listener in kafka["KAFKA_ADVERTISED_LISTENERS"].split(","))
    listening = dict(listener.split("://") for listener in kafka["KAFKA_LISTENERS"].split(","))
    assert advertised["INTERNAL"] == services["evaluator"]["environment"]["ALERTING_KAFKA_BOOTSTRAP"]
    # The host's clients use the settings' default bootstrap, as with the local stack.
    assert advertised["HOST"] == StackSettings.model_fields["kafka_bootstrap"].default
    # The host's port is published from the HOST listener's port in the container.
    host_port = default_port("kafka_bootstrap")
    assert f"127.0.0.1:{host_port}:{listening['HOST'].lstrip(':')}" in services["kafka"]["ports"]


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
    # The webhook-sink stands for a tenant's endpoint: the local platform runs one, compose does not.
    assert {name: int(port) for name, port in entries.items()} == {
        **{name: ports.METRICS_PORTS[name] for name in APP_SERVICES}, "webhook-sink": ports.WEBHOOK_SINK_METRICS_PORT
    }


def test_the_local_stack_listens_on_the_same_ports() -> None:
    script = Path("deploy/local-stack").read_text()
    defaults = dict(re.findall(r'^(\w+_port)="\$\{ALERTING_\w+:-(\d+)\}"$', script, flags=re.M))
    assert (defaults["kafka_sasl_port"], defaults["pg_port"], defaults["redis_tls_port"]) == (
        str(ports.KAFKA_PORT), str(ports.POSTGRES_PORT), str(ports.REDIS_PORT))


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


# ---------------------------------------------------------------- credentials
def credential_lines() -> list[tuple[str, int, str, str]]:
    """deploy/compose/credentials.txt: (volume, owner uid, file, source in the store) per line."""
    lines = [line.split() for line in CREDENTIALS.read_text().splitlines()]
    return [(fields[0], int(fields[1]), fields[2], fields[3]) for fields in lines if fields and fields[0][0] != "#"]


def volume_files() -> dict[str, dict[str, str]]:
    """Each credentials volume: its files and their sources in the store."""
    files: dict[str, dict[str, str]] = {}
    for volume, _, file, source in credential_lines():
        files.setdefault(volume, {})[file] = source
    return files


def named_mounts(service: dict[str, Any]) -> dict[str, str]:
    """The named volumes a service mounts: volume -> its path in the container."""
    mounts = {}
    for mount in service.get("volumes", []):
        source, target, *_ = mount.split(":")
        if not source.startswith((".", "/")):
            mounts[source] = target
    return mounts


def own_files(service: dict[str, Any]) -> dict[str, str]:
    """The credential files a container can read: its path -> the store's file it is a copy of."""
    files = volume_files()
    return {f"{target}/{file}": source for volume, target in named_mounts(service).items()
            for file, source in files.get(volume, {}).items()}


def secret_settings(environment: dict[str, Any]) -> dict[str, str]:
    """The settings that name a file (`*_FILE`, Grafana's `*__FILE`) -> the file."""
    return {name: str(value) for name, value in environment.items() if name.endswith("_FILE")}


def test_each_container_mounts_its_own_credentials_volume_and_no_other() -> None:
    compose = load_compose()
    services = compose["services"]
    volumes = set(volume_files())
    assert volumes <= set(compose["volumes"])
    # The job writes every volume and alone mounts the store.
    job = services["credentials"]
    assert job["entrypoint"] == ["/app/deploy/compose/credentials", "/store", "/volumes"]
    assert named_mounts(job) == {"credentials": "/store", **{volume: f"/volumes/{volume}" for volume in volumes}}
    readers: dict[str, list[str]] = {}
    for name, service in services.items():
        if name == "credentials":
            continue
        for volume in named_mounts(service):
            assert volume != "credentials", f"{name} mounts the store of every secret"
            if volume in volumes:
                readers.setdefault(volume, []).append(name)
                mount = f"{volume}:{named_mounts(service)[volume]}:ro"
                assert mount in service["volumes"], f"{name}: {volume} not read-only"
    # <name>-credentials is read by <name> alone: no volume of secrets is shared.
    assert readers == {volume: [volume.removesuffix("-credentials")] for volume in volumes}


def test_every_secret_setting_names_a_file_of_the_containers_own_volume_and_none_holds_a_secret() -> None:
    for name, service in load_compose()["services"].items():
        environment = service.get("environment", {})
        for setting, path in secret_settings(environment).items():
            assert path in own_files(service), f"{name}: {setting}={path} is not one of its own credentials"
        in_the_clear = [setting for setting in environment if not setting.endswith("_FILE")
                        and re.search(r"PASSWORD|SECRET|_KEY$", setting)]
        assert in_the_clear == [], f"{name}: secrets in the environment"


def test_the_ca_key_stays_in_the_credentials_job_and_each_server_holds_only_its_own_key() -> None:
    keys = {(volume, source) for volume, files in volume_files().items() for source in files.values()
            if (source.startswith("tls/") and source.endswith(".key")) or source in ("ca.key", "kafka/keystore.pem")}
    assert keys == {("rule-service-credentials", "tls/rule-service.key"), ("redis-credentials", "tls/redis.key"),
                    ("kafka-credentials", "kafka/keystore.pem")}
    services = load_compose()["services"]
    assert own_files(services["rule-service"])["/credentials/server.key"] == "tls/rule-service.key"
    for name, service in services.items():
        if name != "credentials":
            assert "ca.key" not in own_files(service).values(), name


def test_the_snapshot_key_is_given_to_the_rule_updater_and_the_evaluator_only() -> None:
    holders = {volume for volume, files in volume_files().items() if "rule-snapshot.key" in files.values()}
    assert holders == {"rule-updater-credentials", "evaluator-credentials"}
    services = load_compose()["services"]
    for name, service in services.items():
        path = service.get("environment", {}).get("ALERTING_RULE_SNAPSHOT_KEY_FILE")
        if name in ("rule-updater", "evaluator"):
            assert own_files(service)[path] == "rule-snapshot.key", name
        else:
            assert path is None, name


def test_the_rule_service_serves_tls_and_its_clients_trust_the_ca_and_bring_the_admin_key() -> None:
    services = load_compose()["services"]
    server = services["rule-service"]
    settings = server["environment"]
    assert "ALERTING_RULE_SERVICE_TLS" not in settings  # TLS unless told otherwise
    files = own_files(server)
    assert [files[settings[name]] for name in (
        "ALERTING_TLS_CERT_FILE", "ALERTING_TLS_KEY_FILE", "ALERTING_BOOTSTRAP_ADMIN_KEY_FILE")] == [
        "tls/rule-service.pem", "tls/rule-service.key", "admin.key"]
    for name in ("demo", "alertctl"):
        client = services[name]["environment"]
        assert [own_files(services[name])[client[setting]] for setting in (
            "ALERTING_TLS_CA_FILE", "ALERTING_API_KEY_FILE")] == ["ca.pem", "admin.key"], name


# ---------------------------------------------------------------- Kafka
def broker_properties(environment: dict[str, Any]) -> dict[str, str]:
    """server.properties as the apache/kafka image makes it from KAFKA_* variables (`_` is `.`,
    `__` is `_`, `___` is `-`), after compose's own unescaping of `$$`."""
    properties = {}
    for name, value in environment.items():
        if name.startswith("KAFKA_"):
            key = name.removeprefix("KAFKA_").lower().replace("_", ".").replace("...", "-").replace("..", "_")
            properties[key] = str(value).replace("$$", "$")
    return properties


def listeners(value: str) -> dict[str, str]:
    return dict(listener.split("://") for listener in value.split(","))


def test_kafka_has_no_plaintext_listener_and_the_local_stacks_authorizer() -> None:
    kafka = load_compose()["services"]["kafka"]
    broker = broker_properties(kafka["environment"])
    protocols = dict(entry.split(":") for entry in broker["listener.security.protocol.map"].split(","))
    assert protocols == {"CONTROLLER": "SASL_SSL", "INTERNAL": "SASL_SSL", "HOST": "SASL_SSL"}
    assert set(listeners(broker["listeners"])) == set(protocols)
    assert set(listeners(broker["advertised.listeners"])) == {"INTERNAL", "HOST"}
    # The image's start script treats a listener named *SSL or SASL_* as its own JKS/JAAS setup.
    assert not re.search(r"SSL://|SASL_", broker["advertised.listeners"])
    # Clients: SCRAM only from the host; the broker's PLAIN login inside too, and on the controller.
    assert {name: broker[f"listener.name.{name.lower()}.sasl.enabled.mechanisms"] for name in protocols} == {
        "HOST": "SCRAM-SHA-512", "INTERNAL": "SCRAM-SHA-512,PLAIN", "CONTROLLER": "PLAIN"}
    assert (broker["sasl.mechanism.inter.broker.protocol"], broker["sasl.mechanism.controller.protocol"]) == (
        "PLAIN", "PLAIN")
    local_stack = dict(re.findall(r"^(authorizer\.class\.name|super\.users|allow\.everyone\.if\.no\.acl\.found)=(.*)$",
                                  Path("deploy/local-stack").read_text(), flags=re.M))
    assert len(local_stack) == 3
    assert {key: broker[key] for key in local_stack} == local_stack


def test_the_brokers_own_login_is_read_from_its_volume_never_written_in_compose() -> None:
    kafka = load_compose()["services"]["kafka"]
    broker = broker_properties(kafka["environment"])
    files = own_files(kafka)
    assert broker["config.providers"] == "dir"
    assert broker["config.providers.dir.class"] == "org.apache.kafka.common.config.provider.DirectoryConfigProvider"
    password = "${dir:/etc/kafka/secrets:broker.password}"
    assert files["/etc/kafka/secrets/broker.password"] == "kafka/broker.password"
    for listener in ("internal", "controller"):
        assert broker[f"listener.name.{listener}.plain.sasl.jaas.config"] == (
            'org.apache.kafka.common.security.plain.PlainLoginModule required username="broker" '
            f'password="{password}" user_broker="{password}";')
    assert [files[broker[key]] for key in ("ssl.keystore.location", "ssl.truststore.location")] == [
        "kafka/keystore.pem", "ca.pem"]
    assert (broker["ssl.keystore.type"], broker["ssl.truststore.type"]) == ("PEM", "PEM")


def entries(path: str) -> list[list[str]]:
    """A list file of deploy/: its lines' fields, without comments."""
    lines = [line.split("#")[0].split() for line in Path(path).read_text().splitlines()]
    return [fields for fields in lines if fields]


def test_kafka_setup_makes_the_local_stacks_users_acls_and_topics() -> None:
    setup = load_compose()["services"]["kafka-setup"]
    mounts = {mount.split(":")[0]: mount.split(":")[1] for mount in setup["volumes"]}
    # The very files deploy/local-stack up reads, where the script reads them.
    for path in ("deploy/topics.txt", "deploy/kafka/scram-users.txt", "deploy/kafka/acls.txt",
                 "deploy/compose/kafka-setup"):
        assert mounts[f"./{path}"] == f"/{path}", path
    assert setup["entrypoint"] == ["bash", "/deploy/compose/kafka-setup"]
    users = {fields[0] for fields in entries("deploy/kafka/scram-users.txt")}
    files = own_files(setup)
    assert {path: source for path, source in files.items() if path.endswith(".password")} == {
        f"/etc/kafka/secrets/{user}.password": f"kafka/{user}.password" for user in users}
    assert files["/etc/kafka/secrets/broker-client.properties"] == "kafka/broker-client.properties"


# Who logs in as which principal: one per program, as deploy/platform runs them.
KAFKA_PRINCIPALS = {"rule-service": "rule-service", "rule-updater": "rule-updater", "evaluator": "evaluator",
                    "aggregator": "aggregator", "sender": "sender", "demo": "producer", "alert-producer": "producer"}


def test_every_kafka_client_logs_in_as_its_own_principal_over_sasl_ssl() -> None:
    services = load_compose()["services"]
    clients = {name for name, service in services.items()
               if any(setting.startswith("ALERTING_KAFKA_") for setting in service.get("environment", {}))}
    assert clients == set(KAFKA_PRINCIPALS)
    users = {fields[0] for fields in entries("deploy/kafka/scram-users.txt")}
    for name, principal in KAFKA_PRINCIPALS.items():
        settings, files = services[name]["environment"], own_files(services[name])
        assert principal in users, name
        assert (settings["ALERTING_KAFKA_BOOTSTRAP"], settings["ALERTING_KAFKA_SECURITY_PROTOCOL"],
                settings["ALERTING_KAFKA_SASL_USERNAME"]) == (
            f"kafka:{ports.COMPOSE_KAFKA_PORT}", "SASL_SSL", principal), name
        assert files[settings["ALERTING_KAFKA_SASL_PASSWORD_FILE"]] == f"kafka/{principal}.password", name
        assert files[settings["ALERTING_KAFKA_SSL_CA_FILE"]] == "ca.pem", name
    replay = services["rule-service"]["environment"]
    assert replay["ALERTING_DEAD_LETTER_REPLAY_KAFKA_SASL_USERNAME"] == "dead-letter-replay"
    replay_password = replay["ALERTING_DEAD_LETTER_REPLAY_KAFKA_SASL_PASSWORD_FILE"]
    assert own_files(services["rule-service"])[replay_password] == "kafka/dead-letter-replay.password"


# ---------------------------------------------------------------- Postgres
# The roles each service logs in as (migrations/MIGRATION_STRATEGY.md, "Roles").
DATABASE_ROLES = {"rule-service": {"CONTROL_PLANE", "NOTIFICATION_ADMIN"}, "rule-updater": {"RULE_READER"},
                  "evaluator": {"RULE_READER"}, "aggregator": {"DATA_PLANE"}, "sender": {"DATA_PLANE"},
                  "migrate": {"MIGRATION", "CONTROL_PLANE", "RULE_READER", "DATA_PLANE", "NOTIFICATION_ADMIN"}}


def role_of(setting: str) -> str | None:
    found = re.fullmatch(r"ALERTING_(\w+)_DATABASE_PASSWORD_FILE", setting)
    return found.group(1) if found else None


def test_no_service_logs_in_to_postgres_as_the_owner() -> None:
    services = load_compose()["services"]
    owner = urlsplit(str(StackSettings.model_fields["database_url"].default)).username
    for name, service in services.items():
        settings = service.get("environment", {})
        assert "ALERTING_DATABASE_PASSWORD" not in settings and "ALERTING_DATABASE_PASSWORD_FILE" not in settings, name
        roles = {role for role in map(role_of, settings) if role}
        assert roles == DATABASE_ROLES.get(name, set()), name
        for role in roles:
            source = "alerting_migrator" if role == "MIGRATION" else f"alerting_{role.lower()}"
            path = settings[f"ALERTING_{role}_DATABASE_PASSWORD_FILE"]
            assert own_files(service)[path] == f"postgres/{source}.password", (name, role)
        url = urlsplit(settings.get("ALERTING_DATABASE_URL", "postgresql://postgres:5432/alerting"))
        assert (url.hostname, url.port, url.password) == ("postgres", ports.POSTGRES_PORT, None), name
        # migrate names the owner it acts as (-c role=alerting), without its password; no one else names it.
        assert url.username == (owner if name == "migrate" else None), name


def test_postgres_has_a_generated_super_user_password_no_trust_and_the_local_stacks_roles() -> None:
    postgres = load_compose()["services"]["postgres"]
    settings, files = postgres["environment"], own_files(postgres)
    assert files[settings["POSTGRES_PASSWORD_FILE"]] == "postgres/postgres.password"
    assert "POSTGRES_USER" not in settings  # the super user is `postgres`, whom peer maps to its OS user
    assert settings["POSTGRES_HOST_AUTH_METHOD"] == "scram-sha-256"
    assert settings["POSTGRES_INITDB_ARGS"].split() == ["--auth-local=peer", "--auth-host=scram-sha-256"]
    assert "./deploy/compose/postgres-init.sql:/docker-entrypoint-initdb.d/roles.sql:ro" in postgres["volumes"]
    init = Path("deploy/compose/postgres-init.sql").read_text()
    read = dict(re.findall(r"^\\set (\w+) `cat (\S+)`$", init, flags=re.M))
    assert {variable: files[path] for variable, path in read.items()} == {
        "owner_password": "postgres/alerting.password", "migrator_password": "postgres/alerting_migrator.password"}
    statements = [line for line in init.splitlines() if line and not line.startswith(("--", "\\"))]
    assert statements == [
        "SET client_min_messages = warning;",
        "CREATE ROLE alerting LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'owner_password';",
        "CREATE ROLE alerting_migrator LOGIN NOSUPERUSER NOCREATEDB CREATEROLE PASSWORD :'migrator_password';",
        "GRANT alerting TO alerting_migrator;",
        "CREATE DATABASE alerting OWNER alerting;",
    ]


# ---------------------------------------------------------------- Redis, Grafana
def test_redis_serves_tls_only_to_its_acl_users() -> None:
    services = load_compose()["services"]
    redis = services["redis"]
    command, files = redis["command"], own_files(redis)
    options = dict(zip(command[1::2], command[2::2], strict=True))
    assert command[0] == "redis-server"
    assert (options["--port"], options["--tls-port"], options["--tls-auth-clients"]) == (
        "0", str(default_port("redis_url")), "no")
    assert [files[options[option]] for option in ("--tls-cert-file", "--tls-key-file", "--tls-ca-cert-file",
                                                  "--aclfile")] == [
        "tls/redis.pem", "tls/redis.key", "ca.pem", "redis/users.acl"]
    clients = {name for name, service in services.items()
               if any(setting.startswith("ALERTING_REDIS_") for setting in service.get("environment", {}))}
    assert clients == {"rule-updater", "evaluator"}
    users = {fields[0] for fields in entries("deploy/redis/users.acl")}
    for name in clients:
        settings, files = services[name]["environment"], own_files(services[name])
        assert settings["ALERTING_REDIS_URL"] == f"rediss://redis:{default_port('redis_url')}/0", name
        assert settings["ALERTING_REDIS_USERNAME"] == name and name in users
        assert files[settings["ALERTING_REDIS_PASSWORD_FILE"]] == f"redis/{name}.password", name
        assert files[settings["ALERTING_REDIS_CA_FILE"]] == "ca.pem", name


def test_grafana_asks_for_a_generated_admin_password_and_lets_no_one_in_anonymously() -> None:
    grafana = load_compose()["services"]["grafana"]
    settings = grafana["environment"]
    assert own_files(grafana)[settings["GF_SECURITY_ADMIN_PASSWORD__FILE"]] == "grafana/admin.password"
    assert "GF_SECURITY_ADMIN_PASSWORD" not in settings
    assert (settings["GF_AUTH_ANONYMOUS_ENABLED"], settings["GF_USERS_ALLOW_SIGN_UP"]) == ("false", "false")
    assert not [setting for setting in settings if setting.startswith("GF_AUTH_ANONYMOUS_") and
                setting != "GF_AUTH_ANONYMOUS_ENABLED"]


def test_the_image_carries_what_the_credentials_job_reads() -> None:
    dockerfile = Path("deploy/docker/Dockerfile").read_text()
    for path in ("deploy/compose/credentials", "deploy/compose/credentials.txt", "deploy/redis/users.acl"):
        assert re.search(rf"^COPY (--chmod=755 )?{re.escape(path)} /app/{re.escape(path)}$", dockerfile, re.M), path


# ---------------------------------------------------------------- the credentials job itself
def run_credentials_job(store: Path, volumes: Path) -> None:
    # The admin key is made by the rule-service's PEX inside the image; here it is given.
    store.mkdir(exist_ok=True)
    (store / "admin.key").write_text("ak_compose0test.not-a-real-secret\n")
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/bin", "/bin"])
    result = subprocess.run(["bash", "deploy/compose/credentials", str(store), str(volumes)], capture_output=True,
                            text=True, timeout=120, env={"PATH": path})
    assert result.returncode == 0, result.stderr


def verifies(ca: Path, certificate: Path, host: str) -> bool:
    check = ["openssl", "verify", "-CAfile", str(ca), "-verify_hostname", host, str(certificate)]
    return subprocess.run(check, capture_output=True, timeout=30).returncode == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="giving files to other users needs root")
@pytest.mark.skipif(shutil.which("openssl", path="/usr/bin:/bin") is None, reason="needs openssl")
def test_the_credentials_job_gives_each_volume_exactly_its_files_readable_by_its_user_alone(tmp_path: Path) -> None:
    store, volumes = tmp_path / "store", tmp_path / "volumes"
    run_credentials_job(store, volumes)
    owners = {volume: owner for volume, owner, _, _ in credential_lines()}
    assert {path.name for path in volumes.iterdir()} == set(owners)
    for volume, files in volume_files().items():
        folder = volumes / volume
        assert (folder.stat().st_uid, stat.S_IMODE(folder.stat().st_mode)) == (owners[volume], 0o500), volume
        assert {path.name for path in folder.iterdir()} == set(files), volume
        for file, source in files.items():
            given = (folder / file).stat()
            assert (given.st_uid, stat.S_IMODE(given.st_mode)) == (owners[volume], 0o400), (volume, file)
            assert (folder / file).read_bytes() == (store / source).read_bytes(), (volume, file)
    ca_key = (store / "ca.key").read_bytes()
    assert not [path for path in volumes.rglob("*") if path.is_file() and ca_key in path.read_bytes()]
    for server in ("rule-service", "kafka", "redis"):
        assert verifies(store / "ca.pem", store / "tls" / f"{server}.pem", server), server
        assert verifies(store / "ca.pem", store / "tls" / f"{server}.pem", "localhost"), server
    assert not verifies(store / "ca.pem", store / "tls" / "redis.pem", "kafka")


@pytest.mark.skipif(os.geteuid() != 0, reason="giving files to other users needs root")
@pytest.mark.skipif(shutil.which("openssl", path="/usr/bin:/bin") is None, reason="needs openssl")
def test_the_credentials_job_makes_secrets_once_and_redis_holds_only_their_hashes(tmp_path: Path) -> None:
    store, volumes = tmp_path / "store", tmp_path / "volumes"
    run_credentials_job(store, volumes)
    first = {path: path.read_bytes() for path in store.rglob("*") if path.is_file()}
    (volumes / "sender-credentials" / "stale.password").write_text("a file no longer listed")
    run_credentials_job(store, volumes)
    assert {path: path.read_bytes() for path in store.rglob("*") if path.is_file()} == first
    assert not (volumes / "sender-credentials" / "stale.password").exists()
    passwords = {path.read_text() for path in store.rglob("*.password")}
    assert all(re.fullmatch(r"[0-9a-f]{64}", password) for password in passwords)  # no newline: read whole
    assert len(passwords) == len(list(store.rglob("*.password")))
    acl = (store / "redis" / "users.acl").read_text().splitlines()
    hashes = {user: hashlib.sha256((store / "redis" / f"{user}.password").read_bytes()).hexdigest()
              for user, *_ in entries("deploy/redis/users.acl")}
    assert acl == ["user default off"] + [f"user {user} reset on #{hashes[user]} {' '.join(rules)}"
                                          for user, *rules in entries("deploy/redis/users.acl")]
    client = (store / "kafka" / "broker-client.properties").read_text()
    assert f'password="{(store / "kafka" / "broker.password").read_text()}";' in client
    keystore = (store / "kafka" / "keystore.pem").read_text()
    assert keystore.startswith("-----BEGIN PRIVATE KEY-----") and keystore.endswith(
        (store / "tls" / "kafka.pem").read_text())
