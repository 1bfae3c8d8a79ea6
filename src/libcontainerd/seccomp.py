"""Seccomp profiles: the default one, Docker's profile format, and the OCI object runc reads.

A *profile* is in Docker's format (what ``docker run --security-opt
seccomp=profile.json`` reads): a ``defaultAction``, the machines it targets
(``architectures``, or an ``archMap`` keyed by the native one), and
``syscalls`` rules of ``names``, an ``action``, ``args`` conditions, an
``errnoRet``, and ``includes``/``excludes`` that keep a rule only for some
capabilities (in the spec's bounding set), machines or kernels. The OCI
``linux.seccomp`` object is made from it for one spec, as Docker does when it
creates a container: :func:`to_oci`. Use it through
:func:`libcontainerd.oci.with_seccomp`; :func:`default_profile` gives the
profile every ``oci.default_spec`` carries.

Every name, action, operator, architecture and flag is checked, so a typo
fails with :class:`~libcontainerd.errors.InvalidArgument` naming it before
anything is created (runc would skip an unknown syscall silently). A syscall
name is known when some Linux architecture has it: Docker's own profile names
other machines' calls.
"""

from __future__ import annotations

import errno
import functools
import json
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from . import _seccomp_default as default
from ._syscall_table import ANY_ARCH
from ._validate import as_int as _int
from ._validate import as_list as _list
from ._validate import as_object as _object
from ._validate import fail as _fail
from ._validate import required as _required
from .errors import InvalidArgument

__all__ = [
    "ACTIONS",
    "ARCHITECTURES",
    "FLAGS",
    "OPERATORS",
    "Profile",
    "check_oci",
    "default_profile",
    "load_profile",
    "to_oci",
]

Profile = dict[str, Any]
"""A seccomp profile in Docker's JSON format."""

ACTIONS: frozenset[str] = frozenset(
    (
        "SCMP_ACT_KILL",
        "SCMP_ACT_KILL_PROCESS",
        "SCMP_ACT_KILL_THREAD",
        "SCMP_ACT_TRAP",
        "SCMP_ACT_ERRNO",
        "SCMP_ACT_TRACE",
        "SCMP_ACT_ALLOW",
        "SCMP_ACT_LOG",
        "SCMP_ACT_NOTIFY",
    )
)
"""The actions runc (libseccomp) knows."""

OPERATORS: frozenset[str] = frozenset(
    (
        "SCMP_CMP_NE",
        "SCMP_CMP_LT",
        "SCMP_CMP_LE",
        "SCMP_CMP_EQ",
        "SCMP_CMP_GE",
        "SCMP_CMP_GT",
        "SCMP_CMP_MASKED_EQ",
    )
)
"""The argument comparisons runc (libseccomp) knows."""

ARCHITECTURES: frozenset[str] = frozenset(
    (
        "SCMP_ARCH_X86",
        "SCMP_ARCH_X86_64",
        "SCMP_ARCH_X32",
        "SCMP_ARCH_ARM",
        "SCMP_ARCH_AARCH64",
        "SCMP_ARCH_MIPS",
        "SCMP_ARCH_MIPS64",
        "SCMP_ARCH_MIPS64N32",
        "SCMP_ARCH_MIPSEL",
        "SCMP_ARCH_MIPSEL64",
        "SCMP_ARCH_MIPSEL64N32",
        "SCMP_ARCH_PPC",
        "SCMP_ARCH_PPC64",
        "SCMP_ARCH_PPC64LE",
        "SCMP_ARCH_S390",
        "SCMP_ARCH_S390X",
        "SCMP_ARCH_PARISC",
        "SCMP_ARCH_PARISC64",
        "SCMP_ARCH_RISCV64",
    )
)

FLAGS: frozenset[str] = frozenset(
    (
        "SECCOMP_FILTER_FLAG_TSYNC",
        "SECCOMP_FILTER_FLAG_LOG",
        "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
        "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
    )
)

# os.uname().machine -> (Go's GOARCH, which Docker's includes.arches name, the SCMP arch).
_MACHINES: dict[str, tuple[str, str]] = {
    "x86_64": ("amd64", "SCMP_ARCH_X86_64"),
    "aarch64": ("arm64", "SCMP_ARCH_AARCH64"),
    "armv7l": ("arm", "SCMP_ARCH_ARM"),
    "i686": ("386", "SCMP_ARCH_X86"),
    "ppc64le": ("ppc64le", "SCMP_ARCH_PPC64LE"),
    "s390x": ("s390x", "SCMP_ARCH_S390X"),
    "riscv64": ("riscv64", "SCMP_ARCH_RISCV64"),
}

_ERRNO_ACTIONS = ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE")
_UINT32_MAX = 2**32 - 1
_UINT64_MAX = 2**64 - 1
_MAX_ARG_INDEX = 5  # a syscall has six arguments
_KERNEL = re.compile(r"(\d+)\.(\d+)")
_X32_SYSCALL_BIT = 0x40000000
_X86_64_GETPID = 39


def default_profile() -> Profile:
    """The default profile (Docker 20.10's in effect; see README "Security"), in Docker's format.

    A fresh dict each call: change it and pass it to ``oci.with_seccomp``, or
    save it as JSON for Docker and podman.
    """
    rules: list[dict[str, Any]] = []
    for group in default.GROUPS:
        rule: dict[str, Any] = {
            "names": group.names.split(),
            "action": group.action,
            "comment": group.why,
        }
        if group.errno is not None:
            rule["errnoRet"] = group.errno
        if group.conditions:
            rule["args"] = [
                {"index": c.index, "value": c.value, "valueTwo": c.value_two, "op": c.op}
                for c in group.conditions
            ]
        includes = _filters(group.needs_caps, group.arches, group.min_kernel)
        excludes = _filters(group.unless_caps, group.not_arches, "")
        if includes:
            rule["includes"] = includes
        if excludes:
            rule["excludes"] = excludes
        rules.append(rule)
    return {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": default.EPERM,
        "archMap": [
            {"architecture": native, "subArchitectures": list(compat)}
            for native, compat in default.ARCH_MAP
        ],
        "syscalls": rules,
    }


def _filters(caps: Iterable[str], arches: Iterable[str], min_kernel: str) -> dict[str, Any]:
    found: dict[str, Any] = {}
    if caps:
        found["caps"] = list(caps)
    if arches:
        found["arches"] = list(arches)
    if min_kernel:
        found["minKernel"] = min_kernel
    return found


def load_profile(profile: str | os.PathLike[str] | Mapping[str, Any]) -> Profile:
    """A checked copy of ``profile``: a path to a JSON file in Docker's format, or such a dict.

    Raises InvalidArgument naming the file or field that is wrong (an unknown
    syscall, action, operator, architecture, capability or flag, a missing
    ``defaultAction``, a value of the wrong type) or the file that cannot be
    read.
    """
    where = "seccomp profile"
    if isinstance(profile, str | os.PathLike):
        path = Path(profile)
        where = f"seccomp profile {str(path)!r}"
        try:
            loaded = json.loads(path.read_text())
        except OSError as error:
            raise InvalidArgument(f"{where}: cannot read it: {error.strerror}") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise InvalidArgument(f"{where}: not JSON: {error}") from None
    elif isinstance(profile, Mapping):
        try:
            loaded = json.loads(json.dumps(profile))  # a deep copy that is plain JSON
        except (TypeError, ValueError) as error:
            raise InvalidArgument(f"{where}: not a JSON document: {error}") from None
    else:
        _fail(where, "a path to a JSON file, a dict or None", profile)
    _check_profile(loaded, where)
    return dict(loaded)


def to_oci(
    profile: Mapping[str, Any],
    capabilities: Iterable[str],
    *,
    machine: str | None = None,
    kernel: str | None = None,
) -> dict[str, Any]:
    """The OCI ``linux.seccomp`` of a checked ``profile`` for a process with ``capabilities``.

    ``capabilities`` is the spec's bounding set; ``machine`` and ``kernel``
    default to this host's (``os.uname()``). Docker's rules: a rule is kept
    when every ``includes.caps`` is in the set and no ``excludes.caps`` is,
    when the machine is in ``includes.arches`` and not in ``excludes.arches``,
    and when the kernel is at least ``includes.minKernel``; ``archMap`` gives
    the native architecture and its compat ones.
    """
    uname = os.uname()
    goarch, native = _MACHINES.get(machine or uname.machine, (machine or uname.machine, ""))
    running = _kernel_version(kernel or uname.release)
    caps = set(capabilities)
    seccomp: dict[str, Any] = {"defaultAction": profile["defaultAction"]}
    if "defaultErrnoRet" in profile:
        seccomp["defaultErrnoRet"] = profile["defaultErrnoRet"]
    architectures = list(profile.get("architectures") or [])
    for entry in profile.get("archMap") or []:
        if entry["architecture"] == native:
            compat = entry.get("subArchitectures") or []
            if machine is None and not _x32_abi():
                compat = [arch for arch in compat if arch != "SCMP_ARCH_X32"]
            architectures = [native, *compat]
    seccomp["architectures"] = architectures
    for key in ("flags", "listenerPath", "listenerMetadata"):
        if profile.get(key):
            seccomp[key] = profile[key]
    rules: list[dict[str, Any]] = []
    for rule in profile.get("syscalls") or []:
        includes = rule.get("includes") or {}
        excludes = rule.get("excludes") or {}
        if not set(includes.get("caps") or ()) <= caps or caps & set(excludes.get("caps") or ()):
            continue
        if includes.get("arches") and goarch not in includes["arches"]:
            continue
        if goarch in (excludes.get("arches") or ()):
            continue
        if includes.get("minKernel") and running < _kernel_version(includes["minKernel"]):
            continue
        names = list(rule.get("names") or []) or [rule["name"]]
        oci_rule: dict[str, Any] = {"names": names, "action": rule["action"]}
        if rule.get("args"):
            oci_rule["args"] = [
                {
                    "index": arg["index"],
                    "value": arg.get("value", 0),
                    "valueTwo": arg.get("valueTwo", 0),
                    "op": arg["op"],
                }
                for arg in rule["args"]
            ]
        if rule.get("errnoRet") is not None:
            oci_rule["errnoRet"] = rule["errnoRet"]
        rules.append(oci_rule)
    seccomp["syscalls"] = rules
    return seccomp


@functools.cache
def _x32_abi() -> bool:
    """Whether this host's kernel runs x32 system calls (built with them, and on at boot).

    Most distributions' kernels do not (Debian's boot with them off). An
    archMap's x32 is then left out of the filter: its rules cost runc ~7 ms
    a container start, for calls that can only fail (ENOSYS without the
    filter, a SIGSYS kill with it). Probed with an x32 getpid(2), only from a
    process under no seccomp filter of its own (one without x32 would kill
    it); otherwise assumed on, as Docker always does.
    """
    if os.uname().machine != "x86_64":
        return True  # no x32 elsewhere: nothing to leave out
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return True
    if "\nSeccomp:\t0\n" not in status:
        return True
    import ctypes  # only here: once a process, on x86_64

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.syscall(ctypes.c_long(_X32_SYSCALL_BIT | _X86_64_GETPID)) != -1:
        return True
    return ctypes.get_errno() != errno.ENOSYS


def _kernel_version(release: str) -> tuple[int, int]:
    match = _KERNEL.match(release)
    if not match:
        raise InvalidArgument(f"kernel version must look like '4.8', got {release!r}")
    return int(match.group(1)), int(match.group(2))


# --- checks -------------------------------------------------------------------


def _check_profile(value: object, where: str) -> None:
    profile = _object(value, where)
    _choice(_required(profile, "defaultAction", where), f"{where}: defaultAction", ACTIONS)
    if "defaultErrnoRet" in profile:
        _errno(profile, "defaultErrnoRet", profile["defaultAction"], where)
    if profile.get("architectures") and profile.get("archMap"):
        raise InvalidArgument(f"{where}: give 'architectures' or 'archMap', not both")
    for index, arch in enumerate(
        _list(profile.get("architectures") or [], f"{where}: architectures")
    ):
        _choice(arch, f"{where}: architectures[{index}]", ARCHITECTURES)
    for index, entry in enumerate(_list(profile.get("archMap") or [], f"{where}: archMap")):
        at = f"{where}: archMap[{index}]"
        mapping = _object(entry, at)
        _choice(_required(mapping, "architecture", at), f"{at}.architecture", ARCHITECTURES)
        subs = _list(mapping.get("subArchitectures") or [], f"{at}.subArchitectures")
        for sub_index, sub in enumerate(subs):
            _choice(sub, f"{at}.subArchitectures[{sub_index}]", ARCHITECTURES)
    _check_common(profile, where)
    for index, rule in enumerate(_list(profile.get("syscalls") or [], f"{where}: syscalls")):
        at = f"{where}: syscalls[{index}]"
        entry = _object(rule, at)
        names = entry.get("names") or []
        if names and entry.get("name"):
            raise InvalidArgument(f"{at}: give 'name' or 'names', not both")
        if not names and entry.get("name"):
            names = [entry["name"]]
        if not names:
            raise InvalidArgument(f"{at} names no syscall (give 'names')")
        _check_rule(entry, names, at)
        for key in ("includes", "excludes"):
            if entry.get(key) is not None:
                _check_filter(entry[key], f"{at}.{key}")


def check_oci(value: object, where: str) -> None:
    """Check an OCI ``linux.seccomp`` object; raise InvalidArgument naming the bad field."""
    seccomp = _object(value, where)
    _choice(_required(seccomp, "defaultAction", where), f"{where}.defaultAction", ACTIONS)
    if "defaultErrnoRet" in seccomp:
        _errno(seccomp, "defaultErrnoRet", seccomp["defaultAction"], where)
    for index, arch in enumerate(
        _list(seccomp.get("architectures") or [], f"{where}.architectures")
    ):
        _choice(arch, f"{where}.architectures[{index}]", ARCHITECTURES)
    _check_common(seccomp, where)
    for index, rule in enumerate(_list(seccomp.get("syscalls") or [], f"{where}.syscalls")):
        at = f"{where}.syscalls[{index}]"
        entry = _object(rule, at)
        _check_rule(entry, _required(entry, "names", at), at)


def _check_common(seccomp: Mapping[str, Any], where: str) -> None:
    for index, flag in enumerate(_list(seccomp.get("flags") or [], f"{where}.flags")):
        _choice(flag, f"{where}.flags[{index}]", FLAGS)
    listener = seccomp.get("listenerPath")
    if listener is not None and (not isinstance(listener, str) or not listener.startswith("/")):
        _fail(f"{where}.listenerPath", "an absolute path", listener)
    if "listenerMetadata" in seccomp and not isinstance(seccomp["listenerMetadata"], str):
        _fail(f"{where}.listenerMetadata", "a string", seccomp["listenerMetadata"])
    actions = [seccomp.get("defaultAction")] + [
        rule.get("action") for rule in seccomp.get("syscalls") or [] if isinstance(rule, Mapping)
    ]
    if "SCMP_ACT_NOTIFY" in actions and not listener:
        raise InvalidArgument(f"{where}: SCMP_ACT_NOTIFY needs a listenerPath")


def _check_rule(rule: Mapping[str, Any], names: object, at: str) -> None:
    listed = _list(names, f"{at}.names")
    if not listed:
        raise InvalidArgument(f"{at}.names is empty")
    if not all(type(name) is str for name in listed) or not ANY_ARCH.issuperset(listed):
        for index, name in enumerate(listed):
            if not isinstance(name, str) or name not in ANY_ARCH:
                _fail(f"{at}.names[{index}]", "a Linux syscall name (unknown syscall)", name)
    action = _choice(_required(rule, "action", at), f"{at}.action", ACTIONS)
    if rule.get("errnoRet") is not None:
        _errno(rule, "errnoRet", action, at)
    for index, arg in enumerate(_list(rule.get("args") or [], f"{at}.args")):
        where = f"{at}.args[{index}]"
        entry = _object(arg, where)
        _int(_required(entry, "index", where), f"{where}.index", 0, _MAX_ARG_INDEX)
        for key in ("value", "valueTwo"):
            if key in entry:
                _int(entry[key], f"{where}.{key}", 0, _UINT64_MAX)
        _choice(_required(entry, "op", where), f"{where}.op", OPERATORS)


def _check_filter(value: object, where: str) -> None:
    found = _object(value, where)
    from .oci import KNOWN_CAPABILITIES  # oci imports this module

    for index, cap in enumerate(_list(found.get("caps") or [], f"{where}.caps")):
        _choice(cap, f"{where}.caps[{index}]", KNOWN_CAPABILITIES)
    for index, arch in enumerate(_list(found.get("arches") or [], f"{where}.arches")):
        if not isinstance(arch, str) or not arch:
            _fail(f"{where}.arches[{index}]", "a machine name like 'amd64'", arch)
    if found.get("minKernel"):
        kernel = found["minKernel"]
        if not isinstance(kernel, str) or not _KERNEL.fullmatch(kernel):
            _fail(f"{where}.minKernel", "a kernel version like '4.8'", kernel)


def _errno(obj: Mapping[str, Any], key: str, action: object, where: str) -> None:
    _int(obj[key], f"{where}.{key}", 0, _UINT32_MAX)
    if action not in _ERRNO_ACTIONS:
        _fail(f"{where}.{key}", "set only with SCMP_ACT_ERRNO or SCMP_ACT_TRACE", obj[key])


def _choice(value: object, where: str, allowed: frozenset[str]) -> str:
    if not isinstance(value, str) or value not in allowed:
        if len(allowed) <= 10:
            _fail(where, f"one of {', '.join(sorted(allowed))}", value)
        _fail(where, f"a known name like {sorted(allowed)[0]!r}", value)
    return value
