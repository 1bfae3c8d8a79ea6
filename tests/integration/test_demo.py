"""The main job, ``lcd demo``: every step and event on real containers, and nothing left behind."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from libcontainerd import checkpoint
from libcontainerd.client import AsyncClient
from libcontainerd.errors import CheckpointUnsupported
from libcontainerd.supervisor import Supervisor

from ..ci import CI
from .containers import process_alive
from .lcd import Result, environment, lcd

pytestmark = pytest.mark.integration

# In order; the checkpoint's steps come after the second stats when CRIU works.
STEPS = [
    *("create", "start", "status", "exec", "wait (exec)", "pause", "status", "resume"),
    *("stats", "update_resources", "stats"),
    *("signal_process", "wait", "delete_task", "delete"),
    # The image path: built here, imported, run, exported, removed.
    *("images.import_archive", "create (image)", "start (image)", "wait (image)"),
    *("delete_task (image)", "delete (image)", "images.export", "images.remove"),
    # The network walk: a page served on a published port, fetched by the host on 127.0.0.1.
    *("create (web)", "start (web)", "fetch (host)", "signal_process (web)"),
    *("delete_task (web)", "delete (web)"),
]
CHECKPOINT_STEPS = ["create_checkpoint", "delete_task", "start (restore)"]


async def criu_works() -> bool:
    """Whether the demo will checkpoint and restore; in CI it must (``./run`` provisions CRIU)."""
    try:
        await checkpoint.find_criu()
    except CheckpointUnsupported as error:
        if CI:
            pytest.fail(f"CI=true, and the demo would skip its checkpoint steps: {error}")
        return False
    return True


def step_lines(result: Result) -> list[str]:
    """The names of the steps done, in order."""
    return [m.group(1) for m in re.finditer(r"^✓ (\S+(?: \(\w+\))?)\s", result.stdout, re.M)]


def index_of(lines: list[str], pattern: str) -> int:
    return next(i for i, line in enumerate(lines) if re.search(pattern, line))


def processes_mentioning(path: Path) -> list[str]:
    """Command lines of live processes that name ``path`` (a daemon or shim of ours)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(path) in command:
            found.append(command)
    return found


async def test_the_demo_walks_every_step_printing_events_and_leaves_nothing_running(
    workdir: Path, provisioned_criu: None, containerd: str
) -> None:
    with_criu = await criu_works()
    state, root = workdir / "state", workdir / "root"
    result = await lcd(
        environment(state, root, containerd),
        "--state-dir",
        str(state),
        "--root-dir",
        str(root),
        "demo",
        seconds=120,
    )
    assert result.status == 0, result
    assert "Traceback" not in result.stdout + result.stderr
    lines = result.lines

    done = step_lines(result)
    assert done == [*STEPS[:11], *(CHECKPOINT_STEPS if with_criu else []), *STEPS[11:]]
    if not with_criu:
        assert any(
            line.startswith("- checkpoint/restore") and "skipped: " in line for line in lines
        )

    # Each event as it arrived, beside the step that caused it.
    for pattern in (
        r"event  create ",
        r"event  start ",
        r"event  exec-added .* exec demo-exec",
        r"event  exec-started .* exec demo-exec, pid \d+",
        r"event  exit .* exec demo-exec, pid \d+, exit code 7",
        r"event  paused ",
        r"event  resumed ",
        r"event  exit .* pid \d+, exit code 3",
    ):
        assert any(re.search(pattern, line) for line in lines), pattern
    assert index_of(lines, r"event  paused") < index_of(lines, r"^✓ stats")
    assert index_of(lines, r"^✓ signal_process") < index_of(lines, r"exit code 3$")
    assert "demo-exec wrote: an exec beside it, as uid 0 in /" in result.stdout

    # The image's container ran as its config says: entrypoint, user, workdir, env, layers.
    image_output = re.findall(r"output lcd-demo-\w+-image  (.*)", result.stdout)
    assert image_output == [
        "uid=1000(demo) gid=1000(demo) groups=1000(demo)",
        "/home/demo",
        "hello from the image's environment",
        "and from a file of its second layer",
    ]
    assert any(re.search(r"event  exit .*-image  pid \d+, exit code 0", line) for line in lines)
    assert re.search(r"images.import_archive .* 2 layers unpacked", result.stdout)

    # The web container's page, fetched from the host over 127.0.0.1 through its published port.
    assert re.search(
        r"create \(web\) .* on lcd0 \(gateway [\d.]+\), 127\.0\.0\.1:\d+->80/tcp", result.stdout
    )
    assert re.search(
        r"fetch \(host\) .* GET http://127\.0\.0\.1:\d+/ from the host: 200 OK,"
        r" 'hello from a container, over a published port'",
        result.stdout,
    )

    # The container's output as it came, and the new limits in the second sample.
    assert re.search(r"output lcd-demo-\w+  hello, I am pid 1 in here", result.stdout)
    assert re.search(r"output lcd-demo-\w+  goodbye after \d+ ticks", result.stdout)
    stats = [line for line in lines if line.startswith("✓ stats")]
    assert "of 64 MiB, pids 1 of 64" in stats[0] or "of 64 MiB, pids 2 of 64" in stats[0]
    assert "of 128 MiB" in stats[1]
    assert "of 32" in stats[1]
    if with_criu:
        assert any(re.search(r"event  exit .* exit code 137", line) for line in lines)
        # Restored, the count went on from the checkpoint instead of starting again.
        ticks = [
            int(n) for n in re.findall(r"(?:still here|goodbye) after (\d+) ticks", result.stdout)
        ]
        assert ticks == sorted(ticks)
        assert len(ticks) >= 2

    # It started its own containerd, and stopped it: nothing of it is left running.
    assert "started, pid" in result.stdout
    assert lines[-1] == "containerd stopped; nothing left running"
    assert processes_mentioning(workdir) == []
    assert not (state / "containerd.sock").exists()
    assert list((root / "demo").iterdir()) == []


async def test_the_demo_uses_a_running_containerd_and_leaves_it_running(
    supervisor: Supervisor, workdir: Path
) -> None:
    result = await lcd(
        environment(workdir / "state", workdir / "root"),
        "--address",
        supervisor.address,
        "--namespace",
        "lcddemo",
        "--root-dir",
        str(workdir / "root"),
        "demo",
        seconds=120,
    )
    assert result.status == 0, result
    assert f"using the one at {supervisor.address}" in result.stdout
    assert "stopping" not in result.stdout
    assert supervisor.pid is not None
    assert process_alive(supervisor.pid)
    assert not (workdir / "state").exists()
    async with AsyncClient(supervisor.address, "lcddemo") as client:
        assert await client.list_containers() == []
        # The image went with its content and snapshots (containerd's synchronous GC).
        assert await client.images.list() == []
        usage = await client.images.usage()
        assert (usage.content, usage.snapshots) == (0, 0)
