"""``lcd network create/ls/inspect/rm``, ``lcd port``, and the network options of ``lcd run``.

Networks are the host's, not a daemon's: these commands need no containerd
(they never start the embedded one).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

from .. import oci
from .._identifiers import check_identifier
from ..errors import InvalidArgument
from ..networks import DEFAULT_NETWORK, Attach, NetworkService, Port
from ._app import CONTEXT, Settings, connect, json_option, pass_settings
from ._failures import Failure
from ._output import Output

__all__ = ["COMMANDS", "NetworkRequest", "network_options"]

F = TypeVar("F", bound=Callable[..., Any])


def _service(settings: Settings) -> NetworkService:
    # Networks are the host's: neither the daemon nor the namespace chooses them.
    return NetworkService()


@click.group(context_settings=CONTEXT)
def network() -> None:
    """Manage networks: a bridge with a subnet, on which containers get addresses (CNI)."""


@network.command(name="create", context_settings=CONTEXT)
@click.option("--subnet", metavar="CIDR", help="IPv4 subnet; default: a free /24 of 10.89.0.0/16")
@click.option("--gateway", metavar="IP", help="the bridge's address; default: the subnet's first")
@click.option("--bridge", metavar="NAME", help="the bridge device; default: lcd<N>")
@click.option("--no-masquerade", is_flag=True, help="no NAT for traffic leaving the subnet")
@click.option("--mtu", type=int, help="the MTU of the bridge and the containers' interfaces")
@click.option("--ipv6", is_flag=True, help="IPv6 too: a free /64 of fd6c:6364::/48")
@click.option("--ipv6-subnet", metavar="CIDR", help="IPv6 too, on this subnet")
@click.argument("name")
@pass_settings
def create(
    settings: Settings,
    name: str,
    subnet: str | None,
    gateway: str | None,
    bridge: str | None,
    no_masquerade: bool,
    mtu: int | None,
    ipv6: bool,
    ipv6_subnet: str | None,
) -> None:
    """Create network NAME; print its name.

    With IPv6 the host's IPv6 forwarding is switched on (by the bridge plugin).
    """
    made = asyncio.run(
        _service(settings).create(
            name,
            subnet=subnet,
            gateway=gateway,
            bridge=bridge,
            masquerade=not no_masquerade,
            mtu=mtu,
            ipv6=ipv6_subnet or ipv6 or None,
        )
    )
    click.echo(made.name)


@network.command(name="ls", context_settings=CONTEXT)
@json_option
@pass_settings
def list_networks(settings: Settings, as_json: bool) -> None:
    """List the networks."""
    networks = asyncio.run(_service(settings).list())
    out = Output()
    if as_json:
        out.json([dataclasses.asdict(made) for made in networks])
        return
    out.table(
        ("NAME", "SUBNET", "GATEWAY", "BRIDGE"),
        (
            (
                made.name,
                ", ".join(filter(None, (made.subnet, made.ipv6_subnet))),
                ", ".join(filter(None, (made.gateway, made.ipv6_gateway))),
                made.bridge,
            )
            for made in networks
        ),
    )


@network.command(name="inspect", context_settings=CONTEXT)
@click.argument("name")
@pass_settings
def inspect(settings: Settings, name: str) -> None:
    """Print network NAME as JSON."""
    Output().json(dataclasses.asdict(asyncio.run(_service(settings).get(name))))


@network.command(name="rm", context_settings=CONTEXT)
@click.argument("names", metavar="NAME...", nargs=-1, required=True)
@pass_settings
def remove(settings: Settings, names: tuple[str, ...]) -> None:
    """Remove networks (refused while containers use them); print each name."""
    for name in names:
        asyncio.run(_service(settings).remove(name))
        click.echo(name)


@click.command(context_settings=CONTEXT)
@click.argument("container_id", metavar="ID")
@click.argument("private", metavar="[PORT[/PROTO]]", required=False)
@json_option
@pass_settings
def port(settings: Settings, container_id: str, private: str | None, as_json: bool) -> None:
    """List the container's published ports: CONTAINER/PROTO -> HOST_IP:HOST_PORT.

    With PORT[/PROTO] (tcp unless given) only where that container port is
    published, HOST_IP:HOST_PORT, as docker port; exit 1 when it is not.
    """
    check_identifier(container_id)
    wanted = _private_port(private) if private is not None else None

    async def work() -> None:
        out = Output()
        async with connect(settings, out, start_daemon=False) as client:
            info = await client.network_info(container_id)
        ports = info.ports if info is not None else ()
        if wanted is not None:
            ports = tuple(p for p in ports if (p.container_port, p.protocol) == wanted)
            if not ports:
                raise Failure(f"no public port '{private}' published for {container_id}", 1)
        if as_json:
            out.json([dataclasses.asdict(published) for published in ports])
            return
        for published in ports:
            host = published.host_ip or "0.0.0.0"
            where = f"{host}:{published.host_port}"
            if wanted is None:
                where = f"{published.container_port}/{published.protocol} -> {where}"
            click.echo(where)

    asyncio.run(work())


def _private_port(text: str) -> tuple[int, str]:
    """``PORT[/PROTO]`` as (port, protocol), checked as a Port's container side is."""
    number, _, protocol = text.partition("/")
    try:
        checked = Port(int(number), int(number), protocol or "tcp")
    except (ValueError, InvalidArgument):
        raise click.BadParameter(f"{text!r}: use PORT[/PROTO], e.g. 80/tcp") from None
    return checked.container_port, checked.protocol


COMMANDS: tuple[click.Command, ...] = (network, port)


# --- the options of lcd run and lcd create ------------------------------------------


def network_options(function: F) -> F:
    """--network, -p, --dns and --add-host."""
    for decorator in reversed(
        (
            click.option(
                "--network",
                metavar="NAME|host|none",
                help=f"the network to join (default: {DEFAULT_NETWORK}, made on first use);"
                " 'host' shares the host's, 'none' gives one with only lo",
            ),
            click.option(
                "--publish",
                "-p",
                multiple=True,
                metavar="[IP:]HOST:CONTAINER[/PROTO]",
                help="publish a container port on the host (repeatable)",
            ),
            click.option("--dns", multiple=True, metavar="IP", help="a DNS server (repeatable)"),
            click.option(
                "--add-host",
                multiple=True,
                metavar="NAME:IP",
                help="an /etc/hosts entry (repeatable)",
            ),
        )
    ):
        function = decorator(function)
    return function


@dataclasses.dataclass(frozen=True, slots=True)
class NetworkRequest:
    """What --network, -p, --dns and --add-host asked for, checked when made."""

    network: str | None = None
    publish: tuple[str, ...] = ()
    dns: tuple[str, ...] = ()
    add_host: tuple[str, ...] = ()

    def attach(self, hostname: str | None) -> Attach | None:
        """The ``network=`` of the container's create: the default network unless --network
        says otherwise, as docker run; None for host (the spec shares the host's) and none
        (the spec's own namespace, where runc brings ``lo`` up)."""
        mode = self.network or DEFAULT_NETWORK
        if mode in ("host", "none"):
            if self.publish or self.dns or self.add_host:
                raise InvalidArgument(
                    f"-p, --dns and --add-host need a network, not --network {mode}"
                )
            return None
        try:
            return Attach(
                mode,
                ports=[parse_publish(text) for text in self.publish],
                hostname=hostname,
                dns=self.dns or None,
                extra_hosts=dict(_parse_host(text) for text in self.add_host),
            )
        except InvalidArgument as error:
            raise InvalidArgument(f"--network/-p/--dns/--add-host: {error}") from None

    def spec_options(self) -> Sequence[oci.SpecOption]:
        return [oci.with_host_namespace("network")] if self.network == "host" else []


def parse_publish(text: str) -> Port:
    """``[IP:]HOST:CONTAINER[/PROTO]`` (Docker's form) as a Port; InvalidArgument if not."""
    spec, _, protocol = text.partition("/")
    parts = spec.split(":")
    host_ip = parts.pop(0) if len(parts) == 3 else ""
    if len(parts) != 2 or not all(part.isdigit() for part in parts):
        raise InvalidArgument(f"-p {text!r}: use [IP:]HOST:CONTAINER[/PROTO], e.g. 8080:80")
    return Port(int(parts[0]), int(parts[1]), protocol or "tcp", host_ip=host_ip)


def _parse_host(text: str) -> tuple[str, str]:
    name, separator, address = text.partition(":")
    if not separator:
        raise InvalidArgument(f"--add-host {text!r}: use NAME:IP")
    return name, address
