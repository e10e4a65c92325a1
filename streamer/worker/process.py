"""The faust worker of a ``streamer worker`` process, stopping as :mod:`.shutdown` says."""

from __future__ import annotations

import signal
from typing import Any

import faust

from streamer.core.metrics import Health
from streamer.worker.shutdown import EXIT_CLEAN, EXIT_FAILED, EXIT_FORCED, Shutdown

__all__ = ["GracefulWorker", "run_until_stopped"]


class GracefulWorker(faust.Worker):
    """faust's worker with a bounded stop: on SIGTERM or SIGINT the ingest agent drains first,
    then faust stops, all within the grace (a watchdog sees to it); a second signal ends the
    process at once."""

    def __init__(
        self, app: faust.App, *args: Any, shutdown: Shutdown, health: Health, **kwargs: Any
    ) -> None:
        self.shutdown = shutdown
        self.health = health
        super().__init__(app, *args, **kwargs)

    def _schedule_shutdown(self, signal: signal.Signals) -> None:
        if self.shutdown.stopping:
            self.shutdown.begin(signal.name)  # a second signal: ends the process
            return
        super()._schedule_shutdown(signal)

    async def _stop_on_signal(self, signal: signal.Signals) -> None:
        self.health.ready = False  # take no more traffic while stopping
        self.shutdown.begin(signal.name)
        await self.shutdown.drain()
        # The agent's batches are done (or given up): faust must not wait for the events it
        # buffered and will never process (they stay unacknowledged, so uncommitted).
        self.app.conf.stream_wait_empty = False
        self.shutdown.phase = "stopping faust (last commit, leaving the group)"
        await super()._stop_on_signal(signal)


def run_until_stopped(worker: GracefulWorker) -> int:
    """Run the worker until it stops; returns the exit code its last line states."""
    shutdown = worker.shutdown
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        if exc.code not in (None, 0):
            return shutdown.finish("failed", EXIT_FAILED, error=str(exc.code))
    except BaseException as exc:  # an agent crashed: faust re-raises its error
        shutdown.finish("failed", EXIT_FAILED, error=f"{type(exc).__name__}: {exc}")
        raise
    if worker.crash_reason is not None:
        return shutdown.finish("failed", EXIT_FAILED, error=repr(worker.crash_reason))
    if shutdown.left_unfinished:
        return shutdown.finish(
            f"grace ran out: {shutdown.left_unfinished} batches left for redelivery",
            EXIT_FORCED,
            batches_unacknowledged=shutdown.left_unfinished,
        )
    return shutdown.finish("clean: every batch in flight finished, offsets committed", EXIT_CLEAN)
