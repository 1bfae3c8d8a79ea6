"""Bad input against a real containerd (issue #8, item 4): property-based, with hypothesis.

Every call given fuzzed ids, specs, process specs, signals, resources, terminal
sizes or checkpoint directories either succeeds or raises an error of our tree
(:class:`LibcontainerdError`) whose message names what was wrong; never another
exception type, never a hang. A bystander container runs beside the fuzzing
for the whole module and must come out of every example unharmed: running,
same pid, its files untouched, and (every few examples and at each test's
end) an exec in it still works. Mutating calls go to a separate target
container, recreated whenever the fuzzing kills it; every container the
fuzzing creates is deleted again.

``$LIBCONTAINERD_FUZZ_EXAMPLES`` sets the examples per test (CI: 100).
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import math
import os
import re
import signal
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from libcontainerd import _typeurl, oci, rootfs
from libcontainerd._api.containerd.api.services.containers.v1 import containers_pb2
from libcontainerd._api.containerd.runtime.v2.runc.options import oci_pb2 as runc_pb2
from libcontainerd.client import AsyncClient
from libcontainerd.errors import (
    AlreadyExists,
    InvalidArgument,
    LibcontainerdError,
    NotFound,
)
from libcontainerd.supervisor import Supervisor
from libcontainerd.types import INIT_PROCESS_ID, Status

from .. import figures
from .conftest import make_workdir, remove_workdir
from .containers import call_containerd, live_shims, process_alive, remove_container
from .recorder import record_calls

pytestmark = pytest.mark.integration

T = TypeVar("T")

EXAMPLES = int(os.environ.get("LIBCONTAINERD_FUZZ_EXAMPLES", "100"))
# Every call must answer within this; a call that does not is reported as a hang.
CALL_TIMEOUT = 60.0
# An exec in the bystander every this many examples (its cheap checks run after each one).
DEEP_CHECK_EVERY = 25
FUZZ_NAMESPACE = "lcdfuzz"

FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# containerd's identifier rule, written out here independently of the library's.
_VALID_ID = re.compile(r"[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*", re.ASCII)


def valid_id(value: object) -> bool:
    return isinstance(value, str) and len(value) <= 76 and bool(_VALID_ID.fullmatch(value))


# --- strategies ----------------------------------------------------------------------

HUGE_INTS = [
    *(2**63, 2**63 - 1, 2**64, 2**64 - 1, 2**31, 2**32),
    *(-(2**63), -(2**63) - 1, -1, 0, 10**30),
]

TRICKY_IDS = [
    "../x",
    "a/../../b",
    "..",
    ".",
    "/etc/passwd",
    "/",
    "a/b",
    "a\0b",
    "\0",
    "",
    " ",
    "a b",
    "a\nb",
    "x" * 77,
    "x" * 4096,
    "naïve",
    "容器",
    "\u202ebidi",
    "a..b",
    "-a",
    "a-",
    "%2e%2e%2fx",
    "..\\x",
    "x" * 76,
]

wrong_types: st.SearchStrategy[object] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from(HUGE_INTS),
    st.floats(allow_nan=True, allow_infinity=True),
    st.binary(max_size=16),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
)

identifiers: st.SearchStrategy[object] = st.one_of(
    st.sampled_from(TRICKY_IDS),
    st.from_regex(r"\A[A-Za-z0-9]{1,8}([._-][A-Za-z0-9]{1,8}){0,3}\Z"),
    st.text(max_size=90),
    wrong_types,
)

# Values for spec and process fields: wrong types, huge numbers and relative
# strings. Never an absolute path: a fuzzed root.path of "/" would run the
# container on the host's own root; such paths come from curated lists only.
garbage: st.SearchStrategy[object] = st.one_of(
    wrong_types,
    st.text(max_size=12).filter(lambda text: not text.startswith("/")),
    st.lists(st.text(max_size=6).filter(lambda text: not text.startswith("/")), max_size=3),
)

signals: st.SearchStrategy[object] = st.one_of(
    st.integers(min_value=-100, max_value=200),
    st.sampled_from(HUGE_INTS),
    st.sampled_from([s.name for s in signal.Signals]),
    st.sampled_from(["TERM", "sigterm", " 15 ", "15", "SIGFOO", "SIG", "", "0", "65", "²", "٣"]),
    st.text(max_size=12),
    wrong_types,
)

memory_values = st.one_of(st.sampled_from(HUGE_INTS), st.integers(), garbage)
resources_strategy: st.SearchStrategy[object] = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "memory": st.one_of(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "limit": memory_values,
                        "reservation": memory_values,
                        "swap": memory_values,
                        "swappiness": memory_values,
                        "kernel": memory_values,
                    },
                ),
                garbage,
            ),
            "cpu": st.one_of(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "shares": memory_values,
                        "quota": memory_values,
                        "period": memory_values,
                        "cpus": st.one_of(st.sampled_from(["0", "0-1", "1-0", "999", ""]), garbage),
                        "mems": st.one_of(st.sampled_from(["0", "7"]), garbage),
                    },
                ),
                garbage,
            ),
            "pids": st.one_of(
                st.fixed_dictionaries({}, optional={"limit": memory_values}), garbage
            ),
            "blockIO": st.one_of(
                st.fixed_dictionaries({}, optional={"weight": memory_values}), garbage
            ),
            "hugepageLimits": garbage,
            "unified": st.one_of(
                st.dictionaries(st.text(max_size=8), garbage, max_size=2), garbage
            ),
            "network": garbage,
        },
    ),
    garbage,
)

terminal_sizes: st.SearchStrategy[object] = st.one_of(
    st.integers(min_value=-10, max_value=70000), st.sampled_from(HUGE_INTS), wrong_types
)


# --- the bystander, the target and the fuzzing's own containers ----------------------


def _digest(root: Path) -> str:
    """A digest of every name, size and regular file's content below ``root``."""
    digest = hashlib.sha256()
    for folder, dirs, files in sorted(os.walk(root)):
        dirs.sort()
        for name in sorted(files):
            path = Path(folder, name)
            digest.update(str(path.relative_to(root)).encode())
            if path.is_symlink():
                digest.update(os.readlink(path).encode())
            elif path.is_file():
                digest.update(path.read_bytes())
    return digest.hexdigest()


@dataclass(repr=False)
class Bystander:
    """A container that no fuzzed call addresses, and that must stay unharmed."""

    client: AsyncClient
    id: str
    pid: int
    data: Path
    rootfs: Path
    digests: tuple[str, str]
    examples: int = 0
    execs: itertools.count[int] = field(default_factory=itertools.count)

    async def check(self, deep: bool = False) -> None:
        """Fail the test unless the bystander is running as before, its files as they were."""
        status = await within(self.client.status(self.id), "the bystander's status")
        assert status is Status.RUNNING, f"the bystander is {status}"
        alive, pid = await within(self.client.restore(self.id), "the bystander's restore")
        assert (alive, pid) == (True, self.pid), f"the bystander's task is now {alive, pid}"
        assert process_alive(self.pid), "the bystander's process is gone"
        assert (_digest(self.data), _digest(self.rootfs)) == self.digests, (
            "the bystander's files changed"
        )
        self.examples += 1
        if deep or self.examples % DEEP_CHECK_EVERY == 0:
            await self.exec_works()

    async def exec_works(self) -> None:
        exec_id = f"check-{next(self.execs)}"
        script = 'test "$(cat /data/sentinel)" = untouched && test -f /sentinel'
        process = {"args": ["/bin/sh", "-c", script], "cwd": "/", "env": [oci.DEFAULT_PATH_ENV]}
        await within(self.client.exec(self.id, exec_id, process), "an exec in the bystander")
        code, _ = await within(self.client.wait(self.id, exec_id), "the bystander's exec")
        assert code == 0, "an exec in the bystander no longer sees its files"


@dataclass
class Target:
    """The container that mutating calls (signals, resources, execs, checkpoints) go to."""

    client: AsyncClient
    id: str
    spec: dict[str, Any] = field(repr=False)
    recreated: int = 0

    async def ensure_running(self) -> None:
        """Start it again if the fuzzing killed, froze or stopped it."""
        try:
            status = await self.client.status(self.id)
        except NotFound:
            status = None
        if status is Status.PAUSED:
            await self.client.resume(self.id)
            status = await self.client.status(self.id)
        if status is Status.RUNNING and await self._not_stopped():
            return
        await remove_container(self.client, self.id)
        await self.client.create(self.id, self.spec)
        await self.client.start(self.id)
        self.recreated += 1

    async def _not_stopped(self) -> bool:
        # SIGSTOP leaves the task "running" to containerd; CONT wakes the process.
        await self.client.signal_process(self.id, INIT_PROCESS_ID, signal.SIGCONT)
        return True


@dataclass(repr=False)
class Fuzzing:
    """What the module's tests share: one client, the bystander, the target, a rootfs."""

    client: AsyncClient
    bystander: Bystander
    target: Target
    rootfs: Path
    workdir: Path
    created: set[str] = field(default_factory=set)
    serial: itertools.count[int] = field(default_factory=itertools.count)
    tally: Counter[str] = field(default_factory=Counter)
    # What each container the fuzzing created was made from, to name a leak's cause.
    made_from: dict[str, str] = field(default_factory=dict)
    # The containerd calls the client made (recorder.record_calls), for "refused before sending".
    calls: list[str] = field(default_factory=list)

    async def unsent(self, call: Awaitable[T], what: str) -> T | LibcontainerdError:
        """The call's outcome, failing the test if it sent containerd anything.

        For calls the contract refuses before sending. An exec released in the
        background (after an earlier example's exit) is not this call's.
        """
        before = len(self.calls)
        result = await outcome(call, what)
        sent = [name for name in self.calls[before:] if name != "tasks.delete_process"]
        assert sent == [], f"{what} was refused ({result!r}) only after sending {sent}"
        return result

    def count(self, what: str, result: object) -> None:
        """Tally how a call ended: done, refused before sending, or refused by containerd."""
        if not isinstance(result, LibcontainerdError):
            self.tally[f"{what}: done"] += 1
        elif result.code is None:
            self.tally[f"{what}: refused before sending"] += 1
        else:
            self.tally[f"{what}: refused by containerd or runc"] += 1

    def new_id(self, prefix: str) -> str:
        return f"{prefix}-{os.getpid()}-{next(self.serial)}"

    def spec(self, args: list[str] | None = None) -> dict[str, Any]:
        """A valid spec on the shared fuzz rootfs, read-only, so no container changes it."""
        return oci.default_spec(
            args or ["/bin/true"], self.rootfs, oci.with_readonly_rootfs(), oci.with_pids_limit(32)
        )

    async def remove_created(self) -> None:
        """Delete every container the fuzzing created, whatever state it reached."""
        for container_id in sorted(self.created):
            await within(remove_container(self.client, container_id), f"removing {container_id}")
        self.created.clear()

    def protected(self, value: object) -> bool:
        """Whether a fuzzed id names the bystander or the target (left alone)."""
        return value in (self.bystander.id, self.target.id)


async def within(call: Awaitable[T], what: str) -> T:
    """Await ``call``, failing the test as a hang when it takes longer than CALL_TIMEOUT."""
    try:
        return await asyncio.wait_for(call, CALL_TIMEOUT)
    except TimeoutError:
        pytest.fail(f"{what} hung for more than {CALL_TIMEOUT} s")


async def outcome(call: Awaitable[T], what: str) -> T | LibcontainerdError:
    """The call's result, or the error of our tree it raised; anything else fails the test."""
    try:
        return await within(call, what)
    except LibcontainerdError as error:
        failure = error
    assert str(failure).strip(), f"{what} raised {type(failure).__name__} with no message"
    return failure


def refused(result: object, kind: type[LibcontainerdError], *words: str) -> None:
    """Assert ``result`` is a ``kind`` error whose message holds each of ``words``."""
    assert isinstance(result, kind), f"expected {kind.__name__}, got {result!r}"
    for word in words:
        assert word in str(result), f"{result!r} does not name {word!r}"


@pytest.fixture(scope="module")
async def fuzzing(supervisor: Supervisor) -> AsyncIterator[Fuzzing]:
    """The client, bystander and target of this module, removed with their folders at its end."""
    workdir = make_workdir()
    client = AsyncClient(supervisor.address, namespace=FUZZ_NAMESPACE)
    await client.open()
    started: list[str] = []
    try:
        bystander_root = rootfs.busybox(workdir / "bystander")
        (bystander_root / "sentinel").write_text("untouched\n")
        data = workdir / "bystander-data"
        data.mkdir()
        (data / "sentinel").write_text("untouched\n")
        bystander_id = f"bystander-{os.getpid()}"
        spec = oci.default_spec(
            ["/bin/sleep", "1000000"], bystander_root, oci.with_bind_mount(str(data), "/data")
        )
        started.append(bystander_id)
        await client.create(bystander_id, spec)
        pid = await client.start(bystander_id)
        bystander = Bystander(
            client,
            bystander_id,
            pid,
            data,
            bystander_root,
            (_digest(data), _digest(bystander_root)),
        )
        shared_root = rootfs.busybox(workdir / "fuzz-rootfs")
        target_id = f"target-{os.getpid()}"
        target = Target(
            client,
            target_id,
            oci.default_spec(["/bin/sleep", "1000000"], rootfs.busybox(workdir / "target")),
        )
        started.append(target_id)
        await target.ensure_running()
        target.recreated = 0
        fuzzing = Fuzzing(client, bystander, target, shared_root, workdir)
        fuzzing.calls = record_calls(client)
        yield fuzzing
        await fuzzing.remove_created()
        await bystander.check(deep=True)
        topic = f"fuzz, containerd {supervisor.version}"
        for what, number in sorted(fuzzing.tally.items()):
            figures.record(topic, what, number)
        figures.record(topic, "target container restarts", target.recreated)
        figures.record(topic, "bystander checks (all passed)", bystander.examples)
    finally:
        made_from = fuzzing.made_from if "fuzzing" in locals() else {}
        for container_id in started:
            await remove_container(client, container_id)
        left = [info.id for info in await client.list_containers()]
        await client.close()
        shims = await _leftover_shims(supervisor.address)
        for pid in shims:  # not left running on a shared machine; the test still fails
            os.kill(pid, signal.SIGKILL)
        remove_workdir(workdir)
    assert left == [], f"containers left in namespace {FUZZ_NAMESPACE!r}: {left}"
    leaks = {pid: (args, made_from.get(args.split()[-1], "?")) for pid, args in shims.items()}
    assert shims == {}, f"shims left behind (killed now): {leaks}"


async def _leftover_shims(address: str, seconds: float = 15.0) -> dict[int, str]:
    """The shims of this module's namespace still running after ``seconds`` of grace."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while (found := _shims(address)) and loop.time() < deadline:
        await asyncio.sleep(0.5)
    return found


def _shims(address: str) -> dict[int, str]:
    """Running shims of FUZZ_NAMESPACE on the daemon at ``address``, by pid."""
    return {
        shim.pid: f"-namespace {FUZZ_NAMESPACE} -id {shim.options.get('-id')}"
        for shim in live_shims(address)
        if shim.options.get("-namespace") == FUZZ_NAMESPACE
    }


# --- ids --------------------------------------------------------------------------------


def _id_calls(fuzz: Fuzzing, value: Any) -> dict[str, Callable[[], Awaitable[object]]]:
    """Every method that takes a container id, given ``value`` and otherwise valid arguments."""
    client = fuzz.client
    process = {"args": ["/bin/true"], "cwd": "/"}
    checkpoint_dir = fuzz.workdir / "checkpoints" / fuzz.new_id("never")
    return {
        "status": lambda: client.status(value),
        "start": lambda: client.start(value),
        "spec": lambda: client.spec(value),
        "pause": lambda: client.pause(value),
        "resume": lambda: client.resume(value),
        "stats": lambda: client.stats(value),
        "list_pids": lambda: client.list_pids(value),
        "summary": lambda: client.summary(value),
        "restore": lambda: client.restore(value),
        "wait": lambda: client.wait(value),
        "update_resources": lambda: client.update_resources(value, {"pids": {"limit": 64}}),
        "signal_process": lambda: client.signal_process(value, INIT_PROCESS_ID, "SIGCONT"),
        "close_stdin": lambda: client.close_stdin(value, INIT_PROCESS_ID),
        "resize_terminal": lambda: client.resize_terminal(value, INIT_PROCESS_ID, 80, 24),
        "exec": lambda: client.exec(value, "fuzz-exec", process),
        "create_checkpoint": lambda: client.create_checkpoint(value, checkpoint_dir),
        "delete_task": lambda: client.delete_task(value),
        "delete": lambda: client.delete(value),
    }


@FUZZ_SETTINGS
@given(value=identifiers)
@example(value="../x")
@example(value="a/../../b")
@example(value="/etc/passwd")
@example(value="a\0b")
@example(value="x" * 4096)
@example(value="容器")
@example(value="")
@example(value=None)
@example(value=["a"])
@example(value=b"abc")
@example(value=1.5)
async def test_container_ids_are_refused_or_not_found(fuzzing: Fuzzing, value: Any) -> None:
    if fuzzing.protected(value):
        return
    shown = f"{value!r:.40}"
    # No such container: every method refuses a bad id, and names a good one it cannot find.
    for name, call in _id_calls(fuzzing, value).items():
        if valid_id(value):
            result = await outcome(call(), f"{name}({shown})")
            refused(result, NotFound, repr(value))
        else:
            result = await fuzzing.unsent(call(), f"{name}({shown})")
            refused(result, InvalidArgument, "container id")
        fuzzing.count("fuzzed container id", result)
    checkpoints = fuzzing.workdir / "checkpoints"
    assert not checkpoints.exists(), "a refused checkpoint left a directory behind"
    # A good id can be created and deleted; a bad one is refused before anything is sent.
    try:
        creating = fuzzing.client.create(value, fuzzing.spec())
        if valid_id(value):
            created = await outcome(creating, f"create({shown})")
        else:
            created = await fuzzing.unsent(creating, f"create({shown})")
        if valid_id(value):
            assert created is None, f"create({shown}) failed: {created}"
            fuzzing.created.add(value)
            assert await outcome(fuzzing.client.delete(value), f"delete({shown})") is None
            fuzzing.created.discard(value)
        else:
            refused(created, InvalidArgument, "container id")
    finally:
        await fuzzing.remove_created()
    await fuzzing.bystander.check()


# --- process ids ------------------------------------------------------------------------


@FUZZ_SETTINGS
@given(value=identifiers)
@example(value=INIT_PROCESS_ID)
@example(value="../init")
@example(value="a/../../b")
@example(value="\0")
@example(value="x" * 4096)
@example(value=None)
@example(value=7)
async def test_process_ids_are_refused_or_name_a_process(fuzzing: Fuzzing, value: Any) -> None:
    target = fuzzing.target
    await target.ensure_running()
    client = fuzzing.client
    shown = f"{value!r:.40}"
    known = value == INIT_PROCESS_ID
    calls: dict[str, Callable[[], Awaitable[object]]] = {
        "signal_process": lambda: client.signal_process(target.id, value, "SIGCONT"),
        "close_stdin": lambda: client.close_stdin(target.id, value),
        "resize_terminal": lambda: client.resize_terminal(target.id, value, 80, 24),
    }
    if not known:
        # The init process never exits here, so waiting on it would block by design.
        calls["wait"] = lambda: client.wait(target.id, value)
    for name, call in calls.items():
        if not valid_id(value) and not known:
            result = await fuzzing.unsent(call(), f"{name}(target, {shown})")
        else:
            result = await outcome(call(), f"{name}(target, {shown})")
        fuzzing.count("fuzzed process id", result)
        if known and name == "signal_process":
            assert result is None, f"SIGCONT to the target's init failed: {result}"
        elif not valid_id(value) and not known:
            refused(result, InvalidArgument, "process id")
        elif not known and not (name == "wait" and isinstance(result, tuple)):
            # wait answers for an exec of an earlier example that has been released.
            refused(result, NotFound, repr(value))
    # An exec by that id runs (and is released after its exit), or is refused.
    process = {"args": ["/bin/true"], "cwd": "/"}
    if known or not valid_id(value):
        started = await fuzzing.unsent(
            client.exec(target.id, value, process), f"exec(target, {shown})"
        )
    else:
        started = await outcome(client.exec(target.id, value, process), f"exec(target, {shown})")
    if known:
        refused(started, InvalidArgument, "process id", "main process")
    elif not valid_id(value):
        refused(started, InvalidArgument, "process id")
    elif isinstance(started, int):
        code, _ = await within(client.wait(target.id, value), f"wait(target, {shown})")
        assert code == 0
    else:
        # An exec of an earlier example with the same id may not be released yet.
        refused(started, AlreadyExists, repr(value))
    await fuzzing.bystander.check()


# --- signals ----------------------------------------------------------------------------


def _signal_number(value: object) -> int | None:
    """The signal a value names, by the contract (numbers 1..64 and names), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 1 <= value <= 64 else None
    if not isinstance(value, str):
        return None
    text = value.strip().upper()
    if re.fullmatch(r"[0-9]+", text, re.ASCII):
        number = int(text)
        return number if 1 <= number <= 64 else None
    name = text if text.startswith("SIG") else "SIG" + text
    return int(signal.Signals[name]) if name in signal.Signals.__members__ else None


@FUZZ_SETTINGS
@given(value=signals)
@example(value="SIGFOO")
@example(value="SIG")
@example(value=0)
@example(value=65)
@example(value=-9)
@example(value=2**63)
@example(value=2**64 + 9)
@example(value=9.0)
@example(value=None)
@example(value=b"SIGTERM")
@example(value=["SIGTERM"])
@example(value=True)
@example(value="²")
@example(value="SIGKILL")
async def test_signals_are_refused_or_delivered(fuzzing: Fuzzing, value: Any) -> None:
    target = fuzzing.target
    await target.ensure_running()
    shown = f"{value!r:.40}"
    number = _signal_number(value)
    result = await (outcome if number is not None else fuzzing.unsent)(
        fuzzing.client.signal_process(target.id, INIT_PROCESS_ID, value),
        f"signal_process(target, init, {shown})",
    )
    fuzzing.count("fuzzed signal", result)
    if number is None:
        refused(result, InvalidArgument, "signal")
    else:
        assert result is None, f"signal {shown} ({number}) was not delivered: {result}"
    if number == signal.SIGKILL:
        code, _ = await within(fuzzing.client.wait(target.id), "the killed target's exit")
        assert code == 128 + signal.SIGKILL
    await fuzzing.bystander.check()


# --- resources --------------------------------------------------------------------------


@FUZZ_SETTINGS
@given(value=resources_strategy)
@example(value={"memory": {"limit": 2**63}})
@example(value={"memory": {"limit": -2}})
@example(value={"memory": {"limit": 4096}})
@example(value={"pids": {"limit": 2**63}})
@example(value={"pids": {"limit": -(2**63)}})
@example(value={"pids": {"limit": 1.5}})
@example(value={"pids": {"limit": None}})
@example(value={"cpu": {"shares": 2**64, "quota": -5}})
@example(value={"cpu": {"cpus": "999"}})
@example(value={"cpu": {"quota": 2**63}})
@example(value={"unified": {"memory.max": b"1"}})
@example(value={"memory": {"kernel": "lots"}})
@example(value={"hugepageLimits": math.nan})
@example(value=None)
@example(value=[("pids", {"limit": 5})])
@example(value={"pids": {"limit": 77}, "memory": {"limit": (64 << 20) + 5}, "cpu": {"shares": 512}})
async def test_resources_are_refused_or_applied(fuzzing: Fuzzing, value: Any) -> None:
    target = fuzzing.target
    await target.ensure_running()
    shown = f"{value!r:.60}"
    before = len(fuzzing.calls)
    result = await outcome(
        fuzzing.client.update_resources(target.id, value), f"update_resources(target, {shown})"
    )
    fuzzing.count("fuzzed resources", result)
    if isinstance(result, LibcontainerdError):
        # Refused before sending (naming the field), or by the runtime (with its reason).
        refused(result, InvalidArgument, "resources")
        if result.code is None:
            assert "tasks.update" not in fuzzing.calls[before:], f"{result} came after sending"
    else:
        _assert_limits_applied(target.id, value)
    await fuzzing.bystander.check()
    if not isinstance(result, LibcontainerdError) or result.code is not None:
        # Limits were (perhaps partly) set: the next example gets a fresh target.
        await remove_container(fuzzing.client, target.id)


def _cgroup_value(controller: str, container_id: str, name: str) -> str:
    return (Path("/sys/fs/cgroup") / controller / FUZZ_NAMESPACE / container_id / name).read_text()


def _field(value: object, section: str, name: str) -> object:
    part = value.get(section) if isinstance(value, dict) else None
    return part.get(name) if isinstance(part, dict) else None


def _assert_limits_applied(container_id: str, value: object) -> None:
    """The cgroup holds what an accepted update asked for (the fields whose effect is plain).

    Non-positive values mean "unlimited" or "unchanged" to runc, so only
    positive ones are compared; memory is in whole pages, cpu shares clamped
    by the kernel to 2..262144.
    """
    pids = _field(value, "pids", "limit")
    if type(pids) is int and pids > 0:
        assert _cgroup_value("pids", container_id, "pids.max").strip() == str(pids)
    memory = _field(value, "memory", "limit")
    if type(memory) is int and 0 < memory < 2**62:
        page = os.sysconf("SC_PAGE_SIZE")
        written = int(_cgroup_value("memory", container_id, "memory.limit_in_bytes"))
        assert written == memory // page * page, f"memory limit {memory} became {written}"
    shares = _field(value, "cpu", "shares")
    if type(shares) is int and shares > 0:
        written = int(_cgroup_value("cpu", container_id, "cpu.shares"))
        assert written == min(max(shares, 2), 262144), f"cpu shares {shares} became {written}"


async def _assert_options_recorded(fuzzing: Fuzzing, container_id: str, options: Any) -> None:
    """containerd holds, for the new container, each runtime option as it was given."""
    reply = await call_containerd(
        fuzzing.client.address,
        "/containerd.services.containers.v1.Containers/Get",
        containers_pb2.GetContainerRequest(id=container_id),
        containers_pb2.GetContainerResponse,
        namespace=FUZZ_NAMESPACE,
    )
    recorded = _typeurl.unpack(reply.container.runtime.options, runc_pb2.Options)
    assert recorded is not None, "no runtime options recorded"
    for name, sent in dict(options or {}).items():
        if sent is None:
            continue  # None leaves the option unset, as protobuf takes it
        # A string field given as bytes is taken as their UTF-8 text.
        expected = sent.decode() if isinstance(sent, bytes) else sent
        assert getattr(recorded, name) == expected, f"{name}={sent!r} recorded as {recorded}"


# --- runtime options --------------------------------------------------------------------

runtime_options: st.SearchStrategy[object] = st.one_of(
    st.dictionaries(
        st.one_of(
            st.sampled_from(["binary_name", "root", "io_uid", "systemd_cgroup"]),
            st.text(max_size=8),
            st.integers(),
            st.binary(max_size=4),
            st.none(),
        ),
        garbage,
        max_size=2,
    ),
    garbage,
)


@FUZZ_SETTINGS
@given(options=runtime_options)
@example(options={"binary_name": "runc"})
@example(options={1: "x", "binary_nmae": "runc"})
@example(options=[("binary_name", "runc")])
@example(options={"io_uid": 2**63})
@example(options={"root": b"/run/runc"})
async def test_runtime_options_are_refused_or_recorded(fuzzing: Fuzzing, options: Any) -> None:
    container_id = fuzzing.new_id("options")
    shown = f"{options!r:.60}"
    try:
        created = await outcome(
            fuzzing.client.create(container_id, fuzzing.spec(), options), f"create({shown})"
        )
        fuzzing.count("fuzzed runtime options", created)
        if created is None:
            fuzzing.created.add(container_id)
            await _assert_options_recorded(fuzzing, container_id, options)
        else:
            refused(created, InvalidArgument, "runtime option")
    finally:
        await fuzzing.remove_created()
    await fuzzing.bystander.check()


# --- terminal sizes ---------------------------------------------------------------------


@FUZZ_SETTINGS
@given(width=terminal_sizes, height=terminal_sizes)
@example(width=0, height=24)
@example(width=65536, height=24)
@example(width=80, height=-1)
@example(width=2**63, height=2**63)
@example(width=80.0, height=24)
@example(width=None, height=None)
@example(width=True, height=24)
async def test_terminal_sizes_are_refused_or_set(fuzzing: Fuzzing, width: Any, height: Any) -> None:
    target = fuzzing.target
    await target.ensure_running()

    def fits(value: object) -> bool:
        return type(value) is int and 1 <= value <= 65535

    result = await (outcome if fits(width) and fits(height) else fuzzing.unsent)(
        fuzzing.client.resize_terminal(target.id, INIT_PROCESS_ID, width, height),
        f"resize_terminal(target, init, {width!r:.30}, {height!r:.30})",
    )

    if fits(width) and fits(height):
        assert result is None, f"a {width}x{height} terminal was refused: {result}"
    else:
        refused(result, InvalidArgument, "terminal")
        bad = "width" if not fits(width) else "height"
        assert bad in str(result)
    await fuzzing.bystander.check()


# --- specs and exec processes -----------------------------------------------------------

DELETE = object()
MISSING_HOST_PATH = f"/nonexistent-lcd-fuzz-{os.getpid()}/source"

SPEC_FIELDS = [
    "ociVersion",
    "root",
    "root.path",
    "root.readonly",
    "process",
    "process.args",
    "process.cwd",
    "process.env",
    "process.user",
    "process.user.uid",
    "process.user.additionalGids",
    "process.capabilities",
    "process.capabilities.bounding",
    "process.rlimits",
    "process.terminal",
    "process.noNewPrivileges",
    "process.oomScoreAdj",
    "hostname",
    "mounts",
    "mounts+",
    "linux",
    "linux.namespaces",
    "linux.resources",
    "linux.resources.memory",
    "linux.resources.pids.limit",
    "linux.maskedPaths",
    "linux.uidMappings",
    "linux.sysctl",
    "annotations",
    "x-unknown",
]

PROCESS_FIELDS = [
    "args",
    "cwd",
    "env",
    "user",
    "user.uid",
    "user.gid",
    "user.additionalGids",
    "capabilities",
    "rlimits",
    "terminal",
    "noNewPrivileges",
    "oomScoreAdj",
    "consoleSize",
    "x-unknown",
]

# Curated values that may look valid: paths that do not exist, never a real host one.
CURATED = [
    DELETE,
    "/nonexistent/fuzz",
    "",
    "/\0",
    [],
    {},
    [""],
    ["/does-not-exist"],
    ["/bin/true", 5],
    ["A"],
    {"uid": 2**32},
    [{"type": "RLIMIT_NOFILE", "soft": 2**64 - 1, "hard": 2**64 - 1}],
    [{"type": "RLIMIT_NOPE", "soft": 1, "hard": 1}],
    {"bounding": ["CAP_NOPE"]},
    {"destination": "/mnt", "type": "bind", "source": MISSING_HOST_PATH, "options": ["rbind"]},
    {"destination": "relative"},
    {"destination": "/mnt", "type": "no-such-filesystem", "source": "none"},
    [{"type": "user"}],
    {"no.such.sysctl": "1"},
]

mutations = st.lists(
    st.tuples(st.sampled_from(SPEC_FIELDS), st.one_of(st.sampled_from(CURATED), garbage)),
    min_size=1,
    max_size=3,
)
process_mutations = st.lists(
    st.tuples(st.sampled_from(PROCESS_FIELDS), st.one_of(st.sampled_from(CURATED), garbage)),
    min_size=1,
    max_size=3,
)


def mutate(document: dict[str, Any], changes: list[tuple[str, object]]) -> dict[str, Any]:
    """Apply ``changes`` (dotted path, value or DELETE; ``mounts+`` appends a mount)."""
    for path, value in changes:
        if path == "mounts+":
            if isinstance(document.get("mounts"), list) and value is not DELETE:
                document["mounts"].append(value)
            continue
        *parents, key = path.split(".")
        node: Any = document
        for name in parents:
            if not isinstance(node, dict):
                break
            node = node.setdefault(name, {})
        if not isinstance(node, dict):
            continue
        if value is DELETE:
            node.pop(key, None)
        else:
            node[key] = value
    return document


def _described(changes: list[tuple[str, object]]) -> str:
    return ", ".join(
        f"{path}={'<deleted>' if v is DELETE else repr(v)[:40]}" for path, v in changes
    )


def _as_sent(spec: dict[str, Any], container_id: str) -> dict[str, Any]:
    """The spec as create() sends it: JSON, with linux.cgroupsPath defaulted."""
    sent: dict[str, Any] = json.loads(json.dumps(spec))
    linux = sent["linux"] = dict(sent.get("linux") or {})
    if not linux.get("cgroupsPath"):
        linux["cgroupsPath"] = f"/{FUZZ_NAMESPACE}/{container_id}"
    return sent


def _canonical(document: object) -> str:
    # NaN compares unequal to itself; as text it does not.
    return json.dumps(document, sort_keys=True)


@FUZZ_SETTINGS
@given(changes=mutations)
@example(changes=[("mounts+", CURATED[14])])
@example(changes=[("process", DELETE)])
@example(changes=[("root", DELETE), ("linux", None)])
@example(changes=[("linux", "garbage")])
@example(changes=[("process.args", [])])
@example(changes=[("process.args", ["/does-not-exist"])])
@example(changes=[("process.cwd", "/nonexistent/fuzz")])
@example(changes=[("root.path", "/nonexistent/fuzz")])
@example(changes=[("linux.sysctl", {"no.such.sysctl": "1"})])
@example(changes=[("process.user.uid", 2**32)])
@example(changes=[("linux.resources.pids.limit", 2**63)])
@example(changes=[("x-unknown", b"bytes")])
@example(changes=[("process.terminal", True)])
async def test_specs_are_refused_or_run(
    fuzzing: Fuzzing, changes: list[tuple[str, object]]
) -> None:
    client = fuzzing.client
    container_id = fuzzing.new_id("spec")
    spec = mutate(fuzzing.spec(), changes)
    what = f"a spec with {_described(changes)}"
    try:
        created = await outcome(client.create(container_id, spec), f"create({what})")
        fuzzing.count("fuzzed spec, create", created)
        if created is not None:
            refused(created, InvalidArgument, "spec")
            assert str(created).startswith("spec"), f"{created} does not start with the field"
            return
        fuzzing.created.add(container_id)
        fuzzing.made_from[container_id] = what
        # Accepted: containerd holds the spec as sent, with only the default cgroups path added.
        recorded = await within(client.spec(container_id), f"spec({what})")
        assert _canonical(recorded) == _canonical(_as_sent(spec, container_id)), what
        started = await outcome(client.start(container_id), f"start({what})")
        fuzzing.count("fuzzed spec, start", started)
        if isinstance(started, LibcontainerdError):
            refused(started, LibcontainerdError, repr(container_id))
            if MISSING_HOST_PATH in repr(spec.get("mounts")):
                assert MISSING_HOST_PATH in str(started), f"{started} does not name the source"
            # A task that failed to start is gone, so the container can be deleted.
            refused(await outcome(client.status(container_id), "status"), NotFound, "no task")
        else:
            await within(client.wait(container_id), f"the exit of {what}")
            await within(client.delete_task(container_id), "delete_task")
        assert await outcome(client.delete(container_id), f"delete({what})") is None
        fuzzing.created.discard(container_id)
    finally:
        await fuzzing.remove_created()
    await fuzzing.bystander.check()


@FUZZ_SETTINGS
@given(changes=process_mutations)
@example(changes=[("args", [])])
@example(changes=[("args", [""])])
@example(changes=[("args", DELETE)])
@example(changes=[("args", ["/does-not-exist"])])
@example(changes=[("cwd", "/nonexistent/fuzz")])
@example(changes=[("cwd", "")])
@example(changes=[("user", {"uid": 2**32})])
@example(changes=[("rlimits", CURATED[11])])
@example(changes=[("env", ["A"])])
@example(changes=[("terminal", True)])
@example(changes=[("x-unknown", math.inf)])
async def test_exec_processes_are_refused_or_run(
    fuzzing: Fuzzing, changes: list[tuple[str, object]]
) -> None:
    target = fuzzing.target
    await target.ensure_running()
    client = fuzzing.client
    exec_id = fuzzing.new_id("exec")
    process = mutate({"args": ["/bin/true"], "cwd": "/", "env": [oci.DEFAULT_PATH_ENV]}, changes)
    what = f"exec of a process with {_described(changes)}"
    started = await outcome(client.exec(target.id, exec_id, process), what)
    fuzzing.count("fuzzed exec process", started)
    if isinstance(started, InvalidArgument) and started.code is None:
        assert str(started).startswith(("process", f"process {exec_id!r}")), started
    elif isinstance(started, LibcontainerdError):
        # runc could not run it: the message names the exec, and the exec is gone.
        refused(started, LibcontainerdError, repr(exec_id))
        if process.get("cwd") == "/nonexistent/fuzz":
            assert "/nonexistent/fuzz" in str(started), f"{started} does not name the cwd"
        refused(await outcome(client.wait(target.id, exec_id), "wait"), NotFound, repr(exec_id))
    else:
        await within(client.wait(target.id, exec_id), f"the exit of {what}")
    await fuzzing.bystander.check()


# --- checkpoint directories -------------------------------------------------------------

BAD_DIRS = [
    "",
    "\0",
    "/tmp/\0x",
    "/" + "a" * 5000,
    "a" * 300,
    "@file",
    "@file/sub",
    "@file/a/b/c",
    "@full",
    "/dev/null",
    "/dev/null/x",
    "/proc/lcd-fuzz-checkpoint",
    "/sys/lcd-fuzz-checkpoint",
]


def _resolve(fuzz: Fuzzing, value: object) -> object:
    """Turn the placeholders of BAD_DIRS into paths in this module's folder."""
    if not isinstance(value, str) or not value.startswith("@"):
        return value
    marks = {"@file": fuzz.workdir / "a-file", "@full": fuzz.workdir / "a-full-dir"}
    head, _, rest = value.partition("/")
    return str(marks[head] / rest) if rest else str(marks[head])


checkpoint_dirs: st.SearchStrategy[object] = st.one_of(
    st.sampled_from(BAD_DIRS),
    st.text(min_size=1, max_size=20).map(lambda name: f"@file/{name.replace('/', '_')}"),
    wrong_types.filter(lambda value: not isinstance(value, str)),
)


@FUZZ_SETTINGS
@given(value=checkpoint_dirs)
@example(value="@file/sub")
@example(value="/" + "a" * 5000)
@example(value="/proc/lcd-fuzz-checkpoint")
@example(value="@full")
@example(value=None)
@example(value=b"/tmp/x")
async def test_bad_checkpoint_dirs_are_refused(fuzzing: Fuzzing, value: object) -> None:
    (fuzzing.workdir / "a-file").write_text("a file\n")
    (fuzzing.workdir / "a-full-dir").mkdir(exist_ok=True)
    (fuzzing.workdir / "a-full-dir" / "inventory.img").write_text("not a checkpoint\n")
    before = sorted(os.listdir(fuzzing.workdir))
    target = fuzzing.target
    await target.ensure_running()
    client = fuzzing.client
    path: Any = _resolve(fuzzing, value)
    shown = f"{path!r:.60}"
    made = await outcome(client.create_checkpoint(target.id, path), f"create_checkpoint({shown})")
    fuzzing.count("bad checkpoint dir", made)
    assert isinstance(made, InvalidArgument | AlreadyExists), f"{shown} gave {made!r}"
    assert "checkpoint" in str(made)
    assert await client.status(target.id) is Status.RUNNING
    if path is None:
        return  # start(checkpoint_dir=None) is a plain start
    # Starting from it is refused too, and leaves no task.
    container_id = fuzzing.new_id("restore")
    try:
        await within(client.create(container_id, fuzzing.spec()), "create")
        fuzzing.created.add(container_id)
        restored = await outcome(
            client.start(container_id, checkpoint_dir=path), f"start(checkpoint_dir={shown})"
        )
        refused(restored, InvalidArgument, "checkpoint")
        refused(await outcome(client.status(container_id), "status"), NotFound, "no task")
    finally:
        await fuzzing.remove_created()
    assert sorted(os.listdir(fuzzing.workdir)) == before, "a refused checkpoint left files"
    await fuzzing.bystander.check()


@pytest.mark.parametrize("attach", ["a string", 5, b"bytes", object()])
async def test_restore_refuses_an_attach_stdio_that_is_not_a_callback(
    fuzzing: Fuzzing, attach: object
) -> None:
    await fuzzing.target.ensure_running()
    restored = await outcome(
        fuzzing.client.restore(fuzzing.target.id, attach),  # type: ignore[arg-type]
        f"restore(target, {attach!r})",
    )
    refused(restored, InvalidArgument, "attach_stdio")
    await fuzzing.bystander.check()
