"""NetworkService: the host's networks of ours (create, list, get, remove).

``client.networks`` is this service. A network is a CNI conflist of ours
(see :mod:`._config`); its bridge appears with its first container and goes
with the network. Containers are attached by :mod:`._attachments`.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import dataclasses
import ipaddress
import os
import re
import shutil
from typing import Any

from ..errors import AlreadyExists, FailedPrecondition, InvalidArgument, NetworkError, NotFound
from . import _config
from ._cni import PluginRunner
from ._rules import OWN_RULES_KEY, NetworkRules
from ._state import HostLock, Layout, iter_records
from ._types import DEFAULT_NETWORK, RESERVED_NAMES, Network, check_network_name

__all__ = ["NetworkService"]

_BRIDGE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,15}\Z", re.ASCII)


class NetworkService:
    """See the module docstring: the networks of this host (they are not a daemon's)."""

    def __init__(
        self, *, config_dir: str = _config.CONFIG_DIR, layout: Layout | None = None
    ) -> None:
        self.config_dir = config_dir
        self.layout = layout or Layout()
        self.runner = PluginRunner()
        """Runs the plugins; its ``path`` is where they are looked for."""
        self.host_lock = HostLock(self.layout.lock)
        self.rules = NetworkRules()
        """The networks' own masquerade and forwarding rules (see :mod:`._rules`)."""

    # -- networks ---------------------------------------------------------------------

    async def create(
        self,
        name: str,
        *,
        subnet: str | None = None,
        gateway: str | None = None,
        bridge: str | None = None,
        masquerade: bool = True,
        mtu: int | None = None,
        ipv6: str | bool | None = None,
    ) -> Network:
        """Write a network's conflist (its bridge appears with its first container).

        Without ``subnet`` the first free /24 of 10.89.0.0/16 is used, one that
        collides with no host route or other network of ours. With ``ipv6``
        (an IPv6 CIDR, or True: the first free /64 of fd6c:6364::/48, a unique
        local prefix) containers get an IPv6 address too, its first address
        the bridge's; the bridge plugin then switches the host's IPv6
        forwarding on (``net.ipv6.conf.all.forwarding``), which makes
        interfaces stop accepting router advertisements unless their
        ``accept_ra`` is 2. Raises InvalidArgument (bad name, CIDR, gateway or
        bridge name; a subnet that overlaps the host's routes or another
        network), AlreadyExists.
        """
        check_network_name(name)
        if name in RESERVED_NAMES:
            raise InvalidArgument(f"{name!r} cannot name a network: it is a network mode")
        if mtu is not None and (isinstance(mtu, bool) or not 576 <= mtu <= 65535):
            raise InvalidArgument(f"mtu must be from 576 to 65535, not {mtu!r}")
        if bridge is not None and not _BRIDGE_NAME.match(bridge):
            raise InvalidArgument(
                f"bridge name {bridge!r} is not valid: 1 to 15 letters, digits, '_', '.' or '-'"
            )
        if subnet is not None:
            subnet, gateway = _config.parse_subnet(subnet, gateway)
        elif gateway is not None:
            raise InvalidArgument("gateway= needs subnet=")
        if isinstance(ipv6, str):
            ipv6 = _config.parse_ipv6_subnet(ipv6)[0]
        elif ipv6 not in (None, True, False):
            raise InvalidArgument(f"ipv6 must be an IPv6 CIDR, True or None, not {ipv6!r}")
        async with self.host_lock.held():
            return self._create_locked(name, subnet, gateway, bridge, masquerade, mtu, ipv6)

    def _create_locked(
        self,
        name: str,
        subnet: str | None,
        gateway: str | None,
        bridge: str | None,
        masquerade: bool,
        mtu: int | None,
        ipv6: str | bool | None,
    ) -> Network:
        existing = _config.read_networks(self.config_dir)
        if any(network.name == name for network, _ in existing):
            raise AlreadyExists(f"network {name!r} already exists")
        taken = [
            (f"network {network.name!r}", ipaddress.IPv4Network(network.subnet))
            for network, _ in existing
        ]
        taken += [("a host route", route) for route in _config.host_networks()]
        if subnet is None:
            subnet, gateway = _config.pick_subnet(taken)
        else:
            collision = _config.overlap(subnet, taken)
            if collision is not None:
                raise InvalidArgument(f"subnet {subnet} of network {name!r} overlaps {collision}")
        bridges = {network.bridge for network, _ in existing}
        if bridge is None:
            bridge = _free_bridge_name(name, bridges)
        elif bridge in bridges:
            raise InvalidArgument(f"bridge {bridge!r} already belongs to another network of ours")
        assert gateway is not None
        subnet6 = gateway6 = ""
        if ipv6:
            subnet6, gateway6 = self._ipv6_subnet(name, ipv6, existing)
        network = Network(name, subnet, gateway, bridge, masquerade, mtu, "", subnet6, gateway6)
        path = _config.write_conflist(
            self.config_dir, _config.conflist_of(network, self.layout.ipam)
        )
        return dataclasses.replace(network, config_file=path)

    @staticmethod
    def _ipv6_subnet(
        name: str, ipv6: str | bool, existing: builtins.list[tuple[Network, dict[str, Any]]]
    ) -> tuple[str, str]:
        """The network's IPv6 (subnet, gateway): the given one if nothing else has it."""
        taken = [
            (f"network {network.name!r}", ipaddress.IPv6Network(network.ipv6_subnet))
            for network, _ in existing
            if network.ipv6_subnet
        ]
        taken += [("a host route", route) for route in _config.host_ipv6_networks()]
        if ipv6 is True:
            return _config.pick_ipv6_subnet(other for _, other in taken)
        assert isinstance(ipv6, str)
        for what, other in taken:
            if ipaddress.IPv6Network(ipv6).overlaps(other):
                raise InvalidArgument(
                    f"ipv6 subnet {ipv6} of network {name!r} overlaps {what} ({other})"
                )
        return _config.parse_ipv6_subnet(ipv6)

    async def list(self) -> builtins.list[Network]:
        """Every network of ours, by name."""
        return [network for network, _ in _config.read_networks(self.config_dir)]

    async def get(self, name: str) -> Network:
        """The network called ``name``; NotFound if there is none."""
        return _config.network_of(self._conflist(name), _config.config_path(self.config_dir, name))

    async def remove(self, name: str) -> None:
        """Remove the network, its bridge and its lease folder; NotFound, or FailedPrecondition
        while a container (of any client or daemon on this host) is attached to it."""
        check_network_name(name)
        async with self.host_lock.held():
            conflist = self._conflist(name)
            users = sorted(
                str(data.get("container_id", key))
                for key, data in iter_records(self.layout)
                if data.get("network") == name
            )
            leases = _leases(os.path.join(self.layout.ipam, name))
            if users or leases:
                raise FailedPrecondition(
                    f"cannot remove network {name!r}: containers use it"
                    f" ({', '.join(users) or f'{len(leases)} lease(s) held'}); delete them first"
                )
            network = _config.network_of(conflist)
            if conflist.get(OWN_RULES_KEY):
                await self.rules.remove(network)
            _config.remove_conflist(self.config_dir, name)
            shutil.rmtree(os.path.join(self.layout.ipam, name), ignore_errors=True)
            if _link_exists(network.bridge):
                await _ip("link", "delete", network.bridge)

    def _conflist(self, name: str) -> dict[str, Any]:
        check_network_name(name)
        conflist = _config.read_conflist(self.config_dir, name)
        if conflist is None:
            raise NotFound(f"no network {name!r} (create it with networks.create({name!r}))")
        return conflist


def _leases(folder: str) -> builtins.list[str]:
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return []
    leases = []
    for name in names:
        with contextlib.suppress(ValueError):
            ipaddress.ip_address(name)
            leases.append(name)
    return leases


def _link_exists(name: str) -> bool:
    return os.path.exists(f"/sys/class/net/{name}")


def _free_bridge_name(name: str, taken: set[str]) -> str:
    if name == DEFAULT_NETWORK and name not in taken:
        return name
    for index in range(1, 10_000):
        candidate = f"lcd{index}"
        if candidate not in taken and not _link_exists(candidate):
            return candidate
    raise InvalidArgument("no free bridge name lcd1..lcd9999: pass bridge=")


async def _ip(*args: str) -> None:
    process = await asyncio.create_subprocess_exec(
        "ip", *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    _, stderr = await process.communicate()
    if process.returncode != 0:
        raise NetworkError(f"ip {' '.join(args)} failed: {stderr.decode(errors='replace').strip()}")
