"""Pull and push against a local registry, beside ctr and skopeo: ``python -m bench.registry``.

One run, on one containerd (``--containerd``, default the system's 1.6)
started under /tmp, and Debian's reference registry on 127.0.0.1 (plain
HTTP, its storage under the same folder). The image is part 1's realistic
one (Debian minbase in five layers, ``tests/integration/minbase_image.py``)
when its root is provisioned, else the small test image. Interleaved, per
round, each from an empty namespace (images removed with containerd's
synchronous GC between steps):

1. ours: ``images.pull`` with unpacking, as it chooses (on 2.x through
   containerd's Transfer service, server side), and with ``transfer=False``
   (this client's pull, the only one on 1.6 and 1.7); ctr: ``ctr images pull
   --plain-http`` (unpacks too; on 2.x through the Transfer service);
2. the same pulls again with the image present (only the manifest checked);
3. ours: ``images.push`` to an empty registry, and skopeo: ``skopeo copy``
   of containerd's export (``oci-archive:``) to another empty one.

Medians in milliseconds and the ratios the issue names (pull <= 0.8x ctr,
present <= 1.0x ctr, push <= 1.0x skopeo), plus the client's CPU per pulled
MiB, and its peak RSS growth while pulling an image of one 200 MiB layer
(``--big-layer-mib``; the target is <= 64 MiB). Leaves nothing behind.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Awaitable
from pathlib import Path

from libcontainerd import AsyncClient, Supervisor
from libcontainerd.images import Image, ImageService
from tests.integration import image_archives, minbase_image
from tests.integration.registries import Registry

from .images import write_big_archive
from .runner import remove_workdir

NAMESPACE = "bench-registry"
# skopeo names an image of an oci-archive by its tag (org.opencontainers.image.ref.name).
SKOPEO_COPY = ("skopeo", "copy", "--quiet", "--dest-tls-verify=false")
SKOPEO_COPY = ("skopeo", "copy", "--quiet", "--dest-tls-verify=false")


def _archive(folder: Path) -> tuple[Path, str]:
    """An oci-archive of the image to pull, and what it is."""
    try:
        minbase_image.tarball()
    except BaseException:  # not provisioned (pytest's skip is a BaseException)
        return image_archives.build(folder).oci, "small test image (3 layers)"
    return minbase_image.build(folder).oci, "Debian minbase (5 layers)"


def _hosts(folder: Path, registry: Registry) -> Path:
    (folder / registry.host).mkdir(parents=True, exist_ok=True)
    (folder / registry.host / "hosts.toml").write_text(f'server = "http://{registry.host}"\n')
    return folder


def _run(argv: list[str]) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {done.stderr or done.stdout}")


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def _reset_peak_rss() -> int:
    """Reset VmHWM to the resident set now (clear_refs 5); the resident set, in KiB."""
    Path("/proc/self/clear_refs").write_text("5")
    return _status_kib("VmRSS")


async def _timed(step: Awaitable[object]) -> float:
    started = time.perf_counter()
    await step
    return time.perf_counter() - started


async def _measure(
    rounds: int, workdir: Path, containerd: str | None, big_mib: int
) -> dict[str, object]:
    archive, what = _archive(workdir / "image")
    ctr = shutil.which("ctr") if containerd is None else str(Path(containerd).with_name("ctr"))
    assert ctr is not None, "no ctr"
    times: dict[str, list[float]] = {
        name: []
        for name in (
            "pull ours",
            "pull ours client-side",
            "pull ctr",
            "present ours",
            "present ctr",
            "push ours",
        )
    }
    times["push skopeo"] = []
    figures: dict[str, object] = {"image": what}
    daemon = Supervisor(workdir / "s", workdir / "r", containerd=containerd or "containerd")
    with Registry(workdir / "registry") as source:
        async with daemon, AsyncClient(daemon.address, NAMESPACE) as client:
            service = client.images
            (imported,) = await service.import_archive(archive)
            name = f"{source.host}/bench/minbase:1"
            hosts = _hosts(workdir / "certs.d", source)
            await service.push(imported.name, name, hosts_dir=hosts)
            await service.remove(imported.name)
            figures["compressed MiB"] = round(
                sum(layer.size for layer in imported.layers) / 2**20, 1
            )
            ctr_pull = [
                ctr,
                "-a",
                daemon.address,
                "-n",
                NAMESPACE,
                "images",
                "pull",
                "--plain-http",
            ]
            ctr_pull += ["--hosts-dir", str(hosts), name]

            async def empty() -> None:
                for image in await service.list():
                    await service.remove(image.name)

            for index in range(rounds):
                # 1. pull and unpack into an empty namespace
                before = resource.getrusage(resource.RUSAGE_SELF)
                started = time.perf_counter()
                pulled: Image = await service.pull(name, hosts_dir=hosts)
                times["pull ours"].append(time.perf_counter() - started)
                after = resource.getrusage(resource.RUSAGE_SELF)
                if index == 0:
                    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
                    mib = sum(layer.size for layer in pulled.layers) / 2**20
                    figures["client CPU ms per pulled MiB"] = round(1000 * cpu / mib, 2)
                times["present ours"].append(await _timed(service.pull(name, hosts_dir=hosts)))
                await empty()
                here = service.pull(name, hosts_dir=hosts, transfer=False)
                times["pull ours client-side"].append(await _timed(here))
                await empty()
                started = time.perf_counter()
                await asyncio.to_thread(_run, ctr_pull)
                times["pull ctr"].append(time.perf_counter() - started)
                started = time.perf_counter()
                await asyncio.to_thread(_run, ctr_pull)
                times["present ctr"].append(time.perf_counter() - started)
                # 3. push to empty registries: ours, then skopeo from containerd's export
                exported = workdir / f"export-{index}.tar"
                await service.export(exported, [name])
                for who in ("ours", "skopeo"):
                    with Registry(workdir / f"target-{who}-{index}") as target:
                        target_hosts = _hosts(workdir / f"certs.d-{who}-{index}", target)
                        destination = f"{target.host}/bench/minbase:1"
                        started = time.perf_counter()
                        if who == "ours":
                            await service.push(name, destination, hosts_dir=target_hosts)
                        else:
                            await asyncio.to_thread(
                                _run,
                                [
                                    *SKOPEO_COPY,
                                    f"oci-archive:{exported}:1",
                                    f"docker://{destination}",
                                ],
                            )
                        times[f"push {who}"].append(time.perf_counter() - started)
                    shutil.rmtree(workdir / f"target-{who}-{index}", ignore_errors=True)
                exported.unlink()
                await empty()
            figures[f"client peak RSS growth MiB, pulling a {big_mib} MiB layer"] = round(
                await _big_layer_growth(service, source, hosts, workdir, big_mib), 1
            )
    medians: dict[str, object] = {
        f"{key} ms": round(1000 * statistics.median(values), 1) for key, values in times.items()
    }

    def ratio(ours: str, theirs: str) -> float:
        return round(statistics.median(times[ours]) / statistics.median(times[theirs]), 2)

    medians["pull / ctr pull (target <= 0.8)"] = ratio("pull ours", "pull ctr")
    medians["client-side pull / ctr pull"] = ratio("pull ours client-side", "pull ctr")
    medians["present / ctr present (target <= 1.0)"] = ratio("present ours", "present ctr")
    medians["push / skopeo copy (target <= 1.0)"] = ratio("push ours", "push skopeo")
    return {**figures, "rounds": rounds, **medians}


async def _big_layer_growth(
    service: ImageService, registry: Registry, hosts: Path, workdir: Path, mib: int
) -> float:
    """The client's peak RSS growth (MiB) over a pull of an image of one ``mib`` MiB layer."""
    archive = write_big_archive(workdir / "big.tar", mib)
    (imported,) = await service.import_archive(archive, unpack=False)
    archive.unlink()
    name = f"{registry.host}/bench/noise:1"
    await service.push(imported.name, name, hosts_dir=hosts)
    await service.remove(imported.name)
    before = _reset_peak_rss()
    await service.pull(name, hosts_dir=hosts, unpack=False)
    peak = _status_kib("VmHWM")
    await service.remove(name)
    return (peak - before) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--containerd", default=None, help="containerd binary (ctr beside it)")
    parser.add_argument("--big-layer-mib", type=int, default=200)
    parser.add_argument("--json", action="store_true")
    arguments = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="lcd-bench-registry-"))
    try:
        results = asyncio.run(
            _measure(arguments.rounds, workdir, arguments.containerd, arguments.big_layer_mib)
        )
    finally:
        remove_workdir(workdir)
    if arguments.json:
        print(json.dumps(results, indent=2))
        return
    for key, value in results.items():
        print(f"{key:60} {value}")


if __name__ == "__main__":
    main()
