"""Running the installed ``lcd`` command in tests, as a user would: a subprocess per call."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import select
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

LCD = str(Path(sys.executable).with_name("lcd"))


@dataclass(frozen=True)
class Result:
    status: int
    stdout: str
    stderr: str

    @property
    def lines(self) -> list[str]:
        return self.stdout.splitlines()

    def one_error_line(self) -> str:
        """The failure's single stderr line; asserts there is exactly one and no traceback."""
        assert self.status != 0, self
        assert "Traceback" not in self.stderr, self.stderr
        lines = self.stderr.splitlines()
        assert len(lines) == 1, lines
        return lines[0]


def environment(
    state_dir: Path, root_dir: Path, containerd: str | None = None, **extra: str
) -> dict[str, str]:
    """The test's environment: private folders for the embedded daemon, no $CONTAINERD_ADDRESS.

    ``containerd`` is the binary the embedded daemon should run (the matrix's pass).
    Commands run in their own process: a command helper the machine may have
    running is not used unless ``extra`` names one (test_cli_helper).
    """
    ours = ("CONTAINERD_ADDRESS", "LIBCONTAINERD_HELPER", "LIBCONTAINERD_HELPER_SOCKET")
    env = {key: value for key, value in os.environ.items() if key not in ours}
    env["LIBCONTAINERD_HELPER"] = "off"
    env["LIBCONTAINERD_STATE_DIR"] = str(state_dir)
    env["LIBCONTAINERD_ROOT_DIR"] = str(root_dir)
    if containerd and os.sep in containerd:
        # The embedded daemon finds "containerd" on PATH: this pass's one first.
        env["PATH"] = os.pathsep.join([os.path.dirname(containerd), env.get("PATH", "")])
    env.update(extra)
    return env


async def lcd(
    env: Mapping[str, str], *args: str, seconds: float = 90, stdin: str | None = None
) -> Result:
    """Run ``lcd args...`` to its end; ``stdin`` is its input (else it has none: /dev/null)."""
    completed = await asyncio.to_thread(
        subprocess.run,
        [LCD, *args],
        env=dict(env),
        input=stdin,
        stdin=subprocess.DEVNULL if stdin is None else None,
        capture_output=True,
        text=True,
        timeout=seconds,
        check=False,
    )
    return Result(completed.returncode, completed.stdout, completed.stderr)


async def spawn_lcd(env: Mapping[str, str], *args: str) -> asyncio.subprocess.Process:
    """Start ``lcd args...`` and return at once (stdout and stderr are pipes)."""
    return await asyncio.create_subprocess_exec(
        LCD,
        *args,
        env=dict(env),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


class TerminalSession:
    """A program on a new pseudo-terminal of a given size: what it prints, what is typed.

    Spawned by subprocess (no Python runs between fork and exec: this process has
    gRPC's threads), in a session of its own with the terminal on its stdio.
    """

    def __init__(self, process: subprocess.Popen[bytes], fd: int) -> None:
        self.process = process
        self.fd = fd
        self.output = b""

    @classmethod
    def start(
        cls, argv: list[str], env: dict[str, str], rows: int, columns: int
    ) -> TerminalSession:
        master, terminal = os.openpty()
        try:
            fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
            process = subprocess.Popen(
                argv,
                env=env,
                stdin=terminal,
                stdout=terminal,
                stderr=terminal,
                start_new_session=True,
            )
        except BaseException:
            os.close(master)
            raise
        finally:
            os.close(terminal)  # the program's alone now: its exit ends our reads (EIO)
        return cls(process, master)

    def type(self, keys: bytes) -> None:
        os.write(self.fd, keys)

    def resize(self, rows: int, columns: int) -> None:
        """Change the terminal's size: its foreground process group gets SIGWINCH."""
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))

    def read_until(self, marker: bytes, seconds: float = 30) -> bytes:
        """Everything read until ``marker`` arrives (from the last read on); fails on timeout."""
        start = len(self.output)
        deadline = time.monotonic() + seconds
        while marker not in self.output[start:]:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([self.fd], [], [], remaining)[0]:
                raise AssertionError(f"no {marker!r} in {self.output[start:]!r}")
            try:
                chunk = os.read(self.fd, 4096)
            except OSError:  # EIO: the program has gone
                chunk = b""
            if not chunk:
                raise AssertionError(f"ended without {marker!r}: {self.output[start:]!r}")
            self.output += chunk
        return self.output[start:]

    def exit_status(self, seconds: float = 30) -> int:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            status = self.process.poll()
            if status is not None:
                return status
            with contextlib.suppress(OSError):  # drain, so the program never waits on us
                if select.select([self.fd], [], [], 0.05)[0]:
                    self.output += os.read(self.fd, 4096)
        raise AssertionError(f"still running after {seconds} s: {self.output[-200:]!r}")

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        os.close(self.fd)


async def check_terminal_shell(
    argv: list[str], env: dict[str, str], rows: int, columns: int, status: int
) -> None:
    """``argv`` (an ``lcd run -it ... sh``) on a new terminal of that size: the shell sees
    the size and what is typed, and lcd exits with the shell's ``status``."""
    session = await asyncio.to_thread(TerminalSession.start, argv, env, rows, columns)
    try:
        # busybox's sh drops what is typed before its prompt is ready: wait for it.
        await asyncio.to_thread(session.read_until, b"# ")
        session.type(b"stty size; echo typed-$((40+2))\r")
        output = await asyncio.to_thread(session.read_until, b"typed-42\r\n")
        assert f"{rows} {columns}".encode() in output
        session.type(f"exit {status}\r".encode())
        assert await asyncio.to_thread(session.exit_status) == status
    finally:
        session.close()
