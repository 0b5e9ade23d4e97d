"""The second network OS for real: border1 runs BIRD 2 with lldpd and sshd beside it, and
runbooks reach it through napalm-bird2 (PyPI, not ours) with NetBox's data only: the platform
slug and config context give the driver and its options, NetBox renders its bird.conf.

What napalm-bird2 0.0.5 can and cannot do is in runbooks/lab/bird.py's docstring; the tests
below show the parts runbooks rely on, and name the parts it lacks.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import pynetbox
import pytest
import requests
from test_host_keys_lab import forged, one_line

from runbooks.core.errors import ConnectError, DryRunViolation, RejectedError, UnsupportedError
from runbooks.core.gateway import Mode
from runbooks.gateways.network import Credentials, DeviceTarget, NetworkGateway
from runbooks.lab import bird, frr, netbox, node
from runbooks.lab import lab as lab_ops

pytestmark = pytest.mark.lab

BORDER = "border1"


def _nb() -> Any:
    url, token = netbox.credentials("operator")
    return pynetbox.api(url, token=token)


def _target(name: str = BORDER) -> DeviceTarget:
    """The device as runbooks see it: all from NetBox (address, platform, config context)."""
    dev = _nb().dcim.devices.get(name=name)
    host = str(dev.primary_ip4).split("/")[0]
    return DeviceTarget.from_netbox(name, host, dev.platform.slug, dev.config_context)


def _gateway(mode: Mode, target: DeviceTarget) -> NetworkGateway:
    login = node.login_params(target.host)
    creds = Credentials(login["username"], key_file=login["key_file"], timeout=20)
    return NetworkGateway(mode, target, creds)


def _rendered(name: str, intent: str) -> str:
    dev = _nb().dcim.devices.get(name=name)
    url, token = netbox.credentials("operator")
    reply = requests.post(
        f"{url}/api/dcim/devices/{dev.id}/render-config/",
        headers={"Authorization": f"Bearer {token}", "Accept": "text/plain"},
        json={"runbooks_intent": intent},
        timeout=30,
    )
    assert reply.status_code == 200, reply.text
    return reply.text


def _box_state() -> dict[str, str]:
    """What a compare must leave as it was: bird.conf, /etc/bird, /tmp and BIRD's protocols."""
    conf = bird.run_on_device(BORDER, ["cat", bird.CONFIG], check=True).stdout
    listing = bird.run_on_device(
        BORDER, ["find", "/etc/bird", "/tmp", "/root", "-printf", "%p %s %T@\n"]
    ).stdout
    protocols = bird.birdc(BORDER, "show protocols")
    return {
        "bird.conf": hashlib.sha256(conf.encode()).hexdigest(),
        "files": "\n".join(sorted(listing.splitlines())),
        "protocols": "\n".join(ln.split()[0] for ln in protocols.splitlines()[2:] if ln),
    }


@pytest.fixture
def border(lab_reset: Any) -> Iterator[NetworkGateway]:
    """border1 in the seeded lab (held), through the network gateway in plan mode."""
    gw = _gateway(Mode.PLAN, _target())
    yield gw
    gw.close()


def test_border1_comes_up_as_a_factory_box_with_lldp_and_no_bgp(lab_reset: Any) -> None:
    topo = lab_reset.topology
    assert topo.platform(BORDER) == "bird2" and topo.device(BORDER).status == "planned"
    conf = bird.run_on_device(BORDER, ["cat", bird.CONFIG], check=True).stdout
    assert conf == bird.factory_config(topo, BORDER)
    assert bird.bgp_states(BORDER) == {}  # no BGP configured
    assert bird.run_on_device(BORDER, ["hostname"]).stdout.strip() == BORDER
    # its own BIRD: socket and config in its own namespaces, not the machine's
    assert (bird.device_dir(BORDER) / "run-bird" / "bird.ctl").is_socket()
    # lldpd beside BIRD: each cable seen from both ends, port id = kernel ifname
    assert frr.lldp_neighbours(BORDER) == {"swp1": ("spine1", "swp4"), "swp2": ("spine2", "swp4")}
    assert frr.lldp_neighbours("spine1")["swp4"] == (BORDER, "swp1")
    # the spines render no session to a planned border router
    assert "198.18.1.13" not in frr.run_on_device("spine1", ["vtysh", "-c", "show run"]).stdout
    status = {c.name: c for c in lab_ops.status()}[f"device {BORDER}"]
    assert status.ok and "bird answers" in status.detail


def test_netbox_names_the_driver_and_its_options(border: NetworkGateway) -> None:
    assert border.driver_name == "bird2"
    assert border.target.optional_args["bird_config_path"] == bird.CONFIG
    assert border.target.optional_args["transport"] == "ssh"


def test_the_driver_reads_facts_interfaces_and_bgp(border: NetworkGateway) -> None:
    facts = border.facts()
    assert facts["vendor"] == "BIRD" and facts["model"] == "BIRD2"
    # hostname is the address connected to; fqdn is `hostname -f` on the box, which cannot
    # resolve its own name without DNS and falls back to that address too
    assert facts["hostname"] == facts["fqdn"] == border.target.host == "198.18.0.24"
    assert {"eth0", "lo", "swp1", "swp2"} <= set(facts["interface_list"])
    interfaces = border.interfaces()
    assert interfaces["swp1"]["is_up"] and interfaces["swp2"]["is_up"]
    assert border.bgp_neighbors() == {"global": {"router_id": None, "peers": {}}}


def test_the_running_configuration_through_the_platforms_getter_mapping(
    border: NetworkGateway,
) -> None:
    """napalm-bird2 has no get_config; NetBox's config context maps it to the driver's own
    get_bird_running_config (the box's bird.conf, read over SFTP)."""
    assert border.target.getters == {"get_config": "get_bird_running_config"}
    running = bird.run_on_device(BORDER, ["cat", bird.CONFIG], check=True).stdout
    assert border.config() == running == bird.factory_config(lab_ops.topology.load(), BORDER)


def test_what_the_driver_cannot_answer_is_named(border: NetworkGateway) -> None:
    """napalm-bird2 0.0.5 lacks these getters: the gateway names driver and getter."""
    missing = {
        "route_to": lambda: border.route_to("198.18.255.1/32"),
        "lldp_neighbors": border.lldp_neighbors,
        "interfaces_ip": border.interfaces_ip,
    }
    for what, call in missing.items():
        with pytest.raises(UnsupportedError) as refused:
            call()
        assert "bird2 driver has no get_" in str(refused.value), what
    assert not border.supports("get_lldp_neighbors")
    assert border.supports("get_bgp_neighbors") and border.supports("get_facts")


def test_a_compare_of_netbox_rendering_leaves_nothing_on_the_box(border: NetworkGateway) -> None:
    before = _box_state()
    candidate = _rendered(BORDER, "service")
    assert "router id 198.18.255.21;" in candidate and "198.18.0.24" not in candidate
    diff = border.compare(candidate)
    assert "+router id 198.18.255.21;" in diff and "+protocol direct loopback {" in diff
    assert '+\tinterface "lo";' in diff
    assert _box_state() == before
    # the rendering BIRD would refuse is not in question: bird -p parses it on the box
    bird.run_on_device(BORDER, ["sh", "-c", f"cat > /tmp/candidate.conf <<'EOF'\n{candidate}EOF"])
    parsed = bird.run_on_device(BORDER, ["bird", "-p", "-c", "/tmp/candidate.conf"])
    assert parsed.returncode == 0, parsed.stderr


def test_a_plan_cannot_commit_through_the_driver(border: NetworkGateway) -> None:
    before = _box_state()
    with pytest.raises(DryRunViolation):
        border.commit(_rendered(BORDER, "service"))
    assert _box_state() == before


# -- configured from NetBox, through the gateway in a run: BIRD and FRR route together --------


def _run_gateway(name: str) -> NetworkGateway:
    return _gateway(Mode.RUN, _target(name))


def _wait(what: str, probe: Any, timeout: float = 40) -> None:
    node.wait_for(what, probe, timeout, 0.5)


def _connect_border_cables() -> None:
    """NetBox: border1's cables connected (what rack-in does in NetBox)."""
    nb = _nb()
    for cable in nb.dcim.cables.filter(device=BORDER):
        cable.status = "connected"
        assert cable.save()


@pytest.fixture
def connected(rack_lab: Any) -> Iterator[dict[str, NetworkGateway]]:
    """border1's cables connected in NetBox; gateways (run mode) to border1 and the spines.
    The lab is held, and reset before and after (rack_lab)."""
    _connect_border_cables()
    gws = {name: _run_gateway(name) for name in ("spine1", "spine2", BORDER)}
    yield gws
    for gw in gws.values():
        gw.close()


def _commit_all(gws: dict[str, NetworkGateway], intent: str) -> dict[str, str]:
    """The spines as NetBox renders them, then border1 with ``intent``: the diffs applied."""
    return {
        name: gw.commit(_rendered(name, intent if name == BORDER else "service"))
        for name, gw in gws.items()
    }


def test_bird_and_frr_peer_when_both_get_netbox_rendering(
    connected: dict[str, NetworkGateway],
) -> None:
    diffs = _commit_all(connected, "service")
    assert "neighbor 198.18.1.13 remote-as 65201" in diffs["spine1"]
    assert "+protocol bgp '198.18.1.12' {" in diffs[BORDER]
    _wait(
        "BGP Established between border1 and both spines",
        lambda: (
            bird.bgp_states(BORDER) == {"198.18.1.12": "Established", "198.18.1.14": "Established"}
            and frr.bgp_states("spine1").get("198.18.1.13") == "Established"
            and frr.bgp_states("spine2").get("198.18.1.15") == "Established"
        ),
    )
    # the data plane: border1's loopback routed from spine1's and back, both OSes installing it
    _wait(
        "spine1 reaches border1's loopback from its own",
        lambda: (
            frr.run_on_device(
                "spine1", ["ping", "-c", "1", "-W", "1", "-I", "198.18.255.1", "198.18.255.21"]
            ).returncode
            == 0
        ),
    )
    # the driver's view, keyed by peer address thanks to the template's protocol names
    peers = connected[BORDER].bgp_neighbors()["global"]["peers"]
    assert set(peers) == {"198.18.1.12", "198.18.1.14"}
    assert peers["198.18.1.12"]["is_up"] and peers["198.18.1.12"]["remote_as"] == 65001
    assert peers["198.18.1.12"]["address_family"]["ipv4 unicast"]["received_prefixes"] > 0
    route = connected["spine1"].route_to("198.18.255.21/32")
    assert any(r["current_active"] for r in route["198.18.255.21/32"])
    # nothing left to do: the box runs what NetBox renders
    assert connected[BORDER].compare(_rendered(BORDER, "service")) == ""


def test_drain_shuts_every_session_and_bare_removes_bgp(
    connected: dict[str, NetworkGateway],
) -> None:
    _commit_all(connected, "service")
    _wait("border1's sessions up", lambda: set(bird.bgp_states(BORDER).values()) == {"Established"})
    diff = connected[BORDER].commit(_rendered(BORDER, "drain"))
    assert diff.count("+\tdisabled;") == 2
    _wait(
        "the spines' sessions to border1 down",
        lambda: (
            frr.bgp_states("spine1").get("198.18.1.13") != "Established"
            and frr.bgp_states("spine2").get("198.18.1.15") != "Established"
        ),
    )
    peers = connected[BORDER].bgp_neighbors()["global"]["peers"]
    assert {p["is_up"] for p in peers.values()} == {False}
    # napalm-bird2 0.0.5 reports a `disabled;` protocol as enabled: a drain check cannot use
    # is_enabled on this platform (see runbooks/lab/bird.py)
    assert {p["is_enabled"] for p in peers.values()} == {True}
    connected[BORDER].commit(_rendered(BORDER, "bare"))
    assert bird.bgp_states(BORDER) == {}
    running = bird.run_on_device(BORDER, ["cat", bird.CONFIG], check=True).stdout
    assert running == _rendered(BORDER, "bare")
    assert "router id 198.18.255.21;" in running and "protocol bgp" not in running


def test_a_configuration_bird_refuses_leaves_the_box_as_it_was(
    connected: dict[str, NetworkGateway],
) -> None:
    from napalm.base.exceptions import CommandErrorException

    before = _box_state()
    del before["files"]  # the driver writes the old file back: same text, a new mtime
    broken = _rendered(BORDER, "service").replace("protocol device {", "protocol devise {")
    # napalm-bird2 writes the file, birdc configure refuses it, the driver writes the old one
    # back; its CommandErrorException is not (yet) one of the gateway's RejectedError causes
    with pytest.raises((RejectedError, CommandErrorException)):
        connected[BORDER].commit(broken)
    after = _box_state()
    del after["files"]
    assert after == before


def test_rollback_in_the_same_session_restores_the_box(
    connected: dict[str, NetworkGateway],
) -> None:
    before = _box_state()
    assert connected[BORDER].commit(_rendered(BORDER, "service"))
    assert _box_state() != before
    connected[BORDER].rollback()
    assert _box_state()["bird.conf"] == before["bird.conf"]
    assert bird.bgp_states(BORDER) == {}


# -- the done-when: rack-in and rack-out of border1 with the runbooks FRR uses ------------------


@pytest.fixture
def desk(rack_lab: Any, tmp_path: Any) -> Any:
    """`runbook` as the lab's people at one office (their own NetBox tokens, one store)."""
    from cli_support import Machine, device_env
    from rack_support import MODULES

    return Machine(
        tmp_path / "home",
        RUNBOOKS_STORE=str(tmp_path / "records.sqlite3"),
        RUNBOOKS_MODULES=MODULES,
        COLUMNS="200",
        **device_env(),
    )


def _approved(desk: Any, runbook: str) -> tuple[str, dict[str, Any]]:
    """olivia plans ``runbook`` for border1, rachel reviews, arthur approves: (change, plan)."""
    import json

    planned = json.loads(
        desk(
            "operator", "plan", runbook, f"device={BORDER}",
            "--window-start", "-1m", "--window-end", "+2h", "--json",
        ).stdout
    )  # fmt: skip
    change, digest = planned["change"], planned["hash"]
    desk("reviewer", "review", change, "--accept", "--hash", digest)
    desk("approver", "approve", change, "--hash", digest)
    return change, planned


def _ran(desk: Any, change: str) -> dict[str, Any]:
    import json

    result: dict[str, Any] = json.loads(desk("operator", "run", change, "--yes", "--json").stdout)
    assert result["status"] == "succeeded", result
    return result


def test_rack_in_then_rack_out_of_the_bird_router_through_change_control(desk: Any) -> None:
    import json

    change, planned = _approved(desk, "rack-in")
    text = json.dumps(planned)
    # what napalm-bird2 cannot answer or do is named in the plan, with platform and driver
    assert "cannot check on bird2 (border1): driver bird2 has no get_lldp_neighbors" in text
    assert "cannot check on bird2 (border1): driver bird2 has no get_route_to" in text
    assert "no commit-confirm on bird2 (border1)" in text
    ran = _ran(desk, change)
    # ... and recorded as not checked in the run, never passed silently
    assert "not checked on bird2: driver bird2 has no get_lldp_neighbors" in json.dumps(ran)
    assert bird.bgp_states(BORDER) == {"198.18.1.12": "Established", "198.18.1.14": "Established"}
    assert frr.bgp_states("spine1").get("198.18.1.13") == "Established"
    assert _nb().dcim.devices.get(name=BORDER).status.value == "active"

    change, planned = _approved(desk, "rack-out")
    # rack-out's checks read the neighbours (FRR); the box itself has no commit-confirm
    assert "no commit-confirm on bird2 (border1)" in json.dumps(planned)
    _ran(desk, change)
    assert bird.bgp_states(BORDER) == {}
    assert "198.18.1.13" not in frr.bgp_states("spine1")
    running = bird.run_on_device(BORDER, ["cat", bird.CONFIG], check=True).stdout
    assert "protocol bgp" not in running and "router id 198.18.255.21;" in running  # bare
    assert _nb().dcim.devices.get(name=BORDER).status.value != "active"


def test_a_bgp_password_reaches_the_box_but_no_diff(connected: dict[str, NetworkGateway]) -> None:
    """A password from NetBox's config context is configured on the box; what the gateway
    returns (the diff a record or review would keep) holds the placeholder instead."""
    planted = "h2-planted-bird-secret"
    dev = _nb().dcim.devices.get(name=BORDER)
    dev.local_context_data = {"bgp_password": planted}
    assert dev.save()
    rendered = _rendered(BORDER, "service")
    assert f'password "{planted}";' in rendered
    diff = connected[BORDER].commit(rendered)
    assert planted not in diff and 'password "<removed>";' in diff
    running = bird.run_on_device(BORDER, ["cat", bird.CONFIG], check=True).stdout
    assert running.count(f'password "{planted}";') == 2  # the box holds the real one
    assert connected[BORDER].compare(rendered) == ""


def test_reset_brings_border1_back_to_planned_and_factory_default(
    connected: dict[str, NetworkGateway],
) -> None:
    _commit_all(connected, "service")
    _nb().dcim.devices.get(name=BORDER).update({"status": "active"})
    lab_ops.reset()  # this process holds the lab: its own reset goes ahead
    topo = lab_ops.topology.load()
    conf = bird.run_on_device(BORDER, ["cat", bird.CONFIG], check=True).stdout
    assert conf == bird.factory_config(topo, BORDER)
    assert bird.bgp_states(BORDER) == {}
    assert _nb().dcim.devices.get(name=BORDER).status.value == "planned"
    cables = {c.status.value for c in _nb().dcim.cables.filter(device=BORDER)}
    assert cables == {"planned"}


def test_a_bird_box_with_another_host_key_is_refused(lab_reset: Any, tmp_path: Any) -> None:
    """napalm-bird2 accepts any host key (paramiko's AutoAddPolicy); the gateway makes the
    driver's SSH client with RejectPolicy and the known_hosts file, so the box's key is
    refused on the driver's own connection, before any credential (c03a150)."""
    target = _target()
    known = forged(tmp_path, BORDER, target.host)
    creds = Credentials("root", key_file=node.login_params("")["key_file"], known_hosts=known)
    gw = NetworkGateway(Mode.PLAN, target, creds)
    try:
        with pytest.raises(ConnectError) as refused:
            gw.facts()
    finally:
        gw.close()
    one_line(refused, f"{BORDER}: refused while connecting to {target.host}:", known)
