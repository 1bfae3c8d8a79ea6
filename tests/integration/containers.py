"""Fixtures for tests that run real containers: a client, and a factory that cleans up.

The ``client`` fixture is an AsyncClient, then the blocking Client driven
from worker threads (:class:`ThreadedClient`), so each test of the contract
runs against both; ``new_client`` makes more clients of the same kind.
Imported by this folder's conftest.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import os
import shutil
import signal
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Generator,
    Iterable,
    Iterator,
    Sequence,
)
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import grpc
import grpc.aio
import pytest
from google.protobuf.message import Message

from libcontainerd import oci, rootfs
from libcontainerd._api.containerd.api.services.tasks.v1 import tasks_pb2
from libcontainerd.client import AsyncClient, Event
from libcontainerd.errors import LibcontainerdError
from libcontainerd.oci import SpecOption
from libcontainerd.stdio import DirectIO
from libcontainerd.supervisor import Supervisor
from libcontainerd.sync import Client, EventIterator
from libcontainerd.types import INIT_PROCESS_ID, Backend, Status

TEST_NAMESPACE = "lcdtest"
_serial = itertools.count()

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class ThreadedClient:
    """Drives the blocking Client from async tests: each method runs in a worker thread.

    So one contract suite, written with ``await``, runs against both clients.
    Unopened, it opens with ``async with`` as an AsyncClient does.
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

    def events(self) -> ThreadedEvents:
        # Subscribed here and now, as AsyncClient.events() does: events from this moment on.
        return ThreadedEvents(self._client.events())

    async def __aenter__(self) -> ThreadedClient:
        await asyncio.to_thread(self._client.open)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await asyncio.to_thread(self._client.close)

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


class ThreadedEvents:
    """The blocking Client's EventIterator as an EventSubscription: ``next()`` in a worker thread.

    ``end()`` and ``close()`` are its ``close()``: it ends the iteration, waking
    a ``next()`` blocked in the worker thread.
    """

    def __init__(self, events: EventIterator) -> None:
        self._events = events

    def __aiter__(self) -> ThreadedEvents:
        return self

    async def __anext__(self) -> Event:
        item = await asyncio.to_thread(next, self._events, None)
        if item is None:
            raise StopAsyncIteration
        return item

    def close(self) -> None:
        self._events.close()

    def end(self) -> None:
        self._events.close()

    async def __aenter__(self) -> ThreadedEvents:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()


@pytest.fixture(params=["async", "blocking"])
def client_kind(request: pytest.FixtureRequest) -> str:
    """Which client the test runs with: AsyncClient, then the blocking Client.

    A test marked ``@pytest.mark.async_only(reason=...)`` is skipped for the
    blocking Client, with that reason, which it must give.
    """
    marker = request.node.get_closest_marker("async_only")
    if request.param == "blocking" and marker is not None:
        reason = marker.kwargs.get("reason") or (marker.args[0] if marker.args else "")
        if not reason:
            pytest.fail("@pytest.mark.async_only needs reason=: why the blocking Client cannot")
        pytest.skip(f"async only: {reason}")
    return str(request.param)


def make_client(
    kind: str, address: str, namespace: str = TEST_NAMESPACE, backend: Backend | None = None
) -> AsyncClient:
    """An unopened client of that kind (open it with ``async with``)."""
    if kind == "async":
        return AsyncClient(address, namespace, backend)
    return ThreadedClient(Client(address, namespace, backend))  # type: ignore[return-value]


NewClient = Callable[..., AsyncClient]


@pytest.fixture
def new_client(client_kind: str, supervisor: Supervisor) -> NewClient:
    """Makes more unopened clients of the test's kind: ``async with new_client() as other:``.

    Takes ``backend=`` and ``namespace=``; the address is the suite's daemon.
    """

    def make(*, backend: Backend | None = None, namespace: str = TEST_NAMESPACE) -> AsyncClient:
        return make_client(client_kind, supervisor.address, namespace, backend)

    return make


@pytest.fixture
async def client(client_kind: str, supervisor: Supervisor) -> AsyncIterator[AsyncClient]:
    """The contract suite's client: AsyncClient, then the blocking Client."""
    async with make_client(client_kind, supervisor.address) as opened:
        yield opened


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


async def checkpoint_and_restore(
    client: AsyncClient, container_id: str, images: Path, value: Callable[[], int]
) -> tuple[int, int]:
    """Checkpoint with exit, delete the task, restore from ``images``: ``value()`` at the
    checkpoint (a counter the container keeps), and the restored init's pid, alive and running.
    """
    await client.create_checkpoint(container_id, images, exit=True)
    async with asyncio.timeout(30):
        await client.wait(container_id)
    at_checkpoint = value()
    await client.delete_task(container_id)
    pid = await client.start(container_id, checkpoint_dir=images)
    assert process_alive(pid)
    assert await client.status(container_id) is Status.RUNNING
    return at_checkpoint, pid


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
    """A StdioCallback that keeps the DirectIO, for a test to drive the streams itself.

    The streams belong to the loop that ran the callback: the blocking
    Client's own loop thread for that client. The methods below use them
    there, from whatever loop the test runs on.
    """

    def __init__(self) -> None:
        self.calls = 0
        self._io: DirectIO | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def __call__(self, io: DirectIO) -> None:
        self.calls += 1
        self._io = io
        self._loop = asyncio.get_running_loop()

    @property
    def io(self) -> DirectIO:
        assert self._io is not None, "the callback was not called"
        return self._io

    async def write(self, data: bytes) -> None:
        """Write to the process's stdin (and wait until it has been taken)."""

        async def write() -> None:
            assert self.io.stdin is not None, "no stdin: start the process with_stdin=True"
            self.io.stdin.write(data)
            await self.io.stdin.drain()

        await self._on_its_loop(write())

    async def close_stdin(self) -> None:
        """Close our end of the process's stdin: it sees EOF."""

        async def close() -> None:
            assert self.io.stdin is not None, "no stdin: start the process with_stdin=True"
            self.io.stdin.close()

        await self._on_its_loop(close())

    async def readline(self) -> bytes:
        return await self._on_its_loop(self.io.stdout.readline())

    async def read(self) -> bytes:
        """The rest of stdout, to its end."""
        return await self._on_its_loop(self.io.stdout.read())

    async def read_stderr(self) -> bytes:
        assert self.io.stderr is not None, "no stderr: the process has a terminal"
        return await self._on_its_loop(self.io.stderr.read())

    async def _on_its_loop(self, work: Coroutine[Any, Any, T]) -> T:
        assert self._loop is not None, "the callback was not called"
        return await on_loop(self._loop, work)


async def on_loop(loop: asyncio.AbstractEventLoop, work: Coroutine[Any, Any, T]) -> T:
    """Run ``work`` on ``loop`` (another thread's, or this one) and await its result here."""
    if loop is asyncio.get_running_loop():
        return await work
    return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(work, loop))


class Attacher(Protocol[T_co]):
    """A ready-made attacher (CollectOutput, CopyToFiles, ...): awaited, or waited for."""

    def result(self, timeout: float | None = None) -> T_co: ...

    def __await__(self) -> Generator[Any, None, T_co]: ...


ATTACHER_TIMEOUT = 60.0


async def output_of(client: AsyncClient, attacher: Attacher[T]) -> T:
    """What an attacher gives at the end of the output, waited for as the client's user would.

    An AsyncClient's user awaits it; a blocking Client's calls ``result()``
    (here in a worker thread), which waits for the copy on the client's loop.
    """
    if isinstance(client, ThreadedClient):
        return await asyncio.to_thread(attacher.result, ATTACHER_TIMEOUT)
    return await attacher


Reply = TypeVar("Reply", bound=Message)


async def call_containerd(
    address: str,
    method: str,
    request: Message,
    reply_type: type[Reply],
    namespace: str = TEST_NAMESPACE,
) -> Reply:
    """One call straight on containerd's wire, in the test namespace, as ``ctr`` would make it.

    ``method`` is the gRPC path, e.g. ``/containerd.services.tasks.v1.Tasks/Get``.
    For checks (and set-ups) that go around the client under test.
    """
    async with grpc.aio.insecure_channel(f"unix://{address}") as channel:
        call = channel.unary_unary(
            method,
            request_serializer=type(request).SerializeToString,
            response_deserializer=reply_type.FromString,
        )
        reply: Reply = await call(
            request, metadata=(("containerd-namespace", namespace),), timeout=30
        )
        return reply


async def containerd_holds_exec(address: str, container_id: str, exec_id: str) -> bool:
    """Whether containerd still has the exec, running or exited (``Tasks.Get``).

    False once the exec has been deleted from the container's task (which
    must exist): what a client's release of an exited exec leaves.
    """
    get = "/containerd.services.tasks.v1.Tasks/Get"
    task = tasks_pb2.GetRequest(container_id=container_id)
    await call_containerd(address, get, task, tasks_pb2.GetResponse)  # NotFound fails the test
    request = tasks_pb2.GetRequest(container_id=container_id, exec_id=exec_id)
    try:
        await call_containerd(address, get, request, tasks_pb2.GetResponse)
    except grpc.aio.AioRpcError as error:
        if error.code() is grpc.StatusCode.NOT_FOUND:
            return False
        raise
    return True


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
