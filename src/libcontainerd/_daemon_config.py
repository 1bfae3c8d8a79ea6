"""containerd's configuration file as a Supervisor writes it, for each config format.

One file per start, in the daemon's own state folder: its sockets, root and
state folders, log level, and the plugins this library never uses switched
off (start-up is faster and nothing listens or writes outside our folders).
"""

from __future__ import annotations

__all__ = ["render_config"]

# Plugins this library never uses, disabled so start-up is fast and its log
# quiet. CRI is Kubernetes' interface and loads CNI; these snapshotters only
# skip or fail on an ordinary host. Unknown ids are ignored by containerd.
_NEVER_USED = (
    "io.containerd.grpc.v1.cri",
    "io.containerd.snapshotter.v1.aufs",
    "io.containerd.snapshotter.v1.btrfs",
    "io.containerd.snapshotter.v1.zfs",
    "io.containerd.snapshotter.v1.devmapper",
)
# 1.7 adds a scratch-file snapshotter that always skips, tracing that needs an
# endpoint, and NRI (off by default in 1.7, but a socket we never want).
_NEVER_USED_1_7 = (
    *_NEVER_USED,
    "io.containerd.snapshotter.v1.blockfile",
    "io.containerd.tracing.processor.v1.otlp",
    "io.containerd.internal.v1.tracing",
    "io.containerd.nri.v1.nri",
)
# 2.x splits CRI into several plugins; its pod-sandbox controller (and the
# gRPC service listing controllers) then fails to load without CRI's image
# service. NRI is on by default in 2.x and would listen on the machine-wide
# /var/run/nri/nri.sock, shared by every daemon. The erofs differ skips
# without mkfs.erofs.
_NEVER_USED_2 = (
    *_NEVER_USED_1_7,
    "io.containerd.cri.v1.images",
    "io.containerd.cri.v1.runtime",
    "io.containerd.podsandbox.controller.v1.podsandbox",
    "io.containerd.grpc.v1.sandbox-controllers",
    "io.containerd.snapshotter.v1.erofs",
    "io.containerd.differ.v1.erofs",
)


def render_config(
    *,
    version: str,
    series: tuple[int, int],
    root: str,
    state: str,
    address: str,
    ttrpc_address: str,
    log_level: str,
    opt_dir: str,
) -> str:
    """containerd's config as TOML text: format 3 for containerd 2.x, format 2 for 1.x.

    ``series`` is (major, minor), which picks the format and the plugin ids.
    """
    major = series[0]
    disabled: tuple[str, ...]
    if major >= 2:
        disabled = _NEVER_USED_2
    elif series >= (1, 7):
        disabled = _NEVER_USED_1_7
    else:
        disabled = _NEVER_USED
    lines = [
        f"# Written by libcontainerd's Supervisor for containerd {version};"
        " rewritten at every start.",
        f"version = {3 if major >= 2 else 2}",
        f"root = {_toml_string(root)}",
        f"state = {_toml_string(state)}",
        "disabled_plugins = [",
        *(f"  {_toml_string(plugin)}," for plugin in disabled),
        "]",
        "",
        "[grpc]",
        f"  address = {_toml_string(address)}",
        "",
        "[ttrpc]",
        f"  address = {_toml_string(ttrpc_address)}",
        "",
        "[debug]",
        f"  level = {_toml_string(log_level)}",
        "",
        "# Without this the plugin creates /opt/containerd, outside our folders.",
        '[plugins."io.containerd.internal.v1.opt"]',
        f"  path = {_toml_string(opt_dir)}",
        "",
    ]
    return "\n".join(lines)


def _toml_string(value: str) -> str:
    """A TOML basic string."""
    escaped = []
    for char in value:
        if char in ('"', "\\"):
            escaped.append("\\" + char)
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            escaped.append(f"\\u{ord(char):04x}")
        else:
            escaped.append(char)
    return '"' + "".join(escaped) + '"'
