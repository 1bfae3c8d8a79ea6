"""Image archives written by tools we did not write, and broken ones made from them.

:func:`build` makes a small image without any network: busybox-static's root
(from :mod:`libcontainerd.rootfs`) as the first layer, an application layer
with a non-root user in its own ``/etc/passwd`` and ``/etc/group``, and a
layer that deletes a file of the one below (a whiteout), with a config that
sets entrypoint, command, environment, user, working directory and stop
signal. ``umoci`` builds the OCI layout; ``skopeo`` converts it to an
``oci-archive:`` and a ``docker-archive:`` (the ``docker save`` format).

The broken archives are rewritten from those: the tests need exact faults
(a blob that does not match its name, a manifest with an unknown media type,
an entry that escapes), which no tool writes on purpose.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import subprocess
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from libcontainerd import rootfs

from ..ci import missing

OCI_NAME = "example.com/lcdtest/app:1"
DOCKER_NAME = "docker.io/lcdtest/app:1"
# What the image's own command prints (as user app, in /app).
EXPECTED_OUTPUT = (
    b"uid=1000(app) gid=1000(app) groups=50(staff),1000(app)\n/app\nhi\nhello\ndeleted is gone\n"
)
STOP_SIGNAL = "SIGUSR1"


@dataclass(frozen=True)
class Archives:
    layout: Path  # an OCI image layout folder (umoci), its image tagged "app"
    oci: Path  # skopeo's oci-archive, naming the image OCI_NAME
    docker: Path  # skopeo's docker-archive (docker save format), tagged DOCKER_NAME
    docker_gz: Path  # the same, gzip-compressed
    oci_zstd: Path  # skopeo's oci-archive with zstd-compressed layers, naming OCI_NAME


def tools() -> None:
    """Skip (fail in CI) without the tools that write the archives."""
    for tool in ("umoci", "skopeo"):
        if shutil.which(tool) is None:
            missing(f"{tool} is not installed (apt-get install {tool}; ./run installs it)")


def run(*argv: str) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {done.stderr or done.stdout}")


def build(folder: Path) -> Archives:
    """The image, as a layout and three archives, under ``folder``."""
    tools()
    base = rootfs.busybox(folder / "base")
    app = folder / "app"
    (app / "etc").mkdir(parents=True)
    (app / "app").mkdir()
    passwd = (base / "etc" / "passwd").read_text() + "app:x:1000:1000:app:/app:/bin/sh\n"
    group = (base / "etc" / "group").read_text() + "app:x:1000:\nstaff:x:50:app\n"
    (app / "etc" / "passwd").write_text(passwd)
    (app / "etc" / "group").write_text(group)
    (app / "app" / "greeting").write_text("hello\n")
    (app / "app" / "deleted").write_text("this file is deleted by the next layer\n")
    layout = folder / "layout"
    image = f"{layout}:app"
    run("umoci", "init", "--layout", str(layout))
    run("umoci", "new", "--image", image)
    run("umoci", "insert", "--image", image, str(base), "/")
    run("umoci", "insert", "--image", image, str(app), "/")
    run("umoci", "insert", "--image", image, "--whiteout", "/app/deleted")
    run(
        "umoci", "config", "--image", image,
        "--config.entrypoint", "/bin/sh", "--config.entrypoint", "-c",
        "--config.cmd",
        'id; pwd; echo "$GREETING"; cat greeting; test -e deleted || echo deleted is gone',
        "--config.env", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "--config.env", "GREETING=hi",
        "--config.user", "app",
        "--config.workingdir", "/app",
        "--config.stopsignal", STOP_SIGNAL,
        "--config.label", "org.example.built-by=umoci",
    )  # fmt: skip
    oci = folder / "oci.tar"
    docker = folder / "docker.tar"
    run("skopeo", "copy", "--quiet", f"oci:{image}", f"oci-archive:{oci}:{OCI_NAME}")
    run("skopeo", "copy", "--quiet", f"oci:{image}", f"docker-archive:{docker}:{DOCKER_NAME}")
    docker_gz = folder / "docker.tar.gz"
    with open(docker, "rb") as source, gzip.open(docker_gz, "wb") as target:
        shutil.copyfileobj(source, target)
    oci_zstd = folder / "oci-zstd.tar"
    run(
        "skopeo", "copy", "--quiet", "--dest-compress-format", "zstd",
        f"oci:{image}", f"oci-archive:{oci_zstd}:{OCI_NAME}",
    )  # fmt: skip
    return Archives(layout, oci, docker, docker_gz, oci_zstd)


# --- writing archives by hand ---------------------------------------------------------

Entry = tuple[str, bytes] | tuple[str, str, str]  # (name, data) or (name, "symlink", target)


def write_tar(path: Path, entries: list[Entry]) -> Path:
    """A tar of regular files and symbolic links, in this order."""
    with tarfile.open(path, "w") as tar:
        for entry in entries:
            info = tarfile.TarInfo(entry[0])
            if len(entry) == 3:
                info.type, info.linkname = tarfile.SYMTYPE, entry[2]
                tar.addfile(info)
            else:
                info.size = len(entry[1])
                tar.addfile(info, io.BytesIO(entry[1]))
    return path


def _blob_name(data: bytes) -> tuple[str, str]:
    hexdigest = hashlib.sha256(data).hexdigest()
    return f"sha256:{hexdigest}", f"blobs/sha256/{hexdigest}"


def layout_entries(layout: Path) -> dict[str, bytes]:
    """Every file of an OCI layout folder, by its path in the layout."""
    return {
        path.relative_to(layout).as_posix(): path.read_bytes()
        for path in sorted(layout.rglob("*"))
        if path.is_file()
    }


def manifest_of(files: dict[str, bytes]) -> tuple[dict[str, Any], str]:
    """The layout's (only) manifest, and its path."""
    index = json.loads(files["index.json"])
    digest = index["manifests"][0]["digest"]
    path = "blobs/sha256/" + digest.split(":", 1)[1]
    return json.loads(files[path]), path


def rewritten_oci(
    layout: Path,
    path: Path,
    *,
    manifest: Callable[[dict[str, Any]], None] | None = None,
    config: Callable[[dict[str, Any]], None] | None = None,
    index_entry: Callable[[dict[str, Any]], None] | None = None,
    name: str = OCI_NAME,
) -> Path:
    """An OCI archive of the layout with its manifest, config or index entry changed."""
    files = layout_entries(layout)
    document, manifest_path = manifest_of(files)
    if config is not None:
        config_path = "blobs/sha256/" + document["config"]["digest"].split(":", 1)[1]
        config_document = json.loads(files[config_path])
        config(config_document)
        data = json.dumps(config_document).encode()
        digest, new_path = _blob_name(data)
        files[new_path] = data
        document["config"].update(digest=digest, size=len(data))
    if manifest is not None:
        manifest(document)
    data = json.dumps(document).encode()
    digest, new_path = _blob_name(data)
    del files[manifest_path]
    files[new_path] = data
    entry = {
        "mediaType": document.get("mediaType", "application/vnd.oci.image.manifest.v1+json"),
        "digest": digest,
        "size": len(data),
        "annotations": {"org.opencontainers.image.ref.name": name},
    }
    if index_entry is not None:
        index_entry(entry)
    files["index.json"] = json.dumps({"schemaVersion": 2, "manifests": [entry]}).encode()
    return write_tar(path, list(files.items()))


def two_platforms(layout: Path, path: Path, other: str, name: str = OCI_NAME) -> Path:
    """An OCI archive whose index names the layout's image for this machine and for ``other``.

    ``other`` (``os/arch``) gets its own config (same layers, its own
    ``architecture``) and manifest, as a multi-platform build writes them.
    """
    files = layout_entries(layout)
    document, _ = manifest_of(files)
    config_path = "blobs/sha256/" + document["config"]["digest"].split(":", 1)[1]
    config = json.loads(files[config_path])
    entries = []
    for os_name, architecture in ((config["os"], config["architecture"]), other.split("/")):
        changed = {**config, "os": os_name, "architecture": architecture}
        config_data = json.dumps(changed).encode()
        config_digest, config_blob = _blob_name(config_data)
        files[config_blob] = config_data
        manifest = {**document, "config": {**document["config"], "digest": config_digest,
                                           "size": len(config_data)}}  # fmt: skip
        data = json.dumps(manifest).encode()
        digest, blob = _blob_name(data)
        files[blob] = data
        entries.append(
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": digest,
                "size": len(data),
                "platform": {"os": os_name, "architecture": architecture},
            }
        )
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
             "manifests": entries}  # fmt: skip
    index_data = json.dumps(index).encode()
    digest, blob = _blob_name(index_data)
    files[blob] = index_data
    files["index.json"] = json.dumps(
        {
            "schemaVersion": 2,
            "manifests": [
                {
                    "mediaType": "application/vnd.oci.image.index.v1+json",
                    "digest": digest,
                    "size": len(index_data),
                    "annotations": {"org.opencontainers.image.ref.name": name},
                }
            ],
        }
    ).encode()
    return write_tar(path, list(files.items()))
