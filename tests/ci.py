"""Skip on a developer's machine, fail in CI: what a test does when something it needs is missing.

CI (``.ci/run``, which sets ``CI=true``) provisions everything the suite needs
before pytest starts: containerd 1.7 and 2.x, CRIU, the tools of the
benchmark. A skip there would turn a failed provisioning into a green run with
a part of the suite left out, so with ``CI=true`` each of these is a failure
that gives its reason. On a developer's machine, where such a thing may
legitimately be missing, the test skips with the same reason, and the run's
summary counts the skips by reason (``tests/conftest.py``).
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

__all__ = ["CI", "missing"]

CI = os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def missing(reason: str) -> NoReturn:
    """Skip the test for ``reason`` (fail it instead in CI, where it must have been provisioned)."""
    if CI:
        pytest.fail(f"CI=true, so a missing prerequisite fails the run: {reason}", pytrace=False)
    pytest.skip(reason)
