"""Fixtures for the integration suite: a supervised containerd for the whole session.

Every test that uses the ``containerd`` fixture (the ``supervisor`` does) runs
once per containerd version of the matrix (see matrix.py): the system's 1.6,
1.7 and 2.x; ``$LIBCONTAINERD_TEST_CONTAINERD`` or ``$LIBCONTAINERD_TEST_MATRIX``
narrow it.

CRIU: unless ``$LIBCONTAINERD_CRIU`` is set, the suite uses the one that
``scripts/criu.py`` provisions in this checkout's ``.cache/criu`` (``./run``
does that), so running the tests writes nothing outside the checkout.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from libcontainerd import checkpoint
from libcontainerd.checkpoint import CRIU_ENV
from libcontainerd.errors import CheckpointUnsupported, FailedPrecondition, NotFound
from libcontainerd.networks import DEFAULT_NETWORK, NetworkService
from libcontainerd.supervisor import Supervisor

from .. import figures
from ..ci import missing
from . import matrix
from .containers import (  # noqa: F401 - client_kind, client, new_client and containers: fixtures
    TEST_NAMESPACE,
    client,
    client_kind,
    containers,
    namespace_cgroups,
    new_client,
    shim_socket_files,
    unbound,
)

PROVISIONED_CRIU = Path(__file__).resolve().parents[2] / ".cache" / "criu" / "bin" / "criu"


VERSIONS = matrix.versions()

# Every namespace the suite runs containers in (the demo's default included).
SUITE_NAMESPACES = (
    TEST_NAMESPACE,
    f"{TEST_NAMESPACE}-other",
    f"{TEST_NAMESPACE}-elsewhere",
    "lcdfuzz",
    "lcdimages",
    "lcdcli",
    "lcdclisandbox",
    "lcdsandboxcr",
    "lcdsandbox",
    "lcdminbase",
    "lcdminbase2",
    "lcdhelper",
    "lcddemo",
    "libcontainerd",
    "test",
)


@pytest.fixture(scope="session", autouse=True)
def namespace_cgroups_removed() -> Iterator[None]:
    """Remove the namespace-level cgroup folders runc leaves, those this session made.

    Only empty ones go (rmdir refuses a folder with processes or children),
    and none that existed before the session.
    """
    before = set(namespace_cgroups(SUITE_NAMESPACES))
    yield
    for folder in namespace_cgroups(SUITE_NAMESPACES):
        if folder not in before:
            with contextlib.suppress(OSError):
                folder.rmdir()


@pytest.fixture(scope="session", autouse=True)
def stale_shim_sockets_removed() -> Iterator[None]:
    """Remove the shim socket files this session left that nothing listens on any more.

    A shim removes its socket when it shuts down; one the suite kills on
    purpose leaves it, and so does containerd 2.x for a shim it stops after
    a refused task create or at the end of a shim group. The count is
    printed with the run's figures.
    """
    before = shim_socket_files()
    yield
    stale = unbound(shim_socket_files() - before)
    for path in stale:
        path.unlink(missing_ok=True)
    figures.record("host", "stale shim socket files removed", len(stale))


@pytest.fixture(scope="session", autouse=True)
def default_network_removed() -> Iterator[None]:
    """Remove the default network (lcd0: lcd run joins it) if this session made it.

    Not while a container of anyone's is on it (remove refuses then).
    """
    service = NetworkService()
    existed = asyncio.run(service.list())
    yield
    if not any(made.name == DEFAULT_NETWORK for made in existed):
        with contextlib.suppress(NotFound, FailedPrecondition):
            asyncio.run(service.remove(DEFAULT_NETWORK))


@pytest.fixture(scope="session", params=VERSIONS, ids=[version.name for version in VERSIONS])
def containerd(request: pytest.FixtureRequest) -> str:
    """The containerd binary of this pass of the matrix; skips the pass when it is missing.

    In CI (``CI=true``) a missing version fails instead: it was to be provisioned.
    """
    version: matrix.Version = request.param
    if version.binary is None:
        missing(version.missing)
    return version.binary


def make_workdir() -> Path:
    """A fresh folder directly under /tmp, so socket paths inside it stay short."""
    return Path(tempfile.mkdtemp(prefix="lcd-t", dir="/tmp"))


def remove_workdir(workdir: Path) -> None:
    """Delete a folder made by make_workdir, first unmounting what is mounted inside it.

    Only mounts below this folder are touched, deepest first.
    """
    inside = str(workdir) + "/"
    with open("/proc/self/mountinfo") as mountinfo:
        points = [_unescape(line.split()[4]) for line in mountinfo]
    for point in sorted((p for p in points if p.startswith(inside)), key=len, reverse=True):
        subprocess.run(["umount", point], check=False)
    shutil.rmtree(workdir, ignore_errors=True)


def _unescape(field: str) -> str:
    # mountinfo writes space, tab, newline and backslash as octal escapes.
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A fresh short folder for one test, removed afterwards."""
    path = make_workdir()
    try:
        yield path
    finally:
        remove_workdir(path)


@pytest.fixture
def place(workdir: Path) -> Path:
    """The test's folder, which a mapped uid may pass through (mkdtemp makes it 0700)."""
    workdir.chmod(0o755)
    return workdir


@pytest.fixture(scope="session")
def provisioned_criu() -> Iterator[None]:
    """Point the library at this checkout's CRIU (if provisioned and no other is chosen)."""
    with pytest.MonkeyPatch.context() as patch:
        if not os.environ.get(CRIU_ENV) and PROVISIONED_CRIU.is_file():
            patch.setenv(CRIU_ENV, str(PROVISIONED_CRIU))
        yield


@pytest.fixture
async def criu(supervisor: Supervisor) -> str:
    """The CRIU the library will use; skips the test, with the reason, when none works.

    In CI (``CI=true``) that fails the test instead: ``./run`` provisions CRIU there.
    """
    try:
        return await checkpoint.find_criu()
    except CheckpointUnsupported as error:
        missing(f"{error} -- provision one with: python3 scripts/criu.py")


@pytest.fixture(scope="session")
async def supervisor(provisioned_criu: None, containerd: str) -> AsyncIterator[Supervisor]:
    """One containerd for the session, in its own folders; tests must not kill it."""
    path = make_workdir()
    daemon = Supervisor(path / "state", path / "root", containerd=containerd)
    try:
        await daemon.start()
        yield daemon
    finally:
        try:
            await daemon.stop()
        finally:
            remove_workdir(path)
