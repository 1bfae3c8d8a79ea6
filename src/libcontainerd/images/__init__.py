"""Images on containerd's own stores: import archives, unpack into snapshots, run containers.

``client.images`` is an :class:`ImageService` (async) on :class:`AsyncClient`
and a :class:`BlockingImageService` on the blocking ``Client``, with the same
methods. Images are containerd's: image records, blobs in its content store
with the garbage-collection labels containerd's Go client writes, layers
unpacked into its snapshotter one snapshot per chain ID. So ``ctr`` sees an
image imported here as complete and runs it, and the other way round.

Modules (each owns one noun): :mod:`._service` (the service's calls),
:mod:`._import` and :mod:`._archive` (reading archives), :mod:`._walk` (an
image's tree for a platform), :mod:`._unpack` (layers into snapshots),
:mod:`._content` (blobs, leases, GC labels), :mod:`._pull` (pull and push),
:mod:`._registry` (the distribution protocol over httpx), :mod:`._auth`
(credentials and tokens), :mod:`._hosts` (containerd's ``hosts.toml``), :mod:`._containers` (a
container's root filesystem from an image), :mod:`._users` (named users from
the image's own ``/etc/passwd``), :mod:`._media` and :mod:`._names` (media
types, digests, names and platforms), :mod:`._types` (what is handed out).
"""

from ._auth import Credentials
from ._login import login, logout
from ._names import Platform, host_platform, normalize_name, parse_platform
from ._service import DEFAULT_SNAPSHOTTER, ImageService
from ._sync import BlockingImageService
from ._types import Descriptor, DiskUsage, Image, ImageConfig, Progress, ProgressCallback

__all__ = [
    "DEFAULT_SNAPSHOTTER",
    "BlockingImageService",
    "Credentials",
    "Descriptor",
    "DiskUsage",
    "Image",
    "ImageConfig",
    "ImageService",
    "Platform",
    "Progress",
    "ProgressCallback",
    "host_platform",
    "login",
    "logout",
    "normalize_name",
    "parse_platform",
]
