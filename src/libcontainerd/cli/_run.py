"""``lcd run``, ``lcd create`` and ``lcd exec``: new containers and processes.

``run`` and ``exec`` stand for their process: in the foreground they copy its
stdio, forward the signals lcd receives and exit with its status (125, 126,
127 when it does not run, as ``docker run``).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import os
import secrets
import shutil
from pathlib import Path
from typing import Any

import click

from .. import oci
from .._identifiers import check_identifier
from ..client import AsyncClient
from ..errors import AlreadyExists, LibcontainerdError
from ._app import CONTEXT, Settings, connect, pass_settings
from ._busybox_roots import busybox_root
from ._container_options import (
    ContainerRequest,
    container_options,
    definition_fields,
    process_options,
    stdio_options,
)
from ._containers import delete_and_record_exit, in_foreground, remove_container
from ._failures import Failure, process_exit_statuses, start_failure_status
from ._network import NetworkRequest, network_options
from ._output import Output
from ._signal_forwarder import SignalForwarder
from ._stdio import Stdio, check_stdio, logged_stdio, stdio_for

__all__ = ["COMMANDS"]

# What follows the first argument is the command's: `lcd run -- sh -c ...`.
COMMAND_CONTEXT = {**CONTEXT, "allow_interspersed_args": False}


# Stands for the "--" that ends lcd's options while click parses them, so that
# `lcd run -- CMD` (busybox) can be told from `lcd run IMAGE [CMD]` afterwards.
_NO_IMAGE = "\0--"


class ImageOrCommand(click.Command):
    """``IMAGE [COMMAND [ARG]...]`` (Docker's), or ``-- COMMAND [ARG]...`` (a busybox root)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        rest = super().parse_args(ctx, [_NO_IMAGE if arg == "--" else arg for arg in args])
        given = [("--" if arg == _NO_IMAGE else arg) for arg in ctx.params.get("args", ())]
        if args and ctx.params.get("args") and ctx.params["args"][0] == _NO_IMAGE:
            ctx.params["image"], ctx.params["args"] = None, tuple(given[1:])
        elif given:
            ctx.params["image"], ctx.params["args"] = given[0], tuple(given[1:])
        else:
            ctx.params["image"] = None
        return rest


def _request(args: tuple[str, ...], tty: bool, options: dict[str, Any]) -> ContainerRequest:
    image = options.get("image")
    if not args and image is None:
        raise click.UsageError(
            "missing the command to run: an IMAGE ('lcd run busybox') or, after --,"
            " a command ('lcd run -- echo hello')"
        )
    if image is not None and options["rootfs"] is not None:
        raise click.UsageError("--rootfs runs a command ('lcd run --rootfs DIR -- CMD'), not IMAGE")
    if options.get("entrypoint") is not None and image is None:
        raise click.UsageError("--entrypoint needs an image ('lcd run --entrypoint E IMAGE')")
    request = ContainerRequest(
        image=image,
        entrypoint=options.get("entrypoint"),
        args=args,
        name=options["name"],
        hostname=options["hostname"],
        memory=options["memory"],
        cpus=options["cpus"],
        pids_limit=options["pids_limit"],
        rootfs=options["rootfs"],
        workdir=options["workdir"],
        user=options["user"],
        terminal=tty,
        network=NetworkRequest(
            "none" if options.get("sandbox") and options["network"] is None else options["network"],
            tuple(options["publish"]),
            tuple(options["dns"]),
            tuple(options["add_host"]),
        ),
        **definition_fields(options),
    )
    request.validate()
    return request


# --- lcd run ------------------------------------------------------------------------


_ENTRYPOINT = click.option(
    "--entrypoint", metavar="PROGRAM", help="run PROGRAM instead of the image's entrypoint"
)
_IMAGE_OR_COMMAND = click.argument(
    "args", nargs=-1, type=click.UNPROCESSED, metavar="IMAGE [COMMAND [ARG]...] | -- COMMAND..."
)


@click.command(cls=ImageOrCommand, context_settings=COMMAND_CONTEXT)
@click.option("--detach", "-d", is_flag=True, help="print the id and leave it running")
@click.option("--rm", "remove", is_flag=True, help="remove the container when it exits")
@stdio_options
@container_options
@network_options
@process_options
@_ENTRYPOINT
@_IMAGE_OR_COMMAND
@pass_settings
def run(
    settings: Settings,
    /,
    args: tuple[str, ...],
    detach: bool,
    remove: bool,
    interactive: bool,
    tty: bool,
    **options: Any,
) -> None:
    """Run IMAGE (or, after --, COMMAND) in a new container; exit with its exit status.

    With IMAGE the container runs on a snapshot of the image (imported with
    'lcd import'), its command the image's entrypoint with COMMAND [ARG]...
    in place of its cmd, as docker run does (--entrypoint replaces the
    entrypoint; -e, -w, -u override the image's). After -- the container
    runs COMMAND: without --rootfs on a fresh busybox root filesystem,
    removed with the container. Without -d, lcd copies the container's stdout
    and stderr to its own, waits for it and forwards the signals it receives
    to it (Ctrl-C twice kills it); the container's task is then deleted, and
    with --rm the container too. -i copies lcd's stdin to the container (its
    end is the container's EOF); -t gives the container a terminal connected
    to lcd's (with -i: an interactive shell). With -d the output goes to a
    log file ('lcd logs').

    \b
    Exit status: the container's; 125 when lcd fails, 126 when ARGS cannot
    be run, 127 when the program is not found.
    """
    with process_exit_statuses():
        request = _request(args, tty, options)
        check_stdio(interactive, tty, detach)
        if detach and remove:
            raise click.UsageError(
                "--rm with -d is not supported: nothing would be left to remove the container"
                " when it exits (use 'lcd rm -f' later)"
            )
        status = asyncio.run(_run(settings, request, detach, remove, interactive, tty))
    raise SystemExit(status)


async def _run(
    settings: Settings,
    request: ContainerRequest,
    detach: bool,
    remove: bool,
    interactive: bool,
    tty: bool,
) -> int:
    out = Output()
    container_id = request.name or secrets.token_hex(6)
    async with connect(settings, out) as client:
        if detach:
            stdio = logged_stdio(settings, container_id)
            await _create_and_start(client, settings, out, request, container_id, stdio)
            click.echo(container_id)
            return 0
        # Kept, the container's output also goes to its log, as a detached one's ('lcd logs').
        log = None if remove else settings.log_path(container_id)
        stdio = stdio_for(client, interactive, tty, log)
        # Installed first, so a signal that comes early waits for the container to run.
        with SignalForwarder(client, out) as forwarder:
            await _create_and_start(client, settings, out, request, container_id, stdio)
            exit_code = await in_foreground(client, forwarder, stdio, container_id)
        if remove:
            await remove_container(client, settings, container_id, force=True)
        else:
            await delete_and_record_exit(client, container_id)
        return exit_code


async def _create_and_start(
    client: AsyncClient,
    settings: Settings,
    out: Output,
    request: ContainerRequest,
    container_id: str,
    stdio: Stdio,
) -> None:
    """Create and start the container; one that cannot start is removed again."""
    await _create(client, settings, out, request, container_id)
    try:
        await client.start(container_id, with_stdin=stdio.with_stdin, attach_stdio=stdio.attach)
    except LibcontainerdError as error:
        with contextlib.suppress(LibcontainerdError):
            await remove_container(client, settings, container_id, force=True)
        raise Failure(str(error), start_failure_status(str(error))) from None


# --- lcd create ---------------------------------------------------------------------


@click.command(cls=ImageOrCommand, context_settings=COMMAND_CONTEXT)
@stdio_options
@container_options
@network_options
@process_options
@_ENTRYPOINT
@_IMAGE_OR_COMMAND
@pass_settings
def create(
    settings: Settings, /, args: tuple[str, ...], interactive: bool, tty: bool, **options: Any
) -> None:
    """Create a container of IMAGE, or after -- one that runs COMMAND ('lcd start'); print its id.

    -t gives it a terminal: start it with 'lcd start -ai ID'.
    """
    request = _request(args, tty, options)
    if interactive:
        raise click.UsageError(
            "-i applies when the container starts: 'lcd start -ai ID' attaches its stdin"
        )
    container_id = request.name or secrets.token_hex(6)

    async def work() -> None:
        async with connect(settings, Output()) as client:
            await _create(client, settings, Output(), request, container_id)

    asyncio.run(work())
    click.echo(container_id)


async def _create(
    client: AsyncClient,
    settings: Settings,
    out: Output,
    request: ContainerRequest,
    container_id: str,
) -> None:
    """Create the container (and its busybox root filesystem).

    A log file left by an earlier container of that name is removed: a new
    container starts a new log.
    """
    check_identifier(container_id)
    attach = request.network.attach(request.hostname)
    if request.image is not None:
        image = await client.images.get(request.image)
        spec = oci.image_spec(
            image,
            *request.spec_options(None),
            args=list(request.args) or None,
            entrypoint=[request.entrypoint] if request.entrypoint is not None else None,
        )
        await client.create(container_id, spec, image=image, network=attach, labels=request.labels)
    elif request.rootfs is not None:
        root = Path(request.rootfs)
        spec = oci.default_spec(list(request.args), root, *request.spec_options(root))
        await client.create(container_id, spec, network=attach, labels=request.labels)
    else:
        root = _claim_rootfs(settings, container_id)
        try:
            with out.progress("building a busybox root filesystem"):
                busybox_root(settings.root_dir, root)
            spec = oci.default_spec(list(request.args), root, *request.spec_options(root))
            await client.create(container_id, spec, network=attach, labels=request.labels)
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise
    settings.log_path(container_id).unlink(missing_ok=True)


def _claim_rootfs(settings: Settings, container_id: str) -> Path:
    """Make the container's rootfs directory; refuse one that exists (it may be in use)."""
    root = settings.rootfs_dir(container_id)
    root.parent.mkdir(mode=0o711, parents=True, exist_ok=True)
    # A user-namespaced container's root (--sandbox) must pass through to its own.
    for folder in (root.parent, root.parent.parent):
        if folder.stat().st_mode & 0o111 != 0o111:
            folder.chmod(folder.stat().st_mode | 0o111)
    try:
        root.mkdir(mode=0o755)
    except FileExistsError:
        raise AlreadyExists(
            f"container {container_id!r} already exists in namespace {settings.namespace!r},"
            f" or a previous run left its root filesystem {root} behind"
            f" ('lcd rm -f {container_id}' removes either)"
        ) from None
    return root


# --- lcd exec -----------------------------------------------------------------------


@click.command("exec", context_settings=COMMAND_CONTEXT)
@click.option(
    "--detach", "-d", is_flag=True, help="print the exec id and leave it running, without stdio"
)
@stdio_options
@process_options
@click.argument("container_id", metavar="ID")
@click.argument(
    "args", nargs=-1, type=click.UNPROCESSED, required=True, metavar="[--] COMMAND [ARG]..."
)
@pass_settings
def exec_(
    settings: Settings,
    /,
    container_id: str,
    args: tuple[str, ...],
    detach: bool,
    interactive: bool,
    tty: bool,
    env: tuple[str, ...],
    workdir: str | None,
    user: str | None,
) -> None:
    """Run ARGS in a running container; exit with its exit status.

    The process starts as the container's own (its environment, user and
    working directory), changed by -e, -w and -u; -i and -t work as in 'lcd
    run', and so do the output and the signals lcd receives. Its id is
    generated ('exec-' and 12 hex digits).

    \b
    Exit status: the process's; 125 when lcd fails, 126 when ARGS cannot be
    run, 127 when the program is not found.
    """
    if args[:1] == ("--",):  # after ID, click keeps the "--" among the arguments
        args = args[1:]
    if not args:
        raise click.UsageError("missing the command to run, e.g. 'lcd exec ID -- ls'")
    with process_exit_statuses():
        check_identifier(container_id)
        check_stdio(interactive, tty, detach)
        request = ContainerRequest(args=args, env=env, workdir=workdir, user=user, terminal=tty)
        request.validate()
        status = asyncio.run(_exec(settings, container_id, request, detach, interactive))
    raise SystemExit(status)


async def _exec(
    settings: Settings,
    container_id: str,
    request: ContainerRequest,
    detach: bool,
    interactive: bool,
) -> int:
    out = Output()
    exec_id = f"exec-{secrets.token_hex(6)}"
    async with connect(settings, out) as client:
        process = await _exec_process(client, container_id, request)
        if detach:
            await _start_exec(client, container_id, exec_id, process, Stdio())
            click.echo(exec_id)
            return 0
        stdio = stdio_for(client, interactive, request.terminal)
        with SignalForwarder(client, out, exec_id) as forwarder:
            await _start_exec(client, container_id, exec_id, process, stdio)
            return await in_foreground(client, forwarder, stdio, container_id)


async def _exec_process(
    client: AsyncClient, container_id: str, request: ContainerRequest
) -> dict[str, Any]:
    """The exec's OCI process: the container's own, running ARGS, with -e, -w, -u and -t applied.

    User names are looked up in the container's root filesystem when its path is on this host.
    """
    spec = await client.spec(container_id)
    root_path = spec.get("root", {}).get("path")
    root = Path(root_path) if isinstance(root_path, str) and os.path.isabs(root_path) else None
    document = {"process": copy.deepcopy(spec.get("process") or {})}
    oci.apply(
        document,
        oci.with_args(list(request.args)),
        oci.with_terminal(request.terminal),
        *request.process_options(root),
    )
    return document["process"]


async def _start_exec(
    client: AsyncClient, container_id: str, exec_id: str, process: dict[str, Any], stdio: Stdio
) -> None:
    try:
        await client.exec(container_id, exec_id, process, stdio.with_stdin, stdio.attach)
    except LibcontainerdError as error:
        raise Failure(str(error), start_failure_status(str(error))) from None


COMMANDS: tuple[click.Command, ...] = (run, create, exec_)
