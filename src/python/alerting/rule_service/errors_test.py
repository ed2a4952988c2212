"""Exceptions no handler expected, in every RPC of a real rule-service: the caller gets a
generic status naming a reference, the log gets the exception under that reference, and the
call's span gets neither the exception nor its traceback."""

from __future__ import annotations

import logging
import re
from typing import Any

import asyncpg
import grpc
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from alerting.common import telemetry
from alerting.rule_service.dead_letters import DeadLetterService
from alerting.rule_service.errors import grpc_errors
from alerting.rule_service.keys import ApiKeyService
from alerting.rule_service.main import instrument_grpc_server
from alerting.rule_service.notifications import NotificationService
from alerting.rule_service.policies import NotificationPolicyService
from alerting.rule_service.receivers import ReceiverService
from alerting.rule_service.servicer import RuleService
from alerting.rule_service.silences import SilenceService
from alerting.testsupport.services import RuleServiceUnderTest, rule_service
from alerting.testsupport.stack import StackSettings
from alerting.v1 import (
    api_key_service_pb2,
    dead_letter_service_pb2,
    notification_policy_service_pb2,
    notification_service_pb2,
    receiver_service_pb2,
    rule_service_pb2,
    silence_service_pb2,
)

SECRET = "password=hunter2 at /srv/internal/queries.py"  # what must never reach a caller or a span
SERVICES = {
    RuleService: rule_service_pb2.DESCRIPTOR.services_by_name["RuleService"],
    ApiKeyService: api_key_service_pb2.DESCRIPTOR.services_by_name["ApiKeyService"],
    NotificationService: notification_service_pb2.DESCRIPTOR.services_by_name["NotificationService"],
    DeadLetterService: dead_letter_service_pb2.DESCRIPTOR.services_by_name["DeadLetterService"],
    NotificationPolicyService:
        notification_policy_service_pb2.DESCRIPTOR.services_by_name["NotificationPolicyService"],
    SilenceService: silence_service_pb2.DESCRIPTOR.services_by_name["SilenceService"],
    ReceiverService: receiver_service_pb2.DESCRIPTOR.services_by_name["ReceiverService"],
}
RPCS = [f"/{service.full_name}/{method.name}" for service in SERVICES.values() for method in service.methods]


def failing_with(error: Exception) -> Any:
    async def handler(self: object, request: object, context: object) -> None:
        raise error

    return handler


def break_every_rpc(monkeypatch: pytest.MonkeyPatch, error: Exception) -> None:
    """Every RPC's handler raises `error`: set on the classes before a server registers them."""
    for servicer, service in SERVICES.items():
        for method in service.methods:
            monkeypatch.setattr(servicer, method.name, failing_with(error))


async def call(service: RuleServiceUnderTest, rpc: str) -> tuple[grpc.StatusCode, str]:
    """An RPC by its full name with an empty request (every field unset), as the admin."""
    async with service.channel() as channel:
        try:
            empty: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(
                rpc, request_serializer=bytes, response_deserializer=bytes)
            await empty(b"")
        except grpc.aio.AioRpcError as error:
            return error.code(), error.details() or ""
    return grpc.StatusCode.OK, ""


def logged_references(caplog: pytest.LogCaptureFixture, error: Exception) -> dict[str, str]:
    """RPC → the reference its failure was logged under, from the records that hold `error`."""
    references = {}
    for record in caplog.records:
        if record.name == "alerting.rule_service.errors" and record.exc_info and record.exc_info[1] is error:
            logged = re.fullmatch(r"(\S+): .*\(reference ([0-9a-f]{16})\)", record.getMessage())
            assert logged is not None, record.getMessage()
            references[logged[1]] = logged[2]
    return references


@pytest.fixture(scope="module")
def tracing() -> InMemorySpanExporter:
    """Spans of every RPC, as main() instruments the service; once per process (a tracer
    provider cannot be replaced)."""
    exporter = InMemorySpanExporter()
    telemetry.setup_tracing("errors-test", StackSettings(), exporter=exporter)
    instrument_grpc_server()
    return exporter


@pytest.fixture
def exporter(tracing: InMemorySpanExporter) -> InMemorySpanExporter:
    tracing.clear()
    return tracing


def rpc_spans(exporter: InMemorySpanExporter) -> dict[str, ReadableSpan]:
    return {span.name: span for span in exporter.get_finished_spans() if span.name.startswith("/alerting.")}


def leaks(span: ReadableSpan, *secrets: str) -> list[str]:
    """What of the span's attributes, events and status holds any of `secrets`."""
    seen = [str(value) for value in (span.attributes or {}).values()]
    seen += [str(value) for event in span.events for value in (event.attributes or {}).values()]
    seen.append(span.status.description or "")
    return [text for text in seen if any(secret in text for secret in secrets)]


async def test_an_unexpected_exception_in_any_rpc_is_internal_with_a_reference_to_the_log_only(
        stack_settings: StackSettings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
        exporter: InMemorySpanExporter) -> None:
    error = RuntimeError(SECRET)
    break_every_rpc(monkeypatch, error)
    caplog.set_level(logging.ERROR, "alerting.rule_service.errors")
    async with rule_service(stack_settings) as service:
        answers = {rpc: await call(service, rpc) for rpc in RPCS}
    references = logged_references(caplog, error)
    assert answers == {rpc: (grpc.StatusCode.INTERNAL, f"internal error (reference {references[rpc]})")
                       for rpc in RPCS}
    assert len(set(references.values())) == len(RPCS)
    spans = rpc_spans(exporter)
    assert set(spans) == set(RPCS)
    assert {rpc: leaks(span, "hunter2", "RuntimeError") for rpc, span in spans.items()} == {rpc: [] for rpc in RPCS}


async def test_a_database_error_a_handler_answers_leaves_no_trace_of_itself_in_the_span(
        stack_settings: StackSettings, monkeypatch: pytest.MonkeyPatch, exporter: InMemorySpanExporter) -> None:
    error = asyncpg.ForeignKeyViolationError(f'insert violates foreign key constraint "rules_client_id_fkey" {SECRET}')
    rpc = "/alerting.v1.RuleService/CreateRule"
    monkeypatch.setattr(RuleService, "CreateRule", grpc_errors(failing_with(error)))
    async with rule_service(stack_settings) as service:
        answered = await call(service, rpc)
    assert answered == (grpc.StatusCode.NOT_FOUND, "client_id: no such client")
    assert leaks(rpc_spans(exporter)[rpc], "hunter2", "ForeignKeyViolation", "rules_client_id_fkey") == []


async def test_an_outage_in_an_rpc_is_unavailable_with_a_reference(
        stack_settings: StackSettings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    error = asyncpg.ConnectionDoesNotExistError(f"connection was closed in the middle of operation ({SECRET})")
    break_every_rpc(monkeypatch, error)
    caplog.set_level(logging.WARNING, "alerting.rule_service.errors")
    rpc = "/alerting.v1.RuleService/ListClients"
    async with rule_service(stack_settings) as service:
        answered = await call(service, rpc)
    reference = logged_references(caplog, error)[rpc]
    assert answered == (grpc.StatusCode.UNAVAILABLE,
                        f"a dependency of the rule-service is unavailable; retry (reference {reference})")
