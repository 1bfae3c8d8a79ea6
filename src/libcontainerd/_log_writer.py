"""The logging program the shim runs beside a container lcd leaves running.

containerd's shim starts it for a ``binary://`` stdio URI (the protocol:
the container's stdout on descriptor 3, stderr on 4, and 5 to close once
ready; the URI's query as arguments; only ``CONTAINER_ID`` and
``CONTAINER_NAMESPACE`` in its environment) and waits for it before the
process starts. It appends each read to the log as timestamped records
(:mod:`._log_records`) and ends when both streams have ended. It lives
outside ``cli/`` and imports only the standard library and that module, so
it starts in ~20 ms (``cli``'s package would import click and grpc): once
per container start.

    lcd-log-writer log PATH
"""

from __future__ import annotations

import os
import select
import signal
import sys

from ._log_records import STDERR, STDOUT, format_records

__all__ = ["main"]

_STREAMS = {3: STDOUT, 4: STDERR}
_READY = 5
_CHUNK = 64 * 1024


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    options = dict(zip(arguments[::2], arguments[1::2], strict=False))
    path = options.get("log")
    if not path or not os.path.isabs(path):
        sys.stderr.write(f"lcd-log-writer: needs 'log ABSOLUTE-PATH', got {arguments!r}\n")
        return 2
    # A Ctrl-C at the terminal that started the container is not for us; the
    # shim ends us by closing the streams.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    log = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    os.close(_READY)
    poller = select.poll()
    open_streams = set(_STREAMS)
    for fd in open_streams:
        poller.register(fd, select.POLLIN)
    while open_streams:
        for fd, _ in poller.poll():
            data = os.read(fd, _CHUNK)
            if not data:
                poller.unregister(fd)
                open_streams.discard(fd)
                os.close(fd)
                continue
            # One write per read: O_APPEND keeps each read's records whole and in order.
            _write_all(log, format_records(_STREAMS[fd], data))
    os.close(log)
    return 0


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


if __name__ == "__main__":
    sys.exit(main())
