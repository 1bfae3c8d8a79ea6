"""``lcd images``, ``import`` (``load``), ``export`` (``save``), ``tag``, ``rmi``, ``image prune``,
``image inspect`` and ``system df``: the namespace's images (:mod:`libcontainerd.images`).

Names are Docker's: ``busybox`` is ``docker.io/library/busybox:latest``.
``lcd import -`` reads the archive from stdin and ``lcd export -o -`` writes
it to stdout. Imports and exports show live progress bars on a terminal.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import sys
from collections.abc import Iterator
from typing import IO, Any

import click

from ..images import Image, Progress, ProgressCallback
from ._app import CONTEXT, Settings, connect, json_option, pass_settings
from ._failures import Failure
from ._output import Output, ago, iso

__all__ = ["COMMANDS", "human_size"]


def human_size(size: int) -> str:
    """Bytes as Docker prints them: ``1.2MB`` (powers of 1000)."""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f}{unit}" if unit == "B" else f"{value:.3g}{unit}"
        value /= 1000
    return f"{size}B"  # pragma: no cover - the loop returns


@contextlib.contextmanager
def _progress_bars(out: Output) -> Iterator[ProgressCallback | None]:
    """A progress callback drawing a bar per blob and layer on stderr (a terminal only)."""
    if not out.stderr.is_terminal:
        yield None
        return
    from rich.progress import BarColumn, DownloadColumn, TextColumn
    from rich.progress import Progress as Bars

    bars = Bars(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        console=out.stderr,
        transient=True,
    )
    tasks: dict[tuple[str, str], Any] = {}

    def show(step: Progress) -> None:
        key = (step.phase, step.item)
        task = tasks.get(key)
        if task is None:
            label = step.item.rsplit("/", 1)[-1].removeprefix("sha256:")[:12]
            task = tasks[key] = bars.add_task(f"{step.phase:6} {label}", total=step.total)
        bars.update(task, completed=step.done, total=step.total)

    with bars:
        yield show


def _image_record(image: Image) -> dict[str, Any]:
    record = dataclasses.asdict(image)
    record["created"], record["updated"] = iso(image.created), iso(image.updated)
    record["chain_id"] = image.chain_id
    return record


# --- lcd images -----------------------------------------------------------------------


@click.command(context_settings=CONTEXT)
@click.option("--quiet", "-q", is_flag=True, help="only the names")
@json_option
@pass_settings
def images(settings: Settings, quiet: bool, as_json: bool) -> None:
    """List the images of the namespace."""

    async def work() -> list[Image]:
        async with connect(settings, Output(), start_daemon=False) as client:
            return await client.images.list()

    listing = asyncio.run(work())
    out = Output()
    if as_json:
        out.json([_image_record(image) for image in listing])
    elif quiet:
        for image in listing:
            click.echo(image.name)
    else:
        out.table(
            ("NAME", "DIGEST", "PLATFORM", "SIZE", "CREATED"),
            (
                (
                    image.name,
                    image.digest.removeprefix("sha256:")[:12],
                    image.platform or "(incomplete)",
                    human_size(image.size),
                    ago(image.created),
                )
                for image in listing
            ),
        )


# --- lcd import / load ----------------------------------------------------------------


@click.command(name="import", context_settings=CONTEXT)
@click.option("--input", "-i", "input_path", metavar="FILE", help="the archive (as docker load)")
@click.option("--name", metavar="NAME", help="the name of an archive's only image")
@click.option("--platform", metavar="OS/ARCH", help="the platform to import (default: this one)")
@click.option("--no-unpack", is_flag=True, help="leave the layers packed until a container runs")
@click.argument("archive", required=False, metavar="ARCHIVE|-")
@pass_settings
def import_(
    settings: Settings,
    archive: str | None,
    input_path: str | None,
    name: str | None,
    platform: str | None,
    no_unpack: bool,
) -> None:
    """Import the images of an archive (OCI layout or docker save; '-' reads stdin)."""
    source = archive or input_path
    if source is None:
        raise click.UsageError("give the archive: a path, or '-' for stdin")
    out = Output()

    async def work(stream: str | IO[bytes]) -> list[Image]:
        async with connect(settings, out) as client:
            with _progress_bars(out) as progress:
                return await client.images.import_archive(
                    stream, name=name, platform=platform, progress=progress, unpack=not no_unpack
                )

    if source == "-":
        if sys.stdin.isatty():
            raise Failure("lcd import -: stdin is a terminal, not an archive")
        imported = asyncio.run(work(sys.stdin.buffer))
    else:
        imported = asyncio.run(work(source))
    for image in imported:
        click.echo(f"Loaded image: {image.name}")


# --- lcd export / save ----------------------------------------------------------------


@click.command(context_settings=CONTEXT)
@click.option("--output", "-o", metavar="FILE|-", help="the archive to write ('-': stdout)")
@click.option("--platform", metavar="OS/ARCH", help="the platform to export (default: this one)")
@click.argument("names", nargs=-1, required=True, metavar="NAME...")
@pass_settings
def export(
    settings: Settings, names: tuple[str, ...], output: str | None, platform: str | None
) -> None:
    """Write images to an archive (OCI layout with docker's manifest.json)."""
    target = output or "-"
    out = Output()
    if target == "-" and sys.stdout.isatty():
        raise Failure("lcd export: refusing to write an archive to a terminal; use -o FILE")

    async def work(destination: str | IO[bytes]) -> None:
        async with connect(settings, out, start_daemon=False) as client:
            with _progress_bars(out) as progress:
                await client.images.export(
                    destination, list(names), platform=platform, progress=progress
                )

    asyncio.run(work(sys.stdout.buffer if target == "-" else target))
    if target == "-":
        sys.stdout.buffer.flush()


# --- lcd tag / rmi / image prune / image inspect / system df --------------------------


@click.command(context_settings=CONTEXT)
@click.argument("source", metavar="IMAGE")
@click.argument("target", metavar="NEW_NAME")
@pass_settings
def tag(settings: Settings, source: str, target: str) -> None:
    """Give IMAGE another name."""

    async def work() -> Image:
        async with connect(settings, Output(), start_daemon=False) as client:
            return await client.images.tag(source, target)

    click.echo(asyncio.run(work()).name)


@click.command(context_settings=CONTEXT)
@click.argument("names", nargs=-1, required=True, metavar="IMAGE...")
@pass_settings
def rmi(settings: Settings, names: tuple[str, ...]) -> None:
    """Remove images (what no other image or container uses is freed at once)."""

    async def work() -> list[str]:
        removed = []
        async with connect(settings, Output(), start_daemon=False) as client:
            for name in names:
                image = await client.images.get(name)
                await client.images.remove(image.name)
                removed.append(image.name)
        return removed

    for name in asyncio.run(work()):
        click.echo(f"Untagged: {name}")


@click.group(context_settings=CONTEXT)
def image() -> None:
    """Manage images: prune, inspect (see also lcd images, import, export, tag, rmi)."""


@image.command(name="prune", context_settings=CONTEXT)
@pass_settings
def prune(settings: Settings) -> None:
    """Remove every image no container was made from."""

    async def work() -> list[str]:
        async with connect(settings, Output(), start_daemon=False) as client:
            return await client.images.prune()

    for name in asyncio.run(work()):
        click.echo(f"Deleted: {name}")


@image.command(name="inspect", context_settings=CONTEXT)
@click.argument("names", nargs=-1, required=True, metavar="IMAGE...")
@pass_settings
def inspect(settings: Settings, names: tuple[str, ...]) -> None:
    """Print images as JSON: digest, platform, layers, diff IDs and config."""

    async def work() -> list[Image]:
        async with connect(settings, Output(), start_daemon=False) as client:
            return [await client.images.get(name) for name in names]

    Output().json([_image_record(found) for found in asyncio.run(work())])


@click.group(context_settings=CONTEXT)
def system() -> None:
    """The namespace's use of containerd's stores."""


@system.command(name="df", context_settings=CONTEXT)
@json_option
@pass_settings
def df(settings: Settings, as_json: bool) -> None:
    """Disk space taken by images: blobs in the content store, and snapshots."""

    async def work() -> tuple[int, Any]:
        async with connect(settings, Output(), start_daemon=False) as client:
            return len(await client.images.list()), await client.images.usage()

    count, usage = asyncio.run(work())
    out = Output()
    if as_json:
        out.json(
            {
                "images": count,
                "content": usage.content,
                "snapshots": usage.snapshots,
                "total": usage.total,
            }
        )
        return
    out.table(
        ("TYPE", "COUNT", "SIZE"),
        [
            ("images (content)", str(count), human_size(usage.content)),
            ("snapshots", "-", human_size(usage.snapshots)),
            ("total", "-", human_size(usage.total)),
        ],
    )


def _alias(command: click.Command, name: str) -> click.Command:
    """The same command under another name (Docker's load and save)."""
    twin = click.Command(
        name,
        callback=command.callback,
        params=command.params,
        help=f"{command.help} (as lcd {command.name})" if command.help else None,
        context_settings=command.context_settings,
    )
    return twin


COMMANDS: tuple[click.Command, ...] = (
    images,
    import_,
    _alias(import_, "load"),
    export,
    _alias(export, "save"),
    tag,
    rmi,
    image,
    system,
)
