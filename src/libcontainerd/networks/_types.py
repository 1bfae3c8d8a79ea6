"""What the network room hands out and takes: networks, attachments, ports, a container's view.

Each value checks itself when it is made (as the ``oci.with_*`` options
do), so a bad port or name fails with InvalidArgument before anything is
created on the host.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

from ..errors import InvalidArgument

__all__ = ["DEFAULT_NETWORK", "Attach", "Network", "NetworkInfo", "Port", "check_network_name"]

DEFAULT_NETWORK: Final = "lcd0"
"""The network ``create(..., network=Attach())`` joins; made on first use."""

RESERVED_NAMES: Final = frozenset({"host", "none", "bridge", "default"})

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}\Z", re.ASCII)
_HOSTNAME = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)(?:\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*\Z")
_PROTOCOLS: Final = frozenset({"tcp", "udp", "sctp"})


def check_network_name(name: object) -> str:
    """``name`` if it can name a network (a file and a CNI network), else InvalidArgument."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidArgument(
            f"network name {name!r} is not valid: 1 to 63 letters, digits, '_', '.' or '-',"
            " starting with a letter or digit"
        )
    return name


def _check_port_number(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise InvalidArgument(f"{what} must be a port number from 1 to 65535, not {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class Port:
    """A published port: ``host_port`` on the host (``host_ip``, or all) to ``container_port``."""

    host_port: int
    container_port: int
    protocol: str = "tcp"
    host_ip: str = ""

    def __post_init__(self) -> None:
        _check_port_number(self.host_port, "host port")
        _check_port_number(self.container_port, "container port")
        if self.protocol not in _PROTOCOLS:
            raise InvalidArgument(
                f"port protocol must be one of {', '.join(sorted(_PROTOCOLS))},"
                f" not {self.protocol!r}"
            )
        if self.host_ip:
            try:
                ipaddress.ip_address(self.host_ip)
            except ValueError:
                raise InvalidArgument(f"host_ip {self.host_ip!r} is not an IP address") from None

    def __str__(self) -> str:
        """Docker's PORTS form: ``0.0.0.0:8080->80/tcp`` (no ``host_ip``: every address)."""
        host = f"[{self.host_ip}]" if ":" in self.host_ip else self.host_ip or "0.0.0.0"
        return f"{host}:{self.host_port}->{self.container_port}/{self.protocol}"


@dataclass(frozen=True, slots=True)
class Attach:
    """A container's place on a network: ``create(..., network=Attach("lcd0", ports=[...]))``.

    ``hostname`` defaults to the container id (cut to 63 characters);
    ``dns`` servers replace the host's (whose loopback resolvers are
    dropped: they do not answer inside the container); ``extra_hosts``
    maps names to addresses in the container's ``/etc/hosts``.
    """

    network: str = DEFAULT_NETWORK
    ports: tuple[Port, ...] = ()
    hostname: str | None = None
    dns: tuple[str, ...] | None = None
    dns_search: tuple[str, ...] = ()
    dns_options: tuple[str, ...] = ()
    extra_hosts: Mapping[str, str] = field(default_factory=dict)

    def __init__(
        self,
        network: str = DEFAULT_NETWORK,
        *,
        ports: Iterable[Port] = (),
        hostname: str | None = None,
        dns: Iterable[str] | None = None,
        dns_search: Iterable[str] = (),
        dns_options: Iterable[str] = (),
        extra_hosts: Mapping[str, str] | None = None,
    ) -> None:
        check_network_name(network)
        if network in RESERVED_NAMES:
            raise InvalidArgument(
                f"network {network!r} is a mode, not a network: use the spec's namespaces"
                " (oci.with_host_namespace('network')), or leave network= out for the"
                " spec's own namespace (only lo, up)"
            )
        port_list = tuple(ports)
        for port in port_list:
            if not isinstance(port, Port):
                raise InvalidArgument(f"ports must be Port values, not {type(port).__name__}")
        seen: set[tuple[str, int, str]] = set()
        for port in port_list:
            key = (port.host_ip, port.host_port, port.protocol)
            if key in seen:
                raise InvalidArgument(
                    f"host port {port.host_port}/{port.protocol} is published twice"
                )
            seen.add(key)
        if hostname is not None and not _HOSTNAME.match(hostname):
            raise InvalidArgument(f"hostname {hostname!r} is not a valid host name")
        servers = None if dns is None else tuple(dns)
        for server in servers or ():
            _check_address(server, "dns server")
        hosts = dict(extra_hosts or {})
        for name, address in hosts.items():
            if not isinstance(name, str) or not _HOSTNAME.match(name):
                raise InvalidArgument(f"extra_hosts name {name!r} is not a valid host name")
            _check_address(address, f"extra_hosts address of {name!r}")
        object.__setattr__(self, "network", network)
        object.__setattr__(self, "ports", port_list)
        object.__setattr__(self, "hostname", hostname)
        object.__setattr__(self, "dns", servers)
        object.__setattr__(self, "dns_search", tuple(dns_search))
        object.__setattr__(self, "dns_options", tuple(dns_options))
        object.__setattr__(self, "extra_hosts", hosts)


def _check_address(value: object, what: str) -> None:
    try:
        ipaddress.ip_address(value)  # type: ignore[arg-type]
    except ValueError:
        raise InvalidArgument(f"{what} {value!r} is not an IP address") from None


@dataclass(frozen=True, slots=True)
class Network:
    """A network of ours: a bridge, its subnet and gateway (and IPv6 ones, when it has them),
    and the conflist that makes it."""

    name: str
    subnet: str
    gateway: str
    bridge: str
    masquerade: bool = True
    mtu: int | None = None
    config_file: str = ""
    ipv6_subnet: str = ""
    ipv6_gateway: str = ""


@dataclass(frozen=True, slots=True)
class NetworkInfo:
    """A container's network as CNI set it up: its addresses (CIDR), gateway, MAC and ports."""

    network: str
    interface: str
    addresses: tuple[str, ...]
    gateway: str
    mac: str
    ports: tuple[Port, ...]
    hostname: str
    netns: str

    @property
    def address(self) -> str:
        """The first address, without its prefix length (what a peer connects to)."""
        return self.addresses[0].split("/")[0] if self.addresses else ""
