"""A fault for network-remediation's lab test: a BGP peer of a device goes down while that
device's batch is committed, so the batch's post-check finds a regression.

`PeerDropsSession` is the device's gateway: once its commit is made it shuts, on the named
peer (through vtysh inside the peer's namespace, as a person on the peer would), the BGP
session to the device. The device's own configuration is untouched by the fault: after the
batch is undone it is exactly what it was before the run.
"""

from __future__ import annotations

from typing import Any

from runbooks.core.gateway import writes
from runbooks.gateways.network import NetworkGateway
from runbooks.lab import frr, topology


def session_command(peer: str, device: str, shut: bool) -> list[str]:
    """vtysh on ``peer``: (no) neighbor <device's address on their link> shutdown."""
    topo = topology.load()
    (address,) = [a for a, name in frr.expected_peers(topo, peer).items() if name == device]
    neighbor = f"{'' if shut else 'no '}neighbor {address} shutdown"
    return ["vtysh", "-c", "conf t", "-c", f"router bgp {topo.device(peer).asn}", "-c", neighbor]


def peer_drops_session(peer: str) -> type[NetworkGateway]:
    class PeerDropsSession(NetworkGateway):
        @writes
        def commit(self, candidate: str, *args: Any, **kwargs: Any) -> str:
            committed = super().commit(candidate, *args, **kwargs)
            frr.run_on_device(peer, session_command(peer, self.target.name, True), check=True)
            return committed

    return PeerDropsSession
