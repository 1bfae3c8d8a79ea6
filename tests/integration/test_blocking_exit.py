"""A program using the blocking Client exits quietly: its close leaves no task pending.

gRPC's status handler of a call cancelled at close used to be left pending on
the client's loop, and Python printed "Task was destroyed but it is
pending!" at exit, in about one run out of four. The program runs
``$LIBCONTAINERD_TEST_EXIT_RUNS`` times (CI: 15).
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from libcontainerd.supervisor import Supervisor

from .containers import TEST_NAMESPACE

pytestmark = pytest.mark.integration

SOURCE = Path(__file__).resolve().parents[2] / "src"
RUNS = int(os.environ.get("LIBCONTAINERD_TEST_EXIT_RUNS", "15"))

PROGRAM = f"""
import sys
from libcontainerd import Client, CollectOutput, oci, rootfs

address, root, container_id = sys.argv[1:4]
with Client(address, namespace="{TEST_NAMESPACE}") as client:
    client.create(container_id, oci.default_spec(["/bin/echo", "hi"], rootfs.busybox(root)))
    output = CollectOutput()
    client.start(container_id, attach_stdio=output)
    code, _ = client.wait(container_id)
    client.delete_task(container_id)
    client.delete(container_id)
print(code, output.result())
"""


async def test_a_blocking_program_prints_nothing_at_exit(
    supervisor: Supervisor, tmp_path: Path
) -> None:
    env = dict(os.environ, PYTHONPATH=str(SOURCE))
    for run in range(RUNS):
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            PROGRAM,
            supervisor.address,
            str(tmp_path / "rootfs"),
            f"quiet-{os.getpid()}-{run}",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        out, err = await asyncio.wait_for(process.communicate(), 60)
        assert (process.returncode, out, err) == (0, b"0 (b'hi\\n', b'')\n", b""), run
