"""The command helper's warm worker: short read-only commands run without a fork.

A fork per command costs a short command most of its time through the
helper: the fork, grpc's start in the child (its threads), and the child's
exit, ~20 ms of ``lcd ps``'s ~35. The helper keeps one worker process (a
fork of itself, made once) that runs the commands in :data:`WARM_COMMANDS`
(``ps``, ``inspect``, ``top``, ``version``: they read, never start a daemon,
read no stdin and end by themselves) one after another, each in the same
way as a forked child would: the caller's stdin, stdout and stderr as its
own for the command's time, its working folder, umask, environment and
command line, and lcd's ``main``, whose SystemExit gives the status.

The helper hands a worker one command at a time (a second caller meanwhile
gets a fork), and when the caller is signalled or killed it kills the
worker (the command ends as if killed there) and makes another later: the
worker is disposable, so it needs no way of its own to stop a command.
Wire: the helper sends the caller's request message with its three
descriptors over a SOCK_SEQPACKET pair; the worker answers
``EXITED<status>`` when the command has ended, and ends when the pair closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from .. import _lcd
from ..errors import LibcontainerdError
from . import _app

if TYPE_CHECKING:
    from ..client import AsyncClient
    from ._app import Settings

__all__ = ["WARM_COMMANDS", "command_of", "serve"]

# Each runs its coroutine with ``_app.run_async`` and opens its client with ``_app.connect``.
WARM_COMMANDS = frozenset({"ps", "inspect", "top", "version"})
# How long a client no command used stays open.
_KEEP_SECONDS = 10.0

_T = TypeVar("_T")


def command_of(argv: Sequence[str]) -> str | None:
    """The command an ``lcd`` command line names (after the global options), or None.

    Parsed by lcd's own group, so an option's value is never taken for a
    command (``lcd -n ps run ...`` runs ``run``).
    """
    from . import cli

    try:
        context = click.Context(cli, info_name="lcd", resilient_parsing=True)
        rest = click.Command.parse_args(cli, context, list(argv[1:]))
    except click.ClickException:
        return None
    return rest[0] if rest else None


def serve(connection: socket.socket, receive: int) -> NoReturn:
    """The worker's loop, in the forked worker: one command per message, until the pair closes."""
    from ._helper_server import descriptors_of, take_caller, use_stdio

    try:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        _app.warm = _WarmClients()
        devnull = os.open(os.devnull, os.O_RDWR)
        _to_devnull(devnull, use_stdio)
        while True:
            message, ancillary, _flags, _address = connection.recvmsg(
                receive, socket.CMSG_SPACE(3 * 4)
            )
            if not message:
                break
            descriptors = descriptors_of(ancillary)
            try:
                take_caller(_lcd.Request(message), descriptors)
                for descriptor in descriptors:  # only 0, 1 and 2 are the caller's now
                    os.close(descriptor)
                descriptors = []
                status = _run()
            except Exception as error:  # the caller's folder gone since, ...: as a fork says it
                with contextlib.suppress(OSError):
                    line = f"lcd: the command helper could not run the command: {error}\n"
                    os.write(2, line.encode())
                status = 125
            finally:
                for descriptor in descriptors:
                    with contextlib.suppress(OSError):
                        os.close(descriptor)
                _to_devnull(devnull, use_stdio)
            connection.send(_lcd.EXITED + str(status).encode())
    except BaseException as error:  # never back into the helper's loop
        with contextlib.suppress(OSError):
            os.write(2, f"lcd: the command helper's worker failed: {error}\n".encode())
    os._exit(0)


def _to_devnull(devnull: int, use_stdio: Callable[[], None]) -> None:
    """Between commands stdin, stdout and stderr are /dev/null: the caller's descriptors go
    with its command, and what a failed flush left in a buffer goes there, never to the
    next caller."""
    for target in (0, 1, 2):
        os.dup2(devnull, target)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    use_stdio()


def _run() -> int:
    """lcd's ``main`` on ``sys.argv``, as a process would run it; its exit status."""
    from . import exit_status, main

    try:
        main(sys.argv[1:])
    except SystemExit as done:
        return exit_status(done.code)
    except BaseException as error:  # a command must not end the worker
        with contextlib.suppress(OSError):
            os.write(2, f"lcd: the command helper could not run the command: {error}\n".encode())
        return 125
    return exit_status(None)


class _WarmClients:
    """The worker's lasting event loop (in a thread of its own) and the clients commands
    opened on it, kept open for the next command while they are used (see ``_app.connect``).

    A kept client is checked with a Version call before it is lent again; one
    that fails is closed and a new one opened the usual way, so a command's
    errors are the same as alone (no containerd answering: the same message).
    Clients unused for :data:`_KEEP_SECONDS` are closed, so an idle worker
    holds no connection (nor event subscription) to containerd.
    """

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.clients: dict[tuple[str | None, str, str], AsyncClient] = {}
        self.busy = False
        self.last_used = time.monotonic()
        threading.Thread(target=self._loop, name="lcd-warm-loop", daemon=True).start()

    def _loop(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.create_task(self._close_unused())
        self.loop.run_forever()

    def run(self, work: Coroutine[Any, Any, _T]) -> _T:
        """Run ``work`` on the lasting loop; its result, or what it raised."""

        async def boxed() -> tuple[bool, Any]:
            # Nothing may escape into the loop's thread (a SystemExit there would end the loop).
            try:
                return True, await work
            except BaseException as error:  # handed to the command's thread
                return False, error

        self.busy = True
        try:
            done, outcome = asyncio.run_coroutine_threadsafe(boxed(), self.loop).result()
        finally:
            self.busy = False
            self.last_used = time.monotonic()
        if not done:
            raise outcome
        result: _T = outcome
        return result

    async def client(
        self, settings: Settings, open_client: Callable[[], Awaitable[AsyncClient]]
    ) -> AsyncClient:
        key = (settings.address, settings.state_dir, settings.namespace)
        kept = self.clients.pop(key, None)
        if kept is not None:
            try:
                await kept.version()
            except LibcontainerdError:
                await _close(kept)
            else:
                self.clients[key] = kept
                return kept
        client = await open_client()
        self.clients[key] = client
        return client

    async def _close_unused(self) -> None:
        while True:
            await asyncio.sleep(_KEEP_SECONDS / 4)
            if self.busy or time.monotonic() - self.last_used < _KEEP_SECONDS:
                continue
            # Out of the table before the first await: a command starting meanwhile opens anew.
            unused, self.clients = list(self.clients.values()), {}
            for client in unused:
                await _close(client)


async def _close(client: AsyncClient) -> None:
    with contextlib.suppress(Exception):
        await client.close()
