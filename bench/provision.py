"""What the anchors need, installed on demand: the Go toolchain and containerd's Go sources
(Debian packages, GOPATH mode), and Docker (``docker.io`` plus docker-py from PyPI).

Only the benchmark needs these; the test suite never installs them.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CACHE = REPO / ".cache" / "bench"
GO_SOURCE = REPO / "bench" / "goclient"
GO_BINARY = CACHE / "goclient"
# Debian's Go 1.19 and containerd 1.6's Go client with every Go package it imports.
GO_PACKAGES = ("golang-go", "golang-github-containerd-containerd-dev")
GOPATH = "/usr/share/gocode"
DOCKER_PACKAGES = ("docker.io",)

_updated = False


def _installed(package: str) -> bool:
    query = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True, check=False
    )
    return "install ok installed" in query.stdout


def apt_install(packages: tuple[str, ...]) -> None:
    """Install the Debian packages that are missing (apt-get update once first)."""
    global _updated
    missing = [package for package in packages if not _installed(package)]
    if not missing:
        return
    print(f"bench: installing {' '.join(missing)} (apt)", file=sys.stderr, flush=True)
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if not _updated:
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=environment)
        _updated = True
    # Without an init system, invoke-rc.d starts no service (docker.io's dockerd stays off).
    subprocess.run(
        [
            "apt-get",
            "install",
            "-y",
            "-qq",
            "--no-install-recommends",
            "-o",
            "DPkg::Lock::Timeout=600",
            *missing,
        ],
        check=True,
        env=environment,
        stdout=subprocess.DEVNULL,
    )


def go_client() -> Path:
    """The built Go anchor (bench/goclient), rebuilt when its source is newer."""
    apt_install(GO_PACKAGES)
    sources = list(GO_SOURCE.glob("*.go"))
    if GO_BINARY.exists() and all(
        source.stat().st_mtime <= GO_BINARY.stat().st_mtime for source in sources
    ):
        return GO_BINARY
    CACHE.mkdir(parents=True, exist_ok=True)
    print("bench: building bench/goclient (GOPATH mode)", file=sys.stderr, flush=True)
    environment = {
        **os.environ,
        "GOPATH": GOPATH,
        "GO111MODULE": "off",
        "GOFLAGS": "",
        "GOCACHE": str(REPO / ".cache" / "go-build"),
    }
    go = shutil.which("go") or "/usr/bin/go"
    subprocess.run(
        [go, "build", "-o", str(GO_BINARY), "."], cwd=GO_SOURCE, check=True, env=environment
    )
    return GO_BINARY


def docker() -> None:
    """dockerd from Debian and docker-py from PyPI (into this virtual environment)."""
    apt_install(DOCKER_PACKAGES)
    if importlib.util.find_spec("docker") is None:
        print("bench: installing docker-py (pip)", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "docker"], check=True)
