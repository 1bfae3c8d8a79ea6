"""The network room's pure logic: values, conflists, subnets, DNS files, -p, the twin."""

from __future__ import annotations

import inspect
import ipaddress
from dataclasses import replace
from pathlib import Path

import pytest

from libcontainerd import AsyncClient, Client
from libcontainerd.cli._network import NetworkRequest, parse_publish
from libcontainerd.errors import InvalidArgument, NetworkError
from libcontainerd.networks import (
    DEFAULT_NETWORK,
    Attach,
    BlockingNetworkService,
    Network,
    NetworkService,
    Port,
)
from libcontainerd.networks._cni import PluginRunner, _plugin_config
from libcontainerd.networks._config import (
    conflist_of,
    network_of,
    parse_ipv6_subnet,
    parse_subnet,
    pick_ipv6_subnet,
    pick_subnet,
)
from libcontainerd.networks._files import hosts, resolv_conf
from libcontainerd.networks._rules import rules_of
from libcontainerd.networks._state import cni_id


def _public(cls: type) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(member)
        for name, member in inspect.getmembers(cls, inspect.isfunction)
        if not name.startswith("_")
    }


def test_every_network_method_has_a_blocking_twin_with_the_same_parameters() -> None:
    async_methods, blocking_methods = _public(NetworkService), _public(BlockingNetworkService)
    assert set(async_methods) == set(blocking_methods) == {"create", "list", "get", "remove"}
    for name, signature in async_methods.items():
        assert blocking_methods[name].parameters == signature.parameters, name
        assert blocking_methods[name].return_annotation == signature.return_annotation, name


def test_both_clients_have_their_network_service() -> None:
    assert isinstance(AsyncClient("/run/x/containerd.sock").networks, NetworkService)
    assert isinstance(Client("/run/x/containerd.sock").networks, BlockingNetworkService)


@pytest.mark.parametrize("number", [0, -1, 65536, 70000, True, "80"])
def test_a_port_number_out_of_range_is_refused(number: object) -> None:
    with pytest.raises(InvalidArgument, match="port number"):
        Port(number, 80)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="port number"):
        Port(8080, number)  # type: ignore[arg-type]


def test_port_protocol_and_host_ip_are_checked() -> None:
    with pytest.raises(InvalidArgument, match="protocol"):
        Port(8080, 80, "icmp")
    with pytest.raises(InvalidArgument, match="not an IP address"):
        Port(8080, 80, host_ip="localhost")
    assert str(Port(8080, 80, "udp", "127.0.0.1")) == "127.0.0.1:8080->80/udp"


def test_a_port_reads_as_docker_ps_shows_it() -> None:
    assert str(Port(8080, 80)) == "0.0.0.0:8080->80/tcp"
    assert str(Port(8080, 80, host_ip="::1")) == "[::1]:8080->80/tcp"


def test_attach_checks_its_values_when_made() -> None:
    with pytest.raises(InvalidArgument, match="published twice"):
        Attach(ports=[Port(8080, 80), Port(8080, 81)])
    with pytest.raises(InvalidArgument, match="a mode"):
        Attach("host")
    with pytest.raises(InvalidArgument, match="not valid"):
        Attach("../etc")
    with pytest.raises(InvalidArgument, match="host name"):
        Attach(hostname="-bad")
    with pytest.raises(InvalidArgument, match="dns server"):
        Attach(dns=["resolver"])
    with pytest.raises(InvalidArgument, match="extra_hosts address"):
        Attach(extra_hosts={"web": "nowhere"})
    attach = Attach("n1", ports=[Port(1, 2)], dns=["192.0.2.53"])
    assert attach.ports == (Port(1, 2),)
    assert attach.dns == ("192.0.2.53",)


def test_a_conflist_reads_back_as_its_network() -> None:
    network = Network("n1", "10.89.7.0/24", "10.89.7.1", "lcd7", masquerade=False, mtu=1400)
    conflist = conflist_of(network, "/run/ipam")
    assert [plugin["type"] for plugin in conflist["plugins"]] == ["bridge", "portmap", "tuning"]
    assert conflist["disableCheck"] is True  # portmap's CHECK fails on IPv4-only networks
    assert conflist["plugins"][0]["ipam"]["dataDir"] == "/run/ipam"
    # Masquerade and forwarding are the network's own rules, not per container.
    assert conflist["plugins"][0]["ipMasq"] is False
    assert conflist["libcontainerd"] == {"rules": "network", "masquerade": False}
    assert network_of(conflist) == network
    assert network_of(conflist_of(replace(network, masquerade=True), "/run/ipam")).masquerade


def test_an_older_conflist_with_per_container_rules_reads_back_the_same() -> None:
    network = Network("n2", "10.89.9.0/24", "10.89.9.1", "lcd9")
    older = conflist_of(network, "/run/ipam")
    del older["libcontainerd"]
    older["plugins"][0]["ipMasq"] = True
    older["plugins"].insert(2, {"type": "firewall"})
    assert network_of(older) == network


def test_a_networks_own_rules_name_its_subnet_bridge_and_itself() -> None:
    network = Network(
        "web", "10.89.3.0/24", "10.89.3.1", "lcd3", ipv6_subnet="fd6c:6364:0:3::/64",
        ipv6_gateway="fd6c:6364:0:3::1",
    )  # fmt: skip
    rules = rules_of(network)
    comment = ("-m", "comment", "--comment", "libcontainerd network web")
    assert rules[:3] == [
        ("iptables", "nat", "POSTROUTING",
         ("-s", "10.89.3.0/24", "!", "-o", "lcd3", *comment, "-j", "MASQUERADE")),
        ("iptables", "filter", "FORWARD", ("-i", "lcd3", *comment, "-j", "ACCEPT")),
        ("iptables", "filter", "FORWARD",
         ("-o", "lcd3", "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", *comment,
          "-j", "ACCEPT")),
    ]  # fmt: skip
    assert [rule[0] for rule in rules] == ["iptables"] * 3 + ["ip6tables"] * 3
    assert rules[3][3][:2] == ("-s", "fd6c:6364:0:3::/64")
    unmasqueraded = rules_of(replace(network, masquerade=False, ipv6_subnet=""))
    assert [rule[2] for rule in unmasqueraded] == ["FORWARD", "FORWARD"]


def test_an_ipv6_network_has_a_second_range_and_a_default_route_of_its_own() -> None:
    network = Network(
        "n6", "10.89.8.0/24", "10.89.8.1", "lcd8", ipv6_subnet="fd6c:6364:0:8::/64",
        ipv6_gateway="fd6c:6364:0:8::1",
    )  # fmt: skip
    ipam = conflist_of(network, "/run/ipam")["plugins"][0]["ipam"]
    assert ipam["ranges"][1] == [{"subnet": "fd6c:6364:0:8::/64", "gateway": "fd6c:6364:0:8::1"}]
    assert {"dst": "::/0"} in ipam["routes"]
    assert network_of(conflist_of(network, "/run/ipam")) == network


def test_ipv6_subnets_are_checked_and_picked_from_the_unique_local_pool() -> None:
    assert parse_ipv6_subnet("fd00:1::/64") == ("fd00:1::/64", "fd00:1::1")
    for bad, message in (
        ("fd00:1::1/64", "not a valid CIDR"),
        ("10.1.0.0/24", "not an IPv6 subnet"),
        ("fd00:1::/124", "too small"),
    ):
        with pytest.raises(InvalidArgument, match=message):
            parse_ipv6_subnet(bad)
    taken = [ipaddress.IPv6Network("fd6c:6364::/63")]
    assert pick_ipv6_subnet(taken) == ("fd6c:6364:0:2::/64", "fd6c:6364:0:2::1")


def test_subnets_are_checked_and_picked_clear_of_what_is_taken() -> None:
    assert parse_subnet("10.5.0.0/16", None) == ("10.5.0.0/16", "10.5.0.1")
    for bad, message in (
        ("10.5.0.1/16", "not a valid CIDR"),
        ("fd00::/64", "only IPv4"),
        ("10.5.0.0/31", "too small"),
    ):
        with pytest.raises(InvalidArgument, match=message):
            parse_subnet(bad, None)
    with pytest.raises(InvalidArgument, match="not a host address"):
        parse_subnet("10.5.0.0/24", "10.6.0.1")
    taken = [("route", ipaddress.IPv4Network("10.89.0.0/23"))]
    assert pick_subnet(taken) == ("10.89.2.0/24", "10.89.2.1")


def test_resolv_conf_drops_loopback_resolvers_and_never_adds_public_ones(tmp_path: Path) -> None:
    host = tmp_path / "resolv.conf"
    host.write_text("nameserver 127.0.0.53\nnameserver 192.0.2.1\nsearch corp.test\n")
    text = resolv_conf(Attach(), str(host))
    assert "nameserver 192.0.2.1\n" in text
    assert "127.0.0.53" not in text
    assert "search corp.test\n" in text
    host.write_text("nameserver 127.0.0.53\n")
    assert "nameserver" not in resolv_conf(Attach(), str(host)).replace("# no nameserver", "")
    given = resolv_conf(Attach(dns=["192.0.2.9"], dns_search=["a.test"]), str(host))
    assert given.splitlines()[1:] == ["nameserver 192.0.2.9", "search a.test"]


def test_hosts_names_the_container_and_the_extra_hosts() -> None:
    text = hosts(Attach(extra_hosts={"db": "10.0.0.5"}), "web", ["10.89.0.2/24"])
    assert "10.89.0.2\tweb\n" in text
    assert "10.0.0.5\tdb\n" in text
    assert text.startswith("127.0.0.1\tlocalhost\n")


def test_each_plugin_gets_the_list_name_version_and_only_the_capabilities_it_asks_for() -> None:
    conflist = {"name": "n1", "cniVersion": "1.0.0", "plugins": []}
    plugin = {"type": "portmap", "capabilities": {"portMappings": True}}
    mappings = [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]
    config = _plugin_config(conflist, plugin, {"ips": []}, {"portMappings": mappings})
    assert config == {
        "type": "portmap",
        "name": "n1",
        "cniVersion": "1.0.0",
        "prevResult": {"ips": []},
        "runtimeConfig": {"portMappings": mappings},
    }
    bridge = _plugin_config(conflist, {"type": "bridge"}, None, {"portMappings": mappings})
    assert "runtimeConfig" not in bridge
    assert "prevResult" not in bridge


def test_a_missing_plugin_names_the_package(tmp_path: Path) -> None:
    with pytest.raises(NetworkError, match="apt-get install containernetworking-plugins"):
        PluginRunner([str(tmp_path)]).find("bridge")


def test_cni_ids_are_unique_per_daemon_and_namespace_and_name_the_container() -> None:
    one = cni_id("/run/a.sock", "ns", "web")
    assert one.endswith("-web")
    assert one != cni_id("/run/b.sock", "ns", "web")
    assert one != cni_id("/run/a.sock", "other", "web")


def test_publish_takes_dockers_form() -> None:
    assert parse_publish("8080:80") == Port(8080, 80)
    assert parse_publish("127.0.0.1:8080:53/udp") == Port(8080, 53, "udp", "127.0.0.1")
    for bad in ("80", "a:80", "1:2:3:4"):
        with pytest.raises(InvalidArgument, match="HOST:CONTAINER"):
            parse_publish(bad)


def test_run_options_join_the_default_network_unless_told_otherwise() -> None:
    assert NetworkRequest().attach(None) == Attach(DEFAULT_NETWORK)
    assert NetworkRequest(publish=("8080:80",)).attach("h") == Attach(
        ports=[Port(8080, 80)], hostname="h"
    )
    assert NetworkRequest("none").attach("h") is None
    assert NetworkRequest("host").attach(None) is None
    with pytest.raises(InvalidArgument, match="need a network"):
        NetworkRequest("none", publish=("8080:80",)).attach(None)
    assert NetworkRequest("host").spec_options()
