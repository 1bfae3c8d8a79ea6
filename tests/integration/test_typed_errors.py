"""What a new user gets wrong, each with an error type to catch (not a bare UNKNOWN)."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from pathlib import Path

import pytest

import libcontainerd
from libcontainerd import (
    AlreadyExists,
    ExecutableNotFound,
    InvalidArgument,
    LibcontainerdError,
    NotFound,
    oci,
)
from libcontainerd.supervisor import Supervisor

from .containers import ContainerFactory

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("program", ["/no/such/program", "no-such-program"])
async def test_a_missing_executable_raises_executable_not_found_and_leaves_no_task(
    containers: ContainerFactory, program: str
) -> None:
    client = containers.client
    container_id = await containers.create((program,))

    with pytest.raises(ExecutableNotFound, match=f"executable '{program}' not found") as caught:
        await client.start(container_id)

    assert isinstance(caught.value, NotFound)
    with pytest.raises(NotFound, match="no task"):
        await client.status(container_id)


async def test_an_exec_of_a_missing_executable_raises_executable_not_found(
    containers: ContainerFactory,
) -> None:
    container_id = await containers.run(("/bin/sleep", "300"))
    process = {"args": ["/no/such/program"], "cwd": "/", "env": [oci.DEFAULT_PATH_ENV]}

    with pytest.raises(ExecutableNotFound):
        await containers.client.exec(container_id, "missing", process)


async def test_a_file_that_is_not_executable_is_not_called_missing(
    containers: ContainerFactory,
) -> None:
    container_id = await containers.create(("/etc/passwd",))
    with pytest.raises(LibcontainerdError, match="permission denied") as caught:
        await containers.client.start(container_id)
    assert not isinstance(caught.value, NotFound)


async def test_create_refuses_a_root_filesystem_that_does_not_exist(
    containers: ContainerFactory, tmp_path: Path
) -> None:
    missing = tmp_path / "no-such-root"
    spec = oci.default_spec(["/bin/true"], tmp_path)  # any existing folder, then changed
    spec["root"]["path"] = str(missing)
    container_id = containers.new_id()

    with pytest.raises(InvalidArgument, match="does not exist"):
        await containers.client.create(container_id, spec)

    assert container_id not in {info.id for info in await containers.client.list_containers()}


async def test_a_root_filesystem_removed_after_create_raises_not_found_at_start(
    containers: ContainerFactory,
) -> None:
    container_id = await containers.create(("/bin/true",))
    shutil.rmtree(containers.workdir / container_id / "rootfs")

    with pytest.raises(NotFound, match=r"root filesystem .* does not exist") as caught:
        await containers.client.start(container_id)

    assert not isinstance(caught.value, ExecutableNotFound)


async def test_starting_twice_raises_already_exists(containers: ContainerFactory) -> None:
    container_id = await containers.run(("/bin/sleep", "300"))
    with pytest.raises(AlreadyExists):
        await containers.client.start(container_id)


NOT_ROOT = """
import asyncio, sys
from libcontainerd import AsyncClient, Unavailable

async def main():
    try:
        async with AsyncClient(sys.argv[1]):
            pass
    except Unavailable as error:
        print(error)

asyncio.run(main())
"""


async def test_a_user_who_is_not_root_is_told_that_root_is_needed(
    supervisor: Supervisor,
) -> None:
    python = "/usr/bin/python3"  # the venv's interpreter may live where nobody cannot read
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    if not os.access(python, os.X_OK) or not shutil.which("setpriv"):
        pytest.skip("needs setpriv and a system python3 to drop root")
    probe = await _output(python, "-c", "import sys; print(sys.version)")
    if not probe.startswith(version):
        pytest.skip(f"the system python3 is not {version}, which the installed grpcio needs")
    source = Path(libcontainerd.__file__).parents[1]
    packages = Path(sys.prefix, "lib", f"python{version}", "site-packages")
    out = await _output(
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "env",
        f"PYTHONPATH={source}:{packages}",
        python,
        "-c",
        NOT_ROOT,
        supervisor.address,
    )

    assert "permission denied" in out
    assert "run this as root" in out


async def _output(*argv: str) -> str:
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    return out.decode()
