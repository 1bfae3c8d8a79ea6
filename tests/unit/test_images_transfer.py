"""The pure parts of the daemon's pull (images/_transfer.py): credentials, errors, ingest refs."""

from __future__ import annotations

import grpc
import grpc.aio

from libcontainerd._api.containerd.api.types.transfer import registry_pb2
from libcontainerd.errors import ImageNotFound, LibcontainerdError, Unavailable
from libcontainerd.images import Credentials, _media, _transfer
from libcontainerd.images._registry import Reference


def test_each_kind_of_credentials_becomes_the_daemons_auth_answer() -> None:
    assert _transfer._auth_response(None).authType == registry_pb2.NONE
    pair = _transfer._auth_response(Credentials(username="alice", password="s3cret"))
    assert (pair.authType, pair.username, pair.secret) == (
        registry_pb2.CREDENTIALS,
        "alice",
        "s3cret",
    )
    refresh = _transfer._auth_response(Credentials(identity_token="refresh-me"))
    assert (refresh.authType, refresh.username, refresh.secret) == (
        registry_pb2.REFRESH,
        "",
        "refresh-me",
    )
    header = _transfer._auth_response(Credentials(registry_token="ready"))
    assert (header.authType, header.secret) == (registry_pb2.HEADER, "Bearer ready")


def _failure(code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details)


def test_an_unresolved_reference_is_image_not_found_naming_registry_and_tag() -> None:
    reference = Reference.parse("127.0.0.1:5000/team/app:2")
    error = _transfer._typed(
        _failure(
            grpc.StatusCode.NOT_FOUND,
            "failed to resolve image: 127.0.0.1:5000/team/app:2: not found",
        ),
        "pull it",
        reference,
    )
    assert isinstance(error, ImageNotFound)
    assert "registry 127.0.0.1:5000 has no '2' in team/app" in str(error)
    # Other failures keep their gRPC meaning.
    other = _transfer._typed(
        _failure(grpc.StatusCode.NOT_FOUND, "content digest x"), "pull it", reference
    )
    assert type(other) is not ImageNotFound
    assert isinstance(other, LibcontainerdError)
    gone = _transfer._typed(
        _failure(grpc.StatusCode.UNAVAILABLE, "socket closed"), "pull it", reference
    )
    assert isinstance(gone, Unavailable)


def test_ingest_refs_are_containerds_own_keys() -> None:
    digest = "sha256:" + "a" * 64
    assert _media.ingest_ref(_media.OCI_LAYER_GZIP, digest) == f"layer-{digest}"
    assert _media.ingest_ref(_media.DOCKER_LAYER_GZIP, digest) == f"layer-{digest}"
    assert _media.ingest_ref(_media.OCI_CONFIG, digest) == f"config-{digest}"
    assert _media.ingest_ref(_media.OCI_MANIFEST, digest) == f"manifest-{digest}"
    assert _media.ingest_ref(_media.DOCKER_MANIFEST_LIST, digest) == f"index-{digest}"
    assert _media.ingest_ref("application/x-other", digest) == f"unknown-{digest}"
