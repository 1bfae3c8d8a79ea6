"""Task events: decoded from containerd's stream, delivered in order, each exit exactly once.

The event stream is the only way exits reach a backend, so it must not lose
one (Docker's did, whenever containerd restarted). Three pieces:

- :func:`decode` turns one envelope into the contract's (container id,
  EventType, EventInfo); unknown or undecodable payloads give None.
- :class:`EventDispatcher` (in :mod:`libcontainerd._dispatch`) runs the
  backend: events of one container strictly in order, containers
  concurrently, a slow or raising call for one container never delaying
  another.
- :class:`EventStream` owns the subscription. It counts a subscription as live
  only once a marker event it published to itself comes back through it (so
  nothing published after that point can be missed), reconnects with capped
  back-off when the stream breaks, and then reconciles: every process it had
  seen alive is looked up, and each exit that happened while it was away is
  reported with its real exit code and time. Exits are remembered by
  (container, process, pid), so each is reported once, even when containerd
  itself publishes a duplicate (a dead shim's synthetic 137).

OOM: an exit's ``oom_killed`` is the container cgroup's own count of OOM
kills (read when the exit arrives, before anyone can delete the task and its
cgroup: from the cgroup's file when this host shows it, else with one
Tasks.Metrics); containerd's ``oom`` events are only a hint (one
can come after the exit, or never, or by the thousand). A backend gets at
most one ``oom`` event per container between two of its exits, none after
its init process's exit, and one made up just before an exit whose count
shows a kill that no event announced.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import grpc
import grpc.aio
from google.protobuf.message import DecodeError, Message

from ._api.containerd.api.events import task_pb2 as events_pb2
from ._api.containerd.api.services.events.v1 import events_pb2 as service_pb2
from ._api.containerd.api.services.tasks.v1 import tasks_pb2
from ._api.containerd.api.types.task import task_pb2
from ._dispatch import EventDispatcher
from ._procfs import oom_count_file
from ._rpc import Connection
from ._typeurl import to_datetime, type_name
from .errors import FailedPrecondition, Unavailable
from .metrics import oom_kills_in, oom_kills_in_file
from .types import EventInfo, EventType

__all__ = ["EventDispatcher", "EventStream", "decode", "subscription_filter"]

log = logging.getLogger(__name__)


# Published by the stream to itself, under a topic its own filter selects.
MARKER_TOPIC: Final = "/tasks/libcontainerd-subscribed"
MARKER_TYPE: Final = "libcontainerd.v1.SubscriptionMarker"
# containerd's type for task deletion: not in the contract, but it ends a
# container's OOM flag.
_TASK_DELETE: Final = events_pb2.TaskDelete.DESCRIPTOR.full_name
_TASK_EXIT: Final = events_pb2.TaskExit.DESCRIPTOR.full_name
_REMEMBERED_EXITS: Final = 65536
# The pid in the remembered key that says "this container's init exit was reported".
_INIT_GONE: Final = -1
# The pid containerd's shim puts in the exit of a process whose start failed (-1 as uint32).
NO_PID: Final = 0xFFFFFFFF


def subscription_filter(namespace: str) -> str:
    """One filter, so namespace AND topic must match (two filters would be OR-ed, moby#35896)."""
    return f"namespace=={namespace},topic~=|^/tasks/|"


def _create(m: Any) -> tuple[EventType, EventInfo]:
    return EventType.CREATE, EventInfo(m.container_id, m.container_id, pid=m.pid)


def _start(m: Any) -> tuple[EventType, EventInfo]:
    return EventType.START, EventInfo(m.container_id, m.container_id, pid=m.pid)


def _exit(m: Any) -> tuple[EventType, EventInfo]:
    info = EventInfo(
        m.container_id, m.id, pid=m.pid, exit_code=m.exit_status, exited_at=to_datetime(m.exited_at)
    )
    return EventType.EXIT, info


def _oom(m: Any) -> tuple[EventType, EventInfo]:
    return EventType.OOM, EventInfo(m.container_id, oom_killed=True)


def _exec_added(m: Any) -> tuple[EventType, EventInfo]:
    return EventType.EXEC_ADDED, EventInfo(m.container_id, m.exec_id)


def _exec_started(m: Any) -> tuple[EventType, EventInfo]:
    return EventType.EXEC_STARTED, EventInfo(m.container_id, m.exec_id, pid=m.pid)


def _paused(m: Any) -> tuple[EventType, EventInfo]:
    return EventType.PAUSED, EventInfo(m.container_id)


def _resumed(m: Any) -> tuple[EventType, EventInfo]:
    return EventType.RESUMED, EventInfo(m.container_id)


_DECODERS: Final[dict[str, tuple[type[Message], Callable[[Any], tuple[EventType, EventInfo]]]]] = {
    message.DESCRIPTOR.full_name: (message, convert)
    for message, convert in (
        (events_pb2.TaskCreate, _create),
        (events_pb2.TaskStart, _start),
        (events_pb2.TaskExit, _exit),
        (events_pb2.TaskOOM, _oom),
        (events_pb2.TaskExecAdded, _exec_added),
        (events_pb2.TaskExecStarted, _exec_started),
        (events_pb2.TaskPaused, _paused),
        (events_pb2.TaskResumed, _resumed),
    )
}
# Delivered by containerd on /tasks/ but not part of the contract.
_IGNORED: Final = frozenset(
    m.DESCRIPTOR.full_name
    for m in (events_pb2.TaskDelete, events_pb2.TaskIO, events_pb2.TaskCheckpointed)
)


def decode(envelope: service_pb2.Envelope) -> tuple[EventType, EventInfo] | None:
    """The contract's view of one envelope, or None (logged) when it is not a task event we know.

    The init process's id is the container id on the wire and is reported as is.
    """
    if not envelope.HasField("event"):
        log.warning("event on %s without a payload: skipped", envelope.topic)
        return None
    name = type_name(envelope.event)
    entry = _DECODERS.get(name)
    if entry is None:
        if name not in _IGNORED:
            log.info("event %s of unknown type %r: skipped", envelope.topic, name)
        return None
    message_type, convert = entry
    try:
        message = message_type.FromString(envelope.event.value)
    except DecodeError:
        log.warning("event %s: payload %r does not decode: skipped", envelope.topic, name)
        return None
    return convert(message)


def _unknown_exit(container_id: str, process_id: str, pid: int, what: str) -> EventInfo:
    """An exit containerd no longer knows about: reported once, as Docker does, with 255."""
    return EventInfo(
        container_id,
        process_id,
        pid=pid,
        exit_code=255,
        exited_at=datetime.now(UTC),
        error=f"the process was {what} while the event stream was down; its exit code is unknown",
    )


class _RememberedExits:
    """The most recent ``limit`` exit keys, ~100 B each, however long the ids.

    A key is kept as its 64-bit hash: two different processes' keys would have
    to collide for an exit to be taken for a duplicate (odds ~2**-64 a pair).
    Keys stored as tuples of strings cost ~340 B each, ~22 MB at the limit.
    """

    __slots__ = ("_hashes", "_limit")

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._hashes: dict[int, None] = {}  # insertion order: oldest first

    def add(self, key: tuple[str, str, int]) -> None:
        digest = hash(key)
        self._hashes.pop(digest, None)  # now the most recent
        self._hashes[digest] = None
        if len(self._hashes) > self._limit:
            del self._hashes[next(iter(self._hashes))]

    def __contains__(self, key: tuple[str, str, int]) -> bool:
        return hash(key) in self._hashes

    def __len__(self) -> int:
        return len(self._hashes)


class EventStream:
    """The subscription to one namespace's task events, kept alive across containerd restarts.

    ``on_event`` is called synchronously, in stream order, for every event to
    report (after OOM flags and exit de-duplication are applied); it must not
    block.
    """

    reconnect_delay_min = 0.05
    reconnect_delay_max = 2.0

    def __init__(
        self,
        connection: Connection,
        on_event: Callable[[str, EventType, EventInfo], None],
    ) -> None:
        """Subscribe on an open ``connection`` (its namespace's events only)."""
        methods = connection.methods
        if methods is None:
            raise FailedPrecondition("the event stream needs an open connection")
        self._namespace = connection.namespace
        self._metadata = connection.metadata
        self._on_event = on_event
        self._subscribe = methods.events.subscribe
        self._publish = methods.events.publish
        self._task_get = methods.tasks.get
        self._metrics = methods.tasks.metrics
        # (container id, process id as on the wire) -> pid, for processes seen alive.
        self._alive: dict[tuple[str, str], int] = {}
        # Exits already reported (container id, process id, pid), oldest first.
        self._exits = _RememberedExits(_REMEMBERED_EXITS)
        self._oom: set[str] = set()  # an oom event came (a hint), until the task is deleted
        # The container cgroup's OOM kill count read at an exit, once it is > 0 (the truth).
        self._oom_kills: dict[str, int] = {}
        # Containers whose backend got an oom event since their last exit (coalescing).
        self._oom_reported: set[str] = set()
        # Containers whose init process's exit is reported: later oom events are stale.
        self._init_exited: set[str] = set()
        # Containers whose count, just read, shows a kill that no exit reported yet.
        self._fresh_oom: set[str] = set()
        # Where this host keeps a task's OOM count (its memory cgroup's file), read
        # directly instead of a Tasks.Metrics call; until the task is deleted.
        self._oom_files: dict[str, Path] = {}
        # Callers of exit_of() waiting for a tracked process's exit, by the key of _alive.
        self._waiters: dict[tuple[str, str], list[asyncio.Future[EventInfo | None]]] = {}
        # Exits reported on this subscription whose process containerd still holds (not
        # deleted yet): a wait() that comes after the exit needs no call either.
        self._exited: dict[str, dict[str, EventInfo]] = {}  # container id -> process id -> exit
        self._live = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.subscriptions = 0
        self.reconciled_exits = 0

    async def start(self, live_within: float = 10.0) -> None:
        """Subscribe and return once the subscription is live; raises Unavailable otherwise."""
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"libcontainerd-event-stream-{self._namespace}"
        )
        try:
            async with asyncio.timeout(live_within):
                await self._live.wait()
        except TimeoutError:
            await self.close()
            raise Unavailable(
                f"the event subscription of namespace {self._namespace!r} did not become live"
                f" within {live_within:g} s"
            ) from None

    async def close(self) -> None:
        """Stop the subscription; safe to call twice."""
        self._closing = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._wake_all()

    async def wait_live(self) -> None:
        """Wait until the stream is subscribed and reconciled (after a reconnect, too)."""
        await self._live.wait()

    @property
    def live(self) -> bool:
        return self._live.is_set()

    def track(self, container_id: str, process_id: str, pid: int) -> bool:
        """Remember a process the caller saw alive, so a missed exit is found on reconnect.

        False when its exit has been reported already (nothing to track).
        """
        if (container_id, process_id, pid) in self._exits:
            return False
        self._alive[(container_id, process_id)] = pid
        self._forget_exit(container_id, process_id)
        return True

    def forget_exits(self, container_id: str) -> None:
        """The container's task is deleted (or a new one is made): its kept exits are stale."""
        self._exited.pop(container_id, None)
        self._forget_oom(container_id)

    def forget_task(self, container_id: str) -> None:
        """The container's task is deleted: its exits and its OOM count's file are stale.

        (Not on a create event: that one may come after the new task's file is found.)
        """
        self.forget_exits(container_id)
        self._oom_files.pop(container_id, None)

    def _forget_exit(self, container_id: str, process_id: str) -> None:
        exits = self._exited.get(container_id)
        if exits is not None and exits.pop(process_id, None) is not None and not exits:
            del self._exited[container_id]

    def exit_of(
        self, container_id: str, process_id: str
    ) -> asyncio.Future[EventInfo | None] | None:
        """A future for the reported exit of a process this live stream tracks, else None.

        It saves a Tasks.Wait call: the exit event comes anyway. It resolves to
        None when the stream can no longer tell (it broke or closed, or the
        task was deleted or the process discarded): the caller then asks
        containerd. A caller that stops waiting calls :meth:`forget_waiter`.
        """
        key = (container_id, process_id)
        if not self._live.is_set():
            return None
        reported = self._exited.get(container_id, {}).get(process_id)
        if key not in self._alive and reported is None:
            return None
        future: asyncio.Future[EventInfo | None] = asyncio.get_running_loop().create_future()
        if key in self._alive:
            self._waiters.setdefault(key, []).append(future)
        else:
            future.set_result(reported)
        return future

    def forget_waiter(
        self, container_id: str, process_id: str, future: asyncio.Future[EventInfo | None]
    ) -> None:
        key = (container_id, process_id)
        waiting = self._waiters.get(key)
        if waiting is not None and future in waiting:
            waiting.remove(future)
            if not waiting:
                del self._waiters[key]

    def _wake(self, key: tuple[str, str], info: EventInfo | None) -> None:
        for future in self._waiters.pop(key, ()):
            if not future.done():
                future.set_result(info)

    def _wake_all(self) -> None:
        for key in list(self._waiters):
            self._wake(key, None)

    def discard(self, container_id: str, process_id: str, pid: int) -> None:
        """Never report an exit of this process: it was created, never started, and is deleted.

        containerd publishes an exit (137) when a task that was created but never
        started is deleted; a caller clearing such a task (start() does, after a
        create cut by containerd's death) calls this first, so no exit is
        reported for a process that never ran.
        """
        self._alive.pop((container_id, process_id), None)
        self._forget_exit(container_id, process_id)
        self._remember_exit((container_id, process_id, pid))
        self._wake((container_id, process_id), None)

    def _remember_exit(self, key: tuple[str, str, int]) -> None:
        self._exits.add(key)

    def sizes(self) -> dict[str, int]:
        """How much the stream holds, by table (for leak checks)."""
        return {
            "stream: processes alive": len(self._alive),
            "stream: OOM flags": len(self._oom),
            "stream: OOM counts": len(self._oom_kills),
            "stream: OOM count files": len(self._oom_files),
            "stream: OOM reported": len(self._oom_reported),
            "stream: init exits": len(self._init_exited),
            "stream: exits remembered": len(self._exits),
            "stream: exits kept": sum(len(exits) for exits in self._exited.values()),
            "stream: waiters": len(self._waiters),
        }

    def oom_killed(self, container_id: str) -> bool:
        """What the stream knows: a kill counted at an exit, or an oom event (a hint)."""
        return container_id in self._oom_kills or container_id in self._oom

    def reported_oom(self, container_id: str, process_id: str) -> bool | None:
        """The ``oom_killed`` of a reported exit this stream keeps (task not deleted), else None."""
        kept = self._exited.get(container_id, {}).get(process_id)
        return None if kept is None else kept.oom_killed

    async def oom_killed_now(self, container_id: str) -> bool:
        """Whether the container's task has had a process OOM-killed: its count, else the hint."""
        if self._oom_kills.get(container_id, 0) > 0:
            return True
        count = await self.read_oom_kills(container_id)
        return self.oom_killed(container_id) if count is None else count > 0

    def find_oom_count(self, container_id: str, pid: int) -> None:
        """The task's init process ``pid`` exists (created, not started): note its count's file.

        Read then, the file saves a Tasks.Metrics call at each exit (a
        millisecond of a lifecycle); a task whose cgroup this host does not
        show is asked about as before.
        """
        path = oom_count_file(pid, container_id)
        if path is None:
            self._oom_files.pop(container_id, None)
        else:
            self._oom_files[container_id] = path

    async def read_oom_kills(self, container_id: str) -> int | None:
        """The container cgroup's OOM kill count; None when unreadable.

        From the cgroup's own file when :meth:`find_oom_count` found it, else
        one Tasks.Metrics. The task's cgroup, and so its count, lasts until the
        task is deleted.
        """
        path = self._oom_files.get(container_id)
        if path is not None:
            count = oom_kills_in_file(path)
            if count is not None:
                return count
        request = tasks_pb2.MetricsRequest(filters=[f'id=="{container_id}"'])
        try:
            reply = await self._metrics(request, metadata=self._metadata, timeout=5)
        except grpc.aio.AioRpcError as error:
            log.debug("OOM count of %s unreadable: %s", container_id, error.code().name)
            return None
        return oom_kills_in(reply, container_id)

    async def _with_oom_truth(self, info: EventInfo) -> EventInfo:
        """The exit with ``oom_killed`` from the cgroup's count (the hint if it is gone)."""
        container_id = info.container_id
        known = self._oom_kills.get(container_id, 0)
        if known > 0:
            return replace(info, oom_killed=True)  # the count never goes down within a task
        count = await self.read_oom_kills(container_id)
        if count is None:
            return replace(info, oom_killed=container_id in self._oom)
        if count > 0:
            self._oom_kills[container_id] = count
            self._fresh_oom.add(container_id)  # a kill no exit has reported yet
        return replace(info, oom_killed=count > 0)

    def _is_new_exit(self, info: EventInfo) -> bool:
        """Whether :meth:`_report` would report this exit (not a duplicate, not a failed start)."""
        if (info.container_id, info.process_id, info.pid) in self._exits:
            return False
        return not (info.pid == NO_PID and (info.container_id, info.process_id) in self._alive)

    def _forget_oom(self, container_id: str) -> None:
        self._oom.discard(container_id)
        self._oom_kills.pop(container_id, None)
        self._oom_reported.discard(container_id)
        self._init_exited.discard(container_id)
        self._fresh_oom.discard(container_id)

    # -- the stream ---------------------------------------------------------------------

    async def _run(self) -> None:
        delay = self.reconnect_delay_min
        while not self._closing:
            token = secrets.token_bytes(16)
            call = self._subscribe(
                service_pb2.SubscribeRequest(filters=[subscription_filter(self._namespace)])
            )
            marker = asyncio.get_running_loop().create_task(self._publish_marker(token, call))
            try:
                async for envelope in call:
                    if envelope.topic == MARKER_TOPIC:
                        if envelope.event.value == token and not self._live.is_set():
                            await self._reconcile()
                            self.subscriptions += 1
                            self._live.set()
                            delay = self.reconnect_delay_min
                        continue
                    await self._receive(envelope)
            except grpc.aio.AioRpcError as error:
                if not self._closing:
                    log.warning(
                        "event stream of namespace %s broke (%s); reconnecting",
                        self._namespace,
                        error.code().name,
                    )
            except Exception:
                # Never die quietly: a stream that stops is an exit that is lost.
                log.exception("event stream of namespace %s failed; reconnecting", self._namespace)
            finally:
                marker.cancel()
                call.cancel()
                self._live.clear()
                self._wake_all()  # they ask containerd (and learn it is away) instead
                self._exited.clear()  # a delete may be missed while away
            if not self._closing:
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.reconnect_delay_max)

    async def _publish_marker(self, token: bytes, call: Any) -> None:
        """Publish the marker until it comes back: the first may precede the subscription."""
        request = service_pb2.PublishRequest(topic=MARKER_TOPIC)
        request.event.type_url = MARKER_TYPE
        request.event.value = token
        wait = 0.02
        while not self._live.is_set():
            try:
                await self._publish(request, metadata=self._metadata, timeout=10)
            except grpc.aio.AioRpcError:
                call.cancel()  # containerd is away: the stream loop retries with back-off
                return
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._live.wait()
            wait = min(wait * 2, 1.0)

    async def _receive(self, envelope: service_pb2.Envelope) -> None:
        """Handle one envelope; a new exit first gets its OOM truth (one Tasks.Metrics)."""
        if envelope.HasField("event") and type_name(envelope.event) == _TASK_EXIT:
            decoded = decode(envelope)
            if decoded is not None and self._is_new_exit(decoded[1]):
                self._report(EventType.EXIT, await self._with_oom_truth(decoded[1]))
                return
        self._handle(envelope)

    def _handle(self, envelope: service_pb2.Envelope) -> None:
        if envelope.HasField("event") and type_name(envelope.event) == _TASK_DELETE:
            self._task_deleted(envelope)
            return
        decoded = decode(envelope)
        if decoded is None:
            return
        event, info = decoded
        self._report(event, info)

    def _task_deleted(self, envelope: service_pb2.Envelope) -> None:
        try:
            deleted = events_pb2.TaskDelete.FromString(envelope.event.value)
        except DecodeError:
            return
        if deleted.id not in ("", deleted.container_id):
            self._forget_exit(deleted.container_id, deleted.id)  # an exec deleted
            return
        self.forget_task(deleted.container_id)
        for key in [key for key in self._alive if key[0] == deleted.container_id]:
            del self._alive[key]
            self._wake(key, None)

    def _report(self, event: EventType, info: EventInfo) -> None:
        container_id = info.container_id
        # A shim re-publishes an event it failed to send, later: a create can then come
        # after its task's start, oom or exit. It is that task's, not a new one's: what
        # this stream knows of the task stays.
        new_task = event is EventType.CREATE and not self._seen_task(container_id, info.pid)
        if new_task:
            self._forget_oom(container_id)
        if event is EventType.OOM:
            if self._init_gone(container_id):
                # Late (containerd can send one after the exit, even after the task's
                # deletion, which resets the rest of the OOM state): stale.
                log.debug("oom event of %s after its exit dropped", container_id)
                return
            self._oom.add(container_id)
            if container_id in self._oom_reported or container_id in self._init_exited:
                log.debug("oom event of %s coalesced", container_id)
                return
            self._oom_reported.add(container_id)
        elif event is EventType.START or event is EventType.EXEC_STARTED:
            if (container_id, info.process_id, info.pid) in self._exits:
                # A start re-sent by the shim after containerd's restart, once the
                # process's exit was already reported (found by the reconcile):
                # reporting it now would put a start after its exit.
                log.info(
                    "late start of %s/%s (pid %d), already exited: dropped",
                    container_id,
                    info.process_id,
                    info.pid,
                )
                return
            self.track(container_id, info.process_id, info.pid)
        elif event is EventType.EXIT:
            key = (container_id, info.process_id, info.pid)
            known = self._alive.get((container_id, info.process_id))
            if info.pid == NO_PID and known is not None:
                # containerd's exit for a start that "failed" when its answer was
                # cut (the daemon died): the process it had created runs on, and
                # its own exit, with its pid, is the one to report.
                log.info("exit without a pid of %s/%s (pid %d runs on) dropped", *key[:2], known)
                return
            if key in self._exits:
                log.info("duplicate exit of %s/%s (pid %d) dropped", *key)
                return
            self._remember_exit(key)
            if info.process_id == container_id:
                self._remember_exit((container_id, container_id, _INIT_GONE))
            self._alive.pop((container_id, info.process_id), None)
            self._announce_oom(container_id, info)
        if event is not EventType.EXIT and self.oom_killed(container_id):
            info = replace(info, oom_killed=True)
        if event is EventType.EXIT:
            if not info.error:
                self._exited.setdefault(container_id, {})[info.process_id] = info
            if self._waiters:
                self._wake((container_id, info.process_id), info)
        elif new_task:
            self.forget_exits(container_id)
        self._on_event(container_id, event, info)

    def _seen_task(self, container_id: str, pid: int) -> bool:
        """Whether the task whose init has ``pid`` was seen started or exited already."""
        return bool(pid) and (
            self._alive.get((container_id, container_id)) == pid
            or (container_id, container_id, pid) in self._exits
        )

    def _init_gone(self, container_id: str) -> bool:
        """Whether the container's init exit was reported and no init has run since."""
        return (container_id, container_id) not in self._alive and (
            container_id,
            container_id,
            _INIT_GONE,
        ) in self._exits

    def _announce_oom(self, container_id: str, info: EventInfo) -> None:
        """Before an OOM-killed exit that no oom event announced, report one; then reset."""
        fresh = container_id in self._fresh_oom
        self._fresh_oom.discard(container_id)
        if fresh and container_id not in self._oom_reported | self._init_exited:
            self._on_event(container_id, EventType.OOM, EventInfo(container_id, oom_killed=True))
        self._oom_reported.discard(container_id)
        if info.process_id == container_id:
            self._init_exited.add(container_id)

    async def _reconcile(self) -> None:
        """Report the exits of tracked processes that ended while the stream was down."""
        tracked = list(self._alive.items())
        if not tracked:
            return
        replies = await asyncio.gather(
            *(self._lookup(container_id, process_id) for (container_id, process_id), _ in tracked),
            return_exceptions=True,
        )
        for ((container_id, process_id), pid), reply in zip(tracked, replies, strict=True):
            if isinstance(reply, grpc.aio.AioRpcError):
                if reply.code() != grpc.StatusCode.NOT_FOUND:
                    raise reply  # containerd went away again: the stream loop retries
                info = _unknown_exit(container_id, process_id, pid, "deleted")
            elif isinstance(reply, BaseException):
                raise reply
            elif reply.process.pid != pid:
                info = _unknown_exit(container_id, process_id, pid, "replaced")
            elif reply.process.status == task_pb2.STOPPED:
                info = EventInfo(
                    container_id,
                    process_id,
                    pid=pid,
                    exit_code=reply.process.exit_status,
                    exited_at=to_datetime(reply.process.exited_at),
                )
            else:
                continue  # still alive
            if self._is_new_exit(info):
                info = await self._with_oom_truth(info)
            if (container_id, process_id, pid) not in self._exits:
                self.reconciled_exits += 1
            self._report(EventType.EXIT, info)

    async def _lookup(self, container_id: str, process_id: str) -> tasks_pb2.GetResponse:
        exec_id = "" if process_id == container_id else process_id
        request = tasks_pb2.GetRequest(container_id=container_id, exec_id=exec_id)
        return await self._task_get(request, metadata=self._metadata, timeout=10)
