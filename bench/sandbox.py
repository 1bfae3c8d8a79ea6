"""What user namespaces and the sandbox preset cost: ``python -m bench.sandbox [--rounds N]``.

Interleaved, per round, one lifecycle each (create, start ``/bin/true``,
wait, delete the task, delete): on a busybox root directory with the
default spec and with ``oci.with_sandbox()`` (an automatic range allocated
and freed, read-only root, limits); on a busybox image with the default
spec and with ``oci.with_user_namespace()`` (its snapshot prepared on the
image's remapped one); and on a fresh busybox root directory chowned in
place to the range (``chown_root=True``). The image's first user-namespaced create, which
remaps the image (chowns every file into a new snapshot), is timed on its
own. Medians in milliseconds and the ratios the issue names (sandbox over
default: aim <= 1.2). Starts its own containerd under /tmp; leaves nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import io
import json
import tarfile
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from libcontainerd import AsyncClient, Supervisor, oci, rootfs
from libcontainerd.images import Image

from .measure import medians_ms, print_medians
from .runner import remove_workdir

NAMESPACE = "bench-sandbox"
IMAGE = "bench.local/busybox:1"


def _docker_archive(root: Path, dest: Path, layer_tar: Path | None = None) -> Path:
    """A ``docker save`` archive of one layer holding ``root`` (or the tarball ``layer_tar``):
    the bench's image, offline."""
    if layer_tar is not None:
        data = layer_tar.read_bytes()
    else:
        layer = io.BytesIO()
        with tarfile.open(fileobj=layer, mode="w") as tar:
            for path in sorted(root.rglob("*")):
                tar.add(path, arcname=str(path.relative_to(root)), recursive=False)
        data = layer.getvalue()
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/bin/true"]},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(data).hexdigest()]},
    }
    with tarfile.open(dest, "w") as archive:
        for name, content in (
            ("layer.tar", data),
            ("config.json", json.dumps(config).encode()),
            (
                "manifest.json",
                json.dumps(
                    [{"Config": "config.json", "RepoTags": [IMAGE], "Layers": ["layer.tar"]}]
                ).encode(),
            ),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    return dest


async def _lifecycle(
    client: AsyncClient, container_id: str, spec: oci.Spec, image: Image | None = None
) -> None:
    await client.create(container_id, spec, image=image)
    await client.start(container_id)
    await client.wait(container_id)
    await client.delete_task(container_id)
    await client.delete(container_id)


async def _measure(rounds: int, workdir: Path, layer_tar: Path | None) -> dict[str, float]:
    workdir.chmod(0o755)  # a mapped root passes through it to its bundle and root
    root = rootfs.busybox(workdir / "rootfs")
    archive = _docker_archive(root, workdir / "image.tar", layer_tar)
    times: dict[str, list[float]] = {
        "lifecycle default (busybox dir)": [],
        "lifecycle sandbox (busybox dir)": [],
        "lifecycle user namespace (fresh busybox dir, chown_root)": [],
        "lifecycle default (image)": [],
        "lifecycle user namespace (image, remapped reused)": [],
    }
    async with (
        Supervisor(workdir / "s", workdir / "r") as daemon,
        AsyncClient(daemon.address, NAMESPACE) as client,
    ):
        [image] = await client.images.import_archive(archive)
        try:
            started = time.perf_counter()
            await _lifecycle(
                client, "first", oci.image_spec(image, oci.with_user_namespace()), image
            )
            first = time.perf_counter() - started
            default = oci.default_spec(["/bin/true"], root)
            sandbox = oci.default_spec(["/bin/true"], root, oci.with_sandbox())
            steps: dict[str, Callable[[str], Awaitable[None]]] = {
                "lifecycle default (busybox dir)": lambda cid: _lifecycle(client, cid, default),
                "lifecycle sandbox (busybox dir)": lambda cid: _lifecycle(client, cid, sandbox),
                "lifecycle default (image)": lambda cid: _lifecycle(
                    client, cid, oci.image_spec(image), image
                ),
                "lifecycle user namespace (image, remapped reused)": lambda cid: _lifecycle(
                    client, cid, oci.image_spec(image, oci.with_user_namespace()), image
                ),
            }

            async def chowned(cid: str) -> None:
                spec = oci.default_spec(
                    ["/bin/true"], fresh[cid], oci.with_user_namespace(chown_root=True)
                )
                await _lifecycle(client, cid, spec)

            steps["lifecycle user namespace (fresh busybox dir, chown_root)"] = chowned
            fresh: dict[str, Path] = {}
            for index in range(rounds):
                cid = f"c{index}-{len(steps) - 1}"
                fresh[cid] = rootfs.busybox(workdir / "fresh" / cid)  # built outside the timing
                for number, (name, step) in enumerate(steps.items()):
                    began = time.perf_counter()
                    await step(f"c{index}-{number}")
                    times[name].append(time.perf_counter() - began)
        finally:
            await client.images.remove(image.name)
    medians = medians_ms(times)
    medians["first user-namespaced lifecycle (image, remap)"] = 1000 * first
    medians["sandbox / default (busybox dir)"] = (
        medians["lifecycle sandbox (busybox dir)"] / medians["lifecycle default (busybox dir)"]
    )
    medians["user namespace / default (image)"] = (
        medians["lifecycle user namespace (image, remapped reused)"]
        / medians["lifecycle default (image)"]
    )
    return medians


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--layer",
        type=Path,
        help="the image's one layer as a tarball (e.g. .cache/minbase/bookworm-minbase.tar;"
        " it must have /bin/true), instead of the busybox root",
    )
    arguments = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="lcd-bench-sandbox-"))
    try:
        medians = asyncio.run(_measure(arguments.rounds, workdir, arguments.layer))
    finally:
        remove_workdir(workdir)
    print_medians(medians, as_json=arguments.json, width=58)


if __name__ == "__main__":
    main()
