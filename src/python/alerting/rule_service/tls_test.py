"""TLS on the rule-service's gRPC port: the handshake with the right CA, refusals of
plaintext and of an unknown CA, no start without a certificate, and plaintext only when
configured."""

from __future__ import annotations

import grpc
import pytest

from alerting.common.grpc_client import aio_channel
from alerting.testsupport.services import rule_service
from alerting.testsupport.stack import StackSettings
from alerting.testsupport.tls import make_certificates
from alerting.v1 import rule_service_pb2 as api
from alerting.v1 import rule_service_pb2_grpc


async def list_clients(channel: grpc.aio.Channel) -> grpc.StatusCode:
    try:
        await rule_service_pb2_grpc.RuleServiceStub(channel).ListClients(api.ListClientsRequest(), timeout=10)
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


async def test_tls_with_the_ca_works_and_plaintext_or_another_ca_is_refused(stack_settings: StackSettings) -> None:
    async with rule_service(stack_settings) as service:
        client = service.client_settings
        async with aio_channel(client) as channel:
            with_ca = await list_clients(channel)
        async with aio_channel(client.model_copy(update={"rule_service_tls": False})) as channel:
            plaintext = await list_clients(channel)
        stranger = make_certificates()  # a CA that did not sign the server's certificate
        async with aio_channel(client.model_copy(update={"tls_ca_file": stranger.ca})) as channel:
            other_ca = await list_clients(channel)
    assert (with_ca, plaintext, other_ca) == (grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE,
                                              grpc.StatusCode.UNAVAILABLE)


async def test_without_a_certificate_tls_does_not_start_and_plaintext_must_be_asked_for(
        stack_settings: StackSettings) -> None:
    with pytest.raises(ValueError, match="TLS needs ALERTING_TLS_CERT_FILE and ALERTING_TLS_KEY_FILE"):
        async with rule_service(stack_settings, tls_cert_file="", tls_key_file=""):
            pass
    async with rule_service(stack_settings, rule_service_tls=False) as service:
        async with aio_channel(service.client_settings) as channel:  # plaintext, with the admin key
            plaintext = await list_clients(channel)
        async with aio_channel(service.client_settings, api_key="") as channel:
            without_key = await list_clients(channel)
    assert (plaintext, without_key) == (grpc.StatusCode.OK, grpc.StatusCode.UNAUTHENTICATED)
