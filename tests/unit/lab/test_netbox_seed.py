"""The NetBox seed spec and the FRR config template, without NetBox."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from runbooks.core.errors import InputError
from runbooks.lab import netbox_seed, topology
from tests.support.netbox_templates import Cable, Device, Iface, render


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return netbox_seed.build_spec(topology.load())


def _device(spec: dict[str, Any], name: str) -> dict[str, Any]:
    return next(d for d in spec["devices"] if d["name"] == name)


def test_planned_leaf_has_rack_position_and_reserved_addresses(spec):
    leaf3 = _device(spec, "leaf3")
    assert (leaf3["status"], leaf3["rack"], leaf3["position"]) == ("planned", "R01", 36)
    assert {ip["status"] for ip in leaf3["ips"]} == {"reserved"}
    assert {ip["interface"] for ip in leaf3["ips"]} == {"eth0", "lo", "swp1", "swp2"}


@pytest.mark.parametrize(
    ("a", "b", "status"),
    [
        (["spine1", "swp1"], ["leaf1", "swp1"], "connected"),
        (["spine2", "swp2"], ["leaf2", "swp2"], "connected"),
        (["spine1", "swp3"], ["leaf3", "swp1"], "planned"),
        (["spine2", "swp3"], ["leaf3", "swp2"], "planned"),
    ],
)
def test_cable_status_follows_the_planned_device(spec, a, b, status):
    assert {"a": a, "b": b, "status": status} in spec["cables"]


def test_link_addresses_are_the_two_ends_of_the_31(spec):
    spine1 = {ip["interface"]: ip for ip in _device(spec, "spine1")["ips"]}
    leaf1 = {ip["interface"]: ip for ip in _device(spec, "leaf1")["ips"]}
    assert spine1["swp1"]["address"] == "198.18.1.0/31"
    assert leaf1["swp1"]["address"] == "198.18.1.1/31"
    assert spine1["swp3"]["status"] == "reserved"  # the planned link to leaf3


def test_every_device_has_a_primary_management_address_in_the_management_prefix(spec):
    mgmt = ipaddress.ip_network(
        next(p["prefix"] for p in spec["prefixes"] if p["description"] == "Lab management")
    )
    for dev in spec["devices"]:
        primary = [ip for ip in dev["ips"] if ip["primary"]]
        assert len(primary) == 1, dev["name"]
        assert primary[0]["interface"] == "eth0"
        assert ipaddress.ip_interface(primary[0]["address"]).ip in mgmt


def test_hosts_are_devices_and_the_pc_is_a_reserved_slot(spec):
    names = {d["name"]: d for d in spec["devices"]}
    assert names["db1"]["role"] == "database-server"
    assert names["srv1"]["platform"] == "linux"
    assert "pc1" not in names
    assert spec["reserved_ips"] == [
        {
            "address": "198.18.0.51/24",
            "dns_name": "pc1",
            "description": "PC slot pc1: reserved for its install",
        },
        {  # the office gateway: next-available-IP never hands it to a PC
            "address": "198.18.64.1/24",
            "dns_name": "office-gw",
            "description": "Office gateway",
        },
    ]


def test_where_pcs_go_and_who_gets_them(spec):
    assert spec["locations"] == [{"name": "Office 2F", "slug": "office-2f"}]
    assert spec["contact_roles"] == [{"name": "PC user", "slug": "pc-user"}]
    contacts = {c["email"]: c for c in spec["contacts"]}
    assert contacts["wchen@lab.example"] == {
        "name": "Wei Chen",
        "email": "wchen@lab.example",
        "tenant": "finance",
    }
    assert {t["slug"] for t in spec["tenants"]} == {"finance"}


def test_routers_carry_their_asn_and_the_frr_platform(spec):
    assert _device(spec, "spine1")["asn"] == 65001
    assert _device(spec, "leaf3")["platform"] == "frr"
    assert {p["slug"]: p["config_template"] for p in spec["platforms"]}["frr"] == "FRR"


def test_people_and_groups(spec):
    assert spec["groups"] == [
        "runbook-approvers",
        "runbook-operators",
        "runbook-reviewers",
        "runbook-supervisors",
    ]
    assert spec["operator_groups"] == ["runbook-operators"]
    assert {u["role"] for u in spec["users"]} == {
        "operator",
        "reviewer",
        "approver",
        "approver2",
        "supervisor",
        "worker",
    }


def test_emergency_approvals_have_two_approvers_and_scheduled_runs_a_worker(spec):
    people = {u["role"]: u for u in spec["users"]}
    assert people["approver"]["groups"] == people["approver2"]["groups"] == ["runbook-approvers"]
    assert people["approver"]["username"] != people["approver2"]["username"]
    assert people["worker"] == {
        "username": "runbooks-worker",
        "role": "worker",
        "groups": ["runbook-operators"],
    }


def test_every_lab_role_has_credentials_and_no_username_is_taken_twice(spec):
    from runbooks.lab import netbox

    assert {u["role"] for u in spec["users"]} | {"admin"} == set(netbox.ROLES)
    names = [u["username"] for u in spec["users"]] + [netbox_seed.ADMIN_USER]
    assert len(names) == len(set(names))


def test_a_topology_without_the_netbox_catalogue_is_refused():
    topo = topology.load().model_copy(update={"netbox": None})
    with pytest.raises(InputError, match="netbox"):
        netbox_seed.build_spec(topo)


# -- the FRR template, rendered the way NetBox renders it (sandboxed Jinja2) --------------------


def _render(device: Device) -> str:
    return render("frr.conf.j2", device)  # no primary IPv4: every interface is rendered


def test_frr_template_renders_interfaces_and_bgp_to_connected_peers_only():
    pytest.importorskip("netaddr")
    leaf1 = Device("leaf1", 65101, [])
    leaf1.ifaces = [Iface("swp1", ["198.18.1.1/31"], device=leaf1)]
    leaf3 = Device("leaf3", 65103, [])
    leaf3.ifaces = [Iface("swp1", ["198.18.1.5/31"], device=leaf3)]
    spine1 = Device(
        "spine1",
        65001,
        [
            Iface("eth0", ["198.18.0.11/24"]),
            Iface("lo", ["198.18.255.1/32"]),
            Iface("swp1", ["198.18.1.0/31"], Cable("connected"), leaf1.ifaces),
            Iface("swp3", ["198.18.1.4/31"], Cable("planned"), leaf3.ifaces),
            Iface("swp4", []),
        ],
    )
    text = _render(spine1)
    assert "hostname spine1\n" in text
    assert "interface swp1\n ip address 198.18.1.0/31\nexit\n" in text
    assert "interface swp4" not in text
    assert "router bgp 65001\n bgp router-id 198.18.255.1\n no bgp ebgp-requires-policy\n" in text
    assert " neighbor 198.18.1.1 remote-as 65101\n" in text
    assert "198.18.1.5" not in text  # planned cable: no session yet
    assert "  network 198.18.255.1/32\n" in text
