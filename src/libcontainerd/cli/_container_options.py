"""The options of ``lcd run``, ``create``, ``exec`` (and ``update``'s limits), and the
:class:`ContainerRequest` they make, turned into OCI spec options.

A refused value names the flag it came from (``--cpus: must be ...``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import click

from .. import oci
from .._identifiers import check_identifier
from ..errors import InvalidArgument
from ._network import NetworkRequest
from ._values import parse_env, parse_size, parse_user

__all__ = [
    "ContainerRequest",
    "container_options",
    "process_options",
    "size_value",
    "stdio_options",
]


def size_value(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    """A size in bytes: 512, 64k, 64m, 1.5g, 64MiB."""
    if value is None:
        return None
    try:
        return parse_size(value)
    except InvalidArgument as error:
        raise click.BadParameter(str(error), ctx, param) from None


F = TypeVar("F", bound=Callable[..., Any])


def _options(*decorators: Callable[[F], F]) -> Callable[[F], F]:
    def apply(function: F) -> F:
        for decorator in reversed(decorators):
            function = decorator(function)
        return function

    return apply


stdio_options = _options(
    click.option(
        "--interactive", "-i", is_flag=True, help="copy lcd's stdin to the process (EOF ends it)"
    ),
    click.option(
        "--tty", "-t", is_flag=True, help="give the process a terminal, connected to lcd's"
    ),
)

process_options = _options(
    click.option(
        "--env", "-e", multiple=True, metavar="NAME[=VALUE]", help="set a variable (repeatable)"
    ),
    click.option("--workdir", "-w", metavar="DIR", help="working directory inside the container"),
    click.option(
        "--user", "-u", metavar="USER[:GROUP]", help="uid[:gid], or names from the rootfs"
    ),
)

container_options = _options(
    click.option("--name", metavar="ID", help="the container's id (default: a random one)"),
    click.option("--hostname", metavar="NAME", help="the container's hostname"),
    click.option(
        "--memory", "-m", callback=size_value, metavar="SIZE", help="memory limit, e.g. 64m or 1g"
    ),
    click.option("--cpus", type=float, help="CPU limit in CPUs, e.g. 0.5"),
    click.option("--pids-limit", type=int, help="maximum number of processes"),
    click.option(
        "--rootfs",
        type=click.Path(exists=True, file_okay=False, resolve_path=True),
        help="root filesystem directory (default: a fresh busybox one, removed with the container)",
    ),
)


@dataclass(frozen=True, slots=True)
class ContainerRequest:
    """What run and create were asked for."""

    args: tuple[str, ...]
    name: str | None = None
    hostname: str | None = None
    memory: int | None = None
    cpus: float | None = None
    pids_limit: int | None = None
    rootfs: str | None = None
    env: tuple[str, ...] = ()
    workdir: str | None = None
    user: str | None = None
    terminal: bool = False
    network: NetworkRequest = field(default_factory=NetworkRequest)
    image: str | None = None  # lcd run IMAGE: the root filesystem and process come from it
    entrypoint: str | None = None

    def resource_options(self) -> list[oci.SpecOption]:
        options = []
        for flag, value, build in (
            ("--memory", self.memory, oci.with_memory_limit),
            ("--cpus", self.cpus, oci.with_cpus),
            ("--pids-limit", self.pids_limit, oci.with_pids_limit),
        ):
            if value is not None:
                options.append(_option(flag, build, value))
        return options

    def validate(self) -> None:
        """Refuse a bad value before anything is contacted or built.

        User and group names are checked later, in the root filesystem.
        """
        if self.name is not None:
            check_identifier(self.name)
        self.spec_options(None)
        self.network.attach(self.hostname)

    def spec_options(self, root: Path | None) -> list[oci.SpecOption]:
        """Every spec option; user names are looked up in ``root`` (skipped without one)."""
        options = self.resource_options() + self.process_options(root)
        options.extend(self.network.spec_options())
        if self.hostname is not None:
            options.append(_option("--hostname", oci.with_hostname, self.hostname))
        return options

    def process_options(self, root: Path | None) -> list[oci.SpecOption]:
        """The options of the process alone (what an exec takes): env, workdir, user, terminal."""
        options = []
        if self.env:
            options.append(_option("--env", oci.with_env, parse_env(self.env)))
        if self.workdir is not None:
            options.append(_option("--workdir", oci.with_cwd, self.workdir))
        if self.user is not None and self.image is not None:
            # Resolved from the image's own /etc/passwd and /etc/group when it is created.
            options.append(_option("--user", oci.with_username, self.user))
        elif self.user is not None and (root is not None or _numeric_user(self.user)):
            uid, gid = parse_user(self.user, root)
            options.append(_option("--user", oci.with_user, uid, gid))
        if self.terminal:
            options.append(oci.with_terminal(True))
        return options


def _numeric_user(text: str) -> bool:
    return all(part.isdigit() for part in text.split(":"))


def _option(flag: str, build: Callable[..., oci.SpecOption], *values: Any) -> oci.SpecOption:
    """Build a spec option, naming the command-line flag when the value is refused."""
    try:
        return build(*values)
    except InvalidArgument as error:
        raise InvalidArgument(f"{flag}: {_strip_builder(str(error))}") from None


def _strip_builder(message: str) -> str:
    # "with_cpus: cpus must be ..." -> "must be ..." (the flag names it instead).
    head, _, rest = message.partition(": ")
    _, found, tail = rest.partition(" must be ")
    return f"must be {tail}" if head.startswith("with_") and found else message
