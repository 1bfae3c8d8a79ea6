"""A network's own firewall rules: masquerade and forwarding, once per network, as Docker does.

The bridge plugin's ``ipMasq`` and the ``firewall`` plugin write rules per
container: a chain and two rules in ``nat``, a rule pair in ``filter``, and
take them down again at DEL, which made up ~80 ms of each container's ~280
ms of set-up and teardown here (iptables-nft reads and writes the whole
table each time). A network of ours carries three rules instead, named by a
comment, for its subnet and bridge:

- ``nat POSTROUTING -s SUBNET ! -o BRIDGE -j MASQUERADE`` (with masquerade):
  what leaves the host from the network goes out as the host;
- ``filter FORWARD -i BRIDGE -j ACCEPT``: the containers' traffic is let
  through (outward and between them), ahead of a ``DROP`` policy (Docker
  sets one);
- ``filter FORWARD -o BRIDGE -m conntrack --ctstate RELATED,ESTABLISHED
  -j ACCEPT``: the answers come back.

The same for ``ip6tables`` when the network has an IPv6 subnet. They are
made (if missing) before a container's first ADD on a network, in each
process once, and deleted when the network is removed. They live in the
kernel: after a reboot (or a firewall reload) the next attach of a new
process writes them again. Conflists written before this (``ipMasq`` and
``firewall`` per container) keep working as they were.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any, Final

from ..errors import NetworkError
from ._types import Network

__all__ = ["OWN_RULES_KEY", "NetworkRules", "rules_of"]

OWN_RULES_KEY: Final = "libcontainerd"
"""The conflist's key saying the network's rules are ours (not the plugins')."""
_TOOL_PATH: Final = "/usr/local/sbin:/usr/sbin:/sbin:/usr/local/bin:/usr/bin:/bin"

Rule = tuple[str, str, str, tuple[str, ...]]  # (binary, table, chain, match and target)


def rules_of(network: Network) -> list[Rule]:
    """The network's rules, IPv4 then IPv6, in the order they are made."""
    comment = ("-m", "comment", "--comment", f"libcontainerd network {network.name}")
    rules: list[Rule] = []
    for binary, subnet in (("iptables", network.subnet), ("ip6tables", network.ipv6_subnet)):
        if not subnet:
            continue
        if network.masquerade:
            rules.append(
                (binary, "nat", "POSTROUTING",
                 ("-s", subnet, "!", "-o", network.bridge, *comment, "-j", "MASQUERADE"))
            )  # fmt: skip
        accept = ("-i", network.bridge, *comment, "-j", "ACCEPT")
        rules.append((binary, "filter", "FORWARD", accept))
        rules.append(
            (binary, "filter", "FORWARD",
             ("-o", network.bridge, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED",
              *comment, "-j", "ACCEPT"))
        )  # fmt: skip
    return rules


class NetworkRules:
    """Makes and removes networks' own rules; remembers, per process, which it has made."""

    def __init__(self) -> None:
        # Networks whose rules this process made or found, by the identity of their
        # conflist file: a network removed and made again elsewhere is checked again.
        self._made: set[tuple[str, int, int]] = set()

    async def ensure(self, network: Network, conflist: dict[str, Any]) -> None:
        """Make the network's rules that are missing (a few ``-C`` calls, once a process).

        Called under the host's CNI lock, so that two first containers made at
        once, by one process or two, do not both insert them.
        """
        if not conflist.get(OWN_RULES_KEY):
            return  # an older conflist: its plugins make their own rules
        identity = _identity(network)
        if identity in self._made:
            return
        for binary, table, chain, rule in rules_of(network):
            if not await _present(binary, table, chain, rule):
                # Inserted first: ahead of a DROP policy's own rules (Docker's chains).
                where = ("-I", chain, "1") if table == "filter" else ("-A", chain)
                await _run(binary, "-w", "-t", table, *where, *rule)
        self._made.add(identity)

    async def remove(self, network: Network) -> None:
        """Delete the network's rules (each as often as it is there, within reason)."""
        self._made = {made for made in self._made if made[0] != network.name}
        for binary, table, chain, rule in rules_of(network):
            for _ in range(64):
                if not await _present(binary, table, chain, rule):
                    break
                await _run(binary, "-w", "-t", table, "-D", chain, *rule)


def _identity(network: Network) -> tuple[str, int, int]:
    try:
        info = os.stat(network.config_file)
    except OSError:
        return (network.name, 0, 0)
    return (network.name, info.st_ino, info.st_mtime_ns)


async def _present(binary: str, table: str, chain: str, rule: tuple[str, ...]) -> bool:
    process = await asyncio.create_subprocess_exec(
        binary, "-w", "-t", table, "-C", chain, *rule,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        env={"PATH": _TOOL_PATH},
    )  # fmt: skip
    _, stderr = await process.communicate()
    if process.returncode == 0:
        return True
    if process.returncode == 1:
        return False  # "Bad rule (does a matching rule exist in that chain?)"
    raise NetworkError(
        f"{binary} -t {table} -C {chain} failed: {stderr.decode(errors='replace').strip()}"
    )


async def _run(*argv: str) -> None:
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        env={"PATH": _TOOL_PATH},
    )  # fmt: skip
    _, stderr = await process.communicate()
    if process.returncode != 0:
        raise NetworkError(f"{' '.join(argv)} failed: {stderr.decode(errors='replace').strip()}")
