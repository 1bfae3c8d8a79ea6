"""Checkpoint logic without a daemon: finding CRIU, checkpoint directories, runc options, errors."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

from libcontainerd import _typeurl, checkpoint
from libcontainerd._api.containerd.runtime.v2.runc.options import oci_pb2 as runc_pb2
from libcontainerd.errors import (
    AlreadyExists,
    CheckpointUnsupported,
    FailedPrecondition,
    InvalidArgument,
    LibcontainerdError,
)

REPO = Path(__file__).resolve().parents[2]

GOOD = "echo 'Looks good.'"
BAD = "echo 'Error (criu/vdso.c:381): vdso: Unexpected rt vDSO area bounds' >&2; exit 1"


def fake_criu(folder: Path, body: str, name: str = "criu") -> Path:
    """An executable that answers `check` like CRIU, and counts its runs in <name>.runs."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(f"#!/bin/sh\necho run >> '{path}.runs'\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def runs(path: Path) -> int:
    counter = Path(f"{path}.runs")
    return len(counter.read_text().splitlines()) if counter.exists() else 0


@pytest.fixture
def no_criu(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No CRIU anywhere the library looks: no env, nothing at the default path, empty PATH."""
    empty = tmp_path / "empty-path"
    empty.mkdir()
    monkeypatch.delenv(checkpoint.CRIU_ENV, raising=False)
    monkeypatch.setattr(checkpoint, "DEFAULT_CRIU", str(tmp_path / "default" / "bin" / "criu"))
    monkeypatch.setenv("PATH", str(empty))
    return empty


# --- finding CRIU -------------------------------------------------------------------------


async def test_without_any_criu_find_raises_checkpoint_unsupported_naming_the_places(
    no_criu: Path,
) -> None:
    with pytest.raises(CheckpointUnsupported, match="no criu on PATH") as raised:
        await checkpoint.find_criu()
    assert checkpoint.DEFAULT_CRIU in str(raised.value)
    assert await checkpoint.usable_criu() == ""


async def test_a_broken_criu_is_refused_with_what_criu_check_said(
    no_criu: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = fake_criu(tmp_path / "broken", BAD)
    monkeypatch.setenv(checkpoint.CRIU_ENV, str(broken))
    with pytest.raises(CheckpointUnsupported, match="Unexpected rt vDSO area bounds"):
        await checkpoint.find_criu()


async def test_the_environment_comes_before_the_default_location_and_path(
    no_criu: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from_env = fake_criu(tmp_path / "env", GOOD)
    fake_criu(Path(checkpoint.DEFAULT_CRIU).parent, GOOD)
    fake_criu(no_criu, GOOD)
    monkeypatch.setenv(checkpoint.CRIU_ENV, str(from_env))
    assert await checkpoint.find_criu() == str(from_env)


async def test_the_first_criu_that_passes_the_check_wins(
    no_criu: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(checkpoint.CRIU_ENV, str(fake_criu(tmp_path / "env", BAD)))
    default = fake_criu(Path(checkpoint.DEFAULT_CRIU).parent, BAD)
    on_path = fake_criu(no_criu, GOOD)
    assert await checkpoint.find_criu() == str(on_path)
    assert runs(default) == 1


async def test_the_default_location_comes_before_path(no_criu: Path) -> None:
    default = fake_criu(Path(checkpoint.DEFAULT_CRIU).parent, GOOD)
    fake_criu(no_criu, GOOD)
    assert await checkpoint.find_criu() == str(default)


async def test_a_configured_criu_path_is_the_only_one_checked(
    no_criu: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # runc will run the container's criu_path whatever else works.
    monkeypatch.setenv(checkpoint.CRIU_ENV, str(fake_criu(tmp_path / "env", GOOD)))
    configured = fake_criu(tmp_path / "configured", BAD)
    with pytest.raises(CheckpointUnsupported, match="criu_path") as raised:
        await checkpoint.find_criu(str(configured))
    assert "vDSO" in str(raised.value)


async def test_the_check_runs_once_per_process_until_the_file_changes(tmp_path: Path) -> None:
    criu = fake_criu(tmp_path / "cached", GOOD)
    first = await checkpoint.check_criu(str(criu))
    second = await checkpoint.check_criu(str(criu))
    assert first.ok
    assert second.ok
    assert runs(criu) == 1
    criu.write_text(criu.read_text().replace(GOOD, BAD))
    os.utime(criu, ns=(criu.stat().st_atime_ns, criu.stat().st_mtime_ns + 1_000_000))
    assert not (await checkpoint.check_criu(str(criu))).ok
    assert runs(criu) == 2


async def test_usable_criu_remembers_its_answer_until_what_decided_it_changes(
    no_criu: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    on_path = fake_criu(no_criu, GOOD)
    assert await checkpoint.usable_criu() == str(on_path)
    on_path.unlink()
    assert await checkpoint.usable_criu() == ""  # gone: searched for again
    on_path = fake_criu(no_criu, GOOD)
    assert await checkpoint.usable_criu() == str(on_path)
    default = fake_criu(Path(checkpoint.DEFAULT_CRIU).parent, GOOD)
    assert await checkpoint.usable_criu() == str(default)
    from_env = fake_criu(tmp_path / "env", GOOD)
    monkeypatch.setenv(checkpoint.CRIU_ENV, str(from_env))
    assert await checkpoint.usable_criu() == str(from_env)
    from_env.write_text(from_env.read_text().replace(GOOD, BAD))
    os.utime(from_env, ns=(from_env.stat().st_atime_ns, from_env.stat().st_mtime_ns + 1_000_000))
    assert await checkpoint.usable_criu() == str(default)


async def test_usable_criu_does_not_search_again_for_an_unchanged_answer(
    no_criu: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    on_path = fake_criu(no_criu, GOOD)
    assert await checkpoint.usable_criu() == str(on_path)
    searches: list[str] = []
    real = checkpoint.find_criu

    async def counted(configured: str = "") -> str:
        searches.append(configured)
        return await real(configured)

    monkeypatch.setattr(checkpoint, "find_criu", counted)
    for _ in range(3):
        assert await checkpoint.usable_criu() == str(on_path)
    assert searches == []


async def test_a_criu_that_does_not_say_looks_good_fails_the_check(tmp_path: Path) -> None:
    quiet = fake_criu(tmp_path / "quiet", "exit 0")
    verdict = await checkpoint.check_criu(str(quiet))
    assert not verdict.ok
    assert "no output" in verdict.output


async def test_a_missing_or_unrunnable_criu_fails_the_check(tmp_path: Path) -> None:
    assert not (await checkpoint.check_criu(str(tmp_path / "missing"))).ok
    not_executable = tmp_path / "criu"
    not_executable.write_text("#!/bin/sh\necho 'Looks good.'\n")
    verdict = await checkpoint.check_criu(str(not_executable))
    assert not verdict.ok
    assert "cannot run" in verdict.output


def test_the_script_installs_where_the_library_looks() -> None:
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        import criu as criu_script
    finally:
        sys.path.remove(str(REPO / "scripts"))
    assert str(criu_script.INSTALL_DIR) == checkpoint.CRIU_INSTALL_DIR
    assert Path(checkpoint.DEFAULT_CRIU) == Path(checkpoint.CRIU_INSTALL_DIR, "bin", "criu")
    assert criu_script.LOOKS_GOOD == "Looks good."


# --- directories -------------------------------------------------------------------------


def test_a_checkpoint_target_may_be_new_or_an_empty_directory(tmp_path: Path) -> None:
    assert checkpoint.target_directory(tmp_path / "new") == tmp_path / "new"
    (tmp_path / "empty").mkdir()
    assert checkpoint.target_directory(str(tmp_path / "empty")) == tmp_path / "empty"


def test_a_relative_target_is_made_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert checkpoint.target_directory("cp") == tmp_path / "cp"


def test_a_target_with_files_raises_already_exists(tmp_path: Path) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "inventory.img").write_bytes(b"x")
    with pytest.raises(AlreadyExists, match="already holds files"):
        checkpoint.target_directory(tmp_path / "full")


@pytest.mark.parametrize("bad", ["", "a\0b", 42])
def test_a_target_that_is_no_path_raises_invalid_argument(bad: object) -> None:
    with pytest.raises(InvalidArgument, match="checkpoint_dir"):
        checkpoint.target_directory(bad)  # type: ignore[arg-type]


def test_a_target_that_is_a_file_raises_invalid_argument(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(InvalidArgument, match="not a directory"):
        checkpoint.target_directory(tmp_path / "file")


@pytest.mark.parametrize("below", ["sub", "a/b/c"])
def test_a_target_below_a_file_raises_invalid_argument_before_anything_is_made(
    tmp_path: Path, below: str
) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(InvalidArgument, match=r"cannot be made: .*/file is not a directory"):
        checkpoint.target_directory(tmp_path / "file" / below)


def test_a_path_too_long_raises_invalid_argument_not_os_error() -> None:
    too_long = "/" + "a" * 5000
    with pytest.raises(InvalidArgument, match="File name too long"):
        checkpoint.target_directory(too_long)
    with pytest.raises(InvalidArgument, match="File name too long"):
        checkpoint.image_directory(too_long)


def test_a_target_where_no_folder_can_be_made_raises_invalid_argument() -> None:
    # /proc takes no new folders: the failure comes from mkdir, after the checks.
    with (
        pytest.raises(InvalidArgument, match="cannot make checkpoint directory /proc/"),
        checkpoint.written_atomically(Path("/proc/lcd-no-such-checkpoint")),
    ):
        pytest.fail("a folder was made under /proc")


def test_a_complete_checkpoint_is_renamed_into_place(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "cp"
    with checkpoint.written_atomically(target) as partial:
        assert partial.parent == target.parent
        assert not target.exists()
        (partial / "inventory.img").write_bytes(b"images")
    assert (target / "inventory.img").read_bytes() == b"images"
    assert sorted(p.name for p in target.parent.iterdir()) == ["cp"]


def test_a_failed_checkpoint_leaves_nothing_behind(tmp_path: Path) -> None:
    target = tmp_path / "cp"

    def dump_half_then_fail() -> None:
        with checkpoint.written_atomically(target) as partial:
            (partial / "pages-1.img").write_bytes(b"half")
            raise FailedPrecondition("criu failed")

    with pytest.raises(FailedPrecondition):
        dump_half_then_fail()
    assert list(tmp_path.iterdir()) == []


def test_a_target_that_filled_up_meanwhile_is_not_overwritten(tmp_path: Path) -> None:
    target = tmp_path / "cp"

    def dump_while_someone_fills_the_target() -> None:
        with checkpoint.written_atomically(target) as partial:
            (partial / "inventory.img").write_bytes(b"new")
            target.mkdir()
            (target / "theirs").write_text("keep")

    with pytest.raises(AlreadyExists):
        dump_while_someone_fills_the_target()
    assert [p.name for p in tmp_path.iterdir()] == ["cp"]
    assert (target / "theirs").read_text() == "keep"


def test_a_restore_source_must_hold_a_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="does not exist"):
        checkpoint.image_directory(tmp_path / "missing")
    (tmp_path / "file").write_text("x")
    with pytest.raises(InvalidArgument, match="not a directory"):
        checkpoint.image_directory(tmp_path / "file")
    with pytest.raises(InvalidArgument, match=r"inventory\.img, descriptors\.json missing"):
        checkpoint.image_directory(tmp_path)
    (tmp_path / "inventory.img").write_bytes(b"x")
    (tmp_path / "descriptors.json").write_text("[]")
    assert checkpoint.image_directory(tmp_path) == tmp_path


# --- runc options ------------------------------------------------------------------------


def test_checkpoint_options_name_the_directory_and_the_exit_flag(tmp_path: Path) -> None:
    packed = checkpoint.checkpoint_options(True, tmp_path)
    assert packed.type_url == "containerd.runc.v1.CheckpointOptions"
    options = _typeurl.unpack(packed, runc_pb2.CheckpointOptions)
    assert options is not None
    assert (options.exit, options.image_path) == (True, str(tmp_path))


def test_restore_options_keep_the_containers_options_and_add_the_images(tmp_path: Path) -> None:
    runtime = runc_pb2.Options(root="/run/x/runc", binary_name="runc", systemd_cgroup=False)
    packed = checkpoint.restore_options(runtime, tmp_path, "/opt/criu/bin/criu")
    options = _typeurl.unpack(packed, runc_pb2.Options)
    assert options is not None
    assert (options.root, options.binary_name) == ("/run/x/runc", "runc")
    assert options.criu_image_path == str(tmp_path)
    assert options.criu_path == "/opt/criu/bin/criu"
    assert runtime.criu_image_path == ""  # the container's own options are untouched


def test_restore_options_keep_a_configured_criu_path(tmp_path: Path) -> None:
    runtime = runc_pb2.Options(criu_path="/usr/local/sbin/criu")
    options = _typeurl.unpack(
        checkpoint.restore_options(runtime, tmp_path, "/other/criu"), runc_pb2.Options
    )
    assert options is not None
    assert options.criu_path == "/usr/local/sbin/criu"


# --- failures ----------------------------------------------------------------------------


def test_a_criu_failure_quotes_the_error_lines_of_its_log(tmp_path: Path) -> None:
    log = tmp_path / "criu-dump.log"
    log.write_text(
        "(00.000100) Version: 4.1.1\n"
        "(00.131031) Error (criu/net.c:3282): net: Locking network failed\n"
        "(00.134072) Error (criu/cr-dump.c:2111): Dumping FAILED.\n"
    )
    details = (
        "runc did not terminate successfully: exit status 1: criu failed: type DUMP errno 0"
        f" path= {log}: unknown"
    )
    error = checkpoint.checkpoint_failure("web", LibcontainerdError(details, code="UNKNOWN"))
    assert isinstance(error, FailedPrecondition)
    assert "net: Locking network failed | Dumping FAILED." in error.message
    assert not error.message.endswith("unknown")


def test_a_restore_failure_is_invalid_argument_even_when_the_log_is_gone(tmp_path: Path) -> None:
    details = f"OCI runtime restore failed: criu failed\nlog file: {tmp_path}/gone.log: unknown"
    error = checkpoint.restore_failure("web", tmp_path, LibcontainerdError(details))
    assert isinstance(error, InvalidArgument)
    assert "OCI runtime restore failed: criu failed log file:" in error.message
