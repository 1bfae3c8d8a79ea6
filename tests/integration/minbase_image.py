"""A realistic image: Debian's minbase root (``debootstrap --variant=minbase bookworm``), layered.

The root is provisioned once by ``scripts/debian_minbase.py`` (``./run tests``
does it) as a tarball under ``.cache/minbase``. :func:`build` unpacks it and
layers it with ``umoci`` (a tool we did not write):

1. the root without ``/usr/share`` (hard links such as ``gunzip`` and
   ``uncompress``, setuid programs such as ``su``);
2. ``/usr/share``;
3. an application layer: a non-root user ``app`` (uid 1000, also in group
   ``staff``) added to the root's own ``/etc/passwd`` and ``/etc/group``, its
   home, and ``/opt/app/conf`` with two files;
4. a whiteout of ``/etc/motd`` (a file of layer 1);
5. ``/opt/app/conf`` again, made opaque, with one new file: the two below
   are hidden.

``skopeo`` then writes it as an ``oci-archive:`` and a ``docker-archive:``
(the ``docker save`` format).
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from ..ci import missing
from .image_archives import run, tools

REPO = Path(__file__).resolve().parents[2]
OCI_NAME = "example.com/lcdtest/minbase:12"
DOCKER_NAME = "docker.io/lcdtest/minbase:12"
USER = "app"
HOME = "/home/app"
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
LAYERS = 5


@dataclass(frozen=True)
class Minbase:
    oci: Path  # skopeo's oci-archive (gzip layers, as umoci wrote them), naming OCI_NAME
    docker: Path  # skopeo's docker-archive (uncompressed layers), tagged DOCKER_NAME


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "debian_minbase", REPO / "scripts" / "debian_minbase.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tarball() -> Path:
    """The provisioned minbase tarball; skips (fails in CI) when it is not there."""
    found: Path | None = _script().cached()
    if found is None:
        missing(
            "no Debian minbase root in .cache/minbase"
            " (python3 scripts/debian_minbase.py makes it; ./run tests does)"
        )
    return found


def build(folder: Path) -> Minbase:
    """The layered image as two archives under ``folder``."""
    tools()
    source = tarball()
    root = folder / "root"
    root.mkdir(parents=True)
    subprocess.run(["tar", "--numeric-owner", "-xpf", str(source), "-C", str(root)], check=True)
    share = folder / "share"
    (root / "usr" / "share").rename(share)
    (root / "usr" / "share").mkdir(mode=0o755)
    app = _app_layer(folder / "app", root)
    conf = folder / "conf"
    conf.mkdir()
    (conf / "new.conf").write_text("only this one\n")

    layout = folder / "layout"
    image = f"{layout}:minbase"
    run("umoci", "init", "--layout", str(layout))
    run("umoci", "new", "--image", image)
    run("umoci", "insert", "--image", image, str(root), "/")
    run("umoci", "insert", "--image", image, str(share), "/usr/share")
    run("umoci", "insert", "--image", image, str(app), "/")
    run("umoci", "insert", "--image", image, "--whiteout", "/etc/motd")
    run("umoci", "insert", "--image", image, "--opaque", str(conf), "/opt/app/conf")
    run(
        "umoci", "config", "--image", image,
        "--config.cmd", "/bin/bash",
        "--config.env", f"PATH={PATH}",
        "--config.user", USER,
        "--config.workingdir", HOME,
    )  # fmt: skip
    oci = folder / "oci.tar"
    docker = folder / "docker.tar"
    run("skopeo", "copy", "--quiet", f"oci:{image}", f"oci-archive:{oci}:{OCI_NAME}")
    run("skopeo", "copy", "--quiet", f"oci:{image}", f"docker-archive:{docker}:{DOCKER_NAME}")
    for unpacked in (root, share, app, conf, layout):
        shutil.rmtree(unpacked)
    return Minbase(oci, docker)


def _app_layer(app: Path, root: Path) -> Path:
    """Layer 3: the user ``app`` in the root's own account files, its home, a config folder."""
    (app / "etc").mkdir(parents=True)
    passwd = (root / "etc" / "passwd").read_text() + f"{USER}:x:1000:1000:app:{HOME}:/bin/sh\n"
    group = (root / "etc" / "group").read_text().replace("\nstaff:x:50:\n", "\nstaff:x:50:app\n")
    assert "staff:x:50:app" in group, "the minbase root has no empty group staff"
    (app / "etc" / "passwd").write_text(passwd)
    (app / "etc" / "group").write_text(group + f"{USER}:x:1000:\n")
    home = app / HOME.lstrip("/")
    home.mkdir(parents=True)
    (home / "note").write_text("app's own file\n")
    for owned in (home, home / "note"):
        shutil.chown(owned, 1000, 1000)
    conf = app / "opt" / "app" / "conf"
    conf.mkdir(parents=True)
    (conf / "old.conf").write_text("hidden by the opaque layer\n")
    (conf / "other.conf").write_text("hidden too\n")
    return app
