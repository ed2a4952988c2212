"""Retry with capped exponential backoff for dependency outages: never skip, never give up."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, wait_exponential_jitter

from alerting.common.settings import RetrySettings

log = logging.getLogger(__name__)
T = TypeVar("T")


class Stopping(Exception):
    """Raised instead of another attempt once the service has been asked to stop."""


async def retry_until_done(
    operation: Callable[[], Awaitable[T]],
    settings: RetrySettings,
    *,
    what: str,
    stop: asyncio.Event | None = None,
    on_failure: Callable[[BaseException], None] | None = None,
    retry_if: Callable[[BaseException], bool] | None = None,
) -> T:
    """Run `operation` until it succeeds, backing off between attempts. With `retry_if`,
    only the errors it accepts are retried; any other is raised at once.

    With `stop` set during an outage it raises Stopping: the caller then exits without
    committing, and the work is redelivered to whoever runs next.
    """

    def before_sleep(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        if on_failure is not None and error is not None:
            on_failure(error)
        log.warning("%s failed (attempt %d), retrying: %r", what, state.attempt_number, error)

    def should_retry(error: BaseException) -> bool:
        if isinstance(error, Stopping | asyncio.CancelledError):
            return False
        return retry_if is None or retry_if(error)

    async for attempt in AsyncRetrying(
        retry=retry_if_exception(should_retry),
        wait=wait_exponential_jitter(multiplier=settings.retry_initial_seconds, max=settings.retry_max_seconds),
        before_sleep=before_sleep,
        reraise=True,
    ):
        with attempt:
            if stop is not None and stop.is_set() and attempt.retry_state.attempt_number > 1:
                raise Stopping(what)
            return await operation()
    raise AssertionError("unreachable")
