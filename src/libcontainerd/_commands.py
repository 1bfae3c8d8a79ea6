"""Short helper commands (``criu check``, ``containerd --version``) run to their end."""

from __future__ import annotations

import asyncio


async def output_of(*argv: str) -> tuple[int, str]:
    """Run a command without input; its exit status and its stdout+stderr, decoded.

    Raises OSError when it cannot start. Bound it with ``asyncio.timeout``:
    when cancelled, the command is killed and reaped first, so a hung helper
    never outlives the call.
    """
    process = await asyncio.create_subprocess_exec(
        *argv,
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
    return process.returncode, output.decode(errors="replace").strip()
