"""Checkpoints: a running container's CRIU images written to a directory, and restored from one.

**Transport.** runc writes the CRIU images straight into a directory named in
the request, and restores straight from one: ``Tasks.Checkpoint`` with runc's
``CheckpointOptions.image_path``, and ``Tasks.Create`` with runc's
``Options.criu_image_path`` (then ``Tasks.Start`` runs ``runc restore``).
containerd 1.6, 1.7 and 2.x all honour both fields. Docker instead lets
containerd tar the images into its content store, reads the tarball back and
untars it, and for a restore uploads a tarball that containerd unpacks into
a temporary directory; that costs three copies of what may be gigabytes of
memory, leases against the garbage collector, more round trips, and leaks
the unpacked copy in containerd's ``/tmp`` on every restore (containerd
#10166, still so in 2.x). The price of the direct way: the directory must be
visible at the same path to containerd's shim, which holds for a containerd
on this host in this mount namespace (the unix socket says the host; a
client inside another container must share the path).

A checkpoint is first written into a fresh directory beside the target and
renamed into place when complete, so a failure never leaves a half-written
checkpoint behind. The directory holds CRIU's ``*.img`` files and runc's
``descriptors.json``.

**CRIU.** runc runs CRIU; which one is fixed when the task is created: the
runc shim of containerd 1.6/1.7 passes the runtime option ``criu_path`` on
as ``runc --criu``, otherwise runc looks ``criu`` up on its PATH, which is
containerd's (containerd 2.x dropped ``criu_path`` and runc 1.2 ignores
``--criu``). The library looks for a CRIU that passes ``criu check`` in this
order, and uses the first:

1. the container's runtime option ``criu_path``, when it has one (it is
   what runc will run, so it alone is checked);
2. ``$LIBCONTAINERD_CRIU``;
3. ``/var/lib/libcontainerd/criu/bin/criu`` (:data:`DEFAULT_CRIU`): beside
   the embedded daemon's data, where ``scripts/criu.py --install`` puts a
   CRIU that works on hosts whose own is too old;
4. ``criu`` on PATH.

:meth:`AsyncClient.create` records the CRIU found this way as the
container's ``criu_path`` (unless the caller gave one), a restore passes it
to its new task, and a :class:`Supervisor` puts it first on containerd's
PATH. Each path's ``criu check`` verdict is cached for the life of the
process (until the file changes).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from google.protobuf import any_pb2

from . import _typeurl
from ._api.containerd.runtime.v2.runc.options import oci_pb2 as runc_pb2
from ._commands import output_of
from .errors import (
    AlreadyExists,
    CheckpointUnsupported,
    FailedPrecondition,
    InvalidArgument,
    LibcontainerdError,
    runtime_reason,
)

__all__ = [
    "CRIU_ENV",
    "CRIU_INSTALL_DIR",
    "DEFAULT_CRIU",
    "CriuCheck",
    "check_criu",
    "checkpoint_failure",
    "checkpoint_options",
    "find_criu",
    "image_directory",
    "restore_failure",
    "restore_options",
    "target_directory",
    "usable_criu",
    "written_atomically",
]

CRIU_ENV: Final = "LIBCONTAINERD_CRIU"
CRIU_INSTALL_DIR: Final = "/var/lib/libcontainerd/criu"
DEFAULT_CRIU: Final = CRIU_INSTALL_DIR + "/bin/criu"

# What CRIU prints when `criu check` finds everything it needs.
_LOOKS_GOOD = "Looks good."
_CHECK_TIMEOUT = 60.0
# A checkpoint holds at least CRIU's inventory and runc's list of the stdio fds.
_REQUIRED_FILES = ("inventory.img", "descriptors.json")
_LOG_LINES = 6
_LOG_TAIL_BYTES = 64 * 1024


# --- finding CRIU -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CriuCheck:
    """The verdict of ``criu check`` on one binary: ``output`` is what it printed, or why not."""

    path: str
    ok: bool
    output: str


_checked: dict[tuple[str, int, int, int, int], CriuCheck] = {}


async def check_criu(path: str) -> CriuCheck:
    """Run ``<path> check`` (once per process and file version) and say whether CRIU works."""
    key = _file_version(path)
    if isinstance(key, str):
        return CriuCheck(path, False, key)
    known = _checked.get(key)
    if known is None:
        known = _checked[key] = await _run_check(path)
    return known


def _file_version(path: str) -> tuple[str, int, int, int, int] | str:
    """What identifies this version of the file, or why there is none."""
    try:
        info = os.stat(path)
    except OSError as error:
        return f"{path}: {error.strerror}"
    return (os.path.realpath(path), info.st_dev, info.st_ino, info.st_mtime_ns, info.st_size)


async def _run_check(path: str) -> CriuCheck:
    try:
        async with asyncio.timeout(_CHECK_TIMEOUT):
            status, text = await output_of(path, "check")
    except OSError as error:
        return CriuCheck(path, False, f"cannot run {path}: {error.strerror}")
    except TimeoutError:
        return CriuCheck(path, False, f"{path} check did not finish within {_CHECK_TIMEOUT:g} s")
    ok = status == 0 and _LOOKS_GOOD in text
    if not ok:
        text = f"exit status {status}: {_shorten(text) or '(no output)'}"
    return CriuCheck(path, ok, text)


def _candidates(configured: str) -> tuple[list[tuple[str, str]], list[str]]:
    """(where it came from, path) in the order of the module's docstring; and what was skipped."""
    if configured:
        return [("the container's runtime option criu_path", configured)], []
    found, skipped = [], []
    from_env = os.environ.get(CRIU_ENV, "")
    if from_env:
        found.append((f"${CRIU_ENV}", from_env))
    if os.path.exists(DEFAULT_CRIU):
        found.append(("the default location", DEFAULT_CRIU))
    else:
        skipped.append(f"nothing at {DEFAULT_CRIU} (scripts/criu.py --install puts one there)")
    on_path = shutil.which("criu")
    if on_path:
        found.append(("PATH", on_path))
    else:
        skipped.append("no criu on PATH")
    unique: dict[str, tuple[str, str]] = {}
    for origin, path in found:
        unique.setdefault(os.path.realpath(path), (origin, path))
    return list(unique.values()), skipped


async def find_criu(configured: str = "") -> str:
    """The path of the first CRIU that passes ``criu check`` (``configured`` alone, if given).

    Raises CheckpointUnsupported, quoting each candidate's ``criu check``.
    """
    candidates, skipped = _candidates(configured)
    reasons = []
    for origin, path in candidates:
        verdict = await check_criu(path)
        if verdict.ok:
            return path
        reasons.append(f"{path} ({origin}): {verdict.output}")
    reasons += skipped
    raise CheckpointUnsupported(
        "no working CRIU, so checkpoints cannot be made or restored: " + "; ".join(reasons)
    )


# The last CRIU usable_criu() found, and the state of what decided it.
_usable: tuple[tuple[object, ...], str] | None = None


async def usable_criu() -> str:
    """Like :func:`find_criu` without a configured path, but "" when none works.

    Asked on every create(): a CRIU found is remembered while $LIBCONTAINERD_CRIU,
    $PATH, the files at the environment's and the default location and the
    file found stay as they were (three stats instead of a search, ~85 us).
    One newly put on PATH ahead of it is not noticed while it keeps working.
    """
    global _usable
    if _usable is not None:
        decided_by, path = _usable
        if decided_by == _usable_state(path):
            return path
    try:
        path = await find_criu()
    except CheckpointUnsupported:
        return ""
    _usable = (_usable_state(path), path)
    return path


def _usable_state(found: str) -> tuple[object, ...]:
    from_env = os.environ.get(CRIU_ENV, "")
    return (
        from_env,
        os.environ.get("PATH", ""),
        DEFAULT_CRIU,
        _identity(from_env) if from_env else None,
        _identity(DEFAULT_CRIU),
        _identity(found),
    )


def _identity(path: str) -> tuple[int, int, int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return (info.st_dev, info.st_ino, info.st_mtime_ns, info.st_size)


# --- directories -------------------------------------------------------------------------


def target_directory(checkpoint_dir: str | os.PathLike[str]) -> Path:
    """The absolute directory a checkpoint will be written to; checked before anything is sent.

    It may exist only as an empty directory. Raises InvalidArgument (not a
    path, a file, a file on its way, a name the filesystem refuses),
    AlreadyExists (a directory that holds files).
    """
    target = _absolute(checkpoint_dir)
    try:
        if target.is_dir():
            if any(target.iterdir()):
                raise AlreadyExists(f"checkpoint directory {target} already holds files")
        elif target.exists() or target.is_symlink():
            raise InvalidArgument(f"checkpoint directory {target} exists and is not a directory")
        else:
            # Refused now, not after the container was looked up: a file on the way.
            ancestor = next(parent for parent in target.parents if parent.exists())
            if not ancestor.is_dir():
                raise InvalidArgument(
                    f"checkpoint directory {target} cannot be made: {ancestor} is not a directory"
                )
    except OSError as error:  # a name too long, a folder we may not read, ...
        raise InvalidArgument(
            f"checkpoint directory {target} cannot be used: {error.strerror}"
        ) from None
    return target


@contextlib.contextmanager
def written_atomically(target: Path) -> Iterator[Path]:
    """A fresh directory beside ``target``, renamed to it if the block succeeds, else removed.

    Raises InvalidArgument when it cannot be made (under /proc, a read-only filesystem, ...).
    """
    try:
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        partial = Path(
            tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
        )
    except OSError as error:  # e.g. under /proc, or on a read-only filesystem
        raise InvalidArgument(
            f"cannot make checkpoint directory {target}: {error.strerror}"
        ) from None
    try:
        yield partial
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    try:
        # rename(2) replaces an empty directory, and refuses one that has filled up meanwhile.
        partial.rename(target)
    except OSError as error:
        shutil.rmtree(partial, ignore_errors=True)
        raise AlreadyExists(f"cannot put the checkpoint into {target}: {error.strerror}") from None


def image_directory(checkpoint_dir: str | os.PathLike[str]) -> Path:
    """The absolute directory to restore from, once it looks like a checkpoint.

    Raises InvalidArgument when it does not exist, is not a directory, or
    lacks CRIU's ``inventory.img`` or runc's ``descriptors.json``.
    """
    source = _absolute(checkpoint_dir)
    try:
        if not source.is_dir():
            problem = "does not exist" if not source.exists() else "is not a directory"
            raise InvalidArgument(f"checkpoint directory {source} {problem}")
        missing = [name for name in _REQUIRED_FILES if not (source / name).is_file()]
    except OSError as error:  # a name too long, a folder we may not read, ...
        raise InvalidArgument(
            f"checkpoint directory {source} cannot be used: {error.strerror}"
        ) from None
    if missing:
        raise InvalidArgument(
            f"checkpoint directory {source} holds no checkpoint: {', '.join(missing)} missing"
        )
    return source


def _absolute(path: str | os.PathLike[str]) -> Path:
    try:
        text = os.fspath(path)
    except TypeError:
        raise InvalidArgument(f"checkpoint_dir must be a path, got {path!r}") from None
    if not isinstance(text, str) or not text or "\0" in text:
        raise InvalidArgument(f"checkpoint_dir must be a non-empty path, got {path!r}")
    # The shim resolves it, not this process: make it absolute here.
    return Path(os.path.abspath(text))


# --- runc options ------------------------------------------------------------------------


def checkpoint_options(exit: bool, image_path: Path) -> any_pb2.Any:
    """runc's CheckpointOptions: dump into ``image_path``; ``exit`` stops the container after."""
    return _typeurl.pack(runc_pb2.CheckpointOptions(exit=exit, image_path=str(image_path)))


def restore_options(runtime: runc_pb2.Options, image_path: Path, criu: str) -> any_pb2.Any:
    """The task options of a restore: the container's runc options plus the image directory.

    Task options replace the container's in the shim, so all of them are sent.
    """
    options = runc_pb2.Options()
    options.CopyFrom(runtime)
    options.criu_image_path = str(image_path)
    if not options.criu_path:
        options.criu_path = criu
    return _typeurl.pack(options)


# --- failures ----------------------------------------------------------------------------


def checkpoint_failure(container_id: str, error: LibcontainerdError) -> LibcontainerdError:
    """The error for a dump that runc or CRIU refused: FailedPrecondition with CRIU's reasons."""
    return FailedPrecondition(
        f"CRIU could not checkpoint container {container_id!r}: {_criu_reason(error.details)}",
        code=error.code,
        details=error.details,
    )


def restore_failure(
    container_id: str, source: Path, error: LibcontainerdError
) -> LibcontainerdError:
    """The error for a restore that runc or CRIU refused: InvalidArgument with CRIU's reasons.

    Call it before the failed task is deleted: CRIU's restore log goes with it.
    """
    return InvalidArgument(
        f"cannot restore container {container_id!r} from {source}: {_criu_reason(error.details)}",
        code=error.code,
        details=error.details,
    )


def _criu_reason(details: str) -> str:
    """runc's message, plus the error lines of the CRIU log it names, while the log exists."""
    reason = " ".join(runtime_reason(details).split())
    match = re.search(r"(?:path=|log file:)\s*(\S+\.log)", reason)
    if match is None:
        return reason
    errors = _log_errors(match.group(1))
    if not errors:
        return reason
    return f"{reason}; CRIU says: " + " | ".join(errors)


def _log_errors(path: str) -> list[str]:
    try:
        with open(path, "rb") as log:
            log.seek(0, os.SEEK_END)
            log.seek(max(0, log.tell() - _LOG_TAIL_BYTES))
            text = log.read().decode(errors="replace")
    except OSError:
        return []
    lines = []
    for line in text.splitlines():
        if "Error" in line:
            # "(00.131031) Error (criu/net.c:3282): net: ..." -> "net: ..."
            message = re.sub(r"^\(\s*[\d.]+\)\s*", "", line.strip())
            message = re.sub(r"^Error \([^)]*\):\s*", "", message)
            if message not in lines:
                lines.append(message)
    return lines[-_LOG_LINES:]


def _shorten(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return " | ".join(lines[-_LOG_LINES:])
