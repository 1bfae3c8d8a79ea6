"""A Supervisor stops only what it started: a containerd it finds running is used, left alone.

The tests read small local files (pid file, log) between awaits.

(``take_over=True``, the explicit way to make such a daemon one's own, is in
test_supervisor.py: a daemon left by a killed program is taken over and
restarted.)
"""

# ruff: noqa: ASYNC240

from __future__ import annotations

import asyncio
import logging
import os
import signal
from pathlib import Path

import pytest

from libcontainerd import AsyncClient
from libcontainerd.errors import Unavailable
from libcontainerd.supervisor import Supervisor

from .containers import eventually
from .test_supervisor import Daemons, alive, ctr, daemons

pytestmark = pytest.mark.integration

__all__ = ["daemons"]  # the fixture, shared with test_supervisor.py


def beside(daemon: Supervisor, **options: object) -> Supervisor:
    """Another Supervisor on the same folders and binary."""
    return Supervisor(
        daemon.state_dir,
        daemon.root_dir,
        containerd=daemon.containerd,
        **options,  # type: ignore[arg-type]
    )


async def test_a_running_daemon_is_adopted_used_and_left_running_at_stop(
    daemons: Daemons, caplog: pytest.LogCaptureFixture
) -> None:
    owner = daemons.new()
    await owner.start()
    pid = owner.pid
    assert pid is not None
    assert not owner.adopted
    caplog.set_level(logging.WARNING, logger="libcontainerd.supervisor")
    guest = beside(owner)

    await guest.start()

    assert (guest.adopted, guest.pid) == (True, pid)
    assert "neither restarts nor stops it" in caplog.text
    async with AsyncClient(guest.address, "test") as client:
        assert (await client.version()).version
    starts = Path(owner.log_path).read_text().count("--- libcontainerd")
    await guest.stop()

    assert alive(pid)
    assert owner.pid == pid
    assert Path(owner.pid_file).read_text().strip() == str(pid)
    assert Path(owner.address).exists()
    assert "Server:" in await ctr(owner, "version")
    assert Path(owner.log_path).read_text().count("--- libcontainerd") == starts


async def test_an_adopted_daemon_that_dies_is_not_restarted_by_its_adopter(
    daemons: Daemons,
) -> None:
    owner = daemons.new()
    await owner.start()
    guest = beside(owner)
    await guest.start()
    pid = owner.pid
    assert pid is not None

    os.kill(pid, signal.SIGKILL)
    async with asyncio.timeout(20):
        await owner.wait_ready(min_restarts=1)  # its owner restarts it
    # Its adopter notices (it polls /proc: not its child), and stops watching.
    await eventually(lambda: guest.pid is None, "the adopter to notice the exit")
    with pytest.raises(Unavailable):
        await guest.wait_ready()

    assert guest.restarts == 0
    assert guest.pid is None
    assert owner.pid not in (None, pid)


async def test_a_daemon_that_does_not_answer_is_not_killed_unless_taken_over(
    daemons: Daemons,
) -> None:
    owner = daemons.new()
    await owner.start()
    pid = owner.pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    try:
        guest = beside(owner, start_timeout=1.0)
        with pytest.raises(Unavailable, match="not this Supervisor's to stop"):
            await guest.start()
        assert alive(pid)
    finally:
        os.kill(pid, signal.SIGCONT)
    assert "Server:" in await ctr(owner, "version")
