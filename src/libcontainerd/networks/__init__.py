"""Container networking with CNI: a network namespace per container, published ports, DNS.

``client.networks`` is a :class:`NetworkService` (async) on
:class:`~libcontainerd.AsyncClient` and a :class:`BlockingNetworkService` on
the blocking ``Client``. ``create(..., network=Attach("lcd0", ports=[Port(8080,
80)]))`` gives a container its own network namespace, pinned by a bind mount
under ``/run/libcontainerd/networks``, an address on the network's bridge
(CNI ADD before the container exists, as containerd's CRI does, not from OCI
hooks), its published ports, and read-only ``/etc/resolv.conf``,
``/etc/hosts`` and ``/etc/hostname``; ``delete()`` runs CNI DEL with the
namespace still mounted, then unmounts it. ``network_info(container_id)``
says what it got. Without ``network=`` a container keeps the spec's own
namespace: empty but for ``lo`` (runc brings it up in a namespace it makes;
in a pinned one we do).

The plugins are Debian's ``containernetworking-plugins`` (``/usr/lib/cni``,
or ``$CNI_PATH``), run by a small CNI runner of ours; they need
``iptables``. The default network ``lcd0`` (bridge ``lcd0``, the first free
/24 of 10.89.0.0/16) is made on first use. Its bridge plugin switches the
host's IPv4 forwarding on (``net.ipv4.ip_forward``) when it makes the
gateway: containers reach other hosts through it.

Modules: :mod:`._service` (networks, attach and detach, recovery),
:mod:`._containers` (the container hook), :mod:`._cni` (the plugin runner),
:mod:`._config` (conflists and subnets), :mod:`._state` (what lives under
``/run``, locks), :mod:`._netns` (pinned namespaces), :mod:`._files` (DNS
files), :mod:`._types` (what is handed out).
"""

from ._service import NetworkService
from ._sync import BlockingNetworkService
from ._types import DEFAULT_NETWORK, Attach, Network, NetworkInfo, Port

__all__ = [
    "DEFAULT_NETWORK",
    "Attach",
    "BlockingNetworkService",
    "Network",
    "NetworkInfo",
    "NetworkService",
    "Port",
]
