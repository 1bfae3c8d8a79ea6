"""Short helper commands (``criu check``, ``containerd --version``) run to their end."""

from __future__ import annotations

import asyncio

from ._limits import child_argv, exec_failure


async def output_of(*argv: str) -> tuple[int, str]:
    """Run a command without input; its exit status and its stdout+stderr, decoded.

    It gets the open-file limit this process started with (see _limits).
    Raises OSError when it cannot start. Bound it with ``asyncio.timeout``:
    when cancelled, the command is killed and reaped first, so a hung helper
    never outlives the call.
    """
    process = await asyncio.create_subprocess_exec(
        *child_argv(argv),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await process.communicate()
    except BaseException:
        if process.returncode is None:
            process.kill()
            await process.wait()
        raise
    assert process.returncode is not None
    text = output.decode(errors="replace").strip()
    failure = exec_failure(process.returncode, text, argv[0])
    if failure is not None:
        raise failure  # what starting it directly would have raised
    return process.returncode, text
