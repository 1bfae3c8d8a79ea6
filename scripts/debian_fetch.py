#!/usr/bin/env python3
"""Download Debian packages and unpack them into a cache folder, without installing them.

Used by the tests (containerd's .proto files, the OCI JSON schemas) and by the
version matrix (containerd 1.7 from trixie, 2.x from sid, CRIU from trixie).
Packages of the machine's own suite come through the system's apt setup;
another suite gets a private apt state under the cache folder, with a sources
list that reuses the mirror URI already configured on this machine.

    python3 scripts/debian_fetch.py [--suite trixie] PACKAGE...   # prints each folder
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("LIBCONTAINERD_CACHE", REPO / ".cache"))
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
# A download that fails is tried this many times in all, RETRY_PAUSE x attempt s apart.
ATTEMPTS = 3
RETRY_PAUSE = 10.0


def _mirror_uri() -> str:
    """The Debian mirror this machine already uses (never a name we hard-code)."""
    texts = []
    for path in [*glob.glob("/etc/apt/sources.list.d/*.sources"), "/etc/apt/sources.list"]:
        try:
            texts.append(Path(path).read_text())
        except OSError:
            continue
    for text in texts:
        for match in re.finditer(r"^URIs:\s*(\S+)", text, re.M):
            if not match.group(1).rstrip("/").endswith("-security"):
                return match.group(1).rstrip("/")
        for match in re.finditer(r"^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+\S+", text, re.M):
            if not match.group(1).rstrip("/").endswith("-security"):
                return match.group(1).rstrip("/")
    raise SystemExit("debian_fetch: no Debian mirror found in /etc/apt sources")


def _apt_options(suite: str | None) -> list[str]:
    if suite is None:
        return []
    root = CACHE / "apt" / suite
    lists = root / "lists"
    (lists / "partial").mkdir(parents=True, exist_ok=True)
    (root / "archives" / "partial").mkdir(parents=True, exist_ok=True)
    sources = root / "sources.list"
    sources.write_text(f"deb [signed-by={KEYRING}] {_mirror_uri()} {suite} main\n")
    return [
        f"-oDir::Etc::SourceList={sources}",
        "-oDir::Etc::SourceParts=/dev/null",
        f"-oDir::State::Lists={lists}",
        f"-oDir::Cache={root}",
        "-oDir::Cache::pkgcache=",
        "-oDir::Cache::srcpkgcache=",
        "-oAPT::Get::List-Cleanup=0",
    ]


def _update(suite: str | None, options: list[str]) -> None:
    marker = CACHE / "apt" / (suite or "system") / ".updated"
    if marker.exists():
        return
    marker.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["apt-get", "-qq", *options, "update"], check=True)
    marker.touch()


def extract(package: str, suite: str | None = None) -> Path:
    """Unpack ``package`` (from ``suite``, or the machine's own) and return its folder.

    A failed download is tried again (ATTEMPTS in all, after a pause), since a
    mirror's hiccup would otherwise fail a CI run; the last failure is raised.
    """
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return _extract(package, suite)
        except (subprocess.CalledProcessError, SystemExit) as error:
            if attempt == ATTEMPTS:
                raise
            pause = RETRY_PAUSE * attempt
            print(
                f"debian_fetch: {package} ({suite or 'system'}): attempt {attempt} failed"
                f" ({error}); trying again in {pause:.0f} s",
                file=sys.stderr,
            )
            time.sleep(pause)
    raise AssertionError("unreachable")


def _extract(package: str, suite: str | None) -> Path:
    dest = CACHE / "debian" / (suite or "system") / package
    done = dest / ".extracted"
    if done.exists():
        return dest
    options = _apt_options(suite)
    work = CACHE / "debian" / "download"
    work.mkdir(parents=True, exist_ok=True)
    for old in work.glob(f"{package}_*.deb"):
        old.unlink()
    attempt = subprocess.run(
        ["apt-get", "-qq", *options, "download", package], cwd=work, capture_output=True, text=True
    )
    if attempt.returncode != 0:
        # The lists may be missing or old: refresh once, then retry.
        (CACHE / "apt" / (suite or "system") / ".updated").unlink(missing_ok=True)
        _update(suite, options)
        subprocess.run(["apt-get", "-qq", *options, "download", package], cwd=work, check=True)
    debs = sorted(work.glob(f"{package}_*.deb"))
    if not debs:
        raise SystemExit(f"debian_fetch: apt-get download {package} produced no .deb")
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    subprocess.run(["dpkg-deb", "-x", str(debs[-1]), str(dest)], check=True)
    (dest / ".version").write_text(debs[-1].name.split("_")[1] + "\n")
    done.touch()
    debs[-1].unlink()
    return dest


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", default=None, help="another Debian suite, e.g. trixie or sid")
    parser.add_argument("packages", nargs="+")
    args = parser.parse_args(argv)
    for package in args.packages:
        print(extract(package, args.suite))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
