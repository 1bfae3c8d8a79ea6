"""The network room's :class:`ContainerHook`: ``create(..., network=...)`` and its undoing.

Before Containers.Create it attaches the container (a pinned namespace,
CNI ADD, DNS files: see :mod:`._attachments`) and points the spec at
them: the ``network`` namespace's path, and ``/etc/resolv.conf``,
``/etc/hosts`` and ``/etc/hostname`` bind-mounted read-only. The namespace
belongs to the container, not to its task: the address survives task
restarts. Before Containers.Delete it runs CNI DEL, then unmounts.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Final

from .. import _typeurl
from .._api.containerd.api.services.containers.v1 import containers_pb2
from .._api.containerd.api.services.tasks.v1 import tasks_pb2
from .._api.containerd.runtime.v2.runc.options import oci_pb2 as runc_pb2
from .._session import Session
from .._tasks import ContainerHook, NewContainer
from ..errors import AlreadyExists, InvalidArgument, LibcontainerdError
from . import _netns
from ._attachments import Attachment, Attachments
from ._types import Attach, NetworkInfo

__all__ = ["CNI_ID_LABEL", "NETNS_LABEL", "NETWORK_LABEL", "NetworkAttachments", "attach_argument"]

log = logging.getLogger(__name__)

NETWORK_LABEL: Final = "libcontainerd.network"
NETNS_LABEL: Final = "libcontainerd.network.netns"
CNI_ID_LABEL: Final = "libcontainerd.network.cni-id"
_NETWORK_FILES: Final = frozenset({"/etc/resolv.conf", "/etc/hosts", "/etc/hostname"})


def _restoring(request: tasks_pb2.CreateTaskRequest) -> bool:
    """Whether the task is created from a checkpoint (runc's ``criu_image_path``)."""
    options = _typeurl.unpack(request.options, runc_pb2.Options)
    return options is not None and bool(options.criu_image_path)


def attach_argument(value: object) -> Attach | None:
    """``network=`` as given: None, a network's name, or an :class:`Attach`."""
    if value is None or isinstance(value, Attach):
        return value
    if isinstance(value, str):
        return Attach(value)
    raise InvalidArgument(
        f"network must be a network name or an Attach, not {type(value).__name__}"
    )


class NetworkAttachments(ContainerHook):
    """See the module docstring."""

    def __init__(self, session: Session, networks: Attachments) -> None:
        self._session = session
        self._networks = networks
        # Creates in flight, by the identity of their NewContainer: two creates of one
        # id must never undo each other's attachment.
        self._pending: dict[int, Attachment] = {}

    def sizes(self) -> dict[str, int]:
        return {"network attachments in flight": len(self._pending)}

    async def before_create(self, container: NewContainer) -> None:
        attach = attach_argument(container.network)
        if attach is None:
            return
        spec = container.spec
        linux = spec["linux"] = dict(spec.get("linux") or {})
        namespaces = [dict(entry) for entry in linux.get("namespaces") or []]
        own = [entry for entry in namespaces if entry.get("type") == "network"]
        if not own:
            raise InvalidArgument(
                f"cannot attach container {container.id!r} to network {attach.network!r}:"
                " its spec shares the host's network namespace"
            )
        if own[0].get("path"):
            raise InvalidArgument(
                f"cannot attach container {container.id!r} to network {attach.network!r}:"
                " its spec already joins the namespace at " + str(own[0]["path"])
            )
        mounts: list[dict[str, Any]] = list(spec.get("mounts") or [])
        if any(mount.get("destination") in _NETWORK_FILES for mount in mounts):
            raise InvalidArgument(
                f"cannot attach container {container.id!r} to a network: its spec mounts"
                " /etc/resolv.conf, /etc/hosts or /etc/hostname itself"
            )
        if self._networks.stale_record(container.id):
            if await self._session.container_exists(container.id):
                raise AlreadyExists(f"cannot create container {container.id!r}: it already exists")
            await self._networks.detach(container.id)  # a dead client's leftovers
        hostname = attach.hostname or str(spec.get("hostname") or "") or container.id[:63]
        attachment = await self._networks.attach(container.id, attach, hostname)
        self._pending[id(container)] = attachment
        own[0]["path"] = attachment.netns
        linux["namespaces"] = namespaces
        spec["mounts"] = mounts + attachment.mounts
        if any(entry.get("type") == "uts" for entry in namespaces):
            spec["hostname"] = attachment.hostname
        # Recorded on the container too, for whoever looks with ctr or list_containers().
        container.labels[NETWORK_LABEL] = attach.network
        container.labels[NETNS_LABEL] = attachment.netns
        container.labels[CNI_ID_LABEL] = attachment.key

    async def after_create(self, container: NewContainer) -> None:
        attachment = self._pending.pop(id(container), None)
        if attachment is not None:
            self._networks.settle(attachment)

    async def undo_create(self, container: NewContainer) -> None:
        attachment = self._pending.pop(id(container), None)
        if attachment is not None:
            await self._networks.undo(attachment)

    async def reconcile(self) -> list[str]:
        """Clean up the attachments dead clients left in this namespace (one Containers.List,
        only when the host has records of this daemon and namespace); the container ids cleaned."""
        if not self._networks.needs_reconcile():
            return []
        session = self._session
        try:
            reply = await session.call(
                session.methods.containers.list,
                containers_pb2.ListContainersRequest(),
                "list containers",
            )
        except LibcontainerdError as error:
            # Opening must not fail for it: the next client that opens tries again.
            log.warning("network records left by dead clients not cleaned up: %s", error)
            return []
        return await self._networks.reconcile(container.id for container in reply.containers)

    def info(self, container_id: str) -> NetworkInfo | None:
        return self._networks.info(container_id)

    async def before_task_create(
        self, container_id: str, request: tasks_pb2.CreateTaskRequest
    ) -> None:
        """Before a restore into the container's pinned namespace, drop the network lock
        a dump with ``exit`` left there (see :func:`._netns.drop_criu_locks`)."""
        info = self._networks.info(container_id)
        if info is None or not info.netns or not _restoring(request):
            return
        dropped = await asyncio.to_thread(_netns.drop_criu_locks, info.netns)
        if dropped:
            log.info("container %s: dropped %d CRIU network lock(s)", container_id, dropped)

    def needs_record(self, container_id: str) -> bool:
        return False  # the attachment's record is found by the container's id

    async def before_delete(self, container: containers_pb2.Container) -> None:
        await self._networks.detach(container.id)
