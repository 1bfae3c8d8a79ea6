"""A networked container's /etc/resolv.conf, /etc/hosts and /etc/hostname, and their mounts.

The files are written on the host and bind-mounted read-only over the
container's, as containerd's CRI and Docker do: the image's own files stay
untouched, and the container cannot rewrite what its network set up.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Sequence
from typing import Any, Final

from ._types import Attach

__all__ = ["HOST_RESOLV_CONF", "mounts_for", "resolv_conf", "write_files"]

HOST_RESOLV_CONF: Final = "/etc/resolv.conf"
_MOUNT_OPTIONS: Final = ("rbind", "ro", "nosuid", "nodev", "noexec")


def resolv_conf(attach: Attach, host_resolv_conf: str = HOST_RESOLV_CONF) -> str:
    """The given servers, else the host's minus loopback ones (they answer only on the host).

    No public resolver is ever added in their place: with none left the
    file says so, and the container resolves only what ``/etc/hosts`` holds.
    """
    servers: list[str] = []
    search: list[str] = list(attach.dns_search)
    options: list[str] = list(attach.dns_options)
    if attach.dns is not None:
        servers = list(attach.dns)
    else:
        try:
            with open(host_resolv_conf, encoding="utf-8", errors="replace") as file:
                lines = file.read().splitlines()
        except OSError:
            lines = []
        for line in lines:
            fields = line.split()
            if len(fields) < 2 or fields[0].startswith(("#", ";")):
                continue
            if fields[0] == "nameserver" and not _loopback(fields[1]):
                servers.append(fields[1])
            elif fields[0] in ("search", "domain") and not attach.dns_search:
                search = fields[1:]
            elif fields[0] == "options" and not attach.dns_options:
                options.extend(fields[1:])
    text = ["# written by libcontainerd for this container"]
    if not servers:
        text.append("# no nameserver: the host has only loopback resolvers (pass dns=)")
    text.extend(f"nameserver {server}" for server in servers)
    if search:
        text.append("search " + " ".join(search))
    if options:
        text.append("options " + " ".join(options))
    return "\n".join(text) + "\n"


def _loopback(server: str) -> bool:
    try:
        return ipaddress.ip_address(server.split("%")[0]).is_loopback
    except ValueError:
        return True  # not an address: useless inside the container too


def hosts(attach: Attach, hostname: str, addresses: Sequence[str]) -> str:
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
    lines.extend(f"{address.split('/')[0]}\t{hostname}" for address in addresses)
    lines.extend(f"{address}\t{name}" for name, address in attach.extra_hosts.items())
    return "\n".join(lines) + "\n"


def write_files(
    folder: str, attach: Attach, hostname: str, addresses: Sequence[str]
) -> dict[str, str]:
    """Write the three files in ``folder``; their paths by the container path they cover."""
    os.makedirs(folder, mode=0o755, exist_ok=True)
    contents = {
        "/etc/resolv.conf": resolv_conf(attach),
        "/etc/hosts": hosts(attach, hostname, addresses),
        "/etc/hostname": hostname + "\n",
    }
    paths = {}
    for destination, text in contents.items():
        path = os.path.join(folder, os.path.basename(destination))
        with open(path, "w", encoding="utf-8") as file:
            file.write(text)
        os.chmod(path, 0o644)
        paths[destination] = path
    return paths


def mounts_for(paths: dict[str, str]) -> list[dict[str, Any]]:
    return [
        {
            "destination": destination,
            "type": "bind",
            "source": source,
            "options": list(_MOUNT_OPTIONS),
        }
        for destination, source in paths.items()
    ]
