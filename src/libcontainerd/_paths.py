"""Where the embedded containerd and this library keep their files, written once.

The embedded daemon (``lcd daemon start``, a default :class:`Supervisor`) lives
in :data:`DEFAULT_STATE_DIR` (sockets, pid files, logs: gone at reboot) and
:data:`DEFAULT_ROOT_DIR` (containerd's persistent data). Every name below a
state directory is derived here, so the client, the supervisor and the ``lcd``
command agree on them.
"""

from __future__ import annotations

import os
from typing import Final

__all__ = [
    "CRIU_INSTALL_DIR",
    "DEFAULT_ADDRESS",
    "DEFAULT_NAMESPACE",
    "DEFAULT_ROOT_DIR",
    "DEFAULT_STATE_DIR",
    "ROOT_DIR_ENV",
    "STATE_DIR_ENV",
    "containerd_config",
    "containerd_log",
    "containerd_pid_file",
    "containerd_socket",
    "fifo_root",
    "runc_root",
]

DEFAULT_STATE_DIR: Final = "/run/libcontainerd"
DEFAULT_ROOT_DIR: Final = "/var/lib/libcontainerd"
STATE_DIR_ENV: Final = "LIBCONTAINERD_STATE_DIR"
ROOT_DIR_ENV: Final = "LIBCONTAINERD_ROOT_DIR"
DEFAULT_NAMESPACE: Final = "libcontainerd"

CRIU_INSTALL_DIR: Final = os.path.join(DEFAULT_ROOT_DIR, "criu")
"""Where ``./run demo`` installs a working CRIU for the embedded daemon."""


def containerd_socket(state_dir: str) -> str:
    """containerd's gRPC socket in a state directory."""
    return os.path.join(state_dir, "containerd.sock")


DEFAULT_ADDRESS: Final = containerd_socket(DEFAULT_STATE_DIR)
"""The socket of the embedded containerd."""


def containerd_pid_file(state_dir: str) -> str:
    """The file holding the pid of the containerd a Supervisor runs there."""
    return os.path.join(state_dir, "containerd.pid")


def containerd_log(state_dir: str) -> str:
    return os.path.join(state_dir, "containerd.log")


def containerd_config(state_dir: str) -> str:
    return os.path.join(state_dir, "containerd.toml")


def runc_root(address: str) -> str:
    """runc's state for the tasks of the containerd at ``address``: ``runc`` beside the socket."""
    return os.path.join(os.path.dirname(address), "runc")


def fifo_root(address: str) -> str:
    """A client's default FIFO folder: ``fifo`` beside the socket, so a restart finds them."""
    return os.path.join(os.path.dirname(address), "fifo")
