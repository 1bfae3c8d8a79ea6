"""The containerd versions the integration suite runs against.

By default every test that needs a daemon runs once per version of the matrix:
the system's containerd (1.6 on bookworm), 1.7 (trixie) and 2.x (sid), the
newer two unpacked in ``.cache/`` by ``scripts/containerd_versions.py`` (``./run
tests`` does that). A version that is not provisioned is skipped, with the
reason, never silently passed; with ``CI=true`` it fails instead (``tests/ci.py``).

``$LIBCONTAINERD_TEST_CONTAINERD`` (a containerd binary) runs against that one
only; ``$LIBCONTAINERD_TEST_MATRIX`` (comma-separated names: system, trixie,
sid) keeps a subset, e.g. ``system`` for a quick local run.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[2]
CONTAINERD_ENV = "LIBCONTAINERD_TEST_CONTAINERD"
MATRIX_ENV = "LIBCONTAINERD_TEST_MATRIX"


@dataclass(frozen=True)
class Version:
    """One entry of the matrix: its name, and its binary or why it is missing."""

    name: str
    binary: str | None
    missing: str = ""


def _versions_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "containerd_versions", REPO / "scripts" / "containerd_versions.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def versions() -> list[Version]:
    """The versions this run covers, in matrix order."""
    chosen = os.environ.get(CONTAINERD_ENV)
    if chosen:
        return [Version("custom", chosen)]
    script = _versions_script()
    found = script.cached()
    wanted = [name for name in os.environ.get(MATRIX_ENV, "").split(",") if name.strip()]
    unknown = [name for name in wanted if name.strip() not in script.MATRIX]
    if unknown:
        raise ValueError(
            f"${MATRIX_ENV} names {', '.join(unknown)}: the matrix has {', '.join(script.MATRIX)}"
        )
    names = [name.strip() for name in wanted] or list(script.MATRIX)
    return [
        Version(name, str(found[name]))
        if name in found
        else Version(
            name,
            None,
            f"containerd from {name} is not provisioned here"
            " (python3 scripts/containerd_versions.py fetches it; see .cache/debian)",
        )
        for name in names
    ]
