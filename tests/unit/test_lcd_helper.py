"""The lcd command helper's pure parts: the hand-over message, noticing changed code, and
which command a command line names (what decides the warm worker)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from libcontainerd import _lcd
from libcontainerd.cli._helper_server import HelperServer
from libcontainerd.cli._helper_worker import command_of


def test_a_hand_over_reads_back_as_sent() -> None:
    argv = ["lcd", "run", "--rm", "--", "sh", "-c", "echo 'a b'=c", "", "caf\u00e9"]
    environ = {"PATH": "/usr/bin", "EMPTY": "", "WITH_EQUALS": "a=b=c"}
    message = _lcd.request(argv, "/some/where", 0o027, environ, "/pkg/libcontainerd")
    request = _lcd.Request(message)
    assert request.argv == argv
    assert request.environ == environ
    assert (request.cwd, request.umask, request.package) == (
        "/some/where",
        0o027,
        "/pkg/libcontainerd",
    )


def test_undecodable_bytes_survive_the_hand_over() -> None:
    odd = os.fsdecode(b"name-\xff")
    request = _lcd.Request(_lcd.request(["lcd", odd], "/", 0, {"X": odd}, "/p"))
    assert request.argv == ["lcd", odd]
    assert request.environ == {"X": odd}


@pytest.mark.parametrize(
    ("message", "error"),
    [
        (b"", "not an lcd-helper/1 request"),
        (b"lcd-helper/0\0p\0py\0/\x0018\x001\0lcd", "not an lcd-helper/1 request"),
        (b"lcd-helper/1\0p\0py\0/\x0018\x003\0lcd", "3 arguments announced, 1 fields sent"),
        (b"lcd-helper/1\0p\0py\0/\x0018\x000", "0 arguments announced, 0 fields sent"),
        (b"lcd-helper/1\0p\0py\0/\x0018\x001\0lcd\0NOEQUALS", "environment entry without '='"),
    ],
)
def test_a_malformed_hand_over_says_what_is_wrong(message: bytes, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        _lcd.Request(message)


def test_the_helper_notices_its_code_changed_or_gone(tmp_path: Path) -> None:
    module = tmp_path / "module.py"
    module.write_text("x = 1\n")
    server = HelperServer(tmp_path / "helper.sock", 60)
    server._code = {str(module): module.stat().st_mtime_ns}
    assert not server.code_changed()
    os.utime(module, ns=(0, module.stat().st_mtime_ns + 1))
    assert server.code_changed()
    server._code = {str(tmp_path / "gone.py"): 0}
    assert server.code_changed()


def test_the_helper_socket_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LIBCONTAINERD_HELPER_SOCKET", raising=False)
    assert _lcd.helper_socket() == _lcd.DEFAULT_HELPER_SOCKET
    monkeypatch.setenv("LIBCONTAINERD_HELPER_SOCKET", "/tmp/elsewhere.sock")
    assert _lcd.helper_socket() == "/tmp/elsewhere.sock"


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        (["lcd", "ps", "-a"], "ps"),
        (["lcd", "--address", "/run/c.sock", "-n", "b", "ps"], "ps"),
        (["lcd", "--namespace=ps", "run", "--", "ps"], "run"),
        # an option's value is never the command, however it looks
        (["lcd", "-n", "ps", "run", "--rm", "--", "true"], "run"),
        (["lcd", "-vn", "ps", "exec", "x", "--", "ps"], "exec"),
        (["lcd", "-nps", "top", "c"], "top"),
        (["lcd", "--state-dir", "inspect", "--root-dir", "version", "kill", "c"], "kill"),
        (["lcd", "-vv", "version"], "version"),
        (["lcd", "ps", "--help"], "ps"),
        (["lcd", "--help"], None),
        (["lcd"], None),
        (["lcd", "--no-such-option", "ps"], None),
        (["lcd", "--address"], None),
    ],
)
def test_the_command_a_command_line_names(argv: list[str], command: str | None) -> None:
    assert command_of(argv) == command
