"""``lcd cp``: files between the host and a container, either way, as ``docker cp``.

The container's files are reached through its root: a running (or paused,
or created) container's as its init process sees it (``/proc/PID/root``,
with its mounts), a stopped one's at its spec's ``root.path`` when that is
a directory on this host (``lcd run --`` and ``--rootfs`` containers). An
image's snapshot is mounted only while the container runs: a stopped image
container is refused. Paths in the container never lead out of its root
(:mod:`._copy_files`).
"""

from __future__ import annotations

import asyncio
import os
import posixpath
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import click

from .._identifiers import check_identifier
from ..client import AsyncClient
from ..errors import NotFound
from ..types import Status
from ._app import CONTEXT, Settings, connect, pass_settings
from ._copy_files import CopyReport, copy_entry, open_in_root
from ._failures import Failure, describe_os_error
from ._output import Output

__all__ = ["COMMANDS", "CopyEnd", "parse_copy_end"]

# Task states in which /proc/PID/root is the container's root, mounts included.
_WITH_ROOT = (Status.RUNNING, Status.PAUSED, Status.PAUSING, Status.CREATED)


@dataclass(frozen=True, slots=True)
class CopyEnd:
    """One side of a copy: a host path, or a path in a container (``container`` set)."""

    path: str
    container: str | None = None


def parse_copy_end(text: str) -> CopyEnd:
    """``ID:PATH`` (a container's) or a host path; ``./a:b`` is a host path with a colon."""
    head, colon, tail = text.partition(":")
    if not colon or head.startswith((".", "/")) or not head:
        if not text:
            raise click.BadParameter("a path must not be empty")
        return CopyEnd(text)
    check_identifier(head)
    if not tail:
        raise click.BadParameter(f"{text!r}: give the path in the container after the colon")
    return CopyEnd(tail, head)


@click.command("cp", context_settings=CONTEXT)
@click.argument("source", metavar="SRC")
@click.argument("destination", metavar="DEST")
@pass_settings
def cp(settings: Settings, source: str, destination: str) -> None:
    """Copy files from ID:PATH to a host path, or from a host path to ID:PATH.

    \b
    lcd cp web:/etc/hosts .          a file out of container web
    lcd cp ./site web:/srv           a directory into it (as /srv/site)
    lcd cp ./site/. web:/srv         the directory's contents into /srv

    As docker cp: a destination directory receives SRC under its own name, a
    missing destination is created as SRC's copy (its parent must exist; with
    a trailing / it must be an existing directory), and links are copied as
    links. A relative PATH in the container starts
    at its working directory. Modes are kept; the files belong to the
    copier (root). Devices, FIFOs and sockets are left out.
    """
    src, dst = parse_copy_end(source), parse_copy_end(destination)
    if (src.container is None) == (dst.container is None):
        raise click.UsageError(
            "one of SRC and DEST must be ID:PATH, the other a host path"
            " (copying between two containers, or two host paths, is not supported)"
        )
    container_id = src.container or dst.container
    assert container_id is not None

    async def work() -> tuple[str, str]:
        async with connect(settings, Output(), start_daemon=False) as client:
            return await _container_root(client, container_id)

    root, cwd = asyncio.run(work())
    report = CopyReport()
    try:
        if src.container is not None:
            _copy_out(root, posixpath.join(cwd, src.path), dst.path, report)
        else:
            _copy_in(src.path, root, posixpath.join(cwd, dst.path), report)
    except OSError as error:
        raise Failure(f"cannot copy: {describe_os_error(error)}") from None
    if report.skipped:
        Output().note(f"left out {report.skipped} special files (devices, FIFOs, sockets)")


async def _container_root(client: AsyncClient, container_id: str) -> tuple[str, str]:
    """The host path of the container's root, and its working directory."""
    spec = await client.spec(container_id)
    listing = await client.list_containers()
    info = next((info for info in listing if info.id == container_id), None)
    if info is None:
        raise NotFound(f"no such container: {container_id!r}")
    process = spec.get("process") if isinstance(spec.get("process"), dict) else {}
    cwd = process.get("cwd") if isinstance(process, dict) else None
    cwd = cwd if isinstance(cwd, str) and cwd.startswith("/") else "/"
    if info.status in _WITH_ROOT and info.pid:
        return f"/proc/{info.pid}/root", cwd
    root = spec.get("root") if isinstance(spec.get("root"), dict) else {}
    path = root.get("path") if isinstance(root, dict) else None
    if isinstance(path, str) and os.path.isabs(path) and os.path.isdir(path):  # noqa: ASYNC240
        return path, cwd
    raise Failure(
        f"container {container_id!r} is not running and its root filesystem is not a directory"
        " on this host (an image's snapshot is mounted only while the container runs):"
        f" start it first ('lcd start {container_id}')"
    )


def _copy_out(root: str, inside: str, host: str, report: CopyReport) -> None:
    parent_path, name = _split(inside)
    with _descriptor(os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)) as root_fd:
        try:
            parent = open_in_root(root_fd, parent_path)
        except (FileNotFoundError, NotADirectoryError):
            raise Failure(f"no such directory in the container: {parent_path}") from None
        with _descriptor(parent):
            try:
                os.stat(name, dir_fd=parent, follow_symlinks=False)
            except FileNotFoundError:
                raise Failure(f"no such file or directory in the container: {inside}") from None
            target_dir, target_name = _host_destination(host, name)
            with _descriptor(target_dir):
                copy_entry(parent, name, target_dir, target_name, report)


def _copy_in(host: str, root: str, inside: str, report: CopyReport) -> None:
    parent_path, name = _split(host if host.startswith("/") else os.path.join(os.getcwd(), host))
    try:
        parent = os.open(parent_path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        raise Failure(f"no such file or directory: {host}") from None
    with _descriptor(parent):
        try:
            os.stat(name, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            raise Failure(f"no such file or directory: {host}") from None
        with _descriptor(os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)) as root_fd:
            target_dir, target_name = _container_destination(root_fd, inside, name)
            with _descriptor(target_dir):
                copy_entry(parent, name, target_dir, target_name, report)


def _split(path: str) -> tuple[str, str]:
    """(parent, name); ``dir/.`` and ``/`` name the directory's contents (``.``)."""
    if path.endswith("/.") or posixpath.normpath(path) == "/":
        return posixpath.normpath(path), "."
    normal = posixpath.normpath(path)
    return posixpath.dirname(normal), posixpath.basename(normal)


def _host_destination(host: str, name: str) -> tuple[int, str]:
    """Where on the host a copy goes: into an existing directory, else as the path itself."""
    if os.path.isdir(host):
        return os.open(host, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC), name
    if host.endswith("/"):
        raise Failure(f"destination directory does not exist: {host}")
    parent, target = _split(os.path.abspath(host))
    try:
        return os.open(parent, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC), target
    except (FileNotFoundError, NotADirectoryError):
        raise Failure(f"destination directory does not exist: {parent}") from None


def _container_destination(root_fd: int, inside: str, name: str) -> tuple[int, str]:
    """Where in the container a copy goes: into an existing directory, else as the path."""
    try:
        found = open_in_root(root_fd, inside)
    except FileNotFoundError:
        found = None
    except NotADirectoryError:
        raise Failure(f"not a directory in the container: {inside}") from None
    if found is not None:
        if stat.S_ISDIR(os.fstat(found).st_mode):
            return found, name
        os.close(found)
    if inside.endswith("/"):  # as docker cp: DEST/ must be a directory that exists
        raise Failure(f"destination directory does not exist in the container: {inside}")
    parent_path, target = _split(inside)
    try:
        return open_in_root(root_fd, parent_path), target
    except (FileNotFoundError, NotADirectoryError):
        raise Failure(
            f"destination directory does not exist in the container: {parent_path}"
        ) from None


@contextmanager
def _descriptor(fd: int) -> Iterator[int]:
    try:
        yield fd
    finally:
        os.close(fd)


COMMANDS: tuple[click.Command, ...] = (cp,)
