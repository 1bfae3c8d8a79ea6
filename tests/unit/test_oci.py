"""The OCI spec module: containerd's defaults, each option, and each validation error."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from libcontainerd import oci
from libcontainerd.errors import InvalidArgument

from ..ci import missing

ROOT = "/srv/rootfs"


def make(*options: oci.SpecOption) -> dict[str, Any]:
    return oci.default_spec(["/bin/sh"], ROOT, *options)


def resources(spec: dict[str, Any]) -> dict[str, Any]:
    return spec["linux"]["resources"]  # type: ignore[no-any-return]


# --- the default spec ---------------------------------------------------------


def test_default_spec_grants_the_14_default_capabilities_in_three_sets() -> None:
    caps = make()["process"]["capabilities"]
    assert set(caps) == {"bounding", "effective", "permitted"}
    for kind in ("bounding", "effective", "permitted"):
        assert caps[kind] == list(oci.DEFAULT_CAPABILITIES)
        assert len(caps[kind]) == 14
    assert "CAP_SYS_ADMIN" not in caps["bounding"]


def test_default_spec_has_private_pid_ipc_uts_mount_network_namespaces() -> None:
    namespaces = make()["linux"]["namespaces"]
    assert namespaces == [{"type": t} for t in ("pid", "ipc", "uts", "mount", "network")]


def test_default_spec_masks_and_protects_proc_and_sys() -> None:
    linux = make()["linux"]
    assert len(linux["maskedPaths"]) == 10
    assert {"/proc/kcore", "/proc/keys", "/sys/firmware", "/proc/scsi"} <= set(linux["maskedPaths"])
    assert linux["readonlyPaths"] == [
        "/proc/bus",
        "/proc/fs",
        "/proc/irq",
        "/proc/sys",
        "/proc/sysrq-trigger",
    ]


def test_default_spec_process_is_root_in_slash_with_default_path() -> None:
    process = make()["process"]
    assert process["args"] == ["/bin/sh"]
    assert process["env"] == ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
    assert process["cwd"] == "/"
    assert process["user"] == {"uid": 0, "gid": 0}
    assert process["terminal"] is False
    assert process["noNewPrivileges"] is True
    assert process["rlimits"] == [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}]


def test_default_spec_mounts_proc_dev_and_a_readonly_sys() -> None:
    mounts = {m["destination"]: m for m in make()["mounts"]}
    assert list(mounts) == ["/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/run"]
    assert mounts["/sys"]["type"] == "sysfs"
    assert "ro" in mounts["/sys"]["options"]
    assert mounts["/proc"]["type"] == "proc"


def test_default_spec_denies_all_devices_then_allows_the_standard_char_devices() -> None:
    rules = resources(make())["devices"]
    assert rules[0] == {"allow": False, "access": "rwm"}
    allowed = {(r["major"], r.get("minor")) for r in rules[1:]}
    assert all(r["allow"] and r["type"] == "c" and r["access"] == "rwm" for r in rules[1:])
    # null, zero, full, random, urandom, tty, console, ptmx, and every pts slave.
    assert allowed == {(1, 3), (1, 5), (1, 7), (1, 8), (1, 9), (5, 0), (5, 1), (5, 2), (136, None)}


def test_default_spec_root_is_the_given_absolute_path(tmp_path: Path) -> None:
    spec = oci.default_spec(["/bin/true"], tmp_path)
    assert spec["root"] == {"path": str(tmp_path)}
    assert spec["ociVersion"] == "1.0.2-dev"
    assert "hostname" not in spec


@pytest.mark.parametrize("root", ["rootfs", "", 42, None])
def test_default_spec_refuses_a_root_that_is_not_an_absolute_path(root: Any) -> None:
    with pytest.raises(InvalidArgument, match=r"root must be an absolute path"):
        oci.default_spec(["/bin/true"], root)


@pytest.mark.parametrize("args", [[], "sh", [""], ["sh", 1], None])
def test_default_spec_refuses_bad_args(args: Any) -> None:
    with pytest.raises(InvalidArgument, match=r"args must be a non-empty list of strings"):
        oci.default_spec(args, ROOT)


def test_default_spec_returns_a_fresh_dict_each_time() -> None:
    first = make()
    first["process"]["capabilities"]["bounding"].append("CAP_SYS_ADMIN")
    first["mounts"][0]["options"].append("ro")
    first["linux"]["resources"]["devices"].clear()
    assert make() == oci.default_spec(["/bin/sh"], ROOT)
    assert "CAP_SYS_ADMIN" not in make()["process"]["capabilities"]["bounding"]


def test_default_spec_passes_its_own_validation() -> None:
    oci.validate_spec(make())


def test_default_spec_matches_ctr_oci_spec_except_what_a_container_sets() -> None:
    if shutil.which("ctr") is None:
        missing("needs containerd's ctr")  # a failure in CI, where ./run installs it
    ctr = json.loads(
        subprocess.run(["ctr", "oci", "spec"], capture_output=True, check=True, text=True).stdout
    )
    ours = make()
    # ctr prints the spec before any container exists: no args, env, tty, or
    # id-based cgroup path, a bundle-relative root, and only the deny-all rule.
    for spec in (ctr, ours):
        for key in ("args", "env", "terminal"):
            spec["process"].pop(key, None)
        spec.pop("root")
        spec["linux"].pop("cgroupsPath", None)
        spec["linux"]["resources"]["devices"] = spec["linux"]["resources"]["devices"][:1]
    # ctr adds a seccomp profile only when asked (ctr run --seccomp); ours is on by default.
    assert ours["linux"].pop("seccomp")["defaultAction"] == "SCMP_ACT_ERRNO"
    assert ours == ctr


# --- apply and the options ------------------------------------------------------


def test_options_apply_in_order() -> None:
    spec = make(oci.with_cwd("/a"), oci.with_cwd("/b"))
    assert spec["process"]["cwd"] == "/b"


def test_apply_changes_the_spec_in_place_and_returns_it() -> None:
    spec = make()
    assert oci.apply(spec, oci.with_terminal()) is spec
    assert spec["process"]["terminal"] is True


def test_with_args_replaces_the_command() -> None:
    assert make(oci.with_args(["/bin/echo", "hi"]))["process"]["args"] == ["/bin/echo", "hi"]


def test_with_args_refuses_a_plain_string() -> None:
    with pytest.raises(InvalidArgument, match=r"with_args: args must be .*'echo hi'"):
        oci.with_args("echo hi")


def test_with_env_merges_by_key_keeping_positions() -> None:
    spec = make(oci.with_env({"A": "1", "PATH": "/bin"}), oci.with_env(["A=2", "B=x=y"]))
    assert spec["process"]["env"] == ["PATH=/bin", "A=2", "B=x=y"]


def test_with_env_replace_drops_the_old_environment() -> None:
    spec = make(oci.with_env(["A=1"], replace=True))
    assert spec["process"]["env"] == ["A=1"]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (["NOEQUALS"], r"with_env: env\[0\] must be a 'KEY=value' string.*'NOEQUALS'"),
        (["=v"], r"env\[0\] must be a 'KEY=value' string with a non-empty key, got '=v'"),
        ({"A=B": "1"}, r"with_env: env key must be a non-empty string without '=', got 'A=B'"),
        ({"A": 1}, r"with_env: env\['A'\] must be a string, got 1"),
        ("A=1", r"with_env: env must be a list, got 'A=1'"),
    ],
)
def test_with_env_refuses_malformed_entries(env: Any, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        oci.with_env(env)


def test_with_cwd_sets_an_absolute_directory() -> None:
    assert make(oci.with_cwd("/tmp"))["process"]["cwd"] == "/tmp"
    with pytest.raises(InvalidArgument, match=r"with_cwd: cwd must be an absolute path, got 'tmp'"):
        oci.with_cwd("tmp")


def test_with_user_sets_uid_gid_and_supplementary_groups() -> None:
    spec = make(oci.with_user(1000, 100, additional_gids=[5, 6]))
    assert spec["process"]["user"] == {"uid": 1000, "gid": 100, "additionalGids": [5, 6]}


def test_with_user_gid_defaults_to_uid_and_clears_old_groups() -> None:
    spec = make(oci.with_user(0, additional_gids=[5]), oci.with_user(1000))
    assert spec["process"]["user"] == {"uid": 1000, "gid": 1000}


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: oci.with_user(-1), r"with_user: uid must be an integer between 0 and 4294967295"),
        (lambda: oci.with_user(2**32), r"uid must be an integer .*got 4294967296"),
        (
            lambda: oci.with_user(0, "0"),  # type: ignore[arg-type]
            r"with_user: gid must be an integer .*got '0'",
        ),
        (lambda: oci.with_user(True), r"with_user: uid must be an integer .*got True"),
        (lambda: oci.with_user(0, 0, [-5]), r"with_user: additional_gids\[0\] .*got -5"),
    ],
)
def test_with_user_refuses_ids_out_of_range(call: Callable[[], Any], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        call()


def test_with_hostname_sets_it_and_refuses_empty_or_long_names() -> None:
    assert make(oci.with_hostname("box"))["hostname"] == "box"
    with pytest.raises(InvalidArgument, match=r"with_hostname: hostname must be a non-empty"):
        oci.with_hostname("")
    with pytest.raises(InvalidArgument, match=r"at most 64 characters"):
        oci.with_hostname("x" * 65)


def test_with_terminal_and_no_new_privileges_take_booleans() -> None:
    spec = make(oci.with_terminal(True), oci.with_no_new_privileges(False))
    assert spec["process"]["terminal"] is True
    assert spec["process"]["noNewPrivileges"] is False
    with pytest.raises(InvalidArgument, match=r"with_terminal: terminal must be a boolean, got 1"):
        oci.with_terminal(1)  # type: ignore[arg-type]


def test_with_memory_limit_sets_bytes_or_unlimited() -> None:
    assert resources(make(oci.with_memory_limit(1 << 20)))["memory"] == {"limit": 1 << 20}
    assert resources(make(oci.with_memory_limit(-1)))["memory"] == {"limit": -1}
    with pytest.raises(InvalidArgument, match=r"with_memory_limit: limit must be .* got 0"):
        oci.with_memory_limit(0)


def test_with_cpu_quota_sets_quota_and_period() -> None:
    cpu = resources(make(oci.with_cpu_quota(50_000, 200_000)))["cpu"]
    assert cpu == {"quota": 50_000, "period": 200_000}
    with pytest.raises(InvalidArgument, match=r"with_cpu_quota: quota must be .* got 10"):
        oci.with_cpu_quota(10)
    with pytest.raises(InvalidArgument, match=r"with_cpu_quota: period must be .* got 10"):
        oci.with_cpu_quota(1000, 10)


def test_with_cpus_turns_a_fraction_into_a_quota() -> None:
    assert resources(make(oci.with_cpus(1.5)))["cpu"] == {"quota": 150_000, "period": 100_000}
    with pytest.raises(InvalidArgument, match=r"with_cpus: cpus must be at least 0.01, got 0.001"):
        oci.with_cpus(0.001)
    with pytest.raises(InvalidArgument, match=r"with_cpus: cpus must be a positive number"):
        oci.with_cpus(float("nan"))


def test_with_cpu_shares_takes_the_kernel_range() -> None:
    assert resources(make(oci.with_cpu_shares(512)))["cpu"] == {"shares": 512}
    with pytest.raises(InvalidArgument, match=r"with_cpu_shares: shares .*between 2 and 262144"):
        oci.with_cpu_shares(1)


def test_with_cpuset_sets_cpus_and_mems() -> None:
    cpu = resources(make(oci.with_cpuset("0-1,3", "0")))["cpu"]
    assert cpu == {"cpus": "0-1,3", "mems": "0"}


@pytest.mark.parametrize("cpus", ["", "0-", "1-0", "a", "0,,1", " 0", 0])
def test_with_cpuset_refuses_bad_syntax(cpus: Any) -> None:
    with pytest.raises(InvalidArgument, match=r"with_cpuset: cpus must be a cpuset list"):
        oci.with_cpuset(cpus)


def test_with_pids_limit_sets_a_limit_or_unlimited() -> None:
    assert resources(make(oci.with_pids_limit(64)))["pids"] == {"limit": 64}
    assert resources(make(oci.with_pids_limit(-1)))["pids"] == {"limit": -1}
    with pytest.raises(InvalidArgument, match=r"with_pids_limit: limit must be .* got 0"):
        oci.with_pids_limit(0)


def test_with_blkio_weight_takes_10_to_1000() -> None:
    assert resources(make(oci.with_blkio_weight(500)))["blockIO"] == {"weight": 500}
    with pytest.raises(InvalidArgument, match=r"with_blkio_weight: weight .*got 5"):
        oci.with_blkio_weight(5)


def test_with_resources_merges_objects_and_appends_device_rules() -> None:
    rule = {"allow": True, "type": "c", "major": 10, "minor": 200, "access": "rw"}
    spec = make(
        oci.with_memory_limit(100 << 20),
        oci.with_resources({"memory": {"swap": 200 << 20}, "devices": [rule], "x-unknown": 1}),
    )
    res = resources(spec)
    assert res["memory"] == {"limit": 100 << 20, "swap": 200 << 20}
    assert res["devices"][0] == {"allow": False, "access": "rwm"}
    assert res["devices"][-1] == rule
    assert res["x-unknown"] == 1


def test_with_resources_copies_its_argument() -> None:
    given: dict[str, Any] = {"pids": {"limit": 5}}
    option = oci.with_resources(given)
    given["pids"]["limit"] = 0
    assert resources(make(option))["pids"] == {"limit": 5}


def test_with_resources_validates_eagerly() -> None:
    with pytest.raises(InvalidArgument, match=r"with_resources: resources.pids.limit is required"):
        oci.with_resources({"pids": {}})


def test_with_mounts_appends_and_replaces_by_destination() -> None:
    shm = {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["size=1g"]}
    data = {"destination": "/data", "type": "tmpfs", "source": "tmpfs"}
    mounts = make(oci.with_mounts([shm, data]))["mounts"]
    destinations = [m["destination"] for m in mounts]
    assert destinations.count("/dev/shm") == 1
    assert mounts[destinations.index("/dev/shm")] == shm
    assert mounts[-1] == data


def test_with_mounts_refuses_a_relative_destination() -> None:
    with pytest.raises(
        InvalidArgument,
        match=r"with_mounts: mounts\[0\].destination must be an absolute path, got 'data'",
    ):
        oci.with_mounts([{"destination": "data"}])


def test_with_bind_mount_makes_a_recursive_bind(tmp_path: Path) -> None:
    spec = make(oci.with_bind_mount(tmp_path, "/in", readonly=True))
    assert spec["mounts"][-1] == {
        "destination": "/in",
        "type": "bind",
        "source": str(tmp_path),
        "options": ["rbind", "ro"],
    }
    assert make(oci.with_bind_mount("/x", "/y"))["mounts"][-1]["options"] == ["rbind", "rw"]
    with pytest.raises(InvalidArgument, match=r"with_bind_mount: source must be an absolute path"):
        oci.with_bind_mount("x", "/y")


def test_with_readonly_rootfs_sets_root_readonly() -> None:
    assert make(oci.with_readonly_rootfs())["root"] == {"path": ROOT, "readonly": True}


def test_with_capabilities_replaces_three_sets_and_normalises_names() -> None:
    caps = make(oci.with_capabilities(["net_admin", "CAP_KILL", "KILL"]))["process"]["capabilities"]
    for kind in ("bounding", "effective", "permitted"):
        assert caps[kind] == ["CAP_NET_ADMIN", "CAP_KILL"]


def test_with_added_and_dropped_capabilities() -> None:
    spec = make(
        oci.with_added_capabilities(["SYS_ADMIN", "CAP_CHOWN"]),
        oci.with_dropped_capabilities(["NET_RAW"]),
    )
    bounding = spec["process"]["capabilities"]["bounding"]
    assert bounding.count("CAP_SYS_ADMIN") == 1
    assert bounding.count("CAP_CHOWN") == 1
    assert "CAP_NET_RAW" not in bounding
    assert len(bounding) == 14


def test_with_dropped_capabilities_also_clears_ambient_and_inheritable() -> None:
    spec = make()
    spec["process"]["capabilities"]["ambient"] = ["CAP_KILL"]
    oci.apply(spec, oci.with_dropped_capabilities(["kill"]))
    assert spec["process"]["capabilities"]["ambient"] == []


def test_capability_options_refuse_unknown_names() -> None:
    with pytest.raises(
        InvalidArgument, match=r"with_capabilities: capabilities\[1\] must be a known .*'CAP_FLY'"
    ):
        oci.with_capabilities(["CAP_KILL", "CAP_FLY"])


def test_with_rlimit_replaces_the_same_kind() -> None:
    spec = make(oci.with_rlimit("nofile", 4096, 8192), oci.with_rlimit("RLIMIT_NPROC", 100))
    assert spec["process"]["rlimits"] == [
        {"type": "RLIMIT_NOFILE", "hard": 8192, "soft": 4096},
        {"type": "RLIMIT_NPROC", "hard": 100, "soft": 100},
    ]


def test_with_rlimit_refuses_unknown_kinds_and_soft_above_hard() -> None:
    with pytest.raises(InvalidArgument, match=r"with_rlimit: kind must be a known limit.*'FILES'"):
        oci.with_rlimit("FILES", 1)
    with pytest.raises(
        InvalidArgument, match=r"with_rlimit: soft must be at most hard \(1\), got 2"
    ):
        oci.with_rlimit("nofile", 2, 1)


def test_with_host_namespace_removes_the_private_one() -> None:
    spec = make(oci.with_host_namespace("network"))
    assert "network" not in [n["type"] for n in spec["linux"]["namespaces"]]


def test_with_host_namespace_refuses_mount_and_unknown_kinds() -> None:
    with pytest.raises(InvalidArgument, match=r"with_host_namespace: kind must be .* got 'mount'"):
        oci.with_host_namespace("mount")
    with pytest.raises(InvalidArgument, match=r"with_host_namespace: kind must be one of .*'net'"):
        oci.with_host_namespace("net")


def test_with_cgroups_path_and_annotations() -> None:
    spec = make(
        oci.with_cgroups_path("/lcd/c1"),
        oci.with_annotations({"a": "1"}),
        oci.with_annotations({"b": "2", "a": "3"}),
    )
    assert spec["linux"]["cgroupsPath"] == "/lcd/c1"
    assert spec["annotations"] == {"a": "3", "b": "2"}
    with pytest.raises(InvalidArgument, match=r"with_annotations: annotations\['a'\] .*got 1"):
        oci.with_annotations({"a": 1})  # type: ignore[dict-item]
    with pytest.raises(InvalidArgument, match=r"with_cgroups_path: path must be a non-empty"):
        oci.with_cgroups_path("")


def test_options_on_a_spec_with_a_broken_section_name_it() -> None:
    spec = make()
    spec["process"] = ["not", "an", "object"]
    with pytest.raises(InvalidArgument, match=r"spec.process must be an object"):
        oci.apply(spec, oci.with_cwd("/"))


# --- validation -----------------------------------------------------------------


def set_path(spec: dict[str, Any], path: str, value: Any) -> None:
    """Set (or, with value DELETE, remove) a dotted path; ``[n]`` indexes lists."""
    keys = [
        int(k) if k.isdigit() else k for k in path.replace("[", ".").replace("]", "").split(".")
    ]
    node: Any = spec
    for key in keys[:-1]:
        node = node[key]
    if value is DELETE:
        del node[keys[-1]]
    else:
        node[keys[-1]] = value


DELETE = object()

INVALID = [
    ("process.args", [], "spec.process.args must be a non-empty list of strings"),
    ("process.args", DELETE, "spec.process.args is required"),
    ("process.args", ["sh", 1], "spec.process.args must be a non-empty list of strings"),
    ("process.cwd", "tmp", "spec.process.cwd must be an absolute path, got 'tmp'"),
    ("process.cwd", DELETE, "spec.process.cwd is required"),
    ("process.env", ["PATH"], r"spec.process.env\[0\] must be a 'KEY=value' string"),
    ("process.env", "A=1", "spec.process.env must be a list"),
    ("process.terminal", "yes", "spec.process.terminal must be a boolean"),
    (
        "process.user.uid",
        -1,
        "spec.process.user.uid must be an integer between 0 and 4294967295, got -1",
    ),
    ("process.user.gid", 2**32, "spec.process.user.gid must be an integer between 0 and"),
    ("process.user.additionalGids", [1, "2"], r"spec.process.user.additionalGids\[1\]"),
    ("process.capabilities.bounding[0]", "CHOWN", r"capabilities.bounding\[0\] must be a known"),
    ("process.capabilities.ambient", ["CAP_NOPE"], r"spec.process.capabilities.ambient\[0\]"),
    ("process.rlimits[0].type", "NOFILE", r"spec.process.rlimits\[0\].type must be a known"),
    ("process.rlimits[0].soft", 2048, r"spec.process.rlimits\[0\].soft must be at most hard"),
    ("process.rlimits[0].hard", -1, r"spec.process.rlimits\[0\].hard must be an integer"),
    ("process.rlimits[0].soft", DELETE, r"spec.process.rlimits\[0\].soft is required"),
    (
        "process.rlimits",
        [{"type": "RLIMIT_CORE", "soft": 0, "hard": 0}] * 2,
        r"spec.process.rlimits\[1\].type must be unique",
    ),
    ("process.oomScoreAdj", 1001, "spec.process.oomScoreAdj must be an integer between -1000"),
    ("process", DELETE, "spec.process is required"),
    ("process", "sh", "spec.process must be an object"),
    ("root.path", "rootfs", "spec.root.path must be an absolute path, got 'rootfs'"),
    ("root", DELETE, "spec.root is required"),
    ("root.readonly", "no", "spec.root.readonly must be a boolean"),
    ("ociVersion", DELETE, "spec.ociVersion is required"),
    ("ociVersion", 1.0, "spec.ociVersion must be a string"),
    ("hostname", "h" * 65, "spec.hostname must be a string of at most 64 characters"),
    ("mounts[0].destination", "proc", r"spec.mounts\[0\].destination must be an absolute path"),
    ("mounts[0].destination", DELETE, r"spec.mounts\[0\].destination is required"),
    ("mounts[0].options", "ro", r"spec.mounts\[0\].options must be a list"),
    ("mounts[1].type", 7, r"spec.mounts\[1\].type must be a string"),
    ("annotations", {"a": 1}, r"spec.annotations\['a'\] must be a string"),
    ("linux.namespaces[0].type", "process", r"spec.linux.namespaces\[0\].type must be one of"),
    ("linux.namespaces[0].path", "ns", r"spec.linux.namespaces\[0\].path must be an absolute"),
    ("linux.namespaces[1]", {"type": "pid"}, r"spec.linux.namespaces\[1\].type must be unique"),
    ("linux.namespaces", [{"type": "pid"}], "spec.linux.namespaces must include a 'mount'"),
    ("linux", DELETE, "spec.linux.namespaces must include a 'mount'"),
    ("linux.cgroupsPath", "", "spec.linux.cgroupsPath must be a non-empty string"),
    ("linux.maskedPaths", [1], r"spec.linux.maskedPaths\[0\] must be a string"),
    ("linux.uidMappings", [{"containerID": 0, "hostID": 1000}], r"uidMappings\[0\].size is"),
    (
        "linux.uidMappings",
        [{"containerID": 0, "hostID": 1000, "size": 1}],
        "spec.linux.uidMappings must be empty without a user namespace",
    ),
    ("linux.resources.memory", {"limit": 0}, "spec.linux.resources.memory.limit must be a posi"),
    ("linux.resources.memory", {"limit": "1g"}, "spec.linux.resources.memory.limit must be"),
    (
        "linux.resources.memory",
        {"limit": 200, "swap": 100},
        r"spec.linux.resources.memory.swap must be at least memory.limit \(200\)",
    ),
    (
        "linux.resources.memory",
        {"swap": 100},
        "spec.linux.resources.memory.swap must be -1 without a memory.limit",
    ),
    ("linux.resources.memory", {"swappiness": 101}, "memory.swappiness must be an integer"),
    ("linux.resources.cpu", {"shares": 1}, "spec.linux.resources.cpu.shares must be an integer"),
    ("linux.resources.cpu", {"quota": 999}, "spec.linux.resources.cpu.quota must be -1"),
    ("linux.resources.cpu", {"period": 10**7}, "spec.linux.resources.cpu.period must be"),
    ("linux.resources.cpu", {"cpus": "0-1;3"}, "spec.linux.resources.cpu.cpus must be a cpuset"),
    ("linux.resources.cpu", {"mems": "3-1"}, "spec.linux.resources.cpu.mems must be a cpuset"),
    ("linux.resources.pids", {}, "spec.linux.resources.pids.limit is required"),
    ("linux.resources.pids", {"limit": -2}, "spec.linux.resources.pids.limit must be an integer"),
    ("linux.resources.blockIO", {"weight": 5}, "resources.blockIO.weight must be an integer"),
    ("linux.resources.blockIO", {"leafWeight": 1001}, "resources.blockIO.leafWeight must be"),
    ("linux.resources.devices[0].allow", DELETE, r"devices\[0\].allow is required"),
    ("linux.resources.devices[0].access", "rwx", r"devices\[0\].access must be letters from"),
    ("linux.resources.devices[1].type", "u", r"devices\[1\].type must be 'a', 'b' or 'c'"),
    ("linux.resources.devices[1].major", "1", r"devices\[1\].major must be an integer"),
    ("linux.resources", [], "spec.linux.resources must be an object"),
    # containerd 2.x reads these with Go's types before runc does: a wrong one failed late.
    ("linux.sysctl", 2**63, "spec.linux.sysctl must be an object"),
    ("linux.sysctl", ["net.ipv4.ip_forward=1"], "spec.linux.sysctl must be an object"),
    ("linux.sysctl", {"net.ipv4.ip_forward": 1}, r"spec.linux.sysctl\['net.ipv4.ip_forward'\]"),
    ("linux.sysctl", {"": "1"}, "spec.linux.sysctl key must be a non-empty string"),
    ("linux.rootfsPropagation", True, "spec.linux.rootfsPropagation must be a string"),
    ("linux.mountLabel", 1, "spec.linux.mountLabel must be a string"),
    ("domainname", 5, "spec.domainname must be a string of at most 64"),
    ("process.consoleSize", [80, 24], "spec.process.consoleSize must be an object"),
    ("process.consoleSize", {"height": 24}, "spec.process.consoleSize.width is required"),
    ("process.consoleSize", {"height": -1, "width": 80}, "consoleSize.height must be an integer"),
    ("process.apparmorProfile", None, "spec.process.apparmorProfile must be a string"),
    ("process.selinuxLabel", 0, "spec.process.selinuxLabel must be a string"),
    ("process.user.username", 0, "spec.process.user.username must be a string"),
    ("linux.resources.unified", {"memory.max": 1}, r"resources.unified\['memory.max'\] must be"),
    ("linux.resources.unified", "memory.max=1", "spec.linux.resources.unified must be an object"),
    ("linux.resources.hugepageLimits", {}, "spec.linux.resources.hugepageLimits must be a list"),
    (
        "linux.resources.hugepageLimits",
        [{"pageSize": "2MB", "limit": -1}],
        r"hugepageLimits\[0\].limit must be an integer",
    ),
    ("linux.resources.hugepageLimits", [{"limit": 1}], r"hugepageLimits\[0\].pageSize is req"),
    ("linux.resources.network", [], "spec.linux.resources.network must be an object"),
    ("linux.resources.network", {"classID": 2**32}, "network.classID must be an integer"),
    (
        "linux.resources.network",
        {"priorities": [{"name": "eth0", "priority": "1"}]},
        r"network.priorities\[0\].priority must be an integer",
    ),
]


def test_well_typed_sysctls_and_other_go_typed_fields_pass() -> None:
    spec = make()
    spec["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1"}
    spec["linux"]["rootfsPropagation"] = "rprivate"
    spec["linux"]["resources"] = {
        "unified": {"memory.high": "max"},
        "hugepageLimits": [{"pageSize": "2MB", "limit": 0}],
        "network": {"classID": 1, "priorities": [{"name": "lo", "priority": 2}]},
    }
    spec["process"]["consoleSize"] = {"height": 24, "width": 80}
    spec["process"]["apparmorProfile"] = "unconfined"
    spec["domainname"] = "example"
    oci.validate_spec(spec)


@pytest.mark.parametrize(("path", "value", "message"), INVALID, ids=[i[0] for i in INVALID])
def test_validate_spec_names_the_bad_field(path: str, value: Any, message: str) -> None:
    spec = make()
    set_path(spec, path, value)
    with pytest.raises(InvalidArgument, match=message):
        oci.validate_spec(spec)


@pytest.mark.parametrize("spec", [None, [], "{}", 3])
def test_validate_spec_refuses_what_is_not_an_object(spec: Any) -> None:
    with pytest.raises(InvalidArgument, match=r"spec must be an object"):
        oci.validate_spec(spec)


def test_validate_spec_refuses_a_hostname_without_a_private_uts_namespace() -> None:
    spec = make(oci.with_hostname("box"), oci.with_host_namespace("uts"))
    with pytest.raises(
        InvalidArgument, match=r"spec.hostname must be empty without a private uts namespace"
    ):
        oci.validate_spec(spec)


@pytest.mark.parametrize(
    "value",
    [
        {"shares": 0, "quota": 0, "period": 0, "cpus": "", "mems": ""},
        {"quota": -1, "period": 1_000_000, "shares": 262144, "cpus": "0-3,7"},
    ],
)
def test_validate_resources_accepts_docker_style_unset_zeros_and_limits(value: Any) -> None:
    oci.validate_resources({"cpu": value, "blockIO": {"weight": 0}, "pids": {"limit": 0}})


def test_validate_resources_names_fields_from_resources() -> None:
    with pytest.raises(InvalidArgument, match=r"^resources.memory.limit must be"):
        oci.validate_resources({"memory": {"limit": -5}})
    with pytest.raises(InvalidArgument, match=r"^resources must be an object"):
        oci.validate_resources(None)


def test_validate_process_checks_an_exec_process_on_its_own() -> None:
    oci.validate_process({"args": ["/bin/ls"], "cwd": "/", "env": ["A=1"]})
    with pytest.raises(InvalidArgument, match=r"^process.cwd is required"):
        oci.validate_process({"args": ["/bin/ls"]})
    with pytest.raises(InvalidArgument, match=r"^process.args must be a non-empty list"):
        oci.validate_process({"args": [], "cwd": "/"})


def test_error_messages_shorten_huge_values() -> None:
    with pytest.raises(InvalidArgument) as caught:
        oci.validate_process({"args": ["/bin/ls"], "cwd": "x" * 10_000})
    assert len(str(caught.value)) < 200


@pytest.mark.parametrize(
    ("value", "where", "complaint"),
    [
        (b"x", r"spec.x-tool", "a JSON value"),
        ({1: "a"}, r"spec.x-tool key", "a string"),
        (float("nan"), r"spec.x-tool", "a finite number"),
        ([1, float("inf")], r"spec.x-tool\[1\]", "a finite number"),
        ({"deep": object()}, r"spec.x-tool.deep", "a JSON value"),
    ],
)
def test_fields_that_are_not_json_are_refused_naming_where(
    value: Any, where: str, complaint: str
) -> None:
    # Unchecked keys pass through to containerd, so they must at least be JSON.
    spec = make()
    spec["x-tool"] = value
    with pytest.raises(InvalidArgument, match=rf"^{where} must be {complaint}"):
        oci.validate_spec(spec)


def test_exec_processes_and_resources_must_be_json_too() -> None:
    with pytest.raises(InvalidArgument, match=r"^process.ioPriority.class must be a JSON value"):
        oci.validate_process({"args": ["/bin/ls"], "cwd": "/", "ioPriority": {"class": b"x"}})
    with pytest.raises(InvalidArgument, match=r"^resources.rdma.mlx must be a JSON"):
        oci.validate_resources({"rdma": {"mlx": b"1"}})
    # Where the field's type is checked, that check names it first.
    with pytest.raises(InvalidArgument, match=r"^process.apparmorProfile must be a string"):
        oci.validate_process({"args": ["/bin/ls"], "cwd": "/", "apparmorProfile": b"x"})
    with pytest.raises(InvalidArgument, match=r"^resources.unified\['memory.max'\] must be a str"):
        oci.validate_resources({"unified": {"memory.max": b"1"}})


def test_a_circular_spec_is_refused_not_a_recursion_error() -> None:
    spec = make()
    loop: dict[str, Any] = {}
    loop["again"] = loop
    spec["x-tool"] = loop
    with pytest.raises(InvalidArgument, match="is it circular"):
        oci.validate_spec(spec)


# --- round trip -------------------------------------------------------------------


def test_unknown_keys_survive_validation_options_and_json() -> None:
    spec = make()
    spec["x-tool"] = {"keep": [1, 2]}
    spec["process"]["apparmorProfile"] = "docker-default"
    spec["process"]["capabilities"]["x-set"] = ["whatever"]
    spec["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW"}
    spec["linux"]["resources"]["memory"] = {"limit": 1 << 30, "x-future": True}
    spec["mounts"][0]["x-mount"] = "kept"
    before = copy.deepcopy(spec)

    oci.validate_spec(spec)
    assert spec == before
    oci.apply(spec, oci.with_cpus(1), oci.with_env({"A": "1"}), oci.with_memory_limit(1 << 29))
    reloaded = json.loads(json.dumps(spec))
    assert reloaded["x-tool"] == {"keep": [1, 2]}
    assert reloaded["process"]["apparmorProfile"] == "docker-default"
    assert reloaded["process"]["capabilities"]["x-set"] == ["whatever"]
    assert reloaded["linux"]["seccomp"] == {"defaultAction": "SCMP_ACT_ALLOW"}
    assert reloaded["linux"]["resources"]["memory"] == {"limit": 1 << 29, "x-future": True}
    assert reloaded["mounts"][0]["x-mount"] == "kept"
    oci.validate_spec(reloaded)


def test_options_create_the_sections_they_need() -> None:
    spec: dict[str, Any] = {}
    oci.apply(spec, oci.with_memory_limit(1 << 20), oci.with_env(["A=1"]), oci.with_hostname("h"))
    assert spec == {
        "linux": {"resources": {"memory": {"limit": 1 << 20}}},
        "process": {"env": ["A=1"]},
        "hostname": "h",
    }


def test_a_shim_group_is_the_annotation_runcs_shim_reads() -> None:
    spec = oci.default_spec(["/bin/true"], "/r", oci.with_shim_group("batch-1"))
    assert spec["annotations"] == {"io.containerd.runc.v2.group": "batch-1"}
    with pytest.raises(InvalidArgument, match=r"with_shim_group: group '\.\./x'"):
        oci.with_shim_group("../x")
