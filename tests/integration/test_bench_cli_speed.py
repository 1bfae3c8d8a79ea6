"""The lcd-against-ctr benchmark runs end to end (its figures are not checked: never timed)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bench import cli_speed
from bench.runner import remove_cgroup_parents
from libcontainerd import Supervisor, rootfs

pytestmark = pytest.mark.integration


@pytest.mark.skipif(shutil.which("ctr") is None, reason="ctr (containerd's client) is missing")
def test_cli_speed_reports_both_ratios(supervisor: Supervisor, workdir: Path) -> None:
    root = rootfs.busybox(workdir / "bench-rootfs")
    try:
        results = cli_speed.measure(supervisor.address, root, workdir, rounds=1, warmups=0)
    finally:
        remove_cgroup_parents((cli_speed.NAMESPACE, cli_speed.CTR_NAMESPACE))
    for ours, anchor in cli_speed.PAIRS:
        assert results[f"{ours}/{anchor}"]["ratio"] > 0, results
    # Each round ran two commands through the helper (the warm-ups none here): lcd ps in
    # its warm worker, lcd run in a fork.
    assert (results["helper_served"], results["helper_warm"]) == (2, 1)
    assert "lcd_run_helper/ctr_run" in cli_speed.report(results)
