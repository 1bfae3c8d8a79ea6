"""Whether an OCI runtime spec is sound: :func:`validate_spec` and the value rules behind it.

:mod:`oci` builds specs (the default one and the ``with_*`` options) and
re-exports what is public here (``validate_spec``, ``validate_process``,
``validate_resources``, the capability, namespace and limit names); this
module checks them. Its value rules serve both: the options check their
arguments with them (``where`` a parameter name), the validation a spec's
fields (``where`` a field path), so a bad value reads the same either way.
The rules seccomp shares are one level down, in :mod:`._validate`.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

from . import seccomp as _seccomp
from ._validate import as_int as _int
from ._validate import as_list as _list
from ._validate import as_object as _object
from ._validate import fail as _fail
from ._validate import is_int as _is_int
from ._validate import required as _required
from .errors import InvalidArgument

__all__ = [
    "BLKIO_WEIGHT_RANGE",
    "CAPABILITY_SETS",
    "CPU_PERIOD_RANGE",
    "CPU_QUOTA_MIN",
    "CPU_SHARES_RANGE",
    "IMAGE_ROOT",
    "INT64_MAX",
    "KNOWN_CAPABILITIES",
    "NAMESPACE_TYPES",
    "RLIMIT_TYPES",
    "UINT32_MAX",
    "UINT64_MAX",
    "as_absolute_path",
    "as_annotations",
    "as_args",
    "as_bool",
    "as_capability_names",
    "as_cgroups_path",
    "as_cpu_quota",
    "as_cpuset",
    "as_env_entries",
    "as_env_entry",
    "as_fspath",
    "as_hostname",
    "as_items",
    "as_memory_bytes",
    "as_mount",
    "as_namespace_type",
    "as_namespaces",
    "as_ranged",
    "as_rlimit_type",
    "as_string",
    "as_string_list",
    "as_string_map",
    "check_device_rule",
    "check_id_mapping",
    "check_resources",
    "validate_process",
    "validate_resources",
    "validate_spec",
]

IMAGE_ROOT = "rootfs"
"""``root.path`` of a container made from an image: containerd mounts its snapshot there."""

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

CAPABILITY_SETS = ("bounding", "effective", "permitted", "inheritable", "ambient")
UINT32_MAX = 2**32 - 1
INT64_MAX = 2**63 - 1
UINT64_MAX = 2**64 - 1
_JSON_MAX_DEPTH = 64
_HOSTNAME_MAX = 64  # the kernel's limit (sethostname fails with EINVAL beyond it)
# Kernel limits that runc hits only when it writes the cgroup files.
CPU_SHARES_RANGE = (2, 262144)
CPU_PERIOD_RANGE = (1000, 1_000_000)
CPU_QUOTA_MIN = 1000
BLKIO_WEIGHT_RANGE = (10, 1000)
_CPUSET = re.compile(r"\d+(?:-\d+)?(?:,\d+(?:-\d+)?)*\Z", re.ASCII)


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
    as_string(_required(s, "ociVersion", "spec"), "spec.ociVersion")
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
        as_absolute_path(root_path, "spec.root.path")
    if "readonly" in root:
        as_bool(root["readonly"], "spec.root.readonly")
    _check_process(_required(s, "process", "spec"), "spec.process")
    hostname = as_hostname(s.get("hostname", ""), "spec.hostname")
    if "domainname" in s:
        as_hostname(s["domainname"], "spec.domainname")
    for index, mount in enumerate(_list(s.get("mounts", []), "spec.mounts")):
        as_mount(mount, f"spec.mounts[{index}]")
    if "annotations" in s:
        as_annotations(s["annotations"], "spec.annotations")
    linux = _object(s.get("linux", {}), "spec.linux")
    namespaces = as_namespaces(linux.get("namespaces", []), "spec.linux.namespaces")
    if "mount" not in namespaces:
        raise InvalidArgument(
            "spec.linux.namespaces must include a 'mount' namespace:"
            " without one runc mounts into the host's mount namespace"
        )
    if "resources" in linux:
        check_resources(linux["resources"], "spec.linux.resources")
        memory = linux["resources"].get("memory", {})
        if memory.get("swap", -1) > 0 and memory.get("limit", -1) <= 0:
            _fail("spec.linux.resources.memory.swap", "-1 without a memory.limit", memory["swap"])
    if "cgroupsPath" in linux:
        as_cgroups_path(linux["cgroupsPath"], "spec.linux.cgroupsPath")
    if "sysctl" in linux:
        as_string_map(linux["sysctl"], "spec.linux.sysctl")
    for key in ("rootfsPropagation", "mountLabel"):
        if key in linux:
            as_string(linux[key], f"spec.linux.{key}")
    if "seccomp" in linux:
        _seccomp.check_oci(linux["seccomp"], "spec.linux.seccomp")
    for key in ("maskedPaths", "readonlyPaths"):
        as_string_list(linux.get(key, []), f"spec.linux.{key}")
    for key in ("uidMappings", "gidMappings"):
        mappings = _list(linux.get(key, []), f"spec.linux.{key}")
        for index, mapping in enumerate(mappings):
            check_id_mapping(mapping, f"spec.linux.{key}[{index}]")
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
    check_resources(resources, "resources")
    _json_value(resources, "resources")


def _check_process(process: object, where: str) -> None:
    p = _object(process, where)
    as_args(_required(p, "args", where), f"{where}.args")
    as_absolute_path(_required(p, "cwd", where), f"{where}.cwd")
    if "env" in p:
        for index, entry in enumerate(_list(p["env"], f"{where}.env")):
            as_env_entry(entry, f"{where}.env[{index}]")
    for key in ("terminal", "noNewPrivileges"):
        if key in p:
            as_bool(p[key], f"{where}.{key}")
    if "user" in p:
        user = _object(p["user"], f"{where}.user")
        for key in ("uid", "gid", "umask"):
            if key in user:
                _int(user[key], f"{where}.user.{key}", 0, UINT32_MAX)
        if "username" in user:
            as_string(user["username"], f"{where}.user.username")
        for index, gid in enumerate(
            _list(user.get("additionalGids", []), f"{where}.user.additionalGids")
        ):
            _int(gid, f"{where}.user.additionalGids[{index}]", 0, UINT32_MAX)
    if "capabilities" in p:
        caps = _object(p["capabilities"], f"{where}.capabilities")
        for kind in CAPABILITY_SETS:
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
        soft = _int(_required(entry, "soft", at), f"{at}.soft", 0, UINT64_MAX)
        hard = _int(_required(entry, "hard", at), f"{at}.hard", 0, UINT64_MAX)
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
                UINT32_MAX,
            )
    for key in ("apparmorProfile", "selinuxLabel"):
        if key in p:
            as_string(p[key], f"{where}.{key}")


def check_resources(resources: object, where: str) -> None:
    r = _object(resources, where)
    if "memory" in r:
        memory = _object(r["memory"], f"{where}.memory")
        for key in ("limit", "reservation", "swap"):
            if key in memory:
                as_memory_bytes(memory[key], f"{where}.memory.{key}")
        limit, swap = memory.get("limit", -1), memory.get("swap", -1)
        if 0 < swap < limit:
            _fail(f"{where}.memory.swap", f"at least memory.limit ({limit}), or -1", swap)
        if "swappiness" in memory:
            _int(memory["swappiness"], f"{where}.memory.swappiness", 0, 100)
        if "disableOOMKiller" in memory:
            as_bool(memory["disableOOMKiller"], f"{where}.memory.disableOOMKiller")
    if "cpu" in r:
        cpu = _object(r["cpu"], f"{where}.cpu")
        if "shares" in cpu:
            as_ranged(cpu["shares"], f"{where}.cpu.shares", CPU_SHARES_RANGE, unset_ok=True)
        if "quota" in cpu:
            as_cpu_quota(cpu["quota"], f"{where}.cpu.quota", unset_ok=True)
        if "period" in cpu:
            as_ranged(cpu["period"], f"{where}.cpu.period", CPU_PERIOD_RANGE, unset_ok=True)
        for key in ("cpus", "mems"):
            if key in cpu:
                as_cpuset(cpu[key], f"{where}.cpu.{key}", empty_ok=True)
    if "pids" in r:
        pids = _object(r["pids"], f"{where}.pids")
        _int(_required(pids, "limit", f"{where}.pids"), f"{where}.pids.limit", -1, INT64_MAX)
    if "blockIO" in r:
        block_io = _object(r["blockIO"], f"{where}.blockIO")
        for key in ("weight", "leafWeight"):
            if key in block_io:
                as_ranged(
                    block_io[key], f"{where}.blockIO.{key}", BLKIO_WEIGHT_RANGE, unset_ok=True
                )
    for index, rule in enumerate(_list(r.get("devices", []), f"{where}.devices")):
        check_device_rule(rule, f"{where}.devices[{index}]")
    if "unified" in r:
        as_string_map(r["unified"], f"{where}.unified")
    for index, limit in enumerate(_list(r.get("hugepageLimits", []), f"{where}.hugepageLimits")):
        at = f"{where}.hugepageLimits[{index}]"
        entry = _object(limit, at)
        as_string(_required(entry, "pageSize", at), f"{at}.pageSize")
        _int(_required(entry, "limit", at), f"{at}.limit", 0, UINT64_MAX)
    if "network" in r:
        network = _object(r["network"], f"{where}.network")
        if "classID" in network:
            _int(network["classID"], f"{where}.network.classID", 0, UINT32_MAX)
        priorities = _list(network.get("priorities", []), f"{where}.network.priorities")
        for index, priority in enumerate(priorities):
            at = f"{where}.network.priorities[{index}]"
            entry = _object(priority, at)
            as_string(_required(entry, "name", at), f"{at}.name")
            _int(_required(entry, "priority", at), f"{at}.priority", 0, UINT32_MAX)


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


def as_items(value: object, where: str) -> list[Any]:
    # A string is iterable too, but as a list of names it is always a mistake.
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Iterable):
        _fail(where, "a list", value)
    return list(value)


def as_bool(value: object, where: str) -> bool:
    if not isinstance(value, bool):
        _fail(where, "a boolean", value)
    return value


def as_string(value: object, where: str) -> str:
    if not isinstance(value, str):
        _fail(where, "a string", value)
    return value


def as_string_list(value: object, where: str) -> list[str]:
    items = _list(value, where)
    for index, item in enumerate(items):
        as_string(item, f"{where}[{index}]")
    return items


def as_args(value: object, where: str) -> list[str]:
    if (
        not isinstance(value, list | tuple)
        or not value
        or not all(isinstance(arg, str) for arg in value)
        or not value[0]
    ):
        _fail(where, "a non-empty list of strings with a non-empty first one", value)
    return list(value)


def as_fspath(value: object, where: str) -> str:
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    return as_absolute_path(value, where)


def as_absolute_path(value: object, where: str) -> str:
    if not isinstance(value, str) or not value.startswith("/") or "\0" in value:
        _fail(where, "an absolute path", value)
    return value


def as_hostname(value: object, where: str) -> str:
    if not isinstance(value, str) or len(value) > _HOSTNAME_MAX or "\0" in value:
        _fail(where, f"a string of at most {_HOSTNAME_MAX} characters", value)
    return value


def as_env_entry(value: object, where: str) -> str:
    if not isinstance(value, str) or "\0" in value or value.find("=") < 1:
        _fail(where, "a 'KEY=value' string with a non-empty key", value)
    return value


def as_env_entries(env: Mapping[str, str] | Iterable[str], where: str) -> list[str]:
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
        as_env_entry(entry, f"{where}[{index}]") for index, entry in enumerate(as_items(env, where))
    ]


def as_capability_names(values: Iterable[str], where: str) -> list[str]:
    names: list[str] = []
    for index, value in enumerate(as_items(values, where)):
        name = as_string(value, f"{where}[{index}]").upper()
        if not name.startswith("CAP_"):
            name = "CAP_" + name
        if name not in KNOWN_CAPABILITIES:
            _fail(f"{where}[{index}]", "a known capability name like 'CAP_CHOWN'", value)
        if name not in names:
            names.append(name)
    return names


def as_rlimit_type(value: object, where: str) -> str:
    name = as_string(value, where).upper()
    if not name.startswith("RLIMIT_"):
        name = "RLIMIT_" + name
    if name not in RLIMIT_TYPES:
        _fail(where, "a known limit like 'RLIMIT_NOFILE'", value)
    return name


def as_namespace_type(value: object, where: str) -> str:
    if not isinstance(value, str) or value not in NAMESPACE_TYPES:
        _fail(where, f"one of {', '.join(NAMESPACE_TYPES)}", value)
    return value


def as_namespaces(value: object, where: str) -> set[str]:
    seen: dict[str, int] = {}
    for index, namespace in enumerate(_list(value, where)):
        at = f"{where}[{index}]"
        entry = _object(namespace, at)
        kind = as_namespace_type(_required(entry, "type", at), f"{at}.type")
        if kind in seen:
            _fail(f"{at}.type", f"unique ({where}[{seen[kind]}] has it too)", kind)
        seen[kind] = index
        if "path" in entry:
            as_absolute_path(entry["path"], f"{at}.path")
    return set(seen)


def as_mount(value: object, where: str) -> Mapping[str, Any]:
    mount = _object(value, where)
    as_absolute_path(_required(mount, "destination", where), f"{where}.destination")
    for key in ("type", "source"):
        if key in mount:
            as_string(mount[key], f"{where}.{key}")
    if "options" in mount:
        as_string_list(mount["options"], f"{where}.options")
    return mount


def check_id_mapping(value: object, where: str) -> None:
    mapping = _object(value, where)
    for key in ("containerID", "hostID", "size"):
        _int(_required(mapping, key, where), f"{where}.{key}", 0, UINT32_MAX)


def as_string_map(value: object, where: str) -> Mapping[str, str]:
    """An object of non-empty string keys and string values (Go's map[string]string)."""
    mapping = _object(value, where)
    for key, item in mapping.items():
        if not isinstance(key, str) or not key:
            _fail(f"{where} key", "a non-empty string", key)
        as_string(item, f"{where}[{key!r}]")
    return mapping


as_annotations = as_string_map


def as_cgroups_path(value: object, where: str) -> str:
    if not isinstance(value, str) or not value or "\0" in value:
        _fail(where, "a non-empty string", value)
    return value


def as_memory_bytes(value: object, where: str) -> int:
    checked = _int(value, where, -1, INT64_MAX)
    if checked == 0:
        # runc reads 0 as "not set" and would silently apply no limit at all.
        _fail(where, "a positive number of bytes or -1 for unlimited", value)
    return checked


def as_ranged(value: object, where: str, bounds: tuple[int, int], *, unset_ok: bool) -> int:
    """An integer within ``bounds``; with ``unset_ok``, also 0, which runc reads as "not set"."""
    low, high = bounds
    if _is_int(value) and (low <= value <= high or (unset_ok and value == 0)):
        return value
    unset = " or 0 (not set)" if unset_ok else ""
    _fail(where, f"an integer between {low} and {high}{unset}", value)


def as_cpu_quota(value: object, where: str, *, unset_ok: bool) -> int:
    if _is_int(value) and (
        value == -1 or (value == 0 and unset_ok) or CPU_QUOTA_MIN <= value <= INT64_MAX
    ):
        return value
    _fail(where, f"-1 (no limit) or an integer of at least {CPU_QUOTA_MIN} microseconds", value)


def as_cpuset(value: object, where: str, *, empty_ok: bool) -> str:
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


def check_device_rule(value: object, where: str) -> None:
    rule = _object(value, where)
    as_bool(_required(rule, "allow", where), f"{where}.allow")
    if "type" in rule and rule["type"] not in ("a", "b", "c"):
        _fail(f"{where}.type", "'a', 'b' or 'c'", rule["type"])
    if "access" in rule:
        access = rule["access"]
        if not isinstance(access, str) or set(access) - set("rwm"):
            _fail(f"{where}.access", "letters from 'rwm'", access)
    for key in ("major", "minor"):
        if key in rule:
            _int(rule[key], f"{where}.{key}", -1, INT64_MAX)
