"""Open-file and process limits: the client's, containerd's, and those of the children we start.

A client holds about two descriptors per container whose output it reads
(three with stdin, twice that until the shim holds its ends), so Debian's
default soft limit of 1024 open files stops it after ~500 attached
containers, and a containerd that inherits a hard limit of 1024 fails to
start shims after ~250. What the anchors do, and so what this module does:

- Every Go program (ctr, dockerd, containerd) raises its soft RLIMIT_NOFILE
  to its hard limit at start-up. The client does the same, once, only ever
  upward, just before it makes its first FIFOs (:func:`raise_open_file_limit`;
  ``lcd`` at start-up); ``$LIBCONTAINERD_KEEP_NOFILE=1`` opts out.
- Go (1.21, and 1.19.8/1.20.3 on: golang/go#46279) gives the processes it
  starts the soft limit it found. So do we (:func:`child_argv`): the child
  runs through a few lines of Python that set the limit and exec it, since
  ``preexec_fn`` is unsafe beside gRPC's threads.
- containerd 1.6/1.7's service sets ``LimitNOFILE=infinity``; 2.x dropped it
  (containerd#8924) because shims and containers inherited an enormous
  limit. The Supervisor gives containerd a fixed 1048576 (:func:`daemon_argv`),
  whatever its caller's limits, and no cap on processes (as the service's
  ``LimitNPROC=infinity``); containers keep the rlimits their spec sets.
- When a limit is hit anyway, :func:`open_files_exhausted` says which, its
  value, and how to raise it, instead of a bare "Too many open files".
"""

from __future__ import annotations

import errno
import logging
import os
import re
import resource
import sys
import threading
from collections.abc import Mapping, Sequence
from typing import Final, NamedTuple

from .errors import FailedPrecondition

__all__ = [
    "DAEMON_FEW_OPEN_FILES",
    "DAEMON_FILES_PER_SHIM",
    "DAEMON_OPEN_FILES",
    "EXEC_FAILED",
    "INFINITY",
    "KEEP_NOFILE_ENV",
    "Limit",
    "child_argv",
    "daemon_argv",
    "daemon_limited",
    "daemon_plan",
    "exec_failure",
    "open_files_exhausted",
    "opted_out",
    "parse_limits",
    "process_limit_reached",
    "process_limits",
    "raise_open_file_limit",
    "raised_soft_limit",
    "render_plan",
    "restored_soft_limit",
    "system_limit_reached",
    "warn_if_daemon_limited",
]

log = logging.getLogger(__name__)

KEEP_NOFILE_ENV: Final = "LIBCONTAINERD_KEEP_NOFILE"
"""Set to 1 (or yes/true/on) and the client leaves its open-file soft limit as it found it."""

DAEMON_OPEN_FILES: Final = 1048576
"""containerd's open-file limit under the Supervisor: high and fixed, never infinity."""

INFINITY: Final = resource.RLIM_INFINITY

# What one runc shim costs containerd in descriptors while its container runs
# (measured: 1.6, 1.7 and 2.x), for the warning's estimate.
DAEMON_FILES_PER_SHIM: Final = 4
# Below this (room for ~4,000 containers) a containerd short of the fixed limit is warned about.
DAEMON_FEW_OPEN_FILES: Final = 16384

# The first words of what the trampoline writes when the command cannot run;
# output_of turns that back into the OSError a direct spawn would raise.
EXEC_FAILED: Final = "libcontainerd: cannot execute"
_EXEC_FAILED_LINE: Final = re.compile(re.escape(EXEC_FAILED) + r" .*\[errno (\d+)\]$")

# Sets the planned limits, then becomes the command (its pid, session and
# descriptors unchanged). argv: PLAN COMMAND... with PLAN as render_plan writes it.
_TRAMPOLINE: Final = f"""\
import os, resource, sys
def choose(name, choices):
    number = getattr(resource, "RLIMIT_" + name)
    refused = []
    for choice in choices.split("/"):
        soft, hard = (resource.RLIM_INFINITY if v == "inf" else int(v) for v in choice.split(":"))
        try:
            resource.setrlimit(number, (soft, hard))
        except (OSError, ValueError) as error:
            refused.append(f"{{choice}} ({{error}})")
            continue
        if refused:
            print(f"libcontainerd: RLIMIT_{{name}} {{choice}}: refused {{', '.join(refused)}}",
                  file=sys.stderr, flush=True)
        return
    print(f"libcontainerd: RLIMIT_{{name}} left as it was: refused {{', '.join(refused)}}",
          file=sys.stderr, flush=True)
plan, argv = sys.argv[1], sys.argv[2:]
for entry in filter(None, plan.split(",")):
    name, _, choices = entry.partition("=")
    choose(name, choices)
try:
    os.execvp(argv[0], argv)
except OSError as error:
    print(f"{EXEC_FAILED} {{argv[0]}}: {{error.strerror}} [errno {{error.errno}}]",
          file=sys.stderr, flush=True)
    os._exit(127)
"""


class Limit(NamedTuple):
    """A (soft, hard) pair of one resource limit; ``INFINITY`` (-1) for none."""

    soft: int
    hard: int


# --- the pure decisions ----------------------------------------------------------------


def raised_soft_limit(current: Limit) -> int | None:
    """The soft limit to raise to (the hard one), or None when it is there already."""
    if current.hard == INFINITY:
        # Not possible for RLIMIT_NOFILE on Linux (nr_open bounds it); never ask for it.
        return None
    if current.soft != INFINITY and current.soft < current.hard:
        return current.hard
    return None


def restored_soft_limit(original: Limit, raised_to: int, current: Limit) -> Limit | None:
    """What a child gets back: the soft limit from before our raise, if ours is still in place.

    None when someone changed the limit since (theirs then stands) or when
    the original no longer fits under the hard limit.
    """
    if current.soft != raised_to or original.soft == raised_to:
        return None
    if current.hard != INFINITY and original.soft > current.hard:
        return None
    return Limit(original.soft, current.hard)


def daemon_plan(
    nofile: Limit, nproc: Limit, nr_open: int = DAEMON_OPEN_FILES
) -> dict[str, list[Limit]]:
    """containerd's limits, each a list of choices tried in order, from the caller's own.

    Open files: a fixed ``DAEMON_OPEN_FILES`` (no more than the kernel's
    ``fs.nr_open``) for both soft and hard; then, when raising the hard limit
    is not allowed, the caller's hard limit for both. Processes: none, then the
    caller's hard limit.
    """
    fixed = min(DAEMON_OPEN_FILES, nr_open)
    files = [Limit(fixed, fixed)]
    if nofile.hard != INFINITY and nofile.hard < fixed:
        files.append(Limit(nofile.hard, nofile.hard))
    processes = [Limit(INFINITY, INFINITY)]
    if nproc.hard != INFINITY:
        processes.append(Limit(nproc.hard, nproc.hard))
    return {"NOFILE": files, "NPROC": processes}


def render_plan(plan: Mapping[str, Sequence[Limit]]) -> str:
    """The trampoline's first argument: ``NOFILE=1048576:1048576/1024:1024,NPROC=inf:inf``."""

    def value(number: int) -> str:
        return "inf" if number == INFINITY else str(number)

    return ",".join(
        f"{name}=" + "/".join(f"{value(c.soft)}:{value(c.hard)}" for c in choices)
        for name, choices in plan.items()
    )


def exec_failure(status: int, output: str, command: str) -> OSError | None:
    """The OSError a trampoline reported for ``command`` it could not execute, or None if it ran."""
    if status != 127:
        return None
    for line in output.splitlines():
        found = _EXEC_FAILED_LINE.match(line)
        if found is not None:
            number = int(found.group(1))
            return OSError(number, os.strerror(number), command)
    return None


def opted_out(environ: Mapping[str, str]) -> bool:
    """Whether ``$LIBCONTAINERD_KEEP_NOFILE`` asks us to leave the limit alone."""
    return environ.get(KEEP_NOFILE_ENV, "").strip().lower() in ("1", "yes", "true", "on")


# --- this process --------------------------------------------------------------------

_lock = threading.Lock()
_decided = False
# Set once we raised the soft limit: what it was, and what we made it.
_original: Limit | None = None
_raised_to: int | None = None


def _nofile() -> Limit:
    return Limit(*resource.getrlimit(resource.RLIMIT_NOFILE))


def raise_open_file_limit() -> None:
    """Raise this process's soft open-file limit to its hard limit: once, only upward.

    Called before the client's first FIFOs, and by ``lcd`` at start-up;
    cheap after the first call. Does nothing with ``$LIBCONTAINERD_KEEP_NOFILE=1``
    (read at that first call). A refusal is logged, never raised.
    """
    global _decided, _original, _raised_to
    if _decided:
        return
    with _lock:
        if _decided:
            return
        _decided = True
        current = _nofile()
        if opted_out(os.environ):
            log.debug(
                "open-file limit left at %s/%s: $%s is set",
                current.soft,
                current.hard,
                KEEP_NOFILE_ENV,
            )
            return
        target = raised_soft_limit(current)
        if target is None:
            return
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, current.hard))
        except (OSError, ValueError) as error:
            log.warning("cannot raise the open-file soft limit to %d: %s", target, error)
            return
        _original, _raised_to = current, target
        log.info(
            "raised the open-file soft limit from %d to its hard limit %d, as Go programs do"
            " ($%s=1 keeps it)",
            current.soft,
            target,
            KEEP_NOFILE_ENV,
        )


def _trampoline(plan: Mapping[str, Sequence[Limit]], argv: Sequence[str]) -> list[str]:
    return [sys.executable, "-I", "-S", "-c", _TRAMPOLINE, render_plan(plan), *argv]


def child_argv(argv: Sequence[str]) -> list[str]:
    """``argv``, run with the soft open-file limit this process had before we raised it.

    Unchanged when we raised nothing (or the limit changed since); then the
    child inherits what we have, as any child does.
    """
    if _original is None or _raised_to is None or not sys.executable:
        return list(argv)
    restored = restored_soft_limit(_original, _raised_to, _nofile())
    if restored is None:
        return list(argv)
    return _trampoline({"NOFILE": [restored]}, argv)


def daemon_argv(argv: Sequence[str]) -> list[str]:
    """``argv`` (containerd), run with the limits of :func:`daemon_plan`.

    A choice the kernel refuses is reported on the child's stderr (the
    daemon's log) and the next one tried.
    """
    if not sys.executable:
        log.warning("no Python executable to set containerd's limits with; it inherits ours")
        return list(argv)
    nproc = Limit(*resource.getrlimit(resource.RLIMIT_NPROC))
    return _trampoline(daemon_plan(_nofile(), nproc, _nr_open()), argv)


def _nr_open() -> int:
    """The kernel's ceiling on any open-file limit (``fs.nr_open``)."""
    try:
        with open("/proc/sys/fs/nr_open") as file:
            return int(file.read())
    except (OSError, ValueError):
        return DAEMON_OPEN_FILES


# --- when a limit is hit -------------------------------------------------------------


def open_files_exhausted(error: OSError, what: str) -> FailedPrecondition | None:
    """A FailedPrecondition naming the open-file limit ``error`` hit, or None if it is not one.

    ``what`` says what could not be done (``cannot make the FIFOs of ...``).
    Call it once the failed work has released its descriptors, so that
    counting the open ones works.
    """
    if error.errno == errno.EMFILE:
        return FailedPrecondition(
            f"{what}: {process_limit_reached(_nofile(), _open_descriptors(), os.environ)}"
        )
    if error.errno == errno.ENFILE:
        return FailedPrecondition(f"{what}: {system_limit_reached(_file_nr())}")
    return None


def process_limit_reached(limit: Limit, open_now: int | None, environ: Mapping[str, str]) -> str:
    """Why EMFILE happened and how to get past it, in one sentence."""
    used = "" if open_now is None else f", {open_now} open"
    said = (
        f"this process reached its open-file limit (RLIMIT_NOFILE soft {_shown(limit.soft)},"
        f" hard {_shown(limit.hard)}{used}; each attached process holds 2 or 3 descriptors)"
    )
    if limit.hard != INFINITY and (limit.soft == INFINITY or limit.soft >= limit.hard):
        return (
            f"{said}: raise the hard limit before the program starts ('ulimit -n 65536' as"
            " root, LimitNOFILE= in its systemd unit, nofile in /etc/security/limits.conf)"
        )
    how = (
        f"resource.setrlimit(resource.RLIMIT_NOFILE, ({_shown(limit.hard)},"
        f" {_shown(limit.hard)})) in the program, or 'ulimit -Sn {_shown(limit.hard)}' before it"
    )
    if opted_out(environ):
        return (
            f"{said}: the library left the soft limit below the hard one because"
            f" ${KEEP_NOFILE_ENV} is set; unset it, or raise it yourself: {how}"
        )
    return f"{said}: raise the soft limit to the hard one: {how}"


def system_limit_reached(file_nr: tuple[int, int] | None) -> str:
    """Why ENFILE happened (the whole system's table is full) and what raises it."""
    counts = "" if file_nr is None else f" ({file_nr[0]} open, fs.file-max {file_nr[1]})"
    return (
        f"the system's table of open files is full{counts}: raise it with"
        " 'sysctl fs.file-max=...' or close files in other programs"
    )


def _shown(number: int) -> str:
    return "unlimited" if number == INFINITY else str(number)


def _open_descriptors() -> int | None:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return None


def _file_nr() -> tuple[int, int] | None:
    """(open files, fs.file-max) of the whole system, from /proc/sys/fs/file-nr."""
    try:
        with open("/proc/sys/fs/file-nr") as file:
            allocated, _, maximum = (int(word) for word in file.read().split())
    except (OSError, ValueError):
        return None
    return allocated, maximum


# --- what a running process got --------------------------------------------------------

_LIMIT_NAMES: Final = {"Max open files": "NOFILE", "Max processes": "NPROC"}


def process_limits(pid: int) -> dict[str, Limit]:
    """The open-file (``NOFILE``) and process (``NPROC``) limits of a live process.

    Read from ``/proc/<pid>/limits``; empty when it cannot be read.
    """
    try:
        with open(f"/proc/{pid}/limits") as file:
            text = file.read()
    except OSError:
        return {}
    return parse_limits(text)


def parse_limits(text: str) -> dict[str, Limit]:
    """The limits named in ``_LIMIT_NAMES`` from the text of ``/proc/<pid>/limits``."""
    found = {}
    for line in text.splitlines():
        for label, name in _LIMIT_NAMES.items():
            if line.startswith(label):
                words = line[len(label) :].split()
                if len(words) >= 2:
                    soft, hard = (INFINITY if w == "unlimited" else int(w) for w in words[:2])
                    found[name] = Limit(soft, hard)
    return found


def warn_if_daemon_limited(pid: int) -> None:
    """Say so when containerd ``pid`` got less than the fixed open-file limit.

    That happens when this process may not raise its hard limit (without
    CAP_SYS_RESOURCE, as in most containers): a warning below
    ``DAEMON_FEW_OPEN_FILES``, else a note, naming the limit and how to raise it.
    """
    nofile = process_limits(pid).get("NOFILE")
    wanted = min(DAEMON_OPEN_FILES, _nr_open())
    if nofile is None or nofile.soft == INFINITY or nofile.soft >= wanted:
        return
    level = logging.WARNING if nofile.soft < DAEMON_FEW_OPEN_FILES else logging.INFO
    log.log(level, "%s", daemon_limited(pid, nofile))


def daemon_limited(pid: int, nofile: Limit) -> str:
    """The warning for a containerd that runs below the fixed open-file limit."""
    return (
        f"containerd (pid {pid}) runs with an open-file limit of {_shown(nofile.soft)}, not"
        f" {DAEMON_OPEN_FILES}: this process may not raise its hard limit (that needs"
        " CAP_SYS_RESOURCE), and each running container's shim costs containerd about"
        f" {DAEMON_FILES_PER_SHIM} descriptors, so it can start shims for about"
        f" {nofile.soft // DAEMON_FILES_PER_SHIM} containers; start this program with a higher"
        " hard limit ('ulimit -n 1048576' as root, LimitNOFILE= in its systemd unit)"
    )
