"""The blocking image service is the async one's twin: same public methods, same signatures."""

from __future__ import annotations

import inspect

from libcontainerd import AsyncClient, Client
from libcontainerd.images import BlockingImageService, ImageService


def _public(cls: type) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(member)
        for name, member in inspect.getmembers(cls, inspect.isfunction)
        if not name.startswith("_")
    }


def test_every_image_method_has_a_blocking_twin_with_the_same_parameters() -> None:
    async_methods, blocking_methods = _public(ImageService), _public(BlockingImageService)
    assert set(async_methods) == set(blocking_methods)
    for name, signature in async_methods.items():
        assert blocking_methods[name].parameters == signature.parameters, name
        assert blocking_methods[name].return_annotation == signature.return_annotation, name


def test_both_clients_have_their_image_service() -> None:
    assert isinstance(AsyncClient("/run/x/containerd.sock").images, ImageService)
    assert isinstance(Client("/run/x/containerd.sock").images, BlockingImageService)
