"""Domain errors of the rule-service's RPCs and the decorator that turns them into gRPC
status codes, the message naming the field or the id; and the interceptor that answers
every other exception with a status that tells the caller nothing of the server's insides."""

from __future__ import annotations

import functools
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

import asyncpg
import grpc
import grpc.aio

from alerting.common.validation import InvalidField
from alerting.rule_service.access import PermissionDenied

if TYPE_CHECKING:
    Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]
Request = TypeVar("Request")
Response = TypeVar("Response")
Handler: TypeAlias = Callable[[Any, Request, "Context"], Awaitable[Response]]
log = logging.getLogger(__name__)
# A dependency that is down or going away, not a fault of the request or of the code: the
# caller may retry (UNAVAILABLE).
OUTAGES = (OSError, asyncpg.PostgresConnectionError, asyncpg.OperatorInterventionError,
           asyncpg.InsufficientResourcesError, asyncpg.ConnectionDoesNotExistError)


class NotFound(Exception):
    """NOT_FOUND: no such id (or none the caller may see)."""


class FailedPrecondition(Exception):
    """FAILED_PRECONDITION: the thing is not in the state the call needs."""


class StaleVersion(FailedPrecondition):
    """The change was based on a version that is no longer the current one."""


class QuotaExceeded(Exception):
    """RESOURCE_EXHAUSTED: the change would take the caller past one of its quotas."""


class AlreadyExists(Exception):
    """ALREADY_EXISTS: something of that name exists already."""


def grpc_errors(method: Handler[Request, Response]) -> Handler[Request, Response]:
    """Domain errors → gRPC status codes, the message naming the field or the id."""

    @functools.wraps(method)
    async def wrapper(self: Any, request: Request, context: Context) -> Response:
        try:
            return await method(self, request, context)
        except InvalidField as error:
            code, details = grpc.StatusCode.INVALID_ARGUMENT, str(error)
        except NotFound as error:
            code, details = grpc.StatusCode.NOT_FOUND, str(error)
        except FailedPrecondition as error:
            code, details = grpc.StatusCode.FAILED_PRECONDITION, str(error)
        except PermissionDenied as error:
            code, details = grpc.StatusCode.PERMISSION_DENIED, str(error)
        except QuotaExceeded as error:
            code, details = grpc.StatusCode.RESOURCE_EXHAUSTED, str(error)
        except AlreadyExists as error:
            code, details = grpc.StatusCode.ALREADY_EXISTS, str(error)
        except asyncpg.ForeignKeyViolationError:
            code, details = grpc.StatusCode.NOT_FOUND, "client_id: no such client"
        # Aborted outside the except blocks: no exception is chained to the abort, so the
        # call's span records no database error's message or traceback with it.
        await context.abort(code, details)

    return wrapper


class UnexpectedErrors(grpc.aio.ServerInterceptor):
    """Every exception a unary RPC lets escape (what its handler did not turn into a status)
    is answered with a generic status: UNAVAILABLE for an outage, INTERNAL for anything else,
    each with a reference to the log line that holds the exception and its traceback. Without
    this, grpc answers UNKNOWN with the exception's type and message, and the tracing
    instrumentation records its traceback on the call's span."""

    async def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        if handler is None or handler.request_streaming or handler.response_streaming:
            return handler  # the only streaming RPC is health checking's Watch
        behavior: Callable[..., Awaitable[Any]] | None = handler.unary_unary
        assert behavior is not None
        method = handler_call_details.method

        async def guarded(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            try:
                return await behavior(request, context)
            except grpc.aio.AbortError:
                raise  # a status the handler chose
            except Exception as error:  # noqa: BLE001 - every other exception, by design
                code, details = answer_for(error, method)
            await context.abort(code, details)  # outside the except block, as in grpc_errors

        return grpc.unary_unary_rpc_method_handler(
            guarded, request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer)


def answer_for(error: Exception, method: str) -> tuple[grpc.StatusCode, str]:
    """The status for an exception no handler expected, after logging it (with its traceback)
    under a fresh reference that the status names."""
    reference = secrets.token_hex(8)
    if isinstance(error, OUTAGES):
        log.warning("%s: a dependency is unavailable (reference %s)", method, reference, exc_info=error)
        return (grpc.StatusCode.UNAVAILABLE,
                f"a dependency of the rule-service is unavailable; retry (reference {reference})")
    log.error("%s: unexpected error (reference %s)", method, reference, exc_info=error)
    return grpc.StatusCode.INTERNAL, f"internal error (reference {reference})"
