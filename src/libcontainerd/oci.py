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
name the field; it and the value rules both use live in :mod:`._spec_checks`.
"""

from __future__ import annotations

import copy
import functools
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from . import _spec_checks as _checks
from . import seccomp as _seccomp
from ._identifiers import check_identifier
from ._spec_checks import (
    IMAGE_ROOT,
    KNOWN_CAPABILITIES,
    NAMESPACE_TYPES,
    RLIMIT_TYPES,
    validate_process,
    validate_resources,
    validate_spec,
)
from ._validate import as_int as _int
from ._validate import fail as _fail
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
            "args": _checks.as_args(args, "args"),
            "env": [DEFAULT_PATH_ENV],
            "cwd": "/",
            "terminal": False,
            "capabilities": {kind: list(DEFAULT_CAPABILITIES) for kind in _DEFAULT_CAPABILITY_SETS},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": _checks.as_fspath(root, "root")},
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
        else _checks.as_string_list(list(entrypoint), "image_spec: entrypoint")
    )
    if args is not None:
        command += _checks.as_string_list(list(args), "image_spec: args")
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
    checked = _checks.as_args(args, "with_args: args")

    def option(spec: Spec) -> None:
        _section(spec, "process")["args"] = list(checked)

    return option


def with_env(env: Mapping[str, str] | Iterable[str], *, replace: bool = False) -> SpecOption:
    """Set environment variables, given as a mapping or ``"K=V"`` strings.

    A variable already in the spec keeps its place and takes the new value;
    new ones are appended. ``replace=True`` drops the old environment (PATH
    included) first.
    """
    entries = _checks.as_env_entries(env, "with_env: env")
    _checks.as_bool(replace, "with_env: replace")

    def option(spec: Spec) -> None:
        process = _section(spec, "process")
        process["env"] = _merge_env([] if replace else process.get("env") or [], entries)

    return option


def with_cwd(cwd: str) -> SpecOption:
    """Start the process in ``cwd`` (an absolute path inside the container)."""
    checked = _checks.as_absolute_path(cwd, "with_cwd: cwd")

    def option(spec: Spec) -> None:
        _section(spec, "process")["cwd"] = checked

    return option


def with_user(uid: int, gid: int | None = None, additional_gids: Iterable[int] = ()) -> SpecOption:
    """Run as ``uid``:``gid`` with ``additional_gids`` as supplementary groups.

    ``gid`` defaults to ``uid``, not 0: falling back to the root group would
    quietly grant its file access. Earlier supplementary groups are replaced.
    """
    checked_uid = _int(uid, "with_user: uid", 0, _checks.UINT32_MAX)
    checked_gid = checked_uid if gid is None else _int(gid, "with_user: gid", 0, _checks.UINT32_MAX)
    extra = [
        _int(value, f"with_user: additional_gids[{index}]", 0, _checks.UINT32_MAX)
        for index, value in enumerate(
            _checks.as_items(additional_gids, "with_user: additional_gids")
        )
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
    checked = _checks.as_string(user, "with_username: user")
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
    checked = _checks.as_bool(terminal, "with_terminal: terminal")

    def option(spec: Spec) -> None:
        _section(spec, "process")["terminal"] = checked

    return option


def with_no_new_privileges(enabled: bool = True) -> SpecOption:
    """Set ``noNewPrivileges`` (on by default: setuid binaries cannot gain privileges)."""
    checked = _checks.as_bool(enabled, "with_no_new_privileges: enabled")

    def option(spec: Spec) -> None:
        _section(spec, "process")["noNewPrivileges"] = checked

    return option


def with_rlimit(kind: str, soft: int, hard: int | None = None) -> SpecOption:
    """Set limit ``kind`` (``"RLIMIT_NOFILE"`` or ``"nofile"``); ``hard`` defaults to ``soft``.

    An existing limit of the same kind is replaced, since runtimes refuse duplicates.
    """
    checked_kind = _checks.as_rlimit_type(kind, "with_rlimit: kind")
    checked_soft = _int(soft, "with_rlimit: soft", 0, _checks.UINT64_MAX)
    checked_hard = (
        checked_soft if hard is None else _int(hard, "with_rlimit: hard", 0, _checks.UINT64_MAX)
    )
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
    names = _checks.as_capability_names(capabilities, "with_capabilities: capabilities")

    def option(spec: Spec) -> None:
        before = _bounding(spec)
        caps = _section(spec, "process", "capabilities")
        for kind in _DEFAULT_CAPABILITY_SETS:
            caps[kind] = list(names)
        _follow_capabilities(spec, before)

    return option


def with_added_capabilities(capabilities: Iterable[str]) -> SpecOption:
    """Add ``capabilities`` to the bounding, effective and permitted sets."""
    names = _checks.as_capability_names(capabilities, "with_added_capabilities: capabilities")

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
    names = set(
        _checks.as_capability_names(capabilities, "with_dropped_capabilities: capabilities")
    )

    def option(spec: Spec) -> None:
        before = _bounding(spec)
        caps = _section(spec, "process", "capabilities")
        for kind in _checks.CAPABILITY_SETS:
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
    checked = _checks.as_hostname(hostname, "with_hostname: hostname")
    if not checked:
        _fail("with_hostname: hostname", "a non-empty string", hostname)

    def option(spec: Spec) -> None:
        spec["hostname"] = checked

    return option


def with_readonly_rootfs(readonly: bool = True) -> SpecOption:
    """Mount the root filesystem read-only."""
    checked = _checks.as_bool(readonly, "with_readonly_rootfs: readonly")

    def option(spec: Spec) -> None:
        _section(spec, "root")["readonly"] = checked

    return option


def with_mounts(mounts: Iterable[Mapping[str, Any]]) -> SpecOption:
    """Add OCI mounts; one with the destination of an existing mount replaces it in place.

    Replacing rather than stacking lets a caller swap a default (a bigger
    ``/dev/shm``) without a shadowed mount underneath.
    """
    checked = [
        copy.deepcopy(dict(_checks.as_mount(mount, f"with_mounts: mounts[{index}]")))
        for index, mount in enumerate(_checks.as_items(mounts, "with_mounts: mounts"))
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
    checked_source = _checks.as_fspath(source, "with_bind_mount: source")
    checked_destination = _checks.as_absolute_path(destination, "with_bind_mount: destination")
    mode = "ro" if _checks.as_bool(readonly, "with_bind_mount: readonly") else "rw"
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
    checked_destination = _checks.as_absolute_path(destination, "with_tmpfs: destination")
    extra = _checks.as_string_list(
        list(_checks.as_items(options, "with_tmpfs: options")), "with_tmpfs: options"
    )
    flags = ["nosuid", "nodev", *(flag for flag in extra if flag not in ("nosuid", "nodev"))]
    if size is not None:
        flags.append(
            f"size={_checks.as_ranged(size, 'with_tmpfs: size', (1, 2**63 - 1), unset_ok=False)}"
        )
    return with_mounts(
        [{"destination": checked_destination, "type": "tmpfs", "source": "tmpfs", "options": flags}]
    )


def with_host_namespace(kind: str) -> SpecOption:
    """Share the host's ``kind`` namespace (e.g. ``"network"``) by removing the private one.

    The mount namespace cannot be shared: runc would mount ``/proc``, ``/dev``,
    ... into the host's mount namespace and leave them there.
    """
    checked = _checks.as_namespace_type(kind, "with_host_namespace: kind")
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
    chown = _checks.as_bool(chown_root, "with_user_namespace: chown_root")
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
    for index, entry in enumerate(_checks.as_items(value, where)):
        at = f"{where}[{index}]"
        if isinstance(entry, Mapping):
            _checks.check_id_mapping(entry, at)
            triple = (entry["containerID"], entry["hostID"], entry["size"])
        else:
            triple = tuple(_checks.as_items(entry, at))
            if len(triple) != 3:
                _fail(at, "a (container_id, host_id, size) triple", entry)
        inside, outside, size = (_int(v, at, 0, _checks.UINT32_MAX) for v in triple)
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
    memory_limit = _checks.as_memory_bytes(memory, "with_sandbox: memory")
    if memory_limit <= 0:
        _fail("with_sandbox: memory", "a positive number of bytes", memory)
    pids_limit = _int(pids, "with_sandbox: pids", 1, _checks.INT64_MAX)
    tmp = with_tmpfs(
        "/tmp", _int(tmp_size, "with_sandbox: tmp_size", 1, _checks.INT64_MAX), ["mode=1777"]
    )
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
        process["capabilities"] = {kind: [] for kind in _checks.CAPABILITY_SETS}
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
    checked = _checks.as_cgroups_path(path, "with_cgroups_path: path")

    def option(spec: Spec) -> None:
        _section(spec, "linux")["cgroupsPath"] = checked

    return option


def with_annotations(annotations: Mapping[str, str]) -> SpecOption:
    """Add annotations (string keys and values), replacing ones with the same key."""
    checked = dict(_checks.as_annotations(annotations, "with_annotations: annotations"))

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
    _checks.check_resources(resources, "with_resources: resources")
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
    checked = _checks.as_memory_bytes(limit, "with_memory_limit: limit")
    return _set_resources({("memory", "limit"): checked})


def with_cpu_quota(quota: int, period: int = 100_000) -> SpecOption:
    """Allow ``quota`` microseconds of CPU time per ``period`` microseconds (quota -1: no limit)."""
    checked_quota = _checks.as_cpu_quota(quota, "with_cpu_quota: quota", unset_ok=False)
    checked_period = _checks.as_ranged(
        period, "with_cpu_quota: period", _checks.CPU_PERIOD_RANGE, unset_ok=False
    )
    return _set_resources({("cpu", "quota"): checked_quota, ("cpu", "period"): checked_period})


def with_cpus(cpus: float, period: int = 100_000) -> SpecOption:
    """Allow ``cpus`` CPUs' worth of time (``1.5``), as a CFS quota over ``period`` microseconds."""
    checked_period = _checks.as_ranged(
        period, "with_cpus: period", _checks.CPU_PERIOD_RANGE, unset_ok=False
    )
    if (
        isinstance(cpus, bool)
        or not isinstance(cpus, int | float)
        or not math.isfinite(cpus)
        or cpus <= 0
    ):
        _fail("with_cpus: cpus", "a positive number", cpus)
    quota = round(cpus * checked_period)
    if quota < _checks.CPU_QUOTA_MIN:
        _fail("with_cpus: cpus", f"at least {_checks.CPU_QUOTA_MIN / checked_period:g}", cpus)
    checked_quota = _checks.as_cpu_quota(quota, "with_cpus: cpus * period", unset_ok=False)
    return _set_resources({("cpu", "quota"): checked_quota, ("cpu", "period"): checked_period})


def with_cpu_shares(shares: int) -> SpecOption:
    """Set the relative CPU weight (``2`` to ``262144``; 1024 is the kernel's default)."""
    checked = _checks.as_ranged(
        shares, "with_cpu_shares: shares", _checks.CPU_SHARES_RANGE, unset_ok=False
    )
    return _set_resources({("cpu", "shares"): checked})


def with_cpuset(cpus: str, mems: str | None = None) -> SpecOption:
    """Pin to CPUs ``cpus`` and memory nodes ``mems``, in cpuset syntax (``"0-1,3"``)."""
    values: dict[tuple[str, str], Any] = {
        ("cpu", "cpus"): _checks.as_cpuset(cpus, "with_cpuset: cpus", empty_ok=False)
    }
    if mems is not None:
        values["cpu", "mems"] = _checks.as_cpuset(mems, "with_cpuset: mems", empty_ok=False)
    return _set_resources(values)


def with_pids_limit(limit: int) -> SpecOption:
    """Allow at most ``limit`` tasks in the container (``-1``: unlimited)."""
    checked = _int(limit, "with_pids_limit: limit", -1, _checks.INT64_MAX)
    if checked == 0:
        _fail("with_pids_limit: limit", "a positive integer or -1 for unlimited", limit)
    return _set_resources({("pids", "limit"): checked})


def with_blkio_weight(weight: int) -> SpecOption:
    """Set the relative block I/O weight (``10`` to ``1000``)."""
    checked = _checks.as_ranged(
        weight, "with_blkio_weight: weight", _checks.BLKIO_WEIGHT_RANGE, unset_ok=False
    )
    return _set_resources({("blockIO", "weight"): checked})


def _set_resources(values: Mapping[tuple[str, str], Any]) -> SpecOption:
    def option(spec: Spec) -> None:
        for (group, key), value in values.items():
            _section(spec, "linux", "resources", group)[key] = value

    return option


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
