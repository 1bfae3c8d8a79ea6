"""help(Client) documents each method: the blocking twin carries its async twin's docstring."""

from __future__ import annotations

import inspect
import pydoc

from libcontainerd import AsyncClient, Client


def _contract_methods() -> list[str]:
    return [
        name
        for name, member in inspect.getmembers(AsyncClient, inspect.isfunction)
        if not name.startswith("_") and name not in {"open", "close"}
    ]


def test_every_blocking_method_carries_its_async_twins_docstring() -> None:
    for name in _contract_methods():
        twin = inspect.getdoc(getattr(AsyncClient, name))
        assert twin, f"AsyncClient.{name} has no docstring"
        assert twin in (inspect.getdoc(getattr(Client, name)) or ""), name


def test_a_method_with_its_own_note_keeps_it_before_the_twins_text() -> None:
    text = inspect.getdoc(Client.start) or ""
    assert text.startswith("An ``attach_stdio`` callback runs on the client's loop thread.")
    assert "As AsyncClient.start: Create and start the container's task" in text


def test_help_shows_the_documentation() -> None:
    rendered = pydoc.render_doc(Client, renderer=pydoc.TextDoc())
    assert "Block until the process exits" in rendered  # wait()
    assert "Stop the container's main process as ``docker stop`` does" in rendered
