"""oci.image_spec: a spec from an image's config, with containerd's rules."""

from __future__ import annotations

import pytest

from libcontainerd import oci
from libcontainerd.errors import InvalidArgument
from libcontainerd.images import Image, ImageConfig


def image(**config: object) -> Image:
    return Image(
        name="docker.io/library/app:1",
        digest="sha256:" + "0" * 64,
        media_type="application/vnd.oci.image.manifest.v1+json",
        platform="linux/amd64",
        size=0,
        created=None,
        updated=None,
        labels={},
        diff_ids=(),
        config=ImageConfig(**config),  # type: ignore[arg-type]
    )


def test_the_process_is_entrypoint_and_cmd_in_the_images_environment_and_folder() -> None:
    spec = oci.image_spec(
        image(entrypoint=("/bin/sh", "-c"), cmd=("echo hi",), env=("A=1",), working_dir="/w")
    )
    assert spec["process"]["args"] == ["/bin/sh", "-c", "echo hi"]
    assert spec["process"]["env"] == ["A=1"]
    assert spec["process"]["cwd"] == "/w"
    assert spec["root"]["path"] == oci.IMAGE_ROOT == "rootfs"
    assert spec["process"]["user"] == {"uid": 0, "gid": 0}
    oci.validate_spec(spec, image=True)


def test_args_replace_cmd_and_an_entrypoint_replaces_both() -> None:
    config = {"entrypoint": ("/bin/sh", "-c"), "cmd": ("echo hi",)}
    assert oci.image_spec(image(**config), args=["date"])["process"]["args"] == [
        "/bin/sh",
        "-c",
        "date",
    ]
    assert oci.image_spec(image(**config), entrypoint=["/bin/true"])["process"]["args"] == [
        "/bin/true"
    ]
    assert oci.image_spec(image(cmd=("/bin/ls",)), args=["/bin/ps"])["process"]["args"] == [
        "/bin/ps"
    ]
    spec = oci.image_spec(image(**config), oci.with_args(["/bin/id"]))
    assert spec["process"]["args"] == ["/bin/id"]  # options come last


def test_an_image_without_a_command_needs_args() -> None:
    with pytest.raises(InvalidArgument, match="no Entrypoint or Cmd"):
        oci.image_spec(image())


def test_without_an_environment_the_default_path_is_set_and_options_merge_by_key() -> None:
    spec = oci.image_spec(image(cmd=("/bin/true",)), oci.with_env({"PATH": "/x", "B": "2"}))
    assert spec["process"]["env"] == ["PATH=/x", "B=2"]
    spec = oci.image_spec(image(cmd=("/bin/true",), env=("A=1", "B=1")), oci.with_env(["B=2"]))
    assert spec["process"]["env"] == ["A=1", "B=2"]


def test_the_images_user_is_left_to_resolve_at_create_unless_numbers_are_given() -> None:
    spec = oci.image_spec(image(cmd=("/bin/true",), user="app"))
    assert spec["process"]["user"]["username"] == "app"
    spec = oci.image_spec(image(cmd=("/bin/true",), user="app"), oci.with_user(5, 6))
    assert spec["process"]["user"] == {"uid": 5, "gid": 6}
    spec = oci.image_spec(image(cmd=("/bin/true",)), oci.with_username("app:staff"))
    assert spec["process"]["user"]["username"] == "app:staff"


@pytest.mark.parametrize("bad", ["", "a:", ":g", "a/b", 5])
def test_with_username_refuses_what_is_not_a_user(bad: object) -> None:
    with pytest.raises(InvalidArgument, match="with_username"):
        oci.with_username(bad)  # type: ignore[arg-type]


def test_an_image_spec_needs_image_and_a_directory_spec_refuses_it() -> None:
    spec = oci.image_spec(image(cmd=("/bin/true",)))
    with pytest.raises(InvalidArgument, match="pass image="):
        oci.validate_spec(spec)
    directory = oci.default_spec(["/bin/true"], "/srv/root")
    with pytest.raises(InvalidArgument, match=r"oci\.image_spec"):
        oci.validate_spec(directory, image=True)
