"""The specs the builders make against the OCI runtime-spec JSON schema, as Debian ships it.

The schema is the runtime-spec project's own statement of the format, so it
checks our builders independently of our own validation; and our validation
must refuse at least what the schema refuses, for the fields it checks.
"""

from __future__ import annotations

import copy
import json
import re
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from referencing import Registry
from referencing.jsonschema import DRAFT4

from libcontainerd import oci
from libcontainerd.errors import InvalidArgument

SCHEMA_DIR = "usr/share/gocode/src/github.com/opencontainers/runtime-spec/schema"
# Any absolute base will do: the files' $refs are relative to each other.
SCHEMA_BASE = "https://schema.invalid/runtime-spec/"
ROOT = "/srv/rootfs"


class Schema:
    """The runtime-spec config schema, with its ``$ref``s across files resolved."""

    def __init__(self, folder: Path) -> None:
        registry: Registry[Any] = Registry().with_resources(
            (SCHEMA_BASE + path.name, DRAFT4.create_resource(json.loads(path.read_text())))
            for path in folder.glob("*.json")
        )
        assert SCHEMA_BASE + "config-schema.json" in registry
        self._validator = jsonschema.Draft4Validator(
            {"$ref": SCHEMA_BASE + "config-schema.json"}, registry=registry
        )

    def errors(self, spec: Any) -> list[str]:
        return [
            f"{'.'.join(map(str, error.absolute_path))}: {error.message}"
            for error in self._validator.iter_errors(spec)
        ]

    def __repr__(self) -> str:  # hypothesis prints the fixture on failure
        return "<OCI runtime-spec config schema>"


@pytest.fixture(scope="module")
def schema() -> Schema:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
    try:
        import debian_fetch
    finally:
        sys.path.pop(0)
    return Schema(debian_fetch.extract("golang-github-opencontainers-specs-dev") / SCHEMA_DIR)


def our_error(spec: Any) -> str | None:
    try:
        oci.validate_spec(spec)
    except InvalidArgument as error:
        return str(error)
    return None


# --- strategies: every builder, with arguments it accepts ------------------------

names = st.text(
    st.sampled_from("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-."),
    min_size=1,
    max_size=12,
)
texts = st.text(max_size=20).filter(lambda text: "\0" not in text)
abs_paths = st.lists(names, min_size=1, max_size=3).map(lambda parts: "/" + "/".join(parts))
uint32 = st.integers(0, 2**32 - 1)
cap_names = st.sampled_from(sorted(oci.KNOWN_CAPABILITIES)) | st.sampled_from(
    sorted(oci.KNOWN_CAPABILITIES)
).map(lambda name: name.removeprefix("CAP_").lower())
mem_bytes = st.integers(1, 2**40) | st.just(-1)


@st.composite
def cpusets(draw: st.DrawFn) -> str:
    parts = []
    for start in draw(st.lists(st.integers(0, 63), min_size=1, max_size=4)):
        length = draw(st.integers(0, 4))
        parts.append(str(start) if length == 0 else f"{start}-{start + length}")
    return ",".join(parts)


env_entries = st.lists(
    st.builds(lambda k, v: f"{k}={v}", names.filter(lambda n: "=" not in n), texts), max_size=4
)
mounts = st.fixed_dictionaries(
    {"destination": abs_paths},
    optional={
        "type": st.sampled_from(["tmpfs", "bind", "proc"]),
        "source": texts,
        "options": st.lists(st.sampled_from(["ro", "rw", "nosuid", "size=1m"]), max_size=3),
        "x-extra": texts,
    },
)
device_rules = st.fixed_dictionaries(
    {"allow": st.booleans()},
    optional={
        "type": st.sampled_from("abc"),
        "major": st.integers(-1, 300),
        "minor": st.integers(-1, 300),
        "access": st.sampled_from(["", "r", "rw", "rwm", "m"]),
    },
)


def swap_at_least_limit(memory: dict[str, Any]) -> dict[str, Any]:
    """with_resources refuses a swap below the limit in its own argument."""
    if memory.get("swap", -1) > 0 and memory.get("limit", -1) > 0:
        memory["swap"] = max(memory["swap"], memory["limit"])
    return memory


resource_dicts = st.fixed_dictionaries(
    {},
    optional={
        "memory": st.fixed_dictionaries(
            {},
            optional={
                "limit": mem_bytes,
                "reservation": mem_bytes,
                "swap": mem_bytes,
                "swappiness": st.integers(0, 100),
                "disableOOMKiller": st.booleans(),
            },
        ).map(swap_at_least_limit),
        "cpu": st.fixed_dictionaries(
            {},
            optional={
                "shares": st.integers(2, 262144),
                "quota": st.integers(1000, 10**9) | st.just(-1),
                "period": st.integers(1000, 1_000_000),
                "cpus": cpusets(),
                "mems": cpusets(),
            },
        ),
        "pids": st.fixed_dictionaries({"limit": st.integers(-1, 10**6)}),
        "blockIO": st.fixed_dictionaries({}, optional={"weight": st.integers(10, 1000)}),
        "devices": st.lists(device_rules, max_size=3),
    },
)

options: st.SearchStrategy[oci.SpecOption] = st.one_of(
    st.builds(
        oci.with_args, st.lists(texts, max_size=3).flatmap(lambda rest: st.just(["/bin/sh", *rest]))
    ),
    st.builds(
        oci.with_env, env_entries | st.dictionaries(names, texts, max_size=3), replace=st.booleans()
    ),
    st.builds(oci.with_cwd, abs_paths),
    st.builds(oci.with_user, uint32, st.none() | uint32, st.lists(uint32, max_size=3)),
    st.builds(oci.with_hostname, names.filter(lambda n: len(n) <= 64)),
    st.builds(oci.with_terminal, st.booleans()),
    st.builds(oci.with_no_new_privileges, st.booleans()),
    st.builds(oci.with_memory_limit, mem_bytes),
    st.builds(
        oci.with_cpu_quota, st.integers(1000, 10**7) | st.just(-1), st.integers(1000, 1_000_000)
    ),
    st.builds(oci.with_cpus, st.floats(0.01, 512), st.integers(100_000, 1_000_000)),
    st.builds(oci.with_cpu_shares, st.integers(2, 262144)),
    st.builds(oci.with_cpuset, cpusets(), st.none() | cpusets()),
    st.builds(oci.with_pids_limit, st.integers(1, 10**6) | st.just(-1)),
    st.builds(oci.with_blkio_weight, st.integers(10, 1000)),
    st.builds(oci.with_mounts, st.lists(mounts, max_size=3)),
    st.builds(oci.with_bind_mount, abs_paths, abs_paths, st.booleans()),
    st.builds(oci.with_readonly_rootfs, st.booleans()),
    st.builds(oci.with_capabilities, st.lists(cap_names, max_size=5)),
    st.builds(oci.with_added_capabilities, st.lists(cap_names, max_size=5)),
    st.builds(oci.with_dropped_capabilities, st.lists(cap_names, max_size=5)),
    st.builds(
        oci.with_rlimit,
        st.sampled_from(sorted(oci.RLIMIT_TYPES)),
        st.integers(0, 2**20),
    ),
    st.builds(oci.with_host_namespace, st.sampled_from(["pid", "network", "ipc", "uts", "cgroup"])),
    st.builds(oci.with_cgroups_path, abs_paths),
    st.builds(oci.with_annotations, st.dictionaries(names, texts, max_size=3)),
    st.builds(oci.with_resources, resource_dicts),
)

# What runc refuses across fields, which a JSON schema cannot say; any
# composition may produce these, and only these may make us disagree.
CROSS_FIELD = re.compile(
    r"without a private uts namespace|must be at least memory\.limit|without a memory\.limit"
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(composition=st.lists(options, max_size=10))
def test_every_built_spec_matches_the_schema_and_our_validation(
    schema: Schema, composition: list[oci.SpecOption]
) -> None:
    spec = oci.default_spec(["/bin/sh"], ROOT, *composition)
    # The spec must also survive the trip through JSON that it takes to containerd.
    spec = json.loads(json.dumps(spec))
    assert schema.errors(spec) == []
    error = our_error(spec)
    event("validate_spec refuses across fields" if error else "validate_spec accepts")
    assert error is None or CROSS_FIELD.search(error), error


# --- corruptions: whatever the schema refuses, we refuse too ----------------------

# (path in the default spec, wrong values): each a field that validate_spec checks.
CORRUPTIONS: list[tuple[str, list[Any]]] = [
    ("ociVersion", [1, None, ["1.0"]]),
    ("process.args", ["sh", [1], {"0": "sh"}]),
    ("process.cwd", [1, None]),
    ("process.env", ["PATH=/bin", [1], {"A": "1"}]),
    ("process.terminal", ["true", 1, None]),
    ("process.user", ["root", [0]]),
    ("process.user.uid", [-1, 2**32, "0", 1.5, True]),
    ("process.user.gid", [-1, 2**32, None]),
    ("process.user.additionalGids", [[-1], ["1"], 5]),
    ("process.capabilities", [["CAP_KILL"], "all"]),
    ("process.capabilities.bounding", ["CAP_KILL", [1]]),
    (
        "process.rlimits",
        [{}, [{"type": "RLIMIT_NOFILE"}], [{"type": "nofile", "soft": 1, "hard": 1}]],
    ),
    ("process.rlimits.0", ["RLIMIT_NOFILE", {"type": "RLIMIT_NOFILE", "soft": 1}]),
    ("process.rlimits.0.soft", [-1, 2**64, "1"]),
    ("process.noNewPrivileges", ["no", 0]),
    ("process.oomScoreAdj", ["5", 1.5]),
    ("root", [None, {}, "/x"]),
    ("root.readonly", ["yes", 1]),
    ("hostname", [1, None]),
    ("mounts", [{}, [{"type": "tmpfs"}], [1]]),
    ("mounts.0", ["/proc", {"destination": 1}]),
    ("mounts.0.options", ["ro", [1]]),
    ("mounts.0.source", [1]),
    ("annotations", [{"a": 1}, ["a"], "a=b"]),
    ("linux", [[], "linux"]),
    ("linux.namespaces", [{}, [{"type": "time"}], [{}], [{"type": "mount", "path": 1}]]),
    ("linux.cgroupsPath", [1, None]),
    ("linux.maskedPaths", ["/proc", [1]]),
    ("linux.uidMappings", [[{"containerID": 0}], [{"containerID": -1, "hostID": 0, "size": 1}]]),
    ("linux.resources", [[], "x"]),
    ("linux.resources.devices", [{}, [{}], [{"allow": "yes"}], [{"allow": True, "major": "1"}]]),
    ("linux.resources.devices.1", [{"type": "c"}, {"allow": True, "access": 7}]),
    ("linux.resources.memory", [{"limit": "1g"}, {"swappiness": -1}, {"limit": 2**63}]),
    ("linux.resources.cpu", [{"shares": -1}, {"quota": "x"}, {"period": -5}, {"cpus": 0}]),
    ("linux.resources.pids", [{}, {"limit": "5"}, {"limit": 2**63}]),
    ("linux.resources.blockIO", [{"weight": 70000}, {"weight": -1}, {"leafWeight": "1"}]),
]


def corrupted(path: str, value: Any) -> dict[str, Any]:
    spec = oci.default_spec(["/bin/sh"], ROOT)
    node: Any = spec
    keys = [int(key) if key.isdigit() else key for key in path.split(".")]
    for key in keys[:-1]:
        node = node[key]
    node[keys[-1]] = copy.deepcopy(value)
    return spec


@pytest.mark.parametrize(
    ("path", "value"),
    [(path, value) for path, values in CORRUPTIONS for value in values],
    ids=lambda item: str(item)[:30],
)
def test_a_corrupted_spec_fails_the_schema_and_our_validation(
    schema: Schema, path: str, value: Any
) -> None:
    spec = corrupted(path, value)
    assert schema.errors(spec), f"the schema accepts {path} = {value!r}"
    assert our_error(spec) is not None, f"validate_spec accepts {path} = {value!r}"


@settings(max_examples=300, deadline=None)
@given(
    target=st.sampled_from([path for path, _ in CORRUPTIONS]),
    value=st.recursive(
        st.none()
        | st.booleans()
        | st.integers(-(2**65), 2**65)
        | st.floats()
        | st.text(max_size=5),
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
        ),
        max_leaves=6,
    ),
)
def test_we_refuse_whatever_the_schema_refuses_at_a_checked_field(
    schema: Schema, target: str, value: Any
) -> None:
    spec = corrupted(target, value)
    if schema.errors(spec):
        assert our_error(spec) is not None, f"validate_spec accepts {target} = {value!r}"


def test_the_schema_check_can_fail(schema: Schema) -> None:
    """Guards against a schema that resolves to nothing and accepts everything."""
    assert schema.errors({}) != []
    assert schema.errors({"ociVersion": "1", "process": {"cwd": "/", "user": {"uid": -1}}})
    assert schema.errors({"ociVersion": "1", "linux": {"namespaces": [{"type": "x"}]}})
