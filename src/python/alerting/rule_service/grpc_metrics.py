"""Prometheus metrics of the rule-service's gRPC server: calls by method and status code,
and their latency, measured by a grpc.aio server interceptor."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import grpc.aio
from prometheus_client import Counter, Histogram

CALLS = Counter(
    "alerting_grpc_server_handled_total",
    "gRPC calls the rule-service completed, by full method name and status code.",
    ["method", "code"],
)
LATENCY = Histogram(
    "alerting_grpc_server_handling_seconds",
    "Time the rule-service took to handle a gRPC call, from its start to its status.",
    ["method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

_CODES = {code.value[0]: code for code in grpc.StatusCode}


def status_code(context: grpc.aio.ServicerContext[Any, Any], error: BaseException | None) -> grpc.StatusCode:
    """The status a call ended with: what the handler set (or aborted with), CANCELLED if it
    was cancelled, UNKNOWN if an exception other than an abort escaped it, else OK."""
    if isinstance(error, asyncio.CancelledError):
        return grpc.StatusCode.CANCELLED
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code
    if isinstance(code, int) and code in _CODES:
        return _CODES[code]
    if error is not None and not isinstance(error, grpc.aio.AbortError):
        return grpc.StatusCode.UNKNOWN
    return grpc.StatusCode.OK


def _observe(method: str, started: float, context: grpc.aio.ServicerContext[Any, Any],
             error: BaseException | None) -> None:
    LATENCY.labels(method).observe(time.perf_counter() - started)
    CALLS.labels(method, status_code(context, error).name).inc()


def _measured(behavior: Callable[..., Any] | None, method: str, response_streaming: bool) -> Callable[..., Any]:
    """`behavior` (a handler of any of the four kinds) with every call counted and timed."""
    assert behavior is not None, f"{method}: a handler without the behavior its kind promises"
    if response_streaming and inspect.isasyncgenfunction(behavior):

        async def stream(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
            started, error = time.perf_counter(), None
            try:
                async for response in behavior(request, context):
                    yield response
            except BaseException as raised:
                error = raised
                raise
            finally:
                _observe(method, started, context, error)

        return stream

    async def call(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        started, error = time.perf_counter(), None
        try:
            return await behavior(request, context)
        except BaseException as raised:
            error = raised
            raise
        finally:
            _observe(method, started, context, error)

    return call


class ServerMetricsInterceptor(grpc.aio.ServerInterceptor):
    """Counts and times every call the server handles (a call to a method it does not have
    is not counted)."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        if handler is None:  # no such method: UNIMPLEMENTED, not counted
            return None
        method = handler_call_details.method
        if handler.request_streaming and handler.response_streaming:
            return grpc.stream_stream_rpc_method_handler(
                _measured(handler.stream_stream, method, True),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.request_streaming:
            return grpc.stream_unary_rpc_method_handler(
                _measured(handler.stream_unary, method, False),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.response_streaming:
            return grpc.unary_stream_rpc_method_handler(
                _measured(handler.unary_stream, method, True),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return grpc.unary_unary_rpc_method_handler(
            _measured(handler.unary_unary, method, False),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
