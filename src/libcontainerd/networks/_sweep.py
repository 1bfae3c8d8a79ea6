"""Rules a DEL without its namespace leaves, found by the CNI container id and removed.

The bridge plugin finds a container's masquerade rule from the addresses
inside its namespace; when the namespace is already gone, DEL releases the
lease but leaves the rule and its chain (plugins#810). Every rule the
plugins write carries a comment with the container's CNI id, so what is
left is found in ``iptables-save`` and deleted, with the per-container
chains those rules jump to. The shared chains stay, by design.
"""

from __future__ import annotations

import asyncio
import shlex
from typing import Final

from ..errors import NetworkError

__all__ = ["sweep_rules"]

_TABLES: Final = ("nat", "filter")
_SHARED: Final = frozenset({"CNI-FORWARD", "CNI-ADMIN"})
_TOOL_PATH: Final = "/usr/local/sbin:/usr/sbin:/sbin:/usr/local/bin:/usr/bin:/bin"


async def sweep_rules(key: str) -> int:
    """Delete the rules naming CNI id ``key`` and the chains only they jump to; how many."""
    marker = f'id: \\"{key}\\"'
    removed = 0
    for table in _TABLES:
        listing = await _iptables("iptables-save", "-t", table)
        rules = [
            shlex.split(line)
            for line in listing.splitlines()
            if line.startswith("-A ") and marker in line
        ]
        chains = {
            words[words.index("-j") + 1]
            for words in rules
            if "-j" in words
            and words[words.index("-j") + 1].startswith("CNI-")
            and not words[words.index("-j") + 1].startswith("CNI-HOSTPORT-")
            and words[words.index("-j") + 1] not in _SHARED
        }
        for words in rules:
            if words[1] not in chains:  # rules inside a doomed chain go with its flush
                await _iptables("iptables", "-w", "-t", table, "-D", *words[1:])
                removed += 1
        for chain in sorted(chains):
            await _iptables("iptables", "-w", "-t", table, "-F", chain)
            await _iptables("iptables", "-w", "-t", table, "-X", chain)
            removed += 1
    return removed


async def _iptables(*argv: str) -> str:
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={"PATH": _TOOL_PATH},
    )
    stdout, stderr = await process.communicate()
    if process.returncode != 0:
        raise NetworkError(
            f"{' '.join(argv[:4])} failed: {stderr.decode(errors='replace').strip()}"
        )
    return stdout.decode(errors="replace")
