"""The OCI runtime spec: containerd's default Linux spec, options that change it, validation.

A spec is a plain JSON-shaped ``dict`` with the OCI camelCase keys, so it
round-trips losslessly with other tools and keeps keys this module does not
know. Build one with :func:`default_spec` and small composable options::

    spec = default_spec(["/bin/sh"], "/srv/rootfs", with_terminal(True), with_memory_limit(1 << 28))

An option is a callable that changes the spec in place. Each ``with_*``
factory checks its own arguments when it is called, so a bad value fails
where it was written, with :class:`~libcontainerd.errors.InvalidArgument`
naming the parameter and the value. :func:`validate_spec` checks a whole
spec before it is sent, so runc's deep failures become clear messages that
name the field.
"""

from __future__ import annotations

import copy
import functools
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from . import seccomp as _seccomp
from ._identifiers import check_identifier
from ._validate import as_int as _int
from ._validate import as_list as _list
from ._validate import as_object as _object
from ._validate import fail as _fail
from ._validate import is_int as _is_int
from ._validate import required as _required
from .errors import InvalidArgument

if TYPE_CHECKING:
    from .images import Image

__all__ = [
    "DEFAULT_CAPABILITIES",
    "DEFAULT_PATH_ENV",
    "IMAGE_ROOT",
    "KNOWN_CAPABILITIES",
    "NAMESPACE_TYPES",
    "OCI_VERSION",
    "RLIMIT_TYPES",
    "SANDBOX_MEMORY",
    "SANDBOX_PIDS",
    "SANDBOX_TMP_SIZE",
    "Spec",
    "SpecOption",
    "apply",
    "default_spec",
    "image_spec",
    "validate_process",
    "validate_resources",
    "validate_spec",
    "with_added_capabilities",
    "with_annotations",
    "with_args",
    "with_bind_mount",
    "with_blkio_weight",
    "with_capabilities",
    "with_cgroups_path",
    "with_cpu_quota",
    "with_cpu_shares",
    "with_cpus",
    "with_cpuset",
    "with_cwd",
    "with_dropped_capabilities",
    "with_env",
    "with_host_namespace",
    "with_hostname",
    "with_memory_limit",
    "with_mounts",
    "with_no_new_privileges",
    "with_pids_limit",
    "with_readonly_rootfs",
    "with_resources",
    "with_rlimit",
    "with_sandbox",
    "with_seccomp",
    "with_shim_group",
    "with_terminal",
    "with_tmpfs",
    "with_user",
    "with_user_namespace",
    "with_username",
]

Spec = dict[str, Any]
"""An OCI runtime spec (``config.json``) as a JSON-shaped dict."""

SpecOption = Callable[[Spec], None]
"""Changes a spec in place; made by the ``with_*`` factories."""

IMAGE_ROOT = "rootfs"
"""``root.path`` of a container made from an image: containerd mounts its snapshot there."""

OCI_VERSION = "1.0.2-dev"
"""The runtime-spec version containerd 1.6 writes into its default spec."""

DEFAULT_PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

DEFAULT_CAPABILITIES: tuple[str, ...] = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
)
"""Docker's and containerd 1.6/1.7's default set (bounding, permitted, effective)."""

KNOWN_CAPABILITIES: frozenset[str] = frozenset(
    (
        "CAP_CHOWN",
        "CAP_DAC_OVERRIDE",
        "CAP_DAC_READ_SEARCH",
        "CAP_FOWNER",
        "CAP_FSETID",
        "CAP_KILL",
        "CAP_SETGID",
        "CAP_SETUID",
        "CAP_SETPCAP",
        "CAP_LINUX_IMMUTABLE",
        "CAP_NET_BIND_SERVICE",
        "CAP_NET_BROADCAST",
        "CAP_NET_ADMIN",
        "CAP_NET_RAW",
        "CAP_IPC_LOCK",
        "CAP_IPC_OWNER",
        "CAP_SYS_MODULE",
        "CAP_SYS_RAWIO",
        "CAP_SYS_CHROOT",
        "CAP_SYS_PTRACE",
        "CAP_SYS_PACCT",
        "CAP_SYS_ADMIN",
        "CAP_SYS_BOOT",
        "CAP_SYS_NICE",
        "CAP_SYS_RESOURCE",
        "CAP_SYS_TIME",
        "CAP_SYS_TTY_CONFIG",
        "CAP_MKNOD",
        "CAP_LEASE",
        "CAP_AUDIT_WRITE",
        "CAP_AUDIT_CONTROL",
        "CAP_SETFCAP",
        "CAP_MAC_OVERRIDE",
        "CAP_MAC_ADMIN",
        "CAP_SYSLOG",
        "CAP_WAKE_ALARM",
        "CAP_BLOCK_SUSPEND",
        "CAP_AUDIT_READ",
        "CAP_PERFMON",
        "CAP_BPF",
        "CAP_CHECKPOINT_RESTORE",
    )
)
"""Every Linux capability up to kernel 6.x (0 to 40)."""

NAMESPACE_TYPES: tuple[str, ...] = ("pid", "network", "mount", "ipc", "uts", "user", "cgroup")

RLIMIT_TYPES: frozenset[str] = frozenset(
    (
        "RLIMIT_AS",
        "RLIMIT_CORE",
        "RLIMIT_CPU",
        "RLIMIT_DATA",
        "RLIMIT_FSIZE",
        "RLIMIT_LOCKS",
        "RLIMIT_MEMLOCK",
        "RLIMIT_MSGQUEUE",
        "RLIMIT_NICE",
        "RLIMIT_NOFILE",
        "RLIMIT_NPROC",
        "RLIMIT_RSS",
        "RLIMIT_RTPRIO",
        "RLIMIT_RTTIME",
        "RLIMIT_SIGPENDING",
        "RLIMIT_STACK",
    )
)
"""The resource limits Linux knows (runc refuses others)."""

_CAPABILITY_SETS = ("bounding", "effective", "permitted", "inheritable", "ambient")
# containerd sets and adds capabilities in these three sets only; inheritable
# and ambient are for non-root users and stay empty unless asked for.
_DEFAULT_CAPABILITY_SETS = ("bounding", "effective", "permitted")

_DEFAULT_NAMESPACES = ("pid", "ipc", "uts", "mount", "network")
# Marks a spec whose user namespace maps the client allocates (see _userns.AUTO_ANNOTATION).
_USERNS_ANNOTATION = "org.libcontainerd.userns"
_USERNS_CHOWN_ANNOTATION = "org.libcontainerd.userns.chown-root"

# (destination, type, source, options): containerd 1.6's default mounts.
_DEFAULT_MOUNTS: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("/proc", "proc", "proc", ("nosuid", "noexec", "nodev")),
    ("/dev", "tmpfs", "tmpfs", ("nosuid", "strictatime", "mode=755", "size=65536k")),
    (
        "/dev/pts",
        "devpts",
        "devpts",
        ("nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"),
    ),
    ("/dev/shm", "tmpfs", "shm", ("nosuid", "noexec", "nodev", "mode=1777", "size=65536k")),
    ("/dev/mqueue", "mqueue", "mqueue", ("nosuid", "noexec", "nodev")),
    ("/sys", "sysfs", "sysfs", ("nosuid", "noexec", "nodev", "ro")),
    ("/run", "tmpfs", "tmpfs", ("nosuid", "strictatime", "mode=755", "size=65536k")),
)

_MASKED_PATHS = (
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/sys/firmware",
    "/proc/scsi",
)

_READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")

# (major, minor or None for any): the char devices containerd's
# WithDefaultUnixDevices allows: null, random, full, tty, zero, urandom,
# console, the pts slaves and ptmx.
_DEFAULT_CHAR_DEVICES: tuple[tuple[int, int | None], ...] = (
    (1, 3),
    (1, 8),
    (1, 7),
    (5, 0),
    (1, 5),
    (1, 9),
    (5, 1),
    (136, None),
    (5, 2),
)

_UINT32_MAX = 2**32 - 1
_INT64_MAX = 2**63 - 1
_UINT64_MAX = 2**64 - 1
_JSON_MAX_DEPTH = 64
_HOSTNAME_MAX = 64  # the kernel's limit (sethostname fails with EINVAL beyond it)
# Kernel limits that runc hits only when it writes the cgroup files.
_CPU_SHARES_RANGE = (2, 262144)
_CPU_PERIOD_RANGE = (1000, 1_000_000)
_CPU_QUOTA_MIN = 1000
_BLKIO_WEIGHT_RANGE = (10, 1000)
_CPUSET = re.compile(r"\d+(?:-\d+)?(?:,\d+(?:-\d+)?)*\Z", re.ASCII)


# --- the default spec -------------------------------------------------------


def default_spec(args: Sequence[str], root: str | os.PathLike[str], *options: SpecOption) -> Spec:
    """A fresh copy of containerd's default Linux spec running ``args`` on ``root``, then options.

    ``root`` must be an absolute path (InvalidArgument otherwise): containerd
    gets no rootfs mounts from this library, so a relative path would point
    into an empty bundle directory. It carries the default seccomp profile
    (Docker's in effect, :func:`libcontainerd.seccomp.default_profile`),
    which follows later capability options; :func:`with_seccomp` replaces it.
    """
    spec: Spec = {
        "ociVersion": OCI_VERSION,
        "process": {
            "user": {"uid": 0, "gid": 0},
            "args": _args(args, "args"),
            "env": [DEFAULT_PATH_ENV],
            "cwd": "/",
            "terminal": False,
            "capabilities": {kind: list(DEFAULT_CAPABILITIES) for kind in _DEFAULT_CAPABILITY_SETS},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": _fspath(root, "root")},
        "mounts": [
            {"destination": dest, "type": kind, "source": source, "options": list(opts)}
            for dest, kind, source, opts in _DEFAULT_MOUNTS
        ],
        "linux": {
            "resources": {"devices": [{"allow": False, "access": "rwm"}, *_default_devices()]},
            "namespaces": [{"type": kind} for kind in _DEFAULT_NAMESPACES],
            "maskedPaths": list(_MASKED_PATHS),
            "readonlyPaths": list(_READONLY_PATHS),
            "seccomp": _default_seccomp(DEFAULT_CAPABILITIES),
        },
    }
    return apply(spec, *options)


def image_spec(
    image: Image,
    *options: SpecOption,
    args: Sequence[str] | None = None,
    entrypoint: Sequence[str] | None = None,
) -> Spec:
    """containerd's default spec running ``image`` as its config says, then ``options``.

    For ``create(..., image=image)``. containerd's rules (``WithImageConfigArgs``):
    the process is the image's Entrypoint + Cmd, where ``args`` replace Cmd
    and ``entrypoint`` replaces Entrypoint (and Cmd, unless ``args`` are given),
    as ``docker run [--entrypoint E] IMAGE [ARGS...]`` does; the environment
    is the image's (or a default ``PATH`` when it has none), and
    :func:`with_env` options merge into it by key; the working directory is
    the image's or ``/``; the user is the image's ("" is root), resolved from
    the image's own ``/etc/passwd`` and ``/etc/group`` when the container is
    created. ``root.path`` is :data:`IMAGE_ROOT`. :func:`with_args` replaces
    the whole command line, :func:`with_user` and :func:`with_username` the
    user. Raises InvalidArgument when nothing is left to run.
    """
    config = image.config
    command = (
        list(config.entrypoint)
        if entrypoint is None
        else _string_list(list(entrypoint), "image_spec: entrypoint")
    )
    if args is not None:
        command += _string_list(list(args), "image_spec: args")
    elif entrypoint is None:
        command += list(config.cmd)
    if not command or not command[0]:
        raise InvalidArgument(
            f"image {image.name} has no Entrypoint or Cmd to run: give args= (or entrypoint=)"
        )
    spec = default_spec(command, "/")
    spec["root"]["path"] = IMAGE_ROOT
    process = spec["process"]
    process["env"] = list(config.env) or [DEFAULT_PATH_ENV]
    process["cwd"] = config.working_dir or "/"
    if config.user:
        process["user"]["username"] = config.user
    return apply(spec, *options)


def _default_devices() -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    for major, minor in _DEFAULT_CHAR_DEVICES:
        rule: dict[str, Any] = {"allow": True, "type": "c", "major": major}
        if minor is not None:
            rule["minor"] = minor
        rule["access"] = "rwm"
        rules.append(rule)
    return rules


def apply(spec: Spec, *options: SpecOption) -> Spec:
    """Apply ``options`` to ``spec`` in order, in place, and return it."""
    for option in options:
        option(spec)
    return spec


# --- process options --------------------------------------------------------


def with_args(args: Sequence[str]) -> SpecOption:
    """Run ``args`` (a non-empty list of strings; ``args[0]`` is the program)."""
    checked = _args(args, "with_args: args")

    def option(spec: Spec) -> None:
        _section(spec, "process")["args"] = list(checked)

    return option


def with_env(env: Mapping[str, str] | Iterable[str], *, replace: bool = False) -> SpecOption:
    """Set environment variables, given as a mapping or ``"K=V"`` strings.

    A variable already in the spec keeps its place and takes the new value;
    new ones are appended. ``replace=True`` drops the old environment (PATH
    included) first.
    """
    entries = _env_entries(env, "with_env: env")
    _bool(replace, "with_env: replace")

    def option(spec: Spec) -> None:
        process = _section(spec, "process")
        process["env"] = _merge_env([] if replace else process.get("env") or [], entries)

    return option


def with_cwd(cwd: str) -> SpecOption:
    """Start the process in ``cwd`` (an absolute path inside the container)."""
    checked = _absolute_path(cwd, "with_cwd: cwd")

    def option(spec: Spec) -> None:
        _section(spec, "process")["cwd"] = checked

    return option


def with_user(uid: int, gid: int | None = None, additional_gids: Iterable[int] = ()) -> SpecOption:
    """Run as ``uid``:``gid`` with ``additional_gids`` as supplementary groups.

    ``gid`` defaults to ``uid``, not 0: falling back to the root group would
    quietly grant its file access. Earlier supplementary groups are replaced.
    """
    checked_uid = _int(uid, "with_user: uid", 0, _UINT32_MAX)
    checked_gid = checked_uid if gid is None else _int(gid, "with_user: gid", 0, _UINT32_MAX)
    extra = [
        _int(value, f"with_user: additional_gids[{index}]", 0, _UINT32_MAX)
        for index, value in enumerate(_iterable(additional_gids, "with_user: additional_gids"))
    ]

    def option(spec: Spec) -> None:
        user = _section(spec, "process", "user")
        user.pop("username", None)  # numbers given: no name to resolve
        user["uid"] = checked_uid
        user["gid"] = checked_gid
        if extra:
            user["additionalGids"] = list(extra)
        else:
            user.pop("additionalGids", None)

    return option


def with_username(user: str) -> SpecOption:
    """Run as ``user``: ``name``, ``uid``, ``name:group`` or ``uid:gid`` (``docker run -u``).

    Resolved when the container is created, from its root filesystem's own
    ``/etc/passwd`` and ``/etc/group`` (containerd's rules: a name gives the
    user's uid and gid, a bare uid its passwd gid or 0, and the groups that
    list the user become additional gids); an unknown name fails the create
    with InvalidArgument before the container exists.
    """
    checked = _string(user, "with_username: user")
    name, colon, group = checked.partition(":")
    if not name or (colon and not group) or any(c in checked for c in "\0\n/"):
        _fail("with_username: user", "name, uid, name:group or uid:gid", user)

    def option(spec: Spec) -> None:
        entry = _section(spec, "process", "user")
        entry["username"] = checked
        entry.setdefault("uid", 0)
        entry.setdefault("gid", 0)
        entry.pop("additionalGids", None)

    return option


def with_terminal(terminal: bool = True) -> SpecOption:
    """Give the process a pseudo-terminal (the caller then attaches a console)."""
    checked = _bool(terminal, "with_terminal: terminal")

    def option(spec: Spec) -> None:
        _section(spec, "process")["terminal"] = checked

    return option


def with_no_new_privileges(enabled: bool = True) -> SpecOption:
    """Set ``noNewPrivileges`` (on by default: setuid binaries cannot gain privileges)."""
    checked = _bool(enabled, "with_no_new_privileges: enabled")

    def option(spec: Spec) -> None:
        _section(spec, "process")["noNewPrivileges"] = checked

    return option


def with_rlimit(kind: str, soft: int, hard: int | None = None) -> SpecOption:
    """Set limit ``kind`` (``"RLIMIT_NOFILE"`` or ``"nofile"``); ``hard`` defaults to ``soft``.

    An existing limit of the same kind is replaced, since runtimes refuse duplicates.
    """
    checked_kind = _rlimit_type(kind, "with_rlimit: kind")
    checked_soft = _int(soft, "with_rlimit: soft", 0, _UINT64_MAX)
    checked_hard = checked_soft if hard is None else _int(hard, "with_rlimit: hard", 0, _UINT64_MAX)
    if checked_soft > checked_hard:
        _fail("with_rlimit: soft", f"at most hard ({checked_hard})", checked_soft)

    def option(spec: Spec) -> None:
        process = _section(spec, "process")
        limits = [
            limit
            for limit in process.get("rlimits") or []
            if not (isinstance(limit, dict) and limit.get("type") == checked_kind)
        ]
        limits.append({"type": checked_kind, "hard": checked_hard, "soft": checked_soft})
        process["rlimits"] = limits

    return option


def with_capabilities(capabilities: Iterable[str]) -> SpecOption:
    """Replace the bounding, effective and permitted capability sets with ``capabilities``.

    Names may omit the ``CAP_`` prefix and be in any case (``"net_admin"``).
    """
    names = _capability_names(capabilities, "with_capabilities: capabilities")

    def option(spec: Spec) -> None:
        before = _bounding(spec)
        caps = _section(spec, "process", "capabilities")
        for kind in _DEFAULT_CAPABILITY_SETS:
            caps[kind] = list(names)
        _follow_capabilities(spec, before)

    return option


def with_added_capabilities(capabilities: Iterable[str]) -> SpecOption:
    """Add ``capabilities`` to the bounding, effective and permitted sets."""
    names = _capability_names(capabilities, "with_added_capabilities: capabilities")

    def option(spec: Spec) -> None:
        before = _bounding(spec)
        caps = _section(spec, "process", "capabilities")
        for kind in _DEFAULT_CAPABILITY_SETS:
            current = list(caps.get(kind) or [])
            current.extend(name for name in names if name not in current)
            caps[kind] = current
        _follow_capabilities(spec, before)

    return option


def with_dropped_capabilities(capabilities: Iterable[str]) -> SpecOption:
    """Remove ``capabilities`` from every capability set, ambient and inheritable included."""
    names = set(_capability_names(capabilities, "with_dropped_capabilities: capabilities"))

    def option(spec: Spec) -> None:
        before = _bounding(spec)
        caps = _section(spec, "process", "capabilities")
        for kind in _CAPABILITY_SETS:
            if kind in caps:
                caps[kind] = [name for name in caps[kind] or [] if name not in names]
        _follow_capabilities(spec, before)

    return option


def with_seccomp(profile: str | os.PathLike[str] | Mapping[str, Any] | None) -> SpecOption:
    """Filter the container's syscalls with ``profile``, or not at all with ``None``.

    ``profile`` is Docker's seccomp format: a path to a JSON file or a dict
    (:func:`libcontainerd.seccomp.default_profile` gives the default one to
    start from). It is checked now: an unknown syscall, action, operator,
    architecture or capability raises InvalidArgument naming it. Its
    capability conditions read the spec's bounding set when the option is
    applied, so put it after capability options (the default profile that
    :func:`default_spec` carries follows capability options by itself).
    ``None`` removes ``linux.seccomp``: no filter (Docker's
    ``seccomp=unconfined``).
    """
    checked = None if profile is None else _seccomp.load_profile(profile)

    def option(spec: Spec) -> None:
        linux = _section(spec, "linux")
        if checked is None:
            linux.pop("seccomp", None)
        else:
            linux["seccomp"] = _seccomp.to_oci(checked, _bounding(spec))

    return option


@functools.cache
def _default_profile() -> _seccomp.Profile:
    return _seccomp.load_profile(_seccomp.default_profile())


def _default_seccomp(bounding: Iterable[str]) -> dict[str, Any]:
    """The default profile's OCI object for a process with ``bounding`` capabilities."""
    return _seccomp.to_oci(_default_profile(), bounding)


def _bounding(spec: Spec) -> list[str]:
    caps = (spec.get("process") or {}).get("capabilities") or {}
    bounding = caps.get("bounding") if isinstance(caps, dict) else None
    return [name for name in bounding or [] if isinstance(name, str)]


def _follow_capabilities(spec: Spec, before: list[str]) -> None:
    """Keep the default profile in step with the bounding set, as Docker derives it from the
    final set: e.g. CAP_SYS_ADMIN unlocks mount and unshare. Another profile stays as it is."""
    linux = spec.get("linux")
    after = _bounding(spec)
    if not isinstance(linux, dict) or "seccomp" not in linux or set(after) == set(before):
        return
    if linux["seccomp"] == _default_seccomp(before):
        linux["seccomp"] = _default_seccomp(after)


# --- container options ------------------------------------------------------


def with_hostname(hostname: str) -> SpecOption:
    """Set the container's hostname (needs the default private uts namespace)."""
    checked = _hostname(hostname, "with_hostname: hostname")
    if not checked:
        _fail("with_hostname: hostname", "a non-empty string", hostname)

    def option(spec: Spec) -> None:
        spec["hostname"] = checked

    return option


def with_readonly_rootfs(readonly: bool = True) -> SpecOption:
    """Mount the root filesystem read-only."""
    checked = _bool(readonly, "with_readonly_rootfs: readonly")

    def option(spec: Spec) -> None:
        _section(spec, "root")["readonly"] = checked

    return option


def with_mounts(mounts: Iterable[Mapping[str, Any]]) -> SpecOption:
    """Add OCI mounts; one with the destination of an existing mount replaces it in place.

    Replacing rather than stacking lets a caller swap a default (a bigger
    ``/dev/shm``) without a shadowed mount underneath.
    """
    checked = [
        copy.deepcopy(dict(_mount(mount, f"with_mounts: mounts[{index}]")))
        for index, mount in enumerate(_iterable(mounts, "with_mounts: mounts"))
    ]

    def option(spec: Spec) -> None:
        current = spec.get("mounts")
        if current is None:
            current = spec["mounts"] = []
        elif not isinstance(current, list):
            _fail("spec.mounts", "a list", current)
        for mount in checked:
            positions = [
                index
                for index, existing in enumerate(current)
                if isinstance(existing, dict)
                and existing.get("destination") == mount["destination"]
            ]
            if positions:
                current[positions[0]] = copy.deepcopy(mount)
            else:
                current.append(copy.deepcopy(mount))

    return option


def with_bind_mount(
    source: str | os.PathLike[str], destination: str, readonly: bool = False
) -> SpecOption:
    """Bind-mount host path ``source`` (absolute) at ``destination``, recursively."""
    checked_source = _fspath(source, "with_bind_mount: source")
    checked_destination = _absolute_path(destination, "with_bind_mount: destination")
    mode = "ro" if _bool(readonly, "with_bind_mount: readonly") else "rw"
    return with_mounts(
        [
            {
                "destination": checked_destination,
                "type": "bind",
                "source": checked_source,
                "options": ["rbind", mode],
            }
        ]
    )


def with_tmpfs(
    destination: str, size: int | None = None, options: Iterable[str] = ()
) -> SpecOption:
    """Mount a fresh tmpfs at ``destination`` (``size`` bytes at most; by default half the
    host's memory, the kernel's default), ``nosuid,nodev`` as Docker's ``--tmpfs``."""
    checked_destination = _absolute_path(destination, "with_tmpfs: destination")
    extra = _string_list(list(_iterable(options, "with_tmpfs: options")), "with_tmpfs: options")
    flags = ["nosuid", "nodev", *(flag for flag in extra if flag not in ("nosuid", "nodev"))]
    if size is not None:
        flags.append(f"size={_ranged(size, 'with_tmpfs: size', (1, 2**63 - 1), unset_ok=False)}")
    return with_mounts(
        [{"destination": checked_destination, "type": "tmpfs", "source": "tmpfs", "options": flags}]
    )


def with_host_namespace(kind: str) -> SpecOption:
    """Share the host's ``kind`` namespace (e.g. ``"network"``) by removing the private one.

    The mount namespace cannot be shared: runc would mount ``/proc``, ``/dev``,
    ... into the host's mount namespace and leave them there.
    """
    checked = _namespace_type(kind, "with_host_namespace: kind")
    if checked == "mount":
        _fail("with_host_namespace: kind", "a namespace other than 'mount'", kind)

    def option(spec: Spec) -> None:
        linux = _section(spec, "linux")
        linux["namespaces"] = [
            namespace
            for namespace in linux.get("namespaces") or []
            if not (isinstance(namespace, dict) and namespace.get("type") == checked)
        ]

    return option


def with_user_namespace(
    uid_map: Iterable[Sequence[int] | Mapping[str, int]] | None = None,
    gid_map: Iterable[Sequence[int] | Mapping[str, int]] | None = None,
    *,
    chown_root: bool = False,
) -> SpecOption:
    """A private user namespace: root inside is an unprivileged uid outside.

    Maps are ``(container_id, host_id, size)`` triples (or OCI
    ``{"containerID", "hostID", "size"}`` dicts); ``gid_map`` defaults to
    ``uid_map``. Without maps the client allocates a free range of 65536 ids
    per container when it creates it, records it as the container's label
    ``libcontainerd.userns.range`` and frees it on delete. An image's
    snapshot is remapped to the range when the container is created (once
    per image and range, then reused); a root directory is used as it is
    (its files show as ``nobody`` inside: readable, not writable), unless
    ``chown_root``: the directory is this container's alone, and the client
    chowns it in place to the maps when it creates the container (see the
    README's "User namespaces").
    """
    chown = _bool(chown_root, "with_user_namespace: chown_root")
    if uid_map is None and gid_map is not None:
        _fail("with_user_namespace: uid_map", "given with gid_map", None)
    uids = None if uid_map is None else _id_maps(uid_map, "with_user_namespace: uid_map")
    gids = uids if gid_map is None else _id_maps(gid_map, "with_user_namespace: gid_map")

    def option(spec: Spec) -> None:
        linux = _section(spec, "linux")
        namespaces = linux.setdefault("namespaces", [])
        if not any(isinstance(n, dict) and n.get("type") == "user" for n in namespaces):
            namespaces.append({"type": "user"})
        annotations = _section(spec, "annotations")
        if chown:
            annotations[_USERNS_CHOWN_ANNOTATION] = "true"
        else:
            annotations.pop(_USERNS_CHOWN_ANNOTATION, None)
        if uids is None:
            annotations[_USERNS_ANNOTATION] = "auto"
            linux.pop("uidMappings", None)
            linux.pop("gidMappings", None)
        else:
            annotations.pop(_USERNS_ANNOTATION, None)
            linux["uidMappings"] = copy.deepcopy(uids)
            linux["gidMappings"] = copy.deepcopy(gids)

    return option


def _id_maps(value: object, where: str) -> list[dict[str, int]]:
    maps = []
    for index, entry in enumerate(_iterable(value, where)):
        at = f"{where}[{index}]"
        if isinstance(entry, Mapping):
            _id_mapping(entry, at)
            triple = (entry["containerID"], entry["hostID"], entry["size"])
        else:
            triple = tuple(_iterable(entry, at))
            if len(triple) != 3:
                _fail(at, "a (container_id, host_id, size) triple", entry)
        inside, outside, size = (_int(v, at, 0, _UINT32_MAX) for v in triple)
        if size == 0:
            _fail(f"{at}.size", "at least 1", size)
        maps.append({"containerID": inside, "hostID": outside, "size": size})
    if not maps:
        _fail(where, "at least one mapping", value)
    return maps


SANDBOX_MEMORY = 256 << 20
""":func:`with_sandbox`'s memory limit unless told: 256 MiB, no swap."""
SANDBOX_PIDS = 256
""":func:`with_sandbox`'s process limit unless told."""
SANDBOX_TMP_SIZE = 64 << 20
"""The size of :func:`with_sandbox`'s tmpfs ``/tmp`` unless told (it counts as memory)."""


def with_sandbox(
    *,
    memory: int = SANDBOX_MEMORY,
    pids: int = SANDBOX_PIDS,
    tmp_size: int = SANDBOX_TMP_SIZE,
    uid_map: Iterable[Sequence[int] | Mapping[str, int]] | None = None,
) -> SpecOption:
    """Confine a container for code you do not trust (see the README's "Sandbox").

    On top of the default spec (its seccomp profile, masked and read-only
    paths, minimal devices): a user namespace (an automatic range, or
    ``uid_map``), no capabilities, ``noNewPrivileges``, a read-only root with
    a ``tmp_size``-byte tmpfs ``/tmp``, its own network and cgroup namespaces
    (runc brings ``lo`` up in a network namespace it makes, and adds no other
    interface), no host devices, at most ``memory`` bytes (no swap) and
    ``pids`` processes. ``create(..., network=...)`` refuses it unless ``/sys``
    is bound instead (see :func:`with_user_namespace`'s README section).
    """
    memory_limit = _memory_bytes(memory, "with_sandbox: memory")
    if memory_limit <= 0:
        _fail("with_sandbox: memory", "a positive number of bytes", memory)
    pids_limit = _int(pids, "with_sandbox: pids", 1, _INT64_MAX)
    tmp = with_tmpfs("/tmp", _int(tmp_size, "with_sandbox: tmp_size", 1, _INT64_MAX), ["mode=1777"])
    userns = with_user_namespace(uid_map)

    def option(spec: Spec) -> None:
        linux = _section(spec, "linux")
        has_userns = any(
            isinstance(n, dict) and n.get("type") == "user" for n in linux.get("namespaces") or []
        )
        if not has_userns or uid_map is not None:
            userns(spec)
        namespaces = [
            n
            for n in linux.get("namespaces") or []
            if not (isinstance(n, dict) and n.get("type") in ("network", "cgroup"))
        ]
        linux["namespaces"] = [*namespaces, {"type": "network"}, {"type": "cgroup"}]
        process = _section(spec, "process")
        before = _bounding(spec)
        process["capabilities"] = {kind: [] for kind in _CAPABILITY_SETS}
        _follow_capabilities(spec, before)  # the default seccomp profile narrows with them
        process["noNewPrivileges"] = True
        _section(spec, "root")["readonly"] = True
        tmp(spec)
        linux["devices"] = []
        resources = _section(spec, "linux", "resources")
        resources["devices"] = [{"allow": False, "access": "rwm"}, *_default_devices()]
        resources["memory"] = {
            **(resources.get("memory") or {}),
            "limit": memory_limit,
            "swap": memory_limit,
        }
        resources["pids"] = {"limit": pids_limit}

    return option


def with_cgroups_path(path: str) -> SpecOption:
    """Place the container in cgroup ``path`` (``/a/b``, or ``slice:prefix:name`` for systemd)."""
    checked = _cgroups_path(path, "with_cgroups_path: path")

    def option(spec: Spec) -> None:
        _section(spec, "linux")["cgroupsPath"] = checked

    return option


def with_annotations(annotations: Mapping[str, str]) -> SpecOption:
    """Add annotations (string keys and values), replacing ones with the same key."""
    checked = dict(_annotations(annotations, "with_annotations: annotations"))

    def option(spec: Spec) -> None:
        current = spec.get("annotations")
        if current is None:
            current = spec["annotations"] = {}
        elif not isinstance(current, dict):
            _fail("spec.annotations", "an object", current)
        current.update(checked)

    return option


SHIM_GROUP_ANNOTATION = "io.containerd.runc.v2.group"
"""The annotation runc's shim (containerd 1.6 to 2.x) reads to serve a group from one process."""


def with_shim_group(group: str) -> SpecOption:
    """Serve this container from the one runc shim of ``group`` (per namespace), not its own.

    An opt-in for bursts of short containers: only the group's first task
    starts a shim, later ones skip that (a faster create, one process fewer
    each). The price: the group's containers share the shim's fate (one that
    dies or hangs takes them all along), and it lives until the group's last
    task is deleted. For containers started concurrently, one group per
    worker (each kept alive by a long-running container) rather than one
    for all: a shared group measured slower (README). containerd calls
    grouping experimental (2.x leaves the group shim's socket file behind in
    ``/run/containerd/s``); a group name follows the container id rules.
    """
    checked = check_identifier(group, "with_shim_group: group")
    return with_annotations({SHIM_GROUP_ANNOTATION: checked})


# --- resource options -------------------------------------------------------


def with_resources(resources: Mapping[str, Any]) -> SpecOption:
    """Merge an OCI ``linux.resources`` object into the spec.

    Objects merge key by key; values and lists replace, except ``devices``,
    whose rules are appended: the default deny-all rule must stay first,
    since later rules win.
    """
    _check_resources(resources, "with_resources: resources")
    checked = copy.deepcopy(dict(resources))

    def option(spec: Spec) -> None:
        current = _section(spec, "linux", "resources")
        for key, value in checked.items():
            if key == "devices" and isinstance(current.get("devices"), list):
                current["devices"] = current["devices"] + copy.deepcopy(value)
            else:
                _merge(current, key, value)

    return option


def with_memory_limit(limit: int) -> SpecOption:
    """Limit memory to ``limit`` bytes (``-1``: unlimited)."""
    checked = _memory_bytes(limit, "with_memory_limit: limit")
    return _set_resources({("memory", "limit"): checked})


def with_cpu_quota(quota: int, period: int = 100_000) -> SpecOption:
    """Allow ``quota`` microseconds of CPU time per ``period`` microseconds (quota -1: no limit)."""
    checked_quota = _cpu_quota(quota, "with_cpu_quota: quota", unset_ok=False)
    checked_period = _ranged(period, "with_cpu_quota: period", _CPU_PERIOD_RANGE, unset_ok=False)
    return _set_resources({("cpu", "quota"): checked_quota, ("cpu", "period"): checked_period})


def with_cpus(cpus: float, period: int = 100_000) -> SpecOption:
    """Allow ``cpus`` CPUs' worth of time (``1.5``), as a CFS quota over ``period`` microseconds."""
    checked_period = _ranged(period, "with_cpus: period", _CPU_PERIOD_RANGE, unset_ok=False)
    if (
        isinstance(cpus, bool)
        or not isinstance(cpus, int | float)
        or not math.isfinite(cpus)
        or cpus <= 0
    ):
        _fail("with_cpus: cpus", "a positive number", cpus)
    quota = round(cpus * checked_period)
    if quota < _CPU_QUOTA_MIN:
        _fail("with_cpus: cpus", f"at least {_CPU_QUOTA_MIN / checked_period:g}", cpus)
    checked_quota = _cpu_quota(quota, "with_cpus: cpus * period", unset_ok=False)
    return _set_resources({("cpu", "quota"): checked_quota, ("cpu", "period"): checked_period})


def with_cpu_shares(shares: int) -> SpecOption:
    """Set the relative CPU weight (``2`` to ``262144``; 1024 is the kernel's default)."""
    checked = _ranged(shares, "with_cpu_shares: shares", _CPU_SHARES_RANGE, unset_ok=False)
    return _set_resources({("cpu", "shares"): checked})


def with_cpuset(cpus: str, mems: str | None = None) -> SpecOption:
    """Pin to CPUs ``cpus`` and memory nodes ``mems``, in cpuset syntax (``"0-1,3"``)."""
    values: dict[tuple[str, str], Any] = {
        ("cpu", "cpus"): _cpuset(cpus, "with_cpuset: cpus", empty_ok=False)
    }
    if mems is not None:
        values["cpu", "mems"] = _cpuset(mems, "with_cpuset: mems", empty_ok=False)
    return _set_resources(values)


def with_pids_limit(limit: int) -> SpecOption:
    """Allow at most ``limit`` tasks in the container (``-1``: unlimited)."""
    checked = _int(limit, "with_pids_limit: limit", -1, _INT64_MAX)
    if checked == 0:
        _fail("with_pids_limit: limit", "a positive integer or -1 for unlimited", limit)
    return _set_resources({("pids", "limit"): checked})


def with_blkio_weight(weight: int) -> SpecOption:
    """Set the relative block I/O weight (``10`` to ``1000``)."""
    checked = _ranged(weight, "with_blkio_weight: weight", _BLKIO_WEIGHT_RANGE, unset_ok=False)
    return _set_resources({("blockIO", "weight"): checked})


def _set_resources(values: Mapping[tuple[str, str], Any]) -> SpecOption:
    def option(spec: Spec) -> None:
        for (group, key), value in values.items():
            _section(spec, "linux", "resources", group)[key] = value

    return option


# --- validation -------------------------------------------------------------


def validate_spec(spec: object, *, image: bool = False) -> None:
    """Check a whole spec before it is sent; raise InvalidArgument naming the bad field.

    Checked (other keys pass through untouched):

    - ``spec`` is an object; ``ociVersion`` is a string;
    - ``root.path`` is an absolute path, or with ``image`` (the root is an
      image's snapshot, mounted in the bundle) ``"rootfs"``; ``root.readonly``
      a boolean;
    - ``process`` as in :func:`validate_process`;
    - ``hostname`` a string of at most 64 characters;
    - ``mounts[]``: objects with an absolute ``destination``, string ``type``
      and ``source``, and a list of string ``options``;
    - ``annotations``: string keys and values;
    - ``linux.namespaces[]``: known types, each at most once, absolute
      ``path``, and a ``mount`` one among them: without it runc 1.1 mounts
      ``/proc``, ``/dev``, ... into the host's mount namespace and leaves
      them there;
    - ``linux.resources`` as in :func:`validate_resources`, and a
      ``memory.swap`` only with a ``memory.limit`` (the kernel refuses it);
    - ``linux.cgroupsPath`` a non-empty string; ``maskedPaths``/``readonlyPaths``
      lists of strings; ``uidMappings``/``gidMappings`` lists of ID mappings;
    - ``linux.seccomp``: known actions, architectures, flags, syscall names
      and operators, argument indexes 0..5, 64-bit values, ``errnoRet`` only
      with ``SCMP_ACT_ERRNO``/``SCMP_ACT_TRACE``;
    - ``linux.sysctl``: non-empty string keys and string values;
      ``domainname`` as ``hostname``; ``linux.rootfsPropagation`` and
      ``linux.mountLabel`` strings (containerd 2.x reads the whole spec
      before runc does: a field of the wrong type fails the task's creation);
    - what runc refuses across fields: a hostname without a private uts
      namespace, ID mappings without a user namespace;
    - the whole spec is JSON: string keys, finite numbers, no bytes or other
      Python objects, at most 64 levels deep.
    """
    s = _object(spec, "spec")
    _string(_required(s, "ociVersion", "spec"), "spec.ociVersion")
    root = _object(_required(s, "root", "spec"), "spec.root")
    root_path = _required(root, "path", "spec.root")
    if image:
        if root_path != IMAGE_ROOT:
            _fail(
                "spec.root.path",
                f"{IMAGE_ROOT!r} with image= (the image's snapshot is the root; build the spec"
                " with oci.image_spec)",
                root_path,
            )
    elif root_path == IMAGE_ROOT:
        raise InvalidArgument(
            f"spec.root.path must be an absolute path, got {IMAGE_ROOT!r}"
            " (the relative 'rootfs' is an image's snapshot: pass image=)"
        )
    else:
        _absolute_path(root_path, "spec.root.path")
    if "readonly" in root:
        _bool(root["readonly"], "spec.root.readonly")
    _check_process(_required(s, "process", "spec"), "spec.process")
    hostname = _hostname(s.get("hostname", ""), "spec.hostname")
    if "domainname" in s:
        _hostname(s["domainname"], "spec.domainname")
    for index, mount in enumerate(_list(s.get("mounts", []), "spec.mounts")):
        _mount(mount, f"spec.mounts[{index}]")
    if "annotations" in s:
        _annotations(s["annotations"], "spec.annotations")
    linux = _object(s.get("linux", {}), "spec.linux")
    namespaces = _namespaces(linux.get("namespaces", []), "spec.linux.namespaces")
    if "mount" not in namespaces:
        raise InvalidArgument(
            "spec.linux.namespaces must include a 'mount' namespace:"
            " without one runc mounts into the host's mount namespace"
        )
    if "resources" in linux:
        _check_resources(linux["resources"], "spec.linux.resources")
        memory = linux["resources"].get("memory", {})
        if memory.get("swap", -1) > 0 and memory.get("limit", -1) <= 0:
            _fail("spec.linux.resources.memory.swap", "-1 without a memory.limit", memory["swap"])
    if "cgroupsPath" in linux:
        _cgroups_path(linux["cgroupsPath"], "spec.linux.cgroupsPath")
    if "sysctl" in linux:
        _string_map(linux["sysctl"], "spec.linux.sysctl")
    for key in ("rootfsPropagation", "mountLabel"):
        if key in linux:
            _string(linux[key], f"spec.linux.{key}")
    if "seccomp" in linux:
        _seccomp.check_oci(linux["seccomp"], "spec.linux.seccomp")
    for key in ("maskedPaths", "readonlyPaths"):
        _string_list(linux.get(key, []), f"spec.linux.{key}")
    for key in ("uidMappings", "gidMappings"):
        mappings = _list(linux.get(key, []), f"spec.linux.{key}")
        for index, mapping in enumerate(mappings):
            _id_mapping(mapping, f"spec.linux.{key}[{index}]")
        if mappings and "user" not in namespaces:
            _fail(f"spec.linux.{key}", "empty without a user namespace", mappings)
    if hostname and "uts" not in namespaces:
        _fail("spec.hostname", "empty without a private uts namespace", hostname)
    _json_value(s, "spec")


def validate_process(process: object) -> None:
    """Check a process (a spec's ``process``, or an exec's); raise InvalidArgument naming the field.

    Checked: ``args`` a non-empty list of strings with a non-empty first one;
    ``cwd`` an absolute path; ``env`` entries ``K=V`` with a non-empty key;
    ``terminal``/``noNewPrivileges`` booleans; ``user.uid``/``gid``/
    ``additionalGids``/``umask`` 32-bit unsigned integers; capability sets
    lists of known ``CAP_*`` names; ``rlimits[]`` known ``RLIMIT_*`` types, each
    once, with 64-bit unsigned ``soft`` <= ``hard``; ``oomScoreAdj`` in
    -1000..1000; ``consoleSize`` ``height`` and ``width`` 32-bit unsigned
    integers; ``apparmorProfile``, ``selinuxLabel`` and ``user.username``
    strings; and that the whole process is JSON.
    """
    _check_process(process, "process")
    _json_value(process, "process")


def validate_resources(resources: object) -> None:
    """Check an OCI ``linux.resources`` object; raise InvalidArgument naming the field.

    Checked, with the ranges the kernel enforces only when runc writes the
    cgroup files (0 is accepted where runc reads it as "not set", since
    Docker sends it that way):

    - ``memory.limit``/``reservation``/``swap``: positive or -1 (unlimited),
      ``swap`` at least ``limit``; ``swappiness`` 0..100;
    - ``cpu.shares`` 2..262144; ``cpu.quota`` -1 or at least 1000;
      ``cpu.period`` 1000..1000000; ``cpu.cpus``/``mems`` cpuset lists like
      ``"0-1,3"`` with ascending ranges;
    - ``pids.limit`` present, -1 or more;
    - ``blockIO.weight``/``leafWeight`` 10..1000;
    - ``devices[]`` rules: boolean ``allow``, type ``a``/``b``/``c``, access
      letters from ``rwm``, integer ``major``/``minor`` (-1 for any);
    - ``unified``: string keys and values; ``hugepageLimits[]``: a string
      ``pageSize`` and a 64-bit unsigned ``limit``; ``network``: 32-bit
      unsigned ``classID`` and ``priorities[]`` of a string ``name`` and a
      32-bit unsigned ``priority``;
    - the whole object is JSON, including the fields not named here.
    """
    _check_resources(resources, "resources")
    _json_value(resources, "resources")


def _check_process(process: object, where: str) -> None:
    p = _object(process, where)
    _args(_required(p, "args", where), f"{where}.args")
    _absolute_path(_required(p, "cwd", where), f"{where}.cwd")
    if "env" in p:
        for index, entry in enumerate(_list(p["env"], f"{where}.env")):
            _env_entry(entry, f"{where}.env[{index}]")
    for key in ("terminal", "noNewPrivileges"):
        if key in p:
            _bool(p[key], f"{where}.{key}")
    if "user" in p:
        user = _object(p["user"], f"{where}.user")
        for key in ("uid", "gid", "umask"):
            if key in user:
                _int(user[key], f"{where}.user.{key}", 0, _UINT32_MAX)
        if "username" in user:
            _string(user["username"], f"{where}.user.username")
        for index, gid in enumerate(
            _list(user.get("additionalGids", []), f"{where}.user.additionalGids")
        ):
            _int(gid, f"{where}.user.additionalGids[{index}]", 0, _UINT32_MAX)
    if "capabilities" in p:
        caps = _object(p["capabilities"], f"{where}.capabilities")
        for kind in _CAPABILITY_SETS:
            for index, name in enumerate(_list(caps.get(kind, []), f"{where}.capabilities.{kind}")):
                if not isinstance(name, str) or name not in KNOWN_CAPABILITIES:
                    _fail(
                        f"{where}.capabilities.{kind}[{index}]",
                        "a known capability name like 'CAP_CHOWN'",
                        name,
                    )
    seen: dict[str, int] = {}
    for index, limit in enumerate(_list(p.get("rlimits", []), f"{where}.rlimits")):
        at = f"{where}.rlimits[{index}]"
        entry = _object(limit, at)
        kind = _required(entry, "type", at)
        if not isinstance(kind, str) or kind not in RLIMIT_TYPES:
            _fail(f"{at}.type", "a known limit like 'RLIMIT_NOFILE'", kind)
        if kind in seen:
            _fail(f"{at}.type", f"unique (rlimits[{seen[kind]}] sets it too)", kind)
        seen[kind] = index
        soft = _int(_required(entry, "soft", at), f"{at}.soft", 0, _UINT64_MAX)
        hard = _int(_required(entry, "hard", at), f"{at}.hard", 0, _UINT64_MAX)
        if soft > hard:
            _fail(f"{at}.soft", f"at most hard ({hard})", soft)
    if "oomScoreAdj" in p:
        _int(p["oomScoreAdj"], f"{where}.oomScoreAdj", -1000, 1000)
    if "consoleSize" in p:
        size = _object(p["consoleSize"], f"{where}.consoleSize")
        for key in ("height", "width"):
            _int(
                _required(size, key, f"{where}.consoleSize"),
                f"{where}.consoleSize.{key}",
                0,
                _UINT32_MAX,
            )
    for key in ("apparmorProfile", "selinuxLabel"):
        if key in p:
            _string(p[key], f"{where}.{key}")


def _check_resources(resources: object, where: str) -> None:
    r = _object(resources, where)
    if "memory" in r:
        memory = _object(r["memory"], f"{where}.memory")
        for key in ("limit", "reservation", "swap"):
            if key in memory:
                _memory_bytes(memory[key], f"{where}.memory.{key}")
        limit, swap = memory.get("limit", -1), memory.get("swap", -1)
        if 0 < swap < limit:
            _fail(f"{where}.memory.swap", f"at least memory.limit ({limit}), or -1", swap)
        if "swappiness" in memory:
            _int(memory["swappiness"], f"{where}.memory.swappiness", 0, 100)
        if "disableOOMKiller" in memory:
            _bool(memory["disableOOMKiller"], f"{where}.memory.disableOOMKiller")
    if "cpu" in r:
        cpu = _object(r["cpu"], f"{where}.cpu")
        if "shares" in cpu:
            _ranged(cpu["shares"], f"{where}.cpu.shares", _CPU_SHARES_RANGE, unset_ok=True)
        if "quota" in cpu:
            _cpu_quota(cpu["quota"], f"{where}.cpu.quota", unset_ok=True)
        if "period" in cpu:
            _ranged(cpu["period"], f"{where}.cpu.period", _CPU_PERIOD_RANGE, unset_ok=True)
        for key in ("cpus", "mems"):
            if key in cpu:
                _cpuset(cpu[key], f"{where}.cpu.{key}", empty_ok=True)
    if "pids" in r:
        pids = _object(r["pids"], f"{where}.pids")
        _int(_required(pids, "limit", f"{where}.pids"), f"{where}.pids.limit", -1, _INT64_MAX)
    if "blockIO" in r:
        block_io = _object(r["blockIO"], f"{where}.blockIO")
        for key in ("weight", "leafWeight"):
            if key in block_io:
                _ranged(block_io[key], f"{where}.blockIO.{key}", _BLKIO_WEIGHT_RANGE, unset_ok=True)
    for index, rule in enumerate(_list(r.get("devices", []), f"{where}.devices")):
        _device_rule(rule, f"{where}.devices[{index}]")
    if "unified" in r:
        _string_map(r["unified"], f"{where}.unified")
    for index, limit in enumerate(_list(r.get("hugepageLimits", []), f"{where}.hugepageLimits")):
        at = f"{where}.hugepageLimits[{index}]"
        entry = _object(limit, at)
        _string(_required(entry, "pageSize", at), f"{at}.pageSize")
        _int(_required(entry, "limit", at), f"{at}.limit", 0, _UINT64_MAX)
    if "network" in r:
        network = _object(r["network"], f"{where}.network")
        if "classID" in network:
            _int(network["classID"], f"{where}.network.classID", 0, _UINT32_MAX)
        priorities = _list(network.get("priorities", []), f"{where}.network.priorities")
        for index, priority in enumerate(priorities):
            at = f"{where}.network.priorities[{index}]"
            entry = _object(priority, at)
            _string(_required(entry, "name", at), f"{at}.name")
            _int(_required(entry, "priority", at), f"{at}.priority", 0, _UINT32_MAX)


def _json_value(value: object, where: str, depth: int = 0) -> None:
    """Refuse what json.dumps would reject or turn into invalid JSON, naming where it is.

    Fields this module does not check pass through to containerd as JSON; a
    bytes value or a NaN there would otherwise fail as a TypeError, or reach
    the runtime as a document Go cannot parse.
    """
    if depth > _JSON_MAX_DEPTH:
        _fail(where, f"nested at most {_JSON_MAX_DEPTH} levels deep (is it circular?)", "...")
    if value is None or isinstance(value, str | bool | int):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            _fail(where, "a finite number", value)
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                _fail(f"{where} key", "a string", key)
            _json_value(item, f"{where}.{key}", depth + 1)
        return
    if isinstance(value, list | tuple):
        if all(type(item) is str for item in value):
            return  # the common case (names, args, paths), without a path string per item
        for index, item in enumerate(value):
            _json_value(item, f"{where}[{index}]", depth + 1)
        return
    _fail(where, "a JSON value (a string, number, boolean, None, list or dict)", value)


# --- value rules, shared by the options (parameter names) and validation (field paths) ---
# (the ones seccomp uses too, _fail, _object, _list, _int, ..., are in _validate)


def _iterable(value: object, where: str) -> list[Any]:
    # A string is iterable too, but as a list of names it is always a mistake.
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Iterable):
        _fail(where, "a list", value)
    return list(value)


def _bool(value: object, where: str) -> bool:
    if not isinstance(value, bool):
        _fail(where, "a boolean", value)
    return value


def _string(value: object, where: str) -> str:
    if not isinstance(value, str):
        _fail(where, "a string", value)
    return value


def _string_list(value: object, where: str) -> list[str]:
    items = _list(value, where)
    for index, item in enumerate(items):
        _string(item, f"{where}[{index}]")
    return items


def _args(value: object, where: str) -> list[str]:
    if (
        not isinstance(value, list | tuple)
        or not value
        or not all(isinstance(arg, str) for arg in value)
        or not value[0]
    ):
        _fail(where, "a non-empty list of strings with a non-empty first one", value)
    return list(value)


def _fspath(value: object, where: str) -> str:
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    return _absolute_path(value, where)


def _absolute_path(value: object, where: str) -> str:
    if not isinstance(value, str) or not value.startswith("/") or "\0" in value:
        _fail(where, "an absolute path", value)
    return value


def _hostname(value: object, where: str) -> str:
    if not isinstance(value, str) or len(value) > _HOSTNAME_MAX or "\0" in value:
        _fail(where, f"a string of at most {_HOSTNAME_MAX} characters", value)
    return value


def _env_entry(value: object, where: str) -> str:
    if not isinstance(value, str) or "\0" in value or value.find("=") < 1:
        _fail(where, "a 'KEY=value' string with a non-empty key", value)
    return value


def _env_entries(env: Mapping[str, str] | Iterable[str], where: str) -> list[str]:
    if isinstance(env, Mapping):
        entries = []
        for key, value in env.items():
            if not isinstance(key, str) or not key or "=" in key or "\0" in key:
                _fail(f"{where} key", "a non-empty string without '='", key)
            if not isinstance(value, str) or "\0" in value:
                _fail(f"{where}[{key!r}]", "a string", value)
            entries.append(f"{key}={value}")
        return entries
    return [
        _env_entry(entry, f"{where}[{index}]") for index, entry in enumerate(_iterable(env, where))
    ]


def _merge_env(current: Iterable[str], updates: Iterable[str]) -> list[str]:
    merged = list(current)
    position = {entry.partition("=")[0]: index for index, entry in enumerate(merged)}
    for entry in updates:
        key = entry.partition("=")[0]
        if key in position:
            merged[position[key]] = entry
        else:
            position[key] = len(merged)
            merged.append(entry)
    return merged


def _capability_names(values: Iterable[str], where: str) -> list[str]:
    names: list[str] = []
    for index, value in enumerate(_iterable(values, where)):
        name = _string(value, f"{where}[{index}]").upper()
        if not name.startswith("CAP_"):
            name = "CAP_" + name
        if name not in KNOWN_CAPABILITIES:
            _fail(f"{where}[{index}]", "a known capability name like 'CAP_CHOWN'", value)
        if name not in names:
            names.append(name)
    return names


def _rlimit_type(value: object, where: str) -> str:
    name = _string(value, where).upper()
    if not name.startswith("RLIMIT_"):
        name = "RLIMIT_" + name
    if name not in RLIMIT_TYPES:
        _fail(where, "a known limit like 'RLIMIT_NOFILE'", value)
    return name


def _namespace_type(value: object, where: str) -> str:
    if not isinstance(value, str) or value not in NAMESPACE_TYPES:
        _fail(where, f"one of {', '.join(NAMESPACE_TYPES)}", value)
    return value


def _namespaces(value: object, where: str) -> set[str]:
    seen: dict[str, int] = {}
    for index, namespace in enumerate(_list(value, where)):
        at = f"{where}[{index}]"
        entry = _object(namespace, at)
        kind = _namespace_type(_required(entry, "type", at), f"{at}.type")
        if kind in seen:
            _fail(f"{at}.type", f"unique ({where}[{seen[kind]}] has it too)", kind)
        seen[kind] = index
        if "path" in entry:
            _absolute_path(entry["path"], f"{at}.path")
    return set(seen)


def _mount(value: object, where: str) -> Mapping[str, Any]:
    mount = _object(value, where)
    _absolute_path(_required(mount, "destination", where), f"{where}.destination")
    for key in ("type", "source"):
        if key in mount:
            _string(mount[key], f"{where}.{key}")
    if "options" in mount:
        _string_list(mount["options"], f"{where}.options")
    return mount


def _id_mapping(value: object, where: str) -> None:
    mapping = _object(value, where)
    for key in ("containerID", "hostID", "size"):
        _int(_required(mapping, key, where), f"{where}.{key}", 0, _UINT32_MAX)


def _string_map(value: object, where: str) -> Mapping[str, str]:
    """An object of non-empty string keys and string values (Go's map[string]string)."""
    mapping = _object(value, where)
    for key, item in mapping.items():
        if not isinstance(key, str) or not key:
            _fail(f"{where} key", "a non-empty string", key)
        _string(item, f"{where}[{key!r}]")
    return mapping


_annotations = _string_map


def _cgroups_path(value: object, where: str) -> str:
    if not isinstance(value, str) or not value or "\0" in value:
        _fail(where, "a non-empty string", value)
    return value


def _memory_bytes(value: object, where: str) -> int:
    checked = _int(value, where, -1, _INT64_MAX)
    if checked == 0:
        # runc reads 0 as "not set" and would silently apply no limit at all.
        _fail(where, "a positive number of bytes or -1 for unlimited", value)
    return checked


def _ranged(value: object, where: str, bounds: tuple[int, int], *, unset_ok: bool) -> int:
    """An integer within ``bounds``; with ``unset_ok``, also 0, which runc reads as "not set"."""
    low, high = bounds
    if _is_int(value) and (low <= value <= high or (unset_ok and value == 0)):
        return value
    unset = " or 0 (not set)" if unset_ok else ""
    _fail(where, f"an integer between {low} and {high}{unset}", value)


def _cpu_quota(value: object, where: str, *, unset_ok: bool) -> int:
    if _is_int(value) and (
        value == -1 or (value == 0 and unset_ok) or _CPU_QUOTA_MIN <= value <= _INT64_MAX
    ):
        return value
    _fail(where, f"-1 (no limit) or an integer of at least {_CPU_QUOTA_MIN} microseconds", value)


def _cpuset(value: object, where: str, *, empty_ok: bool) -> str:
    expected = "a cpuset list like '0-1,3' with ascending ranges"
    if not isinstance(value, str):
        _fail(where, expected, value)
    if value == "" and empty_ok:
        return value
    if not _CPUSET.match(value):
        _fail(where, expected, value)
    for part in value.split(","):
        first, _, last = part.partition("-")
        if last and int(first) > int(last):
            _fail(where, expected, value)
    return value


def _device_rule(value: object, where: str) -> None:
    rule = _object(value, where)
    _bool(_required(rule, "allow", where), f"{where}.allow")
    if "type" in rule and rule["type"] not in ("a", "b", "c"):
        _fail(f"{where}.type", "'a', 'b' or 'c'", rule["type"])
    if "access" in rule:
        access = rule["access"]
        if not isinstance(access, str) or set(access) - set("rwm"):
            _fail(f"{where}.access", "letters from 'rwm'", access)
    for key in ("major", "minor"):
        if key in rule:
            _int(rule[key], f"{where}.{key}", -1, _INT64_MAX)


# --- spec navigation ----------------------------------------------------------


def _section(spec: Spec, *path: str) -> dict[str, Any]:
    """The object at ``path`` in ``spec``, created empty when missing."""
    node: dict[str, Any] = spec
    where = "spec"
    for key in path:
        where = f"{where}.{key}"
        child = node.get(key)
        if child is None:
            child = node[key] = {}
        elif not isinstance(child, dict):
            _fail(where, "an object (dict)", child)
        node = child
    return node


def _merge(target: dict[str, Any], key: str, value: Any) -> None:
    if isinstance(value, Mapping) and isinstance(target.get(key), dict):
        for inner_key, inner_value in value.items():
            _merge(target[key], inner_key, inner_value)
    else:
        target[key] = copy.deepcopy(value)
