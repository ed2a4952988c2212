"""Calls to a real rule-service in tests: what a call answered, and the tenants (a client
and its TENANT key) that tests act as."""

from __future__ import annotations

from collections.abc import Awaitable

import grpc

from alerting.testsupport.services import RuleServiceUnderTest
from alerting.v1 import api_key_service_pb2, api_key_service_pb2_grpc, rule_service_pb2, rule_service_pb2_grpc


async def answer(call: Awaitable[object]) -> tuple[grpc.StatusCode, str | None]:
    """The status a call ended with, and its details (None for OK)."""
    try:
        await call
    except grpc.aio.AioRpcError as error:
        return error.code(), error.details()
    return grpc.StatusCode.OK, None


async def new_client(service: RuleServiceUnderTest, name: str = "acme") -> str:
    """A client created with the admin key; its id."""
    async with service.channel() as channel:
        created = await rule_service_pb2_grpc.RuleServiceStub(channel).CreateClient(
            rule_service_pb2.CreateClientRequest(name=name))
    return created.client_id


async def tenant_key(service: RuleServiceUnderTest, client_id: str) -> api_key_service_pb2.CreateApiKeyResponse:
    """A TENANT key of the client, made with the admin key."""
    async with service.channel() as channel:
        return await api_key_service_pb2_grpc.ApiKeyServiceStub(channel).CreateApiKey(
            api_key_service_pb2.CreateApiKeyRequest(role=api_key_service_pb2.ROLE_TENANT, client_id=client_id))
