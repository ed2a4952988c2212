"""The broker's SASL_SSL listener in tests: where it is, who may do what there, and the
platform's ACLs granted again on a test's prefixed topics and groups, so that a test can
act as a service's principal without writing into the platform's real topics.

Everything comes from the broker itself, asked as the test suite's principal (`admin`, a
super user), and the principals' passwords from the files `deploy/local-stack up` generated."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.protocol.admin import CreateAclsRequest, DeleteAclsRequest, DescribeAclsRequest
from pydantic import SecretStr

from alerting.common import topics
from alerting.common.kafka import kafka_client_options
from alerting.testsupport.stack import StackSettings, local_secret

# The local stack's SCRAM users of the platform (deploy/kafka/scram-users.txt), `admin` aside.
PRINCIPALS = ("rule-service", "dead-letter-replay", "rule-updater", "evaluator", "aggregator", "sender", "producer")

# The platform's topic and group names, before any prefix: what the stack's ACLs name.
PLATFORM_TOPICS = (*topics.INPUT_TOPICS, *(topics.dead_letter(topic) for topic in topics.INPUT_TOPICS))
PLATFORM_GROUPS = (topics.RULE_UPDATER_GROUP, topics.EVALUATOR_GROUP, topics.AGGREGATOR_GROUP, topics.SENDER_GROUP)

# Kafka's protocol codes (org.apache.kafka.common.acl and .resource).
ANY = 1
_RESOURCE_TYPES = {2: "TOPIC", 3: "GROUP", 4: "CLUSTER", 5: "TRANSACTIONAL_ID", 6: "DELEGATION_TOKEN", 7: "USER"}
_PATTERN_TYPES = {3: "LITERAL", 4: "PREFIXED"}
_OPERATIONS = {
    2: "ALL", 3: "READ", 4: "WRITE", 5: "CREATE", 6: "DELETE", 7: "ALTER", 8: "DESCRIBE", 9: "CLUSTER_ACTION",
    10: "DESCRIBE_CONFIGS", 11: "ALTER_CONFIGS", 12: "IDEMPOTENT_WRITE", 13: "CREATE_TOKENS", 14: "DESCRIBE_TOKENS",
}
_PERMISSIONS = {2: "DENY", 3: "ALLOW"}


def _code(names: dict[int, str], name: str) -> int:
    return next(code for code, known in names.items() if known == name)


@dataclass(frozen=True, order=True)
class Acl:
    """One ACL binding, in the names AclCommand prints."""

    resource_type: str  # TOPIC, GROUP, ...
    name: str
    principal: str  # User:<name>
    operation: str  # READ, WRITE, DESCRIBE, ...
    pattern_type: str = "LITERAL"
    permission: str = "ALLOW"
    host: str = "*"


@dataclass(frozen=True)
class SaslListener:
    bootstrap: str  # host:port of the SASL_SSL listener
    ca_file: str  # the CA that signed the broker's certificate


@asynccontextmanager
async def admin_client(settings: StackSettings) -> AsyncIterator[Any]:
    """A started admin client of the broker(s) `settings` name, closed on exit."""
    admin = AIOKafkaAdminClient(**kafka_client_options(settings))
    await admin.start()
    try:
        yield admin
    finally:
        await admin.close()


async def broker_config(settings: StackSettings, *names: str) -> dict[str, str]:
    """The named configs of the (one) broker, as it runs."""
    async with admin_client(settings) as admin:
        node = (await admin.describe_cluster())["brokers"][0]["node_id"]
        [response] = await admin.describe_configs([ConfigResource(
            ConfigResourceType.BROKER, str(node), dict.fromkeys(names))])
    [(error_code, error_message, _, _, entries)] = response.resources
    assert error_code == 0, f"describing broker {node}: {error_message}"
    return {entry[0]: entry[1] for entry in entries}


async def sasl_listener(settings: StackSettings) -> SaslListener:
    """The broker's SASL_SSL listener and its CA, as the broker's configuration names them."""
    configs = await broker_config(settings, "advertised.listeners", "ssl.truststore.location")
    listeners = dict(listener.split("://", 1) for listener in (configs["advertised.listeners"] or "").split(","))
    assert "SASL_SSL" in listeners and configs["ssl.truststore.location"], (
        f"the broker has no SASL_SSL listener ({configs}): run `deploy/local-stack up`")
    return SaslListener(listeners["SASL_SSL"], configs["ssl.truststore.location"])


def principal_password(principal: str) -> str:
    """The password the local stack generated for `principal`."""
    return local_secret(f"kafka/{principal}.password")


def as_principal(
    settings: StackSettings, listener: SaslListener, principal: str, password: str | None = None,
) -> StackSettings:
    """`settings` connecting to the SASL_SSL listener as `principal` (by default with its
    password); the rule-service also holds the dead-letter replay's login, as the platform
    gives it."""
    update: dict[str, Any] = {
        "kafka_bootstrap": listener.bootstrap,
        "kafka_security_protocol": "SASL_SSL",
        "kafka_sasl_mechanism": "SCRAM-SHA-512",
        "kafka_sasl_username": principal,
        "kafka_sasl_password": SecretStr(principal_password(principal) if password is None else password),
        "kafka_ssl_ca_file": listener.ca_file,
    }
    if principal == "rule-service":
        update["dead_letter_replay_kafka_sasl_username"] = "dead-letter-replay"
        update["dead_letter_replay_kafka_sasl_password"] = SecretStr(principal_password("dead-letter-replay"))
    return settings.model_copy(update=update)


async def broker_acls(settings: StackSettings) -> set[Acl]:
    """Every ACL binding the broker holds."""
    async with admin_client(settings) as admin:
        # aiokafka sends the request but has no public method for it.
        response = await admin._send_request(DescribeAclsRequest(ANY, None, ANY, None, None, ANY, ANY))
    assert response.error_code == 0, response.error_message
    return {
        Acl(_RESOURCE_TYPES[resource_type], name, principal, _OPERATIONS[operation],
            _PATTERN_TYPES[pattern_type], _PERMISSIONS[permission], host)
        for resource_type, name, pattern_type, acls in response.resources
        for principal, host, operation, permission in acls
    }


async def _create(admin: Any, acl: Acl) -> None:
    response = await admin._send_request(CreateAclsRequest(
        _code(_RESOURCE_TYPES, acl.resource_type), acl.name, _code(_PATTERN_TYPES, acl.pattern_type),
        acl.principal, acl.host, _code(_OPERATIONS, acl.operation), _code(_PERMISSIONS, acl.permission)))
    [(error_code, error_message)] = response.creation_responses
    assert error_code == 0, f"creating {acl}: {error_message}"


async def _delete_literal(admin: Any, resource_type: str, name: str) -> None:
    response = await admin._send_request(DeleteAclsRequest(
        _code(_RESOURCE_TYPES, resource_type), name, _code(_PATTERN_TYPES, "LITERAL"), None, None, ANY, ANY))
    [(error_code, error_message, _)] = response.filter_responses
    assert error_code == 0, f"deleting the ACLs of {resource_type} {name}: {error_message}"


@asynccontextmanager
async def platform_acls_granted(settings: StackSettings) -> AsyncIterator[set[Acl]]:
    """The broker's ACLs on the platform's topics and groups, granted again on
    `settings.topic(<name>)` (the names this test's clients use); removed on exit."""
    platform_names = {*PLATFORM_TOPICS, *PLATFORM_GROUPS}
    granted = {
        Acl(acl.resource_type, settings.topic(acl.name), acl.principal, acl.operation)
        for acl in await broker_acls(settings)
        if acl.name in platform_names and acl.pattern_type == "LITERAL" and acl.permission == "ALLOW"
    }
    assert granted, "the broker holds no ACLs for the platform: run `deploy/local-stack up`"
    async with admin_client(settings) as admin:
        try:
            for acl in sorted(granted):
                await _create(admin, acl)
            # The authorizer applies them from the metadata log, a moment after the controller.
            for _ in range(100):
                if granted <= await broker_acls(settings):
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("the granted ACLs did not reach the authorizer in time")
            yield granted
        finally:
            for resource_type, name in sorted({(acl.resource_type, acl.name) for acl in granted}):
                await _delete_literal(admin, resource_type, name)
