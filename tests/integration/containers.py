"""Fixtures for tests that run real containers: a client, and a factory that cleans up.

Loaded as a pytest plugin by this folder's conftest.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import os
import shutil
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from libcontainerd import oci, rootfs
from libcontainerd.client import AsyncClient
from libcontainerd.errors import LibcontainerdError
from libcontainerd.oci import SpecOption
from libcontainerd.stdio import DirectIO
from libcontainerd.supervisor import Supervisor
from libcontainerd.sync import Client
from libcontainerd.types import INIT_PROCESS_ID

TEST_NAMESPACE = "lcdtest"
_serial = itertools.count()


class ThreadedClient:
    """Drives the blocking Client from async tests: each method runs in a worker thread.

    So one contract suite, written with ``await``, runs against both clients.
    """

    def __init__(self, client: Client) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if not callable(attribute):
            return attribute
        if inspect.isgeneratorfunction(attribute):
            return self._stream(attribute)

        async def call(*args: Any, **kwargs: Any) -> Any:
            return await asyncio.to_thread(attribute, *args, **kwargs)

        return call

    @staticmethod
    def _stream(method: Callable[..., Iterator[Any]]) -> Callable[..., AsyncIterator[Any]]:
        """A blocking stream as an async iterator: each item fetched in a worker thread."""

        async def iterate(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
            stream: Any = method(*args, **kwargs)  # a generator: it has close()
            done = object()
            try:
                while (item := await asyncio.to_thread(next, stream, done)) is not done:
                    yield item
            finally:
                await asyncio.to_thread(stream.close)

        return iterate


@pytest.fixture(params=["async", "blocking"])
async def client(
    request: pytest.FixtureRequest, supervisor: Supervisor
) -> AsyncIterator[AsyncClient]:
    """The contract suite's client: AsyncClient, then the blocking Client."""
    if request.param == "blocking" and request.node.get_closest_marker("async_only"):
        pytest.skip(
            "drives DirectIO streams or client internals, which live on the blocking"
            " client's own event loop"
        )
    if request.param == "async":
        async with AsyncClient(supervisor.address, namespace=TEST_NAMESPACE) as opened:
            yield opened
    else:
        blocking = Client(supervisor.address, namespace=TEST_NAMESPACE)
        await asyncio.to_thread(blocking.open)
        try:
            yield ThreadedClient(blocking)  # type: ignore[misc]
        finally:
            await asyncio.to_thread(blocking.close)


async def remove_container(client: AsyncClient, container_id: str) -> None:
    """Kill, reap and delete a container and its task, whatever state they are in."""
    with contextlib.suppress(LibcontainerdError):
        await client.signal_process(container_id, INIT_PROCESS_ID, signal.SIGKILL)
    with contextlib.suppress(LibcontainerdError):
        await client.wait(container_id)
    with contextlib.suppress(LibcontainerdError):
        await client.delete_task(container_id)
    with contextlib.suppress(LibcontainerdError):
        await client.delete(container_id)


class ContainerFactory:
    """Makes uniquely named containers on a fresh busybox rootfs, and removes them all."""

    def __init__(self, client: AsyncClient, workdir: Path) -> None:
        self.client = client
        self.workdir = workdir
        self.created: list[str] = []

    def new_id(self, prefix: str = "t") -> str:
        return f"{prefix}-{os.getpid()}-{next(_serial)}"

    def spec(self, args: Sequence[str], *options: SpecOption, container_id: str) -> dict[str, Any]:
        root = rootfs.busybox(self.workdir / container_id / "rootfs")
        return oci.default_spec(list(args), root, *options)

    async def create(
        self,
        args: Sequence[str] = ("/bin/sleep", "300"),
        *options: SpecOption,
        runtime_options: dict[str, Any] | None = None,
    ) -> str:
        container_id = self.new_id()
        spec = self.spec(args, *options, container_id=container_id)
        self.created.append(container_id)
        await self.client.create(container_id, spec, runtime_options)
        return container_id

    async def run(self, args: Sequence[str] = ("/bin/sleep", "300"), *options: SpecOption) -> str:
        container_id = await self.create(args, *options)
        await self.client.start(container_id)
        return container_id

    async def cleanup(self) -> None:
        for container_id in self.created:
            await remove_container(self.client, container_id)
        shutil.rmtree(self.workdir, ignore_errors=True)


@pytest.fixture
async def containers(
    client: AsyncClient, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ContainerFactory]:
    factory = ContainerFactory(client, tmp_path_factory.mktemp("containers"))
    try:
        yield factory
    finally:
        await factory.cleanup()


ProcessAlive = Callable[[int], bool]


@dataclass(frozen=True)
class Shim:
    """A live runc shim process: its pid and its command line's options (-address, -id, ...)."""

    pid: int
    options: dict[str, str]


def live_shims(address: str | None = None) -> list[Shim]:
    """The runc shims alive now (zombies excluded); with ``address``, only that daemon's."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        words = argv.split("\0")
        if not words[0].endswith("containerd-shim-runc-v2") or not process_alive(int(entry)):
            continue
        options = dict(zip(words[1::2], words[2::2], strict=False))
        if address is None or options.get("-address") == address:
            found.append(Shim(int(entry), options))
    return found


SHIM_SOCKETS = Path("/run/containerd/s")


def shim_socket_files() -> set[Path]:
    """The files in containerd's fixed folder of shim sockets (for every daemon)."""
    try:
        return set(SHIM_SOCKETS.iterdir())
    except OSError:
        return set()


def unbound(paths: set[Path]) -> set[Path]:
    """Those of ``paths`` that no process has bound as a unix socket (per /proc/net/unix)."""
    bound = set()
    for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 8:
            bound.add(Path(fields[7]))
    return paths - bound


def container_processes(container_ids: Sequence[str] | set[str]) -> dict[int, str]:
    """Live processes in these containers' cgroups (the default ``/<namespace>/<id>``): pid -> id.

    Catches what outlives a container's task, e.g. a ``runc init`` orphaned
    when containerd died during its create.
    """
    wanted = {f"/{TEST_NAMESPACE}/{cid}": cid for cid in container_ids}
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            lines = Path(f"/proc/{entry}/cgroup").read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            cid = wanted.get(line.split(":", 2)[-1])
            if cid is not None and process_alive(int(entry)):
                found[int(entry)] = cid
                break
    return found


def process_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def namespace_cgroups(namespaces: Iterable[str]) -> list[Path]:
    """The namespace-level cgroup folders of ``namespaces`` that exist (cgroup v1 and v2).

    runc removes a container's own folders but leaves its namespace's
    (``/sys/fs/cgroup[/<controller>]/<namespace>``), shared by the namespace's
    containers.
    """
    root = Path("/sys/fs/cgroup")
    hierarchies = [root, *(path for path in root.iterdir() if path.is_dir())]
    return [
        hierarchy / namespace
        for hierarchy in hierarchies
        for namespace in namespaces
        if (hierarchy / namespace).is_dir()
    ]


def cgroup_file(controller: str, container_id: str, name: str) -> Path:
    """A cgroup v1 file of a container whose cgroups path is the default /<namespace>/<id>."""
    return Path("/sys/fs/cgroup") / controller / TEST_NAMESPACE / container_id / name


def read_cgroup(controller: str, container_id: str, name: str) -> str:
    return cgroup_file(controller, container_id, name).read_text().strip()


async def eventually(
    check: Callable[[], bool | Awaitable[bool]], what: str, seconds: float = 20.0
) -> None:
    """Poll ``check`` until it holds; fail the test naming ``what`` after ``seconds``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while True:
        outcome = check()
        if inspect.isawaitable(outcome):
            outcome = await outcome
        if outcome:
            return
        if loop.time() > deadline:
            pytest.fail(f"gave up after {seconds} s waiting for {what}")
        await asyncio.sleep(0.02)


class Capture:
    """A StdioCallback that keeps the DirectIO, for a test to drive the streams itself."""

    def __init__(self) -> None:
        self.calls = 0
        self._io: DirectIO | None = None

    def __call__(self, io: DirectIO) -> None:
        self.calls += 1
        self._io = io

    @property
    def io(self) -> DirectIO:
        assert self._io is not None, "the callback was not called"
        return self._io


def open_fds() -> int:
    """How many file descriptors this process has open."""
    return len(os.listdir("/proc/self/fd"))


def fd_targets() -> dict[str, str]:
    """This process's open descriptors and what each points at."""
    targets = {}
    for name in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the listing's own descriptor, gone by now
            targets[name] = os.readlink(f"/proc/self/fd/{name}")
    return targets


def new_fds(before: dict[str, str]) -> dict[str, str]:
    """Descriptors open now that were not (to the same file) at ``before``: a leak's trace.

    Descriptors that closed meanwhile do not count: other parts of the process
    (a client of an earlier test, gRPC's own) may release theirs at any time.
    """
    return {fd: target for fd, target in fd_targets().items() if before.get(fd) != target}
