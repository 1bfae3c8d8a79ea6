"""Hundreds of attached containers under low open-file limits: the client and containerd cope.

Each test runs ``fd_limits_child.py`` as a program of its own under the limits
it sets (``prlimit``), as a user's shell would (``ulimit -Sn 1024``,
``ulimit -n 1024``), and reads its report. The client raises its soft limit to
the hard one before its first FIFOs; a Supervisor gives containerd a fixed
1048576 whatever its caller's limits (the caller's hard limit when it may not
raise it, and says so); with the opt-out a start that hits the limit fails
with an error naming it, leaving nothing behind.

Sizes: ``$LIBCONTAINERD_TEST_FD_CONTAINERS`` attached containers under a soft
limit of 1024 (CI: 600) and ``$LIBCONTAINERD_TEST_FD_DAEMON_CONTAINERS``
through a Supervisor under a hard limit of 1024 (CI: 300), on containerd 1.6.
On 1.7 and 2.x, to keep CI's time, ``..._NEWER`` of each (CI: 150 and 100)
under limits scaled down alike, so the containers still need more descriptors
than the limit allows.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import resource
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from libcontainerd import AsyncClient, LibcontainerdError, rootfs
from libcontainerd._limits import DAEMON_OPEN_FILES, KEEP_NOFILE_ENV
from libcontainerd._procfs import process_alive, read_pid_file
from libcontainerd.supervisor import Supervisor

from .. import figures
from .containers import TEST_NAMESPACE, eventually, live_shims, remove_container

pytestmark = pytest.mark.integration

CHILD = Path(__file__).with_name("fd_limits_child.py")

CLIENT_CONTAINERS = int(os.environ.get("LIBCONTAINERD_TEST_FD_CONTAINERS", "600"))
CLIENT_CONTAINERS_NEWER = int(os.environ.get("LIBCONTAINERD_TEST_FD_CONTAINERS_NEWER", "150"))
DAEMON_CONTAINERS = int(os.environ.get("LIBCONTAINERD_TEST_FD_DAEMON_CONTAINERS", "300"))
DAEMON_CONTAINERS_NEWER = int(
    os.environ.get("LIBCONTAINERD_TEST_FD_DAEMON_CONTAINERS_NEWER", "100")
)

# The issue's numbers: 600 containers against a soft limit of 1024 (the client
# needs ~2 descriptors each), 300 against containerd's 1024 (it needs ~4 per shim).
ISSUE_LIMIT = 1024
CAP_SYS_RESOURCE = 24


def sized(version: str | None, full: int, newer: int, issue_count: int) -> tuple[int, int]:
    """(containers, open-file limit) for this containerd: the issue's on 1.6, scaled elsewhere."""
    count = full if (version or "").startswith("1.6") else newer
    return count, math.ceil(ISSUE_LIMIT * count / issue_count)


def may_raise_hard_limits() -> bool:
    """Whether this process holds CAP_SYS_RESOURCE, which raising a hard limit takes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) >> CAP_SYS_RESOURCE & 1)
    return False


async def run_child(
    plan: dict[str, Any],
    nofile: tuple[int, int],
    workdir: Path,
    *,
    env: dict[str, str] | None = None,
    drop_sys_resource: bool = False,
    seconds: float = 600,
) -> tuple[dict[str, Any], str]:
    """Run the child program under ``nofile`` (soft, hard); its report and its stderr."""
    plan_path = workdir / "plan.json"
    plan_path.write_text(json.dumps(plan))
    prefix = ["prlimit", f"--nofile={nofile[0]}:{nofile[1]}", "--"]
    if drop_sys_resource:
        prefix += ["setpriv", "--bounding-set=-sys_resource", "--"]
    child_env = {key: value for key, value in os.environ.items() if key != KEEP_NOFILE_ENV}
    child_env.update(env or {})
    process = await asyncio.create_subprocess_exec(
        *prefix,
        sys.executable,
        str(CHILD),
        str(plan_path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=child_env,
    )
    try:
        async with asyncio.timeout(seconds):
            out, err = await process.communicate()
    except BaseException:
        if process.returncode is None:
            process.kill()
            await process.wait()
        raise
    stderr = err.decode(errors="replace")
    assert process.returncode == 0, f"the child failed ({process.returncode}):\n{stderr[-4000:]}"
    report: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return report, stderr


def client_plan(supervisor: Supervisor, workdir: Path, containers: int) -> dict[str, Any]:
    return {
        "address": supervisor.address,
        "namespace": TEST_NAMESPACE,
        "prefix": f"fd-{os.getpid()}-{time.monotonic_ns()}",
        "containers": containers,
        "rootfs": str(rootfs.busybox(workdir / "rootfs")),
    }


def daemon_plan(containerd: str, workdir: Path, containers: int) -> dict[str, Any]:
    return {
        "containerd": containerd,
        "state_dir": str(workdir / "state"),
        "root_dir": str(workdir / "root"),
        "namespace": TEST_NAMESPACE,
        "prefix": f"fdd-{os.getpid()}",
        "containers": containers,
        "rootfs": str(rootfs.busybox(workdir / "rootfs")),
    }


async def remove_leftovers(address: str, prefix: str) -> None:
    """Remove what a child that died left with this prefix (nothing, when it passed)."""
    async with AsyncClient(address, namespace=TEST_NAMESPACE) as client:
        for info in await client.list_containers():
            if info.id.startswith(prefix):
                await remove_container(client, info.id)


async def stop_leftover_daemon(workdir: Path, prefix: str) -> None:
    """Remove the containers and stop the containerd a child that died left in ``workdir``.

    The child stops its own Supervisor; this only runs when it could not.
    """
    state = workdir / "state"
    pid = read_pid_file(str(state / "containerd.pid"))
    if pid is None or not process_alive(pid):
        return
    address = str(state / "containerd.sock")
    with contextlib.suppress(LibcontainerdError):
        await remove_leftovers(address, prefix)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    await eventually(lambda: not process_alive(pid), "the child's containerd to stop")


def per_container(report: dict[str, Any], containers: int) -> float:
    """The client's descriptors per attached container while all of them run."""
    return float(report["fds_running"] - report["fds_before"]) / max(containers, 1)


def assert_all_ran_and_went(report: dict[str, Any], containers: int) -> None:
    assert report["failures"] == []
    assert report["started"] == containers
    assert report["ready_outputs"] == containers  # every attached output arrived
    assert report["containers_left"] == []
    assert report["fifo_folders_left"] == []
    assert report["fds_after"] - report["fds_before"] <= 4  # the containers' FIFOs all closed


async def test_attached_containers_start_past_a_soft_open_file_limit_of_1024(
    supervisor: Supervisor, workdir: Path
) -> None:
    containers, soft = sized(supervisor.version, CLIENT_CONTAINERS, CLIENT_CONTAINERS_NEWER, 600)
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 3 * containers + 100:
        pytest.skip(f"this machine's hard open-file limit ({hard}) is below what the test needs")
    plan = client_plan(supervisor, workdir, containers)
    started = time.monotonic()
    try:
        report, _ = await run_child(plan, (soft, hard), workdir)
    finally:
        await remove_leftovers(supervisor.address, plan["prefix"])
    figures.record(
        "open-file limits",
        f"containerd {supervisor.version}: {containers} attached under ulimit -Sn {soft}",
        f"{per_container(report, containers):.2f} client descriptors per attached container,"
        f" client max RSS {report['maxrss_kib'] // 1024} MiB, {time.monotonic() - started:.0f} s",
    )
    assert report["limits_at_start"]["nofile"] == [str(soft), str(hard)]
    assert report["limits_running"]["nofile"] == [str(hard), str(hard)]  # raised, soft only
    assert_all_ran_and_went(report, containers)
    assert per_container(report, containers) <= 2.5  # stdout and stderr; the keepers closed


async def test_a_supervisor_under_a_hard_open_file_limit_of_1024_runs_300_attached_containers(
    supervisor: Supervisor, containerd: str, workdir: Path
) -> None:
    if not may_raise_hard_limits():
        pytest.skip(
            "raising containerd's hard open-file limit above its caller's needs CAP_SYS_RESOURCE,"
            " which this machine's root lacks (the fallback is tested beside)"
        )
    containers, limit = sized(supervisor.version, DAEMON_CONTAINERS, DAEMON_CONTAINERS_NEWER, 300)
    plan = daemon_plan(containerd, workdir, containers)
    started = time.monotonic()
    try:
        report, _ = await run_child(plan, (limit, limit), workdir)
    finally:
        await stop_leftover_daemon(workdir, plan["prefix"])
    address = str(workdir / "state" / "containerd.sock")
    await eventually(lambda: not live_shims(address), "the child's shims to go")
    figures.record(
        "open-file limits",
        f"containerd {supervisor.version}: {containers} attached through a Supervisor"
        f" under ulimit -n {limit}",
        f"{per_container(report, containers):.2f} client descriptors per attached container,"
        f" {time.monotonic() - started:.0f} s",
    )
    fixed = str(DAEMON_OPEN_FILES)
    assert report["containerd_limits"] == {
        "nofile": [fixed, fixed],
        "nproc": ["unlimited", "unlimited"],
    }
    assert_all_ran_and_went(report, containers)


async def test_a_supervisor_that_may_not_raise_hard_limits_gives_containerd_its_own_and_says_so(
    supervisor: Supervisor, containerd: str, workdir: Path
) -> None:
    if may_raise_hard_limits() and shutil.which("setpriv") is None:
        pytest.skip("dropping CAP_SYS_RESOURCE for the child needs setpriv (util-linux)")
    containers = 20
    plan = daemon_plan(containerd, workdir, containers)
    try:
        report, stderr = await run_child(
            plan, (ISSUE_LIMIT, ISSUE_LIMIT), workdir, drop_sys_resource=may_raise_hard_limits()
        )
    finally:
        await stop_leftover_daemon(workdir, plan["prefix"])
    address = str(workdir / "state" / "containerd.sock")
    await eventually(lambda: not live_shims(address), "the child's shims to go")
    limit = str(ISSUE_LIMIT)
    assert report["containerd_limits"]["nofile"] == [limit, limit]
    assert f"runs with an open-file limit of {ISSUE_LIMIT}, not {DAEMON_OPEN_FILES}" in stderr
    assert "CAP_SYS_RESOURCE" in stderr
    assert "ulimit -n" in stderr
    daemon_log = (workdir / "state" / "containerd.log").read_text()
    assert f"RLIMIT_NOFILE {limit}:{limit}: refused {DAEMON_OPEN_FILES}:" in daemon_log
    assert_all_ran_and_went(report, containers)


async def test_with_the_opt_out_a_start_past_the_limit_names_it_and_leaves_nothing(
    supervisor: Supervisor, workdir: Path
) -> None:
    soft, hard = 64, resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    containers = 40  # two descriptors each: more than 64 allows
    plan = client_plan(supervisor, workdir, containers)
    try:
        report, _ = await run_child(plan, (soft, hard), workdir, env={KEEP_NOFILE_ENV: "1"})
    finally:
        await remove_leftovers(supervisor.address, plan["prefix"])
    assert report["limits_running"]["nofile"][0] == str(soft)  # left alone
    assert 0 < report["started"] < containers
    assert report["failures"]
    for failure in report["failures"]:
        assert failure.startswith("FailedPrecondition: cannot open the FIFOs of process 'init'")
        assert f"RLIMIT_NOFILE soft {soft}, hard {hard}" in failure
        assert f"${KEEP_NOFILE_ENV} is set" in failure
        assert f"ulimit -Sn {hard}" in failure
    assert report["failed_starts_left"] == []  # neither a FIFO folder nor a task
    assert report["containers_left"] == []
    assert report["fifo_folders_left"] == []
    assert report["fds_after"] - report["fds_before"] <= 4
