"""The committed protobuf modules: up to date with our .proto files, importable, usable.

The generator runs protoc from a private grpcio-tools environment under
.cache/proto-tools/ (scripts/gen_proto.py creates it on first use, from PyPI).
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest
from google.protobuf import any_pb2, descriptor_pool, message_factory, timestamp_pb2

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))

import gen_proto  # noqa: E402

EXPECTED_MODULES = {
    "libcontainerd._api.cgroups.stats.v1.metrics_pb2",
    "libcontainerd._api.cgroups.v2.stats.metrics_pb2",
    "libcontainerd._api.containerd.api.events.task_pb2",
    "libcontainerd._api.containerd.api.services.containers.v1.containers_pb2",
    "libcontainerd._api.containerd.api.services.content.v1.content_pb2",
    "libcontainerd._api.containerd.api.services.diff.v1.diff_pb2",
    "libcontainerd._api.containerd.api.services.events.v1.events_pb2",
    "libcontainerd._api.containerd.api.services.images.v1.images_pb2",
    "libcontainerd._api.containerd.api.services.leases.v1.leases_pb2",
    "libcontainerd._api.containerd.api.services.snapshots.v1.snapshots_pb2",
    "libcontainerd._api.containerd.api.services.streaming.v1.streaming_pb2",
    "libcontainerd._api.containerd.api.services.tasks.v1.tasks_pb2",
    "libcontainerd._api.containerd.api.services.transfer.v1.transfer_pb2",
    "libcontainerd._api.containerd.api.services.version.v1.version_pb2",
    "libcontainerd._api.containerd.api.types.descriptor_pb2",
    "libcontainerd._api.containerd.api.types.metrics_pb2",
    "libcontainerd._api.containerd.api.types.mount_pb2",
    "libcontainerd._api.containerd.api.types.platform_pb2",
    "libcontainerd._api.containerd.api.types.task.task_pb2",
    "libcontainerd._api.containerd.api.types.transfer.imagestore_pb2",
    "libcontainerd._api.containerd.api.types.transfer.progress_pb2",
    "libcontainerd._api.containerd.api.types.transfer.registry_pb2",
    "libcontainerd._api.containerd.runtime.v2.runc.options.oci_pb2",
}


def _module_names() -> set[str]:
    package = importlib.import_module("libcontainerd._api")
    return {
        info.name
        for info in pkgutil.walk_packages(package.__path__, "libcontainerd._api.")
        if info.name.endswith("_pb2")
    }


def _module_for(proto_name: str) -> str:
    """github.com/containerd/<rest>.proto -> libcontainerd._api.<rest>_pb2"""
    rest = proto_name.removeprefix("github.com/containerd/").removesuffix(".proto")
    return "libcontainerd._api." + rest.replace("/", ".") + "_pb2"


def _import(name: str) -> ModuleType:
    return importlib.import_module(name)


# --- up to date --------------------------------------------------------------


def test_committed_modules_match_a_fresh_generation(tmp_path: Path) -> None:
    gen_proto.generate(tmp_path)
    problems = gen_proto.stale_files(tmp_path)
    assert not problems, (
        "generated modules under src/libcontainerd/_api are out of date with the .proto "
        "files; run `make proto` (or .venv/bin/python scripts/gen_proto.py):\n  "
        + "\n  ".join(problems)
    )


def test_stale_check_names_the_stale_file(tmp_path: Path) -> None:
    fresh = tmp_path / "fresh"
    committed = tmp_path / "committed"
    for root in (fresh, committed):
        (root / "containerd" / "api").mkdir(parents=True)
        (root / "containerd" / "api" / "a_pb2.py").write_text("x = 1\n")
    (committed / "containerd" / "api" / "a_pb2.py").write_text("x = 2\n")
    (fresh / "cgroups").mkdir()
    (fresh / "cgroups" / "b_pb2.py").write_text("")
    (committed / "containerd" / "old_pb2.py").write_text("")
    assert gen_proto.stale_files(fresh, committed) == [
        "missing: cgroups/b_pb2.py",
        "extra (not generated): containerd/old_pb2.py",
        "stale: containerd/api/a_pb2.py",
    ]


# --- importable --------------------------------------------------------------


def test_every_proto_has_its_module_and_every_module_imports() -> None:
    protos = gen_proto.proto_files()
    assert {_module_for(name) for name in protos} == EXPECTED_MODULES
    assert _module_names() == EXPECTED_MODULES
    for name in sorted(EXPECTED_MODULES):
        module = _import(name)
        # Registered under containerd's canonical file name, found at our module path.
        assert module.DESCRIPTOR.name in protos
        assert _module_for(module.DESCRIPTOR.name) == name
        stub = Path(str(module.__file__)).with_suffix(".pyi")
        assert stub.is_file(), f"no typed stub for {name}"


def test_modules_load_on_the_protobuf_floor() -> None:
    """The gencode's protobuf floor (5.28.1, the tool environment's runtime) really loads it."""
    python = gen_proto.tools_python()
    script = textwrap.dedent(
        f"""
        import importlib, sys, types
        from google.protobuf import __version__
        # Load only the generated tree, not the rest of the library.
        package = types.ModuleType("libcontainerd")
        package.__path__ = [{str(REPO / "src" / "libcontainerd")!r}]
        sys.modules["libcontainerd"] = package
        for name in {sorted(EXPECTED_MODULES)!r}:
            importlib.import_module(name)
        from libcontainerd._api.containerd.api.events import task_pb2
        exit = task_pb2.TaskExit(container_id="c1", id="c1", pid=7, exit_status=3)
        assert task_pb2.TaskExit.FromString(exit.SerializeToString()) == exit
        print(__version__)
        """
    )
    result = subprocess.run(
        [str(python), "-I", "-W", "error", "-c", script], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "5.28.1"


# --- usable ------------------------------------------------------------------


def test_task_exit_round_trips_inside_an_envelope() -> None:
    from libcontainerd._api.containerd.api.events import task_pb2 as events
    from libcontainerd._api.containerd.api.services.events.v1 import events_pb2

    exited = timestamp_pb2.Timestamp(seconds=1_700_000_000, nanos=5)
    exit = events.TaskExit(container_id="c1", id="c1", pid=42, exit_status=137, exited_at=exited)
    envelope = events_pb2.Envelope(
        timestamp=exited,
        namespace="default",
        topic="/tasks/exit",
        # containerd writes bare type URLs; Any.Pack() would add a prefix.
        event=any_pb2.Any(type_url="containerd.events.TaskExit", value=exit.SerializeToString()),
    )
    decoded = events_pb2.Envelope.FromString(envelope.SerializeToString())
    assert decoded == envelope
    # Decoding by the bare name through the default pool, as the event stream does.
    descriptor = descriptor_pool.Default().FindMessageTypeByName(decoded.event.type_url)
    payload = message_factory.GetMessageClass(descriptor).FromString(decoded.event.value)
    assert payload == exit
    assert isinstance(payload, events.TaskExit)


def test_wire_bytes_follow_containerd_field_numbers() -> None:
    from libcontainerd._api.containerd.api.services.tasks.v1 import tasks_pb2
    from libcontainerd._api.containerd.api.services.version.v1 import version_pb2

    # field 1 (string) "1.6.20", field 2 (string) "abc"
    raw = b"\x0a\x061.6.20\x12\x03abc"
    assert version_pb2.VersionResponse.FromString(raw) == version_pb2.VersionResponse(
        version="1.6.20", revision="abc"
    )
    # KillRequest: container_id=1, exec_id=2, signal=3 (varint), all=4 (bool)
    kill = tasks_pb2.KillRequest(container_id="c", exec_id="e", signal=9, all=True)
    assert kill.SerializeToString() == b"\x0a\x01c\x12\x01e\x18\x09\x20\x01"


def test_container_with_json_spec_and_runc_options_round_trips() -> None:
    from libcontainerd._api.containerd.api.services.containers.v1 import containers_pb2
    from libcontainerd._api.containerd.runtime.v2.runc.options import oci_pb2

    options = oci_pb2.Options(binary_name="runc", systemd_cgroup=False, io_uid=1000)
    spec = {"ociVersion": "1.0.2", "process": {"args": ["sh"]}}
    container = containers_pb2.Container(
        id="c1",
        labels={"a": "b"},
        runtime=containers_pb2.Container.Runtime(
            name="io.containerd.runc.v2",
            options=any_pb2.Any(
                type_url="containerd.runc.v1.Options", value=options.SerializeToString()
            ),
        ),
        spec=any_pb2.Any(
            type_url="types.containerd.io/opencontainers/runtime-spec/1/Spec",
            value=json.dumps(spec).encode(),
        ),
        snapshotter="overlayfs",
        snapshot_key="c1",
    )
    container.extensions["x"].type_url = "y"
    request = containers_pb2.CreateContainerRequest(container=container)
    decoded = containers_pb2.CreateContainerRequest.FromString(request.SerializeToString())
    assert decoded == request
    assert dict(decoded.container.labels) == {"a": "b"}
    assert json.loads(decoded.container.spec.value) == spec
    assert oci_pb2.Options.FromString(decoded.container.runtime.options.value) == options


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_cgroup_metrics_round_trip_inside_a_metric(version: str) -> None:
    from libcontainerd._api.cgroups.stats.v1 import metrics_pb2 as v1
    from libcontainerd._api.cgroups.v2.stats import metrics_pb2 as v2
    from libcontainerd._api.containerd.api.services.tasks.v1 import tasks_pb2
    from libcontainerd._api.containerd.api.types import metrics_pb2

    stats: v1.Metrics | v2.Metrics
    if version == "v1":
        stats = v1.Metrics(
            pids=v1.PidsStat(current=3, limit=100),
            cpu=v1.CPUStat(usage=v1.CPUUsage(total=10, per_cpu=[4, 6])),
            memory=v1.MemoryStat(cache=1, usage=v1.MemoryEntry(usage=2**40, limit=2**63)),
            blkio=v1.BlkIOStat(io_service_bytes_recursive=[v1.BlkIOEntry(op="Read", value=5)]),
        )
    else:
        stats = v2.Metrics(
            pids=v2.PidsStat(current=3),
            cpu=v2.CPUStat(usage_usec=99),
            memory=v2.MemoryStat(usage=2**33, usage_limit=2**64 - 1),
            io=v2.IOStat(usage=[v2.IOEntry(major=8, rbytes=1)]),
        )
    response = tasks_pb2.MetricsResponse(
        metrics=[
            metrics_pb2.Metric(
                id="c1",
                data=any_pb2.Any(
                    type_url=stats.DESCRIPTOR.full_name, value=stats.SerializeToString()
                ),
            )
        ]
    )
    decoded = tasks_pb2.MetricsResponse.FromString(response.SerializeToString())
    assert decoded.metrics[0].data.type_url == f"io.containerd.cgroups.{version}.Metrics"
    assert type(stats).FromString(decoded.metrics[0].data.value) == stats
