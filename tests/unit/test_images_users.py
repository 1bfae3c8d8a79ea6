"""A user given by name is resolved from the root filesystem's own files, as containerd does."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from libcontainerd.errors import InvalidArgument
from libcontainerd.images._users import ResolvedUser, read_in_root, resolve_user

PASSWD = """root:x:0:0:root:/root:/bin/sh
# a comment
app:x:1000:1001:app:/app:/bin/sh
daemon:x:2:2::/:/bin/false
"""
GROUP = """root:x:0:
app:x:1001:
staff:x:50:app,daemon
wheel:x:10:daemon
audio:x:29:app
"""


@pytest.mark.parametrize(
    ("user", "resolved"),
    [
        ("app", ResolvedUser(1000, 1001, (1001, 50, 29))),
        ("1000", ResolvedUser(1000, 1001, (1001, 50, 29))),
        ("app:staff", ResolvedUser(1000, 50, (50, 29))),
        ("app:7", ResolvedUser(1000, 7, (7, 50, 29))),
        ("1000:50", ResolvedUser(1000, 50, (50, 29))),
        ("4242", ResolvedUser(4242, 0, (0,))),  # an unknown uid: gid 0
        ("daemon", ResolvedUser(2, 2, (2, 50, 10))),
        ("root", ResolvedUser(0, 0, (0,))),
    ],
)
def test_users_resolve_as_containerd_resolves_them(user: str, resolved: ResolvedUser) -> None:
    assert resolve_user(user, PASSWD, GROUP, "image x") == resolved


@pytest.mark.parametrize(
    ("user", "message"),
    [
        ("nobody-here", "no user 'nobody-here' in image x's /etc/passwd"),
        ("app:nogroup", "no group 'nogroup' in image x's /etc/group"),
        ("app:", "is not name"),
    ],
)
def test_an_unknown_name_is_an_invalid_argument(user: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        resolve_user(user, PASSWD, GROUP, "image x")


def test_without_files_only_numbers_resolve() -> None:
    assert resolve_user("7:8", None, None, "x") == ResolvedUser(7, 8, (8,))
    with pytest.raises(InvalidArgument):
        resolve_user("app", None, None, "x")


def test_files_are_read_without_following_links_out_of_the_root(tmp_path: Path) -> None:
    outside = tmp_path / "host-secret"
    outside.write_text("secret")
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "secret").write_text("inside")
    os.symlink(str(outside), root / "etc" / "passwd")  # absolute: means the root's /host-secret
    os.symlink("../../../host-secret", root / "etc" / "group")  # .. stops at the root
    (root / "etc" / "shadow").write_text("x")
    os.symlink("/secret", root / "etc" / "link")
    assert read_in_root(root, "/etc/passwd") is None  # no /<tmp>/host-secret inside the root
    assert read_in_root(root, "/etc/group") is None
    assert read_in_root(root, "/etc/link") == "inside"
    assert read_in_root(root, "/etc/shadow") == "x"
    assert read_in_root(root, "/etc/missing") is None
    os.mkfifo(root / "etc" / "fifo")
    assert read_in_root(root, "/etc/fifo") is None  # only regular files are read
