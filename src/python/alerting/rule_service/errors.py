"""Domain errors of the rule-service's RPCs and the decorator that turns them into gRPC
status codes, the message naming the field or the id."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

import asyncpg
import grpc

from alerting.common.validation import InvalidField
from alerting.rule_service.access import PermissionDenied

if TYPE_CHECKING:
    Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]
Request = TypeVar("Request")
Response = TypeVar("Response")
Handler: TypeAlias = Callable[[Any, Request, "Context"], Awaitable[Response]]


class NotFound(Exception):
    """NOT_FOUND: no such id (or none the caller may see)."""


class FailedPrecondition(Exception):
    """FAILED_PRECONDITION: the thing is not in the state the call needs."""


class StaleVersion(FailedPrecondition):
    """The change was based on a version that is no longer the current one."""


class QuotaExceeded(Exception):
    """RESOURCE_EXHAUSTED: the change would take the caller past one of its quotas."""


def grpc_errors(method: Handler[Request, Response]) -> Handler[Request, Response]:
    """Domain errors → gRPC status codes, the message naming the field or the id."""

    @functools.wraps(method)
    async def wrapper(self: Any, request: Request, context: Context) -> Response:
        try:
            return await method(self, request, context)
        except InvalidField as error:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
        except NotFound as error:
            await context.abort(grpc.StatusCode.NOT_FOUND, str(error))
        except FailedPrecondition as error:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(error))
        except PermissionDenied as error:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, str(error))
        except QuotaExceeded as error:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(error))
        except asyncpg.ForeignKeyViolationError:
            await context.abort(grpc.StatusCode.NOT_FOUND, "client_id: no such client")

    return wrapper
