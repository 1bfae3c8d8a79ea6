"""Containers on CNI networks: addresses, published ports, DNS files, and nothing left behind.

Real Debian CNI plugins, real namespaces, bridges, veths and nf_tables rules;
busybox ``httpd`` in the containers. What a container got is proven with the
host's own tools (curl, iptables-save, /proc/self/mountinfo, ip link), never
only with our own reading of our state. Test traffic goes to 127.0.0.1 and
to addresses on the bridges these tests make, nowhere else.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from libcontainerd import oci, rootfs
from libcontainerd.client import AsyncClient
from libcontainerd.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NetworkError,
    NotFound,
)
from libcontainerd.networks import DEFAULT_NETWORK, Attach, Network, NetworkService, Port
from libcontainerd.networks._cni import PluginRunner
from libcontainerd.networks._state import Layout, cni_id
from libcontainerd.stdio import CollectOutput
from libcontainerd.supervisor import Supervisor
from libcontainerd.types import INIT_PROCESS_ID

from .. import figures
from ..ci import missing
from .containers import TEST_NAMESPACE, ContainerFactory, remove_container
from .lcd import environment, lcd

pytestmark = pytest.mark.integration

BURST = int(os.environ.get("LIBCONTAINERD_TEST_NETWORK_BURST", "20"))
# The 200 cycles on each version: 0.6-0.7 s a cycle here, ~2 min a version.
CYCLES = int(os.environ.get("LIBCONTAINERD_TEST_NETWORK_CYCLES", "200"))
_serial = itertools.count()
PAGE = "served from a container\n"
CHECKOUT = Path(__file__).resolve().parents[2]
HOST_RESOLV_CONF = Path("/etc/resolv.conf").read_text() if Path("/etc/resolv.conf").exists() else ""


@pytest.fixture(autouse=True)
def network_tools() -> None:
    """The CNI plugins, iptables and curl (./run installs them; CI must have them)."""
    runner = PluginRunner()
    for plugin in ("bridge", "portmap", "firewall", "tuning", "host-local"):
        try:
            runner.find(plugin)
        except NetworkError as error:
            missing(str(error))
    for tool in ("iptables", "iptables-save", "curl", "ip"):
        if shutil.which(tool, path="/usr/sbin:/usr/bin:/sbin:/bin") is None:
            missing(f"{tool} is not installed (./run installs it)")


@pytest.fixture
async def network(supervisor: Supervisor, containers: ContainerFactory) -> AsyncIterator[Network]:
    """A network of the test's own (a free /24 picked for it), removed after the containers."""
    service = NetworkService()
    made = await service.create(f"lcdtest-{os.getpid()}-{next(_serial)}")
    try:
        yield made
    finally:
        await containers.cleanup()  # the containers on it first
        await service.remove(made.name)


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """``count`` different free ports: each probe stays bound until all are picked (one
    released at once can be handed out again: a burst once got the same port twice)."""
    with contextlib.ExitStack() as stack:
        probes = [stack.enter_context(socket.socket()) for _ in range(count)]
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [int(probe.getsockname()[1]) for probe in probes]


def web_spec(containers: ContainerFactory, container_id: str) -> dict[str, object]:
    """busybox httpd on port 80 serving PAGE, in the foreground."""
    spec = containers.spec(
        ["/bin/httpd", "-f", "-p", "80", "-h", "/www"], container_id=container_id
    )
    www = containers.workdir / container_id / "rootfs" / "www"
    www.mkdir()
    (www / "index.html").write_text(PAGE)
    return spec


async def create_networked(
    client: AsyncClient,
    containers: ContainerFactory,
    network: str | Attach,
    spec: dict[str, object] | None = None,
    args: tuple[str, ...] = ("/bin/sleep", "300"),
) -> str:
    container_id = containers.new_id("net")
    if spec is None:
        spec = containers.spec(list(args), container_id=container_id)
    containers.created.append(container_id)
    await client.create(container_id, spec, network=network)
    return container_id


async def curl(url: str, within: float = 10.0) -> str:
    """The page at ``url`` fetched by the host's curl, retried until the server answers."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        process = await asyncio.create_subprocess_exec(
            "curl", "-fsS", "--max-time", "2", url,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        stdout, stderr = await process.communicate()
        if process.returncode == 0:
            return stdout.decode()
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"curl {url}: {stderr.decode().strip()}")
        await asyncio.sleep(0.1)


async def run_to_end(client: AsyncClient, container_id: str) -> tuple[int, str]:
    output = CollectOutput()
    await client.start(container_id, attach_stdio=output)
    code, _ = await client.wait(container_id)
    stdout, stderr = await output
    return code, (stdout + stderr).decode()


@dataclass(frozen=True)
class Traces:
    """What a container's network leaves on the host, counted with the host's own tools."""

    rules: int
    leases: int
    mounts: int
    files: int
    veths: int

    @classmethod
    def of(cls, keys: list[str], bridge: str | None) -> Traces:
        """Counted for these CNI ids; veths on ``bridge`` (None: not counted, a shared one).

        Other sessions may run containers on the host meanwhile (lcd run
        joins lcd0): what is counted is the test's own, its ids and its
        network's bridge.
        """
        layout = Layout()
        rules = subprocess.run(["iptables-save"], capture_output=True, text=True, check=True)
        mountinfo = Path("/proc/self/mountinfo").read_text()
        leases = 0
        for folder in Path(layout.ipam).glob("*"):
            for lease in folder.glob("*"):
                with contextlib.suppress(OSError):
                    leases += any(key in lease.read_text() for key in keys)
        files = 0
        for key in keys:
            files += sum(
                os.path.lexists(path)
                for path in (layout.record(key), layout.namespace(key), layout.files_of(key))
            )
        veths = subprocess.run(
            ["ip", "-o", "link", "show", "type", "veth"], capture_output=True, text=True, check=True
        )
        return cls(
            rules=sum(any(key in line for key in keys) for line in rules.stdout.splitlines()),
            leases=leases,
            mounts=sum(
                any(layout.namespace(key) in line for key in keys)
                for line in mountinfo.splitlines()
            ),
            files=files,
            # Only the veths on bridges of ours: another runtime's are not ours to count.
            veths=sum(f" master {bridge} " in line for line in veths.stdout.splitlines())
            if bridge is not None
            else 0,
        )


def keys_of(client: AsyncClient, container_ids: list[str]) -> list[str]:
    return [
        cni_id(client.address, client.namespace, container_id) for container_id in container_ids
    ]


# -- ports, addresses, names --------------------------------------------------------


async def test_a_published_port_serves_on_loopback_and_on_the_bridge_gateway(
    client: AsyncClient, containers: ContainerFactory, network: Network
) -> None:
    port = free_port()
    container_id = containers.new_id("web")
    spec = web_spec(containers, container_id)
    containers.created.append(container_id)
    await client.create(container_id, spec, network=Attach(network.name, ports=[Port(port, 80)]))
    await client.start(container_id)
    assert await curl(f"http://127.0.0.1:{port}/") == PAGE
    assert await curl(f"http://{network.gateway}:{port}/") == PAGE
    info = await client.network_info(container_id)
    assert info is not None
    assert info.network == network.name
    assert info.gateway == network.gateway
    assert info.ports == (Port(port, 80),)
    labels = {listed.id: listed.labels for listed in await client.list_containers()}
    assert labels[container_id]["libcontainerd.network"] == network.name
    assert labels[container_id]["libcontainerd.network.netns"] == info.netns
    assert await curl(f"http://{info.address}:80/") == PAGE  # its own address, over the bridge
    # The address belongs to the container, not to its task: a new task keeps it.
    await remove_task(client, container_id)
    await client.start(container_id)
    assert await curl(f"http://127.0.0.1:{port}/") == PAGE
    assert await client.network_info(container_id) == info


async def remove_task(client: AsyncClient, container_id: str) -> None:
    await client.signal_process(container_id, INIT_PROCESS_ID, signal.SIGKILL)
    await client.wait(container_id)
    await client.delete_task(container_id)


@pytest.mark.async_only(reason="the twin's create and network_info are covered by the port test")
async def test_two_containers_reach_each_other_by_address_and_by_extra_hosts_name(
    client: AsyncClient, containers: ContainerFactory, network: Network
) -> None:
    server = containers.new_id("web")
    containers.created.append(server)
    await client.create(server, web_spec(containers, server), network=network.name)
    await client.start(server)
    info = await client.network_info(server)
    assert info is not None
    assert info.address
    await curl(f"http://{info.address}/")  # it serves
    fetch = "wget -q -O - http://{0}/ && wget -q -O - http://web/"
    peer = await create_networked(
        client,
        containers,
        Attach(network.name, extra_hosts={"web": info.address}),
        args=("/bin/sh", "-c", fetch.format(info.address)),
    )
    code, output = await run_to_end(client, peer)
    assert (code, output) == (0, PAGE + PAGE)


@pytest.mark.async_only(reason="the twin's create and network_info are covered by the port test")
async def test_the_container_gets_its_resolv_conf_hosts_and_hostname_read_only(
    client: AsyncClient, containers: ContainerFactory, network: Network
) -> None:
    attach = Attach(
        network.name,
        hostname="box",
        dns=["192.0.2.53"],
        dns_search=["example.test"],
        extra_hosts={"peer": "10.1.2.3"},
    )
    show = (
        "cat /etc/resolv.conf /etc/hosts /etc/hostname; hostname; echo x >> /etc/hosts || echo ro"
    )
    container_id = await create_networked(client, containers, attach, args=("/bin/sh", "-c", show))
    info = await client.network_info(container_id)
    assert info is not None
    code, output = await run_to_end(client, container_id)
    assert code == 0
    assert "nameserver 192.0.2.53\n" in output
    assert "search example.test\n" in output
    assert f"{info.address}\tbox\n" in output
    assert "10.1.2.3\tpeer\n" in output
    assert "box\nbox\nro\n" in output
    assert "Read-only file system" in output


@pytest.mark.async_only(reason="the twin's create and network_info are covered by the port test")
async def test_the_host_resolvers_are_passed_on_without_loopback_ones(
    client: AsyncClient, containers: ContainerFactory, network: Network
) -> None:
    container_id = await create_networked(
        client, containers, network.name, args=("/bin/cat", "/etc/resolv.conf")
    )
    code, output = await run_to_end(client, container_id)
    assert code == 0
    host = [
        line.split()[1] for line in HOST_RESOLV_CONF.splitlines() if line.startswith("nameserver")
    ]
    listed = [line.split()[1] for line in output.splitlines() if line.startswith("nameserver")]
    assert listed == [server for server in host if not server.startswith(("127.", "::1"))]


async def test_a_container_without_network_keeps_its_empty_namespace(
    client: AsyncClient, containers: ContainerFactory
) -> None:
    container_id = await containers.create(["/bin/cat", "/proc/net/dev"])
    assert await client.network_info(container_id) is None
    code, output = await run_to_end(client, container_id)
    assert code == 0
    assert "eth0" not in output
    with pytest.raises(NotFound):
        await client.network_info("no-such-container")


LOOPBACK_CHECK = (
    "ip -o link; mkdir /www && echo up > /www/index.html && httpd -p 127.0.0.1:8080 -h /www"
    " && wget -q -O - http://127.0.0.1:8080/"  # (busybox 1.35 wget -T crashes)
)


@pytest.mark.async_only(reason="the twin's create and network_info are covered by the port test")
async def test_lo_is_up_in_a_pinned_namespace_as_runc_brings_it_up_in_its_own(
    client: AsyncClient, containers: ContainerFactory, network: Network
) -> None:
    """runc brings lo up only in a namespace it makes; a pinned one's is brought up by us."""
    networked = await create_networked(
        client, containers, network.name, args=("/bin/sh", "-c", LOOPBACK_CHECK)
    )
    info = await client.network_info(networked)
    assert info is not None
    seen = await asyncio.to_thread(
        subprocess.run,
        ["nsenter", f"--net={info.netns}", "ip", "-o", "link", "show", "lo"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "lo: <LOOPBACK,UP,LOWER_UP>" in seen.stdout
    spec_own = await containers.create(["/bin/sh", "-c", LOOPBACK_CHECK])
    for container_id in (networked, spec_own):
        code, output = await run_to_end(client, container_id)
        assert code == 0, output
        assert "lo: <LOOPBACK,UP,LOWER_UP>" in output.splitlines()[0]
        assert output.splitlines()[-1] == "up"  # served and fetched on 127.0.0.1 inside


@pytest.mark.async_only(reason="the twin's create and network_info are covered by the port test")
async def test_the_default_network_is_made_on_first_use(
    client: AsyncClient, containers: ContainerFactory, supervisor: Supervisor
) -> None:
    service = NetworkService()
    existed = any(made.name == DEFAULT_NETWORK for made in await service.list())
    try:
        container_id = await create_networked(
            client, containers, Attach(), args=("/bin/ip", "-o", "addr", "show", "eth0")
        )
        default = await service.get(DEFAULT_NETWORK)
        assert default.bridge == DEFAULT_NETWORK
        info = await client.network_info(container_id)
        assert info is not None
        assert info.gateway == default.gateway
        code, output = await run_to_end(client, container_id)
        assert code == 0
        assert info.addresses[0] in output
    finally:
        await containers.cleanup()
        if not existed:
            await service.remove(DEFAULT_NETWORK)


@pytest.mark.async_only(reason="the twin's networks and create delegate to the async ones")
async def test_an_ipv6_network_serves_on_the_gateways_ipv6_address(
    client: AsyncClient, containers: ContainerFactory, supervisor: Supervisor
) -> None:
    service = NetworkService()
    forwarding = Path("/proc/sys/net/ipv6/conf/all/forwarding")
    forwarding_before = await asyncio.to_thread(forwarding.read_text)
    made = await service.create(f"lcdtest-{os.getpid()}-{next(_serial)}", ipv6=True)
    try:
        subnet6 = ipaddress.IPv6Network(made.ipv6_subnet)
        assert subnet6.subnet_of(ipaddress.IPv6Network("fd6c:6364::/48"))  # a unique local /64
        assert (await service.get(made.name)).ipv6_gateway == made.ipv6_gateway
        with pytest.raises(InvalidArgument, match="overlaps"):
            await service.create("lcdtest-bad6", ipv6=made.ipv6_subnet)
        with pytest.raises(InvalidArgument, match="not an IPv6 subnet"):
            await service.create("lcdtest-bad6", ipv6="10.89.250.0/24")
        port = free_port()
        container_id = containers.new_id("web6")
        spec = web_spec(containers, container_id)
        containers.created.append(container_id)
        await client.create(container_id, spec, network=Attach(made.name, ports=[Port(port, 80)]))
        await client.start(container_id)
        info = await client.network_info(container_id)
        assert info is not None
        (address6,) = [address for address in info.addresses if ":" in address]
        assert ipaddress.ip_interface(address6) in subnet6
        assert await curl(f"http://[{made.ipv6_gateway}]:{port}/") == PAGE  # published, over v6
        assert await curl(f"http://[{address6.split('/')[0]}]:80/") == PAGE  # its own address
        assert await curl(f"http://127.0.0.1:{port}/") == PAGE  # and IPv4 still
        await remove_container(client, container_id)
        rules6 = await asyncio.to_thread(
            subprocess.run, ["ip6tables-save"], capture_output=True, text=True, check=True
        )
        assert keys_of(client, [container_id])[0] not in rules6.stdout
        assert Traces.of(keys_of(client, [container_id]), made.bridge).leases == 0
        # Switched on by the bridge plugin, as documented.
        assert await asyncio.to_thread(forwarding.read_text) == "1\n"
    finally:
        await containers.cleanup()
        await service.remove(made.name)
        # A host-wide switch: left as it was found.
        await asyncio.to_thread(forwarding.write_text, forwarding_before)


# -- nothing left behind ------------------------------------------------------------


@pytest.mark.async_only(reason="concurrency of creates is the async client's; the twin delegates")
async def test_containers_created_at_once_all_get_addresses_and_leave_nothing(
    client: AsyncClient, containers: ContainerFactory, network: Network
) -> None:
    before = Traces.of([], network.bridge)
    ids = [containers.new_id("burst") for _ in range(BURST)]
    ports = free_ports(len(ids))
    specs = [web_spec(containers, container_id) for container_id in ids]
    containers.created.extend(ids)
    await asyncio.gather(
        *(
            client.create(container_id, spec, network=Attach(network.name, ports=[Port(port, 80)]))
            for container_id, spec, port in zip(ids, specs, ports, strict=True)
        )
    )
    infos = [await client.network_info(container_id) for container_id in ids]
    addresses = {info.address for info in infos if info is not None}
    assert len(addresses) == BURST
    await asyncio.gather(*(client.start(container_id) for container_id in ids))
    for port in ports[:3]:
        assert await curl(f"http://127.0.0.1:{port}/") == PAGE
    during = Traces.of(keys_of(client, ids), network.bridge)
    assert len(network_rules(network)) == 3  # made once, though BURST first attaches raced
    assert during.leases == BURST
    assert during.mounts == before.mounts + BURST
    assert during.rules > 0
    assert during.veths == before.veths + BURST
    await asyncio.gather(*(remove_container(client, container_id) for container_id in ids))
    assert Traces.of(keys_of(client, ids), network.bridge) == Traces(0, 0, 0, 0, 0)


async def run_killed_client(
    mode: str, client: AsyncClient, containers: ContainerFactory, network: Network
) -> str:
    """Run killed_network_client.py in ``mode``; the container id it worked on."""
    container_id = containers.new_id("killed")
    containers.created.append(container_id)
    root = containers.workdir / container_id / "rootfs"
    containers.spec(["/bin/true"], container_id=container_id)  # builds the root
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.integration.killed_network_client", mode,
        client.address, client.namespace, container_id, str(root), network.name, str(free_port()),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        cwd=CHECKOUT,
    )  # fmt: skip
    _stdout, stderr = await asyncio.wait_for(child.communicate(), 60)
    assert child.returncode == -signal.SIGKILL, stderr.decode()
    return container_id


@pytest.mark.async_only(reason="the child process uses AsyncClient; the twin delegates")
async def test_a_client_killed_between_add_and_create_is_cleaned_up_by_the_next(
    client: AsyncClient, containers: ContainerFactory, network: Network
) -> None:
    before = Traces.of([], network.bridge)
    container_id = await run_killed_client("create", client, containers, network)
    key = keys_of(client, [container_id])
    left = Traces.of(key, network.bridge)
    assert left.leases == 1
    assert left.rules > 0
    assert left.mounts == before.mounts + 1
    with pytest.raises(NotFound):
        await client.status(container_id)  # it never reached Containers.Create
    async with AsyncClient(client.address, client.namespace):
        pass  # opening cleans up
    assert Traces.of(key, network.bridge) == Traces(0, 0, before.mounts, 0, before.veths)


@pytest.mark.async_only(reason="the child process uses AsyncClient; the twin delegates")
async def test_a_client_killed_during_del_is_cleaned_up_by_the_next(
    client: AsyncClient, containers: ContainerFactory, network: Network
) -> None:
    before = Traces.of([], network.bridge)
    container_id = await run_killed_client("delete", client, containers, network)
    key = keys_of(client, [container_id])
    left = Traces.of(key, network.bridge)
    assert left.leases == 1  # the bridge plugin's DEL never ran
    assert left.mounts == before.mounts + 1
    async with AsyncClient(client.address, client.namespace):
        pass  # opening finishes the DEL
    assert Traces.of(key, network.bridge) == Traces(0, 0, before.mounts, 0, before.veths)
    await client.delete(container_id)  # the container itself is still there: deleting it works


def network_rules(network: Network) -> list[str]:
    """The network's own rules in iptables-save's words (nat and filter, IPv4)."""
    listing = subprocess.run(["iptables-save"], capture_output=True, text=True, check=True)
    comment = f'"libcontainerd network {network.name}"'
    return sorted(line for line in listing.stdout.splitlines() if comment in line)


def forward_chain() -> list[str]:
    """The FORWARD chain, its policy first (``iptables -S``)."""
    listing = subprocess.run(["iptables", "-S", "FORWARD"], capture_output=True, text=True)
    return listing.stdout.splitlines()


async def test_a_network_writes_its_masquerade_and_forward_rules_once_and_takes_them_away(
    client: AsyncClient, containers: ContainerFactory
) -> None:
    service = NetworkService()
    network = await service.create(f"lcdtest-{os.getpid()}-{next(_serial)}")
    try:
        assert network_rules(network) == []  # made with the first container, not before
        first = await create_networked(client, containers, Attach(network.name))
        rules = network_rules(network)
        assert len(rules) == 3, rules
        assert [rule for rule in rules if "MASQUERADE" in rule] == [
            f"-A POSTROUTING -s {network.subnet} ! -o {network.bridge} -m comment --comment"
            f' "libcontainerd network {network.name}" -j MASQUERADE'
        ]
        assert f"-A FORWARD -i {network.bridge}" in " ".join(forward_chain()[1:3])  # first
        second = await create_networked(client, containers, Attach(network.name))
        keys = keys_of(client, [first, second])
        assert network_rules(network) == rules  # once per network
        assert Traces.of(keys, None).rules == 0  # no per-container chain or firewall rule
        await client.delete(first)
        await client.delete(second)
        assert network_rules(network) == rules  # they are the network's
    finally:
        await containers.cleanup()
        await service.remove(network.name)
    assert network_rules(network) == []


@pytest.mark.async_only(reason="the twin's delete delegates to the async client's")
async def test_rules_are_swept_when_the_namespace_was_unmounted_under_us(
    client: AsyncClient, containers: ContainerFactory, network: Network
) -> None:
    before = Traces.of([], network.bridge)
    container_id = await create_networked(
        client, containers, Attach(network.name, ports=[Port(free_port(), 80)])
    )
    info = await client.network_info(container_id)
    assert info is not None
    unmount = await asyncio.create_subprocess_exec("umount", "-l", info.netns)
    assert await unmount.wait() == 0  # someone else's doing
    await client.delete(container_id)
    assert Traces.of(keys_of(client, [container_id]), network.bridge) == Traces(
        0, 0, before.mounts, 0, before.veths
    )


@pytest.mark.async_only(reason="the twin delegates; one loop is enough for the leak count")
@pytest.mark.timeout(60 + 2 * CYCLES)  # ~0.6 s a cycle here, more on a loaded machine
async def test_create_start_delete_cycles_with_a_published_port_leave_nothing(
    client: AsyncClient, containers: ContainerFactory, network: Network
) -> None:
    ids = []
    port = free_port()
    started = time.monotonic()
    for _ in range(CYCLES):
        container_id = await create_networked(
            client, containers, Attach(network.name, ports=[Port(port, 80)]), args=("/bin/true",)
        )
        ids.append(container_id)
        await client.start(container_id)
        await client.wait(container_id)
        await client.delete_task(container_id)
        await client.delete(container_id)
    per_cycle = (time.monotonic() - started) / CYCLES
    version = (await client.version()).version
    figures.record("networks", f"containerd {version}: s per networked cycle", f"{per_cycle:.3f}")
    assert Traces.of(keys_of(client, ids), network.bridge) == Traces(0, 0, 0, 0, 0)


# -- bad input and faults -----------------------------------------------------------


@pytest.mark.async_only(reason="argument checks run before anything is sent")
async def test_bad_network_requests_are_refused_before_anything_is_made(
    client: AsyncClient, containers: ContainerFactory, network: Network, supervisor: Supervisor
) -> None:
    service = NetworkService()
    for port in (0, 70000):
        with pytest.raises(InvalidArgument, match="port number"):
            Port(port, 80)
    with pytest.raises(InvalidArgument, match="not a valid CIDR"):
        await service.create("lcdtest-bad", subnet="10.89.300.0/24")
    with pytest.raises(InvalidArgument, match="overlaps"):
        await service.create("lcdtest-bad", subnet=network.subnet)
    with pytest.raises(AlreadyExists):
        await service.create(network.name)
    container_id = containers.new_id("bad")
    spec = containers.spec(["/bin/true"], container_id=container_id)
    containers.created.append(container_id)
    with pytest.raises(NotFound, match="no network 'lcdtest-nothere'"):
        await client.create(container_id, spec, network="lcdtest-nothere")
    host_spec = containers.spec(["/bin/true"], oci.with_host_namespace("network"), container_id="h")
    with pytest.raises(InvalidArgument, match="shares the host's network"):
        await client.create(container_id, host_spec, network=network.name)
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(AlreadyExists, match=f"host port {port}/tcp is in use"):
            await client.create(
                container_id, spec, network=Attach(network.name, ports=[Port(port, 80)])
            )
    assert Traces.of(keys_of(client, [container_id]), network.bridge).files == 0
    with pytest.raises(NotFound):
        await client.status(container_id)


@pytest.mark.async_only(reason="the twin's create delegates to the async client's")
async def test_creating_an_existing_id_again_leaves_its_network_alone(
    client: AsyncClient, containers: ContainerFactory, network: Network
) -> None:
    container_id = await create_networked(client, containers, network.name)
    info = await client.network_info(container_id)
    held = Traces.of(keys_of(client, [container_id]), network.bridge)
    spec = containers.spec(["/bin/true"], container_id=f"{container_id}-again")
    with pytest.raises(AlreadyExists):
        await client.create(container_id, spec, network=network.name)
    assert await client.network_info(container_id) == info
    assert Traces.of(keys_of(client, [container_id]), network.bridge) == held


@pytest.mark.async_only(reason="the plugin folder is the async service's")
async def test_a_missing_plugin_is_a_network_error_naming_the_package(
    client: AsyncClient, containers: ContainerFactory, network: Network, tmp_path: Path
) -> None:
    client.networks.runner.path = (str(tmp_path),)
    client.networks.runner._found.clear()
    container_id = containers.new_id("noplugin")
    spec = containers.spec(["/bin/true"], container_id=container_id)
    containers.created.append(container_id)
    with pytest.raises(NetworkError, match="containernetworking-plugins"):
        await client.create(container_id, spec, network=network.name)
    assert Traces.of(keys_of(client, [container_id]), network.bridge).files == 0


@pytest.mark.async_only(reason="the twin's networks delegate to the async service")
async def test_a_network_in_use_cannot_be_removed(
    client: AsyncClient, containers: ContainerFactory, network: Network
) -> None:
    container_id = await create_networked(client, containers, network.name)
    with pytest.raises(FailedPrecondition, match=container_id):
        await client.networks.remove(network.name)
    assert [made.name for made in await client.networks.list()].count(network.name) == 1
    await client.delete(container_id)
    with pytest.raises(NotFound):
        await client.network_info(container_id)


def test_blocking_networks_create_list_get_remove(supervisor: Supervisor) -> None:
    from libcontainerd import Client

    with Client(supervisor.address, TEST_NAMESPACE) as blocking:
        name = f"lcdtest-{os.getpid()}-{next(_serial)}"
        made = blocking.networks.create(name, subnet="10.89.240.0/24", bridge="lcdtestbr")
        try:
            assert made.gateway == "10.89.240.1"
            assert blocking.networks.get(name) == made
            assert made in blocking.networks.list()
        finally:
            blocking.networks.remove(name)
        with pytest.raises(NotFound):
            blocking.networks.get(name)


# -- lcd ------------------------------------------------------------------------------


async def test_lcd_run_publishes_a_port_on_a_network_made_by_lcd_network(
    supervisor: Supervisor, tmp_path: Path
) -> None:
    env = environment(tmp_path / "state", tmp_path / "root")
    base = ("--address", supervisor.address, "-n", TEST_NAMESPACE)
    name = f"lcdtest-cli-{os.getpid()}-{next(_serial)}"
    container_id = f"lcdnet-{os.getpid()}-{next(_serial)}"
    made = await lcd(env, *base, "network", "create", "--ipv6", name)
    assert made.stdout == f"{name}\n", made
    try:
        (listed_network,) = [
            line for line in (await lcd(env, *base, "network", "ls")).lines if line.startswith(name)
        ]
        assert ", fd6c:6364:" in listed_network  # its IPv6 subnet beside the IPv4 one
        root = rootfs.busybox(tmp_path / "rootfs")
        (root / "www").mkdir()
        (root / "www" / "index.html").write_text(PAGE)
        port = free_port()
        started = await lcd(
            env, *base, "run", "-d", "--name", container_id, "--rootfs", str(root),
            "--network", name, "-p", f"127.0.0.1:{port}:80",
            "--", "/bin/httpd", "-f", "-p", "80", "-h", "/www",
        )  # fmt: skip
        assert started.status == 0, started
        assert await curl(f"http://127.0.0.1:{port}/") == PAGE
        listed = await lcd(env, *base, "port", container_id)
        assert listed.stdout == f"80/tcp -> 127.0.0.1:{port}\n", listed
        assert (await lcd(env, *base, "port", container_id, "80")).lines == [f"127.0.0.1:{port}"]
        unpublished = await lcd(env, *base, "port", container_id, "81/tcp")
        assert unpublished.one_error_line() == (
            f"lcd: no public port '81/tcp' published for {container_id}"
        )
        table = (await lcd(env, *base, "ps")).lines
        assert table[0].split()[-1] == "PORTS"
        (row,) = [line for line in table if line.startswith(f"{container_id} ")]
        assert row.endswith(f" 127.0.0.1:{port}->80/tcp"), table
        (record,) = [
            entry
            for entry in json.loads((await lcd(env, *base, "ps", "--json")).stdout)
            if entry["id"] == container_id
        ]
        assert record["ports"] == [
            {"host_port": port, "container_port": 80, "protocol": "tcp", "host_ip": "127.0.0.1"}
        ]
        refused = await lcd(env, *base, "network", "rm", name)
        assert "containers use it" in refused.one_error_line()
        assert (await lcd(env, *base, "rm", "-f", container_id)).status == 0
        wrong = await lcd(env, *base, "run", "--network", "none", "-p", "80:80", "--", "true")
        assert "need a network" in wrong.one_error_line()
    finally:
        await lcd(env, *base, "rm", "-f", container_id)
        removed = await lcd(env, *base, "network", "rm", name)
        assert removed.status == 0, removed


async def test_lcd_run_joins_the_default_network_unless_network_says_otherwise(
    supervisor: Supervisor, tmp_path: Path
) -> None:
    """As docker run: lcd0 by default, 'none' a namespace with only lo (up), 'host' the host's."""
    env = environment(tmp_path / "state", tmp_path / "root")
    base = ("--address", supervisor.address, "-n", TEST_NAMESPACE)
    show = ("sh", "-c", "readlink /proc/self/ns/net; ip -o addr show")
    names = [f"lcdmode-{os.getpid()}-{next(_serial)}" for _ in range(3)]
    before = Traces.of([], None)
    host_netns = os.readlink("/proc/self/ns/net")
    outputs = {}
    for name, mode in zip(names, ("none", "host"), strict=False):
        ran = await lcd(env, *base, "run", "--rm", "--name", name, "--network", mode, "--", *show)
        assert ran.status == 0, ran
        outputs[mode] = ran.lines
    namespace, *addresses = outputs["none"]
    assert namespace != host_netns
    assert [line.split()[1] for line in addresses] == ["lo", "lo"]  # 127.0.0.1 and ::1: up
    assert outputs["host"][0] == host_netns
    default = names[2]
    try:
        started = await lcd(env, *base, "run", "-d", "--name", default, "--", "sleep", "300")
        assert started.status == 0, started
        ran = await lcd(env, *base, "exec", default, *show)
        assert ran.status == 0, ran
        # Read while the container is on it: a network in use is never removed.
        subnet = ipaddress.ip_network((await NetworkService().get(DEFAULT_NETWORK)).subnet)
    finally:
        await lcd(env, *base, "rm", "-f", default)
    namespace, *addresses = ran.lines
    assert namespace != host_netns
    found = [line.split()[3] for line in addresses if " eth0 " in line and " inet " in line]
    assert len(found) == 1, addresses
    assert ipaddress.ip_interface(found[0]) in subnet
    key = [cni_id(supervisor.address, TEST_NAMESPACE, name) for name in names]
    assert Traces.of(key, None) == Traces(0, 0, before.mounts, 0, before.veths)


async def test_networked_containers_keep_serving_across_a_containerd_kill(
    workdir: Path, containerd: str
) -> None:
    """The namespace is pinned by us, not held by containerd: a SIGKILLed containerd takes
    nothing of the network with it, and its restarted self's clients find it."""
    service = NetworkService()
    network = await service.create(f"lcdtest-{os.getpid()}-{next(_serial)}")
    root = rootfs.busybox(workdir / "rootfs")
    (root / "www").mkdir()
    (root / "www" / "index.html").write_text(PAGE)
    port = free_port()
    container_id = f"survivor-{os.getpid()}-{next(_serial)}"
    daemon = Supervisor(workdir / "s", workdir / "r", containerd=containerd)
    try:
        async with daemon:
            async with AsyncClient(daemon.address, TEST_NAMESPACE) as client:
                spec = oci.default_spec(["/bin/httpd", "-f", "-p", "80", "-h", "/www"], root)
                attach = Attach(network.name, ports=[Port(port, 80)])
                await client.create(container_id, spec, network=attach)
                await client.start(container_id)
                assert await curl(f"http://127.0.0.1:{port}/") == PAGE
                info = await client.network_info(container_id)
            restarts = daemon.restarts
            os.kill(daemon.pid or 0, signal.SIGKILL)
            assert await curl(f"http://{network.gateway}:{port}/") == PAGE  # while it is down
            async with asyncio.timeout(60):
                await daemon.wait_ready(min_restarts=restarts + 1)
            async with AsyncClient(daemon.address, TEST_NAMESPACE) as client:
                await client.restore(container_id)
                assert await client.network_info(container_id) == info
                assert await curl(f"http://127.0.0.1:{port}/") == PAGE
                await remove_container(client, container_id)
                with pytest.raises(NotFound):
                    await client.network_info(container_id)
    finally:
        await service.remove(network.name)
