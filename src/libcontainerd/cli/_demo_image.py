"""The demo's image, built on this machine without any network: an OCI image layout archive.

Two layers: busybox-static's root filesystem (:func:`rootfs.busybox`), and
an application layer adding a user ``demo`` (uid 1000) to ``/etc/passwd``
and ``/etc/group`` with its home and a file in it. The config sets an
entrypoint, a command, the environment, the user and the working
directory, so running it shows each of them taking effect. Written with
the standard library alone (tar, JSON, sha256), so the demo needs no
image tool either.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from .. import rootfs
from ..images import host_platform

__all__ = ["DemoImage", "build_demo_image"]

USER: Final = "demo"
HOME: Final = "/home/demo"
ENTRYPOINT: Final = ("/bin/sh", "-c")
COMMAND: Final = 'id; pwd; echo "$GREETING"; cat greeting'
GREETING: Final = "hello from the image's environment"
FILE_TEXT: Final = "and from a file of its second layer\n"

_LAYER: Final = "application/vnd.oci.image.layer.v1.tar"
_CONFIG: Final = "application/vnd.oci.image.config.v1+json"
_MANIFEST: Final = "application/vnd.oci.image.manifest.v1+json"


@dataclass(frozen=True)
class DemoImage:
    """Where the archive is and what went into it (for the demo's lines)."""

    archive: Path
    layers: int
    size: int  # bytes of the archive


def build_demo_image(folder: Path, name: str) -> DemoImage:
    """Write the image's archive under ``folder`` (created), naming the image ``name``.

    Raises FileNotFoundError or FailedPrecondition (no usable busybox-static), OSError.
    """
    folder.mkdir(parents=True, exist_ok=True)
    base = rootfs.busybox(folder / "base")
    first = _layer_from_folder(base)
    passwd = (base / "etc" / "passwd").read_text() + f"{USER}:x:1000:1000:{USER}:{HOME}:/bin/sh\n"
    group = (base / "etc" / "group").read_text() + f"{USER}:x:1000:\n"
    second = _layer_from_files(
        {
            "etc/passwd": (passwd.encode(), 0o644, 0),
            "etc/group": (group.encode(), 0o644, 0),
            f"{HOME.lstrip('/')}/greeting": (FILE_TEXT.encode(), 0o644, 1000),
        },
        directories={"home": 0, HOME.lstrip("/"): 1000},
    )
    layers = [first, second]
    platform = host_platform()
    config = _json(
        {
            "architecture": platform.architecture,
            "os": platform.os,
            "config": {
                "Entrypoint": list(ENTRYPOINT),
                "Cmd": [COMMAND],
                "Env": [
                    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    f"GREETING={GREETING}",
                ],
                "User": USER,
                "WorkingDir": HOME,
            },
            "rootfs": {"type": "layers", "diff_ids": [_digest(layer) for layer in layers]},
            "history": [{"created_by": "busybox-static root"}, {"created_by": "user demo"}],
        }
    )
    manifest = _json(
        {
            "schemaVersion": 2,
            "mediaType": _MANIFEST,
            "config": _descriptor(_CONFIG, config),
            "layers": [_descriptor(_LAYER, layer) for layer in layers],
        }
    )
    entry = _descriptor(_MANIFEST, manifest)
    entry["annotations"] = {"io.containerd.image.name": name}
    index = _json({"schemaVersion": 2, "manifests": [entry]})
    archive = folder / "image.tar"
    with tarfile.open(archive, "w") as tar:
        _add(tar, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        for blob in (*layers, config, manifest):
            _add(tar, "blobs/sha256/" + _digest(blob).split(":", 1)[1], blob)
        _add(tar, "index.json", index)
    return DemoImage(archive, len(layers), archive.stat().st_size)


def _layer_from_folder(root: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(root.rglob("*")):
            info = tar.gettarinfo(str(path), path.relative_to(root).as_posix())
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if info.isreg():
                with open(path, "rb") as file:
                    tar.addfile(info, file)
            else:
                tar.addfile(info)
    return buffer.getvalue()


def _layer_from_files(
    files: dict[str, tuple[bytes, int, int]], directories: dict[str, int]
) -> bytes:
    """A layer of these directories (name -> owner) and files (name -> data, mode, owner)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, owner in directories.items():
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.uid, info.gid = tarfile.DIRTYPE, 0o755, owner, owner
            tar.addfile(info)
        for name, (data, mode, owner) in files.items():
            _add(tar, name, data, mode, owner)
    return buffer.getvalue()


def _add(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644, owner: int = 0) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.uid, info.gid = len(data), mode, owner, owner
    tar.addfile(info, io.BytesIO(data))


def _json(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


def _digest(blob: bytes) -> str:
    return "sha256:" + hashlib.sha256(blob).hexdigest()


def _descriptor(media_type: str, blob: bytes) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": _digest(blob), "size": len(blob)}
