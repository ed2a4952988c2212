"""Channels to the rule-service as every client opens them: TLS verified against
settings.tls_ca_file (plaintext only when settings.rule_service_tls is false), and the API
key sent with every call as `authorization: Bearer <key>`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import grpc
import grpc.aio

from alerting.common.settings import RuleServiceClientSettings, secret_value


def channel_credentials(settings: RuleServiceClientSettings) -> grpc.ChannelCredentials:
    """TLS that trusts settings.tls_ca_file, or the system's CAs when it is empty."""
    roots = Path(settings.tls_ca_file).read_bytes() if settings.tls_ca_file else None
    return grpc.ssl_channel_credentials(root_certificates=roots)


def _authorization(api_key: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {api_key}")] if api_key else []


class _AioBearer(grpc.aio.UnaryUnaryClientInterceptor):
    def __init__(self, api_key: str) -> None:
        self.metadata = _authorization(api_key)

    async def intercept_unary_unary(self, continuation: Callable[..., Any],
                                    client_call_details: grpc.aio.ClientCallDetails, request: Any) -> Any:
        details = grpc.aio.ClientCallDetails(
            client_call_details.method, client_call_details.timeout,
            grpc.aio.Metadata(*(client_call_details.metadata or ()), *self.metadata),
            client_call_details.credentials, client_call_details.wait_for_ready,
        )
        return await continuation(details, request)


def aio_channel(
    settings: RuleServiceClientSettings, address: str | None = None, api_key: str | None = None,
) -> grpc.aio.Channel:
    """An asyncio channel to the rule-service at `address` (default settings.rule_service_address)
    presenting `api_key` (default settings.api_key)."""
    target = address or settings.rule_service_address
    key = secret_value(settings.api_key) if api_key is None else api_key
    interceptors = [_AioBearer(key)]
    if settings.rule_service_tls:
        return grpc.aio.secure_channel(target, channel_credentials(settings), interceptors=interceptors)
    return grpc.aio.insecure_channel(target, interceptors=interceptors)


class _CallDetails(NamedTuple):
    method: str
    timeout: float | None
    metadata: Any
    credentials: grpc.CallCredentials | None
    wait_for_ready: bool | None
    compression: Any


class _Bearer(grpc.UnaryUnaryClientInterceptor):
    def __init__(self, api_key: str) -> None:
        self.metadata = _authorization(api_key)

    def intercept_unary_unary(self, continuation: Callable[..., Any], client_call_details: Any, request: Any) -> Any:
        details = _CallDetails(
            client_call_details.method, client_call_details.timeout,
            [*(client_call_details.metadata or ()), *self.metadata], client_call_details.credentials,
            client_call_details.wait_for_ready, client_call_details.compression,
        )
        return continuation(details, request)


def blocking_channel(
    settings: RuleServiceClientSettings, address: str | None = None, api_key: str | None = None,
) -> grpc.Channel:
    """The same as aio_channel, for blocking clients (alertctl)."""
    target = address or settings.rule_service_address
    key = secret_value(settings.api_key) if api_key is None else api_key
    if settings.rule_service_tls:
        channel = grpc.secure_channel(target, channel_credentials(settings))
    else:
        channel = grpc.insecure_channel(target)
    return grpc.intercept_channel(channel, _Bearer(key))
