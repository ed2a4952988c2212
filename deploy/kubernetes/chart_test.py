"""The Helm chart (deploy/kubernetes/alerting): `helm lint`, its rendering validated against the
Kubernetes schemas by kubeconform (deploy/kubernetes/tools installs both on first use), and what
it renders: every service from compose's image and PEX, the workers as static group members
named by their pods, probes on the ports of common/ports.py, every secret a file that a real
setting names, the topics of deploy/topics.txt with 3 replicas and min.insync.replicas 2, a
disruption budget per service, the migrations and topics as hooks, CPU from the measured cost."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import SecretStr

from alerting.common import ports
from alerting.common.settings import (
    AggregatorSettings,
    AlertingSettings,
    EvaluatorSettings,
    MigrateSettings,
    RuleServiceSettings,
    RuleUpdaterSettings,
    SenderSettings,
)

TOOLS = Path("deploy/kubernetes/tools")
CHART = "deploy/kubernetes/alerting"
WORKERS = ("rule-updater", "evaluator", "aggregator", "sender")
SERVICES = ("rule-service", *WORKERS)
SETTINGS: dict[str, type[AlertingSettings]] = {
    "rule-service": RuleServiceSettings, "rule-updater": RuleUpdaterSettings, "evaluator": EvaluatorSettings,
    "aggregator": AggregatorSettings, "sender": SenderSettings, "migrate": MigrateSettings,
}


def tools(*args: str) -> subprocess.CompletedProcess[str]:
    """deploy/kubernetes/tools ARGS (installing Helm, kubeconform and the schemas on first use)."""
    # The test sandbox may run with a bare PATH: the script adds Go's and Debian's folders.
    environment = {name: os.environ[name] for name in ("HOME", "PATH", "ALERTING_TOOLS_CACHE", "XDG_CACHE_HOME")
                   if name in os.environ}
    return subprocess.run(["bash", str(TOOLS), *args], capture_output=True, text=True, timeout=3000,
                          env=environment)


def render(*options: str) -> list[dict[str, Any]]:
    result = tools("helm", "template", "alerting", CHART, *options)
    assert result.returncode == 0, result.stderr
    return [document for document in yaml.safe_load_all(result.stdout) if document]


def by_kind(documents: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {document["metadata"]["name"]: document for document in documents if document["kind"] == kind}


def workloads(documents: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each service's Deployment or StatefulSet, by service."""
    return {document["metadata"]["labels"]["app.kubernetes.io/name"]: document for document in documents
            if document["kind"] in ("Deployment", "StatefulSet")}


def jobs(documents: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {name.removeprefix("alerting-"): job for name, job in by_kind(documents, "Job").items()}


def container(workload: dict[str, Any]) -> dict[str, Any]:
    [only] = workload["spec"]["template"]["spec"]["containers"]
    return only


def env(workload: dict[str, Any]) -> dict[str, Any]:
    """The container's environment: name -> value, or the valueFrom of one that has it."""
    return {item["name"]: item.get("value", item.get("valueFrom")) for item in container(workload)["env"]}


def credential_files(workload: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """The files of the pod's /credentials volume -> (Secret, key)."""
    volumes = {volume["name"]: volume for volume in workload["spec"]["template"]["spec"]["volumes"]}
    return {item["path"]: (source["secret"]["name"], item["key"])
            for source in volumes["credentials"]["projected"]["sources"] for item in source["secret"]["items"]}


@pytest.fixture(scope="module")
def documents() -> list[dict[str, Any]]:
    return render()


def test_helm_lint_and_kubeconform_accept_the_chart_for_each_supported_kubernetes() -> None:
    result = tools("check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout
    # 5 services × (workload, Service, PDB), the migration Job, the topics' ConfigMap and Job; per version.
    summary = "Summary: 18 resources found parsing stdin - Valid: 18, Invalid: 0, Errors: 0, Skipped: 0"
    assert result.stdout.count(summary) == 2, result.stdout


def test_kubeconform_refuses_what_the_schemas_do_not_allow() -> None:
    """The schemas are read and strict: an unknown field and a wrongly typed one are refused."""
    manifest = yaml.safe_dump({
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "x"},
        "spec": {"maxUnavailable": 1, "minReady": 2, "selector": {"matchLabels": {"a": "b"}}},
    }) + "---\n" + yaml.safe_dump({
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "y"}, "spec": {"replicas": "three"},
    })
    checked = subprocess.run(
        ["bash", str(TOOLS), "kubeconform", "-strict", "-summary", "-kubernetes-version", "1.30.0"],
        input=manifest, capture_output=True, text=True, timeout=3000,
        env={name: os.environ[name] for name in ("HOME", "PATH") if name in os.environ})
    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert "additional properties 'minReady' not allowed" in checked.stdout, checked.stdout
    assert "Valid: 0, Invalid: 2, Errors: 0, Skipped: 0" in checked.stdout, checked.stdout


def test_every_service_runs_the_pex_compose_runs_from_the_same_image(documents: list[dict[str, Any]]) -> None:
    compose = yaml.safe_load(Path("docker-compose.yml").read_text())["services"]
    runs = {name: container(workload) for name, workload in {**workloads(documents), **jobs(documents)}.items()}
    assert set(runs) == {*SERVICES, "migrate", "topics"}
    for name in (*SERVICES, "migrate"):
        assert runs[name]["image"] == compose[name]["image"] == "alerting-platform:local", name
        assert runs[name]["command"] == compose[name]["command"], name
    assert runs["topics"]["image"] == compose["kafka-setup"]["image"]


def test_workers_are_statefulsets_whose_pod_name_is_the_instance_id(documents: list[dict[str, Any]]) -> None:
    services = by_kind(documents, "Service")
    for name, workload in workloads(documents).items():
        settings = env(workload)
        if name == "rule-service":
            assert workload["kind"] == "Deployment"
            assert "ALERTING_INSTANCE_ID" not in settings
            assert services["alerting-rule-service"]["spec"]["ports"][1] == {
                "name": "grpc", "port": ports.RULE_SERVICE_GRPC_PORT, "targetPort": "grpc"}
            continue
        assert workload["kind"] == "StatefulSet", name
        assert settings["ALERTING_INSTANCE_ID"] == {"fieldRef": {"fieldPath": "metadata.name"}}, name
        assert workload["spec"]["serviceName"] == f"alerting-{name}"
        assert services[f"alerting-{name}"]["spec"]["clusterIP"] == "None"
    assert sorted(workloads(documents)) == sorted(SERVICES)


def test_every_service_is_probed_on_livez_and_readyz_at_its_metrics_port(documents: list[dict[str, Any]]) -> None:
    for name, workload in workloads(documents).items():
        main = container(workload)
        assert main["ports"][0] == {"name": "metrics", "containerPort": ports.METRICS_PORTS[name]}, name
        assert env(workload)["ALERTING_METRICS_PORT"] == str(ports.METRICS_PORTS[name])
        assert env(workload)["ALERTING_LISTEN_HOST"] == "0.0.0.0"
        assert main["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "metrics"}, name
        assert main["startupProbe"]["httpGet"] == {"path": "/livez", "port": "metrics"}, name
        assert main["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}, name


# The secret settings each service and job is given, and their files in its /credentials.
SECRETS = {
    "rule-service": {
        "kafka_sasl_password": "kafka-rule-service.password",
        "dead_letter_replay_kafka_sasl_password": "kafka-dead-letter-replay.password",
        "control_plane_database_password": "database-control-plane.password",
        "notification_admin_database_password": "database-notification-admin.password",
        "bootstrap_admin_key": "admin.key",
    },
    "rule-updater": {
        "kafka_sasl_password": "kafka-rule-updater.password",
        "rule_reader_database_password": "database-rule-reader.password",
        "redis_password": "redis-rule-updater.password", "rule_snapshot_key": "rule-snapshot.key",
    },
    "evaluator": {
        "kafka_sasl_password": "kafka-evaluator.password",
        "rule_reader_database_password": "database-rule-reader.password",
        "redis_password": "redis-evaluator.password", "rule_snapshot_key": "rule-snapshot.key",
    },
    "aggregator": {"kafka_sasl_password": "kafka-aggregator.password",
                   "data_plane_database_password": "database-data-plane.password"},
    "sender": {"kafka_sasl_password": "kafka-sender.password",
               "data_plane_database_password": "database-data-plane.password"},
    "migrate": {
        "migration_database_password": "database-migration.password",
        "control_plane_database_password": "database-control-plane.password",
        "rule_reader_database_password": "database-rule-reader.password",
        "data_plane_database_password": "database-data-plane.password",
        "notification_admin_database_password": "database-notification-admin.password",
    },
}
# The files that are no secret but a path setting names: the CAs, the rule-service's certificate.
PATH_SETTINGS = {
    "rule-service": {"kafka_ssl_ca_file": "kafka-ca.pem", "tls_cert_file": "rule-service.crt",
                     "tls_key_file": "rule-service.key"},
    "rule-updater": {"kafka_ssl_ca_file": "kafka-ca.pem", "redis_ca_file": "redis-ca.pem"},
    "evaluator": {"kafka_ssl_ca_file": "kafka-ca.pem", "redis_ca_file": "redis-ca.pem"},
    "aggregator": {"kafka_ssl_ca_file": "kafka-ca.pem"},
    "sender": {"kafka_ssl_ca_file": "kafka-ca.pem"},
    "migrate": {},
}


def is_secret(settings: type[AlertingSettings], field: str) -> bool:
    return SecretStr in (settings.model_fields[field].annotation, *getattr(
        settings.model_fields[field].annotation, "__args__", ()))


# With smtp.password (and its user), the sender logs in to the relay with a password file too.
SMTP_LOGIN = ("--set", "smtp.username=alerts", "--set", "smtp.password=true")


@pytest.mark.parametrize(("options", "secrets"), [
    ((), SECRETS),
    (SMTP_LOGIN, {**SECRETS, "sender": {**SECRETS["sender"], "smtp_password": "smtp.password"}}),
], ids=["default", "smtp-login"])
def test_every_secret_is_a_file_of_the_pods_own_that_a_real_setting_reads(
    options: tuple[str, ...], secrets: dict[str, dict[str, str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each pod mounts exactly its own files, read-only; each `*_FILE` the chart sets is the
    file form of a secret setting of the service's settings, or a path setting; reading the
    settings with those files in place gives each secret its file's content; no secret is a value."""
    documents = render(*options)
    pods = {**workloads(documents), **{name: job for name, job in jobs(documents).items() if name == "migrate"}}
    for name, workload in pods.items():
        settings_class, settings = SETTINGS[name], env(workload)
        files = credential_files(workload)
        wanted = {**secrets[name], **PATH_SETTINGS[name]}
        assert set(files) == {*wanted.values(), "postgres-ca.pem"}, name
        assert files == {file: ("alerting-credentials", file) for file in files}, name
        mounts = container(workload)["volumeMounts"]
        assert {"name": "credentials", "mountPath": "/credentials", "readOnly": True} in mounts, name
        assert "secretKeyRef" not in str(workload) and "envFrom" not in str(workload), name

        # Only the pod's settings: pants.toml gives the tests the local stack's.
        for variable in [variable for variable in os.environ if variable.startswith("ALERTING_")]:
            monkeypatch.delenv(variable)
        folder = tmp_path / name
        folder.mkdir()
        for file in files:
            (folder / file).write_text(f"{file} of {name}\n")
        for variable, value in settings.items():
            key = variable.removeprefix("ALERTING_").lower()
            assert key in settings_class.model_fields or (
                key.endswith("_file") and is_secret(settings_class, key.removesuffix("_file"))), f"{name}: {variable}"
            assert not (key in settings_class.model_fields and is_secret(settings_class, key)), f"{name}: {variable}"
            if isinstance(value, str):
                monkeypatch.setenv(variable, value.replace("/credentials/", f"{folder}/"))
        loaded = settings_class()
        given = {field for field in settings_class.model_fields
                 if is_secret(settings_class, field) and getattr(loaded, field) is not None}
        assert given == set(secrets[name]), name
        for field, file in secrets[name].items():
            assert getattr(loaded, field).get_secret_value() == f"{file} of {name}", f"{name}: {field}"
        for field, file in PATH_SETTINGS[name].items():
            assert getattr(loaded, field) == f"{folder}/{file}", f"{name}: {field}"


def test_each_service_logs_in_as_its_own_principal_role_and_user(documents: list[dict[str, Any]]) -> None:
    for name, workload in workloads(documents).items():
        settings = env(workload)
        assert settings["ALERTING_KAFKA_SASL_USERNAME"] == name
        assert settings["ALERTING_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
        assert settings["ALERTING_DATABASE_URL"] == (
            "postgresql://postgres.example:5432/alerting?sslmode=verify-full&sslrootcert=/credentials/postgres-ca.pem")
        assert settings.get("ALERTING_REDIS_USERNAME") == (name if name in ("rule-updater", "evaluator") else None)
    migrate = env(jobs(documents)["migrate"])
    assert migrate["ALERTING_DATABASE_URL"] == (
        "postgresql://alerting@postgres.example:5432/alerting?sslmode=verify-full&sslrootcert=/credentials/postgres-ca.pem")


def test_a_credential_can_come_from_another_secret_and_the_cas_can_be_left_to_the_system() -> None:
    documents = render("--set-json", 'credentials.from={"rule-service.crt": {"secret": "tls", "key": "tls.crt"}}',
                       "--set", "kafka.ca=false", "--set", "redis.ca=false", "--set", "postgres.ca=false",
                       "--set", "postgres.sslMode=", "--set", "ruleService.bootstrapAdminKey=false")
    rule_service = workloads(documents)["rule-service"]
    assert credential_files(rule_service) == {
        "kafka-rule-service.password": ("alerting-credentials", "kafka-rule-service.password"),
        "database-control-plane.password": ("alerting-credentials", "database-control-plane.password"),
        "database-notification-admin.password": ("alerting-credentials", "database-notification-admin.password"),
        "kafka-dead-letter-replay.password": ("alerting-credentials", "kafka-dead-letter-replay.password"),
        "rule-service.crt": ("tls", "tls.crt"),
        "rule-service.key": ("alerting-credentials", "rule-service.key"),
    }
    settings = env(rule_service)
    assert "ALERTING_KAFKA_SSL_CA_FILE" not in settings and "ALERTING_BOOTSTRAP_ADMIN_KEY_FILE" not in settings
    assert settings["ALERTING_DATABASE_URL"] == "postgresql://postgres.example:5432/alerting"
    assert "ALERTING_REDIS_CA_FILE" not in env(workloads(documents)["evaluator"])


def test_a_setting_named_like_a_secret_is_refused_as_a_value() -> None:
    result = tools("helm", "template", "alerting", CHART, "--set", "services.evaluator.env.ALERTING_REDIS_PASSWORD=x")
    assert result.returncode == 1
    refusal = "ALERTING_REDIS_PASSWORD looks like a secret: give it as a file (ALERTING_REDIS_PASSWORD_FILE)"
    assert refusal in result.stderr


def test_an_smtp_password_without_its_user_is_refused() -> None:
    result = tools("helm", "template", "alerting", CHART, "--set", "smtp.password=true")
    assert result.returncode == 1
    assert "smtp.password is the password of smtp.username: set smtp.username too" in result.stderr


def topics_file() -> list[tuple[str, int, str]]:
    entries = []
    for line in Path("deploy/topics.txt").read_text().splitlines():
        fields = line.split("#", 1)[0].split()
        if fields:
            entries.append((fields[0], int(fields[1]), fields[2] if len(fields) > 2 else ""))
    return entries


def test_the_topics_of_deploy_topics_txt_are_made_with_3_replicas_and_min_insync_2(
    documents: list[dict[str, Any]]
) -> None:
    [config_map] = by_kind(documents, "ConfigMap").values()
    made = [tuple(line.split()) for line in config_map["data"]["topics.txt"].splitlines() if line.strip()]
    assert made == [(name, str(partitions), ",".join(["min.insync.replicas=2", *filter(None, [configs])]))
                    for name, partitions, configs in topics_file()]
    job = jobs(documents)["topics"]
    assert env(job)["REPLICATION_FACTOR"] == "3"
    assert container(job)["command"] == ["bash", "/config/create-topics"]
    properties = config_map["data"]["client.properties"]
    assert 'username="admin" password="${dir:/login:password}"' in properties
    assert "ssl.truststore.location=/credentials/kafka-ca.pem" in properties
    assert credential_files(job) == {file: ("alerting-credentials", file)
                                     for file in ("kafka-topic-admin.password", "kafka-ca.pem")}


def test_migrations_and_topics_run_before_the_services_on_install_and_upgrade(
    documents: list[dict[str, Any]]
) -> None:
    hooks = {document["kind"] + " " + document["metadata"]["name"]: document["metadata"]["annotations"]
             for document in documents if "helm.sh/hook" in document["metadata"].get("annotations", {})}
    assert hooks == {
        "Job alerting-migrate": {"helm.sh/hook": "pre-install,pre-upgrade", "helm.sh/hook-weight": "0",
                                 "helm.sh/hook-delete-policy": "before-hook-creation"},
        "Job alerting-topics": {"helm.sh/hook": "pre-install,pre-upgrade", "helm.sh/hook-weight": "0",
                                "helm.sh/hook-delete-policy": "before-hook-creation"},
        "ConfigMap alerting-topics": {"helm.sh/hook": "pre-install,pre-upgrade", "helm.sh/hook-weight": "-1",
                                      "helm.sh/hook-delete-policy": "before-hook-creation"},
    }
    assert container(jobs(documents)["migrate"])["command"][1:] == ["up"]


def test_every_service_has_a_disruption_budget_over_its_pods(documents: list[dict[str, Any]]) -> None:
    budgets = by_kind(documents, "PodDisruptionBudget")
    for name, workload in workloads(documents).items():
        budget = budgets.pop(f"alerting-{name}")
        assert budget["spec"] == {"maxUnavailable": 1, "selector": workload["spec"]["selector"]}, name
        assert workload["spec"]["selector"]["matchLabels"].items() <= (
            workload["spec"]["template"]["metadata"]["labels"].items()), name
    assert budgets == {}


def cpu_requests(documents: list[dict[str, Any]]) -> dict[str, str]:
    return {name: container(workload)["resources"]["requests"]["cpu"]
            for name, workload in workloads(documents).items()}


def test_cpu_requests_follow_from_the_target_rate_and_the_measured_cost(documents: list[dict[str, Any]]) -> None:
    # 500/s × µs per notification × 1.5 over the active instances (rule.changed has one partition),
    # at least 50m: sender 500 × 537 × 1.5 / 3 = 134,250 µs/s, so 135m.
    assert cpu_requests(documents) == {
        "rule-service": "50m", "rule-updater": "50m", "evaluator": "50m", "aggregator": "50m", "sender": "135m"}
    faster = render("--set", "capacity.notificationsPerSecond=2000", "--set", "services.sender.replicas=6",
                    "--set", "services.evaluator.replicas=8", "--set", "services.rule-updater.replicas=1")
    # 2000 × 537 × 1.5 / 6 = 268.5m; the aggregator's three: 2000 × 121 × 1.5 / 3; the evaluator's
    # eight share six partitions: 2000 × 98 × 1.5 / 6 = 49m, below the floor as the rule-updater's.
    assert cpu_requests(faster) == {
        "rule-service": "50m", "rule-updater": "50m", "evaluator": "50m", "aggregator": "121m", "sender": "269m"}
    sender = container(workloads(faster)["sender"])["resources"]
    assert sender == {"requests": {"cpu": "269m", "memory": "512Mi"}, "limits": {"memory": "512Mi"}}
