"""The exit status of ``charter serve``: 0 after a completed graceful shutdown, non-zero otherwise.

uvicorn re-raises the SIGTERM/SIGINT it caught once its graceful shutdown is over, so a server
that drained every request still dies "killed by SIGTERM" (status 143): a process supervisor
cannot tell a drained stop from a crash. Here (MCP 2025-11-25 "Transports" §Streamable HTTP
asks servers to end streams cleanly; the exit status is the POSIX ``exit`` convention):

* one process (:func:`run_server`): a :class:`DrainingServer` does not re-raise the signal when
  its shutdown completed (lifespan shutdown done, not forced by a second Ctrl+C); then the
  status is 0. A forced or failed shutdown still re-raises the signal (non-zero), a start-up
  failure still exits 3 (uvicorn's ``STARTUP_FAILURE``);
* several workers (:func:`run_workers`): uvicorn's supervisor, which stops every worker with
  SIGTERM, and then a look at how the workers ended: all stopped cleanly gives 0, a worker that
  failed to start gives 3, any other end 1.

"Completed" means the server stopped in order: requests still running after
``--graceful-timeout`` are cancelled, as that option says (uvicorn logs how many), and the stop
still counts as completed, in one process and in every worker alike (the supervisor cannot see
a worker's drain, only how it ended).

:func:`chain_exit_signals` lets the deployment end its SSE streams first when the signal comes
(clients resume them elsewhere with ``Last-Event-ID``), then hands the signal on to uvicorn.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from types import FrameType

import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.server import HANDLED_SIGNALS
from uvicorn.supervisors import Multiprocess

logger = logging.getLogger("charter.serve")

#: Worker exit statuses after the supervisor's SIGTERM: 0, or killed by the SIGTERM that
#: uvicorn re-raises in the worker after its graceful shutdown completed.
CLEAN_WORKER_EXITS = frozenset({0, -signal.SIGTERM})
#: ``charter serve``'s status when the server or a worker did not stop cleanly.
UNCLEAN_EXIT = 1


class DrainingServer(uvicorn.Server):
    """A uvicorn server that exits normally after a completed graceful shutdown."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.received_signals: list[int] = []
        self.shutdown_completed = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.received_signals.append(sig)
        super().handle_exit(sig, frame)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await super().shutdown(sockets)
        # uvicorn skips the lifespan shutdown on a forced exit and flags a failed one.
        self.shutdown_completed = not self.force_exit and not self.lifespan.should_exit

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """uvicorn's signal capture, re-raising the signals only when the shutdown was not clean."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        original = {sig: signal.signal(sig, self.handle_exit) for sig in HANDLED_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)
        if not self.shutdown_completed:
            for received in reversed(self.received_signals):
                signal.raise_signal(received)


def run_server(config: uvicorn.Config) -> int:
    """Serve in this process until SIGTERM/SIGINT; the exit status (0: drained and stopped)."""
    server = DrainingServer(config)
    server.run()  # exits 3 itself on a start-up failure; re-raises the signal when not clean
    return 0 if server.shutdown_completed else UNCLEAN_EXIT


def run_workers(config: uvicorn.Config) -> int:
    """Serve with ``config.workers`` processes until SIGTERM/SIGINT; the exit status."""
    supervisor = Multiprocess(config, sockets=[config.bind_socket()])
    supervisor.run()
    return workers_exit_status([process.exitcode for process in supervisor.processes])


def workers_exit_status(exit_codes: list[int | None]) -> int:
    """0 when every worker stopped cleanly; 3 when one failed to start; else 1 (and say why)."""
    if STARTUP_FAILURE in exit_codes:
        logger.error(
            "a worker failed to start (see its error above); fix it and start charter serve again"
        )
        return STARTUP_FAILURE
    unclean = [code for code in exit_codes if code not in CLEAN_WORKER_EXITS]
    if unclean:
        logger.error(
            "%d worker(s) did not stop cleanly (exit statuses %s); see the log above",
            len(unclean),
            ", ".join(str(code) for code in unclean),
        )
        return UNCLEAN_EXIT
    return 0


_EXIT_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def chain_exit_signals(on_exit: Callable[[], None]) -> Callable[[], None] | None:
    """Run ``on_exit`` in the event loop, then the previous handler, on SIGTERM/SIGINT.

    Returns a function restoring the previous handlers; None when not in the main thread
    (signals cannot be handled there, e.g. a server run by a test in a thread).
    """
    if threading.current_thread() is not threading.main_thread():
        return None
    loop = asyncio.get_running_loop()
    previous = {sig: signal.getsignal(sig) for sig in _EXIT_SIGNALS}

    def handler(sig: int, frame: FrameType | None) -> None:
        loop.call_soon_threadsafe(on_exit)
        chained = previous.get(signal.Signals(sig))
        if callable(chained):
            chained(sig, frame)
        elif chained == signal.SIG_DFL:
            signal.signal(sig, signal.SIG_DFL)
            signal.raise_signal(sig)

    for sig in _EXIT_SIGNALS:
        signal.signal(sig, handler)

    def restore() -> None:
        for sig, old in previous.items():
            if old is not None:
                signal.signal(sig, old)

    return restore
