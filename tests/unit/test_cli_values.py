"""Values typed on lcd's command line: sizes, environment entries, users."""

from pathlib import Path

import pytest

from libcontainerd.cli._values import parse_env, parse_size, parse_user
from libcontainerd.errors import InvalidArgument


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("512", 512),
        ("512b", 512),
        ("64k", 64 << 10),
        ("64m", 64 << 20),
        ("64M", 64 << 20),
        ("64mb", 64 << 20),
        ("64MiB", 64 << 20),
        ("64 MB", 64 << 20),
        ("1.5g", 3 << 29),
        ("2t", 2 << 40),
    ],
)
def test_sizes_take_binary_units_as_docker_does(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["12xb", "", "m", "-1", "64 m b", "10bb", "1ib", "1e6"])
def test_a_malformed_size_names_itself_and_the_accepted_units(text: str) -> None:
    with pytest.raises(InvalidArgument, match=r"is not a size: .* b, k, m, g or t"):
        parse_size(text)


def test_a_zero_size_is_out_of_range() -> None:
    with pytest.raises(InvalidArgument, match="out of range"):
        parse_size("0")


def test_env_entries_keep_their_values_and_bare_names_take_the_hosts() -> None:
    host = {"HOME": "/root"}
    assert parse_env(["A=1", "B=", "HOME", "UNSET"], host) == ["A=1", "B=", "HOME=/root"]


def test_an_env_entry_without_a_name_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="NAME=value"):
        parse_env(["=x"], {})


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\nweb:x:1000:1001::/home/web:/bin/sh\n"
    )
    (tmp_path / "etc" / "group").write_text("root:x:0:\nstaff:x:50:\n")
    return tmp_path


def test_numeric_users_need_no_lookup() -> None:
    assert parse_user("1000", None) == (1000, None)
    assert parse_user("1000:50", None) == (1000, 50)


def test_names_are_looked_up_in_the_root_filesystem(root: Path) -> None:
    assert parse_user("web", root) == (1000, 1001)
    assert parse_user("web:staff", root) == (1000, 50)
    assert parse_user("0:staff", root) == (0, 50)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("bob", "user 'bob' is not in the container's /etc/passwd"),
        ("web:nogroup", "group 'nogroup' is not in the container's /etc/group"),
        ("", "must look like"),
        ("web:", "must look like"),
        ("4294967296", "below 2\\^32"),
    ],
)
def test_unknown_or_malformed_users_say_what_is_wrong(root: Path, text: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        parse_user(text, root)
