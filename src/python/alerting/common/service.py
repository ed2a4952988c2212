"""Running a service process: logging, tracing, metrics endpoint, SIGTERM → graceful stop."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable
from typing import TypeVar

import uvloop

from alerting.common import ports, telemetry
from alerting.common.retry import Stopping
from alerting.common.settings import ServiceSettings

log = logging.getLogger(__name__)
S = TypeVar("S", bound=ServiceSettings)


class Lifecycle:
    """What a running service exposes to its shell: a stop event, and two probes.

    `ready`: the service has started and can do its work now; a dependency outage (a batch
    failing and being retried, a follower failing) makes it unready, and it becomes ready
    again by itself. `alive`: the service is not broken beyond what waiting can mend (a
    task it needs has ended): a restart is the remedy. Both are served by run_service, on
    /readyz (and /healthz) and /livez."""

    def __init__(self) -> None:
        self.stop = asyncio.Event()
        # Not ready until the service has started (waiting for a dependency is not ready).
        self.ready: Callable[[], bool] = lambda: False
        self.alive: Callable[[], bool] = lambda: True

    def is_ready(self) -> bool:
        """Ready, and not asked to stop: a stopping service takes no more work."""
        return not self.stop.is_set() and self.ready()

    def is_alive(self) -> bool:
        return self.alive()


def run_service(
    name: str,
    settings: S,
    body: Callable[[S, Lifecycle], Awaitable[None]],
    *,
    libuv: bool = True,
) -> None:
    """Run `body` until it returns or SIGTERM/SIGINT asks it to stop. `name` is the
    service's name in alerting.common.ports, which gives its default metrics port. With
    `libuv`, on uvloop: the same asyncio API with less CPU per socket read, write and callback."""
    telemetry.setup_logging(settings, name)
    telemetry.setup_tracing(name, settings)

    async def main() -> None:
        lifecycle = Lifecycle()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, lifecycle.stop.set)
        port = settings.metrics_port or ports.METRICS_PORTS[name]
        server = await telemetry.serve_metrics_and_health(
            settings.listen_host, port, lifecycle.is_ready, lifecycle.is_alive)
        try:
            log.info("%s starting", name)
            await body(settings, lifecycle)
        except Stopping:
            log.info("%s asked to stop while still waiting for a dependency", name)
        finally:
            server.close()
            telemetry.shutdown_tracing()
            log.info("%s stopped", name)

    with asyncio.Runner(loop_factory=uvloop.new_event_loop if libuv else None) as runner:
        runner.run(main())
