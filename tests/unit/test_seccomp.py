"""The default seccomp profile, Docker's profile format and its OCI form (no daemon)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from libcontainerd import oci, seccomp
from libcontainerd._syscall_table import ANY_ARCH, NAMES_BY_ARCH
from libcontainerd.errors import InvalidArgument

ROOT = "/srv/rootfs"
ESCAPES = [
    "mount",
    "umount2",
    "unshare",
    "setns",
    "keyctl",
    "add_key",
    "request_key",
    "bpf",
    "kexec_load",
    "init_module",
    "finit_module",
    "swapon",
    "swapoff",
    "reboot",
    "io_uring_setup",
    "userfaultfd",
    "open_by_handle_at",
    "perf_event_open",
    "acct",
    "settimeofday",
    "iopl",
]


def allowed(seccomp_object: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Each syscall name -> the rules that name it."""
    rules: dict[str, list[dict[str, Any]]] = {}
    for rule in seccomp_object["syscalls"]:
        for name in rule["names"]:
            rules.setdefault(name, []).append(rule)
    return rules


def default_oci(*options: oci.SpecOption) -> dict[str, Any]:
    result: dict[str, Any] = oci.default_spec(["/bin/sh"], ROOT, *options)["linux"]["seccomp"]
    return result


def test_default_spec_filters_with_eperm_for_this_machine_and_its_compat_abis() -> None:
    filtered = default_oci()
    assert filtered["defaultAction"] == "SCMP_ACT_ERRNO"
    assert filtered["defaultErrnoRet"] == 1  # EPERM
    if os.uname().machine == "x86_64":
        # x32 only where this kernel runs x32 calls (Debian's does not, at boot).
        x32 = ["SCMP_ARCH_X32"] if seccomp._x32_abi() else []
        assert filtered["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", *x32]
    oci.validate_spec(oci.default_spec(["/bin/sh"], ROOT))


def test_a_profile_for_a_named_machine_keeps_every_compat_abi_of_its_arch_map() -> None:
    rendered = seccomp.to_oci(seccomp.default_profile(), [], machine="x86_64", kernel="6.1")
    assert rendered["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]


def test_x32_is_left_out_for_this_host_only_when_its_kernel_refuses_x32_calls(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if os.uname().machine != "x86_64":
        pytest.skip("x32 is an x86_64 ABI")
    for runs_x32, expected in ((True, ["SCMP_ARCH_X32"]), (False, [])):
        monkeypatch.setattr(seccomp, "_x32_abi", lambda runs=runs_x32: runs)
        rendered = seccomp.to_oci(seccomp.default_profile(), [])
        assert rendered["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", *expected]


def test_default_profile_refuses_the_escape_calls() -> None:
    rules = allowed(default_oci())
    assert [name for name in ESCAPES if name in rules] == []


def test_clone_is_allowed_only_without_namespace_flags_and_clone3_gets_enosys() -> None:
    rules = allowed(default_oci())
    [clone] = rules["clone"]
    assert clone["args"] == [
        {"index": 0, "value": 0x7E020000, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}
    ]
    [clone3] = rules["clone3"]
    assert (clone3["action"], clone3["errnoRet"]) == ("SCMP_ACT_ERRNO", 38)


def test_personality_and_socket_are_allowed_only_for_listed_values() -> None:
    rules = allowed(default_oci())
    assert sorted(rule["args"][0]["value"] for rule in rules["personality"]) == [
        0,
        8,
        0x20000,
        0x20008,
        0xFFFFFFFF,
    ]
    families = {(rule["args"][0]["op"], rule["args"][0]["value"]) for rule in rules["socket"]}
    assert families == {("SCMP_CMP_LT", 38), ("SCMP_CMP_EQ", 39), ("SCMP_CMP_GT", 40)}


def test_default_profile_follows_capability_options() -> None:
    admin = allowed(default_oci(oci.with_added_capabilities(["SYS_ADMIN"])))
    assert {"mount", "unshare", "setns", "clone3"} <= set(admin)
    assert all("args" not in rule for rule in admin["clone"])  # any flags with CAP_SYS_ADMIN
    back = default_oci(
        oci.with_added_capabilities(["SYS_ADMIN"]), oci.with_dropped_capabilities(["SYS_ADMIN"])
    )
    assert back == default_oci()
    none = allowed(default_oci(oci.with_capabilities([])))
    assert "chroot" not in none
    assert "read" in none
    everything = allowed(default_oci(oci.with_capabilities(sorted(oci.KNOWN_CAPABILITIES))))
    assert {"reboot", "init_module", "settimeofday", "kcmp", "bpf", "acct"} <= set(everything)


def test_with_seccomp_none_removes_the_filter_for_good() -> None:
    spec = oci.default_spec(
        ["/bin/sh"], ROOT, oci.with_seccomp(None), oci.with_added_capabilities(["SYS_ADMIN"])
    )
    assert "seccomp" not in spec["linux"]
    oci.validate_spec(spec)


def test_a_profile_of_ones_own_is_kept_as_given_after_capability_options() -> None:
    profile = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mount"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}],
    }
    spec = oci.default_spec(
        ["/bin/sh"], ROOT, oci.with_seccomp(profile), oci.with_added_capabilities(["SYS_ADMIN"])
    )
    assert spec["linux"]["seccomp"] == {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": [],
        "syscalls": [{"names": ["mount"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}],
    }
    oci.validate_spec(spec)


def test_profile_rules_keep_to_their_capabilities_machines_and_kernels() -> None:
    profile = seccomp.load_profile(seccomp.default_profile())
    old_kernel = allowed(seccomp.to_oci(profile, oci.DEFAULT_CAPABILITIES, kernel="4.4.0"))
    assert "ptrace" not in old_kernel
    assert "ptrace" in allowed(seccomp.to_oci(profile, oci.DEFAULT_CAPABILITIES, kernel="6.1.0"))
    arm = seccomp.to_oci(profile, oci.DEFAULT_CAPABILITIES, machine="aarch64")
    assert arm["architectures"] == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    assert "cacheflush" in allowed(arm)
    assert "arch_prctl" not in allowed(arm)
    s390 = allowed(seccomp.to_oci(profile, oci.DEFAULT_CAPABILITIES, machine="s390x"))
    assert [rule["args"][0]["index"] for rule in s390["clone"]] == [1]


def test_default_profile_names_only_real_syscalls_of_its_machines() -> None:
    profile = seccomp.default_profile()
    for rule in profile["syscalls"]:
        assert rule["comment"]
        for name in rule["names"]:
            assert name in ANY_ARCH, name
    x86 = NAMES_BY_ARCH["SCMP_ARCH_X86_64"] | NAMES_BY_ARCH["SCMP_ARCH_X86"]
    unconditional = {
        name for rule in profile["syscalls"] if "includes" not in rule for name in rule["names"]
    }
    # recv and send are calls of other machines (x86 reaches them through socketcall).
    assert sorted(unconditional - x86 - NAMES_BY_ARCH["SCMP_ARCH_X32"]) == ["recv", "send"]


def test_default_profile_is_a_fresh_json_document() -> None:
    first = seccomp.default_profile()
    first["syscalls"].clear()
    second = seccomp.default_profile()
    assert second["syscalls"]
    assert json.loads(json.dumps(second)) == second


def test_a_profile_file_is_read(tmp_path: Path) -> None:
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(seccomp.default_profile()))
    assert default_oci(oci.with_seccomp(path)) == default_oci()
    assert default_oci(oci.with_seccomp(str(path))) == default_oci()


def test_podmans_profile_in_dockers_format_loads() -> None:
    podman = Path("/usr/share/containers/seccomp.json")
    if not podman.exists():
        pytest.skip("containers-common's seccomp.json is not installed")
    filtered = default_oci(oci.with_seccomp(podman))
    assert filtered["defaultAction"] == "SCMP_ACT_ERRNO"
    assert {rule["action"] for rule in allowed(filtered)["kexec_load"]} == {"SCMP_ACT_ERRNO"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda p: p["syscalls"][0]["names"].append("mkdri"),
            r"syscalls\[0\]\.names\[\d+\] must be a Linux syscall name .*'mkdri'",
        ),
        (
            lambda p: p["syscalls"][1].update(action="SCMP_ACT_ALOW"),
            r"syscalls\[1\]\.action must be one of .*'SCMP_ACT_ALOW'",
        ),
        (lambda p: p.update(defaultAction="DENY"), r"defaultAction must be one of .*'DENY'"),
        (lambda p: p.pop("defaultAction"), r"defaultAction is required"),
        (
            lambda p: p["syscalls"][14]["args"][0].update(op="SCMP_CMP_LIKE"),
            r"syscalls\[14\]\.args\[0\]\.op must be one of .*'SCMP_CMP_LIKE'",
        ),
        (
            lambda p: p["syscalls"][14]["args"][0].update(index=6),
            r"args\[0\]\.index must be an integer between 0 and 5",
        ),
        (
            lambda p: p["syscalls"][0].update(errnoRet=1),
            r"errnoRet must be set only with SCMP_ACT_ERRNO",
        ),
        (
            lambda p: p.update(architectures=["SCMP_ARCH_X86_64"]),
            r"'architectures' or 'archMap', not both",
        ),
        (
            lambda p: p["archMap"][0].update(architecture="SCMP_ARCH_Z80"),
            r"archMap\[0\]\.architecture must be a known name",
        ),
        (
            lambda p: p["syscalls"][-1]["includes"].update(caps=["CAP_WIZARD"]),
            r"includes\.caps\[0\] must be a known name",
        ),
        (lambda p: p.update(flags=["SECCOMP_FILTER_FLAG_FAST"]), r"flags\[0\] must be one of"),
        (lambda p: p["syscalls"].append({"action": "SCMP_ACT_ALLOW"}), r"names no syscall"),
        (lambda p: p["syscalls"][0].update(name="read"), r"'name' or 'names', not both"),
        (lambda p: p.update(x={1, 2}), r"not a JSON document"),
        (
            lambda p: p.update(defaultAction="SCMP_ACT_NOTIFY", defaultErrnoRet=None),
            r"defaultErrnoRet must be an integer",
        ),
    ],
)
def test_a_wrong_profile_is_refused_when_the_option_is_made(change: Any, message: str) -> None:
    profile = seccomp.default_profile()
    change(profile)
    with pytest.raises(InvalidArgument, match=message):
        oci.with_seccomp(profile)


def test_an_unreadable_or_broken_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="cannot read it"):
        oci.with_seccomp(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(InvalidArgument, match="not JSON"):
        oci.with_seccomp(broken)
    with pytest.raises(InvalidArgument, match="a path to a JSON file, a dict or None"):
        oci.with_seccomp(42)  # type: ignore[arg-type]


def test_validate_spec_checks_the_oci_object() -> None:
    spec = oci.default_spec(["/bin/sh"], ROOT)
    spec["linux"]["seccomp"]["syscalls"][0]["names"].append("mkdri")
    with pytest.raises(InvalidArgument, match=r"spec\.linux\.seccomp\.syscalls\[0\]\.names"):
        oci.validate_spec(spec)
    spec["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_KILL_EVERYTHING"}
    with pytest.raises(InvalidArgument, match=r"spec\.linux\.seccomp\.defaultAction"):
        oci.validate_spec(spec)
    spec["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_NOTIFY"}
    with pytest.raises(InvalidArgument, match="needs a listenerPath"):
        oci.validate_spec(spec)
