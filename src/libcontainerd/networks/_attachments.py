"""Containers on networks: attach (pin, record, CNI ADD, DNS files), detach, recover.

Attaching a container pins a network namespace for it, records the
attachment, runs CNI ADD under the host's CNI lock, and writes its DNS files
(see :mod:`._state` for what lives where). Detaching runs DEL with the
namespace still mounted, then unmounts it: DEL without the namespace leaks
the masquerade rule (plugins#810).
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import errno
import ipaddress
import logging
import os
import shutil
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

from ..errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    LibcontainerdError,
    NotFound,
)
from . import _config, _files, _netns
from ._cni import Invocation
from ._service import NetworkService
from ._state import AttachmentRecord, cni_id, iter_records, read_record
from ._sweep import sweep_rules
from ._types import DEFAULT_NETWORK, Attach, NetworkInfo, Port, check_network_name

__all__ = ["Attachment", "Attachments"]

log = logging.getLogger(__name__)

INTERFACE: Final = "eth0"


@dataclass
class Attachment:
    """An attachment being made by this client: its record (locked) and what the spec needs."""

    key: str
    record: AttachmentRecord
    netns: str
    mounts: builtins.list[dict[str, Any]]
    hostname: str


class Attachments:
    """The attachments of one daemon's namespace; every method may raise NetworkError."""

    def __init__(self, networks: NetworkService, address: str, namespace: str) -> None:
        self._networks = networks
        self._address = address
        self._namespace = namespace
        self.layout = networks.layout
        self.runner = networks.runner
        self._lock = networks.host_lock

    async def _conflist_to_attach(self, name: str) -> dict[str, Any]:
        """The network's conflist; the default network is made on first use."""
        conflist = _config.read_conflist(self._networks.config_dir, check_network_name(name))
        if conflist is not None:
            return conflist
        if name != DEFAULT_NETWORK:
            raise NotFound(f"no network {name!r} (create it with networks.create({name!r}))")
        with contextlib.suppress(AlreadyExists):  # another client made it meanwhile
            await self._networks.create(DEFAULT_NETWORK, bridge=DEFAULT_NETWORK)
        conflist = _config.read_conflist(self._networks.config_dir, name)
        if conflist is None:  # removed again meanwhile
            raise NotFound(f"no network {name!r}")
        return conflist

    # -- containers -------------------------------------------------------------------

    def key(self, container_id: str) -> str:
        return cni_id(self._address, self._namespace, container_id)

    def stale_record(self, container_id: str) -> bool:
        """Whether a record of this container id is on the host (a live or a dead one's)."""
        return os.path.exists(self.layout.record(self.key(container_id)))

    async def attach(self, container_id: str, attach: Attach, default_hostname: str) -> Attachment:
        """Pin a namespace, record, run CNI ADD, write the DNS files; undone on any failure.

        The record stays locked until :meth:`settle` or :meth:`detach`.
        """
        key = self.key(container_id)
        conflist = await self._conflist_to_attach(attach.network)
        self.runner.check_chain(conflist)
        try:
            self.layout.make()
        except PermissionError:
            raise FailedPrecondition(
                f"cannot attach container {container_id!r} to a network: it takes root"
                f" (making {self.layout.root} was refused)"
            ) from None
        record = AttachmentRecord.try_lock(self.layout.record(key), create=True)
        if record is None:
            raise FailedPrecondition(
                f"cannot create container {container_id!r}: another client is setting up"
                " or tearing down a network for that id"
            )
        if record.data:  # another's: never removed here
            record.release()
            raise AlreadyExists(
                f"cannot create container {container_id!r}: it has a network record"
                " already (the container exists, or a client left it: open a client"
                " to clean it up)"
            )
        try:
            self._check_ports(key, attach.ports)
            hostname = attach.hostname or default_hostname
            netns = self.layout.namespace(key)
            record.data = {
                "phase": "adding",
                "address": self._address,
                "namespace": self._namespace,
                "container_id": container_id,
                "network": attach.network,
                "conflist": conflist,
                "netns": netns,
                "ifname": INTERFACE,
                "ports": [_port_json(port) for port in attach.ports],
                "hostname": hostname,
                "result": None,
            }
            record.save()
        except BaseException:
            record.remove()
            record.release()
            raise
        try:
            await asyncio.to_thread(_pin, netns)
            result = await self._add(key, record)
            await _gateway_settled(conflist)
            addresses = [str(ip["address"]) for ip in result.get("ips", [])]
            paths = _files.write_files(self.layout.files_of(key), attach, hostname, addresses)
        except BaseException:
            with contextlib.suppress(Exception):
                await self._teardown(key, record)
            record.release()
            raise
        return Attachment(key, record, netns, _files.mounts_for(paths), hostname)

    async def _add(self, key: str, record: AttachmentRecord) -> dict[str, Any]:
        data = record.data

        def keep(result: dict[str, Any]) -> None:
            # DEL needs what each plugin did so far: the firewall plugin forgets an
            # address's rules when DEL gives it no result.
            data["result"] = result
            record.save()

        conflist = data["conflist"]
        path = _config.config_path(self._networks.config_dir, str(data["network"]))
        async with self._lock.held():
            # Under the host's lock: two first containers at once make the rules once.
            await self._networks.rules.ensure(_config.network_of(conflist, path), conflist)
            result = await self.runner.add(
                data["conflist"],
                Invocation(key, data["netns"], data["ifname"]),
                {"portMappings": data["ports"]},
                on_result=keep,
            )
        data["phase"] = "added"
        record.save()
        return result

    def settle(self, attachment: Attachment) -> None:
        """The container exists: its record says so, and is left for others to lock."""
        attachment.record.data["phase"] = "ready"
        attachment.record.save()
        attachment.record.release()

    async def undo(self, attachment: Attachment) -> None:
        try:
            await self._teardown(attachment.key, attachment.record)
        finally:
            attachment.record.release()

    async def detach(self, container_id: str) -> None:
        """CNI DEL with the namespace still mounted, then unmount; nothing if never attached.

        FailedPrecondition while another client works on it; NetworkError when
        DEL fails (the record stays, so a later delete or client retries).
        """
        path = self.layout.record(self.key(container_id))
        try:
            record = AttachmentRecord.try_lock(path, create=False)
        except FileNotFoundError:
            return
        if record is None:
            raise FailedPrecondition(
                f"cannot delete container {container_id!r}: another client is setting up"
                " or tearing down its network"
            )
        try:
            if record.data:
                await self._teardown(self.key(container_id), record)
            else:
                record.remove()
        finally:
            record.release()

    async def _teardown(self, key: str, record: AttachmentRecord) -> None:
        """DEL (if an ADD may have run), unmount, remove files and record: in that order."""
        data = record.data
        netns = str(data.get("netns") or self.layout.namespace(key))
        if data.get("phase") != "deleting":
            data["phase"] = "deleting"
            record.save()
        conflist = data.get("conflist")
        if conflist:
            pinned = _netns.is_pinned(netns)
            who = Invocation(key, netns if pinned else "", str(data.get("ifname") or INTERFACE))
            async with self._lock.held():
                await self.runner.delete(
                    conflist, who, data.get("result"), {"portMappings": data.get("ports") or []}
                )
                if not pinned:
                    await sweep_rules(key)  # what DEL cannot find without the namespace
        await asyncio.to_thread(_netns.unpin, netns)
        shutil.rmtree(self.layout.files_of(key), ignore_errors=True)
        record.remove()

    def info(self, container_id: str) -> NetworkInfo | None:
        """The container's network as recorded; None without one (or before its ADD ended)."""
        data = read_record(self.layout.record(self.key(container_id)))
        result = data.get("result")
        if data.get("phase") not in ("added", "ready") or not isinstance(result, dict):
            return None
        interfaces = result.get("interfaces") or []
        ifname = data.get("ifname") or INTERFACE
        mac = next(
            (
                str(item.get("mac", ""))
                for item in interfaces
                if item.get("name") == ifname and item.get("sandbox")
            ),
            "",
        )
        ips = result.get("ips") or []
        return NetworkInfo(
            network=str(data.get("network", "")),
            interface=ifname,
            addresses=tuple(str(ip["address"]) for ip in ips),
            gateway=next((str(ip["gateway"]) for ip in ips if ip.get("gateway")), ""),
            mac=mac,
            ports=tuple(Port(**port_args) for port_args in _ports_of(data)),
            hostname=str(data.get("hostname", "")),
            netns=str(data.get("netns", "")),
        )

    def _check_ports(self, key: str, ports: Iterable[Port]) -> None:
        """AlreadyExists when a host port is published by another container, or bound here."""
        wanted = builtins.list(ports)
        if not wanted:
            return
        for other_key, data in iter_records(self.layout):
            if other_key == key:
                continue
            for other in _ports_of(data):
                for port in wanted:
                    if (
                        port.host_port == other["host_port"]
                        and port.protocol == other["protocol"]
                        and (
                            not port.host_ip
                            or not other["host_ip"]
                            or port.host_ip == other["host_ip"]
                        )
                    ):
                        raise AlreadyExists(
                            f"host port {port.host_port}/{port.protocol} is already published"
                            f" by container {data.get('container_id', other_key)!r}"
                        )
        for port in wanted:
            _check_port_free(port)

    # -- recovery ---------------------------------------------------------------------

    def _ours(self, data: dict[str, Any]) -> bool:
        return data.get("address") == self._address and data.get("namespace") == self._namespace

    def needs_reconcile(self) -> bool:
        """Whether a record of this daemon and namespace (or an empty one) is on the host."""
        return any(not data or self._ours(data) for _, data in iter_records(self.layout))

    async def reconcile(self, existing: Iterable[str]) -> builtins.list[str]:
        """Clean up what dead clients of this daemon and namespace left; the container ids cleaned.

        ``existing`` are the namespace's containers now. A record nobody holds
        whose container is gone gets DEL and unmount; so does one left in the
        middle of a DEL. A pinned namespace with no record is unmounted, and an
        empty record nobody holds (its client died before writing it) removed.
        """
        alive = set(existing)
        cleaned = []
        for key in self.layout.record_keys():
            data = read_record(self.layout.record(key))
            if not data:
                self._remove_if_abandoned(key)
                continue
            if not self._ours(data):
                continue
            container_id = str(data.get("container_id", ""))
            if container_id in alive and data.get("phase") != "deleting":
                continue
            try:
                record = AttachmentRecord.try_lock(self.layout.record(key), create=False)
            except FileNotFoundError:
                continue
            if record is None:
                continue  # a live client is working on it
            try:
                if record.data.get("phase") in ("adding", "added") and container_id in alive:
                    # Killed after Containers.Create: the container has its network.
                    record.data["phase"] = "ready"
                    record.save()
                    continue
                await self._teardown(key, record)
                cleaned.append(container_id)
            except (LibcontainerdError, OSError) as error:
                log.warning("network of container %s: cleanup failed: %s", container_id, error)
            finally:
                record.release()
        keys = set(self.layout.record_keys())
        for name in self.layout.pinned():
            # Listed again: a record is written before its namespace is pinned.
            if name not in keys and name not in self.layout.record_keys():
                with contextlib.suppress(OSError):
                    await asyncio.to_thread(_netns.unpin, self.layout.namespace(name))
        return cleaned

    def _remove_if_abandoned(self, key: str) -> None:
        try:
            record = AttachmentRecord.try_lock(self.layout.record(key), create=False)
        except FileNotFoundError:
            return
        if record is None:
            return  # its client is about to write it
        try:
            if not record.data and not _netns.is_pinned(self.layout.namespace(key)):
                record.remove()
        finally:
            record.release()


def _pin(path: str) -> None:
    try:
        _netns.pin_new(path)
    except FileExistsError:
        # Left by a client killed before it recorded the namespace's use: unmount, pin anew.
        _netns.unpin(path)
        _netns.pin_new(path)


# IPv6 duplicate address detection keeps a new bridge's gateway address "tentative"
# (unusable) for ~1.5 s here; published ports answer on it only after that.
_IFA_F_TENTATIVE: Final = 0x40
_SETTLE_TIMEOUT: Final = 5.0


async def _gateway_settled(conflist: dict[str, Any]) -> None:
    """Wait until the bridge's IPv6 gateway address (if the network has one) is usable."""
    network = _config.network_of(conflist)
    if not network.ipv6_gateway:
        return
    wanted = ipaddress.IPv6Address(network.ipv6_gateway).exploded.replace(":", "")
    deadline = asyncio.get_running_loop().time() + _SETTLE_TIMEOUT
    while asyncio.get_running_loop().time() < deadline:
        flags = _address_flags(network.bridge, wanted)
        if flags is None or not flags & _IFA_F_TENTATIVE:
            return
        await asyncio.sleep(0.05)
    log.warning("the IPv6 gateway %s of %s is still tentative", network.ipv6_gateway, network.name)


def _address_flags(interface: str, address: str) -> int | None:
    """The flags of an IPv6 address (32 hex digits) on ``interface``; None if not there."""
    with contextlib.suppress(OSError), open("/proc/net/if_inet6", encoding="ascii") as file:
        for line in file:
            fields = line.split()
            if len(fields) >= 6 and fields[0] == address and fields[5] == interface:
                return int(fields[4], 16)
    return None


def _port_json(port: Port) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "hostPort": port.host_port,
        "containerPort": port.container_port,
        "protocol": port.protocol,
    }
    if port.host_ip:
        entry["hostIP"] = port.host_ip
    return entry


def _ports_of(data: dict[str, Any]) -> builtins.list[dict[str, Any]]:
    found = []
    for entry in data.get("ports") or []:
        with contextlib.suppress(KeyError, TypeError):
            found.append(
                {
                    "host_port": int(entry["hostPort"]),
                    "container_port": int(entry["containerPort"]),
                    "protocol": str(entry.get("protocol", "tcp")),
                    "host_ip": str(entry.get("hostIP", "")),
                }
            )
    return found


def _check_port_free(port: Port) -> None:
    if port.protocol == "sctp":
        return
    host = port.host_ip or "0.0.0.0"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    kind = socket.SOCK_STREAM if port.protocol == "tcp" else socket.SOCK_DGRAM
    with socket.socket(family, kind) as probe:
        if kind == socket.SOCK_STREAM:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is no owner
        try:
            probe.bind((host, port.host_port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise AlreadyExists(
                    f"host port {port.host_port}/{port.protocol} is in use on this host"
                ) from None
            if error.errno == errno.EADDRNOTAVAIL:
                raise InvalidArgument(
                    f"host_ip {port.host_ip} is not an address of this host"
                ) from None
            raise
