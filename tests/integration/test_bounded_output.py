"""CollectOutput(max_bytes=...): the first bytes kept, the rest drained or the process killed."""

from __future__ import annotations

import pytest

from libcontainerd import CollectOutput, InvalidArgument

from .containers import ContainerFactory, output_of

pytestmark = pytest.mark.integration

FIVE_MB = 5_000_000


async def test_output_past_the_bound_is_drained_and_reported_as_truncated(
    containers: ContainerFactory,
) -> None:
    client = containers.client
    container_id = await containers.create(
        ("/bin/sh", "-c", f"head -c {FIVE_MB} /dev/zero; echo short >&2")
    )
    output = CollectOutput(max_bytes=1000)

    await client.start(container_id, attach_stdio=output)
    status = await client.wait(container_id)
    stdout, stderr = await output_of(client, output)

    assert status.exit_code == 0  # drained: the process wrote everything and ended
    assert stdout == b"\0" * 1000
    assert stderr == b"short\n"
    assert output.truncated
    assert output.dropped == (FIVE_MB - 1000, 0)


async def test_each_stream_can_have_its_own_bound(containers: ContainerFactory) -> None:
    client = containers.client
    container_id = await containers.create(
        ("/bin/sh", "-c", "echo 0123456789; echo abcdefghij >&2")
    )
    output = CollectOutput(max_bytes=4, max_stderr=100)

    await client.start(container_id, attach_stdio=output)
    await client.wait(container_id)

    assert await output_of(client, output) == (b"0123", b"abcdefghij\n")
    assert output.dropped == (7, 0)


async def test_with_kill_a_process_past_its_bound_is_killed(
    containers: ContainerFactory,
) -> None:
    client = containers.client
    container_id = await containers.create(("/bin/yes",))
    output = CollectOutput(max_bytes=64 << 10, kill=client)

    await client.start(container_id, attach_stdio=output)
    status = await client.wait(container_id, timeout=60)
    stdout, _ = await output_of(client, output)

    assert status.exit_code == 137
    assert stdout == b"y\n" * (32 << 10)
    assert output.truncated


async def test_output_within_the_bound_is_not_truncated(containers: ContainerFactory) -> None:
    client = containers.client
    container_id = await containers.create(("/bin/echo", "hello"))
    output = CollectOutput(max_bytes=6)

    await client.start(container_id, attach_stdio=output)
    await client.wait(container_id)

    assert await output_of(client, output) == (b"hello\n", b"")
    assert not output.truncated


@pytest.mark.parametrize("bound", [-1, 1.5, True, "10"])
def test_a_bound_that_is_not_a_byte_count_is_refused(bound: object) -> None:
    with pytest.raises(InvalidArgument, match="max_bytes must be an integer >= 0"):
        CollectOutput(max_bytes=bound)  # type: ignore[arg-type]
