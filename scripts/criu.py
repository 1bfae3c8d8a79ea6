#!/usr/bin/env python3
"""Provision a CRIU that works on this machine, for checkpoints: Debian trixie's, in .cache/criu.

Bookworm's CRIU 3.17 fails on this kernel (``criu check`` reports vdso
errors). Trixie's CRIU 4.1 works, but needs trixie's glibc; so it runs through
trixie's own dynamic loader and libraries, unpacked (not installed) by
debian_fetch.py with the machine's apt mirror, behind a small wrapper script
named ``criu``::

    .cache/criu/bin/criu     the wrapper: <loader> --library-path <lib> <sbin/criu> "$@"
    .cache/criu/sbin/criu    trixie's binary
    .cache/criu/lib/         trixie's loader, libc and every library criu needs
    .cache/criu/etc/criu.conf  CRIU's settings (network locking by nftables)
    .cache/criu/VERSION      what was unpacked

The script checks that every library resolves inside lib/ (the loader would
otherwise quietly take the host's), runs ``criu check``, which must say
"Looks good.", and prints the wrapper's path. The test suite finds the
wrapper there. A program using the library finds it through
``$LIBCONTAINERD_CRIU``, or by default in /var/lib/libcontainerd/criu, where
``--install`` copies the folder.

    python3 scripts/criu.py                # provision (once), check, print the wrapper's path
    python3 scripts/criu.py --install      # also copy it to /var/lib/libcontainerd/criu
    python3 scripts/criu.py --install DIR  # ... or to DIR
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import debian_fetch  # a sibling script, found through the line above

SUITE = "trixie"
# criu and the trixie packages of every library it loads, directly or not:
# found with `readelf -d` (NEEDED) on criu and then on each library in turn.
PACKAGES = (
    "criu",
    "libc6",  # libc.so.6 and the loader, ld-linux-x86-64.so.2
    "libbsd0",
    "libmd0",  # for libbsd
    "libgnutls30t64",
    "libp11-kit0",  # for gnutls, and libffi8 for it
    "libffi8",
    "libidn2-0",
    "libunistring5",
    "libtasn1-6",
    "libnettle8t64",
    "libhogweed6t64",
    "libgmp10",
    "libnftables1",
    "libmnl0",  # for nftables
    "libnftnl11",
    "libxtables12",
    "libjansson4",
    "libnl-3-200",
    "libnet1",
    "libprotobuf-c1",
    "libuuid1",
)
LOADER = "ld-linux-x86-64.so.2"
LIBRARY_DIRS = ("lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu", "lib64", "usr/lib64")
CRIU_BINARY = "usr/sbin/criu"
CACHE = debian_fetch.CACHE / "criu"
# Where the library looks by default: libcontainerd.checkpoint.CRIU_INSTALL_DIR.
INSTALL_DIR = Path("/var/lib/libcontainerd/criu")
LOOKS_GOOD = "Looks good."
# Part of the VERSION stamp: bump it when the folder's layout or the wrapper
# changes, so an older folder is rebuilt.
LAYOUT = "criu.py layout 1"

WRAPPER = """#!/bin/sh
# CRIU {version} from Debian {suite}, started through {suite}'s own dynamic loader
# and libraries (the host's glibc is too old for it). Written by scripts/criu.py.
here=$(dirname "$(dirname "$(readlink -f "$0")")")
CRIU_CONFIG_FILE="$here/etc/criu.conf" \\
    exec "$here/lib/{loader}" --library-path "$here/lib" "$here/sbin/criu" "$@"
"""
# Read by CRIU in every mode, runc's RPC (swrk) included. CRIU locks a
# container's network during a dump with iptables-restore by default, which
# this machine need not have; this CRIU is built with libnftables instead.
CONFIG = """# Written by scripts/criu.py: lock the network with nftables, not iptables-restore.
network-lock nftables
"""


class ProvisionError(Exception):
    """CRIU could not be provisioned; the message says why."""


def provision(dest: Path = CACHE) -> Path:
    """Assemble the folder (unless it is already complete) and return the wrapper's path."""
    wanted = _version_text()
    wrapper = dest / "bin" / "criu"
    stamp = dest / "VERSION"
    if wrapper.is_file() and stamp.is_file() and stamp.read_text() == wanted:
        return wrapper
    # Build beside it and swap in, so a failure never leaves a half-made folder.
    building = dest.with_name(f"{dest.name}.new-{os.getpid()}")
    shutil.rmtree(building, ignore_errors=True)
    try:
        _assemble(building, wanted)
        verify_libraries(building)
        _swap_in(building, dest)
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return wrapper


def _version_text() -> str:
    roots = {package: debian_fetch.extract(package, SUITE) for package in PACKAGES}
    return f"{LAYOUT}\n" + "".join(
        f"{package} {(root / '.version').read_text().strip()} ({SUITE})\n"
        for package, root in roots.items()
    )


def _assemble(folder: Path, version_text: str) -> None:
    lib = folder / "lib"
    lib.mkdir(parents=True)
    (folder / "sbin").mkdir()
    (folder / "bin").mkdir()
    (folder / "etc").mkdir()
    (folder / "etc" / "criu.conf").write_text(CONFIG)
    for package in PACKAGES:
        root = debian_fetch.extract(package, SUITE)
        for library_dir in LIBRARY_DIRS:
            source = root / library_dir
            if not source.is_dir():
                continue
            for item in source.iterdir():
                if ".so" not in item.name or not (item.is_file() or item.is_symlink()):
                    continue
                target = lib / item.name
                if target.exists() or target.is_symlink():
                    continue
                # Keep a soname link beside its file; resolve one that points elsewhere.
                local_link = item.is_symlink() and "/" not in os.readlink(item)
                shutil.copy2(item, target, follow_symlinks=not local_link)
    criu_root = debian_fetch.extract("criu", SUITE)
    shutil.copy2(criu_root / CRIU_BINARY, folder / "sbin" / "criu")
    if not (lib / LOADER).is_file():
        raise ProvisionError(f"no {LOADER} in {SUITE}'s libc6")
    criu_version = (criu_root / ".version").read_text().strip()
    wrapper = folder / "bin" / "criu"
    wrapper.write_text(WRAPPER.format(version=criu_version, suite=SUITE, loader=LOADER))
    wrapper.chmod(0o755)
    (folder / "VERSION").write_text(version_text)


def verify_libraries(folder: Path) -> None:
    """Fail unless every library criu loads resolves inside ``folder/lib`` (the loader's --list)."""
    lib = folder / "lib"
    listing = subprocess.run(
        [str(lib / LOADER), "--library-path", str(lib), "--list", str(folder / "sbin" / "criu")],
        capture_output=True,
        text=True,
        check=False,
    )
    if listing.returncode != 0:
        raise ProvisionError(
            f"{SUITE}'s loader cannot list criu's libraries:"
            f" {listing.stderr.strip() or listing.stdout.strip()}"
        )
    outside = []
    for line in listing.stdout.splitlines():
        name, arrow, where = line.strip().partition(" => ")
        if not arrow:
            continue  # the vdso, or the loader itself
        path = where.rsplit(" (", 1)[0].strip()
        if path == "not found" or not Path(path).resolve().is_relative_to(lib.resolve()):
            outside.append(f"{name} ({path})")
    if outside:
        raise ProvisionError(
            "criu needs libraries that no package in PACKAGES provides (find their"
            f" {SUITE} packages and add them): " + ", ".join(outside)
        )


def _swap_in(new: Path, dest: Path) -> None:
    old = dest.with_name(f"{dest.name}.old-{os.getpid()}")
    if dest.exists():
        dest.rename(old)
    new.rename(dest)
    shutil.rmtree(old, ignore_errors=True)


def check(wrapper: Path) -> str:
    """Run ``criu check`` through the wrapper; return its output, or raise ProvisionError."""
    try:
        done = subprocess.run(
            [str(wrapper), "check"], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise ProvisionError(f"cannot run {wrapper} check: {error}") from error
    output = (done.stdout + done.stderr).strip()
    if done.returncode != 0 or LOOKS_GOOD not in output:
        raise ProvisionError(
            f"{wrapper} check failed (exit status {done.returncode}): {output or '(no output)'}"
        )
    return output


def install(source: Path, dest: Path) -> Path:
    """Copy the provisioned folder to ``dest`` (atomically) and return the wrapper there."""
    building = dest.with_name(f"{dest.name}.new-{os.getpid()}")
    shutil.rmtree(building, ignore_errors=True)
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        shutil.copytree(source, building, symlinks=True)
        _swap_in(building, dest)
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return dest / "bin" / "criu"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--install",
        nargs="?",
        const=INSTALL_DIR,
        type=Path,
        metavar="DIR",
        help=f"also copy it to DIR (default {INSTALL_DIR}), where the library looks",
    )
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("criu.py: criu check needs root; run this as root", file=sys.stderr)
        return 1
    try:
        wrapper = provision()
        check(wrapper)
        if args.install is not None:
            wrapper = install(CACHE, args.install)
            check(wrapper)
    except (ProvisionError, subprocess.CalledProcessError, SystemExit, OSError) as error:
        print(f"criu.py: {error}", file=sys.stderr)
        return 1
    print(wrapper)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
