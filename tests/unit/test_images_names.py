"""Image names and platforms are normalised as containerd and Docker do."""

from __future__ import annotations

import pytest

from libcontainerd.errors import InvalidArgument, NotFound
from libcontainerd.images import Descriptor, Platform, normalize_name, parse_platform
from libcontainerd.images._import import Root, name_roots
from libcontainerd.images._names import is_full_reference


@pytest.mark.parametrize(
    ("given", "full"),
    [
        ("busybox", "docker.io/library/busybox:latest"),
        ("busybox:1.36", "docker.io/library/busybox:1.36"),
        ("me/app", "docker.io/me/app:latest"),
        ("docker.io/library/busybox:latest", "docker.io/library/busybox:latest"),
        ("index.docker.io/me/app:2", "docker.io/me/app:2"),
        ("localhost/app", "localhost/app:latest"),
        ("localhost:5000/app:v1", "localhost:5000/app:v1"),
        ("example.com/a/b/c:1.0", "example.com/a/b/c:1.0"),
        ("registry:5000/app", "registry:5000/app:latest"),
        ("app@sha256:" + "a" * 64, "docker.io/library/app@sha256:" + "a" * 64),
        ("app:1@sha256:" + "a" * 64, "docker.io/library/app@sha256:" + "a" * 64),
    ],
)
def test_names_are_normalised_to_full_references(given: str, full: str) -> None:
    assert normalize_name(given) == full


@pytest.mark.parametrize(
    "bad", ["", "UPPER/case", "app:", "app:-tag", "a//b", "app@sha256:short", "-app", 7]
)
def test_a_name_that_is_not_a_reference_is_refused(bad: object) -> None:
    with pytest.raises(InvalidArgument):
        normalize_name(bad)


@pytest.mark.parametrize(
    ("ref_name", "full"), [("latest", False), ("1", False), ("app:1", True), ("a/b", True)]
)
def test_an_archive_ref_name_that_is_only_a_tag_is_not_a_name(ref_name: str, full: bool) -> None:
    assert is_full_reference(ref_name) is full


@pytest.mark.parametrize(
    ("given", "platform"),
    [
        ("linux/amd64", Platform("linux", "amd64")),
        ("linux/x86_64", Platform("linux", "amd64")),
        ("linux/aarch64", Platform("linux", "arm64")),
        ("linux/arm64/v8", Platform("linux", "arm64", "v8")),
        ("Linux/ARMHF", Platform("linux", "arm", "v7")),
    ],
)
def test_platforms_use_gos_names(given: str, platform: Platform) -> None:
    assert parse_platform(given) == platform


@pytest.mark.parametrize("bad", ["linux", "linux/", "a/b/c/d", "linux/amd 64", None])
def test_a_malformed_platform_is_refused(bad: object) -> None:
    with pytest.raises(InvalidArgument, match="platform"):
        parse_platform(bad)


def test_a_variant_matters_only_when_both_sides_name_one() -> None:
    arm64 = Platform("linux", "arm64")
    assert arm64.matches(Platform("linux", "arm64", "v8"))  # v8 is arm64's default
    assert not Platform("linux", "arm", "v6").matches(Platform("linux", "arm", "v7"))
    assert not Platform("linux", "amd64").matches(arm64)
    assert not Platform("unknown", "unknown").matches(Platform("linux", "amd64"))
    assert str(Platform("linux", "arm64", "v8")) == "linux/arm64/v8"


def _root(digest: str, names: tuple[str, ...], platform: Platform | None = None) -> Root:
    return Root(
        Descriptor("application/vnd.oci.image.manifest.v1+json", digest, 1), names, digest, platform
    )


def test_roots_of_one_name_for_several_platforms_become_the_wanted_platforms() -> None:
    amd64, arm64 = Platform("linux", "amd64"), Platform("linux", "arm64")
    roots = [_root("a", ("x:1",), arm64), _root("b", ("x:1",), amd64), _root("c", ("y:1",))]
    chosen = name_roots(roots, None, amd64)
    assert [root.target.digest for root in chosen] == ["b", "c"]
    assert [root.target.digest for root in name_roots(roots[:2], "z", arm64)] == ["a"]
    with pytest.raises(NotFound, match="no image for platform linux/386"):
        name_roots(roots[:2], None, Platform("linux", "386"))


def test_name_is_for_an_archive_of_one_image_and_unnamed_images_need_it() -> None:
    amd64 = Platform("linux", "amd64")
    with pytest.raises(InvalidArgument, match="holds 2 images"):
        name_roots([_root("a", ()), _root("b", ())], "z", amd64)
    with pytest.raises(InvalidArgument, match="pass name="):
        name_roots([_root("a", ())], None, amd64)
    (named,) = name_roots([_root("a", ())], "z", amd64)
    assert named.names == ("docker.io/library/z:latest",)
