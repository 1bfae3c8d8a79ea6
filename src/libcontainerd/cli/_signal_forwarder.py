"""Signals sent to lcd, passed on to the container process it waits for in the foreground.

Why it exists: ``lcd run``, ``lcd start -a`` and ``lcd exec`` stand for their
process, as ``docker run`` does, so ``kill <lcd's pid>`` and Ctrl-C must reach
that process rather than end lcd and leave it running; and since a container's
main process ignores a SIGINT it has no handler for, a second Ctrl-C kills it.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal

from ..client import AsyncClient
from ..errors import LibcontainerdError
from ..types import INIT_PROCESS_ID
from ._output import Output

__all__ = ["SignalForwarder"]


class SignalForwarder:
    """Forwards the signals lcd receives to a container's process; Ctrl-C twice kills it.

    Installed before the process exists, so a signal that arrives while it
    is being created or started is held and forwarded once it runs.
    ``process_id`` is the main process's (``init``) or an exec's.
    """

    FORWARDED = (
        signal.SIGINT,
        signal.SIGTERM,
        signal.SIGHUP,
        signal.SIGQUIT,
        signal.SIGUSR1,
        signal.SIGUSR2,
    )

    def __init__(self, client: AsyncClient, out: Output, process_id: str = INIT_PROCESS_ID) -> None:
        self._client = client
        self._out = out
        self._container_id: str | None = None
        self.process_id = process_id
        self._held: list[int] = []
        self._interrupts = 0
        self._sending: set[asyncio.Task[None]] = set()

    def __enter__(self) -> SignalForwarder:
        loop = asyncio.get_running_loop()
        for signum in self.FORWARDED:
            loop.add_signal_handler(signum, self._received, signum)
        return self

    def __exit__(self, *exc_info: object) -> None:
        loop = asyncio.get_running_loop()
        for signum in self.FORWARDED:
            loop.remove_signal_handler(signum)

    def forward_to(self, container_id: str) -> None:
        """Forward from now on to the process in that container, starting with what was held."""
        self._container_id = container_id
        held, self._held = self._held, []
        for signum in held:
            self._send(signum)

    async def drain(self) -> None:
        """Wait for the signals being sent."""
        if self._sending:
            await asyncio.wait(list(self._sending))

    def _received(self, signum: int) -> None:
        if signum == signal.SIGINT:
            self._interrupts += 1
            if self._interrupts == 1:
                target = (
                    "the container (its main process ignores signals it does not handle)"
                    if self.process_id == INIT_PROCESS_ID
                    else f"exec {self.process_id}"
                )
                self._out.note(f"sent SIGINT to {target}; press Ctrl-C again to kill it")
            else:
                signum = signal.SIGKILL
        if self._container_id is None:
            self._held.append(signum)
        else:
            self._send(signum)

    def _send(self, signum: int) -> None:
        task = asyncio.get_running_loop().create_task(self._signal(signum))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _signal(self, signum: int) -> None:
        assert self._container_id is not None
        with contextlib.suppress(LibcontainerdError):
            await self._client.signal_process(self._container_id, self.process_id, signum)
