"""One of lcd's own output descriptors as a place to copy a container's output to.

Why it exists: a file object from ``open()`` or ``sys.stdout.buffer`` would
buffer, and raise BrokenPipeError once lcd's reader has gone; the copy would
then stop and the container would block on a full FIFO
(``lcd run -- seq 1 100000 | head -1`` would never end). This one writes
straight to the descriptor and, once nobody reads, drops what comes.
"""

from __future__ import annotations

import os
import select
from typing import IO, cast

__all__ = ["OutputFile", "output_file"]


class OutputFile:
    """A copy target on descriptor ``fd``: unbuffered, and silent once its reader is gone."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._gone = False

    def write(self, data: bytes) -> int:
        view = memoryview(data)
        while view and not self._gone:
            try:
                view = view[os.write(self._fd, view) :]
            except BrokenPipeError:
                self._gone = True
            except BlockingIOError:  # someone made the descriptor non-blocking
                select.select([], [self._fd], [])
        return len(data)

    def flush(self) -> None:
        """Nothing is buffered."""


def output_file(fd: int) -> IO[bytes]:
    """:class:`OutputFile` typed as what the library's copy targets take."""
    return cast(IO[bytes], OutputFile(fd))
