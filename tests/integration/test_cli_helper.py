"""lcd's command helper (``lcd helper``): commands handed to a resident lcd behave as run alone.

Each test starts a private helper (its socket in the test's folder, never
the default one) and runs lcd with ``$LIBCONTAINERD_HELPER_SOCKET`` pointing
at it, against the suite's containerd; the same commands with the helper
off are the reference. The helper's ``served`` count tells that a command
went through it. Faults: the caller killed, the helper killed, a hand-over
it must refuse; nothing a test started is left running. The short read-only
commands (``ps``, ``inspect``, ``top``, ``version``) run in the helper's warm
worker (its ``warm`` count, its ``worker`` pid), and give what they give
alone too, their failures included.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from libcontainerd import _lcd
from libcontainerd.supervisor import Supervisor

from .containers import process_alive
from .lcd import LCD, Result, TerminalSession, check_terminal_shell, environment

pytestmark = pytest.mark.integration

NAMESPACE = "lcdhelper"


class Helper:
    """A private command helper, and lcd run with it (``via``) or without it (``alone``)."""

    def __init__(self, supervisor: Supervisor, workdir: Path) -> None:
        self.workdir = workdir
        self.socket = workdir / "helper.sock"
        base = environment(workdir / "state", workdir / "root")
        self.env_alone = base
        self.env_via = base | {
            "LIBCONTAINERD_HELPER": "on",
            "LIBCONTAINERD_HELPER_SOCKET": str(self.socket),
        }
        self.prefix = ("--address", supervisor.address, "--namespace", NAMESPACE)

    async def run(
        self,
        *args: str,
        via: bool = True,
        stdin: str | None = None,
        cwd: Path | None = None,
        prefix: bool = True,
    ) -> Result:
        argv = [LCD, *(self.prefix if prefix else ()), *args]
        done = await asyncio.to_thread(
            subprocess.run,
            argv,
            env=self.env_via if via else self.env_alone,
            input=stdin,
            stdin=subprocess.DEVNULL if stdin is None else None,
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
            cwd=cwd,
        )
        return Result(done.returncode, done.stdout, done.stderr)

    async def spawn(self, *args: str) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            LCD,
            *self.prefix,
            *args,
            env=self.env_via,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )

    async def command(self, *args: str) -> Result:
        """``lcd helper ARGS --socket <ours>`` (always run in the caller's process)."""
        return await self.run("helper", *args, "--socket", str(self.socket), prefix=False)

    async def status(self) -> dict[str, Any]:
        result = await self.command("status", "--json")
        assert result.status in (0, 3), result
        report: dict[str, Any] = json.loads(result.stdout)
        return report

    async def served(self) -> int:
        served: int = (await self.status())["served"]
        return served

    async def counts(self) -> tuple[int, int]:
        """Commands served, and of those by the warm worker."""
        status = await self.status()
        return status["served"], status["warm"]

    async def children(self) -> list[int]:
        """The helper's forked commands (its children but the warm worker)."""
        status = await self.status()
        pid = int(status["pid"])
        text = await asyncio.to_thread(Path(f"/proc/{pid}/task/{pid}/children").read_text)
        return [int(child) for child in text.split() if int(child) != status["worker"]]

    async def until(self, condition: Callable[[], Awaitable[bool]], seconds: float = 30) -> None:
        async with asyncio.timeout(seconds):
            while not await condition():
                await asyncio.sleep(0.05)

    async def running(self, name: str) -> bool:
        listing = await self.run("ps", "--json", via=False)
        return any(record["id"] == name for record in json.loads(listing.stdout or "[]"))


@pytest.fixture
async def helper(supervisor: Supervisor, workdir: Path) -> AsyncIterator[Helper]:
    ours = Helper(supervisor, workdir)
    started = await ours.command("start", "--idle-timeout", "600")
    assert started.status == 0, started
    pid = int((await ours.status())["pid"])
    try:
        yield ours
    finally:
        with contextlib.suppress(Exception):
            await ours.command("stop", "--timeout", "10")
        if process_alive(pid):  # only what a failed test left: ours, by pid
            os.kill(pid, signal.SIGKILL)
        listing = await ours.run("ps", "-a", "--json", via=False)
        for record in json.loads(listing.stdout or "[]"):
            await ours.run("rm", "-f", record["id"], via=False)


async def test_commands_give_what_they_give_alone_and_go_through_the_helper(
    helper: Helper,
) -> None:
    (helper.workdir / "vars.env").write_text("GREETING=from-the-env-file\n")
    cases: list[tuple[tuple[str, ...], str | None]] = [
        (("run", "--rm", "--", "sh", "-c", "echo out; echo err >&2; exit 3"), None),
        (("run", "--rm", "-i", "--", "cat"), "through stdin\n"),
        # a file named relative to the caller's working folder
        (("run", "--rm", "--env-file", "vars.env", "--", "sh", "-c", "echo $GREETING"), None),
        (("run", "--rm", "--no-such-option"), None),
        (("inspect", "no-such-container"), None),
        (("ps", "-a"), None),
    ]
    before = await helper.served()
    for args, stdin in cases:
        alone = await helper.run(*args, via=False, stdin=stdin, cwd=helper.workdir)
        via = await helper.run(*args, stdin=stdin, cwd=helper.workdir)
        assert via == alone, args
    assert await helper.served() == before + len(cases)

    first = await helper.run(*cases[0][0])
    assert (first.status, first.stdout, first.stderr) == (3, "out\n", "err\n")
    assert (await helper.run(*cases[2][0], cwd=helper.workdir)).stdout == "from-the-env-file\n"
    assert (await helper.run(*cases[3][0])).status == 2


async def test_many_callers_at_once_each_get_their_own_command(helper: Helper) -> None:
    before = await helper.served()
    callers = 8
    results = await asyncio.gather(
        *(
            helper.run("run", "--rm", "--", "sh", "-c", f"echo caller-{index}; exit {index}")
            for index in range(callers)
        )
    )
    assert [(r.status, r.stdout, r.stderr) for r in results] == [
        (index, f"caller-{index}\n", "") for index in range(callers)
    ]
    assert await helper.served() == before + callers
    assert (await helper.status())["active"] == 0


async def test_the_environment_is_the_callers(helper: Helper) -> None:
    """Options from the environment ($LIBCONTAINERD_NAMESPACE) come from the caller's."""
    await helper.run("run", "--name", "in-env-namespace", "--", "true")
    env = helper.env_via | {"LIBCONTAINERD_NAMESPACE": NAMESPACE}
    argv = [LCD, "--address", helper.prefix[1], "ps", "-a", "--json"]
    done = await asyncio.to_thread(subprocess.run, argv, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done
    assert [record["id"] for record in json.loads(done.stdout)] == ["in-env-namespace"]


async def test_a_terminal_is_the_callers(helper: Helper) -> None:
    argv = [LCD, *helper.prefix, "run", "--rm", "-it", "--", "sh"]
    before = await helper.served()
    await check_terminal_shell(argv, helper.env_via, rows=29, columns=97, status=5)
    assert await helper.served() == before + 1


@pytest.mark.parametrize("via", [False, True], ids=["alone", "via-helper"])
async def test_the_terminal_size_follows_the_callers(helper: Helper, via: bool) -> None:
    """A resize of lcd's terminal (SIGWINCH to lcd, forwarded by the caller) reaches the shell.

    ``setsid -c`` makes the terminal lcd's controlling one, as a shell's is:
    the kernel then signals lcd when its size changes.
    """
    argv = ["setsid", "-c", "-w", LCD, *helper.prefix, "run", "--rm", "-it", "--", "sh"]
    env = helper.env_via if via else helper.env_alone
    before = await helper.served()
    session = await asyncio.to_thread(TerminalSession.start, argv, env, 29, 97)
    try:
        await asyncio.to_thread(session.read_until, b"# ")
        session.resize(41, 123)

        def size_seen() -> bool:
            session.type(b"stty size\r")
            return b"41 123" in session.read_until(b"# ")

        async with asyncio.timeout(30):
            while not await asyncio.to_thread(size_seen):
                await asyncio.sleep(0.1)
        session.type(b"exit 3\r")
        assert await asyncio.to_thread(session.exit_status) == 3
    finally:
        session.close()
    assert await helper.served() == before + (1 if via else 0)


async def test_a_signal_to_the_caller_reaches_the_command(helper: Helper) -> None:
    script = "trap 'exit 42' TERM; echo ready; sleep 60 & wait"
    process = await helper.spawn("run", "--rm", "--name", "signalled", "--", "sh", "-c", script)
    assert process.stdout is not None
    assert await asyncio.wait_for(process.stdout.readline(), 30) == b"ready\n"
    process.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(process.wait(), 30) == 42
    assert not await helper.running("signalled")


async def test_a_killed_caller_takes_its_command_along(helper: Helper) -> None:
    process = await helper.spawn("run", "--name", "orphaned", "--", "sleep", "60")
    await helper.until(lambda: helper.running("orphaned"))
    (command,) = await helper.children()
    process.kill()
    await process.wait()

    async def ended() -> bool:
        return not process_alive(command) and (await helper.status())["active"] == 0

    await helper.until(ended)
    # As when lcd itself is killed: its container stays, for 'lcd rm'.
    assert await helper.running("orphaned")
    assert (await helper.run("rm", "-f", "orphaned")).status == 0


async def test_a_killed_helper_fails_its_callers_clearly(helper: Helper) -> None:
    process = await helper.spawn("run", "--rm", "--name", "abandoned", "--", "sleep", "60")
    await helper.until(lambda: helper.running("abandoned"))
    (command,) = await helper.children()
    status = await helper.status()
    worker = status["worker"]
    assert process_alive(worker)
    os.kill(int(status["pid"]), signal.SIGKILL)
    _stdout, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 125
    assert stderr == b"lcd: the command helper went away before the command ended\n"

    async def gone() -> bool:
        return not process_alive(command) and not process_alive(worker)

    await helper.until(gone)  # they died with the helper (PR_SET_PDEATHSIG)
    # Its socket is left: the next command runs in its own process.
    assert helper.socket.exists()
    listing = await helper.run("ps", "-a")
    assert listing.status == 0
    assert "abandoned" in listing.stdout
    assert (await helper.run("rm", "-f", "abandoned")).status == 0
    assert (await helper.command("status")).status == 3


def _hand_over(path: Path, message: bytes, descriptors: tuple[int, ...] = (0, 1, 2)) -> bytes:
    """Send one hand-over as a caller would and return the helper's first reply."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as connection:
        connection.connect(str(path))
        rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, bytes(memoryview(_ints(descriptors))))]
        connection.sendmsg([message], rights if descriptors else [])
        return connection.recv(4096)


def _ints(values: tuple[int, ...]) -> bytearray:
    data = bytearray()
    for value in values:
        data += value.to_bytes(4, "little")
    return data


async def test_hand_overs_it_cannot_serve_are_refused(helper: Helper) -> None:
    package = os.path.dirname(_lcd.__file__)
    before = await helper.served()
    elsewhere = _lcd.request(["lcd", "ps"], "/", 0o022, {}, "/elsewhere/libcontainerd")
    reply = await asyncio.to_thread(_hand_over, helper.socket, elsewhere)
    assert reply.startswith(_lcd.REFUSED), reply
    assert package.encode() in reply
    garbage = await asyncio.to_thread(_hand_over, helper.socket, b"not a request")
    assert garbage.startswith(_lcd.REFUSED + b"not an lcd-helper/1 request"), garbage
    ours = _lcd.request(["lcd", "ps"], "/", 0o022, {}, package)
    without_stdio = await asyncio.to_thread(_hand_over, helper.socket, ours, ())
    assert without_stdio == _lcd.REFUSED + b"stdin, stdout and stderr were not passed"
    assert await helper.served() == before
    # ... and it still serves.
    assert (await helper.run("ps")).status == 0
    assert await helper.served() == before + 1


async def test_callers_that_misbehave_do_not_stop_the_helper(helper: Helper) -> None:
    # One that connects and says nothing holds the helper up for its time at most.
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as silent:
        silent.connect(str(helper.socket))
        assert (await helper.run("ps")).status == 0
    # A hand-over made by hand: signal messages that are not signals are ignored.
    script = "trap 'exit 42' TERM; sleep 60 & wait"
    argv = [LCD, *helper.prefix, "run", "--rm", "--name", "by-hand", "--", "sh", "-c", script]
    package = os.path.dirname(_lcd.__file__)
    message = _lcd.request(argv, str(helper.workdir), 0o022, helper.env_alone, package)
    null = os.open(os.devnull, os.O_RDWR)
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as connection:
        connection.settimeout(60)
        connection.connect(str(helper.socket))
        rights = bytes(_ints((null,) * 3))
        try:
            connection.sendmsg([message], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, rights)])
        finally:
            os.close(null)
        assert connection.recv(64) == _lcd.RUNNING
        await helper.until(lambda: helper.running("by-hand"))
        for garbage in (b"S", b"Sterm", b"S-15", b"S99999", b"?15"):
            connection.send(garbage)
        assert await helper.running("by-hand")
        connection.send(_lcd.SIGNAL + b"15")
        reply = await asyncio.to_thread(connection.recv, 64)
    assert reply == _lcd.EXITED + b"42"
    assert not await helper.running("by-hand")


def _one_hand_over(path: Path, reply: bytes | None) -> None:
    """A stand-in helper: takes one hand-over, answers ``reply`` (None: nothing) and closes."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as listener:
        listener.bind(str(path))
        listener.listen(1)
        listener.settimeout(60)
        connection, _ = listener.accept()
        with connection:
            _message, ancillary, _flags, _address = connection.recvmsg(1 << 20, 64)
            for _level, _kind, data in ancillary:
                for index in range(0, len(data) - len(data) % 4, 4):
                    os.close(int.from_bytes(data[index : index + 4], "little"))
            if reply is not None:
                connection.send(reply)


async def test_a_helper_that_refuses_or_goes_silent(helper: Helper) -> None:
    """Refused: the command runs in its caller. Taken and not answered: it fails, never twice."""
    for reply, status in ((_lcd.REFUSED + b"for a reason", 0), (None, 125)):
        fake = helper.workdir / f"fake-{status}.sock"
        serving = asyncio.create_task(asyncio.to_thread(_one_hand_over, fake, reply))
        while not fake.exists():
            await asyncio.sleep(0.01)
        env = helper.env_via | {"LIBCONTAINERD_HELPER_SOCKET": str(fake)}
        argv = [LCD, *helper.prefix, "ps"]
        done = await asyncio.to_thread(
            subprocess.run, argv, env=env, capture_output=True, text=True
        )
        await serving
        assert done.returncode == status, done
        if status == 0:
            assert done.stdout.startswith("ID "), done
        else:
            assert done.stderr == "lcd: the command helper went away before it answered\n"


async def test_start_twice_status_and_stop(helper: Helper) -> None:
    pid = int((await helper.status())["pid"])
    worker = (await helper.status())["worker"]
    again = await helper.command("start")
    assert again.stdout == f"the command helper is already running (pid {pid})\n"
    text = await helper.command("status")
    assert text.status == 0
    assert f"the command helper runs: pid {pid}, socket {helper.socket}" in text.stdout

    # A stop waits for the running command, which ends as it would have.
    process = await helper.spawn("run", "--rm", "--", "sleep", "1")

    async def one_running() -> bool:
        return bool((await helper.status())["active"] == 1)

    await helper.until(one_running)
    stopped = await helper.command("stop")
    assert stopped.stdout == f"stopped the command helper (pid {pid})\n"
    assert await asyncio.wait_for(process.wait(), 30) == 0
    assert not process_alive(pid)
    assert not process_alive(worker)
    assert not helper.socket.exists()
    after = await helper.command("status")
    assert (after.status, after.stdout) == (3, f"no command helper answers at {helper.socket}\n")
    # Without it, commands run in their own process, as before.
    assert (await helper.run("ps")).status == 0


async def test_an_idle_helper_ends_by_itself(supervisor: Supervisor, workdir: Path) -> None:
    ours = Helper(supervisor, workdir)
    assert (await ours.command("start", "--idle-timeout", "1")).status == 0
    status = await ours.status()
    pid, worker = int(status["pid"]), status["worker"]
    try:

        async def ended() -> bool:
            return not process_alive(pid) and not process_alive(worker)

        await ours.until(ended, seconds=30)
        assert not ours.socket.exists()
    finally:
        if process_alive(pid):
            os.kill(pid, signal.SIGKILL)


async def test_short_read_only_commands_run_in_the_warm_worker(helper: Helper) -> None:
    started = await helper.run(
        "run", "-d", "--network", "none", "--name", "warm-one", "--", "sleep", "60", via=False
    )
    assert started.status == 0, started
    cases: list[tuple[str, ...]] = [
        ("ps", "-q"),
        ("ps", "-a", "-q"),
        ("inspect", "warm-one"),
        ("inspect", "warm-one", "no-such-container"),
        ("top", "warm-one", "--json"),
        ("top", "no-such-container"),
        ("top",),  # a usage error
        ("version", "--json"),
        ("ps", "--help"),
    ]
    served, warm = await helper.counts()
    for args in cases:
        alone = await helper.run(*args, via=False)
        via = await helper.run(*args)
        if alone.stdout.startswith("["):  # JSON: labels come in no set order, even alone
            assert json.loads(via.stdout) == json.loads(alone.stdout), args
            via, alone = replace(via, stdout=""), replace(alone, stdout="")
        assert via == alone, args
    assert await helper.counts() == (served + len(cases), warm + len(cases))
    assert "warm-one" in (await helper.run("ps", "-q")).stdout
    # Anything else is forked, as before.
    assert (await helper.run("kill", "warm-one")).status == 0
    assert await helper.counts() == (served + len(cases) + 2, warm + len(cases) + 1)


async def test_many_warm_callers_at_once_each_get_their_own_answer(helper: Helper) -> None:
    """The worker takes one at a time; the others are forked meanwhile, with the same result."""
    served, warm = await helper.counts()
    names = [f"many-{index}" for index in range(8)]
    results = await asyncio.gather(*(helper.run("inspect", name) for name in names))
    for name, result in zip(names, results, strict=True):
        assert (result.status, result.stdout) == (1, "[]\n")
        assert result.stderr == f"lcd: no such container: {name!r}\n"
    served_after, warm_after = await helper.counts()
    assert served_after == served + len(names)
    assert warm < warm_after <= warm + len(names)


async def test_a_warm_command_fails_as_alone_when_containerd_goes_and_comes_back(
    helper: Helper, containerd: str
) -> None:
    """The worker keeps its client for the next command, and checks it before lending it."""
    daemon = Supervisor(helper.workdir / "ds", helper.workdir / "dr", containerd=containerd)
    await daemon.start()
    prefix = ("--address", daemon.address)
    try:
        served, warm = await helper.counts()
        for _ in range(2):
            assert (await helper.run(*prefix, "ps", prefix=False)).status == 0
        await daemon.stop()
        alone = await helper.run(*prefix, "ps", prefix=False, via=False)
        assert alone.status == 1, alone
        assert await helper.run(*prefix, "ps", prefix=False) == alone
        # The embedded daemon's folders, with nothing there: the same advice as alone.
        embedded = ("--state-dir", str(helper.workdir / "none"), "ps")
        alone = await helper.run(*embedded, prefix=False, via=False)
        assert "start one with 'lcd daemon start'" in alone.stderr, alone
        assert await helper.run(*embedded, prefix=False) == alone
        await daemon.start()
        assert (await helper.run(*prefix, "ps", prefix=False)).status == 0
        assert await helper.counts() == (served + 5, warm + 5)
    finally:
        await daemon.stop()


async def test_a_signal_ends_a_warm_command_and_its_worker(helper: Helper, containerd: str) -> None:
    """A warm command that hangs (its containerd stopped) ends on the caller's Ctrl-C as it
    would alone; its worker is killed with it and another one takes the next commands."""
    daemon = Supervisor(helper.workdir / "ds", helper.workdir / "dr", containerd=containerd)
    await daemon.start()
    assert daemon.pid is not None
    prefix = ("--address", daemon.address)
    stopped = False
    try:
        assert (await helper.run(*prefix, "ps", prefix=False)).status == 0  # its client is kept
        worker = (await helper.status())["worker"]
        os.kill(daemon.pid, signal.SIGSTOP)
        stopped = True
        process = await asyncio.create_subprocess_exec(
            LCD,
            *prefix,
            "ps",
            env=helper.env_via,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )

        async def one_running() -> bool:
            return bool((await helper.status())["active"] == 1)

        await helper.until(one_running)
        await asyncio.sleep(0.2)
        assert process.returncode is None  # it waits for containerd
        process.send_signal(signal.SIGINT)
        stdout, stderr = await asyncio.wait_for(process.communicate(), 30)
        assert (await process.wait(), stdout, stderr) == (130, b"", b"lcd: interrupted\n")

        async def worker_gone() -> bool:
            return not process_alive(worker)

        await helper.until(worker_gone)
        os.kill(daemon.pid, signal.SIGCONT)
        stopped = False
        served, warm = await helper.counts()
        # The next is forked (and a new worker made), the one after is the new worker's.
        for _ in range(2):
            assert (await helper.run(*prefix, "ps", prefix=False)).status == 0
        assert await helper.counts() == (served + 2, warm + 1)
        worker = (await helper.status())["worker"]
        assert worker is not None
        assert (await helper.status())["active"] == 0

        # A caller killed outright: its warm command (and worker) go too, as a fork would.
        os.kill(daemon.pid, signal.SIGSTOP)
        stopped = True
        process = await asyncio.create_subprocess_exec(
            LCD, *prefix, "ps", env=helper.env_via, stdin=asyncio.subprocess.DEVNULL
        )
        await helper.until(one_running)
        process.kill()
        await process.wait()

        async def all_gone() -> bool:
            return not process_alive(worker) and (await helper.status())["active"] == 0

        await helper.until(all_gone)
    finally:
        if stopped:
            os.kill(daemon.pid, signal.SIGCONT)
        await daemon.stop()


async def test_a_helper_whose_code_changed_steps_aside(helper: Helper) -> None:
    """Once a module it loaded changes on disk, the command runs in its caller, and the helper
    (its warm worker with it) ends and leaves its socket to the next one."""
    status = await helper.status()
    pid, worker = int(status["pid"]), status["worker"]
    assert (await helper.run("ps")).status == 0
    module = Path(_lcd.__file__).with_name("cli") / "_output.py"
    before = module.stat()
    os.utime(module, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000))
    try:
        refused = await helper.run("ps")
        assert refused == await helper.run("ps", via=False)

        async def ended() -> bool:
            return not process_alive(pid) and not process_alive(worker)

        await helper.until(ended)
        assert not helper.socket.exists()
        assert (await helper.command("status")).status == 3
    finally:
        os.utime(module, ns=(before.st_atime_ns, before.st_mtime_ns))
