"""``lcd demo``: real containers through the whole contract, every event shown as it arrives.

Started by ``lcd demo`` (and ``./run demo``). It uses the containerd at
``--address`` if given, else the embedded one of ``--state-dir`` if it
answers; otherwise it starts its own there (data in ``--root-dir``) and stops
it again at the end. Its container, root filesystem, checkpoint and log are
removed whatever happens, so nothing is left running.

Three kinds of lines are printed, as they happen:

- a step: ``✓ <contract method>  <what it returned>  <latency>``;
- ``event <type> <container> <pid / exit code>``: each task event, from
  :meth:`AsyncClient.events`, as it arrives (each step that causes one waits
  for it, so every event is shown beside its cause);
- ``output <container> <line>``: what the container writes, as it comes
  (attached stdio, and after a restore its log file).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shutil
import signal
import time
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import TypeVar

import click
from rich.console import Console
from rich.markup import escape

from .. import checkpoint, oci, rootfs
from .._paths import containerd_socket
from ..client import AsyncClient, EventSubscription
from ..errors import CheckpointUnsupported, LibcontainerdError, Unavailable
from ..stdio import CollectOutput, DirectIO, LogFile
from ..supervisor import Supervisor
from ..types import INIT_PROCESS_ID, EventInfo, EventType, Stats
from . import _demo_image as demo_image
from ._app import CONTEXT, Settings, pass_settings
from ._demo_image import build_demo_image
from ._demo_network import network_walk

__all__ = ["COMMANDS"]

T = TypeVar("T")

# The container greets, says every second that it is still there (the count
# lives in the shell, so a restore shows it going on), and says goodbye with
# exit code 3 when asked to stop.
DEMO_SCRIPT = (
    "trap 'echo \"goodbye after $i ticks\"; exit 3' TERM;"
    ' echo "hello, I am pid $$ in here";'
    " i=0; while true; do i=$((i+1));"
    ' [ $((i % 10)) -eq 0 ] && echo "still here after $i ticks"; sleep 0.1; done'
)
EXEC_SCRIPT = 'echo "an exec beside it, as uid $(id -u) in $(pwd)"; exit 7'
EXEC_ID = "demo-exec"

MEMORY_LIMIT = 64 << 20
PIDS_LIMIT = 64
UPDATED_RESOURCES = {"memory": {"limit": 128 << 20}, "pids": {"limit": 32}}

# How long a step waits for the event it causes before saying it is missing.
EVENT_TIMEOUT = 15.0


@click.command(context_settings=CONTEXT)
@pass_settings
def demo(settings: Settings) -> None:
    """Walk real containers through the whole contract, printing each event as it arrives.

    Create, start with attached output, exec, pause and resume, stats, update,
    checkpoint and restore (when CRIU works), signal, exit, delete. It uses
    the containerd at --address, or the embedded one of --state-dir, started
    for the demo (and stopped after it) when it is not running.
    """
    console = Console(highlight=False, soft_wrap=True)
    raise SystemExit(asyncio.run(run_demo(console, settings)))


COMMANDS: tuple[click.Command, ...] = (demo,)


class _Steps:
    """Prints each step with what it returned and how long it took.

    The events a step causes are printed after its line, even when one
    arrives before the step's call has returned (a process killed by a
    signal can exit before the Kill reply is read): the event printer holds
    its lines while a step runs.
    """

    def __init__(self, console: Console, events: _EventPrinter) -> None:
        self.console = console
        self.events = events

    async def run(self, name: str, action: Awaitable[T], show: str = "") -> T:
        started = time.perf_counter()
        self.events.hold()
        try:
            result = await action
            elapsed = (time.perf_counter() - started) * 1000
            shown = show.format(result=result) if show else ""
            timing = f"[dim]{elapsed:7.1f} ms[/dim]"
            line = f"[green]✓[/green] [bold]{name:<21}[/bold] {timing}  {escape(shown)}"
            self.console.print(line.rstrip())
        finally:
            self.events.release()
        return result

    def skipped(self, name: str, reason: str) -> None:
        self.console.print(
            f"[yellow]-[/yellow] [bold]{name:<21}[/bold] {'':>10}  skipped: {escape(reason)}"
        )

    def note(self, text: str) -> None:
        self.console.print(f"  [dim]{escape(text)}[/dim]")


class _EventPrinter:
    """Prints every task event of the demo's containers as it arrives; steps wait for theirs."""

    def __init__(self, console: Console, subscription: EventSubscription, *container_ids: str):
        self._console = console
        self._subscription = subscription
        self._container_ids = container_ids
        self._seen: list[tuple[EventType, EventInfo]] = []
        self._arrived = asyncio.Condition()
        self._holding = 0
        self._held: list[str] = []

    def hold(self) -> None:
        """Keep event lines back (a step is running) until :meth:`release`."""
        self._holding += 1

    def release(self) -> None:
        """Print the lines kept back, in their order, once no step holds them."""
        self._holding -= 1
        if not self._holding:
            for line in self._held:
                self._console.print(line)
            self._held.clear()

    async def run(self) -> None:
        async for container_id, event, info in self._subscription:
            if container_id not in self._container_ids:
                continue
            details = _event_details(event, info)
            line = f"  [cyan]event[/cyan]  {event!s:<13} {container_id}  {details}".rstrip()
            if self._holding:
                self._held.append(line)
            else:
                self._console.print(line)
            async with self._arrived:
                self._seen.append((event, info))
                self._arrived.notify_all()

    async def wait_for(
        self, event: EventType, exec_id: str | None = None, container_id: str | None = None
    ) -> EventInfo:
        """The first event of that type (of that exec, or else of the task) not waited for yet.

        ``container_id`` defaults to the first container watched. Raises
        TimeoutError naming it when it has not come within EVENT_TIMEOUT.
        """
        container_id = container_id or self._container_ids[0]
        # The main process's events name it by the container id; paused and resumed name none.
        wanted = (exec_id,) if exec_id is not None else (container_id, "")
        try:
            async with asyncio.timeout(EVENT_TIMEOUT), self._arrived:
                while True:
                    for index, (seen, info) in enumerate(self._seen):
                        if (
                            seen is event
                            and info.container_id == container_id
                            and info.process_id in wanted
                        ):
                            del self._seen[index]
                            return info
                    await self._arrived.wait()
        except TimeoutError:
            of = f"exec {exec_id}" if exec_id is not None else container_id
            raise TimeoutError(
                f"no {event} event of {of} arrived within {EVENT_TIMEOUT:g} s"
            ) from None


def _event_details(event: EventType, info: EventInfo) -> str:
    details = []
    if info.process_id and info.process_id != info.container_id:
        details.append(f"exec {info.process_id}")
    if info.pid:
        details.append(f"pid {info.pid}")
    if event is EventType.EXIT:
        details.append(f"exit code {info.exit_code}")
    if info.oom_killed:
        details.append("oom killed")
    return ", ".join(details)


class _PrintOutput:
    """A StdioCallback that prints each line the process writes, as it comes."""

    def __init__(self, console: Console, container_id: str) -> None:
        self._console = console
        self._container_id = container_id
        self._copies: list[asyncio.Task[None]] = []

    def __call__(self, io: DirectIO) -> None:
        loop = asyncio.get_running_loop()
        for stream in (io.stdout, io.stderr):
            if stream is not None:
                self._copies.append(loop.create_task(self._print_lines(stream)))

    async def _print_lines(self, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            _print_output(self._console, self._container_id, line)

    async def finished(self) -> None:
        """Wait for the end of the output (after the process has gone)."""
        await asyncio.gather(*self._copies)


def _print_output(console: Console, container_id: str, line: bytes) -> None:
    text = line.decode(errors="replace").rstrip("\n")
    console.print(f"  [magenta]output[/magenta] {container_id}  {escape(text)}")


async def _tail(console: Console, container_id: str, path: Path, stop: asyncio.Event) -> None:
    """Print the lines appended to ``path`` until ``stop`` is set (and then what is left)."""
    pending = b""
    offset = 0
    while True:
        stopping = stop.is_set()
        data = _read_from(path, offset)
        offset += len(data)
        pending += data
        *lines, pending = pending.split(b"\n")
        for line in lines:
            _print_output(console, container_id, line)
        if stopping:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.05)


def _read_from(path: Path, offset: int) -> bytes:
    """What a small local file holds from ``offset`` on (nothing while it does not exist)."""
    try:
        with open(path, "rb") as file:
            file.seek(offset)
            return file.read()
    except FileNotFoundError:
        return b""


@contextlib.asynccontextmanager
async def _containerd(console: Console, settings: Settings) -> AsyncIterator[str]:
    """containerd's address: ``--address``, the embedded one if it answers, else one we start."""
    address = settings.address or containerd_socket(settings.state_dir)
    try:
        async with AsyncClient(address, settings.namespace) as probe:
            version = await probe.version()
    except Unavailable:
        if settings.address is not None:
            raise
    else:
        console.print(f"containerd {version.version}: using the one at {address}")
        yield address
        return
    console.print(f"starting the embedded containerd in {settings.state_dir} ...")
    async with Supervisor(settings.state_dir, settings.root_dir) as supervisor:
        console.print(
            f"containerd {supervisor.version}: started, pid {supervisor.pid},"
            f" socket {supervisor.address}, log {supervisor.log_path}"
        )
        yield supervisor.address
        console.print(f"stopping the embedded containerd (pid {supervisor.pid})")
    console.print("containerd stopped; nothing left running")


async def run_demo(console: Console, settings: Settings) -> int:
    """Walk a container through the contract, then one from an image; the exit status."""
    token = secrets.token_hex(3)
    container_id = f"lcd-demo-{token}"
    image_container_id = f"{container_id}-image"
    web_container_id = f"{container_id}-web"
    image_name = f"localhost/lcd-demo:{token}"
    workdir = Path(settings.root_dir, "demo", container_id)
    async with (
        _containerd(console, settings) as address,
        AsyncClient(address, settings.namespace) as client,
    ):
        events = _EventPrinter(
            console, client.events(), container_id, image_container_id, web_container_id
        )
        printing = asyncio.get_running_loop().create_task(events.run())
        finished = False
        try:
            exit_code = await _walk(console, client, events, container_id, workdir)
            image_exit_code = await _image_walk(
                console, client, events, image_container_id, image_name, workdir
            )
            steps = _Steps(console, events)
            skipped = await network_walk(steps, client, events, web_container_id, workdir)
            if skipped is not None:
                steps.skipped("network", skipped)
            finished = True
        except (LibcontainerdError, TimeoutError, OSError) as error:
            console.print(f"[red]error:[/red] {escape(str(error))}")
            return 1
        finally:
            if not finished:
                await _remove_quietly(client, container_id)
                await _remove_quietly(client, image_container_id)
                await _remove_quietly(client, web_container_id)
                with contextlib.suppress(LibcontainerdError):
                    await client.images.remove(image_name)
            printing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await printing
            shutil.rmtree(workdir, ignore_errors=True)
        console.print(
            f"[bold]done[/bold]: the container said goodbye with exit code {exit_code};"
            " its task, container, root filesystem and checkpoint are gone;"
            f" the image's container exited with {image_exit_code}, and it, its snapshot"
            " and the image are gone"
        )
    return 0


async def _walk(
    console: Console,
    client: AsyncClient,
    events: _EventPrinter,
    container_id: str,
    workdir: Path,
) -> int:
    """Every step, in order; returns the container's exit code."""
    steps = _Steps(console, events)
    root = rootfs.busybox(workdir / "rootfs")
    steps.note(f"busybox root filesystem at {root}")
    spec = oci.default_spec(
        ["/bin/sh", "-c", DEMO_SCRIPT],
        root,
        oci.with_memory_limit(MEMORY_LIMIT),
        oci.with_pids_limit(PIDS_LIMIT),
    )
    await steps.run(
        "create",
        client.create(container_id, spec),
        f"{container_id}: memory {_size(MEMORY_LIMIT)}, pids {PIDS_LIMIT}",
    )
    output = _PrintOutput(console, container_id)
    await steps.run(
        "start",
        client.start(container_id, attach_stdio=output),
        "pid {result}, its output attached",
    )
    await events.wait_for(EventType.START)
    await steps.run("status", client.status(container_id), "{result}")

    await _exec(steps, client, events, container_id)

    await steps.run("pause", client.pause(container_id))
    await events.wait_for(EventType.PAUSED)
    await steps.run("status", client.status(container_id), "{result}")
    await steps.run("resume", client.resume(container_id))
    await events.wait_for(EventType.RESUMED)

    await steps.run("stats", _stats(client, container_id), "{result}")
    await steps.run(
        "update_resources",
        client.update_resources(container_id, UPDATED_RESOURCES),
        "memory 128 MiB, pids 32",
    )
    await steps.run("stats", _stats(client, container_id), "{result}")

    tail_stop = asyncio.Event()
    tail: asyncio.Task[None] | None = None
    reason = await _criu_missing()
    if reason is None:
        tail = await _checkpoint_and_restore(
            console, steps, client, events, container_id, workdir, output, tail_stop
        )
    else:
        steps.skipped("checkpoint/restore", reason)

    try:
        await asyncio.sleep(1.2)  # a tick or so of output, before asking it to stop
        await steps.run(
            "signal_process",
            client.signal_process(container_id, INIT_PROCESS_ID, signal.SIGTERM),
            "SIGTERM to the main process",
        )
        await events.wait_for(EventType.EXIT)
        exit_code, _ = await steps.run("wait", client.wait(container_id), "exit code {result[0]}")
    finally:
        tail_stop.set()
        if tail is not None:
            await tail
    if reason is not None:
        await output.finished()
    await steps.run(
        "delete_task",
        client.delete_task(container_id),
        "exit code {result[0]} at {result[1]:%H:%M:%S.%f}",
    )
    await steps.run("delete", client.delete(container_id), container_id)
    return exit_code


async def _image_walk(
    console: Console,
    client: AsyncClient,
    events: _EventPrinter,
    container_id: str,
    name: str,
    workdir: Path,
) -> int:
    """The image path: build, import (unpacked), run, export, remove; the container's exit code."""
    steps = _Steps(console, events)
    built = await asyncio.to_thread(build_demo_image, workdir / "image", name)
    steps.note(
        f"an image built here, no network: {built.layers} layers (busybox-static's root;"
        f" a user {demo_image.USER} and its home), its config sets entrypoint, env, user"
        f" and workdir; {_size(built.size)} at {built.archive}"
    )
    (image,) = await steps.run(
        "images.import_archive",
        client.images.import_archive(built.archive),
        f"{{result[0].name}}: {built.layers} layers unpacked into snapshots,"
        " top {result[0].chain_id:.19}…",
    )
    await steps.run(
        "create (image)",
        client.create(container_id, oci.image_spec(image), image=image),
        f"{container_id}: root a snapshot of the image; runs as {image.config.user}"
        f" in {image.config.working_dir}: {' '.join(image.config.entrypoint)}"
        f" '{' '.join(image.config.cmd)}'",
    )
    output = _PrintOutput(console, container_id)
    await steps.run(
        "start (image)", client.start(container_id, attach_stdio=output), "pid {result}"
    )
    await events.wait_for(EventType.START, container_id=container_id)
    await events.wait_for(EventType.EXIT, container_id=container_id)
    exit_code, _ = await steps.run(
        "wait (image)", client.wait(container_id), "exit code {result[0]}"
    )
    await output.finished()
    await steps.run(
        "delete_task (image)", client.delete_task(container_id), "exit code {result[0]}"
    )
    await steps.run("delete (image)", client.delete(container_id), "the container and its snapshot")
    exported = workdir / "exported.tar"
    await steps.run(
        "images.export",
        _export(client, exported, name),
        "{result}: OCI layout + manifest.json (ctr, skopeo, docker load read it)",
    )
    await steps.run(
        "images.remove",
        client.images.remove(name),
        f"{name}: its content and snapshots are gone (no container uses them)",
    )
    return exit_code


async def _export(client: AsyncClient, path: Path, name: str) -> str:
    await client.images.export(path, name)
    size = (await asyncio.to_thread(path.stat)).st_size
    return f"{_size(size)} at {path}"


async def _exec(
    steps: _Steps, client: AsyncClient, events: _EventPrinter, container_id: str
) -> None:
    process = (await client.spec(container_id))["process"]
    process = {**process, "args": ["/bin/sh", "-c", EXEC_SCRIPT]}
    collected = CollectOutput()
    await steps.run(
        "exec",
        client.exec(container_id, EXEC_ID, process, attach_stdio=collected),
        f"pid {{result}}: {EXEC_ID}, the container's own process spec running sh -c '...; exit 7'",
    )
    await events.wait_for(EventType.EXEC_STARTED, EXEC_ID)
    await events.wait_for(EventType.EXIT, EXEC_ID)
    await steps.run("wait (exec)", client.wait(container_id, EXEC_ID), "exit code {result[0]}")
    stdout, _ = await collected
    steps.note(f"{EXEC_ID} wrote: {stdout.decode(errors='replace').strip()}")


async def _stats(client: AsyncClient, container_id: str) -> str:
    sample = await client.stats(container_id)
    return _describe_stats(sample)


def _describe_stats(sample: Stats) -> str:
    memory_limit = _size(sample.memory_limit_bytes) if sample.memory_limit_bytes else "no limit"
    return (
        f"cpu {sample.cpu_usage_ns / 1e6:.1f} ms, memory {_size(sample.memory_usage_bytes)}"
        f" of {memory_limit}, pids {sample.pids_current} of {sample.pids_limit or 'no limit'}"
    )


async def _checkpoint(client: AsyncClient, container_id: str, images: Path) -> str:
    await client.create_checkpoint(container_id, images, exit=True)
    return _describe_images(images)


def _describe_images(images: Path) -> str:
    files = [path for path in images.iterdir() if path.is_file()]
    return f"{len(files)} files, {_size(sum(path.stat().st_size for path in files))} in {images}"


def _size(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB"):
        if value < 1024:
            return f"{count} B" if unit == "B" else f"{value:.4g} {unit}"
        value /= 1024
    return f"{value:.4g} GiB"


async def _criu_missing() -> str | None:
    """Why checkpoints cannot work here (the first line of it), or None when CRIU works."""
    try:
        await checkpoint.find_criu()
    except CheckpointUnsupported as error:
        lines = str(error).strip().splitlines()
        return lines[0] if lines else "no working CRIU"
    return None


async def _checkpoint_and_restore(
    console: Console,
    steps: _Steps,
    client: AsyncClient,
    events: _EventPrinter,
    container_id: str,
    workdir: Path,
    output: _PrintOutput,
    tail_stop: asyncio.Event,
) -> asyncio.Task[None]:
    """Checkpoint with exit, restore from the images; the task that prints the restored output."""
    images = workdir / "checkpoint"
    await asyncio.sleep(1.2)  # a tick to compare with after the restore
    await steps.run(
        "create_checkpoint",
        _checkpoint(client, container_id, images),
        "exit=True: {result}",
    )
    await events.wait_for(EventType.EXIT)
    await steps.run(
        "delete_task", client.delete_task(container_id), "exit code {result[0]} (checkpointed)"
    )
    await output.finished()
    log = workdir / "restored.log"
    tail = asyncio.get_running_loop().create_task(_tail(console, container_id, log, tail_stop))
    await steps.run(
        "start (restore)",
        client.start(container_id, checkpoint_dir=images, attach_stdio=LogFile(log)),
        "pid {result}, from the checkpoint; output now to its log",
    )
    await events.wait_for(EventType.START)
    return tail


async def _remove_quietly(client: AsyncClient, container_id: str) -> None:
    """Leave nothing behind after a failed or interrupted step."""
    with contextlib.suppress(LibcontainerdError):
        await client.signal_process(container_id, INIT_PROCESS_ID, signal.SIGKILL)
    with contextlib.suppress(LibcontainerdError, TimeoutError):
        async with asyncio.timeout(EVENT_TIMEOUT):
            await client.wait(container_id)
    with contextlib.suppress(LibcontainerdError):
        await client.delete_task(container_id)
    with contextlib.suppress(LibcontainerdError):
        await client.delete(container_id)
