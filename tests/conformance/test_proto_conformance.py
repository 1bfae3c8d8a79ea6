"""Our .proto definitions checked against containerd's own.

containerd's definitions come from Debian's -dev packages of containerd 1.6 and
containerd/cgroups (unpacked, not installed, by scripts/debian_fetch.py) and
are compiled with the same protoc that generates our modules. The files 1.6
does not have (the Transfer and Streaming services of containerd 2.x and their
types) come from sid's containerd API package (2.1). Ours are read
from the generated modules themselves, i.e. what the library ships.

For every message and enum we define (nested ones included) the same full
name must exist in containerd's definitions, in the file of the same name;
each field must agree in name, number, type, type_name and label, and none of
containerd's fields may be missing (our messages are complete); enum values
must agree; each service method we define must exist with the same request
and response types and streaming. All differences are reported at once.
"""

from __future__ import annotations

import importlib
import pkgutil
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from google.protobuf import descriptor_pb2 as pb

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))

import gen_proto  # noqa: E402

from ..ci import missing  # noqa: E402

pytestmark = pytest.mark.conformance

CONTAINERD = "golang-github-containerd-containerd-dev"
CGROUPS = "golang-github-containerd-cgroups-dev"
GOGO = "golang-github-gogo-protobuf-dev"
API_2X = "golang-github-containerd-containerd-api-dev"  # in sid: containerd 2.x's protos
API_2X_SUITE = "sid"
GOCODE = Path("usr/share/gocode/src")

FIELD_TYPES = {number: name for name, number in pb.FieldDescriptorProto.Type.items()}
LABELS = {number: name for name, number in pb.FieldDescriptorProto.Label.items()}


# --- reading descriptors -----------------------------------------------------


def generated_modules() -> list[ModuleType]:
    package = importlib.import_module("libcontainerd._api")
    names = sorted(
        info.name
        for info in pkgutil.walk_packages(package.__path__, "libcontainerd._api.")
        if info.name.endswith("_pb2")
    )
    return [importlib.import_module(name) for name in names]


def our_files() -> list[pb.FileDescriptorProto]:
    return [
        pb.FileDescriptorProto.FromString(module.DESCRIPTOR.serialized_pb)
        for module in generated_modules()
    ]


def containerd_files(names: list[str], workdir: Path) -> tuple[list[pb.FileDescriptorProto], str]:
    """Compile containerd's files of these names; return them and a note on what was used."""
    from debian_fetch import extract

    roots = {package: extract(package) for package in (CONTAINERD, CGROUPS, GOGO)}
    includes = [
        roots[CONTAINERD] / GOCODE,
        roots[CGROUPS] / GOCODE,
        # gogoproto/gogo.proto, imported by containerd's files
        roots[GOGO] / GOCODE / "github.com" / "gogo" / "protobuf",
    ]
    present = [n for n in names if any((root / n).is_file() for root in includes[:2])]
    files = _compile(includes, present, workdir / "containerd.pb")
    packages = [CONTAINERD, CGROUPS]
    newer = [n for n in names if n not in present]
    if newer:  # 2.x-only files; 1.6's definitions win where both have one
        roots[API_2X] = extract(API_2X, API_2X_SUITE)
        packages.append(API_2X)
        files = _compile([roots[API_2X] / GOCODE], newer, workdir / "containerd-2.pb") + files
    versions = ", ".join(
        f"{package} {(roots[package] / '.version').read_text().strip()}" for package in packages
    )
    return files, versions


def _compile(includes: list[Path], names: list[str], out: Path) -> list[pb.FileDescriptorProto]:
    available = [n for n in names if any((root / n).is_file() for root in includes)]
    if not available:
        return []
    gen_proto.protoc(
        [
            *(f"-I{root}" for root in includes),
            "--include_imports",
            f"--descriptor_set_out={out}",
            *available,
        ]
    )
    return list(pb.FileDescriptorSet.FromString(out.read_bytes()).file)


# --- comparing ---------------------------------------------------------------


def _walk(
    prefix: str, messages: list[pb.DescriptorProto], enums: list[pb.EnumDescriptorProto]
) -> Iterator[tuple[str, pb.DescriptorProto | pb.EnumDescriptorProto]]:
    for enum in enums:
        yield f"{prefix}.{enum.name}", enum
    for message in messages:
        name = f"{prefix}.{message.name}"
        yield name, message
        yield from _walk(name, list(message.nested_type), list(message.enum_type))


def _index(
    files: list[pb.FileDescriptorProto],
) -> dict[str, tuple[str, pb.DescriptorProto | pb.EnumDescriptorProto | pb.ServiceDescriptorProto]]:
    """Full name (with leading dot, as in type_name) -> (file name, definition)."""
    index: dict[
        str, tuple[str, pb.DescriptorProto | pb.EnumDescriptorProto | pb.ServiceDescriptorProto]
    ] = {}
    for file in files:
        prefix = f".{file.package}" if file.package else ""
        for name, definition in _walk(prefix, list(file.message_type), list(file.enum_type)):
            index[name] = (file.name, definition)
        for service in file.service:
            index[f"{prefix}.{service.name}"] = (file.name, service)
    return index


def _describe(field: pb.FieldDescriptorProto) -> str:
    kind = field.type_name or FIELD_TYPES[field.type].removeprefix("TYPE_").lower()
    label = LABELS[field.label].removeprefix("LABEL_").lower()
    return f"{label} {kind} {field.name} = {field.number}"


def _compare_message(name: str, ours: pb.DescriptorProto, theirs: pb.DescriptorProto) -> list[str]:
    problems: list[str] = []
    our_fields = {f.name: f for f in ours.field}
    their_fields = {f.name: f for f in theirs.field}
    for field_name, field in our_fields.items():
        other = their_fields.get(field_name)
        if other is None:
            problems.append(f"{name}.{field_name}: not in containerd ({_describe(field)})")
            continue
        for attribute in ("number", "type", "type_name", "label", "proto3_optional"):
            if getattr(field, attribute) != getattr(other, attribute):
                problems.append(
                    f"{name}.{field_name}: {attribute} differs: ours `{_describe(field)}`, "
                    f"containerd `{_describe(other)}`"
                )
                break
        our_oneof = ours.oneof_decl[field.oneof_index].name if field.HasField("oneof_index") else ""
        their_oneof = (
            theirs.oneof_decl[other.oneof_index].name if other.HasField("oneof_index") else ""
        )
        if our_oneof != their_oneof:
            problems.append(
                f"{name}.{field_name}: oneof differs: ours {our_oneof!r}, "
                f"containerd {their_oneof!r}"
            )
    for field_name, field in their_fields.items():
        if field_name not in our_fields:
            problems.append(
                f"{name}: field missing from ours (messages must be complete): {_describe(field)}"
            )
    if ours.options.map_entry != theirs.options.map_entry:
        problems.append(f"{name}: map_entry differs")
    return problems


def _compare_enum(
    name: str, ours: pb.EnumDescriptorProto, theirs: pb.EnumDescriptorProto
) -> list[str]:
    our_values = {v.name: v.number for v in ours.value}
    their_values = {v.name: v.number for v in theirs.value}
    problems = []
    for value, number in our_values.items():
        if value not in their_values:
            problems.append(f"{name}.{value}: enum value not in containerd")
        elif their_values[value] != number:
            problems.append(
                f"{name}.{value}: enum number differs: ours {number}, "
                f"containerd {their_values[value]}"
            )
    for value, number in their_values.items():
        if value not in our_values:
            problems.append(f"{name}: enum value missing from ours: {value} = {number}")
    return problems


def _compare_service(
    name: str, ours: pb.ServiceDescriptorProto, theirs: pb.ServiceDescriptorProto
) -> list[str]:
    problems = []
    their_methods = {m.name: m for m in theirs.method}
    for method in ours.method:
        other = their_methods.get(method.name)
        if other is None:
            problems.append(f"{name}.{method.name}: rpc not in containerd")
            continue
        for attribute in ("input_type", "output_type", "client_streaming", "server_streaming"):
            if getattr(method, attribute) != getattr(other, attribute):
                problems.append(
                    f"{name}.{method.name}: {attribute} differs: ours "
                    f"{getattr(method, attribute)!r}, containerd {getattr(other, attribute)!r}"
                )
    return problems


def compare(ours: list[pb.FileDescriptorProto], theirs: list[pb.FileDescriptorProto]) -> list[str]:
    """Every difference between our definitions and containerd's, one line each."""
    problems: list[str] = []
    their_files = {f.name: f for f in theirs}
    for file in ours:
        other = their_files.get(file.name)
        if other is None:
            problems.append(f"{file.name}: no file of this name in containerd's definitions")
        elif other.package != file.package:
            problems.append(
                f"{file.name}: package differs: ours {file.package!r}, containerd {other.package!r}"
            )
    their_index = _index(theirs)
    for name, (file_name, definition) in sorted(_index(ours).items()):
        if name not in their_index:
            problems.append(f"{name[1:]}: not defined by containerd")
            continue
        their_file, their_definition = their_index[name]
        if their_file != file_name:
            problems.append(
                f"{name[1:]}: defined in {file_name}, containerd has it in {their_file}"
            )
        if type(definition) is not type(their_definition):
            problems.append(f"{name[1:]}: is a {type(their_definition).__name__} in containerd")
        elif isinstance(definition, pb.DescriptorProto):
            assert isinstance(their_definition, pb.DescriptorProto)
            problems += _compare_message(name[1:], definition, their_definition)
        elif isinstance(definition, pb.EnumDescriptorProto):
            assert isinstance(their_definition, pb.EnumDescriptorProto)
            problems += _compare_enum(name[1:], definition, their_definition)
        else:
            assert isinstance(their_definition, pb.ServiceDescriptorProto)
            problems += _compare_service(name[1:], definition, their_definition)
    return problems


# --- the tests ---------------------------------------------------------------


@pytest.fixture(scope="module")
def ours() -> list[pb.FileDescriptorProto]:
    files = our_files()
    assert files, "no generated modules found under libcontainerd._api"
    return files


def test_our_protos_match_containerd(
    ours: list[pb.FileDescriptorProto], tmp_path_factory: pytest.TempPathFactory
) -> None:
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        missing("needs Debian's apt-get and dpkg-deb to fetch containerd's .proto files")
    theirs, versions = containerd_files(
        [f.name for f in ours], tmp_path_factory.mktemp("conformance")
    )
    problems = compare(ours, theirs)
    assert not problems, (
        f"{len(problems)} difference(s) between our .proto files and containerd's "
        f"({versions}):\n  " + "\n  ".join(problems)
    )


def _copy(files: list[pb.FileDescriptorProto]) -> list[pb.FileDescriptorProto]:
    return [pb.FileDescriptorProto.FromString(f.SerializeToString()) for f in files]


def _find(files: list[pb.FileDescriptorProto], name: str) -> pb.FileDescriptorProto:
    return next(f for f in files if f.name.endswith(name))


def test_comparator_accepts_identical_definitions(ours: list[pb.FileDescriptorProto]) -> None:
    assert compare(ours, _copy(ours)) == []


def test_comparator_reports_every_kind_of_difference(ours: list[pb.FileDescriptorProto]) -> None:
    """The check must fail for real: break one thing of each kind in a copy."""
    theirs = _copy(ours)
    events = _find(theirs, "api/events/task.proto")
    task_exit = next(m for m in events.message_type if m.name == "TaskExit")
    next(f for f in task_exit.field if f.name == "exit_status").number = 14
    extra = task_exit.field.add()
    extra.CopyFrom(task_exit.field[0])
    extra.name, extra.number = "only_in_containerd", 99

    task_types = _find(theirs, "api/types/task/task.proto")
    next(v for v in task_types.enum_type[0].value if v.name == "PAUSED").number = 40

    tasks = _find(theirs, "services/tasks/v1/tasks.proto")
    wait = next(m for m in tasks.service[0].method if m.name == "Wait")
    wait.output_type = ".google.protobuf.Empty"

    containers = _find(theirs, "services/containers/v1/containers.proto")
    container = next(m for m in containers.message_type if m.name == "Container")
    runtime = next(m for m in container.nested_type if m.name == "Runtime")
    next(f for f in runtime.field if f.name == "name").type = pb.FieldDescriptorProto.TYPE_BYTES

    problems = "\n".join(compare(ours, theirs))
    assert "containerd.events.TaskExit.exit_status: number differs" in problems
    assert "containerd.events.TaskExit: field missing from ours" in problems
    assert "only_in_containerd = 99" in problems
    assert (
        "containerd.v1.types.Status.PAUSED: enum number differs: ours 4, containerd 40" in problems
    )
    assert "containerd.services.tasks.v1.Tasks.Wait: output_type differs" in problems
    assert "containerd.services.containers.v1.Container.Runtime.name: type differs" in problems
    assert len(problems.splitlines()) == 5
