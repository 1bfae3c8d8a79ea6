"""Our networks as CNI conflists: what each holds, where they live, how a free subnet is picked.

A network is one conflist file, ``<name>.conflist`` in :data:`CONFIG_DIR`
(it outlives a reboot, as a Docker network does): the ``bridge`` plugin
(the gateway on the bridge, hairpin) with ``host-local`` IPAM whose leases
live under ``/run`` (a reboot leaves none), then ``portmap`` (published
ports) and ``tuning``. Masquerade and the FORWARD chain's rules are the
network's own, once per network (:mod:`._rules`; the conflist's
``libcontainerd`` key says so), not the bridge plugin's ``ipMasq`` and the
``firewall`` plugin's per container, which older conflists of ours still
use. The bridge plugin turns the host's IPv4 forwarding on when it makes
the gateway: routing the containers' traffic out needs it.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
from collections.abc import Iterable
from typing import Any, Final

from ..errors import InvalidArgument
from ._cni import CNI_VERSION
from ._rules import OWN_RULES_KEY
from ._types import Network, check_network_name

__all__ = [
    "CONFIG_DIR",
    "DEFAULT_POOL",
    "conflist_of",
    "host_networks",
    "network_of",
    "pick_subnet",
    "read_networks",
    "write_conflist",
]

CONFIG_DIR: Final = "/var/lib/libcontainerd/networks"
DEFAULT_POOL: Final = ipaddress.ip_network("10.89.0.0/16")
"""Where subnets are picked from when none is given: /24s, the first free one."""
DEFAULT_IPV6_POOL: Final = ipaddress.ip_network("fd6c:6364::/48")
"""Where ``ipv6=True`` picks a /64 (a unique local prefix: never routed on the internet)."""
_SUFFIX: Final = ".conflist"


def conflist_of(network: Network, ipam_dir: str) -> dict[str, Any]:
    """The CNI conflist that makes ``network``."""
    bridge: dict[str, Any] = {
        "type": "bridge",
        "bridge": network.bridge,
        "isGateway": True,
        "ipMasq": False,  # the network's own rule (_rules), not one per container
        "hairpinMode": True,
        "ipam": {
            "type": "host-local",
            "ranges": [[{"subnet": network.subnet, "gateway": network.gateway}]],
            "routes": [{"dst": "0.0.0.0/0"}],
            "dataDir": ipam_dir,
        },
    }
    if network.ipv6_subnet:
        ipam = bridge["ipam"]
        ipam["ranges"].append([{"subnet": network.ipv6_subnet, "gateway": network.ipv6_gateway}])
        ipam["routes"].append({"dst": "::/0"})
    if network.mtu is not None:
        bridge["mtu"] = network.mtu
    return {
        "cniVersion": CNI_VERSION,
        "name": network.name,
        "disableCheck": True,
        OWN_RULES_KEY: {"rules": "network", "masquerade": network.masquerade},
        "plugins": [
            bridge,
            {"type": "portmap", "capabilities": {"portMappings": True}},
            {"type": "tuning"},
        ],
    }


def network_of(conflist: dict[str, Any], path: str = "") -> Network:
    """Read a conflist of ours back; ValueError if it is not one."""
    bridge = conflist["plugins"][0]
    if bridge.get("type") != "bridge":
        raise ValueError("the first plugin is not a bridge")
    ranges = bridge["ipam"]["ranges"]
    range_ = ranges[0][0]
    range6 = ranges[1][0] if len(ranges) > 1 else {}
    mtu = bridge.get("mtu")
    own = conflist.get(OWN_RULES_KEY) or {}
    return Network(
        name=str(conflist["name"]),
        subnet=str(range_["subnet"]),
        gateway=str(range_["gateway"]),
        bridge=str(bridge["bridge"]),
        masquerade=bool(own.get("masquerade", bridge.get("ipMasq", False))),
        mtu=int(mtu) if mtu is not None else None,
        config_file=path,
        ipv6_subnet=str(range6.get("subnet", "")),
        ipv6_gateway=str(range6.get("gateway", "")),
    )


def config_path(config_dir: str, name: str) -> str:
    return os.path.join(config_dir, check_network_name(name) + _SUFFIX)


def read_conflist(config_dir: str, name: str) -> dict[str, Any] | None:
    """The network's conflist, or None when there is no such network."""
    try:
        with open(config_path(config_dir, name), encoding="utf-8") as file:
            document = json.load(file)
    except FileNotFoundError:
        return None
    return document if isinstance(document, dict) else None


def read_networks(config_dir: str) -> list[tuple[Network, dict[str, Any]]]:
    """Every readable network of ours, by name; files that are not ours are passed over."""
    try:
        names = sorted(os.listdir(config_dir))
    except FileNotFoundError:
        return []
    found = []
    for file_name in names:
        if not file_name.endswith(_SUFFIX) or file_name.startswith("."):
            continue
        path = os.path.join(config_dir, file_name)
        try:
            with open(path, encoding="utf-8") as file:
                document = json.load(file)
            found.append((network_of(document, path), document))
        except (OSError, ValueError, KeyError, IndexError, TypeError):
            continue
    return found


def write_conflist(config_dir: str, conflist: dict[str, Any]) -> str:
    """Write the conflist whole (a sibling file renamed over it); its path."""
    os.makedirs(config_dir, mode=0o755, exist_ok=True)
    path = config_path(config_dir, str(conflist["name"]))
    temporary = f"{path}.{os.getpid()}.tmp"
    with open(temporary, "w", encoding="utf-8") as file:
        json.dump(conflist, file, indent=2)
        file.write("\n")
    os.replace(temporary, path)
    return path


def remove_conflist(config_dir: str, name: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(config_path(config_dir, name))


def host_networks() -> list[ipaddress.IPv4Network]:
    """The host's IPv4 routes other than the default one, and its interfaces' subnets."""
    found: list[ipaddress.IPv4Network] = []
    try:
        with open("/proc/net/route", encoding="ascii") as file:
            lines = file.read().splitlines()[1:]
    except OSError:
        lines = []
    for line in lines:
        fields = line.split()
        if len(fields) < 8:
            continue
        destination = ipaddress.IPv4Address(int(fields[1], 16).to_bytes(4, "little"))
        mask = ipaddress.IPv4Address(int(fields[7], 16).to_bytes(4, "little"))
        if int(mask) == 0:
            continue  # the default route covers everything: it is not a collision
        with contextlib.suppress(ValueError):
            found.append(ipaddress.IPv4Network(f"{destination}/{mask}", strict=False))
    return found


def host_ipv6_networks() -> list[ipaddress.IPv6Network]:
    """The host's IPv6 routes other than default, link-local and multicast ones."""
    found: list[ipaddress.IPv6Network] = []
    try:
        with open("/proc/net/ipv6_route", encoding="ascii") as file:
            lines = file.read().splitlines()
    except OSError:
        lines = []
    for line in lines:
        fields = line.split()
        if len(fields) < 2:
            continue
        with contextlib.suppress(ValueError):
            address = ipaddress.IPv6Address(int(fields[0], 16))
            route = ipaddress.IPv6Network(f"{address}/{int(fields[1], 16)}", strict=False)
            if route.prefixlen and not (route.is_link_local or route.is_multicast):
                found.append(route)
    return found


def parse_ipv6_subnet(subnet: str) -> tuple[str, str]:
    """A given IPv6 subnet, checked: (subnet, gateway: its first address); InvalidArgument."""
    try:
        network = ipaddress.ip_network(subnet, strict=True)
    except ValueError as error:
        raise InvalidArgument(f"ipv6 subnet {subnet!r} is not a valid CIDR: {error}") from None
    if not isinstance(network, ipaddress.IPv6Network):
        raise InvalidArgument(f"ipv6 subnet {subnet} is not an IPv6 subnet")
    if network.prefixlen > 120:
        raise InvalidArgument(f"ipv6 subnet {subnet} is too small: at most /120")
    return str(network), str(network.network_address + 1)


def pick_ipv6_subnet(taken: Iterable[ipaddress.IPv6Network]) -> tuple[str, str]:
    """The first /64 of :data:`DEFAULT_IPV6_POOL` that collides with nothing: (subnet, gateway)."""
    used = list(taken)
    for candidate in DEFAULT_IPV6_POOL.subnets(new_prefix=64):
        if not any(candidate.overlaps(other) for other in used):
            return str(candidate), str(candidate.network_address + 1)
    raise InvalidArgument(f"no free /64 is left in {DEFAULT_IPV6_POOL}: pass ipv6='CIDR'")


def parse_subnet(subnet: str, gateway: str | None) -> tuple[str, str]:
    """A given subnet and gateway, checked: (subnet, gateway); InvalidArgument if bad."""
    try:
        network = ipaddress.ip_network(subnet, strict=True)
    except ValueError as error:
        raise InvalidArgument(f"subnet {subnet!r} is not a valid CIDR: {error}") from None
    if not isinstance(network, ipaddress.IPv4Network):
        raise InvalidArgument(f"subnet {subnet}: only IPv4 subnets are supported")
    if network.prefixlen > 30:
        raise InvalidArgument(f"subnet {subnet} is too small: at most /30")
    if gateway is None:
        return str(network), str(network.network_address + 1)
    try:
        address = ipaddress.ip_address(gateway)
    except ValueError:
        raise InvalidArgument(f"gateway {gateway!r} is not an IP address") from None
    if address not in network or address in (network.network_address, network.broadcast_address):
        raise InvalidArgument(f"gateway {gateway} is not a host address of subnet {network}")
    return str(network), str(address)


def overlap(subnet: str, taken: Iterable[tuple[str, ipaddress.IPv4Network]]) -> str | None:
    """What ``subnet`` collides with (a description), or None."""
    network = ipaddress.ip_network(subnet)
    for what, other in taken:
        if network.overlaps(other):
            return f"{what} ({other})"
    return None


def pick_subnet(taken: Iterable[tuple[str, ipaddress.IPv4Network]]) -> tuple[str, str]:
    """The first /24 of :data:`DEFAULT_POOL` that collides with nothing: (subnet, gateway)."""
    used = [other for _, other in taken]
    for candidate in DEFAULT_POOL.subnets(new_prefix=24):
        if not any(candidate.overlaps(other) for other in used):
            return str(candidate), str(candidate.network_address + 1)
    raise InvalidArgument(f"no free /24 is left in {DEFAULT_POOL} for a new network: pass subnet=")
