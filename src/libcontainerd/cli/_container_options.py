"""The options of ``lcd run``, ``create``, ``exec`` (and ``update``'s limits), and the
:class:`ContainerRequest` they make, turned into OCI spec options.

A refused value names the flag it came from (``--cpus: must be ...``).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import click

from .. import oci
from .._identifiers import check_identifier
from ..errors import FailedPrecondition, InvalidArgument
from ._mounts import MountRequest, parse_mount, parse_volume
from ._network import NetworkRequest
from ._values import parse_env, parse_env_file, parse_labels, parse_size, parse_user

__all__ = [
    "INIT_PATH",
    "ContainerRequest",
    "check_against_host",
    "container_options",
    "definition_fields",
    "init_options",
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
    click.option("--read-only", is_flag=True, help="mount the root filesystem read-only"),
    click.option(
        "--init",
        is_flag=True,
        help="run a small init (tini) as PID 1 that forwards signals and reaps zombies",
    ),
    click.option(
        "--sandbox",
        is_flag=True,
        help="confine for untrusted code: user namespace, no capabilities, read-only root"
        " with a tmpfs /tmp, no network (implies --network none), 256m memory and 256"
        " processes unless -m/--pids-limit say otherwise",
    ),
    click.option(
        "--volume",
        "-v",
        multiple=True,
        metavar="HOST:PATH[:ro]",
        help="bind-mount an absolute host path (made if missing) at PATH (repeatable)",
    ),
    click.option(
        "--mount",
        multiple=True,
        metavar="type=bind|tmpfs,...",
        help="a bind mount (source=,target=[,readonly]) or a tmpfs"
        " (target=[,tmpfs-size=][,tmpfs-mode=]), as Docker's (repeatable)",
    ),
    click.option(
        "--cap-add", multiple=True, metavar="CAP", help="add a capability, or ALL (repeatable)"
    ),
    click.option(
        "--cap-drop", multiple=True, metavar="CAP", help="drop a capability, or ALL (repeatable)"
    ),
    click.option(
        "--label", "-l", multiple=True, metavar="KEY=VALUE", help="a container label (repeatable)"
    ),
    click.option(
        "--env-file",
        multiple=True,
        type=click.Path(dir_okay=False),
        metavar="FILE",
        help="read variables from FILE, NAME=VALUE per line (-e wins; repeatable)",
    ),
)


def definition_fields(options: dict[str, Any]) -> dict[str, Any]:
    """The :class:`ContainerRequest` fields of run's and create's options beyond the basics:
    mounts, capabilities, labels, --read-only, and --env-file's variables before -e's."""
    mounts: list[MountRequest] = []
    for flag, values, parse in (
        ("--volume", options.get("volume", ()), parse_volume),
        ("--mount", options.get("mount", ()), parse_mount),
    ):
        for value in values:
            try:
                mounts.append(parse(value))
            except InvalidArgument as error:
                raise InvalidArgument(f"{flag}: {error}") from None
    env_files: list[str] = []
    for path in options.get("env_file", ()):
        try:
            with open(path, encoding="utf-8", errors="surrogateescape") as file:
                env_files.extend(parse_env_file(file.read(), f"--env-file {path}"))
        except OSError as error:
            raise InvalidArgument(f"--env-file: cannot read {path}: {error.strerror}") from None
    try:
        labels = parse_labels(options.get("label", ()))
    except InvalidArgument as error:
        raise InvalidArgument(f"--label: {error}") from None
    return {
        "read_only": bool(options.get("read_only")),
        "init": bool(options.get("init")),
        "sandbox": bool(options.get("sandbox")),
        "mounts": tuple(mounts),
        "cap_add": tuple(options.get("cap_add", ())),
        "cap_drop": tuple(options.get("cap_drop", ())),
        "labels": labels,
        "env": (*env_files, *options.get("env", ())),
    }


def check_against_host(
    cpus: float | None, memory: int | None, host_cpus: int | None = None
) -> None:
    """Refuse limits the host cannot give, as Docker's daemon does (``--cpus 1000`` on 2 CPUs).

    ``host_cpus`` defaults to the CPUs this process may run on.
    """
    available = host_cpus if host_cpus is not None else len(os.sched_getaffinity(0))
    # Not positive at all: with_cpus says so, naming what it takes.
    if cpus is not None and cpus > 0 and not 0.01 <= cpus <= available:
        raise InvalidArgument(
            f"--cpus: range of CPUs is from 0.01 to {available:.2f},"
            f" as there are only {available} CPUs available"
        )
    if memory is not None and memory < _MIN_MEMORY:
        raise InvalidArgument("--memory: minimum memory limit allowed is 6MB")


# Docker's floor: below it a container cannot even start its runtime.
_MIN_MEMORY = 6 * 1024 * 1024


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
    read_only: bool = False
    mounts: tuple[MountRequest, ...] = ()
    cap_add: tuple[str, ...] = ()
    cap_drop: tuple[str, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)
    sandbox: bool = False
    init: bool = False

    def resource_options(self) -> list[oci.SpecOption]:
        if self.sandbox:  # with_sandbox sets memory (without swap) and pids itself
            memory = self.memory if self.memory is not None else oci.SANDBOX_MEMORY
            pids = self.pids_limit if self.pids_limit is not None else oci.SANDBOX_PIDS
            options = [_option("--sandbox", lambda: oci.with_sandbox(memory=memory, pids=pids))]
            if self.cpus is not None:
                options.append(_option("--cpus", oci.with_cpus, self.cpus))
            return options
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
        check_against_host(self.cpus, self.memory)
        if self.sandbox and self.network.network not in (None, "none"):
            raise InvalidArgument(
                f"--sandbox implies --network none, not --network {self.network.network}"
            )
        self.spec_options(None)
        self.network.attach(self.hostname)

    def spec_options(self, root: Path | None) -> list[oci.SpecOption]:
        """Every spec option; user names are looked up in ``root`` (skipped without one)."""
        options = self.resource_options() + self.process_options(root)
        options.extend(self.network.spec_options())
        if self.hostname is not None:
            options.append(_option("--hostname", oci.with_hostname, self.hostname))
        if self.read_only:
            options.append(oci.with_readonly_rootfs(True))
        options.extend(self.capability_options())
        options.extend(mount.spec_option() for mount in self.mounts)
        if self.init:
            options.extend(init_options())
        return options

    def capability_options(self) -> list[oci.SpecOption]:
        """--cap-drop, then --cap-add (so ``--cap-drop ALL --cap-add NET_RAW`` keeps NET_RAW)."""
        options = []
        if any(name.upper() == "ALL" for name in self.cap_drop):
            options.append(oci.with_capabilities([]))
        elif self.cap_drop:
            options.append(_option("--cap-drop", oci.with_dropped_capabilities, self.cap_drop))
        if any(name.upper() == "ALL" for name in self.cap_add):
            options.append(oci.with_capabilities(sorted(oci.KNOWN_CAPABILITIES)))
        elif self.cap_add:
            options.append(_option("--cap-add", oci.with_added_capabilities, self.cap_add))
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


# Where Docker puts its init in a container, and the static inits that can go there: one
# the container's own root filesystem need not provide (busybox has none that forwards
# signals and reaps zombies). tini-static comes with Debian's tini package.
INIT_PATH = "/sbin/docker-init"
_INIT_PROGRAMS = ("tini-static", "catatonit")


def init_options(programs: tuple[str, ...] = _INIT_PROGRAMS) -> list[oci.SpecOption]:
    """--init: the host's static init mounted read-only at :data:`INIT_PATH`, run as PID 1
    with the container's command after ``--`` (applied after the command is known).

    Raises FailedPrecondition when the host has none.
    """
    found = next((path for name in programs if (path := shutil.which(name))), None)
    if found is None:
        raise FailedPrecondition(
            "--init: no static init on this host (looked for "
            + ", ".join(programs)
            + " on PATH): install Debian's tini package ('apt-get install tini')"
        )

    def run_under_init(spec: oci.Spec) -> None:
        process = spec.setdefault("process", {})
        args = list(process.get("args") or [])
        if args[:1] != [INIT_PATH]:
            process["args"] = [INIT_PATH, "--", *args]

    return [oci.with_bind_mount(os.path.realpath(found), INIT_PATH, readonly=True), run_under_init]


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
