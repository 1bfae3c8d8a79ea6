"""BlockingImageService: the blocking Client's ``images``, delegating to the async service."""

from __future__ import annotations

import builtins
import os
from collections.abc import Callable, Coroutine, Iterable
from typing import IO, Any, TypeVar

from ._auth import Auth
from ._service import ImageService
from ._types import DiskUsage, Image, ProgressCallback

__all__ = ["BlockingImageService"]

T = TypeVar("T")


class BlockingImageService:
    """The twin of :class:`ImageService`: same methods, arguments, results and errors.

    Each call runs on the blocking Client's loop thread; a ``progress``
    callback runs there too.
    """

    def __init__(
        self, service: ImageService, run: Callable[[Coroutine[Any, Any, Any]], Any]
    ) -> None:
        self._service = service
        self._run = run

    @property
    def snapshotter(self) -> str:
        return self._service.snapshotter

    def list(self) -> builtins.list[Image]:
        return self._call(self._service.list())

    def get(self, name: str, *, platform: str | None = None) -> Image:
        return self._call(self._service.get(name, platform=platform))

    def resolve(self, image: str | Image) -> Image:
        return self._call(self._service.resolve(image))

    def tag(self, name: str, new_name: str) -> Image:
        return self._call(self._service.tag(name, new_name))

    def remove(self, name: str) -> None:
        return self._call(self._service.remove(name))

    def prune(self) -> builtins.list[str]:
        return self._call(self._service.prune())

    def usage(self) -> DiskUsage:
        return self._call(self._service.usage())

    def import_archive(
        self,
        source: str | os.PathLike[str] | IO[bytes],
        *,
        name: str | None = None,
        platform: str | None = None,
        progress: ProgressCallback | None = None,
        unpack: bool = True,
    ) -> builtins.list[Image]:
        return self._call(
            self._service.import_archive(
                source, name=name, platform=platform, progress=progress, unpack=unpack
            )
        )

    def pull(
        self,
        reference: str,
        *,
        platform: str | None = None,
        auth: Auth | None = None,
        hosts_dir: str | os.PathLike[str] | None = None,
        progress: ProgressCallback | None = None,
        unpack: bool = True,
        snapshotter: str | None = None,
        transfer: bool | None = None,
    ) -> Image:
        return self._call(
            self._service.pull(
                reference,
                platform=platform,
                auth=auth,
                hosts_dir=hosts_dir,
                progress=progress,
                unpack=unpack,
                snapshotter=snapshotter,
                transfer=transfer,
            )
        )

    def push(
        self,
        name: str,
        reference: str | None = None,
        *,
        auth: Auth | None = None,
        hosts_dir: str | os.PathLike[str] | None = None,
        progress: ProgressCallback | None = None,
        platform: str | None = None,
    ) -> str:
        return self._call(
            self._service.push(
                name,
                reference,
                auth=auth,
                hosts_dir=hosts_dir,
                progress=progress,
                platform=platform,
            )
        )

    def export(
        self,
        destination: str | os.PathLike[str] | IO[bytes],
        names: str | Iterable[str],
        *,
        platform: str | None = None,
        progress: ProgressCallback | None = None,
    ) -> None:
        return self._call(
            self._service.export(destination, names, platform=platform, progress=progress)
        )

    def unpack(
        self,
        image: str | Image,
        *,
        snapshotter: str | None = None,
        progress: ProgressCallback | None = None,
    ) -> None:
        return self._call(self._service.unpack(image, snapshotter=snapshotter, progress=progress))

    def _call(self, work: Coroutine[Any, Any, T]) -> T:
        result: T = self._run(work)
        return result
