"""Media types, digests, chain IDs and image configs."""

from __future__ import annotations

import hashlib

import pytest

from libcontainerd.errors import InvalidImage, UnsupportedMediaType
from libcontainerd.images import ImageConfig, _media
from libcontainerd.images._media import Kind


@pytest.mark.parametrize(
    ("media_type", "kind"),
    [
        (_media.OCI_INDEX, Kind.INDEX),
        (_media.DOCKER_MANIFEST_LIST, Kind.INDEX),
        (_media.OCI_MANIFEST, Kind.MANIFEST),
        (_media.DOCKER_MANIFEST, Kind.MANIFEST),
        (_media.OCI_CONFIG, Kind.CONFIG),
        (_media.DOCKER_CONFIG, Kind.CONFIG),
        (_media.OCI_LAYER_ZSTD, Kind.LAYER),
        (_media.DOCKER_LAYER_GZIP, Kind.LAYER),
        ("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", Kind.LAYER),
    ],
)
def test_known_media_types_have_their_kind(media_type: str, kind: Kind) -> None:
    assert _media.kind_of(media_type, "blob") is kind


@pytest.mark.parametrize(
    ("media_type", "message"),
    [
        ("application/vnd.docker.distribution.manifest.v1+prettyjws", "schema 1"),
        ("application/vnd.docker.distribution.manifest.v1+json", "schema 1"),
        ("application/vnd.oci.image.layer.v1.tar+gzip+encrypted", "encrypted"),
        ("application/x-tar", "unknown media type"),
    ],
)
def test_what_cannot_run_is_refused_with_its_reason(media_type: str, message: str) -> None:
    with pytest.raises(UnsupportedMediaType, match=message):
        _media.kind_of(media_type, "layer 0")


def test_a_config_of_another_artifact_is_not_an_image() -> None:
    with pytest.raises(UnsupportedMediaType, match="not a container image"):
        _media.check_config_type("application/vnd.cncf.helm.config.v1+json", "manifest")
    _media.check_config_type(_media.OCI_CONFIG, "manifest")


def test_a_document_without_a_media_type_is_recognised_by_its_fields() -> None:
    assert _media.sniff_document({"manifests": []}, "x") == _media.OCI_INDEX
    assert _media.sniff_document({"config": {}, "layers": []}, "x") == _media.OCI_MANIFEST
    assert _media.sniff_document({"schemaVersion": 1}, "x").endswith("v1+json")
    with pytest.raises(InvalidImage):
        _media.sniff_document({"something": "else"}, "x")


def test_digests_are_checked() -> None:
    good = "sha256:" + "0" * 64
    assert _media.check_digest(good, "d") == good
    for bad in ("sha256:" + "0" * 63, "md5:abc", "sha256:" + "G" * 64, None):
        with pytest.raises(InvalidImage):
            _media.check_digest(bad, "d")


def test_chain_ids_follow_the_oci_definition() -> None:
    a, b, c = ("sha256:" + ch * 64 for ch in "abc")
    ab = "sha256:" + hashlib.sha256(f"{a} {b}".encode()).hexdigest()
    abc = "sha256:" + hashlib.sha256(f"{ab} {c}".encode()).hexdigest()
    assert _media.chain_ids([a, b, c]) == [a, ab, abc]
    assert _media.chain_ids([]) == []


def test_an_image_config_is_decoded_with_docker_names() -> None:
    config = ImageConfig.decode(
        {
            "config": {
                "Entrypoint": ["/bin/sh", "-c"],
                "Cmd": ["echo hi"],
                "Env": ["A=1"],
                "WorkingDir": "/w",
                "User": "app:staff",
                "ExposedPorts": {"80/tcp": {}, "53/udp": {}},
                "Volumes": {"/data": {}},
                "StopSignal": "SIGQUIT",
                "Labels": {"k": "v"},
            }
        },
        "config",
    )
    assert config == ImageConfig(
        entrypoint=("/bin/sh", "-c"),
        cmd=("echo hi",),
        env=("A=1",),
        working_dir="/w",
        user="app:staff",
        exposed_ports=("53/udp", "80/tcp"),
        volumes=("/data",),
        stop_signal="SIGQUIT",
        labels={"k": "v"},
    )
    assert ImageConfig.decode({}, "config") == ImageConfig()  # a config with no "config"


@pytest.mark.parametrize(
    "section", [{"Cmd": "echo"}, {"Env": [1]}, {"User": 0}, {"Labels": {"k": 1}}, {"Volumes": []}]
)
def test_a_config_of_the_wrong_shape_is_an_invalid_image(section: dict[str, object]) -> None:
    with pytest.raises(InvalidImage):
        ImageConfig.decode({"config": section}, "config")
