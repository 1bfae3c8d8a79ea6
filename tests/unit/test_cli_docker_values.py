"""What lcd's Docker-level options parse to, and how cp resolves a container's paths.

Pure logic (the path tests use temporary folders, no daemon): volumes,
mounts, labels, env files, host limits, cp's arguments, log tails, and that
no link in a container's root leads out of it.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import click
import pytest

from libcontainerd import oci
from libcontainerd._labels import check_labels
from libcontainerd.cli._container_options import ContainerRequest, check_against_host
from libcontainerd.cli._copy import CopyEnd, parse_copy_end
from libcontainerd.cli._copy_files import CopyReport, copy_entry, open_in_root
from libcontainerd.cli._inspect import tail_offset
from libcontainerd.cli._mounts import MountRequest, parse_mount, parse_volume
from libcontainerd.cli._values import parse_env_file, parse_labels
from libcontainerd.errors import InvalidArgument

# --- -v and --mount ------------------------------------------------------------------


def test_a_volume_is_a_bind_mount_made_if_missing() -> None:
    assert parse_volume("/srv/data:/data") == MountRequest(
        "bind", "/data", source="/srv/data", create_source=True
    )
    assert parse_volume("/a/../b:/c/:ro").readonly
    assert parse_volume("/a/../b:/c/:ro").source == "/b"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("data:/d", "named volumes are not supported"),
        ("/d", "anonymous volumes are not supported"),
        ("/a:/b:rx", "the mode must be ro or rw"),
        ("/a:/b:ro,rw", "the mode must be ro or rw"),
        ("/a:b", "must be absolute"),
        ("/a:/", "cannot mount over the container's root"),
        ("/a:/b:ro:x", "must look like HOST-PATH:CONTAINER-PATH"),
    ],
)
def test_a_bad_volume_is_refused(text: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        parse_volume(text)


def test_mounts_take_dockers_keys() -> None:
    assert parse_mount("type=bind,src=/a,dst=/b,readonly") == MountRequest(
        "bind", "/b", source="/a", readonly=True
    )
    assert parse_mount("type=bind,source=/a,target=/b,ro=false").readonly is False
    assert parse_mount("type=tmpfs,destination=/t,tmpfs-size=64m,tmpfs-mode=1770") == (
        MountRequest("tmpfs", "/t", size=64 << 20, mode=0o1770)
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("target=/d", "type 'volume' is not supported"),
        ("type=npipe,target=/d", "type 'npipe' is not supported"),
        ("type=bind,source=/a", "target is required"),
        ("type=bind,target=/b", "needs an absolute source"),
        ("type=bind,source=rel,target=/b", "needs an absolute source"),
        ("type=bind,source=/a,target=/b,tmpfs-size=1m", "are for tmpfs"),
        ("type=tmpfs,source=/a,target=/t", "takes no source"),
        ("type=tmpfs,target=/t,tmpfs-mode=888", "not an octal mode"),
        ("type=tmpfs,target=/t,tmpfs-size=lots", "is not a size"),
        ("type=tmpfs,target=/t,colour=blue", "unknown field 'colour'"),
        ("type=tmpfs,target=/t,target=/u", "'target' is given twice"),
        ("type=tmpfs,target=/t,dst=/u", "'target' and 'dst' mean the same"),
        ("type=bind,source=/a,target=/b,readonly=maybe", "takes true or false"),
        ("type=tmpfs,,target=/t", "empty field"),
    ],
)
def test_a_bad_mount_is_refused(text: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        parse_mount(text)


def test_a_mount_becomes_an_oci_mount(tmp_path: Path) -> None:
    tmpfs = MountRequest("tmpfs", "/t", readonly=True, size=1024, mode=0o700)
    bind = MountRequest("bind", "/in", source=str(tmp_path), readonly=True)
    spec = oci.apply({}, tmpfs.spec_option(), bind.spec_option())
    assert spec["mounts"] == [
        {
            "destination": "/t",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "nodev", "mode=700", "ro", "size=1024"],
        },
        {"destination": "/in", "type": "bind", "source": str(tmp_path), "options": ["rbind", "ro"]},
    ]


def test_a_missing_bind_source_is_refused_for_mount_and_made_for_volume(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    with pytest.raises(InvalidArgument, match="bind source path does not exist"):
        MountRequest("bind", "/in", source=str(missing)).spec_option()
    MountRequest("bind", "/in", source=str(missing), create_source=True).spec_option()
    assert missing.is_dir()


# --- labels, env files, capabilities, host limits -------------------------------------


def test_labels_split_at_the_first_equals_sign_and_the_last_one_wins() -> None:
    assert parse_labels(["a=b", "c=d=e", "a=f"]) == {"a": "f", "c": "d=e"}
    for bad in ("=v", "bare", "k="):
        with pytest.raises(InvalidArgument, match="must look like KEY=VALUE"):
            parse_labels([bad])


def test_the_library_refuses_labels_containerd_would_drop_or_refuse() -> None:
    assert check_labels({"a": "b"}) == {"a": "b"}
    assert check_labels({"a": ""}, removals=True) == {"a": ""}
    for bad, message in (
        ({"a": ""}, "empty value"),
        ({"": "b"}, "must not be empty"),
        ({"a": "x" * 4096}, "exceed 4096 bytes"),
        ({"a": 1}, "must be strings"),
        (["a"], "must be a mapping"),
    ):
        with pytest.raises(InvalidArgument, match=message):
            check_labels(bad)


def test_an_env_file_is_read_as_docker_reads_it() -> None:
    text = '# a comment\n\n  A=1\nB= spaced \nC\nD="quoted"\n'
    assert parse_env_file(text, "f") == ["A=1", "B= spaced ", "C", 'D="quoted"']
    with pytest.raises(InvalidArgument, match="f, line 2: 'A B' is not a variable name"):
        parse_env_file("X=1\nA B=2\n", "f")


def _capabilities(request: ContainerRequest) -> list[str]:
    spec = oci.default_spec(["true"], "/", *request.capability_options())
    return sorted(spec["process"]["capabilities"]["bounding"])


def test_cap_drop_all_then_cap_add_keeps_only_the_added() -> None:
    request = ContainerRequest(args=(), cap_drop=("ALL",), cap_add=("net_raw",))
    assert _capabilities(request) == ["CAP_NET_RAW"]
    dropped = _capabilities(ContainerRequest(args=(), cap_drop=("CHOWN",)))
    assert "CAP_CHOWN" not in dropped
    assert "CAP_KILL" in dropped
    everything = _capabilities(ContainerRequest(args=(), cap_add=("all",)))
    assert everything == sorted(oci.KNOWN_CAPABILITIES)
    with pytest.raises(InvalidArgument, match="--cap-add: "):
        ContainerRequest(args=(), cap_add=("NOPE",)).capability_options()


def test_limits_the_host_cannot_give_are_refused_as_docker_does() -> None:
    check_against_host(2.0, 6 << 20, host_cpus=2)
    check_against_host(-1, None, host_cpus=2)  # not positive: with_cpus says what it takes
    with pytest.raises(InvalidArgument) as refused:
        check_against_host(1000, None, host_cpus=2)
    assert str(refused.value) == (
        "--cpus: range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs available"
    )
    with pytest.raises(InvalidArgument, match="range of CPUs"):
        check_against_host(0.001, None, host_cpus=2)
    with pytest.raises(InvalidArgument, match="minimum memory limit allowed is 6MB"):
        check_against_host(None, (6 << 20) - 1, host_cpus=2)


# --- cp's arguments, and paths in a container's root ----------------------------------


def test_a_copy_end_is_a_containers_path_or_a_host_path() -> None:
    assert parse_copy_end("web:/etc/hosts") == CopyEnd("/etc/hosts", "web")
    assert parse_copy_end("web:rel") == CopyEnd("rel", "web")
    assert parse_copy_end("/a:b") == CopyEnd("/a:b")
    assert parse_copy_end("./a:b") == CopyEnd("./a:b")
    assert parse_copy_end("plain") == CopyEnd("plain")
    with pytest.raises(click.BadParameter, match="after the colon"):
        parse_copy_end("web:")
    with pytest.raises(InvalidArgument, match="not a valid identifier"):
        parse_copy_end("we b:/x")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A container root with links that try to leave it, and a host file they aim at."""
    (tmp_path / "host-secret").write_text("host")
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "secret").write_text("container")
    (root / "abs").symlink_to("/etc")  # absolute: the container's /etc
    (root / "up").symlink_to("../../../../..")  # climbs: stops at the root
    (root / "host").symlink_to(tmp_path / "host-secret")  # a host path: inside, it is missing
    (root / "loop").symlink_to("loop")
    return root


def _read(root: Path, path: str) -> str:
    fd = os.open(root, os.O_PATH | os.O_DIRECTORY)
    try:
        found = open_in_root(fd, path)
    finally:
        os.close(fd)
    try:
        return Path(f"/proc/self/fd/{found}").read_text()
    finally:
        os.close(found)


@pytest.mark.parametrize(
    "path", ["/etc/secret", "abs/secret", "/up/etc/secret", "../../etc/secret", "up/up/abs/secret"]
)
def test_every_way_up_stays_in_the_root(root: Path, path: str) -> None:
    assert _read(root, path) == "container"


def test_a_link_to_a_host_path_is_missing_inside_and_loops_end(root: Path) -> None:
    with pytest.raises(FileNotFoundError):
        _read(root, "/host")
    with pytest.raises(OSError, match="Too many levels of symbolic links"):
        _read(root, "/loop")
    with pytest.raises(NotADirectoryError):
        _read(root, "/etc/secret/x")


def test_copy_entry_copies_links_as_links_and_keeps_modes(tmp_path: Path) -> None:
    source = tmp_path / "src"
    (source / "sub").mkdir(parents=True)
    (source / "sub" / "tool").write_text("#!/bin/sh\n")
    (source / "sub" / "tool").chmod(0o751)
    (source / "out").symlink_to("/etc/passwd")
    os.mkfifo(source / "fifo")
    target = tmp_path / "dst"
    target.mkdir()
    report = CopyReport()
    src_fd = os.open(tmp_path, os.O_PATH | os.O_DIRECTORY)
    dst_fd = os.open(target, os.O_PATH | os.O_DIRECTORY)
    try:
        copy_entry(src_fd, "src", dst_fd, "copy", report)
    finally:
        os.close(src_fd)
        os.close(dst_fd)
    assert (target / "copy" / "sub" / "tool").read_text() == "#!/bin/sh\n"
    assert (target / "copy" / "sub" / "tool").stat().st_mode & 0o777 == 0o751
    assert os.readlink(target / "copy" / "out") == "/etc/passwd"
    assert not (target / "copy" / "fifo").exists()
    assert (report.bytes, report.skipped) == (10, 1)


def test_copy_entry_replaces_a_link_in_the_way_instead_of_writing_through_it(
    tmp_path: Path,
) -> None:
    (tmp_path / "victim").write_text("untouched")
    (tmp_path / "new").write_text("new")
    (tmp_path / "dst").mkdir()
    (tmp_path / "dst" / "new").symlink_to(tmp_path / "victim")
    fd = os.open(tmp_path, os.O_PATH | os.O_DIRECTORY)
    dst = os.open(tmp_path / "dst", os.O_PATH | os.O_DIRECTORY)
    try:
        copy_entry(fd, "new", dst, "new", CopyReport())
    finally:
        os.close(fd)
        os.close(dst)
    assert (tmp_path / "victim").read_text() == "untouched"
    assert not (tmp_path / "dst" / "new").is_symlink()
    assert (tmp_path / "dst" / "new").read_text() == "new"


# --- logs --tail ---------------------------------------------------------------------


@pytest.mark.parametrize("data", [b"", b"a\nb\nc\n", b"a\nb\nc", b"\n\n", b"abc", b"x\n" * 300])
@pytest.mark.parametrize("lines", [0, 1, 2, 3, 5])
def test_tail_offset_finds_the_last_lines(data: bytes, lines: int) -> None:
    for block in (1, 3, 64 * 1024):
        offset = tail_offset(io.BytesIO(data), lines, block)
        kept = data.splitlines(keepends=True)
        expected = b"".join(kept[max(0, len(kept) - lines) :]) if lines else b""
        assert data[offset:] == expected


def test_with_tmpfs_checks_its_arguments_when_called() -> None:
    assert oci.apply({}, oci.with_tmpfs("/t"))["mounts"] == [
        {"destination": "/t", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev"]}
    ]
    with pytest.raises(InvalidArgument, match="with_tmpfs: destination"):
        oci.with_tmpfs("relative")
    with pytest.raises(InvalidArgument, match="with_tmpfs: size"):
        oci.with_tmpfs("/t", 0)
    with pytest.raises(InvalidArgument, match="with_tmpfs: options"):
        oci.with_tmpfs("/t", None, [1])  # type: ignore[list-item]
