"""Image benchmarks, ours against the anchors, in one run (round-robin per iteration).

- ``import``: the realistic image (Debian minbase in five layers, as the tests
  build it) from a ``docker save`` archive, unpacked, by ``import_archive``
  and by ``ctr images import`` (which unpacks too); each removed (with
  containerd's synchronous GC) before the next round, in its own namespace.
- ``image_lifecycle``: a container from that image (snapshot prepared on its
  top layer, create, start, wait, delete with the snapshot) running
  ``/bin/true``, by us and by containerd's Go client (``WithNewSnapshot``,
  ``WithSnapshotCleanup``, ``WithImageConfig``), with the gRPC calls of each.
- ``import_rss``: the client's RSS growth (peak minus before) while importing
  an archive with one 200 MiB incompressible layer, in a fresh process.

    python -m bench.images ADDRESS [--go GOCLIENT] [--iterations N]   # on a running containerd
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

from libcontainerd import oci, rootfs
from libcontainerd.client import AsyncClient

from . import provision
from .measure import format_seconds, ratio, ratio_interval, summarize
from .systems import TRUE, Env, GoClient, _CallCounter, _channels_with

OURS_NAMESPACE = "bench-img-lcd"
CTR_NAMESPACE = "bench-img-ctr"
GO_NAMESPACE = "bench-img-go"
RSS_LAYER_MIB = 200
RSS_NAMESPACE = "bench-img-rss"


def build_minbase(folder: Path) -> Path:
    """The tests' realistic image as a ``docker save`` archive (the root provisioned if needed)."""
    from tests.integration.minbase_image import build

    provision.apt_install(("debootstrap", "umoci", "skopeo"))
    subprocess.run(
        [sys.executable, str(provision.REPO / "scripts" / "debian_minbase.py")],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return build(folder).docker


# -- import: ours against ctr ----------------------------------------------------------------


async def _import_ours(address: str, archive: Path) -> float:
    async with AsyncClient(address, OURS_NAMESPACE) as client:
        started = time.perf_counter()
        (image,) = await client.images.import_archive(archive)
        elapsed = time.perf_counter() - started
        await client.images.remove(image.name)
    return elapsed


def _ctr(ctr: Path, address: str, *args: str) -> str:
    done = subprocess.run(
        [str(ctr), "-a", address, "-n", CTR_NAMESPACE, *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    if done.returncode != 0:
        raise RuntimeError(f"ctr {' '.join(args)}: {done.stderr or done.stdout}")
    return done.stdout


def _import_ctr(ctr: Path, address: str, archive: Path) -> float:
    started = time.perf_counter()
    _ctr(ctr, address, "images", "import", str(archive))
    elapsed = time.perf_counter() - started
    for name in _ctr(ctr, address, "images", "ls", "-q").split():
        _ctr(ctr, address, "images", "rm", "--sync", name)
    return elapsed


async def import_vs_ctr(address: str, ctr: Path, archive: Path, rounds: int) -> dict[str, Any]:
    """Median seconds of each import (unpacked), interleaved, and ours / ctr."""
    ours: list[float] = []
    theirs: list[float] = []
    await _import_ours(address, archive)  # warm-up: the page cache holds the archive for both
    for turn in range(rounds):
        if turn % 2:
            theirs.append(await asyncio.to_thread(_import_ctr, ctr, address, archive))
            ours.append(await _import_ours(address, archive))
        else:
            ours.append(await _import_ours(address, archive))
            theirs.append(await asyncio.to_thread(_import_ctr, ctr, address, archive))
    mine, ctrs = summarize(ours), summarize(theirs)
    return {
        "description": "docker save archive of Debian minbase (5 layers), imported and unpacked",
        "archive_bytes": archive.stat().st_size,
        "systems": {"ours": mine, "ctr": ctrs},
        "ratio": ratio(mine["median"], ctrs["median"]),
    }


# -- a container from an image: ours against the Go client ----------------------------------


async def _lifecycle_ours(client: AsyncClient, name: str, container_id: str) -> float:
    started = time.perf_counter()
    image = await client.images.get(name)
    # No seccomp profile, as the Go client's WithImageConfig spec (systems.comparable_spec).
    spec = oci.image_spec(image, oci.with_seccomp(None), args=TRUE)
    await client.create(container_id, spec, image=image)
    await client.start(container_id)
    await client.wait(container_id)
    await client.delete_task(container_id)
    await client.delete(container_id)
    return time.perf_counter() - started


async def image_lifecycle(
    env: Env, go_binary: Path | None, archive: Path, iterations: int, warmup: int
) -> dict[str, Any]:
    """Medians of a lifecycle from the image, ours and the Go client's, with gRPC calls."""
    async with (
        AsyncClient(env.address, OURS_NAMESPACE) as client,
        AsyncClient(env.address, GO_NAMESPACE) as for_go,
    ):
        (image,) = await client.images.import_archive(archive)
        await for_go.images.import_archive(archive)  # the Go client's namespace, unpacked
        go = GoClient(env, go_binary, namespace=GO_NAMESPACE) if go_binary else None
        try:
            if go is not None:
                await go.start()
            ours: list[float] = []
            theirs: list[float] = []
            go_calls: dict[str, int] = {}
            for turn in range(warmup + iterations):
                mine = await _lifecycle_ours(client, image.name, f"img-lc-{turn}")
                if turn >= warmup:
                    ours.append(mine)
                if go is not None:
                    reply = await go.image_lifecycle(f"img-go-{turn}", image.name)
                    go_calls = reply["calls"] or go_calls
                    if turn >= warmup:
                        theirs.append(float(reply["seconds"]))
            ours_calls = await _count_ours(env.address, image.name)
        finally:
            if go is not None:
                await go.close()
            await client.images.remove(image.name)
            await for_go.images.remove(image.name)
    result: dict[str, Any] = {
        "description": "image lookup, snapshot on the top layer, create, start, wait, delete"
        " with the snapshot, of /bin/true in Debian minbase",
        "systems": {"ours": summarize(ours)},
        "grpc_calls": {"ours": ours_calls},
    }
    if theirs:
        result["systems"]["go"] = summarize(theirs)
        result["grpc_calls"]["go"] = go_calls
        result["ratio"] = ratio(summarize(ours)["median"], summarize(theirs)["median"])
        # Interleaved turn by turn: each pair shares the machine's moment.
        result["ratio_interval_90"] = ratio_interval(list(zip(ours, theirs, strict=True)))
    return result


async def _count_ours(address: str, name: str) -> dict[str, int]:
    counter = _CallCounter()
    counting = AsyncClient(address, namespace=OURS_NAMESPACE)
    with _channels_with(counter):  # the channel is made in open()
        await counting.open()
    try:
        counter.take()
        await _lifecycle_ours(counting, name, "img-lc-count")
        return counter.take()
    finally:
        await counting.close()


# -- RSS while importing a big layer --------------------------------------------------------


def write_big_archive(path: Path, mib: int) -> Path:
    """An OCI archive of one image with one layer holding ``mib`` MiB of random bytes."""
    layer = path.with_suffix(".layer")
    hasher = hashlib.sha256()
    with open(layer, "wb") as raw, tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo("noise")
        info.size = mib << 20
        tar.addfile(info, _Random(info.size))
    with open(layer, "rb") as written:
        while chunk := written.read(1 << 20):
            hasher.update(chunk)
    layer_digest = "sha256:" + hasher.hexdigest()
    config = json.dumps(
        {
            "architecture": "amd64" if os.uname().machine == "x86_64" else os.uname().machine,
            "os": "linux",
            "config": {"Cmd": ["/noise"]},
            "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        }
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": _descriptor("application/vnd.oci.image.config.v1+json", config),
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer_digest,
                    "size": layer.stat().st_size,
                }
            ],
        }
    ).encode()
    entry = _descriptor("application/vnd.oci.image.manifest.v1+json", manifest)
    entry["annotations"] = {"io.containerd.image.name": "bench.example/noise:1"}
    index = json.dumps({"schemaVersion": 2, "manifests": [entry]}).encode()
    with tarfile.open(path, "w") as tar:
        _add_bytes(tar, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        tar.add(str(layer), "blobs/sha256/" + layer_digest.split(":", 1)[1])
        for blob in (config, manifest):
            _add_bytes(tar, "blobs/sha256/" + hashlib.sha256(blob).hexdigest(), blob)
        _add_bytes(tar, "index.json", index)
    layer.unlink()
    return path


class _Random(io.RawIOBase):
    """``size`` random bytes, read in chunks (never whole in memory)."""

    def __init__(self, size: int) -> None:
        self._left = size

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        count = self._left if size < 0 else min(size, self._left)
        self._left -= count
        return os.urandom(count)


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _descriptor(media_type: str, blob: bytes) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": "sha256:" + hashlib.sha256(blob).hexdigest(),
            "size": len(blob)}  # fmt: skip


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


async def _measure_rss(address: str, archive: Path) -> dict[str, Any]:
    """In this (fresh) process: RSS before the import, and the peak during it."""
    async with AsyncClient(address, RSS_NAMESPACE) as client:
        await client.version()
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
        before = _status_kib("VmRSS")
        (image,) = await client.images.import_archive(archive)
        peak = _status_kib("VmHWM")
        await client.images.remove(image.name)
    return {"before_kib": before, "peak_kib": peak, "growth_mib": (peak - before) / 1024}


def import_rss(address: str, workdir: Path, mib: int = RSS_LAYER_MIB) -> dict[str, Any]:
    """RSS growth of a fresh client process importing a ``mib`` MiB layer (target <= 64 MiB)."""
    archive = write_big_archive(workdir / "big.tar", mib)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "bench.images", "rss", address, str(archive)],
            capture_output=True,
            text=True,
            check=True,
            timeout=600,
        )
    finally:
        archive.unlink()
    result: dict[str, Any] = json.loads(done.stdout)
    result["layer_mib"] = mib
    return result


# -- all of them ----------------------------------------------------------------------------


def report(results: dict[str, Any]) -> str:
    """The runner's lines for these benchmarks."""
    lines = ["\nimages (Debian minbase, 5 layers):"]
    imported = results["import"]["systems"]
    lines.append(
        f"  import docker save, unpacked: ours {format_seconds(imported['ours']['median'])},"
        f" ctr {format_seconds(imported['ctr']['median'])} = {results['import']['ratio']:.2f}x"
    )
    lifecycle = results["image_lifecycle"]
    calls = {name: sum(c.values()) for name, c in lifecycle["grpc_calls"].items()}
    if "go" in lifecycle["systems"]:
        lines.append(
            f"  lifecycle from the image: ours"
            f" {format_seconds(lifecycle['systems']['ours']['median'])} ({calls['ours']} calls),"
            f" Go {format_seconds(lifecycle['systems']['go']['median'])} ({calls['go']} calls)"
            f" = {lifecycle['ratio']:.2f}x"
        )
        if lifecycle.get("ratio_interval_90"):
            low, high = lifecycle["ratio_interval_90"]
            lines[-1] += f" [90 % interval {low:.2f}-{high:.2f}]"
    rss = results["import_rss"]
    lines.append(
        f"  client RSS growth importing a {rss['layer_mib']} MiB layer: {rss['growth_mib']:.1f} MiB"
    )
    return "\n".join(lines)


async def run_all(
    env: Env, go_binary: Path | None, ctr: Path, iterations: int, warmup: int, rounds: int
) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="img-", dir=env.workdir))
    try:
        archive = await asyncio.to_thread(build_minbase, folder)
        return {
            "import": await import_vs_ctr(env.address, ctr, archive, rounds),
            "image_lifecycle": await image_lifecycle(env, go_binary, archive, iterations, warmup),
            "import_rss": await asyncio.to_thread(import_rss, env.address, folder),
        }
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main(argv: list[str]) -> int:
    if argv[:1] == ["rss"]:
        print(json.dumps(asyncio.run(_measure_rss(argv[1], Path(argv[2])))))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("address")
    parser.add_argument("--go", type=Path, default=None, help="the built bench/goclient")
    parser.add_argument("--ctr", type=Path, default=Path(shutil.which("ctr") or "ctr"))
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="lcdbi-", dir="/tmp") as work:
        # The Go anchor keeps a long-running busybox container beside its work.
        root = rootfs.busybox(Path(work, "rootfs"))
        env = Env(workdir=Path(work), address=options.address, rootfs=root)
        results = asyncio.run(
            run_all(env, options.go, options.ctr, options.iterations, options.warmup,
                    options.rounds)
        )  # fmt: skip
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main(sys.argv[1:]))
