"""The limit logic of _limits: what is raised, what children and containerd get, what errors say.

The decisions are pure functions, tested directly; what touches this
process's own limits runs in a child Python under a limit set for it, so the
test run's own limits and the module's once-only state stay as they were.
"""

from __future__ import annotations

import errno
import json
import os
import resource
import subprocess
import sys
import textwrap

import pytest

from libcontainerd import _limits
from libcontainerd._limits import (
    DAEMON_FEW_OPEN_FILES,
    DAEMON_OPEN_FILES,
    INFINITY,
    KEEP_NOFILE_ENV,
    Limit,
    daemon_limited,
    daemon_plan,
    exec_failure,
    open_files_exhausted,
    opted_out,
    parse_limits,
    process_limit_reached,
    raised_soft_limit,
    render_plan,
    restored_soft_limit,
    system_limit_reached,
)
from libcontainerd.errors import FailedPrecondition

HARD = resource.getrlimit(resource.RLIMIT_NOFILE)[1]


# --- the client's own soft limit ---------------------------------------------------------


def test_the_soft_limit_is_raised_to_the_hard_one() -> None:
    assert raised_soft_limit(Limit(1024, 524288)) == 524288


def test_a_soft_limit_at_the_hard_one_is_left_alone() -> None:
    assert raised_soft_limit(Limit(4096, 4096)) is None


def test_an_unlimited_hard_limit_is_never_asked_for() -> None:
    assert raised_soft_limit(Limit(1024, INFINITY)) is None
    assert raised_soft_limit(Limit(INFINITY, INFINITY)) is None


@pytest.mark.parametrize("value", ["1", "yes", "TRUE", " on "])
def test_the_opt_out_takes_the_usual_yes_spellings(value: str) -> None:
    assert opted_out({KEEP_NOFILE_ENV: value})


@pytest.mark.parametrize("value", ["", "0", "no", "false"])
def test_the_opt_out_is_off_unless_set_to_yes(value: str) -> None:
    assert not opted_out({KEEP_NOFILE_ENV: value})
    assert not opted_out({})


# --- what children get ----------------------------------------------------------------------


def test_a_child_gets_the_soft_limit_from_before_the_raise() -> None:
    assert restored_soft_limit(Limit(1024, 4096), 4096, Limit(4096, 4096)) == Limit(1024, 4096)


def test_a_limit_someone_changed_after_the_raise_stands_for_children() -> None:
    assert restored_soft_limit(Limit(1024, 4096), 4096, Limit(2048, 4096)) is None


def test_an_original_soft_limit_above_a_lowered_hard_one_is_not_restored() -> None:
    assert restored_soft_limit(Limit(1024, 4096), 512, Limit(512, 512)) is None


# --- what containerd gets -------------------------------------------------------------------


def test_containerd_gets_the_fixed_open_file_limit_then_the_callers_hard_one() -> None:
    plan = daemon_plan(Limit(1024, 1024), Limit(100, 200))
    assert plan["NOFILE"] == [Limit(DAEMON_OPEN_FILES, DAEMON_OPEN_FILES), Limit(1024, 1024)]
    assert plan["NPROC"] == [Limit(INFINITY, INFINITY), Limit(200, 200)]


def test_a_caller_above_the_fixed_limit_still_gives_containerd_the_fixed_one() -> None:
    plan = daemon_plan(Limit(1 << 21, 1 << 21), Limit(INFINITY, INFINITY))
    assert plan["NOFILE"] == [Limit(DAEMON_OPEN_FILES, DAEMON_OPEN_FILES)]
    assert plan["NPROC"] == [Limit(INFINITY, INFINITY)]


def test_the_fixed_limit_stays_under_the_kernels_nr_open() -> None:
    plan = daemon_plan(Limit(1024, 1024), Limit(100, 100), nr_open=500000)
    assert plan["NOFILE"][0] == Limit(500000, 500000)


def test_a_plan_is_written_for_the_trampoline() -> None:
    plan = {"NOFILE": [Limit(8, 8), Limit(4, 4)], "NPROC": [Limit(INFINITY, INFINITY)]}
    assert render_plan(plan) == "NOFILE=8:8/4:4,NPROC=inf:inf"


def test_proc_limits_are_read() -> None:
    text = textwrap.dedent(
        """\
        Limit                     Soft Limit           Hard Limit           Units
        Max cpu time              unlimited            unlimited            seconds
        Max processes             unlimited            unlimited            processes
        Max open files            1048576              1048576              files
        """
    )
    assert parse_limits(text) == {
        "NPROC": Limit(INFINITY, INFINITY),
        "NOFILE": Limit(1048576, 1048576),
    }


def test_a_containerd_short_of_the_fixed_limit_is_told_how_many_containers_fit() -> None:
    message = daemon_limited(4321, Limit(1024, 1024))
    assert "containerd (pid 4321) runs with an open-file limit of 1024, not 1048576" in message
    assert "about 256 containers" in message
    assert "CAP_SYS_RESOURCE" in message
    assert "ulimit -n" in message
    assert DAEMON_FEW_OPEN_FILES > 1024


# --- the trampoline, run for real ----------------------------------------------------------


def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=False, timeout=30)


def test_the_trampoline_sets_the_limit_then_runs_the_command() -> None:
    done = run(_limits._trampoline({"NOFILE": [Limit(100, HARD)]}, ["sh", "-c", "ulimit -Sn"]))
    assert (done.returncode, done.stdout, done.stderr) == (0, "100\n", "")


def test_the_trampoline_says_which_choice_was_refused_and_takes_the_next() -> None:
    refused = Limit(200, 100)  # soft above hard: always refused
    plan = {"NOFILE": [refused, Limit(100, HARD)]}
    done = run(_limits._trampoline(plan, ["sh", "-c", "ulimit -Sn"]))
    assert done.stdout == "100\n"
    assert done.stderr.startswith(f"libcontainerd: RLIMIT_NOFILE 100:{HARD}: refused 200:100 (")


def test_a_command_the_trampoline_cannot_execute_is_the_oserror_a_spawn_raises() -> None:
    done = run(_limits._trampoline({}, ["/nonexistent/command"]))
    error = exec_failure(done.returncode, done.stderr, "/nonexistent/command")
    assert isinstance(error, OSError)
    assert error.errno == errno.ENOENT
    assert error.filename == "/nonexistent/command"


def test_a_command_that_ran_is_no_exec_failure() -> None:
    assert exec_failure(127, "sh: 1: nope: not found", "sh") is None
    assert exec_failure(0, "libcontainerd: cannot execute x: y [errno 2]", "x") is None


# --- this process, in a child of its own ---------------------------------------------------

_PROBE = textwrap.dedent(
    """\
    import asyncio, json, resource
    from libcontainerd import _limits
    from libcontainerd._commands import output_of

    def soft():
        return resource.getrlimit(resource.RLIMIT_NOFILE)[0]

    async def main():
        seen = {"before": soft()}
        _limits.raise_open_file_limit()
        seen["raised"] = soft()
        seen["child"] = int((await output_of("sh", "-c", "ulimit -Sn"))[1])
        try:
            await output_of("/nonexistent/command")  # through the trampoline, once raised
        except OSError as error:
            seen["missing"] = error.errno
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        resource.setrlimit(resource.RLIMIT_NOFILE, (512, hard))
        _limits.raise_open_file_limit()  # once: the program's own change stands
        seen["again"] = soft()
        seen["child_after_change"] = int((await output_of("sh", "-c", "ulimit -Sn"))[1])
        print(json.dumps(seen))

    asyncio.run(main())
    """
)


def probe(soft: int, env: dict[str, str]) -> dict[str, int]:
    """What the probe saw, run in a child Python whose soft open-file limit is ``soft``."""
    child_env = {key: value for key, value in os.environ.items() if key != KEEP_NOFILE_ENV}
    child_env.update(env)
    done = subprocess.run(
        ["prlimit", f"--nofile={soft}:{HARD}", "--", sys.executable, "-c", _PROBE],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env=child_env,
    )
    assert done.returncode == 0, done.stderr
    seen: dict[str, int] = json.loads(done.stdout)
    return seen


@pytest.mark.skipif(HARD < 1024, reason="needs a hard open-file limit of 1024 or more")
def test_the_client_raises_once_and_its_children_get_the_original() -> None:
    seen = probe(256, {})
    assert seen == {
        "before": 256,
        "raised": HARD,
        "child": 256,
        "again": 512,
        "child_after_change": 512,
        "missing": errno.ENOENT,
    }


def test_the_opt_out_leaves_the_limit_alone() -> None:
    seen = probe(256, {KEEP_NOFILE_ENV: "1"})
    assert (seen["before"], seen["raised"], seen["child"]) == (256, 256, 256)
    assert seen["missing"] == errno.ENOENT


# --- the errors -------------------------------------------------------------------------------


def test_emfile_names_the_limit_and_how_to_raise_the_hard_one() -> None:
    said = process_limit_reached(Limit(1024, 1024), 1021, {})
    assert "RLIMIT_NOFILE soft 1024, hard 1024, 1021 open" in said
    assert "raise the hard limit before the program starts ('ulimit -n 65536'" in said


def test_emfile_below_the_hard_limit_says_how_to_raise_the_soft_one() -> None:
    said = process_limit_reached(Limit(1024, 4096), None, {})
    assert "RLIMIT_NOFILE soft 1024, hard 4096;" in said
    assert "raise the soft limit to the hard one" in said
    assert "ulimit -Sn 4096" in said


def test_emfile_with_the_opt_out_names_it() -> None:
    said = process_limit_reached(Limit(1024, 4096), 1000, {KEEP_NOFILE_ENV: "1"})
    assert f"${KEEP_NOFILE_ENV} is set" in said
    assert "ulimit -Sn 4096" in said


def test_enfile_names_the_systems_table() -> None:
    said = system_limit_reached((9000, 9000))
    assert "the system's table of open files is full (9000 open, fs.file-max 9000)" in said
    assert "sysctl fs.file-max" in said


def test_only_emfile_and_enfile_become_limit_errors() -> None:
    emfile = open_files_exhausted(OSError(errno.EMFILE, "Too many open files"), "cannot x")
    enfile = open_files_exhausted(OSError(errno.ENFILE, "File table overflow"), "cannot x")
    assert isinstance(emfile, FailedPrecondition)
    assert emfile.message.startswith("cannot x: this process reached its open-file limit")
    assert isinstance(enfile, FailedPrecondition)
    assert "table of open files is full" in enfile.message
    assert open_files_exhausted(OSError(errno.EACCES, "Permission denied"), "cannot x") is None
