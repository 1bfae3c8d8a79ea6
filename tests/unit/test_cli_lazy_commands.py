"""lcd imports a command's module only when that command runs: its table must be complete."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

import pytest

from libcontainerd.cli import GROUPS, cli
from libcontainerd.cli._output import Output


def test_the_table_names_every_command_of_every_group_module() -> None:
    for module, names in GROUPS.items():
        commands = importlib.import_module(f"libcontainerd.cli.{module}").COMMANDS
        assert tuple(command.name for command in commands) == names, module


def test_every_listed_command_resolves() -> None:
    context = cli.make_context("lcd", ["--help"], resilient_parsing=True)
    for name in cli.list_commands(context):
        assert cli.get_command(context, name) is not None, name


def test_importing_the_cli_imports_no_command_module_nor_grpc_aio_client() -> None:
    probe = (
        "import json, sys, libcontainerd.cli; print(json.dumps(sorted(m for m in sys.modules"
        " if m.startswith('libcontainerd.cli._') or m in ('libcontainerd.client', 'rich'))))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert json.loads(loaded) == ["libcontainerd.cli._app", "libcontainerd.cli._failures"]


def test_a_table_is_laid_out_as_rich_would_without_rich(
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = Output()
    headers = ["ID", "COMMAND", "STATUS"]
    rows = [["abc", "sh -c x", "up 3s"], ["日本", "", "exited (0)"], ["a" * 12, "x", ""]]
    with out.stdout.capture() as captured:
        out.stdout.print(out.render_table(headers, rows))
    expected = "\n".join(line.rstrip() for line in captured.get().splitlines()) + "\n"
    out.table(headers, rows)
    assert capsys.readouterr().out == expected
