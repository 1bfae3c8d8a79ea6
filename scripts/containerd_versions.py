#!/usr/bin/env python3
"""Provision the containerd versions of the test matrix and print where each binary is.

The system's containerd (1.6 on bookworm) is /usr/bin/containerd. containerd 1.7
comes from Debian trixie and 2.x from Debian sid, both as the package
``containerd``, unpacked by debian_fetch.py into .cache/debian/<suite>/containerd.
Each unpacked usr/bin holds containerd and its matching containerd-shim-runc-v2,
which the Supervisor finds because it puts the binary's folder first on
containerd's PATH. The binaries are Go programs that only need libc, so they
run on bookworm. They do not bring runc: the newer suites' runc packages need
a newer glibc, so every version uses the system's runc.

    python3 scripts/containerd_versions.py            # fetch if needed, then list
    python3 scripts/containerd_versions.py --cached   # list what is already here

Then run the integration suite against one of them with
``LIBCONTAINERD_TEST_CONTAINERD=<path printed here>``.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import debian_fetch  # a sibling script, found through the line above

SYSTEM_CONTAINERD = Path("/usr/bin/containerd")
# Name in the matrix -> Debian suite to fetch from (None: the installed package).
MATRIX: dict[str, str | None] = {"system": None, "trixie": "trixie", "sid": "sid"}
PACKAGE = "containerd"
SHIM = "containerd-shim-runc-v2"


def _unpacked_binary(suite: str) -> Path:
    return debian_fetch.CACHE / "debian" / suite / PACKAGE / "usr" / "bin" / "containerd"


def cached() -> dict[str, Path]:
    """The matrix's containerd binaries present now, without fetching anything."""
    found: dict[str, Path] = {}
    for name, suite in MATRIX.items():
        binary = SYSTEM_CONTAINERD if suite is None else _unpacked_binary(suite)
        if binary.is_file():
            found[name] = binary
    return found


def provision() -> dict[str, Path]:
    """Fetch every suite's containerd that is missing, and return them all.

    Raises SystemExit naming the suite when a fetch fails (after debian_fetch's retries).
    """
    for suite in MATRIX.values():
        if suite is not None and not _unpacked_binary(suite).is_file():
            try:
                debian_fetch.extract(PACKAGE, suite)
            except (subprocess.CalledProcessError, OSError) as error:
                raise SystemExit(
                    f"containerd_versions: cannot fetch {PACKAGE} from Debian {suite}: {error}"
                ) from error
            if not _unpacked_binary(suite).is_file():
                raise SystemExit(
                    f"containerd_versions: {PACKAGE} from Debian {suite} has no"
                    f" {_unpacked_binary(suite).relative_to(debian_fetch.CACHE)}"
                )
    return cached()


def describe(binary: Path) -> str:
    """The version the binary reports, after checking it and its shim run on this machine."""
    version = _run([str(binary), "--version"])
    shim = binary.parent / SHIM
    if not shim.is_file():
        raise SystemExit(f"containerd_versions: {shim} is missing beside {binary}")
    _run([str(shim), "-v"])
    # "containerd github.com/containerd/containerd[/v2] <version> [<revision>]"
    words = version.split()
    return words[2] if len(words) > 2 else version


def _run(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except OSError as err:
        raise SystemExit(f"containerd_versions: cannot run {argv[0]}: {err.strerror}") from err
    if done.returncode != 0:
        raise SystemExit(
            f"containerd_versions: {' '.join(argv)} failed ({done.returncode}):"
            f" {done.stderr.strip() or done.stdout.strip()}"
        )
    return done.stdout.strip()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cached", action="store_true", help="list only, fetch nothing")
    args = parser.parse_args(argv)
    binaries = cached() if args.cached else provision()
    for name, binary in binaries.items():
        print(f"{name}\t{binary}\t{describe(binary)}")
    if shutil.which("runc") is None:
        print("containerd_versions: warning: runc is not on PATH", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
