import asyncio
from pathlib import Path

import pytest

from libcontainerd._commands import output_of


async def test_status_and_both_streams_come_back_together() -> None:
    status, text = await output_of("/bin/sh", "-c", "echo out; echo err >&2; exit 3")
    assert status == 3
    assert text.splitlines() == ["out", "err"]


async def test_a_missing_program_raises_oserror() -> None:
    with pytest.raises(FileNotFoundError):
        await output_of("/nonexistent/program")


async def test_a_command_that_overruns_is_killed_and_reaped(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.5):
            await output_of("/bin/sh", "-c", f"echo $$ > {pid_file}; exec sleep 30")
    pid = int(pid_file.read_text())
    assert not Path(f"/proc/{pid}").exists()  # noqa: ASYNC240 - killed and reaped, no zombie
