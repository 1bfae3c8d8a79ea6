#!/usr/bin/env python3
"""Provision a Debian minbase root filesystem for the realistic-image tests and bench, cached.

``debootstrap --variant=minbase bookworm`` from the Debian mirror this
machine already uses (the same one debian_fetch.py reads from /etc/apt),
packed once as a plain tar (hard links, setuid bits and owners kept; no
device nodes: an image does not carry /dev's) at
``.cache/minbase/bookworm-minbase.tar``. Later runs reuse the tarball; the
tests skip (fail with CI=true) when it is missing. Fresh, it takes ~25 s.

    python3 scripts/debian_minbase.py            # provision if needed, print the tarball
    python3 scripts/debian_minbase.py --cached   # print it only when it is there
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import debian_fetch  # a sibling script, found through the line above

SUITE = "bookworm"
TARBALL = debian_fetch.CACHE / "minbase" / f"{SUITE}-minbase.tar"


def cached() -> Path | None:
    """The tarball when it has been made, else None (nothing fetched)."""
    return TARBALL if TARBALL.is_file() else None


def provision() -> Path:
    """Make the tarball unless it is there; its path.

    Raises SystemExit with debootstrap's last lines when it fails (after
    debian_fetch's retries, since a mirror's hiccup would fail a CI run).
    """
    if TARBALL.is_file():
        return TARBALL
    if shutil.which("debootstrap") is None:
        raise SystemExit(
            "debian_minbase: debootstrap is not installed (apt-get install debootstrap)"
        )
    mirror = debian_fetch._mirror_uri()
    TARBALL.parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, debian_fetch.ATTEMPTS + 1):
        try:
            _bootstrap(mirror)
            return TARBALL
        except SystemExit as error:
            if attempt == debian_fetch.ATTEMPTS:
                raise
            pause = debian_fetch.RETRY_PAUSE * attempt
            print(f"debian_minbase: attempt {attempt} failed ({error}); again in {pause:.0f} s",
                  file=sys.stderr)  # fmt: skip
            time.sleep(pause)
    raise AssertionError("unreachable")


def _bootstrap(mirror: str) -> None:
    with tempfile.TemporaryDirectory(dir=TARBALL.parent, prefix="build-") as work:
        root = Path(work, "root")
        started = time.monotonic()
        done = subprocess.run(
            ["debootstrap", "--variant=minbase", SUITE, str(root), mirror],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-5:])
            raise SystemExit(f"debian_minbase: debootstrap failed ({done.returncode}): {tail}")
        # Only the root's own files: the apt lists and package cache are build leftovers.
        for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for entry in (root / leftover).glob("*"):
                if entry.is_file():
                    entry.unlink()
        partial = TARBALL.with_suffix(".partial")
        subprocess.run(
            ["tar", "--numeric-owner", "--xattrs", "--one-file-system", "-C", str(root),
             "--exclude=./dev/*", "-cf", str(partial), "."],
            check=True,
        )  # fmt: skip
        partial.rename(TARBALL)
        seconds = time.monotonic() - started
        print(f"debian_minbase: {TARBALL} made in {seconds:.0f} s", file=sys.stderr)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cached", action="store_true", help="print only, fetch nothing")
    args = parser.parse_args(argv)
    tarball = cached() if args.cached else provision()
    if tarball is None:
        return 1
    print(tarball)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
